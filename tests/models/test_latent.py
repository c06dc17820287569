"""Validation of the latent-model helpers of :mod:`refvpng.models.latent` (issue 11).

Every helper names the argument it rejects, and a finite input whose result overflows raises
``FloatingPointError`` naming the public function instead of returning inf/NaN.
"""

from __future__ import annotations

import numpy as np
import pytest
from autograd import jacobian

from refvpng.models.latent import (
    check_data,
    check_eps,
    draw_eps,
    draw_model_samples,
    draw_predictive,
    latents,
    outputs,
    split_params,
)
from refvpng.models.small import make_small_model


@pytest.fixture
def problem():
    model = make_small_model("gaussian", local=True, scale="exp", dz=2, d=3, sigma=0.7)
    rng = np.random.default_rng(5)
    eta = 0.3 * rng.standard_normal(model.n_params)
    return model, eta, rng.standard_normal((4, 3)), rng.standard_normal((3, 4, 2))


@pytest.mark.parametrize(
    "call",
    [
        lambda m, eta, x, eps: split_params(m, eta),
        lambda m, eta, x, eps: check_data(m, x),
        lambda m, eta, x, eps: check_eps(m, eps, 4),
        lambda m, eta, x, eps: draw_eps(np.random.default_rng(0), m, 4, 2),
        lambda m, eta, x, eps: latents(m, eta[:16], x, eps),
        lambda m, eta, x, eps: outputs(m, eta, x, eps),
        lambda m, eta, x, eps: draw_model_samples(np.random.default_rng(0), m, eta, 3, 2),
    ],
)
def test_a_non_model_is_rejected_by_name(problem, call):
    _, eta, x, eps = problem
    for bad in (None, "gaussian", object()):
        with pytest.raises(TypeError, match="model must be a refvpng LatentModel"):
            call(bad, eta, x, eps)


def test_latents_and_outputs_validate_plain_arrays(problem):
    model, eta, x, eps = problem
    lam = eta[: model.n_lambda]
    with pytest.raises(ValueError, match=rf"lam must have shape \({model.n_lambda}\)"):
        latents(model, lam[:-1], x, eps)
    with pytest.raises(ValueError, match="x must have 3 columns"):
        outputs(model, eta, x[:, :2], eps)
    with pytest.raises(ValueError, match="x must have at least one row"):
        latents(model, lam, x[:0], eps[:, :0])
    with pytest.raises(ValueError, match="eps must have at least one sample"):
        outputs(model, eta, x, eps[:0])
    with pytest.raises(ValueError, match="eps must have shape"):
        outputs(model, eta, x, eps[:, :3])
    with pytest.raises(TypeError, match="x must be a real floating"):
        latents(model, lam, x + 1j, eps)
    with pytest.raises(ValueError, match="eta contains NaN"):
        outputs(model, np.where(np.arange(eta.size) == 2, np.nan, eta), x, eps)


def test_check_eps_validates_n(problem):
    model, _, _, eps = problem
    for bad, err in ((0, ValueError), (-1, ValueError), (1.5, TypeError), (True, TypeError)):
        with pytest.raises(err, match="n must be"):
            check_eps(model, eps, bad)


def test_overflow_names_the_public_function(problem):
    model, eta, x, eps = problem
    huge = np.full_like(eta, 1e300)
    with pytest.raises(FloatingPointError, match="^latents: "):
        latents(model, huge[: model.n_lambda], x, eps)
    with pytest.raises(FloatingPointError, match="^outputs: "):
        outputs(model, huge, x, eps)
    with pytest.raises(FloatingPointError, match="^draw_predictive: "):
        draw_predictive(np.random.default_rng(0), model, huge, x, eps, 2)


def test_traced_values_pass_and_match_the_plain_call(problem):
    """Inside autograd the helpers skip validation; the result is the same function."""
    model, eta, x, eps = problem
    t = outputs(model, eta, x, eps)
    jac = jacobian(lambda e: outputs(model, e, x, eps))(eta)
    assert jac.shape == t.shape + eta.shape
    h = 1e-6 * np.eye(eta.size)[5]
    fd = (outputs(model, eta + h, x, eps) - outputs(model, eta - h, x, eps)) / 2e-6
    np.testing.assert_allclose(jac[..., 5], fd, rtol=1e-6, atol=1e-8)
