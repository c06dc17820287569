"""K-FAC operators: structured vs dense, exactness for one data point, damping, EMA, state."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import scipy.sparse.linalg
from hypothesis import given, settings
from hypothesis import strategies as st

from refvpng.curvature.fisher import vp_fisher_mc, vp_kfac_pairs
from refvpng.curvature.kfac import (
    BlockDiagKFAC,
    BlockTridiagKFAC,
    KFACConfig,
    KFACFactors,
    factor_eig,
    kfac_ema,
    kfac_factors,
    kfac_init,
    kfac_operator,
    kfac_update,
    kron_diff_eig,
    kron_diff_solve,
    lowrank_rank,
)
from refvpng.models import Bernoulli
from refvpng.models.latent import draw_predictive
from refvpng.nn import Chain, chain_model
from refvpng.testing.tolerances import EXACT

SOLVE_RTOL = 1e-10  # structured inverse vs dense solve, relative to the largest entry


def _rel(a, b):
    return np.max(np.abs(np.asarray(a) - np.asarray(b))) / max(np.max(np.abs(b)), 1e-300)


def _pairs(rng, dims, rows):
    """Random (a_bar, g) pairs; dims = [(d_in, d_out), ...], a_bar carries the ones column."""
    return [
        (np.c_[rng.standard_normal((rows, i)), np.ones(rows)], rng.standard_normal((rows, o)))
        for i, o in dims
    ]


@st.composite
def kfac_problems(draw, min_layers=1, max_layers=4):
    n_layers = draw(st.integers(min_layers, max_layers))
    dims = [(draw(st.integers(1, 3)), draw(st.integers(1, 3))) for _ in range(n_layers)]
    rows = draw(st.integers(1, 6))
    seed = draw(st.integers(0, 2**31 - 1))
    damping = draw(st.floats(0.01, 1.0))
    pi = draw(st.booleans())
    rng = np.random.default_rng(seed)
    pairs = _pairs(rng, dims, rows)
    weights = rng.uniform(0.2, 1.0, rows)
    return kfac_factors(pairs, weights), damping, pi, rng


def _blocks(m, off):
    n = len(off) - 1
    return [[m[off[k] : off[k + 1], off[j] : off[j + 1]] for j in range(n)] for k in range(n)]


def _dense_completion(dense, off):
    """Independent dense build of the matrix BlockTridiagKFAC.solve inverts.

    Tridiagonal blocks from ``dense``; further blocks F_{k,m} = F_{k,k+1} F_{k+1,k+1}^{-1}
    F_{k+1,m} (the covariance of the Gaussian Markov chain of M&G Section 4.3).
    """
    b = _blocks(dense, off)
    n = len(off) - 1
    out = np.zeros_like(dense)
    full = [[None] * n for _ in range(n)]
    for k in range(n):
        for j in range(n):
            if abs(k - j) <= 1:
                full[k][j] = b[k][j]
    for gap in range(2, n):
        for k in range(n - gap):
            j = k + gap
            full[k][j] = b[k][k + 1] @ np.linalg.solve(b[k + 1][k + 1], full[k + 1][j])
            full[j][k] = full[k][j].T
    for k in range(n):
        for j in range(n):
            out[off[k] : off[k + 1], off[j] : off[j + 1]] = full[k][j]
    return out


# ----------------------------------------------------------------------------- structured vs dense
@settings(max_examples=30, deadline=None)
@given(kfac_problems())
def test_blockdiag_matvec_and_solve_match_dense(problem):
    factors, damping, pi, rng = problem
    op = BlockDiagKFAC(factors, damping, pi_heuristic=pi)
    v = rng.standard_normal((op.shape[0], 2))
    for gamma in (None, 0.0):
        dense = op.to_dense(gamma)
        assert _rel(op.matvec(v, gamma), dense @ v) <= EXACT
        assert _rel(op.matvec(v[:, 0], gamma), dense @ v[:, 0]) <= EXACT
    dense = op.to_dense()
    np.testing.assert_array_equal(dense, dense.T)
    assert _rel(op.solve(v), np.linalg.solve(dense, v)) <= SOLVE_RTOL
    assert _rel(op.inverse().to_dense(), np.linalg.inv(dense)) <= SOLVE_RTOL


@settings(max_examples=30, deadline=None)
@given(kfac_problems())
def test_tridiag_matvec_matches_dense(problem):
    factors, damping, pi, rng = problem
    op = BlockTridiagKFAC(factors, damping, pi_heuristic=pi)
    v = rng.standard_normal((op.shape[0], 2))
    for gamma in (None, 0.0):
        dense = op.to_dense(gamma)
        np.testing.assert_array_equal(dense, dense.T)
        assert _rel(op.matvec(v, gamma), dense @ v) <= EXACT
    # off-tridiagonal blocks of the approximation are zero
    b = _blocks(op.to_dense(), op.offsets)
    for k in range(len(b)):
        for j in range(len(b)):
            if abs(k - j) > 1:
                assert not np.any(b[k][j])


@settings(max_examples=30, deadline=None)
@given(kfac_problems())
def test_tridiag_inverse_is_ggm_completion(problem):
    """M&G 4.3: (Xi^T Lambda Xi)^{-1} agrees with F_breve on the tridiagonal blocks, and
    Xi^T Lambda Xi is itself block-tridiagonal (Markov chain); solve equals the dense inverse of
    the completion built independently here."""
    factors, damping, pi, rng = problem
    op = BlockTridiagKFAC(factors, damping, pi_heuristic=pi)
    dense, inv = op.to_dense(), op.inverse().to_dense()
    off = op.offsets
    assert _rel(inv, inv.T) <= SOLVE_RTOL
    ib = _blocks(inv, off)
    scale = np.abs(inv).max()
    for k in range(len(ib)):
        for j in range(len(ib)):
            if abs(k - j) > 1:
                assert np.abs(ib[k][j]).max() <= SOLVE_RTOL * scale
    fhat = np.linalg.inv(inv)
    fb, db = _blocks(fhat, off), _blocks(dense, off)
    for k in range(len(fb)):
        for j in range(max(0, k - 1), min(len(fb), k + 2)):
            assert np.abs(fb[k][j] - db[k][j]).max() <= SOLVE_RTOL * np.abs(dense).max()
    completion = _dense_completion(dense, off)
    v = rng.standard_normal((op.shape[0], 2))
    assert _rel(op.solve(v), np.linalg.solve(completion, v)) <= SOLVE_RTOL
    assert _rel(inv, np.linalg.inv(completion)) <= SOLVE_RTOL
    if len(off) <= 3:  # at most two layers: the approximation is tridiagonal already
        assert _rel(op.solve(v), np.linalg.solve(dense, v)) <= SOLVE_RTOL


def test_tridiag_one_layer_equals_blockdiag():
    factors = kfac_factors(_pairs(np.random.default_rng(0), [(3, 2)], 4))
    v = np.random.default_rng(1).standard_normal(8)
    tri, diag = BlockTridiagKFAC(factors, 0.3), BlockDiagKFAC(factors, 0.3)
    np.testing.assert_array_equal(tri.to_dense(), diag.to_dense())
    assert _rel(tri.solve(v), diag.solve(v)) <= EXACT


@st.composite
def kron_diff_problems(draw):
    na, nb = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    rows = draw(st.integers(1, 6))
    delta = draw(st.floats(0.01, 1.0))
    rng = np.random.default_rng(draw(st.integers(0, 2**31 - 1)))
    # the K-FAC situation: C = E[a a'^T] (E[a' a'^T] + delta)^{-1} E[a' a^T] <= E[a a^T] < A
    mats = []
    for n in (na, nb):
        x, y = rng.standard_normal((rows, n)), rng.standard_normal((rows, n + 1))
        big = x.T @ x + delta * np.eye(n)
        cross = x.T @ y
        small = cross @ np.linalg.solve(y.T @ y + delta * np.eye(n + 1), cross.T)
        mats.append((big, 0.5 * (small + small.T)))
    return mats[0][0], mats[1][0], mats[0][1], mats[1][1], rng


@settings(max_examples=40, deadline=None)
@given(kron_diff_problems())
def test_kron_diff_solve_matches_dense(problem):
    a, b, c, d, rng = problem
    dense = np.kron(a, b) - np.kron(c, d)
    v = rng.standard_normal(dense.shape[0])
    assert _rel(kron_diff_solve(a, b, c, d, v), np.linalg.solve(dense, v)) <= SOLVE_RTOL
    vv = rng.standard_normal((dense.shape[0], 3))
    assert _rel(kron_diff_solve(a, b, c, d, vv), np.linalg.solve(dense, vv)) <= SOLVE_RTOL


def test_kron_diff_eig_rejects_bad_input():
    eye = np.eye(2)
    with pytest.raises(ValueError, match="a must be positive definite"):
        kron_diff_eig(-eye, eye, eye, eye)
    with pytest.raises(ValueError, match="not positive definite"):
        kron_diff_eig(eye, eye, 2 * eye, eye)
    with pytest.raises(ValueError, match="d must have shape"):
        kron_diff_eig(eye, eye, eye, np.eye(3))
    with pytest.raises(ValueError, match="v"):
        kron_diff_solve(eye, eye, 0 * eye, 0 * eye, np.ones(3))


# ----------------------------------------------------------------------------- exactness on F_hat_r
def _chain_fhat(chain, eta, x, eps, m, rng):
    """Eq 16 on the Bernoulli chain with one noise draw (S = 1): F_hat, K-FAC pairs and weights."""
    model = chain_model(chain, Bernoulli())
    eps = eps[None]
    x_pred = draw_predictive(rng, model, eta, x, eps, m)
    pairs, w = vp_kfac_pairs(model, eta, x, eps, x_pred)
    return vp_fisher_mc(model, eta, x, eps, x_pred), pairs, w


CHAINS = [
    ("shallow", (3, 2), (1, 3)),
    ("vae-6layer", (4, 3, 3, 4), (2, 3, 3, 4)),
]


@pytest.mark.parametrize(("enc", "dec"), [c[1:] for c in CHAINS], ids=[c[0] for c in CHAINS])
@pytest.mark.parametrize("m", [1, 3])
def test_kfac_exact_for_one_data_point(enc, dec, m):
    r"""K-FAC reproduces every block of F_hat_r for one data point.

    Proof. With one data point (n = 1) the forward pass, hence every layer input a_bar_l, is
    the same for all M predictive samples; only g_{l,k} depends on the sample k. The
    per-sample score block of layer l is b_{l,k} = vec(g_{l,k} a_bar_l^T) = a_bar_l kron g_{l,k}
    (column-major vec), so by the mixed-product rule

        F_hat_r[l, m] = (1/M) sum_k (a_bar_l kron g_{l,k})(a_bar_m kron g_{m,k})^T
                      = (a_bar_l a_bar_m^T) kron ((1/M) sum_k g_{l,k} g_{m,k}^T).

    With weights 1/M, kfac_factors gives A_l = a_bar_l a_bar_l^T (weighted mean of a constant),
    A_{l,l+1} = a_bar_l a_bar_{l+1}^T and G_{l,m} = (1/M) sum_k g_{l,k} g_{m,k}^T, so the
    diagonal blocks A_l kron G_l and the neighbour blocks A_{l,l+1} kron G_{l,l+1} equal those of
    F_hat_r exactly; for M = 1 this is b b^T = (a_bar a_bar^T) kron (g g^T). The same formula
    holds for non-neighbouring blocks, checked from the pairs directly. Tested to EXACT.
    """
    chain = Chain.from_sizes(enc, dec, "tanh")
    rng = np.random.default_rng(5)
    eta = chain.init(rng)
    x, eps = (rng.random((1, chain.d_x)) < 0.5) * 1.0, rng.standard_normal((1, chain.d_z))
    f_hat, pairs, w = _chain_fhat(chain, eta, x, eps, m, rng)
    tri = BlockTridiagKFAC(kfac_factors(pairs, w), factor_damping=0.1)
    diag = BlockDiagKFAC(kfac_factors(pairs, w), factor_damping=0.1)
    off = tri.offsets
    assert off[-1] == chain.num_params
    fb = _blocks(f_hat, off)
    tb, db = _blocks(tri.to_dense(0.0), off), _blocks(diag.to_dense(0.0), off)
    scale = np.abs(f_hat).max()
    n_layers = len(fb)
    assert n_layers == len(chain.layer_shapes)
    for k in range(n_layers):
        assert np.abs(db[k][k] - fb[k][k]).max() <= EXACT * scale
        for j in range(n_layers):
            if abs(k - j) <= 1:
                assert np.abs(tb[k][j] - fb[k][j]).max() <= EXACT * scale
            a_kj = pairs[k][0][0][:, None] * pairs[j][0][0][None, :]
            g_kj = (pairs[k][1] * w[:, None]).T @ pairs[j][1]
            assert np.abs(np.kron(a_kj, g_kj) - fb[k][j]).max() <= EXACT * scale


def test_kfac_scale_is_sum_over_data_mean_over_samples():
    """Trace identity: tr(A_l kron G_l) = tr(A_l) tr(G_l); for data points with identical
    inputs the factors reproduce F_hat_r's diagonal blocks, so the scale carries n, not 1."""
    chain = Chain.from_sizes((3, 2), (1, 3))
    rng = np.random.default_rng(8)
    eta = chain.init(rng)
    x = np.tile((rng.random((1, 3)) < 0.5) * 1.0, (4, 1))
    eps = np.tile(rng.standard_normal((1, 1)), (4, 1))
    f_hat, pairs, w = _chain_fhat(chain, eta, x, eps, 2, rng)
    op = BlockDiagKFAC(kfac_factors(pairs, w))
    d = op.to_dense(0.0)
    off = op.offsets
    for k in range(len(off) - 1):
        blk = slice(off[k], off[k + 1])
        assert _rel(d[blk, blk], f_hat[blk, blk]) <= EXACT


