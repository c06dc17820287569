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
from refvpng.curvature.latent_fisher import draw_joint
from refvpng.elbo import elbo, elbo_grad, elbo_per_sample
from refvpng.models import linear_vae as lv
from refvpng.models import ppca
from refvpng.models.latent import draw_eps, draw_predictive
from refvpng.models.likelihoods import GaussianLearnedVariance
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
    def spec(self):
        return lv.PPCASpec(self.d, self.k)

    @property
    def model(self):
        return lv.make_model(self.spec)

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


SHARED = pytest.mark.parametrize("shared", [True, False], ids=["iso", "diag"])


def _t(shared, mean, log_var):
    return np.concatenate([mean, [log_var[0]] if shared else log_var])


@SHARED
def test_likelihood_log_prob_matches_scipy(shared):
    lik = GaussianLearnedVariance(3, shared=shared)
    log_var = np.log([0.7, 1.3, 0.4])
    t = _t(shared, np.array([0.5, -1.0, 2.0]), log_var)
    var = np.exp(log_var[:1].repeat(3) if shared else log_var)
    x = np.array([0.1, 0.2, 0.3])
    ref = multivariate_normal(t[:3], np.diag(var)).logpdf(x)
    assert abs(lik.log_prob(x, t) - ref) <= EXACT * abs(ref)
    assert lik.n_out == (4 if shared else 6)


@given(
    st.lists(st.floats(-3.0, 3.0), min_size=6, max_size=6),
    st.lists(st.floats(-3.0, 3.0), min_size=3, max_size=3),
    st.booleans(),
)
def test_likelihood_score_is_autograd_gradient(t, x, shared):
    lik = GaussianLearnedVariance(3, shared=shared)
    t, x = np.array(t)[: lik.n_out], np.array(x)
    auto = elementwise_grad(lambda tt: lik.log_prob(x, tt))(t)
    assert rel_err(lik.score(x, t), auto) <= AUTOGRAD


@SHARED
def test_likelihood_output_fisher_is_score_covariance(shared):
    lik = GaussianLearnedVariance(2, shared=shared)
    t = _t(shared, np.array([0.3, -0.4]), np.log([1.7, 0.6]))
    xs = lik.sample(np.random.default_rng(0), np.broadcast_to(t, (20000, lik.n_out)))
    assert xs.shape == (20000, 2)
    s = lik.score(xs, t)
    assert_mc_close(s[:, :, None] * s[:, None, :], np.diag(lik.output_fisher(t)))


@SHARED
def test_likelihood_whiten(shared):
    lik = GaussianLearnedVariance(2, shared=shared)
    rng = np.random.default_rng(1)
    t = rng.standard_normal((4, lik.n_out))
    jac = rng.standard_normal((4, lik.n_out, 5))
    r = lik.whiten(jac, t)
    ref = np.einsum("ndp,nd,ndq->npq", jac, lik.output_fisher(t), jac)
    assert rel_err(np.einsum("ndp,ndq->npq", r, r), ref) <= EXACT


