"""Neural networks with explicit forward/backward passes: MLPs and the VAE chain of Section 5.2.

See :mod:`refvpng.nn.mlp` for the parameter packing (column-major ``vec`` of ``[W, b]``) and
the Kronecker ordering (``A ⊗ G``, input factor left) used throughout.
"""

from refvpng.nn.chain import (
    Chain,
    ChainCache,
    ChainGrads,
    bernoulli_output_fisher,
    bernoulli_sample,
    bernoulli_score,
    sample_predictive,
    vp_fisher_exact_chain,
    vp_fisher_mc_chain,
    vp_kfac_pairs_chain,
    vp_scores_chain,
)
from refvpng.nn.mlp import ACTIVATIONS, MLP, MLPCache, MLPGrads, per_example_gradients

__all__ = [
    "ACTIVATIONS",
    "MLP",
    "MLPCache",
    "MLPGrads",
    "per_example_gradients",
    "Chain",
    "ChainCache",
    "ChainGrads",
    "bernoulli_score",
    "bernoulli_output_fisher",
    "bernoulli_sample",
    "sample_predictive",
    "vp_scores_chain",
    "vp_fisher_mc_chain",
    "vp_kfac_pairs_chain",
    "vp_fisher_exact_chain",
]
