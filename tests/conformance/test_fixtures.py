"""The shipped golden fixtures: regeneration, schema, coverage, export, packing and interop."""

import json
import subprocess
import sys

import numpy as np
import pytest

from refvpng import cli
from refvpng.conformance import (
    ParamSpec,
    build_model,
    fixtures_dir,
    from_flax_layout,
    from_torch_layout,
    list_fixtures,
    param_spec,
    read_fixture,
    to_flax_layout,
    to_torch_layout,
)
from refvpng.conformance.fixture_io import INPUTS, SCHEMA, SCHEMA_VERSION
from refvpng.conformance.generate import generate, numpy_build
from refvpng.conformance.models import MODELS
from refvpng.conformance.registry import OUTPUTS, cases
from refvpng.testing.compare import relative_error
from refvpng.testing.tolerances import EXACT, SOLVE, TIERS

NAMES = list_fixtures()
SUITE = (
    "elbo",
    "elbo_grad",
    "kl",
    "q_fisher",
    "q_fisher_mc",
    "vp_fisher_exact",
    "vp_scores",
    "vp_fisher_mc",
    "vpng_direction",
    "q_natural_direction",
    "elbo_hessian",
    "ll_neg_hessian",
)


def test_every_registered_case_is_shipped():
    assert NAMES == sorted(cases())
    index = json.loads((fixtures_dir() / "INDEX.json").read_text())
    assert index["cases"] == NAMES


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory):
    d = tmp_path_factory.mktemp("regen")
    generate(d)
    return d


@pytest.mark.parametrize("name", NAMES)
def test_regeneration_matches_shipped_files(name, regenerated):
    """Bit-identical on the numpy/BLAS build recorded in INDEX.json; elsewhere inputs and manifests
    bit-identical and outputs within the tight tier (see refvpng.conformance.generate)."""
    m_old, a_old = read_fixture(fixtures_dir(), name)
    m_new, a_new = read_fixture(regenerated, name)
    assert m_new == m_old
    assert sorted(a_new) == sorted(a_old)
    same_build = json.loads((fixtures_dir() / "INDEX.json").read_text())["build"] == numpy_build()
    for key in a_old:
        if key in m_old["inputs"] or same_build:
            assert a_new[key].dtype == a_old[key].dtype and a_new[key].shape == a_old[key].shape, key
            assert np.array_equal(a_new[key], a_old[key]), f"{name}:{key} changed on regeneration"
        else:  # pragma: no cover - another BLAS build
            tol = EXACT if m_old["outputs"][key]["tier"] == "exact" else SOLVE
            assert relative_error(a_new[key], a_old[key]) <= tol, key
    if same_build:
        assert (regenerated / f"{name}.npz").read_bytes() == (fixtures_dir() / f"{name}.npz").read_bytes()


def test_a_changed_output_is_noticed(tmp_path):
    """The regeneration test can fail: a perturbed shipped array differs from a regeneration."""
    manifest, arrays = read_fixture(fixtures_dir(), "damped_solve")
    generate(tmp_path, ["damped_solve"])
    _, fresh = read_fixture(tmp_path, "damped_solve")
    bumped = np.nextafter(arrays["direction"], np.inf)
    assert not np.array_equal(bumped, fresh["direction"])


@pytest.mark.parametrize("name", NAMES)
def test_manifest_schema(name):
    manifest, arrays = read_fixture(fixtures_dir(), name)
    assert manifest["schema"] == SCHEMA and manifest["schema_version"] == SCHEMA_VERSION
    for key in (
        "name",
        "description",
        "model",
        "packing",
        "inputs",
        "outputs",
        "conventions",
        "hyperparameters",
    ):
        assert key in manifest, key
    assert set(arrays) == set(manifest["inputs"]) | set(manifest["outputs"])
    for key, info in manifest["inputs"].items():
        assert key in INPUTS and info["shape"] == list(arrays[key].shape)
    for key, info in manifest["outputs"].items():
        assert arrays[key].dtype == np.float64 and info["shape"] == list(arrays[key].shape)
        assert TIERS[info["tier"]] == info["tolerance"]
        assert info["equation"] and info["description"]
        assert np.all(np.isfinite(arrays[key])), key
    if manifest["model"] is not None:
        spec = ParamSpec.from_json(manifest["packing"])
        assert spec.size == build_model(manifest["model"]).n_params
        assert spec.n_lambda == build_model(manifest["model"]).n_lambda
    assert any("SUM over the n data points" in c for c in manifest["conventions"])


