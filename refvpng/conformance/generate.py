r"""The script that made the shipped fixtures (run ``python -m refvpng.conformance.generate [DIR]``).

For each case of :mod:`refvpng.conformance.cases` it draws the inputs from the case's seed,
computes refvpng's outputs from them and writes ``NAME.npz`` + ``NAME.json``
(:mod:`refvpng.conformance.fixture_io`), plus ``INDEX.json`` listing the cases and the numpy/BLAS
build that computed them. Without ``DIR`` it rewrites the shipped folder
``refvpng/conformance/fixtures/``.

Reproducibility. The *inputs* come from seeded :class:`numpy.random.Generator` streams and
element-wise arithmetic, identical on every platform. The *outputs* go through BLAS/LAPACK
(matrix products, ``einsum`` contractions, Cholesky solves, eigendecompositions inside K-FAC):
a different BLAS build, CPU kernel or thread count may change their last bits (relative
differences of order 1e-16 for the matrices, up to the condition number times that for the
solves and trajectories). ``tests/conformance/test_fixtures.py`` therefore requires a
regeneration to be **bit-identical** when numpy and its BLAS are the build recorded in
``INDEX.json`` (this machine), and otherwise bit-identical inputs and manifests with outputs
within the ``"exact"`` tier (1e-12; 1e-10 for the ``"solve"`` and ``"autograd"``-tier outputs).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable, Sequence

import numpy as np

from refvpng._atomic import atomic_path
from refvpng._checks import as_path
from refvpng.conformance.fixture_io import INPUTS, SCHEMA, SCHEMA_VERSION, fixtures_dir, write_fixture
from refvpng.conformance.models import build_model, param_spec
from refvpng.conformance.registry import CONVENTIONS, Case, cases, output_info
from refvpng.testing.tolerances import TIERS

__all__ = ["build_fixture", "generate", "numpy_build", "main"]


def numpy_build() -> dict:
    """Numpy version, BLAS/LAPACK names and versions, and the BLAS kernel set of this machine.

    The fixtures are bit-identical only where all of these match: the same OpenBLAS build picks
    different kernels on different CPUs (``blas_core``, for example ``Haswell`` or
    ``SkylakeX``), which moves outputs at rounding level. ``blas_core`` comes from
    threadpoolctl when it is installed, else it is ``"unknown"``.
    """
    info = {"numpy": np.__version__}
    try:
        deps = np.__config__.CONFIG["Build Dependencies"]
        for lib in ("blas", "lapack"):
            info[lib] = f"{deps[lib].get('name')} {deps[lib].get('version')}"
    except (AttributeError, KeyError, TypeError):  # pragma: no cover - old numpy
        info["blas"] = info["lapack"] = "unknown"
    info["blas_core"] = _blas_core()
    return info


def _blas_core() -> str:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:  # pragma: no cover - threadpoolctl is optional
        return "unknown"
    cores = sorted({str(i.get("architecture")) for i in threadpool_info() if i.get("user_api") == "blas"})
    return ",".join(cores) or "unknown"


def _plain(v):
    if isinstance(v, (np.floating, float)):
        return float(v)
    if isinstance(v, (np.integer, int)) and not isinstance(v, bool):
        return int(v)
    return v


def _describe(arrays: dict, keys) -> dict:
    return {k: {"shape": list(arrays[k].shape), "dtype": str(arrays[k].dtype)} for k in keys}


def build_fixture(case: Case) -> tuple[dict, dict]:
    """Manifest and arrays (inputs and outputs) of one case."""
    if not isinstance(case, Case):
        raise TypeError(f"case must be a refvpng.conformance.registry.Case, got {type(case).__name__}")
    inputs, hyper = case.make()
    outputs = case.compute(case.model, inputs, hyper)
    clash = set(inputs) & set(outputs)
    if clash:
        raise RuntimeError(f"case {case.name}: keys {sorted(clash)} are both input and output")
    ins = _describe(inputs, sorted(inputs))
    for k in ins:
        ins[k]["description"] = INPUTS[k]
    outs = _describe(outputs, sorted(outputs))
    for k in outs:
        eq, tier, meaning = output_info(k)
        outs[k].update(equation=eq, tier=tier, tolerance=TIERS[tier], description=meaning)
    sizes = {}
    if "eps" in inputs:
        sizes = {"n": int(inputs["x"].shape[0]), "S": int(inputs["eps"].shape[0])}
        if "x_pred" in inputs:
            sizes["M"] = int(inputs["x_pred"].shape[1])
    manifest = {
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "name": case.name,
        "description": case.description,
        "model": case.model,
        "model_name": build_model(case.model).name if case.model else None,
        "packing": param_spec(case.model).to_json() if case.model else None,
        "inputs": ins,
        "hyperparameters": {k: _plain(v) for k, v in hyper.items()},
        "outputs": outs,
        "conventions": list(CONVENTIONS) + list(case.notes),
        "sizes": sizes,
        "paper": "S. Tang and R. Ranganath, The Variational Predictive Natural Gradient, ICML 2019",
    }
    arrays = {**{k: np.asarray(v, dtype=np.float64) for k, v in inputs.items()}, **outputs}
    return manifest, arrays


def generate(
    directory: str | os.PathLike[str] | None = None, names: Iterable[str] | None = None
) -> list[str]:
    """Write the fixtures of ``names`` (default all cases) into ``directory`` (default: shipped)."""
    d = as_path(directory, "directory") if directory is not None else fixtures_dir()
    all_cases = cases()
    if names is None:
        names = sorted(all_cases)
    else:
        if isinstance(names, str) or not isinstance(names, (list, tuple)):
            raise TypeError(f"names must be a list of case names, got {type(names).__name__}")
        names = list(names)
        unknown = [n for n in names if not isinstance(n, str) or n not in all_cases]
        if unknown:
            raise ValueError(f"names has unknown cases {unknown}; cases are {sorted(all_cases)}")
    for name in names:
        write_fixture(d, *build_fixture(all_cases[name]))
    index = {
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "cases": sorted(all_cases),
        "build": numpy_build(),
    }
    with atomic_path(d / "INDEX.json") as tmp:
        tmp.write_text(json.dumps(index, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return names


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m refvpng.conformance.generate [DIR]``."""
    argv = sys.argv[1:] if argv is None else argv
    names = generate(argv[0] if argv else None)
    print(f"wrote {len(names)} fixtures to {argv[0] if argv else fixtures_dir()}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
