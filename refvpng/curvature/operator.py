r"""The :class:`Curvature` protocol: a damped curvature matrix as an operator.

A natural-gradient direction needs a curvature matrix :math:`C` (a damped Fisher) only through
products :math:`C v` and solves :math:`C^{-1} v`. The protocol (after curvlinops) is what the
package's curvature objects share:

- ``shape`` : ``(P, P)``;
- ``matvec(v)`` : :math:`C v` for ``v`` of shape ``(P,)`` or ``(P, k)``;
- ``solve(v)`` : the operator's inverse of :math:`C` applied to ``v`` (exact for
  :class:`DenseCurvature` and :class:`~refvpng.curvature.kfac.BlockDiagKFAC`; for
  :class:`~refvpng.curvature.kfac.BlockTridiagKFAC` the documented inverse of its Gaussian
  graphical model);
- ``to_dense()`` : :math:`C` as a ``(P, P)`` array, the matrix ``matvec`` multiplies by;
- ``inverse()`` : an operator whose ``matvec`` is this ``solve`` (and whose ``solve`` is this
  ``matvec``);
- ``aslinearoperator()`` : a :class:`scipy.sparse.linalg.LinearOperator` of ``matvec``.

Damping (stated once)
---------------------
Every implementation carries its own damping, and each of the methods above takes it as an
optional **second positional argument** (``None``: the operator's own value) in that
implementation's units, named by the implementation: :class:`DenseCurvature` has the Eq. 17
damping ``damping`` :math:`= \mu`, :math:`C = F + \mu I`; the K-FAC operators have the factored
Tikhonov damping ``factor_damping`` :math:`= \gamma` of Martens & Grosse (2015), Section 6.3
(:mod:`refvpng.curvature.kfac`). :func:`refvpng.curvature.solve.damped_solve` passes its
:math:`\mu` in that slot, so K-FAC approximates :math:`(F + \mu I)^{-1}` by factored damping
with :math:`\gamma = \mu`.

References
----------
.. [1] Y. Tang and R. Ranganath, "The Variational Predictive Natural Gradient", ICML 2019,
   Eq. (17).
.. [2] J. Martens and R. Grosse, "Optimizing neural networks with Kronecker-factored
   approximate curvature", ICML 2015, Section 6.3.

Examples
--------
>>> import numpy as np
>>> from refvpng.curvature.operator import DenseCurvature
>>> c = DenseCurvature(np.diag([1.0, 3.0]), damping=1.0)
>>> c.matvec(np.ones(2)), c.solve(np.array([2.0, 4.0]))
(array([2., 4.]), array([1., 1.]))
>>> c.inverse().to_dense()
array([[0.5 , 0.  ],
       [0.  , 0.25]])
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np
from numpy.typing import ArrayLike
from scipy.sparse.linalg import LinearOperator

from refvpng._checks import as_array, as_nonneg_scalar
from refvpng.curvature.solve import check_symmetric, damped_solve

__all__ = ["Curvature", "DenseCurvature", "EyeDamped", "InverseCurvature", "as_linear_operator"]


@runtime_checkable
class Curvature(Protocol):
    """A damped curvature matrix as an operator (module docstring).

    The optional second argument of every method is the implementation's own damping.
    """

    shape: tuple[int, int]

    def matvec(self, v: ArrayLike, damping: float | None = None, /) -> np.ndarray:
        """Return :math:`C v`, same shape as ``v`` (``(P,)`` or ``(P, k)``)."""

    def solve(self, v: ArrayLike, damping: float | None = None, /) -> np.ndarray:
        """Return the operator's inverse of :math:`C` applied to ``v``."""

    def to_dense(self, damping: float | None = None, /) -> np.ndarray:
        """Return :math:`C`, shape ``(P, P)``."""

    def inverse(self, damping: float | None = None, /) -> Curvature:
        """Return the operator whose ``matvec`` is this ``solve``."""

    def aslinearoperator(self, damping: float | None = None, /) -> LinearOperator:
        """Return ``matvec`` as a :class:`scipy.sparse.linalg.LinearOperator`."""


def as_linear_operator(curvature: Curvature, damping: float | None = None) -> LinearOperator:
    """Wrap ``curvature.matvec`` (at a fixed damping) as a symmetric ``LinearOperator``.

    Parameters
    ----------
    curvature : Curvature
    damping : float, optional
        Second argument passed to ``matvec`` (the implementation's own damping); ``None`` for
        the operator's own value.

    Returns
    -------
    scipy.sparse.linalg.LinearOperator, shape (P, P)
    """
    if not callable(getattr(curvature, "matvec", None)) or len(getattr(curvature, "shape", ())) != 2:
        raise TypeError(f"curvature must be a Curvature (matvec and shape), got {type(curvature).__name__}")

    def mv(v):
        return curvature.matvec(np.asarray(v, dtype=np.float64).reshape(-1), damping)

    def mm(v):
        return curvature.matvec(np.asarray(v, dtype=np.float64), damping)

    return LinearOperator(curvature.shape, matvec=mv, rmatvec=mv, matmat=mm, rmatmat=mm, dtype=np.float64)


