"""Tests for refvpng.models.linear_vae: closed forms against autograd and the generic estimators."""

from __future__ import annotations

from dataclasses import dataclass

import autograd.numpy as anp
import numpy as np
import pytest
from autograd import elementwise_grad
from hypothesis import given
from hypothesis import strategies as st
from scipy.stats import multivariate_normal

from refvpng.curvature.fisher import q_fisher, vp_fisher_exact, vp_fisher_mc
from refvpng.elbo import elbo, elbo_grad, elbo_per_sample
from refvpng.models import linear_vae as lv
from refvpng.models import ppca
from refvpng.models.latent import draw_eps, draw_predictive
from refvpng.testing.mc import assert_mc_close
from refvpng.testing.tolerances import AUTOGRAD, EXACT


@dataclass(frozen=True)
class Case:
    name: str
    d: int
    k: int
    n: int
    seed: int

    @property
    def model(self):
        return lv.make_model(self.d, self.k)

    def eta(self) -> np.ndarray:
        rng = np.random.default_rng(self.seed)
        return 0.5 * rng.standard_normal(self.model.n_params)

    def x(self) -> np.ndarray:
        return np.random.default_rng(self.seed + 100).standard_normal((self.n, self.d))


CASES = [Case("d3k1n5", 3, 1, 5, 0), Case("d4k2n7", 4, 2, 7, 1), Case("d5k3n6", 5, 3, 6, 2)]


@pytest.fixture(params=CASES, ids=[c.name for c in CASES])
def case(request) -> Case:
    return request.param


def rel_err(a, b) -> float:
    a, b = np.asarray(a), np.asarray(b)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1.0))


# --------------------------------------------------------------------------------------------
# the likelihood with learned variance
# --------------------------------------------------------------------------------------------


def test_likelihood_log_prob_matches_scipy():
    lik = lv.GaussianLearnedVariance(3)
    t = np.array([0.5, -1.0, 2.0, np.log(0.7)])
    x = np.array([0.1, 0.2, 0.3])
    ref = multivariate_normal(t[:3], 0.7 * np.eye(3)).logpdf(x)
    assert abs(lik.log_prob(x, t) - ref) <= EXACT * abs(ref)


@given(
    st.lists(st.floats(-3.0, 3.0), min_size=4, max_size=4),
    st.lists(st.floats(-3.0, 3.0), min_size=3, max_size=3),
)
def test_likelihood_score_is_autograd_gradient(t, x):
    lik = lv.GaussianLearnedVariance(3)
    t, x = np.array(t), np.array(x)
    auto = elementwise_grad(lambda tt: lik.log_prob(x, tt))(t)
    assert rel_err(lik.score(x, t), auto) <= AUTOGRAD


def test_likelihood_output_fisher_is_score_covariance():
    lik = lv.GaussianLearnedVariance(2)
    t = np.array([0.3, -0.4, np.log(1.7)])
    xs = lik.sample(np.random.default_rng(0), np.broadcast_to(t, (20000, 3)))
    assert xs.shape == (20000, 2)
    s = lik.score(xs, t)
    per = s[:, :, None] * s[:, None, :]
    assert_mc_close(per, np.diag(lik.output_fisher(t)))


def test_likelihood_whiten():
    lik = lv.GaussianLearnedVariance(2)
    rng = np.random.default_rng(1)
    t = rng.standard_normal((4, 3))
    jac = rng.standard_normal((4, 3, 5))
    r = lik.whiten(jac, t)
    lam = lik.output_fisher(t)
    ref = np.einsum("ndp,nd,ndq->npq", jac, lam, jac)
    assert rel_err(np.einsum("ndp,ndq->npq", r, r), ref) <= EXACT


def test_likelihood_rejects_wrong_output_width():
    with pytest.raises(ValueError, match="t must have"):
        lv.GaussianLearnedVariance(3).output_fisher(np.zeros(3))


# --------------------------------------------------------------------------------------------
# ELBO: closed form against the Monte Carlo ELBO of refvpng.elbo and autograd
# --------------------------------------------------------------------------------------------


def test_elbo_exact_equals_mc_elbo_at_sigma_points(case):
    eta, x = case.eta(), case.x()
    eps = lv.sigma_point_eps(case.n, case.k)
    exact = lv.elbo_exact(eta, x, d=case.d, k=case.k)
    assert abs(elbo(case.model, eta, x, eps) - exact) <= AUTOGRAD * max(1.0, abs(exact))


def test_elbo_exact_within_k_se_of_random_mc(case):
    eta, x = case.eta(), case.x()
    eps = draw_eps(np.random.default_rng(case.seed), case.model, case.n, 2000)
    per = elbo_per_sample(case.model, eta, x, eps)
    assert_mc_close(per, lv.elbo_exact(eta, x, d=case.d, k=case.k))


