"""Conjugate gradients against the dense solve."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from refvpng.curvature.cg import cg_solve
from refvpng.testing.compare import assert_close
from refvpng.testing.tolerances import SOLVE


@given(st.integers(1, 40), st.integers(0, 10_000), st.floats(1e-3, 10.0))
def test_cg_matches_dense_solve(p, seed, mu):
    rng = np.random.default_rng(seed)
    b_rows = rng.standard_normal((max(p // 3, 1), p))
    a = b_rows.T @ b_rows + mu * np.eye(p)
    b = rng.standard_normal(p)
    res = cg_solve(lambda v: a @ v, b, rtol=1e-13, maxiter=20 * p)
    assert res.converged and res.residual <= 1e-11
    assert_close(res.x, np.linalg.solve(a, b), SOLVE * np.linalg.cond(a) / 10)


def test_cg_counts_and_limits():
    a = np.diag([1.0, 2.0, 3.0, 5.0, 7.0])
    b = np.ones(5)
    full = cg_solve(lambda v: a @ v, b, rtol=1e-14)
    assert full.iterations == 5 and full.converged  # distinct eigenvalues: P steps in exact arithmetic
    part = cg_solve(lambda v: a @ v, b, maxiter=2)
    assert part.iterations == 2 and not part.converged
    assert part.residual == pytest.approx(np.linalg.norm(b - a @ part.x) / np.linalg.norm(b))
    assert cg_solve(lambda v: a @ v, np.zeros(5)).iterations == 0
    warm = cg_solve(lambda v: a @ v, b, x0=b / np.diag(a), rtol=1e-12)
    assert warm.iterations == 0


def test_cg_is_exact_under_power_of_two_scaling_and_free_of_overflow():
    """The iteration runs on the residual scaled by a power of two: iterates of a scaled problem
    are the scaled iterates, bit for bit, and b or x0 near 1e300 do not overflow the norms."""
    rng = np.random.default_rng(7)
    m = rng.standard_normal((6, 4))
    a = m.T @ m + 0.3 * np.eye(4)
    b, x0 = rng.standard_normal(4), rng.standard_normal(4)
    ref = cg_solve(lambda v: a @ v, b, x0=x0, maxiter=3)
    for k in (-40, 3, 900):
        res = cg_solve(lambda v: a @ v, np.ldexp(b, k), x0=np.ldexp(x0, k), maxiter=3)
        assert np.array_equal(res.x, np.ldexp(ref.x, k)) and res.residual == ref.residual
    big = cg_solve(lambda v: a @ v, 1e300 * b, rtol=1e-13)
    assert big.converged and np.isfinite(big.residual) and big.residual <= 1e-12
    assert_close(big.x / 1e300, np.linalg.solve(a, b), SOLVE * np.linalg.cond(a))
    far = cg_solve(lambda v: a @ v, b, x0=np.full(4, 1e300), maxiter=40)  # a warm start far away
    assert np.all(np.isfinite(far.x)) and np.isfinite(far.residual)
    tiny = cg_solve(lambda v: 1e-300 * v, np.full(3, 0.7), x0=np.full(3, 0.7e300))  # exact, huge
    assert tiny.iterations == 0 and tiny.converged and np.array_equal(tiny.x, np.full(3, 0.7e300))


def test_cg_errors():
    with pytest.raises(TypeError, match="matvec"):
        cg_solve(None, np.ones(3))
    with pytest.raises(FloatingPointError, match="cg_solve"):
        cg_solve(lambda v: np.full(3, np.nan), np.ones(3))
    with pytest.raises(ValueError, match="positive definite"):
        cg_solve(lambda v: -v, np.ones(3))
    with pytest.raises(ValueError, match="shape"):
        cg_solve(lambda v: v[:2], np.ones(3))
    with pytest.raises(ValueError, match="rtol"):
        cg_solve(lambda v: v, np.ones(3), rtol=-1.0)
    with pytest.raises(ValueError, match="x0"):
        cg_solve(lambda v: v, np.ones(3), x0=np.ones(2))