# ----------------------------------------------------------------------------- damping, low rank
def test_factor_damping_and_pi_heuristic():
    factors = kfac_factors(_pairs(np.random.default_rng(2), [(2, 3), (3, 1)], 5))
    op = BlockDiagKFAC(factors, 0.04, pi_heuristic=True)
    for (da, dg), a, g in zip(op.factor_shifts(), factors.A, factors.G, strict=True):
        pi = np.sqrt((np.trace(a) / a.shape[0]) / (np.trace(g) / g.shape[0]))
        assert da == pytest.approx(pi * 0.2) and dg == pytest.approx(0.2 / pi)
        assert da * dg == pytest.approx(0.04)
    plain = BlockDiagKFAC(factors, 0.04)
    assert plain.factor_shifts() == ((0.2, 0.2), (0.2, 0.2))
    d = plain.to_dense()
    a0, g0 = factors.A[0], factors.G[0]
    np.testing.assert_allclose(
        d[:9, :9], np.kron(a0 + 0.2 * np.eye(3), g0 + 0.2 * np.eye(3)), rtol=0, atol=1e-15
    )


def test_lowrank_rank():
    assert lowrank_rank(785) == 27  # ceil(4 ln 785)
    assert lowrank_rank(785, 2.0) == 14
    assert lowrank_rank(3) == 3
    assert lowrank_rank(1) == 1


