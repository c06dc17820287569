"""Neural networks with explicit forward/backward passes: MLPs and the VAE chain of Section 5.2.

See :mod:`refvpng.nn.mlp` for the parameter packing (column-major ``vec`` of ``[W, b]``) and
the Kronecker ordering (``A ⊗ G``, input factor left) used throughout,
:func:`refvpng.nn.chain_model` for the chain as a :class:`~refvpng.models.latent.LatentModel`,
and :mod:`refvpng.nn.vae` for the fused VAE training step of Figure 2, which also trains the
variational Poisson matrix factorisation of Figure 3 (:mod:`refvpng.nn.vmf`).
"""

from refvpng.nn.chain import Chain, ChainCache, ChainGrads, chain_model
from refvpng.nn.mlp import ACTIVATIONS, MLP, MLPCache, MLPGrads, per_example_gradients
from refvpng.nn.vae import (
    VAEStep,
    bernoulli_terms,
    bernoulli_terms_numba,
    make_vae,
    poisson_terms,
    poisson_terms_numba,
    truncated_normal_init,
    vae_elbo,
    vae_step,
)
from refvpng.nn.vmf import VMF_LIKELIHOOD, make_vmf, vmf_model

__all__ = [
    "ACTIVATIONS",
    "MLP",
    "MLPCache",
    "MLPGrads",
    "per_example_gradients",
    "Chain",
    "ChainCache",
    "ChainGrads",
    "chain_model",
    "VAEStep",
    "bernoulli_terms",
    "bernoulli_terms_numba",
    "make_vae",
    "poisson_terms",
    "poisson_terms_numba",
    "truncated_normal_init",
    "vae_elbo",
    "vae_step",
    "VMF_LIKELIHOOD",
    "make_vmf",
    "vmf_model",
]
