"""The generic joint/marginal/decoder Fisher and IS estimators against the pPCA and FA closed forms.

Monte Carlo checks are |estimate - truth| <= k SE with the SE from the same seeded samples. The
closed forms of refvpng.models.ppca are per data point; the estimators sum over the n points.
"""

from __future__ import annotations

import autograd.numpy as anp
import numpy as np
import pytest
from scipy.stats import multivariate_normal

from refvpng.curvature import latent_fisher as lf
from refvpng.curvature import marginal_is as mis
from refvpng.curvature.fisher import vp_fisher_exact
from refvpng.models import linear_vae as lv
from refvpng.models import ppca
from refvpng.models.latent import LatentModel, draw_eps
from refvpng.models.likelihoods import Gaussian
from refvpng.models.small import make_small_model
from refvpng.models.variational import MeanFieldGaussian
from refvpng.testing.mc import assert_mc_close, mc_mean_and_se
from refvpng.testing.tolerances import EXACT

# pPCA (isotropic noise, log-variance) and factor analysis (diagonal noise, variance coordinate)
SPECS = [ppca.PPCASpec(4, 2, "iso", "log"), ppca.PPCASpec(3, 2, "diag", "var")]
SPEC_IDS = ["ppca-iso-log", "fa-diag-var"]


def rel_err(a, b) -> float:
    a, b = np.asarray(a), np.asarray(b)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1.0))


def theta_general(spec, seed=11):
    rng = np.random.default_rng(seed)
    psi = rng.uniform(0.4, 1.2, spec.n_noise)
    return spec.pack(rng.standard_normal((spec.d, spec.k)), rng.standard_normal(spec.d), psi)


def theta_orth(spec, seed=12):
    """Psi^{-1/2} W with orthogonal columns: the mean-field optimal encoder is the exact posterior."""
    rng = np.random.default_rng(seed)
    psi = rng.uniform(0.4, 1.2, spec.n_noise)
    Q = np.linalg.qr(rng.standard_normal((spec.d, spec.k)))[0]
    W = np.sqrt(np.broadcast_to(psi, (spec.d,)))[:, None] * Q * np.array([2.0, 1.0])
    return spec.pack(W, rng.standard_normal(spec.d), psi)


def exact_eta(spec, theta):
    return np.concatenate([lv.optimal_encoder(spec, theta), theta])


@pytest.fixture(params=SPECS, ids=SPEC_IDS)
def spec(request):
    return request.param


def global_linear_model() -> LatentModel:
    """z ~ N(0, 1) shared, x_i | z ~ N(theta z, 1); q(z) = N(m, e^{2 rho})."""
    return LatentModel(
        name="global_linear",
        n_lambda=2,
        n_theta=1,
        latent_dim=1,
        obs_dim=1,
        local=False,
        family=MeanFieldGaussian("exp"),
        likelihood=Gaussian(np.eye(1)),
        encode=lambda lam, x: (lam[:1], lam[1:]),
        decode=lambda theta, z, cov: theta[0] * z,
    )


def draw_x(spec, theta, n, seed):
    return lf.draw_joint(np.random.default_rng(seed), ppca.make_model(spec), theta, n, 1)[0][0]


# --------------------------------------------------------------------------------------------
# joint Fisher
# --------------------------------------------------------------------------------------------


def test_joint_fisher_mc_is_n_times_per_point_closed_form(spec):
    n = 3
    th = theta_general(spec)
    F, per = lf.joint_fisher_mc(np.random.default_rng(1), ppca.make_model(spec), th, n, 4000)
    assert per.shape == (4000, spec.n_params, spec.n_params)
    np.testing.assert_allclose(F, per.mean(axis=0), rtol=EXACT)
    assert_mc_close(per, n * ppca.joint_fisher_closed(spec, th))


def test_joint_fisher_global_latent():
    """One shared z: the data set is one unit; F_joint = n tau^2 for x_i | z ~ N(theta z, 1)."""
    n = 4
    _, per = lf.joint_fisher_mc(np.random.default_rng(2), global_linear_model(), np.array([0.7]), n, 4000)
    assert_mc_close(per, np.array([[float(n)]]))


# --------------------------------------------------------------------------------------------
# importance sampling of p(x) with the encoder as proposal
# --------------------------------------------------------------------------------------------


