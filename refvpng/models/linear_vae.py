r"""The linear VAE for probabilistic PCA: a ``LatentModel`` with closed forms.

Generative model (pPCA, Tipping & Bishop 1999) with local latents :math:`z_i \in \mathbb R^k`,

.. math::
    z_i \sim N(0, I_k), \qquad x_i \mid z_i \sim N(W z_i + b, \psi I_d), \qquad \psi = e^\omega,

the noise variance :math:`\psi` being **learned** (unlike the known-covariance
:class:`~refvpng.models.likelihoods.Gaussian`). Encoder (amortised mean-field Gaussian,
``MeanFieldGaussian("exp")``):

.. math::
    q(z_i \mid x_i; \lambda) = N\big(m_i, \operatorname{diag}(\sigma^2)\big), \qquad
    m_i = A x_i + c, \qquad \sigma = e^\rho \ (\text{one } \rho \in \mathbb R^k
    \text{ shared by all points}).

Parameter packing
-----------------
:math:`\eta = (\lambda, \theta)` with, in this order (row-major ``ravel``),

- :math:`\lambda = (\mathrm{vec}A \in \mathbb R^{kd},\ c \in \mathbb R^k,\ \rho \in \mathbb R^k)`,
  ``n_lambda = k*d + 2*k``;
- :math:`\theta = (\mathrm{vec}W \in \mathbb R^{dk},\ b \in \mathbb R^d,\ \omega)`,
  ``n_theta = d*k + d + 1``: exactly the packing of :mod:`refvpng.models.ppca` with
  ``noise="iso", noise_coord="log"``, so ``theta`` can be passed to every closed form there.

The likelihood output has ``d + 1`` columns
-------------------------------------------
``decode(theta, z, cov)`` returns :math:`t_i = (W z_i + b,\ \omega)`, shape ``(..., n, d + 1)``:
the mean and the log-variance, consumed by :class:`GaussianLearnedVariance`. The model's
``obs_dim`` is ``d`` (the data), the output has one more column; :mod:`refvpng.elbo`,
:func:`~refvpng.curvature.fisher.vp_fisher_exact`, :func:`~refvpng.curvature.fisher.vp_fisher_mc`
and :func:`~refvpng.models.latent.draw_predictive` work with it (the output Fisher
:math:`\Lambda` is ``(d+1)``-diagonal, predictive samples have ``d`` columns).

Closed forms
------------
The expected log-likelihood of an affine decoder under a Gaussian :math:`q` is analytic, so the
ELBO (:func:`elbo_exact`), the variational predictive Fisher :math:`F_r` (:func:`vp_fisher_closed`,
exact in :math:`\varepsilon` as well as in :math:`x'`), the q-Fisher (:func:`q_fisher_closed`) and
the decoder Fisher (:func:`decoder_fisher_closed`) are all closed forms. Every integrand in
:math:`\varepsilon` is a polynomial of degree at most two, so the Monte Carlo estimators of
refvpng evaluated at the :func:`sigma_point_eps` noise reproduce them to rounding: that is how
they are tested against the generic autograd builds.

At the pPCA maximum-likelihood :math:`\theta_{\mathrm{ML}}` the columns of
:math:`W_{\mathrm{ML}}` are orthogonal, the exact posterior has a diagonal covariance, the
encoder of :func:`optimal_encoder` equals it, and the ELBO equals the maximal log-likelihood
:func:`~refvpng.models.ppca.ppca_max_loglik` (times ``n``).

Sum over data points, as everywhere in refvpng; the pPCA Fishers of :mod:`refvpng.models.ppca`
are per point.

References
----------
M. E. Tipping and C. M. Bishop, "Probabilistic principal component analysis", JRSS-B 61(3),
1999 (Eq 6 the posterior, Eqs 7-8 the ML solution).
S. Tang and R. Ranganath, "The Variational Predictive Natural Gradient", ICML 2019 (Eq 1 the
ELBO, Eq 2 the q-Fisher, Section 3.3 and Eq 16 the variational predictive Fisher).
"""

from __future__ import annotations

from dataclasses import dataclass

import autograd.numpy as anp
import numpy as np
from autograd import grad

from refvpng._checks import as_array, as_int
from refvpng.models.latent import LatentModel
from refvpng.models.ppca import _check_dims as _dims
from refvpng.models.variational import MeanFieldGaussian

