r"""The training protocol shared by the chain experiments (Figure 2's VAE, Figure 3's VMF).

A network :class:`refvpng.nn.Chain` with a likelihood (Bernoulli logits or softplus Poisson) is
trained by :func:`refvpng.nn.vae_step` with one of :data:`METHODS` (a direction then a step-size
rule, :func:`method_optimizer`) for a budget of CPU (or wall) seconds, evaluated on fixed noise
``s.n_evals`` times evenly on the training clock (:func:`run_training`); a grid cell is one
(method, step size) (:func:`cells`) and the best step size per method is the one with the best
final train ELBO (:func:`best_per_method`). The protocol itself is documented in
:mod:`refvpng.experiments.vae`; :mod:`refvpng.experiments.vmf` states where Figure 3 differs.

References
----------
.. [1] Y. Tang and R. Ranganath, "The Variational Predictive Natural Gradient", ICML 2019,
   Algorithm 1 and Sections 5.2-5.3.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from refvpng._threads import limit_threads
from refvpng.curvature.kfac import KFACConfig
from refvpng.experiments import _args as arg
from refvpng.experiments.harness import Cell
from refvpng.models import Bernoulli
from refvpng.nn import truncated_normal_init, vae_elbo, vae_step
from refvpng.nn.linearize import vae_fisher_operator
from refvpng.optim import GradientTransformation, chain, kfac_direction, make_optimizer, run
from refvpng.optim.hf_direction import hf_direction
from refvpng.optim.two_step import BlockCurvature, two_step

if TYPE_CHECKING:  # vae.py imports this module
    import refvpng.experiments.vae
    from refvpng.data.mnist import BinarizedMNIST
    from refvpng.data.movielens import MovieLens
    from refvpng.models.likelihoods import Bernoulli, Poisson
    from refvpng.nn.chain import Chain

__all__ = [
    "METHODS",
    "kfac_config",
    "method_optimizer",
    "run_training",
    "cells",
    "run_method_cell",
    "best_per_method",
]

METHODS = ("adam", "q_natural", "vpng_tridiag", "vpng_blockdiag", "two_step", "hf_sgvi")
"""Method names, the keys of the results JSON (``hf_sgvi``: Bernoulli likelihood only)."""


def _warm_up(net, likelihood, eta, x, factor_dtype) -> None:
    """Compile the numba likelihood kernels on one data point, outside the timed budget."""
    rng = np.random.default_rng(0)
    eps, u = rng.standard_normal((1, 1, net.d_z)), rng.random((1, 1, net.d_x))
    vae_step(net, eta, x, eps, u, curvature="vp", factor_dtype=np.dtype(factor_dtype), likelihood=likelihood)
    vae_step(net, eta, x, eps, u, curvature="vp", likelihood=likelihood)


@arg.checked(s=arg.settings, tridiagonal=arg.flag)
def kfac_config(s: refvpng.experiments.vae.Settings, tridiagonal: bool) -> KFACConfig:
    """The K-FAC hyperparameters of a run (damping per data point, as the factors).

    ``damping_split``, ``lowrank_remainder``, ``lowrank_factors`` and ``lowrank_floor`` are the
    K-FAC variants of :class:`refvpng.curvature.kfac.KFACConfig` (the authors' configuration of
    :mod:`refvpng.experiments.vae_authors` sets them).
    """
    return KFACConfig(
        tridiagonal=tridiagonal,
        factor_damping=s.damping,
        decay=s.decay,
        inverse_every=s.inverse_every,
        lowrank_c=s.lowrank_c,
        lowrank_threshold=s.lowrank_threshold,
        damping_split=s.damping_split,
        lowrank_remainder=s.lowrank_remainder,
        lowrank_factors=s.lowrank_factors,
        lowrank_floor=s.lowrank_floor,
    )


@arg.checked(method=arg.method, lr=arg.positive, s=arg.settings, n_encoder=arg.count)
def method_optimizer(
    method: str, lr: float, s: refvpng.experiments.vae.Settings, n_encoder: int
) -> tuple[GradientTransformation, tuple[str | None, ...]]:
    r"""The optimiser of a method and the curvature kind of each step of a cycle.

    Every K-FAC method is :func:`refvpng.optim.kfac_direction.kfac_direction` (the running
    K-FAC estimate in the optimiser state, :math:`(\breve F^\gamma)^{-1} g` with the factored
    damping :math:`\gamma`) followed by the step-size rule ``s.rule``; ``q_natural`` applies it to
    the encoder block :math:`\lambda` only. ``two_step`` is
    :func:`refvpng.optim.two_step.two_step` of two such members, the encoder one with the
    q-Fisher K-FAC (the ``q_natural`` direction on :math:`\lambda`), the decoder one with the
    decoder blocks of the VPNG K-FAC, each with its own estimate and rule state. ``hf_sgvi``
    (HF-SGVI) is :func:`refvpng.optim.hf_direction.hf_direction` (``s.hf_iters`` CG iterations
    on :math:`\hat F_r / n + \gamma I`, warm start ``s.hf_warm``) then the rule.

    Parameters
    ----------
    method : str
        One of :data:`METHODS`.
    lr : float
        Step size of the rule.
    s : Settings
    n_encoder : int
        Length of :math:`\lambda` (``chain.encoder.num_params``).

    Returns
    -------
    optimizer : GradientTransformation
        Expects this step's :class:`refvpng.curvature.kfac.KFACFactors` (``two_step``: a
        :class:`refvpng.optim.two_step.BlockCurvature` of them) as ``curvature=``.
    kinds : tuple of {None, "q", "vp", "dec", "hf"}
        ``kinds[k % len(kinds)]`` is the ``curvature`` of :func:`refvpng.nn.vae.vae_step` at
        step ``k``; ``"hf"``: none from the step, the optimiser takes the matrix-free
        :math:`\hat F_r / n` of :func:`refvpng.nn.linearize.vae_fisher_operator` at the step's
        noise and predictive uniforms.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")

    def rule() -> GradientTransformation:  # vanilla direction (a copy) then the rule
        return make_optimizer("gradient", s.rule, lr)

    def member(index=None) -> GradientTransformation:
        cfg = kfac_config(s, method != "vpng_blockdiag")
        return chain(kfac_direction(cfg, index=index), rule())

    if method == "adam":
        return rule(), (None,)
    if method == "q_natural":
        return member(slice(0, n_encoder)), ("q",)
    if method == "two_step":
        opt = two_step(
            member(),
            member(),
            n_encoder,
            encoder_steps=s.encoder_steps,
            decoder_steps=s.decoder_steps,
        )
        return opt, ("q",) * s.encoder_steps + ("dec",) * s.decoder_steps
    if method == "hf_sgvi":  # truncated CG on the matrix-free F_r / n + gamma I
        return chain(hf_direction(s.hf_iters, s.damping, warm_start=s.hf_warm), rule()), ("hf",)
    return member(), ("vp",)


