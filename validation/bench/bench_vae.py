"""Per-iteration cost of the Figure 2 methods at the paper's sizes, and K-FAC factor throughput.

``python validation/bench/bench_vae.py [--quick] [--out PATH] [--threads N]``

At the sizes of Tang & Ranganath (2019), Section 5.2 (batch 600, latent 100, hidden 200, ten
latent samples for the ELBO and ten predictive samples for Eq. 16; random binary 784-pixel data
since only the sizes matter), one complete iteration of each method -- forward and backward
passes, Kronecker factors, EMA, solve, Adam update -- is timed in the same process, the methods
interleaved round by round so that load from elsewhere on the machine hits them alike. Reported:

- ``sec_per_iter``: median over rounds of a non-refresh iteration;
- ``refresh_sec``: median extra cost of an iteration that refreshes the decompositions (every
  ``inverse_every`` steps) over a non-refresh one, reported separately (``None`` when no timed
  round refreshed, e.g. ``--rounds`` below ``inverse_every``: the amortised time then leaves it out);
- ``amortized_sec_per_iter`` = ``sec_per_iter + refresh_sec / inverse_every``, and its ratio to
  one Adam iteration (``ratio_<method>_to_adam``), each also on the wall clock (``*_wall``);
- the same for the authors' configuration (``adam_authors``, ``vpng_authors``: one z with ten
  x', eigenvalue damping, inverses every iteration, 26 eigenpairs of the input factor with the
  rest dropped, diagonal output factor; :data:`refvpng.experiments.vae.AUTHORS`):
  ``ratio_vpng_authors_to_adam_authors`` beside refvpng's ``ratio_vpng_tridiag_to_adam``;
- the factor accumulation (every Gram product behind the Kronecker factors, in the configured
  dtype) as flops/s and as a fraction of BLAS ``B.T @ B`` throughput measured in the same run on
  a ``(rows, 784)`` matrix of the same dtype.

Times are process CPU seconds (``time.process_time``; wall seconds in the ``*_wall`` fields): with
one BLAS / numba thread (the
default ``--threads 1``) that is the wall-clock time on an idle core, and it is not inflated by
other processes on a shared machine.

Writes ``validation/results/bench_vae.json`` (or ``--out``). No timing is asserted anywhere.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

METHODS = ("adam", "q_natural", "vpng_tridiag", "vpng_blockdiag", "adam_authors", "vpng_authors")
"""Timed methods; ``*_authors`` run with the authors' configuration (refvpng.experiments.vae)."""


def _steppers(chain, x, cfg):
    """One closure per method doing a complete iteration; returns whether it refreshed."""
    from refvpng.experiments.vae import Settings, method_optimizer, resolve_method
    from refvpng.nn import make_vae, truncated_normal_init, vae_step
    from refvpng.optim import apply_updates

    s0 = Settings(damping=cfg["damping"], inverse_every=cfg["inverse_every"], rule="adam")
    n, s_count = x.shape[0], cfg["samples"]
    dtype = np.dtype(cfg["factor_dtype"])
    out = {}
    for method in METHODS:
        base, s = resolve_method(method, s0)
        net = make_vae(chain.d_x, chain.decoder.layer_shapes[0][0], chain.d_z, s.sigma_floor)
        opt, (kind,) = method_optimizer(base, 1e-3, s, net.encoder.num_params)
        rng0 = np.random.default_rng(0)
        eta = net.init(rng0) if s.init == "scaled_normal" else truncated_normal_init(net, rng0, s.init_std)
        box = {"eta": eta, "k": 0, "every": s.inverse_every}
        box["state"] = opt.init(box["eta"])
        rng = np.random.default_rng(1)
        flags = {"one_z": s.predictive == "one_z", "output_diag": s.output_factor == "diag"}

        def step(box=box, opt=opt, kind=kind, rng=rng, base=base, net=net, flags=flags):
            eps = rng.standard_normal((s_count, n, net.d_z))
            u = rng.random((s_count, n, net.d_x)) if kind == "vp" else None
            st = vae_step(
                net,
                box["eta"],
                x,
                eps,
                u,
                curvature=kind,
                fisher_samples=cfg["fisher_samples"],
                factor_dtype=dtype,
                cross=base != "vpng_blockdiag",
                **(flags if kind == "vp" else {}),  # as run_training: not on the q-Fisher
            )
            extra = {} if kind is None else {"curvature": st.factors_per_point}
            upd, box["state"] = opt.update(st.grad, box["state"], box["eta"], **extra)
            box["eta"] = apply_updates(box["eta"], upd)
            refreshed = kind is not None and box["k"] % box["every"] == 0
            box["k"] += 1
            return refreshed

        out[method] = (step, kind, box)
    return out