__all__ = [
    "GaussianLearnedVariance",
    "make_model",
    "n_lambda",
    "n_theta",
    "pack",
    "unpack",
    "sigma_point_eps",
    "elbo_exact",
    "elbo_exact_grad",
    "elbo_exact_value_and_grad",
    "optimal_encoder",
    "mle_eta",
    "q_fisher_closed",
    "decoder_fisher_closed",
    "vp_fisher_closed",
]

_LOG_2PI = float(np.log(2.0 * np.pi))


# --------------------------------------------------------------------------------------------
# the likelihood family with a learned isotropic variance
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GaussianLearnedVariance:
    r"""Isotropic Gaussian with learned variance: :math:`N(x \mid \mu, e^{s} I_d)`.

    The output parameter is :math:`t = (\mu, s)` with ``d + 1`` columns: the mean
    :math:`\mu = t_{:d}` and the log-variance :math:`s = t_d` (:math:`\psi = e^s`).

    .. math::
        \log p(x \mid t) = -\tfrac12\big(d\log 2\pi + d\,s + e^{-s}\lVert x-\mu\rVert^2\big),

    score :math:`\nabla_t\log p = \big(e^{-s}(x-\mu),\ -\tfrac d2 + \tfrac12 e^{-s}
    \lVert x-\mu\rVert^2\big)` and the (diagonal) output Fisher

    .. math::
        \Lambda(t) = \operatorname{diag}\big(e^{-s}, \dots, e^{-s},\ \tfrac d2\big),

    the mean and log-variance blocks being orthogonal (odd moments of :math:`x-\mu` vanish).

    Parameters
    ----------
    dim : int
        Data dimension ``d`` (the output has ``d + 1`` columns).

    Examples
    --------
    >>> lik = GaussianLearnedVariance(2)
    >>> t = np.array([0.0, 0.0, np.log(4.0)])          # mean 0, variance 4
    >>> lik.output_fisher(t).tolist()
    [0.25, 0.25, 1.0]
    >>> lik.score(np.array([2.0, 0.0]), t).tolist()
    [0.5, 0.0, -0.5]
    """

    dim: int
    diagonal = True

    def __post_init__(self):
        object.__setattr__(self, "dim", as_int(self.dim, "dim"))

    def _split(self, t):
        if np.shape(t)[-1] != self.dim + 1:
            raise ValueError(
                f"t must have d + 1 = {self.dim + 1} columns (mean, log-variance), got shape {np.shape(t)}"
            )
        return t[..., : self.dim], t[..., self.dim]

    def log_prob(self, x, t):
        r""":math:`\log N(x \mid \mu, e^s I)`, summed over the ``d`` data columns."""
        mu, s = self._split(t)
        r = x - mu
        return -0.5 * (self.dim * (_LOG_2PI + s) + anp.exp(-s) * anp.sum(r * r, axis=-1))

    def score(self, x, t):
        r""":math:`\nabla_t \log p(x \mid t)`, shape ``(..., d + 1)``."""
        t = np.asarray(t, dtype=np.float64)
        x = np.asarray(x, dtype=np.float64)
        mu, s = self._split(t)
        inv = np.exp(-s)
        r = x - mu
        ds = -0.5 * self.dim + 0.5 * inv * np.sum(r * r, axis=-1)
        return np.concatenate([inv[..., None] * r, ds[..., None]], axis=-1)

    def sample(self, rng: np.random.Generator, t):
        r"""Draw :math:`x' = \mu + e^{s/2}\varepsilon`, shape ``(..., d)``."""
        t = np.asarray(t, dtype=np.float64)
        mu, s = self._split(t)
        return mu + np.exp(0.5 * s)[..., None] * rng.standard_normal(mu.shape)

    def output_fisher(self, t):
        r"""Diagonal :math:`\Lambda(t) = (e^{-s}, \dots, e^{-s}, d/2)`, shape ``(..., d + 1)``."""
        t = np.asarray(t, dtype=np.float64)
        _, s = self._split(t)
        out = np.empty(t.shape)
        out[..., : self.dim] = np.exp(-s)[..., None]
        out[..., self.dim] = 0.5 * self.dim
        return out

    def whiten(self, jac, t):
        r"""Return :math:`\sqrt{\Lambda} J` for ``jac`` of shape ``(..., d+1, P)``."""
        return np.sqrt(self.output_fisher(t))[..., None] * np.asarray(jac)


# --------------------------------------------------------------------------------------------
# packing
# --------------------------------------------------------------------------------------------


def n_lambda(d: int, k: int) -> int:
    r"""Length ``k*d + 2*k`` of the encoder block :math:`\lambda = (\mathrm{vec}A, c, \rho)`."""
    d, k = _dims(d, k)
    return k * d + 2 * k