@pytest.mark.parametrize(
    ("call", "exc", "match"),
    [
        (lambda: GaussianLearnedVariance(3).output_fisher(np.zeros(3)), ValueError, "t must have 4"),
        (
            lambda: GaussianLearnedVariance(3, False).score(np.zeros(3), np.zeros(4)),
            ValueError,
            "t must have 6",
        ),
        (lambda: GaussianLearnedVariance(3).log_prob(np.zeros(2), np.zeros(4)), ValueError, "x must have 3"),
        (lambda: GaussianLearnedVariance(1).score([np.nan], [0.0, 0.0]), ValueError, "x contains NaN"),
        (lambda: GaussianLearnedVariance(1).output_fisher([0.0, np.inf]), ValueError, "t contains NaN"),
        (lambda: GaussianLearnedVariance(2).whiten(np.zeros((2, 5)), np.zeros(3)), ValueError, "jac must"),
        (lambda: GaussianLearnedVariance(0), ValueError, "dim must be >= 1"),
        (lambda: GaussianLearnedVariance(2, shared=1), TypeError, "shared must be a bool"),
        (lambda: GaussianLearnedVariance(1).sample(0, np.zeros(2)), TypeError, "rng must be"),
    ],
)
def test_likelihood_rejects_bad_inputs(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


# --------------------------------------------------------------------------------------------
# ELBO: closed form against the Monte Carlo ELBO of refvpng.elbo and autograd
# --------------------------------------------------------------------------------------------


def test_elbo_closed_equals_mc_elbo_at_sigma_points(case):
    eta, x = case.eta(), case.x()
    eps = lv.sigma_point_eps(case.n, case.k)
    exact = lv.elbo_closed(case.spec, eta, x)
    assert abs(elbo(case.model, eta, x, eps) - exact) <= AUTOGRAD * max(1.0, abs(exact))


def test_elbo_closed_within_k_se_of_random_mc(case):
    eta, x = case.eta(), case.x()
    eps = draw_eps(np.random.default_rng(case.seed), case.model, case.n, 2000)
    per = elbo_per_sample(case.model, eta, x, eps)
    assert_mc_close(per, lv.elbo_closed(case.spec, eta, x))


def test_gradients_hand_autograd_and_mc_agree(case):
    eta, x = case.eta(), case.x()
    value, g = lv.elbo_closed_value_and_grad(case.spec, eta, x)
    assert value == pytest.approx(lv.elbo_closed(case.spec, eta, x), rel=EXACT)
    g_auto = lv.elbo_closed_grad(case.spec, eta, x)
    assert rel_err(g, g_auto) <= AUTOGRAD
    g_mc = elbo_grad(case.model, eta, x, lv.sigma_point_eps(case.n, case.k))
    assert rel_err(g_mc, g_auto) <= AUTOGRAD


@given(st.integers(0, 10_000))
def test_elbo_is_below_log_likelihood(seed):
    rng = np.random.default_rng(seed)
    spec, n = lv.PPCASpec(3, 2), 6
    eta = rng.uniform(-1.0, 1.0, lv.n_lambda(spec) + spec.n_params)
    x = rng.standard_normal((n, spec.d))
    loglik = float(np.sum(ppca.log_marginal_closed(spec, eta[lv.n_lambda(spec) :], x)))
    assert lv.elbo_closed(spec, eta, x) <= loglik + 1e-10 * abs(loglik)


# --------------------------------------------------------------------------------------------
# Fishers: closed forms against the generic builds of refvpng.curvature.fisher
# --------------------------------------------------------------------------------------------


def test_q_fisher_closed_equals_generic(case):
    eta, x = case.eta(), case.x()
    F = q_fisher(case.model, eta[: case.model.n_lambda], x)
    assert rel_err(lv.q_fisher_closed(case.spec, eta, x), F) <= EXACT


def test_vp_fisher_closed_equals_vp_fisher_exact_at_sigma_points(case):
    eta, x = case.eta(), case.x()
    F = vp_fisher_exact(case.model, eta, x, lv.sigma_point_eps(case.n, case.k))
    Fc = lv.vp_fisher_closed(case.spec, eta, x)
    assert rel_err(Fc, F) <= 1e-11
    assert np.array_equal(Fc, Fc.T)


def test_vp_fisher_mc_eq16_through_obs_dim_d_plus_one_output():
    """Eq 16 with predictive samples of d columns and outputs of d + 1 columns: k SE of F_r."""
    c = CASES[1]
    eta, x = c.eta(), c.x()
    rng = np.random.default_rng(3)
    eps = draw_eps(rng, c.model, c.n, 1500)
    x_pred = draw_predictive(rng, c.model, eta, x, eps, 2)  # M = 2: a missing 1/M doubles F
    assert x_pred.shape == (1500, 2, c.n, c.d)
    _, per = vp_fisher_mc(c.model, eta, x, eps, x_pred, per_sample=True)
    assert_mc_close(per, lv.vp_fisher_closed(c.spec, eta, x))


def test_decoder_fisher_closed_is_theta_block(case):
    eta, x = case.eta(), case.x()
    nl = case.model.n_lambda
    Fr = lv.vp_fisher_closed(case.spec, eta, x)
    assert rel_err(lv.decoder_fisher_closed(case.spec, eta, x), Fr[nl:, nl:]) <= EXACT


def test_vp_fisher_null_directions_are_latent_scale_and_shift(case):
    """F_r has rank P - 2k: z -> D z + v with W, b compensating leaves every output unchanged."""
    d, k = case.d, case.k
    eta, x = case.eta(), case.x()
    A, c, rho, W, b, psi = lv.unpack_eta(case.spec, eta)
    Fr = lv.vp_fisher_closed(case.spec, eta, x)
    for j in range(k):
        e = np.zeros(k)
        e[j] = 1.0
        # scaling of z_j: A_j, c_j, sigma_j grow by (1 + t), w_j shrinks (column-major vecs)
        v_scale = np.concatenate(
            [(e[:, None] * A).ravel(order="F"), e * c, e, (-W * e).ravel(order="F"), np.zeros(d), [0.0]]
        )
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
    spec = lv.PPCASpec(5, 2)
    theta = spec.pack(rng.standard_normal((5, 2)) * [2.0, 1.0], rng.standard_normal(5), 0.4)
    return draw_joint(rng, lv.make_model(spec), theta, 200, 1)[0][0], spec


def test_elbo_at_mle_is_max_loglik(ml_data):
    x, spec = ml_data
    eta = lv.mle_eta(spec, x)
    n = x.shape[0]
    value = lv.elbo_closed(spec, eta, x)
    assert value / n == pytest.approx(ppca.max_loglik_closed(spec, x), rel=AUTOGRAD)
    g = lv.elbo_closed_grad(spec, eta, x)
    assert np.max(np.abs(g)) <= AUTOGRAD * n


def test_encoder_at_mle_is_exact_posterior(ml_data):
    x, spec = ml_data
    eta = lv.mle_eta(spec, x)
    A, c, rho, W, b, psi = lv.unpack_eta(spec, eta)
    assert abs(W[:, 0] @ W[:, 1]) <= EXACT * np.max(np.abs(W)) ** 2  # orthogonal columns
    mean, cov = ppca.posterior_closed(spec, eta[lv.n_lambda(spec) :], x)
    assert rel_err(x @ A.T + c, mean) <= EXACT * 100
    assert rel_err(cov, np.diag(np.exp(2.0 * rho))) <= EXACT * 100


@given(st.integers(0, 10_000))
def test_optimal_encoder_is_stationary_in_lambda(seed):
    rng = np.random.default_rng(seed)
    spec = lv.PPCASpec(4, 2)
    theta = spec.pack(rng.standard_normal((4, 2)), rng.standard_normal(4), rng.uniform(0.3, 2.0))
    x = rng.standard_normal((8, 4))
    nl = lv.n_lambda(spec)
    g = lv.elbo_closed_grad(spec, np.concatenate([lv.optimal_encoder(spec, theta), theta]), x)[:nl]
    scale = np.max(np.abs(lv.elbo_closed_grad(spec, np.concatenate([np.zeros(nl), theta]), x)))
    assert np.max(np.abs(g)) <= AUTOGRAD * max(1.0, scale)


# --------------------------------------------------------------------------------------------
# packing and bad inputs
# --------------------------------------------------------------------------------------------


def test_pack_unpack_round_trip(case):
    eta = case.eta()
    parts = lv.unpack_eta(case.spec, eta)
    assert rel_err(lv.pack_eta(case.spec, *parts), eta) <= EXACT
    A, W = parts[0], parts[3]
    assert A[0, 1] == eta[case.k] and W[1, 0] == eta[lv.n_lambda(case.spec) + 1]  # column-major


def test_model_sizes():
    m = lv.make_model(lv.PPCASpec(4, 2))
    assert (m.n_lambda, m.n_theta, m.obs_dim, m.latent_dim) == (12, 13, 4, 2)
    assert m.local


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: lv.PPCASpec(2, 3), "k must be <= d"),
        (lambda: lv.PPCASpec(0, 1), "d must be >= 1"),
        (lambda: lv.elbo_closed(lv.PPCASpec(3, 1), np.zeros(5), np.zeros((2, 3))), "eta must have length"),
        (lambda: lv.elbo_closed(lv.PPCASpec(3, 1), np.zeros(12), np.zeros((2, 4))), "x must have shape"),
        (lambda: lv.elbo_closed(lv.PPCASpec(3, 1, "diag"), np.zeros(14), np.zeros((2, 3))), "noise='iso'"),
        (
            lambda: lv.q_fisher_closed(lv.PPCASpec(3, 1, noise_coord="var"), np.zeros(12), np.zeros((2, 3))),
            "spec",
        ),
        (
            lambda: lv.pack_eta(lv.PPCASpec(2, 1), np.zeros((1, 2)), [0], [0], np.ones((2, 1)), [0, 0], 0.0),
            "psi",
        ),
        (
            lambda: lv.pack_eta(lv.PPCASpec(2, 1), np.zeros((2, 2)), [0], [0], np.ones((2, 1)), [0, 0], 1.0),
            "A must",
        ),
        (lambda: lv.optimal_encoder(lv.PPCASpec(2, 1), np.zeros(3)), "theta must have length"),
        (lambda: lv.sigma_point_eps(0, 1), "n must be >= 1"),
        (lambda: lv.vp_fisher_closed(lv.PPCASpec(3, 1), np.full(12, np.nan), np.zeros((2, 3))), "eta"),
        (lambda: lv.mle_eta(lv.PPCASpec(3, 3), np.zeros((4, 3))), "spec.k must be < d"),
    ],
)
def test_bad_inputs_name_the_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_model_functions_are_autograd_friendly():
    """encode/decode use autograd.numpy only: a full Jacobian of the outputs exists."""
    m = lv.make_model(lv.PPCASpec(3, 2))
    eta = np.random.default_rng(0).standard_normal(m.n_params)
    x = np.ones((2, 3))

    def total(e):
        z = m.encode(e[: m.n_lambda], x)[0]
        return anp.sum(m.decode(e[m.n_lambda :], z, None))

    assert np.all(np.isfinite(elementwise_grad(total)(eta)))