@pytest.mark.parametrize("tridiagonal", [False, True], ids=["blockdiag", "tridiag"])
def test_lowrank_truncation(tridiagonal):
    rng = np.random.default_rng(4)
    pairs = _pairs(rng, [(8, 2), (2, 9), (3, 2)], 12)  # A_0 is 9x9, G_1 is 9x9
    factors = kfac_factors(pairs)
    cls = BlockTridiagKFAC if tridiagonal else BlockDiagKFAC
    op = cls(factors, 0.2, lowrank_c=1.0, lowrank_threshold=8)
    r = lowrank_rank(9, 1.0)
    assert r == 3
    for full, used in ((factors.A[0], op.factors.A[0]), (factors.G[1], op.factors.G[1])):
        vals, vecs = np.linalg.eigh(full)
        ref = (vecs[:, -r:] * vals[-r:]) @ vecs[:, -r:].T
        assert _rel(used, ref) <= 1e-10
        # damped: leading eigenvalues + sqrt(gamma), the rest of the spectrum exactly the damping
        damped_vals = np.linalg.eigvalsh(used + np.sqrt(0.2) * np.eye(9))
        np.testing.assert_allclose(damped_vals[: 9 - r], np.sqrt(0.2), rtol=0, atol=1e-12)
        np.testing.assert_allclose(damped_vals[9 - r :], vals[-r:] + np.sqrt(0.2), atol=1e-10)
    np.testing.assert_array_equal(op.factors.A[1], factors.A[1])  # 3x3: below threshold
    dense = op.to_dense()
    v = rng.standard_normal((op.shape[0], 2))
    assert _rel(op.matvec(v), dense @ v) <= EXACT
    if tridiagonal:
        completion = _dense_completion(dense, op.offsets)
        assert _rel(op.solve(v), np.linalg.solve(completion, v)) <= SOLVE_RTOL
    else:
        assert _rel(op.solve(v), np.linalg.solve(dense, v)) <= SOLVE_RTOL
    with pytest.raises(ValueError, match="damping"):
        op.solve(v, factor_damping=0.0)
    eig = factor_eig(factors.A[0], lowrank_c=1.0, lowrank_threshold=8)
    assert eig.truncated and eig.vectors.shape == (9, r)
    assert not factor_eig(factors.A[0], lowrank_threshold=None).truncated


