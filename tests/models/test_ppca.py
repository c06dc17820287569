"""Tests for refvpng.models.ppca: the spec's packing and the closed forms against autograd.

The generic Monte Carlo and importance-sampling estimators are tested against these closed forms
in tests/curvature/test_latent_fisher.py.
"""

from __future__ import annotations

import autograd.numpy as anp
import numpy as np
import pytest
from autograd import grad, hessian, jacobian
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import multivariate_normal

from refvpng.curvature.latent_fisher import draw_joint, joint_score, log_joint
from refvpng.models import ppca
from refvpng.models.ppca import PPCASpec
from refvpng.testing.mc import assert_mc_close
from refvpng.testing.tolerances import AUTOGRAD, EXACT

# --------------------------------------------------------------------------------------------
# cases as data
# --------------------------------------------------------------------------------------------

CASES = [
    ("ppca-d3k1-log", PPCASpec(3, 1, "iso", "log"), 0),
    ("ppca-d4k2-var", PPCASpec(4, 2, "iso", "var"), 1),
    ("fa-d3k2-log", PPCASpec(3, 2, "diag", "log"), 2),
    ("fa-d4k2-var", PPCASpec(4, 2, "diag", "var"), 3),
    ("ppca-d2k2-log", PPCASpec(2, 2, "iso", "log"), 4),
    ("fa-d1k1-var", PPCASpec(1, 1, "diag", "var"), 5),
]


def make_theta(spec: PPCASpec, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((spec.d, spec.k))
    b = rng.standard_normal(spec.d)
    return spec.pack(W, b, rng.uniform(0.3, 1.5, size=spec.n_noise))


def draw_x(spec, theta, n, seed):
    return draw_joint(np.random.default_rng(seed), ppca.make_model(spec), theta, n, 1)[0][0]


@pytest.fixture(params=CASES, ids=[c[0] for c in CASES])
def case(request):
    _, spec, seed = request.param
    return spec, make_theta(spec, seed)


def rel_err(a, b) -> float:
    a, b = np.asarray(a), np.asarray(b)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1.0))


# --------------------------------------------------------------------------------------------
# autograd oracles, written independently of the package (column-major vec W)
# --------------------------------------------------------------------------------------------


def a_unpack(th, spec):
    d, k = spec.d, spec.k
    W = anp.reshape(th[: d * k], (k, d)).T  # column-major
    b = th[d * k : d * k + d]
    eta = th[d * k + d :]
    psi = anp.exp(eta) if spec.noise_coord == "log" else eta
    psi_d = psi[0] * anp.ones(d) if spec.noise == "iso" else psi
    return W, b, psi_d


def a_log_joint(th, x, z, spec):
    W, b, psi_d = a_unpack(th, spec)
    r = x - anp.dot(z, W.T) - b
    return -0.5 * (spec.k * anp.log(2 * anp.pi) + anp.sum(z**2, axis=1)) - 0.5 * (
        spec.d * anp.log(2 * anp.pi) + anp.sum(anp.log(psi_d)) + anp.sum(r**2 / psi_d, 1)
    )


def a_log_marginal(th, x, spec):
    W, b, psi_d = a_unpack(th, spec)
    C = anp.dot(W, W.T) + anp.diag(psi_d)
    y = x - b
    sol = anp.linalg.solve(C, y.T)
    _, logdet = anp.linalg.slogdet(C)
    return -0.5 * (spec.d * anp.log(2 * anp.pi) + logdet + anp.sum(y.T * sol, axis=0))


def expected_log_joint(th_p, th, spec):
    """E_{p(x,z; th)}[log p(x, z; th_p)] in closed form (z-prior term dropped: no theta)."""
    W, b, psi_d = a_unpack(th, spec)
    Wp, bp, psip = a_unpack(th_p, spec)
    err2 = anp.sum((W - Wp) ** 2, axis=1) + (b - bp) ** 2 + psi_d
    return -0.5 * (spec.d * anp.log(2 * anp.pi) + anp.sum(anp.log(psip)) + anp.sum(err2 / psip))


