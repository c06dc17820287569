r"""Likelihood families :math:`p(x \mid t)` with their output Fisher :math:`\Lambda(t)`.

Each family is a small frozen object of pure functions of the *output parameter* ``t`` that a
model produces for every data point (the mean of a Gaussian, the logits of a Bernoulli, the
pre-link rate of a Poisson):

- ``log_prob(x, t)``: log density summed over the output dimension, shape ``(...)``;
  written with ``autograd.numpy`` so that autograd can differentiate it in ``t``.
- ``score(x, t)``: :math:`\nabla_t \log p(x \mid t)`, shape ``(..., d)``.
- ``sample(rng, t)``: draws :math:`x' \sim p(x' \mid t)`.
- ``output_fisher(t)``: :math:`\Lambda(t) = E_{x'}[\text{score}\,\text{score}^\top]`; a diagonal
  ``(..., d)`` for the factorised families, a ``(d, d)`` matrix for the Gaussian.
- ``whiten(J, t)``: :math:`R J` with :math:`R^\top R = \Lambda(t)`, so that
  :math:`J^\top \Lambda J = (RJ)^\top (RJ)`; this is how the exact variational predictive
  Fisher :math:`F_r = \sum J^\top \Lambda J` is fed to the outer-product kernel.

Numerical stability: Bernoulli and softplus-Poisson use log-sigmoid / softplus forms and are
finite for outputs up to :math:`|t| = 1000`. The log-link Poisson has rate :math:`e^t`, which
overflows float64 above :math:`t \approx 709`; its log density there is below the float range,
so ``log_prob`` raises ``ValueError`` for ``t > 700`` instead of returning ``-inf``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import autograd.numpy as anp
import numpy as np
from numpy.typing import ArrayLike
from scipy.special import gammaln

from refvpng._checks import (
    as_array,
    as_array_or_traced,
    check_finite_output,
    check_rng,
    check_trailing,
    is_traced,
)

__all__ = ["Likelihood", "Gaussian", "Bernoulli", "Poisson", "log_sigmoid", "softplus", "sigmoid"]

_LOG_2PI = float(np.log(2.0 * np.pi))


class Likelihood(Protocol):
    """What a likelihood family provides to a :class:`~refvpng.models.latent.LatentModel`.

    :class:`Gaussian`, :class:`Bernoulli`, :class:`Poisson` and :class:`GaussianLearnedVariance`
    have these methods; ``t`` is the family's output parameter (the output of ``decode``).
    """

    def log_prob(self, x: ArrayLike, t: ArrayLike) -> np.ndarray:
        r"""Return :math:`\log p(x \mid t)`, summed over the last axis."""

    def score(self, x: ArrayLike, t: ArrayLike) -> np.ndarray:
        r"""Return :math:`\nabla_t \log p(x \mid t)`."""

    def sample(self, rng: np.random.Generator, t: ArrayLike) -> np.ndarray:
        r"""Draw :math:`x' \sim p(x \mid t)`."""

    def output_fisher(self, t: ArrayLike) -> np.ndarray:
        r"""Return the Fisher :math:`\Lambda(t)` of the family in ``t``."""

    def whiten(self, jac: ArrayLike, t: ArrayLike) -> np.ndarray:
        r"""Return :math:`W J` with :math:`(WJ)^\top (WJ) = J^\top \Lambda(t) J`."""


def softplus(t: ArrayLike) -> np.ndarray:
    r"""Stable :math:`\log(1 + e^t)` (autograd-differentiable; plain ``t`` is validated)."""
    return anp.logaddexp(0.0, as_array_or_traced(t, "t"))


def log_sigmoid(t: ArrayLike) -> np.ndarray:
    r"""Stable :math:`\log \sigma(t) = -\operatorname{softplus}(-t)`."""
    return -anp.logaddexp(0.0, -as_array_or_traced(t, "t"))


def sigmoid(t: ArrayLike) -> np.ndarray:
    r"""Stable logistic function :math:`1/(1+e^{-t})`."""
    return anp.exp(log_sigmoid(t))


_NO_X = object()


def _xt(x, t, d=None, *, counts=False):
    """Validate the output parameter ``t`` (..., d) and observations ``x`` against it.

    Plain arrays are converted to float64 and checked (finite, real, shapes); autograd boxes
    (estimators differentiating ``log_prob`` in ``t``) pass unchanged, validated upstream.
    """
    t = as_array_or_traced(t, "t")
    if np.ndim(t) < 1:
        raise ValueError(f"t must have shape (..., d), got shape {np.shape(t)}")
    if d is not None:
        check_trailing(t, "t", d)
    if x is _NO_X:
        return None, t
    x = as_array_or_traced(x, "x")
    if np.shape(x)[-1:] != np.shape(t)[-1:]:
        raise ValueError(f"x must have as many columns as t ({np.shape(t)[-1]}), got shape {np.shape(x)}")
    try:
        np.broadcast_shapes(np.shape(x), np.shape(t))
    except ValueError:
        raise ValueError(
            f"x of shape {np.shape(x)} does not broadcast against t of shape {np.shape(t)}"
        ) from None
    if counts and not is_traced(x) and np.any(x < 0):
        raise ValueError("x must hold non-negative counts")
    return x, t


def _checked(value, func, *inputs):
    """``value``, required finite unless an input is traced (the output is then a box)."""
    if any(is_traced(a) for a in inputs):
        return value
    return check_finite_output(value, func)


def _jac(jac, t_shape):
    jac = as_array(jac, "jac")
    if jac.ndim < 2 or jac.shape[-2] != t_shape[-1]:
        raise ValueError(f"jac must have shape (..., {t_shape[-1]}, P), got {jac.shape}")
    try:
        np.broadcast_shapes(jac.shape[:-1], t_shape)
    except ValueError:
        raise ValueError(f"jac of shape {jac.shape} does not match t of shape {t_shape}") from None
    return jac


def _log_softplus(t):
    r"""Stable :math:`\log \operatorname{softplus}(t)`, finite down to :math:`t = -1000`.

    For :math:`t < -30`, :math:`\log\log(1+e^t) = t + \log(1 - e^t/2 + O(e^{2t}))`.
    """
    safe_hi = anp.maximum(t, -30.0)
    safe_lo = anp.minimum(t, -30.0)
    hi = anp.log(softplus(safe_hi))
    lo = safe_lo + anp.log1p(-0.5 * anp.exp(safe_lo))
    return anp.where(t > -30.0, hi, lo)


@dataclass(frozen=True)
class Gaussian:
    r"""Gaussian :math:`N(x \mid t, \Sigma)` with known covariance.

    The output Fisher is :math:`\Lambda = \Sigma^{-1}`, the same for every data point.

    Parameters
    ----------
    cov : ndarray, shape (d, d)
        Known covariance, symmetric positive definite.

    Raises
    ------
    ValueError
        If ``cov`` is not square, symmetric and positive definite.
    """

    cov: np.ndarray
    _chol: np.ndarray = field(init=False, repr=False, compare=False)
    _prec: np.ndarray = field(init=False, repr=False, compare=False)
    _logdet: float = field(init=False, repr=False, compare=False)

    diagonal = False

    def __post_init__(self):
        cov = as_array(self.cov, "cov", ndim=2)
        if cov.shape[0] != cov.shape[1]:
            raise ValueError(f"cov must be square, got shape {cov.shape}")
        if np.max(np.abs(cov - cov.T)) > 1e-12 * max(1.0, np.max(np.abs(cov))):
            raise ValueError("cov must be symmetric")
        try:
            chol = np.linalg.cholesky(cov)
        except np.linalg.LinAlgError:
            raise ValueError("cov must be positive definite (Cholesky failed)") from None
        object.__setattr__(self, "cov", cov)
        object.__setattr__(self, "_chol", chol)
        linv = np.linalg.inv(chol)
        object.__setattr__(self, "_prec", linv.T @ linv)
        object.__setattr__(self, "_logdet", float(2.0 * np.sum(np.log(np.diag(chol)))))

    @property
    def dim(self) -> int:
        """Output dimension ``d``."""
        return self.cov.shape[0]

    @property
    def precision(self) -> np.ndarray:
        r""":math:`\Sigma^{-1}`, shape (d, d)."""
        return self._prec

    def log_prob(self, x: ArrayLike, t: ArrayLike) -> np.ndarray:
        r""":math:`\log N(x \mid t, \Sigma)`, summed over the last axis."""
        x, t = _xt(x, t, self.dim)
        r = x - t
        quad = anp.sum(anp.dot(r, self._prec) * r, axis=-1)
        return _checked(-0.5 * (quad + self._logdet + self.dim * _LOG_2PI), "log_prob", x, t)

    def score(self, x: ArrayLike, t: ArrayLike) -> np.ndarray:
        r""":math:`\Sigma^{-1}(x - t)`."""
        x, t = _xt(x, t, self.dim)
        return check_finite_output((x - t) @ self._prec, "score")

    def sample(self, rng: np.random.Generator, t: ArrayLike) -> np.ndarray:
        """Draw ``x' = t + L z`` with ``cov = L L^T`` and ``z`` standard normal."""
        check_rng(rng)
        _, t = _xt(_NO_X, t, self.dim)
        return check_finite_output(t + rng.standard_normal(t.shape) @ self._chol.T, "sample")

    def output_fisher(self, t: ArrayLike) -> np.ndarray:
        r""":math:`\Lambda = \Sigma^{-1}`, shape (d, d), independent of ``t`` (still validated)."""
        _xt(_NO_X, t, self.dim)
        return self._prec

    def whiten(self, jac: ArrayLike, t: ArrayLike) -> np.ndarray:
        r"""Return :math:`L^{-1} J` so that :math:`(L^{-1}J)^\top (L^{-1}J) = J^\top\Sigma^{-1}J`.

        ``jac`` has shape ``(..., d, P)``.
        """
        from scipy.linalg import solve_triangular

        _, t = _xt(_NO_X, t, self.dim)
        jac = _jac(jac, t.shape)
        flat = np.moveaxis(jac, -2, 0).reshape(self.dim, -1)
        out = solve_triangular(self._chol, flat, lower=True)
        return np.moveaxis(out.reshape((self.dim,) + jac.shape[:-2] + jac.shape[-1:]), 0, -2)


