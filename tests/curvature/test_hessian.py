"""Eq 3, 7, 9, 11-12 against the closed forms of Section 3.2 and Eq 4."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from refvpng.curvature.fisher import q_fisher
from refvpng.curvature.hessian import (
    elbo_hessian,
    eq3_integral_term_mc,
    eq9_matrix,
    ll_neg_hessian,
)
from refvpng.models import gaussian_mean as gm
from refvpng.models import linear_gaussian as lg
from refvpng.models.latent import draw_eps, draw_model_samples
from refvpng.testing import EXACT, assert_mc_close


@pytest.mark.parametrize("theta", [0.2, 0.5, 1.0 / np.sqrt(3.0), 1.3])
@pytest.mark.parametrize("lam", [-0.7, 0.4])
def test_eq9_matrix_matches_closed_form(theta, lam):
    rng = np.random.default_rng(7)
    model = lg.make_model(sigma=0.6)
    n = 3
    z, xt = draw_model_samples(rng, model, np.array([lam, theta]), n, 3000)
    _, per = eq9_matrix(model, np.array([lam, theta]), z, xt, batches=40)
    assert_mc_close(per, lg.eq9_closed(theta, n))


@pytest.mark.parametrize("theta", [0.2, 0.9])
def test_eq11_predictive_sampling_matches_closed_form(theta):
    rng = np.random.default_rng(8)
    model = lg.make_model(sigma=0.6)
    eta = np.array([0.3, theta])
    z, xt = draw_model_samples(rng, model, eta, 2, 3000)
    xp = theta * z + rng.standard_normal(z.shape)  # x' ~ p(x'|z), independent of x_tilde
    _, per = eq9_matrix(model, eta, z, xt, x_pred=xp, batches=40)
    assert_mc_close(per, lg.eq11_closed(theta, 2))


@given(theta=st.floats(-3, 3, allow_nan=False))
def test_eq9_psd_exactly_when_theta_above_threshold(theta):
    ev = np.linalg.eigvalsh(lg.eq9_closed(theta, 1))
    det = np.prod(ev)
    assert np.isclose(det, 3 * theta**2 - 1, atol=1e-10 * max(1, theta**4))
    if abs(theta) >= lg.PSD_THRESHOLD + 1e-9:
        assert ev[0] >= -1e-12
    elif abs(theta) <= lg.PSD_THRESHOLD - 1e-9:
        assert ev[0] < 0
    assert np.linalg.eigvalsh(lg.eq11_closed(theta, 1))[0] >= -1e-12 * max(1, theta**4)


def test_eq9_estimate_is_indefinite_below_threshold():
    """The MC estimate (not only the closed form) has a negative eigenvalue beyond k SE."""
    rng = np.random.default_rng(9)
    model = lg.make_model(sigma=1.0)
    theta = 0.3
    z, xt = draw_model_samples(rng, model, np.array([0.5, theta]), 1, 4000)
    mean, per = eq9_matrix(model, np.array([0.5, theta]), z, xt, batches=40)
    v = np.linalg.eigh(lg.eq9_closed(theta, 1))[1][:, 0]
    quad = np.einsum("i,sij,j->s", v, per, v)
    assert quad.mean() + 5 * quad.std(ddof=1) / np.sqrt(quad.size) < 0


def test_ll_neg_hessian_eq7_linear_gaussian():
    rng = np.random.default_rng(10)
    model = lg.make_model(sigma=0.8)
    x = lg.make_data(rng, 4, 1.1)
    eta = np.array([0.35, -0.6])
    eps = draw_eps(rng, model, 4, 3000)
    _, per = ll_neg_hessian(model, eta, x, eps, batches=40)
    assert_mc_close(per, lg.ll_neg_hessian_closed(eta, x, 0.8))


def test_eq3_decomposition_gaussian_mean():
    """-d2L/dlam2 = F_q + integral term: each piece against its closed form, and the sum."""
    rng = np.random.default_rng(11)
    eps_corr, sigma, n = 0.2, 0.5, 5
    model = gm.make_model(eps_corr, sigma)
    x = gm.make_data(rng, n, eps_corr)
    lam = np.array([0.2, 0.4])
    h = elbo_hessian(model, lam, x, draw_eps(rng, model, n, 2))
    np.testing.assert_allclose(h, gm.elbo_hessian_closed(n, eps_corr), atol=EXACT * 100)
    fq = q_fisher(model, lam, x)
    np.testing.assert_allclose(fq, gm.q_fisher_closed(sigma), atol=EXACT)
    z = lam + sigma * rng.standard_normal((20000, 2))
    mean_post, cov_post = gm.posterior(x, eps_corr)
    kl = 0.5 * (
        np.trace(np.linalg.solve(cov_post, sigma**2 * np.eye(2)))
        + (mean_post - lam) @ np.linalg.solve(cov_post, mean_post - lam)
        - 2
        + np.linalg.slogdet(cov_post)[1]
        - 2 * np.log(sigma**2)
    )
    _, per = eq3_integral_term_mc(model, lam, x, z, lambda zs: gm.log_posterior(zs, x, eps_corr), baseline=kl)
    truth = gm.eq3_integral_closed(n, eps_corr, sigma)
    assert_mc_close(per, truth)
    assert_mc_close(per + fq, -h)


def test_eq3_decomposition_linear_gaussian():
    rng = np.random.default_rng(12)
    sigma, theta = 0.9, 0.7
    model = lg.make_model(sigma)
    x = lg.make_data(rng, 3, theta)
    eta = np.array([0.1, theta])
    h = elbo_hessian(model, eta, x, draw_eps(rng, model, 3, 2))
    np.testing.assert_allclose(h, lg.elbo_hessian_lambda_closed(theta, x), atol=1e-10)
    np.testing.assert_allclose(q_fisher(model, eta[:1], x), lg.q_fisher_closed(x, sigma), atol=1e-12)
    z = eta[0] * x + sigma * rng.standard_normal((20000,) + x.shape)
    _, per = eq3_integral_term_mc(model, eta, x, z, lambda zs: lg.log_posterior(zs, theta, x))
    assert_mc_close(per, lg.eq3_integral_closed(theta, x, sigma))


def test_eq9_bad_inputs():
    model = lg.make_model()
    with pytest.raises(ValueError, match="z_tilde"):
        eq9_matrix(model, np.zeros(2), np.zeros((2, 3, 2)), np.zeros((2, 3, 1)))
    with pytest.raises(ValueError, match="x_tilde"):
        eq9_matrix(model, np.zeros(2), np.zeros((2, 3, 1)), np.zeros((2, 4, 1)))
    with pytest.raises(ValueError, match="wrt"):
        elbo_hessian(model, np.zeros(2), np.zeros((3, 1)), np.zeros((1, 3, 1)), wrt="theta")


# ---- validation (issue 11)


def test_hessians_check_model_samples_and_output():
    from refvpng.curvature.hessian import elbo_hessian, ll_neg_hessian
    from refvpng.models.small import make_small_model

    rng = np.random.default_rng(7)
    model = make_small_model("gaussian", local=True, scale="exp", dz=2, d=3)
    eta, x, eps = (
        0.3 * rng.standard_normal(model.n_params),
        rng.standard_normal((4, 3)),
        rng.standard_normal((2, 4, 2)),
    )
    for f in (elbo_hessian, ll_neg_hessian):
        with pytest.raises(TypeError, match="model must be a refvpng LatentModel"):
            f(None, eta, x, eps)
        with pytest.raises(ValueError, match=r"eps .*S >= 1"):
            f(model, eta, x, eps[:0])
    big = np.full_like(eta, 1e300)  # finite parameters whose Hessian overflows
    for f in (elbo_hessian, ll_neg_hessian):
        with np.errstate(all="ignore"), pytest.raises(FloatingPointError, match=f"^{f.__name__}: "):
            f(model, big, x, eps)
