"""The Curvature protocol: every implementation against its own to_dense and the dense matrix.

Generic points: damping not 1, K-FAC factors from rows whose weights do not sum to 1, layer
shapes that are neither square nor equal.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
from scipy.sparse.linalg import LinearOperator

from refvpng.curvature.kfac import BlockDiagKFAC, BlockTridiagKFAC, kfac_factors
from refvpng.curvature.operator import Curvature, DenseCurvature, InverseCurvature
from refvpng.curvature.solve import damped_solve
from refvpng.optim.directions import natural_direction
from refvpng.testing.tolerances import EXACT
from tests.curvature.test_kfac import _dense_completion

SOLVE_RTOL = 1e-10  # structured or Cholesky inverse vs a dense LU solve, relative to max entry
DIMS = [(3, 2), (2, 4), (4, 1)]  # (d_in, d_out) per layer: P = 8 + 12 + 5 = 25
GAMMA = 0.37


def _rel(a, b):
    return np.max(np.abs(np.asarray(a) - np.asarray(b))) / max(np.max(np.abs(b)), 1e-300)


def _factors(seed, dims=DIMS, rows=7):
    rng = np.random.default_rng(seed)
    pairs = [
        (np.c_[rng.standard_normal((rows, i)), np.ones(rows)], rng.standard_normal((rows, o)))
        for i, o in dims
    ]
    w = rng.uniform(0.3, 1.1, rows)  # total weight neither 1 nor the row count
    return kfac_factors(pairs, w)


def _exact_kfac(factors, gamma, tridiagonal):
    """Dense K-FAC matrix built from the factors alone (no operator code)."""
    r = np.sqrt(gamma)
    diag = [
        np.kron(a + r * np.eye(a.shape[0]), g + r * np.eye(g.shape[0]))
        for a, g in zip(factors.A, factors.G, strict=True)
    ]
    out = scipy.linalg.block_diag(*diag)
    if tridiagonal:
        off = np.cumsum([0] + [d.shape[0] for d in diag])
        for k, (ac, gc) in enumerate(zip(factors.A_cross, factors.G_cross, strict=True)):
            blk = np.kron(ac, gc)
            out[off[k] : off[k + 1], off[k + 1] : off[k + 2]] = blk
            out[off[k + 1] : off[k + 2], off[k] : off[k + 1]] = blk.T
    return out


def _dense_case(seed=0, p=25, mu=0.37):
    rng = np.random.default_rng(seed)
    b = rng.standard_normal((p - 6, p)) * rng.uniform(0.5, 2.0, p)  # rank-deficient Fisher
    f = b.T @ b
    return DenseCurvature(f, mu), f + mu * np.eye(p)


def _cases():
    """(id, operator, exact dense matrix, matrix that solve inverts exactly)."""
    op, exact = _dense_case()
    yield "dense", op, exact, exact
    f = _factors(1)
    op = BlockDiagKFAC(f, GAMMA)
    exact = _exact_kfac(f, GAMMA, False)
    yield "blockdiag", op, exact, exact
    f2 = _factors(2, DIMS[:2])
    op = BlockTridiagKFAC(f2, GAMMA)
    exact = _exact_kfac(f2, GAMMA, True)
    yield "tridiag-2", op, exact, exact  # two layers: solve is the exact inverse
    op = BlockTridiagKFAC(f, GAMMA)
    exact = _exact_kfac(f, GAMMA, True)
    yield "tridiag-3", op, exact, _dense_completion(exact, op.offsets)


CASES = list(_cases())
IDS = [c[0] for c in CASES]


@pytest.mark.parametrize(("name", "op", "exact", "inverted"), CASES, ids=IDS)
def test_matvec_and_to_dense_match_the_dense_matrix(name, op, exact, inverted):
    assert isinstance(op, Curvature)
    assert op.shape == exact.shape
    v = np.random.default_rng(3).standard_normal((op.shape[0], 2))
    dense = op.to_dense()
    assert _rel(dense, exact) <= EXACT
    assert _rel(op.matvec(v), dense @ v) <= EXACT
    assert _rel(op.matvec(v[:, 0]), exact @ v[:, 0]) <= EXACT


@pytest.mark.parametrize(("name", "op", "exact", "inverted"), CASES, ids=IDS)
def test_solve_and_inverse_match_the_dense_inverse(name, op, exact, inverted):
    v = np.random.default_rng(4).standard_normal((op.shape[0], 3))
    ref = np.linalg.solve(inverted, v)
    assert _rel(op.solve(v), ref) <= SOLVE_RTOL
    assert _rel(op.solve(v[:, 1]), ref[:, 1]) <= SOLVE_RTOL
    inv = op.inverse()
    assert isinstance(inv, Curvature) and inv.shape == op.shape
    np.testing.assert_array_equal(inv.matvec(v), op.solve(v))
    np.testing.assert_array_equal(inv.solve(v), op.matvec(v))
    assert _rel(inv.to_dense(), np.linalg.inv(inverted)) <= SOLVE_RTOL
    assert _rel(inv.inverse().to_dense(), exact) <= EXACT  # the inverse of the inverse
    if name != "tridiag-3":
        assert _rel(op.solve(op.matvec(v)), v) <= SOLVE_RTOL


@pytest.mark.parametrize(("name", "op", "exact", "inverted"), CASES, ids=IDS)
def test_aslinearoperator(name, op, exact, inverted):
    v = np.random.default_rng(5).standard_normal((op.shape[0], 2))
    lin = op.aslinearoperator()
    assert isinstance(lin, LinearOperator) and lin.shape == op.shape
    assert _rel(lin @ v[:, 0], exact @ v[:, 0]) <= EXACT
    assert _rel(lin @ v, exact @ v) <= EXACT
    assert _rel(lin.rmatvec(v[:, 0]), exact @ v[:, 0]) <= EXACT
    inv_lin = op.inverse().aslinearoperator()
    assert _rel(inv_lin @ v, np.linalg.solve(inverted, v)) <= SOLVE_RTOL


@pytest.mark.parametrize(("name", "op", "exact", "inverted"), CASES, ids=IDS)
def test_damping_argument_overrides_the_operators_own(name, op, exact, inverted):
    """The optional second argument is the implementation's own damping, also for inverse()."""
    other = 0.05
    v = np.random.default_rng(6).standard_normal(op.shape[0])
    dense = op.to_dense(other)
    assert _rel(dense, exact) > 1e-3  # a different matrix
    assert _rel(op.matvec(v, other), dense @ v) <= EXACT
    inv = op.inverse(other)
    np.testing.assert_array_equal(inv.matvec(v), op.solve(v, other))
    assert _rel(inv.inverse().to_dense(), dense) <= EXACT
    # damped_solve and the natural direction pass their mu in that slot
    np.testing.assert_array_equal(damped_solve(op, v, other), op.solve(v, other))
    d = natural_direction(damping=other)
    got, _ = d.update(v, d.init(np.zeros_like(v)), curvature=op)
    np.testing.assert_array_equal(got, op.solve(v, other))