def test_damping_zero_solve_with_full_rank_factors():
    rng = np.random.default_rng(6)
    factors = kfac_factors(_pairs(rng, [(2, 2), (2, 2)], 30))
    v = rng.standard_normal(12)
    for cls in (BlockDiagKFAC, BlockTridiagKFAC):
        op = cls(factors, 0.1)
        assert _rel(op.solve(v, 0.0), np.linalg.solve(op.to_dense(0.0), v)) <= 1e-9
    singular = kfac_factors(_pairs(rng, [(2, 2)], 1))
    with pytest.raises(ValueError, match="damping"):
        BlockDiagKFAC(singular, 0.1).solve(np.ones(6), 0.0)


# ----------------------------------------------------------------------------- LinearOperator
@pytest.mark.parametrize("cls", [BlockDiagKFAC, BlockTridiagKFAC])
def test_aslinearoperator(cls):
    rng = np.random.default_rng(7)
    op = cls(kfac_factors(_pairs(rng, [(2, 2), (3, 1), (1, 2)], 4)), 0.2)
    lin, inv = op.aslinearoperator(), op.inverse().aslinearoperator()
    assert isinstance(lin, scipy.sparse.linalg.LinearOperator) and lin.shape == op.shape
    v = rng.standard_normal((op.shape[0], 2))
    np.testing.assert_allclose(lin @ v[:, 0], op.matvec(v[:, 0]), atol=1e-14)
    np.testing.assert_allclose(lin @ v, op.matvec(v), atol=1e-14)
    np.testing.assert_allclose(lin.rmatvec(v[:, 0]), op.matvec(v[:, 0]), atol=1e-14)
    np.testing.assert_allclose(inv @ v, op.solve(v), atol=1e-14)
    np.testing.assert_allclose(op.aslinearoperator(0.0) @ v[:, 0], op.to_dense(0.0) @ v[:, 0], atol=1e-13)


