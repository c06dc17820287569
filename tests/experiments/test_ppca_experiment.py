"""Smoke test of the pPCA experiment (refvpng.experiments.ppca) at its --quick size."""

from __future__ import annotations

import json

import numpy as np
import pytest

from refvpng.experiments import ppca as exp


@pytest.fixture(scope="module")
def quick_out(tmp_path_factory):
    out = tmp_path_factory.mktemp("ppca")
    assert exp.main(["--quick", "--out", str(out), "--no-progress"]) == 0
    return out


def test_quick_run_writes_json_and_png(quick_out):
    doc = json.loads((quick_out / "latent_fisher.json").read_text())
    assert doc["preset"] == "quick" and doc["settings"]["small_grid"] is True
    res = doc["ppca"]
    assert set(res["methods"]) == set(exp.METHODS)
    for row in res["methods"].values():
        for key in (
            "iterations_to_tol",
            "seconds_to_tol",
            "final_gap",
            "principal_angle",
            "noise_variance",
            "config",
            "status",
            "reached",
        ):
            assert key in row
        assert (row["iterations_to_tol"] is None) == (row["seconds_to_tol"] is None)
    s = res["settings"]
    assert (s["d"], s["k"], s["n"], s["quick"]) == (5, 2, 200, True)
    assert s["tol_per_point"] == 1e-3 and res["max_loglik_per_point"] < 0
    two = res["methods"]["two_step"]
    assert two["reached"] and two["final_gap"] >= -1e-9 and two["principal_angle"] < 1e-6
    assert (quick_out / "ppca_convergence.png").stat().st_size > 1000
    assert not [p for p in quick_out.iterdir() if ".tmp" in p.name]
    curve = res["curves"]["two_step"]
    assert len(curve["gap"]) == len(curve["iteration"]) > 10 and min(curve["gap"]) < 1e-9


def test_run_method_is_deterministic():
    problem = exp.make_problem(4, 2, 60, seed=1)
    a = exp.run_method(problem, "two_step", exp.method_grid("two_step", quick=True)[0], max_iter=30)
    b = exp.run_method(problem, "two_step", exp.method_grid("two_step", quick=True)[0], max_iter=30)
    assert np.array_equal(a["gaps"], b["gaps"])
    assert a["iterations_run"] == 30 and a["gaps"].shape == (31,)


def test_divergence_is_reported_not_raised():
    problem = exp.make_problem(4, 2, 60, seed=1)
    r = exp.run_method(problem, "vpng", {"lr": 1.0, "damping_per_point": 1e-4}, max_iter=200)
    assert r["status"].startswith("diverged") and not r["reached"]
    assert r["final_gap"] is None and r["iterations_to_tol"] is None


def test_unknown_method_raises():
    with pytest.raises(ValueError, match="method must be one of"):
        exp.method_grid("sgd")