def test_is_estimate_of_p_x_unbiased_whatever_the_encoder_its_variance_not(spec):
    """E[p_hat(x)] = p(x) for every encoder; Var depends on it and is 0 at the exact posterior."""
    model = ppca.make_model(spec)
    th = theta_orth(spec)
    rng = np.random.default_rng(3)
    x = draw_x(spec, th, 4, 30)
    truth = np.exp(ppca.log_marginal_closed(spec, th, x))
    lam_post = lv.optimal_encoder(spec, th)  # exact posterior
    lam_wide = lam_post.copy()
    lam_wide[-spec.k :] += np.log(1.5)  # posterior mean, 1.5 x its standard deviation
    lam_prior = np.zeros(model.n_lambda)  # q = p(z) = N(0, I): wider still
    ses = []
    for lam in (lam_wide, lam_prior):
        p_hat, w = mis.marginal_likelihood_is(rng, model, np.concatenate([lam, th]), x, 20000)
        assert w.shape == (20000, 4) and np.allclose(p_hat, w.mean(axis=0))
        assert_mc_close(w, truth)
        ses.append(mc_mean_and_se(w)[1] / truth)
    assert np.all(ses[1] > 1.5 * ses[0])  # the encoder changes the variance, not the estimand
    _, w = mis.marginal_likelihood_is(rng, model, np.concatenate([lam_post, th]), x, 5)
    assert rel_err(w / truth, np.ones_like(w)) <= 1e-10


def test_is_global_latent_unbiased():
    theta, n = 0.8, 3
    x = np.array([[0.5], [-0.3], [1.2]])
    truth = multivariate_normal(np.zeros(n), theta**2 * np.ones((n, n)) + np.eye(n)).pdf(x[:, 0])
    eta = np.array([0.1, 0.2, theta])  # q(z) = N(0.1, e^{0.4})
    _, w = mis.marginal_likelihood_is(np.random.default_rng(4), global_linear_model(), eta, x, 20000)
    assert w.shape == (20000, 1)
    assert_mc_close(w, truth)


def test_log_importance_weights_are_bayes_rule(spec):
    """log w = log p(x) + log p(z | x) - log q(z | x), all three in closed form."""
    model = ppca.make_model(spec)
    th = theta_general(spec)
    rng = np.random.default_rng(5)
    x = draw_x(spec, th, 3, 31)
    lam = 0.3 * rng.standard_normal(model.n_lambda)
    log_w, z = mis.log_importance_weights(
        model, np.concatenate([lam, th]), x, rng.standard_normal((7, 3, spec.k))
    )
    A, c, rho = ppca.unpack_encoder(spec, lam)
    mean, cov = ppca.posterior_closed(spec, th, x)
    ref = np.empty((7, 3))
    for i in range(3):
        log_post = multivariate_normal(mean[i], cov).logpdf(z[:, i])
        log_q = multivariate_normal(A @ x[i] + c, np.diag(np.exp(2 * rho))).logpdf(z[:, i])
        ref[:, i] = ppca.log_marginal_closed(spec, th, x[i]) + log_post - log_q
    assert rel_err(log_w, ref) <= 1e-10


def test_is_gradient_of_marginal_likelihood_unbiased_for_any_encoder(spec):
    """(1/K) sum_k w_k grad log p(x, z_k) = p_hat * s_hat is unbiased for grad p(x)."""
    model = ppca.make_model(spec)
    th = theta_orth(spec)
    x = draw_x(spec, th, 1, 32)
    p_true = np.exp(ppca.log_marginal_closed(spec, th, x[0]))
    truth = p_true * ppca.marginal_score_closed(spec, th, x[0])
    S, K = 20_000, 2
    xs = np.repeat(x, S, axis=0)
    lam_wrong = np.concatenate(
        [np.zeros(spec.k * spec.d), 0.3 * np.ones(spec.k), np.log(1.2) * np.ones(spec.k)]
    )
    for lam in (lv.optimal_encoder(spec, th), lam_wrong):
        eps = np.random.default_rng(18).standard_normal((K, S, spec.k))
        score, log_w = mis.marginal_score_is(model, np.concatenate([lam, th]), xs, eps)
        grad_p = score * np.exp(log_w).mean(axis=0)[:, None]
        assert_mc_close(grad_p, truth)


