"""Bernoulli terms of logits: the numba twin against its NumPy specification, and the checks."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import expit

from refvpng.nn import bernoulli_terms, bernoulli_terms_numba
from refvpng.testing.tolerances import EXACT

TWINS = [bernoulli_terms, bernoulli_terms_numba]


def _rel(a, b):
    return np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300)


@pytest.fixture(params=[(12, 7, 4), (6, 3, 6), (30, 5, 1)], ids=["S3", "S1", "S30"])
def args(request, rng):
    rows, d, n = request.param
    t = 8 * rng.standard_normal((rows, d))
    x = (rng.random((n, d)) < 0.5) * 1.0
    return t, x, rng.random((rows, d))


@pytest.mark.parametrize("dp_dtype", [np.float64, np.float32])
def test_numba_twin_matches_numpy_spec(args, dp_dtype):
    t, x, u = args
    spec = bernoulli_terms(t, x, u, dp_dtype=dp_dtype)
    twin = bernoulli_terms_numba(t, x, u, dp_dtype=dp_dtype)
    for a, b in zip(twin, spec, strict=True):
        assert a.dtype == b.dtype and a.shape == b.shape
        assert _rel(a, b) <= EXACT
    assert spec[2].dtype == np.dtype(dp_dtype)
    ll, d, dp = bernoulli_terms_numba(t, x)
    assert dp is None and np.array_equal(ll, twin[0]) and np.array_equal(d, twin[1])


def test_spec_is_the_bernoulli_log_likelihood_and_scores(args):
    """Against the textbook formulas, on rows r paired with data row r mod n."""
    t, x, u = args
    xt = np.tile(x, (t.shape[0] // x.shape[0], 1))
    ll, d, dp = bernoulli_terms(t, x, u)
    assert _rel(ll, np.sum(xt * t - np.logaddexp(0.0, t), axis=1)) <= EXACT
    assert _rel(d, xt - expit(t)) <= EXACT
    assert _rel(dp, (u < expit(t)) - expit(t)) <= EXACT


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
    t, x, u = args
    fn(t, x, u)
    for name, exc, a, kw in _bad_args(t, x, u):
        with pytest.raises(exc, match=name):
            fn(*a, **kw)
