"""Figure 2's summary logic on synthetic curves with known answers (no training)."""

from __future__ import annotations

import dataclasses
import math
import shlex

import numpy as np
import pytest

from refvpng.experiments.vae_report import (
    ablation_table,
    full_stage_command,
    grid_edge,
    pilot_choice,
    standing,
    time_to_reach,
    time_to_target,
)

LRS = [3e-4, 1e-3, 3e-3, 1e-2, 3e-2]


@pytest.mark.parametrize(
    ("scores", "want"),
    [
        ([-130.0, -120.0, -111.0, -115.0, -140.0], None),  # bracketed
        ([-105.0, -120.0, -121.0, -125.0, -140.0], "low"),
        ([-150.0, -120.0, -111.0, -109.0, -108.5], "high"),
        ([-130.0, -120.0, -111.0, -115.0, float("nan")], None),  # NaN (diverged) is worst
        ([-130.0, -120.0, -111.0, -115.0, -110.0], "high"),
    ],
)
def test_grid_edge(scores, want):
    assert grid_edge(LRS, scores) == want
    # the grid's order does not matter
    assert grid_edge(LRS[::-1], scores[::-1]) == want


def test_grid_edge_single_and_bad_input():
    assert grid_edge([1e-3], [-100.0]) == "single"
    with pytest.raises(ValueError, match="scores"):
        grid_edge([1e-3, 1e-2], [-100.0])
    with pytest.raises(ValueError, match="scores"):
        grid_edge([1e-3, 1e-2], [-100.0, float("inf")])
    with pytest.raises(ValueError, match="lrs"):
        grid_edge([0.0, 1e-2], [-100.0, -90.0])
    with pytest.raises(TypeError, match="lrs"):
        grid_edge("1e-3", [-100.0])


def test_pilot_choice_skips_failed_runs():
    runs = [
        {"lr": lr, "steps": 10, "sec_per_iter": 0.1, "final_train_elbo": v, "final_test_elbo": v - 1}
        for lr, v in zip(LRS, [-130.0, -120.0, -111.0, -115.0, -100.0], strict=True)
    ]
    runs[-1]["failed"] = "Sigma not positive definite"
    p = pilot_choice(LRS, runs)
    assert p["lr"] == 3e-3 and p["edge"] is None and p["failed"] == [3e-2] and len(p["grid"]) == 5
    cmd = full_stage_command({"adam": p, "vpng_tridiag": {**p, "lr": 0.01}})
    assert cmd == "refvpng reproduce vae --stage full --chosen adam=0.003 vpng_tridiag=0.01"
    with pytest.raises(ValueError, match="runs"):
        pilot_choice(LRS, runs[:-1])
    with pytest.raises(ValueError, match="runs"):
        pilot_choice(LRS, [{"lr": 1.0}] * 5)
    with pytest.raises(TypeError, match="pilot"):
        full_stage_command({})


def test_full_stage_command_repeats_the_pilots_settings():
    from refvpng.experiments.vae import Settings

    s = Settings(stage="pilot", batch=600, lrs=(3e-4, 1e-2), methods=("adam", "vpng_authors"))
    s = dataclasses.replace(s, lowrank_floor=True, data="/tmp/my mnist")
    cmd = full_stage_command({"adam": {"lr": 3e-4}}, s)
    assert cmd.startswith("refvpng reproduce vae --stage full --chosen adam=0.0003 ")
    for part in ("--batch 600", "--lrs 0.0003 0.01", "--methods adam vpng_authors", "--lowrank-floor"):
        assert part in cmd
    assert "'/tmp/my mnist'" in cmd and "--stage pilot" not in cmd and "--budget" not in cmd
    # the printed command parses back to the same settings, full stage
    from refvpng.experiments import harness, vae

    parser = harness.build_parser(vae.EXPERIMENT)
    back, _ = harness.settings_from_args(vae.EXPERIMENT, parser.parse_args(shlex.split(cmd)[3:]))
    assert back == dataclasses.replace(s, stage="full", chosen=("adam=0.0003",))


