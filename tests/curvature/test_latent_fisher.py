"""Joint and marginal Fishers of latent-variable models; the singular metric over (phi, theta)."""

from __future__ import annotations

import autograd.numpy as anp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.stats import multivariate_normal

from refvpng.curvature import latent_fisher as lf
from refvpng.curvature.fisher import vp_fisher_exact
from refvpng.models import linear_vae as lv
from refvpng.models import ppca
from refvpng.models.latent import LatentModel, draw_eps
from refvpng.models.likelihoods import Gaussian
from refvpng.models.small import make_small_model
from refvpng.models.variational import MeanFieldGaussian
from refvpng.testing.mc import assert_mc_close, mc_mean_and_se
from refvpng.testing.tolerances import AUTOGRAD, EXACT

D, K = 4, 2


def rel_err(a, b) -> float:
    a, b = np.asarray(a), np.asarray(b)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1.0))


@pytest.fixture(scope="module")
def model():
    return lv.make_model(D, K)


@pytest.fixture(scope="module")
def theta_general():
    rng = np.random.default_rng(11)
    return ppca.pack(rng.standard_normal((D, K)), rng.standard_normal(D), 0.6)


@pytest.fixture(scope="module")
def theta_orth():
    """Orthogonal columns: the mean-field encoder of optimal_encoder is the exact posterior."""
    rng = np.random.default_rng(12)
    W = np.linalg.qr(rng.standard_normal((D, K)))[0] * np.array([2.0, 1.0])
    return ppca.pack(W, rng.standard_normal(D), 0.5)


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


# --------------------------------------------------------------------------------------------
# joint Fisher
# --------------------------------------------------------------------------------------------


def test_joint_score_matches_ppca(model, theta_general):
    rng = np.random.default_rng(0)
    x, z = ppca.sample(rng, theta_general, 6, d=D, k=K)
    s = lf.joint_score(model, theta_general, x, z)
    assert s.shape == (6, model.n_theta)
    assert rel_err(s, ppca.joint_score(theta_general, x, z, d=D, k=K)) <= AUTOGRAD


def test_joint_fisher_mc_is_n_times_per_point_closed_form(model, theta_general):
    n = 3
    F, per = lf.joint_fisher_mc(np.random.default_rng(1), model, theta_general, n, 3000)
    assert per.shape == (3000, model.n_theta, model.n_theta)
    assert np.allclose(F, per.mean(axis=0))
    # ppca Fishers are per point; refvpng's are sums over the n points of a data set
    assert_mc_close(per, n * ppca.joint_fisher_ppca(theta_general, d=D, k=K))


def test_joint_fisher_global_latent():
    """One shared z: the data set is one unit; F_joint = n tau^2 for x_i | z ~ N(theta z, 1)."""
    m = global_linear_model()
    n = 4
    F, per = lf.joint_fisher_mc(np.random.default_rng(2), m, np.array([0.7]), n, 4000)
    assert_mc_close(per, np.array([[float(n)]]))


# --------------------------------------------------------------------------------------------
# importance sampling of p(x) with the encoder as proposal
# --------------------------------------------------------------------------------------------


def test_is_estimate_of_p_x_unbiased_for_two_encoders_with_different_variances(model, theta_orth):
    rng = np.random.default_rng(3)
    x, _ = ppca.sample(rng, theta_orth, 4, d=D, k=K)
    truth = np.exp(ppca.log_marginal(theta_orth, x, d=D, k=K))
    lam_post = lv.optimal_encoder(theta_orth, d=D, k=K)  # exact posterior (orthogonal W)
    lam_wide = lam_post.copy()
    lam_wide[-K:] += np.log(1.5)  # posterior mean, 1.5 x its standard deviation
    lam_prior = np.zeros(model.n_lambda)  # q = p(z) = N(0, I): wider still
    ses = []
    for lam in (lam_wide, lam_prior):
        eta = np.concatenate([lam, theta_orth])
        p_hat, w = lf.marginal_likelihood_is(rng, model, eta, x, 20000)
        assert w.shape == (20000, 4) and np.allclose(p_hat, w.mean(axis=0))
        assert_mc_close(w, truth)  # E[p_hat] = p(x) whatever the encoder
        ses.append(mc_mean_and_se(w)[1] / truth)
    # the encoder changes the variance, not the estimand
    assert np.all(ses[1] > 2.0 * ses[0])
    # and the exact posterior makes every weight equal to p(x)
    _, w = lf.marginal_likelihood_is(rng, model, np.concatenate([lam_post, theta_orth]), x, 5)
    assert rel_err(w / truth, np.ones_like(w)) <= 1e-10


