r"""Two-step natural gradient: alternate natural-gradient steps on the encoder and on the decoder.

The project note on latent-variable Fishers proposes to optimise the recognition (encoder,
:math:`\phi`) and generative (decoder, :math:`\theta`) parameters of a VAE separately, each with
the Fisher that does see it:

(a) **encoder step(s)**, :math:`\theta` fixed: the q-natural gradient of the ELBO in
    :math:`\phi` with the Fisher of :math:`q(z \mid x; \phi)` (Eq 2 of Tang & Ranganath,
    :func:`refvpng.curvature.fisher.q_fisher`),

    .. math::
        \phi \leftarrow \phi + \alpha_\phi\,(F_q(\phi) + \mu_\phi I)^{-1}\nabla_\phi\mathcal L;

(b) **decoder step(s)**, :math:`\phi` fixed: the natural gradient in :math:`\theta` with the
    Fisher of :math:`p(x \mid z; \theta)` at :math:`z \sim q(z \mid x; \phi)`,

    .. math::
        F_\theta = \sum_i E_{q(z_i \mid x_i;\phi)}[J_{\theta,i}^\top\Lambda J_{\theta,i}],
        \qquad \theta \leftarrow \theta + \alpha_\theta\,(F_\theta + \mu_\theta I)^{-1}
        \nabla_\theta\mathcal L

    (:func:`refvpng.curvature.latent_fisher.decoder_fisher`, the :math:`\theta\theta` block of
    the variational predictive Fisher; closed form for the linear VAE:
    :func:`refvpng.models.linear_vae.decoder_fisher_closed`).

The marginal Fisher cannot be used for (a): :math:`\phi` does not enter :math:`p(x)`, its rows
and columns are zero (:func:`refvpng.curvature.metric_check.check_metric`).

Structure
---------
:func:`two_step` is an ordinary :class:`~refvpng.optim.base.GradientTransformation`. It owns two
member optimisers, one on the encoder block ``params[:n_encoder]`` and one on the decoder block
``params[n_encoder:]`` (each sees only its sub-vector, e.g. ``chain(natural_direction(mu),
scale(lr))``), and a step counter. Each ``update`` call is **one inner step**: the first
``encoder_steps`` calls of a cycle update the encoder (the decoder's update is zero), the next
``decoder_steps`` the decoder, and so on. The state :class:`TwoStepState` is a NamedTuple of the
counter and both member states, so :func:`refvpng.optim.loop.run` checkpoints and resumes it bit
for bit.

The curvature arrives, as for every natural direction, through the ``curvature=`` keyword of
``update``, here as a :class:`BlockCurvature` whose entries may be *callables*: only the block of
the current phase is evaluated, so the loop's ``curvature_fn`` (:func:`two_step_curvature`) can
offer both without paying for both.

Explicit matrices only: this is the reference for small models. The two-step natural gradient of
the MLP VAE (K-FAC factors of the decoder Fisher, Section 5.2 of Tang & Ranganath) is built in the
VAE experiment, not here.

References
----------
Project note ``papers/000`` (two-step natural gradient for encoder and decoder).
S. Tang and R. Ranganath, "The Variational Predictive Natural Gradient", ICML 2019 (Eq 2, Eq 17,
Algorithm 1).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from refvpng._checks import as_array, as_int, as_positive_scalar
from refvpng.optim.base import GradientTransformation, chain, check_grads, check_params
from refvpng.optim.directions import natural_direction
from refvpng.optim.stepsize import adam, rmsprop, scale

if TYPE_CHECKING:
    from refvpng.models.latent import LatentModel

__all__ = [
    "BlockCurvature",
    "TwoStepState",
    "current_phase",
    "make_two_step",
    "two_step",
    "two_step_curvature",
]

PHASES = ("encoder", "decoder")


class TwoStepState(NamedTuple):
    """State of :func:`two_step`.

    Attributes
    ----------
    count : int
        Number of inner steps done (encoder and decoder steps together).
    encoder : NamedTuple or tuple
        State of the encoder optimiser (on ``params[:n_encoder]``).
    decoder : NamedTuple or tuple
        State of the decoder optimiser (on ``params[n_encoder:]``).
    """

    count: int  # type: ignore[assignment]  # the field shadows tuple.count
    encoder: Any
    decoder: Any


class BlockCurvature(NamedTuple):
    r"""Curvature of the two blocks, passed to :func:`two_step` as ``curvature=``.

    Each entry is a dense matrix, an operator with ``solve(v, damping)``, or a callable with no
    argument returning one of these (evaluated only in its phase).

    Attributes
    ----------
    encoder : ndarray, operator or callable
        :math:`F_q`, shape ``(n_encoder, n_encoder)``.
    decoder : ndarray, operator or callable
        :math:`F_\theta`, shape ``(P - n_encoder, P - n_encoder)``.
    """

    encoder: Any
    decoder: Any


def _cycle(encoder_steps: int, decoder_steps: int):
    encoder_steps = as_int(encoder_steps, "encoder_steps")
    decoder_steps = as_int(decoder_steps, "decoder_steps")
    return encoder_steps, decoder_steps


def current_phase(state: TwoStepState, encoder_steps: int = 1, decoder_steps: int = 1) -> str:
    """Return the phase (``"encoder"`` or ``"decoder"``) of the next ``update`` call.

    Parameters
    ----------
    state : TwoStepState
    encoder_steps, decoder_steps : int, default 1
        Inner step counts of a cycle, as given to :func:`two_step`.

    Returns
    -------
    str

    Examples
    --------
    >>> [current_phase(TwoStepState(c, (), ()), 2, 1) for c in range(4)]
    ['encoder', 'encoder', 'decoder', 'encoder']
    """
    ne, nd = _cycle(encoder_steps, decoder_steps)
    if not isinstance(state, TwoStepState):
        raise TypeError(f"state must be a TwoStepState, got {type(state).__name__}")
    return "encoder" if int(state.count) % (ne + nd) < ne else "decoder"


def two_step(
    encoder_opt: GradientTransformation,
    decoder_opt: GradientTransformation,
    n_encoder: int,
    *,
    encoder_steps: int = 1,
    decoder_steps: int = 1,
    name: str = "curvature",
) -> GradientTransformation:
    r"""Alternate ``encoder_steps`` encoder updates and ``decoder_steps`` decoder updates.

    One ``update`` call is one inner step on one block (module docstring): in the encoder phase

    .. math::
        \Delta = \big(\mathrm{encoder\_opt}(g_{:n_e};\ F = F_q),\ 0\big),

    in the decoder phase :math:`\Delta = (0,\ \mathrm{decoder\_opt}(g_{n_e:};\ F = F_\theta))`,
    each member receiving its block of ``grads`` and ``params``, the curvature of its block as
    ``curvature=`` (taken from the :class:`BlockCurvature` passed under ``name``) and every other
    keyword unchanged.

    Parameters
    ----------
    encoder_opt, decoder_opt : GradientTransformation
        Optimisers of the two blocks, e.g. ``chain(natural_direction(mu), scale(lr))`` (see
        :func:`make_two_step`). A member that ignores ``curvature`` (vanilla gradient, Adam) is
        allowed.
    n_encoder : int
        Length of the encoder block, the first entries of the parameter vector
        (``model.n_lambda`` for the packed :math:`\eta = (\lambda, \theta)`).
    encoder_steps, decoder_steps : int, default 1
        Inner steps per cycle on each block (``>= 1``).
    name : str, default "curvature"
        Keyword under which ``update`` expects the :class:`BlockCurvature`.

    Returns
    -------
    GradientTransformation
        With state :class:`TwoStepState`.

    Raises
    ------
    ValueError
        If ``n_encoder`` or a step count is < 1, or (from ``init``) ``n_encoder`` is not smaller
        than the number of parameters; from ``update``, if the curvature is missing or not a
        :class:`BlockCurvature`, or whatever the members raise.
    TypeError
        If a member is not a :class:`GradientTransformation`.

    Examples
    --------
    Encoder block ``[0]`` and decoder block ``[1, 2]``; unit steps with diagonal Fishers:

    >>> from refvpng.optim import scale
    >>> opt = two_step(chain(natural_direction(), scale(1.0)),
    ...                chain(natural_direction(), scale(1.0)), n_encoder=1)
    >>> params = np.zeros(3)
    >>> state = opt.init(params)
    >>> curv = BlockCurvature(encoder=np.array([[2.0]]), decoder=lambda: np.diag([4.0, 1.0]))
    >>> u, state = opt.update(np.array([2.0, 4.0, 1.0]), state, params, curvature=curv)
    >>> u
    array([1., 0., 0.])
    >>> u, state = opt.update(np.array([2.0, 4.0, 1.0]), state, params, curvature=curv)
    >>> u, state.count
    (array([0., 1., 1.]), 2)
    """
    for label, t in (("encoder_opt", encoder_opt), ("decoder_opt", decoder_opt)):
        if not isinstance(t, GradientTransformation):
            raise TypeError(f"{label} must be a GradientTransformation, got {type(t).__name__}")
    ne = as_int(n_encoder, "n_encoder")
    n_enc_steps, n_dec_steps = _cycle(encoder_steps, decoder_steps)
    if not isinstance(name, str) or not name:
        raise TypeError("name must be a non-empty string")

    def _split(p):
        if p.shape[0] <= ne:
            raise ValueError(f"n_encoder = {ne} must be smaller than the number of parameters {p.shape[0]}")
        return p[:ne], p[ne:]

    def init(params) -> TwoStepState:
        p = check_params(params)
        pe, pd = _split(p)
        return TwoStepState(count=0, encoder=encoder_opt.init(pe), decoder=decoder_opt.init(pd))

    def update(grads, state, params=None, **extra):
        if not isinstance(state, TwoStepState):
            raise ValueError(f"state must be a TwoStepState (from init), got {type(state).__name__}")
        g = check_grads(grads, params)
        ge, gd = _split(g)
        pe, pd = (None, None) if params is None else _split(check_params(params))
        curv = extra.pop(name, None)
        if curv is not None and not isinstance(curv, BlockCurvature):
            raise ValueError(
                f"{name} must be a BlockCurvature(encoder=..., decoder=...), got {type(curv).__name__}"
            )
        phase = current_phase(state, n_enc_steps, n_dec_steps)
        kw = dict(extra)
        if curv is not None:
            c = getattr(curv, phase)
            kw["curvature"] = c() if callable(c) and not hasattr(c, "solve") else c
        out = np.zeros_like(g)
        if phase == "encoder":
            u, s = encoder_opt.update(ge, state.encoder, pe, **kw)
            out[:ne] = as_array(u, "encoder update", shape=ge.shape)
            new = TwoStepState(int(state.count) + 1, s, state.decoder)
        else:
            u, s = decoder_opt.update(gd, state.decoder, pd, **kw)
            out[ne:] = as_array(u, "decoder update", shape=gd.shape)
            new = TwoStepState(int(state.count) + 1, state.encoder, s)
        return out, new

    return GradientTransformation(init, update)


def _rule(rule: str, lr: float, prefix: str = "") -> GradientTransformation:
    lr = as_positive_scalar(lr, f"{prefix}lr")
    if rule == "fixed":
        return scale(lr)
    if rule == "rmsprop":
        return rmsprop(lr)
    if rule == "adam":
        return adam(lr)
    raise ValueError(f"{prefix}rule must be one of ('fixed', 'rmsprop', 'adam'), got {rule!r}")


def make_two_step(
    n_encoder: int,
    *,
    encoder_lr: float = 1.0,
    decoder_lr: float = 1.0,
    encoder_damping: float = 0.0,
    decoder_damping: float = 0.0,
    encoder_rule: str = "fixed",
    decoder_rule: str = "fixed",
    encoder_steps: int = 1,
    decoder_steps: int = 1,
) -> GradientTransformation:
    r"""Build the two-step natural gradient from damped natural directions and step-size rules.

    ``two_step(chain(natural_direction(encoder_damping), rule(encoder_lr)),
    chain(natural_direction(decoder_damping), rule(decoder_lr)), n_encoder, ...)``: each block
    takes :math:`\alpha\,(F + \mu I)^{-1} g` (Eq 17 form, :math:`\mu` added to the summed
    Fisher), the step size from ``"fixed"``, ``"rmsprop"`` or ``"adam"`` applied to the direction.

    Parameters
    ----------
    n_encoder : int
        Length of the encoder block (``model.n_lambda``).
    encoder_lr, decoder_lr : float, default 1.0
        Step sizes (a unit natural step is Newton's step where the Fisher equals the negative
        Hessian, e.g. the linear VAE's decoder).
    encoder_damping, decoder_damping : float, default 0.0
        :math:`\mu_\phi, \mu_\theta \ge 0`.
    encoder_rule, decoder_rule : {"fixed", "rmsprop", "adam"}, default "fixed"
    encoder_steps, decoder_steps : int, default 1
        Inner steps per cycle.

    Returns
    -------
    GradientTransformation
        With state :class:`TwoStepState`.

    Raises
    ------
    ValueError
        On an unknown rule or invalid hyperparameters (messages name the argument).

    Examples
    --------
    >>> opt = make_two_step(2, encoder_lr=0.5, decoder_damping=1e-6, encoder_steps=2)
    >>> state = opt.init(np.zeros(5))
    >>> type(state).__name__, state.count
    ('TwoStepState', 0)
    """
    enc = chain(natural_direction(encoder_damping), _rule(encoder_rule, encoder_lr, "encoder_"))
    dec = chain(natural_direction(decoder_damping), _rule(decoder_rule, decoder_lr, "decoder_"))
    return two_step(enc, dec, n_encoder, encoder_steps=encoder_steps, decoder_steps=decoder_steps)


def two_step_curvature(
    model: LatentModel, x: ArrayLike, *, n_samples: int = 1, cov: ArrayLike | None = None
) -> Callable[[np.ndarray, np.random.Generator], BlockCurvature]:
    r"""Return a ``curvature_fn`` for :func:`refvpng.optim.loop.run` that feeds :func:`two_step`.

    Returns ``curvature_fn(params, rng) -> BlockCurvature`` with lazily evaluated entries:

    - ``encoder``: the exact q-Fisher :math:`F_q(\phi)` (Eq 2,
      :func:`refvpng.curvature.fisher.q_fisher`);
    - ``decoder``: :math:`F_\theta` of :func:`refvpng.curvature.latent_fisher.decoder_fisher`
      with ``n_samples`` noise draws :math:`\varepsilon \sim N(0, I)` from ``rng``.

    Both are built by autograd, generic for small models (explicit matrices).

    Parameters
    ----------
    model : LatentModel
    x : array_like, shape (n, d)
    n_samples : int, default 1
        Monte Carlo samples ``S`` of the decoder Fisher.
    cov : ndarray, shape (n, c), optional

    Returns
    -------
    callable
        ``(params, rng) -> BlockCurvature``.
    """
    from refvpng.curvature.fisher import q_fisher
    from refvpng.curvature.latent_fisher import decoder_fisher
    from refvpng.models.latent import check_data, check_model, draw_eps

    check_model(model)
    x, cov = check_data(model, x, cov)
    n_samples = as_int(n_samples, "n_samples")

    def curvature_fn(params, rng):
        params = check_params(params)
        lam = params[: model.n_lambda]

        def enc():
            return q_fisher(model, lam, x)

        def dec():
            eps = draw_eps(rng, model, x.shape[0], n_samples)
            return decoder_fisher(model, params, x, eps, cov)

        return BlockCurvature(encoder=enc, decoder=dec)

    return curvature_fn
