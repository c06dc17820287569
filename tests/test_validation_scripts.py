"""Every script in validation/ runs on its own: each answers --help from a fresh interpreter (the
experiments themselves run at --quick size in tests/experiments, the benchmarks in their own tests)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted(
    p for p in (ROOT / "validation").glob("*.py") if p.name not in ("make_results.py", "migrate_results.py")
)


@pytest.mark.parametrize("script", SCRIPTS, ids=[p.name for p in SCRIPTS])
def test_script_answers_help(script):
    out = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "--quick" in out.stdout and "--out" in out.stdout


def test_determinism_probe_same_bits_at_a_fixed_thread_count(tmp_path):
    """validation/determinism.py at quick size: every probe and every fixture regenerates to the same
    bits in two fresh processes at the same thread count (the guarantee the README states)."""
    import importlib.util
    import json

    spec = importlib.util.spec_from_file_location("determinism", ROOT / "validation" / "determinism.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = tmp_path / "det.json"
    assert mod.main(["--quick", "--out", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert len(doc["probes"]) >= 10
    for row in doc["probes"]:
        assert row["same_1_thread"] and row["same_2_threads"], row
        assert row["same_1_vs_2_threads"] or 0 < row["max_rel_diff_1_vs_2"] < 1e-8, row
    assert doc["fixtures"]["cases"] >= 20
    assert doc["fixtures"]["same_1_thread"] and doc["fixtures"]["same_2_threads"]
