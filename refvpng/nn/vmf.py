r"""Variational Poisson matrix factorisation (Section 5.3) as one network with a stochastic layer.

Ratings :math:`R \in \{0, \dots, 9\}^{n \times m}` (missing entries zero), user vectors
:math:`\beta_u \in \mathbb R^d` latent with prior :math:`N(0, I)`, movie vectors
:math:`\theta_i \in \mathbb R^d` model parameters:

.. math::
    p(R \mid \theta, \beta) = \prod_{u=1}^n \prod_{i=1}^m
    \operatorname{Poisson}(R_{ui} \mid \operatorname{softplus}(\beta_u^\top \theta_i)), \qquad
    q(\beta_u \mid R_u; \lambda) = N(\mu_u, \operatorname{diag} \sigma_u^2),

with :math:`(\mu_u, \sigma_{raw,u})` from a three-layer ReLU inference network on the user's
rating row :math:`R_u` and :math:`\sigma = \operatorname{softplus}(\sigma_{raw}) + \sigma_{floor}`.
The likelihood is one linear layer **without bias**, :math:`t_u = \Theta \beta_u` with
:math:`\Theta = [\theta_1, \dots, \theta_m]^\top \in \mathbb R^{m \times d}`, followed by the
softplus-link Poisson: the whole model is the four-layer :class:`refvpng.nn.Chain` of
:func:`make_vmf` (encoder ``m -> hidden -> hidden -> 2d``, decoder ``d -> m`` without bias), and
:math:`\theta = \operatorname{vec}\Theta` column-major, as every layer of :mod:`refvpng.nn.mlp`.

:func:`vmf_model` is that chain as a :class:`~refvpng.models.latent.LatentModel`
(:func:`refvpng.nn.chain_model` with ``Poisson("softplus")``), on which every estimator of
:mod:`refvpng.curvature` runs; the fused training step is :func:`refvpng.nn.vae_step` with
``likelihood=Poisson("softplus")``.

References
----------
.. [1] Y. Tang and R. Ranganath, "The Variational Predictive Natural Gradient", ICML 2019,
   Section 5.3.
.. [2] P. Gopalan, J. M. Hofman and D. M. Blei, "Scalable recommendation with hierarchical
   Poisson factorization", UAI 2015.
"""

from __future__ import annotations

from refvpng._checks import as_int, as_nonneg_scalar
from refvpng.models.latent import LatentModel
from refvpng.models.likelihoods import Poisson
from refvpng.nn.chain import Chain, chain_model
from refvpng.nn.mlp import MLP

__all__ = ["VMF_LIKELIHOOD", "make_vmf", "vmf_model"]

VMF_LIKELIHOOD = Poisson("softplus")
"""The likelihood of Section 5.3: Poisson with rate :math:`\\operatorname{softplus}(t)`."""


def make_vmf(m: int, hidden: int = 300, d: int = 100, floor: float = 1e-4) -> Chain:
    r"""The VMF network: encoder ``m -> hidden -> hidden -> 2d`` (ReLU), decoder ``d -> m`` (no bias).

    Parameters
    ----------
    m : int
        Movies (columns of the rating matrix).
    hidden : int, default 300
        Hidden units of the inference network (paper: 300).
    d : int, default 100
        Latent dimension (paper: 100).
    floor : float, default 1e-4
        :math:`\sigma_{floor}`.

    Returns
    -------
    Chain
        Four affine layers; the decoder's :math:`\bar W = \Theta` has shape ``(m, d)``.

    Raises
    ------
    ValueError, TypeError
        If a width is not a positive integer or ``floor`` is negative.

    Examples
    --------
    >>> chain = make_vmf(1000)
    >>> chain.layer_shapes
    ((300, 1001), (300, 301), (200, 301), (1000, 100))
    >>> chain.num_params
    550800
    """
    m, hidden, d = as_int(m, "m"), as_int(hidden, "hidden"), as_int(d, "d")
    floor = as_nonneg_scalar(floor, "floor")
    return Chain(MLP((m, hidden, hidden, 2 * d), "relu"), MLP((d, m), "relu", bias=False), floor)


def vmf_model(chain: Chain) -> LatentModel:
    r"""The VMF chain as a :class:`~refvpng.models.latent.LatentModel` (softplus Poisson, prior N(0, I)).

    Parameters
    ----------
    chain : Chain
        From :func:`make_vmf` (any :class:`refvpng.nn.Chain` with ``d_x == d_out`` works).

    Returns
    -------
    LatentModel
        With the explicit-backward hooks of :func:`refvpng.nn.chain_model`.

    Examples
    --------
    >>> import numpy as np
    >>> from refvpng.curvature.fisher import vp_fisher_exact
    >>> from refvpng.models.latent import draw_eps
    >>> chain = make_vmf(6, hidden=4, d=2)
    >>> rng = np.random.default_rng(0)
    >>> x = rng.poisson(1.0, (3, 6)) * 1.0
    >>> eps = draw_eps(rng, vmf_model(chain), n=3, n_samples=2)
    >>> vp_fisher_exact(vmf_model(chain), chain.init(rng), x, eps).shape
    (80, 80)
    """
    return chain_model(chain, VMF_LIKELIHOOD)