@dataclass(frozen=True)
class Bernoulli:
    r"""Bernoulli on logits: :math:`\log p(x \mid t) = x t - \operatorname{softplus}(t)`.

    Score :math:`x - \sigma(t)`, output Fisher :math:`\Lambda = \operatorname{diag}(\sigma(t)
    \sigma(-t))`.
    """

    diagonal = True

    def log_prob(self, x: ArrayLike, t: ArrayLike) -> np.ndarray:
        """Log probability summed over the last axis; finite for ``|t| <= 1000``."""
        x, t = _xt(x, t)
        return _checked(anp.sum(x * t - softplus(t), axis=-1), "log_prob", x, t)

    def score(self, x: ArrayLike, t: ArrayLike) -> np.ndarray:
        r""":math:`x - \sigma(t)`."""
        x, t = _xt(x, t)
        return x - sigmoid(t)

    def sample(self, rng: np.random.Generator, t: ArrayLike) -> np.ndarray:
        """Draw ``x' ~ Bernoulli(sigmoid(t))`` as float64 zeros and ones."""
        check_rng(rng)
        _, t = _xt(_NO_X, t)
        return (rng.random(t.shape) < sigmoid(t)).astype(np.float64)

    def output_fisher(self, t: ArrayLike) -> np.ndarray:
        r"""Diagonal :math:`\sigma(t)\sigma(-t)`, same shape as ``t``."""
        _, t = _xt(_NO_X, t)
        return np.exp(log_sigmoid(t) + log_sigmoid(-t))

    def whiten(self, jac: ArrayLike, t: ArrayLike) -> np.ndarray:
        r"""Return :math:`\operatorname{diag}(\sqrt{\Lambda}) J` for ``jac`` of shape ``(..., d, P)``."""
        lam = self.output_fisher(t)
        return check_finite_output(np.sqrt(lam)[..., None] * _jac(jac, lam.shape), "whiten")