def _clock(kind: str):
    return time.process_time if kind == "cpu" else time.perf_counter


@arg.checked(
    method=arg.method,
    lr=arg.positive,
    s=arg.settings,
    net=arg.chain,
    likelihood=arg.likelihood,
    data=arg.data,
)
def run_training(
    method: str,
    lr: float,
    s: refvpng.experiments.vae.Settings,
    net: Chain,
    likelihood: Bernoulli | Poisson,
    data: BinarizedMNIST | MovieLens,
    *,
    _clock_fn: Callable[[], float] | None = None,
) -> dict:
    r"""Train one method with one step size for ``s.budget`` seconds and record its curve.

    The run is :func:`refvpng.optim.run` with per-step noise from its ``step_rngs``; the whole
    optimiser state (step-size rule and running K-FAC estimates) is the ``state`` it returns
    and checkpoints. The settings' ``init`` (``"scaled_normal"``: :meth:`refvpng.nn.Chain.init`,
    or :func:`refvpng.nn.truncated_normal_init` with ``init_std``), ``predictive`` and
    ``output_factor`` (``one_z`` and ``output_diag`` of :func:`refvpng.nn.vae_step`, applied to
    the :math:`\hat F_r` and decoder factors, not to the q-Fisher's) and the K-FAC variants of
    :func:`kfac_config` are honoured for any chain and likelihood.

    Parameters
    ----------
    method : str
        One of :data:`METHODS`.
    lr : float
        Step size of the step-size rule.
    s : Settings
        The experiment's settings (:class:`refvpng.experiments.vae.Settings` or a subclass).
    net : refvpng.nn.Chain
        The network, :func:`refvpng.nn.vae_step` trains it.
    likelihood : Bernoulli or Poisson
        Its likelihood (``likelihood=`` of :func:`refvpng.nn.vae_step`).
    data : object with ``train``, ``train_eval`` and ``test`` arrays
        :class:`refvpng.data.BinarizedMNIST` or :class:`refvpng.data.MovieLens`.

    Returns
    -------
    dict
        ``method, lr, steps, sec_per_iter, wall_sec_per_iter, final_train_elbo,
        final_test_elbo, curve`` (list of ``[seconds, train_elbo, test_elbo]``),
        ``curve_steps`` (the iteration of each evaluation), ``failed`` (the message, if a K-FAC
        inverse did not exist or the run diverged, ``"diverged: ..."``, with an overflow that the
        library's checks caught: the run ends there and is evaluated at its last parameters if
        they can be evaluated; the final ELBOs are those of the last evaluation),
        ``cg_iterations_mean`` for ``hf_sgvi`` (curvature products per update) and, for K-FAC
        methods, ``refresh_seconds_mean``: the mean time of an optimiser update that
        refreshes the decompositions (EMA, decompositions, solve and step-size rule;
        ``two_step``: over both blocks' refreshes). ``steps`` counts iterations, for
        ``two_step`` inner steps (one block each).
    """
    vae = net
    rng0 = np.random.default_rng([s.seed, 0])
    eta0 = vae.init(rng0) if s.init == "scaled_normal" else truncated_normal_init(vae, rng0, s.init_std)
    n_train, batch = data.train.shape[0], min(s.batch, data.train.shape[0])
    per_epoch = n_train // batch
    opt, kinds = method_optimizer(method, lr, s, vae.encoder.num_params)
    if kinds == ("hf",) and not (likelihood is None or isinstance(likelihood, Bernoulli)):
        raise ValueError("method 'hf_sgvi' needs the Bernoulli likelihood (vae_fisher_operator)")
    dtype = np.dtype(s.factor_dtype)
    _warm_up(vae, likelihood, eta0, data.train[:1], s.factor_dtype)
    eval_rng = np.random.default_rng([s.seed, 1])
    eps_tr = eval_rng.standard_normal((s.eval_samples, data.train_eval.shape[0], s.d_z))
    eps_te = eval_rng.standard_normal((s.eval_samples, data.test.shape[0], s.d_z))
    # the authors' factor options apply to the F_r / decoder factors; q-NG keeps its sampled ones
    flags = {"one_z": s.predictive == "one_z", "output_diag": s.output_factor == "diag"}
    # per-kind factor batches so far: a K-FAC update refreshes when its count % T3 == 0
    box: dict[str, Any] = {"step": 0, "count": dict.fromkeys(kinds, 0), "refresh": False, "refresh_t": []}

    def objective_and_grad(eta, rng):
        k = box["step"]
        kind = kinds[k % len(kinds)]
        epoch, j = divmod(k, per_epoch)
        perm = np.random.default_rng([s.seed, 2, epoch]).permutation(n_train)
        x = data.train[perm[j * batch : (j + 1) * batch]]
        eps = rng.standard_normal((s.samples, batch, s.d_z))
        u = rng.random((s.samples, batch, vae.d_x)) if kind in ("vp", "dec", "hf") else None
        st = vae_step(
            vae,
            eta,
            x,
            eps,
            u,
            curvature=None if kind == "hf" else kind,
            fisher_samples=s.fisher_samples,
            factor_dtype=dtype,
            cross=method != "vpng_blockdiag",
            likelihood=likelihood,
            **(flags if kind in ("vp", "dec") else {}),
        )
        box["factors"], box["kind"] = st.factors_per_point, kind
        if kind == "hf":
            box["factors"] = vae_fisher_operator(vae, eta, x, eps, u, fisher_samples=s.fisher_samples)
        box["refresh"] = kind in ("q", "vp", "dec") and box["count"][kind] % s.inverse_every == 0
        box["step"] = k + 1
        return st.value, st.grad

    def curvature_fn(eta, rng):
        f, kind = box["factors"], box["kind"]
        if method == "two_step":
            return BlockCurvature(f if kind == "q" else None, f if kind == "dec" else None)
        return f

    def timed_update(grads, state, params=None, **extra):
        t0 = time.perf_counter()
        out = opt.update(grads, state, params, **extra)
        if box["kind"] is not None:
            box["count"][box["kind"]] += 1
            if box["refresh"]:
                box["refresh_t"].append(time.perf_counter() - t0)
        return out

    clock, wall = _clock_fn or _clock(s.clock), time.perf_counter
    curve: list[list[float]] = []
    eval_steps: list[int] = []
    acct = {"eval": 0.0, "eval_wall": 0.0, "next": 0.0}

    def evaluate(eta, t_train, step):
        e0, w0 = clock(), wall()
        tr = vae_elbo(vae, eta, data.train_eval, eps_tr, likelihood=likelihood)
        te = vae_elbo(vae, eta, data.test, eps_te, likelihood=likelihood)
        curve.append([float(t_train), tr, te])
        eval_steps.append(step)  # updates applied so far
        acct["eval"] += clock() - e0
        acct["eval_wall"] += wall() - w0

    def callback(step, eta, state, value):
        t_train = clock() - acct["t0"] - acct["eval"]
        box["at"] = (step, eta, t_train)
        done = t_train >= s.budget
        if t_train >= acct["next"] or done:
            evaluate(eta, t_train, step)
            acct["next"] += s.budget / s.n_evals
        if done:
            acct["steps"] = step + 1  # gradient evaluations (the last one is not applied)
            acct["t_train"] = t_train
            acct["wall"] = wall() - acct["w0"] - acct["eval_wall"]
            return True
        return None

    acct["t0"], acct["w0"] = clock(), wall()
    failed, result = None, None
    try:
        result = run(
            objective_and_grad,
            eta0,
            GradientTransformation(opt.init, timed_update),
            10**12,
            seed=s.seed,
            curvature_fn=None if kinds == (None,) else curvature_fn,
            callback=callback,
        )
    except (ValueError, FloatingPointError) as exc:
        # A K-FAC inverse that does not exist, or a run that diverged (an overflow the checks
        # caught: too large a step size): the run ends here and is recorded as failed.
        diverged = isinstance(exc, FloatingPointError)
        if "at" not in box or not (diverged or "positive definite" in str(exc)):
            raise
        failed = f"diverged: {exc}" if diverged else str(exc)
        step, eta, t_train = box["at"]
        try:
            evaluate(eta, t_train, step)
        except FloatingPointError:  # not even evaluable: the curve ends at its last evaluation
            pass
        acct.update(steps=step + 1, t_train=t_train, wall=wall() - acct["w0"] - acct["eval_wall"])
    steps = max(acct["steps"], 1)
    out = {
        "method": method,
        "lr": lr,
        "steps": acct["steps"],
        "sec_per_iter": acct["t_train"] / steps,
        "wall_sec_per_iter": acct["wall"] / steps,
        "final_train_elbo": curve[-1][1],
        "final_test_elbo": curve[-1][2],
        "curve": curve,
        "curve_steps": eval_steps,
    }
    if failed is not None:
        out["failed"] = failed
    if box["refresh_t"]:
        out["refresh_seconds_mean"] = float(np.mean(box["refresh_t"]))
    if method == "hf_sgvi" and result is not None:  # F_r products per update applied
        out["cg_iterations_mean"] = result.state[0].total_iterations / max(box["count"]["hf"], 1)
    return out


