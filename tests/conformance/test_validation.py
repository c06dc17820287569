"""The conformance kit rejects malformed input with errors naming the argument (issue 11)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from refvpng.conformance.checker import check
from refvpng.conformance.diagnose import diagnose
from refvpng.conformance.fixture_io import export_fixtures, list_fixtures, read_fixture, write_fixture
from refvpng.conformance.generate import build_fixture, generate
from refvpng.conformance.interop import Block, ParamSpec, from_flax_layout, from_torch_layout, to_torch_layout
from refvpng.conformance.kfac_outputs import kfac_operator, kfac_outputs
from refvpng.conformance.models import with_scale
from refvpng.conformance.registry import estimator_suite, get_case, output_info

SPEC = ParamSpec.sequential([("enc.W", (2, 3)), ("enc.b", (2,)), ("dec.W", (3, 2)), ("dec.b", (3,))], 8)


@pytest.mark.parametrize("bad", [None, 3, object()])
def test_paths_must_be_paths(bad, tmp_path):
    calls = [
        (lambda p: check(p), "path"),
        (lambda p: read_fixture(p, "damped_solve"), "directory"),
        (lambda p: export_fixtures(p), "dest"),
    ]
    if bad is not None:  # None means "the shipped fixtures" for these
        calls += [
            (lambda p: check(tmp_path, p), "fixtures"),
            (lambda p: list_fixtures(p), "directory"),
            (lambda p: generate(p, ["damped_solve"]), "directory"),
        ]
    for call, name in calls:
        with pytest.raises(TypeError, match=f"{name} must be a str or os.PathLike"):
            call(bad)


def test_fixture_io_names_and_arguments(tmp_path):
    with pytest.raises(TypeError, match="name must be a fixture name"):
        read_fixture(list_fixtures.__globals__["fixtures_dir"](), None)
    with pytest.raises(TypeError, match="manifest must be a dict"):
        write_fixture(tmp_path, "demo", {})
    with pytest.raises(TypeError, match=r"manifest\['name'\] must be"):
        write_fixture(tmp_path, {"name": "../x"}, {})
    with pytest.raises(TypeError, match="arrays must be a dict"):
        write_fixture(tmp_path, {"name": "demo"}, None)
    with pytest.raises(ValueError, match=r"arrays\['a'\] contains NaN"):
        write_fixture(tmp_path, {"name": "demo"}, {"a": np.array([np.nan])})
    with pytest.raises(TypeError, match="manifest must be JSON-serialisable"):
        write_fixture(tmp_path, {"name": "demo", "bad": object()}, {})
    assert not list(tmp_path.iterdir())  # nothing written by a rejected call
    write_fixture(tmp_path, {"name": "demo"}, {"a": np.arange(3)})
    manifest = json.loads((tmp_path / "demo.json").read_text())
    assert manifest == {"name": "demo"} and sorted(p.name for p in tmp_path.iterdir()) == [
        "demo.json",
        "demo.npz",
    ]


def test_generate_and_build_fixture_check_their_arguments(tmp_path):
    with pytest.raises(TypeError, match="case must be a refvpng.conformance.registry.Case"):
        build_fixture("damped_solve")
    with pytest.raises(TypeError, match="names must be a list"):
        generate(tmp_path, "damped_solve")
    with pytest.raises(ValueError, match="names has unknown cases"):
        generate(tmp_path, ["no-such-case"])
    assert generate(tmp_path, ["damped_solve"]) == ["damped_solve"]
    assert not [p for p in tmp_path.iterdir() if ".tmp" in p.name]


def test_blocks_and_param_specs_validate():
    with pytest.raises(ValueError, match="start must be >= 0"):
        Block("w", -1, (2,))
    with pytest.raises(TypeError, match="shape must be a tuple"):
        Block("w", 0, [2])
    with pytest.raises(ValueError, match="order must be 'F' or 'C'"):
        Block("w", 0, (2,), "K")
    with pytest.raises(TypeError, match="blocks must be a tuple of Block"):
        ParamSpec(None, 0)
    with pytest.raises(ValueError, match="total size of the blocks"):
        ParamSpec((), 3)
    with pytest.raises(TypeError, match="n_lambda must be an integer"):
        ParamSpec.sequential([("w", (2,))], 1.5)
    with pytest.raises(ValueError, match="total size of named_shapes"):
        ParamSpec.sequential([("w", (2,))], 3)
    with pytest.raises(TypeError, match=r"named_shapes\[0\] must be a \(name, shape\) pair"):
        ParamSpec.sequential(["w"])
    with pytest.raises(TypeError, match="data must be a dict"):
        ParamSpec.from_json(None)
    assert ParamSpec.from_json(SPEC.to_json()) == SPEC
    with pytest.raises(TypeError, match="arrays must be a dict"):
        SPEC.pack(None)
    with pytest.raises(TypeError, match="name must be a block name"):
        SPEC.block(3)


def test_layouts_check_spec_and_containers():
    eta = np.random.default_rng(0).standard_normal(SPEC.size)
    with pytest.raises(TypeError, match="spec must be a ParamSpec"):
        to_torch_layout(None, eta)
    with pytest.raises(TypeError, match="state must be a dict"):
        from_torch_layout(SPEC, None)
    with pytest.raises(TypeError, match="params must be a dict"):
        from_flax_layout(SPEC, "params")
    state = to_torch_layout(SPEC, eta)
    state["dec.weight"] = state["dec.weight"] + 1j
    with pytest.raises(TypeError, match=r"state\['dec.weight'\] must be a real"):
        from_torch_layout(SPEC, state)


def test_diagnose_checks_its_arguments():
    e = np.array([[2.0, 1.0], [1.0, 3.0]])
    assert [d.name for d in diagnose(e / 4, e, n=4)] == ["mean_n"]
    with pytest.raises(TypeError, match="actual must be a real .*complex"):
        diagnose(e + 1j, e)
    for kw, match in (
        ({"n": "4"}, "n must be an integer"),
        ({"m": 0}, "m must be >= 1"),
        ({"packing": "spec"}, "packing must be a ParamSpec"),
        ({"alternates": "x"}, "alternates must be a dict"),
        ({"alternates": {"a": e}}, r"alternates\['a'\] must be an \(array, message\) pair"),
    ):
        with pytest.raises((TypeError, ValueError), match=match):
            diagnose(e, e, **kw)
    assert diagnose(e * 1e300, e * 1e300, n=4) == []  # 4e300 candidates overflow: skipped, not an error


def test_registry_models_and_kfac_outputs_check_their_arguments():
    with pytest.raises(TypeError, match="name must be a case name"):
        get_case(None)
    with pytest.raises(TypeError, match="key must be an output name"):
        output_info(3)
    with pytest.raises(ValueError, match="scale must be"):
        with_scale({"model": "small", "scale": "exp"}, "bogus")
    with pytest.raises(ValueError, match="spec must be a dict"):
        with_scale(None, "exp")
    spec = {"model": "small", "likelihood": "gaussian", "local": True, "scale": "exp", "dz": 2, "d": 3}
    with pytest.raises(TypeError, match="inputs must be a dict"):
        estimator_suite(spec, None, {"damping": 0.1})
    with pytest.raises(TypeError, match="hyper must be a dict"):
        estimator_suite(spec, get_case("small.gaussian.local.exp").make()[0], {})
    with pytest.raises(ValueError, match="damping must be finite and >= 0"):
        kfac_operator("blockdiag", None, -1.0)
    rng = np.random.default_rng(4)
    pairs = ((np.c_[rng.standard_normal((6, 2)), np.ones(6)], rng.standard_normal((6, 2))),)
    with pytest.raises(ValueError, match="grad must have length 6"):
        kfac_outputs(pairs, np.full(6, 0.3), 0.1, np.ones(5))
    with pytest.raises(FloatingPointError, match="^kfac_outputs: "):
        kfac_outputs(pairs, np.r_[1e300, np.full(5, 0.3)], 0.1, np.ones(6))
