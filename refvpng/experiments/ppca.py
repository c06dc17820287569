r"""Linear VAE on pPCA data: two-step natural gradient, VPNG, q-natural gradient and Adam.

The question of the project note on latent-variable Fishers, asked where everything is known in
closed form: how fast does each method bring the ELBO of the linear VAE
(:mod:`refvpng.models.linear_vae`) to the maximal pPCA log-likelihood (Tipping & Bishop), which is
the maximum of the ELBO (at the ML solution the mean-field encoder is the exact posterior)?

Setting (documented choices)
----------------------------
- Data: ``n = 1000`` points, ``d = 10``, ``k = 2`` from a known pPCA model: data seed 0 draws
  :math:`W_{\mathrm{true}} = G\,\mathrm{diag}(2, 1)` with :math:`G` standard normal,
  :math:`b_{\mathrm{true}} \sim N(0, I)`, :math:`\psi_{\mathrm{true}} = 0.5`, then the data by
  :func:`refvpng.curvature.latent_fisher.draw_joint` on the pPCA model.
- Target: :math:`\ell^* = \max_\theta \frac1n\sum_i\log p(x_i;\theta)`
  (:func:`refvpng.models.ppca.max_loglik_closed`). Reported **gap**
  :math:`\ell^* - \mathcal L(\eta)/n \ge 0` per data point (the ELBO is below the
  log-likelihood). Tolerance ``1e-3``; iteration cap 5000; a run stops early at gap ``1e-10``.
- Start (init seed 1, the same for every method): :math:`A = 0.01\,G_A`, :math:`c = 0`,
  :math:`\rho = 0` (:math:`\sigma = 1`), :math:`W = 0.1\,G_W`, :math:`b = 0`, :math:`\psi = 1`.
- Gradients: the closed-form ELBO with its exact, hand-derived gradient
  (:func:`refvpng.models.linear_vae.elbo_closed_value_and_grad`) — deterministic, no Monte Carlo.
  Curvatures in closed form too (each tested against the generic autograd/Monte Carlo build of
  refvpng): :math:`F_q` (:func:`~refvpng.models.linear_vae.q_fisher_closed`, Eq 2), the decoder
  Fisher (:func:`~refvpng.models.linear_vae.decoder_fisher_closed`) and :math:`F_r` exact in
  :math:`\varepsilon` and :math:`x'` (:func:`~refvpng.models.linear_vae.vp_fisher_closed`).
- One **iteration** is one gradient evaluation, one curvature and one update (an inner step of
  the two-step method counts as one). Seconds are wall-clock time of the loop up to the first
  iteration at tolerance (single thread of a shared machine: indicative).

Methods and step-size grids
---------------------------
The best configuration per method is reported: fewest iterations until the gap *stays* below the
tolerance to the end of the run (Adam oscillates around it), else fewest to first reach it, else
the smallest final gap. Both counts are in the JSON (``iterations_to_tol``: first iteration with
gap <= tol; ``iterations_to_stay``), with their seconds.

- ``two_step`` (:func:`refvpng.optim.two_step.make_two_step`): natural step on the encoder with
  :math:`F_q`, then on the decoder with its Fisher, fixed step ``lr`` on both, damping
  :math:`\mu = 10^{-3}` on both; grid ``lr`` in {0.5, 1, 1.5} and inner steps (1, 1) or (2, 2).
- ``vpng``: :math:`(F_r + \mu I)^{-1}\nabla\mathcal L` on all of :math:`(\lambda, \theta)`
  (Eq 17), fixed step; grid ``lr`` in {0.1, 0.3, 1} and :math:`\mu/n` in {0.1, 1, 10}
  (:math:`F_r` has ``2k`` null directions here, so :math:`\mu > 0` is required).
- ``q_natural``: :math:`F_q` on the encoder, vanilla gradient on the decoder, Adam step sizes (as the
  VPNG paper runs its baselines); grid ``lr`` in {0.01, 0.03, 0.1, 0.3, 1}.
- ``adam``: vanilla gradient with Adam; the same grid.

Output: ``latent_fisher.json`` (key ``"ppca"``; other keys of an existing file are kept), written
atomically, and ``ppca_convergence.png`` (gap against iteration and seconds, log scale), in
``--out DIR`` (default ``validation/results``). Deterministic for a seed except the seconds.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from refvpng._checks import as_int
from refvpng.curvature.latent_fisher import draw_joint
from refvpng.experiments import harness
from refvpng.experiments.harness import Cell
from refvpng.models import linear_vae as lv
from refvpng.models import ppca
from refvpng.optim import GradientTransformation, make_optimizer, run
from refvpng.optim.two_step import BlockCurvature, make_two_step

__all__ = [
    "METHODS",
    "Settings",
    "EXPERIMENT",
    "make_problem",
    "initial_eta",
    "method_grid",
    "build_method",
    "run_method",
    "run_experiment",
    "main",
]

METHODS = ("two_step", "vpng", "q_natural", "adam")
LABELS = {
    "two_step": "two-step NG (F_q, decoder Fisher)",
    "vpng": "VPNG (F_r exact, damped)",
    "q_natural": "q-NG (F_q on encoder) + Adam",
    "adam": "Adam",
}
QUICK = {"d": 5, "k": 2, "n": 200, "max_iter": 300, "small_grid": True}
TOL = 1e-3
STOP_GAP = 1e-10


def make_problem(d: int = 10, k: int = 2, n: int = 1000, seed: int = 0) -> dict[str, Any]:
    r"""Draw data from a known pPCA model and compute the closed-form targets.

    Parameters
    ----------
    d, k, n : int
        Data dimension, latent dimension (``k < d``) and number of points.
    seed : int, default 0
        Data seed (draws :math:`G`, :math:`b_{\mathrm{true}}`, then the data).

    Returns
    -------
    dict
        ``x`` (n, d), ``spec`` (:class:`~refvpng.models.ppca.PPCASpec`), ``theta_true``,
        ``theta_ml`` (:func:`~refvpng.models.ppca.mle_closed`), ``max_loglik`` (per point),
        ``psi_ml`` and the sizes.

    Examples
    --------
    >>> p = make_problem(4, 1, 50)
    >>> p["x"].shape, bool(p["max_loglik"] < 0)
    ((50, 4), True)
    """
    seed = as_int(seed, "seed", minimum=0)
    rng = np.random.default_rng(seed)
    spec = ppca.PPCASpec(d, k)
    scales = np.linspace(2.0, 1.0, k)
    W = rng.standard_normal((d, k)) * scales
    b = rng.standard_normal(d)
    theta_true = spec.pack(W, b, 0.5)
    x = draw_joint(rng, ppca.make_model(spec), theta_true, n, 1)[0][0]
    theta_ml = ppca.mle_closed(spec, x)
    return {
        "x": x,
        "spec": spec,
        "d": d,
        "k": k,
        "n": n,
        "seed": seed,
        "theta_true": theta_true,
        "theta_ml": theta_ml,
        "psi_ml": float(np.exp(theta_ml[-1])),
        "max_loglik": ppca.max_loglik_closed(spec, x),
    }


def initial_eta(problem: dict, seed: int = 1) -> np.ndarray:
    r"""Return the start point shared by every method (module docstring), packed as :math:`\eta`."""
    if not isinstance(problem, dict) or "spec" not in problem:
        raise TypeError(f"problem must be the dict of make_problem, got {type(problem).__name__}")
    seed = as_int(seed, "seed", minimum=0)
    spec = problem["spec"]
    d, k = spec.d, spec.k
    rng = np.random.default_rng(seed)
    A = 0.01 * rng.standard_normal((k, d))
    W = 0.1 * rng.standard_normal((d, k))
    return lv.pack_eta(spec, A, np.zeros(k), np.zeros(k), W, np.zeros(d), 1.0)


def method_grid(method: str, quick: bool = False) -> list[dict]:
    """Hyperparameter configurations tried for ``method`` (module docstring)."""
    if not isinstance(quick, (bool, np.bool_)):
        raise TypeError(f"quick must be a bool, got {type(quick).__name__}")
    if method == "two_step":
        if quick:
            return [{"lr": 1.0, "steps": [1, 1], "damping": 1e-3}]
        return [
            {"lr": lr, "steps": list(st), "damping": 1e-3}
            for st in ((1, 1), (2, 2))
            for lr in (0.5, 1.0, 1.5)
        ]
    if method == "vpng":
        if quick:
            return [{"lr": 0.1, "damping_per_point": 1.0}]
        return [{"lr": lr, "damping_per_point": mu} for mu in (0.1, 1.0, 10.0) for lr in (0.1, 0.3, 1.0)]
    if method in ("q_natural", "adam"):
        lrs = (0.1,) if quick else (0.01, 0.03, 0.1, 0.3, 1.0)
        return [{"lr": lr} for lr in lrs]
    raise ValueError(f"method must be one of {METHODS}, got {method!r}")


def build_method(
    method: str, config: dict, problem: dict
) -> tuple[GradientTransformation, Callable[[np.ndarray, np.random.Generator], Any] | None]:
    """Return ``(optimizer, curvature_fn)`` for :func:`refvpng.optim.run`."""
    x, spec, n = problem["x"], problem["spec"], problem["n"]
    nl = lv.n_lambda(spec)
    if method == "two_step":
        opt = make_two_step(
            nl,
            encoder_lr=config["lr"],
            decoder_lr=config["lr"],
            encoder_damping=config["damping"],
            decoder_damping=config["damping"],
            encoder_steps=config["steps"][0],
            decoder_steps=config["steps"][1],
        )

        def curvature_fn(params, rng):
            return BlockCurvature(
                encoder=lambda: lv.q_fisher_closed(spec, params, x),
                decoder=lambda: lv.decoder_fisher_closed(spec, params, x),
            )

        return opt, curvature_fn
    if method == "vpng":
        opt = make_optimizer("vpng", "fixed", config["lr"], config["damping_per_point"] * n)
        return opt, lambda params, rng: lv.vp_fisher_closed(spec, params, x)
    if method == "q_natural":
        opt = make_optimizer("q_natural", "adam", config["lr"], 0.0, index=slice(0, nl))
        return opt, lambda params, rng: lv.q_fisher_closed(spec, params, x)
    if method == "adam":
        return make_optimizer("gradient", "adam", config["lr"]), None
    raise ValueError(f"method must be one of {METHODS}, got {method!r}")


def _diagnostics(problem: dict, eta: np.ndarray) -> dict:
    spec = problem["spec"]
    try:  # non-finite entries or an overflowing noise variance after a divergence
        _, _, _, W, _, psi = lv.unpack_eta(spec, eta)
    except ValueError:
        return {"principal_angle": None, "noise_variance": None}
    psi = float(psi[0])
    W_ml = spec.unpack(problem["theta_ml"])[0]
    angle = float(np.max(ppca.principal_angles(W, W_ml)))
    return {
        "principal_angle": angle if np.isfinite(angle) else None,
        "noise_variance": psi if np.isfinite(psi) else None,
    }


def run_method(
    problem: dict,
    method: str,
    config: dict,
    *,
    max_iter: int = 5000,
    tol: float = TOL,
    stop_gap: float = STOP_GAP,
    eta0: np.ndarray | None = None,
) -> dict:
    r"""Run one configuration and record the gap :math:`\ell^* - \mathcal L/n` per iteration.

    Returns
    -------
    dict
        ``gaps`` (one per iteration, at the parameters before its update), ``iterations_to_tol``
        and ``seconds_to_tol`` (first iteration with gap <= ``tol``; ``None`` when not reached),
        ``iterations_to_stay`` (first iteration after which the gap stays <= ``tol`` to the end
        of the run; ``None`` if it does not) and ``seconds_to_stay``, ``reached``, ``final_gap``
        (``None`` after a divergence),
        ``iterations_run``, ``status`` (``"reached"``, ``"not reached"`` or ``"diverged: ..."``),
        ``principal_angle`` (largest, radians, learned :math:`W` against :math:`W_{\mathrm{ML}}`)
        and ``noise_variance``.
    """
    x, spec, n = problem["x"], problem["spec"], problem["n"]
    best = problem["max_loglik"]
    eta0 = initial_eta(problem) if eta0 is None else eta0
    opt, curvature_fn = build_method(method, config, problem)
    gaps: list[float] = []
    times: list[float] = []
    last = {"params": eta0}

    def objective_and_grad(params, rng):
        # unchecked (__wrapped__): a divergence is reported by optim.run at the step where the
        # ELBO stops being finite, as recorded in the results
        return lv.elbo_closed_value_and_grad.__wrapped__(spec, params, x)

    def callback(step, params, state, value):
        times.append(time.perf_counter() - t0)
        gaps.append(best - value / n)
        last["params"] = params
        return gaps[-1] <= stop_gap

    status = None
    t0 = time.perf_counter()
    with np.errstate(all="ignore"):
        try:
            res = run(
                objective_and_grad,
                eta0,
                opt,
                max_iter,
                curvature_fn=curvature_fn,
                seed=0,
                callback=callback,
            )
            last["params"] = res.params
            if res.step == max_iter:  # the gap after the last update
                value, _ = objective_and_grad(res.params, None)
                if np.isfinite(value):
                    gaps.append(best - value / n)
                    times.append(time.perf_counter() - t0)
        except (ValueError, np.linalg.LinAlgError) as exc:
            status = f"diverged: {exc}"
    g = np.asarray(gaps)
    hit = np.flatnonzero(g <= tol)
    reached = hit.size > 0
    above = np.flatnonzero(g > tol)
    stays = reached and status is None and (above.size == 0 or above[-1] + 1 < g.size)
    out = {
        "method": method,
        "config": config,
        "gaps": g,
        "times": np.asarray(times),
        "reached": bool(reached),
        "iterations_to_tol": int(hit[0]) if reached else None,
        "seconds_to_tol": float(times[hit[0]]) if reached else None,
        "iterations_to_stay": (int(above[-1] + 1) if above.size else 0) if stays else None,
        "seconds_to_stay": (float(times[above[-1] + 1]) if above.size else 0.0) if stays else None,
        "final_gap": float(g[-1]) if g.size and status is None else None,
        "iterations_run": int(g.size - 1) if g.size else 0,
        "status": status or ("reached" if reached else "not reached"),
    }
    out.update(_diagnostics(problem, last["params"]))
    return out


def _rank(r: dict) -> tuple:
    """Sort key of a run: staying below tolerance first, then reaching it, then the final gap."""
    if r["iterations_to_stay"] is not None:
        return (0, r["iterations_to_stay"], r["iterations_to_tol"])
    if r["reached"]:
        return (1, r["iterations_to_tol"], 0)
    return (2, np.inf if r["final_gap"] is None else r["final_gap"], 0)


def _better(a: dict, b: dict | None) -> bool:
    """Whether run ``a`` beats ``b`` (see :func:`_rank`)."""
    return b is None or _rank(a) < _rank(b)


def _curve(g: np.ndarray, t: np.ndarray, points: int = 300) -> dict:
    """Gap curve subsampled at (roughly) log-spaced iterations."""
    if g.size == 0:
        return {"iteration": [], "gap": [], "seconds": []}
    idx = np.unique(
        np.concatenate([np.arange(min(g.size, 50)), np.geomspace(1, g.size, points).astype(int) - 1])
    )
    idx = idx[idx < g.size]
    return {"iteration": idx, "gap": g[idx], "seconds": t[idx]}


def _summary(r: dict) -> dict:
    keys = (
        "config",
        "iterations_to_tol",
        "seconds_to_tol",
        "iterations_to_stay",
        "seconds_to_stay",
        "reached",
        "final_gap",
        "iterations_run",
        "status",
        "principal_angle",
        "noise_variance",
    )
    return {key: r[key] for key in keys}


@dataclasses.dataclass(frozen=True)
class Settings:
    """pPCA experiment settings (see the module docstring); defaults: the full run."""

    d: int = dataclasses.field(default=10, metadata={"help": "observed dimension"})
    k: int = dataclasses.field(default=2, metadata={"help": "latent dimension"})
    n: int = dataclasses.field(default=1000, metadata={"help": "data points"})
    max_iter: int = dataclasses.field(default=5000, metadata={"help": "iteration cap"})
    seed: int = dataclasses.field(default=0, metadata={"help": "data seed (the start uses seed + 1)"})
    small_grid: bool = dataclasses.field(
        default=False, metadata={"help": "one configuration per method", "grid": True}
    )


@functools.lru_cache(maxsize=4)
def _problem(d, k, n, seed):
    problem = make_problem(d, k, n, seed)
    return problem, initial_eta(problem, seed + 1)


def cells(st: Settings) -> list[Cell]:
    """One cell per (method, configuration)."""
    return [
        Cell(f"{m}-{i}", {"method": m, "config": c})
        for m in METHODS
        for i, c in enumerate(method_grid(m, st.small_grid))
    ]


def run_cell(st: Settings, cell: Cell) -> dict:
    """One configuration of one method: its summary and its whole gap curve."""
    problem, eta0 = _problem(st.d, st.k, st.n, st.seed)
    r = run_method(problem, cell.params["method"], cell.params["config"], max_iter=st.max_iter, eta0=eta0)
    bad = np.flatnonzero(~np.isfinite(r["gaps"]))
    stop = bad[0] if bad.size else r["gaps"].size  # the curve ends where a divergence begins
    return {**_summary(r), "method": r["method"], "gaps": r["gaps"][:stop], "times": r["times"][:stop]}


def summarize(st: Settings, results: dict) -> dict:
    """Best configuration per method (staying below tolerance first), the grid and the curves."""
    problem, _ = _problem(st.d, st.k, st.n, st.seed)
    runs = [results[c.key] for c in cells(st)]
    best: dict[str, Any] = {m: None for m in METHODS}
    for r in runs:
        if _better(r, best[r["method"]]):
            best[r["method"]] = r
    drop = ("gaps", "times", "method")
    result = {
        "settings": {
            "d": st.d,
            "k": st.k,
            "n": st.n,
            "data_seed": st.seed,
            "init_seed": st.seed + 1,
            "psi_true": 0.5,
            "W_true_column_scales": np.linspace(2.0, 1.0, st.k),
            "tol_per_point": TOL,
            "stop_gap": STOP_GAP,
            "max_iter": st.max_iter,
            "gap": "max_loglik/n - ELBO/n (closed form, >= 0)",
            "gradients": "closed-form ELBO, exact deterministic gradient (no Monte Carlo)",
            "curvatures": "closed forms: F_q (Eq 2), decoder Fisher, F_r exact in eps and x'",
            "iteration": "one gradient + one curvature + one update (two-step inner step = 1)",
            "grids": {m: method_grid(m, st.small_grid) for m in METHODS},
            "quick": st.small_grid,
        },
        "max_loglik_per_point": problem["max_loglik"],
        "mle_noise_variance": problem["psi_ml"],
        "methods": {m: {k: v for k, v in best[m].items() if k not in drop} for m in METHODS},
        "grid": [{"method": r["method"], **{k: v for k, v in r.items() if k not in drop}} for r in runs],
        "curves": {m: _curve(np.asarray(best[m]["gaps"]), np.asarray(best[m]["times"])) for m in METHODS},
    }
    return {"ppca": result}


def headline(doc: dict) -> str:
    """Iterations and seconds to the maximal log-likelihood per method."""
    r = doc["ppca"]
    s = r["settings"]
    lines = [
        "paper (note 000): the two-step natural gradient reaches the maximal log-likelihood fastest",
        f"pPCA d={s['d']} k={s['k']} n={s['n']}: max loglik/n = {r['max_loglik_per_point']:.6f}, "
        f"tolerance {s['tol_per_point']:g} per point, cap {s['max_iter']} iterations",
        f"{'method':<10}{'first hit':>12}{'stays':>12}{'seconds':>9}{'final gap':>11}"
        f"{'angle':>9}  config, status",
    ]
    for m in METHODS:
        row = r["methods"][m]
        it = "not reached" if row["iterations_to_tol"] is None else row["iterations_to_tol"]
        st = "-" if row["iterations_to_stay"] is None else row["iterations_to_stay"]
        sec = "-" if row["seconds_to_tol"] is None else f"{row['seconds_to_tol']:.2f}"
        gap = "-" if row["final_gap"] is None else f"{row['final_gap']:.2e}"
        ang = "-" if row["principal_angle"] is None else f"{row['principal_angle']:.1e}"
        lines.append(
            f"{m:<10}{it!s:>12}{st!s:>12}{sec:>9}{gap:>11}{ang:>9}  {row['config']}, {row['status']}"
        )
    return "\n".join(lines)


def plot(doc: dict, path) -> None:
    """Gap to the maximal log-likelihood against iterations and seconds (log scale)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    r = doc["ppca"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for m in METHODS:
        c = r["curves"][m]
        if not c["gap"]:
            continue
        g = np.clip(np.asarray(c["gap"], dtype=float), 1e-14, 1e8)
        cfg = ", ".join(f"{k}={v}" for k, v in r["methods"][m]["config"].items())
        label = f"{LABELS[m]} ({cfg})"
        axes[0].semilogy(c["iteration"], g, lw=1.2, label=label)
        axes[1].semilogy(c["seconds"], g, lw=1.2, label=label)
    for ax, xl in zip(axes, ("iteration", "seconds"), strict=True):
        ax.axhline(TOL, color="0.5", ls="--", lw=0.8)
        ax.set_xlabel(xl)
        ax.set_ylabel("max loglik/n - ELBO/n")
        ax.grid(True, which="major", alpha=0.3)
    s = r["settings"]
    axes[0].set_title(f"linear VAE on pPCA data (d={s['d']}, k={s['k']}, n={s['n']})")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110, format="png")
    plt.close(fig)


