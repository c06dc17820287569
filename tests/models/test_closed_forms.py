"""The closed forms of Eq 4-5 and Section 3.2 against the generic estimators and autograd."""

import numpy as np
import pytest
from autograd import grad, hessian

from refvpng.curvature.fisher import q_fisher, vp_fisher_exact
from refvpng.curvature.hessian import ll_neg_hessian
from refvpng.elbo import elbo_grad, elbo_per_sample
from refvpng.models import gaussian_mean as gm
from refvpng.models import linear_gaussian as lg
from refvpng.models.latent import draw_eps, without_hooks
from refvpng.testing import AUTOGRAD, EXACT, assert_mc_close


@pytest.mark.parametrize("scale", ["fixed", "exp", "softplus"])
def test_gaussian_mean_elbo_matches_mc(scale, rng):
    eps_corr, n = 0.05, 8
    model = gm.make_model(eps_corr, 0.6 if scale == "fixed" else None, scale)
    x = gm.make_data(rng, n, eps_corr)
    lam = np.array([0.4, -0.1]) if scale == "fixed" else np.array([0.4, -0.1, -0.3, 0.2])
    per = elbo_per_sample(model, lam, x, draw_eps(rng, model, n, 4000))
    assert_mc_close(per, gm.elbo_closed(lam, x, eps_corr, 0.6 if scale == "fixed" else None, scale))


def test_gaussian_mean_gradient_eq5_and_hessian(rng):
    eps_corr, n, sigma = 0.01, 10, 0.3
    model = gm.make_model(eps_corr, sigma)
    x = gm.make_data(rng, n, eps_corr)
    lam = np.array([0.2, 0.7])
    f = lambda lv: gm.elbo_closed(lv, x, eps_corr, sigma)  # noqa: E731
    # Eq 5 against a finite difference of the closed-form ELBO (which autograd cannot trace).
    h = 1e-5
    fd = np.array([(f(lam + h * e) - f(lam - h * e)) / (2 * h) for e in np.eye(2)])
    np.testing.assert_allclose(gm.elbo_grad_closed(lam, x, eps_corr), fd, rtol=1e-6)
    # Antithetic noise makes the reparameterisation gradient exact for this linear model.
    e = draw_eps(rng, model, n, 3)
    eps = np.concatenate([e, -e])
    np.testing.assert_allclose(
        elbo_grad(model, lam, x, eps), gm.elbo_grad_closed(lam, x, eps_corr), atol=AUTOGRAD * 1e3
    )
    np.testing.assert_allclose(
        vp_fisher_exact(model, lam, x, e), gm.vp_fisher_closed(n, eps_corr), rtol=EXACT * 100
    )
    np.testing.assert_allclose(q_fisher(model, lam, x), gm.q_fisher_closed(sigma), rtol=EXACT)


def test_gaussian_mean_optimum_is_posterior_mean(rng):
    eps_corr, n = 0.01, 10
    x = gm.make_data(rng, n, eps_corr)
    mean, cov = gm.posterior(x, eps_corr)
    np.testing.assert_allclose(gm.elbo_grad_closed(mean, x, eps_corr), 0.0, atol=1e-10)
    np.testing.assert_allclose(
        mean, np.linalg.solve(n * np.eye(2) + gm.covariance(eps_corr), x.sum(0)), rtol=1e-12
    )
    prec = np.linalg.inv(gm.covariance(eps_corr))
    ev, vec = np.linalg.eigh(prec)
    np.testing.assert_allclose(ev, [1 / (2 - eps_corr), 1 / eps_corr], rtol=1e-10)
    np.testing.assert_allclose(np.abs(vec[:, 1]), np.ones(2) / np.sqrt(2), rtol=1e-10)