def test_fixtures_cover_every_model_and_estimator():
    models, keys = set(), {}
    for name in NAMES:
        manifest, _ = read_fixture(fixtures_dir(), name)
        if manifest["model"]:
            models.add(manifest["model"]["model"])
        keys[name] = set(manifest["outputs"])
    assert models == set(MODELS)
    for name, ks in keys.items():
        if name not in ("damped_solve", "optim.logistic"):
            assert set(SUITE) <= ks, (name, set(SUITE) - ks)
    small = [read_fixture(fixtures_dir(), n)[0]["model"] for n in NAMES if n.startswith("small.")]
    assert {s["likelihood"] for s in small} == {"gaussian", "bernoulli", "poisson_log", "poisson_softplus"}
    assert {s["scale"] for s in small} == {"fixed", "exp", "softplus"}
    assert {s["local"] for s in small} == {True, False}
    assert {"eq9_matrix", "eq11_matrix", "vp_fisher_hessian_form"} <= keys["linear_gaussian.posterior"]
    assert {"kfac.A.3", "kfac.G_cross.2", "kfac_blockdiag_dense", "kfac_blocktridiag_direction"} <= keys[
        "vae_chain"
    ]
    traj = {k for k in keys["optim.logistic"] if k.startswith("trajectory.")}
    assert traj == {
        f"trajectory.{d}.{r}" for d in ("gradient", "q_natural", "vpng") for r in ("adam", "rmsprop")
    }
    for ks in keys.values():
        for k in ks:
            head = k if k in OUTPUTS else k.rsplit(".", 1)[0]
            assert head in OUTPUTS or k.split(".", 1)[0] in OUTPUTS, k


@pytest.mark.parametrize("name", NAMES)
def test_fixtures_are_generic(name):
    """Small but not degenerate: S, M > 1, damping not 1, distinct sizes so scale mistakes differ."""
    manifest, arrays = read_fixture(fixtures_dir(), name)
    hyper, sizes = manifest["hyperparameters"], manifest["sizes"]
    for key in ("damping", "kfac_damping", "decay"):
        if key in hyper:
            assert hyper[key] not in (0.0, 0.5, 1.0)
    if sizes:
        assert sizes["S"] > 1 and sizes.get("M", 3) > 1
        assert len({sizes["n"], sizes["S"], sizes.get("M", -1), 2}) == 4 - ("M" not in sizes)
    if "eta" in arrays:
        assert len(np.unique(np.round(arrays["eta"], 12))) > min(2, arrays["eta"].size - 1)