def n_theta(d: int, k: int) -> int:
    r"""Length ``d*k + d + 1`` of the decoder block :math:`\theta = (\mathrm{vec}W, b, \omega)`."""
    d, k = _dims(d, k)
    return d * k + d + 1


def pack(A, c, rho, W, b, psi) -> np.ndarray:
    r"""Pack encoder ``(A, c, rho)`` and decoder ``(W, b, psi)`` into :math:`\eta`.

    Parameters
    ----------
    A : array_like, shape (k, d)
        Encoder slope, :math:`m_i = A x_i + c`.
    c : array_like, shape (k,)
        Encoder offset.
    rho : array_like, shape (k,)
        Log standard deviations of :math:`q`, :math:`\sigma = e^\rho`.
    W : array_like, shape (d, k)
        Loadings.
    b : array_like, shape (d,)
        Offset of the decoder.
    psi : float
        Noise **variance** :math:`\psi > 0` (stored as :math:`\omega = \log\psi`).

    Returns
    -------
    eta : ndarray, shape (k*d + 2*k + d*k + d + 1,)

    Raises
    ------
    ValueError
        On inconsistent shapes, non-finite entries or ``psi <= 0``.

    Examples
    --------
    >>> eta = pack(np.zeros((1, 2)), [0.0], [0.0], np.ones((2, 1)), [0.0, 0.0], 1.0)
    >>> eta.shape
    (9,)
    """
    W = as_array(W, "W", ndim=2)
    d, k = _dims(*W.shape)
    A = as_array(A, "A", shape=(k, d))
    c = as_array(c, "c", shape=(k,))
    rho = as_array(rho, "rho", shape=(k,))
    b = as_array(b, "b", shape=(d,))
    psi = float(as_array(psi, "psi", ndim=(0, 1)).reshape(-1)[0])
    if not psi > 0:
        raise ValueError(f"psi must be > 0, got {psi}")
    return np.concatenate([A.ravel(), c, rho, W.ravel(), b, [np.log(psi)]])


def _check_eta(eta, d, k):
    d, k = _dims(d, k)
    eta = as_array(eta, "eta", ndim=1)
    p = n_lambda(d, k) + n_theta(d, k)
    if eta.shape[0] != p:
        raise ValueError(
            f"eta must have length k*d + 2k + d*k + d + 1 = {p} (d={d}, k={k}), got {eta.shape[0]}"
        )
    return eta, d, k


def _parts(eta, d, k):
    """Unpack without checks (autograd-friendly): ``A, c, rho, W, b, omega``."""
    o = 0
    A = anp.reshape(eta[o : o + k * d], (k, d))
    o += k * d
    c = eta[o : o + k]
    o += k
    rho = eta[o : o + k]
    o += k
    W = anp.reshape(eta[o : o + d * k], (d, k))
    o += d * k
    b = eta[o : o + d]
    o += d
    return A, c, rho, W, b, eta[o]


def unpack(eta, *, d: int, k: int):
    r"""Unpack :math:`\eta` into ``(A, c, rho, W, b, psi)`` (``psi`` the noise variance).

    Parameters
    ----------
    eta : array_like, shape (k*d + 2*k + d*k + d + 1,)
    d, k : int
        Data and latent dimensions, ``1 <= k <= d``.

    Returns
    -------
    A : ndarray, shape (k, d)
    c, rho : ndarray, shape (k,)
    W : ndarray, shape (d, k)
    b : ndarray, shape (d,)
    psi : float

    Raises
    ------
    ValueError
        On a wrong length or non-finite entries.

    Examples
    --------
    >>> eta = pack(np.ones((1, 2)), [0.5], [0.0], np.ones((2, 1)), [0.0, 1.0], 2.0)
    >>> A, c, rho, W, b, psi = unpack(eta, d=2, k=1)
    >>> A.tolist(), b.tolist(), round(psi, 12)
    ([[1.0, 1.0]], [0.0, 1.0], 2.0)
    """
    eta, d, k = _check_eta(eta, d, k)
    A, c, rho, W, b, om = _parts(eta, d, k)
    return A.copy(), c.copy(), rho.copy(), W.copy(), b.copy(), float(np.exp(om))


# --------------------------------------------------------------------------------------------
# the LatentModel
# --------------------------------------------------------------------------------------------


