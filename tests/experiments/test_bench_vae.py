"""Smoke test of validation/bench/bench_vae.py at tiny size (no timing is asserted)."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "validation" / "bench" / "bench_vae.py"


def _load():
    spec = importlib.util.spec_from_file_location("bench_vae", BENCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_bench_quick_writes_ratios(tmp_path):
    out = tmp_path / "bench.json"
    assert _load().main(["--quick", "--out", str(out)]) == 0
    doc = json.loads(out.read_text())
    for m in ("q_natural", "vpng_tridiag", "vpng_blockdiag"):
        ratio = doc[f"ratio_{m}_to_adam"]
        assert math.isfinite(ratio) and ratio > 0
        assert doc["methods"][m]["sec_per_iter"] > 0
    for key in ("ratio_vpng_authors_to_adam_authors", "ratio_vpng_tridiag_to_adam"):
        for suffix in ("", "_wall"):
            assert math.isfinite(doc[key + suffix]) and doc[key + suffix] > 0
    r = doc["methods"]["vpng_authors"]
    assert r["inverse_every"] == 1 and r["refresh_sec"] == 0.0 and r["refreshes_timed"] >= 2
    fac = doc["factor_accumulation"]
    assert fac["flops"] > 0 and 0 < fac["fraction_of_blas"] < 100
    assert doc["settings"]["quick"] is True
