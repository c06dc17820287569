r"""Jacobian-vector and vector-Jacobian products of a :class:`refvpng.nn.Chain`, forward pass once.

For outputs :math:`t_{si} = h(g(x_i, \varepsilon_{si}; \lambda); \theta)` of the chain at fixed
data and noise, :func:`chain_linearize` runs the forward pass once and returns

- ``jvp(v)`` :math:`= J v`, shape ``(S, n, d_out)``: forward mode through encoder, stochastic
  layer and decoder (:math:`\dot s_l = \dot{\bar W}_l \bar a_{l-1} + W_l \dot a_{l-1}`,
  :math:`\dot a_l = \phi'(s_l) \odot \dot s_l`, :math:`\dot z = \dot\mu + \dot\sigma \odot
  \varepsilon`, :math:`\dot\sigma = \operatorname{sigmoid}(\sigma_{raw}) \odot
  \dot\sigma_{raw}`);
- ``vjp(u)`` :math:`= \sum_{s,i} J_{si}^\top u_{si}`, shape ``(P,)``: the explicit backward pass
  (:meth:`refvpng.nn.Chain.backward`'s algebra).

The encoder does not depend on :math:`\varepsilon`, so it runs on the :math:`n` data points and
the decoder on the :math:`S n` rows :math:`r = s n + i`; the encoder's backward pass receives
the sum over :math:`s` of the stochastic layer's gradients (exact: the encoder is linear in its
output gradient). These are the products behind the matrix-free :math:`F_r v = J^\top \Lambda
J v` of :mod:`refvpng.curvature.fr_operator`; :func:`refvpng.nn.chain_model` supplies them as
its ``linearize`` hook, tested against autograd. :func:`vae_fisher_operator` builds that operator
for the VAE of :mod:`refvpng.nn.vae` from the noise of a :func:`refvpng.nn.vae.vae_step`.

Examples
--------
>>> import numpy as np
>>> from refvpng.nn import Chain
>>> chain = Chain.from_sizes((4, 3, 2), (1, 3, 4))
>>> rng = np.random.default_rng(0)
>>> eta, x, eps = chain.init(rng), rng.random((5, 4)), rng.standard_normal((2, 5, 1))
>>> lin = chain_linearize(chain, eta, x, eps)
>>> lin.t.shape, lin.jvp(np.ones(45)).shape, lin.vjp(np.ones((2, 5, 4))).shape
((2, 5, 4), (2, 5, 4), (45,))
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import expit

from refvpng._checks import as_array, as_int, check_finite_output, check_samples, finite_output
from refvpng.nn.chain import Chain
from refvpng.nn.mlp import MLP, MLPCache

if TYPE_CHECKING:  # vae_fisher_operator imports it when called
    from refvpng.curvature.fr_operator import VPFisherOperator

__all__ = ["ChainLinearization", "chain_linearize", "vae_fisher_operator"]


class ChainLinearization(NamedTuple):
    r"""The chain linearised at fixed parameters, data and noise.

    Attributes
    ----------
    t : ndarray, shape (S, n, d_out)
        Outputs :math:`t_{si}`.
    jvp : callable ``(P,) -> (S, n, d_out)``
        :math:`v \mapsto J v`.
    vjp : callable ``(S, n, d_out) -> (P,)``
        :math:`u \mapsto \sum_{s,i} J_{si}^\top u_{si}`.
    """

    t: np.ndarray
    jvp: Callable[[np.ndarray], np.ndarray]
    vjp: Callable[[np.ndarray], np.ndarray]


def _act_dot(net: MLP, s: np.ndarray) -> np.ndarray:
    if net.activation == "relu":
        return (s > 0.0).astype(np.float64)
    if net.activation == "tanh":
        return 1.0 - np.tanh(s) ** 2
    return np.ones_like(s)


def _mlp_jvp(net: MLP, cache: MLPCache, w_dot, a_dot) -> np.ndarray:
    """Tangent of the output for weight tangents ``w_dot`` and input tangent ``a_dot`` (or None)."""
    ds = np.zeros((cache.a_bar[0].shape[0], 0))
    for k, (w, wd) in enumerate(zip(cache.weights, w_dot, strict=True)):
        ds = cache.a_bar[k] @ wd.T
        if a_dot is not None:
            ds += a_dot @ w[:, :-1].T
        if k < len(cache.weights) - 1:
            a_dot = ds * _act_dot(net, cache.s[k])
    return ds


def _data(x: ArrayLike, d_x: int) -> np.ndarray:
    x = as_array(x, "x", shape=(None, d_x))
    if x.shape[0] == 0:
        raise ValueError("x must hold at least one data point (row)")
    return x


def chain_linearize(chain: Chain, eta: ArrayLike, x: ArrayLike, eps: ArrayLike) -> ChainLinearization:
    r"""Run the chain forward once and return its Jacobian-vector and vector-Jacobian products.

    Parameters
    ----------
    chain : Chain
    eta : ndarray, shape (P,)
        :math:`(\lambda, \theta)`.
    x : ndarray, shape (n, d_x)
    eps : ndarray, shape (S, n, d_z)
        Pre-drawn noise, :math:`S` draws per data point.

    Returns
    -------
    ChainLinearization

    Raises
    ------
    TypeError
        If ``chain`` is not a :class:`Chain`.
    ValueError
        If an argument (or later a ``v`` or ``u``) has the wrong shape or non-finite entries, or
        ``x`` or ``eps`` is empty.
    FloatingPointError
        If the latents or outputs overflow although every input is finite.
    """
    if not isinstance(chain, Chain):
        raise TypeError(f"chain must be a Chain, got {type(chain).__name__}")
    lam, theta = chain.split(eta)
    x = _data(x, chain.d_x)
    n, dz = x.shape[0], chain.d_z
    eps = check_samples(as_array(eps, "eps", shape=(None, n, dz)), "eps")
    s_count = eps.shape[0]
    h, enc = chain.encoder.forward(lam, x)
    mu, raw = h[:, :dz], h[:, dz:]
    dsig = expit(raw)  # d sigma / d sigma_raw
    with np.errstate(over="ignore", invalid="ignore"):
        z = mu[None] + (np.logaddexp(0.0, raw) + chain.floor)[None] * eps
    z = check_finite_output(z, "chain_linearize", "latent z")
    t, dec = chain.decoder.forward(theta, z.reshape(s_count * n, dz))
    t = check_finite_output(t, "chain_linearize", "output t")
    p_enc, p_all = chain.encoder.num_params, chain.num_params

    def jvp(v) -> np.ndarray:
        v = as_array(v, "v", shape=(p_all,))
        dh = _mlp_jvp(chain.encoder, enc, chain.encoder.unpack(v[:p_enc]), None)
        dz_ = dh[None, :, :dz] + (dsig * dh[:, dz:])[None] * eps
        dt = _mlp_jvp(chain.decoder, dec, chain.decoder.unpack(v[p_enc:]), dz_.reshape(s_count * n, dz))
        return dt.reshape(s_count, n, -1)

    def vjp(u) -> np.ndarray:
        u = as_array(u, "u", shape=(s_count, n, chain.d_out))
        d = chain.decoder.backward(dec, u.reshape(s_count * n, -1))
        d_z = d.input.reshape(s_count, n, dz)
        d_h = np.concatenate([d_z.sum(axis=0), (d_z * eps).sum(axis=0) * dsig], axis=1)
        return np.concatenate([chain.encoder.backward(enc, d_h).params, d.params])

    return ChainLinearization(t.reshape(s_count, n, -1), jvp, vjp)


@finite_output
def vae_fisher_operator(
    chain: Chain,
    eta: ArrayLike,
    x: ArrayLike,
    eps: ArrayLike,
    u: ArrayLike | None = None,
    *,
    fisher_samples: int | None = None,
    damping: float = 0.0,
    rtol: float = 1e-10,
    maxiter: int | None = None,
) -> VPFisherOperator:
    r"""The matrix-free :math:`\hat F_r / n + \mu I` of the Bernoulli VAE at a step's noise.

    The matrix whose Kronecker factors :func:`refvpng.nn.vae.vae_step` returns
    (``curvature="vp"``, per data point): Eq. 16 on the first :math:`M` latent draws
    :math:`\varepsilon_{si}`, :math:`s < M`, each with the one predictive sample
    :math:`x'_{si} = [u_{si} < \sigma(t_{si})]`, divided by :math:`n`; or, without ``u``, the
    exact :math:`F_r / n` over :math:`x'` at the same draws.

    Parameters
    ----------
    chain : Chain
        The VAE (Bernoulli logits out, ``d_out == d_x``).
    eta : ndarray, shape (P,)
    x : ndarray, shape (n, d_x)
    eps : ndarray, shape (S, n, d_z)
    u : ndarray, shape (S, n, d_x), optional
        The uniforms of the step's predictive samples; ``None``: exact over :math:`x'`.
    fisher_samples : int, optional
        :math:`M \le S` (default :math:`S`).
    damping : float, default 0.0
        :math:`\mu`, per data point (the scale of the K-FAC factor damping :math:`\gamma`).
    rtol, maxiter
        CG settings of the operator's ``solve`` (:class:`~refvpng.curvature.fr_operator.VPFisherOperator`).

    Returns
    -------
    refvpng.curvature.fr_operator.VPFisherOperator
        Shape ``(P, P)``, ``scale = 1 / n``.

    Raises
    ------
    ValueError, TypeError
        Naming the argument.
    FloatingPointError
        If the network's latents or outputs overflow although every input is finite.
    """
    from refvpng.curvature.fr_operator import VPFisherOperator
    from refvpng.models.likelihoods import Bernoulli
    from refvpng.nn.chain import chain_model

    if not isinstance(chain, Chain):
        raise TypeError(f"chain must be a Chain, got {type(chain).__name__}")
    x = _data(x, chain.d_x)
    eps = check_samples(as_array(eps, "eps", shape=(None, x.shape[0], chain.d_z)), "eps")
    m = eps.shape[0] if fisher_samples is None else as_int(fisher_samples, "fisher_samples")
    if m > eps.shape[0]:
        raise ValueError(f"fisher_samples must be in [1, {eps.shape[0]}], got {m}")
    x_pred: Callable[[np.ndarray], np.ndarray] | None = None
    if u is not None:
        u_m = as_array(u, "u", shape=eps.shape[:2] + (chain.d_x,))[:m]
        if u_m.size and not (u_m.min() >= 0.0 and u_m.max() < 1.0):
            raise ValueError("u must hold uniforms in [0, 1)")

        def draw(t: np.ndarray) -> np.ndarray:
            return (u_m < expit(t)).astype(np.float64)[:, None]

        x_pred = draw

    model = chain_model(chain, Bernoulli())
    return VPFisherOperator(
        model, eta, x, eps[:m], x_pred, damping=damping, scale=1.0 / x.shape[0], rtol=rtol, maxiter=maxiter
    )
