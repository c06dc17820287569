"""Figure 3 VMF experiment: a --quick run end to end, the claims on the curves, the bench smoke test."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pytest

from refvpng.experiments import vmf
from refvpng.experiments.vmf_report import claims, markdown
from tests.experiments._clock import step_clock

BENCH = Path(__file__).resolve().parents[2] / "validation" / "bench" / "bench_vmf.py"


def test_quick_run_writes_json_png_and_resumes(tmp_path, capsys):
    args = ["--quick", "--out", str(tmp_path), "--no-progress"]
    assert vmf.main(args) == 0
    assert "paper" in capsys.readouterr().out
    doc = json.loads((tmp_path / "vmf_figure3.json").read_text())
    assert set(vmf.METHODS) <= set(doc) and doc["data_source"] == "synthetic"
    for m in vmf.METHODS:
        r = doc[m]
        curve = np.asarray(r["curve"])
        assert curve.shape[1] == 3 and curve.shape[0] >= 2 and np.all(np.isfinite(curve))
        assert len(r["curve_steps"]) == len(curve) and r["curve_steps"][0] == 0
        assert r["curve_steps"][-1] <= r["steps"] and r["sec_per_iter"] > 0
        assert r["final_train_elbo"] == curve[-1, 1] and r["final_test_elbo"] == curve[-1, 2]
    assert doc["two_step"]["steps"] >= 2
    assert (tmp_path / "vmf_figure3.png").stat().st_size > 0
    section = "\n".join(markdown(doc))
    assert "Paper's claims" in section and "VPNG ahead at the end" in section
    cell = next((tmp_path / ".cells").iterdir()) / "adam-lr0.001.json"
    before = cell.stat().st_mtime_ns
    assert vmf.main([*args, "--no-plot"]) == 0
    assert cell.stat().st_mtime_ns == before  # finished cells are reused


def _doc(curves):
    doc = {"settings": {"methods": list(curves)}}
    for m, c in curves.items():
        doc[m] = {"curve": c, "final_train_elbo": c[-1][1], "final_test_elbo": c[-1][2]}
    return doc


def test_claims_are_read_off_the_curves():
    t = [0.0, 1.0, 2.0, 3.0, 4.0]
    vp = [[s, v, v - 1] for s, v in zip(t, [-50, -20, -15, -13, -12.5], strict=True)]
    ad = [[s, v, v - 1] for s, v in zip(t, [-50, -30, -19, -14, -13.0], strict=True)]
    qn = [[s, v, v - 1] for s, v in zip(t, [-50, -35, -18, -14, -12.9], strict=True)]
    c = claims(_doc({"adam": ad, "q_natural": qn, "vpng_tridiag": vp}))
    assert c["ahead_train"] and c["ahead_test"] and c["gap_largest_early"] and c["ng_worst_at_start"]
    late = [[s, v, v - 1] for s, v in zip(t, [-50, -25, -30, -20, -12.0], strict=True)]
    c = claims(_doc({"adam": ad, "q_natural": late, "vpng_tridiag": vp}))
    assert not c["ahead_train"] and not c["ng_worst_at_start"]
    assert claims(_doc({"adam": ad}))["ahead_train"] is None
    # behind the best other method throughout, least far behind early: no advantage to be largest
    behind = [[s, v, v - 1] for s, v in zip(t, [-50, -31, -25, -20, -18.0], strict=True)]
    c = claims(_doc({"adam": ad, "q_natural": qn, "vpng_tridiag": behind}))
    assert max(g for _, g in c["gap"]) < 0 and not c["gap_largest_early"]


def test_settings_are_validated():
    with pytest.raises(ValueError, match="methods"):
        vmf.Settings(methods=("newton",))
    s = vmf.Settings()
    assert (s.batch, s.hidden, s.d_z, s.min_ratings) == (3000, 300, 100, 300)
    assert len(s.lrs) >= 3
    # Figure 2's two-stage protocol and *_authors methods are not Figure 3's
    with pytest.raises(ValueError, match="methods"):
        vmf.Settings(methods=("vpng_authors",))
    with pytest.raises(ValueError, match="stage"):
        vmf.Settings(stage="pilot")
    with pytest.raises(ValueError, match="chosen"):
        vmf.Settings(chosen=("adam=0.01",))


def test_the_authors_factor_options_run_on_the_poisson_network():
    """one z with M x', the exact diagonal output factor, eigenvalue damping, every-step inverses,
    truncated-normal initialisation and the sigma floor: a run that differs from the default one."""
    from refvpng.experiments.vae_authors import AUTHORS

    base = vmf.Settings(**{**vmf.QUICK, "budget": 1e9, "n_evals": 1})
    data = vmf.synthetic_ratings(0)

    def run(s):
        return vmf.run_one("vpng_tridiag", 3e-3, s, data, _clock_fn=step_clock(14))

    ref = run(base)
    out = run(vmf.Settings(**{**vmf.QUICK, "budget": 1e9, "n_evals": 1, **AUTHORS, "lowrank_threshold": 20}))
    assert out["steps"] == ref["steps"] == 11 and "failed" not in out
    assert math.isfinite(out["final_test_elbo"]) and out["final_test_elbo"] != ref["final_test_elbo"]


def test_bench_quick_writes_ratios(tmp_path):
    spec = importlib.util.spec_from_file_location("bench_vmf", BENCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = tmp_path / "bench.json"
    assert mod.main(["--quick", "--out", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert math.isfinite(doc["ratio_vpng_to_adam_cpu"]) and doc["ratio_vpng_to_adam_cpu"] > 0
    assert doc["methods"]["adam"]["ratio_to_adam_cpu"] == 1.0 and doc["settings"]["quick"] is True


def test_a_diverged_cell_is_recorded_and_not_picked(tmp_path):
    """A step size so large that the Poisson rate overflows ends its run as ``failed`` (the
    overflow check of vae_step), and the step-size pick skips it even though its last ELBO is
    compared with the others'."""
    s = vmf.Settings(**{**vmf.QUICK, "methods": ("vpng_tridiag",), "lrs": (1e-3, 30.0), "budget": 0.4})
    data = vmf.synthetic_ratings(0)
    bad = vmf.run_one("vpng_tridiag", 30.0, s, data)
    assert bad["failed"].startswith("diverged:") and "exceeds" in bad["failed"]
    curve = np.asarray(bad["curve"])
    assert np.all(np.isfinite(curve)) and bad["final_train_elbo"] == curve[-1, 1]
    good = vmf.run_one("vpng_tridiag", 1e-3, s, data)
    assert "failed" not in good
    # make the failed cell look best by its last ELBO: the pick must still skip it
    bad = {**bad, "final_train_elbo": good["final_train_elbo"] + 1.0}
    doc = vmf.best_per_method(s, {"vpng_tridiag-lr0.001": good, "vpng_tridiag-lr30": bad})
    assert doc["vpng_tridiag"]["lr"] == 1e-3
    assert [g.get("failed", "")[:8] for g in doc["vpng_tridiag"]["grid"]] == ["", "diverged"]
    doc.update(settings={"methods": ["vpng_tridiag"]}, notes="", data_source="x")
    section = "\n".join(markdown(doc))
    assert "vpng_tridiag 30" in section
