"""Fixture reading and self-checking shared by the ports (numpy + json only; never refvpng)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

DEFAULT_FIXTURES = Path(__file__).resolve().parent.parent / "refvpng" / "conformance" / "fixtures"


def load(directory, name):
    """Manifest (dict) and arrays (dict of ndarray) of fixture ``name``."""
    manifest = json.loads((Path(directory) / f"{name}.json").read_text())
    with np.load(Path(directory) / f"{name}.npz") as data:
        return manifest, {k: data[k] for k in data.files}


def compare(name, manifest, arrays, ours) -> bool:
    """Print and check the error of each quantity against the tolerance of the manifest."""
    ok = True
    for key, a in ours.items():
        e = arrays[key]
        tol = manifest["outputs"][key]["tolerance"]
        err = float(np.max(np.abs(a - e)) / max(1.0, float(np.max(np.abs(e)))))
        ok &= err <= tol
        print(
            f"{name:18s} {key:26s} rel. error {err:9.2e}  tol {tol:.0e}  {'pass' if err <= tol else 'FAIL'}"
        )
    return ok


def run_port(port, names, description, argv=None) -> int:
    """Run ``port(manifest, arrays) -> outputs`` on fixtures ``names``; write OUT/NAME.npz; 0 if all agree."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("fixtures", nargs="?", default=str(DEFAULT_FIXTURES))
    parser.add_argument("--out", default="port_outputs")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    ok = True
    for name in names:
        manifest, arrays = load(args.fixtures, name)
        ours = port(manifest, arrays)
        np.savez(out / f"{name}.npz", **ours)
        ok &= compare(name, manifest, arrays, ours)
    assert "refvpng" not in sys.modules, "the port must not import refvpng"
    print("all quantities agree with refvpng" if ok else "MISMATCH")
    return 0 if ok else 1
