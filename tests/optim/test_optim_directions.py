"""Directions: damped natural gradient against its dense formula, blocks, chain, convergence."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refvpng.optim import (
    EmptyState,
    GradientTransformation,
    apply_updates,
    chain,
    damped_solve,
    identity_direction,
    make_optimizer,
    natural_direction,
    run,
    scale,
)
from refvpng.testing.tolerances import EXACT


def random_spd(rng, n):
    a = rng.uniform(-1.0, 1.0, size=(n, n))
    return a @ a.T + 0.5 * np.eye(n)


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 6),
    seed=st.integers(0, 2**32 - 1),
    mu=st.one_of(st.just(0.0), st.floats(1e-6, 10.0)),
)
def test_natural_direction_matches_dense_solve(n, seed, mu):
    rng = np.random.default_rng(seed)
    F = random_spd(rng, n)
    g = rng.standard_normal(n)
    d = natural_direction(damping=mu)
    out, state = d.update(g, d.init(np.zeros(n)), curvature=F)
    expected = np.linalg.solve(F + mu * np.eye(n), g)
    np.testing.assert_allclose(out, expected, rtol=0, atol=EXACT * max(1.0, np.abs(expected).max()))
    assert state == EmptyState()


def test_singular_curvature_without_damping_raises():
    F = np.array([[1.0, 1.0], [1.0, 1.0]])
    d = natural_direction()
    state = d.init(np.zeros(2))
    with pytest.raises(ValueError, match="singular or not positive definite; pass damping > 0"):
        d.update(np.ones(2), state, curvature=F)
    # damped: fine, and equal to the dense formula
    out, _ = natural_direction(0.1).update(np.ones(2), state, curvature=F)
    np.testing.assert_allclose(out, np.linalg.solve(F + 0.1 * np.eye(2), np.ones(2)), rtol=EXACT)


def test_rank_deficient_monte_carlo_fisher_raises_never_nan():
    """F = sum of few outer products (rank < P), as Eq. 16 with M n < P: no NaN, no garbage."""
    rng = np.random.default_rng(3)
    b = rng.standard_normal((2, 5))
    F = b.T @ b
    with pytest.raises(ValueError, match="pass damping > 0"):
        damped_solve(F, rng.standard_normal(5))
    with pytest.raises(ValueError, match="increase damping"):
        damped_solve(F, rng.standard_normal(5), damping=1e-30)
    x = damped_solve(F, np.ones(5), damping=1e-3)
    assert np.all(np.isfinite(x))


def test_indefinite_curvature_raises():
    F = np.diag([1.0, -2.0])
    with pytest.raises(ValueError, match="damping > 0"):
        damped_solve(F, np.ones(2))
    with pytest.raises(ValueError, match="fisher \\+ damping\\*I"):
        damped_solve(F, np.ones(2), damping=1.0)
    np.testing.assert_allclose(damped_solve(F, np.ones(2), damping=3.0), [0.25, 1.0], rtol=EXACT)


def test_curvature_validation():
    d = natural_direction()
    state = d.init(np.zeros(2))
    with pytest.raises(ValueError, match="curvature"):
        d.update(np.ones(2), state, curvature=np.eye(3))
    with pytest.raises(ValueError, match="curvature"):
        d.update(np.ones(2), state, curvature=np.ones(2))
    with pytest.raises(ValueError, match="curvature must be symmetric"):
        d.update(np.ones(2), state, curvature=np.array([[1.0, 0.5], [0.0, 1.0]]))
    with pytest.raises(ValueError, match="curvature contains NaN"):
        d.update(np.ones(2), state, curvature=np.array([[1.0, np.nan], [np.nan, 1.0]]))
    with pytest.raises(ValueError, match="curvature="):
        d.update(np.ones(2), state)
    with pytest.raises(ValueError, match="grads"):
        d.update(np.array([1.0, np.inf]), state, curvature=np.eye(2))
    with pytest.raises(ValueError, match="damping"):
        natural_direction(damping=-1.0)


def test_custom_curvature_name_and_damping_override():
    F = np.diag([1.0, 3.0])
    d = natural_direction(damping=0.5, name="fisher_q")  # mu != 1: mu^2 = mu would hide a square
    state = d.init(np.zeros(2))
    out, _ = d.update(np.array([2.0, 4.0]), state, fisher_q=F)
    np.testing.assert_allclose(out, [2.0 / 1.5, 4.0 / 3.5], rtol=EXACT)
    out, _ = d.update(np.array([2.0, 4.0]), state, fisher_q=F, damping=0.0)
    np.testing.assert_allclose(out, [2.0, 4.0 / 3.0], rtol=EXACT)


class DiagOperator:
    """A structured curvature: only ``solve`` and ``matvec``."""

    def __init__(self, diag):
        self.diag = np.asarray(diag, dtype=float)
        self.calls = []

    def solve(self, v, damping):
        self.calls.append(damping)
        return v / (self.diag + damping)

    def matvec(self, v):
        return self.diag * v


def test_operator_with_solve():
    op = DiagOperator([1.0, 4.0])
    d = natural_direction(damping=0.5)
    out, _ = d.update(np.array([2.0, 5.0]), d.init(np.zeros(2)), curvature=op)
    np.testing.assert_allclose(out, [2.0 / 1.5, 5.0 / 4.5], rtol=EXACT)
    assert op.calls == [0.5]


def test_operator_returning_nan_raises():
    class Bad:
        def solve(self, v, damping):
            return np.full_like(v, np.nan)

    with pytest.raises(ValueError, match="fisher.solve"):
        damped_solve(Bad(), np.ones(2))


@pytest.mark.parametrize(
    "index",
    [slice(1, 4), np.array([3, 1, 2]), np.array([False, True, True, True, False])],
    ids=["slice", "int-permuted", "mask"],
)
def test_block_direction(index):
    rng = np.random.default_rng(0)
    g = rng.standard_normal(5)
    pos = (
        np.arange(5)[index]
        if not isinstance(index, np.ndarray) or index.dtype != bool
        else (np.flatnonzero(index))
    )
    F = random_spd(rng, 3)
    d = natural_direction(damping=0.1, index=index)
    out, _ = d.update(g, d.init(np.zeros(5)), curvature=F)
    expected = g.copy()
    expected[pos] = np.linalg.solve(F + 0.1 * np.eye(3), g[pos])
    np.testing.assert_allclose(out, expected, rtol=0, atol=EXACT)
    rest = np.setdiff1d(np.arange(5), pos)
    assert np.array_equal(out[rest], g[rest])


def test_block_index_validation():
    with pytest.raises(ValueError, match="index"):
        natural_direction(index=np.array([0, 0]))
    with pytest.raises(ValueError, match="index"):
        natural_direction(index=np.array([-1, 0]))
    with pytest.raises(TypeError, match="index"):
        natural_direction(index=np.array([0.5]))
    d = natural_direction(index=np.array([0, 7]))
    with pytest.raises(ValueError, match="index"):
        d.init(np.zeros(3))
    d = natural_direction(index=slice(0, 2))
    with pytest.raises(ValueError, match="curvature must have shape \\(2, 2\\)"):
        d.update(np.ones(3), d.init(np.zeros(3)), curvature=np.eye(3))


def test_chain_composition_and_extras():
    """Members run in order, every member gets params and extras, ignores those it doesn't use."""
    seen = []

    def recorder(tag):
        def init(params):
            return EmptyState()

        def update(grads, state, params=None, **extra):
            seen.append((tag, grads.copy(), sorted(extra)))
            return 2.0 * grads, state

        return GradientTransformation(init, update)

    opt = chain(recorder("a"), natural_direction(), recorder("b"), scale(0.5))
    x = np.zeros(2)
    state = opt.init(x)
    assert isinstance(state, tuple) and len(state) == 4
    F = np.diag([2.0, 4.0])
    g = np.array([1.0, 1.0])
    u, state2 = opt.update(g, state, x, curvature=F, value=3.0)
    # a: 2 g ; natural: F^-1 2 g = (1, 0.5) ; b: (2, 1) ; scale: (1, 0.5)
    np.testing.assert_allclose(u, [1.0, 0.5], rtol=EXACT)
    assert [s[0] for s in seen] == ["a", "b"]
    np.testing.assert_allclose(seen[1][1], [1.0, 0.5], rtol=EXACT)
    assert seen[0][2] == ["curvature", "value"]
    assert np.array_equal(g, [1.0, 1.0])