@dataclass(frozen=True)
class Poisson:
    r"""Poisson with rate :math:`r = e^t` (``link="log"``) or :math:`r = \operatorname{softplus}(t)`.

    .. math::
        \log p(x \mid t) = x \log r - r - \log x!

    Output Fisher: :math:`e^t` for the log link, :math:`\sigma(t)^2/\operatorname{softplus}(t)` for
    the softplus link (Section 5.3 of Tang & Ranganath uses the softplus link).

    Parameters
    ----------
    link : {"log", "softplus"}
        The inverse link from ``t`` to the rate.
    """

    link: str = "log"
    diagonal = True

    def __post_init__(self):
        if self.link not in ("log", "softplus"):
            raise ValueError(f"link must be 'log' or 'softplus', got {self.link!r}")

    def _check_t(self, t):
        if self.link == "log":
            tv = getattr(t, "_value", t)
            while hasattr(tv, "_value"):
                tv = tv._value
            if np.any(np.asarray(tv) > 700.0):
                raise ValueError("t exceeds 700 for the log-link Poisson: the rate exp(t) overflows float64")

    def log_rate(self, t: ArrayLike) -> np.ndarray:
        """Log of the rate, stable for ``|t| <= 1000``."""
        t = as_array_or_traced(t, "t")
        return t if self.link == "log" else _log_softplus(t)

    def rate(self, t: ArrayLike) -> np.ndarray:
        """The Poisson rate."""
        t = as_array_or_traced(t, "t")
        self._check_t(t)
        return anp.exp(t) if self.link == "log" else softplus(t)

    def log_prob(self, x: ArrayLike, t: ArrayLike) -> np.ndarray:
        """Log probability summed over the last axis."""
        x, t = _xt(x, t, counts=True)
        self._check_t(t)
        xv = np.asarray(getattr(x, "_value", x), dtype=np.float64)
        out = anp.sum(x * self.log_rate(t) - self.rate(t), axis=-1) - np.sum(gammaln(xv + 1.0), axis=-1)
        return _checked(out, "log_prob", x, t)

    def _ratio(self, t):
        # sigmoid(t) / softplus(t), computed in log space (tends to 1 as t -> -inf).
        return np.exp(log_sigmoid(t) - _log_softplus(t))

    def score(self, x: ArrayLike, t: ArrayLike) -> np.ndarray:
        r""":math:`\partial_t \log p`: :math:`x - e^t` or :math:`x\,\sigma(t)/r - \sigma(t)`."""
        x, t = _xt(x, t, counts=True)
        self._check_t(t)
        if self.link == "log":
            return check_finite_output(x - np.exp(t), "score")
        return check_finite_output(x * self._ratio(t) - sigmoid(t), "score")

    def sample(self, rng: np.random.Generator, t: ArrayLike) -> np.ndarray:
        """Draw ``x' ~ Poisson(rate(t))`` as float64."""
        check_rng(rng)
        _, t = _xt(_NO_X, t)
        self._check_t(t)
        rate = self.rate(t)
        if np.any(rate > 1e15):
            raise ValueError("t is so large that the Poisson rate exceeds 1e15 (sampling overflows)")
        return rng.poisson(rate).astype(np.float64)

    def output_fisher(self, t: ArrayLike) -> np.ndarray:
        r""":math:`e^t` (log link) or :math:`\sigma(t)^2/\operatorname{softplus}(t)` (softplus)."""
        _, t = _xt(_NO_X, t)
        self._check_t(t)
        if self.link == "log":
            return np.exp(t)
        return sigmoid(t) * self._ratio(t)

    def whiten(self, jac: ArrayLike, t: ArrayLike) -> np.ndarray:
        r"""Return :math:`\operatorname{diag}(\sqrt{\Lambda}) J` for ``jac`` of shape ``(..., d, P)``."""
        lam = self.output_fisher(t)
        return check_finite_output(np.sqrt(lam)[..., None] * _jac(jac, lam.shape), "whiten")