def expected_log_marginal(th_p, th, spec):
    """Gaussian cross-entropy E_{N(b, C)}[log N(x; b', C')]."""
    W, b, psi_d = a_unpack(th, spec)
    Wp, bp, psip = a_unpack(th_p, spec)
    C = anp.dot(W, W.T) + anp.diag(psi_d)
    Cpi = anp.linalg.inv(anp.dot(Wp, Wp.T) + anp.diag(psip))
    db = b - bp
    _, logdet = anp.linalg.slogdet(anp.dot(Wp, Wp.T) + anp.diag(psip))
    return -0.5 * (
        spec.d * anp.log(2 * anp.pi) + logdet + anp.trace(anp.dot(Cpi, C)) + anp.dot(db, anp.dot(Cpi, db))
    )


def a_posterior(th, x, spec):
    W, b, psi_d = a_unpack(th, spec)
    M = anp.eye(spec.k) + anp.dot(W.T, W / psi_d[:, None])
    Sigma = anp.linalg.inv(M)
    return anp.dot(x - b, anp.dot(Sigma, (W / psi_d[:, None]).T).T), Sigma


def expected_log_posterior(th_p, th, x, spec):
    """Mean over rows of E_{p(z | x_i; th)}[log p(z | x_i; th_p)] (Gaussian cross-entropy)."""
    mu, Sigma = a_posterior(th, x, spec)
    mup, Sigmap = a_posterior(th_p, x, spec)
    Spi = anp.linalg.inv(Sigmap)
    dm = mu - mup
    _, logdet = anp.linalg.slogdet(Sigmap)
    quad = anp.mean(anp.sum(anp.dot(dm, Spi) * dm, axis=1))
    return -0.5 * (spec.k * anp.log(2 * anp.pi) + logdet + anp.trace(anp.dot(Spi, Sigma)) + quad)


def neg_hessian_at(f, th):
    return -hessian(lambda tp: f(tp, th))(th)


# --------------------------------------------------------------------------------------------
# packing, densities, the LatentModel
# --------------------------------------------------------------------------------------------


def test_pack_column_major_slices_and_roundtrip(case):
    spec, th = case
    W, b, psi = spec.unpack(th)
    assert W.shape == (spec.d, spec.k)
    for a in range(spec.d):
        for c in range(spec.k):
            assert th[spec.slice("W")][c * spec.d + a] == W[a, c]
    np.testing.assert_array_equal(th[spec.slice("b")], b)
    eta = th[spec.slice("noise")]
    np.testing.assert_allclose(np.log(psi) if spec.noise_coord == "log" else psi, eta, rtol=EXACT)
    np.testing.assert_allclose(spec.pack(W, b, psi), th, rtol=EXACT, atol=EXACT)
    assert th.shape == (spec.n_params,) and spec.slice("noise").stop == spec.n_params


def test_model_log_joint_and_log_marginal_against_scipy(case):
    """The LatentModel's log joint (generic) and the closed-form log marginal are the model."""
    spec, th = case
    model = ppca.make_model(spec)
    W, b, psi = spec.unpack(th)
    psi_d = np.broadcast_to(psi, (spec.d,))
    x, z = draw_joint(np.random.default_rng(1), model, th, 6, 1)
    x, z = x[0], z[0]
    C = W @ W.T + np.diag(psi_d)
    ref_m = multivariate_normal(b, C).logpdf(x).reshape(-1)
    np.testing.assert_allclose(ppca.log_marginal_closed(spec, th, x), ref_m, rtol=EXACT * 100)
    ref_j = multivariate_normal(np.zeros(spec.k), np.eye(spec.k)).logpdf(z).reshape(-1) + np.array(
        [multivariate_normal(W @ zi + b, np.diag(psi_d)).logpdf(xi) for xi, zi in zip(x, z, strict=True)]
    )
    np.testing.assert_allclose(log_joint(model, th, x, z), ref_j, rtol=EXACT * 100)
    assert ppca.log_marginal_closed(spec, th, x[0]) == pytest.approx(ref_m[0], rel=EXACT * 100)


