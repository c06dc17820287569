r"""Softplus-link Poisson terms of outputs: the NumPy specification and its fused numba twin.

The likelihood of the variational Poisson matrix factorisation of Tang & Ranganath (2019),
Section 5.3: :math:`x \sim \operatorname{Poisson}(r)` with rate :math:`r = \operatorname{softplus}(t)`.
Both functions take the same arguments, validate them the same way (before any kernel runs) and
return the same results to :data:`refvpng.testing.tolerances.EXACT` (the predictive samples
exactly); the NumPy function is the specification, the numba one the fast path
:func:`refvpng.nn.vae.vae_step` uses by default. Public names: :func:`refvpng.nn.poisson_terms`
and :func:`refvpng.nn.poisson_terms_numba`.

Predictive samples come from pre-drawn uniforms by inversion of the Poisson CDF: :math:`x'` is
the smallest :math:`k` with :math:`u < \sum_{j \le k} e^{-r} r^j / j!`, the partial sums
accumulated in the same order by both implementations (the search costs :math:`O(r)` per entry,
fine for the small rates of rating data).
"""

from __future__ import annotations

import math

import numba
import numpy as np
from numpy.typing import ArrayLike, DTypeLike
from scipy.special import gammaln

from refvpng.nn._bernoulli_kernel import check_bernoulli_args, terms_numba

__all__ = ["poisson_terms", "poisson_terms_numba"]

MAX_RATE = 700.0
"""Largest rate the CDF inversion accepts (:math:`e^{-r}` underflows float64 near 745)."""

_MAX_SEARCH = 10_000


def check_poisson_args(t, x, u, dp_dtype):
    """Validate the arguments of :func:`poisson_terms` (those of the Bernoulli terms, and counts).

    Raises
    ------
    ValueError
        As ``check_bernoulli_args``, and if ``x`` holds negative or non-integer values.
    """
    t, x, u, dt = check_bernoulli_args(t, x, u, dp_dtype)
    if x.size and (x.min() < 0.0 or np.any(x != np.floor(x))):
        raise ValueError("x must hold non-negative integer counts for a Poisson likelihood")
    return t, x, u, dt


def _log_rate_and_ratio(t):
    r"""Return :math:`r`, :math:`\log r`, :math:`\sigma(t)`, :math:`\sigma(t)/r`; stable for t >= -1000."""
    r = np.logaddexp(0.0, t)
    lo = np.minimum(t, -30.0)
    log_r = np.where(t > -30.0, np.log(np.maximum(r, 1e-300)), lo + np.log1p(-0.5 * np.exp(lo)))
    log_sig = -np.logaddexp(0.0, -t)
    return r, log_r, np.exp(log_sig), np.exp(log_sig - log_r)


def _check_rates(r):
    if r.size and r.max() > MAX_RATE:
        raise FloatingPointError(
            f"Poisson rate softplus(t) = {r.max():.4g} exceeds {MAX_RATE:g}: the CDF inversion underflows"
        )


def poisson_quantile(u, r):
    r"""Smallest :math:`k` with :math:`u < F(k; r)`, the Poisson CDF accumulated term by term.

    Parameters
    ----------
    u : ndarray
        Uniforms in [0, 1).
    r : ndarray
        Rates of the same shape, at most :data:`MAX_RATE`.

    Returns
    -------
    ndarray of float64
    """
    p = np.exp(-r)
    c = p.copy()
    k = np.zeros_like(r)
    for _ in range(_MAX_SEARCH):
        go = (u >= c) & (p > 0.0)
        if not go.any():
            break
        k = np.where(go, k + 1.0, k)
        p = np.where(go, p * r / np.maximum(k, 1.0), p)
        c = np.where(go, c + p, c)
    return k


