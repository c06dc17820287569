"""Figure 3's report: protocol notes, the paper's claims checked on the curves, figure, RESULTS.md section.

Split from :mod:`refvpng.experiments.vmf`, which holds the protocol and the runs.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import numpy as np

from refvpng.experiments import _args as arg
from refvpng.experiments import harness

if TYPE_CHECKING:  # vmf.py imports this module
    import refvpng.experiments.vmf

__all__ = ["LABELS", "PAPER_CLAIMS", "notes", "claims", "headline", "plot", "markdown"]

LABELS = {
    "adam": "vanilla gradient",
    "q_natural": "traditional NG (q-Fisher on encoder, vanilla on θ)",
    "two_step": "two-step NG",
    "vpng_tridiag": "VPNG (tridiagonal K-FAC)",
    "vpng_blockdiag": "VPNG (block-diagonal K-FAC)",
}

PAPER_CLAIMS = (
    "Figure 3 (MovieLens 20M): VPNG reaches a higher train and test ELBO than the baselines; its "
    "advantage is largest at early iterations; the traditional natural gradient performs worst at "
    "the beginning."
)


@arg.checked(s=arg.settings, source=arg.text)
def notes(s: refvpng.experiments.vmf.Settings, source: str) -> str:
    """One paragraph on the run's protocol and how it differs from the paper's (stored in the JSON)."""
    return (
        f"Data: {source} (paper: MovieLens 20M, movies with >= 5,000 ratings). Ratings to counts "
        f"2 stars - 1 (whole stars give 1, 3, 5, 7, 9; the paper's half stars give 0..9), missing = 0. "
        f"Network {s.hidden} hidden units, d = {s.d_z} (paper: 300, 100). Batch {s.batch} users "
        f"(paper: 3,000), {s.samples} latent samples per user for the ELBO and its gradient, "
        f"{s.fisher_samples} predictive samples per user for F_r (Eq. 16). Budget {s.budget:g} s of "
        f"{'process CPU' if s.clock == 'cpu' else 'wall-clock'} time per method and step size, "
        f"evaluation excluded. {s.rule.capitalize()} on every direction; best step size of "
        f"{list(s.lrs)} by final train ELBO; K-FAC damping {s.damping:g}, EMA decay {s.decay:g}, "
        f"refresh every {s.inverse_every} steps, factors wider than {s.lowrank_threshold} truncated "
        f"to rank ceil({s.lowrank_c:g} ln n). ELBOs in nats per user, {s.eval_samples} fixed noise "
        "draws per user; train ELBO on a fixed train subset the size of the test set."
    )


def _on_grid(curve, grid, col):
    c = np.asarray(curve, dtype=float)
    return np.interp(grid, c[:, 0], c[:, col])


@arg.checked(doc=arg.mapping)
def claims(doc: dict) -> dict:
    """Check the paper's three claims on the curves of the best step size of each method.

    Returns
    -------
    dict
        ``ahead_train``, ``ahead_test`` (VPNG's final ELBO above every other method's),
        ``gap_largest_early`` (VPNG's lead over the best other method, on a common time grid,
        is positive somewhere and largest in the first half of the budget),
        ``ng_worst_at_start`` (``q_natural`` has the lowest train ELBO at the first evaluation
        after the start); each ``None`` when the methods it needs were not run; and ``gap`` (the
        lead on the time grid).
    """
    methods = [m for m in doc["settings"]["methods"] if m in doc]
    others = [m for m in methods if m != "vpng_tridiag"]
    out: dict = dict.fromkeys(("ahead_train", "ahead_test", "gap_largest_early", "ng_worst_at_start"))
    if "vpng_tridiag" in methods and others:
        v = doc["vpng_tridiag"]
        out["ahead_train"] = all(v["final_train_elbo"] > doc[m]["final_train_elbo"] for m in others)
        out["ahead_test"] = all(v["final_test_elbo"] > doc[m]["final_test_elbo"] for m in others)
        end = min(np.asarray(doc[m]["curve"])[-1, 0] for m in methods)
        grid = np.linspace(0.0, end, 21)[1:]
        best_other = np.max([_on_grid(doc[m]["curve"], grid, 1) for m in others], axis=0)
        gap = _on_grid(v["curve"], grid, 1) - best_other
        # an advantage must exist to be largest early: a lead that is negative throughout fails
        out["gap_largest_early"] = bool(gap.max() > 0.0 and np.argmax(gap) < len(grid) // 2)
        out["gap"] = [[float(t), float(g)] for t, g in zip(grid, gap, strict=True)]
    if "q_natural" in methods and others:
        first = {m: doc[m]["curve"][min(1, len(doc[m]["curve"]) - 1)][1] for m in methods}
        out["ng_worst_at_start"] = min(first, key=lambda m: first[m]) == "q_natural"
    return out


def _verdict(v) -> str:
    return "not run" if v is None else ("holds" if v else "does not hold")


@arg.checked(doc=arg.mapping)
def headline(doc: dict) -> str:
    """Final train and test ELBO per method and the claims, beside the paper's."""
    lines = [
        f"paper: {PAPER_CLAIMS}",
        f"{'method':14s} {'lr':>8s} {'s/iter':>8s} {'train':>10s} {'test':>10s}",
    ]
    for m in doc["settings"]["methods"]:
        r = doc[m]
        lines.append(
            f"{m:14s} {r['lr']:8g} {r['sec_per_iter']:8.3f} {r['final_train_elbo']:10.2f} "
            f"{r['final_test_elbo']:10.2f}"
        )
    c = claims(doc)
    lines.append(
        "here: "
        + ", ".join(f"{k} {_verdict(c[k])}" for k in ("ahead_train", "ahead_test", "gap_largest_early"))
        + f", ng_worst_at_start {_verdict(c['ng_worst_at_start'])}"
    )
    return "\n".join(lines)


