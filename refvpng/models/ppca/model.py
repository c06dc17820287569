r"""pPCA and factor analysis as a :class:`~refvpng.models.latent.LatentModel`.

The generative model of :class:`~refvpng.models.ppca.spec.PPCASpec` with an amortised
mean-field Gaussian encoder (``MeanFieldGaussian("exp")``), one affine layer:

.. math::
    q(z_i \mid x_i; \lambda) = N\big(A x_i + c, \operatorname{diag}(e^{2\rho})\big),
    \qquad \lambda = (\mathrm{vec}A,\ c,\ \rho),

``A`` of shape ``(k, d)`` packed like every layer of refvpng, ``vec([A, c])`` column-major
(``A.ravel(order="F")`` then ``c``), then :math:`\rho \in \mathbb R^k` (one scale per latent
coordinate, shared by all points). ``n_lambda = k*d + 2*k``; :math:`\eta = (\lambda, \theta)`.
With ``noise="iso"`` this is the linear VAE of :mod:`refvpng.models.linear_vae`.

The decoder returns :math:`t_i = (W z_i + b,\ \log\psi)` for the likelihood
:class:`~refvpng.models.likelihoods.GaussianLearnedVariance` (``d + 1`` output columns for
``"iso"``, ``2d`` for ``"diag"``); ``noise_coord="var"`` is mapped to the log-variance inside
``decode``, so every score and Fisher is in the spec's coordinate. Every generic estimator of
:mod:`refvpng.elbo` and :mod:`refvpng.curvature` runs on this model.
"""

from __future__ import annotations

import autograd.numpy as anp
import numpy as np
from numpy.typing import ArrayLike

from refvpng._checks import as_array
from refvpng.models.latent import LatentModel
from refvpng.models.likelihoods import GaussianLearnedVariance
from refvpng.models.ppca.spec import PPCASpec
from refvpng.models.variational import MeanFieldGaussian

__all__ = ["make_model", "n_lambda", "pack_encoder", "unpack_encoder", "pack_eta", "unpack_eta"]


def _check_spec(spec) -> PPCASpec:
    if not isinstance(spec, PPCASpec):
        raise TypeError(f"spec must be a PPCASpec, got {type(spec).__name__}")
    return spec


def n_lambda(spec: PPCASpec) -> int:
    r"""Length ``k*d + 2*k`` of the encoder block :math:`\lambda = (\mathrm{vec}A, c, \rho)`."""
    spec = _check_spec(spec)
    return spec.k * spec.d + 2 * spec.k


def pack_encoder(spec: PPCASpec, A: ArrayLike, c: ArrayLike, rho: ArrayLike) -> np.ndarray:
    r"""Pack the encoder ``(A, c, rho)`` into :math:`\lambda` (``A`` column-major).

    Parameters
    ----------
    spec : PPCASpec
    A : array_like, shape (k, d)
        Encoder slope, :math:`m_i = A x_i + c`.
    c, rho : array_like, shape (k,)
        Offset and log standard deviations, :math:`\sigma = e^\rho`.

    Returns
    -------
    lam : ndarray, shape (k*d + 2*k,)

    Raises
    ------
    ValueError
        On wrong shapes or non-finite entries.
    """
    spec = _check_spec(spec)
    A = as_array(A, "A", shape=(spec.k, spec.d))
    c = as_array(c, "c", shape=(spec.k,))
    rho = as_array(rho, "rho", shape=(spec.k,))
    return np.concatenate([A.ravel(order="F"), c, rho])