def make_model(d: int, k: int) -> LatentModel:
    r"""Build the linear VAE of the module docstring as a ``LatentModel``.

    Local latents, prior :math:`N(0, I_k)` (``prior_std = 1``, the pPCA prior), family
    ``MeanFieldGaussian("exp")``, likelihood :class:`GaussianLearnedVariance`.

    Parameters
    ----------
    d, k : int
        Data and latent dimensions, ``1 <= k <= d``.

    Returns
    -------
    LatentModel
        ``n_lambda = k*d + 2*k``, ``n_theta = d*k + d + 1``, ``obs_dim = d``.

    Raises
    ------
    ValueError
        If ``k > d`` or a dimension is < 1.

    Examples
    --------
    >>> from refvpng.elbo import elbo
    >>> model = make_model(3, 2)
    >>> eta = np.zeros(model.n_params)
    >>> x = np.ones((4, 3))
    >>> bool(np.isclose(elbo(model, eta, x, sigma_point_eps(4, 2)), elbo_exact(eta, x, d=3, k=2)))
    True
    """
    d, k = _dims(d, k)
    nl = n_lambda(d, k)

    def encode(lam, x):
        A = anp.reshape(lam[: k * d], (k, d))
        c = lam[k * d : k * d + k]
        rho = lam[k * d + k :]
        m = anp.dot(x, A.T) + c
        return m, anp.ones((x.shape[0], 1)) * rho

    def decode(theta, z, cov):
        W = anp.reshape(theta[: d * k], (d, k))
        mean = anp.dot(z, W.T) + theta[d * k : d * k + d]
        om = theta[d * k + d] * anp.ones(mean.shape[:-1] + (1,))
        return anp.concatenate([mean, om], axis=-1)

    return LatentModel(
        name=f"linear_vae(d={d},k={k})",
        n_lambda=nl,
        n_theta=n_theta(d, k),
        latent_dim=k,
        obs_dim=d,
        local=True,
        family=MeanFieldGaussian("exp"),
        likelihood=GaussianLearnedVariance(d),
        encode=encode,
        decode=decode,
    )


def sigma_point_eps(n: int, k: int) -> np.ndarray:
    r"""Noise for which Monte Carlo averages of quadratics in :math:`\varepsilon` are exact.

    The ``2k`` rows :math:`\pm\sqrt k\, e_j` (shared by all ``n`` points) have sample mean
    :math:`0` and sample second moment :math:`I_k`, the first two moments of :math:`N(0, I_k)`.
    Every integrand of the linear VAE in :math:`\varepsilon` (expected log-likelihood,
    :math:`J^\top\Lambda J`) has degree at most two, so :func:`refvpng.elbo.elbo`,
    :func:`~refvpng.curvature.fisher.vp_fisher_exact` and friends return the exact expectation.

    Parameters
    ----------
    n, k : int
        Number of data points and latent dimension.

    Returns
    -------
    eps : ndarray, shape (2k, n, k)

    Examples
    --------
    >>> e = sigma_point_eps(3, 2)
    >>> e.shape, bool(np.all(e.mean(axis=0) == 0.0))
    ((4, 3, 2), True)
    >>> np.einsum("sni,snj->nij", e, e)[0] / 4
    array([[1., 0.],
           [0., 1.]])
    """
    n = as_int(n, "n")
    k = as_int(k, "k")
    base = np.sqrt(k) * np.concatenate([np.eye(k), -np.eye(k)])
    return np.broadcast_to(base[:, None, :], (2 * k, n, k)).copy()


# --------------------------------------------------------------------------------------------
# closed-form ELBO
# --------------------------------------------------------------------------------------------


def _elbo_core(eta, x, d, k):
    A, c, rho, W, b, om = _parts(eta, d, k)
    n = x.shape[0]
    m = anp.dot(x, A.T) + c
    s2 = anp.exp(2.0 * rho)
    r = x - anp.dot(m, W.T) - b
    tr = anp.sum(s2 * anp.sum(W * W, axis=0))
    ell = -0.5 * (n * d * (_LOG_2PI + om) + anp.exp(-om) * (anp.sum(r * r) + n * tr))
    kl = 0.5 * (n * anp.sum(s2 - 1.0 - 2.0 * rho) + anp.sum(m * m))
    return ell - kl


def _check_x(x, d):
    x = as_array(x, "x", ndim=2)
    if x.shape[1] != d or x.shape[0] < 1:
        raise ValueError(f"x must have shape (n, {d}) with n >= 1, got {x.shape}")
    return x


