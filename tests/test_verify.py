import json

import numpy as np
import pytest

from refvpng import cli, verify


def test_every_check_passes_and_cli_writes_json(tmp_path, capsys):
    path = tmp_path / "v.json"
    code = cli.main(["verify", "--json", str(path)])
    out = capsys.readouterr().out
    data = json.loads(path.read_text())
    assert code == 0, out
    assert data["failed"] == 0 and data["passed"] == len(data["checks"]) >= 20
    for key in ("quantity", "equation", "closed_form", "estimate", "error", "tolerance", "passed"):
        assert key in data["checks"][0]
    assert "passed, 0 failed" in out


def test_checks_can_fail():
    """A wrong closed form is caught by both rules (the report is not a rubber stamp)."""
    assert not verify._exact("q", "Eq", np.eye(2), np.eye(2) * (1 + 1e-6), 1e-12).passed
    rng = np.random.default_rng(0)
    samples = 1.0 + rng.standard_normal((400, 2, 2))
    assert verify._mc("q", "Eq", np.ones((2, 2)), samples).passed
    assert not verify._mc("q", "Eq", np.ones((2, 2)) * 1.5, samples).passed
    assert not verify._cond("q", "Eq", "a", "b", False).passed


def test_failing_check_gives_nonzero_exit(monkeypatch, capsys):
    monkeypatch.setitem(verify.CHECKS, "broken", lambda: [verify._exact("x", "Eq 0", 1.0, 2.0, 1e-12)])
    assert cli.main(["verify", "--only", "broken"]) == 1
    assert "FAIL" in capsys.readouterr().out


def test_unknown_group_is_an_error():
    with pytest.raises(ValueError, match="unknown check group"):
        verify.run_checks(["nope"])


def test_reproduce_passes_help_to_the_experiment(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["reproduce", "toy", "--help"])
    assert exc.value.code == 0
    assert "refvpng reproduce toy" in capsys.readouterr().out
    assert cli.main(["reproduce", "--help"]) == 0
    assert "NAME in" in capsys.readouterr().out


def test_help_lists_the_groups_and_unknown_group_exits_2(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["verify", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out.replace("\n", " ")
    for group in verify.CHECKS:
        assert group in out
    assert cli.main(["verify", "--only", "chain", "nope"]) == 2
    err = capsys.readouterr().err
    assert "unknown group(s) nope" in err and "kfac" in err


def test_chain_and_kfac_groups_pass_and_state_the_error_unit(capsys):
    assert cli.main(["verify", "--only", "chain", "kfac"]) == 0
    out = capsys.readouterr().out
    assert "chain F_r: explicit Jacobian vs autograd" in out and "block-tridiagonal K-FAC" in out
    assert " rel " in out and "'rel' = max|estimate - closed|" in out and "'SE' =" in out


def test_error_unit_follows_the_rule():
    rows = [verify._exact("q", "Eq", 1.0, 1.0, 1e-12), verify._mc("m", "Eq", 0.0, np.array([1.0, -1.0, 0.5]))]
    table = verify.format_table(rows)
    assert "0 rel" in table and " SE " in table