def _plain(a):
    """The float64 value under autograd boxes (for validation only)."""
    while hasattr(a, "_value"):
        a = a._value
    return np.asarray(a, dtype=np.float64)


@dataclass(frozen=True)
class GaussianLearnedVariance:
    r"""Gaussian with learned diagonal variance: :math:`N(x \mid \mu, \operatorname{diag} e^{s})`.

    The output parameter :math:`t = (\mu, s)` holds the mean (``dim`` columns) and the
    log-variance: one column shared by all ``dim`` outputs (``shared=True``, isotropic,
    :math:`\psi = e^s`) or one per output (``shared=False``, ``2 * dim`` columns).

    .. math::
        \log p(x \mid t) = -\tfrac12\sum_{a=1}^{d}\big(\log 2\pi + s_a + e^{-s_a}(x_a-\mu_a)^2\big),

    score :math:`\partial_{\mu_a} = e^{-s_a}r_a`, :math:`\partial_{s_a} = \tfrac12(e^{-s_a}r_a^2
    - 1)` (summed over :math:`a` for a shared :math:`s`), :math:`r = x - \mu`, and the diagonal
    output Fisher

    .. math::
        \Lambda(t) = \operatorname{diag}\big(e^{-s_1}, \dots, e^{-s_d},\ \tfrac d2\big)
        \ (\text{shared}), \qquad
        \operatorname{diag}\big(e^{-s_1}, \dots, e^{-s_d},\ \tfrac12, \dots, \tfrac12\big),

    the mean and log-variance blocks being orthogonal (odd moments of :math:`r` vanish). The
    likelihood of the linear VAE and of factor analysis (:mod:`refvpng.models.ppca`).

    Parameters
    ----------
    dim : int
        Data dimension ``d``.
    shared : bool, default True
        One log-variance for all outputs (``d + 1`` output columns) or one each (``2d``).

    Raises
    ------
    ValueError
        From every method, if ``t`` does not have ``n_out`` columns, ``x`` does not have ``dim``
        columns, or a value (not under autograd) is NaN or infinite.

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
    shared: bool = True
    diagonal = True

    def __post_init__(self):
        from refvpng._checks import as_int

        object.__setattr__(self, "dim", as_int(self.dim, "dim"))
        if not isinstance(self.shared, (bool, np.bool_)):
            raise TypeError(f"shared must be a bool, got {type(self.shared).__name__}")

    @property
    def n_out(self) -> int:
        """Number of output columns: ``dim + 1`` (shared) or ``2 * dim``."""
        return self.dim + 1 if self.shared else 2 * self.dim

    def _split(self, t):
        t = as_array_or_traced(t, "t", finite=False)
        if np.shape(t)[-1:] != (self.n_out,):
            raise ValueError(
                f"t must have {self.n_out} columns (mean, log-variance), got shape {np.shape(t)}"
            )
        if not np.all(np.isfinite(_plain(t))):
            raise ValueError("t contains NaN or infinite values")
        return t[..., : self.dim], t[..., self.dim :]

    def _check_x(self, x):
        x = as_array_or_traced(x, "x", finite=False)
        if np.shape(x)[-1:] != (self.dim,):
            raise ValueError(f"x must have {self.dim} columns, got shape {np.shape(x)}")
        if not np.all(np.isfinite(_plain(x))):
            raise ValueError("x contains NaN or infinite values")
        return x

    def log_prob(self, x: ArrayLike, t: ArrayLike) -> np.ndarray:
        r"""Log density summed over the ``dim`` data columns (autograd-friendly in ``t``)."""
        x = self._check_x(x)
        mu, s = self._split(t)
        _xt(x, mu)
        r = x - mu
        # a shared s (..., 1) broadcasts over the dim columns
        return _checked(-0.5 * anp.sum(_LOG_2PI + s + anp.exp(-s) * r * r, axis=-1), "log_prob", x, t)

    def score(self, x: ArrayLike, t: ArrayLike) -> np.ndarray:
        r""":math:`\nabla_t \log p(x \mid t)`, shape ``(..., n_out)``."""
        x = self._check_x(x)
        mu, s = self._split(t)
        _xt(x, mu)
        r = x - mu
        inv = np.exp(-s)
        ds = 0.5 * (inv * r * r - 1.0)
        if self.shared:
            ds = np.sum(ds, axis=-1, keepdims=True)
        return check_finite_output(np.concatenate([inv * r, ds], axis=-1), "score")

    def sample(self, rng: np.random.Generator, t: ArrayLike) -> np.ndarray:
        r"""Draw :math:`x' = \mu + e^{s/2}\odot\varepsilon`, shape ``(..., dim)``."""
        check_rng(rng)
        mu, s = self._split(t)
        return check_finite_output(mu + np.exp(0.5 * s) * rng.standard_normal(mu.shape), "sample")

    def output_fisher(self, t: ArrayLike) -> np.ndarray:
        r"""Diagonal :math:`\Lambda(t)` (class docstring), shape ``(..., n_out)``."""
        mu, s = self._split(t)
        out = np.empty(mu.shape[:-1] + (self.n_out,))
        out[..., : self.dim] = np.exp(-s) * np.ones_like(mu)
        out[..., self.dim :] = 0.5 * self.dim if self.shared else 0.5
        return check_finite_output(out, "output_fisher")

    def whiten(self, jac: ArrayLike, t: ArrayLike) -> np.ndarray:
        r"""Return :math:`\sqrt{\Lambda} J` for ``jac`` of shape ``(..., n_out, P)``."""
        mu, _ = self._split(t)
        jac = _jac(jac, mu.shape[:-1] + (self.n_out,))
        return check_finite_output(np.sqrt(self.output_fisher(t))[..., None] * jac, "whiten")


__all__ += ["GaussianLearnedVariance"]