def test_time_to_reach_interpolates_on_both_clocks():
    # test ELBO: -200 at 0 s, -160 at 100 s, -120 at 200 s; target -130 is 3/4 of the way
    curve = [[0.0, -190.0, -200.0], [100.0, -150.0, -160.0], [200.0, -110.0, -120.0]]
    sec, it = time_to_reach(curve, [0, 40, 90], -130.0)
    assert sec == pytest.approx(175.0, abs=1e-12) and it == pytest.approx(77.5, abs=1e-12)
    assert time_to_reach(curve, [0, 40, 90], -119.0) == (None, None)  # never reached
    assert time_to_reach(curve, [0, 40, 90], -250.0) == (0.0, 0.0)  # reached at the start
    # the first crossing counts, not a later one after a dip
    dip = [[0.0, 0, -200.0], [10.0, 0, -150.0], [20.0, 0, -180.0], [30.0, 0, -140.0]]
    assert time_to_reach(dip, [0, 1, 2, 3], -160.0)[0] == pytest.approx(8.0, abs=1e-12)
    # unknown iterations (an old record without curve_steps) give NaN, seconds still known
    sec, it = time_to_reach(curve, [np.nan] * 3, -130.0)
    assert sec == pytest.approx(175.0) and it is None
    with pytest.raises(ValueError, match="curve"):
        time_to_reach([[0.0, 1.0]], [0], -1.0)
    with pytest.raises(ValueError, match="steps"):
        time_to_reach(curve, [0, 1], -1.0)
    with pytest.raises(ValueError, match="target"):
        time_to_reach(curve, [0, 1, 2], float("nan"))


def _run(lr, train, test, curve=None, steps=None):
    curve = curve or [[0.0, train - 50, test - 50], [1000.0, train, test]]
    return {
        "lr": lr, "steps": 100, "final_train_elbo": train, "final_test_elbo": test,
        "curve": curve, "curve_steps": steps or [0, 100],
    }  # fmt: skip


def test_time_to_target_and_standing():
    vpng_curve = [[0.0, -150, -150], [500.0, -99, -101], [1000.0, -98, -103]]
    doc = {
        "adam": _run(3e-3, -100.0, -102.0),
        "vpng_tridiag": _run(1e-2, -98.0, -103.0, vpng_curve, [0, 30, 60]),
        "q_natural": _run(1e-3, -105.0, -104.0),
    }
    methods = ["adam", "q_natural", "vpng_tridiag"]
    tt = time_to_target(doc, methods, doc["adam"]["final_test_elbo"])
    assert tt["target_test_elbo"] == -102.0
    assert tt["adam"]["seconds"] == pytest.approx(1000.0)  # reaches its own final value at the end
    # vpng: -150 -> -101 over 0..500 s; -102 is 48/49 of the way
    assert tt["vpng_tridiag"]["seconds"] == pytest.approx(500.0 * 48 / 49, rel=1e-12)
    assert tt["vpng_tridiag"]["iterations"] == pytest.approx(30.0 * 48 / 49, rel=1e-12)
    assert tt["q_natural"]["seconds"] is None
    st = standing(doc, methods)
    assert st["vpng_tridiag"]["train_rank"] == 1 and st["vpng_tridiag"]["test_rank"] == 2
    assert st["adam"]["test_rank"] == 1 and st["q_natural"]["train_rank"] == 3
    assert st["vpng_tridiag"]["train_minus_adam"] == pytest.approx(2.0)
    assert st["vpng_tridiag"]["test_minus_adam"] == pytest.approx(-1.0)
    with pytest.raises(ValueError, match="adam"):
        standing(doc, ["q_natural"])
    with pytest.raises(ValueError, match="methods"):
        time_to_target(doc, ["newton"], -1.0)
    with pytest.raises(TypeError, match="doc"):
        standing([doc], methods)


def test_ablation_table_deltas():
    base = _run(0.01, -97.0, -99.5)
    rows = [
        {"revert": "init", "description": "d1", **_run(0.01, -97.5, -99.0)},
        {"revert": "lr", "description": "d2", **_run(0.003, -99.0, -101.25)},
    ]
    table = ablation_table(base, rows)
    assert [r["revert"] for r in table] == [None, "init", "lr"]
    assert table[0]["delta_test"] == 0.0
    assert table[1]["delta_test"] == pytest.approx(0.5) and table[1]["delta_train"] == pytest.approx(-0.5)
    assert table[2]["delta_test"] == pytest.approx(-1.75) and table[2]["lr"] == 0.003
    assert all(math.isfinite(r["final_test_elbo"]) for r in table)
    assert np.isclose(sum(r["delta_test"] for r in table), -1.25)
    assert not any("failed" in r for r in table)
    with pytest.raises(ValueError, match="rows"):
        ablation_table(base, [{"revert": "init"}])
    with pytest.raises(TypeError, match="base"):
        ablation_table(None, rows)


