r"""Table 1 of Tang & Ranganath (2019): Bayesian logistic regression (Section 5.1).

Protocol, as the paper specifies it:

- data: 500 points, :math:`a_i \sim U[-5,5]`, :math:`x_i = (a_i, a_i/2, a_i/3, a_i/4) +
  \epsilon_i`, :math:`\epsilon_i \sim U[-0.005, 0.005]^4`, :math:`y_i = 1[\langle(1,-2,-3,4),
  x_i\rangle \ge 0]`; one fixed 80/20 train/test split (data seed 0, split seed 1);
- model: logistic regression with a bias (5 weights), prior :math:`N(0, 100^2 I)`, mean-field
  Gaussian :math:`q`;
- 2000 iterations, 10 runs, RMSProp and Adam, a grid of step sizes; 10 Monte Carlo samples for
  the ELBO, its gradient and :math:`F_r`; AUC of the mean prediction every 100 iterations; the
  reported number is the mean over the 10 runs of the average of the last 5 AUC values.

Choices the paper leaves open (stated here and in the results):

- scale coordinate :math:`\sigma = \mathrm{softplus}(\rho)`; initialisation
  :math:`m \sim N(0, I)` (seeded per run), :math:`\sigma = 1`;
- one shared draw of the weights per Monte Carlo sample (Eq 15), fresh draws every iteration,
  separate draws for the gradient and for :math:`F_r` (Algorithm 1);
- :math:`F_r` exact in :math:`y'` (Bernoulli output Fisher, "we do not need Monte Carlo
  samples of predicted data"); a constant damping :math:`\mu` for VPNG, as the paper says,
  whose value the paper does not report: it is a grid dimension like the step size
  (``dampings``), selected by train AUC;
- ``q_natural`` (the paper's "NG") is the q-natural gradient :math:`F_q^{-1}\nabla\mathcal L`
  with the exact diagonal :math:`F_q` of the mean-field family;
- the step-size rule acts on the direction (RMSProp/Adam statistics of the preconditioned
  direction); per method the (rule, step size) with the best mean *train* AUC is reported, so
  the test set plays no part in the selection.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import numpy as np

from refvpng._checks import as_int
from refvpng.curvature.fisher import q_fisher, vp_fisher_exact
from refvpng.elbo import elbo_value_and_grad
from refvpng.experiments import harness
from refvpng.experiments.harness import Cell
from refvpng.experiments.metrics import roc_auc
from refvpng.models import logistic as lr_model
from refvpng.optim import make_optimizer, run

__all__ = ["PAPER", "Settings", "EXPERIMENT", "make_problem", "run_one", "run_experiment", "main"]

METHODS = ("gradient", "q_natural", "vpng")
LABELS = {"gradient": "Gradient", "q_natural": "NG (q-Fisher)", "vpng": "VPNG"}
PAPER = {
    "gradient": {"train_auc": [0.734, 0.017], "test_auc": [0.718, 0.022]},
    "q_natural": {"train_auc": [0.744, 0.043], "test_auc": [0.751, 0.047]},
    "vpng": {"train_auc": [0.972, 0.011], "test_auc": [0.967, 0.011]},
}


@dataclasses.dataclass(frozen=True)
class Settings:
    """Table 1 settings; the defaults are the paper's protocol (see the module docstring)."""

    n: int = dataclasses.field(default=500, metadata={"help": "data points (80/20 split)"})
    n_runs: int = dataclasses.field(
        default=10, metadata={"help": "runs (seeds) per configuration", "grid": True}
    )
    n_iter: int = dataclasses.field(default=2000, metadata={"help": "iterations per run"})
    lrs: tuple[float, ...] = dataclasses.field(
        default=(0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0),
        metadata={"help": "step-size grid", "grid": True},
    )
    rules: tuple[str, ...] = dataclasses.field(
        default=("rmsprop", "adam"), metadata={"help": "step-size rules", "grid": True}
    )
    dampings: tuple[float, ...] = dataclasses.field(
        default=(1e-3, 1e-2, 1e-1, 1.0), metadata={"help": "VPNG damping grid (Eq 17)", "grid": True}
    )
    eval_every: int = dataclasses.field(default=100, metadata={"help": "iterations between AUCs"})
    n_mc: int = dataclasses.field(default=10, metadata={"help": "Monte Carlo samples"})
    scale: str = dataclasses.field(default="softplus", metadata={"help": "sigma coordinate"})
    prior_std: float = dataclasses.field(default=100.0, metadata={"help": "prior std sigma_0"})
    data_seed: int = 0
    split_seed: int = 1


