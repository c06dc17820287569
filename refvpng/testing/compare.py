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

from refvpng.testing.tolerances import TIERS

__all__ = ["relative_error", "resolve_tier", "assert_close"]


def resolve_tier(tier: str | float) -> float:
    """Tolerance of a tier name of :data:`~refvpng.testing.tolerances.TIERS`, or a float > 0."""
    if isinstance(tier, str):
        if tier not in TIERS:
            raise ValueError(f"tier must be one of {sorted(TIERS)} or a float, got {tier!r}")
        return TIERS[tier]
    tol = float(tier)
    if not np.isfinite(tol) or tol <= 0:
        raise ValueError(f"tier must be a finite float > 0, got {tier!r}")
    return tol


def _float_array(a, name: str) -> np.ndarray:
    arr = np.asarray(a)
    if arr.dtype == object or not np.issubdtype(arr.dtype, np.number):
        raise TypeError(f"{name} must be a numeric array, got dtype {arr.dtype}")
    return arr.astype(np.float64)


def relative_error(actual: ArrayLike, expected: ArrayLike) -> float:
    r"""The error :math:`e` of the module docstring (``inf`` for NaN/inf in ``actual``).

    Raises
    ------
    ValueError
        If the shapes differ or ``expected`` is not finite.
    """
    a = _float_array(actual, "actual")
    e = _float_array(expected, "expected")
    if a.shape != e.shape:
        raise ValueError(f"actual has shape {a.shape}, expected {e.shape}")
    if not np.all(np.isfinite(e)):
        raise ValueError("expected must be finite")
    if a.size == 0:
        return 0.0
    if not np.all(np.isfinite(a)):
        return float("inf")
    return float(np.max(np.abs(a - e)) / max(1.0, float(np.max(np.abs(e)))))


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
    err = relative_error(actual, expected)
    if not err <= tol:
        a = np.asarray(actual, dtype=np.float64)
        e = np.asarray(expected, dtype=np.float64)
        diff = np.where(np.isfinite(a), np.abs(a - e), np.inf)
        idx = tuple(int(i) for i in np.unravel_index(int(np.argmax(diff)), diff.shape)) if diff.size else ()
        raise AssertionError(
            f"error {err:.3g} > tolerance {tol:.3g} (tier {tier!r}); worst entry {idx}: "
            f"{a[idx]:.6g} vs {e[idx]:.6g}"
        )