# ----------------------------------------------------------------------------- EMA and state
def test_kfac_ema_is_pure_convex_combination():
    rng = np.random.default_rng(9)
    old = kfac_factors(_pairs(rng, [(2, 2), (1, 3)], 3))
    new = kfac_factors(_pairs(rng, [(2, 2), (1, 3)], 5))
    old_copy = [m.copy() for m in old.A]
    out = kfac_ema(old, new, 0.9)
    for field in KFACFactors._fields:
        for o, n, e in zip(getattr(old, field), getattr(new, field), getattr(out, field), strict=True):
            np.testing.assert_allclose(e, 0.9 * o + 0.1 * n, rtol=0, atol=1e-15)
    for m, c in zip(old.A, old_copy, strict=True):
        np.testing.assert_array_equal(m, c)
    with pytest.raises(ValueError, match="decay"):
        kfac_ema(old, new, 1.5)
    with pytest.raises(ValueError, match="old and new"):
        kfac_ema(old, kfac_factors(_pairs(rng, [(2, 2)], 3)), 0.5)


@pytest.mark.parametrize("tridiagonal", [False, True], ids=["blockdiag", "tridiag"])
def test_kfac_state_refreshes_every_k_steps(tridiagonal):
    rng = np.random.default_rng(10)
    dims = [(2, 3), (3, 2), (2, 2)]
    config = KFACConfig(tridiagonal=tridiagonal, inverse_every=3, decay=0.8)  # 0.5 hides old/new swapped
    state = kfac_init(kfac_factors(_pairs(rng, dims, 4)), config)
    assert state.config == config
    for step in range(1, 7):
        batch = _pairs(rng, dims, 4)
        new = kfac_update(state, kfac_factors(batch), step)
        expected = kfac_ema(state.factors, kfac_factors(batch, cross=tridiagonal), 0.8)
        for got, want in zip(new.factors.A + new.factors.G, expected.A + expected.G, strict=True):
            np.testing.assert_allclose(got, want, rtol=0, atol=1e-15)
        if step % 3:
            assert new.cache is state.cache and new.inverse_factors is state.inverse_factors
        else:
            assert new.cache is not state.cache and new.inverse_factors is new.factors
        op = kfac_operator(new)
        fresh = (BlockTridiagKFAC if tridiagonal else BlockDiagKFAC)(new.inverse_factors, 0.1)
        v = rng.standard_normal(op.shape[0])
        assert _rel(op.solve(v), fresh.solve(v)) <= EXACT * 10
        assert _rel(op.to_dense(), fresh.to_dense()) <= EXACT
        state = new


