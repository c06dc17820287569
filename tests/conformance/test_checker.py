"""The checker: exit codes, messages, and every convention diagnosis on a deliberately wrong matrix."""

import numpy as np
import pytest

from refvpng import cli
from refvpng.conformance import ParamSpec, check, diagnose, fixtures_dir, read_fixture
from refvpng.conformance.models import with_scale
from refvpng.conformance.registry import get_case


def _fixture(name):
    return read_fixture(fixtures_dir(), name)


def _outputs(name):
    manifest, arrays = _fixture(name)
    return {k: arrays[k] for k in manifest["outputs"]}


def _write(tmp_path, name, **arrays):
    path = tmp_path / f"{name}.npz"
    np.savez(path, **arrays)
    return path


def _diagnosis(tmp_path, name, key, wrong):
    report = check(_write(tmp_path, name, **{key: wrong}))
    assert report.exit_code == 1, report.format()
    (row,) = report.rows
    assert not row.passed
    return row.diagnosis


def test_refvpng_outputs_pass(tmp_path, capsys):
    for name in ("vae_chain", "logistic.softplus", "optim.logistic", "damped_solve"):
        _write(tmp_path, name, **_outputs(name))
    report = check(tmp_path)
    assert report.exit_code == 0, report.format()
    assert len(report.rows) > 60 and all(r.error <= 1e-15 for r in report.rows)
    assert cli.main(["check", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "0 failed" in out and "rel. error" in out


def test_inputs_in_the_file_are_ignored_and_singleton_axes_tolerated(tmp_path):
    manifest, arrays = _fixture("logistic.exp")
    report = check(_write(tmp_path, "logistic.exp", x=arrays["x"], elbo=arrays["elbo"].reshape(1, 1)))
    assert report.exit_code == 0 and [r.key for r in report.rows] == ["elbo"]


def test_a_small_error_fails_without_diagnosis(tmp_path):
    f = _outputs("vae_chain")["vp_fisher_exact"]
    wrong = f.copy()
    wrong[3, 5] += 1e-6
    assert "no known convention mistake" in _diagnosis(tmp_path, "vae_chain", "vp_fisher_exact", wrong)


def test_diagnoses_mean_over_data_points(tmp_path):
    f = _outputs("vae_chain")["vp_fisher_exact"]
    assert _diagnosis(tmp_path, "vae_chain", "vp_fisher_exact", f / 5).startswith("mean_n")


def test_diagnoses_factor_n(tmp_path):
    f = _outputs("ppca")["joint_fisher_closed"]
    assert _diagnosis(tmp_path, "ppca", "joint_fisher_closed", 5 * f).startswith("times_n")


def test_diagnoses_missing_one_over_m(tmp_path):
    f = _outputs("vae_chain")["vp_fisher_mc"]
    assert _diagnosis(tmp_path, "vae_chain", "vp_fisher_mc", 4 * f).startswith("missing_1/M")


def test_diagnoses_sum_over_noise_samples(tmp_path):
    f = _outputs("small.gaussian.local.exp")["elbo_hessian"]
    assert _diagnosis(tmp_path, "small.gaussian.local.exp", "elbo_hessian", 3 * f).startswith("times_S")


def test_diagnoses_factor_two_and_sign(tmp_path):
    out = _outputs("logistic.exp")
    assert _diagnosis(tmp_path, "logistic.exp", "vp_fisher_exact", 2 * out["vp_fisher_exact"]).startswith(
        "factor_2"
    )
    assert "1/2" in _diagnosis(tmp_path, "logistic.exp", "vp_fisher_exact", out["vp_fisher_exact"] / 2)
    assert _diagnosis(tmp_path, "logistic.exp", "elbo_grad", -out["elbo_grad"]).startswith("sign")


def test_diagnoses_transpose():
    e = np.random.default_rng(0).standard_normal((4, 4))
    assert [d.name for d in diagnose(e.T, e)] == ["transpose"]
    assert diagnose(e, e.T + 1e-3) == []


def test_transposed_shape_is_named(tmp_path):
    a = _outputs("vae_chain")["kfac.A_cross.0"]
    assert a.shape[0] != a.shape[1]
    assert "transposed?" in _diagnosis(tmp_path, "vae_chain", "kfac.A_cross.0", a.T)


def test_diagnoses_row_major_vec(tmp_path):
    manifest, arrays = _fixture("vae_chain")
    p = ParamSpec.from_json(manifest["packing"]).permutation("row_major")
    msg = _diagnosis(tmp_path, "vae_chain", "vp_fisher_exact", arrays["vp_fisher_exact"][np.ix_(p, p)])
    assert msg.startswith("row_major")
    assert _diagnosis(tmp_path, "vae_chain", "elbo_grad", arrays["elbo_grad"][p]).startswith("row_major")


def test_diagnoses_kronecker_order_swapped(tmp_path):
    manifest, arrays = _fixture("vae_chain")
    p = ParamSpec.from_json(manifest["packing"]).permutation("kron_swap")
    dense = arrays["kfac_blockdiag_dense"]
    # what a G kron A implementation builds from refvpng's own factors
    g_kron_a = np.zeros_like(dense)
    k = 0
    for layer in range(4):
        a, g = arrays[f"kfac.A.{layer}"], arrays[f"kfac.G.{layer}"]
        r = np.sqrt(manifest["hyperparameters"]["kfac_damping"])
        blk = np.kron(g + r * np.eye(len(g)), a + r * np.eye(len(a)))
        g_kron_a[k : k + len(blk), k : k + len(blk)] = blk
        k += len(blk)
    assert np.allclose(g_kron_a, dense[np.ix_(p, p)], rtol=0, atol=1e-14)
    assert _diagnosis(tmp_path, "vae_chain", "kfac_blockdiag_dense", g_kron_a).startswith("kron_swap")


@pytest.mark.parametrize("scale", ["exp", "softplus"])
def test_diagnoses_sigma_coordinate(tmp_path, scale):
    name = f"logistic.{scale}"
    manifest, arrays = _fixture(name)
    case = get_case(name)
    other = "softplus" if scale == "exp" else "exp"
    inputs = {k: arrays[k] for k in manifest["inputs"]}
    alt = case.compute(with_scale(manifest["model"], other), inputs, manifest["hyperparameters"])
    msg = _diagnosis(tmp_path, name, "vp_fisher_exact", alt["vp_fisher_exact"])
    assert msg.startswith("sigma_coord") and f"'{other}' coordinate" in msg


def test_diagnoses_float32(tmp_path):
    f = _outputs("vae_chain")["vp_fisher_exact"]
    msg = _diagnosis(tmp_path, "vae_chain", "vp_fisher_exact", f.astype(np.float32))
    assert msg.startswith("float32: float32 rounding")
    noisy = f * (1 + 1e-7 * np.random.default_rng(0).standard_normal(f.shape))
    assert "single-precision" in _diagnosis(tmp_path, "vae_chain", "vp_fisher_exact", noisy)


def test_thresholded_softplus_is_caught(tmp_path):
    """PyTorch's softplus(t) = t above 20: the ELBO of the logistic fixture then misses the exact tier."""
    manifest, arrays = _fixture("logistic.softplus")
    t, y = arrays["outputs_t"][..., 0], arrays["x"][:, 0]
    soft = np.where(t > 20, t, np.logaddexp(0, t))
    wrong = np.mean(np.sum(y * t - soft, axis=1)) - arrays["kl"]
    report = check(_write(tmp_path, "logistic.softplus", elbo=wrong))
    assert report.exit_code == 1 and 1e-12 < report.rows[0].error < 1e-9


def test_non_finite_values_fail(tmp_path):
    g = _outputs("vae_chain")["elbo_grad"].copy()
    g[0] = np.nan
    assert "non-finite" in _diagnosis(tmp_path, "vae_chain", "elbo_grad", g)


def test_unreadable_inputs_exit_2_naming_file_and_key(tmp_path, capsys):
    assert check(tmp_path / "missing.npz").exit_code == 2
    (tmp_path / "vae_chain.npz").write_bytes(b"not a zip")
    report = check(tmp_path / "vae_chain.npz")
    assert (
        report.exit_code == 2 and "vae_chain.npz" in report.errors[0] and "not a readable" in report.errors[0]
    )
    report = check(_write(tmp_path, "no_such_case", elbo=np.zeros(())))
    assert report.exit_code == 2 and "no fixture called 'no_such_case'" in report.errors[0]
    report = check(_write(tmp_path, "vae_chain", vp_fisher=np.zeros(3)))
    assert (
        report.exit_code == 2
        and "key 'vp_fisher'" in report.errors[0]
        and "vae_chain.npz" in report.errors[0]
    )
    report = check(_write(tmp_path, "logistic.exp", elbo=np.array(["a"])))
    assert report.exit_code == 2 and "key 'elbo'" in report.errors[0]
    report = check(_write(tmp_path, "logistic.exp", x=np.zeros((6, 1))))
    assert report.exit_code == 2 and "holds no output" in report.errors[0]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert check(empty).exit_code == 2
    assert cli.main(["check", str(tmp_path / "missing.npz")]) == 2
    assert "missing.npz" in capsys.readouterr().err


def test_an_unknown_key_beats_passing_rows(tmp_path):
    out = _outputs("damped_solve")
    report = check(_write(tmp_path, "damped_solve", direction=out["direction"], directoin=out["direction"]))
    assert report.exit_code == 2 and report.rows[0].passed


def test_cli_exit_1_prints_the_diagnosis(tmp_path, capsys):
    f = _outputs("vae_chain")["vp_fisher_mc"]
    _write(tmp_path, "vae_chain", vp_fisher_mc=4 * f)
    assert cli.main(["check", str(tmp_path), "--fixtures", str(fixtures_dir())]) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "1/M of Eq 16" in out