def test_chain_validation():
    with pytest.raises(TypeError, match="transforms\\[1\\]"):
        chain(scale(0.1), lambda g: g)
    opt = chain(scale(0.1), scale(0.2))
    with pytest.raises(ValueError, match="state"):
        opt.update(np.ones(2), (EmptyState(),), np.zeros(2))
    with pytest.raises(ValueError, match="grads"):
        opt.update(np.ones(3), opt.init(np.zeros(2)), np.zeros(2))


def test_apply_updates_validation():
    with pytest.raises(ValueError, match="updates"):
        apply_updates(np.zeros(2), np.zeros(3))
    x = np.zeros(2)
    y = apply_updates(x, np.ones(2))
    assert np.array_equal(x, [0.0, 0.0]) and np.array_equal(y, [1.0, 1.0])


# --- convergence on an ill-conditioned quadratic -------------------------------------------------

THETA_STAR = np.array([1.0, -2.0])
_Q = np.array([[np.cos(0.3), -np.sin(0.3)], [np.sin(0.3), np.cos(0.3)]])
HESS = _Q @ np.diag([1.0, 1e3]) @ _Q.T  # negative Hessian of L, condition number 1e3


def quad_objective_and_grad(theta, rng):
    r = theta - THETA_STAR
    return -0.5 * r @ HESS @ r, -HESS @ r


def test_natural_direction_with_exact_hessian_converges_in_one_step():
    theta0 = np.array([3.0, 4.0])
    opt = make_optimizer("vpng", "fixed", lr=1.0)
    res = run(quad_objective_and_grad, theta0, opt, n_steps=1, curvature_fn=lambda p, rng: HESS, seed=0)
    np.testing.assert_allclose(res.params, THETA_STAR, rtol=0, atol=EXACT * 10)


def test_vanilla_gradient_does_not_converge_quickly():
    theta0 = np.array([3.0, 4.0])
    # lr = 1 (as for the natural direction) diverges along the stiff direction
    res = run(quad_objective_and_grad, theta0, make_optimizer("gradient", "fixed", 1.0), 1, seed=0)
    assert np.linalg.norm(res.params - THETA_STAR) > np.linalg.norm(theta0 - THETA_STAR)
    # the largest stable step, 1 / lambda_max, crawls along the flat direction
    res = run(quad_objective_and_grad, theta0, make_optimizer("gradient", "fixed", 1e-3), 50, seed=0)
    assert np.linalg.norm(res.params - THETA_STAR) > 0.5


def test_identity_direction_returns_copy():
    d = identity_direction()
    g = np.array([1.0, 2.0])
    out, _ = d.update(g, d.init(np.zeros(2)))
    out[0] = 99.0
    assert g[0] == 1.0