def test_linear_gaussian_closed_forms_against_autograd(rng):
    sigma = 0.7
    model = lg.make_model(sigma)
    x = lg.make_data(rng, 6, 1.2)
    eta = np.array([0.3, -0.8])
    elbo_fn = lambda e: lg.elbo_closed(e, x, sigma)  # noqa: E731
    h = 1e-5
    fd = np.array([(elbo_fn(eta + h * v) - elbo_fn(eta - h * v)) / (2 * h) for v in np.eye(2)])
    np.testing.assert_allclose(lg.elbo_grad_closed(eta, x, sigma), fd, rtol=1e-6)
    per = elbo_per_sample(model, eta, x, draw_eps(rng, model, 6, 4000))
    assert_mc_close(per, lg.elbo_closed(eta, x, sigma))
    eps = draw_eps(rng, model, 6, 4000)
    # F_r: per-sample exact matrices, mean within k SE of the closed form
    per_f = np.stack([vp_fisher_exact(model, eta, x, eps[s : s + 1]) for s in range(0, 4000, 10)])
    assert_mc_close(per_f, lg.vp_fisher_closed(eta, x, sigma))
    _, per_h = ll_neg_hessian(model, eta, x, eps, batches=40)
    assert_mc_close(per_h, lg.ll_neg_hessian_closed(eta, x, sigma))


def test_linear_gaussian_elbo_closed_form_is_autograd_consistent(rng):
    """The closed-form gradient and the autograd gradient of the expected ELBO agree."""
    import autograd.numpy as anp

    sigma = 0.5
    x = lg.make_data(rng, 5, 0.9)
    xv = x[:, 0]

    def expected_elbo(e):
        lam, th = e[0], e[1]
        ell = -0.5 * anp.log(2 * anp.pi) - 0.5 * ((1 - th * lam) ** 2 * xv**2 + th**2 * sigma**2)
        kl = 0.5 * (sigma**2 + lam**2 * xv**2 - 1.0 - anp.log(sigma**2))
        return anp.sum(ell - kl)

    eta = np.array([0.2, 1.1])
    np.testing.assert_allclose(grad(expected_elbo)(eta), lg.elbo_grad_closed(eta, x, sigma), rtol=AUTOGRAD)
    np.testing.assert_allclose(expected_elbo(eta), lg.elbo_closed(eta, x, sigma), rtol=1e-14)
    hl = hessian(expected_elbo)(eta)[0, 0]
    np.testing.assert_allclose(hl, lg.elbo_hessian_lambda_closed(1.1, x)[0, 0], rtol=AUTOGRAD)


def test_elbo_per_sample_depends_only_on_its_own_noise(rng):
    """Row s of elbo_per_sample uses eps[s] alone (the samples are i.i.d., which the SE needs)."""
    model = lg.make_model(0.5)
    x = lg.make_data(rng, 3)
    eps = draw_eps(rng, model, 3, 5)
    eta = np.array([0.1, 0.2])
    full = elbo_per_sample(model, eta, x, eps)
    for s in range(5):
        assert full[s] == elbo_per_sample(model, eta, x, eps[s : s + 1])[0]


def test_closed_form_bad_inputs():
    with pytest.raises(ValueError, match="eps_corr"):
        gm.covariance(2.5)
    with pytest.raises(ValueError, match="eps_corr"):
        gm.covariance(-0.1)
    with pytest.raises(ValueError, match="sigma"):
        lg.make_model(0.0)
    with pytest.raises(ValueError, match="x must have shape"):
        lg.vp_fisher_closed(np.zeros(2), np.zeros((3, 2)), 1.0)
    with pytest.raises(ValueError, match="lam"):
        gm.elbo_grad_closed(np.zeros(3), np.zeros((2, 2)), 0.1)