class EyeDamped:
    r"""What operators damped as in Eq. 17 (:math:`C = F + \mu I`, ``damping`` :math:`= \mu`) share.

    Subclasses set ``shape`` and ``damping`` and define ``matvec``, ``solve`` and ``to_dense``;
    this base validates ``v`` and the damping argument and provides ``inverse`` and
    ``aslinearoperator`` (:class:`DenseCurvature`,
    :class:`~refvpng.curvature.fr_operator.VPFisherOperator`).
    """

    shape: tuple[int, int]
    damping: float

    def _mu(self, damping) -> float:
        return self.damping if damping is None else as_nonneg_scalar(damping, "damping")

    def _vec(self, v) -> np.ndarray:
        v = as_array(v, "v", ndim=(1, 2))
        if v.shape[0] != self.shape[0]:
            raise ValueError(f"v must have {self.shape[0]} rows, got {v.shape[0]}")
        return v

    def inverse(self, damping: float | None = None) -> InverseCurvature:
        r"""Return :math:`(F + \mu I)^{-1}` as an operator (``damping`` overrides :math:`\mu`)."""
        return InverseCurvature(self, damping)  # type: ignore[arg-type]

    def aslinearoperator(self, damping: float | None = None) -> LinearOperator:
        r"""Return :math:`F + \mu I` as a :class:`scipy.sparse.linalg.LinearOperator`."""
        return as_linear_operator(self, damping)  # type: ignore[arg-type]


class DenseCurvature(EyeDamped):
    r"""A dense Fisher with the damping of Eq. 17: :math:`C = F + \mu I`.

    ``solve`` is :func:`refvpng.curvature.solve.damped_solve` (Cholesky of :math:`F + \mu I`),
    so ``DenseCurvature(F, mu).solve(g)`` is the damped VPNG direction of Eq. 17 of Tang &
    Ranganath (2019) for :math:`F = \hat F_r` and ``g`` the ELBO gradient.

    Parameters
    ----------
    fisher : ndarray, shape (P, P)
        Symmetric positive semi-definite :math:`F` (a sum over data points, like
        :math:`\hat F_r`).
    damping : float, default 0.0
        :math:`\mu \ge 0`, added to the diagonal of ``fisher``.

    Attributes
    ----------
    fisher : ndarray, shape (P, P)
        The undamped :math:`F`.
    damping : float
        :math:`\mu`.
    shape : (int, int)

    Raises
    ------
    ValueError
        If ``fisher`` is not a finite symmetric square matrix or ``damping`` is negative.
    """

    def __init__(self, fisher: ArrayLike, damping: float = 0.0) -> None:
        f = as_array(fisher, "fisher", ndim=2)
        if f.shape[0] != f.shape[1]:
            raise ValueError(f"fisher must be square, got shape {f.shape}")
        self.fisher = check_symmetric(f, "fisher")
        self.damping = as_nonneg_scalar(damping, "damping")
        self.shape: tuple[int, int] = (f.shape[0], f.shape[1])

    def matvec(self, v: ArrayLike, damping: float | None = None) -> np.ndarray:
        r"""Return :math:`(F + \mu I) v` for ``v`` of shape ``(P,)`` or ``(P, k)``."""
        v = self._vec(v)
        return self.fisher @ v + self._mu(damping) * v

    def solve(self, v: ArrayLike, damping: float | None = None) -> np.ndarray:
        r"""Return :math:`(F + \mu I)^{-1} v` (Eq. 17) by :func:`damped_solve`.

        Raises
        ------
        ValueError
            If :math:`F + \mu I` is singular or not positive definite.
        """
        return damped_solve(self.fisher, self._vec(v), self._mu(damping), name="fisher")

    def to_dense(self, damping: float | None = None) -> np.ndarray:
        r"""Return :math:`F + \mu I`, shape ``(P, P)``."""
        return self.fisher + self._mu(damping) * np.eye(self.shape[0])


class InverseCurvature:
    """The inverse of a :class:`Curvature`: ``matvec`` is its ``solve`` and vice versa.

    Returned by the ``inverse`` method of every implementation (curvlinops' ``inverse``).

    Parameters
    ----------
    curvature : Curvature
        The operator to invert.
    damping : float, optional
        The wrapped operator's damping (in its own units), fixed for this inverse; ``None``
        for its own value. The methods' optional second argument overrides it.

    Attributes
    ----------
    curvature : Curvature
    damping : float or None
    shape : (int, int)
    """

    def __init__(self, curvature: Curvature, damping: float | None = None) -> None:
        if not isinstance(curvature, Curvature):
            raise TypeError(f"curvature must be a Curvature, got {type(curvature).__name__}")
        self.curvature = curvature
        self.damping = damping
        self.shape: tuple[int, int] = (curvature.shape[0], curvature.shape[1])

    def _d(self, damping):
        return self.damping if damping is None else damping

    def matvec(self, v: ArrayLike, damping: float | None = None) -> np.ndarray:
        """Return ``curvature.solve(v)``."""
        return self.curvature.solve(v, self._d(damping))

    def solve(self, v: ArrayLike, damping: float | None = None) -> np.ndarray:
        """Return ``curvature.matvec(v)``."""
        return self.curvature.matvec(v, self._d(damping))

    def to_dense(self, damping: float | None = None) -> np.ndarray:
        """Return the dense matrix ``matvec`` applies, built column by column."""
        return self.matvec(np.eye(self.shape[0]), damping)

    def inverse(self, damping: float | None = None) -> InverseCurvature:
        """Return the inverse of this inverse (the wrapped operator, as an operator)."""
        return InverseCurvature(self, damping)

    def aslinearoperator(self, damping: float | None = None) -> LinearOperator:
        """Return ``matvec`` as a :class:`scipy.sparse.linalg.LinearOperator`."""
        return as_linear_operator(self, damping)
