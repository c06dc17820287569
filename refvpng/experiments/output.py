"""Where an experiment writes: the results folder, its lock, and the machine record.

Part of :mod:`refvpng.experiments.harness` (which re-exports every name here).
"""

from __future__ import annotations

import contextlib
import os
import platform
import socket
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from refvpng._atomic import _pid_alive, remove_stale_temporaries
from refvpng._checks import as_path

__all__ = ["DEFAULT_OUT", "OutputLockedError", "output_dir", "output_lock", "machine_info"]

DEFAULT_OUT = "refvpng-results"


class OutputLockedError(RuntimeError):
    """Another process holds the lock on the output folder."""


def output_dir(
    out: str | os.PathLike[str] | None = None, *, publish: bool = False, preset: str | None = None
) -> Path:
    """The results folder: ``out``, ``validation/results`` with ``publish``, else ``./refvpng-results``.

    Raises
    ------
    ValueError
        If ``publish`` is combined with ``out`` or a preset, or there is no source checkout.
    """
    if not isinstance(publish, (bool, np.bool_)):
        raise TypeError(f"publish must be a bool, got {type(publish).__name__}")
    if preset is not None and not isinstance(preset, str):
        raise TypeError(f"preset must be a str or None, got {type(preset).__name__}")
    if publish:
        if out is not None:
            raise ValueError("--publish writes to validation/results; do not combine it with --out")
        if preset is not None:
            raise ValueError(f"--publish is for full runs; a --{preset} run is never published")
        here = Path(__file__).resolve().parents[2] / "validation" / "results"
        if not here.parent.is_dir():
            raise ValueError("--publish needs a source checkout (validation/ not found)")
        return here
    return as_path(out, "out") if out is not None else Path.cwd() / DEFAULT_OUT


def _check_writable(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".refvpng-write-test.{os.getpid()}"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        raise OSError(exc.errno, f"the results folder {folder} is not writable: {exc.strerror}") from None


@contextlib.contextmanager
def output_lock(folder: str | os.PathLike[str]) -> Iterator[Path]:
    """Hold ``<folder>/.refvpng.lock`` for the duration; refuse if a live process holds it.

    A lock left by a killed process (its pid no longer runs on this host) is taken over. Stale
    temporaries of the atomic writer are removed once the lock is held.

    Raises
    ------
    OutputLockedError
        If another live process holds the lock.
    OSError
        If the folder is not writable.
    """
    folder = as_path(folder, "folder")
    _check_writable(folder)
    lock = folder / ".refvpng.lock"
    me = f"{socket.gethostname()} {os.getpid()}"
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                host, pid = lock.read_text().split()
                alive = host != socket.gethostname() or _pid_alive(int(pid))
            except (OSError, ValueError):
                alive = False
            if alive:
                raise OutputLockedError(
                    f"{folder} is in use by another run ({lock.read_text().strip()}); wait for it "
                    "or choose another --out"
                ) from None
            with contextlib.suppress(FileNotFoundError):
                lock.unlink()
            continue
        with os.fdopen(fd, "w") as fh:
            fh.write(me)
        break
    else:  # pragma: no cover - lost a race twice
        raise OutputLockedError(f"could not take the lock {lock}")
    try:
        for sub in [folder, *folder.glob(".cells/*")]:
            remove_stale_temporaries(sub)
        yield folder
    finally:
        with contextlib.suppress(FileNotFoundError):
            if lock.read_text() == me:
                lock.unlink()


def machine_info() -> dict:
    """Package versions, Python, processor and core count, recorded with every result."""
    import autograd  # noqa: F401 - version below
    import numba
    import scipy

    from refvpng import __version__

    def version(mod):
        try:
            from importlib.metadata import version as v

            return v(mod)
        except Exception:  # noqa: BLE001 - metadata missing in an odd install
            return "unknown"

    return {
        "refvpng": __version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "numba": numba.__version__,
        "autograd": version("autograd"),
        "machine": platform.machine(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
    }