def test_edge_cases_found_in_review():
    import warnings

    from refvpng.models import logistic as lr
    from refvpng.models.variational import MeanFieldGaussian
    from refvpng.testing import assert_mc_close as amc

    # logistic fast gradient stays finite and equals the generic path when softplus(rho) underflows
    rng = np.random.default_rng(0)
    model = lr.make_model()
    x, y = lr.make_data(rng, 20)
    design = lr.add_bias(x)
    lam = np.concatenate([rng.standard_normal(5), np.full(5, -800.0)])
    eps = draw_eps(rng, model, 20, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        g = elbo_grad(model, lam, y[:, None], eps, design)  # the hand-derived hook
    assert np.all(np.isfinite(g))
    ref = elbo_grad(without_hooks(model), lam, y[:, None], eps, design)
    np.testing.assert_allclose(g, ref, rtol=1e-10, atol=1e-12)
    # a fixed sigma whose 1/sigma^2 overflows is an error, not inf/NaN
    with pytest.raises(ValueError, match="sigma"):
        MeanFieldGaussian("fixed", 1e-200).fisher_diag(None, (2,))
    with pytest.raises(ValueError, match="sigma"):
        gm.q_fisher_closed(1e-160)
    # shapes and non-finite values are rejected, never broadcast
    x1 = lg.make_data(rng, 3)
    with pytest.raises(ValueError, match="z must have shape"):
        lg.log_posterior(np.zeros(3), 0.5, x1)
    with pytest.raises(ValueError, match="theta"):
        lg.eq9_closed(float("nan"), 3)
    with pytest.raises(ValueError, match="truth must be a scalar"):
        amc(np.ones((10, 2, 2)), np.ones((1, 1)))


def test_small_model_packs_column_major():
    """theta = (W.ravel(order="F"), b): the package-wide vec order of refvpng.nn.mlp."""
    from refvpng.models.small import make_small_model

    model = make_small_model("gaussian", local=True, scale="fixed", dz=2, d=3)
    w = np.array([[1.0, -2.0], [0.5, 3.0], [-1.5, 0.25]])  # (d, dz)
    b = np.array([0.1, 0.2, -0.3])
    theta = np.concatenate([w.ravel(order="F"), b])
    z = np.array([[0.3, -0.7]])
    np.testing.assert_allclose(model.decode(theta, z, None), np.tanh(z) @ w.T + b, rtol=1e-15)
    a = np.array([[1.0, 2.0, 3.0], [-1.0, 0.5, 0.0]])  # (dz, d)
    lam = np.concatenate([a.ravel(order="F"), [0.4, -0.4]])
    x = np.array([[0.2, -0.1, 0.7]])
    np.testing.assert_allclose(model.encode(lam, x)[0], x @ a.T + [0.4, -0.4], rtol=1e-15)


# ---- validation (issue 11): scalar arguments and overflow of the closed forms


def test_closed_form_scalars_are_checked():
    from refvpng.models import gaussian_mean as gm
    from refvpng.models import linear_gaussian as lg

    x = np.ones((3, 1))
    for f in (
        lambda th: lg.eq9_closed(th, 3),
        lambda th: lg.posterior(th, x),
        lambda th: lg.elbo_hessian_lambda_closed(th, x),
    ):
        with pytest.raises(ValueError, match="theta must be finite"):
            f(np.nan)
        with pytest.raises(TypeError, match="theta must be a real number"):
            f(1.0 + 1j)
    with pytest.raises(ValueError, match="sigma must be finite and > 0"):
        gm.q_fisher_closed(0.0)
    with pytest.raises(ValueError, match="scale must be 'fixed', 'exp' or 'softplus'"):
        gm.elbo_closed(np.zeros(2), np.ones((3, 2)), 0.1, 1.0, "bogus")
    with pytest.raises(ValueError, match="z must have shape"):
        gm.log_posterior(np.zeros(3), np.ones((3, 2)), 0.1)
    with pytest.raises(TypeError, match="rng must be a numpy.random.Generator"):
        lg.make_data(np.random.RandomState(0), 3)


def test_closed_form_overflow_names_the_function():
    from refvpng.models import linear_gaussian as lg

    with pytest.raises(FloatingPointError, match="^eq9_closed: "):
        lg.eq9_closed(1e200, 3)
    with np.errstate(all="ignore"), pytest.raises(FloatingPointError, match="^eq3_integral_closed: "):
        lg.eq3_integral_closed(1.0, np.ones((3, 1)), 1e-200)
