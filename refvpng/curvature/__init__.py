"""Curvature: Fisher matrices, Hessians, structured operators and the damped solve.

Modules: :mod:`~refvpng.curvature.fisher`, :mod:`~refvpng.curvature.latent_fisher`,
:mod:`~refvpng.curvature.hessian` (estimators); :mod:`~refvpng.curvature.outer` (the
outer-product kernel); :mod:`~refvpng.curvature.kfac` (K-FAC factors, operators and state);
:mod:`~refvpng.curvature.operator` (the :class:`Curvature` protocol and the dense operator);
:mod:`~refvpng.curvature.solve` (the damped solve of Eq. 17).
"""

from refvpng.curvature.operator import Curvature, DenseCurvature, InverseCurvature
from refvpng.curvature.solve import damped_solve

__all__ = ["Curvature", "DenseCurvature", "InverseCurvature", "damped_solve"]
