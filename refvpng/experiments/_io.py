"""Shared plumbing of the experiments: atomic JSON, optional progress bars, the results folder."""

from __future__ import annotations

import json
import os
import platform
import tempfile
from pathlib import Path

import numpy as np

__all__ = ["default_results_dir", "write_json_atomic", "read_json", "progress", "machine_info"]


def default_results_dir() -> Path:
    """``validation/results`` of the source tree when run from a checkout, else ``./results``."""
    here = Path(__file__).resolve().parents[2] / "validation" / "results"
    return here if here.parent.is_dir() else Path.cwd() / "results"


def _default(o):
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def write_json_atomic(path, obj) -> None:
    """Write ``obj`` as JSON to ``path`` through a temporary file and ``os.replace``.

    A run killed half-way leaves the previous file intact, never a truncated one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(obj, fh, indent=2, default=_default, allow_nan=False)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; results are meant to be read by anyone
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def read_json(path):
    """Read a JSON file, or return ``None`` if it does not exist."""
    path = Path(path)
    if not path.exists():
        return None
    with open(path) as fh:
        return json.load(fh)


def progress(iterable, *, total=None, desc=None, disable=False):
    """Wrap ``iterable`` in a tqdm progress bar when tqdm is installed (an optional extra)."""
    if disable:
        return iterable
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return iterable
    return tqdm(iterable, total=total, desc=desc, leave=False)


def machine_info() -> dict:
    """Versions and core count, recorded next to every result."""
    import scipy

    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
    }
