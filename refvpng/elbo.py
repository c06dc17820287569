r"""The evidence lower bound (Eq 1 of Tang & Ranganath, 2019) and its reparameterisation gradient.

.. math::
    \mathcal{L}(\lambda, \theta) = E_q[\log p(x \mid z; \theta)]
        - \mathrm{KL}(q(z \mid x; \lambda) \,\|\, p(z))

The expected log-likelihood is estimated with pre-drawn noise :math:`\varepsilon_s`
(:math:`z = g(x, \varepsilon; \lambda)`, Eq 6); the KL term between the Gaussian family and the
Gaussian prior is exact. Sum over data points, mean over the ``S`` noise samples. A model's
``elbo_value_and_grad`` hook (:class:`~refvpng.models.latent.ModelHooks`) is used for the
gradient when present; otherwise autograd differentiates the model's ``encode``/``decode``.
"""

from __future__ import annotations

import autograd.numpy as anp
import numpy as np
from autograd import value_and_grad
from numpy.typing import ArrayLike

from refvpng._checks import as_array, check_finite_output, check_samples, finite_output
from refvpng.models.latent import (
    LatentModel,
    check_data,
    check_eps,
    check_model,
    outputs,
    split_params,
)

__all__ = ["elbo", "elbo_per_sample", "elbo_grad", "elbo_value_and_grad", "kl_term"]


def _kl(model, lam, x):
    m, rho = model.encode(lam, x)
    kl = model.family.kl_to_normal(m, rho, model.prior_std)
    return anp.sum(kl)


def _elbo_samples(model, eta, x, eps, cov):
    lam, _ = split_params(model, eta)
    t = outputs(model, eta, x, eps, cov)
    ll = anp.sum(model.likelihood.log_prob(x, t), axis=-1)  # (S,)
    return ll - _kl(model, lam, x)


@finite_output
def kl_term(model: LatentModel, lam: ArrayLike, x: ArrayLike) -> float:
    r""":math:`\mathrm{KL}(q(z \mid x; \lambda) \,\|\, p(z))` of Eq 1, exact, summed over data points.

    Parameters
    ----------
    model : LatentModel
    lam : ndarray, shape (n_lambda,)
    x : ndarray, shape (n, d)
        Observations (the encoder's input for local latents).

    Returns
    -------
    float
    """
    check_model(model)
    lam = as_array(lam, "lam", shape=(model.n_lambda,))
    x, _ = check_data(model, x, None) if not model.n_cov else (as_array(x, "x", ndim=2), None)
    return check_finite_output(float(_kl(model, lam, x)), "kl_term")


def _prepare(model, eta, x, eps, cov):
    check_model(model)
    x, cov = check_data(model, x, cov)
    eps = check_samples(check_eps(model, eps, x.shape[0]), "eps")
    eta = as_array(eta, "eta", ndim=1)
    split_params(model, eta)
    return eta, x, eps, cov


@finite_output
def elbo_per_sample(
    model: LatentModel, eta: ArrayLike, x: ArrayLike, eps: ArrayLike, cov: ArrayLike | None = None
) -> np.ndarray:
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
    return check_finite_output(np.asarray(_elbo_samples(model, eta, x, eps, cov)), "elbo_per_sample")


@finite_output
def elbo(
    model: LatentModel, eta: ArrayLike, x: ArrayLike, eps: ArrayLike, cov: ArrayLike | None = None
) -> float:
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
    >>> bool(abs(elbo(model, lam, x, eps) - gm.elbo_closed(lam, x, eps_corr=0.1, sigma=0.5)) < 5 * se)
    True
    """
    return check_finite_output(float(np.mean(elbo_per_sample(model, eta, x, eps, cov))), "elbo")


@finite_output
def elbo_value_and_grad(
    model: LatentModel, eta: ArrayLike, x: ArrayLike, eps: ArrayLike, cov: ArrayLike | None = None
) -> tuple[float, np.ndarray]:
    r"""The MC ELBO (Eq 1) and its reparameterisation gradient (Eq 6) at the given noise.

    The gradient is the exact derivative of :func:`elbo` at the given noise, an unbiased
    estimate of :math:`\nabla_\eta \mathcal{L}`: from the model's ``elbo_value_and_grad``
    hook when present, from autograd otherwise.

    Parameters
    ----------
    model : LatentModel
    eta : ndarray, shape (P,)
    x : ndarray, shape (n, d)
    eps : ndarray, shape (S, n, dz) or (S, dz)
    cov : ndarray, shape (n, c), optional

    Returns
    -------
    value : float
    grad : ndarray, shape (P,)
    """
    eta, x, eps, cov = _prepare(model, eta, x, eps, cov)
    if model.hooks.elbo_value_and_grad is not None:
        v, g = model.hooks.elbo_value_and_grad(eta, x, eps, cov)
        g = as_array(g, "hooks.elbo_value_and_grad gradient", shape=eta.shape, finite=False)
    else:
        v, g = value_and_grad(lambda e: anp.mean(_elbo_samples(model, e, x, eps, cov)))(eta)
    v, g = float(v), np.asarray(g, dtype=np.float64)
    check_finite_output(v, "elbo_value_and_grad", "ELBO")
    return v, check_finite_output(g, "elbo_value_and_grad", "gradient")


@finite_output
def elbo_grad(
    model: LatentModel, eta: ArrayLike, x: ArrayLike, eps: ArrayLike, cov: ArrayLike | None = None
) -> np.ndarray:
    r"""Reparameterisation gradient :math:`\nabla_\eta \hat{\mathcal{L}}` of the MC ELBO (Eq 1, 6).

    The gradient part of :func:`elbo_value_and_grad`.

    Returns
    -------
    ndarray, shape (P,)
    """
    return elbo_value_and_grad(model, eta, x, eps, cov)[1]