def elbo_exact(eta, x, *, d: int, k: int) -> float:
    r"""Closed-form ELBO (Eq 1) of the linear VAE, summed over the ``n`` data points.

    With :math:`m_i = Ax_i + c`, :math:`\sigma = e^\rho`, :math:`\psi = e^\omega`:

    .. math::
        \mathcal L = \sum_{i=1}^n\Big[-\tfrac12\Big(d\log 2\pi + d\,\omega
            + \frac{\lVert x_i - W m_i - b\rVert^2 + \sum_j \sigma_j^2\lVert w_j\rVert^2}{\psi}
            \Big) - \tfrac12\sum_j\big(\sigma_j^2 + m_{ij}^2 - 1 - 2\rho_j\big)\Big],

    the first term :math:`E_q[\log N(x_i \mid W z_i + b, \psi I)]` (:math:`w_j` the columns of
    :math:`W`), the second :math:`-\mathrm{KL}(q(z_i \mid x_i) \,\|\, N(0, I))`.

    Parameters
    ----------
    eta : array_like, shape (P,)
        Packed parameters (module docstring).
    x : array_like, shape (n, d)
    d, k : int

    Returns
    -------
    float

    Raises
    ------
    ValueError
        On wrong shapes or non-finite inputs.

    Examples
    --------
    At the ML solution with the matching encoder the ELBO is the maximal log-likelihood:

    >>> from refvpng.models import ppca
    >>> x = np.random.default_rng(0).standard_normal((50, 3)) @ np.diag([2.0, 1.0, 0.3])
    >>> bool(np.isclose(elbo_exact(mle_eta(x, 1), x, d=3, k=1) / 50, ppca.ppca_max_loglik(x, 1)))
    True
    """
    eta, d, k = _check_eta(eta, d, k)
    x = _check_x(x, d)
    return float(_elbo_core(eta, x, d, k))


def elbo_exact_grad(eta, x, *, d: int, k: int) -> np.ndarray:
    r"""Gradient of :func:`elbo_exact` by autograd on the closed form: the derivative oracle.

    Parameters
    ----------
    eta : array_like, shape (P,)
    x : array_like, shape (n, d)
    d, k : int

    Returns
    -------
    ndarray, shape (P,)

    Raises
    ------
    ValueError
        As :func:`elbo_exact`.

    Examples
    --------
    >>> x = np.random.default_rng(0).standard_normal((30, 3))
    >>> bool(np.allclose(elbo_exact_grad(mle_eta(x, 1), x, d=3, k=1), 0.0, atol=1e-8))
    True
    """
    eta, d, k = _check_eta(eta, d, k)
    x = _check_x(x, d)
    return np.asarray(grad(lambda e: _elbo_core(e, x, d, k))(eta), dtype=np.float64)


def elbo_exact_value_and_grad(eta, x, *, d: int, k: int) -> tuple[float, np.ndarray]:
    r"""Closed-form ELBO and its hand-derived gradient (NumPy, for loops; autograd-checked).

    With :math:`M = XA^\top + \mathbf 1c^\top` (rows :math:`m_i`),
    :math:`R = X - MW^\top - \mathbf 1 b^\top`, :math:`\nu_j = \lVert w_j\rVert^2` and
    :math:`T = \lVert R\rVert_F^2 + n\sum_j\sigma_j^2\nu_j`:

    .. math::
        \bar M = RW/\psi - M, \quad
        \nabla_A\mathcal L = \bar M^\top X, \quad \nabla_c\mathcal L = \bar M^\top\mathbf 1,
        \quad \nabla_{\rho_j}\mathcal L = -n\sigma_j^2\nu_j/\psi - n(\sigma_j^2 - 1),

    .. math::
        \nabla_W\mathcal L = \big(R^\top M - nW\operatorname{diag}\sigma^2\big)/\psi, \quad
        \nabla_b\mathcal L = R^\top\mathbf 1/\psi, \quad
        \nabla_\omega\mathcal L = -\tfrac{nd}2 + \tfrac{T}{2\psi}.

    Parameters
    ----------
    eta : array_like, shape (P,)
    x : array_like, shape (n, d)
    d, k : int

    Returns
    -------
    value : float
        :func:`elbo_exact`.
    grad : ndarray, shape (P,)
        Equal to :func:`elbo_exact_grad` (to rounding).

    Raises
    ------
    ValueError
        As :func:`elbo_exact`.

    Examples
    --------
    >>> x = np.random.default_rng(0).standard_normal((20, 3))
    >>> eta = np.random.default_rng(1).standard_normal(n_lambda(3, 2) + n_theta(3, 2))
    >>> v, g = elbo_exact_value_and_grad(eta, x, d=3, k=2)
    >>> bool(np.allclose(g, elbo_exact_grad(eta, x, d=3, k=2)))
    True
    >>> bool(np.isclose(v, elbo_exact(eta, x, d=3, k=2)))
    True
    """
    eta, d, k = _check_eta(eta, d, k)
    x = _check_x(x, d)
    A, c, rho, W, b, om = _parts(eta, d, k)
    n = x.shape[0]
    m = x @ A.T + c
    s2 = np.exp(2.0 * rho)
    psi = float(np.exp(om))
    r = x - m @ W.T - b
    nu = np.sum(W * W, axis=0)
    tot = float(np.sum(r * r)) + n * float(np.sum(s2 * nu))
    value = -0.5 * (n * d * (_LOG_2PI + om) + tot / psi) - 0.5 * (
        n * float(np.sum(s2 - 1.0 - 2.0 * rho)) + float(np.sum(m * m))
    )
    mbar = r @ W / psi - m
    g = np.concatenate(
        [
            (mbar.T @ x).ravel(),
            mbar.sum(axis=0),
            -n * s2 * nu / psi - n * (s2 - 1.0),
            ((r.T @ m - n * W * s2) / psi).ravel(),
            r.sum(axis=0) / psi,
            [-0.5 * n * d + 0.5 * tot / psi],
        ]
    )
    return float(value), g