def test_posterior_is_bayes_rule(case):
    """log p(x, z) - log p(z | x) = log p(x) for every z."""
    spec, th = case
    x = draw_x(spec, th, 4, 2)
    z = np.random.default_rng(3).standard_normal((4, spec.k))
    mean, cov = ppca.posterior_closed(spec, th, x)
    log_post = np.array([multivariate_normal(m, cov).logpdf(zi) for m, zi in zip(mean, z, strict=True)])
    np.testing.assert_allclose(
        a_log_joint(th, x, z, spec) - log_post, ppca.log_marginal_closed(spec, th, x), rtol=1e-10
    )
    W, b, psi = spec.unpack(th)
    C = W @ W.T + np.diag(np.broadcast_to(psi, (spec.d,)))
    np.testing.assert_allclose(mean, (x - b) @ np.linalg.solve(C, W), rtol=1e-10, atol=EXACT)


def test_scores_against_autograd(case):
    spec, th = case
    x = draw_x(spec, th, 5, 3)
    z = np.random.default_rng(4).standard_normal((5, spec.k))
    sj = jacobian(lambda t: a_log_joint(t, x, z, spec))(th)
    sm = jacobian(lambda t: a_log_marginal(t, x, spec))(th)
    assert rel_err(joint_score(ppca.make_model(spec), th, x, z), sj) < AUTOGRAD
    assert rel_err(ppca.marginal_score_closed(spec, th, x), sm) < AUTOGRAD
    assert rel_err(ppca.marginal_score_closed(spec, th, x[0]), sm[0]) < AUTOGRAD


# --------------------------------------------------------------------------------------------
# closed-form Fishers against autograd
# --------------------------------------------------------------------------------------------


def test_joint_fisher_against_autograd(case):
    spec, th = case
    oracle = neg_hessian_at(lambda tp, t: expected_log_joint(tp, t, spec), th)
    F = ppca.joint_fisher_closed(spec, th)
    assert rel_err(F, oracle) < AUTOGRAD
    assert np.count_nonzero(F - np.diag(np.diag(F))) == 0  # diagonal


def test_marginal_fisher_against_autograd(case):
    spec, th = case
    oracle = neg_hessian_at(lambda tp, t: expected_log_marginal(tp, t, spec), th)
    assert rel_err(ppca.marginal_fisher_closed(spec, th), oracle) < AUTOGRAD


def test_posterior_fisher_at_data_against_autograd(case):
    spec, th = case
    x = draw_x(spec, th, 7, 4)
    oracle = neg_hessian_at(lambda tp, t: expected_log_posterior(tp, t, x, spec), th)
    assert rel_err(ppca.missing_information_closed(spec, th, x), oracle) < AUTOGRAD


def test_missing_information_principle(case):
    spec, th = case
    Fj = ppca.joint_fisher_closed(spec, th)
    Fm = ppca.marginal_fisher_closed(spec, th)
    assert rel_err(Fj - Fm, ppca.missing_information_closed(spec, th)) < 1e-10


def test_noise_coordinates_related_by_jacobian(case):
    """F_log = D F_var D with D = diag(1, .., 1, psi)."""
    spec, th = case
    W, b, psi = spec.unpack(th)
    s_log = PPCASpec(spec.d, spec.k, spec.noise, "log")
    s_var = PPCASpec(spec.d, spec.k, spec.noise, "var")
    D = np.concatenate([np.ones(spec.d * spec.k + spec.d), psi])
    for fn in (ppca.joint_fisher_closed, ppca.marginal_fisher_closed, ppca.missing_information_closed):
        F_log = fn(s_log, s_log.pack(W, b, psi))
        F_var = fn(s_var, s_var.pack(W, b, psi))
        assert rel_err(F_log, D[:, None] * F_var * D[None, :]) < EXACT * 10


def test_marginal_fisher_singular_along_rotations():
    """delta W = W Omega (Omega antisymmetric) leaves C unchanged: a null vector of F_marg only."""
    _, spec, seed = CASES[1]
    th = make_theta(spec, seed)
    W, _, _ = spec.unpack(th)
    v = np.zeros_like(th)
    v[spec.slice("W")] = (W @ np.array([[0.0, 1.0], [-1.0, 0.0]])).ravel(order="F")
    Fm = ppca.marginal_fisher_closed(spec, th)
    Fj = ppca.joint_fisher_closed(spec, th)
    assert np.max(np.abs(Fm @ v)) < EXACT * 10 * np.max(np.abs(Fm)) * np.max(np.abs(v))
    assert v @ Fj @ v > 0.1 * v @ v * np.min(np.diag(Fj))
    assert np.min(np.linalg.eigvalsh(Fj)) > 0


