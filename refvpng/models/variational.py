r"""The mean-field Gaussian variational family in three scale coordinates.

:math:`q(z) = \prod_j N(z_j \mid m_j, \sigma_j^2)`, reparameterised as :math:`z = m + \sigma \odot
\varepsilon`, :math:`\varepsilon \sim s(\varepsilon) = N(0, I)` (Eq 6 of Tang & Ranganath, 2019).

The scale coordinate (stated once, used everywhere):

- ``"fixed"``: :math:`\sigma` is a constant hyperparameter, not a variational parameter;
- ``"exp"``: :math:`\sigma = e^\rho`;
- ``"softplus"``: :math:`\sigma = \operatorname{softplus}(\rho) = \log(1 + e^\rho)`.

``"exp"`` and ``"softplus"`` take an optional floor :math:`\sigma_{floor} \ge 0` (default 0):
:math:`\sigma = e^\rho + \sigma_{floor}` or :math:`\operatorname{softplus}(\rho) +
\sigma_{floor}`; the VAE of Section 5.2 (:mod:`refvpng.nn.chain`) uses ``"softplus"`` with a
floor of ``1e-4``. The derivative :math:`d\sigma/d\rho` does not depend on the floor.

The q-Fisher (Eq 2) of one Gaussian coordinate in :math:`(m, \rho)` is diagonal:

.. math::
    F_q = \operatorname{diag}\Big(\frac{1}{\sigma^2},\;
          \frac{2}{\sigma^2}\Big(\frac{d\sigma}{d\rho}\Big)^2\Big),

which is :math:`\operatorname{diag}(e^{-2\rho}, 2)` for ``"exp"`` and
:math:`\operatorname{diag}(1/\sigma^2, 2\,\mathrm{sigmoid}(\rho)^2/\sigma^2)` for ``"softplus"``
(without a floor; with one, :math:`\sigma` includes it and :math:`d\sigma/d\rho` does not).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import autograd.numpy as anp
import numpy as np
from numpy.typing import ArrayLike

from refvpng._checks import (
    as_array_or_traced,
    as_nonneg_scalar,
    as_positive_scalar,
    check_finite_output,
    finite_output,
    is_traced,
)
from refvpng.models.likelihoods import log_sigmoid, sigmoid, softplus

__all__ = ["MeanFieldGaussian", "SCALE_COORDS"]

SCALE_COORDS = ("fixed", "exp", "softplus")
_LOG_2PI = float(np.log(2.0 * np.pi))


def _arrays(**named):
    """Validate plain array arguments (autograd boxes pass) and require that they broadcast."""
    out = [None if (v is None and k == "rho") else as_array_or_traced(v, k) for k, v in named.items()]
    shapes = [np.shape(v) for v in out if v is not None]
    try:
        np.broadcast_shapes(*shapes)
    except ValueError:
        desc = " and ".join(
            f"{k} of shape {np.shape(v)}" for k, v in zip(named, out, strict=True) if v is not None
        )
        raise ValueError(f"{desc} do not broadcast against each other") from None
    return out


def _checked(value, func, *inputs):
    if any(is_traced(a) for a in inputs):
        return value
    return check_finite_output(value, func)


def _rho(rho):
    if rho is None:
        raise TypeError("rho must be a numeric array for a learned scale ('exp' or 'softplus'), got None")
    return rho


@dataclass(frozen=True)
class MeanFieldGaussian:
    r"""Mean-field Gaussian :math:`q(z) = N(m, \operatorname{diag}\sigma^2)`.

    Parameters
    ----------
    scale : {"fixed", "exp", "softplus"}
        Coordinate of the standard deviation (see module docstring).
    sigma : float, optional
        The fixed standard deviation; required (and only allowed) when ``scale="fixed"``.
    floor : float, default 0.0
        :math:`\sigma_{floor} \ge 0` added to :math:`\sigma(\rho)` (``"exp"`` and
        ``"softplus"`` only).

    Raises
    ------
    ValueError
        If ``scale`` is unknown, ``sigma`` is missing, not positive or given with a learned
        scale, or ``floor`` is negative, not finite, or given with ``scale="fixed"``.
    """

    scale: str = "exp"
    sigma: float | None = None
    floor: float = 0.0

    def __post_init__(self):
        if self.scale not in SCALE_COORDS:
            raise ValueError(f"scale must be one of {SCALE_COORDS}, got {self.scale!r}")
        if self.scale == "fixed":
            if self.sigma is None or not np.isfinite(self.sigma) or self.sigma <= 0:
                raise ValueError(f"sigma must be finite and > 0 for scale='fixed', got {self.sigma}")
        elif self.sigma is not None:
            raise ValueError("sigma is only allowed with scale='fixed'")
        floor = as_nonneg_scalar(self.floor, "floor")
        if floor and self.scale == "fixed":
            raise ValueError("floor is only allowed with scale='exp' or 'softplus'")
        object.__setattr__(self, "floor", floor)

    @property
    def has_scale_params(self) -> bool:
        """Whether the scale is a variational parameter."""
        return self.scale != "fixed"

    def std(self, rho: ArrayLike | None) -> np.ndarray | float:
        r""":math:`\sigma(\rho)`; ``rho`` is ignored (may be ``None``) for ``"fixed"``."""
        if self.scale == "fixed":
            return cast(float, self.sigma)  # set for 'fixed' (__post_init__)
        (rho,) = _arrays(rho=_rho(rho))
        s = anp.exp(rho) if self.scale == "exp" else softplus(rho)
        return _checked(s + self.floor if self.floor else s, "std", rho)

    def dstd(self, rho: ArrayLike) -> np.ndarray:
        r""":math:`d\sigma/d\rho`."""
        if self.scale == "fixed":
            raise ValueError("dstd is undefined for scale='fixed'")
        (rho,) = _arrays(rho=_rho(rho))
        if self.scale == "exp":
            return _checked(np.exp(rho), "dstd", rho)
        if self.scale == "softplus":
            return sigmoid(rho)
        raise ValueError("dstd is undefined for scale='fixed'")

    def log_std(self, rho: ArrayLike | None) -> np.ndarray | float:
        r""":math:`\log\sigma`, stable."""
        if self.scale == "fixed":
            return float(np.log(cast(float, self.sigma)))
        (rho,) = _arrays(rho=_rho(rho))
        if self.floor:
            return anp.log(self.std(rho))  # >= log(floor): no underflow
        if self.scale == "exp":
            return rho
        from refvpng.models.likelihoods import _log_softplus

        return _log_softplus(rho)

    def reparam(self, m: ArrayLike, rho: ArrayLike | None, eps: ArrayLike) -> np.ndarray:
        r""":math:`z = g(\varepsilon; m, \rho) = m + \sigma(\rho)\,\varepsilon` (Eq 6)."""
        m, rho, eps = _arrays(m=m, rho=_rho(rho) if self.has_scale_params else rho, eps=eps)
        return _checked(m + self.std(rho) * eps, "reparam", m, rho, eps)

    def inverse(self, z: ArrayLike, m: ArrayLike, rho: ArrayLike | None) -> np.ndarray:
        r""":math:`\varepsilon = g^{-1}(z; m, \rho) = (z - m)/\sigma(\rho)`."""
        z, m, rho = _arrays(z=z, m=m, rho=_rho(rho) if self.has_scale_params else rho)
        return _checked((z - m) / self.std(rho), "inverse", z, m, rho)

    def log_density(self, z: ArrayLike, m: ArrayLike, rho: ArrayLike | None) -> np.ndarray:
        r""":math:`\log q(z)`, summed over the last axis."""
        z, m, rho = _arrays(z=z, m=m, rho=_rho(rho) if self.has_scale_params else rho)
        if np.ndim(z) < 1:
            raise ValueError(f"z must have shape (..., dz), got {np.shape(z)}")
        ls = self.log_std(rho)
        w = (z - m) / self.std(rho)
        d = z.shape[-1]
        if self.scale == "fixed":
            out = -0.5 * anp.sum(w**2, axis=-1) - d * ls - 0.5 * d * _LOG_2PI
        else:
            out = (
                -0.5 * anp.sum(w**2, axis=-1) - anp.sum(ls * anp.ones_like(w), axis=-1) - (0.5 * d * _LOG_2PI)
            )
        return _checked(out, "log_density", z, m, rho)

    @finite_output
    def kl_to_normal(self, m: ArrayLike, rho: ArrayLike | None, prior_std: float) -> np.ndarray:
        r""":math:`\mathrm{KL}(q \,\|\, N(0, \tau^2 I))`, summed over the last axis.

        .. math::
            \mathrm{KL} = \sum_j \Big[\log\frac{\tau}{\sigma_j}
                + \frac{\sigma_j^2 + m_j^2}{2\tau^2} - \frac12\Big]
        """
        m, rho = _arrays(m=m, rho=rho)
        if rho is not None and np.shape(rho) != np.shape(m):
            raise ValueError(f"rho must have the shape of m {np.shape(m)}, got {np.shape(rho)}")
        if np.ndim(m) < 1:
            raise ValueError(f"m must have shape (..., dz), got {np.shape(m)}")
        if not is_traced(prior_std):
            prior_std = as_positive_scalar(prior_std, "prior_std")
        if self.has_scale_params:
            _rho(rho)
        s = self.std(rho)
        ls = self.log_std(rho)
        tau2 = prior_std**2
        term = np.log(prior_std) - ls + (s**2 + m**2) / (2.0 * tau2) - 0.5
        return _checked(anp.sum(term * anp.ones_like(m), axis=-1), "kl_to_normal", m, rho)

    def fisher_diag(
        self, rho: ArrayLike | None, m_shape: tuple[int, ...]
    ) -> tuple[np.ndarray, np.ndarray | None]:
        r"""Diagonal q-Fisher (Eq 2) of one Gaussian in :math:`(m, \rho)`.

        Returns
        -------
        fm : ndarray, shape ``m_shape``
            :math:`1/\sigma^2` for the means.
        frho : ndarray or None
            :math:`2 (d\sigma/d\rho)^2/\sigma^2` for the scale parameters (``None`` if fixed).
        """
        if not isinstance(m_shape, tuple) or not all(
            isinstance(k, (int, np.integer)) and not isinstance(k, bool) and k >= 0 for k in m_shape
        ):
            raise TypeError(f"m_shape must be a tuple of non-negative ints, got {m_shape!r}")
        if self.scale == "fixed":
            if np.log(cast(float, self.sigma)) < -350.0:
                raise ValueError("sigma is so small that 1/sigma^2 overflows float64 (log sigma < -350)")
            return np.full(m_shape, 1.0 / cast(float, self.sigma) ** 2), None
        (rho,) = _arrays(rho=_rho(rho))
        if np.shape(rho) != m_shape:
            raise ValueError(f"rho must have shape m_shape {m_shape}, got {np.shape(rho)}")
        log_s = np.asarray(self.log_std(rho))
        if np.any(log_s < -350.0):
            raise FloatingPointError(
                "fisher_diag: rho is so small that 1/sigma^2 overflows float64 (log sigma < -350); "
                "the q-Fisher of the means is not representable"
            )
        fm = np.broadcast_to(np.exp(-2.0 * log_s), m_shape).copy()
        if self.scale == "exp":
            frho = 2.0 * np.exp(2.0 * (rho - log_s)) if self.floor else np.full(rho.shape, 2.0)
        else:
            # 2 sigmoid(rho)^2 / sigma^2, in log space.
            frho = 2.0 * np.exp(2.0 * (log_sigmoid(rho) - log_s))
        return fm, check_finite_output(frho, "fisher_diag")