def _cells(line: str) -> int:
    return line.count("|") - 1


def test_ablation_table_keeps_a_failed_run_visible():
    """A row that ended early keeps its reason; both renderings say so beside its own numbers."""
    from refvpng.experiments.vae_report import headline, markdown

    base = {**_run(0.01, -97.0, -99.5), "steps": 37, "failed": "Sigma_{4|5} is not positive definite"}
    rows = [
        {"revert": "init", "description": "d1", **_run(0.01, -97.5, -99.0), "steps": 41},
        {
            "revert": "lr",
            "description": "d2",
            **_run(0.003, -99.0, -101.25),
            "steps": 53,
            "failed": "diverged: x",
        },
    ]
    table = ablation_table(base, rows)
    assert [r.get("failed") for r in table] == [base["failed"], None, "diverged: x"]
    assert [r["steps"] for r in table] == [37, 41, 53]
    lines = headline({"settings": {"methods": []}, "ablation": table}).splitlines()
    abl = [ln for ln in lines if ln.startswith("ablation")]
    assert abl[0].endswith("(ended at step 37: K-FAC inverse did not exist)")
    assert "ended" not in abl[1] and abl[2].endswith("(ended at step 53: diverged)")
    md = markdown({"settings": {"methods": []}, "ablation": table, "notes": ""})
    head = next(ln for ln in md if ln.startswith("| reverted"))
    body = [ln for ln in md if ln.startswith("| d") or ln.startswith("| the authors")]
    assert all(_cells(ln) == _cells(head) == 6 for ln in body)
    assert body[0] == (
        "| the authors' combination (ended: K-FAC inverse did not exist) | 0.01 | 37 "
        "| -97.00 | -99.50 | +0.00 |"
    )
    assert body[1] == "| d1 | 0.01 | 41 | -97.50 | -99.00 | +0.50 |"
    assert body[2] == "| d2 (ended: diverged) | 0.003 | 53 | -99.00 | -101.25 | -1.75 |"


def test_failure_reasons_are_told_apart():
    from refvpng.experiments.vae_report import _why

    assert _why("diverged: rate overflow") == "diverged"
    assert _why("Sigma_{4|5} is not positive definite: ...") == "K-FAC inverse did not exist"
    assert _why("the damped factor A_0 is not positive definite") == "K-FAC inverse did not exist"
    assert _why("matvec is not positive definite along the CG direction") == "curvature not positive definite"


def test_markdown_method_table_marks_a_failed_method_and_gives_iterations():
    from refvpng.experiments.vae_report import markdown

    ok = {**_run(0.01, -97.0, -99.5), "sec_per_iter": 0.25, "steps": 4011}
    bad = {**_run(0.003, -140.0, -141.0), "sec_per_iter": 2.0, "steps": 37, "failed": "Sigma_{4|5} ..."}
    doc = {"settings": {"methods": ["adam", "vpng_authors"]}, "adam": ok, "vpng_authors": bad, "notes": ""}
    md = markdown(doc)
    head = next(ln for ln in md if ln.startswith("| method"))
    rows = [ln for ln in md if ln.startswith("| Adam") or ln.startswith("| VPNG")]
    assert all(_cells(ln) == _cells(head) == 6 for ln in rows)
    assert rows[0] == "| Adam (vanilla gradient) | 0.01 | 0.25 | 4011 | -97.00 | -99.50 |"
    assert rows[1] == (
        "| VPNG (tridiagonal), authors' configuration (ended: K-FAC inverse did not exist) | 0.003 | 2 | 37 "
        "| -140.00 | -141.00 |"
    )


def test_zoom_range_spans_the_leaders_and_names_the_rest():
    from refvpng.experiments.vae_plot import ZOOM_NATS, _zoom_range

    lo, hi, below = _zoom_range({"adam": -85.6, "q_natural": -80.6, "hf_sgvi": -137.8, "two_step": -83.7})
    assert below == ["hf_sgvi"]
    assert lo == -85.6 - 0.5 * ZOOM_NATS and hi == -80.6 + 0.1 * ZOOM_NATS
    assert _zoom_range({}) is None