def test_iso_var_marginal_fisher_familiar_blocks():
    """For noise='iso', noise_coord='var': F_{W psi} = vec C^{-2} W and F_{psi psi} = tr(C^{-2}) / 2."""
    _, spec, seed = CASES[1]
    th = make_theta(spec, seed)
    W, _, psi = spec.unpack(th)
    Ci = np.linalg.inv(W @ W.T + psi[0] * np.eye(spec.d))
    F = ppca.marginal_fisher_closed(spec, th)
    iW, ib = spec.slice("W"), spec.slice("b")
    np.testing.assert_allclose(F[iW, -1], (Ci @ Ci @ W).ravel(order="F"), rtol=1e-10)
    assert F[-1, -1] == pytest.approx(0.5 * np.trace(Ci @ Ci), rel=1e-10)
    np.testing.assert_allclose(F[ib, ib], Ci, rtol=1e-10)


def test_marginal_fisher_w_block_kronecker_form(case):
    """W block = H kron A + (G^T kron G) K, the commutation K vec(X) = vec(X^T), column-major."""
    spec, th = case
    W, _, psi = spec.unpack(th)
    d, k = spec.d, spec.k
    A = np.linalg.inv(W @ W.T + np.diag(np.broadcast_to(psi, (d,))))
    G, H = A @ W, W.T @ A @ W
    K = np.zeros((d * k, d * k))  # vec_F(X) -> vec_F(X^T), X of shape (d, k)
    K[np.arange(d * k), np.arange(d * k).reshape(d, k, order="F").T.ravel(order="F")] = 1.0
    Xf = np.random.default_rng(0).standard_normal((d, k))
    np.testing.assert_array_equal(K @ Xf.ravel(order="F"), Xf.T.ravel(order="F"))
    F = ppca.marginal_fisher_closed(spec, th)
    iW = spec.slice("W")
    assert rel_err(F[iW, iW], np.kron(H, A) + np.kron(G.T, G) @ K) < 1e-10


def test_marginal_score_outer_products_average_to_marginal_fisher():
    """The closed-form score and Fisher agree: E_{p(x)}[s s^T] = F_marg within k SE."""
    for _, spec, seed in (CASES[1], CASES[2]):
        th = make_theta(spec, seed)
        s = ppca.marginal_score_closed(spec, th, draw_x(spec, th, 20_000, 11))
        assert_mc_close(s[:, :, None] * s[:, None, :], ppca.marginal_fisher_closed(spec, th))


def test_posterior_score_covariance_is_missing_information_at_x():
    """Cov_{p(z|x)}(joint score) at a fixed x equals the posterior Fisher at x (Fisher's identity)."""
    for _, spec, seed in (CASES[1], CASES[2]):
        th = make_theta(spec, seed)
        x = draw_x(spec, th, 1, 12)
        mean, cov = ppca.posterior_closed(spec, th, x[0])
        S = 20_000
        z = mean + np.random.default_rng(13).standard_normal((S, spec.k)) @ np.linalg.cholesky(cov).T
        s = joint_score(ppca.make_model(spec), th, np.repeat(x, S, axis=0), z)
        s = s - ppca.marginal_score_closed(spec, th, x[0])
        assert_mc_close(s[:, :, None] * s[:, None, :], ppca.missing_information_closed(spec, th, x))
        assert_mc_close(s, 0.0)


# --------------------------------------------------------------------------------------------
# maximum likelihood
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mle_data():
    spec = PPCASpec(5, 2)
    return draw_x(spec, make_theta(spec, 20), 300, 21)


