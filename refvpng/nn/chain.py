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

As a latent-variable model
--------------------------
:func:`chain_model` turns a chain and any likelihood family of :mod:`refvpng.models.likelihoods`
into a :class:`~refvpng.models.latent.LatentModel` (local latents, prior :math:`N(0, I)`, the
family ``MeanFieldGaussian("softplus", floor=chain.floor)``), so that every estimator of
:mod:`refvpng.curvature` and :mod:`refvpng.elbo` runs on it. Its ``encode``/``decode`` are written
with ``autograd.numpy`` (:meth:`refvpng.nn.MLP.apply`), which is the reference; the explicit
backward pass of this module supplies the fast-path hooks (Jacobian rows, the score rows of
Eq 16, K-FAC ``(a_bar, g)`` pairs, the ELBO gradient), each tested against autograd.

References
----------
.. [1] Y. Tang and R. Ranganath, "The Variational Predictive Natural Gradient", ICML 2019,
   Sections 3.3, 4 (Eq. 16) and 5.2.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import expit

from refvpng._checks import as_array, as_nonneg_scalar, as_positive_scalar, finite_output
from refvpng.models.latent import LatentModel, ModelHooks
from refvpng.models.likelihoods import Bernoulli, Gaussian, Likelihood, Poisson
from refvpng.models.variational import MeanFieldGaussian
from refvpng.nn.mlp import MLP, MLPCache, per_example_gradients

__all__ = ["Chain", "ChainCache", "ChainGrads", "chain_model"]


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
        encoder_sizes: Sequence[int],
        decoder_sizes: Sequence[int],
        activation: str = "relu",
        floor: float = 1e-4,
        decoder_bias: bool = True,
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
        decoder_bias : bool, default True
            ``False`` for a decoder without biases (see :class:`refvpng.nn.MLP`).

        Returns
        -------
        Chain

        Raises
        ------
        TypeError, ValueError
            Naming ``encoder_sizes`` or ``decoder_sizes`` if one is not a sequence of at least
            two positive ints; as :class:`Chain` for mismatched widths.
        """
        mlps = []
        for name, sizes in (("encoder_sizes", encoder_sizes), ("decoder_sizes", decoder_sizes)):
            try:
                mlps.append(MLP(sizes, activation, bias=name == "encoder_sizes" or decoder_bias))
            except (TypeError, ValueError) as exc:
                msg = str(exc)
                if not msg.startswith("sizes"):
                    raise
                raise type(exc)(name + msg[len("sizes") :]) from None
        return cls(mlps[0], mlps[1], floor)

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
        r"""Shapes :math:`(d_l, d_{l-1} + 1)` (no bias: :math:`d_{l-1}` columns) of all :math:`\bar W_l`."""
        return self.encoder.layer_shapes + self.decoder.layer_shapes

    def split(self, eta: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
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

    @finite_output
    def forward(self, eta: ArrayLike, x: ArrayLike, eps: ArrayLike) -> tuple[np.ndarray, ChainCache]:
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
        FloatingPointError
            If the outputs or the cached activations overflow float64 (extreme finite inputs).
        """
        lam, theta = self.split(eta)
        x = as_array(x, "x", shape=(None, self.d_x))
        eps = as_array(eps, "eps", ndim=2)
        if eps.shape != (x.shape[0], self.d_z):
            raise ValueError(
                f"eps must have shape ({x.shape[0]}, {self.d_z}) (one row per row of x), got {eps.shape}"
            )
        h, enc_cache = self.encoder.forward(lam, x)
        mu, sigma_raw = h[:, : self.d_z], h[:, self.d_z :]
        sigma = np.logaddexp(0.0, sigma_raw) + self.floor
        z = mu + sigma * eps
        t, dec_cache = self.decoder.forward(theta, z)
        return t, ChainCache(enc_cache, dec_cache, sigma_raw, eps, z)

    def backward(self, cache: ChainCache, d_t: ArrayLike, d_enc: ArrayLike | None = None) -> ChainGrads:
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
        d_enc : ndarray, shape (n, 2 d_z), optional
            A further gradient on the encoder outputs :math:`(\mu, \sigma_{raw})` (for example
            that of a KL term), added before the encoder's backward pass.

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
        if not isinstance(cache, ChainCache):
            raise TypeError(f"cache must be the ChainCache of Chain.forward, got {type(cache).__name__}")
        n = cache.z.shape[0]
        d_t = as_array(d_t, "d_t", shape=(n, self.d_out))
        dec = self.decoder.backward(cache.decoder, d_t)
        d_z = dec.input
        d_h = np.concatenate([d_z, d_z * cache.eps * expit(cache.sigma_raw)], axis=1)
        if d_enc is not None:
            d_h = d_h + as_array(d_enc, "d_enc", shape=(n, 2 * self.d_z))
        enc = self.encoder.backward(cache.encoder, d_h)
        return ChainGrads(np.concatenate([enc.params, dec.params]), enc.pairs + dec.pairs, d_z, enc.input)

    def _jacobians(self, eta, x, eps) -> tuple[np.ndarray, np.ndarray]:
        """Return outputs (N, d_out) and Jacobians (N, d_out, P), by batched unit backward."""
        n, d = x.shape[0], self.d_out
        t, _ = self.forward(eta, x, eps)
        _, cache = self.forward(eta, np.repeat(x, d, axis=0), np.repeat(eps, d, axis=0))
        grads = self.backward(cache, np.tile(np.eye(d), (n, 1)))
        return t, per_example_gradients(grads.pairs).reshape(n, d, self.num_params)

    @finite_output
    def jacobian(self, eta: ArrayLike, x_i: ArrayLike, eps_i: ArrayLike) -> np.ndarray:
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


