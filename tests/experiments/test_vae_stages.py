"""Figure 2's two-stage protocol at --quick size: the pilot grid, its choices and next command,
then the long runs at the chosen step sizes with the authors' configuration and the ablation."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest

from refvpng.experiments import vae
from refvpng.experiments.vae_authors import ablation_settings, authors_settings, resolve_method
from tests.experiments._clock import step_clock

AUTHORS_M = ("adam_authors", "q_natural_authors", "vpng_authors")


def test_pilot_then_full_stage(tmp_path, capsys):
    methods = (*vae.DEFAULT_METHODS, *AUTHORS_M)
    args = ["--quick", "--out", str(tmp_path), "--no-progress", "--budget", "0.3", "--lrs", "1e-3", "3e-3"]
    args += ["--methods", *methods]
    # stage 1: the pilot grid; its headline prints the command of stage 2
    assert vae.main([*args, "--stage", "pilot"]) == 0
    out = capsys.readouterr().out
    assert "next: refvpng reproduce vae --stage full --chosen adam=" in out
    pilot_doc = json.loads((tmp_path / "vae_figure2.json").read_text())
    assert set(pilot_doc["pilot"]) == set(vae.DEFAULT_METHODS)
    # the printed command repeats the settings that differ from the defaults
    nxt = pilot_doc["next_command"]
    for flag in (
        "--budget 0.3",
        "--lrs 0.001 0.003",
        "--data synthetic",
        "--pilot-budget 0.15",
        "--methods adam",
    ):
        assert flag in nxt
    assert "--stage pilot" not in nxt
    # stage 2 reuses the pilot cells (same cache folder) and adds long and ablation cells
    cache = next((tmp_path / ".cells").iterdir())
    pilot_cell = cache / "pilot-adam-lr0.001.json"
    before = pilot_cell.stat().st_mtime_ns
    assert vae.main([*args, "--stage", "full"]) == 0
    assert "paper" in capsys.readouterr().out and pilot_cell.stat().st_mtime_ns == before
    assert len(list((tmp_path / ".cells").iterdir())) == 1  # one fingerprint for both stages
    doc = json.loads((tmp_path / "vae_figure2.json").read_text())
    assert set(methods) <= set(doc) and doc["two_step"]["steps"] >= 2
    for m in methods:
        r = doc[m]
        assert r["method"] == m and r["steps"] >= 1 and r["sec_per_iter"] > 0
        curve = np.asarray(r["curve"])
        assert curve.ndim == 2 and curve.shape[1] == 3 and curve.shape[0] >= 1
        assert np.all(np.isfinite(curve)) and len(r["curve_steps"]) == len(curve)
        assert r["final_test_elbo"] == curve[-1, 2]
        if "failed" not in r:
            assert curve.shape[0] >= 2 and np.all(np.diff(curve[:, 0]) > 0)
            assert np.all(np.diff(r["curve_steps"]) > 0)
    # each long run is at the pilot's choice; the authors' methods at the authors' rates
    for m, p in doc["pilot"].items():
        assert doc[m]["lr"] == p["lr"] and p["edge"] in (None, "low", "high")
    assert doc["vpng_authors"]["lr"] == 0.01 and doc["q_natural_authors"]["lr"] == 0.002
    assert doc["adam_authors"]["lr"] == 0.003
    assert set(doc["time_to_adam"]) == {"target_test_elbo", *methods}
    assert doc["time_to_adam"]["adam"]["seconds"] is not None  # Adam reaches its own final value
    assert doc["standing"]["adam"]["test_minus_adam"] == 0.0
    assert [row["revert"] for row in doc["ablation"]] == [None, *vae.ABLATIONS]
    assert "_authors" in doc["notes"] and "pilot runs of 0.15 s" in doc["notes"]
    md = "\n".join(vae.markdown(doc))
    assert "Ablation" in md and "Time to reach Adam" in md and "pilot runs of 0.15 s" in md
    assert (tmp_path / "vae_figure2.png").stat().st_size > 0
    # chosen step sizes select the long cells; a grid extended by a step size keeps the others
    args2 = [a for a in args if a != "--no-progress"] + ["--no-progress", "--no-plot"]
    i = args2.index("--methods")
    args2 = args2[:i] + args2[i + 1 + len(methods) :] + ["--methods", "adam"]
    assert vae.main([*args2, "--stage", "full", "--chosen", "adam=3e-3"]) == 0
    assert (cache / "adam-lr0.003.json").exists()
    j = args2.index("--lrs")
    args3 = args2[:j] + args2[j + 3 :] + ["--lrs", "1e-3", "3e-3", "1e-2"]
    assert vae.main([*args3, "--stage", "full"]) == 0
    assert pilot_cell.stat().st_mtime_ns == before and (cache / "pilot-adam-lr0.01.json").exists()
    doc2 = json.loads((tmp_path / "vae_figure2.json").read_text())
    assert doc2["settings"]["methods"] == ["adam"] and len(doc2["adam"]["grid"]) == 3


def test_grid_stage_runs_authors_methods_at_their_rate():
    s = vae.Settings(**{**vae.QUICK, "methods": ("adam", "vpng_authors")})
    cells = vae.cells(s)
    assert [c.key for c in cells] == ["adam-lr0.001", "vpng_authors-lr0.01"]
    assert [c.key for c in vae.cells(dataclasses.replace(s, stage="pilot"))] == ["pilot-adam-lr0.001"]


def test_authors_methods_resolve_to_the_base_method_with_every_choice():
    s = vae.Settings()
    base, sa = resolve_method("vpng_authors", s)
    assert base == "vpng_tridiag" and sa == authors_settings(s)
    for k, v in vae.AUTHORS.items():
        assert getattr(sa, k) == v
    assert resolve_method("adam", s) == ("adam", s)
    assert resolve_method("q_natural_authors", s)[0] == "q_natural"
    with pytest.raises(ValueError, match="method"):
        resolve_method("newton_authors", s)
    for name in vae.ABLATIONS:
        a = ablation_settings(s, name)
        if name == "lr":
            assert a == sa
            continue
        assert getattr(a, name) == getattr(s, name)  # reverted
        others = {k: v for k, v in vae.AUTHORS.items() if k != name}
        assert all(getattr(a, k) == v for k, v in others.items())
    with pytest.raises(ValueError, match="revert"):
        ablation_settings(s, "batch")
    with pytest.raises(TypeError, match="s must"):
        authors_settings({"damping": 0.1})


def test_authors_run_one_records_its_name_and_configuration():
    s = vae.Settings(**{**vae.QUICK, "budget": 1e9, "n_evals": 1})
    data = vae.synthetic_data(0, n_train=400, n_test=50, d=40)  # more factor rows than pixels
    out = vae.run_one("vpng_authors", 1e-2, s, data, _clock_fn=step_clock(14))
    assert out["method"] == "vpng_authors" and math.isfinite(out["final_test_elbo"])
    assert out["steps"] == 11 and "failed" not in out and "refresh_seconds_mean" in out
    # the authors' configuration differs from refvpng's on the same steps
    ref = vae.run_one("vpng_tridiag", 1e-2, s, data, _clock_fn=step_clock(14))
    assert ref["steps"] == 11 and ref["final_test_elbo"] != out["final_test_elbo"]


def test_a_kfac_inverse_that_does_not_exist_ends_the_run_and_is_recorded():
    # 784 pixels from 100 factor rows: the authors' tridiagonal inverse does not exist at step 0
    s = vae.Settings(**{**vae.QUICK, "budget": 1e9, "n_evals": 1})
    out = vae.run_one("vpng_authors", 1e-2, s, vae.synthetic_data(0), _clock_fn=lambda: 0.0)
    assert "positive definite" in out["failed"] and out["steps"] == 1
    assert len(out["curve"]) == 2 and out["curve_steps"] == [0, 0]  # evaluated where it ended
    assert math.isfinite(out["final_test_elbo"])


def test_settings_validation():
    with pytest.raises(ValueError, match="chosen"):
        vae.Settings(chosen=("adam:0.1",))
    with pytest.raises(ValueError, match="chosen"):
        vae.Settings(chosen=("vpng_authors=0.1",))
    with pytest.raises(ValueError, match="predictive"):
        vae.Settings(predictive="two_z")
    with pytest.raises(ValueError, match="stage"):
        vae.Settings(stage="final")
    with pytest.raises(ValueError, match="ablation"):
        vae.Settings(ablation=("batch",))
    with pytest.raises(ValueError, match="lrs"):
        vae.Settings(lrs=(0.0,))
    assert vae.Settings(chosen=("adam=3e-3", "vpng_tridiag=0.01")).chosen_lrs() == {
        "adam": 3e-3,
        "vpng_tridiag": 0.01,
    }


def test_lr_ablation_at_the_authors_step_size_reuses_the_authors_run():
    """Reverting the step size to the authors' own 0.01 changes nothing: no cell, the same row."""
    methods = ("adam", "vpng_tridiag", "vpng_authors")
    s = vae.Settings(**{**vae.QUICK, "stage": "full", "methods": methods, "ablation": ("lr", "init")})
    same = dataclasses.replace(s, chosen=("adam=0.001", "vpng_tridiag=0.01"))
    other = dataclasses.replace(s, chosen=("adam=0.001", "vpng_tridiag=0.003"))
    assert [c.key for c in vae.cells(same) if c.key.startswith("ablation")] == ["ablation-init"]
    assert [c.key for c in vae.cells(other) if c.key.startswith("ablation")] == [
        "ablation-lr-lr0.003",
        "ablation-init",
    ]
    run = {"lr": 0.01, "steps": 7, "sec_per_iter": 0.1, "final_train_elbo": -90.0, "final_test_elbo": -91.5,
           "curve": [[0.0, -500.0, -501.0], [1.0, -90.0, -91.5]], "curve_steps": [0, 7]}  # fmt: skip
    results = {c.key: {**run, "lr": c.params["lr"]} for c in vae.cells(same)}
    results["ablation-init"] = {**run, "final_test_elbo": -95.25}
    doc = vae.summarize(same, results)
    rows = {r["revert"]: r for r in doc["ablation"]}
    assert rows["lr"]["delta_test"] == 0.0 and rows["lr"]["steps"] == 7
    assert "the authors' run itself" in rows["lr"]["description"]
    assert rows["init"]["delta_test"] == -3.75
