r"""How far dense goes: the largest exact variational predictive Fisher this machine can hold.

Builds the dense exact :math:`F_r = \sum_i J_i^\top \Lambda_i J_i` (Eq 12 with the expectation
over :math:`x'` in closed form) of one Bernoulli VAE chain with the same shape as
``bench_fisher.py`` (d = 20, d_z = 4, two tanh hidden layers of width ``--hidden`` in encoder and
decoder, S = 1) through the chain's ``layer_pairs`` hook (:func:`refvpng.curvature.kron_fisher.
kron_outer_sum`, n·P² flops, one P × P allocation), once, and records process CPU and wall time and
the peak resident memory. At ``--hidden 140`` (P = 47,068) the matrix alone is 17.7 GB of this
machine's 24 GiB.

The matrix is checked, not only timed: ``--check-rows`` random rows are rebuilt from the
whitened output Jacobian :math:`\hat J = \Lambda^{1/2} J` of the same points and noise
(``(n d) × P``, a few hundred MB) as :math:`\hat J_{:,k}^\top \hat J` and compared entry by entry,
and the symmetry of the whole matrix is checked in row blocks.

Usage: ``python validation/bench/bench_fisher_largest.py [--hidden H] [--n N] [--quick] [--out PATH]``;
results in ``validation/results/bench_fisher_largest.json`` and section 7 of ``RESULTS.md``.
"""

from __future__ import annotations

import argparse
import gc
import os
import resource
import sys
import time
from pathlib import Path

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "results" / "bench_fisher_largest.json"
D, DZ = 20, 4


def _peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def build(hidden: int, n: int, check_rows: int, seed: int = 0) -> dict:
    """Build the dense F_r once at this size; return the record (times, memory, agreement)."""
    import numpy as np

    from refvpng.curvature.fisher import output_jacobian, vp_fisher_exact
    from refvpng.models import Bernoulli
    from refvpng.nn import Chain, chain_model

    chain = Chain.from_sizes((D, hidden, hidden, 2 * DZ), (DZ, hidden, hidden, D), "tanh")
    model = chain_model(chain, Bernoulli())
    rng = np.random.default_rng(seed)
    eta = chain.init(rng)
    x = (rng.random((n, D)) < 0.5).astype(float)
    eps = rng.standard_normal((1, n, DZ))
    p = chain.num_params

    t, jac = output_jacobian(model, eta, x, eps)
    jw = model.likelihood.whiten(jac, t).reshape(-1, p)  # sqrt(Lambda) J, rows (s, i, o)
    del jac
    rows = np.sort(rng.choice(p, size=min(check_rows, p), replace=False))
    ref_rows = jw[:, rows].T @ jw

    gc.collect()
    rss0 = _peak_rss_gb()
    w0, c0 = time.perf_counter(), time.process_time()
    f = vp_fisher_exact(model, eta, x, eps)
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    peak = _peak_rss_gb()

    err = float(np.max(np.abs(f[rows] - ref_rows)) / np.max(np.abs(ref_rows)))
    asym = 0.0
    for r0 in range(0, p, 2048):
        blk = f[r0 : r0 + 2048]
        asym = max(asym, float(np.max(np.abs(blk - f[:, r0 : r0 + 2048].T))))
    return {
        "hidden": hidden,
        "n": n,
        "P": p,
        "matrix_gb": p * p * 8 / 1e9,
        "cpu_s": cpu,
        "wall_s": wall,
        "peak_rss_gb_before": rss0,
        "peak_rss_gb": peak,
        "checked_rows": len(rows),
        "agreement_rows_vs_jacobian": err,
        "max_asymmetry": asym,
        "finite": bool(np.isfinite(f[rows]).all()),
    }


def main(argv: list[str] | None = None) -> int:
    """Build once and write the JSON."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hidden", type=int, default=140, help="hidden width (140: P = 47,068)")
    ap.add_argument("--n", type=int, default=50, help="data points")
    ap.add_argument("--check-rows", type=int, default=64, help="rows checked against the Jacobian")
    ap.add_argument("--threads", type=int, default=2, help="BLAS and numba threads")
    ap.add_argument("--quick", action="store_true", help="tiny size, for smoke testing")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    a = ap.parse_args(argv)
    from refvpng._atomic import write_json_atomic
    from refvpng._threads import limit_threads
    from refvpng.experiments.output import machine_info

    hidden, n = (6, 7) if a.quick else (a.hidden, a.n)
    load0 = os.getloadavg()
    with limit_threads(a.threads):
        rec = build(hidden, n, a.check_rows)
    doc = {
        "settings": {
            "d": D,
            "d_z": DZ,
            "S": 1,
            "likelihood": "Bernoulli",
            "activation": "tanh",
            "threads": a.threads,
            "quick": a.quick,
        },
        "largest": rec,
        "run": {"loadavg_before": load0, "loadavg_after": os.getloadavg()},
        "machine": machine_info(),
    }
    write_json_atomic(a.out, doc)
    print(
        f"P={rec['P']} n={n}: {rec['matrix_gb']:.1f} GB, cpu {rec['cpu_s']:.1f} s, "
        f"wall {rec['wall_s']:.1f} s, "
        f"peak RSS {rec['peak_rss_gb']:.1f} GiB, rows vs Jacobian {rec['agreement_rows_vs_jacobian']:.1e}, "
        f"asymmetry {rec['max_asymmetry']:.1e}"
    )
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
