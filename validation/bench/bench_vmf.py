"""Per-iteration cost of the Figure 3 methods at the run's sizes, as a ratio to one Adam iteration.

``python validation/bench/bench_vmf.py [--quick] [--seconds S] [--data SOURCE] [--out PATH]``

Each method of :mod:`refvpng.experiments.vmf` trains for ``--seconds`` of process CPU time with
the run's settings (batch 3,000 users, 300 hidden units, d = 100, the run's samples and K-FAC
refresh period; :class:`refvpng.experiments.vmf.Settings` defaults) through the experiment's own
loop (:func:`refvpng.experiments.chain_training.run_training`), so an iteration is exactly one
iteration of the run: minibatch, forward and backward passes, Kronecker factors, EMA, solve,
step-size rule, with the refreshes of the decompositions amortised over the steps taken.
Reported per method: CPU and wall seconds per iteration (evaluation excluded), the mean time of
a refreshing update, and the ratios to Adam. One BLAS / numba thread (``--threads``).

Data: the run's MovieLens matrix if available (``--data``, default ``auto``), otherwise random
counts of the same shape and density (6,040 users x 1,058 movies, 12% non-zero, values 1..9):
only the sizes matter for the cost.

Writes ``validation/results/bench_vmf.json`` (or ``--out``). No timing is asserted anywhere.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
from pathlib import Path

import numpy as np


def _data(source: str, quick: bool):
    from refvpng.data.movielens import MovieLens
    from refvpng.experiments import vmf

    if quick:
        return vmf.synthetic_ratings(0), "synthetic (quick)"
    try:
        d = vmf.load_data(vmf.Settings(data=source))
        return d, d.source
    except (FileNotFoundError, ValueError) as exc:
        rng = np.random.default_rng(0)
        n, m = 6040, 1058
        x = np.where(rng.random((n, m)) < 0.12, rng.choice([1, 3, 5, 7, 9], (n, m)), 0).astype(np.float64)
        return MovieLens(x[604:], x[604:1208], x[:604], "random"), f"random counts {n} x {m} ({exc})"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny sizes, a fraction of a second (smoke test)")
    p.add_argument("--seconds", type=float, default=None, help="CPU seconds per method (default 20)")
    p.add_argument("--data", default="auto", help="MovieLens source, as --data of refvpng reproduce vmf")
    p.add_argument("--out", default=None, help="JSON path (default validation/results/bench_vmf.json)")
    p.add_argument("--threads", type=int, default=1, help="BLAS/numba threads")
    a = p.parse_args(argv)
    from refvpng._threads import limit_threads

    with limit_threads(a.threads):
        return _run(a)


def _run(a) -> int:
    from refvpng._atomic import write_json_atomic
    from refvpng.experiments import vmf

    data, source = _data(a.data, a.quick)
    over = dict(vmf.QUICK) if a.quick else {}
    over.update(budget=a.seconds or (0.3 if a.quick else 20.0), n_evals=1, lrs=(1e-3,))
    s = dataclasses.replace(vmf.Settings(), **{k: v for k, v in over.items() if k != "data"})
    res = {}
    for method in s.methods:
        r = vmf.run_one(method, s.lrs[0], s, data)
        res[method] = {
            k: r[k] for k in ("steps", "sec_per_iter", "wall_sec_per_iter", "refresh_seconds_mean") if k in r
        }
    adam = res["adam"]
    for r in res.values():
        r["ratio_to_adam_cpu"] = r["sec_per_iter"] / adam["sec_per_iter"]
        r["ratio_to_adam_wall"] = r["wall_sec_per_iter"] / adam["wall_sec_per_iter"]
    doc = {
        "settings": {
            "quick": a.quick,
            "seconds_per_method": s.budget,
            "threads": a.threads,
            "data": source,
            "users_x_movies": [data.train.shape[0], data.train.shape[1]],
            **{
                k: getattr(s, k)
                for k in ("batch", "hidden", "d_z", "samples", "fisher_samples", "inverse_every")
            },
        },
        "machine": {
            "python": platform.python_version(),
            "numpy": np.__version__,
            "cpu_count": os.cpu_count(),
        },
        "methods": res,
        "ratio_vpng_to_adam_cpu": res["vpng_tridiag"]["ratio_to_adam_cpu"],
        "ratio_vpng_to_adam_wall": res["vpng_tridiag"]["ratio_to_adam_wall"],
    }
    out = Path(a.out) if a.out else Path(__file__).resolve().parents[1] / "results" / "bench_vmf.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out, doc)
    print(f"{'method':14s} {'iters':>6s} {'CPU s/iter':>10s} {'wall s/iter':>11s} {'x Adam (CPU)':>12s}")
    for m, r in res.items():
        print(
            f"{m:14s} {r['steps']:6d} {r['sec_per_iter']:10.4f} {r['wall_sec_per_iter']:11.4f} "
            f"{r['ratio_to_adam_cpu']:12.2f}"
        )
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
