r"""Deterministic comparisons by named tier: :func:`relative_error` and :func:`assert_close`.

The error of an array ``actual`` against ``expected`` is

.. math::
    e = \frac{\max_j |a_j - e_j|}{\max(1, \max_j |e_j|)},

relative to the largest entry of the expected array (absolute below 1), the rule of
``refvpng verify`` and of the conformance checker (:mod:`refvpng.conformance`). Tiers are the
names of :data:`refvpng.testing.tolerances.TIERS` (``"exact"``, ``"solve"``, ``"autograd"``,
``"finite_diff"``) or a float.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from refvpng._checks import as_array, as_positive_scalar
from refvpng.testing.tolerances import TIERS

__all__ = ["relative_error", "resolve_tier", "assert_close"]


def resolve_tier(tier: str | float) -> float:
    """Tolerance of a tier name of :data:`~refvpng.testing.tolerances.TIERS`, or a float > 0."""
    if isinstance(tier, str):
        if tier not in TIERS:
            raise ValueError(f"tier must be one of {sorted(TIERS)} or a float, got {tier!r}")
        return TIERS[tier]
    return as_positive_scalar(tier, "tier")


def _pair(actual, expected) -> tuple[np.ndarray, np.ndarray]:
    a = as_array(actual, "actual", finite=False)
    e = as_array(expected, "expected")
    if a.shape != e.shape:
        raise ValueError(f"actual has shape {a.shape}, expected {e.shape}")
    return a, e


def relative_error(actual: ArrayLike, expected: ArrayLike) -> float:
    r"""The error :math:`e` of the module docstring, for finite arrays of the same shape.

    Raises
    ------
    TypeError
        If an argument is not a real numeric array (complex, bool, object, str).
    ValueError
        If the shapes differ or an array has NaN or infinite entries (a non-finite ``actual``
        has no finite error: :func:`assert_close` reports it as a failure).
    """
    a, e = _pair(actual, expected)
    if not np.all(np.isfinite(a)):
        raise ValueError("actual contains NaN or infinite values: no finite error")
    if a.size == 0:
        return 0.0
    scale = max(1.0, float(np.max(np.abs(e))))
    with np.errstate(over="ignore"):
        diff = float(np.max(np.abs(a - e)))
    if not np.isfinite(diff):  # |a - e| overflows float64: the difference of the scaled arrays
        return float(np.max(np.abs(a / scale - e / scale)))
    return diff / scale


def assert_close(actual: ArrayLike, expected: ArrayLike, tier: str | float = "exact") -> None:
    """Assert ``relative_error(actual, expected) <= tier``.

    Parameters
    ----------
    actual, expected : array_like
        Same shape; ``expected`` finite.
    tier : str or float, default "exact"
        A tier name of :data:`~refvpng.testing.tolerances.TIERS` or a tolerance.

    Raises
    ------
    AssertionError
        Naming the error, the tolerance and the worst entry.

    Examples
    --------
    >>> assert_close([1.0, 2.0], [1.0, 2.0 + 1e-14])
    >>> assert_close([1.0, 2.0], [1.0, 2.1])
    Traceback (most recent call last):
    ...
    AssertionError: error 0.0476 > tolerance 1e-12 (tier 'exact'); worst entry (1,): 2 vs 2.1
    """
    tol = resolve_tier(tier)
    a, e = _pair(actual, expected)
    err = relative_error(a, e) if np.all(np.isfinite(a)) else float("inf")
    if not err <= tol:
        diff = np.where(np.isfinite(a), np.abs(a - e), np.inf)
        idx = tuple(int(i) for i in np.unravel_index(int(np.argmax(diff)), diff.shape)) if diff.size else ()
        raise AssertionError(
            f"error {err:.3g} > tolerance {tol:.3g} (tier {tier!r}); worst entry {idx}: "
            f"{a[idx]:.6g} vs {e[idx]:.6g}"
        )
