"""Input and output checks of refvpng.elbo (issue 11); the estimators themselves are tested with
the curvature estimators on tests/cases.py."""

from __future__ import annotations

import numpy as np
import pytest

from refvpng.elbo import elbo, elbo_grad, elbo_per_sample, elbo_value_and_grad, kl_term
from refvpng.models.small import make_small_model


@pytest.fixture
def problem():
    rng = np.random.default_rng(3)
    model = make_small_model("gaussian", local=True, scale="exp", dz=2, d=3)
    return (
        model,
        0.3 * rng.standard_normal(model.n_params),
        rng.standard_normal((4, 3)),
        rng.standard_normal((2, 4, 2)),
    )


@pytest.mark.parametrize("f", [elbo, elbo_per_sample, elbo_grad, elbo_value_and_grad])
def test_zero_samples_rejected(problem, f):
    model, eta, x, eps = problem
    with pytest.raises(ValueError, match=r"eps .*S >= 1"):
        f(model, eta, x, eps[:0])


@pytest.mark.parametrize("f", [elbo, elbo_per_sample, elbo_grad, elbo_value_and_grad])
def test_overflow_raises_naming_the_function(problem, f):
    model, eta, x, eps = problem
    eta = eta.copy()
    eta[0] = 1e300  # a finite mean that overflows the Gaussian log density
    with np.errstate(all="ignore"), pytest.raises(FloatingPointError, match=f"^{f.__name__}: "):
        f(model, eta, x, eps)


def test_kl_term_overflow_and_lam_shape(problem):
    model, eta, x, _ = problem
    lam = eta[: model.n_lambda].copy()
    assert np.isfinite(kl_term(model, lam, x))
    with pytest.raises(ValueError, match="lam must have shape"):
        kl_term(model, lam[:-1], x)
    lam[-1] = 800.0  # exp(800) overflows the variational standard deviation
    with np.errstate(all="ignore"), pytest.raises(FloatingPointError, match="^kl_term: "):
        kl_term(model, lam, x)
