r"""Conjugate gradients for the damped system of Eq. 17, :math:`(F + \mu I)\,\delta = g`.

The matrix-free counterpart of :func:`refvpng.curvature.solve.damped_solve`: the matrix is
touched only through products :math:`v \mapsto (F + \mu I) v`, so the VPNG direction can be
computed where no dense :math:`F` fits (:mod:`refvpng.curvature.fr_operator`). Truncated after
a few iterations and warm-started from the previous direction, the same iteration is the
Hessian-free method (Martens 2010; HF-SGVI of Fan et al. 2015).

Stopping rule (stated once): the relative residual :math:`\|g - C x_k\| / \|g\| \le`
``rtol``, with the residual the recursively updated one of the iteration (Hestenes-Stiefel);
:func:`cg_solve` reports the true residual :math:`\|g - C x\|` of the returned ``x``, recomputed
with one extra product (unless ``true_residual=False``). ``maxiter`` bounds the number of
products by :math:`C` inside the loop.

References
----------
.. [1] M. R. Hestenes and E. Stiefel, "Methods of conjugate gradients for solving linear
   systems", J. Res. Nat. Bur. Standards 49(6), 1952.
.. [2] J. Martens, "Deep learning via Hessian-free optimization", ICML 2010.
.. [3] K. Fan, Z. Wang, J. Beck, J. Kwok and K. Heller, "Fast second-order stochastic
   backpropagation for variational inference", NeurIPS 2015.

Examples
--------
>>> import numpy as np
>>> a = np.array([[4.0, 1.0], [1.0, 3.0]])
>>> res = cg_solve(lambda v: a @ v, np.array([1.0, 2.0]), rtol=1e-12)
>>> res.x.round(6), res.iterations, res.converged
(array([0.090909, 0.636364]), 2, True)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from refvpng._checks import as_array, as_int, as_nonneg_scalar

__all__ = ["CGResult", "cg_solve"]


class CGResult(NamedTuple):
    r"""What :func:`cg_solve` returns.

    Attributes
    ----------
    x : ndarray, shape (P,)
        The approximate solution.
    iterations : int
        Products by :math:`C` made inside the loop (one per CG iteration).
    residual : float
        Relative residual :math:`\|g - C x\| / \|g\|` of ``x`` (0 for ``g = 0``): the true one
        or the recursive one (``true_residual``).
    converged : bool
        Whether the loop stopped on ``rtol`` (not on ``maxiter`` or a breakdown).
    """

    x: np.ndarray
    iterations: int
    residual: float
    converged: bool


def cg_solve(
    matvec: Callable[[np.ndarray], np.ndarray],
    b: ArrayLike,
    *,
    x0: ArrayLike | None = None,
    rtol: float = 1e-10,
    maxiter: int | None = None,
    true_residual: bool = True,
) -> CGResult:
    r"""Solve :math:`C x = b` for symmetric positive definite :math:`C` by conjugate gradients.

    .. math::
        r_0 = b - C x_0,\ p_0 = r_0;\quad
        \alpha_k = \frac{r_k^\top r_k}{p_k^\top C p_k},\
        x_{k+1} = x_k + \alpha_k p_k,\ r_{k+1} = r_k - \alpha_k C p_k,\
        p_{k+1} = r_{k+1} + \frac{r_{k+1}^\top r_{k+1}}{r_k^\top r_k} p_k.

    Parameters
    ----------
    matvec : callable ``(P,) -> (P,)``
        :math:`v \mapsto C v` (e.g. :math:`(F_r + \mu I) v`).
    b : array_like, shape (P,)
        Right-hand side (the ELBO gradient in Eq. 17).
    x0 : array_like, shape (P,), optional
        Starting point (warm start); default zeros.
    rtol : float, default 1e-10
        Stop when the relative residual :math:`\|r_k\| / \|b\|` is at most ``rtol``.
    maxiter : int, optional
        At most this many products in the loop; default :math:`10 P`.
    true_residual : bool, default True
        Report :math:`\|b - C x\| / \|b\|` recomputed with one more product; ``False``: the
        recursive residual of the iteration (no extra product, for a truncated Hessian-free
        step).

    Returns
    -------
    CGResult

    Raises
    ------
    TypeError
        If ``matvec`` is not callable.
    ValueError
        If ``b`` or ``x0`` has the wrong shape or non-finite entries, ``rtol < 0``, or
        ``matvec`` returns a wrongly shaped vector, or finds a direction of non-positive
        curvature (:math:`p^\top C p \le 0`: ``C`` is not positive definite).
    FloatingPointError
        If ``matvec`` returns a non-finite vector for a finite one, or ``x`` overflows.

    Notes
    -----
    The iteration runs on the residual :math:`b - C x_0` scaled by a power of two to a largest
    entry in :math:`[1/2, 1)` (exact in floating point, so the iterates are those of the unscaled
    iteration), so no squared norm overflows for any finite ``b`` and ``x0``.
    """
    if not callable(matvec):
        raise TypeError(f"matvec must be a callable v -> C v, got {type(matvec).__name__}")
    b = as_array(b, "b", ndim=1)
    p_len = b.shape[0]
    rtol = as_nonneg_scalar(rtol, "rtol")
    maxiter = 10 * max(p_len, 1) if maxiter is None else as_int(maxiter, "maxiter", minimum=0)

    def mv(v, what="p"):
        out = np.asarray(matvec(v), dtype=np.float64)
        if out.shape != (p_len,):
            raise ValueError(f"matvec must return a vector of shape ({p_len},), got {out.shape}")
        if not np.isfinite(out).all():
            raise FloatingPointError(
                f"cg_solve: matvec({what}) is not finite although {what} is: an overflow at the "
                "magnitude of b, x0 or C (or a matvec that returns NaN)"
            )
        return out

    bnorm = _norm(b)
    if x0 is None:
        x, r = np.zeros(p_len), b.copy()
    else:
        x = as_array(x0, "x0", ndim=1).copy()
        if x.shape != b.shape:
            raise ValueError(f"x0 must have the shape of b, {b.shape}, got {x.shape}")
        r = b - mv(x, "x0")
    if bnorm == 0.0:
        return CGResult(np.zeros(p_len), 0, 0.0, True)
    # CG commutes exactly with scaling by a power of two: run it on the residual scaled to a largest
    # entry in [0.5, 1), so that no squared norm overflows, whatever the magnitude of b and x0 (and
    # less where x0 would overflow: a residual some 2^1020 times smaller than x0)
    e = max(_exponent(r), _exponent(x) - 1020)
    x, r, tol = np.ldexp(x, -e), np.ldexp(r, -e), np.ldexp(rtol * bnorm, -e)
    p = r.copy()
    rr = float(r @ r)
    its, converged = 0, np.sqrt(rr) <= tol
    while not converged and its < maxiter:
        cp = mv(p)
        its += 1
        curv = float(p @ cp)
        if not curv > 0.0:
            raise _NotPositiveDefinite(
                f"matvec is not positive definite (p'Cp = {curv:.3g} at iteration {its})"
            )
        alpha = rr / curv
        x += alpha * p
        r -= alpha * cp
        rr_new = float(r @ r)
        converged = np.sqrt(rr_new) <= tol
        p *= rr_new / rr
        p += r
        rr = rr_new
    x = np.ldexp(x, e)
    if not np.isfinite(x).all():
        raise FloatingPointError(
            "cg_solve: the solution x overflows float64 (C nearly singular at the scale of b)"
        )
    residual = (_norm(b - mv(x, "x")) if true_residual else float(np.ldexp(np.sqrt(rr), e))) / bnorm
    return CGResult(x, its, float(residual), bool(converged))


class _NotPositiveDefinite(ValueError):
    """CG met a direction of non-positive curvature (``p'Cp <= 0``)."""


def _exponent(v: np.ndarray) -> int:
    """``e`` with the largest entry of ``|v|`` in :math:`[2^{e-1}, 2^e)` (0 for a zero vector)."""
    return int(np.frexp(np.max(np.abs(v), initial=0.0))[1])


def _norm(v: np.ndarray) -> float:
    """Euclidean norm without overflow: of ``v`` scaled by a power of two (exact), scaled back."""
    e = _exponent(v)
    return float(np.ldexp(np.linalg.norm(np.ldexp(v, -e)), e))
