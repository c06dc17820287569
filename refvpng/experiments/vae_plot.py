"""Figure 2's figure: ELBO against training seconds and iterations, with a zoom on the leaders.

The curves come from the run records summarised by :mod:`refvpng.experiments.vae_report`
(labels and method order are its); a pilot-stage document gets the final train ELBO against
the step size instead.
"""

from __future__ import annotations

import os

import numpy as np

from refvpng.experiments.vae_report import LABELS, METHOD_ORDER

__all__ = ["ZOOM_NATS", "plot"]


ZOOM_NATS = 20.0
"""The zoomed panels of :func:`plot` span the final ELBOs within this many nats of the best."""


def _zoom_range(finals: dict[str, float]) -> tuple[float, float, list[str]] | None:
    """y-range of the zoomed panels: the final values within ZOOM_NATS of the best, and the rest."""
    best = max(finals.values(), default=np.nan)
    if not np.isfinite(best):
        return None
    near = [v for v in finals.values() if v >= best - ZOOM_NATS]
    below = [m for m, v in finals.items() if v < best - ZOOM_NATS]
    return min(near) - 0.5 * ZOOM_NATS, best + 0.1 * ZOOM_NATS, below


def plot(doc: dict, path: str | os.PathLike[str]) -> None:
    """Train and test ELBO against training seconds and iterations, one line per method.

    A third column repeats the curves against seconds on a range set by the final values
    within :data:`ZOOM_NATS` of the best, naming the methods that end below it.

    A pilot-stage document gets the final train ELBO against the step size instead.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if doc["settings"].get("stage") == "pilot":
        fig, ax = plt.subplots(figsize=(5, 4))
        for m, p in doc["pilot"].items():
            grid = p["grid"]
            ax.semilogx([g["lr"] for g in grid], [g["final_train_elbo"] for g in grid], "o-", label=m)
        ax.set(xlabel="step size", ylabel="final train ELBO (pilot)")
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(path, dpi=110, format="png")
        plt.close(fig)
        return
    shown = [m for m in METHOD_ORDER if m in doc] + [m for m in LABELS if m in doc and m not in METHOD_ORDER]
    fig, axes = plt.subplots(2, 3, figsize=(15, 7))
    for m in shown:
        c = np.asarray(doc[m]["curve"])
        steps = np.asarray(doc[m].get("curve_steps", np.full(len(c), np.nan)), dtype=float)
        for row, col in enumerate((1, 2)):
            label = f"{LABELS[m]}, lr={doc[m]['lr']:g}"
            axes[row, 0].plot(c[:, 0], c[:, col], marker=".", label=label)
            axes[row, 1].plot(steps, c[:, col], marker=".", label=label)
            axes[row, 2].plot(c[:, 0], c[:, col], marker=".", label=label)
    s = doc["settings"]
    curves = [np.asarray(doc[m]["curve"]) for m in shown]
    lo = min((np.min(c[1:, 1:]) for c in curves if len(c) > 1), default=np.nan)
    hi = max((np.max(c[:, 1:]) for c in curves), default=np.nan)
    for row, name in enumerate(("train", "test")):
        axes[row, 0].set_xlabel(f"training seconds ({s['clock']} clock)")
        axes[row, 1].set_xlabel("iterations")
        axes[row, 2].set_xlabel(f"training seconds ({s['clock']} clock)")
        for ax in axes[row]:
            ax.set_title(f"{name} ELBO")
            ax.grid(alpha=0.3)
        axes[row, 0].set_ylabel("ELBO (nats per image)")
        if np.isfinite(lo) and np.isfinite(hi) and hi > lo:
            for ax in axes[row, :2]:
                ax.set_ylim(lo - 0.05 * (hi - lo), hi + 0.05 * (hi - lo))
        finals = {m: float(np.asarray(doc[m]["curve"])[-1, row + 1]) for m in shown}
        zoom = _zoom_range(finals)
        if zoom is not None:
            axes[row, 2].set_ylim(zoom[0], zoom[1])
            note = f"; below: {', '.join(LABELS[m].split(' (')[0] for m in zoom[2])}" if zoom[2] else ""
            axes[row, 2].set_title(f"{name} ELBO (zoom{note})", fontsize=9)
    axes[1, 1].legend(fontsize=7, loc="lower right")
    fig.suptitle("VAE on binarized MNIST (Tang & Ranganath 2019, Figure 2 protocol)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110, format="png")
    plt.close(fig)