def test_kfac_state_on_chain_pairs():
    """End to end on the VAE chain: K-FAC state from Eq. (16) pairs, across the stochastic layer."""
    chain = Chain.from_sizes((4, 3, 4), (2, 3, 4))
    rng = np.random.default_rng(12)
    eta = chain.init(rng)
    x, eps = (rng.random((5, 4)) < 0.5) * 1.0, rng.standard_normal((5, 2))
    _, pairs, w = _chain_fhat(chain, eta, x, eps, 2, rng)
    state = kfac_init(kfac_factors(pairs, w), KFACConfig(inverse_every=1))
    op = kfac_operator(state)
    assert op.shape == (chain.num_params, chain.num_params)
    g = rng.standard_normal(chain.num_params)
    completion = _dense_completion(op.to_dense(), op.offsets)
    assert _rel(op.solve(g), np.linalg.solve(completion, g)) <= SOLVE_RTOL


# ----------------------------------------------------------------------------- bad input
def test_bad_inputs_name_the_argument():
    rng = np.random.default_rng(13)
    pairs = _pairs(rng, [(2, 2), (2, 1)], 3)
    with pytest.raises(ValueError, match=r"pairs\[1\]"):
        kfac_factors([pairs[0], (pairs[1][0][:2], pairs[1][1][:2])])
    with pytest.raises(ValueError, match=r"pairs\[0\]\[1\]"):
        kfac_factors([(pairs[0][0], np.full((3, 2), np.nan))])
    with pytest.raises(ValueError, match="weights"):
        kfac_factors(pairs, np.array([1.0, -1.0, 1.0]))
    with pytest.raises(ValueError, match="weights"):
        kfac_factors(pairs, np.ones(2))
    with pytest.raises(ValueError, match="weights"):
        kfac_factors(pairs, np.array([1.0, np.nan, 1.0]))
    with pytest.raises(ValueError, match="pairs"):
        kfac_factors([])
    op = BlockTridiagKFAC(kfac_factors(pairs), 0.1)
    with pytest.raises(ValueError, match="v"):
        op.matvec(np.ones(op.shape[0] + 1))
    with pytest.raises(ValueError, match="v"):
        op.solve(np.full(op.shape[0], np.nan))
    with pytest.raises(ValueError, match="factor_damping"):
        op.solve(np.ones(op.shape[0]), -1.0)
    with pytest.raises(ValueError, match="factor_damping"):
        BlockDiagKFAC(kfac_factors(pairs), -0.1)
    with pytest.raises(ValueError, match="factors"):
        BlockTridiagKFAC(kfac_factors(pairs, cross=False))
    bad = kfac_factors(pairs)._replace(A_cross=(np.zeros((2, 2)),))
    with pytest.raises(ValueError, match=r"factors.A_cross\[0\]"):
        BlockTridiagKFAC(bad)
    f = kfac_factors(pairs)
    with pytest.raises(ValueError, match="decay"):
        kfac_init(f, KFACConfig(decay=2.0))
    with pytest.raises(ValueError, match="inverse_every"):
        kfac_init(f, KFACConfig(inverse_every=0))
    with pytest.raises(ValueError, match="factor_damping"):
        kfac_init(f, KFACConfig(factor_damping=-1.0))
    with pytest.raises(ValueError, match="step"):
        kfac_update(kfac_init(f), f, -1)
    with pytest.raises(TypeError, match="config"):
        kfac_init(f, {"decay": 0.5})
    with pytest.raises(TypeError, match="state"):
        kfac_update(None, f, 1)
    with pytest.raises(TypeError, match="factors must be KFACFactors"):
        kfac_update(kfac_init(f), pairs, 1)