def test_exact_posterior_score_estimate_is_not_zero_variance(spec):
    """q = p(z|x): weights constant (p_hat exact), but the score keeps Cov = F_{z|x} / K."""
    model = ppca.make_model(spec)
    th = theta_orth(spec)
    x = draw_x(spec, th, 1, 33)
    K, S = 4, 20_000
    eps = np.random.default_rng(20).standard_normal((K, S, spec.k))
    score, log_w = mis.marginal_score_is(model, exact_eta(spec, th), np.repeat(x, S, axis=0), eps)
    np.testing.assert_allclose(log_w, ppca.log_marginal_closed(spec, th, x[0]), rtol=1e-12)
    err = score - ppca.marginal_score_closed(spec, th, x[0])
    assert_mc_close(err, 0.0)
    assert_mc_close(K * err[:, :, None] * err[:, None, :], ppca.missing_information_closed(spec, th, x))


# --------------------------------------------------------------------------------------------
# marginal Fisher
# --------------------------------------------------------------------------------------------


def test_marginal_fisher_is_paired_exact_posterior_is_unbiased(spec):
    th = theta_orth(spec)
    n = 2
    _, per = mis.marginal_fisher_is(
        np.random.default_rng(6), ppca.make_model(spec), exact_eta(spec, th), n, 3000, 4, paired=True
    )
    assert_mc_close(per, n * ppca.marginal_fisher_closed(spec, th))


def test_marginal_fisher_is_unpaired_adds_missing_information_over_k(spec):
    """E = F_marg + I_miss / K: between the joint (K = 1) and the marginal Fisher (K -> inf)."""
    th = theta_orth(spec)
    K = 2
    _, per = mis.marginal_fisher_is(
        np.random.default_rng(7), ppca.make_model(spec), exact_eta(spec, th), 1, 3000, K
    )
    truth = ppca.marginal_fisher_closed(spec, th) + ppca.missing_information_closed(spec, th) / K
    assert_mc_close(per, truth)


def test_marginal_fisher_global_latent():
    theta, n = 0.8, 3
    post_var = 1.0 / (1.0 + n * theta**2)
    # q ignores x for a global latent, so use the prior (valid for every data set) as proposal
    eta = np.array([0.0, 0.0, theta])
    _, per = mis.marginal_fisher_is(
        np.random.default_rng(8), global_linear_model(), eta, n, 1500, 400, paired=True
    )
    truth = 2.0 * theta**2 * n**2 * post_var**2
    # self-normalised IS with a non-posterior proposal: O(1/K) bias, small at K = 400
    mean, se = mc_mean_and_se(per[:, 0, 0])
    assert abs(mean - truth) <= 5.0 * se + 0.05 * truth


# --------------------------------------------------------------------------------------------
# decoder Fisher
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("likelihood", ["gaussian", "bernoulli", "poisson_softplus"])
def test_decoder_fisher_is_theta_block_of_vp_fisher(likelihood):
    m = make_small_model(likelihood, local=True, scale="exp", dz=2, d=3)
    rng = np.random.default_rng(9)
    eta = 0.5 * rng.standard_normal(m.n_params)
    x = rng.standard_normal((4, 3)) if likelihood == "gaussian" else rng.poisson(1.0, (4, 3)) * 1.0
    x = np.minimum(x, 1.0) if likelihood == "bernoulli" else x
    eps = draw_eps(rng, m, 4, 3)
    Fr = vp_fisher_exact(m, eta, x, eps)
    assert rel_err(lf.decoder_fisher(m, eta, x, eps), Fr[m.n_lambda :, m.n_lambda :]) <= EXACT * 10


def test_decoder_fisher_generic_equals_linear_vae_closed_form():
    spec = SPECS[0]
    model = lv.make_model(spec)
    rng = np.random.default_rng(10)
    eta = 0.5 * rng.standard_normal(model.n_params)
    x = rng.standard_normal((6, spec.d))
    Fd = lf.decoder_fisher(model, eta, x, lv.sigma_point_eps(6, spec.k))
    assert rel_err(Fd, lv.decoder_fisher_closed(spec, eta, x)) <= 1e-11


def test_decoder_fisher_factor_analysis_at_sigma_points_is_the_theta_block_of_f_r():
    spec = SPECS[1]
    model = ppca.make_model(spec)
    rng = np.random.default_rng(14)
    eta = np.concatenate([0.5 * rng.standard_normal(model.n_lambda), theta_general(spec)])
    x = rng.standard_normal((5, spec.d))
    eps = lv.sigma_point_eps(5, spec.k)
    Fr = vp_fisher_exact(model, eta, x, eps)
    assert (
        rel_err(lf.decoder_fisher(model, eta, x, eps), Fr[model.n_lambda :, model.n_lambda :]) <= EXACT * 10
    )