@pytest.mark.parametrize("coord", ["log", "var"])
def test_mle_attains_closed_form_max_and_is_stationary(mle_data, coord):
    x = mle_data
    spec = PPCASpec(5, 2, "iso", coord)
    th = ppca.mle_closed(spec, x)
    ll = ppca.log_marginal_closed(spec, th, x).mean()
    assert abs(ll - ppca.max_loglik_closed(spec, x)) < 1e-10
    g = grad(lambda t: anp.mean(a_log_marginal(t, x, spec)))(th)
    assert np.max(np.abs(g)) < AUTOGRAD
    # perturbing W lowers the likelihood; rotating W does not change it
    W, b, psi = spec.unpack(th)
    rng = np.random.default_rng(22)
    for _ in range(5):
        Wp = W + 0.05 * rng.standard_normal(W.shape)
        assert ppca.log_marginal_closed(spec, spec.pack(Wp, b, psi), x).mean() < ll
    R, _ = np.linalg.qr(rng.standard_normal((2, 2)))
    rotated = ppca.log_marginal_closed(spec, spec.pack(W @ R, b, psi), x).mean()
    assert rotated == pytest.approx(ll, rel=EXACT * 100)


def test_mle_subspace_is_top_eigenvectors(mle_data):
    x = mle_data
    spec = PPCASpec(5, 2)
    W, b, psi = spec.unpack(ppca.mle_closed(spec, x))
    np.testing.assert_allclose(b, x.mean(0), rtol=EXACT)
    lam, U = np.linalg.eigh(np.cov(x.T, bias=True))
    assert np.max(ppca.principal_angles(W, U[:, -2:])) < 1e-10
    assert psi[0] == pytest.approx(lam[:3].mean(), rel=EXACT * 100)
    # rotation invariance; known angles 0 and 45 degrees, smallest first
    assert np.max(ppca.principal_angles(W, W @ np.array([[0.0, 1.0], [1.0, 0.0]]))) < 1e-10
    V = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    np.testing.assert_allclose(ppca.principal_angles(np.eye(3)[:, :2], V), [0.0, np.pi / 4], atol=1e-12)


def test_max_loglik_increases_with_k(mle_data):
    vals = [ppca.max_loglik_closed(PPCASpec(5, k), mle_data) for k in range(1, 5)]
    assert all(a <= b + EXACT for a, b in zip(vals, vals[1:], strict=False))


# --------------------------------------------------------------------------------------------
# hypothesis invariants
# --------------------------------------------------------------------------------------------


@st.composite
def models(draw):
    d = draw(st.integers(1, 4))
    k = draw(st.integers(1, d))
    spec = PPCASpec(d, k, draw(st.sampled_from(ppca.NOISES)), draw(st.sampled_from(ppca.NOISE_COORDS)))
    fl = st.floats(-2.0, 2.0, allow_nan=False, allow_infinity=False)
    W = np.array(draw(st.lists(fl, min_size=d * k, max_size=d * k))).reshape(d, k)
    b = np.array(draw(st.lists(fl, min_size=d, max_size=d)))
    m = spec.n_noise
    log_psi = np.array(draw(st.lists(st.floats(-1.5, 1.5), min_size=m, max_size=m)))
    return spec, spec.pack(W, b, np.exp(log_psi))


def assert_psd(F, scale):
    np.testing.assert_array_equal(F, F.T)
    assert np.min(np.linalg.eigvalsh(F)) >= -1e-10 * scale


@settings(deadline=None, max_examples=60)
@given(models())
def test_fishers_symmetric_psd_and_ordered(model):
    spec, th = model
    Fj = ppca.joint_fisher_closed(spec, th)
    Fm = ppca.marginal_fisher_closed(spec, th)
    Im = ppca.missing_information_closed(spec, th)
    scale = max(np.max(np.abs(Fj)), 1.0)
    for F in (Fj, Fm, Im):
        assert_psd(F, scale)
    assert np.min(np.linalg.eigvalsh(Fj - Fm)) >= -1e-10 * scale  # joint dominates marginal
    assert rel_err(Fj - Fm, Im) < 1e-10


# --------------------------------------------------------------------------------------------
# bad inputs
# --------------------------------------------------------------------------------------------

_S = CASES[1][1]  # d=4, k=2, iso, var
_TH = make_theta(_S, CASES[1][2])
_X = draw_x(_S, _TH, 3, 0)
_NAN_TH = np.where(np.arange(_TH.size) == 0, np.nan, _TH)
_NEG_TH = np.where(np.arange(_TH.size) == _TH.size - 1, -0.5, _TH)
_ZERO_TH = np.where(np.arange(_TH.size) == _TH.size - 1, 0.0, _TH)
_NAN_X = np.where(np.arange(_X.size).reshape(_X.shape) == 0, np.nan, _X)
_S3 = PPCASpec(3, 1)