@arg.checked(s=arg.settings)
def cells(s: refvpng.experiments.vae.Settings) -> list[Cell]:
    """One cell per (method, step size)."""
    return [Cell(f"{m}-lr{lr:g}", {"method": m, "lr": lr}) for m in s.methods for lr in s.lrs]


@arg.checked(run_one=arg.function, s=arg.settings, cell=arg.cell)
def run_method_cell(run_one: Callable[..., dict], s: refvpng.experiments.vae.Settings, cell: Cell) -> dict:
    """``run_one(method, lr, s)`` of a (method, step size) cell, with ``s.threads`` BLAS/numba threads."""
    with limit_threads(s.threads):
        return run_one(cell.params["method"], cell.params["lr"], s)


@arg.checked(s=arg.settings, results=arg.mapping)
def best_per_method(s: refvpng.experiments.vae.Settings, results: dict) -> dict:
    """Per method the cell with the best final train ELBO, with the whole step-size ``grid``.

    Failed cells (a diverged run, a K-FAC inverse that did not exist) are not picked unless every
    cell of the method failed; the ``grid`` entries carry their ``failed`` message.

    ``best_at_grid_edge`` says whether the best step size is the smallest or the largest of the
    grid (then the grid does not bracket it: extend ``lrs``, which reuses the cells already run).
    """
    doc = {}
    for m in s.methods:
        runs = [results[f"{m}-lr{lr:g}"] for lr in s.lrs]
        finished = [r for r in runs if not r.get("failed")] or runs
        best = max(finished, key=lambda r: r["final_train_elbo"])
        entry = dict(best)
        entry["grid"] = [
            {k: r[k] for k in ("lr", "steps", "sec_per_iter", "final_train_elbo", "final_test_elbo")}
            | ({"failed": r["failed"]} if r.get("failed") else {})
            for r in runs
        ]
        lrs = sorted(s.lrs)
        entry["best_at_grid_edge"] = len(lrs) > 1 and best["lr"] in (lrs[0], lrs[-1])
        doc[m] = entry
    return doc
