r"""The conformance checker behind ``refvpng check PATH``.

A user's outputs are ``.npz`` files named after a fixture (``logistic.softplus.npz``) holding
some of that fixture's output keys (``vp_fisher_exact``, ``elbo_grad`` ...), computed from the
fixture's inputs; ``PATH`` is one such file or a directory of them. Input keys copied into the
file are ignored. Each output present is compared with refvpng's by the error
:math:`\max|a - e| / \max(1, \max|e|)` (:func:`refvpng.testing.compare.relative_error`) against
the tolerance of the output's tier; a failure is diagnosed (:mod:`refvpng.conformance.diagnose`).

Exit codes of :attr:`Report.exit_code`: ``0`` every check passed, ``1`` a check failed, ``2`` the
input could not be read (missing or corrupt file, unknown fixture name, unknown key,
non-numeric array, nothing to check), with a message naming the file and key.
"""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from refvpng._checks import as_path
from refvpng.conformance.diagnose import diagnose
from refvpng.conformance.fixture_io import fixtures_dir, list_fixtures, read_fixture
from refvpng.conformance.interop import ParamSpec
from refvpng.testing.compare import relative_error

__all__ = ["Row", "Report", "check"]


@dataclass
class Row:
    """One compared quantity."""

    file: str
    case: str
    key: str
    error: float
    tier: str
    tolerance: float
    passed: bool
    diagnosis: str = ""


@dataclass
class Report:
    """All rows, plus the input errors that make the exit code 2."""

    rows: list[Row] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """0 all passed, 1 a check failed, 2 unreadable input."""
        if self.errors or not self.rows:
            return 2
        return 0 if all(r.passed for r in self.rows) else 1

    def format(self) -> str:
        """A text table; the error column is the relative error of the module docstring."""
        lines = []
        if self.rows:
            w_case = max(len(r.case) for r in self.rows)
            w_key = max(len(r.key) for r in self.rows)
            head = (
                f"{'case':<{w_case}}  {'quantity':<{w_key}}  {'rel. error':>10}  "
                f"{'tolerance':>9}  {'tier':<8}  result"
            )
            lines += [head, "-" * len(head)]
            for r in self.rows:
                lines.append(
                    f"{r.case:<{w_case}}  {r.key:<{w_key}}  {r.error:>10.3g}  {r.tolerance:>9.1g}  "
                    f"{r.tier:<8}  {'pass' if r.passed else 'FAIL'}"
                )
                if r.diagnosis:
                    lines.append(f"    -> {r.diagnosis}")
            n_pass = sum(r.passed for r in self.rows)
            lines.append(
                f"\n{n_pass} passed, {len(self.rows) - n_pass} failed "
                "(error = max|yours - refvpng| / max(1, max|refvpng|))"
            )
        if self.errors or not self.rows:
            lines += ["error: " + e for e in self.errors] or ["error: nothing to check"]
        return "\n".join(lines)