QUICK = {
    "n": 150,
    "n_runs": 2,
    "n_iter": 300,
    "lrs": (0.03, 0.3),
    "rules": ("adam",),
    "eval_every": 20,
    "dampings": (1e-3, 1e-1),
}


@functools.lru_cache(maxsize=4)
def _problem(n, data_seed, split_seed):
    return make_problem(n, data_seed, split_seed)


def make_problem(n: int = 500, data_seed: int = 0, split_seed: int = 1) -> dict[str, np.ndarray]:
    """The data set and its fixed train/test split."""
    data_seed = as_int(data_seed, "data_seed", minimum=0)
    split_seed = as_int(split_seed, "split_seed", minimum=0)
    x, y = lr_model.make_data(np.random.default_rng(data_seed), n)
    design = lr_model.add_bias(x)
    tr, te = lr_model.train_test_split(np.random.default_rng(split_seed), n, 0.8)
    return {"design_train": design[tr], "y_train": y[tr], "design_test": design[te], "y_test": y[te]}


def run_one(
    prob: dict[str, np.ndarray],
    method: str,
    rule: str,
    lr: float,
    run_seed: int,
    *,
    n_iter: int = 2000,
    n_mc: int = 10,
    damping: float = 1e-3,
    eval_every: int = 100,
    scale: str = "softplus",
    prior_std: float = 100.0,
) -> dict:
    """One run of one method: AUC of the mean prediction every ``eval_every`` iterations.

    Returns a dict with ``iters``, ``train_auc``, ``test_auc`` (lists) and ``final_elbo``.
    """
    dtr, ytr = prob["design_train"], prob["y_train"]
    dim = dtr.shape[1]
    model = lr_model.make_model(dim, prior_std, scale)  # hand-derived hooks: ELBO gradient, J
    labels = ytr[:, None]

    def objective_and_grad(lam, rng):
        eps = rng.standard_normal((n_mc, dim))
        return elbo_value_and_grad(model, lam, labels, eps, dtr)

    curvature_fn: Callable[[np.ndarray, np.random.Generator], np.ndarray] | None
    if method == "vpng":

        def curvature_fn(lam, rng):
            return vp_fisher_exact(model, lam, labels, rng.standard_normal((n_mc, dim)), dtr)
    elif method == "q_natural":

        def curvature_fn(lam, rng):
            return q_fisher(model, lam, labels)
    else:
        curvature_fn = None

    opt = make_optimizer(method, rule, lr, damping=damping if method == "vpng" else 0.0)
    init_rng = np.random.default_rng([run_seed, 999])
    lam0 = np.concatenate([init_rng.standard_normal(dim), np.full(dim, np.log(np.expm1(1.0)))])
    rec: dict[str, Any] = {"iters": [], "train_auc": [], "test_auc": []}

    def record(k, lam):
        m = lam[:dim]
        for key, d, y in (("train_auc", dtr, ytr), ("test_auc", prob["design_test"], prob["y_test"])):
            rec[key].append(roc_auc(y, d @ m))  # AUC of the mean prediction sigmoid(a^T m)
        rec["iters"].append(k)

    def callback(k, lam, state, value):
        if k > 0 and k % eval_every == 0:
            record(k, lam)
        if not np.isfinite(value):
            return True
        return None

    try:
        res = run(
            objective_and_grad, lam0, opt, n_iter, curvature_fn=curvature_fn, seed=run_seed, callback=callback
        )
        record(n_iter, res.params)
        rec["final_elbo"] = float(res.history[-1])
        rec["status"] = "ok"
    except (ValueError, FloatingPointError) as exc:  # singular curvature, non-finite ELBO: a failed run
        rec["status"] = f"failed: {exc}"
        rec["final_elbo"] = None
    return rec