def markdown(t: dict) -> list[str]:
    """The RESULTS.md section of the pPCA experiment."""
    p = t["ppca"]
    s = p["settings"]
    out = [
        f"Data from a known pPCA model: d = {s['d']}, k = {s['k']}, n = {s['n']}, ψ = {s['psi_true']}, "
        f"data seed {s['data_seed']}. Linear VAE (Gaussian encoder, decoder N(Wz + b, ψI) with learned "
        f"ψ); {s['gradients']}; curvatures: {s['curvatures']}. Gap = {s['gap']}; maximal "
        f"log-likelihood per point {p['max_loglik_per_point']:.6f} (Tipping & Bishop closed form), "
        f"ψ_ML = {p['mle_noise_variance']:.6f}. Best configuration per method from a small grid; cap "
        f"{s['max_iter']} iterations.",
        "",
        "| method | configuration | iterations to gap < 1e-3 | seconds | final gap "
        "| principal angle to ML subspace | ψ |",
        "|---|---|---|---|---|---|---|",
    ]
    for m, row in p["methods"].items():
        it = row["iterations_to_tol"] if row.get("reached") else "not reached"
        sec = f"{row['seconds_to_tol']:.3g}" if row.get("reached") else "—"
        gap = "—" if row["final_gap"] is None else f"{row['final_gap']:.2g}"
        ang = "—" if row["principal_angle"] is None else f"{row['principal_angle']:.2g}"
        psi = "—" if row["noise_variance"] is None else f"{row['noise_variance']:.6f}"
        out.append(f"| {LABELS[m]} | {row['config']} | {it} | {sec} | {gap} | {ang} | {psi} |")
    return out


EXPERIMENT, run_experiment, main = harness.declare(
    __name__, name="ppca", result="latent_fisher", figure="ppca_convergence.png",
    title="6. Fisher metrics for latent-variable models: pPCA",
    description="pPCA: two-step NG, VPNG, q-NG and Adam to the maximal log-likelihood",
)  # fmt: skip
