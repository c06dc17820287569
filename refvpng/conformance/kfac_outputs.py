r"""The K-FAC outputs of the chain fixture: the one place the conformance kit touches K-FAC.

Everything goes through :func:`refvpng.curvature.kfac.kfac_factors` and the operator classes
:class:`~refvpng.curvature.kfac.BlockDiagKFAC` and :class:`~refvpng.curvature.kfac.BlockTridiagKFAC`
with keyword arguments, built by :func:`kfac_operator`, so that a renamed keyword is adapted here
only. The damping is the operators' *factored* damping :math:`\gamma`: :math:`A_l + \pi_l
\sqrt\gamma I` and :math:`G_l + \sqrt\gamma/\pi_l I` with :math:`\pi_l = 1` (no heuristic), and no
low-rank truncation.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike

if TYPE_CHECKING:  # imported when called: the kit touches K-FAC only there
    from refvpng.curvature.kfac import BlockDiagKFAC, BlockTridiagKFAC, KFACFactors

from refvpng._checks import as_array, as_nonneg_scalar, finite_output

__all__ = ["kfac_outputs", "kfac_operator"]


def kfac_operator(kind: str, factors: KFACFactors, damping: float) -> BlockDiagKFAC | BlockTridiagKFAC:
    r"""``BlockDiagKFAC`` (``kind="blockdiag"``) or ``BlockTridiagKFAC`` (``"blocktridiag"``).

    Factored damping :math:`\gamma` = ``damping``, no :math:`\pi` heuristic, no low-rank truncation.
    """
    from refvpng.curvature.kfac import BlockDiagKFAC, BlockTridiagKFAC

    classes = {"blockdiag": BlockDiagKFAC, "blocktridiag": BlockTridiagKFAC}
    if kind not in classes:
        raise ValueError(f"kind must be one of {sorted(classes)}, got {kind!r}")
    cls = classes[kind]
    damping = as_nonneg_scalar(damping, "damping")
    params = inspect.signature(cls).parameters
    # the damping keyword is being renamed (e.g. to factor_damping); accept either spelling
    name = next(k for k in ("factor_damping", "damping") if k in params)
    return cls(factors, **{name: damping}, pi_heuristic=False, lowrank_threshold=None)


@finite_output
def kfac_outputs(
    pairs: Sequence[tuple[ArrayLike, ArrayLike]], weights: ArrayLike | None, damping: float, grad: ArrayLike
) -> dict:
    r"""Factors, dense damped operators and solves of ``grad`` for block-diagonal and -tridiagonal K-FAC.

    Returns
    -------
    dict
        ``kfac.A.l``, ``kfac.G.l``, ``kfac.A_cross.l``, ``kfac.G_cross.l``,
        ``kfac_blockdiag_dense``, ``kfac_blockdiag_direction``, ``kfac_blocktridiag_dense``,
        ``kfac_blocktridiag_direction`` (see :data:`refvpng.conformance.registry.OUTPUTS`).
    """
    from refvpng.curvature.kfac import kfac_factors

    damping = as_nonneg_scalar(damping, "damping")
    factors = kfac_factors(pairs, weights, cross=True)
    grad = as_array(grad, "grad", ndim=1)
    n_params = sum(a.shape[0] * g.shape[0] for a, g in zip(factors.A, factors.G, strict=True))
    if grad.shape[0] != n_params:
        raise ValueError(f"grad must have length {n_params} (the parameters of pairs), got {grad.shape[0]}")
    out = {}
    for kind in ("A", "G", "A_cross", "G_cross"):
        for k, m in enumerate(getattr(factors, kind)):
            out[f"kfac.{kind}.{k}"] = np.asarray(m, dtype=np.float64)
    for label in ("blockdiag", "blocktridiag"):
        op = kfac_operator(label, factors, damping)
        out[f"kfac_{label}_dense"] = np.asarray(op.to_dense(), dtype=np.float64)
        out[f"kfac_{label}_direction"] = np.asarray(op.solve(grad), dtype=np.float64)
    return out