def _gram_shapes(chain, n, m):
    """(rows, d1, d2, symmetric) of every Gram product vae_step forms for tridiagonal VPNG."""
    enc = [i for _, i in chain.encoder.layer_shapes]
    dec = [i for _, i in chain.decoder.layer_shapes]
    outs = [o for o, _ in chain.layer_shapes]
    r = m * n
    shapes = [(n, d, d, True) for d in enc] + [(r, d, d, True) for d in dec]
    shapes += [(r, d, d, True) for d in outs]
    shapes += [(n, enc[k], enc[k + 1], False) for k in range(len(enc) - 1)]
    shapes += [(n, enc[-1], dec[0], False)]
    shapes += [(r, dec[k], dec[k + 1], False) for k in range(len(dec) - 1)]
    shapes += [(r, outs[k], outs[k + 1], False) for k in range(len(outs) - 1)]
    return shapes


def _flops(rows, d1, d2, sym):
    return rows * d1 * (d1 + 1) if sym else 2 * rows * d1 * d2


_clock = time.process_time


def _time(f, reps):
    ts = []
    for _ in range(reps):
        t0 = _clock()
        f()
        ts.append(_clock() - t0)
    return float(np.median(ts))


def factor_throughput(chain, n, m, dtype, reps, rng):
    """Time the Gram products of the factors vs one BLAS ``B.T @ B`` of the same dtype."""
    from refvpng.nn.vae import cross_gram, gram

    shapes = _gram_shapes(chain, n, m)
    mats = {}
    for rows, d1, d2, _ in shapes:
        for d in (d1, d2):
            mats.setdefault((rows, d), rng.random((rows, d)))

    def accumulate():
        for rows, d1, d2, sym in shapes:
            if sym:
                gram(mats[(rows, d1)], 1.0, dtype)
            else:
                cross_gram(mats[(rows, d1)], mats[(rows, d2)], 1.0, dtype)

    flops = sum(_flops(*sh) for sh in shapes)
    accumulate()
    t_acc = _time(accumulate, reps)
    b = rng.random((m * n, chain.d_out)).astype(dtype)
    b.T @ b
    t_blas = _time(lambda: b.T @ b, reps)
    blas_flops = _flops(m * n, chain.d_out, chain.d_out, True)
    return {
        "dtype": np.dtype(dtype).name,
        "gram_products": len(shapes),
        "flops": flops,
        "seconds": t_acc,
        "gflops_per_s": flops / t_acc / 1e9,
        "blas_BtB_shape": [m * n, chain.d_out],
        "blas_BtB_gflops_per_s": blas_flops / t_blas / 1e9,
        "fraction_of_blas": (flops / t_acc) / (blas_flops / t_blas),
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny sizes, 2 rounds (smoke test)")
    p.add_argument("--out", default=None, help="JSON path (default validation/results/...)")
    p.add_argument("--rounds", type=int, default=None)
    p.add_argument("--threads", type=int, default=1, help="BLAS/numba threads")
    p.add_argument("--factor-dtype", default="float32", choices=("float32", "float64"))
    p.add_argument("--fisher-samples", type=int, default=None)
    a = p.parse_args(argv)
    # importing refvpng loads every BLAS (numpy's and scipy's) before threads are limited
    from refvpng._threads import limit_threads

    with limit_threads(a.threads):
        return _run(a)


def _summary(times: dict, refresh: dict, every: int, kind) -> dict:
    """Median times of one method on both clocks; the refresh amortised over its period."""
    r: dict = {"iterations_timed": len(times["cpu"]), "inverse_every": every}
    for clock, suffix in (("cpu", ""), ("wall", "_wall")):
        plain, fresh = times[clock], refresh[clock]
        if not plain:  # every iteration refreshes (inverse_every = 1)
            r[f"sec_per_iter{suffix}"] = r[f"amortized_sec_per_iter{suffix}"] = float(np.median(fresh))
            r[f"refresh_sec{suffix}"] = 0.0
            continue
        t = float(np.median(plain))
        r[f"sec_per_iter{suffix}"] = t
        if kind is not None and fresh:
            r[f"refresh_sec{suffix}"] = max(float(np.median(fresh)) - t, 0.0)
            r[f"amortized_sec_per_iter{suffix}"] = t + r[f"refresh_sec{suffix}"] / every
        else:
            r[f"amortized_sec_per_iter{suffix}"] = t
            if kind is not None:  # no round caught a refresh: its cost is not in the time
                r[f"refresh_sec{suffix}"] = None
    r["refreshes_timed"] = len(refresh["cpu"])
    return r


def _run(a) -> int:
    from refvpng.nn import make_vae

    try:
        import threadpoolctl  # noqa: F401

        threads = a.threads
    except ImportError:
        threads = f"numba {a.threads}; BLAS unchanged (no threadpoolctl: set OPENBLAS_NUM_THREADS)"

    if a.quick:
        sizes = {"batch": 30, "d_x": 40, "hidden": 8, "d_z": 3, "samples": 3}  # rows > pixels
        rounds = a.rounds or 2
    else:
        sizes = {"batch": 600, "d_x": 784, "hidden": 200, "d_z": 100, "samples": 10}
        rounds = a.rounds or 22
    cfg = {
        "samples": sizes["samples"],
        "fisher_samples": a.fisher_samples or sizes["samples"],
        "factor_dtype": a.factor_dtype,
        "damping": 0.1,  # refvpng's default (Settings.damping); the cost does not depend on it
        "inverse_every": 2 if a.quick else 10,
    }
    rng = np.random.default_rng(0)
    chain = make_vae(sizes["d_x"], sizes["hidden"], sizes["d_z"])
    x = (rng.random((sizes["batch"], sizes["d_x"])) < 0.13).astype(np.float64)
    steppers = _steppers(chain, x, cfg)
    for step, _, _ in steppers.values():  # warm-up: numba compile, first refresh
        step()
        step()
    times = {m: {"cpu": [], "wall": []} for m in steppers}
    refresh = {m: {"cpu": [], "wall": []} for m in steppers}
    for _ in range(rounds):
        for m, (step, _, _) in steppers.items():
            t0, w0 = _clock(), time.perf_counter()
            refreshed = step()
            rec = (refresh if refreshed else times)[m]
            rec["cpu"].append(_clock() - t0)
            rec["wall"].append(time.perf_counter() - w0)
    res = {m: _summary(times[m], refresh[m], box["every"], kind) for m, (_, kind, box) in steppers.items()}
    for clock, suffix in (("cpu", ""), ("wall", "_wall")):
        adam = res["adam"][f"amortized_sec_per_iter{suffix}"]
        for r in res.values():
            r[f"ratio_to_adam{suffix}"] = r[f"amortized_sec_per_iter{suffix}"] / adam
            if clock == "cpu":
                r["ratio_to_adam_without_refresh"] = r["sec_per_iter"] / adam
    fac = factor_throughput(
        chain,
        sizes["batch"],
        cfg["fisher_samples"],
        np.dtype(a.factor_dtype),
        max(2, rounds // 3),
        rng,
    )
    doc = {
        "settings": {
            **sizes,
            **cfg,
            "rounds": rounds,
            "threads": threads,
            "quick": a.quick,
            "num_params": chain.num_params,
        },
        "machine": {
            "python": platform.python_version(),
            "numpy": np.__version__,
            "cpu_count": os.cpu_count(),
            "machine": platform.machine(),
        },
        "methods": res,
        "factor_accumulation": fac,
    }
    for m in ("q_natural", "vpng_tridiag", "vpng_blockdiag"):
        doc[f"ratio_{m}_to_adam"] = res[m]["ratio_to_adam"]
    # the authors' VPNG against the authors' Adam, and against refvpng's Adam (CPU and wall)
    for suffix in ("", "_wall"):
        key = f"amortized_sec_per_iter{suffix}"
        doc[f"ratio_vpng_authors_to_adam_authors{suffix}"] = (
            res["vpng_authors"][key] / res["adam_authors"][key]
        )
        doc[f"ratio_vpng_tridiag_to_adam{suffix}"] = res["vpng_tridiag"][key] / res["adam"][key]
    default = Path(__file__).resolve().parents[1] / "results" / "bench_vae.json"
    out = Path(a.out) if a.out else default
    out.parent.mkdir(parents=True, exist_ok=True)
    from refvpng._atomic import write_json_atomic

    write_json_atomic(out, doc)
    print(f"{'method':16s} {'s/iter':>8s} {'refresh s':>9s} {'amortized':>9s} {'x Adam':>7s} {'wall x':>7s}")
    for m, r in res.items():
        print(
            f"{m:16s} {r['sec_per_iter']:8.4f} {r.get('refresh_sec') or 0.0:9.4f} "
            f"{r['amortized_sec_per_iter']:9.4f} {r['ratio_to_adam']:7.2f} {r['ratio_to_adam_wall']:7.2f}"
        )
    print(
        f"factor accumulation ({fac['dtype']}): {fac['gflops_per_s']:.1f} GFLOP/s = "
        f"{fac['fraction_of_blas']:.2f} x BLAS B.T@B "
        f"({fac['blas_BtB_gflops_per_s']:.1f} GFLOP/s)"
    )
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