# --------------------------------------------------------------------------------------------
# the optimal encoder and the ML point
# --------------------------------------------------------------------------------------------


def optimal_encoder(theta, *, d: int, k: int) -> np.ndarray:
    r"""Return the maximiser :math:`\lambda^*(\theta)` of the ELBO over the encoder.

    With :math:`M = I_k + W^\top W/\psi` (the posterior precision, Tipping & Bishop Eq 6) the
    mean-field optimum has the exact posterior mean and the diagonal precisions of :math:`M`:

    .. math::
        A = M^{-1}W^\top/\psi, \qquad c = -A b, \qquad \sigma_j^2 = 1/M_{jj}.

    The encoder is affine in :math:`x`, so this optimum is attained for every data point at once.
    When :math:`W` has orthogonal columns, :math:`M` is diagonal and :math:`q` is the exact
    posterior :math:`p(z \mid x; \theta)`.

    Parameters
    ----------
    theta : array_like, shape (d*k + d + 1,)
        Decoder parameters (pPCA packing, ``noise="iso"``, ``noise_coord="log"``).
    d, k : int

    Returns
    -------
    lam : ndarray, shape (k*d + 2*k,)

    Raises
    ------
    ValueError
        On a wrong length or non-finite entries.

    Examples
    --------
    >>> from refvpng.models import ppca
    >>> theta = ppca.pack(np.array([[2.0], [0.0]]), np.zeros(2), 1.0)
    >>> lam = optimal_encoder(theta, d=2, k=1)
    >>> mean, cov = ppca.posterior(theta, np.array([[1.0, 3.0]]), d=2, k=1)
    >>> bool(np.isclose(lam[:2] @ [1.0, 3.0] + lam[2], mean[0, 0]))
    True
    >>> bool(np.isclose(np.exp(2 * lam[3]), cov[0, 0]))
    True
    """
    d, k = _dims(d, k)
    theta = as_array(theta, "theta", shape=(n_theta(d, k),))
    W = theta[: d * k].reshape(d, k)
    b = theta[d * k : d * k + d]
    psi = float(np.exp(theta[-1]))
    M = np.eye(k) + W.T @ W / psi
    A = np.linalg.solve(M, W.T) / psi
    c = -A @ b
    rho = -0.5 * np.log(np.diag(M))
    return np.concatenate([A.ravel(), c, rho])


def mle_eta(x, k: int) -> np.ndarray:
    r"""Packed :math:`\eta` at the closed-form pPCA MLE with the matching (exact) encoder.

    :math:`\theta = \theta_{\mathrm{ML}}` of :func:`refvpng.models.ppca.ppca_mle` (orthogonal
    columns), :math:`\lambda = \lambda^*(\theta_{\mathrm{ML}})` of :func:`optimal_encoder`,
    which is then the exact posterior, so :math:`\mathcal L(\eta) = \max_\theta \log p(x;\theta)`.

    Parameters
    ----------
    x : array_like, shape (n, d)
        Data, ``n >= 2``.
    k : int
        Latent dimension, ``1 <= k < d``.

    Returns
    -------
    eta : ndarray, shape (P,)

    Raises
    ------
    ValueError
        As :func:`refvpng.models.ppca.ppca_mle`.
    """
    from refvpng.models.ppca import ppca_mle

    x = as_array(x, "x", ndim=2)
    theta = ppca_mle(x, k)
    return np.concatenate([optimal_encoder(theta, d=x.shape[1], k=k), theta])


