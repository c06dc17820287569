"""Tests for refvpng.models.ppca: closed forms against autograd, Monte Carlo within k SE."""

from __future__ import annotations

from dataclasses import dataclass

import autograd.numpy as anp
import numpy as np
import pytest
from autograd import grad, hessian, jacobian
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import multivariate_normal

from refvpng.models import ppca
from refvpng.testing.mc import assert_mc_close
from refvpng.testing.tolerances import AUTOGRAD, EXACT, MC_K

# --------------------------------------------------------------------------------------------
# cases as data
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    name: str
    d: int
    k: int
    noise: str
    noise_coord: str
    seed: int

    @property
    def kw(self) -> dict:
        return {"noise": self.noise, "noise_coord": self.noise_coord}

    @property
    def dims(self) -> dict:
        return {"d": self.d, "k": self.k, **self.kw}

    def theta(self) -> np.ndarray:
        rng = np.random.default_rng(self.seed)
        W = rng.standard_normal((self.d, self.k))
        b = rng.standard_normal(self.d)
        m = 1 if self.noise == "iso" else self.d
        psi = rng.uniform(0.3, 1.5, size=m)
        return ppca.pack(W, b, psi, **self.kw)


CASES = [
    Case("ppca-d3k1-log", 3, 1, "iso", "log", 0),
    Case("ppca-d4k2-var", 4, 2, "iso", "var", 1),
    Case("fa-d3k2-log", 3, 2, "diag", "log", 2),
    Case("fa-d4k2-var", 4, 2, "diag", "var", 3),
    Case("ppca-d2k2-log", 2, 2, "iso", "log", 4),
    Case("fa-d1k1-var", 1, 1, "diag", "var", 5),
]


@pytest.fixture(params=CASES, ids=[c.name for c in CASES])
def case(request) -> Case:
    return request.param


def rel_err(a, b) -> float:
    a, b = np.asarray(a), np.asarray(b)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1.0))


# --------------------------------------------------------------------------------------------
# autograd oracles, written independently of the module
# --------------------------------------------------------------------------------------------


def a_unpack(th, c: Case):
    d, k = c.d, c.k
    W = anp.reshape(th[: d * k], (d, k))  # row-major
    b = th[d * k : d * k + d]
    eta = th[d * k + d :]
    psi = anp.exp(eta) if c.noise_coord == "log" else eta
    psi_d = psi[0] * anp.ones(d) if c.noise == "iso" else psi
    return W, b, psi_d


def a_log_joint(th, x, z, c: Case):
    W, b, psi_d = a_unpack(th, c)
    r = x - anp.dot(z, W.T) - b
    return -0.5 * (c.k * anp.log(2 * anp.pi) + anp.sum(z**2, axis=1)) - 0.5 * (
        c.d * anp.log(2 * anp.pi) + anp.sum(anp.log(psi_d)) + anp.sum(r**2 / psi_d, 1)
    )


def a_log_marginal(th, x, c: Case):
    W, b, psi_d = a_unpack(th, c)
    C = anp.dot(W, W.T) + anp.diag(psi_d)
    y = x - b
    sol = anp.linalg.solve(C, y.T)
    _, logdet = anp.linalg.slogdet(C)
    return -0.5 * (c.d * anp.log(2 * anp.pi) + logdet + anp.sum(y.T * sol, axis=0))


def expected_log_joint(th_p, th, c: Case):
    """E_{p(x,z; th)}[log p(x, z; th_p)] in closed form (z-prior term dropped: no theta)."""
    W, b, psi_d = a_unpack(th, c)
    Wp, bp, psip = a_unpack(th_p, c)
    # r' = (W - W')z + (b - b') + eps: diag of E[r' r'^T]
    err2 = anp.sum((W - Wp) ** 2, axis=1) + (b - bp) ** 2 + psi_d
    return -0.5 * (c.d * anp.log(2 * anp.pi) + anp.sum(anp.log(psip)) + anp.sum(err2 / psip))


