r"""Bernoulli terms of logits: the NumPy specification and its fused numba twin.

Both functions take the same arguments, validate them the same way (before any kernel runs) and
return the same results to :data:`refvpng.testing.tolerances.EXACT`; the NumPy function is the
specification, the numba one the fast path :func:`refvpng.nn.vae.vae_step` uses by default.
Public names: :func:`refvpng.nn.bernoulli_terms` and :func:`refvpng.nn.bernoulli_terms_numba`.
"""

from __future__ import annotations

import numba
import numpy as np
from numpy.typing import ArrayLike, DTypeLike

from refvpng._checks import as_array

__all__ = ["bernoulli_terms", "bernoulli_terms_numba"]

_DP_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def real_array(a, name: str, shape: tuple) -> np.ndarray:
    """:func:`refvpng._checks.as_array` that also rejects complex and boolean input."""
    kind = "" if isinstance(a, (str, bytes)) or a is None else np.asarray(a).dtype.kind
    if kind in ("c", "b"):
        raise TypeError(f"{name} must be a real floating or integer array, got dtype kind {kind!r}")
    return as_array(a, name, shape=shape)


def check_uniforms(u, shape: tuple, name: str = "u") -> np.ndarray:
    """Validate pre-drawn uniforms: real, finite, of ``shape``, in [0, 1)."""
    u = real_array(u, name, shape)
    if u.size and not (u.min() >= 0.0 and u.max() < 1.0):
        raise ValueError(f"{name} must hold uniforms in [0, 1)")
    return u


def check_bernoulli_args(t, x, u, dp_dtype):
    """Validate the arguments of :func:`bernoulli_terms` (shapes, dtypes, finiteness, range).

    Returns
    -------
    t, x, u, dp_dtype
        ``t``, ``x`` (and ``u`` unless ``None``) as float64 arrays, ``dp_dtype`` as a dtype.

    Raises
    ------
    ValueError
        Naming the argument: ``t`` not 2-d or not finite, ``x`` not ``(n, d)`` with ``n``
        dividing the rows of ``t``, ``u`` not of the shape of ``t`` or outside ``[0, 1)``.
    TypeError
        Naming the argument: non-numeric, complex or boolean arrays, or ``dp_dtype`` not
        float32/float64.
    """
    t = real_array(t, "t", (None, None))
    x = real_array(x, "x", (None, t.shape[1]))
    if x.shape[0] == 0 or t.shape[0] % x.shape[0]:
        raise ValueError(f"t must have a positive multiple of the {x.shape[0]} rows of x, got t {t.shape}")
    if u is not None:
        u = check_uniforms(u, t.shape)
    try:
        dt = np.dtype(dp_dtype)
    except TypeError:
        dt = None
    if dt is None or dt not in _DP_DTYPES:  # (np.dtype(None) == float64)
        raise TypeError(f"dp_dtype must be float32 or float64, got {dp_dtype!r}")
    return t, x, u, dt


