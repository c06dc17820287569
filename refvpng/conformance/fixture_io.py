r"""Reading and writing golden fixtures: ``NAME.npz`` arrays plus a ``NAME.json`` manifest.

A fixture is readable with nothing but ``numpy`` and ``json``::

    import json, numpy as np
    manifest = json.load(open("logistic.softplus.json"))
    arrays = np.load("logistic.softplus.npz")
    x, F_r = arrays["x"], arrays["vp_fisher_exact"]

Manifest schema (``"schema": "refvpng-fixture"``, ``"schema_version": 1``)
---------------------------------------------------------------------------
``name``, ``description``
    The case name (file stem) and one line about it.
``model``
    The model spec (:mod:`refvpng.conformance.models`), or ``null``; ``model_name`` refvpng's name.
``packing``
    The named blocks of :math:`\eta` (:meth:`~refvpng.conformance.interop.ParamSpec.to_json`):
    ``n_params``, ``n_lambda`` and ``blocks`` of ``{name, start, stop, shape, order}``
    (``order`` ``"F"`` = column-major), or ``null``.
``inputs``
    ``{key: {shape, dtype, description}}`` for every input array in the ``.npz``.
``hyperparameters``
    Scalars (damping, learning rate, decays ...).
``outputs``
    ``{key: {shape, dtype, equation, tier, tolerance, description}}`` for every output array;
    ``tier`` names a tolerance of :data:`refvpng.testing.tolerances.TIERS` and ``tolerance`` its
    value for the error :math:`\max|a - e| / \max(1, \max|e|)`.
``conventions``
    The notes a port must follow (sum over data points, mean over samples, vec and Kronecker
    order, :math:`\sigma` coordinate, case-specific notes).
``sizes``
    ``n``, ``S``, ``M`` where they apply.

Every array is stored at full float64 precision. The ``.npz`` is written deterministically
(sorted keys, fixed zip timestamps), so a regeneration that computes the same numbers writes the
same bytes.
"""

from __future__ import annotations

import json
import os
import shutil
import zipfile
from pathlib import Path

import numpy as np

from refvpng._atomic import atomic_path
from refvpng._checks import as_array, as_path

__all__ = [
    "SCHEMA",
    "SCHEMA_VERSION",
    "INPUTS",
    "fixtures_dir",
    "list_fixtures",
    "read_fixture",
    "write_fixture",
    "export_fixtures",
]

SCHEMA = "refvpng-fixture"
SCHEMA_VERSION = 1

INPUTS = {
    "eta": "packed parameters (lambda, theta), shape (P,); see 'packing'",
    "x": "observations (n, d) (labels (n, 1) for logistic regression)",
    "cov": "covariates (n, c) (the design with a bias column for logistic regression)",
    "eps": "standard-normal noise (S, n, dz) or shared (S, dz)",
    "x_pred": "predictive samples x' ~ p(x' | z_si; theta), (S, M, n, d) (Eq 15)",
    "z_q": "draws from q(z | x; lambda), (S', n, dz) or (S', dz), for q_fisher_mc",
    "z_model": "z_tilde ~ p(z), (S, n, dz), for Eq 9/11",
    "x_model": "x_tilde ~ p(x | z_tilde), (S, n, d), for Eq 9/11",
    "x_pred_model": "x' ~ p(x' | z_tilde), independent of x_model, (S, n, d), for Eq 11",
    "fisher": "a symmetric PSD matrix (P, P)",
    "grad": "a right-hand side (P,)",
    "damping": "dampings mu of Eq 17, one per row of the output",
    "eta0": "starting parameters (P,)",
    "eps_steps": "noise of each optimiser step, (K, S, dz)",
}


def _check_name(name, what: str) -> str:
    if not isinstance(name, str) or not name or "/" in name or "\\" in name:
        raise TypeError(f"{what} must be a fixture name (a non-empty str without '/'), got {name!r}")
    return name


def fixtures_dir() -> Path:
    """The folder of fixtures shipped inside the package."""
    return Path(__file__).resolve().parent / "fixtures"


def list_fixtures(directory: str | os.PathLike[str] | None = None) -> list[str]:
    """Names of the fixtures (``NAME.json`` with a ``NAME.npz``) in ``directory`` (default: shipped)."""
    d = as_path(directory, "directory") if directory is not None else fixtures_dir()
    return sorted(p.stem for p in d.glob("*.json") if p.with_suffix(".npz").exists())


def read_fixture(directory: str | os.PathLike[str], name: str) -> tuple[dict, dict[str, np.ndarray]]:
    """Manifest and arrays of fixture ``name`` in ``directory``.

    Raises
    ------
    FileNotFoundError
        If either file is missing.
    ValueError
        If the manifest's schema or version is not this module's.
    """
    d = as_path(directory, "directory")
    _check_name(name, "name")
    with open(d / f"{name}.json", encoding="utf-8") as fh:
        manifest = json.load(fh)
    if manifest.get("schema") != SCHEMA or manifest.get("schema_version") != SCHEMA_VERSION:
        raise ValueError(
            f"{d / (name + '.json')}: schema {manifest.get('schema')!r} version "
            f"{manifest.get('schema_version')!r}, expected {SCHEMA!r} version {SCHEMA_VERSION}"
        )
    with np.load(d / f"{name}.npz", allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    return manifest, arrays


def _write_npz(path: Path, arrays: dict) -> None:
    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for key in sorted(arrays):
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            with zf.open(info, "w") as fh:
                np.lib.format.write_array(fh, np.array(arrays[key], order="C"), allow_pickle=False)


def write_fixture(directory: str | os.PathLike[str], manifest: dict, arrays: dict) -> None:
    """Write ``NAME.npz`` (``arrays``) and ``NAME.json`` (``manifest``) into ``directory``."""
    d = as_path(directory, "directory")
    if not isinstance(manifest, dict):
        raise TypeError(f"manifest must be a dict, got {type(manifest).__name__}")
    name = _check_name(manifest.get("name"), "manifest['name']")
    if not isinstance(arrays, dict):
        raise TypeError(f"arrays must be a dict of arrays, got {type(arrays).__name__}")
    arrays = {k: as_array(v, f"arrays[{k!r}]") for k, v in arrays.items()}
    try:
        text = json.dumps(manifest, indent=1, sort_keys=True) + "\n"
    except (TypeError, ValueError) as exc:
        raise TypeError(f"manifest must be JSON-serialisable: {exc}") from None
    _write_npz(d / f"{name}.npz", arrays)
    with atomic_path(d / f"{name}.json") as tmp:
        tmp.write_text(text, encoding="utf-8")


def export_fixtures(dest: str | os.PathLike[str]) -> list[str]:
    """Copy the shipped fixtures (and their ``INDEX.json``) into ``dest``; return the names."""
    src, dest = fixtures_dir(), as_path(dest, "dest")
    dest.mkdir(parents=True, exist_ok=True)
    names = list_fixtures(src)
    for name in names:
        for ext in (".npz", ".json"):
            shutil.copyfile(src / f"{name}{ext}", dest / f"{name}{ext}")
    if (src / "INDEX.json").exists():
        shutil.copyfile(src / "INDEX.json", dest / "INDEX.json")
    return names