def expected_log_marginal(th_p, th, c: Case):
    """Gaussian cross-entropy E_{N(b, C)}[log N(x; b', C')]."""
    W, b, psi_d = a_unpack(th, c)
    Wp, bp, psip = a_unpack(th_p, c)
    C = anp.dot(W, W.T) + anp.diag(psi_d)
    Cp = anp.dot(Wp, Wp.T) + anp.diag(psip)
    Cpi = anp.linalg.inv(Cp)
    db = b - bp
    _, logdet = anp.linalg.slogdet(Cp)
    return -0.5 * (
        c.d * anp.log(2 * anp.pi)
        + logdet
        + anp.trace(anp.dot(Cpi, C))
        + anp.dot(db, anp.dot(Cpi, db))
    )


def a_posterior(th, x, c: Case):
    W, b, psi_d = a_unpack(th, c)
    M = anp.eye(c.k) + anp.dot(W.T, W / psi_d[:, None])
    Sigma = anp.linalg.inv(M)
    mean = anp.dot(x - b, anp.dot(Sigma, (W / psi_d[:, None]).T).T)
    return mean, Sigma


def expected_log_posterior(th_p, th, x, c: Case):
    """Mean over rows of E_{p(z | x_i; th)}[log p(z | x_i; th_p)] (Gaussian cross-entropy)."""
    mu, Sigma = a_posterior(th, x, c)
    mup, Sigmap = a_posterior(th_p, x, c)
    Spi = anp.linalg.inv(Sigmap)
    dm = mu - mup
    _, logdet = anp.linalg.slogdet(Sigmap)
    quad = anp.mean(anp.sum(anp.dot(dm, Spi) * dm, axis=1))
    return -0.5 * (c.k * anp.log(2 * anp.pi) + logdet + anp.trace(anp.dot(Spi, Sigma)) + quad)


def neg_hessian_at(f, th):
    return -hessian(lambda tp: f(tp, th))(th)


# --------------------------------------------------------------------------------------------
# packing, sampling, densities
# --------------------------------------------------------------------------------------------


def test_pack_row_major_and_roundtrip(case):
    th = case.theta()
    W, b, psi = ppca.unpack(th, **case.dims)
    assert W.shape == (case.d, case.k)
    for a in range(case.d):
        for c in range(case.k):
            assert th[a * case.k + c] == W[a, c]
    np.testing.assert_array_equal(th[case.d * case.k : case.d * case.k + case.d], b)
    eta = th[case.d * case.k + case.d :]
    np.testing.assert_allclose(np.log(psi) if case.noise_coord == "log" else psi, eta, rtol=EXACT)
    np.testing.assert_allclose(ppca.pack(W, b, psi, **case.kw), th, rtol=EXACT, atol=EXACT)
    assert th.shape == (ppca.n_params(case.d, case.k, case.noise),)


def test_sample_matches_predrawn_noise(case):
    th = case.theta()
    x, z = ppca.sample(np.random.default_rng(7), th, 5, **case.dims)
    rng = np.random.default_rng(7)
    eps_z = rng.standard_normal((5, case.k))
    eps_x = rng.standard_normal((5, case.d))
    x2, z2 = ppca.sample_from_noise(th, eps_z, eps_x, **case.dims)
    np.testing.assert_array_equal(x, x2)
    np.testing.assert_array_equal(z, z2)


def test_log_densities_against_scipy(case):
    th = case.theta()
    W, b, psi = ppca.unpack(th, **case.dims)
    psi_d = np.broadcast_to(psi, (case.d,))
    x, z = ppca.sample(np.random.default_rng(1), th, 6, **case.dims)
    C = W @ W.T + np.diag(psi_d)
    np.testing.assert_allclose(
        ppca.log_marginal(th, x, **case.dims),
        multivariate_normal(b, C).logpdf(x).reshape(-1),
        rtol=EXACT * 100,
    )
    ref = multivariate_normal(np.zeros(case.k), np.eye(case.k)).logpdf(z).reshape(-1) + np.array(
        [
            multivariate_normal(W @ zi + b, np.diag(psi_d)).logpdf(xi)
            for xi, zi in zip(x, z, strict=True)
        ]
    )
    np.testing.assert_allclose(ppca.log_joint(th, x, z, **case.dims), ref, rtol=EXACT * 100)
    # 1-D inputs give floats equal to the row values
    assert ppca.log_joint(th, x[0], z[0], **case.dims) == pytest.approx(
        ppca.log_joint(th, x, z, **case.dims)[0], rel=EXACT
    )