def plot(doc: dict, path: str | os.PathLike[str]) -> None:
    """Train and test ELBO against training seconds (top) and iterations (bottom), one line per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(10, 7), sharey="col")
    methods = [m for m in LABELS if m in doc]
    for m in methods:
        c = np.asarray(doc[m]["curve"])
        its = np.asarray(doc[m].get("curve_steps", np.arange(len(c))))
        for col, name in ((1, "train"), (2, "test")):
            label = f"{LABELS[m]}, lr={doc[m]['lr']:g}"
            axes[0, col - 1].plot(c[:, 0], c[:, col], marker=".", label=label)
            axes[1, col - 1].plot(its, c[:, col], marker=".", label=label)
            axes[0, col - 1].set_title(f"{name} ELBO")
    vals = np.concatenate([np.asarray(doc[m]["curve"])[1:, 1:].ravel() for m in methods])
    vals = vals[np.isfinite(vals)]
    for ax_row, xlab in zip(
        axes, (f"training seconds ({doc['settings']['clock']} clock)", "iterations"), strict=True
    ):
        for ax in ax_row:
            ax.set_xlabel(xlab)
            ax.grid(alpha=0.3)
            if vals.size and vals.max() > vals.min():
                pad = 0.05 * (vals.max() - vals.min())
                ax.set_ylim(vals.min() - pad, vals.max() + pad)
        ax_row[0].set_ylabel("ELBO (nats per user)")
    axes[1, 1].legend(fontsize=7, loc="lower right")
    fig.suptitle("Poisson MF on MovieLens (Tang & Ranganath 2019, Figure 3 protocol)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110, format="png")
    plt.close(fig)


def _diverged(t: dict) -> str:
    """``"method lr, lr; ..."`` for the grid cells that failed."""
    parts = []
    for m in t["settings"]["methods"]:
        bad = [g["lr"] for g in t[m].get("grid", ()) if g.get("failed")]
        if bad:
            parts.append(f"{m} " + ", ".join(f"{lr:g}" for lr in bad))
    return "; ".join(parts)


@arg.checked(t=arg.mapping)
def markdown(t: dict) -> list[str]:
    """The RESULTS.md section of Figure 3 (the speed table comes from ``bench_vmf.json``)."""
    fmt = harness.fmt
    c = claims(t)
    out = [f"Data: {t['data_source']}.", "", f"Paper's claims: {PAPER_CLAIMS}", ""]
    out += [
        "| method | step size | iterations | s / iteration | final train ELBO | final test ELBO |",
        "|---|---|---|---|---|---|",
    ]
    for m in t["settings"]["methods"]:
        r = t[m]
        out.append(
            f"| {LABELS[m]} | {r['lr']:g} | {r['steps']} | {r['sec_per_iter']:.4g} | "
            f"{fmt(r['final_train_elbo'], 2)} | {fmt(r['final_test_elbo'], 2)} |"
        )
    out += [
        "",
        f"Here: VPNG ahead at the end on train {_verdict(c['ahead_train'])}, on test "
        f"{_verdict(c['ahead_test'])}; its lead largest in the first half of the budget "
        f"{_verdict(c['gap_largest_early'])}; the traditional NG worst at the first evaluation "
        f"{_verdict(c['ng_worst_at_start'])}. Best step size at an edge of the grid (not bracketed): "
        + (", ".join(m for m in t["settings"]["methods"] if t[m].get("best_at_grid_edge")) or "none")
        + ". Step sizes whose run diverged (an overflow the checks caught; not eligible): "
        + (_diverged(t) or "none")
        + ".",
        "",
        str(t["notes"]),
    ]
    return out
