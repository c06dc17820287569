r"""Measure refvpng's determinism: the same seed under the same process conditions gives the same bits.

Each probe computes one public quantity from fixed seeds at a size where BLAS and numba really
use more than one thread (a few hundred to a few thousand parameters, hundreds of rows). The
script runs every probe in fresh processes, with the BLAS, OpenMP and numba thread counts fixed
through the environment before NumPy is imported:

* twice with 1 thread and twice with 2 threads: the same bits at a fixed thread count is the
  guarantee (a process-level property: nothing depends on the time, the process id or hash
  seeds);
* and 1 thread against 2 threads: which quantities are bit-identical across thread counts, and
  the largest relative difference of those that are not.

Also probed: the regeneration of every conformance fixture (:mod:`refvpng.conformance`), hashed
over all its output arrays.

Usage: ``python validation/determinism.py [--quick] [--out PATH]``. Results go to
``validation/results/determinism.json`` and section "Determinism" of ``RESULTS.md``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "validation" / "results" / "determinism.json"
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")


def _probes(quick: bool) -> dict:
    """Compute every probe once; return ``{name: ndarray}``."""
    import numpy as np

    from refvpng.curvature import fisher
    from refvpng.curvature.kfac import kfac_factors
    from refvpng.curvature.outer import outer_sum
    from refvpng.elbo import elbo_value_and_grad
    from refvpng.models import Bernoulli
    from refvpng.models.latent import draw_predictive, without_hooks
    from refvpng.nn import Chain, chain_model
    from refvpng.nn.vae import make_vae, vae_step

    h, n, d, dz = (6, 13, 9, 3) if quick else (40, 97, 30, 6)
    rng = np.random.default_rng(20261201)
    chain = Chain.from_sizes((d, h, h, 2 * dz), (dz, h, h, d), "tanh")
    model = chain_model(chain, Bernoulli())
    eta = chain.init(rng)
    x = (rng.random((n, d)) < 0.4).astype(float)
    eps = rng.standard_normal((2, n, dz))
    x_pred = draw_predictive(rng, model, eta, x, eps, 3)
    out = {}
    value, grad = elbo_value_and_grad(model, eta, x, eps)
    out["elbo_value_and_grad (chain hook)"] = np.append(grad, value)
    out["vp_fisher_exact (layer_pairs hook)"] = fisher.vp_fisher_exact(model, eta, x, eps)
    out["vp_fisher_exact (Jacobian + syrk)"] = fisher.vp_fisher_exact(without_hooks(model), eta, x, eps)
    out["vp_fisher_mc, Eq 16 (layer_pairs hook)"] = fisher.vp_fisher_mc(model, eta, x, eps, x_pred)
    out["q_fisher_mc"] = fisher.q_fisher_mc(model, chain.split(eta)[0], x, eps)[0]
    pairs, weights = fisher.vp_kfac_pairs(model, eta, x, eps, x_pred)
    factors = kfac_factors(pairs, weights)
    out["K-FAC factors of Eq 16"] = np.concatenate([np.ravel(f) for f in factors.A + factors.G])

    k, p = (300, 40) if quick else (6000, 400)
    b = rng.standard_normal((k, p))
    w = rng.random(k) + 0.1
    out["outer_sum numpy (syrk)"] = outer_sum(b, method="numpy")
    out["outer_sum numpy weighted (sqrt w, syrk)"] = outer_sum(b, w, method="numpy")
    out["outer_sum numba weighted"] = outer_sum(b, w, method="numba")

    vae = make_vae(d_x=64 if quick else 784, hidden=16 if quick else 200, d_z=4 if quick else 20)
    m = 24 if quick else 100
    eta_v = vae.init(rng)
    xv = (rng.random((m, vae.d_x)) < 0.3).astype(float)
    ev = rng.standard_normal((3, m, vae.d_z))
    uv = rng.random((3, m, vae.d_x))
    for dtype in (np.float64, np.float32):
        st = vae_step(vae, eta_v, xv, ev, uv, curvature="vp", factor_dtype=dtype)
        facs = st.factors_per_point
        flat = np.concatenate([np.ravel(f).astype(np.float64) for f in facs.A + facs.G])
        out[f"vae_step, {np.dtype(dtype).name} factors"] = np.concatenate([st.grad, [st.value], flat])
    return out


def _fixture_hashes() -> dict:
    """Regenerate every conformance fixture; return ``{case: sha256 of its output arrays}``."""
    import numpy as np

    from refvpng.conformance.fixture_io import read_fixture
    from refvpng.conformance.generate import generate

    with tempfile.TemporaryDirectory() as d:
        names = generate(d)
        hashes = {}
        for name in names:
            manifest, arrays = read_fixture(d, name)
            h = hashlib.sha256()
            for key in sorted(arrays):
                if key not in manifest["inputs"]:
                    h.update(key.encode() + np.ascontiguousarray(arrays[key]).tobytes())
            hashes[name] = h.hexdigest()
    return hashes


def _child(quick: bool, path: str) -> None:
    """Run inside a fresh process: write the probe arrays and fixture hashes to ``path``."""
    import numpy as np

    arrays = _probes(quick)
    np.savez(path, **{f"a{i}": v for i, v in enumerate(arrays.values())})
    Path(path + ".json").write_text(
        json.dumps({"names": list(arrays), "fixtures": _fixture_hashes()}), encoding="utf-8"
    )


def _run(threads: int, quick: bool, tmp: str, tag: str) -> tuple[dict, dict]:
    import numpy as np

    env = dict(os.environ, **{v: str(threads) for v in THREAD_VARS})
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    path = os.path.join(tmp, f"{tag}.npz")
    cmd = [sys.executable, __file__, "--child", path] + (["--quick"] if quick else [])
    subprocess.run(cmd, env=env, check=True)
    meta = json.loads(Path(path + ".json").read_text(encoding="utf-8"))
    with np.load(path) as z:
        arrays = {name: z[f"a{i}"] for i, name in enumerate(meta["names"])}
    return arrays, meta["fixtures"]


def _rel(a, b) -> float:
    import numpy as np

    scale = float(np.max(np.abs(a))) or 1.0
    return float(np.max(np.abs(a - b))) / scale


def measure(quick: bool) -> dict:
    """Run the probes in four processes and compare them bit for bit."""
    import numpy as np

    with tempfile.TemporaryDirectory() as tmp:
        runs = {tag: _run(t, quick, tmp, tag) for tag, t in (("1a", 1), ("1b", 1), ("2a", 2), ("2b", 2))}
    rows = []
    for name in runs["1a"][0]:
        a = {tag: runs[tag][0][name] for tag in runs}
        rows.append(
            {
                "quantity": name,
                "same_1_thread": bool(np.array_equal(a["1a"], a["1b"])),
                "same_2_threads": bool(np.array_equal(a["2a"], a["2b"])),
                "same_1_vs_2_threads": bool(np.array_equal(a["1a"], a["2a"])),
                "max_rel_diff_1_vs_2": _rel(a["1a"], a["2a"]),
            }
        )
    fx = {tag: runs[tag][1] for tag in runs}
    fixtures = {
        "cases": len(fx["1a"]),
        "same_1_thread": fx["1a"] == fx["1b"],
        "same_2_threads": fx["2a"] == fx["2b"],
        "cases_differing_1_vs_2": sorted(c for c in fx["1a"] if fx["1a"][c] != fx["2a"][c]),
    }
    return {"quick": quick, "probes": rows, "fixtures": fixtures}


def main(argv: list[str] | None = None) -> int:
    """Measure and write the JSON (atomically)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny sizes, for smoke testing")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.child:
        _child(a.quick, a.child)
        return 0
    from refvpng._atomic import write_json_atomic
    from refvpng.experiments.output import machine_info

    doc = measure(a.quick)
    doc["machine"] = machine_info()
    write_json_atomic(a.out, doc)
    for r in doc["probes"]:
        print(
            f"{r['quantity']:45s} 1t {r['same_1_thread']!s:5} 2t {r['same_2_threads']!s:5} "
            f"1v2 {r['same_1_vs_2_threads']!s:5} {r['max_rel_diff_1_vs_2']:.1e}"
        )
    print("fixtures:", doc["fixtures"])
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
