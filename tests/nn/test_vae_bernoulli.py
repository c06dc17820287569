"""Bernoulli terms of logits: the numba twin against its NumPy specification, and the checks."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import expit

from refvpng.nn import bernoulli_terms, bernoulli_terms_numba
from refvpng.testing.tolerances import EXACT

from ._twins import assert_arguments_validated, assert_twin_matches_spec, rel

TWINS = [bernoulli_terms, bernoulli_terms_numba]


@pytest.fixture(params=[(12, 7, 4), (6, 3, 6), (30, 5, 1)], ids=["S3", "S1", "S30"])
def args(request, rng):
    rows, d, n = request.param
    t = 8 * rng.standard_normal((rows, d))
    x = (rng.random((n, d)) < 0.5) * 1.0
    return t, x, rng.random((rows, d))


@pytest.mark.parametrize("dp_dtype", [np.float64, np.float32])
def test_numba_twin_matches_numpy_spec(args, dp_dtype):
    assert_twin_matches_spec(bernoulli_terms, bernoulli_terms_numba, *args, dp_dtype)


def test_spec_is_the_bernoulli_log_likelihood_and_scores(args):
    """Against the textbook formulas, on rows r paired with data row r mod n."""
    t, x, u = args
    xt = np.tile(x, (t.shape[0] // x.shape[0], 1))
    ll, d, dp = bernoulli_terms(t, x, u)
    assert rel(ll, np.sum(xt * t - np.logaddexp(0.0, t), axis=1)) <= EXACT
    assert rel(d, xt - expit(t)) <= EXACT
    assert rel(dp, (u < expit(t)) - expit(t)) <= EXACT


def _bad_args(t, x, u):
    nan_t = t.copy()
    nan_t[0, 0] = np.nan
    return [
        ("t", ValueError, (nan_t, x, u), {}),
        ("t", ValueError, (t[0], x, None), {}),
        ("t", TypeError, (t + 0j, x, None), {}),
        ("x", ValueError, (t, x[:, :-1], None), {}),
        ("x", TypeError, (t, x > 0.5, None), {}),
        # rows of t not a multiple of those of x
        ("x", ValueError, (t, np.resize(x, (t.shape[0] + 1, x.shape[1])), None), {}),
        ("u", ValueError, (t, x, u[:, :-1]), {}),  # slightly short u
        ("u", ValueError, (t, x, u[:-1]), {}),
        ("u", ValueError, (t, x, u.ravel()), {}),  # wrong-shaped u
        ("u", ValueError, (t, x, 1.0 + u), {}),
        ("u", ValueError, (t, x, np.full_like(u, np.nan)), {}),
        ("dp_dtype", TypeError, (t, x, u), {"dp_dtype": np.int32}),
        ("dp_dtype", TypeError, (t, x, u), {"dp_dtype": "nonsense"}),
    ]


@pytest.mark.parametrize("fn", TWINS, ids=["numpy", "numba"])
def test_arguments_are_validated_before_the_kernel(args, fn):
    assert_arguments_validated(fn, *args, _bad_args(*args))
