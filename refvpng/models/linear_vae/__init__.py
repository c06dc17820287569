r"""The linear VAE for probabilistic PCA: a ``LatentModel`` with closed forms.

Generative model (pPCA, Tipping & Bishop 1999) with local latents :math:`z_i \in \mathbb R^k`
and a **learned** noise variance,

.. math::
    z_i \sim N(0, I_k), \qquad x_i \mid z_i \sim N(W z_i + b, \psi I_d), \qquad \psi = e^\omega,

and an amortised mean-field Gaussian encoder :math:`q(z_i \mid x_i; \lambda) = N(Ax_i + c,
\operatorname{diag} e^{2\rho})`. The model is :func:`refvpng.models.ppca.make_model` of a
``PPCASpec(d, k)`` (``noise="iso"``, ``noise_coord="log"``), with the likelihood
:class:`~refvpng.models.likelihoods.GaussianLearnedVariance`; :math:`\eta = (\lambda, \theta)`
is packed by :func:`~refvpng.models.ppca.pack_eta` (``A`` and ``W`` column-major, ``theta``
exactly the pPCA packing, so it can be passed to every closed form of
:mod:`refvpng.models.ppca`).

The expected log-likelihood of an affine decoder under a Gaussian :math:`q` is analytic, so the
ELBO (:func:`elbo_closed`), the variational predictive Fisher :math:`F_r`
(:func:`vp_fisher_closed`, exact in :math:`\varepsilon` and :math:`x'`), the q-Fisher
(:func:`q_fisher_closed`) and the decoder Fisher (:func:`decoder_fisher_closed`) are closed
forms. Every integrand in :math:`\varepsilon` is a polynomial of degree at most two, so the
generic estimators evaluated at :func:`sigma_point_eps` reproduce them to rounding: that is how
they are tested. At the pPCA maximum-likelihood :math:`\theta_{\mathrm{ML}}` the encoder of
:func:`optimal_encoder` is the exact posterior and the ELBO equals ``n`` times
:func:`~refvpng.models.ppca.max_loglik_closed` (:func:`mle_eta`).

References
----------
M. E. Tipping and C. M. Bishop, "Probabilistic principal component analysis", JRSS-B 61(3),
1999 (Eq 6 the posterior, Eqs 7-8 the ML solution).
S. Tang and R. Ranganath, "The Variational Predictive Natural Gradient", ICML 2019 (Eq 1 the
ELBO, Eq 2 the q-Fisher, Section 3.3 and Eq 16 the variational predictive Fisher).
"""

from refvpng.models.linear_vae.elbo import (
    elbo_closed,
    elbo_closed_grad,
    elbo_closed_value_and_grad,
    mle_eta,
    optimal_encoder,
    sigma_point_eps,
)
from refvpng.models.linear_vae.fishers import (
    decoder_fisher_closed,
    q_fisher_closed,
    vp_fisher_closed,
)
from refvpng.models.ppca.model import make_model, n_lambda, pack_eta, unpack_eta
from refvpng.models.ppca.spec import PPCASpec

__all__ = [
    "PPCASpec",
    "make_model",
    "n_lambda",
    "pack_eta",
    "unpack_eta",
    "sigma_point_eps",
    "elbo_closed",
    "elbo_closed_grad",
    "elbo_closed_value_and_grad",
    "optimal_encoder",
    "mle_eta",
    "q_fisher_closed",
    "decoder_fisher_closed",
    "vp_fisher_closed",
]
