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
- NG is the q-natural gradient :math:`F_q^{-1}\nabla\mathcal L` with the exact diagonal
  :math:`F_q` of the mean-field family;
- the step-size rule acts on the direction (RMSProp/Adam statistics of the preconditioned
  direction); per method the (rule, step size) with the best mean *train* AUC is reported, so
  the test set plays no part in the selection.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from refvpng.curvature.fisher import q_fisher, vp_fisher_exact
from refvpng.elbo import elbo_value_and_grad
from refvpng.experiments._io import (
    default_results_dir,
    machine_info,
    progress,
    read_json,
    write_json_atomic,
)
from refvpng.experiments.metrics import roc_auc
from refvpng.models import logistic as lr_model
from refvpng.optim import make_optimizer, run

__all__ = ["PAPER", "make_problem", "run_one", "run_experiment", "main"]

METHODS = ("gradient", "ng", "vpng")
DIRECTION = {"gradient": "gradient", "ng": "q_natural", "vpng": "vpng"}
PAPER = {
    "gradient": {"train_auc": [0.734, 0.017], "test_auc": [0.718, 0.022]},
    "ng": {"train_auc": [0.744, 0.043], "test_auc": [0.751, 0.047]},
    "vpng": {"train_auc": [0.972, 0.011], "test_auc": [0.967, 0.011]},
}
SCALE = "softplus"
PRIOR_STD = 100.0


def make_problem(n=500, data_seed=0, split_seed=1):
    """The data set and its fixed train/test split."""
    x, y = lr_model.make_data(np.random.default_rng(data_seed), n)
    design = lr_model.add_bias(x)
    tr, te = lr_model.train_test_split(np.random.default_rng(split_seed), n, 0.8)
    return {"design_train": design[tr], "y_train": y[tr], "design_test": design[te], "y_test": y[te]}


def run_one(prob, method, rule, lr, run_seed, *, n_iter=2000, n_mc=10, damping=1e-3, eval_every=100):
    """One run of one method: AUC of the mean prediction every ``eval_every`` iterations.

    Returns a dict with ``iters``, ``train_auc``, ``test_auc`` (lists) and ``final_elbo``.
    """
    dtr, ytr = prob["design_train"], prob["y_train"]
    dim = dtr.shape[1]
    model = lr_model.make_model(dim, PRIOR_STD, SCALE)  # hand-derived hooks: ELBO gradient, J
    labels = ytr[:, None]

    def objective_and_grad(lam, rng):
        eps = rng.standard_normal((n_mc, dim))
        return elbo_value_and_grad(model, lam, labels, eps, dtr)

    if method == "vpng":

        def curvature_fn(lam, rng):
            return vp_fisher_exact(model, lam, labels, rng.standard_normal((n_mc, dim)), dtr)
    elif method == "ng":

        def curvature_fn(lam, rng):
            return q_fisher(model, lam, labels)
    else:
        curvature_fn = None

    opt = make_optimizer(DIRECTION[method], rule, lr, damping=damping if method == "vpng" else 0.0)
    init_rng = np.random.default_rng([run_seed, 999])
    lam0 = np.concatenate([init_rng.standard_normal(dim), np.full(dim, np.log(np.expm1(1.0)))])
    rec = {"iters": [], "train_auc": [], "test_auc": []}

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
    except ValueError as exc:  # a singular curvature or a non-finite gradient: a failed run
        rec["status"] = f"failed: {exc}"
        rec["final_elbo"] = None
    return rec


def _score(rec):
    """Mean of the last 5 recorded AUCs (the paper's summary), or NaN for a failed run."""
    if rec["status"] != "ok" or len(rec["train_auc"]) < 5:
        return np.nan, np.nan
    return float(np.mean(rec["train_auc"][-5:])), float(np.mean(rec["test_auc"][-5:]))


def _config_key(method, rule, lr, damping):
    return f"{method}|{rule}|{lr:.6g}|mu={damping:.6g}"


def _configs(settings):
    """(method, rule, step size, damping); damping only varies for VPNG (0 for the others)."""
    out = []
    for method in METHODS:
        mus = settings["dampings"] if method == "vpng" else [0.0]
        out += [(method, r, lr, mu) for r in settings["rules"] for lr in settings["lrs"] for mu in mus]
    return out