# --------------------------------------------------------------------------------------------
# bad inputs
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "exc", "match"),
    [
        (
            lambda m, t: lf.joint_fisher_mc(np.random.default_rng(0), m, t, 2, 1),
            ValueError,
            "n_samples must be >= 2",
        ),
        (
            lambda m, t: lf.joint_fisher_mc(np.random.default_rng(0), m, t[:-1], 2, 5),
            ValueError,
            "theta must have shape",
        ),
        (lambda m, t: lf.joint_fisher_mc(0, m, t, 2, 5), TypeError, "rng must be"),
        (
            lambda m, t: mis.marginal_likelihood_is(
                np.random.default_rng(0), m, np.zeros(m.n_params), np.zeros((2, 3)), 4
            ),
            ValueError,
            "x must have 4 columns",
        ),
        (
            lambda m, t: mis.marginal_likelihood_is(
                np.random.default_rng(0), m, np.zeros(m.n_params), np.zeros((2, 4)), 0
            ),
            ValueError,
            "K must be >= 1",
        ),
        (
            lambda m, t: mis.marginal_score_is(
                m, np.zeros(m.n_params), np.zeros((2, 4)), np.zeros((3, 2, 1))
            ),
            ValueError,
            "eps must have shape",
        ),
    ],
)
def test_bad_inputs_name_the_argument(call, exc, match):
    spec = SPECS[0]
    with pytest.raises(exc, match=match):
        call(ppca.make_model(spec), theta_general(spec))


def test_log_joint_is_autograd_friendly():
    from autograd import grad

    spec = SPECS[1]
    model = ppca.make_model(spec)
    x, z = np.ones((2, spec.d)), np.zeros((2, spec.k))
    g = grad(lambda th: anp.sum(lf.log_joint(model, th, x, z)))(theta_general(spec))
    assert g.shape == (model.n_theta,) and np.all(np.isfinite(g))


# ---- validation (issue 11)


def _small_local():
    rng = np.random.default_rng(5)
    model = make_small_model("gaussian", local=True, scale="exp", dz=2, d=3)
    theta = 0.3 * rng.standard_normal(model.n_theta)
    return model, theta, rng.standard_normal((4, 3)), rng.standard_normal((2, 4, 2))


def test_log_prior_checks_the_latent_width():
    model, _, _, z = _small_local()
    assert lf.log_prior(model, z).shape == (2, 4)
    with pytest.raises(ValueError, match=r"z must have shape \(\.\.\., 2\)"):
        lf.log_prior(model, z[..., :1])  # broadcast silently before
    with pytest.raises(TypeError, match="model must be a refvpng LatentModel"):
        lf.log_prior(None, z)


def test_log_joint_and_joint_score_check_their_arguments():
    model, theta, x, z = _small_local()
    for f in (lf.log_joint, lf.joint_score):
        with pytest.raises(ValueError, match="theta contains NaN"):
            f(model, np.full_like(theta, np.nan), x, z)
        with pytest.raises(ValueError, match="x of shape .* and z of shape .* do not broadcast"):
            f(model, theta, x[:3], z)
        with pytest.raises(ValueError, match="cov must be None"):
            f(model, theta, x, z, np.ones((4, 1)))
    with np.errstate(all="ignore"), pytest.raises(FloatingPointError, match="^log_joint: "):
        lf.log_joint(model, theta, x, np.full_like(z, 1e300))


def test_importance_sampling_checks_model_and_output():
    model, _, x, eps = _small_local()
    eta = np.zeros(model.n_params)
    for f in (mis.log_importance_weights, mis.marginal_score_is, lf.decoder_fisher):
        with pytest.raises(TypeError, match="model must be a refvpng LatentModel"):
            f("model", eta, x, eps)
    eta[0] = 1e300
    with np.errstate(all="ignore"), pytest.raises(FloatingPointError, match="^log_importance_weights: "):
        mis.log_importance_weights(model, eta, x, eps)
    with pytest.raises(TypeError, match="rng must be a numpy.random.Generator"):
        mis.marginal_likelihood_is(np.random.RandomState(0), model, np.zeros(model.n_params), x, 2)