def _user_files(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(path.glob("*.npz"))
    return [path]


def _alternates(name: str, manifest: dict, arrays: dict, cache: dict) -> dict:
    """Outputs recomputed in the other sigma coordinate (for the ``sigma_coord`` diagnosis)."""
    from refvpng.conformance.models import with_scale
    from refvpng.conformance.registry import cases

    if name not in cache:
        cache[name] = {}
        model = manifest.get("model")
        case = cases().get(name)
        if model and case is not None and model.get("scale") in ("exp", "softplus"):
            other = "softplus" if model["scale"] == "exp" else "exp"
            inputs = {k: arrays[k] for k in manifest["inputs"]}
            try:
                cache[name] = case.compute(with_scale(model, other), inputs, manifest["hyperparameters"])
            except (ValueError, FloatingPointError, np.linalg.LinAlgError):  # pragma: no cover
                cache[name] = {}
            cache[name] = {"_other": other, **cache[name]}
    return cache[name]


def _check_file(f: Path, fixtures: Path, known: list[str], report: Report, alt_cache: dict) -> None:
    name = f.name[:-4] if f.name.endswith(".npz") else f.name
    if not f.exists():
        report.errors.append(f"{f}: no such file")
        return
    if name not in known:
        report.errors.append(
            f"{f}: no fixture called {name!r} (name the file after a fixture: {', '.join(known)})"
        )
        return
    try:
        data = np.load(f, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        report.errors.append(f"{f}: not a readable .npz file ({exc})")
        return
    manifest, ref = read_fixture(fixtures, name)
    outputs, inputs = manifest["outputs"], manifest["inputs"]
    packing = ParamSpec.from_json(manifest["packing"]) if manifest.get("packing") else None
    sizes = manifest.get("sizes", {})
    with data:
        keys = list(data.files)
        unknown = [k for k in keys if k not in outputs and k not in inputs]
        for k in unknown:
            report.errors.append(
                f"{f}: key {k!r} is not an output of fixture {name!r} (outputs: {', '.join(outputs)})"
            )
        for k in keys:
            if k not in outputs:
                continue
            try:
                a = data[k]
            except ValueError as exc:
                report.errors.append(f"{f}: key {k!r} cannot be read ({exc})")
                continue
            if a.dtype == object or not (
                np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)
            ):
                report.errors.append(f"{f}: key {k!r} has non-numeric dtype {a.dtype}")
                continue
            e, info = ref[k], outputs[k]
            row = Row(str(f), name, k, float("inf"), info["tier"], float(info["tolerance"]), False)
            if a.shape != e.shape and a.squeeze().shape == e.squeeze().shape:
                a = a.reshape(e.shape)  # singleton axes only: (n, 1) vs (n,), () vs (1,)
            if a.shape != e.shape:
                hint = " (transposed?)" if a.shape == e.shape[::-1] else ""
                row.diagnosis = f"shape {a.shape}, expected {e.shape}{hint}"
            elif not np.all(np.isfinite(a)):
                row.diagnosis = "non-finite values (NaN or inf)"
            else:
                row.error = relative_error(a, e)
                row.passed = row.error <= row.tolerance
                if not row.passed:
                    alt = _alternates(name, manifest, ref, alt_cache)
                    alternates = {}
                    if k in alt:
                        msg = (
                            f"sigma coordinate: your numbers are refvpng's in the '{alt['_other']}' "
                            f"coordinate; this fixture uses '{manifest['model']['scale']}'"
                        )
                        alternates["sigma_coord"] = (alt[k], msg)
                    found = diagnose(
                        a,
                        e,
                        n=sizes.get("n"),
                        m=sizes.get("M"),
                        s=sizes.get("S"),
                        packing=packing,
                        alternates=alternates,
                    )
                    row.diagnosis = (
                        "; ".join(f"{d.name}: {d.message}" for d in found[:2])
                        if found
                        else "no known convention mistake fits"
                    )
            report.rows.append(row)
        if not any(k in outputs for k in keys) and not unknown:
            report.errors.append(f"{f}: holds no output of fixture {name!r} (outputs: {', '.join(outputs)})")


def check(path: str | os.PathLike[str], fixtures: str | os.PathLike[str] | None = None) -> Report:
    """Check a user's ``.npz`` file, or a directory of them, against the fixtures.

    Parameters
    ----------
    path : str or path-like
        A ``NAME.npz`` file or a directory of such files.
    fixtures : str or path-like, optional
        The fixture folder (default: the fixtures shipped with refvpng).

    Returns
    -------
    Report
        ``report.format()`` is the text of ``refvpng check``; ``report.exit_code`` its exit code.
    """
    path = as_path(path, "path")
    fixtures = as_path(fixtures, "fixtures") if fixtures is not None else fixtures_dir()
    report = Report()
    known = list_fixtures(fixtures)
    if not known:
        report.errors.append(f"{fixtures}: no fixtures found")
        return report
    if not path.exists():
        report.errors.append(f"{path}: no such file or directory")
        return report
    files = _user_files(path)
    if not files:
        report.errors.append(f"{path}: no .npz files in this directory")
    alt_cache: dict = {}
    for f in files:
        _check_file(f, fixtures, known, report, alt_cache)
    return report
