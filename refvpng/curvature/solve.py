r"""The damped natural-gradient solve of Eq 17 of Tang & Ranganath (2019).

.. math::
    \hat\nabla^{\mathrm{VPNG}}_{\lambda,\theta}\mathcal{L} = (\hat F_r + \mu I)^{-1}
        \nabla_{\lambda,\theta}\mathcal{L}

Damping convention (stated once): ``damping`` :math:`= \mu` is added to the diagonal of the
*summed* Fisher (the sum over data points), in the same units as :math:`\hat F_r`. A structured
operator (a :class:`~refvpng.curvature.operator.Curvature`) receives :math:`\mu` as the second
argument of its ``solve`` and approximates :math:`(F + \mu I)^{-1}` in its own documented way:
K-FAC by factored Tikhonov damping with factor damping :math:`\gamma = \mu`
(:mod:`refvpng.curvature.kfac`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeGuard

import numpy as np
import scipy.linalg
from numpy.typing import ArrayLike

from refvpng._checks import as_array, as_nonneg_scalar

if TYPE_CHECKING:  # operator.py imports this module
    from refvpng.curvature.operator import Curvature

__all__ = ["damped_solve"]

_EPS = np.finfo(np.float64).eps


def check_symmetric(f: np.ndarray, name: str) -> np.ndarray:
    """Return the square array ``f``, or raise if it is not symmetric to 1e-10 of its scale."""
    scale = float(np.max(np.abs(f))) if f.size else 0.0
    if f.size and np.max(np.abs(f - f.T)) > 1e-10 * max(scale, np.finfo(np.float64).tiny):
        raise ValueError(f"{name} must be symmetric")
    return f


def _is_operator(curvature: object) -> TypeGuard[Curvature]:
    return not isinstance(curvature, np.ndarray) and callable(getattr(curvature, "solve", None))


def damped_solve(
    fisher: ArrayLike | Curvature, grad: ArrayLike, damping: float = 0.0, *, name: str = "fisher"
) -> np.ndarray:
    r"""Solve :math:`(F + \mu I)\, x = v` for symmetric positive (semi-)definite ``F``.

    .. math::

        x = (F + \mu I)^{-1} v

    This is Eq. 17 of Tang & Ranganath (2019) with ``v`` the ELBO gradient and
    :math:`F = \hat F_r`. A dense ``F`` is solved by a Cholesky factorisation
    (``scipy.linalg.cho_factor``/``cho_solve``) of :math:`F + \mu I` after Jacobi equilibration
    (:math:`D^{-1/2}(F+\mu I)D^{-1/2}`, :math:`D` its diagonal), using the lower triangle; the
    reciprocal condition number of the equilibrated factorisation (LAPACK ``dpocon``) is checked,
    so that a singular system raises instead of returning a huge or NaN vector, while a merely
    badly scaled one (a diagonal Fisher spanning many decades) is solved.

    Parameters
    ----------
    fisher : ndarray, shape (n, n), or Curvature
        Either a dense symmetric PSD matrix, or a
        :class:`~refvpng.curvature.operator.Curvature` (any object with a method
        ``solve(v, damping) -> ndarray``), called as ``fisher.solve(grad, damping)``; the
        operator documents how it applies the damping (K-FAC: as its factor damping).
    grad : array_like, shape (n,) or (n, k)
        Right-hand side (the ELBO gradient in Eq. 17), or ``k`` of them as columns.
    damping : float, default 0.0
        The damping :math:`\mu \ge 0`.
    name : str, default "fisher"
        Argument name used in error messages.

    Returns
    -------
    ndarray, same shape as ``grad``
        The solution ``x``.

    Raises
    ------
    ValueError
        If the shape of ``fisher`` does not match ``grad``, it is not symmetric or contains
        NaN/inf, or :math:`F + \mu I` is singular or not positive definite (numerically: the
        Cholesky factorisation fails or its reciprocal condition number is below ``n * eps``);
        or if an operator's ``solve`` returns a non-finite or wrongly shaped result.

    References
    ----------
    .. [1] S. Tang and R. Ranganath, "The Variational Predictive Natural Gradient", ICML 2019,
       Eq. 17.

    Examples
    --------
    >>> F = np.array([[2.0, 0.0], [0.0, 4.0]])
    >>> damped_solve(F, np.array([2.0, 4.0]))
    array([1., 1.])
    >>> damped_solve(F, np.array([3.0, 5.0]), damping=1.0)
    array([1., 1.])
    >>> damped_solve(np.ones((2, 2)), np.ones(2))
    Traceback (most recent call last):
    ...
    ValueError: fisher is singular or not positive definite; pass damping > 0
    """
    v = as_array(grad, "grad", ndim=(1, 2))
    mu = as_nonneg_scalar(damping, "damping")
    n = v.shape[0]
    if _is_operator(fisher):
        x = fisher.solve(v, mu)
        try:
            x = as_array(x, f"{name}.solve(v, damping)", shape=v.shape)
        except (TypeError, ValueError) as exc:
            raise ValueError(str(exc)) from None
        return x
    f = as_array(fisher, name, ndim=2)
    if f.shape != (n, n):
        raise ValueError(f"{name} must have shape ({n}, {n}) to match grads, got {f.shape}")
    check_symmetric(f, name)
    if n == 0:
        return np.zeros(v.shape)
    a = f + mu * np.eye(n)
    if mu == 0.0:
        msg = f"{name} is singular or not positive definite; pass damping > 0"
    else:
        msg = f"{name} + damping*I is singular or not positive definite (damping={mu:g}); increase damping"
    d = np.diag(a)
    if not np.all(d > 0):
        raise ValueError(msg)
    # Jacobi equilibration D^-1/2 A D^-1/2: Cholesky's accuracy is governed by the condition number
    # of the equilibrated matrix (van der Sluis), so a well-posed but badly scaled F (a diagonal
    # q-Fisher with 1/sigma^2 spanning many decades) is not mistaken for a singular one, while a
    # rank-deficient F stays singular after scaling.
    sc = 1.0 / np.sqrt(d)
    a_eq = a * sc[:, None] * sc[None, :]
    try:
        c, lower = scipy.linalg.cho_factor(a_eq, lower=True, check_finite=False)
    except np.linalg.LinAlgError:
        raise ValueError(msg) from None
    anorm = float(np.max(np.sum(np.abs(a_eq), axis=0)))
    rcond, info = scipy.linalg.lapack.dpocon(c, anorm, uplo=b"L")
    if info != 0 or not rcond >= n * _EPS:
        raise ValueError(msg)
    if v.ndim == 2:
        sc = sc[:, None]
    return sc * scipy.linalg.cho_solve((c, lower), sc * v, check_finite=False)