def test_posterior_is_bayes_rule(case):
    """log p(x, z) - log p(z | x) = log p(x) for every z."""
    th = case.theta()
    x, z = ppca.sample(np.random.default_rng(2), th, 4, **case.dims)
    mean, cov = ppca.posterior(th, x, **case.dims)
    log_post = np.array(
        [multivariate_normal(m, cov).logpdf(zi) for m, zi in zip(mean, z, strict=True)]
    )
    np.testing.assert_allclose(
        ppca.log_joint(th, x, z, **case.dims) - log_post,
        ppca.log_marginal(th, x, **case.dims),
        rtol=1e-10,
    )
    W, b, psi = ppca.unpack(th, **case.dims)
    C = W @ W.T + np.diag(np.broadcast_to(psi, (case.d,)))
    np.testing.assert_allclose(mean, (x - b) @ np.linalg.solve(C, W), rtol=1e-10, atol=EXACT)


def test_scores_against_autograd(case):
    th = case.theta()
    x, z = ppca.sample(np.random.default_rng(3), th, 5, **case.dims)
    sj = jacobian(lambda t: a_log_joint(t, x, z, case))(th)
    sm = jacobian(lambda t: a_log_marginal(t, x, case))(th)
    assert rel_err(ppca.joint_score(th, x, z, **case.dims), sj) < AUTOGRAD
    assert rel_err(ppca.marginal_score(th, x, **case.dims), sm) < AUTOGRAD
    # and the anp oracles agree with the module's densities
    np.testing.assert_allclose(
        a_log_joint(th, x, z, case), ppca.log_joint(th, x, z, **case.dims), rtol=EXACT * 100
    )


# --------------------------------------------------------------------------------------------
# closed-form Fishers against autograd
# --------------------------------------------------------------------------------------------


def test_joint_fisher_against_autograd(case):
    th = case.theta()
    oracle = neg_hessian_at(lambda tp, t: expected_log_joint(tp, t, case), th)
    F = ppca.joint_fisher_ppca(th, **case.dims)
    assert rel_err(F, oracle) < AUTOGRAD
    assert np.count_nonzero(F - np.diag(np.diag(F))) == 0  # diagonal


def test_marginal_fisher_against_autograd(case):
    th = case.theta()
    oracle = neg_hessian_at(lambda tp, t: expected_log_marginal(tp, t, case), th)
    assert rel_err(ppca.marginal_fisher_ppca(th, **case.dims), oracle) < AUTOGRAD


def test_posterior_fisher_at_data_against_autograd(case):
    th = case.theta()
    x, _ = ppca.sample(np.random.default_rng(4), th, 7, **case.dims)
    oracle = neg_hessian_at(lambda tp, t: expected_log_posterior(tp, t, x, case), th)
    assert rel_err(ppca.missing_information(th, x=x, **case.dims), oracle) < AUTOGRAD


def test_missing_information_principle(case):
    th = case.theta()
    Fj = ppca.joint_fisher_ppca(th, **case.dims)
    Fm = ppca.marginal_fisher_ppca(th, **case.dims)
    Im = ppca.missing_information(th, **case.dims)
    assert rel_err(Fj - Fm, Im) < 1e-10


