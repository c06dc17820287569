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


def test_new_groups_cover_likelihoods_sigma_coordinates_is_and_optimizers(capsys):
    """Issue 11: every likelihood x sigma coordinate, importance sampling and the optimizers."""
    assert cli.main(["verify", "--only", "likelihoods", "importance_sampling", "optimizers"]) == 0
    out = capsys.readouterr().out
    from refvpng.models.small import LIKELIHOODS

    for lik in LIKELIHOODS:
        for scale in ("exp", "softplus", "fixed"):
            assert f"F_r Monte Carlo (M=3), {lik}, sigma '{scale}'" in out
    assert "p(x) by importance sampling" in out and "Adam, 3 steps" in out and "RMSProp" in out


def test_the_likelihood_rows_see_a_missing_one_over_m():
    """The Eq 16 rows at M = 3 fail for an estimate summed (not averaged) over the M samples."""
    from refvpng.curvature.fisher import vp_fisher_exact, vp_fisher_mc
    from refvpng.models.latent import draw_eps, draw_predictive
    from refvpng.models.small import make_small_model

    rng = np.random.default_rng(0)
    model = make_small_model("bernoulli", local=True, scale="softplus", dz=2, d=3)
    eta = 0.4 * rng.standard_normal(model.n_params)
    x = (rng.random((4, 3)) < 0.5) * 1.0
    eps = draw_eps(rng, model, 4, 300)
    _, per = vp_fisher_mc(model, eta, x, eps, draw_predictive(rng, model, eta, x, eps, 3), per_sample=True)
    exact = vp_fisher_exact(model, eta, x, eps)
    assert verify._mc("F_r", "Eq 16", exact, per).passed
    assert not verify._mc("F_r", "Eq 16", exact, 3 * per).passed
