r"""The 1-D linear-Gaussian model of Section 3.2 of Tang & Ranganath (2019), with closed forms.

Model and family (local latents, :math:`\eta = (\lambda, \theta)`, :math:`\sigma` fixed):

.. math::
    z_i \sim N(0, 1), \quad x_i \mid z_i \sim N(\theta z_i, 1), \quad
    q(z_i \mid x_i; \lambda) = N(\lambda x_i, \sigma^2), \quad z_i = \lambda x_i + \sigma\varepsilon_i.

Derivation of the Eq 9 matrix. With :math:`r = x - \theta z` and
:math:`\ell = \log p(x \mid z = \lambda x + \sigma\varepsilon; \theta) = -r^2/2 + c`,

.. math::
    -\partial^2_\eta \ell = \begin{pmatrix}\theta^2 x^2 & \theta x z - x r\\
        \theta x z - x r & z^2\end{pmatrix}.

Under :math:`z \sim N(0,1)`, :math:`x \mid z \sim N(\theta z, 1)` (Eq 9: :math:`x' = x`),
:math:`r \sim N(0,1)` is independent of :math:`z`, so :math:`E x^2 = \theta^2+1`,
:math:`E xz = \theta`, :math:`E xr = 1`, :math:`E z^2 = 1`:

.. math::
    \text{Eq 9} = n\begin{pmatrix}\theta^2(\theta^2+1) & \theta^2-1\\ \theta^2-1 & 1\end{pmatrix},
    \qquad \det = n^2(3\theta^2 - 1),

not positive semi-definite exactly when :math:`|\theta| < 1/\sqrt3`, independent of
:math:`\lambda` and :math:`\sigma`. With the target resampled, :math:`x' \mid z \sim N(\theta z, 1)`
independent of :math:`x` (Eq 11), :math:`r' = x' - \theta z` has :math:`E[x r'] = 0`:

.. math::
    \text{Eq 11} = n\begin{pmatrix}\theta^2(\theta^2+1) & \theta^2\\ \theta^2 & 1\end{pmatrix},
    \qquad \det = n^2\theta^2 \ge 0.

On observed data :math:`x_{1:n}` (:math:`S_{xx} = \sum_i x_i^2`), with :math:`E z_i = \lambda x_i`,
:math:`E z_i^2 = \lambda^2 x_i^2 + \sigma^2`:

.. math::
    F_r = \begin{pmatrix}\theta^2 S_{xx} & \theta\lambda S_{xx}\\
        \theta\lambda S_{xx} & \lambda^2 S_{xx} + n\sigma^2\end{pmatrix},\qquad
    -\partial^2_\eta\mathcal{L}_{ll}\ (\text{Eq 7}) = \begin{pmatrix}\theta^2 S_{xx} &
        (2\theta\lambda - 1)S_{xx}\\ (2\theta\lambda-1)S_{xx} & \lambda^2S_{xx} + n\sigma^2
    \end{pmatrix}.

ELBO, posterior and the Eq 3 pieces in :math:`\lambda`:
:math:`\mathcal{L} = \sum_i[-\tfrac12\log 2\pi - \tfrac12((1-\theta\lambda)^2x_i^2 + \theta^2\sigma^2)
- \tfrac12(\sigma^2 + \lambda^2x_i^2 - 1 - \log\sigma^2)]`;
:math:`p(z_i\mid x_i) = N(\theta x_i/(1+\theta^2), 1/(1+\theta^2))`;
:math:`-\partial^2_\lambda\mathcal{L} = (1+\theta^2)S_{xx}`, :math:`F_q = S_{xx}/\sigma^2`, integral
term :math:`(1+\theta^2)S_{xx} - S_{xx}/\sigma^2`.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from refvpng._checks import as_array, as_finite_scalar, as_int, as_positive_scalar, check_rng, finite_output
from refvpng.models.latent import LatentModel
from refvpng.models.likelihoods import Gaussian
from refvpng.models.variational import MeanFieldGaussian

__all__ = [
    "PSD_THRESHOLD",
    "make_model",
    "make_data",
    "eq9_closed",
    "eq11_closed",
    "vp_fisher_closed",
    "ll_neg_hessian_closed",
    "elbo_closed",
    "elbo_grad_closed",
    "posterior",
    "log_posterior",
    "q_fisher_closed",
    "elbo_hessian_lambda_closed",
    "eq3_integral_closed",
]

PSD_THRESHOLD = 1.0 / np.sqrt(3.0)
"""The Eq 9 matrix is PSD exactly when :math:`|\\theta| \\ge 1/\\sqrt3`."""


def make_model(sigma: float = 1.0) -> LatentModel:
    """The model of Section 3.2 with fixed variational standard deviation ``sigma``."""
    sigma = as_positive_scalar(sigma, "sigma")

    def encode(lam, x):
        return lam[0] * x, None

    def decode(theta, z, cov):
        return theta[0] * z

    return LatentModel(
        name=f"linear_gaussian(sigma={sigma:g})",
        n_lambda=1,
        n_theta=1,
        latent_dim=1,
        obs_dim=1,
        local=True,
        family=MeanFieldGaussian("fixed", sigma),
        likelihood=Gaussian(np.eye(1)),
        encode=encode,
        decode=decode,
    )


@finite_output
def make_data(rng: np.random.Generator, n: int, theta: float = 1.0) -> np.ndarray:
    r"""Draw :math:`x_i = \theta z_i + \nu_i` with :math:`z_i, \nu_i \sim N(0,1)`, shape ``(n, 1)``."""
    check_rng(rng)
    n = as_int(n, "n")
    theta = as_finite_scalar(theta, "theta")
    return theta * rng.standard_normal((n, 1)) + rng.standard_normal((n, 1))


@finite_output
def eq9_closed(theta: float, n: int) -> np.ndarray:
    r""":math:`n[[\theta^2(\theta^2+1), \theta^2-1], [\theta^2-1, 1]]` (Eq 9)."""
    t2 = as_finite_scalar(theta, "theta") ** 2
    return as_int(n, "n") * np.array([[t2 * (t2 + 1.0), t2 - 1.0], [t2 - 1.0, 1.0]])


@finite_output
def eq11_closed(theta: float, n: int) -> np.ndarray:
    r""":math:`n[[\theta^2(\theta^2+1), \theta^2], [\theta^2, 1]]` (Eq 11), PSD for every :math:`\theta`."""
    t2 = as_finite_scalar(theta, "theta") ** 2
    return as_int(n, "n") * np.array([[t2 * (t2 + 1.0), t2], [t2, 1.0]])


def _unpack(eta, x):
    eta = as_array(eta, "eta", shape=(2,))
    x = as_array(x, "x", shape=(None, 1))
    return eta[0], eta[1], x[:, 0]


@finite_output
def vp_fisher_closed(eta: ArrayLike, x: ArrayLike, sigma: float) -> np.ndarray:
    r"""Exact :math:`F_r` on data ``x`` (module docstring)."""
    lam, th, xv = _unpack(eta, x)
    sigma = as_positive_scalar(sigma, "sigma")
    sxx = float(xv @ xv)
    return np.array([[th**2 * sxx, th * lam * sxx], [th * lam * sxx, lam**2 * sxx + xv.size * sigma**2]])


@finite_output
def ll_neg_hessian_closed(eta: ArrayLike, x: ArrayLike, sigma: float) -> np.ndarray:
    r"""Exact :math:`-\partial^2_\eta\mathcal{L}_{ll}` on data ``x`` (Eq 7)."""
    lam, th, xv = _unpack(eta, x)
    sigma = as_positive_scalar(sigma, "sigma")
    sxx = float(xv @ xv)
    off = (2 * th * lam - 1.0) * sxx
    return np.array([[th**2 * sxx, off], [off, lam**2 * sxx + xv.size * sigma**2]])


@finite_output
def elbo_closed(eta: ArrayLike, x: ArrayLike, sigma: float) -> float:
    """Closed-form ELBO (Eq 1)."""
    lam, th, xv = _unpack(eta, x)
    s2 = as_positive_scalar(sigma, "sigma") ** 2
    ell = -0.5 * np.log(2 * np.pi) - 0.5 * ((1 - th * lam) ** 2 * xv**2 + th**2 * s2)
    kl = 0.5 * (s2 + lam**2 * xv**2 - 1.0 - np.log(s2))
    return float(np.sum(ell - kl))


@finite_output
def elbo_grad_closed(eta: ArrayLike, x: ArrayLike, sigma: float) -> np.ndarray:
    r"""Closed-form gradient of the ELBO.

    .. math::
        (\partial_\lambda, \partial_\theta)\mathcal{L} = (S_{xx}(\theta - \theta^2\lambda - \lambda),\;
        \lambda S_{xx}(1 - \theta\lambda) - n\theta\sigma^2)
    """
    lam, th, xv = _unpack(eta, x)
    s2 = as_positive_scalar(sigma, "sigma") ** 2
    sxx = float(xv @ xv)
    return np.array([sxx * (th - th**2 * lam - lam), lam * sxx * (1 - th * lam) - xv.size * th * s2])


@finite_output
def posterior(theta: float, x: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    r"""Exact posterior :math:`p(z_i\mid x_i) = N(\theta x_i/(1+\theta^2), 1/(1+\theta^2))`."""
    x = as_array(x, "x", shape=(None, 1))
    theta = as_finite_scalar(theta, "theta")
    return theta * x / (1 + theta**2), np.full(x.shape, 1.0 / (1 + theta**2))


@finite_output
def log_posterior(z: ArrayLike, theta: float, x: ArrayLike) -> float:
    r""":math:`\sum_i\log p(z_i \mid x_i)` for one draw ``z`` of shape ``(n, 1)``."""
    mean, var = posterior(theta, x)
    z = as_array(z, "z", shape=mean.shape)
    return float(np.sum(-0.5 * (z - mean) ** 2 / var - 0.5 * np.log(2 * np.pi * var)))


@finite_output
def q_fisher_closed(x: ArrayLike, sigma: float) -> np.ndarray:
    r""":math:`F_q = S_{xx}/\sigma^2` (Eq 2), shape (1, 1)."""
    x = as_array(x, "x", shape=(None, 1))
    return np.array([[float(x[:, 0] @ x[:, 0]) / as_positive_scalar(sigma, "sigma") ** 2]])


@finite_output
def elbo_hessian_lambda_closed(theta: float, x: ArrayLike) -> np.ndarray:
    r""":math:`\partial^2_\lambda\mathcal{L} = -(1+\theta^2)S_{xx}`, shape (1, 1)."""
    x = as_array(x, "x", shape=(None, 1))
    theta = as_finite_scalar(theta, "theta")
    return np.array([[-(1 + theta**2) * float(x[:, 0] @ x[:, 0])]])


@finite_output
def eq3_integral_closed(theta: float, x: ArrayLike, sigma: float) -> np.ndarray:
    r"""Eq 3 integral term :math:`(1+\theta^2)S_{xx} - S_{xx}/\sigma^2`, shape (1, 1)."""
    return -elbo_hessian_lambda_closed(theta, x) - q_fisher_closed(x, sigma)