def test_noise_coordinates_related_by_jacobian(case):
    """F_log = D F_var D with D = diag(1, .., 1, psi)."""
    th = case.theta()
    W, b, psi = ppca.unpack(th, **case.dims)
    th_log = ppca.pack(W, b, psi, noise=case.noise, noise_coord="log")
    th_var = ppca.pack(W, b, psi, noise=case.noise, noise_coord="var")
    D = np.concatenate([np.ones(case.d * case.k + case.d), psi])
    for fn in (ppca.joint_fisher_ppca, ppca.marginal_fisher_ppca, ppca.missing_information):
        F_log = fn(th_log, d=case.d, k=case.k, noise=case.noise, noise_coord="log")
        F_var = fn(th_var, d=case.d, k=case.k, noise=case.noise, noise_coord="var")
        assert rel_err(F_log, D[:, None] * F_var * D[None, :]) < EXACT * 10


def test_marginal_fisher_singular_along_rotations():
    """delta W = W Omega (Omega antisymmetric) leaves C unchanged: a null vector of F_marg only."""
    c = CASES[1]
    th = c.theta()
    W, _, _ = ppca.unpack(th, **c.dims)
    Omega = np.array([[0.0, 1.0], [-1.0, 0.0]])
    v = np.zeros_like(th)
    v[: c.d * c.k] = (W @ Omega).ravel()
    Fm = ppca.marginal_fisher_ppca(th, **c.dims)
    Fj = ppca.joint_fisher_ppca(th, **c.dims)
    assert np.max(np.abs(Fm @ v)) < EXACT * 10 * np.max(np.abs(Fm)) * np.max(np.abs(v))
    assert v @ Fj @ v > 0.1 * v @ v * np.min(np.diag(Fj))
    assert np.min(np.linalg.eigvalsh(Fj)) > 0


def test_iso_var_marginal_fisher_familiar_blocks():
    """For noise='iso', noise_coord='var': F_{W psi} = C^{-2} W and F_{psi psi} = tr(C^{-2}) / 2."""
    c = CASES[1]
    th = c.theta()
    W, _, psi = ppca.unpack(th, **c.dims)
    Ci = np.linalg.inv(W @ W.T + psi[0] * np.eye(c.d))
    F = ppca.marginal_fisher_ppca(th, **c.dims)
    dk = c.d * c.k
    np.testing.assert_allclose(F[:dk, -1], (Ci @ Ci @ W).ravel(), rtol=1e-10)
    assert F[-1, -1] == pytest.approx(0.5 * np.trace(Ci @ Ci), rel=1e-10)
    np.testing.assert_allclose(F[dk : dk + c.d, dk : dk + c.d], Ci, rtol=1e-10)


def test_marginal_fisher_w_block_kronecker_form(case):
    """W block = A kron H + (G kron G^T) K, K vec(X) = vec(X^T), row-major vec throughout."""
    th = case.theta()
    W, _, psi = ppca.unpack(th, **case.dims)
    d, k = case.d, case.k
    A = np.linalg.inv(W @ W.T + np.diag(np.broadcast_to(psi, (d,))))
    G, H = A @ W, W.T @ A @ W
    K = np.zeros((d * k, d * k))
    X = np.arange(d * k).reshape(d, k)
    K[np.arange(d * k), X.T.ravel()] = 1.0
    Xf = np.random.default_rng(0).standard_normal((d, k))
    np.testing.assert_array_equal(K @ Xf.ravel(), Xf.T.ravel())
    F = ppca.marginal_fisher_ppca(th, **case.dims)
    assert rel_err(F[: d * k, : d * k], np.kron(A, H) + np.kron(G, G.T) @ K) < 1e-10


# --------------------------------------------------------------------------------------------
# Monte Carlo estimators within k SE
# --------------------------------------------------------------------------------------------

MC_CASES = [CASES[1], CASES[2]]


@pytest.mark.parametrize("c", MC_CASES, ids=[c.name for c in MC_CASES])
def test_joint_fisher_mc(c):
    th = c.theta()
    F, per = ppca.joint_fisher_mc(np.random.default_rng(10), th, 20_000, **c.dims)
    np.testing.assert_allclose(F, per.mean(0), rtol=EXACT)
    assert_mc_close(per, ppca.joint_fisher_ppca(th, **c.dims), k=MC_K)


