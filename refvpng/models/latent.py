r"""Latent-variable models as bundles of pure functions.

A :class:`LatentModel` states everything the estimators of Tang & Ranganath (2019) need:

- the prior :math:`p(z) = N(0, \tau^2 I)`;
- the likelihood :math:`p(x \mid z; \theta)` through ``decode(theta, z, cov) -> t`` and a
  likelihood family of :mod:`refvpng.models.likelihoods` (``t`` is the family's output parameter);
- the variational family :math:`q(z \mid x; \lambda)` through ``encode(lam, x) -> (m, rho)`` and a
  :class:`~refvpng.models.variational.MeanFieldGaussian` (noise :math:`s(\varepsilon) = N(0, I)`,
  reparameterisation :math:`z = g(x, \varepsilon; \lambda) = m + \sigma(\rho)\varepsilon`, Eq 6).

Parameter packing
-----------------
All matrices are indexed by the flat float64 vector :math:`\eta = (\lambda^\top, \theta^\top)^\top`
of length ``n_lambda + n_theta``: variational parameters first, model parameters second. Each
concrete model documents the order inside :math:`\lambda` and :math:`\theta`.

Local and global latents
------------------------
*Local* latents (``local=True``): one :math:`z_i` per data point, ``encode`` returns ``m, rho`` of
shape ``(n, dz)``; noise ``eps`` has shape ``(S, n, dz)``.

*Global* latents (``local=False``): one :math:`z` shared by all data (Eq 4, Bayesian logistic
regression); ``encode`` returns ``m, rho`` of shape ``(dz,)`` and ignores ``x``. Noise comes in
two unbiased variants, chosen by the shape of ``eps``:

- ``(S, dz)``: all data points *share* one draw per Monte Carlo sample (the paper's Eq 15, one
  :math:`\hat z` per iteration);
- ``(S, n, dz)``: every data point draws its *own* :math:`\varepsilon_i`. The expected
  log-likelihood :math:`\sum_i E_q[\log p(x_i \mid z)]` is a sum of per-point expectations, so
  this is unbiased as well, and it has lower variance for the gradient.

Fast-path hooks
---------------
Every estimator of :mod:`refvpng.curvature` and :mod:`refvpng.elbo` works from ``encode`` and
``decode`` alone, differentiating them with autograd: that is the reference. A model that can do
better (an MLP chain with an explicit backward pass, a model with hand-derived derivatives)
supplies some of the optional callables of :class:`ModelHooks`; an estimator uses a hook when it
is present and autograd otherwise, and every hook is tested against the autograd path on the same
inputs (:func:`without_hooks` gives the reference). Hooks receive validated float64 arrays with
the shapes below (an ``S`` axis on ``eps`` always):

- ``jacobian(eta, x, eps, cov) -> (t, J)``: outputs ``(S, n, d)`` and
  :math:`J = \partial t / \partial \eta`, ``(S, n, d, P)``;
- ``predictive_scores(eta, x, eps, x_pred, cov) -> b``: the rows
  :math:`\hat b_{s,k,i} = \nabla_\eta \log p(x'^{(k)}_{si} \mid t_{si}(\eta))` of Eq 16 for
  ``x_pred`` of shape ``(S, M, n, d)``, shape ``(S, M, n, P)``;
- ``kfac_pairs(eta, x, eps, x_pred, cov) -> (pairs, weights)``: per-layer ``(a_bar, g)`` of those
  same ``S M n`` rows (row order ``(s, k, i)``, ``i`` fastest) with weights :math:`1/(SM)`, for
  :func:`refvpng.curvature.kfac.kfac_factors`;
- ``elbo_value_and_grad(eta, x, eps, cov) -> (value, grad)``: the Monte Carlo ELBO of Eq 1 and
  its reparameterisation gradient, as :func:`refvpng.elbo.elbo_value_and_grad`;
- ``layer_pairs(eta, x, eps, cov, seed) -> (a_bars, gs)``: for a network of affine layers whose
  parameters :math:`\eta` pack, layer after layer, :math:`\operatorname{vec}\bar W_l`
  column-major (``d_l x a_l``). The hook runs the forward pass, calls ``seed(t)`` with the
  outputs ``t`` of shape ``(S, n, d)``, which returns ``K`` output gradients per ``(s, i)``,
  shape ``(S, n, K, d)``, and back-propagates each of them. It returns per layer the inputs
  :math:`\bar a_{sil}` shared by those ``K`` passes, shape ``(S, n, a_l)``, and their
  output-side gradients :math:`g_{silk}`, shape ``(S, n, K, d_l)``, so that row ``k`` of
  :math:`\partial(\text{seed}_k \cdot t_{si})/\partial\eta` is
  :math:`(\bar a_{si1} \otimes g_{si1k}, \dots, \bar a_{siL} \otimes g_{siLk})`. The
  estimators choose the seeds (the rows of :math:`\Lambda^{1/2}` for the exact :math:`F_r`,
  the ``M`` predictive scores for Eq 16) and build the dense matrix from these factors with
  :func:`refvpng.curvature.kron_fisher.kron_outer_sum` at :math:`SnP^2` flops instead of
  :math:`SnKP^2`.
- ``linearize(eta, x, eps, cov) -> (t, jvp, vjp)``: the outputs ``t`` ``(S, n, d)`` after one
  forward pass, and the products :math:`v \mapsto J v` (``(P,)`` to ``(S, n, d)``) and
  :math:`u \mapsto \sum_{s,i} J_{si}^\top u_{si}` (``(S, n, d)`` to ``(P,)``) at those
  fixed inputs, for the matrix-free :math:`F_r v` of :mod:`refvpng.curvature.fr_operator`.

The arrays a hook returns belong to the caller, which may overwrite them (e.g. whiten ``J`` in
place).

Sum versus mean
---------------
Every log-likelihood, ELBO, Hessian and Fisher in refvpng is a **sum over data points** and a
**mean over Monte Carlo samples**. This is why :math:`F_r = n\Sigma^{-1}` carries the factor
:math:`n` for the model of Eq 4.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple, cast

import autograd.numpy as anp
import numpy as np
from numpy.typing import ArrayLike

from refvpng._checks import (
    as_array,
    as_array_or_traced,
    as_int,
    check_rng,
    check_samples,
    finite_output,
    is_traced,
)
from refvpng.models.likelihoods import Likelihood
from refvpng.models.variational import MeanFieldGaussian

__all__ = [
    "LatentModel",
    "ModelHooks",
    "without_hooks",
    "check_model",
    "split_params",
    "check_data",
    "check_eps",
    "draw_eps",
    "latents",
    "outputs",
    "draw_predictive",
    "draw_model_samples",
]


class ModelHooks(NamedTuple):
    r"""Optional fast paths of a :class:`LatentModel` (see the module docstring for signatures).

    Attributes
    ----------
    jacobian : callable or None
        ``(eta, x, eps, cov) -> (t, J)``.
    predictive_scores : callable or None
        ``(eta, x, eps, x_pred, cov) -> b``, the score rows of Eq 16.
    kfac_pairs : callable or None
        ``(eta, x, eps, x_pred, cov) -> (pairs, weights)``.
    elbo_value_and_grad : callable or None
        ``(eta, x, eps, cov) -> (value, grad)``.
    layer_pairs : callable or None
        ``(eta, x, eps, cov, seed) -> (a_bars, gs)``, per-layer factors of seeded backward
        passes, for the dense Fishers of layered networks.
    linearize : callable or None
        ``(eta, x, eps, cov) -> (t, jvp, vjp)``, Jacobian-vector and vector-Jacobian products
        after one forward pass, for matrix-free Fishers.
    """

    jacobian: Callable | None = None
    predictive_scores: Callable | None = None
    kfac_pairs: Callable | None = None
    elbo_value_and_grad: Callable | None = None
    layer_pairs: Callable | None = None
    linearize: Callable | None = None


@dataclass(frozen=True)
class LatentModel:
    r"""A latent-variable model and its reparameterised variational family.

    Parameters
    ----------
    name : str
        Readable name, used in ids and reports.
    n_lambda, n_theta : int
        Lengths of the variational and model parameter blocks of :math:`\eta`.
    latent_dim : int
        Dimension ``dz`` of each latent :math:`z` (or :math:`z_i`).
    obs_dim : int
        Dimension ``d`` of each observation :math:`x_i` (equal to the output dimension of
        ``decode`` for every family in refvpng).
    local : bool
        Local (one :math:`z_i` per point) or global (one shared :math:`z`) latents.
    family : MeanFieldGaussian
        The variational family and its scale coordinate.
    likelihood : Likelihood
        The likelihood family applied to ``decode``'s output (Gaussian, Bernoulli, Poisson, ...).
    encode : callable ``(lam, x) -> (m, rho)``
        Variational parameters of :math:`q(z \mid x; \lambda)`; ``rho`` is ``None`` when the
        family's scale is fixed. Local: ``x`` of shape ``(n, d)`` gives shape ``(n, dz)``.
        Global: shape ``(dz,)``.
    decode : callable ``(theta, z, cov) -> t``
        Output parameter of the likelihood for ``z`` of shape ``(..., n, dz)``; returns
        ``(..., n, d)``. ``cov`` holds per-point covariates ``(n, c)`` or is ``None``.
    prior_std : float, default 1.0
        :math:`\tau` in :math:`p(z) = N(0, \tau^2 I)`.
    n_cov : int, default 0
        Number of covariate columns the model expects (0: ``cov`` must be ``None``).
    hooks : ModelHooks, default ``ModelHooks()``
        Optional fast paths, each tested against the autograd path.
    """

    name: str
    n_lambda: int
    n_theta: int
    latent_dim: int
    obs_dim: int
    local: bool
    family: MeanFieldGaussian
    likelihood: Likelihood
    encode: Callable
    decode: Callable
    prior_std: float = 1.0
    n_cov: int = 0
    hooks: ModelHooks = ModelHooks()

    def __post_init__(self):
        if not isinstance(self.hooks, ModelHooks):
            raise TypeError(f"hooks must be a ModelHooks, got {type(self.hooks).__name__}")
        for name, fn in zip(self.hooks._fields, self.hooks, strict=True):
            if fn is not None and not callable(fn):
                raise TypeError(f"hooks.{name} must be callable or None, got {type(fn).__name__}")

    @property
    def n_params(self) -> int:
        r"""Length of :math:`\eta`."""
        return self.n_lambda + self.n_theta

    def __repr__(self) -> str:
        return f"LatentModel({self.name!r}, n_lambda={self.n_lambda}, n_theta={self.n_theta})"


def check_model(model: object) -> LatentModel:
    """Require a :class:`LatentModel` (``TypeError`` naming ``model`` otherwise)."""
    if not isinstance(model, LatentModel):
        raise TypeError(f"model must be a refvpng LatentModel, got {type(model).__name__}")
    return model


def without_hooks(model: LatentModel) -> LatentModel:
    """The same model with every fast-path hook removed: the autograd reference path."""
    check_model(model)
    return dataclasses.replace(model, hooks=ModelHooks(), name=model.name + "[autograd]")


def split_params(model: LatentModel, eta: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    r"""Split :math:`\eta` into :math:`(\lambda, \theta)` after checking its length."""
    check_model(model)
    eta = as_array_or_traced(eta, "eta", ndim=1)
    if eta.shape[0] != model.n_params:
        raise ValueError(
            f"eta must have length n_lambda + n_theta = {model.n_params} for model "
            f"{model.name!r}, got {eta.shape[0]}"
        )
    return eta[: model.n_lambda], eta[model.n_lambda :]


def check_data(
    model: LatentModel, x: ArrayLike, cov: ArrayLike | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """Validate observations ``x`` (n, d) and covariates ``cov`` (n, c); return float64 arrays."""
    x = _check_x(model, x)
    if model.n_cov:
        if cov is None:
            raise ValueError(f"cov is required for model {model.name!r} ({model.n_cov} columns)")
        cov = as_array(cov, "cov", shape=(x.shape[0], model.n_cov))
    elif cov is not None:
        raise ValueError(f"model {model.name!r} takes no covariates; cov must be None")
    return x, cov


def _check_x(model: LatentModel, x: ArrayLike) -> np.ndarray:
    """Observations ``x`` of shape ``(n, obs_dim)``, ``n >= 1``, as float64 (covariates unchecked)."""
    check_model(model)
    x = as_array(x, "x", ndim=2)
    if x.shape[1] != model.obs_dim:
        raise ValueError(f"x must have {model.obs_dim} columns for model {model.name!r}, got {x.shape[1]}")
    if x.shape[0] < 1:
        raise ValueError("x must have at least one row")
    return x


def check_eps(model: LatentModel, eps: ArrayLike, n: int) -> np.ndarray:
    """Validate pre-drawn noise against the model and ``n`` data points (see module docstring).

    ``eps`` needs at least one Monte Carlo sample (``S >= 1``).
    """
    check_model(model)
    n = as_int(n, "n")
    eps = check_samples(as_array(eps, "eps", ndim=(2, 3)), "eps")
    dz = model.latent_dim
    if eps.ndim == 3:
        if eps.shape[1:] != (n, dz):
            raise ValueError(f"eps must have shape (S, {n}, {dz}), got {eps.shape}")
    else:
        if model.local:
            raise ValueError(
                f"eps must have shape (S, n, dz) = (S, {n}, {dz}) for local latents, got {eps.shape}"
            )
        if eps.shape[1] != dz:
            raise ValueError(f"eps must have shape (S, {dz}) or (S, {n}, {dz}), got {eps.shape}")
    return eps


def draw_eps(
    rng: np.random.Generator, model: LatentModel, n: int, n_samples: int, *, shared: bool | None = None
) -> np.ndarray:
    """Draw standard-normal noise for ``n_samples`` Monte Carlo samples.

    Parameters
    ----------
    rng : numpy.random.Generator
        The only source of randomness.
    model : LatentModel
    n : int
        Number of data points.
    n_samples : int
        Number ``S`` of Monte Carlo samples.
    shared : bool, optional
        For global latents: one draw shared by all points (``(S, dz)``, the default) or one per
        point (``(S, n, dz)``). Must be ``None`` or ``False`` for local latents.

    Returns
    -------
    eps : ndarray, shape (S, dz) or (S, n, dz)
    """
    check_rng(rng)
    check_model(model)
    n = as_int(n, "n")
    n_samples = as_int(n_samples, "n_samples")
    if model.local:
        if shared:
            raise ValueError("shared=True is only meaningful for global latents")
        return rng.standard_normal((n_samples, n, model.latent_dim))
    if shared is None or shared:
        return rng.standard_normal((n_samples, model.latent_dim))
    return rng.standard_normal((n_samples, n, model.latent_dim))


@finite_output
def latents(model: LatentModel, lam: ArrayLike, x: ArrayLike, eps: ArrayLike) -> np.ndarray:
    r"""Reparameterised latents :math:`z = g(x, \varepsilon; \lambda)` (Eq 6), shape ``(S, n, dz)``.

    Shared global noise ``(S, dz)`` is broadcast to every data point. Plain arrays are validated
    (``lam`` of length ``n_lambda``, ``x`` of shape ``(n, d)``, ``eps`` as in :func:`check_eps`);
    an autograd-traced ``lam`` passes unchanged (the estimators validate before tracing).

    Raises
    ------
    FloatingPointError
        If the latents overflow float64 (finite inputs of extreme magnitude).
    """
    check_model(model)
    if not is_traced(lam):
        lam = as_array(lam, "lam", shape=(model.n_lambda,))
        x = _check_x(model, x)
        eps = check_eps(model, eps, x.shape[0])
    x, eps = cast(np.ndarray, x), cast(np.ndarray, eps)  # a traced lam: the caller validated them
    m, rho = model.encode(lam, x)
    z = model.family.reparam(m, rho, eps)
    if eps.ndim == 2:  # shared global draw
        z = anp.reshape(z, (eps.shape[0], 1, model.latent_dim)) * anp.ones((1, x.shape[0], 1))
    return z


@finite_output
def outputs(
    model: LatentModel, eta: ArrayLike, x: ArrayLike, eps: ArrayLike, cov: ArrayLike | None = None
) -> np.ndarray:
    r"""Likelihood output :math:`t_{si} = h(g(x_i, \varepsilon_{si}; \lambda); \theta)`, ``(S, n, d)``.

    Plain arrays are validated as in :func:`latents` (and ``cov`` as in :func:`check_data`);
    an autograd-traced ``eta`` passes unchanged.

    Raises
    ------
    FloatingPointError
        If the outputs overflow float64 (finite inputs of extreme magnitude).
    """
    if not is_traced(eta):
        eta = as_array(eta, "eta", ndim=1)
        x, cov = check_data(model, x, cov)
        eps = check_eps(model, eps, x.shape[0])
    lam, theta = split_params(model, eta)
    return model.decode(theta, latents(model, lam, x, eps), cov)


@finite_output
def draw_predictive(
    rng: np.random.Generator,
    model: LatentModel,
    eta: ArrayLike,
    x: ArrayLike,
    eps: ArrayLike,
    n_pred: int,
    cov: ArrayLike | None = None,
) -> np.ndarray:
    r"""Draw predictive samples :math:`x'^{(k)}_{si} \sim p(x' \mid z_{si}; \theta)` (Eq 15).

    Returns
    -------
    x_pred : ndarray, shape (S, M, n, d)
        ``M = n_pred`` samples for each Monte Carlo sample of the latents and each data point.
    """
    check_rng(rng)
    x, cov = check_data(model, x, cov)
    eps = check_eps(model, eps, x.shape[0])
    n_pred = as_int(n_pred, "n_pred")
    t = np.asarray(outputs(model, as_array(eta, "eta", ndim=1), x, eps, cov))
    tt = np.broadcast_to(t[:, None], (t.shape[0], n_pred) + t.shape[1:])
    return model.likelihood.sample(rng, tt)


@finite_output
def draw_model_samples(
    rng: np.random.Generator,
    model: LatentModel,
    eta: ArrayLike,
    n: int,
    n_samples: int,
    cov: ArrayLike | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    r"""Draw :math:`\tilde z_{si} \sim p(z)` and :math:`\tilde x_{si} \sim p(x \mid \tilde z_{si}; \theta)`.

    These are the samples of the expectation :math:`E_{p(z_i)} E_{p(x_i \mid z_i)}` in Eq 9 and
    Eq 11, one independent pair for each of the ``n`` data slots (and each slot's covariates).

    Returns
    -------
    z_tilde : ndarray, shape (S, n, dz)
    x_tilde : ndarray, shape (S, n, d)
    """
    check_rng(rng)
    check_model(model)
    n = as_int(n, "n")
    n_samples = as_int(n_samples, "n_samples")
    _, theta = split_params(model, eta)
    z = model.prior_std * rng.standard_normal((n_samples, n, model.latent_dim))
    t = np.asarray(model.decode(theta, z, cov))
    return z, model.likelihood.sample(rng, t)
