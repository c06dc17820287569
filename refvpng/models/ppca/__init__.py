r"""Linear-Gaussian latent models: probabilistic PCA and factor analysis.

.. math::
    z \sim N(0, I_k), \qquad x \mid z \sim N(W z + b, \Psi), \qquad
    x \sim N(b, C), \quad C = W W^\top + \Psi,

with :math:`\Psi = \psi I_d` (pPCA, ``noise="iso"``) or :math:`\operatorname{diag}(\psi_1..\psi_d)`
(factor analysis, ``noise="diag"``).

- :mod:`~refvpng.models.ppca.spec`: :class:`PPCASpec`, the sizes, noise model and packing
  (``theta = [W.ravel(order="F"), b, noise]``, named slices ``spec.slice("W")``);
- :mod:`~refvpng.models.ppca.model`: :func:`make_model`, the model with an affine mean-field
  encoder as a :class:`~refvpng.models.latent.LatentModel`, so every generic estimator of
  :mod:`refvpng.elbo` and :mod:`refvpng.curvature` (including the Monte Carlo and
  importance-sampling estimators of :mod:`refvpng.curvature.latent_fisher` and
  :mod:`refvpng.curvature.marginal_is`) runs on it;
- :mod:`~refvpng.models.ppca.closed`: the closed forms those estimators are tested against —
  log marginal, posterior, marginal score, and the joint, marginal and missing-information
  Fishers, **per data point** (the Fisher of ``n`` points is ``n`` times it);
- :mod:`~refvpng.models.ppca.mle`: the maximum-likelihood solution and its log-likelihood.

Examples
--------
>>> from refvpng.curvature.latent_fisher import joint_fisher_mc
>>> spec = PPCASpec(3, 1)
>>> theta = spec.pack(np.ones((3, 1)), np.zeros(3), 0.5)
>>> F, per = joint_fisher_mc(np.random.default_rng(0), make_model(spec), theta, 1, 2000)
>>> F.shape == joint_fisher_closed(spec, theta).shape
True
"""

import numpy as np  # noqa: F401  (doctest namespace)

from refvpng.models.ppca.closed import (
    joint_fisher_closed,
    log_marginal_closed,
    marginal_fisher_closed,
    marginal_score_closed,
    missing_information_closed,
    posterior_closed,
)
from refvpng.models.ppca.mle import max_loglik_closed, mle_closed, principal_angles
from refvpng.models.ppca.model import (
    make_model,
    n_lambda,
    pack_encoder,
    pack_eta,
    unpack_encoder,
    unpack_eta,
)
from refvpng.models.ppca.spec import NOISE_COORDS, NOISES, PPCASpec

__all__ = [
    "PPCASpec",
    "NOISES",
    "NOISE_COORDS",
    "make_model",
    "n_lambda",
    "pack_encoder",
    "unpack_encoder",
    "pack_eta",
    "unpack_eta",
    "log_marginal_closed",
    "posterior_closed",
    "marginal_score_closed",
    "joint_fisher_closed",
    "marginal_fisher_closed",
    "missing_information_closed",
    "mle_closed",
    "max_loglik_closed",
    "principal_angles",
]