@pytest.mark.parametrize("c", MC_CASES, ids=[c.name for c in MC_CASES])
def test_marginal_fisher_mc(c):
    th = c.theta()
    _, per = ppca.marginal_fisher_mc(np.random.default_rng(11), th, 20_000, **c.dims)
    assert_mc_close(per, ppca.marginal_fisher_ppca(th, **c.dims), k=MC_K)


@pytest.mark.parametrize("c", MC_CASES, ids=[c.name for c in MC_CASES])
def test_posterior_score_covariance_mc(c):
    """Cov_{p(z|x)}(joint score) at a fixed x equals the posterior Fisher at x."""
    th = c.theta()
    rng = np.random.default_rng(12)
    x, _ = ppca.sample(rng, th, 1, **c.dims)
    mean, cov = ppca.posterior(th, x[0], **c.dims)
    S = 20_000
    z = mean + rng.standard_normal((S, c.k)) @ np.linalg.cholesky(cov).T
    s = ppca.joint_score(th, np.repeat(x, S, axis=0), z, **c.dims) - ppca.marginal_score(
        th, x[0], **c.dims
    )
    assert_mc_close(s[:, :, None] * s[:, None, :], ppca.missing_information(th, x=x, **c.dims))
    assert_mc_close(s, 0.0)  # Fisher's identity: E_{z|x}[joint score] = marginal score


@pytest.mark.parametrize("c", MC_CASES, ids=[c.name for c in MC_CASES])
def test_marginal_fisher_is_exact_posterior(c):
    """q = p(z|x): plain estimator has mean F_marg + I_miss / K, paired estimator F_marg."""
    th = c.theta()
    q = ppca.posterior_proposal(th, **c.dims)
    Fm = ppca.marginal_fisher_ppca(th, **c.dims)
    Im = ppca.missing_information(th, **c.dims)
    K = 3
    _, per = ppca.marginal_fisher_is(np.random.default_rng(13), th, 20_000, K, q, **c.dims)
    assert_mc_close(per, Fm + Im / K)
    _, per = ppca.marginal_fisher_is(
        np.random.default_rng(14), th, 20_000, K, q, paired=True, **c.dims
    )
    assert_mc_close(per, Fm)


@pytest.mark.parametrize("c", MC_CASES, ids=[c.name for c in MC_CASES])
def test_exact_posterior_score_estimate_is_not_zero_variance(c):
    """q = p(z|x) makes the weights constant, but the score estimate keeps Cov = F_{z|x} / K."""
    th = c.theta()
    x, _ = ppca.sample(np.random.default_rng(19), th, 1, **c.dims)
    K, S = 4, 20_000
    q = ppca.posterior_proposal(th, **c.dims)
    score, _, p_hat = ppca.marginal_score_is(
        np.random.default_rng(20), th, np.repeat(x, S, axis=0), K, q, **c.dims
    )
    np.testing.assert_allclose(p_hat, np.exp(ppca.log_marginal(th, x[0], **c.dims)), rtol=1e-12)
    err = score - ppca.marginal_score(th, x[0], **c.dims)
    assert_mc_close(err, 0.0)
    assert_mc_close(
        K * err[:, :, None] * err[:, None, :], ppca.missing_information(th, x=x, **c.dims)
    )


def wrong_proposal(k: int):
    return (lambda x: 0.3 + 0.1 * x[:, :k], lambda x: 1.5 * np.eye(k))