BAD_INPUTS = [
    ("theta-length", lambda: ppca.joint_fisher_closed(_S, _TH[:-1]), "^theta must have length"),
    ("theta-length-data", lambda: ppca.log_marginal_closed(_S, _TH[:-1], _X), "^theta must have"),
    ("theta-nan", lambda: ppca.marginal_fisher_closed(_S, _NAN_TH), "^theta contains NaN"),
    ("theta-neg-var", lambda: ppca.log_marginal_closed(_S, _NEG_TH, _X), "^theta: noise variance"),
    ("theta-zero-var", lambda: ppca.joint_fisher_closed(_S, _ZERO_TH), "^theta: noise variance"),
    ("pack-psi-neg", lambda: _S3.pack(np.ones((3, 1)), np.zeros(3), -1.0), "^psi must be > 0"),
    (
        "pack-psi-count",
        lambda: PPCASpec(3, 1, "diag").pack(np.ones((3, 1)), np.zeros(3), [1.0, 1.0]),
        "^psi must have 3 entries",
    ),
    ("pack-b-shape", lambda: _S3.pack(np.ones((3, 1)), np.zeros(2), 1.0), "^b must have shape"),
    ("pack-W-shape", lambda: _S3.pack(np.ones((3, 2)), np.zeros(3), 1.0), "^W must have shape"),
    ("k-gt-d", lambda: PPCASpec(3, 4), "^k must be <= d"),
    ("k-zero", lambda: PPCASpec(3, 0), "^k must be >= 1"),
    ("noise", lambda: PPCASpec(4, 2, noise="full"), "^noise must be"),
    ("noise-coord", lambda: PPCASpec(4, 2, noise_coord="softplus"), "^noise_coord must be"),
    ("slice-name", lambda: _S.slice("psi"), "^name must be one of"),
    ("x-columns", lambda: ppca.log_marginal_closed(_S, _TH, _X[:, :3]), "^x must have 4 columns"),
    ("x-nan", lambda: ppca.posterior_closed(_S, _TH, _NAN_X), "^x contains NaN"),
    ("score-x", lambda: ppca.marginal_score_closed(_S, _TH, _X[:, :2]), "^x must have 4 columns"),
    ("missing-info-x", lambda: ppca.missing_information_closed(_S, _TH, _X[:, :2]), "^x must have 4"),
    ("mle-k", lambda: ppca.mle_closed(PPCASpec(4, 4), _X), "^spec.k must be < d"),
    ("mle-diag", lambda: ppca.mle_closed(PPCASpec(4, 2, "diag"), _X), "^spec must have noise='iso'"),
    ("mle-columns", lambda: ppca.mle_closed(_S3, _X), "^x must have 3 columns"),
    ("mle-one-row", lambda: ppca.mle_closed(_S, _X[:1]), "^x must have at least 2 rows"),
    ("mle-degenerate", lambda: ppca.mle_closed(_S3, np.ones((5, 3))), "^x: the discarded"),
    ("angles-rows", lambda: ppca.principal_angles(np.eye(3), np.eye(4)), "^U and V must have"),
    ("eta-length", lambda: ppca.unpack_eta(_S, np.zeros(5)), "^eta must have length"),
    ("encoder-A", lambda: ppca.pack_encoder(_S, np.zeros((4, 2)), [0, 0], [0, 0]), "^A must have"),
]


@pytest.mark.parametrize("fn, pattern", [b[1:] for b in BAD_INPUTS], ids=[b[0] for b in BAD_INPUTS])
def test_bad_inputs(fn, pattern):
    with pytest.raises(ValueError, match=pattern):
        fn()


def test_bad_input_types():
    with pytest.raises(TypeError, match="^d must be an integer"):
        PPCASpec(4.0, 2)
    with pytest.raises(TypeError, match="^spec must be a PPCASpec"):
        ppca.joint_fisher_closed((4, 2), _TH)
    with pytest.raises(TypeError, match="^spec must be a PPCASpec"):
        ppca.make_model((4, 2))