def test_dense_curvature_is_eq17():
    op, exact = _dense_case(seed=8, p=9, mu=2.5)
    g = np.random.default_rng(9).standard_normal(9)
    np.testing.assert_array_equal(op.solve(g), damped_solve(op.fisher, g, 2.5))
    assert _rel(op.solve(g), np.linalg.solve(exact, g)) <= SOLVE_RTOL
    np.testing.assert_array_equal(op.to_dense(0.0), op.fisher)
    with pytest.raises(ValueError, match="singular"):
        op.solve(g, 0.0)  # rank-deficient F without damping


def test_bad_inputs_name_the_argument():
    with pytest.raises(ValueError, match="fisher"):
        DenseCurvature(np.ones((2, 3)))
    with pytest.raises(ValueError, match="symmetric"):
        DenseCurvature(np.array([[1.0, 2.0], [0.0, 1.0]]))
    with pytest.raises(ValueError, match="damping"):
        DenseCurvature(np.eye(2), -1.0)
    op = DenseCurvature(np.eye(2), 0.5)
    with pytest.raises(ValueError, match="v"):
        op.matvec(np.ones(3))
    with pytest.raises(ValueError, match="damping"):
        op.solve(np.ones(2), -0.5)
    with pytest.raises(TypeError, match="curvature"):
        InverseCurvature(np.eye(2))
