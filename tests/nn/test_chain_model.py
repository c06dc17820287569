"""The chain as a LatentModel: every hook against the autograd path, every estimator runs on it."""

from __future__ import annotations

import numpy as np
import pytest
from autograd import jacobian as ag_jacobian

from refvpng.curvature.fisher import (
    output_jacobian,
    q_fisher,
    q_fisher_mc,
    vp_fisher_exact,
    vp_fisher_mc,
    vp_kfac_pairs,
    vp_scores,
)
from refvpng.curvature.hessian import elbo_hessian
from refvpng.elbo import elbo, elbo_grad, elbo_value_and_grad
from refvpng.models import Bernoulli, Gaussian, Poisson
from refvpng.models.latent import draw_eps, draw_predictive, without_hooks
from refvpng.nn import Chain, chain_model, per_example_gradients
from refvpng.testing import FINITE_DIFF, assert_mc_close
from tests.nn.test_chain import ag_chain

HOOK = 1e-12  # hook vs autograd on the same inputs: rounding only


def _close(a, b, tol=HOOK):
    a, b = np.asarray(a), np.asarray(b)
    np.testing.assert_allclose(a, b, rtol=0, atol=tol * max(1.0, np.max(np.abs(b))))


def _gaussian_cov(d):
    a = np.arange(1.0, d * d + 1).reshape(d, d) / (d * d)
    return 0.3 * np.eye(d) + a @ a.T


# name, encoder sizes, decoder sizes, activation, likelihood, floor
MODELS = [
    ("bernoulli-relu", (4, 3, 4), (2, 3, 4), "relu", Bernoulli(), 1e-4),
    ("gaussian-tanh", (3, 5, 2), (1, 4, 3), "tanh", Gaussian(_gaussian_cov(3)), 0.05),
    ("poisson-identity", (3, 4), (2, 3), "identity", Poisson("softplus"), 0.0),
]


def _data(lik, rng, n, d):
    if isinstance(lik, Bernoulli):
        return (rng.random((n, d)) < 0.5).astype(float)
    if isinstance(lik, Poisson):
        return rng.poisson(1.3, size=(n, d)).astype(float)
    return rng.standard_normal((n, d))


def _problem(spec, seed=0, n=3, s=2, m=3):
    _, enc, dec, act, lik, floor = spec
    rng = np.random.default_rng(seed)
    chain = Chain.from_sizes(enc, dec, act, floor=floor)
    model = chain_model(chain, lik, prior_std=1.3)
    eta = 0.6 * rng.standard_normal(chain.num_params)
    x = _data(lik, rng, n, chain.d_x)
    eps = draw_eps(rng, model, n, s)
    x_pred = draw_predictive(rng, model, eta, x, eps, m)
    return chain, model, eta, x, eps, x_pred


@pytest.fixture(params=MODELS, ids=[m[0] for m in MODELS])
def problem(request):
    return _problem(request.param, seed=len(request.param[0]))


def test_jacobian_hook_matches_autograd(problem):
    _, model, eta, x, eps, _ = problem
    t, jac = output_jacobian(model, eta, x, eps)
    t_ref, jac_ref = output_jacobian(without_hooks(model), eta, x, eps)
    _close(t, t_ref)
    _close(jac, jac_ref)


def test_predictive_score_hook_matches_autograd(problem):
    _, model, eta, x, eps, x_pred = problem
    b = vp_scores(model, eta, x, eps, x_pred)
    assert b.shape == x_pred.shape[:3] + (model.n_params,)
    _close(b, vp_scores(without_hooks(model), eta, x, eps, x_pred))


def test_vp_fishers_through_hooks_match_autograd(problem):
    _, model, eta, x, eps, x_pred = problem
    ref = without_hooks(model)
    _close(vp_fisher_exact(model, eta, x, eps), vp_fisher_exact(ref, eta, x, eps))
    _close(vp_fisher_mc(model, eta, x, eps, x_pred), vp_fisher_mc(ref, eta, x, eps, x_pred))


def test_elbo_gradient_hook_matches_autograd(problem):
    _, model, eta, x, eps, _ = problem
    v, g = elbo_value_and_grad(model, eta, x, eps)
    v_ref, g_ref = elbo_value_and_grad(without_hooks(model), eta, x, eps)
    _close(v, v_ref)
    _close(g, g_ref)
    assert v == pytest.approx(elbo(model, eta, x, eps), rel=1e-13)
    np.testing.assert_array_equal(elbo_grad(model, eta, x, eps), g)


def test_kfac_pairs_are_the_score_rows(problem):
    """Rows (s, k, i) with i fastest, weight 1/(S M): pairs rebuild vp_scores and F_hat."""
    _, model, eta, x, eps, x_pred = problem
    pairs, w = vp_kfac_pairs(model, eta, x, eps, x_pred)
    s, m, n = x_pred.shape[:3]
    np.testing.assert_array_equal(w, np.full(s * m * n, 1.0 / (s * m)))
    rows = per_example_gradients(pairs)
    _close(rows.reshape(s, m, n, -1), vp_scores(model, eta, x, eps, x_pred))
    f_hat = vp_fisher_mc(model, eta, x, eps, x_pred)
    _close((rows * w[:, None]).T @ rows, f_hat)