# --------------------------------------------------------------------------------------------
# closed-form Fishers
# --------------------------------------------------------------------------------------------


def _fisher_setup(eta, x, d, k):
    eta, d, k = _check_eta(eta, d, k)
    x = _check_x(x, d)
    A, c, rho, W, b, om = _parts(eta, d, k)
    m = x @ A.T + c
    return eta, x, d, k, W, np.exp(2.0 * rho), float(np.exp(om)), m


def q_fisher_closed(eta, x, *, d: int, k: int) -> np.ndarray:
    r"""Closed-form q-Fisher (Eq 2) of the encoder in :math:`\lambda = (\mathrm{vec}A, c, \rho)`.

    :math:`q(z \mid x) = \prod_i N(m_i, \operatorname{diag}\sigma^2)` with
    :math:`\partial m_i/\partial(\mathrm{vec}A, c) = [I_k \otimes x_i^\top,\ I_k]`:

    .. math::
        F_q = \begin{pmatrix}
            D \otimes X^\top X & D \otimes X^\top\mathbf 1 & 0 \\
            D \otimes \mathbf 1^\top X & n D & 0 \\
            0 & 0 & 2n I_k\end{pmatrix}, \qquad D = \operatorname{diag}(\sigma^{-2}),

    summed over the ``n`` points. Equals :func:`refvpng.curvature.fisher.q_fisher`.

    Parameters
    ----------
    eta : array_like, shape (P,)
        Packed parameters (only :math:`\lambda` is used).
    x : array_like, shape (n, d)
    d, k : int

    Returns
    -------
    ndarray, shape (k*d + 2*k, k*d + 2*k)
    """
    eta, x, d, k, _, s2, _, _ = _fisher_setup(eta, x, d, k)
    n = x.shape[0]
    D = np.diag(1.0 / s2)
    sx = x.sum(axis=0)
    kd = k * d
    F = np.zeros((kd + 2 * k, kd + 2 * k))
    F[:kd, :kd] = np.kron(D, x.T @ x)
    F[:kd, kd : kd + k] = np.kron(D, sx[:, None])
    F[kd : kd + k, :kd] = F[:kd, kd : kd + k].T
    F[kd : kd + k, kd : kd + k] = n * D
    F[kd + k :, kd + k :] = 2.0 * n * np.eye(k)
    return F


def _decoder_block(x, d, k, s2, psi, m):
    n = x.shape[0]
    sm = m.sum(axis=0)
    ezz = m.T @ m + n * np.diag(s2)
    dk = d * k
    F = np.zeros((dk + d + 1, dk + d + 1))
    F[:dk, :dk] = np.kron(np.eye(d), ezz) / psi
    F[:dk, dk : dk + d] = np.kron(np.eye(d), sm[:, None]) / psi
    F[dk : dk + d, :dk] = F[:dk, dk : dk + d].T
    F[dk : dk + d, dk : dk + d] = n * np.eye(d) / psi
    F[-1, -1] = 0.5 * n * d
    return F


def decoder_fisher_closed(eta, x, *, d: int, k: int) -> np.ndarray:
    r"""Closed-form decoder Fisher: the Fisher of :math:`p(x \mid z; \theta)` at :math:`z \sim q`.

    .. math::
        F_\theta = \sum_i E_{q(z_i \mid x_i)}\big[J_{\theta,i}^\top \Lambda J_{\theta,i}\big]
        = \begin{pmatrix} I_d \otimes G_{zz}/\psi & I_d \otimes g_z/\psi & 0 \\
          I_d \otimes g_z^\top/\psi & n I_d/\psi & 0 \\ 0 & 0 & nd/2 \end{pmatrix},

    with :math:`G_{zz} = \sum_i E_q[z_iz_i^\top] = \sum_i m_im_i^\top + n\operatorname{diag}
    \sigma^2` and :math:`g_z = \sum_i m_i` (row-major :math:`\mathrm{vec}W`). This is the
    :math:`\theta\theta` block of :func:`vp_fisher_closed` and the curvature of the decoder step
    of :func:`refvpng.optim.two_step.two_step`; it is also the negative Hessian of the ELBO in
    :math:`(W, b)` (the ELBO is quadratic there).

    Parameters
    ----------
    eta : array_like, shape (P,)
    x : array_like, shape (n, d)
    d, k : int

    Returns
    -------
    ndarray, shape (d*k + d + 1, d*k + d + 1)
    """
    _, x, d, k, _, s2, psi, m = _fisher_setup(eta, x, d, k)
    return _decoder_block(x, d, k, s2, psi, m)


