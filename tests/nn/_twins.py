"""Shared checks of a likelihood-terms kernel pair: the NumPy specification and its numba twin.

Both :func:`refvpng.nn.bernoulli_terms` and :func:`refvpng.nn.poisson_terms` return
``(log_lik, d_logits, d_predictive)`` for logits ``t`` of shape ``(rows, d)``, data ``x`` of
shape ``(n, d)`` (row ``r`` pairs with data row ``r mod n``) and uniforms ``u`` for the
predictive draws; their numba twins must agree with them entry by entry.
"""

from __future__ import annotations

import numpy as np
import pytest

from refvpng.testing.tolerances import EXACT


def rel(a, b) -> float:
    """Largest absolute difference relative to the largest entry of ``b`` (no floor at 1)."""
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


def assert_twin_matches_spec(spec, twin, t, x, u, dp_dtype) -> None:
    """The twin's three outputs equal the spec's (dtype, shape, EXACT); without ``u`` no predictive."""
    want = spec(t, x, u, dp_dtype=dp_dtype)
    got = twin(t, x, u, dp_dtype=dp_dtype)
    for a, b in zip(got, want, strict=True):
        assert a.dtype == b.dtype and a.shape == b.shape
        assert rel(a, b) <= EXACT
    assert want[2].dtype == np.dtype(dp_dtype)
    ll, d, dp = twin(t, x)
    assert dp is None and np.array_equal(ll, got[0]) and np.array_equal(d, got[1])


def assert_arguments_validated(fn, t, x, u, bad) -> None:
    """``fn`` accepts the good arguments and raises the named error for each row of ``bad``.

    ``bad`` rows are ``(argument name, exception type, positional args, keyword args)``.
    """
    fn(t, x, u)
    for name, exc, a, kw in bad:
        with pytest.raises(exc, match=name):
            fn(*a, **kw)
