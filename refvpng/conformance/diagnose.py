r"""Name the convention mistake behind a failed comparison by testing candidate transformations.

When a user's array ``a`` misses refvpng's ``e``, :func:`diagnose` applies each candidate
transformation :math:`T` to ``e`` and reports those with :math:`T(e) \approx a`:

=============== ==================================================================================
name            transformation of refvpng's answer
=============== ==================================================================================
``mean_n``      :math:`e / n`: averaged over data points where refvpng sums (``F_r`` carries ``n``)
``times_n``     :math:`n e`: a factor ``n`` too many (per-point quantities summed, or ``n`` twice)
``missing_1/M`` ``M e``: Eq 16 summed over the ``M`` predictive samples without the ``1/M``
``times_S``     :math:`S e`: summed over the ``S`` noise samples instead of averaged
``factor_2``    :math:`2e` or :math:`e/2`
``sign``        :math:`-e` (minimising the negative ELBO, or a descent direction)
``transpose``   :math:`e^\top` (non-symmetric matrices)
``row_major``   parameter axes permuted as if matrices were flattened row-major (PyTorch's
                ``parameters_to_vector``) instead of column-major
``kron_swap``   parameter axes permuted as if each layer's block were :math:`G \otimes A`
                instead of :math:`A \otimes G` (row-major :math:`\operatorname{vec}[W, b]`)
``sigma_coord`` ``e`` recomputed in the other :math:`\sigma` coordinate (exp vs softplus)
``float32``     agreement only to single precision, in most entries (values rounded to float32,
                or float32 arithmetic)
=============== ==================================================================================

The transformations are tried on the whole array; a candidate fits when the error of the
transformed answer is below :data:`FIT_TOLERANCE` (much tighter than any of the mistakes).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from refvpng._checks import as_array, as_int
from refvpng.conformance.interop import ParamSpec
from refvpng.testing.compare import relative_error

__all__ = ["Diagnosis", "diagnose", "FIT_TOLERANCE", "FLOAT32_TOLERANCE"]

FIT_TOLERANCE = 1e-9
"""A transformed answer fits when its error (:func:`~refvpng.testing.compare.relative_error`) is below."""

FLOAT32_TOLERANCE = 1e-5
"""Errors below this (and above the tier) are reported as single-precision agreement."""


class Diagnosis(NamedTuple):
    """One candidate that fits: its ``name``, a sentence for the user, and the remaining ``error``."""

    name: str
    message: str
    error: float


def _permute(e: np.ndarray, p: np.ndarray) -> np.ndarray | None:
    size = p.shape[0]
    if e.ndim == 2 and e.shape == (size, size):
        return e[np.ix_(p, p)]
    if e.ndim >= 1 and e.shape[-1] == size:
        return e[..., p]
    return None


def _scalings(n, m, s) -> list:
    out = []
    if n and n > 1:
        out.append(
            (
                "mean_n",
                1.0 / n,
                f"off by 1/n (n = {n}): you average over the data points; refvpng SUMS "
                "over them (its F_r and Hessians carry the factor n)",
            )
        )
        out.append(
            (
                "times_n",
                float(n),
                f"off by a factor n = {n}: a per-point quantity summed over points, "
                "or the factor n applied twice",
            )
        )
    if m and m > 1:
        out.append(
            (
                "missing_1/M",
                float(m),
                f"off by a factor M = {m}: the 1/M of Eq 16 is missing (sum over "
                "the M predictive samples instead of the mean)",
            )
        )
    if s and s > 1:
        out.append(
            (
                "times_S",
                float(s),
                f"off by a factor S = {s}: summed over the S noise samples; refvpng "
                "takes the MEAN over Monte Carlo samples",
            )
        )
    out.append(
        (
            "factor_2",
            2.0,
            "off by a factor 2 (e.g. a Gaussian 1/2 dropped, or a symmetrised sum counted twice)",
        )
    )
    out.append(("factor_2", 0.5, "off by a factor 1/2 (e.g. a Gaussian 1/2 applied twice)"))
    out.append(
        (
            "sign",
            -1.0,
            "sign flipped: refvpng MAXIMISES the ELBO (gradients and directions are ascent directions)",
        )
    )
    return out


def diagnose(
    actual: ArrayLike,
    expected: ArrayLike,
    *,
    n: int | None = None,
    m: int | None = None,
    s: int | None = None,
    packing: ParamSpec | None = None,
    alternates: dict | None = None,
) -> list[Diagnosis]:
    r"""Candidate transformations of ``expected`` that explain ``actual`` (see the module docstring).

    Parameters
    ----------
    actual, expected : array_like
        The user's array and refvpng's, same shape.
    n, m, s : int, optional
        Number of data points, predictive samples and noise samples (enable the scale candidates).
    packing : ParamSpec, optional
        The named blocks of :math:`\eta` (enables ``row_major`` and ``kron_swap`` on axes of
        length ``P``).
    alternates : dict, optional
        ``{name: (array, message)}``: answers recomputed under another convention (the checker
        passes the other :math:`\sigma` coordinate as ``"sigma_coord"``).

    Returns
    -------
    list of Diagnosis
        Those that fit, best first; empty if none does.

    Examples
    --------
    >>> e = np.array([[2.0, 1.0], [1.0, 3.0]])
    >>> [d.name for d in diagnose(e / 4, e, n=4)]
    ['mean_n']
    """
    a = as_array(actual, "actual", finite=False)
    e = as_array(expected, "expected")
    n, m, s = (None if v is None else as_int(v, name) for v, name in ((n, "n"), (m, "m"), (s, "s")))
    if packing is not None and not isinstance(packing, ParamSpec):
        raise TypeError(f"packing must be a ParamSpec or None, got {type(packing).__name__}")
    if alternates is not None and not isinstance(alternates, dict):
        raise TypeError(
            f"alternates must be a dict of (array, message) or None, got {type(alternates).__name__}"
        )
    if a.shape != e.shape or not np.all(np.isfinite(a)):
        return []
    cands: list[tuple[str, np.ndarray, str]] = [(name, f * e, msg) for name, f, msg in _scalings(n, m, s)]
    if (
        e.ndim == 2
        and e.shape[0] == e.shape[1]
        and not np.allclose(e, e.T, rtol=0, atol=1e-12 * max(1, np.abs(e).max()))
    ):
        cands.append(("transpose", e.T, "transposed: refvpng's matrix is the transpose of yours"))
    if packing is not None:
        msgs = {
            "row_major": "parameters in row-major order: flatten each weight matrix column-major "
            "(W.ravel(order='F'), i.e. W.T.flatten() for a PyTorch (out, in) weight), then its bias",
            "kron_swap": "Kronecker order swapped: your layer blocks are G kron A (row-major vec of "
            "[W, b]); refvpng's are A (input) kron G (output) with vec([W, b]) column-major",
        }
        for kind, msg in msgs.items():
            p = packing.permutation(kind)
            if not np.array_equal(p, np.arange(p.shape[0])):
                t = _permute(e, p)
                if t is not None:
                    cands.append((kind, t, msg))
    for name, item in (alternates or {}).items():
        if not isinstance(item, tuple) or len(item) != 2 or not isinstance(item[1], str):
            raise TypeError(f"alternates[{name!r}] must be an (array, message) pair")
        alt = as_array(item[0], f"alternates[{name!r}]")
        msg = item[1]
        if alt.shape == e.shape:
            cands.append((name, alt, msg))
    found = []
    for name, t, msg in cands:
        if np.array_equal(t, e) or not np.all(np.isfinite(t)):
            continue
        err = relative_error(a, t)
        if err <= FIT_TOLERANCE:
            found.append(Diagnosis(name, msg, err))
    err = relative_error(a, e)
    differ = a != e
    widespread = differ.size > 0 and differ.mean() > 0.5  # rounding touches most entries
    if not found and err <= FLOAT32_TOLERANCE and widespread:
        if np.array_equal(a.astype(np.float32).astype(np.float64), a):
            msg = f"float32 rounding: your values are float32 numbers (error {err:.2g}); use float64"
        else:
            msg = f"single-precision agreement only (error {err:.2g}): some step runs in float32"
        found.append(Diagnosis("float32", msg, err))
    return sorted(found, key=lambda d: d.error)