def test_fixture_readable_with_numpy_and_json_only(tmp_path):
    code = (
        "import json, sys, numpy as np\n"
        f"d = {str(fixtures_dir())!r}\n"
        "m = json.load(open(d + '/vae_chain.json'))\n"
        "a = np.load(d + '/vae_chain.npz')\n"
        "assert a['vp_fisher_exact'].shape == tuple(m['outputs']['vp_fisher_exact']['shape'])\n"
        "assert 'refvpng' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=tmp_path)


def test_cli_exports_and_lists(tmp_path, capsys):
    assert cli.main(["fixtures", "export", str(tmp_path / "fx")]) == 0
    for name in NAMES:
        for ext in (".npz", ".json"):
            assert (tmp_path / "fx" / f"{name}{ext}").read_bytes() == (
                fixtures_dir() / f"{name}{ext}"
            ).read_bytes()
    assert cli.main(["fixtures", "list"]) == 0
    assert capsys.readouterr().out.split()[-len(NAMES) :] == NAMES


def test_packing_slices_name_the_chain_layers():
    manifest, arrays = read_fixture(fixtures_dir(), "vae_chain")
    spec = ParamSpec.from_json(manifest["packing"])
    from refvpng.conformance.models import _chain

    chain = _chain(manifest["model"])
    lam, theta = chain.split(arrays["eta"])
    w_bar = chain.decoder.unpack(theta)[1]  # (out, in + 1) = [W, b] of decoder layer 2
    blocks = spec.unpack(arrays["eta"])
    assert np.array_equal(blocks["decoder.layer2.W"], w_bar[:, :-1])
    assert np.array_equal(blocks["decoder.layer2.b"], w_bar[:, -1])
    assert np.array_equal(arrays["eta"][spec.slice("decoder.layer2.W")], w_bar[:, :-1].ravel(order="F"))
    assert spec.layers() == ("encoder.layer1", "encoder.layer2", "decoder.layer1", "decoder.layer2")


def test_torch_and_flax_layouts_round_trip():
    spec = param_spec({"model": "chain", "encoder_sizes": [3, 4, 4], "decoder_sizes": [2, 4, 3]})
    eta = np.random.default_rng(0).standard_normal(spec.size)
    state = to_torch_layout(spec, eta)
    w = state["decoder.layer2.weight"]
    assert w.shape == (3, 4) and state["decoder.layer2.bias"].shape == (3,)
    assert np.array_equal(eta[spec.slice("decoder.layer2.W")], w.ravel(order="F"))
    assert np.array_equal(from_torch_layout(spec, state), eta)
    flax = to_flax_layout(spec, eta)
    assert flax["decoder"]["layer2"]["kernel"].shape == (4, 3)
    assert np.array_equal(flax["decoder"]["layer2"]["kernel"], w.T)
    assert np.array_equal(from_flax_layout(spec, flax), eta)
    # non-layer blocks keep their names
    gm = param_spec({"model": "gaussian_mean", "eps_corr": 0.3, "scale": "exp"})
    assert set(to_torch_layout(gm, np.arange(4.0))) == {"lambda.m", "lambda.rho"}
    assert to_flax_layout(gm, np.arange(4.0))["lambda"]["rho"].tolist() == [2.0, 3.0]


def test_interop_errors_name_the_problem():
    spec = param_spec(
        {"model": "small", "likelihood": "gaussian", "local": True, "scale": "exp", "dz": 2, "d": 3}
    )
    with pytest.raises(KeyError, match="no block 'decoder.layer9.W'"):
        spec.slice("decoder.layer9.W")
    with pytest.raises(KeyError, match="no entry .encoder.mean.weight"):
        from_torch_layout(spec, {})
    with pytest.raises(ValueError, match="eta must have length"):
        spec.unpack(np.zeros(3))
    with pytest.raises(ValueError, match="starts at"):
        ParamSpec((spec.blocks[1],), 0)


@pytest.mark.parametrize("kind", ["row_major", "kron_swap"])
def test_permutations_are_the_other_vec_conventions(kind):
    spec = param_spec({"model": "chain", "encoder_sizes": [3, 4, 4], "decoder_sizes": [2, 4, 3]})
    eta = np.random.default_rng(1).standard_normal(spec.size)
    p = spec.permutation(kind)
    assert sorted(p) == list(range(spec.size))
    blocks = spec.unpack(eta)
    w, b = blocks["decoder.layer2.W"], blocks["decoder.layer2.b"]
    start = spec.block("decoder.layer2.W").start
    if kind == "row_major":  # torch.nn.utils.parameters_to_vector
        want = np.concatenate([w.ravel(), b])
    else:  # row-major vec of [W, b]: the order of G kron A
        want = np.hstack([w, b[:, None]]).ravel()
    assert np.array_equal(eta[p][start : start + want.size], want)
