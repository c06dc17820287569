"""Input validation shared by every public function.

Every check raises ``ValueError`` or ``TypeError`` whose message names the offending argument,
so that a user comparing another implementation against refvpng sees *which* input was wrong
instead of a NaN three calls later.
"""

from __future__ import annotations

import numbers

import numpy as np

__all__ = [
    "as_array",
    "as_positive_scalar",
    "as_nonneg_scalar",
    "as_int",
    "check_psd",
    "check_same_length",
]


def as_array(
    x,
    name: str,
    *,
    ndim: int | tuple[int, ...] | None = None,
    shape: tuple | None = None,
    finite: bool = True,
    dtype=np.float64,
) -> np.ndarray:
    """Convert ``x`` to a float64 array and check its dimension, shape and finiteness.

    Parameters
    ----------
    x : array_like
        The value to check.
    name : str
        The argument's name, used in error messages.
    ndim : int or tuple of int, optional
        Allowed numbers of dimensions.
    shape : tuple, optional
        Required shape; ``None`` entries match any length.
    finite : bool, default True
        Reject NaN and infinite entries.
    dtype : dtype, default float64
        Target dtype.

    Returns
    -------
    ndarray
        The converted array (a copy only when conversion requires one).

    Raises
    ------
    TypeError
        If ``x`` cannot be converted to a numeric array.
    ValueError
        If the dimension, shape or finiteness check fails.
    """
    if isinstance(x, (str, bytes)) or x is None:
        raise TypeError(f"{name} must be a numeric array, got {type(x).__name__}")
    try:
        arr = np.asarray(x, dtype=dtype)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be a numeric array: {exc}") from None
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if arr.ndim not in allowed:
            raise ValueError(
                f"{name} must have {' or '.join(map(str, allowed))} dimension(s), "
                f"got shape {arr.shape}"
            )
    if shape is not None:
        ok = arr.ndim == len(shape) and all(
            s is None or s == a for s, a in zip(shape, arr.shape, strict=True)
        )
        if not ok:
            want = "(" + ", ".join("*" if s is None else str(s) for s in shape) + ")"
            raise ValueError(f"{name} must have shape {want}, got {arr.shape}")
    if finite and not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr


def as_positive_scalar(x, name: str) -> float:
    """Return ``x`` as a float, requiring it to be finite and strictly positive."""
    if not isinstance(x, numbers.Real) and not (isinstance(x, np.ndarray) and x.ndim == 0):
        raise TypeError(f"{name} must be a real number, got {type(x).__name__}")
    v = float(x)
    if not np.isfinite(v) or v <= 0:
        raise ValueError(f"{name} must be finite and > 0, got {v}")
    return v


def as_nonneg_scalar(x, name: str) -> float:
    """Return ``x`` as a float, requiring it to be finite and non-negative."""
    if not isinstance(x, numbers.Real) and not (isinstance(x, np.ndarray) and x.ndim == 0):
        raise TypeError(f"{name} must be a real number, got {type(x).__name__}")
    v = float(x)
    if not np.isfinite(v) or v < 0:
        raise ValueError(f"{name} must be finite and >= 0, got {v}")
    return v


def as_int(x, name: str, *, minimum: int = 1) -> int:
    """Return ``x`` as an int, requiring ``x >= minimum``."""
    if isinstance(x, bool) or not isinstance(x, (numbers.Integral, np.integer)):
        raise TypeError(f"{name} must be an integer, got {type(x).__name__}")
    v = int(x)
    if v < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {v}")
    return v


def check_psd(m: np.ndarray, name: str, *, rtol: float = 1e-10) -> np.ndarray:
    """Check that ``m`` is a symmetric positive semi-definite matrix.

    Raises
    ------
    ValueError
        If ``m`` is not square, not symmetric to ``rtol`` (relative to its largest entry), or has
        an eigenvalue below ``-rtol`` times its largest eigenvalue magnitude.
    """
    m = as_array(m, name, ndim=2)
    if m.shape[0] != m.shape[1]:
        raise ValueError(f"{name} must be square, got shape {m.shape}")
    scale = max(np.max(np.abs(m)), np.finfo(float).tiny)
    if np.max(np.abs(m - m.T)) > rtol * scale * 10:
        raise ValueError(f"{name} must be symmetric")
    ev = np.linalg.eigvalsh(m)
    if ev[0] < -rtol * max(abs(ev[-1]), abs(ev[0])):
        raise ValueError(f"{name} must be positive semi-definite; smallest eigenvalue {ev[0]:.3g}")
    return m


def check_same_length(name_a: str, a: np.ndarray, name_b: str, b: np.ndarray) -> None:
    """Require two arrays to have the same leading dimension."""
    if a.shape[0] != b.shape[0]:
        raise ValueError(
            f"{name_a} and {name_b} must have the same number of rows, "
            f"got {a.shape[0]} and {b.shape[0]}"
        )
