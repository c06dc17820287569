r"""The bivariate Gaussian of Eq 4-5 of Tang & Ranganath (2019), with every closed form.

Model (global latent :math:`\mu \in \mathbb{R}^2`):

.. math::
    p(x_{1:n}, \mu) = N(\mu \mid 0, I_2)\prod_{i=1}^n N(x_i \mid \mu, \Sigma), \qquad
    \Sigma = \begin{pmatrix} 1 & 1-\epsilon \\ 1-\epsilon & 1 \end{pmatrix}.

Variational family :math:`q(\mu; \lambda) = N(\lambda, \sigma^2 I_2)`: with ``scale="fixed"``,
:math:`\lambda = (\lambda_1, \lambda_2)`; with ``"exp"``/``"softplus"``,
:math:`\lambda = (m_1, m_2, \rho_1, \rho_2)`.

Closed forms (:math:`S_x = \sum_i x_i`, :math:`\Sigma^{-1}` the precision):

- posterior :math:`\Sigma' = (n\Sigma^{-1} + I)^{-1}`, :math:`\mu' = (nI + \Sigma)^{-1}S_x
  = \Sigma'\Sigma^{-1}S_x`, the optimum of :math:`\lambda` (any :math:`\sigma`);
- ELBO: :math:`\mathcal{L} = \sum_i[-\log 2\pi - \tfrac12\log|\Sigma|
  - \tfrac12((x_i-m)^\top\Sigma^{-1}(x_i-m) + \sum_j\sigma_j^2(\Sigma^{-1})_{jj})]
  - \sum_j[-\log\sigma_j + \tfrac12(\sigma_j^2 + m_j^2) - \tfrac12]`;
- gradient in the means (Eq 5): :math:`\nabla_\lambda\mathcal{L} = -\lambda + \Sigma^{-1}(S_x - n\lambda)`;
- Hessian in the means: :math:`-(I + n\Sigma^{-1})`;
- q-Fisher in the means: :math:`F_q = I/\sigma^2`;
- VP Fisher: :math:`t_i = \mu = \lambda + \sigma\varepsilon`, :math:`J_i = I`, :math:`\Lambda = \Sigma^{-1}`,
  so :math:`F_r = n\Sigma^{-1}` for every draw of :math:`\varepsilon`;
- Eq 3 integral term in the means: by Stein's lemma twice,
  :math:`\int\partial^2_\lambda q\,(\log q - \log p(\mu\mid x)) = E_q[\nabla^2_\mu(\log q - \log
  p(\mu\mid x))] = \Sigma'^{-1} - I/\sigma^2 = I + n\Sigma^{-1} - I/\sigma^2`.

The precision has eigenvector :math:`(1,1)/\sqrt2` with eigenvalue :math:`1/(2-\epsilon)` and
:math:`(1,-1)/\sqrt2` with :math:`1/\epsilon`.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from refvpng._checks import as_array, as_int, as_positive_scalar, check_rng, finite_output
from refvpng.models.latent import LatentModel
from refvpng.models.likelihoods import Gaussian
from refvpng.models.variational import MeanFieldGaussian

__all__ = [
    "covariance",
    "make_model",
    "make_data",
    "posterior",
    "elbo_closed",
    "elbo_grad_closed",
    "elbo_hessian_closed",
    "q_fisher_closed",
    "vp_fisher_closed",
    "eq3_integral_closed",
    "log_posterior",
]


@finite_output
def covariance(eps_corr: float) -> np.ndarray:
    r"""The pathological covariance :math:`\Sigma` of Eq 4, requiring :math:`0 < \epsilon < 2`."""
    e = as_positive_scalar(eps_corr, "eps_corr")
    if e >= 2.0:
        raise ValueError(f"eps_corr must be in (0, 2) for Sigma to be positive definite, got {e}")
    return np.array([[1.0, 1.0 - e], [1.0 - e, 1.0]])


def make_model(eps_corr: float = 0.01, sigma: float | None = 1.0, scale: str = "fixed") -> LatentModel:
    """The model of Eq 4 with its mean-field family (see the module docstring for packing)."""
    cov = covariance(eps_corr)
    if scale == "fixed":
        family = MeanFieldGaussian("fixed", as_positive_scalar(sigma, "sigma"))
        n_lambda = 2

        def encode(lam, x):
            return lam[:2], None
    else:
        family = MeanFieldGaussian(scale)
        n_lambda = 4

        def encode(lam, x):
            return lam[:2], lam[2:4]

    def decode(theta, z, cov_):
        return z

    return LatentModel(
        name=f"gaussian_mean(eps={eps_corr:g},{scale})",
        n_lambda=n_lambda,
        n_theta=0,
        latent_dim=2,
        obs_dim=2,
        local=False,
        family=family,
        likelihood=Gaussian(cov),
        encode=encode,
        decode=decode,
        prior_std=1.0,
    )


@finite_output
def make_data(
    rng: np.random.Generator, n: int, eps_corr: float = 0.01, mu_true: ArrayLike = (1.0, -1.0)
) -> np.ndarray:
    r"""Draw :math:`x_i \sim N(\mu_{true}, \Sigma)`, shape ``(n, 2)``."""
    check_rng(rng)
    n = as_int(n, "n")
    mu_true = as_array(mu_true, "mu_true", shape=(2,))
    l_chol = np.linalg.cholesky(covariance(eps_corr))
    return mu_true + rng.standard_normal((n, 2)) @ l_chol.T


def _check_x(x):
    return as_array(x, "x", shape=(None, 2))


@finite_output
def posterior(x: ArrayLike, eps_corr: float) -> tuple[np.ndarray, np.ndarray]:
    r"""Exact posterior :math:`(\mu', \Sigma')` of Eq 4."""
    x = _check_x(x)
    n = x.shape[0]
    prec = np.linalg.inv(covariance(eps_corr))
    post_cov = np.linalg.inv(n * prec + np.eye(2))
    return post_cov @ prec @ x.sum(axis=0), post_cov


@finite_output
def log_posterior(z: ArrayLike, x: ArrayLike, eps_corr: float) -> float:
    r""":math:`\log p(\mu = z \mid x)` (a single draw ``z`` of shape (2,))."""
    mean, cov = posterior(x, eps_corr)
    r = as_array(z, "z", shape=(2,)) - mean
    _, logdet = np.linalg.slogdet(cov)
    return float(-0.5 * r @ np.linalg.solve(cov, r) - 0.5 * logdet - np.log(2 * np.pi))


def _split(lam, sigma, scale):
    if not isinstance(scale, str) or scale not in ("fixed", "exp", "softplus"):
        raise ValueError(f"scale must be 'fixed', 'exp' or 'softplus', got {scale!r}")
    if scale == "fixed":
        lam = as_array(lam, "lam", shape=(2,))
        return lam, np.full(2, as_positive_scalar(sigma, "sigma"))
    lam = as_array(lam, "lam", shape=(4,))
    return lam[:2], np.asarray(MeanFieldGaussian(scale).std(lam[2:]))


@finite_output
def elbo_closed(
    lam: ArrayLike, x: ArrayLike, eps_corr: float, sigma: float | None = 1.0, scale: str = "fixed"
) -> float:
    """Closed-form ELBO (Eq 1) of the model of Eq 4 (see module docstring)."""
    x = _check_x(x)
    m, s = _split(lam, sigma, scale)
    cov = covariance(eps_corr)
    prec = np.linalg.inv(cov)
    r = x - m
    ell = np.sum(
        -np.log(2 * np.pi)
        - 0.5 * np.linalg.slogdet(cov)[1]
        - 0.5 * (np.einsum("ij,jk,ik->i", r, prec, r) + np.sum(s**2 * np.diag(prec)))
    )
    kl = np.sum(-np.log(s) + 0.5 * (s**2 + m**2) - 0.5)
    return float(ell - kl)


@finite_output
def elbo_grad_closed(lam: ArrayLike, x: ArrayLike, eps_corr: float) -> np.ndarray:
    r"""Eq 5: :math:`\nabla_\lambda\mathcal{L} = -\lambda + \Sigma^{-1}(\sum_i x_i - n\lambda)` (means)."""
    x = _check_x(x)
    lam = as_array(lam, "lam", shape=(2,))
    prec = np.linalg.inv(covariance(eps_corr))
    return -lam + prec @ (x.sum(axis=0) - x.shape[0] * lam)


@finite_output
def elbo_hessian_closed(n: int, eps_corr: float) -> np.ndarray:
    r""":math:`\partial^2_\lambda\mathcal{L} = -(I + n\Sigma^{-1})` in the means."""
    return -(np.eye(2) + as_int(n, "n") * np.linalg.inv(covariance(eps_corr)))


@finite_output
def q_fisher_closed(sigma: float) -> np.ndarray:
    r""":math:`F_q = I/\sigma^2` in the means (Eq 2)."""
    sigma = as_positive_scalar(sigma, "sigma")
    if np.log(sigma) < -350.0:
        raise ValueError(f"sigma={sigma} is so small that 1/sigma^2 overflows float64")
    return np.eye(2) / sigma**2


@finite_output
def vp_fisher_closed(n: int, eps_corr: float) -> np.ndarray:
    r""":math:`F_r = n\Sigma^{-1}` (Section 3.3)."""
    return as_int(n, "n") * np.linalg.inv(covariance(eps_corr))


@finite_output
def eq3_integral_closed(n: int, eps_corr: float, sigma: float) -> np.ndarray:
    r"""The integral term of Eq 3 in the means: :math:`I + n\Sigma^{-1} - I/\sigma^2`."""
    return -elbo_hessian_closed(n, eps_corr) - q_fisher_closed(sigma)