def run_experiment(quick=False, out_dir=None, jobs=1, plot=True):
    """Run the grid, keep per method the best (rule, step size) by train AUC, write the results.

    Progress is saved after every configuration to ``blr_table1.partial.json``; a rerun skips
    the configurations already there (delete it to start afresh).
    """
    t0 = time.perf_counter()
    out_dir = Path(out_dir) if out_dir is not None else default_results_dir()
    if quick:
        settings = {
            "n": 150,
            "n_runs": 2,
            "n_iter": 300,
            "lrs": [0.03, 0.3],
            "rules": ["adam"],
            "eval_every": 20,
            "dampings": [1e-3, 1e-1],
        }
    else:
        settings = {
            "n": 500,
            "n_runs": 10,
            "n_iter": 2000,
            "lrs": [0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0],
            "rules": ["rmsprop", "adam"],
            "dampings": [1e-3, 1e-2, 1e-1, 1.0],
        }
    settings.setdefault("eval_every", 100)
    settings.update(
        {
            "n_mc": 10,
            "scale": SCALE,
            "prior_std": PRIOR_STD,
            "data_seed": 0,
            "split_seed": 1,
            "quick": quick,
            "selection": "best mean train AUC over (rule, step size, and damping for VPNG)",
        }
    )
    prob = make_problem(settings["n"])
    partial_path = out_dir / ("blr_table1.partial.json" if not quick else "blr_quick.partial.json")
    done = read_json(partial_path) or {}
    configs = [c for c in _configs(settings) if _config_key(*c) not in done]

    def work(cfg):
        method, rule, lr, mu = cfg
        recs = [
            run_one(
                prob,
                method,
                rule,
                lr,
                r,
                n_iter=settings["n_iter"],
                n_mc=settings["n_mc"],
                damping=mu,
                eval_every=settings["eval_every"],
            )
            for r in range(settings["n_runs"])
        ]
        return _config_key(*cfg), recs

    if jobs > 1 and configs:
        try:
            from joblib import Parallel, delayed
        except ImportError:
            jobs = 1
    if jobs > 1 and configs:
        batches = [configs[i : i + 2 * jobs] for i in range(0, len(configs), 2 * jobs)]
        for batch in progress(batches, desc="blr grid"):
            for key, recs in Parallel(n_jobs=jobs)(delayed(work)(c) for c in batch):
                done[key] = recs
            write_json_atomic(partial_path, done)
    else:
        for cfg in progress(configs, desc="blr grid"):
            key, recs = work(cfg)
            done[key] = recs
            write_json_atomic(partial_path, done)

    table, grid = {}, []
    for method in METHODS:
        best = None
        for _, rule, lr, mu in (c for c in _configs(settings) if c[0] == method):
            recs = done[_config_key(method, rule, lr, mu)]
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
    result = {
        **table,
        "paper": PAPER,
        "grid": grid,
        "settings": settings,
        "seconds": time.perf_counter() - t0,
        "machine": machine_info(),
    }
    name = "blr_table1.json" if not quick else "blr_quick.json"
    write_json_atomic(out_dir / name, result)
    if plot:
        _plot(result, out_dir / ("blr_test_auc.png" if not quick else "blr_quick.png"))
    return result


def _plot(result, png_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    labels = {"gradient": "Gradient", "ng": "NG (q-Fisher)", "vpng": "VPNG"}
    for m in METHODS:
        r = result.get(m, {})
        if "iters" not in r:
            continue
        it, mu, sd = (
            np.array(r["iters"]),
            np.array(r["test_auc_curve_mean"]),
            np.array(r["test_auc_curve_std"]),
        )
        ax.plot(it, mu, label=f"{labels[m]} ({r['rule']}, lr={r['lr']:g}, mu={r['damping']:g})")
        ax.fill_between(it, mu - sd, mu + sd, alpha=0.2)
    ax.set_xlabel("iteration")
    ax.set_ylabel("test AUC (mean prediction)")
    ax.set_title("Bayesian logistic regression, mean ± std over runs")
    ax.legend(fontsize=8)
    fig.tight_layout()
    png_path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png_path, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    """``refvpng reproduce blr [--quick] [--jobs N] [--out DIR] [--no-plot]``."""
    p = argparse.ArgumentParser(prog="refvpng reproduce blr", description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="small version (smoke test)")
    p.add_argument("--jobs", type=int, default=1, help="parallel processes for the grid (joblib)")
    p.add_argument("--out", default=None, help="results folder (default validation/results)")
    p.add_argument("--no-plot", action="store_true")
    a = p.parse_args(argv)
    r = run_experiment(quick=a.quick, out_dir=a.out, jobs=a.jobs, plot=not a.no_plot)
    print(
        f"{'method':<10}{'train AUC (ours)':>20}{'test AUC (ours)':>20}{'train (paper)':>16}"
        f"{'test (paper)':>16}  rule, lr"
    )
    for m in METHODS:
        t = r[m]
        if "train_auc_mean" not in t:
            print(f"{m:<10} {t['status']}")
            continue
        pp = PAPER[m]
        print(
            f"{m:<10}{t['train_auc_mean']:>12.3f} ± {t['train_auc_std']:.3f}"
            f"{t['test_auc_mean']:>12.3f} ± {t['test_auc_std']:.3f}"
            f"{pp['train_auc'][0]:>10.3f} ± {pp['train_auc'][1]:.3f}"
            f"{pp['test_auc'][0]:>10.3f} ± {pp['test_auc'][1]:.3f}"
            f"  {t['rule']}, {t['lr']:g}, mu={t['damping']:g}"
        )
    return 0
