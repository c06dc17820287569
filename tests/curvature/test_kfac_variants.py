"""The K-FAC variants of the authors' script, each against its own dense form.

Eigenvalue damping (``damping_split="each"``), a dropped low-rank remainder
(``lowrank_remainder="dropped"``), low rank on input factors only, the floor rank rule, and an
exactly diagonal factor (the decoder's ``diag E[p(1-p)]``), at generic points: damping 0.37 (so
that gamma, sqrt(gamma) and gamma^2 all differ), odd and unequal widths, unequal row weights.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg

from refvpng.curvature.kfac import (
    BlockDiagKFAC,
    BlockTridiagKFAC,
    KFACConfig,
    KFACFactors,
    factor_eig,
    kfac_factors,
    kfac_init,
    kfac_operator,
    lowrank_rank,
)
from refvpng.testing.tolerances import EXACT, SOLVE
from tests.curvature.test_kfac import _dense_completion

GAMMA = 0.37


def _rel(a, b):
    return np.max(np.abs(np.asarray(a) - np.asarray(b))) / max(np.max(np.abs(b)), 1e-300)


def _factors(seed, dims, rows=13):
    rng = np.random.default_rng(seed)
    pairs = [
        (np.c_[rng.standard_normal((rows, i)), np.ones(rows)], rng.standard_normal((rows, o)))
        for i, o in dims
    ]
    return kfac_factors(pairs, rng.uniform(0.3, 1.2, rows)), rng


def _with_diag_last_g(f: KFACFactors, rng) -> KFACFactors:
    g = list(f.G)  # its own diagonal, inflated (so the Schur complements stay positive definite)
    g[-1] = np.diag(np.diagonal(g[-1]) * rng.uniform(1.2, 1.6, g[-1].shape[0]))
    return KFACFactors(f.A, tuple(g), f.A_cross, f.G_cross)


def _dense_band(f: KFACFactors, a_damped, g_damped, tridiagonal):
    """Block (tri)diagonal matrix from damped diagonal factors and the raw cross factors."""
    blocks = [np.kron(a, g) for a, g in zip(a_damped, g_damped, strict=True)]
    out = scipy.linalg.block_diag(*blocks)
    if tridiagonal:
        off = np.concatenate([[0], np.cumsum([b.shape[0] for b in blocks])])
        for k in range(len(blocks) - 1):
            c = np.kron(f.A_cross[k], f.G_cross[k])
            out[off[k] : off[k + 1], off[k + 1] : off[k + 2]] = c
            out[off[k + 1] : off[k + 2], off[k] : off[k + 1]] = c.T
    return out, off if tridiagonal else None


@pytest.mark.parametrize("tridiagonal", [False, True], ids=["blockdiag", "tridiag"])
@pytest.mark.parametrize("n_layers", [2, 3])
def test_eigenvalue_damping_against_dense(tridiagonal, n_layers):
    """damping_split='each': A + gamma I and G + gamma I (pi ignored), not sqrt(gamma)."""
    dims = [(4, 3), (2, 5), (3, 2)][:n_layers]
    f, rng = _factors(1, dims)
    f = _with_diag_last_g(f, rng)  # an exactly diagonal factor takes the eigh-free path
    cls = BlockTridiagKFAC if tridiagonal else BlockDiagKFAC
    op = cls(f, GAMMA, damping_split="each", pi_heuristic=True)
    eye = [np.eye(m.shape[0]) for m in f.A], [np.eye(m.shape[0]) for m in f.G]
    a_d = [a + GAMMA * i for a, i in zip(f.A, eye[0], strict=True)]
    g_d = [g + GAMMA * i for g, i in zip(f.G, eye[1], strict=True)]
    dense, off = _dense_band(f, a_d, g_d, tridiagonal)
    assert _rel(op.to_dense(), dense) <= EXACT
    v = rng.standard_normal((op.shape[0], 2))
    assert _rel(op.matvec(v), dense @ v) <= EXACT
    target = _dense_completion(dense, off) if tridiagonal and n_layers > 2 else dense
    assert _rel(op.solve(v), np.linalg.solve(target, v)) <= SOLVE
    # the factored split at the same gamma is a different matrix
    assert _rel(cls(f, GAMMA).to_dense(), dense) > 0.05
    # through the K-FAC state: the config reaches the operator
    cfg = KFACConfig(tridiagonal=tridiagonal, factor_damping=GAMMA, damping_split="each")
    assert _rel(kfac_operator(kfac_init(f, cfg)).solve(v), op.solve(v)) <= EXACT


def test_diagonal_factor_eig_is_exact():
    d = np.array([0.3, 0.1, 0.7, 0.1, 0.2])
    eig = factor_eig(np.diag(d))
    np.testing.assert_array_equal(eig.values, np.sort(d))
    np.testing.assert_array_equal((eig.vectors * eig.values) @ eig.vectors.T, np.diag(d))
    assert not eig.truncated


def _truncated_problem(tridiagonal, n_layers, factors_rule="both"):
    # A_0 is 10 x 10 (truncated to r = floor(1.3 ln 10) = 2); G_1 is 9 x 9
    dims = [(9, 3), (2, 9), (4, 2)][:n_layers]
    f, rng = _factors(3, dims, rows=17)
    cls = BlockTridiagKFAC if tridiagonal else BlockDiagKFAC
    kw = dict(lowrank_c=1.3, lowrank_threshold=8, lowrank_floor=True, lowrank_factors=factors_rule)
    dropped = cls(f, GAMMA, lowrank_remainder="dropped", **kw)
    kept = cls(f, GAMMA, **kw)
    return f, rng, dropped, kept


@pytest.mark.parametrize("tridiagonal", [False, True], ids=["blockdiag", "tridiag"])
def test_dropped_remainder_is_the_pseudo_inverse_of_its_dense_form(tridiagonal):
    """Two layers (where the tridiagonal inverse is exact): solve = pinv(to_dense) v."""
    f, rng, op, _ = _truncated_problem(tridiagonal, 2)
    r = lowrank_rank(10, 1.3, floor=True)
    assert r == 2 and op.blocks[0].eig_A.vectors.shape == (10, r) and op.blocks[0].eig_A.dropped
    vals, vecs = np.linalg.eigh(f.A[0])
    u = vecs[:, -r:]
    # the damped factor: leading eigenvalues + sqrt(gamma) on U, nothing on the complement
    a0 = (u * (vals[-r:] + np.sqrt(GAMMA))) @ u.T
    a_d = [a0] + [f.A[1] + np.sqrt(GAMMA) * np.eye(f.A[1].shape[0])]
    g1 = f.G[1]
    gv, gu = np.linalg.eigh(g1)
    r_g = lowrank_rank(9, 1.3, floor=True)
    g1_t = (gu[:, -r_g:] * (gv[-r_g:] + np.sqrt(GAMMA))) @ gu[:, -r_g:].T
    g_d = [f.G[0] + np.sqrt(GAMMA) * np.eye(f.G[0].shape[0]), g1_t]
    p_a, p_g = u @ u.T, gu[:, -r_g:] @ gu[:, -r_g:].T
    fp = f._replace(A_cross=(p_a @ f.A_cross[0],), G_cross=(f.G_cross[0] @ p_g,))
    dense, _ = _dense_band(fp, a_d, g_d, tridiagonal)
    assert _rel(op.to_dense(), dense) <= 1e-10
    v = rng.standard_normal((op.shape[0], 3))
    assert _rel(op.matvec(v), dense @ v) <= EXACT
    assert _rel(op.solve(v), np.linalg.pinv(dense, rcond=1e-10) @ v) <= 1e-9
    assert _rel(op.inverse().to_dense(), np.linalg.pinv(dense, rcond=1e-10)) <= 1e-9


def test_dropped_remainder_three_layers_is_the_reduced_tridiagonal_inverse():
    """Three layers: solve = Q (tridiagonal inverse of the factors in U's coordinates) Q^T v."""
    f, rng, op, _ = _truncated_problem(True, 3, "input")
    assert not op.blocks[1].eig_G.truncated  # low rank on input factors only
    u = op.blocks[0].eig_A.vectors
    reduced = KFACFactors(
        (u.T @ f.A[0] @ u,) + f.A[1:], f.G, (u.T @ f.A_cross[0],) + f.A_cross[1:], f.G_cross
    )
    ref_op = BlockTridiagKFAC(reduced, GAMMA)
    q0 = np.kron(u, np.eye(f.G[0].shape[0]))  # vec(X U^T) = (U kron I) vec(X)
    q = scipy.linalg.block_diag(q0, *[np.eye(b[0] * b[1]) for b in op.block_shapes[1:]])
    v = rng.standard_normal((op.shape[0], 2))
    want = q @ np.linalg.solve(_dense_completion(ref_op.to_dense(), ref_op.offsets), q.T @ v)
    assert _rel(op.solve(v), want) <= SOLVE


@pytest.mark.parametrize("tridiagonal", [False, True], ids=["blockdiag", "tridiag"])
def test_dropped_equals_kept_minus_the_complement(tridiagonal):
    """Kept remainder = dropped + (I - U U^T)/(pi sqrt gamma) kron (G_0^gamma)^{-1} on layer 0."""
    f, rng, dropped, kept = _truncated_problem(tridiagonal, 3, "input")
    u = dropped.blocks[0].eig_A.vectors
    comp = (np.eye(10) - u @ u.T) / np.sqrt(GAMMA)
    g0 = np.linalg.inv(f.G[0] + np.sqrt(GAMMA) * np.eye(3))
    extra = scipy.linalg.block_diag(np.kron(comp, g0), np.zeros((dropped.shape[0] - 30,) * 2))
    v = rng.standard_normal((dropped.shape[0], 2))
    assert _rel(kept.solve(v), dropped.solve(v) + extra @ v) <= SOLVE
    assert _rel(kept.solve(v), dropped.solve(v)) > 0.05


def test_variant_options_are_validated():
    f, _ = _factors(0, [(2, 2)])
    for kw, match in (
        ({"damping_split": "half"}, "damping_split"),
        ({"lowrank_remainder": "zero"}, "lowrank_remainder"),
        ({"lowrank_factors": "output"}, "lowrank_factors"),
        ({"lowrank_floor": 1}, "lowrank_floor"),
    ):
        with pytest.raises((ValueError, TypeError), match=match):
            BlockDiagKFAC(f, 0.1, **kw)
    with pytest.raises(ValueError, match="damping_split"):
        kfac_init(f, KFACConfig(damping_split="x"))
    with pytest.raises(TypeError, match="floor"):
        lowrank_rank(785, floor="yes")
    assert lowrank_rank(785, floor=True) == 26 and lowrank_rank(785) == 27