def test_is_global_latent_unbiased():
    m = global_linear_model()
    theta, n = 0.8, 3
    x = np.array([[0.5], [-0.3], [1.2]])
    cov = theta**2 * np.ones((n, n)) + np.eye(n)
    truth = multivariate_normal(np.zeros(n), cov).pdf(x[:, 0])
    eta = np.array([0.1, 0.2, theta])  # q(z) = N(0.1, e^{0.4})
    _, w = lf.marginal_likelihood_is(np.random.default_rng(4), m, eta, x, 20000)
    assert w.shape == (20000, 1)
    assert_mc_close(w, truth)


def test_log_importance_weights_match_ppca(model, theta_general):
    rng = np.random.default_rng(5)
    x, _ = ppca.sample(rng, theta_general, 3, d=D, k=K)
    lam = 0.3 * rng.standard_normal(model.n_lambda)
    eps = rng.standard_normal((7, 3, K))
    log_w, z = lf.log_importance_weights(model, np.concatenate([lam, theta_general]), x, eps)
    A, c = lam[: K * D].reshape(K, D), lam[K * D : K * D + K]
    sigma = np.exp(lam[-K:])
    prop = (lambda xx: xx @ A.T + c, lambda xx: np.diag(sigma**2))
    ref, z_ref = ppca.importance_log_weights(theta_general, x, np.swapaxes(eps, 0, 1), prop, d=D, k=K)
    assert rel_err(log_w, ref.T) <= AUTOGRAD
    assert rel_err(z, np.swapaxes(z_ref, 0, 1)) <= EXACT


# --------------------------------------------------------------------------------------------
# marginal Fisher
# --------------------------------------------------------------------------------------------


def test_marginal_fisher_is_paired_exact_posterior_is_unbiased(model, theta_orth):
    eta = np.concatenate([lv.optimal_encoder(theta_orth, d=D, k=K), theta_orth])
    n = 2
    F, per = lf.marginal_fisher_is(np.random.default_rng(6), model, eta, n, 3000, 4, paired=True)
    assert_mc_close(per, n * ppca.marginal_fisher_ppca(theta_orth, d=D, k=K))


def test_marginal_fisher_is_unpaired_adds_missing_information_over_k(model, theta_orth):
    eta = np.concatenate([lv.optimal_encoder(theta_orth, d=D, k=K), theta_orth])
    K_is = 2
    _, per = lf.marginal_fisher_is(np.random.default_rng(7), model, eta, 1, 3000, K_is)
    truth = (
        ppca.marginal_fisher_ppca(theta_orth, d=D, k=K)
        + ppca.missing_information(theta_orth, d=D, k=K) / K_is
    )
    assert_mc_close(per, truth)


def test_marginal_fisher_global_latent():
    m = global_linear_model()
    theta, n = 0.8, 3
    post_var = 1.0 / (1.0 + n * theta**2)
    # q ignores x for a global latent, so use the prior (valid for every data set) as proposal
    eta = np.array([0.0, 0.0, theta])
    _, per = lf.marginal_fisher_is(np.random.default_rng(8), m, eta, n, 1500, 400, paired=True)
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
    Fd = lf.decoder_fisher(m, eta, x, eps)
    assert rel_err(Fd, Fr[m.n_lambda :, m.n_lambda :]) <= EXACT * 10


def test_decoder_fisher_generic_equals_linear_vae_closed_form(model):
    rng = np.random.default_rng(10)
    eta = 0.5 * rng.standard_normal(model.n_params)
    x = rng.standard_normal((6, D))
    Fd = lf.decoder_fisher(model, eta, x, lv.sigma_point_eps(6, K))
    assert rel_err(Fd, lv.decoder_fisher_closed(eta, x, d=D, k=K)) <= 1e-11


# --------------------------------------------------------------------------------------------
# the singularity over (phi, theta), and the contrast with F_r
# --------------------------------------------------------------------------------------------