def terms_numpy(t, x, u, dp_dtype):
    """:func:`bernoulli_terms` on checked arguments (no validation)."""
    x = np.tile(x, (t.shape[0] // x.shape[0], 1))
    e = np.exp(-np.abs(t))
    sig = np.where(t >= 0, 1.0 / (1.0 + e), e / (1.0 + e))
    ll = np.sum(x * t - np.maximum(t, 0.0) - np.log1p(e), axis=1)
    d = x - sig
    dp = None if u is None else ((u < sig) - sig).astype(dp_dtype, copy=False)
    return ll, d, dp


@numba.njit(parallel=True, cache=True)
def _kernel(t, x, u, dp, want_dp):  # pragma: no cover - compiled
    rows, cols = t.shape
    n = x.shape[0]
    ll = np.zeros(rows)
    d = np.empty((rows, cols))
    for r in numba.prange(rows):
        acc = 0.0
        xr = r % n
        for c in range(cols):
            tv = t[r, c]
            e = np.exp(-abs(tv))
            inv = 1.0 / (1.0 + e)
            sig = inv if tv >= 0 else e * inv
            xv = x[xr, c]
            acc += xv * tv - max(tv, 0.0) - np.log1p(e)
            d[r, c] = xv - sig
            if want_dp:
                dp[r, c] = (1.0 if u[r, c] < sig else 0.0) - sig
        ll[r] = acc
    return ll, d


def terms_numba(t, x, u, dp_dtype, kernel=None):
    """:func:`bernoulli_terms_numba` on checked arguments (no validation).

    ``kernel`` is another compiled row kernel of the same signature (default the Bernoulli one).
    """
    t = np.ascontiguousarray(t, dtype=np.float64)
    x = np.ascontiguousarray(x, dtype=np.float64)
    want = u is not None
    uu = np.ascontiguousarray(u, dtype=np.float64) if want else np.zeros((1, 1))
    dp = np.empty(t.shape if want else (0, 0), dtype=dp_dtype)
    ll, d = (_kernel if kernel is None else kernel)(t, x, uu, dp, want)
    return ll, d, (dp if want else None)


def bernoulli_terms(
    t: ArrayLike, x: ArrayLike, u: ArrayLike | None = None, *, dp_dtype: DTypeLike = np.float64
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    r"""Log-likelihoods, data scores and (optionally) predictive scores of Bernoulli logits.

    The NumPy specification of :func:`bernoulli_terms_numba`:

    .. math::
        \ell_r = \sum_c x_{rc} t_{rc} - \operatorname{softplus}(t_{rc}), \quad
        d_{rc} = x_{rc} - \sigma(t_{rc}), \quad
        d'_{rc} = [u_{rc} < \sigma(t_{rc})] - \sigma(t_{rc}),

    the last being :math:`\nabla_t \log p(x' \mid t)` at the predictive sample
    :math:`x'_{rc} = [u_{rc} < \sigma(t_{rc})] \sim \operatorname{Bernoulli}(\sigma(t_{rc}))`
    drawn from pre-drawn uniforms ``u`` (Tang & Ranganath 2019, Eq. 15).

    Parameters
    ----------
    t : ndarray, shape (R, d)
        Logits.
    x : ndarray, shape (n, d)
        Data in [0, 1] (binary for a Bernoulli likelihood); row :math:`r` of ``t`` goes with row
        :math:`r \bmod n` of ``x`` (:math:`R = S n` rows of :math:`S` samples per data point).
    u : ndarray, shape (R, d), optional
        Uniforms in [0, 1) for the predictive samples.
    dp_dtype : {float64, float32}, default float64
        Precision of ``dp`` (``float32`` when it only feeds Kronecker factors).

    Returns
    -------
    ll : ndarray, shape (R,)
    d : ndarray, shape (R, d)
    dp : ndarray, shape (R, d) or None
        ``None`` when ``u`` is not given.

    Raises
    ------
    ValueError, TypeError
        Naming the argument, see ``check_bernoulli_args``; raised before any computation.

    Examples
    --------
    >>> ll, d, dp = bernoulli_terms(np.zeros((1, 2)), np.array([[1.0, 0.0]]))
    >>> ll.round(4), d
    (array([-1.3863]), array([[ 0.5, -0.5]]))
    """
    return terms_numpy(*check_bernoulli_args(t, x, u, dp_dtype))


def bernoulli_terms_numba(
    t: ArrayLike, x: ArrayLike, u: ArrayLike | None = None, *, dp_dtype: DTypeLike = np.float64
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """The fused, row-parallel numba twin of :func:`bernoulli_terms` (same signature).

    One pass over the logits computes all three outputs; results equal the specification's to
    :data:`refvpng.testing.tolerances.EXACT`. Arguments are validated as in
    :func:`bernoulli_terms` before the kernel runs.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> t, x, u = rng.standard_normal((4, 3)), np.ones((2, 3)), rng.random((4, 3))
    >>> all(np.allclose(a, b) for a, b in zip(bernoulli_terms_numba(t, x, u),
    ...                                       bernoulli_terms(t, x, u)))
    True
    """
    return terms_numba(*check_bernoulli_args(t, x, u, dp_dtype))
