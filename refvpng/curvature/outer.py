r"""The Fisher outer-product kernel :math:`F = \sum_k w_k\, b_k b_k^\top`.

Every empirical Fisher in the package ends in this sum over rows :math:`b_k` of a matrix
:math:`B`: the Monte Carlo variational predictive Fisher of Eq. (16) of Tang & Ranganath (2019),

.. math::
    \hat F_r = \frac{1}{M} \sum_{k=1}^{n} \sum_{i=1}^{M} b_{ik} b_{ik}^\top,

is ``outer_sum(B, weights)`` with the :math:`nM` score vectors :math:`b_{ik}` stacked as the
rows of ``B`` and every weight equal to :math:`1/M` (or ``outer_sum(B) / M``).

Two implementations with the same signature:

- :func:`outer_sum_numpy` is the specification: the rows scaled by :math:`\sqrt{w_k}` (the
  weights are non-negative) and one BLAS ``syrk``, one triangle mirrored onto the other.
- :func:`outer_sum_numba` is its numba twin, a streaming cache-blocked kernel (in the private
  module ``refvpng.curvature._outer_kernel``) that allocates nothing of size ``K * P``
  besides ``B`` itself.

:func:`outer_sum` picks between them (``method="auto"``, rule in its docstring), and
:func:`outer_init` / :func:`outer_update` accumulate the same sum from chunks of rows, so a
caller never needs to hold all :math:`b_k` at once.

Conventions (stated once)
-------------------------
*Sum, not mean.* Nothing is divided by ``K``; pass ``weights`` (e.g. :math:`1/M`) for the
mean over predictive samples. *Symmetry.* Every returned matrix is exactly symmetric.
*Determinism.* Each path gives bit-identical output for identical input on one machine: the
numba kernel's summation order depends on the shape only, never on the number of threads, and
``"auto"`` is a fixed function of the shape. Floating-point contraction (FMA) and fastmath are
off. The NumPy path and the numba path agree to :data:`refvpng.testing.tolerances.EXACT`
relative to the largest entry, not bit for bit.

References
----------
.. [1] Y. Tang and R. Ranganath, "The Variational Predictive Natural Gradient", ICML 2019,
   Eq. (16).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from scipy.linalg.blas import dsyrk

from refvpng._checks import as_array, as_int
from refvpng.curvature._outer_kernel import PARALLEL_MIN_WORK, numba_accumulate

__all__ = [
    "outer_sum",
    "outer_sum_numpy",
    "outer_sum_numba",
    "outer_init",
    "outer_update",
    "outer_auto_method",
    "gram_syrk",
    "mirror_upper",
]

_METHODS = ("numpy", "numba", "auto")

# The "auto" rule (outer_auto_method), set from validation/bench/bench_outer.py.
_AUTO_MIN_WORK = PARALLEL_MIN_WORK  # K * P**2 below which "auto" always takes NumPy
_AUTO_NUMBA_WEIGHTED = True  # weighted: numba (the NumPy spec pays a K x P temporary)


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------


def _check_b(B, name: str) -> np.ndarray:
    """Return ``B`` as a 2-D float64 array, naming ``name`` in errors.

    Finiteness is checked on the result by :func:`_finite_or_raise` instead: a NaN or an
    infinity anywhere in column ``i`` of ``B`` makes ``F_ii`` NaN or infinite, so the full scan of
    ``B`` (and its ``K x P`` boolean temporary) is only paid when something is wrong.
    """
    if isinstance(B, np.ndarray) and B.dtype.kind in "cSUVMm":
        raise TypeError(f"{name} must be a real numeric array, got dtype {B.dtype}")
    if np.iscomplexobj(B):
        raise TypeError(f"{name} must be a real numeric array, got complex values")
    return as_array(B, name, ndim=2, finite=False)


def _finite_or_raise(F: np.ndarray, b: np.ndarray, name: str, func: str) -> np.ndarray:
    """Return ``F``, or raise if it is not finite (seen on its diagonal).

    ``ValueError`` naming ``name`` if ``b`` has NaN or infinite entries, else
    ``FloatingPointError`` naming ``func``: a finite ``b`` whose squares overflow float64.
    (Every ``|F_ij| <= sqrt(F_ii F_jj)``, so a finite diagonal bounds every entry.)
    """
    if not np.isfinite(np.diagonal(F)).all():
        if not np.isfinite(b).all():
            raise ValueError(f"{name} contains NaN or infinite values")
        raise FloatingPointError(
            f"{func}: the sum of outer products overflows float64 at the magnitude of {name} "
            f"(largest |entry| {np.max(np.abs(b)):.3g})"
        )
    return F


def _check_weights(weights, name: str, k: int, b_name: str = "B") -> np.ndarray | None:
    """Return ``weights`` as a finite non-negative float64 array of length ``k`` (or None)."""
    if weights is None:
        return None
    if isinstance(weights, np.ndarray) and weights.dtype.kind in "cSUVMm":
        raise TypeError(f"{name} must be a real numeric array, got dtype {weights.dtype}")
    if np.iscomplexobj(weights):
        raise TypeError(f"{name} must be a real numeric array, got complex values")
    w = as_array(weights, name, ndim=1)
    if w.shape[0] != k:
        raise ValueError(f"{name} must have length K = {k} (the rows of {b_name}), got {w.shape[0]}")
    if np.any(w < 0):
        raise ValueError(f"{name} must be >= 0, got minimum {w.min():.3g}")
    return w


def _check_method(method) -> str:
    if method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}, got {method!r}")
    return method


# --------------------------------------------------------------------------------------------
# NumPy specification
# --------------------------------------------------------------------------------------------


def mirror_upper(f: np.ndarray) -> np.ndarray:
    """Copy the upper triangle of the square ``f`` onto its lower one, in place; return ``f``.

    Works in blocks of 256 columns so that no full-size temporary is made. A ``f`` that is not
    float64 is converted (and the converted copy returned).

    Raises
    ------
    TypeError
        If ``f`` is not a real numeric array.
    ValueError
        If ``f`` is not square or its upper triangle has NaN or infinite entries.
    """
    f = as_array(f, "f", ndim=2, finite=False)
    if f.shape[0] != f.shape[1]:
        raise ValueError(f"f must be square, got shape {f.shape}")
    _mirror_upper(f)
    if not np.all(np.isfinite(f)):
        raise ValueError("f contains NaN or infinite values in its upper triangle")
    return f


def _mirror_upper(f: np.ndarray) -> np.ndarray:
    """:func:`mirror_upper` without the checks (``f`` square float64)."""
    p = f.shape[0]
    for j0 in range(0, p, 256):
        j1 = min(p, j0 + 256)
        f[j1:, j0:j1] = f[j0:j1, j1:].T
        diag = f[j0:j1, j0:j1]
        lower = np.tril_indices(j1 - j0, -1)
        diag[lower] = diag.T[lower]
    return f


def gram_syrk(B: np.ndarray) -> np.ndarray:
    r"""Exactly symmetric :math:`B^\top B` from one BLAS ``dsyrk`` and one mirror of its triangle.

    ``B`` (shape ``(K, P)``, float64) is passed to BLAS without a copy when it is C- or
    F-contiguous; only one triangle is computed (:math:`K P^2` flops, half a ``gemm``).

    Raises
    ------
    TypeError
        If ``B`` is not a real numeric array.
    ValueError
        If ``B`` is not 2-D or has NaN or infinite entries.
    FloatingPointError
        If ``B`` is finite but :math:`B^\top B` overflows float64.
    """
    b = _check_b(B, "B")
    with np.errstate(invalid="ignore", over="ignore"):
        f = _syrk(b)
    return _finite_or_raise(f, b, "B", "gram_syrk")


def _syrk(B: np.ndarray) -> np.ndarray:
    """:func:`gram_syrk` without the checks (``B`` 2-D float64)."""
    k, p = B.shape
    if k == 0 or p == 0:
        return np.zeros((p, p))
    if B.flags.c_contiguous:  # B.T is F-ordered (P, K): C = B.T (B.T)^T, upper in F order
        c = dsyrk(1.0, B.T, trans=0, lower=1)
    else:
        c = dsyrk(1.0, np.asfortranarray(B), trans=1, lower=1)
    # c is F-ordered with its lower triangle filled: its transpose is C-ordered, upper filled.
    return _mirror_upper(c.T)


def _numpy_kernel(B: np.ndarray, w: np.ndarray | None) -> np.ndarray:
    with np.errstate(invalid="ignore", over="ignore"):  # non-finite B is reported afterwards
        if w is None or w.size == 0:
            return _syrk(B)
        if np.all(w == w[0]):  # one weight (the 1/M, 1/(SM) of Eq 16): scale the sum
            f = _syrk(B)
            f *= w[0]
            return f
        # w >= 0: B^T diag(w) B = (sqrt(w) B)^T (sqrt(w) B), one syrk
        return _syrk(np.sqrt(w)[:, None] * B)


def outer_sum_numpy(B: ArrayLike, weights: ArrayLike | None = None) -> np.ndarray:
    r"""Weighted sum of outer products of the rows of ``B``, in plain NumPy (the specification).

    .. math::
        F = \sum_{k=1}^{K} w_k\, b_k b_k^\top = B^\top \operatorname{diag}(w)\, B,

    with :math:`b_k` the :math:`k`-th row of :math:`B`. With the :math:`nM` score vectors
    :math:`b_{ik}` as rows and :math:`w_k = 1/M` this is :math:`\hat F_r` of Eq. (16) of
    Tang & Ranganath (2019).

    Parameters
    ----------
    B : array_like, shape (K, P)
        Rows :math:`b_k`; converted to float64. ``K = 0`` gives the zero matrix.
    weights : array_like, shape (K,), optional
        Non-negative finite weights :math:`w_k`; all ones when omitted.

    Returns
    -------
    F : ndarray, shape (P, P)
        The exactly symmetric positive semi-definite sum, computed by one BLAS ``dsyrk``
        (:func:`gram_syrk`: one triangle, mirrored onto the other) as :math:`w_1 B^\top B` when
        all weights are equal and as :math:`C^\top C` with :math:`C = \operatorname{diag}
        (\sqrt{w}) B` otherwise. Unequal weights enter as square roots, so such a result can
        differ from ``B.T @ (w[:, None] * B)`` in the last bits.

    Raises
    ------
    TypeError
        If ``B`` or ``weights`` is not a real numeric array.
    ValueError
        If ``B`` is not 2-D or not finite, or ``weights`` is not 1-D of length ``K``, not finite
        or negative somewhere.

    See Also
    --------
    outer_sum_numba : The streaming numba twin.
    outer_sum : Dispatch between the two.

    References
    ----------
    .. [1] Y. Tang and R. Ranganath, "The Variational Predictive Natural Gradient", ICML 2019,
       Eq. (16).

    Examples
    --------
    >>> import numpy as np
    >>> from refvpng.curvature.outer import outer_sum_numpy
    >>> B = np.array([[1.0, 2.0], [3.0, 0.0]])
    >>> outer_sum_numpy(B)
    array([[10.,  2.],
           [ 2.,  4.]])
    >>> outer_sum_numpy(B, weights=[0.5, 0.0])
    array([[0.5, 1. ],
           [1. , 2. ]])
    """
    b = _check_b(B, "B")
    w = _check_weights(weights, "weights", b.shape[0])
    return _finite_or_raise(_numpy_kernel(b, w), b, "B", "outer_sum_numpy")


# --------------------------------------------------------------------------------------------
# numba twin
# --------------------------------------------------------------------------------------------


def outer_sum_numba(B: ArrayLike, weights: ArrayLike | None = None) -> np.ndarray:
    r"""Weighted sum of outer products of the rows of ``B``, streamed by a numba kernel.

    The numba twin of :func:`outer_sum_numpy`, same signature and result to
    :data:`~refvpng.testing.tolerances.EXACT` relative to the largest entry:

    .. math::
        F = \sum_{k=1}^{K} w_k\, b_k b_k^\top,

    which with :math:`w_k = 1/M` over the :math:`nM` score vectors is :math:`\hat F_r` of
    Eq. (16) of Tang & Ranganath (2019).

    The rows are streamed in blocks of 256, packed into column panels (the weights applied on
    packing) and added into the upper triangle of :math:`F`, which is then mirrored; the work
    runs on a small thread pool (one thread per usable CPU, capped by ``NUMBA_NUM_THREADS``).
    Besides ``B`` (and a C-ordered copy if ``B`` is not C-contiguous) it allocates :math:`F`,
    at most 8 MiB of row-slab accumulators and, per thread, packing buffers of about
    :math:`2 \cdot 256 P` doubles. The result is bit-identical for any number of threads. The
    first call in a fresh environment compiles the kernel (seconds; cached on disk afterwards).

    Parameters
    ----------
    B : array_like, shape (K, P)
        Rows :math:`b_k`; converted to float64.
    weights : array_like, shape (K,), optional
        Non-negative finite weights :math:`w_k`; all ones when omitted.

    Returns
    -------
    F : ndarray, shape (P, P)
        The exactly symmetric positive semi-definite sum.

    Raises
    ------
    TypeError
        If ``B`` or ``weights`` is not a real numeric array.
    ValueError
        If ``B`` is not 2-D or not finite, or ``weights`` is not 1-D of length ``K``, not finite
        or negative somewhere.

    See Also
    --------
    outer_sum_numpy : The specification.
    outer_init, outer_update : The same sum fed in chunks of rows.

    References
    ----------
    .. [1] Y. Tang and R. Ranganath, "The Variational Predictive Natural Gradient", ICML 2019,
       Eq. (16).

    Examples
    --------
    >>> import numpy as np
    >>> from refvpng.curvature.outer import outer_sum_numba, outer_sum_numpy
    >>> B = np.array([[1.0, 2.0], [3.0, 0.0]])
    >>> outer_sum_numba(B)
    array([[10.,  2.],
           [ 2.,  4.]])
    >>> rng = np.random.default_rng(0)
    >>> B, w = rng.standard_normal((500, 30)), rng.random(500)
    >>> F = outer_sum_numba(B, w)
    >>> bool(np.max(np.abs(F - outer_sum_numpy(B, w))) <= 1e-12 * np.max(np.abs(F)))
    True
    """
    b = _check_b(B, "B")
    w = _check_weights(weights, "weights", b.shape[0])
    P = b.shape[1]
    return _finite_or_raise(numba_accumulate(np.zeros((P, P)), b, w), b, "B", "outer_sum_numba")


# --------------------------------------------------------------------------------------------
# Dispatch and streaming
# --------------------------------------------------------------------------------------------


def outer_auto_method(n_rows: int, n_params: int, weighted: bool = False) -> str:
    r"""Return the method that ``"auto"`` picks for a ``(n_rows, n_params)`` matrix.

    A fixed function of the shape (never of a timing taken at run time), so ``"auto"`` is
    deterministic: numba for weighted sums of at least :math:`2 \cdot 10^6` multiply-adds
    (:math:`K P^2`), NumPy (BLAS) otherwise. The rule was set from
    ``validation/bench/bench_outer.py`` (measurements in ``validation/RESULTS.md``).

    Parameters
    ----------
    n_rows : int
        ``K``, the number of rows of ``B``.
    n_params : int
        ``P``, the number of columns of ``B``.
    weighted : bool, default False
        Whether weights are given.

    Returns
    -------
    str
        ``"numpy"`` or ``"numba"``.

    Examples
    --------
    >>> from refvpng.curvature.outer import outer_auto_method
    >>> outer_auto_method(6000, 200)
    'numpy'
    >>> outer_auto_method(6000, 200, weighted=True)
    'numba'
    >>> outer_auto_method(60000, 50)
    'numpy'
    """
    k = as_int(n_rows, "n_rows", minimum=0)
    p = as_int(n_params, "n_params", minimum=0)
    if k * p * p < _AUTO_MIN_WORK:
        return "numpy"
    if weighted and _AUTO_NUMBA_WEIGHTED:
        return "numba"
    return "numpy"


def outer_sum(B: ArrayLike, weights: ArrayLike | None = None, method: str = "auto") -> np.ndarray:
    r"""Weighted sum of outer products of the rows of ``B``: the public entry point.

    .. math::
        F = \sum_{k=1}^{K} w_k\, b_k b_k^\top, \qquad
        \hat F_r = \frac{1}{M} \sum_{k=1}^{n} \sum_{i=1}^{M} b_{ik} b_{ik}^\top
        \quad \text{(Eq. 16)}.

    Parameters
    ----------
    B : array_like, shape (K, P)
        Rows :math:`b_k`; converted to float64.
    weights : array_like, shape (K,), optional
        Non-negative finite weights :math:`w_k`; all ones when omitted.
    method : {"auto", "numpy", "numba"}, default "auto"
        ``"numpy"``: :func:`outer_sum_numpy` (BLAS). ``"numba"``: :func:`outer_sum_numba`.
        ``"auto"``: the one :func:`outer_auto_method` names for the shape, by a fixed rule:

        1. :math:`K P^2 < 2 \cdot 10^6` multiply-adds: NumPy;
        2. otherwise, weighted: numba (the NumPy specification then pays a ``K x P``
           temporary for the scaled rows, the numba kernel does not);
        3. otherwise, unweighted: NumPy (BLAS ``syrk``).

        The measurements behind the rule are in ``validation/RESULTS.md`` (section 2, from
        ``validation/bench/bench_outer.py``).

    Returns
    -------
    F : ndarray, shape (P, P)
        The exactly symmetric positive semi-definite sum; bit-identical for identical inputs on
        one machine.

    Raises
    ------
    TypeError
        If ``B`` or ``weights`` is not a real numeric array.
    ValueError
        If ``B`` is not 2-D or not finite, ``weights`` is not 1-D of length ``K``, not finite or
        negative somewhere, or ``method`` is unknown.

    References
    ----------
    .. [1] Y. Tang and R. Ranganath, "The Variational Predictive Natural Gradient", ICML 2019,
       Eq. (16).

    Examples
    --------
    Eq. (16) with :math:`M = 2` predictive samples for each of :math:`n = 2` data points:

    >>> import numpy as np
    >>> from refvpng.curvature.outer import outer_sum
    >>> b = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [2.0, 0.0]])
    >>> outer_sum(b, weights=np.full(4, 1 / 2))
    array([[3. , 0.5],
           [0.5, 1. ]])
    >>> np.array_equal(outer_sum(b, method="numba"), outer_sum(b, method="numpy"))
    True
    """
    _check_method(method)
    b = _check_b(B, "B")
    w = _check_weights(weights, "weights", b.shape[0])
    if method == "auto":
        method = outer_auto_method(b.shape[0], b.shape[1], w is not None)
    if method == "numpy":
        return _finite_or_raise(_numpy_kernel(b, w), b, "B", "outer_sum")
    P = b.shape[1]
    return _finite_or_raise(numba_accumulate(np.zeros((P, P)), b, w), b, "B", "outer_sum")


def outer_init(n_params: int) -> np.ndarray:
    """Start a streamed outer-product sum: the ``(P, P)`` zero matrix.

    Parameters
    ----------
    n_params : int
        ``P``, the length of each row :math:`b_k`.

    Returns
    -------
    F : ndarray, shape (P, P)
        Zeros, to be passed to :func:`outer_update`.

    Examples
    --------
    >>> from refvpng.curvature.outer import outer_init
    >>> outer_init(2)
    array([[0., 0.],
           [0., 0.]])
    """
    P = as_int(n_params, "n_params", minimum=0)
    return np.zeros((P, P))


def outer_update(
    F: ArrayLike, B_chunk: ArrayLike, weights_chunk: ArrayLike | None = None, method: str = "numba"
) -> np.ndarray:
    r"""Add a chunk of rows to a streamed outer-product sum; ``F`` is not modified.

    .. math::
        F' = F + \sum_{k \in \text{chunk}} w_k\, b_k b_k^\top.

    Starting from :func:`outer_init` and feeding the rows of ``B`` in any chunks gives
    :func:`outer_sum` of the whole ``B`` to :data:`~refvpng.testing.tolerances.EXACT`; the
    chunks are never held together. Feeding the sum of Eq. (16) of Tang & Ranganath (2019)
    data point by data point is the intended use.

    Parameters
    ----------
    F : array_like, shape (P, P)
        The running symmetric sum (from :func:`outer_init` or a previous update).
    B_chunk : array_like, shape (K_c, P)
        The next rows :math:`b_k`; ``K_c = 0`` is allowed.
    weights_chunk : array_like, shape (K_c,), optional
        Their non-negative finite weights; all ones when omitted.
    method : {"numba", "numpy", "auto"}, default "numba"
        As in :func:`outer_sum`. With ``"numba"`` the chunk is streamed into a copy of ``F``
        directly (each entry continues its sequential sum over rows); with ``"numpy"`` the
        chunk's sum is formed and added.

    Returns
    -------
    F_new : ndarray, shape (P, P)
        The updated, exactly symmetric sum (a new array).

    Raises
    ------
    TypeError
        If an argument is not a real numeric array.
    ValueError
        If ``F`` is not finite or not ``(P, P)`` for the ``P`` of ``B_chunk``, or the chunk or its
        weights fail the checks of :func:`outer_sum`, or ``method`` is unknown.

    Examples
    --------
    >>> import numpy as np
    >>> from refvpng.curvature.outer import outer_init, outer_sum, outer_update
    >>> rng = np.random.default_rng(1)
    >>> B = rng.standard_normal((100, 5))
    >>> F = outer_init(5)
    >>> for chunk in np.array_split(B, 3):
    ...     F = outer_update(F, chunk)
    >>> bool(np.allclose(F, outer_sum(B), rtol=0, atol=1e-12 * np.abs(F).max()))
    True
    """
    _check_method(method)
    b = _check_b(B_chunk, "B_chunk")
    w = _check_weights(weights_chunk, "weights_chunk", b.shape[0], "B_chunk")
    P = b.shape[1]
    f = as_array(F, "F", ndim=2)
    if f.shape != (P, P):
        raise ValueError(f"F must have shape ({P}, {P}) for the {P} columns of B_chunk, got {f.shape}")
    if method == "auto":
        method = outer_auto_method(b.shape[0], P, w is not None)
    if method == "numpy":
        return _finite_or_raise(f + _numpy_kernel(b, w), b, "B_chunk", "outer_update")
    f_new = numba_accumulate(np.array(f, dtype=np.float64, order="C", copy=True), b, w)
    return _finite_or_raise(f_new, b, "B_chunk", "outer_update")
