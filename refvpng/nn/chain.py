r"""The VAE of Tang & Ranganath (2019), Section 5.2, as one network with a stochastic layer.

An encoder MLP maps :math:`x` to :math:`(\mu, \sigma_{raw})` (its last layer has
:math:`2 d_z` outputs: the first :math:`d_z` are :math:`\mu`), the stochastic layer draws

.. math::
    z = \mu + \sigma \odot \varepsilon, \qquad
    \sigma = \operatorname{softplus}(\sigma_{raw}) + \sigma_{floor},

with pre-drawn noise :math:`\varepsilon`, and a decoder MLP maps :math:`z` to the likelihood's
output parameters :math:`t` (e.g. Bernoulli logits). The whole chain is a network of
:math:`L_e + L_d` affine layers, in **chain order**: encoder layers, then decoder layers; the
encoder's last layer and the decoder's first layer are neighbours (the stochastic layer sits
between them). The flat parameter vector is

.. math::
    \eta = (\lambda, \theta),

encoder parameters :math:`\lambda` first, decoder parameters :math:`\theta` second, each
packed as in :mod:`refvpng.nn.mlp` (per layer, column-major :math:`\operatorname{vec}(\bar W_l)`),
so per-layer blocks of :math:`\eta` appear in chain order.

Variational predictive Fisher
-----------------------------
With :math:`J_i = \partial t_i / \partial \eta` and the output Fisher
:math:`\Lambda(t) = E_{x' \sim p(\cdot \mid t)}[\nabla_t \log p \, \nabla_t \log p^\top]`,

.. math::
    F_r = \sum_{i=1}^n \frac{1}{S} \sum_{s=1}^S J_{is}^\top \Lambda(t_{is}) J_{is}

(:func:`vp_fisher_exact_chain`; the sum over data points carries the paper's factor :math:`n`)
and its Monte Carlo estimate, Eq. (16) of the paper,

.. math::
    \hat F_r = \frac{1}{M} \sum_{k=1}^M \sum_{i=1}^n \hat b_{ik} \hat b_{ik}^\top, \qquad
    \hat b_{ik} = \nabla_\eta \log p(x'^{(k)}_i \mid t_i(\eta))
    = J_i^\top \nabla_t \log p(x'^{(k)}_i \mid t_i),

(:func:`vp_fisher_mc_chain`). For a fixed :math:`\varepsilon` the expectation of
:math:`\hat F_r` over :math:`x'` is :math:`F_r` with :math:`S = 1` on the same noise.

The likelihood enters only through small callables: ``score(x_pred, t)``,
``output_fisher(t)`` and ``sample(rng, t)``. Bernoulli-on-logits defaults are defined here; any
object with those methods (e.g. a likelihood from :mod:`refvpng.models`) can be passed
method-by-method.

References
----------
.. [1] Y. Tang and R. Ranganath, "The Variational Predictive Natural Gradient", ICML 2019,
   Sections 3.3, 4 (Eq. 16) and 5.2.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from scipy.special import expit

from refvpng._checks import as_array, as_int, as_nonneg_scalar
from refvpng.models.likelihoods import Bernoulli
from refvpng.nn.mlp import MLP, MLPCache, per_example_gradients

# One Bernoulli family for the whole package: the helpers below delegate to it.
_BERNOULLI = Bernoulli()

__all__ = [
    "Chain",
    "ChainCache",
    "ChainGrads",
    "bernoulli_score",
    "bernoulli_output_fisher",
    "bernoulli_sample",
    "sample_predictive",
    "vp_scores_chain",
    "vp_fisher_mc_chain",
    "vp_kfac_pairs_chain",
    "vp_fisher_exact_chain",
]


# --------------------------------------------------------------------------- likelihood defaults
def bernoulli_score(x_pred, t) -> np.ndarray:
    r"""Bernoulli-logit score :math:`\nabla_t \log p(x' \mid t) = x' - \sigma(t)`.

    Parameters
    ----------
    x_pred : ndarray, shape (..., d)
        Binary observations.
    t : ndarray, shape (..., d)
        Logits.

    Returns
    -------
    ndarray, shape (..., d)
    """
    return _BERNOULLI.score(x_pred, t)


def bernoulli_output_fisher(t) -> np.ndarray:
    r"""Bernoulli-logit output Fisher, the diagonal :math:`\Lambda(t) = \sigma(t)(1 - \sigma(t))`.

    Parameters
    ----------
    t : ndarray, shape (..., d)
        Logits.

    Returns
    -------
    ndarray, shape (..., d)
    """
    return _BERNOULLI.output_fisher(t)


def bernoulli_sample(rng: np.random.Generator, t) -> np.ndarray:
    r"""Draw :math:`x' \sim \operatorname{Bernoulli}(\sigma(t))` as float64 zeros and ones.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of randomness.
    t : ndarray, shape (..., d)
        Logits.

    Returns
    -------
    ndarray, shape (..., d)
    """
    return _BERNOULLI.sample(rng, t)


# --------------------------------------------------------------------------- the chain
class ChainCache(NamedTuple):
    r"""What :meth:`Chain.forward` keeps for :meth:`Chain.backward`.

    Attributes
    ----------
    encoder, decoder : MLPCache
        The two MLP caches.
    sigma_raw : ndarray, shape (n, d_z)
        Encoder outputs before the softplus.
    eps : ndarray, shape (n, d_z)
        The noise used.
    z : ndarray, shape (n, d_z)
        The latent sample :math:`\mu + \sigma \odot \varepsilon`.
    """

    encoder: MLPCache
    decoder: MLPCache
    sigma_raw: np.ndarray
    eps: np.ndarray
    z: np.ndarray


class ChainGrads(NamedTuple):
    r"""What :meth:`Chain.backward` returns.

    Attributes
    ----------
    eta : ndarray, shape (P,)
        :math:`\partial L / \partial \eta`, summed over the batch, packed like :math:`\eta`.
    pairs : tuple of (ndarray, ndarray)
        ``(a_bar_l, g_l)`` for **all** layers in chain order (encoder layers, whose
        :math:`g_l` are propagated through the reparameterisation, then decoder layers);
        shapes ``(n, d_{l-1} + 1)`` and ``(n, d_l)``.
    z : ndarray, shape (n, d_z)
        :math:`\partial L / \partial z`.
    input : ndarray, shape (n, d_x)
        :math:`\partial L / \partial x`.
    """

    eta: np.ndarray
    pairs: tuple[tuple[np.ndarray, np.ndarray], ...]
    z: np.ndarray
    input: np.ndarray


@dataclass(frozen=True)
class Chain:
    r"""Encoder MLP, reparameterised Gaussian stochastic layer, decoder MLP.

    Parameters
    ----------
    encoder : MLP
        Maps :math:`x` (width :math:`d_x`) to :math:`2 d_z` outputs :math:`(\mu, \sigma_{raw})`.
    decoder : MLP
        Maps :math:`z` (width :math:`d_z`) to the output parameters :math:`t`.
    floor : float, default 1e-4
        :math:`\sigma_{floor}` in :math:`\sigma = \operatorname{softplus}(\sigma_{raw}) +
        \sigma_{floor}`.

    Raises
    ------
    ValueError
        If the encoder's output width is not twice the decoder's input width, or ``floor < 0``.

    Examples
    --------
    >>> import numpy as np
    >>> from refvpng.nn import Chain
    >>> chain = Chain.from_sizes((6, 5, 4), (2, 5, 6))  # d_x = 6, d_z = 2
    >>> rng = np.random.default_rng(0)
    >>> eta = chain.init(rng)
    >>> x, eps = rng.random((3, 6)), rng.standard_normal((3, 2))
    >>> t, cache = chain.forward(eta, x, eps)
    >>> grads = chain.backward(cache, np.ones_like(t))
    >>> t.shape, grads.eta.shape, len(grads.pairs)
    ((3, 6), (110,), 4)
    >>> chain.jacobian(eta, x[0], eps[0]).shape
    (6, 110)
    """

    encoder: MLP
    decoder: MLP
    floor: float = 1e-4

    def __post_init__(self) -> None:
        if not isinstance(self.encoder, MLP):
            raise TypeError(f"encoder must be an MLP, got {type(self.encoder).__name__}")
        if not isinstance(self.decoder, MLP):
            raise TypeError(f"decoder must be an MLP, got {type(self.decoder).__name__}")
        if self.encoder.sizes[-1] != 2 * self.decoder.sizes[0]:
            raise ValueError(
                "encoder must output 2 * d_z values with d_z = decoder input width "
                f"({self.decoder.sizes[0]}), got {self.encoder.sizes[-1]}"
            )
        object.__setattr__(self, "floor", as_nonneg_scalar(self.floor, "floor"))

    @classmethod
    def from_sizes(
        cls,
        encoder_sizes,
        decoder_sizes,
        activation: str = "relu",
        floor: float = 1e-4,
    ) -> Chain:
        r"""Build from widths: ``encoder_sizes[-1]`` must be ``2 * decoder_sizes[0]``.

        Parameters
        ----------
        encoder_sizes, decoder_sizes : sequence of int
            Widths of the two MLPs (see :class:`refvpng.nn.MLP`).
        activation : str, default "relu"
            Hidden activation of both MLPs.
        floor : float, default 1e-4
            Lower bound added to :math:`\sigma`.

        Returns
        -------
        Chain
        """
        return cls(MLP(encoder_sizes, activation), MLP(decoder_sizes, activation), floor)

    @property
    def d_x(self) -> int:
        """Input width."""
        return self.encoder.sizes[0]

    @property
    def d_z(self) -> int:
        """Latent width."""
        return self.decoder.sizes[0]

    @property
    def d_out(self) -> int:
        """Output width (number of likelihood output parameters)."""
        return self.decoder.sizes[-1]

    @property
    def num_params(self) -> int:
        r"""Length of :math:`\eta = (\lambda, \theta)`."""
        return self.encoder.num_params + self.decoder.num_params

    @property
    def layer_shapes(self) -> tuple[tuple[int, int], ...]:
        r"""Shapes :math:`(d_l, d_{l-1} + 1)` of all :math:`\bar W_l` in chain order."""
        return self.encoder.layer_shapes + self.decoder.layer_shapes

    def split(self, eta) -> tuple[np.ndarray, np.ndarray]:
        r"""Split :math:`\eta` into encoder parameters :math:`\lambda` and decoder :math:`\theta`.

        Parameters
        ----------
        eta : ndarray, shape (P,)

        Returns
        -------
        lam : ndarray, shape (P_encoder,)
        theta : ndarray, shape (P_decoder,)
        """
        eta = as_array(eta, "eta", shape=(self.num_params,))
        k = self.encoder.num_params
        return eta[:k], eta[k:]

    def init(self, rng: np.random.Generator) -> np.ndarray:
        r"""Draw :math:`\eta` with :meth:`MLP.init` for both halves (encoder first)."""
        return np.concatenate([self.encoder.init(rng), self.decoder.init(rng)])

    def forward(self, eta, x, eps) -> tuple[np.ndarray, ChainCache]:
        r"""Forward pass :math:`x \to (\mu, \sigma_{raw}) \to z \to t`.

        Parameters
        ----------
        eta : ndarray, shape (P,)
            :math:`(\lambda, \theta)`.
        x : ndarray, shape (n, d_x)
            Data points.
        eps : ndarray, shape (n, d_z)
            Pre-drawn standard normal noise, one row per data point.

        Returns
        -------
        t : ndarray, shape (n, d_out)
            Output parameters (e.g. Bernoulli logits).
        cache : ChainCache

        Raises
        ------
        ValueError
            If an argument has the wrong shape or non-finite entries.
        """
        lam, theta = self.split(eta)
        x = as_array(x, "x", shape=(None, self.d_x))
        eps = as_array(eps, "eps", shape=(x.shape[0], self.d_z))
        h, enc_cache = self.encoder.forward(lam, x)
        mu, sigma_raw = h[:, : self.d_z], h[:, self.d_z :]
        sigma = np.logaddexp(0.0, sigma_raw) + self.floor
        z = mu + sigma * eps
        t, dec_cache = self.decoder.forward(theta, z)
        return t, ChainCache(enc_cache, dec_cache, sigma_raw, eps, z)

    def backward(self, cache: ChainCache, d_t) -> ChainGrads:
        r"""Backward pass through decoder, stochastic layer and encoder.

        .. math::
            \frac{\partial L}{\partial \mu} = \frac{\partial L}{\partial z}, \qquad
            \frac{\partial L}{\partial \sigma_{raw}} = \frac{\partial L}{\partial z}
            \odot \varepsilon \odot \operatorname{sigmoid}(\sigma_{raw}).

        Parameters
        ----------
        cache : ChainCache
            From :meth:`forward`.
        d_t : ndarray, shape (n, d_out)
            :math:`\partial L / \partial t`.

        Returns
        -------
        ChainGrads
            Summed gradient w.r.t. :math:`\eta` and per-layer ``(a_bar, g)`` pairs for all
            layers.

        Raises
        ------
        ValueError
            If ``d_t`` has the wrong shape or non-finite entries.
        """
        n = cache.z.shape[0]
        d_t = as_array(d_t, "d_t", shape=(n, self.d_out))
        dec = self.decoder.backward(cache.decoder, d_t)
        d_z = dec.input
        d_h = np.concatenate([d_z, d_z * cache.eps * expit(cache.sigma_raw)], axis=1)
        enc = self.encoder.backward(cache.encoder, d_h)
        return ChainGrads(
            np.concatenate([enc.params, dec.params]), enc.pairs + dec.pairs, d_z, enc.input
        )

    def _jacobians(self, eta, x, eps) -> tuple[np.ndarray, np.ndarray]:
        """Return outputs (N, d_out) and Jacobians (N, d_out, P), by batched unit backward."""
        n, d = x.shape[0], self.d_out
        t, _ = self.forward(eta, x, eps)
        _, cache = self.forward(eta, np.repeat(x, d, axis=0), np.repeat(eps, d, axis=0))
        grads = self.backward(cache, np.tile(np.eye(d), (n, 1)))
        return t, per_example_gradients(grads.pairs).reshape(n, d, self.num_params)

    def jacobian(self, eta, x_i, eps_i) -> np.ndarray:
        r"""Dense Jacobian :math:`J = \partial t / \partial \eta` for one data point.

        Row :math:`o` is the backward pass with :math:`\partial L/\partial t = e_o` (unit
        vector); all :math:`d_{out}` backward passes run as one batch. Meant for small nets.

        Parameters
        ----------
        eta : ndarray, shape (P,)
        x_i : ndarray, shape (d_x,)
            One data point.
        eps_i : ndarray, shape (d_z,)
            Its noise.

        Returns
        -------
        ndarray, shape (d_out, P)

        Raises
        ------
        ValueError
            If an argument has the wrong shape or non-finite entries.
        """
        x_i = as_array(x_i, "x_i", shape=(self.d_x,))
        eps_i = as_array(eps_i, "eps_i", shape=(self.d_z,))
        return self._jacobians(eta, x_i[None], eps_i[None])[1][0]


# --------------------------------------------------------------------------- VP Fisher
def _check_chain(chain) -> None:
    if not isinstance(chain, Chain):
        raise TypeError(f"chain must be a Chain, got {type(chain).__name__}")


def _check_x_pred(chain: Chain, x, x_pred) -> np.ndarray:
    x_pred = as_array(x_pred, "x_pred", shape=(None, x.shape[0], chain.d_out))
    if x_pred.shape[0] < 1:
        raise ValueError("x_pred must hold at least one sample (M >= 1)")
    return x_pred


def sample_predictive(
    rng: np.random.Generator,
    chain: Chain,
    eta,
    x,
    eps,
    m: int,
    sample: Callable = bernoulli_sample,
) -> np.ndarray:
    r"""Draw :math:`x'^{(k)}_i \sim p(x' \mid t_i(\eta))`, :math:`k = 1..M`, Eq. (15).

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of randomness.
    chain : Chain
    eta : ndarray, shape (P,)
    x : ndarray, shape (n, d_x)
    eps : ndarray, shape (n, d_z)
        Noise defining :math:`\hat z_i`.
    m : int
        Number of predictive samples :math:`M` per data point.
    sample : callable ``sample(rng, t) -> x'``, default :func:`bernoulli_sample`

    Returns
    -------
    ndarray, shape (M, n, d_out)
    """
    _check_chain(chain)
    m = as_int(m, "m")
    t, _ = chain.forward(eta, x, eps)
    return np.asarray(sample(rng, np.broadcast_to(t, (m,) + t.shape)), dtype=np.float64)


def _score_backward(chain: Chain, eta, x, eps, x_pred, score):
    x = as_array(x, "x", shape=(None, chain.d_x))
    x_pred = _check_x_pred(chain, x, x_pred)
    m = x_pred.shape[0]
    t, _ = chain.forward(eta, x, eps)
    d_t = as_array(score(x_pred, t[None]), "score(x_pred, t)", shape=x_pred.shape)
    eps = as_array(eps, "eps", shape=(x.shape[0], chain.d_z))
    _, cache = chain.forward(eta, np.tile(x, (m, 1)), np.tile(eps, (m, 1)))
    return chain.backward(cache, d_t.reshape(-1, chain.d_out)), m


def vp_scores_chain(chain: Chain, eta, x, eps, x_pred, score: Callable = bernoulli_score):
    r"""Predictive scores :math:`\hat b_{ik} = \nabla_\eta \log p(x'^{(k)}_i \mid t_i)`.

    Computed by one backward pass per row with :math:`\partial L / \partial t =`
    ``score(x'_ik, t_i)``.

    Parameters
    ----------
    chain : Chain
    eta : ndarray, shape (P,)
    x : ndarray, shape (n, d_x)
    eps : ndarray, shape (n, d_z)
    x_pred : ndarray, shape (M, n, d_out)
        Pre-drawn predictive samples (see :func:`sample_predictive`).
    score : callable ``score(x_pred, t) -> ndarray``, default :func:`bernoulli_score`
        :math:`\nabla_t \log p(x' \mid t)`, broadcasting over leading axes.

    Returns
    -------
    ndarray, shape (M, n, P)

    Raises
    ------
    ValueError
        If an argument has the wrong shape or non-finite entries.
    """
    _check_chain(chain)
    grads, m = _score_backward(chain, eta, x, eps, x_pred, score)
    return per_example_gradients(grads.pairs).reshape(m, -1, chain.num_params)


def vp_fisher_mc_chain(
    chain: Chain, eta, x, eps, x_pred, score: Callable = bernoulli_score
) -> np.ndarray:
    r"""Monte Carlo variational predictive Fisher :math:`\hat F_r`, Eq. (16).

    .. math::
        \hat F_r = \frac{1}{M} \sum_{k=1}^M \sum_{i=1}^n \hat b_{ik} \hat b_{ik}^\top.

    Parameters
    ----------
    chain : Chain
    eta : ndarray, shape (P,)
    x : ndarray, shape (n, d_x)
    eps : ndarray, shape (n, d_z)
        One noise draw per data point (:math:`\hat z_i`).
    x_pred : ndarray, shape (M, n, d_out)
        Pre-drawn predictive samples.
    score : callable, default :func:`bernoulli_score`

    Returns
    -------
    ndarray, shape (P, P)
        Symmetric PSD, rank at most :math:`Mn`.

    Raises
    ------
    ValueError
        If an argument has the wrong shape or non-finite entries.

    Examples
    --------
    >>> import numpy as np
    >>> from refvpng.nn import Chain, sample_predictive, vp_fisher_mc_chain
    >>> chain = Chain.from_sizes((4, 3, 2), (1, 3, 4))
    >>> rng = np.random.default_rng(1)
    >>> eta = chain.init(rng)
    >>> x, eps = (rng.random((5, 4)) < 0.5) * 1.0, rng.standard_normal((5, 1))
    >>> x_pred = sample_predictive(rng, chain, eta, x, eps, m=3)
    >>> F = vp_fisher_mc_chain(chain, eta, x, eps, x_pred)
    >>> F.shape, bool(np.allclose(F, F.T))
    ((45, 45), True)
    """
    b = vp_scores_chain(chain, eta, x, eps, x_pred, score)
    m = b.shape[0]
    b = b.reshape(-1, b.shape[-1])
    return (b.T @ b) / m


def vp_kfac_pairs_chain(chain: Chain, eta, x, eps, x_pred, score: Callable = bernoulli_score):
    r"""Per-layer ``(a_bar, g)`` pairs and row weights for K-FAC on :math:`\hat F_r`.

    The rows are the :math:`Mn` backward passes of Eq. (16) (row :math:`k n + i` is sample
    :math:`k` of data point :math:`i`), each with weight :math:`1/M`, so that
    :func:`refvpng.curvature.kfac.kfac_factors` gives Kronecker factors on the scale of
    :math:`\hat F_r` (sum over data points, mean over samples).

    Parameters
    ----------
    chain : Chain
    eta : ndarray, shape (P,)
    x : ndarray, shape (n, d_x)
    eps : ndarray, shape (n, d_z)
    x_pred : ndarray, shape (M, n, d_out)
    score : callable, default :func:`bernoulli_score`

    Returns
    -------
    pairs : tuple of (ndarray, ndarray)
        Chain-order ``(a_bar_l, g_l)``, shapes ``(M n, d_{l-1} + 1)`` and ``(M n, d_l)``.
    weights : ndarray, shape (M n,)
        All equal to :math:`1/M`.
    """
    _check_chain(chain)
    grads, m = _score_backward(chain, eta, x, eps, x_pred, score)
    rows = grads.pairs[0][0].shape[0]
    return grads.pairs, np.full(rows, 1.0 / m)


def vp_fisher_exact_chain(
    chain: Chain, eta, x, eps, output_fisher: Callable = bernoulli_output_fisher
) -> np.ndarray:
    r"""Exact (in :math:`x'`) variational predictive Fisher of the chain, dense.

    .. math::
        F_r = \sum_{i=1}^n \frac{1}{S} \sum_{s=1}^S J_{is}^\top \Lambda(t_{is}) J_{is},
        \qquad J_{is} = \frac{\partial t(x_i, \varepsilon_{is}; \eta)}{\partial \eta},

    Section 3.3 of the paper with the expectation over :math:`\varepsilon` replaced by the
    :math:`S` given noise draws. Meant for small networks (memory :math:`O(S n\, d_{out} P)`).

    Parameters
    ----------
    chain : Chain
    eta : ndarray, shape (P,)
    x : ndarray, shape (n, d_x)
    eps : ndarray, shape (n, d_z) or (S, n, d_z)
        Noise; a 2-D array means :math:`S = 1`.
    output_fisher : callable, default :func:`bernoulli_output_fisher`
        ``output_fisher(t)`` for ``t`` of shape ``(N, d_out)`` returns the diagonal of
        :math:`\Lambda`, shape ``(N, d_out)``, or full matrices, shape ``(N, d_out, d_out)``
        or ``(d_out, d_out)``.

    Returns
    -------
    ndarray, shape (P, P)
        Symmetric PSD.

    Raises
    ------
    ValueError
        If an argument has the wrong shape or non-finite entries.

    Examples
    --------
    >>> import numpy as np
    >>> from refvpng.nn import Chain, vp_fisher_exact_chain
    >>> chain = Chain.from_sizes((4, 2), (1, 4))
    >>> rng = np.random.default_rng(2)
    >>> eta = chain.init(rng)
    >>> F = vp_fisher_exact_chain(chain, eta, rng.random((3, 4)), rng.standard_normal((3, 1)))
    >>> F.shape, bool(np.linalg.eigvalsh(F).min() > -1e-12)
    ((18, 18), True)
    """
    _check_chain(chain)
    x = as_array(x, "x", shape=(None, chain.d_x))
    eps = as_array(eps, "eps", ndim=(2, 3))
    if eps.ndim == 2:
        eps = eps[None]
    if eps.shape[1:] != (x.shape[0], chain.d_z):
        raise ValueError(
            f"eps must have shape ({x.shape[0]}, {chain.d_z}) or (S, {x.shape[0]}, {chain.d_z}),"
            f" got {eps.shape}"
        )
    s = eps.shape[0]
    t, jac = chain._jacobians(eta, np.tile(x, (s, 1)), eps.reshape(-1, chain.d_z))
    lam = as_array(output_fisher(t), "output_fisher(t)", ndim=(2, 3))
    if lam.shape == t.shape:
        fisher = np.einsum("nop,no,noq->pq", jac, lam, jac, optimize=True)
    elif lam.shape in ((chain.d_out, chain.d_out), t.shape + (chain.d_out,)):
        lam = np.broadcast_to(lam, t.shape + (chain.d_out,))
        fisher = np.einsum("nop,noc,ncq->pq", jac, lam, jac, optimize=True)
    else:
        raise ValueError(
            f"output_fisher(t) must have shape {t.shape}, {t.shape + (chain.d_out,)} or "
            f"{(chain.d_out, chain.d_out)}, got {lam.shape}"
        )
    fisher = fisher / s
    return 0.5 * (fisher + fisher.T)
