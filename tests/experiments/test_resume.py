"""Kill and resume, for every experiment: an interrupted run resumes from its cell cache to the
result of an uninterrupted one, and a SIGKILL leaves no temporary file and no live lock behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from refvpng.experiments import blr, harness, ppca, toy, vae

EXPERIMENTS = {"toy": toy, "blr": blr, "ppca": ppca, "vae": vae}


def _numbers(doc):
    """Everything but timings (ppca records wall-clock seconds to tolerance) and the machine."""
    if isinstance(doc, dict):
        return {k: _numbers(v) for k, v in doc.items() if "seconds" not in k and k != "machine"}
    if isinstance(doc, list):
        return [_numbers(v) for v in doc]
    return doc


def _interrupt_after(exp, monkeypatch, n_cells):
    """Make the experiment's module raise KeyboardInterrupt once ``n_cells`` cells have finished."""
    real = harness._timed_cell
    seen = {"n": 0}

    def flaky(module, settings, cell):
        if seen["n"] >= n_cells:
            raise KeyboardInterrupt
        seen["n"] += 1
        return real(module, settings, cell)

    monkeypatch.setattr(harness, "_timed_cell", flaky)


@pytest.mark.parametrize("name", sorted(EXPERIMENTS))
def test_interrupted_quick_run_resumes(name, tmp_path, monkeypatch):
    mod = EXPERIMENTS[name]
    kw = {"preset": "quick", "plot": False, "show_progress": False}
    with monkeypatch.context() as m:
        _interrupt_after(mod.EXPERIMENT, m, 1)
        with pytest.raises(KeyboardInterrupt):
            mod.run_experiment(out=tmp_path / "resumed", **kw)
    cache = next((tmp_path / "resumed" / ".cells").iterdir())
    first = {p.name: p.read_text() for p in cache.iterdir()}
    assert len(first) == 1 and not (tmp_path / "resumed" / ".refvpng.lock").exists()
    resumed = mod.run_experiment(out=tmp_path / "resumed", **kw)
    # the cell computed before the interruption is reused as it was, not recomputed
    assert {p: (cache / p).read_text() for p in first} == first
    assert resumed["cells"] == len(list(cache.iterdir())) > 1
    if name != "vae":  # vae's cells stop on a CPU-time budget: their step counts vary run to run
        fresh = mod.run_experiment(out=tmp_path / "fresh", **kw)
        assert _numbers(resumed) == _numbers(fresh)


def test_sigkill_mid_run_leaves_no_temporary_and_resumes(tmp_path):
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "refvpng", "reproduce", "blr", "--quick", "--no-progress", "--out", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        cells = list((out / ".cells").glob("*/*.json")) if (out / ".cells").exists() else []
        if len(cells) >= 2:
            break
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert (out / ".refvpng.lock").exists()  # a killed process cannot release its lock ...
    assert not (out / "blr_table1.json").exists()
    rerun = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr  # ... and the next run takes the stale lock over
    leftovers = [p for p in out.rglob("*") if ".tmp" in p.name or p.name == ".refvpng.lock"]
    assert not leftovers
    doc = json.loads((out / "blr_table1.json").read_text())
    fresh = blr.run_experiment(preset="quick", out=tmp_path / "fresh", plot=False, show_progress=False)
    assert _numbers(doc) == _numbers(json.loads(json.dumps(fresh)))
