import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from refvpng.curvature.solve import damped_solve
from refvpng.testing import EXACT


@given(seed=st.integers(0, 2**31 - 1), p=st.integers(1, 8), mu=st.floats(0.0, 10.0))
def test_damped_solve_matches_dense(seed, p, mu):
    rng = np.random.default_rng(seed)
    b = rng.standard_normal((p + 3, p))
    f = b.T @ b
    g = rng.standard_normal(p)
    got = damped_solve(f, g, mu)
    ref = np.linalg.solve(f + mu * np.eye(p), g)
    np.testing.assert_allclose(got, ref, rtol=1e-8, atol=1e-8 * np.abs(ref).max())
    np.testing.assert_allclose((f + mu * np.eye(p)) @ got, g, atol=1e-9 * max(1, np.abs(g).max()))


def test_singular_without_damping_raises_and_damping_fixes():
    v = np.array([1.0, 2.0, -1.0])
    f = np.outer(v, v)  # rank one: rank(F_hat_r) <= M n < P
    with pytest.raises(ValueError, match="singular"):
        damped_solve(f, np.ones(3), 0.0)
    out = damped_solve(f, np.ones(3), 1e-3)
    assert np.all(np.isfinite(out))
    np.testing.assert_allclose((f + 1e-3 * np.eye(3)) @ out, np.ones(3), atol=EXACT * 1e4)


@pytest.mark.parametrize(
    "f, g, mu, err, msg",
    [
        (np.eye(2), np.ones(3), 0.0, ValueError, "grad"),
        (np.ones((2, 3)), np.ones(2), 0.0, ValueError, "fisher must have shape"),
        (np.array([[1.0, 0.5], [0.0, 1.0]]), np.ones(2), 0.0, ValueError, "symmetric"),
        (np.eye(2), np.array([np.nan, 1.0]), 0.0, ValueError, "grad contains NaN"),
        (np.eye(2), np.ones(2), -1.0, ValueError, "damping"),
        (-np.eye(2), np.ones(2), 0.0, ValueError, "not positive definite"),
        ("a", np.ones(2), 0.0, TypeError, "fisher"),
    ],
)
def test_bad_inputs(f, g, mu, err, msg):
    with pytest.raises(err, match=msg):
        damped_solve(f, g, mu)


def test_badly_scaled_but_regular_fisher_is_solved():
    """A diagonal F spanning 1e-8..1e12 is regular: the equilibrated check must not call it singular."""
    f = np.diag([1e12, 1.0, 1e-8])
    g = np.array([1.0, 2.0, 3.0])
    np.testing.assert_allclose(damped_solve(f, g), g / np.diag(f), rtol=1e-14)
    # ... while a rank-deficient matrix stays singular whatever its scaling
    v = np.array([1e6, 1.0, 1e-3])
    with pytest.raises(ValueError, match="singular"):
        damped_solve(np.outer(v, v), g)


def test_several_right_hand_sides_are_solved_column_by_column():
    rng = np.random.default_rng(3)
    b = rng.standard_normal((7, 5))
    f, g = b.T @ b, rng.standard_normal((5, 3))
    got = damped_solve(f, g, 0.3)
    assert got.shape == (5, 3)
    for j in range(3):
        np.testing.assert_allclose(got[:, j], damped_solve(f, g[:, j], 0.3), rtol=EXACT)
    np.testing.assert_allclose((f + 0.3 * np.eye(5)) @ got, g, atol=1e-12 * np.abs(g).max())


def test_operator_result_is_checked():
    class Bad:
        def solve(self, v, damping):
            return np.ones(v.shape[0] + 1)

    with pytest.raises(ValueError, match=r"fisher.solve\(v, damping\)"):
        damped_solve(Bad(), np.ones(3), 0.1)