@pytest.mark.parametrize("c", MC_CASES, ids=[c.name for c in MC_CASES])
def test_is_marginal_likelihood_unbiased_and_variance_depends_on_q(c):
    th = c.theta()
    x, _ = ppca.sample(np.random.default_rng(15), th, 1, **c.dims)
    p_true = np.exp(ppca.log_marginal(th, x[0], **c.dims))
    S = 20_000
    xs = np.repeat(x, S, axis=0)
    exact = ppca.posterior_proposal(th, **c.dims)
    for name, q in [("exact", exact), ("wrong", wrong_proposal(c.k))]:
        p_hat, w = ppca.marginal_likelihood_is(np.random.default_rng(16), th, xs, 5, q, **c.dims)
        assert_mc_close(p_hat, p_true)  # unbiased for any q (K = 5)
        assert_mc_close(w.reshape(-1), p_true)  # each weight is unbiased (K = 1)
        rel_sd = np.std(w) / p_true
        if name == "exact":
            assert rel_sd < EXACT  # zero variance up to rounding
            np.testing.assert_allclose(w, p_true, rtol=1e-12)
        else:
            assert rel_sd > 1e-2


@pytest.mark.parametrize("c", MC_CASES, ids=[c.name for c in MC_CASES])
def test_is_gradient_of_marginal_likelihood_unbiased(c):
    """(1/K) sum_j w_j grad log p(x, z_j) is unbiased for grad p(x) = p(x) grad log p(x), any q."""
    th = c.theta()
    x, _ = ppca.sample(np.random.default_rng(17), th, 1, **c.dims)
    p_true = np.exp(ppca.log_marginal(th, x[0], **c.dims))
    truth = p_true * ppca.marginal_score(th, x[0], **c.dims)
    xs = np.repeat(x, 20_000, axis=0)
    for q in (ppca.posterior_proposal(th, **c.dims), wrong_proposal(c.k)):
        score, grad_p, p_hat = ppca.marginal_score_is(
            np.random.default_rng(18), th, xs, 2, q, **c.dims
        )
        assert_mc_close(grad_p, truth)
        np.testing.assert_allclose(score * p_hat[:, None], grad_p, rtol=1e-10, atol=EXACT)


# --------------------------------------------------------------------------------------------
# maximum likelihood
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mle_data():
    c = Case("gen", 5, 2, "iso", "log", 20)
    x, _ = ppca.sample(np.random.default_rng(21), c.theta(), 300, d=5, k=2)
    return x


@pytest.mark.parametrize("coord", ["log", "var"])
def test_mle_attains_closed_form_max_and_is_stationary(mle_data, coord):
    x = mle_data
    k = 2
    c = Case("mle", 5, k, "iso", coord, 0)
    th = ppca.ppca_mle(x, k, noise_coord=coord)
    ll = ppca.log_marginal(th, x, **c.dims).mean()
    assert abs(ll - ppca.ppca_max_loglik(x, k)) < 1e-10
    g = grad(lambda t: anp.mean(a_log_marginal(t, x, c)))(th)
    assert np.max(np.abs(g)) < AUTOGRAD
    # perturbing W lowers the likelihood; rotating W does not change it
    W, b, psi = ppca.unpack(th, **c.dims)
    rng = np.random.default_rng(22)
    for _ in range(5):
        Wp = W + 0.05 * rng.standard_normal(W.shape)
        assert ppca.log_marginal(ppca.pack(Wp, b, psi, **c.kw), x, **c.dims).mean() < ll
    R, _ = np.linalg.qr(rng.standard_normal((k, k)))
    assert ppca.log_marginal(ppca.pack(W @ R, b, psi, **c.kw), x, **c.dims).mean() == pytest.approx(
        ll, rel=EXACT * 100
    )


def test_mle_subspace_is_top_eigenvectors(mle_data):
    x = mle_data
    th = ppca.ppca_mle(x, 2)
    W, b, psi = ppca.unpack(th, d=5, k=2)
    np.testing.assert_allclose(b, x.mean(0), rtol=EXACT)
    lam, U = np.linalg.eigh(np.cov(x.T, bias=True))
    assert np.max(ppca.principal_angles(W, U[:, -2:])) < 1e-10
    assert psi[0] == pytest.approx(lam[:3].mean(), rel=EXACT * 100)
    # rotation invariance; known angles 0 and 45 degrees, smallest first
    assert np.max(ppca.principal_angles(W, W @ np.array([[0.0, 1.0], [1.0, 0.0]]))) < 1e-10
    V = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    np.testing.assert_allclose(
        ppca.principal_angles(np.eye(3)[:, :2], V), [0.0, np.pi / 4], atol=1e-12
    )


