"""One atomic writer for every file refvpng writes: JSON results, ``.npz`` checkpoints, PNGs.

A file is written to a temporary name in the same folder, flushed and ``fsync``-ed, and renamed
over the target with :func:`os.replace`, so a reader sees either the old file or the new one,
never a truncated one. A process killed half-way (``SIGKILL`` runs no cleanup) leaves its
temporary behind; :func:`remove_stale_temporaries` deletes those of dead processes, and every
writer of the experiments calls it when it starts.

Temporary names are ``.<target name>.<pid>.tmp<suffix>`` (the suffix keeps the extension, so
that matplotlib and NumPy recognise the format).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np

__all__ = ["atomic_path", "write_json_atomic", "remove_stale_temporaries", "json_default"]

_TMP = re.compile(r"^\..+\.(\d+)\.tmp(\.[A-Za-z0-9]+)?$")


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _fsync_dir(folder: Path) -> None:
    """Make a rename durable where the platform allows opening a directory."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def remove_stale_temporaries(folder) -> list[Path]:
    """Delete the temporaries of :func:`atomic_path` left in ``folder`` by processes now dead.

    Parameters
    ----------
    folder : str or Path

    Returns
    -------
    list of Path
        The files removed.
    """
    folder = Path(folder)
    removed: list[Path] = []
    if not folder.is_dir():
        return removed
    for p in folder.iterdir():
        m = _TMP.match(p.name)
        if m and p.is_file() and not _pid_alive(int(m.group(1))):
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
                removed.append(p)
    return removed


@contextlib.contextmanager
def atomic_path(path, mode: int = 0o644) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success fsync it and rename it to ``path``.

    Parameters
    ----------
    path : str or Path
        The target; its folder is created if needed.
    mode : int, default 0o644
        Permission bits of the finished file.

    Yields
    ------
    Path
        Where the caller writes the whole file (with the target's extension).

    Raises
    ------
    OSError
        If the folder cannot be created or written, with the path in the message.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OSError(exc.errno, f"cannot create the folder {path.parent}: {exc.strerror}") from None
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp{path.suffix}")
    try:
        yield tmp
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except OSError as exc:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise OSError(exc.errno, f"writing {path} failed: {exc.strerror or exc}") from None
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def json_default(o):
    """``json.dump`` hook: NumPy scalars and arrays as plain numbers and lists."""
    if isinstance(o, (np.floating, np.integer, np.bool_)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def write_json_atomic(path, obj) -> None:
    """Write ``obj`` as JSON (strict: no NaN or inf) to ``path`` atomically.

    Parameters
    ----------
    path : str or Path
    obj : JSON-serialisable object (NumPy scalars and arrays allowed)

    Raises
    ------
    ValueError
        If ``obj`` holds NaN or inf (strict JSON has neither); the target is left untouched.
    """
    text = json.dumps(obj, indent=2, default=json_default, allow_nan=False) + "\n"
    with atomic_path(path) as tmp:
        with open(tmp, "w") as fh:
            fh.write(text)
