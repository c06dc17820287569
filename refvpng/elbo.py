r"""The evidence lower bound (Eq 1 of Tang & Ranganath, 2019) and its reparameterisation gradient.

.. math::
    \mathcal{L}(\lambda, \theta) = E_q[\log p(x \mid z; \theta)]
        - \mathrm{KL}(q(z \mid x; \lambda) \,\|\, p(z))

The expected log-likelihood is estimated with pre-drawn noise :math:`\varepsilon_s`
(:math:`z = g(x, \varepsilon; \lambda)`, Eq 6); the KL term between the Gaussian family and the
Gaussian prior is exact. Sum over data points, mean over the ``S`` noise samples.
"""

from __future__ import annotations

import autograd.numpy as anp
import numpy as np
from autograd import grad

from refvpng._checks import as_array
from refvpng.models.latent import LatentModel, check_data, check_eps, outputs, split_params

__all__ = ["elbo", "elbo_per_sample", "elbo_grad", "kl_term"]


def kl_term(model: LatentModel, lam, x):
    r""":math:`\mathrm{KL}(q \,\|\, p)`, summed over data points for local latents."""
    m, rho = model.encode(lam, x)
    kl = model.family.kl_to_normal(m, rho, model.prior_std)
    return anp.sum(kl)


def _elbo_samples(model, eta, x, eps, cov):
    lam, _ = split_params(model, eta)
    t = outputs(model, eta, x, eps, cov)
    ll = anp.sum(model.likelihood.log_prob(x, t), axis=-1)  # (S,)
    return ll - kl_term(model, lam, x)


def _prepare(model, eta, x, eps, cov):
    x, cov = check_data(model, x, cov)
    eps = check_eps(model, eps, x.shape[0])
    eta = as_array(eta, "eta", ndim=1)
    split_params(model, eta)
    return eta, x, eps, cov


def elbo_per_sample(model: LatentModel, eta, x, eps, cov=None) -> np.ndarray:
    r"""Per-noise-sample ELBO estimates :math:`\sum_i \log p(x_i \mid z_{si}) - \mathrm{KL}`.

    Parameters
    ----------
    model : LatentModel
    eta : ndarray, shape (P,)
        Packed parameters :math:`(\lambda, \theta)`.
    x : ndarray, shape (n, d)
        Observations.
    eps : ndarray, shape (S, n, dz) or (S, dz)
        Pre-drawn standard-normal noise (see :mod:`refvpng.models.latent`).
    cov : ndarray, shape (n, c), optional
        Covariates, for models that take them.

    Returns
    -------
    ndarray, shape (S,)
        Unbiased, independent estimates of Eq 1; their mean is :func:`elbo`.
    """
    eta, x, eps, cov = _prepare(model, eta, x, eps, cov)
    return np.asarray(_elbo_samples(model, eta, x, eps, cov))


def elbo(model: LatentModel, eta, x, eps, cov=None) -> float:
    r"""Monte Carlo ELBO (Eq 1): mean over noise samples of :func:`elbo_per_sample`.

    Examples
    --------
    >>> import numpy as np
    >>> from refvpng.models import gaussian_mean as gm
    >>> model, x = gm.make_model(eps_corr=0.1, sigma=0.5), gm.make_data(np.random.default_rng(0), 20)
    >>> lam = np.array([0.3, -0.2])
    >>> eps = np.random.default_rng(1).standard_normal((4000, 2))
    >>> per = elbo_per_sample(model, lam, x, eps)
    >>> se = per.std(ddof=1) / np.sqrt(per.size)
    >>> bool(abs(elbo(model, lam, x, eps) - gm.elbo_exact(lam, x, eps_corr=0.1, sigma=0.5)) < 5 * se)
    True
    """
    return float(np.mean(elbo_per_sample(model, eta, x, eps, cov)))


def elbo_grad(model: LatentModel, eta, x, eps, cov=None) -> np.ndarray:
    r"""Reparameterisation gradient :math:`\nabla_\eta \hat{\mathcal{L}}` of the MC ELBO (Eq 1, 6).

    Exact derivative (autograd) of :func:`elbo` at the given noise: an unbiased estimate of
    :math:`\nabla_\eta \mathcal{L}`.

    Returns
    -------
    ndarray, shape (P,)
    """
    eta, x, eps, cov = _prepare(model, eta, x, eps, cov)
    return grad(lambda e: anp.mean(_elbo_samples(model, e, x, eps, cov)))(eta)
