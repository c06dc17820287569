"""Smoke test of validation/vae_direction_quality.py at tiny size, with an interrupted run resumed."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from refvpng._threads import limit_threads

SCRIPT = Path(__file__).resolve().parents[2] / "validation" / "vae_direction_quality.py"


def _load():
    spec = importlib.util.spec_from_file_location("vae_direction_quality", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_quick_run_measures_and_resumes(tmp_path):
    mod = _load()
    out = tmp_path / "q.json"
    assert mod.main(["--quick", "--steps", "5", "--points", "1,3", "--out", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert [r["step"] for r in doc["points"]] == [1, 3]
    for r in doc["points"]:
        assert r["cg_converged"] and r["cg_iterations"] > 0
        assert all(-1.0 <= c <= 1.0 for c in r["cosines"].values())
        assert {"vpng_tridiag_running", "q_natural", "adam", "gradient"} <= set(r["cosines"])

    class Killed(Exception):
        pass

    def log(msg):
        if msg.startswith("step 3"):
            raise Killed

    s = mod._settings(mod.argparse.Namespace(quick=True, data=None, seed=0))
    out2 = tmp_path / "r.json"
    msgs = []
    with limit_threads(1):  # as main(): the same rounding
        with pytest.raises(Killed):
            mod.trajectory(s, 1e-3, 5, [1, 3], out2, rtol=1e-4, maxiter=2000, log=log)
        assert len(json.loads(out2.read_text())["points"]) == 1
        again = mod.trajectory(s, 1e-3, 5, [1, 3], out2, rtol=1e-4, maxiter=2000, log=msgs.append)
    assert msgs[0].startswith("resuming at step 2")
    for got, want in zip(again["points"], doc["points"], strict=True):
        assert (got["step"], got["cg_iterations"], got["elbo"]) == (
            want["step"],
            want["cg_iterations"],
            want["elbo"],
        )
        assert got["cosines"] == want["cosines"]