def test_gradients_hand_autograd_and_mc_agree(case):
    eta, x = case.eta(), case.x()
    value, g = lv.elbo_exact_value_and_grad(eta, x, d=case.d, k=case.k)
    assert value == pytest.approx(lv.elbo_exact(eta, x, d=case.d, k=case.k), rel=EXACT)
    g_auto = lv.elbo_exact_grad(eta, x, d=case.d, k=case.k)
    assert rel_err(g, g_auto) <= AUTOGRAD
    g_mc = elbo_grad(case.model, eta, x, lv.sigma_point_eps(case.n, case.k))
    assert rel_err(g_mc, g_auto) <= AUTOGRAD


@given(st.integers(0, 10_000))
def test_elbo_is_below_log_likelihood(seed):
    rng = np.random.default_rng(seed)
    d, k, n = 3, 2, 6
    eta = rng.uniform(-1.0, 1.0, lv.n_lambda(d, k) + lv.n_theta(d, k))
    x = rng.standard_normal((n, d))
    theta = eta[lv.n_lambda(d, k) :]
    loglik = float(np.sum(ppca.log_marginal(theta, x, d=d, k=k)))
    assert lv.elbo_exact(eta, x, d=d, k=k) <= loglik + 1e-10 * abs(loglik)


# --------------------------------------------------------------------------------------------
# Fishers: closed forms against the generic builds of refvpng.curvature.fisher
# --------------------------------------------------------------------------------------------


def test_q_fisher_closed_equals_generic(case):
    eta, x = case.eta(), case.x()
    F = q_fisher(case.model, eta[: case.model.n_lambda], x)
    assert rel_err(lv.q_fisher_closed(eta, x, d=case.d, k=case.k), F) <= EXACT


def test_vp_fisher_closed_equals_vp_fisher_exact_at_sigma_points(case):
    eta, x = case.eta(), case.x()
    F = vp_fisher_exact(case.model, eta, x, lv.sigma_point_eps(case.n, case.k))
    Fc = lv.vp_fisher_closed(eta, x, d=case.d, k=case.k)
    assert rel_err(Fc, F) <= 1e-11
    assert np.array_equal(Fc, Fc.T)


def test_vp_fisher_mc_eq16_through_obs_dim_d_plus_one_output():
    """Eq 16 with predictive samples of d columns and outputs of d + 1 columns: k SE of F_r."""
    c = CASES[1]
    eta, x = c.eta(), c.x()
    rng = np.random.default_rng(3)
    eps = draw_eps(rng, c.model, c.n, 3000)
    x_pred = draw_predictive(rng, c.model, eta, x, eps, 1)
    assert x_pred.shape == (3000, 1, c.n, c.d)
    _, per = vp_fisher_mc(c.model, eta, x, eps, x_pred, per_sample=True)
    assert_mc_close(per, lv.vp_fisher_closed(eta, x, d=c.d, k=c.k))


def test_decoder_fisher_closed_is_theta_block(case):
    eta, x = case.eta(), case.x()
    nl = case.model.n_lambda
    Fr = lv.vp_fisher_closed(eta, x, d=case.d, k=case.k)
    assert rel_err(lv.decoder_fisher_closed(eta, x, d=case.d, k=case.k), Fr[nl:, nl:]) <= EXACT


def test_vp_fisher_null_directions_are_latent_scale_and_shift(case):
    """F_r has rank P - 2k: z -> D z + v with W, b compensating leaves every output unchanged."""
    d, k = case.d, case.k
    eta, x = case.eta(), case.x()
    A, c, rho, W, b, psi = lv.unpack(eta, d=d, k=k)
    Fr = lv.vp_fisher_closed(eta, x, d=d, k=k)
    for j in range(k):
        e = np.zeros(k)
        e[j] = 1.0
        # scaling of z_j: A_j, c_j, sigma_j grow by (1 + t), w_j shrinks
        v_scale = np.concatenate([(e[:, None] * A).ravel(), e * c, e, (-W * e).ravel(), np.zeros(d), [0.0]])
        # shift of z_j: c_j grows by t, b compensates with -t w_j
        v_shift = np.concatenate([np.zeros(k * d), e, np.zeros(k), np.zeros(d * k), -W[:, j], [0.0]])
        for v in (v_scale, v_shift):
            assert np.linalg.norm(Fr @ v) <= 1e-10 * np.linalg.norm(Fr) * np.linalg.norm(v)
    ev = np.linalg.eigvalsh(Fr)
    assert int(np.sum(ev > 1e-10 * ev[-1])) == case.model.n_params - 2 * k


