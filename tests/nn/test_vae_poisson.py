"""Softplus-Poisson terms: the numba twin against its NumPy specification, scipy and the checks."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import expit, gammaln
from scipy.stats import poisson

from refvpng.models import Poisson
from refvpng.nn import poisson_terms, poisson_terms_numba
from refvpng.testing.tolerances import EXACT

from ._twins import assert_arguments_validated, assert_twin_matches_spec, rel

TWINS = [poisson_terms, poisson_terms_numba]


@pytest.fixture(params=[(12, 7, 4), (6, 3, 6), (30, 5, 1)], ids=["S3", "S1", "S30"])
def args(request, rng):
    rows, d, n = request.param
    t = 2.5 * rng.standard_normal((rows, d)) + 0.3
    t[0, 0] = -40.0  # the small-rate branch of log softplus
    x = rng.integers(0, 7, (n, d)) * 1.0
    return t, x, rng.random((rows, d))


@pytest.mark.parametrize("dp_dtype", [np.float64, np.float32])
def test_numba_twin_matches_numpy_spec(args, dp_dtype):
    assert_twin_matches_spec(poisson_terms, poisson_terms_numba, *args, dp_dtype)


def test_spec_is_the_likelihood_family(args):
    """Against refvpng.models.Poisson('softplus') and scipy's Poisson quantile."""
    t, x, u = args
    lik = Poisson("softplus")
    xt = np.tile(x, (t.shape[0] // x.shape[0], 1))
    ll, d, dp = poisson_terms(t, x, u)
    assert rel(ll, lik.log_prob(xt, t)) <= EXACT
    assert rel(d, lik.score(xt, t)) <= EXACT
    x_pred = poisson.ppf(u, lik.rate(t))
    assert rel(dp, lik.score(x_pred, t)) <= EXACT
    # textbook form away from the small-rate branch
    r = np.logaddexp(0.0, t[1:])
    assert rel(ll[1:], np.sum(xt[1:] * np.log(r) - r - gammaln(xt[1:] + 1), axis=1)) <= 1e-10
    assert rel(d[1:], (xt[1:] / r - 1) * expit(t[1:])) <= 1e-10


def test_predictive_samples_have_poisson_moments(rng):
    """x' = F^-1(u; r): mean and variance r, within 5 standard errors."""
    r, n = 2.7, 200_000
    t = np.full((n, 1), np.log(np.expm1(r)))
    _, _, dp = poisson_terms_numba(t, np.zeros((1, 1)), rng.random((n, 1)))
    ratio, sig = expit(t[0, 0]) / r, expit(t[0, 0])
    xp = (dp[:, 0] + sig) / ratio
    assert np.allclose(xp, np.round(xp), atol=1e-9)
    assert abs(xp.mean() - r) <= 5 * np.sqrt(r / n)
    assert abs(xp.var() - r) <= 5 * np.sqrt(2 * r**2 / n + r / n)


def _bad_args(t, x, u):
    huge = t.copy()
    huge[0, 0] = 800.0
    return [
        ("t", ValueError, (t[0], x, None), {}),
        ("x", ValueError, (t, x - 7.0, None), {}),
        ("x", ValueError, (t, x + 0.5, None), {}),
        ("u", ValueError, (t, x, 1.0 + u), {}),
        ("dp_dtype", TypeError, (t, x, u), {"dp_dtype": np.int32}),
        ("rate", FloatingPointError, (huge, x, u), {}),
    ]


@pytest.mark.parametrize("fn", TWINS, ids=["numpy", "numba"])
def test_arguments_are_validated_before_the_kernel(args, fn):
    assert_arguments_validated(fn, *args, _bad_args(*args))