def test_lowrank_both_sides_of_one_sigma():
    """A_0 and G_0 both truncated: the low-rank Kronecker-difference solve vs a dense solve."""
    rng = np.random.default_rng(14)
    pairs = _pairs(rng, [(8, 9), (2, 3), (3, 9)], 15)  # A_0, G_0, G_2 are 9x9
    op = BlockTridiagKFAC(kfac_factors(pairs), 0.05, lowrank_c=1.0, lowrank_threshold=8)
    blocks = op.blocks
    assert blocks[0].eig_A.truncated and blocks[0].eig_G.truncated and blocks[2].eig_G.truncated
    assert op.solver(0.05).sigma[0].plain is not None
    v = rng.standard_normal((op.shape[0], 3))
    completion = _dense_completion(op.to_dense(), op.offsets)
    assert _rel(op.solve(v), np.linalg.solve(completion, v)) <= SOLVE_RTOL


@pytest.mark.parametrize("tridiagonal", [False, True], ids=["blockdiag", "tridiag"])
def test_kfac_update_is_ema_and_blockdiag_drops_cross_factors(tridiagonal):
    """kfac_update(state, f, step) equals kfac_init on the EMA'd factors when it refreshes."""
    rng = np.random.default_rng(15)
    dims = [(2, 3), (3, 2)]
    first, second = kfac_factors(_pairs(rng, dims, 4)), kfac_factors(_pairs(rng, dims, 5))
    config = KFACConfig(tridiagonal=tridiagonal, inverse_every=1, decay=0.7)
    a = kfac_update(kfac_init(first, config), second, 1)  # cross factors given either way
    b = kfac_init(kfac_ema(first, second, 0.7), config)
    assert len(a.factors.A_cross) == (1 if tridiagonal else 0)
    for field in KFACFactors._fields:
        for x, y in zip(getattr(a.factors, field), getattr(b.factors, field), strict=True):
            np.testing.assert_array_equal(x, y)
    v = rng.standard_normal(kfac_operator(a).shape[0])
    np.testing.assert_array_equal(kfac_operator(a).solve(v), kfac_operator(b).solve(v))


