"""Benchmark of the outer-product kernel F = sum_k b_k b_k^T against BLAS.

``python validation/bench/bench_outer.py [--quick] [--out PATH] [--repeat N]``

For each ``(rows, P)`` it times, in the same run,

- ``B.T @ B`` (BLAS ``syrk``, the baseline),
- :func:`refvpng.curvature.outer.outer_sum_numba` (the streaming numba kernel),
- :func:`refvpng.curvature.outer.outer_sum` with ``method="auto"``,

and the same three with weights (``B.T @ (w[:, None] * B)``, the NumPy specification's weighted
path, against the two refvpng paths), printing time / BLAS time. The numba kernel is compiled
and warmed up first. Each method is timed in a block of ``--repeat`` calls, the blocks are
separated by a short pause (both OpenBLAS's and numba's thread pools spin for a while after a
call, and a pool still spinning steals a core from the next one), the whole round is repeated
``--rounds`` times and the median of all calls is kept (the minimum is recorded too). Other
work on the machine shows up in the numbers, BLAS's spinning threads being the most sensitive
to it, so the load average before and after and the share of the CPUs that other processes
used during the run are recorded with the results.

Results go to ``validation/results/bench_outer.json`` (written atomically) unless ``--out`` is
given. ``--quick`` runs tiny sizes for smoke testing.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numba
import numpy as np

from refvpng.curvature.outer import outer_auto_method, outer_sum, outer_sum_numba, outer_sum_numpy

FULL_SIZES = [(6000, 200), (6000, 2000), (60000, 50)]
QUICK_SIZES = [(300, 20), (200, 150), (2000, 10)]
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "results" / "bench_outer.json"
PAUSE_S = 0.25


def _call_times(fn, repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def _time_methods(methods: dict, repeat: int, rounds: int, pause: float) -> dict[str, list]:
    samples: dict[str, list[float]] = {name: [] for name in methods}
    for _ in range(rounds):
        for name, fn in methods.items():
            time.sleep(pause)
            samples[name] += _call_times(fn, repeat)
    return samples


def _rel_err(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


def bench_size(rows: int, p: int, repeat: int, rounds: int, pause: float, seed: int = 0) -> dict:
    """Time BLAS, numba and auto at one size (unweighted and weighted)."""
    rng = np.random.default_rng(seed)
    b = rng.standard_normal((rows, p))
    w = rng.random(rows)
    # warm up (compiles numba on first use, starts both thread pools)
    f_numba = outer_sum_numba(b)
    f_blas = b.T @ b
    f_numba_w = outer_sum_numba(b, w)
    f_spec_w = outer_sum_numpy(b, w)
    outer_sum(b)
    outer_sum(b, w)
    samples = _time_methods(
        {
            "blas": lambda: b.T @ b,
            "numba": lambda: outer_sum_numba(b),
            "auto": lambda: outer_sum(b),
            "blas_weighted": lambda: outer_sum_numpy(b, w),
            "numba_weighted": lambda: outer_sum_numba(b, w),
            "auto_weighted": lambda: outer_sum(b, w),
        },
        repeat,
        rounds,
        pause,
    )
    t = {name: float(np.median(ts)) for name, ts in samples.items()}
    return {
        "blas_s": t["blas"],
        "numba_s": t["numba"],
        "auto_s": t["auto"],
        "ratio_numba": t["numba"] / t["blas"],
        "ratio_auto": t["auto"] / t["blas"],
        "auto_method": outer_auto_method(rows, p),
        "weighted": {
            "blas_s": t["blas_weighted"],
            "numba_s": t["numba_weighted"],
            "auto_s": t["auto_weighted"],
            "ratio_numba": t["numba_weighted"] / t["blas_weighted"],
            "ratio_auto": t["auto_weighted"] / t["blas_weighted"],
            "auto_method": outer_auto_method(rows, p, weighted=True),
        },
        "max_rel_err_numba_vs_blas": max(_rel_err(f_numba, f_blas), _rel_err(f_numba_w, f_spec_w)),
        "min_s": {name: float(np.min(ts)) for name, ts in samples.items()},
        "repeat": repeat,
        "rounds": rounds,
    }


def _busy_ticks() -> int | None:
    """CPU ticks spent busy by the whole machine so far (Linux ``/proc/stat``), else None."""
    try:
        with open("/proc/stat") as fh:
            fields = [int(x) for x in fh.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return sum(fields[:8]) - idle


def _other_load(busy0: int | None, own0: float, wall0: float) -> float | None:
    """Fraction of the machine's CPUs that other processes kept busy since the start."""
    busy1 = _busy_ticks()
    if busy0 is None or busy1 is None:
        return None
    hz = os.sysconf("SC_CLK_TCK")
    own = sum(os.times()[:2]) - own0
    wall = time.perf_counter() - wall0
    other = (busy1 - busy0) / hz - own
    return max(0.0, other / (wall * (os.cpu_count() or 1)))