def test_max_loglik_increases_with_k(mle_data):
    vals = [ppca.ppca_max_loglik(mle_data, k) for k in range(1, 5)]
    assert all(a <= b + EXACT for a, b in zip(vals, vals[1:], strict=False))


# --------------------------------------------------------------------------------------------
# hypothesis invariants
# --------------------------------------------------------------------------------------------


@st.composite
def models(draw):
    d = draw(st.integers(1, 4))
    k = draw(st.integers(1, d))
    noise = draw(st.sampled_from(["iso", "diag"]))
    coord = draw(st.sampled_from(["log", "var"]))
    m = 1 if noise == "iso" else d
    fl = st.floats(-2.0, 2.0, allow_nan=False, allow_infinity=False)
    W = np.array(draw(st.lists(fl, min_size=d * k, max_size=d * k))).reshape(d, k)
    b = np.array(draw(st.lists(fl, min_size=d, max_size=d)))
    log_psi = np.array(draw(st.lists(st.floats(-1.5, 1.5), min_size=m, max_size=m)))
    c = Case("hyp", d, k, noise, coord, 0)
    return c, ppca.pack(W, b, np.exp(log_psi), **c.kw)


def assert_psd(F, scale):
    np.testing.assert_array_equal(F, F.T)
    assert np.min(np.linalg.eigvalsh(F)) >= -1e-10 * scale


@settings(deadline=None, max_examples=60)
@given(models())
def test_fishers_symmetric_psd_and_ordered(model):
    c, th = model
    Fj = ppca.joint_fisher_ppca(th, **c.dims)
    Fm = ppca.marginal_fisher_ppca(th, **c.dims)
    Im = ppca.missing_information(th, **c.dims)
    scale = max(np.max(np.abs(Fj)), 1.0)
    assert_psd(Fj, scale)
    assert_psd(Fm, scale)
    assert_psd(Im, scale)
    assert np.min(np.linalg.eigvalsh(Fj - Fm)) >= -1e-10 * scale  # joint dominates marginal
    assert rel_err(Fj - Fm, Im) < 1e-10


# --------------------------------------------------------------------------------------------
# bad inputs
# --------------------------------------------------------------------------------------------


_C = CASES[1]  # d=4, k=2, iso, var
_TH = _C.theta()
_X, _Z = ppca.sample(np.random.default_rng(0), _TH, 3, **_C.dims)
_NAN_TH = np.where(np.arange(_TH.size) == 0, np.nan, _TH)
_NEG_TH = np.where(np.arange(_TH.size) == _TH.size - 1, -0.5, _TH)
_ZERO_TH = np.where(np.arange(_TH.size) == _TH.size - 1, 0.0, _TH)
_NAN_X = np.where(np.arange(_X.size).reshape(_X.shape) == 0, np.nan, _X)
_Q = ppca.posterior_proposal(_TH, **_C.dims)
_RNG = np.random.default_rng