def poisson_terms_numpy(t, x, u, dp_dtype):
    """:func:`poisson_terms` on checked arguments (no validation)."""
    x = np.tile(x, (t.shape[0] // x.shape[0], 1))
    r, log_r, sig, ratio = _log_rate_and_ratio(t)
    ll = np.sum(x * log_r - r - gammaln(x + 1.0), axis=1)
    d = x * ratio - sig
    if u is None:
        return ll, d, None
    _check_rates(r)
    dp = (poisson_quantile(u, r) * ratio - sig).astype(dp_dtype, copy=False)
    return ll, d, dp


@numba.njit(cache=True)
def _rate_terms(tv):  # pragma: no cover - compiled
    """Rate, its log, sigmoid and sigmoid / rate of one output, as :func:`_log_rate_and_ratio`."""
    soft = math.log1p(math.exp(-abs(tv)))
    r = max(tv, 0.0) + soft
    log_r = math.log(max(r, 1e-300)) if tv > -30.0 else tv + math.log1p(-0.5 * math.exp(tv))
    log_sig = -(max(-tv, 0.0) + soft)
    return r, log_r, math.exp(log_sig), math.exp(log_sig - log_r)


@numba.njit(cache=True)
def _quantile(uv, r):  # pragma: no cover - compiled
    """:func:`poisson_quantile` of one entry, the same partial sums in the same order."""
    p = math.exp(-r)
    cdf, k = p, 0.0
    for _ in range(_MAX_SEARCH):
        if not (uv >= cdf and p > 0.0):
            break
        k += 1.0
        p = p * r / k
        cdf += p
    return k


@numba.njit(parallel=True, cache=True)
def _kernel(t, x, u, dp, want_dp):  # pragma: no cover - compiled
    n_data = x.shape[0]
    ll = np.zeros(t.shape[0])
    d = np.empty_like(t)
    for row in numba.prange(t.shape[0]):
        xrow = x[row % n_data]
        total = 0.0
        for c in range(t.shape[1]):
            r, log_r, sig, ratio = _rate_terms(t[row, c])
            total += xrow[c] * log_r - r - math.lgamma(xrow[c] + 1.0)
            d[row, c] = xrow[c] * ratio - sig
            if want_dp:
                dp[row, c] = _quantile(u[row, c], r) * ratio - sig
        ll[row] = total
    return ll, d


def poisson_terms_numba_checked(t, x, u, dp_dtype):
    """:func:`poisson_terms_numba` on checked arguments (no validation)."""
    if u is not None:
        _check_rates(np.logaddexp(0.0, np.max(t, initial=-np.inf)))
    return terms_numba(t, x, u, dp_dtype, _kernel)


def poisson_terms(
    t: ArrayLike, x: ArrayLike, u: ArrayLike | None = None, *, dp_dtype: DTypeLike = np.float64
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    r"""Log-likelihoods, data scores and (optionally) predictive scores of a softplus-link Poisson.

    The NumPy specification of :func:`poisson_terms_numba`. With :math:`r = \operatorname{softplus}(t)`,

    .. math::
        \ell_r = \sum_c x_{rc} \log r_{rc} - r_{rc} - \log x_{rc}!, \quad
        d_{rc} = (x_{rc} / r_{rc} - 1)\, \sigma(t_{rc}), \quad
        d'_{rc} = (x'_{rc} / r_{rc} - 1)\, \sigma(t_{rc}),

    the last being :math:`\nabla_t \log p(x' \mid t)` at the predictive sample
    :math:`x'_{rc} = F^{-1}(u_{rc}; r_{rc}) \sim \operatorname{Poisson}(r_{rc})` drawn from
    pre-drawn uniforms ``u`` by CDF inversion (Tang & Ranganath 2019, Eq. 15 and Section 5.3).

    Parameters
    ----------
    t : ndarray, shape (R, d)
        Pre-link outputs.
    x : ndarray, shape (n, d)
        Counts (non-negative integers); row :math:`r` of ``t`` goes with row :math:`r \bmod n`.
    u : ndarray, shape (R, d), optional
        Uniforms in [0, 1) from which the predictive counts :math:`x'` are inverted.
    dp_dtype : {float64, float32}, default float64
        Precision of ``dp``.

    Returns
    -------
    (ll, d, dp) : tuple of ndarray
        Shapes ``(R,)``, ``(R, d)`` and ``(R, d)``; ``dp`` is ``None`` without ``u``.

    Raises
    ------
    ValueError, TypeError
        Naming the argument (shapes, dtypes, finiteness, ``u`` outside [0, 1), ``x`` not counts);
        raised before any computation.
    FloatingPointError
        If ``u`` is given and a rate exceeds ``MAX_RATE`` :math:`= 700` (:math:`e^{-r}`
        underflows float64 near 745).

    Examples
    --------
    >>> ll, d, dp = poisson_terms(np.zeros((1, 2)), np.array([[1.0, 0.0]]), np.array([[0.1, 0.9]]))
    >>> ll.round(4), d.round(4), dp.round(4)  # x' = (0, 2) at rate log 2
    (array([-1.7528]), array([[ 0.2213, -0.5   ]]), array([[-0.5   ,  0.9427]]))
    """
    return poisson_terms_numpy(*check_poisson_args(t, x, u, dp_dtype))


def poisson_terms_numba(
    t: ArrayLike, x: ArrayLike, u: ArrayLike | None = None, *, dp_dtype: DTypeLike = np.float64
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """The fused, row-parallel numba twin of :func:`poisson_terms` (same signature).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> t, x, u = rng.standard_normal((4, 3)), np.ones((2, 3)), rng.random((4, 3))
    >>> all(np.allclose(a, b) for a, b in zip(poisson_terms_numba(t, x, u), poisson_terms(t, x, u)))
    True
    """
    return poisson_terms_numba_checked(*check_poisson_args(t, x, u, dp_dtype))