@pytest.mark.parametrize("tridiagonal", [False, True], ids=["blockdiag", "tridiag"])
def test_default_config_never_truncates_a_wide_layer(tridiagonal):
    """A 600-wide layer (A is 601 x 601): the default operator is the exact Kronecker build.

    The old default lowrank_threshold=512 truncated A here and moved to_dense by about 5 %.
    """
    rng = np.random.default_rng(16)
    pairs = _pairs(rng, [(600, 2), (2, 3)], 700)
    w = rng.uniform(0.2, 1.0, 700)
    factors = kfac_factors(pairs, w)
    op = kfac_operator(kfac_init(factors, KFACConfig(tridiagonal=tridiagonal, factor_damping=0.3)))
    assert not any(b.eig_A.truncated or b.eig_G.truncated for b in op.blocks)
    r = np.sqrt(0.3)
    a0, g0 = factors.A[0] + r * np.eye(601), factors.G[0] + r * np.eye(2)
    a1, g1 = factors.A[1] + r * np.eye(3), factors.G[1] + r * np.eye(3)
    exact = scipy.linalg.block_diag(np.kron(a0, g0), np.kron(a1, g1))
    if tridiagonal:
        cross = np.kron(factors.A_cross[0], factors.G_cross[0])
        exact[:1202, 1202:] = cross
        exact[1202:, :1202] = cross.T
    np.testing.assert_array_equal(op.to_dense(), exact)
    v = rng.standard_normal(op.shape[0])
    assert _rel(op.solve(v), np.linalg.solve(exact, v)) <= SOLVE_RTOL  # two layers: exact


# ---- validation (issue 11)


def test_asymmetric_factors_and_block_arguments_are_rejected():
    from refvpng.curvature.kfac.linalg import factor_eig, kron_diff_solve
    from refvpng.curvature.kfac.operators import KroneckerBlock

    asym = np.array([[2.0, 0.5], [0.0, 2.0]])
    with pytest.raises(ValueError, match="m must be symmetric"):
        factor_eig(asym)
    eye = np.eye(2)
    for name in "abcd":
        args = dict(a=2 * eye, b=2 * eye, c=0.1 * eye, d=0.1 * eye)
        args[name] = asym if name in "ab" else 0.1 * asym
        with pytest.raises(ValueError, match=f"{name} must be symmetric"):
            kron_diff_solve(**args, v=np.ones(4))
    with pytest.raises(ValueError, match="c and d are too large"):
        kron_diff_solve(eye, eye, 2 * eye, 2 * eye, np.ones(4))
    blk = KroneckerBlock(eye, 2 * eye, factor_eig(eye), factor_eig(2 * eye))
    with pytest.raises(ValueError, match="gamma must be finite and >= 0"):
        blk.shifts(-1.0)
    with pytest.raises(ValueError, match=r"x must have shape \(\.\.\., 2, 2\)"):
        blk.solve(np.ones((3, 2)), 0.1)
    with pytest.raises(TypeError, match="pairs must be a non-empty sequence"):
        kfac_factors(None)


def test_damping_below_the_rounding_of_a_huge_factor_is_a_floating_point_error():
    """Factors of 1e300 with damping 0.1: eigh's rounding (~1e284) swamps the damping (issue 11).

    A genuinely too-small damping (0 on a singular factor) stays the ValueError naming it.
    """
    rng = np.random.default_rng(12)
    a = np.c_[rng.standard_normal((6, 2)), np.ones(6)]
    g = rng.standard_normal((6, 3))
    g[0] *= 1e150
    f = kfac_factors(((a, g),), np.full(6, 0.3))
    op = BlockDiagKFAC(f, factor_damping=0.1, pi_heuristic=False)
    with pytest.raises(FloatingPointError, match="factor_damping 0.316 is below the rounding error"):
        op.solve(np.ones(9))
    singular = kfac_factors(((a[:1], g[:1] * 1e-150),), np.ones(1))
    with pytest.raises(ValueError, match="factor_damping is too small"):
        BlockDiagKFAC(singular, factor_damping=0.0, pi_heuristic=False).solve(np.ones(9))