# --------------------------------------------------------------------------- LatentModel
def _rows(x, eps, m: int = 1):
    """Tile ``x`` (n, d) and ``eps`` (S, n, dz) to the ``S m n`` rows ``(s, k, i)``, i fastest."""
    s, n, dz = eps.shape
    x_rows = np.tile(x, (s * m, 1))
    eps_rows = np.broadcast_to(eps[:, None], (s, m, n, dz)).reshape(-1, dz)
    return x_rows, eps_rows


def _repeat_cache(cache: ChainCache, k: int) -> ChainCache:
    """The cache with every row repeated ``k`` times (row ``r`` becomes rows ``r k`` to ``r k + k - 1``)."""

    def rep(c: MLPCache) -> MLPCache:
        return c._replace(
            a_bar=tuple(np.repeat(a, k, axis=0) for a in c.a_bar),
            s=tuple(np.repeat(v, k, axis=0) for v in c.s),
        )

    return ChainCache(
        rep(cache.encoder),
        rep(cache.decoder),
        *(np.repeat(v, k, axis=0) for v in (cache.sigma_raw, cache.eps, cache.z)),
    )


def chain_model(chain: Chain, likelihood: Likelihood, *, prior_std: float = 1.0) -> LatentModel:
    r"""The chain as a :class:`~refvpng.models.latent.LatentModel` with explicit-backward hooks.

    .. math::
        p(z_i) = N(0, \tau^2 I), \quad
        q(z_i \mid x_i; \lambda) = N(\mu_i, \operatorname{diag}\sigma_i^2), \quad
        (\mu_i, \sigma_{raw,i}) = \mathrm{encoder}(x_i; \lambda), \quad
        \sigma_i = \operatorname{softplus}(\sigma_{raw,i}) + \sigma_{floor},

    :math:`p(x_i \mid z_i; \theta)` the likelihood family on :math:`t_i =
    \mathrm{decoder}(z_i; \theta)` (Section 5.2 with Bernoulli logits). :math:`\eta =
    (\lambda, \theta)` is packed as in :mod:`refvpng.nn.mlp`, encoder first.

    Parameters
    ----------
    chain : Chain
    likelihood : Gaussian, Bernoulli or Poisson
        A family of :mod:`refvpng.models.likelihoods` whose output width is ``chain.d_out``.
    prior_std : float, default 1.0
        :math:`\tau`.

    Returns
    -------
    LatentModel
        Local latents, ``obs_dim = chain.d_out`` (the observations must live in the decoder's
        output space, which is also the encoder's input space: ``chain.d_x == chain.d_out``),
        hooks ``jacobian``, ``predictive_scores``, ``kfac_pairs``, ``elbo_value_and_grad``,
        ``linearize`` (:func:`refvpng.nn.linearize.chain_linearize`) and ``layer_pairs`` (the
        dense :math:`F_r` and Eq 16 at :math:`n P^2` flops, through
        :func:`refvpng.curvature.kron_fisher.kron_outer_sum`).

    Raises
    ------
    TypeError
        If ``chain`` is not a :class:`Chain` or ``likelihood`` not a refvpng likelihood family.
    ValueError
        If the widths do not match.

    Examples
    --------
    >>> import numpy as np
    >>> from refvpng.models import Bernoulli
    >>> from refvpng.models.latent import draw_eps
    >>> from refvpng.curvature.fisher import vp_fisher_exact
    >>> chain = Chain.from_sizes((4, 3, 2), (1, 3, 4))
    >>> model = chain_model(chain, Bernoulli())
    >>> rng = np.random.default_rng(0)
    >>> eta, x = chain.init(rng), (rng.random((5, 4)) < 0.5) * 1.0
    >>> vp_fisher_exact(model, eta, x, draw_eps(rng, model, n=5, n_samples=2)).shape
    (45, 45)
    """
    if not isinstance(chain, Chain):
        raise TypeError(f"chain must be a Chain, got {type(chain).__name__}")
    if not isinstance(likelihood, (Gaussian, Bernoulli, Poisson)) and not all(
        hasattr(likelihood, a) for a in ("log_prob", "score", "sample", "output_fisher", "whiten")
    ):
        raise TypeError(
            "likelihood must be a refvpng likelihood family (log_prob, score, sample, "
            f"output_fisher, whiten), got {type(likelihood).__name__}"
        )
    if chain.d_x != chain.d_out:
        raise ValueError(
            f"chain must map observations to their own space: d_x = {chain.d_x} but d_out = {chain.d_out}"
        )
    dim = getattr(likelihood, "dim", chain.d_out)
    if dim != chain.d_out:
        raise ValueError(f"likelihood has output width {dim}, the chain {chain.d_out}")
    tau = as_positive_scalar(prior_std, "prior_std")
    family = MeanFieldGaussian("softplus", floor=chain.floor)
    dz, p_enc = chain.d_z, chain.encoder.num_params

    def encode(lam, x):
        h = chain.encoder.apply(lam, x)
        return h[..., :dz], h[..., dz:]

    def decode(theta, z, cov):
        return chain.decoder.apply(theta, z)

    def jacobian(eta, x, eps, cov):
        s, n = eps.shape[:2]
        t, jac = chain._jacobians(eta, np.tile(x, (s, 1)), eps.reshape(-1, dz))
        return t.reshape(s, n, -1), jac.reshape(s, n, chain.d_out, -1)

    def _score_backward(eta, x, eps, x_pred):
        s, m, n, d = x_pred.shape
        x_rows, eps_rows = _rows(x, eps, m)
        t, cache = chain.forward(eta, x_rows, eps_rows)
        d_t = likelihood.score(x_pred.reshape(-1, d), t)
        return chain.backward(cache, d_t), s * m

    def predictive_scores(eta, x, eps, x_pred, cov):
        grads, _ = _score_backward(eta, x, eps, x_pred)
        return per_example_gradients(grads.pairs).reshape(x_pred.shape[:3] + (-1,))

    def layer_pairs(eta, x, eps, cov, seed):
        s, n = eps.shape[:2]
        t, cache = chain.forward(eta, *_rows(x, eps))  # rows (s, i), i fastest
        d_t = as_array(seed(t.reshape(s, n, -1)), "layer_pairs seed output", ndim=4)
        if d_t.shape[:2] != (s, n) or d_t.shape[3] != chain.d_out:
            raise ValueError(
                f"layer_pairs seed must return shape ({s}, {n}, K, {chain.d_out}), got {d_t.shape}"
            )
        k = d_t.shape[2]
        grads = chain.backward(_repeat_cache(cache, k), d_t.reshape(-1, chain.d_out))
        a_bars = tuple(a.reshape(s, n, -1) for a in cache.encoder.a_bar + cache.decoder.a_bar)
        return a_bars, tuple(g.reshape(s, n, k, -1) for _, g in grads.pairs)

    def kfac_pairs(eta, x, eps, x_pred, cov):
        grads, sm = _score_backward(eta, x, eps, x_pred)
        return grads.pairs, np.full(grads.pairs[0][0].shape[0], 1.0 / sm)

    def linearize(eta, x, eps, cov):
        from refvpng.nn.linearize import chain_linearize

        return chain_linearize(chain, eta, x, eps)

    def elbo_value_and_grad(eta, x, eps, cov):
        s, n = eps.shape[:2]
        x_rows, eps_rows = _rows(x, eps)
        t, cache = chain.forward(eta, x_rows, eps_rows)
        ll = np.sum(likelihood.log_prob(x_rows, t)) / s
        # KL(q || N(0, tau^2 I)) and its gradient in (mu, sigma_raw), per data point.
        h, _ = chain.encoder.forward(eta[:p_enc], x)
        mu, raw = h[:, :dz], h[:, dz:]
        kl = float(np.sum(family.kl_to_normal(mu, raw, tau)))
        sigma = np.asarray(family.std(raw))
        d_kl = np.concatenate([mu / tau**2, (sigma / tau**2 - 1.0 / sigma) * expit(raw)], axis=1)
        d_enc = np.tile(-d_kl / s, (s, 1))
        grads = chain.backward(cache, likelihood.score(x_rows, t) / s, d_enc)
        return ll - kl, grads.eta

    return LatentModel(
        name=f"chain(enc={chain.encoder.sizes}, dec={chain.decoder.sizes}, {type(likelihood).__name__})",
        n_lambda=p_enc,
        n_theta=chain.decoder.num_params,
        latent_dim=dz,
        obs_dim=chain.d_out,
        local=True,
        family=family,
        likelihood=likelihood,
        encode=encode,
        decode=decode,
        prior_std=tau,
        hooks=ModelHooks(
            jacobian, predictive_scores, kfac_pairs, elbo_value_and_grad, layer_pairs, linearize
        ),
    )
