"""Bayesian logistic regression: the hand-derived hooks against autograd at generic points."""

import numpy as np
import pytest

from refvpng.curvature.fisher import output_jacobian, q_fisher, vp_fisher_exact
from refvpng.elbo import elbo_value_and_grad
from refvpng.models import logistic as lr
from refvpng.models.latent import draw_eps, without_hooks

HOOK = 1e-12


def _close(a, b):
    np.testing.assert_allclose(a, b, rtol=0, atol=HOOK * max(1.0, np.max(np.abs(b))))


@pytest.mark.parametrize("scale", ["exp", "softplus"])
@pytest.mark.parametrize("shared", [True, False])
def test_hooks_match_autograd(scale, shared):
    rng = np.random.default_rng(3)
    model = lr.make_model(dim=4, prior_std=2.5, scale=scale)
    xx, y = lr.make_data(rng, 7)
    design = lr.add_bias(xx[:, :3])
    lam = np.concatenate([rng.standard_normal(4), rng.uniform(-1.5, 0.7, 4)])  # generic rho
    eps = draw_eps(rng, model, 7, 3, shared=shared)
    ref = without_hooks(model)
    v, g = elbo_value_and_grad(model, lam, y[:, None], eps, design)
    v_ref, g_ref = elbo_value_and_grad(ref, lam, y[:, None], eps, design)
    _close(v, v_ref)
    _close(g, g_ref)
    t, j = output_jacobian(model, lam, y[:, None], eps, design)
    t_ref, j_ref = output_jacobian(ref, lam, y[:, None], eps, design)
    _close(t, t_ref)
    _close(j, j_ref)
    _close(
        vp_fisher_exact(model, lam, y[:, None], eps, design),
        vp_fisher_exact(ref, lam, y[:, None], eps, design),
    )


def test_q_fisher_is_the_mean_field_diagonal():
    model = lr.make_model(dim=3, scale="softplus")
    lam = np.array([0.2, -0.4, 1.1, -0.8, 0.3, 1.7])
    sig = np.logaddexp(0, lam[3:])
    sigm = 1 / (1 + np.exp(-lam[3:]))
    want = np.diag(np.concatenate([1 / sig**2, 2 * sigm**2 / sig**2]))
    _close(q_fisher(model, lam, np.zeros((4, 1))), want)


def test_make_model_bad_arguments():
    with pytest.raises(ValueError, match="scale"):
        lr.make_model(scale="fixed")
    with pytest.raises(ValueError, match="prior_std"):
        lr.make_model(prior_std=-1.0)
    with pytest.raises(TypeError, match="dim"):
        lr.make_model(dim=2.5)


# ---- validation (issue 11)


def test_split_and_data_check_their_arguments():
    from refvpng.models.logistic import make_data, train_test_split

    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match=r"train_fraction must be in \[0, 1\]"):
        train_test_split(rng, 10, 1.5)
    with pytest.raises(ValueError, match="train_fraction must be finite and >= 0"):
        train_test_split(rng, 10, -0.1)
    for bad in (np.random.RandomState(0), np.random, 0):
        with pytest.raises(TypeError, match="rng must be a numpy.random.Generator"):
            make_data(bad, 5)
    with pytest.raises(ValueError, match="noise must be finite and >= 0"):
        make_data(rng, 5, noise=np.nan)
