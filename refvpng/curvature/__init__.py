"""Curvature: Fisher matrices, Hessians, structured operators and the damped solve.

Modules: :mod:`~refvpng.curvature.fisher`, :mod:`~refvpng.curvature.latent_fisher`,
:mod:`~refvpng.curvature.marginal_is`, :mod:`~refvpng.curvature.hessian` (estimators);
:mod:`~refvpng.curvature.metric_check` (diagnostics of singular metrics); :mod:`~refvpng.curvature.outer` (the
outer-product kernel); :mod:`~refvpng.curvature.kfac` (K-FAC factors, operators and state);
:mod:`~refvpng.curvature.operator` (the :class:`Curvature` protocol and the dense operator);
:mod:`~refvpng.curvature.solve` (the damped solve of Eq. 17); :mod:`~refvpng.curvature.fr_operator`
(the matrix-free :math:`F_r`) and :mod:`~refvpng.curvature.cg` (its conjugate-gradient solve).
"""

from refvpng.curvature.cg import CGResult, cg_solve
from refvpng.curvature.fisher import (
    output_jacobian,
    q_fisher,
    q_fisher_mc,
    vp_fisher_exact,
    vp_fisher_mc,
    vp_kfac_pairs,
    vp_scores,
)
from refvpng.curvature.fr_operator import VPFisherOperator
from refvpng.curvature.kfac import BlockDiagKFAC, BlockTridiagKFAC, KFACConfig, kfac_factors
from refvpng.curvature.operator import Curvature, DenseCurvature, InverseCurvature
from refvpng.curvature.solve import damped_solve

__all__ = [
    "BlockDiagKFAC",
    "BlockTridiagKFAC",
    "CGResult",
    "Curvature",
    "DenseCurvature",
    "InverseCurvature",
    "KFACConfig",
    "VPFisherOperator",
    "cg_solve",
    "damped_solve",
    "kfac_factors",
    "output_jacobian",
    "q_fisher",
    "q_fisher_mc",
    "vp_fisher_exact",
    "vp_fisher_mc",
    "vp_kfac_pairs",
    "vp_scores",
]
