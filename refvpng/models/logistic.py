r"""Bayesian logistic regression (Section 5.1 of Tang & Ranganath, 2019).

Global latent weights :math:`w \in \mathbb{R}^D` (bias included as a column of ones in the
design), prior :math:`N(0, \sigma_0^2 I)` with :math:`\sigma_0 = 100`, mean-field Gaussian
:math:`q(w) = N(m, \operatorname{diag}\sigma(\rho)^2)`, likelihood
:math:`y_i \sim \mathrm{Bernoulli}(\mathrm{sigmoid}(a_i^\top w))`.

Packing: :math:`\lambda = (m_1..m_D, \rho_1..\rho_D)`, no model parameters (``n_theta = 0``).
Observations ``x`` are the labels, shape ``(n, 1)``; covariates ``cov`` the design ``(n, D)``.

Besides the generic autograd path, the model carries hand-derived fast-path hooks
(:class:`~refvpng.models.latent.ModelHooks`: ``jacobian`` and ``elbo_value_and_grad``), used by
:func:`refvpng.curvature.fisher.vp_fisher_exact` and :func:`refvpng.elbo.elbo_value_and_grad` and
tested against autograd:

.. math::
    t_{si} = a_i^\top(m + \sigma\odot\varepsilon_{si}), \quad
    \frac{\partial t_{si}}{\partial m} = a_i, \quad
    \frac{\partial t_{si}}{\partial \rho} = a_i\odot\varepsilon_{si}\odot\sigma'(\rho),

.. math::
    F_r = \frac1S\sum_{s,i}\sigma(t_{si})\sigma(-t_{si})\,J_{si}J_{si}^\top

(the Bernoulli output Fisher; no predictive samples of :math:`y` are needed, as the paper notes).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from refvpng._checks import (
    as_array,
    as_int,
    as_nonneg_scalar,
    as_positive_scalar,
    check_finite_output,
    check_rng,
)
from refvpng.models.latent import LatentModel, ModelHooks
from refvpng.models.likelihoods import Bernoulli, log_sigmoid, sigmoid
from refvpng.models.variational import MeanFieldGaussian

__all__ = [
    "TRUE_DIRECTION",
    "make_model",
    "make_data",
    "add_bias",
    "train_test_split",
    "predict_mean",
]

TRUE_DIRECTION = np.array([1.0, -2.0, -3.0, 4.0])
"""The true boundary normal :math:`(1, -2, -3, 4)` of Section 5.1."""


def make_model(dim: int = 5, prior_std: float = 100.0, scale: str = "softplus") -> LatentModel:
    r"""Bayesian logistic regression with ``dim`` weights (bias included).

    Parameters
    ----------
    dim : int, default 5
        Number of weights :math:`D`, the bias included.
    prior_std : float, default 100.0
        :math:`\sigma_0`.
    scale : {"exp", "softplus"}, default "softplus"
        Coordinate of the variational standard deviations.

    Returns
    -------
    LatentModel
        Global latents, ``x`` the labels ``(n, 1)``, ``cov`` the design ``(n, D)``, with the
        hand-derived hooks ``jacobian`` and ``elbo_value_and_grad``.
    """
    dim = as_int(dim, "dim")
    if scale not in ("exp", "softplus"):
        raise ValueError(f"scale must be 'exp' or 'softplus', got {scale!r}")
    family = MeanFieldGaussian(scale)
    prior_std = as_positive_scalar(prior_std, "prior_std")

    def encode(lam, x):
        return lam[:dim], lam[dim:]

    def decode(theta, z, cov):
        import autograd.numpy as anp

        return anp.sum(z * cov, axis=-1, keepdims=True)

    return LatentModel(
        name=f"logistic(D={dim},{scale})",
        n_lambda=2 * dim,
        n_theta=0,
        latent_dim=dim,
        obs_dim=1,
        local=False,
        family=family,
        likelihood=Bernoulli(),
        encode=encode,
        decode=decode,
        prior_std=prior_std,
        n_cov=dim,
        hooks=ModelHooks(
            jacobian=lambda eta, x, eps, cov: _outputs_and_jacobian(eta, cov, eps, family),
            elbo_value_and_grad=lambda eta, x, eps, cov: _elbo_and_grad(
                eta, x[:, 0], cov, eps, prior_std, family
            ),
        ),
    )


def make_data(rng: np.random.Generator, n: int = 500, noise: float = 0.005) -> tuple[np.ndarray, np.ndarray]:
    r"""The synthetic data of Section 5.1.

    :math:`a_i \sim U[-5, 5]`, :math:`\epsilon_i \sim U[-0.005, 0.005]^4`,
    :math:`x_i = (a_i, a_i/2, a_i/3, a_i/4) + \epsilon_i`,
    :math:`y_i = 1[\langle(1,-2,-3,4), x_i\rangle \ge 0]`.

    Since :math:`\langle(1,-2,-3,4),(1,1/2,1/3,1/4)\rangle = 0`, every point lies within
    :math:`0.005\cdot(1+2+3+4) = 0.05` of the boundary in the value of the linear form.

    Returns
    -------
    x : ndarray, shape (n, 4)
        Covariates (without the bias column).
    y : ndarray, shape (n,)
        Labels in {0, 1}.
    """
    check_rng(rng)
    n = as_int(n, "n")
    noise = as_nonneg_scalar(noise, "noise")
    if noise > 1e100:
        raise ValueError(f"noise must be a moderate width (<= 1e100), got {noise}")
    a = rng.uniform(-5.0, 5.0, size=n)
    eps = rng.uniform(-noise, noise, size=(n, 4))
    x = a[:, None] * np.array([1.0, 1 / 2, 1 / 3, 1 / 4]) + eps
    y = (x @ TRUE_DIRECTION >= 0).astype(np.float64)
    return x, y


def add_bias(x: ArrayLike) -> np.ndarray:
    """Append a column of ones (the bias is the last weight)."""
    x = as_array(x, "x", ndim=2)
    return np.hstack([x, np.ones((x.shape[0], 1))])


def train_test_split(
    rng: np.random.Generator, n: int, train_fraction: float = 0.8
) -> tuple[np.ndarray, np.ndarray]:
    """A fixed random split of ``range(n)``: (train_idx, test_idx); ``0 <= train_fraction <= 1``."""
    check_rng(rng)
    n = as_int(n, "n")
    train_fraction = as_nonneg_scalar(train_fraction, "train_fraction")
    if train_fraction > 1.0:
        raise ValueError(f"train_fraction must be in [0, 1], got {train_fraction}")
    perm = rng.permutation(n)
    k = int(round(train_fraction * n))
    return np.sort(perm[:k]), np.sort(perm[k:])


def _elbo_and_grad(lam, y, design, eps, prior_std, fam):
    """ELBO (Eq 1) and its reparameterisation gradient, hand-derived (the ``elbo_value_and_grad`` hook)."""
    dim = design.shape[1]
    m, rho = lam[:dim], lam[dim:]
    s = np.asarray(fam.std(rho))
    ds = fam.dstd(rho)
    w = m + s * eps  # (S, D) or (S, n, D)
    if eps.ndim == 2:
        t = w @ design.T  # (S, n)
    else:
        t = np.einsum("snd,nd->sn", w, design)
    ll = np.sum(y * t + log_sigmoid(-t), axis=1)  # y t - softplus(t)
    resid = y - sigmoid(t)  # d ll / d t, (S, n)
    if eps.ndim == 2:
        gw = resid @ design  # (S, D)
        g_m = gw.mean(axis=0)
        g_rho = (gw * eps).mean(axis=0) * ds
    else:
        gwi = resid[:, :, None] * design  # (S, n, D)
        g_m = gwi.sum(axis=1).mean(axis=0)
        g_rho = (gwi * eps).sum(axis=1).mean(axis=0) * ds
    tau2 = prior_std**2
    log_s = np.asarray(fam.log_std(rho))
    kl = np.sum(np.log(prior_std) - log_s + (s**2 + m**2) / (2 * tau2) - 0.5)
    g_m = g_m - m / tau2
    # d/drho of -KL: (dsigma/drho) / sigma - sigma * (dsigma/drho) / tau^2, with the first ratio in
    # log space so that it stays finite when softplus(rho) underflows (it tends to 1).
    if fam.scale == "exp":
        ds_over_s = np.exp(np.log(ds) - log_s)
    else:
        ds_over_s = np.exp(log_sigmoid(rho) - log_s)
    g_rho = g_rho + ds_over_s - s * ds / tau2
    return float(ll.mean() - kl), np.concatenate([g_m, g_rho])


def _outputs_and_jacobian(lam, design, eps, fam):
    r"""Logits ``(S, n, 1)`` and their Jacobian in :math:`\lambda`, ``(S, n, 1, 2D)`` (``jacobian`` hook)."""
    dim = design.shape[1]
    m, rho = lam[:dim], lam[dim:]
    s = np.asarray(fam.std(rho))
    ds = fam.dstd(rho)
    if eps.ndim == 2:
        t = (m + s * eps) @ design.T  # (S, n)
        j_rho = design[None, :, :] * (eps * ds)[:, None, :]  # (S, n, D)
    else:
        t = np.einsum("snd,nd->sn", m + s * eps, design)
        j_rho = design[None] * eps * ds
    j_m = np.broadcast_to(design[None], j_rho.shape)
    return t[..., None], np.concatenate([j_m, j_rho], axis=-1)[:, :, None, :]


def predict_mean(lam: ArrayLike, design: ArrayLike) -> np.ndarray:
    r"""The mean prediction :math:`\mathrm{sigmoid}(a_i^\top m)` used for the paper's AUC."""
    design = as_array(design, "design", ndim=2)
    lam = as_array(lam, "lam", shape=(2 * design.shape[1],))
    return check_finite_output(sigmoid(design @ lam[: design.shape[1]]), "predict_mean")
