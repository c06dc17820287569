"""The experiment harness: CLI from settings, cell cache and resume, lock, output folder, parallel cells."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from refvpng._atomic import atomic_path, remove_stale_temporaries, write_json_atomic
from refvpng.experiments import blr, harness
from refvpng.experiments.harness import Cell, Experiment, OutputLockedError

# --------------------------------------------------------------------------- a tiny experiment
INTERRUPT_AT = {"key": None}


@dataclasses.dataclass(frozen=True)
class FakeSettings:
    n_cells: int = 5
    scale: float = 1.5
    tags: tuple[str, ...] = ("a", "b")
    noisy: bool = False


def _cells(st):
    return [Cell(f"c{k}", {"seed": k}) for k in range(st.n_cells)]


def _run_cell(st, cell):
    if cell.key == INTERRUPT_AT["key"]:
        raise KeyboardInterrupt
    rng = np.random.default_rng(cell.params["seed"])
    return {"value": float(st.scale * rng.standard_normal())}


def _summarize(st, results):
    return {"total": sum(r["value"] for r in results.values()), "keys": sorted(results)}


FAKE = Experiment(
    name="fake",
    result="fake_result",
    settings=FakeSettings,
    cells=_cells,
    run_cell=_run_cell,
    summarize=_summarize,
    headline=lambda doc: f"total {doc['total']:.3f}",
    presets={"quick": {"n_cells": 2}},
)
EXPERIMENT = FAKE  # what harness workers import


def _numbers(doc):
    return {k: v for k, v in doc.items() if k not in ("seconds", "wall_seconds", "machine")}


# --------------------------------------------------------------------------- settings and CLI
def test_cli_is_generated_from_the_settings():
    p = harness.build_parser(blr.EXPERIMENT)
    ns = p.parse_args(["--quick", "--lrs", "0.1", "0.2", "--n-runs", "3"])
    st, preset = harness.settings_from_args(blr.EXPERIMENT, ns)
    assert preset == "quick"
    assert st.lrs == (0.1, 0.2) and st.n_runs == 3  # explicit flags beat the preset
    assert st.n_iter == blr.QUICK["n_iter"] and st.rules == ("adam",)  # the preset beats defaults
    st2, preset2 = harness.settings_from_args(blr.EXPERIMENT, p.parse_args([]))
    assert st2 == blr.Settings() and preset2 is None
    ns = harness.build_parser(FAKE).parse_args(["--noisy", "--tags", "x"])
    assert harness.settings_from_args(FAKE, ns)[0] == FakeSettings(noisy=True, tags=("x",))


def test_help_lists_every_setting(capsys):
    with pytest.raises(SystemExit):
        harness.build_parser(blr.EXPERIMENT).parse_args(["--help"])
    out = capsys.readouterr().out
    for f in dataclasses.fields(blr.Settings):
        assert "--" + f.name.replace("_", "-") in out
    assert "--scheduler" in out and "--publish" in out


# --------------------------------------------------------------------------- output folder
def test_default_folder_is_the_working_directory_and_quick_runs_are_never_published(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert harness.output_dir() == tmp_path / "refvpng-results"
    with pytest.raises(ValueError, match="quick"):
        harness.output_dir(publish=True, preset="quick")
    with pytest.raises(ValueError, match="--out"):
        harness.output_dir(tmp_path, publish=True)
    assert harness.main(FAKE, ["--quick", "--no-progress"]) == 0
    assert (tmp_path / "refvpng-results" / "fake_result.json").exists()


def test_unwritable_folder_is_refused_before_any_work(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OSError, match="file"):
        harness.run_experiment(FAKE, out=blocker / "sub", show_progress=False)
    assert harness.main(FAKE, ["--out", str(blocker / "sub")]) == 2
    assert str(blocker) in capsys.readouterr().err


def test_a_live_lock_refuses_and_a_stale_one_is_taken_over(tmp_path):
    lock = tmp_path / ".refvpng.lock"
    lock.write_text(f"{socket.gethostname()} {os.getppid()}")  # a live process
    with pytest.raises(OutputLockedError, match="in use"):
        harness.run_experiment(FAKE, out=tmp_path, show_progress=False)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    lock.write_text(f"{socket.gethostname()} {dead.pid}")
    harness.run_experiment(FAKE, out=tmp_path, show_progress=False)
    assert not lock.exists()  # released after the run


# --------------------------------------------------------------------------- cache and resume
def test_interrupted_run_resumes_to_the_uninterrupted_result(tmp_path):
    fresh = harness.run_experiment(FAKE, out=tmp_path / "fresh", show_progress=False)
    INTERRUPT_AT["key"] = "c3"
    try:
        with pytest.raises(KeyboardInterrupt):
            harness.run_experiment(FAKE, out=tmp_path / "resumed", show_progress=False)
    finally:
        INTERRUPT_AT["key"] = None
    cache = next((tmp_path / "resumed" / ".cells").iterdir())
    assert sorted(p.name for p in cache.iterdir()) == ["c0.json", "c1.json", "c2.json"]
    assert not (tmp_path / "resumed" / ".refvpng.lock").exists()
    resumed = harness.run_experiment(FAKE, out=tmp_path / "resumed", show_progress=False)
    assert _numbers(resumed) == _numbers(fresh)
    # the reported cost is the sum over all cells, whichever run computed them
    cells = [json.loads(p.read_text()) for p in cache.iterdir()]
    assert resumed["seconds"] == pytest.approx(sum(c["cpu_seconds"] for c in cells), rel=1e-12)


def test_changed_settings_never_reuse_cells(tmp_path):
    a = harness.run_experiment(FAKE, FakeSettings(scale=1.5), out=tmp_path, show_progress=False)
    b = harness.run_experiment(FAKE, FakeSettings(scale=2.5), out=tmp_path, show_progress=False)
    assert b["total"] == pytest.approx(a["total"] * 2.5 / 1.5, rel=1e-12)
    assert len(list((tmp_path / ".cells").iterdir())) == 2


def test_settings_are_recorded(tmp_path):
    doc = harness.run_experiment(FAKE, preset="quick", out=tmp_path, show_progress=False)
    saved = json.loads((tmp_path / "fake_result.json").read_text())
    assert saved["settings"] == {"n_cells": 2, "scale": 1.5, "tags": ["a", "b"], "noisy": False}
    assert saved["preset"] == "quick" and saved["cells"] == 2 == len(doc["keys"])
    assert {"refvpng", "numpy", "scipy", "numba", "autograd", "python"} <= set(saved["machine"])


# --------------------------------------------------------------------------- parallel cells
TINY = blr.Settings(n=60, n_runs=2, n_iter=30, lrs=(0.1,), rules=("adam",), dampings=(0.1,), eval_every=10)


def test_joblib_cells_equal_the_serial_run_bit_for_bit(tmp_path):
    serial = blr.run_experiment(TINY, out=tmp_path / "serial", plot=False, show_progress=False)
    par = blr.run_experiment(TINY, out=tmp_path / "jobs", jobs=2, plot=False, show_progress=False)
    assert _numbers(par) == _numbers(serial)


def test_dask_cluster_cells_equal_the_local_run_bit_for_bit(tmp_path):
    import distributed  # the dask extra is part of the test extra: never skipped

    local = blr.run_experiment(TINY, out=tmp_path / "local", plot=False, show_progress=False)
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        remote = blr.run_experiment(
            TINY, out=tmp_path / "dask", scheduler=cluster.scheduler_address, plot=False, show_progress=False
        )
    assert _numbers(remote) == _numbers(local)


# --------------------------------------------------------------------------- atomic writer
def test_failed_json_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "r.json"
    write_json_atomic(target, {"a": 1})
    with pytest.raises(ValueError):
        write_json_atomic(target, {"a": float("nan")})
    assert json.loads(target.read_text()) == {"a": 1}
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json"]
    assert oct(target.stat().st_mode & 0o777) == "0o644"


def test_no_temporary_survives_a_kill(tmp_path):
    """SIGKILL inside the writer leaves a temporary; the next start removes it, the target is intact."""
    target = tmp_path / "r.json"
    write_json_atomic(target, {"old": True})
    script = textwrap.dedent(
        f"""
        import time
        from refvpng._atomic import atomic_path
        with atomic_path({str(target)!r}) as tmp:
            tmp.write_text('{{"half": ')
            print("writing", flush=True)
            time.sleep(60)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "writing"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    leftovers = [p for p in tmp_path.iterdir() if p.name != "r.json"]
    assert len(leftovers) == 1
    assert remove_stale_temporaries(tmp_path) == leftovers
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json"]
    assert json.loads(target.read_text()) == {"old": True}


def test_output_dir_and_lock_check_their_arguments(tmp_path):
    from refvpng.experiments.output import output_dir, output_lock

    with pytest.raises(TypeError, match="publish must be a bool"):
        output_dir(tmp_path, publish=np.ones(2))
    with pytest.raises(TypeError, match="out must be a str or os.PathLike"):
        output_dir(object())
    with pytest.raises(TypeError, match="folder must be a str or os.PathLike"):
        with output_lock(None):
            pass
    garbage = tmp_path / "a-file"
    garbage.write_text("x")
    with pytest.raises(OSError, match=f"{garbage}.* not writable"):
        with output_lock(garbage):
            pass
