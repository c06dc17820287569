r"""The mean-field Gaussian variational family in three scale coordinates.

:math:`q(z) = \prod_j N(z_j \mid m_j, \sigma_j^2)`, reparameterised as :math:`z = m + \sigma \odot
\varepsilon`, :math:`\varepsilon \sim s(\varepsilon) = N(0, I)` (Eq 6 of Tang & Ranganath, 2019).

The scale coordinate (stated once, used everywhere):

- ``"fixed"``: :math:`\sigma` is a constant hyperparameter, not a variational parameter;
- ``"exp"``: :math:`\sigma = e^\rho`;
- ``"softplus"``: :math:`\sigma = \operatorname{softplus}(\rho) = \log(1 + e^\rho)`.

The q-Fisher (Eq 2) of one Gaussian coordinate in :math:`(m, \rho)` is diagonal:

.. math::
    F_q = \operatorname{diag}\Big(\frac{1}{\sigma^2},\;
          \frac{2}{\sigma^2}\Big(\frac{d\sigma}{d\rho}\Big)^2\Big),

which is :math:`\operatorname{diag}(e^{-2\rho}, 2)` for ``"exp"`` and
:math:`\operatorname{diag}(1/\sigma^2, 2\,\mathrm{sigmoid}(\rho)^2/\sigma^2)` for ``"softplus"``.
"""

from __future__ import annotations

from dataclasses import dataclass

import autograd.numpy as anp
import numpy as np

from refvpng.models.likelihoods import log_sigmoid, sigmoid, softplus

__all__ = ["MeanFieldGaussian", "SCALE_COORDS"]

SCALE_COORDS = ("fixed", "exp", "softplus")
_LOG_2PI = float(np.log(2.0 * np.pi))


@dataclass(frozen=True)
class MeanFieldGaussian:
    r"""Mean-field Gaussian :math:`q(z) = N(m, \operatorname{diag}\sigma^2)`.

    Parameters
    ----------
    scale : {"fixed", "exp", "softplus"}
        Coordinate of the standard deviation (see module docstring).
    sigma : float, optional
        The fixed standard deviation; required (and only allowed) when ``scale="fixed"``.
    """

    scale: str = "exp"
    sigma: float | None = None

    def __post_init__(self):
        if self.scale not in SCALE_COORDS:
            raise ValueError(f"scale must be one of {SCALE_COORDS}, got {self.scale!r}")
        if self.scale == "fixed":
            if self.sigma is None or not np.isfinite(self.sigma) or self.sigma <= 0:
                raise ValueError(f"sigma must be finite and > 0 for scale='fixed', got {self.sigma}")
        elif self.sigma is not None:
            raise ValueError("sigma is only allowed with scale='fixed'")

    @property
    def has_scale_params(self) -> bool:
        """Whether the scale is a variational parameter."""
        return self.scale != "fixed"

    def std(self, rho):
        r""":math:`\sigma(\rho)`; ``rho`` is ignored (may be ``None``) for ``"fixed"``."""
        if self.scale == "fixed":
            return self.sigma
        if self.scale == "exp":
            return anp.exp(rho)
        return softplus(rho)

    def dstd(self, rho):
        r""":math:`d\sigma/d\rho`."""
        if self.scale == "exp":
            return np.exp(rho)
        if self.scale == "softplus":
            return sigmoid(np.asarray(rho))
        raise ValueError("dstd is undefined for scale='fixed'")

    def log_std(self, rho):
        r""":math:`\log\sigma`, stable."""
        if self.scale == "fixed":
            return float(np.log(self.sigma))
        if self.scale == "exp":
            return rho
        from refvpng.models.likelihoods import _log_softplus

        return _log_softplus(rho)

    def reparam(self, m, rho, eps):
        r""":math:`z = g(\varepsilon; m, \rho) = m + \sigma(\rho)\,\varepsilon` (Eq 6)."""
        return m + self.std(rho) * eps

    def inverse(self, z, m, rho):
        r""":math:`\varepsilon = g^{-1}(z; m, \rho) = (z - m)/\sigma(\rho)`."""
        return (z - m) / self.std(rho)

    def log_density(self, z, m, rho):
        r""":math:`\log q(z)`, summed over the last axis."""
        ls = self.log_std(rho)
        w = (z - m) / self.std(rho)
        d = z.shape[-1]
        if self.scale == "fixed":
            return -0.5 * anp.sum(w**2, axis=-1) - d * ls - 0.5 * d * _LOG_2PI
        return -0.5 * anp.sum(w**2, axis=-1) - anp.sum(ls * anp.ones_like(w), axis=-1) - (0.5 * d * _LOG_2PI)

    def kl_to_normal(self, m, rho, prior_std: float):
        r""":math:`\mathrm{KL}(q \,\|\, N(0, \tau^2 I))`, summed over the last axis.

        .. math::
            \mathrm{KL} = \sum_j \Big[\log\frac{\tau}{\sigma_j}
                + \frac{\sigma_j^2 + m_j^2}{2\tau^2} - \frac12\Big]
        """
        s = self.std(rho)
        ls = self.log_std(rho)
        tau2 = prior_std**2
        term = np.log(prior_std) - ls + (s**2 + m**2) / (2.0 * tau2) - 0.5
        return anp.sum(term * anp.ones_like(m), axis=-1)

    def fisher_diag(self, rho, m_shape):
        r"""Diagonal q-Fisher (Eq 2) of one Gaussian in :math:`(m, \rho)`.

        Returns
        -------
        fm : ndarray, shape ``m_shape``
            :math:`1/\sigma^2` for the means.
        frho : ndarray or None
            :math:`2 (d\sigma/d\rho)^2/\sigma^2` for the scale parameters (``None`` if fixed).
        """
        if self.scale == "fixed":
            if np.log(self.sigma) < -350.0:
                raise ValueError("sigma is so small that 1/sigma^2 overflows float64 (log sigma < -350)")
            return np.full(m_shape, 1.0 / self.sigma**2), None
        rho = np.asarray(rho, dtype=np.float64)
        log_s = np.asarray(self.log_std(rho))
        if np.any(log_s < -350.0):
            raise ValueError(
                "rho is so small that 1/sigma^2 overflows float64 (log sigma < -350); "
                "the q-Fisher of the means is not representable"
            )
        fm = np.broadcast_to(np.exp(-2.0 * log_s), m_shape).copy()
        if self.scale == "exp":
            frho = np.full(rho.shape, 2.0)
        else:
            # 2 sigmoid(rho)^2 / softplus(rho)^2, in log space.
            from refvpng.models.likelihoods import _log_softplus

            frho = 2.0 * np.exp(2.0 * (log_sigmoid(rho) - _log_softplus(rho)))
        return fm, frho
