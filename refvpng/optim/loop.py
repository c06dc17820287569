"""Algorithm 1 of Tang & Ranganath (2019): the optimisation loop, and optimiser factories.

Per-step randomness. Step ``k`` of a run with root seed ``seed`` draws its noise from two
generators that depend on ``(seed, k)`` only (:func:`step_rngs`):

.. code-block:: python

    ss = np.random.SeedSequence(seed, spawn_key=(k,))  # == SeedSequence(seed).spawn(k + 1)[k]
    ss_objective, ss_curvature = ss.spawn(2)           # spawn keys (k, 0) and (k, 1)
    key_objective = np.random.default_rng(ss_objective)
    key_curvature = np.random.default_rng(ss_curvature)

So the noise of a step does not depend on how many numbers earlier steps consumed, and a run
resumed at step ``k`` (from a checkpoint) draws exactly the noise of an uninterrupted run: with the
optimiser state restored bit for bit, the trajectories are identical.
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, cast

import numpy as np
from numpy.typing import ArrayLike

from refvpng._checks import as_int
from refvpng.optim.base import GradientTransformation, apply_updates, chain, check_params
from refvpng.optim.checkpoint import load_checkpoint, save_checkpoint
from refvpng.optim.damping import lm_damping
from refvpng.optim.directions import identity_direction, natural_direction
from refvpng.optim.stepsize import adam, rmsprop, scale

__all__ = ["RunResult", "make_optimizer", "resume", "run", "step_rngs"]

DIRECTIONS = ("gradient", "q_natural", "vpng")
RULES = ("fixed", "rmsprop", "adam")


def make_optimizer(
    direction: str,
    rule: str,
    lr: float,
    damping: float = 0.0,
    *,
    index: Any = None,
    adapt_damping: bool = False,
    period: int = 5,
    decay: float = 0.9,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    name: str = "curvature",
) -> GradientTransformation:
    r"""Build one of the paper's optimisers: a direction chained with a step-size rule.

    ``chain(direction, rule)``, optionally wrapped in
    :func:`~refvpng.optim.damping.lm_damping`:

    ===============  ==========================================================================
    ``direction``    transformation
    ===============  ==========================================================================
    ``"gradient"``   :func:`~refvpng.optim.directions.identity_direction` (vanilla gradient)
    ``"q_natural"``  :func:`~refvpng.optim.directions.natural_direction` with ``F = F_q``,
                     usually with ``index`` the λ block (θ takes the vanilla gradient)
    ``"vpng"``       :func:`~refvpng.optim.directions.natural_direction` with
                     :math:`F = \hat F_r`: Eq. 17, :math:`(\hat F_r + \mu I)^{-1}\nabla\mathcal L`
    ===============  ==========================================================================

    and ``rule`` one of ``"fixed"`` (:func:`~refvpng.optim.stepsize.scale`), ``"rmsprop"``
    (:func:`~refvpng.optim.stepsize.rmsprop`) or ``"adam"``
    (:func:`~refvpng.optim.stepsize.adam`), applied to the direction. The natural
    directions read the curvature from the keyword ``curvature=`` (``name``) of ``update``, which
    :func:`run` fills from its ``curvature_fn``.

    Parameters
    ----------
    direction : {"gradient", "q_natural", "vpng"}
        The direction.
    rule : {"fixed", "rmsprop", "adam"}
        The step-size rule.
    lr : float
        Learning rate, finite and > 0.
    damping : float, default 0.0
        μ of Eq. 17 (the initial μ when ``adapt_damping``). The Monte Carlo :math:`\hat F_r` has
        rank at most ``M n`` (Section 4), so the VPNG usually needs ``damping > 0``.
    index : slice, array_like of int or bool, optional
        Block the natural direction applies to (natural directions only).
    adapt_damping : bool, default False
        Adapt μ by the Levenberg–Marquardt rule (:func:`~refvpng.optim.damping.lm_damping`,
        period ``period``); ``update`` then needs ``value=``.
    period : int, default 5
        LM adjustment period :math:`T_1`.
    decay : float, default 0.9
        RMSProp decay.
    b1, b2 : float, default 0.9 and 0.999
        Adam decays.
    eps : float, default 1e-8
        RMSProp/Adam ε.
    name : str, default "curvature"
        Keyword under which the natural direction expects the curvature.

    Returns
    -------
    GradientTransformation
        The optimiser.

    Raises
    ------
    ValueError
        For an unknown ``direction`` or ``rule``, ``index``/``adapt_damping`` with the vanilla
        gradient, or invalid hyperparameters.

    References
    ----------
    .. [1] S. Tang and R. Ranganath, "The Variational Predictive Natural Gradient", ICML 2019,
       Eq. 17, Algorithm 1 and Section 5.

    Examples
    --------
    >>> opt = make_optimizer("vpng", "fixed", lr=1.0, damping=1.0)
    >>> state = opt.init(np.zeros(2))
    >>> opt.update(np.array([2.0, 4.0]), state, curvature=np.diag([1.0, 3.0]))[0]
    array([1., 1.])
    """
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
    if rule not in RULES:
        raise ValueError(f"rule must be one of {RULES}, got {rule!r}")
    if rule == "fixed":
        step = scale(lr)
    elif rule == "rmsprop":
        step = rmsprop(lr, decay=decay, eps=eps)
    else:
        step = adam(lr, b1=b1, b2=b2, eps=eps)
    if direction == "gradient":
        if adapt_damping or index is not None:
            raise ValueError("index and adapt_damping apply to natural directions only")
        return chain(identity_direction(), step)
    opt = chain(natural_direction(damping, name, index=index), step)
    if adapt_damping:
        opt = lm_damping(opt, damping, period=period, name=name, index=index)
    return opt


def step_rngs(seed: int, step: int) -> tuple[np.random.Generator, np.random.Generator]:
    """Per-step generators ``(key_objective, key_curvature)`` keyed by ``(seed, step)``.

    Parameters
    ----------
    seed : int
        Root seed of the run (non-negative).
    step : int
        Step index (non-negative).

    Returns
    -------
    key_objective, key_curvature : numpy.random.Generator
        Independent generators from the spawn keys ``(step, 0)`` and ``(step, 1)`` of
        ``SeedSequence(seed)`` (see the module docstring).

    Examples
    --------
    >>> a, _ = step_rngs(0, 3)
    >>> b, _ = step_rngs(0, 3)
    >>> bool(a.standard_normal() == b.standard_normal())
    True
    """
    seed = as_int(seed, "seed", minimum=0)
    step = as_int(step, "step", minimum=0)
    ss = np.random.SeedSequence(seed, spawn_key=(step,))
    s_obj, s_curv = ss.spawn(2)
    return np.random.default_rng(s_obj), np.random.default_rng(s_curv)


class RunResult(NamedTuple):
    """Result of :func:`run`.

    Attributes
    ----------
    params : ndarray, shape (P,)
        Parameters after ``step`` completed steps.
    state : NamedTuple or tuple
        Optimiser state after ``step`` completed steps.
    history : ndarray, shape (step - start_step + len(history),)
        Objective value at the parameters of each completed step, before its update.
    step : int
        Number of completed steps (the next step to run).
    seed : int
        Root seed of the per-step randomness.
    """

    params: np.ndarray
    state: Any
    history: np.ndarray
    step: int
    seed: int


def _as_seed(seed) -> int:
    if seed is None:
        return int(cast(int, np.random.SeedSequence().entropy))
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"seed must be a non-negative integer or None, got {type(seed).__name__}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    return int(seed)


def run(
    objective_and_grad: Callable[[np.ndarray, np.random.Generator], tuple[float, np.ndarray]],
    params0: ArrayLike,
    optimizer: GradientTransformation,
    n_steps: int,
    *,
    curvature_fn: Callable[[np.ndarray, np.random.Generator], Any] | None = None,
    seed: int | None = None,
    callback: Callable[[int, np.ndarray, Any, float], Any] | None = None,
    state: Any = None,
    start_step: int = 0,
    history: Sequence[float] | np.ndarray | None = None,
    checkpoint_path: str | os.PathLike | None = None,
    checkpoint_every: int | None = None,
) -> RunResult:
    r"""Maximise an objective: Algorithm 1 of Tang & Ranganath (2019).

    For ``k = start_step, ..., n_steps - 1`` (``key_obj, key_curv = step_rngs(seed, k)``):

    1. ``value, grads = objective_and_grad(params, key_obj)`` — the ELBO estimate and its
       gradient at :math:`\theta_k` (draws of Eq. 15);
    2. ``F = curvature_fn(params, key_curv)`` if given — e.g. :math:`\hat F_r` (Eq. 16);
    3. ``callback(k, params, state, value)`` if given; if it returns ``True`` the run stops here,
       before this step's update;
    4. ``updates, state = optimizer.update(grads, state, params, value=value, curvature=F)`` —
       e.g. the damped VPNG of Eq. 17 scaled by a step-size rule, with the damping optionally
       adjusted (:func:`~refvpng.optim.damping.lm_damping`);
    5. ``params = params + updates``; append ``value`` to the history; every
       ``checkpoint_every`` completed steps (and at the end) save a checkpoint.

    Parameters
    ----------
    objective_and_grad : callable
        ``(params, rng) -> (value, grads)``: objective to maximise (float) and its gradient,
        shape ``(P,)``, using only ``rng`` for randomness.
    params0 : array_like, shape (P,)
        Parameters at ``start_step`` (:math:`\theta_0` for a fresh run).
    optimizer : GradientTransformation
        E.g. from :func:`make_optimizer`.
    n_steps : int
        Index one past the last step: the run ends after step ``n_steps - 1``, so a resumed run
        is given the same ``n_steps`` as the original.
    curvature_fn : callable, optional
        ``(params, rng) -> F``, a dense ``(P, P)`` matrix (or block) or an operator with
        ``solve``; passed to the optimizer as ``curvature=F``.
    seed : int, optional
        Root seed of the per-step randomness (:func:`step_rngs`); default: fresh OS entropy,
        returned in the result (and saved in checkpoints) so the run can be repeated.
    callback : callable, optional
        ``(step, params, state, value) -> bool | None``, called after the objective is evaluated
        and before the update (``value`` is the objective at ``params``). Must not modify its
        arguments.
    state : NamedTuple or tuple, optional
        Optimiser state at ``start_step``; default ``optimizer.init(params0)``.
    start_step : int, default 0
        Index of the first step to run.
    history : sequence of float, optional
        Objective values of the ``start_step`` earlier steps (e.g. from a checkpoint); they are
        prepended to the returned history.
    checkpoint_path : str or os.PathLike, optional
        Save a checkpoint (:func:`~refvpng.optim.checkpoint.save_checkpoint`) to this file.
    checkpoint_every : int, optional
        Save after every ``checkpoint_every`` completed steps (step count divisible by it), in
        addition to the end of the run.

    Returns
    -------
    RunResult
        ``(params, state, history, step, seed)``.

    Raises
    ------
    ValueError
        If an objective value is not finite (naming the step), ``grads`` has the wrong shape or
        is not finite, ``history`` does not have ``start_step`` entries, or
        ``n_steps < start_step``; and whatever the optimizer raises.

    References
    ----------
    .. [1] S. Tang and R. Ranganath, "The Variational Predictive Natural Gradient", ICML 2019,
       Algorithm 1.

    Examples
    --------
    Maximise :math:`L(x) = -\tfrac12 x^\top A x` with noisy gradients, vanilla gradient and a
    fixed step:

    >>> A = np.diag([1.0, 2.0])
    >>> def objective_and_grad(x, rng):
    ...     return -0.5 * x @ A @ x, -A @ x + 0.01 * rng.standard_normal(2)
    >>> res = run(objective_and_grad, np.ones(2), make_optimizer("gradient", "fixed", 0.2),
    ...           n_steps=50, seed=0)
    >>> res.step, res.history.shape, bool(np.all(np.abs(res.params) < 0.05))
    (50, (50,), True)
    """
    if not isinstance(optimizer, GradientTransformation):
        raise TypeError(f"optimizer must be a GradientTransformation, got {type(optimizer).__name__}")
    params = check_params(params0, "params0").copy()
    start_step = as_int(start_step, "start_step", minimum=0)
    n_steps = as_int(n_steps, "n_steps", minimum=0)
    if n_steps < start_step:
        raise ValueError(f"n_steps must be >= start_step = {start_step}, got {n_steps}")
    if checkpoint_every is not None:
        checkpoint_every = as_int(checkpoint_every, "checkpoint_every", minimum=1)
    seed = _as_seed(seed)
    hist = [] if history is None else [float(v) for v in np.asarray(history, dtype=np.float64)]
    if history is not None and len(hist) != start_step:
        raise ValueError(f"history must have start_step = {start_step} entries, got {len(hist)}")
    if state is None:
        state = optimizer.init(params)

    def save(step: int) -> None:
        assert checkpoint_path is not None  # save is only called with a checkpoint path
        save_checkpoint(checkpoint_path, params, state, step, seed, np.asarray(hist))

    step = start_step
    for k in range(start_step, n_steps):
        key_obj, key_curv = step_rngs(seed, k)
        value, grads = objective_and_grad(params, key_obj)
        value = float(value)
        if not math.isfinite(value):
            raise ValueError(f"objective value at step {k} is not finite: {value}")
        extra: dict[str, Any] = {"value": value}
        if curvature_fn is not None:
            extra["curvature"] = curvature_fn(params, key_curv)
        if callback is not None and callback(k, params, state, value) is True:
            break
        updates, state = optimizer.update(grads, state, params, **extra)
        params = apply_updates(params, updates)
        hist.append(value)
        step = k + 1
        if checkpoint_path is not None and checkpoint_every is not None:
            if step % checkpoint_every == 0 and step < n_steps:
                save(step)
    if checkpoint_path is not None:
        save(step)
    return RunResult(params=params, state=state, history=np.asarray(hist), step=step, seed=seed)


def resume(
    checkpoint_path: str | os.PathLike,
    objective_and_grad: Callable[[np.ndarray, np.random.Generator], tuple[float, np.ndarray]],
    optimizer: GradientTransformation,
    n_steps: int,
    *,
    curvature_fn: Callable[[np.ndarray, np.random.Generator], Any] | None = None,
    callback: Callable[[int, np.ndarray, Any, float], Any] | None = None,
    checkpoint_every: int | None = None,
) -> RunResult:
    """Continue a run from its checkpoint, saving back to the same file.

    Loads ``(params, state, step, seed, history)`` with
    :func:`~refvpng.optim.checkpoint.load_checkpoint` (state types taken from
    ``optimizer.init``) and calls :func:`run` from that step with the same seed. With the same
    ``objective_and_grad``, ``curvature_fn``, ``optimizer`` and ``n_steps`` the result equals that
    of an uninterrupted run bit for bit.

    Parameters
    ----------
    checkpoint_path : str or os.PathLike
        Checkpoint written by :func:`run`.
    objective_and_grad, optimizer, n_steps, curvature_fn, callback, checkpoint_every
        As in :func:`run`.

    Returns
    -------
    RunResult
        As :func:`run`; its history includes the checkpoint's.

    Raises
    ------
    ValueError
        If the checkpoint cannot be read or its state does not match ``optimizer``; or as
        :func:`run`.
    """
    ck = load_checkpoint(checkpoint_path, like=optimizer.init)
    return run(
        objective_and_grad,
        ck.params,
        optimizer,
        n_steps,
        curvature_fn=curvature_fn,
        seed=ck.seed,
        callback=callback,
        state=ck.state,
        start_step=ck.step,
        history=ck.history,
        checkpoint_path=checkpoint_path,
        checkpoint_every=checkpoint_every,
    )