BAD_INPUTS = [
    (
        "theta-length",
        lambda: ppca.joint_fisher_ppca(_TH[:-1], **_C.dims),
        "^theta must have length",
    ),
    ("theta-length-data", lambda: ppca.log_marginal(_TH[:-1], _X, **_C.dims), "^theta must have"),
    ("theta-nan", lambda: ppca.marginal_fisher_ppca(_NAN_TH, **_C.dims), "^theta contains NaN"),
    ("theta-neg-var", lambda: ppca.log_marginal(_NEG_TH, _X, **_C.dims), "^theta: noise variance"),
    (
        "theta-zero-var",
        lambda: ppca.joint_fisher_ppca(_ZERO_TH, **_C.dims),
        "^theta: noise variance",
    ),
    ("pack-psi-neg", lambda: ppca.pack(np.ones((3, 1)), np.zeros(3), -1.0), "^psi must be > 0"),
    (
        "pack-psi-count",
        lambda: ppca.pack(np.ones((3, 1)), np.zeros(3), [1.0, 1.0], noise="diag"),
        "^psi must have 3 entries",
    ),
    ("pack-b-shape", lambda: ppca.pack(np.ones((3, 1)), np.zeros(2), 1.0), "^b must have shape"),
    ("k-gt-d", lambda: ppca.joint_fisher_ppca(np.zeros(16), d=3, k=4), "^k must be <= d"),
    ("k-gt-d-pack", lambda: ppca.pack(np.ones((2, 3)), np.zeros(2), 1.0), "^k must be <= d"),
    ("k-zero", lambda: ppca.n_params(3, 0), "^k must be >= 1"),
    ("x-columns", lambda: ppca.log_marginal(_TH, _X[:, :3], **_C.dims), "^x must have 4 columns"),
    ("x-nan", lambda: ppca.posterior(_TH, _NAN_X, **_C.dims), "^x contains NaN"),
    ("z-shape", lambda: ppca.log_joint(_TH, _X, _Z[:, :1], **_C.dims), "^z must have shape"),
    ("noise", lambda: ppca.joint_fisher_ppca(_TH, d=4, k=2, noise="full"), "^noise must be"),
    (
        "noise-coord",
        lambda: ppca.joint_fisher_ppca(_TH, d=4, k=2, noise_coord="softplus"),
        "^noise_coord must be",
    ),
    (
        "missing-info-x",
        lambda: ppca.missing_information(_TH, x=_X[:, :2], **_C.dims),
        "^x must have 4 columns",
    ),
    ("n-zero", lambda: ppca.sample(_RNG(0), _TH, 0, **_C.dims), "^n must be >= 1"),
    ("S-one", lambda: ppca.joint_fisher_mc(_RNG(0), _TH, 1, **_C.dims), "^S must be >= 2"),
    ("mle-k", lambda: ppca.ppca_mle(_X, 4), "^k must be < d"),
    ("mle-one-row", lambda: ppca.ppca_mle(_X[:1], 1), "^x must have at least 2 rows"),
    ("mle-degenerate", lambda: ppca.ppca_mle(np.ones((5, 3)), 1), "^x: the discarded"),
    (
        "proposal-not-pd",
        lambda: ppca.marginal_likelihood_is(
            _RNG(0), _TH, _X, 2, (lambda x: np.zeros((3, 2)), lambda x: -np.eye(2)), **_C.dims
        ),
        r"^proposal cov_fn\(x\) must be positive definite",
    ),
    (
        "proposal-mean-shape",
        lambda: ppca.marginal_likelihood_is(
            _RNG(0), _TH, _X, 2, (lambda x: np.zeros((3, 1)), lambda x: np.eye(2)), **_C.dims
        ),
        r"^proposal mean_fn\(x\) must have shape",
    ),
    (
        "eps-shape",
        lambda: ppca.importance_log_weights(_TH, _X, np.zeros((2, 4, 2)), _Q, **_C.dims),
        "^eps must have shape",
    ),
    ("angles-rows", lambda: ppca.principal_angles(np.eye(3), np.eye(4)), "^U and V must have"),
]


@pytest.mark.parametrize("fn, pattern", [b[1:] for b in BAD_INPUTS], ids=[b[0] for b in BAD_INPUTS])
def test_bad_inputs(fn, pattern):
    with pytest.raises(ValueError, match=pattern):
        fn()


def test_bad_input_types():
    with pytest.raises(TypeError, match="^d must be an integer"):
        ppca.joint_fisher_ppca(_TH, d=4.0, k=2)
    with pytest.raises(TypeError, match="^proposal must be a tuple"):
        ppca.importance_log_weights(_TH, _X, np.zeros((3, 4, 2)), [None, None], **_C.dims)