def test_marginal_metric_over_phi_theta_is_singular_on_phi(model, theta_orth):
    n = 5
    F = lf.metric_over_phi_theta(model, n * ppca.marginal_fisher_ppca(theta_orth, d=D, k=K))
    assert np.all(F[: model.n_lambda] == 0.0) and np.all(F[:, : model.n_lambda] == 0.0)
    with pytest.raises(lf.SingularMetricError) as info:
        lf.check_metric(F, lf.phi_theta_blocks(model))
    msg = str(info.value)
    nl = model.n_lambda
    assert (
        f"parameters phi[0..{nl - 1}] do not enter the marginal p(x; theta): their rows and "
        "columns of the marginal Fisher are zero; use the q-Fisher (Eq 2) or the VP Fisher F_r "
        "for them"
    ) in msg
    rep = info.value.report
    phi, theta = rep.blocks
    assert phi.singular and phi.rank == 0 and np.array_equal(phi.zero, np.arange(nl))
    # pPCA's marginal Fisher is itself singular along the k(k-1)/2 rotations W -> W R
    assert theta.singular and theta.rank == model.n_theta - K * (K - 1) // 2
    assert theta.zero.size == 0 and "rotations" in theta.message


def test_vp_fisher_gives_phi_a_nonsingular_block(model, theta_orth):
    rng = np.random.default_rng(13)
    x, _ = ppca.sample(rng, theta_orth, 20, d=D, k=K)
    eta = np.concatenate([lv.optimal_encoder(theta_orth, d=D, k=K), theta_orth])
    Fr = vp_fisher_exact(model, eta, x, lv.sigma_point_eps(20, K))
    rep = lf.check_metric(Fr, lf.phi_theta_blocks(model), raise_error=False, metric="VP Fisher")
    phi, theta = rep.blocks
    assert not phi.singular and phi.rank == model.n_lambda and phi.zero.size == 0
    assert not theta.singular
    # F_r mixes the blocks along the 2k latent scale/shift directions: damping is needed
    assert rep.rank == model.n_params - 2 * K and rep.singular
    assert "mix" in rep.messages[0]


def test_joint_fisher_is_regular(model, theta_general):
    F = 3 * ppca.joint_fisher_ppca(theta_general, d=D, k=K)
    rep = lf.check_metric(F, {"theta": slice(None)})
    assert not rep.singular and rep.messages == ()


@given(
    st.integers(0, 10_000),
    st.lists(st.booleans(), min_size=6, max_size=6).filter(lambda z: not all(z)),
)
def test_check_metric_reports_exactly_the_zero_rows(seed, zero):
    rng = np.random.default_rng(seed)
    B = rng.standard_normal((6, 8))
    F = B @ B.T
    zero = np.array(zero)
    F[zero] = 0.0
    F[:, zero] = 0.0
    rep = lf.check_metric(F, [("a", slice(0, 3)), ("b", slice(3, 6))], raise_error=False)
    found = np.concatenate([rep.blocks[0].zero, 3 + rep.blocks[1].zero])
    assert np.array_equal(found, np.flatnonzero(zero))
    assert rep.singular == bool(zero.any())


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
            lambda m, t: lf.marginal_likelihood_is(
                np.random.default_rng(0), m, np.zeros(m.n_params), np.zeros((2, 3)), 4
            ),
            ValueError,
            "x must have 4 columns",
        ),
        (
            lambda m, t: lf.marginal_likelihood_is(
                np.random.default_rng(0), m, np.zeros(m.n_params), np.zeros((2, 4)), 0
            ),
            ValueError,
            "K must be >= 1",
        ),
        (lambda m, t: lf.metric_over_phi_theta(m, np.eye(3)), ValueError, "fisher_theta"),
        (
            lambda m, t: lf.check_metric(np.eye(3), {"a": slice(0, 2), "b": slice(1, 3)}),
            ValueError,
            "blocks must not overlap",
        ),
        (lambda m, t: lf.check_metric(np.eye(3), {"a": [5]}), ValueError, "blocks"),
        (lambda m, t: lf.check_metric(np.ones((2, 3)), {"a": [0]}), ValueError, "fisher must"),
        (lambda m, t: lf.check_metric(np.eye(2), {"a": [0]}, rtol=0.0), ValueError, "rtol"),
        (lambda m, t: lf.check_metric(np.eye(2), "a"), TypeError, "blocks"),
    ],
)
def test_bad_inputs_name_the_argument(model, theta_general, call, exc, match):
    with pytest.raises(exc, match=match):
        call(model, theta_general)


def test_log_joint_is_autograd_friendly(model, theta_general):
    from autograd import grad

    x = np.ones((2, D))
    z = np.zeros((2, K))
    g = grad(lambda th: anp.sum(lf.log_joint(model, th, x, z)))(theta_general)
    assert g.shape == (model.n_theta,)