def test_vp_fisher_exact_against_independent_build():
    """Bernoulli chain, S = 2: (1/S) sum_s sum_i J^T diag(s(1-s)) J with an independent forward."""
    chain, model, eta, x, eps, _ = _problem(MODELS[0], seed=3)
    ref = np.zeros((chain.num_params,) * 2)
    for s in range(eps.shape[0]):
        for i in range(x.shape[0]):
            fn = lambda e, s=s, i=i: ag_chain(chain, e, x[i : i + 1], eps[s, i : i + 1])[0]  # noqa: E731
            jac = ag_jacobian(fn)(eta)
            p = 1.0 / (1.0 + np.exp(-fn(eta)))
            ref += jac.T @ ((p * (1 - p))[:, None] * jac)
    ref /= eps.shape[0]
    _close(vp_fisher_exact(model, eta, x, eps), ref, 1e-11)


def test_elbo_against_independent_build():
    chain, model, eta, x, eps, _ = _problem(MODELS[0], seed=4)
    tau = model.prior_std
    h = chain.encoder.forward(eta[: chain.encoder.num_params], x)[0]
    mu, sig = h[:, : chain.d_z], np.logaddexp(0, h[:, chain.d_z :]) + chain.floor
    kl = np.sum(np.log(tau / sig) + (sig**2 + mu**2) / (2 * tau**2) - 0.5)
    ll = [
        np.sum(x * (t := ag_chain(chain, eta, x, eps[s]))) - np.sum(np.logaddexp(0, t))
        for s in range(eps.shape[0])
    ]
    assert elbo(model, eta, x, eps) == pytest.approx(np.mean(ll) - kl, rel=1e-12)


def test_fisher_mc_within_standard_errors_of_exact():
    """Eq 16 at fixed noise: per-(s, k) matrices average to F_r within k SE (M = 3000)."""
    _, model, eta, x, eps, _ = _problem(MODELS[1], seed=5, s=2)
    x_pred = draw_predictive(np.random.default_rng(8), model, eta, x, eps, 3000)
    b = vp_scores(model, eta, x, eps, x_pred)
    per = np.einsum("smip,smiq->smpq", b, b).reshape(-1, model.n_params, model.n_params)
    assert_mc_close(per, vp_fisher_exact(model, eta, x, eps))


def test_q_fisher_on_the_chain_within_standard_errors():
    chain, model, eta, x, _, _ = _problem(MODELS[0], seed=6)
    lam = eta[: model.n_lambda]
    rng = np.random.default_rng(9)
    h = chain.encoder.forward(lam, x)[0]
    mu, sig = h[:, : chain.d_z], np.logaddexp(0, h[:, chain.d_z :]) + chain.floor
    z = mu + sig * rng.standard_normal((4000,) + mu.shape)
    _, per = q_fisher_mc(model, lam, x, z)
    assert_mc_close(per, q_fisher(model, lam, x))


def test_elbo_hessian_is_the_derivative_of_the_hook_gradient():
    _, model, eta, x, eps, _ = _problem(MODELS[1], seed=7)
    hess = elbo_hessian(model, eta, x, eps, wrt="eta")
    h = 1e-6
    fd = np.stack(
        [
            (elbo_grad(model, eta + h * e, x, eps) - elbo_grad(model, eta - h * e, x, eps)) / (2 * h)
            for e in np.eye(eta.size)
        ],
        axis=1,
    )
    _close(hess, fd, FINITE_DIFF)


def test_chain_model_bad_arguments():
    chain = Chain.from_sizes((3, 2), (1, 3))
    with pytest.raises(TypeError, match="chain"):
        chain_model("chain", Bernoulli())
    with pytest.raises(TypeError, match="likelihood"):
        chain_model(chain, lambda x, t: 0.0)
    with pytest.raises(ValueError, match="likelihood"):
        chain_model(chain, Gaussian(np.eye(2)))
    with pytest.raises(ValueError, match="d_x"):
        chain_model(Chain.from_sizes((3, 2), (1, 2)), Bernoulli())
    with pytest.raises(ValueError, match="prior_std"):
        chain_model(chain, Bernoulli(), prior_std=0.0)


def test_kfac_pairs_need_the_hook():
    _, model, eta, x, eps, x_pred = _problem(MODELS[2])
    with pytest.raises(TypeError, match="kfac_pairs"):
        vp_kfac_pairs(without_hooks(model), eta, x, eps, x_pred)
    with pytest.raises(ValueError, match="x_pred"):
        vp_kfac_pairs(model, eta, x, eps, x_pred[:, :, :1])


def test_decoder_fisher_is_the_theta_block_of_the_vp_fisher(problem):
    """decoder_fisher through the Jacobian hook, through autograd, and F_r's theta-theta block."""
    from refvpng.curvature.latent_fisher import decoder_fisher

    _, model, eta, x, eps, _ = problem
    nl = model.n_lambda
    fast = decoder_fisher(model, eta, x, eps)
    _close(fast, decoder_fisher(without_hooks(model), eta, x, eps))
    _close(fast, vp_fisher_exact(model, eta, x, eps)[nl:, nl:])
