"""Models as bundles of pure functions, and their closed forms.

- :mod:`~refvpng.models.likelihoods`: Gaussian, Bernoulli, Poisson (log and softplus links).
- :mod:`~refvpng.models.variational`: the mean-field Gaussian family in three scale coordinates.
- :mod:`~refvpng.models.latent`: :class:`LatentModel`, noise and predictive sampling.
- :mod:`~refvpng.models.gaussian_mean`: Eq 4-5, every closed form.
- :mod:`~refvpng.models.linear_gaussian`: Section 3.2, the Eq 9 and Eq 11 matrices.
- :mod:`~refvpng.models.logistic`: Bayesian logistic regression (Section 5.1).
- :mod:`~refvpng.models.small`: small random nonlinear models for property tests.
- :mod:`~refvpng.models.ppca`: probabilistic PCA and factor analysis (:class:`PPCASpec`), closed forms.
- :mod:`~refvpng.models.linear_vae`: the linear VAE on pPCA, closed-form ELBO and Fishers.
"""

from refvpng.models.latent import (
    LatentModel,
    ModelHooks,
    draw_eps,
    draw_model_samples,
    draw_predictive,
    outputs,
    split_params,
    without_hooks,
)
from refvpng.models.likelihoods import Bernoulli, Gaussian, GaussianLearnedVariance, Poisson
from refvpng.models.ppca import PPCASpec
from refvpng.models.variational import MeanFieldGaussian

__all__ = [
    "LatentModel",
    "ModelHooks",
    "MeanFieldGaussian",
    "Gaussian",
    "GaussianLearnedVariance",
    "Bernoulli",
    "Poisson",
    "PPCASpec",
    "draw_eps",
    "draw_model_samples",
    "draw_predictive",
    "outputs",
    "split_params",
    "without_hooks",
]
