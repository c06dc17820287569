"""Input validation shared by every public function.

Every check raises ``ValueError`` or ``TypeError`` whose message names the offending argument,
so that a user comparing another implementation against refvpng sees *which* input was wrong
instead of a NaN three calls later.
"""

from __future__ import annotations

import functools
import numbers
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

__all__ = [
    "as_array",
    "check_rng",
    "check_finite_output",
    "as_positive_scalar",
    "as_nonneg_scalar",
    "as_finite_scalar",
    "as_int",
    "check_bool",
    "check_choice",
    "is_traced",
    "as_array_or_traced",
    "check_trailing",
    "check_samples",
    "finite_output",
    "as_real_scalar",
    "check_symmetric",
    "check_pairs",
    "as_path",
    "check_psd",
    "check_same_length",
]

_T = TypeVar("_T")
_F = TypeVar("_F", bound=Callable[..., Any])
_A = TypeVar("_A", bound=ArrayLike)


def as_array(
    x: Any,
    name: str,
    *,
    ndim: int | tuple[int, ...] | None = None,
    shape: tuple | None = None,
    finite: bool = True,
    dtype: DTypeLike | None = np.float64,
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
    raw = x if isinstance(x, np.ndarray) else None
    if raw is None and not isinstance(x, (int, float, np.integer, np.floating)):
        try:
            raw = np.asarray(x)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"{name} must be a numeric array: {exc}") from None
    if raw is not None and raw.dtype.kind not in "fiu":
        kind = {"c": "complex", "b": "boolean", "O": "object", "U": "string", "S": "bytes"}.get(
            raw.dtype.kind, str(raw.dtype)
        )
        hint = " (convert with .astype(float))" if raw.dtype.kind == "b" else ""
        raise TypeError(f"{name} must be a real floating or integer array, got a {kind} array{hint}")
    try:
        arr = np.asarray(x if raw is None else raw, dtype=dtype)
    except (TypeError, ValueError, OverflowError) as exc:
        raise TypeError(f"{name} must be a numeric array: {exc}") from None
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if arr.ndim not in allowed:
            raise ValueError(
                f"{name} must have {' or '.join(map(str, allowed))} dimension(s), got shape {arr.shape}"
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


def check_rng(rng: Any, name: str = "rng") -> np.random.Generator:
    """Require a :class:`numpy.random.Generator` (never global state, a ``RandomState`` or a seed)."""
    if not isinstance(rng, np.random.Generator):
        raise TypeError(
            f"{name} must be a numpy.random.Generator (np.random.default_rng(seed)), got {type(rng).__name__}"
        )
    return rng


def check_finite_output(value: _T, func: str, what: str = "result") -> _T:
    """Raise ``FloatingPointError`` if a function's result is not finite although its inputs were.

    Parameters
    ----------
    value : float or ndarray
    func : str
        The function's name, for the message.
    what : str
        Which output.

    Returns
    -------
    The ``value`` unchanged.
    """
    arr = np.asarray(value)
    if not np.all(np.isfinite(arr)):
        raise FloatingPointError(
            f"{func}: the {what} is not finite although every input was; the inputs are of a "
            "magnitude whose result overflows float64"
        )
    return value


def _real_scalar(x: Any, name: str) -> float:
    if isinstance(x, (bool, np.bool_)) or not (
        isinstance(x, numbers.Real) or (isinstance(x, np.ndarray) and x.ndim == 0 and x.dtype.kind in "fiu")
    ):
        raise TypeError(f"{name} must be a real number, got {type(x).__name__}")
    try:
        return float(x)
    except OverflowError:
        raise ValueError(f"{name} is too large for float64") from None


def as_positive_scalar(x: Any, name: str) -> float:
    """Return ``x`` as a float, requiring it to be finite and strictly positive."""
    v = _real_scalar(x, name)
    if not np.isfinite(v) or v <= 0:
        raise ValueError(f"{name} must be finite and > 0, got {v}")
    return v


def as_nonneg_scalar(x: Any, name: str) -> float:
    """Return ``x`` as a float, requiring it to be finite and non-negative."""
    v = _real_scalar(x, name)
    if not np.isfinite(v) or v < 0:
        raise ValueError(f"{name} must be finite and >= 0, got {v}")
    return v


def as_finite_scalar(x: Any, name: str) -> float:
    """Return ``x`` as a float, requiring it to be finite."""
    v = _real_scalar(x, name)
    if not np.isfinite(v):
        raise ValueError(f"{name} must be finite, got {v}")
    return v


def as_int(x: Any, name: str, *, minimum: int = 1) -> int:
    """Return ``x`` as an int, requiring ``x >= minimum``."""
    if isinstance(x, (bool, np.bool_)) or not isinstance(x, (numbers.Integral, np.integer)):
        raise TypeError(f"{name} must be an integer, got {type(x).__name__}")
    v = int(x)
    if v < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {v}")
    return v


def check_bool(x: Any, name: str) -> bool:
    """Require a ``bool`` (or ``numpy.bool_``); raise ``TypeError`` naming ``name``."""
    if not isinstance(x, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {type(x).__name__}")
    return bool(x)


def check_choice(value: Any, name: str, choices: tuple[str, ...]) -> str:
    """Return ``value`` if it is one of the strings ``choices``; raise ``ValueError`` naming ``name``."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")
    return value


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
            f"{name_a} and {name_b} must have the same number of rows, got {a.shape[0]} and {b.shape[0]}"
        )


def is_traced(x: Any) -> bool:
    """Whether ``x`` is an autograd box (a value being differentiated), not a plain array."""
    return not isinstance(x, np.ndarray) and hasattr(x, "_value")


def as_array_or_traced(x: Any, name: str, **kwargs: Any) -> np.ndarray:
    """:func:`as_array` for plain input; an autograd box passes unchanged (validated upstream).

    For the helpers that estimators also call inside autograd tracing: a user's plain array is
    checked, a traced value costs nothing.
    """
    return x if is_traced(x) else as_array(x, name, **kwargs)


def check_trailing(x: _A, name: str, size: int, *, ndim_min: int = 1) -> _A:
    """Require ``x`` (array or autograd box) to have at least ``ndim_min`` axes and ``size`` columns."""
    shape = np.shape(x)
    if len(shape) < ndim_min or shape[-1] != size:
        raise ValueError(f"{name} must have shape (..., {size}), got {shape}")
    return x


def check_samples(arr: np.ndarray, name: str, *, axis: int = 0, what: str = "S") -> np.ndarray:
    """Require at least one Monte Carlo sample along ``axis`` of ``arr`` (``S >= 1``, ``M >= 1``)."""
    if arr.ndim <= axis or arr.shape[axis] < 1:
        raise ValueError(
            f"{name} must have at least one sample along axis {axis} ({what} >= 1), got shape {arr.shape}"
        )
    return arr


def _nonfinite_leaf(value: Any) -> bool:
    if isinstance(value, (float, np.floating, np.ndarray)):
        arr = np.asarray(value)
        return arr.dtype.kind in "fc" and not np.all(np.isfinite(arr))
    if isinstance(value, (tuple, list)):
        return any(_nonfinite_leaf(v) for v in value)
    return False


def finite_output(func: _F) -> _F:
    """Decorator: the function's float/array result (also inside tuples) must be finite.

    For estimators, closed forms and other pure functions of validated inputs: a result that
    overflows (inf/NaN, Python's ``OverflowError`` from ``math`` or float powers, or a
    ``ZeroDivisionError`` by a Python float that underflowed to zero) raises
    ``FloatingPointError`` naming the function instead of being returned; one raised by a
    helper inside it is re-raised with the public function's name in front. NumPy's overflow and
    invalid-value warnings are silenced inside: the result is checked instead, and an overflow
    that reaches it is this error rather than a warning followed by inf/NaN.
    """
    name = func.__name__

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            with np.errstate(over="ignore", invalid="ignore"):
                out = func(*args, **kwargs)
        except FloatingPointError as exc:
            if str(exc).startswith(f"{name}:"):
                raise
            raise FloatingPointError(f"{name}: {exc}") from None
        except (OverflowError, ZeroDivisionError):  # Python floats: x**2 overflows or underflows to 0
            raise FloatingPointError(
                f"{name}: the result overflows float64 at the magnitude of the inputs"
            ) from None
        if _nonfinite_leaf(out):
            check_finite_output(np.nan, name)
        return out

    return wrapper  # type: ignore[return-value]  # functools.wraps keeps the signature


def as_real_scalar(x: Any, name: str) -> float:
    """Return ``x`` as a float, requiring a real number (NaN and inf allowed; bool, complex, arrays not)."""
    return _real_scalar(x, name)


def check_symmetric(m: Any, name: str, *, rtol: float = 1e-10) -> np.ndarray:
    """Require a finite real square matrix symmetric to ``rtol`` relative to its largest entry."""
    m = as_array(m, name, ndim=2)
    if m.shape[0] != m.shape[1]:
        raise ValueError(f"{name} must be square, got shape {m.shape}")
    scale = np.max(np.abs(m)) if m.size else 0.0
    if m.size and np.max(np.abs(m - m.T)) > rtol * max(scale, np.finfo(float).tiny) * 10:
        raise ValueError(f"{name} must be symmetric")
    return m


def check_pairs(pairs: Any, name: str = "pairs") -> tuple:
    """Require a non-empty sequence of per-layer ``(a_bar, g)`` pairs; return it as a tuple."""
    if isinstance(pairs, (str, bytes)) or not isinstance(pairs, (list, tuple)) or not pairs:
        raise TypeError(
            f"{name} must be a non-empty sequence of (a_bar, g) pairs, got {type(pairs).__name__}"
        )
    for k, p in enumerate(pairs):
        if isinstance(p, (str, bytes)) or not isinstance(p, (list, tuple)) or len(p) != 2:
            raise TypeError(f"{name}[{k}] must be an (a_bar, g) pair, got {type(p).__name__}")
    return tuple(pairs)


def as_path(x: Any, name: str = "path") -> Path:
    """Return ``x`` as a :class:`pathlib.Path`, requiring a ``str`` or ``os.PathLike``."""
    import os
    from pathlib import Path

    if not isinstance(x, (str, os.PathLike)):
        raise TypeError(f"{name} must be a str or os.PathLike path, got {type(x).__name__}")
    return Path(x)