def _score(rec):
    """Mean of the last 5 recorded AUCs (the paper's summary), or NaN for a failed run."""
    if rec["status"] != "ok" or len(rec["train_auc"]) < 5:
        return np.nan, np.nan
    return float(np.mean(rec["train_auc"][-5:])), float(np.mean(rec["test_auc"][-5:]))


def _configs(st: Settings):
    """(method, rule, step size, damping); damping only varies for VPNG (0 for the others)."""
    out = []
    for method in METHODS:
        mus = st.dampings if method == "vpng" else (0.0,)
        out += [(method, r, lr, mu) for r in st.rules for lr in st.lrs for mu in mus]
    return out


def _key(method, rule, lr, mu, run_seed):
    return f"{method}-{rule}-lr{lr:.6g}-mu{mu:.6g}-run{run_seed}"


def cells(st: Settings) -> list[Cell]:
    """One cell per (method, rule, step size, damping, run): resumable at the granularity of a run."""
    return [
        Cell(_key(m, r, lr, mu, k), {"method": m, "rule": r, "lr": lr, "damping": mu, "run": k})
        for m, r, lr, mu in _configs(st)
        for k in range(st.n_runs)
    ]


def run_cell(st: Settings, cell: Cell) -> dict:
    """One run of one configuration (a pure function of the settings and the cell)."""
    p = cell.params
    return run_one(
        _problem(st.n, st.data_seed, st.split_seed),
        p["method"],
        p["rule"],
        p["lr"],
        p["run"],
        n_iter=st.n_iter,
        n_mc=st.n_mc,
        damping=p["damping"],
        eval_every=st.eval_every,
        scale=st.scale,
        prior_std=st.prior_std,
    )


def summarize(st: Settings, results: dict) -> dict:
    """Per method the best (rule, step size, damping) by mean train AUC, and the whole grid."""
    table: dict[str, dict[str, Any]] = {}
    grid = []
    for method in METHODS:
        best = None
        for _, rule, lr, mu in (c for c in _configs(st) if c[0] == method):
            recs = [results[_key(method, rule, lr, mu, k)] for k in range(st.n_runs)]
            scores = np.array([_score(r) for r in recs])
            n_ok = int(np.sum(np.isfinite(scores[:, 0])))
            row = {
                "method": method,
                "rule": rule,
                "lr": lr,
                "damping": mu,
                "runs_ok": n_ok,
                "train_auc_mean": float(np.nanmean(scores[:, 0])) if n_ok else None,
                "test_auc_mean": float(np.nanmean(scores[:, 1])) if n_ok else None,
            }
            grid.append(row)
            if n_ok == len(recs) and (best is None or row["train_auc_mean"] > best[0]):
                best = (row["train_auc_mean"], rule, lr, mu, scores, recs)
        if best is None:
            table[method] = {"status": "every configuration had a failed run"}
            continue
        _, rule, lr, mu, scores, recs = best
        curve = np.array([r["test_auc"] for r in recs])
        table[method] = {
            "train_auc_mean": float(scores[:, 0].mean()),
            "train_auc_std": float(scores[:, 0].std()),
            "test_auc_mean": float(scores[:, 1].mean()),
            "test_auc_std": float(scores[:, 1].std()),
            "rule": rule,
            "lr": lr,
            "damping": mu,
            "iters": recs[0]["iters"],
            "test_auc_curve_mean": curve.mean(axis=0),
            "test_auc_curve_std": curve.std(axis=0),
            "final_elbo_mean": float(np.mean([r["final_elbo"] for r in recs])),
        }
    return {
        **table,
        "paper": PAPER,
        "grid": grid,
        "selection": "best mean train AUC over (rule, step size, and damping for VPNG)",
    }


