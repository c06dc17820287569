"""refvpng: a NumPy reference implementation of the Variational Predictive Natural Gradient.

Tang & Ranganath (2019), "The Variational Predictive Natural Gradient", ICML.

Subpackages: :mod:`refvpng.models` (the :class:`~refvpng.models.latent.LatentModel` protocol,
likelihoods, variational family, models with closed forms), :mod:`refvpng.curvature` (Fishers,
Hessians, K-FAC, the damped solve), :mod:`refvpng.nn` (MLPs, the VAE chain),
:mod:`refvpng.optim` (optax-style optimisers, Algorithm 1), :mod:`refvpng.elbo`,
:mod:`refvpng.testing`, :mod:`refvpng.data`, :mod:`refvpng.experiments`, :mod:`refvpng.verify`.
"""

__version__ = "0.1.0"

from refvpng.elbo import elbo, elbo_grad, elbo_value_and_grad  # noqa: E402
from refvpng.models.latent import LatentModel, ModelHooks, draw_eps, draw_predictive  # noqa: E402

__all__ = [
    "__version__",
    "LatentModel",
    "ModelHooks",
    "draw_eps",
    "draw_predictive",
    "elbo",
    "elbo_grad",
    "elbo_value_and_grad",
]