def unpack_encoder(spec: PPCASpec, lam: ArrayLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""Unpack :math:`\lambda` into ``(A, c, rho)``, inverse of :func:`pack_encoder`."""
    spec = _check_spec(spec)
    lam = as_array(lam, "lam", shape=(n_lambda(spec),))
    kd = spec.k * spec.d
    A = lam[:kd].reshape(spec.k, spec.d, order="F").copy()
    return A, lam[kd : kd + spec.k].copy(), lam[kd + spec.k :].copy()


def pack_eta(
    spec: PPCASpec, A: ArrayLike, c: ArrayLike, rho: ArrayLike, W: ArrayLike, b: ArrayLike, psi: ArrayLike
) -> np.ndarray:
    r"""Pack encoder ``(A, c, rho)`` and decoder ``(W, b, psi)`` into :math:`\eta = (\lambda, \theta)`.

    Examples
    --------
    >>> spec = PPCASpec(2, 1)
    >>> pack_eta(spec, np.zeros((1, 2)), [0.0], [0.0], np.ones((2, 1)), [0.0, 0.0], 1.0).shape
    (9,)
    """
    return np.concatenate([pack_encoder(spec, A, c, rho), spec.pack(W, b, psi)])


def unpack_eta(
    spec: PPCASpec, eta: ArrayLike
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    r"""Unpack :math:`\eta` into ``(A, c, rho, W, b, psi)``, inverse of :func:`pack_eta`.

    Raises
    ------
    ValueError
        On a wrong length, non-finite entries or a non-positive variance.

    Examples
    --------
    >>> spec = PPCASpec(2, 1)
    >>> eta = pack_eta(spec, np.ones((1, 2)), [0.5], [0.0], np.ones((2, 1)), [0.0, 1.0], 2.0)
    >>> A, c, rho, W, b, psi = unpack_eta(spec, eta)
    >>> A.tolist(), b.tolist(), psi.round(12).tolist()
    ([[1.0, 1.0]], [0.0, 1.0], [2.0])
    """
    spec = _check_spec(spec)
    nl = n_lambda(spec)
    eta = as_array(eta, "eta", ndim=1)
    if eta.shape[0] != nl + spec.n_params:
        raise ValueError(
            f"eta must have length n_lambda + n_params = {nl + spec.n_params} ({spec}), got {eta.shape[0]}"
        )
    return unpack_encoder(spec, eta[:nl]) + spec.unpack(eta[nl:])


def make_model(spec: PPCASpec) -> LatentModel:
    r"""The model of ``spec`` with the affine mean-field encoder, as a ``LatentModel``.

    Local latents, prior :math:`N(0, I_k)`, family ``MeanFieldGaussian("exp")``, likelihood
    ``GaussianLearnedVariance(d, shared=(spec.noise == "iso"))``.

    Parameters
    ----------
    spec : PPCASpec

    Returns
    -------
    LatentModel
        ``n_lambda = k*d + 2*k``, ``n_theta = spec.n_params``, ``obs_dim = d``.

    Raises
    ------
    TypeError
        If ``spec`` is not a :class:`PPCASpec`.

    Examples
    --------
    >>> model = make_model(PPCASpec(3, 2, "diag"))
    >>> model.n_lambda, model.n_theta, model.obs_dim
    (10, 12, 3)
    """
    spec = _check_spec(spec)
    d, k = spec.d, spec.k
    kd = k * d

    def encode(lam, x):
        a_t = anp.reshape(lam[:kd], (d, k))  # A.T, since A (k, d) is packed column-major
        m = anp.dot(x, a_t) + lam[kd : kd + k]
        return m, anp.ones((x.shape[0], 1)) * lam[kd + k :]

    def decode(theta, z, cov):
        W, b, log_psi = spec.decoder_parts(theta)
        mean = anp.dot(z, anp.transpose(W)) + b
        s = log_psi * anp.ones(mean.shape[:-1] + (1,))
        return anp.concatenate([mean, s], axis=-1)

    name = "linear_vae" if spec.noise == "iso" else "factor_analysis_vae"
    return LatentModel(
        name=f"{name}(d={d},k={k},{spec.noise_coord})",
        n_lambda=n_lambda(spec),
        n_theta=spec.n_params,
        latent_dim=k,
        obs_dim=d,
        local=True,
        family=MeanFieldGaussian("exp"),
        likelihood=GaussianLearnedVariance(d, shared=spec.noise == "iso"),
        encode=encode,
        decode=decode,
    )