def machine_info() -> dict:
    """Versions and hardware facts that the timings depend on."""
    try:
        blas = np.__config__.CONFIG["Build Dependencies"]["blas"]
        blas_info = f"{blas.get('name')} {blas.get('version')}"
    except (AttributeError, KeyError, TypeError):
        blas_info = "unknown"
    return {
        "numpy": np.__version__,
        "numba": numba.__version__,
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "numba_threads": numba.get_num_threads(),
        "blas": blas_info,
        "machine": platform.machine(),
        "processor": platform.processor(),
    }


def write_json_atomic(obj: dict, path: Path) -> None:
    """Write ``obj`` as JSON with refvpng's one atomic writer."""
    from refvpng._atomic import write_json_atomic as write

    write(path, obj)


def _print_table(results: dict) -> None:
    head = (
        f"{'size':>12} {'BLAS s':>9} {'numba s':>9} {'auto s':>9} {'numba/BLAS':>10} "
        f"{'auto/BLAS':>9} {'auto':>6} | {'weighted: numba/spec':>20} {'auto/spec':>9} {'auto':>6}"
    )
    print(head)
    print("-" * len(head))
    for key, r in results.items():
        wr = r["weighted"]
        print(
            f"{key:>12} {r['blas_s']:9.4f} {r['numba_s']:9.4f} {r['auto_s']:9.4f} "
            f"{r['ratio_numba']:10.2f} {r['ratio_auto']:9.2f} {r['auto_method']:>6} | "
            f"{wr['ratio_numba']:20.2f} {wr['ratio_auto']:9.2f} {wr['auto_method']:>6}"
        )


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; return the process exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for smoke tests")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON output path")
    parser.add_argument("--repeat", type=int, default=None, help="calls per timed block")
    parser.add_argument("--rounds", type=int, default=None, help="rounds of blocks")
    args = parser.parse_args(argv)

    sizes = QUICK_SIZES if args.quick else FULL_SIZES
    rounds = args.rounds if args.rounds is not None else (1 if args.quick else 3)
    pause = 0.0 if args.quick else PAUSE_S
    load_before = os.getloadavg()
    busy0, own0, wall0 = _busy_ticks(), sum(os.times()[:2]), time.perf_counter()
    results = {}
    for rows, p in sizes:
        repeat = args.repeat or (2 if args.quick else (3 if p >= 1000 else 7))
        results[f"{rows}x{p}"] = bench_size(rows, p, repeat, rounds, pause)
    out = {
        **results,
        "machine": machine_info(),
        "quick": bool(args.quick),
        "load_average_before": list(load_before),
        "load_average_after": list(os.getloadavg()),
        "other_processes_cpu_fraction": _other_load(busy0, own0, wall0),
        "goal": "numba within 1.25x of BLAS at every size; otherwise auto picks the faster path",
    }
    _print_table(results)
    other = out["other_processes_cpu_fraction"]
    print(
        f"load average before {load_before[0]:.2f}, after {out['load_average_after'][0]:.2f} "
        f"(includes this run); other processes used "
        f"{'n/a' if other is None else f'{100 * other:.0f}%'} of the CPUs meanwhile"
    )
    write_json_atomic(out, args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