def plot(doc: dict, png_path) -> None:
    """Test AUC against iterations for each method's selected configuration."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for m in METHODS:
        r = doc.get(m, {})
        if "iters" not in r:
            continue
        it, mu, sd = (
            np.array(r["iters"]),
            np.array(r["test_auc_curve_mean"]),
            np.array(r["test_auc_curve_std"]),
        )
        ax.plot(it, mu, label=f"{LABELS[m]} ({r['rule']}, lr={r['lr']:g}, mu={r['damping']:g})")
        ax.fill_between(it, mu - sd, mu + sd, alpha=0.2)
    ax.set_xlabel("iteration")
    ax.set_ylabel("test AUC (mean prediction)")
    ax.set_title("Bayesian logistic regression, mean ± std over runs")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(png_path, dpi=110, format="png")
    plt.close(fig)


def headline(doc: dict) -> str:
    """Table 1 beside the paper's numbers."""
    lines = [
        f"{'method':<10}{'train AUC (ours)':>20}{'test AUC (ours)':>20}{'train (paper)':>16}"
        f"{'test (paper)':>16}  rule, lr, damping"
    ]
    for m in METHODS:
        t = doc[m]
        if "train_auc_mean" not in t:
            lines.append(f"{m:<10} {t['status']}")
            continue
        pp = PAPER[m]
        lines.append(
            f"{m:<10}{t['train_auc_mean']:>12.3f} ± {t['train_auc_std']:.3f}"
            f"{t['test_auc_mean']:>12.3f} ± {t['test_auc_std']:.3f}"
            f"{pp['train_auc'][0]:>10.3f} ± {pp['train_auc'][1]:.3f}"
            f"{pp['test_auc'][0]:>10.3f} ± {pp['test_auc'][1]:.3f}"
            f"  {t['rule']}, {t['lr']:g}, {t['damping']:g}"
        )
    return "\n".join(lines)


def markdown(t: dict) -> list[str]:
    """The RESULTS.md section of Table 1."""
    fmt = harness.fmt
    s = t["settings"]
    out = [
        f"Protocol as in Section 5.1: {s['n']} points, 80/20 split, prior N(0, {s['prior_std']:g}² I), "
        f"{s['n_iter']} iterations, {s['n_runs']} runs, {s['n_mc']} Monte Carlo samples, rules "
        f"{', '.join(s['rules'])}, step sizes {s['lrs']}, VPNG damping μ in {s['dampings']}; selection: "
        f"{t['selection']}; σ = {s['scale']}(ρ). AUC of the mean prediction, mean of the last 5 "
        f"evaluations (every {s['eval_every']} iterations), mean ± std over runs.",
        "",
        "| method | train AUC (ours) | test AUC (ours) | train AUC (paper) | test AUC (paper) "
        "| rule, step size, μ |",
        "|---|---|---|---|---|---|",
    ]
    for m in METHODS:
        row, pp = t[m], t["paper"][m]
        paper = (
            f"{pp['train_auc'][0]:.3f} ± {pp['train_auc'][1]:.3f} | "
            f"{pp['test_auc'][0]:.3f} ± {pp['test_auc'][1]:.3f}"
        )
        if "train_auc_mean" not in row:
            out.append(f"| {LABELS[m]} | {row.get('status')} | | {paper} | |")
            continue
        out.append(
            f"| {LABELS[m]} | {row['train_auc_mean']:.3f} ± {row['train_auc_std']:.3f} | "
            f"{row['test_auc_mean']:.3f} ± {row['test_auc_std']:.3f} | {paper} | "
            f"{row['rule']}, {row['lr']:g}, {row['damping']:g} |"
        )
    out += [
        "",
        "Full grid (mean train / test AUC over runs; runs ok counts runs that finished):",
        "",
        "| method | rule | step size | μ | runs ok | train AUC | test AUC |",
        "|---|---|---|---|---|---|---|",
    ]
    for g in t["grid"]:
        out.append(
            f"| {g['method']} | {g['rule']} | {g['lr']:g} | {g['damping']:g} | {g['runs_ok']} | "
            f"{fmt(g['train_auc_mean'])} | {fmt(g['test_auc_mean'])} |"
        )
    return out


EXPERIMENT, run_experiment, main = harness.declare(
    __name__, name="blr", result="blr_table1", figure="blr_test_auc.png",
    title="4. Table 1: Bayesian logistic regression",
    description=__doc__.split("\n")[0],
)  # fmt: skip