# --------------------------------------------------------------------------------------------
# the optimum: exact posterior and maximal log-likelihood
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ml_data():
    rng = np.random.default_rng(7)
    d, k, n = 5, 2, 200
    theta = ppca.pack(rng.standard_normal((d, k)) * [2.0, 1.0], rng.standard_normal(d), 0.4)
    x, _ = ppca.sample(rng, theta, n, d=d, k=k)
    return x, d, k


def test_elbo_at_mle_is_max_loglik(ml_data):
    x, d, k = ml_data
    eta = lv.mle_eta(x, k)
    n = x.shape[0]
    value = lv.elbo_exact(eta, x, d=d, k=k)
    assert value / n == pytest.approx(ppca.ppca_max_loglik(x, k), rel=AUTOGRAD)
    g = lv.elbo_exact_grad(eta, x, d=d, k=k)
    assert np.max(np.abs(g)) <= AUTOGRAD * n


def test_encoder_at_mle_is_exact_posterior(ml_data):
    x, d, k = ml_data
    eta = lv.mle_eta(x, k)
    A, c, rho, W, b, psi = lv.unpack(eta, d=d, k=k)
    assert abs(W[:, 0] @ W[:, 1]) <= EXACT * np.max(np.abs(W)) ** 2  # orthogonal columns
    mean, cov = ppca.posterior(eta[lv.n_lambda(d, k) :], x, d=d, k=k)
    assert rel_err(x @ A.T + c, mean) <= EXACT * 100
    assert rel_err(cov, np.diag(np.exp(2.0 * rho))) <= EXACT * 100


@given(st.integers(0, 10_000))
def test_optimal_encoder_is_stationary_in_lambda(seed):
    rng = np.random.default_rng(seed)
    d, k = 4, 2
    theta = ppca.pack(rng.standard_normal((d, k)), rng.standard_normal(d), rng.uniform(0.3, 2.0))
    x = rng.standard_normal((8, d))
    eta = np.concatenate([lv.optimal_encoder(theta, d=d, k=k), theta])
    g = lv.elbo_exact_grad(eta, x, d=d, k=k)[: lv.n_lambda(d, k)]
    nl = lv.n_lambda(d, k)
    scale = np.max(np.abs(lv.elbo_exact_grad(np.concatenate([np.zeros(nl), theta]), x, d=d, k=k)))
    assert np.max(np.abs(g)) <= AUTOGRAD * max(1.0, scale)


# --------------------------------------------------------------------------------------------
# packing and bad inputs
# --------------------------------------------------------------------------------------------


def test_pack_unpack_round_trip(case):
    eta = case.eta()
    parts = lv.unpack(eta, d=case.d, k=case.k)
    assert np.array_equal(lv.pack(*parts), eta) or rel_err(lv.pack(*parts), eta) <= EXACT


def test_model_sizes():
    m = lv.make_model(4, 2)
    assert (m.n_lambda, m.n_theta, m.obs_dim, m.latent_dim) == (12, 13, 4, 2)
    assert m.local


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: lv.make_model(2, 3), "k must be <= d"),
        (lambda: lv.make_model(0, 1), "d must be >= 1"),
        (lambda: lv.elbo_exact(np.zeros(5), np.zeros((2, 3)), d=3, k=1), "eta must have length"),
        (lambda: lv.elbo_exact(np.zeros(12), np.zeros((2, 4)), d=3, k=1), "x must have shape"),
        (lambda: lv.pack(np.zeros((1, 2)), [0], [0], np.ones((2, 1)), [0, 0], 0.0), "psi"),
        (lambda: lv.pack(np.zeros((2, 2)), [0], [0], np.ones((2, 1)), [0, 0], 1.0), "A must"),
        (lambda: lv.optimal_encoder(np.zeros(3), d=2, k=1), "theta must have shape"),
        (lambda: lv.sigma_point_eps(0, 1), "n must be >= 1"),
        (lambda: lv.vp_fisher_closed(np.full(12, np.nan), np.zeros((2, 3)), d=3, k=1), "eta"),
    ],
)
def test_bad_inputs_name_the_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_model_functions_are_autograd_friendly():
    """encode/decode use autograd.numpy only: a full Jacobian of the outputs exists."""
    m = lv.make_model(3, 2)
    eta = np.random.default_rng(0).standard_normal(m.n_params)
    x = np.ones((2, 3))

    def total(e):
        z = m.encode(e[: m.n_lambda], x)[0]
        return anp.sum(m.decode(e[m.n_lambda :], z, None))

    assert np.all(np.isfinite(elementwise_grad(total)(eta)))