def vp_fisher_closed(eta, x, *, d: int, k: int) -> np.ndarray:
    r"""Closed-form variational predictive Fisher :math:`F_r` (Section 3.3) of the linear VAE.

    :math:`F_r = \sum_i E_{\varepsilon_i}[J_i^\top\Lambda J_i]`, exact in :math:`x'` and in
    :math:`\varepsilon`. The mean output :math:`\mu_i = W(Ax_i + c + \sigma\odot\varepsilon_i) + b`
    has the Jacobian

    .. math::
        J_{\mu,i} = \big[\,W \otimes x_i^\top,\ W,\ W\operatorname{diag}(\sigma\odot\varepsilon_i),
        \ I_d \otimes z_i^\top,\ I_d,\ 0\,\big]

    (blocks :math:`\mathrm{vec}A, c, \rho, \mathrm{vec}W, b, \omega`), weighted by
    :math:`1/\psi`; the log-variance output contributes :math:`nd/2` to the
    :math:`\omega\omega` entry. With :math:`Q = W^\top W`, :math:`E[\varepsilon] = 0` and
    :math:`E[\varepsilon\varepsilon^\top] = I`, e.g. :math:`F_{AA} = Q \otimes X^\top X/\psi`,
    :math:`F_{\rho\rho} = n\operatorname{diag}(\sigma^2 \odot \operatorname{diag}Q)/\psi`,
    :math:`F_{AW} = W^\top \otimes X^\top M/\psi` (:math:`M` the stacked :math:`m_i^\top`),
    :math:`F_{\rho_j, W_{aj'}} = n\sigma_j^2W_{aj}\delta_{jj'}/\psi`; the
    :math:`\theta\theta` block is :func:`decoder_fisher_closed`.

    :math:`F_r` is singular, of rank ``P - 2k``: the likelihood is invariant under the affine
    maps of the latent space that keep :math:`q` mean-field, :math:`z \to Dz + v` with
    :math:`D` diagonal (:math:`w_j \to w_j/D_{jj}`, :math:`b \to b - WD^{-1}v`). They move
    :math:`\eta` along ``2k`` directions without changing any output :math:`t_i`; the ELBO is not
    invariant (the prior sees the scale and the shift of :math:`z`), so the VPNG of Eq 17 needs
    a damping :math:`\mu > 0` here.

    Parameters
    ----------
    eta : array_like, shape (P,)
    x : array_like, shape (n, d)
    d, k : int

    Returns
    -------
    ndarray, shape (P, P)
        Equals :func:`refvpng.curvature.fisher.vp_fisher_exact` at :func:`sigma_point_eps`.
    """
    eta, x, d, k, W, s2, psi, m = _fisher_setup(eta, x, d, k)
    n = x.shape[0]
    kd, dk = k * d, d * k
    nl = kd + 2 * k
    Q = W.T @ W
    sx = x.sum(axis=0)
    sm = m.sum(axis=0)
    F = np.zeros((eta.shape[0], eta.shape[0]))
    iA, ic, ir = slice(0, kd), slice(kd, kd + k), slice(kd + k, nl)
    iW, ib = slice(nl, nl + dk), slice(nl + dk, nl + dk + d)
    F[iA, iA] = np.kron(Q, x.T @ x)
    F[iA, ic] = np.kron(Q, sx[:, None])
    F[ic, ic] = n * Q
    F[ir, ir] = n * np.diag(s2 * np.diag(Q))
    F[iA, iW] = np.kron(W.T, x.T @ m)
    F[iA, ib] = np.kron(W.T, sx[:, None])
    F[ic, iW] = np.kron(W.T, sm[None, :])
    F[ic, ib] = n * W.T
    rw = np.zeros((k, d, k))
    for j in range(k):
        rw[j, :, j] = n * s2[j] * W[:, j]
    F[ir, iW] = rw.reshape(k, dk)
    F[:nl, :] /= psi
    upper = np.triu(F[:nl, :nl], 1)
    F[:nl, :nl] = np.triu(F[:nl, :nl]) + upper.T
    F[nl:, :nl] = F[:nl, nl:].T
    F[nl:, nl:] = _decoder_block(x, d, k, s2, psi, m)
    return F
