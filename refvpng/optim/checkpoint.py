"""Atomic save and exact restore of an optimisation run (parameters, optimiser state, step, seed).

A checkpoint is a single ``.npz`` file holding every array of the run and one JSON document (the
entry ``__meta__``, a unicode string array, so no pickle is ever needed) that records the tree
structure of the optimiser state: NamedTuples (by module and qualified name, with their field
names), tuples, lists, dicts with string keys, ndarrays and numpy scalars (stored as arrays, dtype
kept), and Python ``bool``/``int``/``float``/``str``/``None`` (floats as ``float.hex``, so every
bit, NaN and infinities included, survives). Restoring yields the same types and bit-identical
values, which is what lets a resumed run reproduce an uninterrupted one exactly.

The file is written with refvpng's one atomic writer (``refvpng._atomic``): a temporary file
in the same directory, flushed and fsync'ed, then moved over the target with :func:`os.replace`,
so a run killed while saving leaves the previous checkpoint intact; the temporary a killed
process leaves behind is removed by the next save in that folder.
"""

from __future__ import annotations

import importlib
import json
import numbers
import os
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from refvpng._atomic import atomic_path, remove_stale_temporaries
from refvpng._checks import as_path
from refvpng.optim.base import check_params

__all__ = ["Checkpoint", "load_checkpoint", "save_checkpoint"]

_FORMAT = "refvpng.optim.checkpoint"
_VERSION = 1


class Checkpoint(NamedTuple):
    """Contents of a checkpoint file.

    Attributes
    ----------
    params : ndarray, shape (P,)
        Parameters after ``step`` completed steps.
    state : NamedTuple or tuple
        Optimiser state after ``step`` completed steps.
    step : int
        Number of completed steps, i.e. the next step to run.
    seed : int or None
        Root seed of the run's per-step randomness (see :func:`refvpng.optim.loop.step_rngs`).
    history : ndarray, shape (step,)
        Objective values of the completed steps.
    """

    params: np.ndarray
    state: Any
    step: int
    seed: int | None
    history: np.ndarray


def _is_namedtuple(x) -> bool:
    return isinstance(x, tuple) and hasattr(type(x), "_fields")


def _encode(x, arrays: dict, where: str):
    """Encode a state tree into JSON-able nodes, moving arrays into ``arrays``."""
    if isinstance(x, np.ndarray):
        if x.dtype.hasobject:
            raise TypeError(f"state{where} is an object array, which cannot be saved")
        key = f"a{len(arrays)}"
        arrays[key] = x
        return {"t": "array", "k": key}
    if isinstance(x, np.generic):
        key = f"a{len(arrays)}"
        arrays[key] = np.asarray(x)
        return {"t": "npscalar", "k": key}
    if x is None:
        return {"t": "none"}
    if isinstance(x, bool):
        return {"t": "bool", "v": x}
    if isinstance(x, numbers.Integral):
        return {"t": "int", "v": int(x)}
    if isinstance(x, float):
        return {"t": "float", "v": float.hex(x)}
    if isinstance(x, str):
        return {"t": "str", "v": x}
    if _is_namedtuple(x):
        cls = type(x)
        return {
            "t": "namedtuple",
            "cls": f"{cls.__module__}:{cls.__qualname__}",
            "fields": list(cls._fields),
            "items": [_encode(v, arrays, f"{where}.{f}") for f, v in zip(cls._fields, x, strict=True)],
        }
    if isinstance(x, (tuple, list)):
        return {
            "t": type(x).__name__,
            "items": [_encode(v, arrays, f"{where}[{i}]") for i, v in enumerate(x)],
        }
    if isinstance(x, dict):
        if not all(isinstance(k, str) for k in x):
            raise TypeError(f"state{where} is a dict with non-string keys, which cannot be saved")
        return {
            "t": "dict",
            "items": {k: _encode(v, arrays, f"{where}[{k!r}]") for k, v in x.items()},
        }
    raise TypeError(f"state{where} has unsupported type {type(x).__name__}")


def _import_class(spec: str):
    module, _, qualname = spec.partition(":")
    if "<locals>" in qualname:
        raise ValueError(
            f"state class {spec} is local to a function and cannot be imported; "
            "pass like=optimizer.init(params) to load_checkpoint"
        )
    try:
        obj = importlib.import_module(module)
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError):
        raise ValueError(
            f"cannot import state class {spec}; pass like=optimizer.init(params) to load_checkpoint"
        ) from None
    return obj


def _decode(node: dict, arrays, like, where: str):
    """Rebuild a state tree; ``like`` (optional) supplies the NamedTuple types."""
    t = node["t"]
    if t == "array":
        return np.array(arrays[node["k"]])
    if t == "npscalar":
        return np.array(arrays[node["k"]])[()]
    if t == "none":
        return None
    if t in ("bool", "int", "str"):
        return node["v"]
    if t == "float":
        return float.fromhex(node["v"])
    if t == "namedtuple":
        fields = node["fields"]
        if like is not None:
            if not _is_namedtuple(like) or list(type(like)._fields) != fields:
                raise ValueError(f"state{where} does not match the structure of like")
            cls = type(like)
        else:
            cls = _import_class(node["cls"])
            if (
                not (isinstance(cls, type) and issubclass(cls, tuple))
                or list(getattr(cls, "_fields", ())) != fields
            ):
                raise ValueError(f"state{where}: class {node['cls']} no longer has fields {fields}")
        sub = like if like is not None else [None] * len(fields)
        return cls(
            *(
                _decode(n, arrays, s, f"{where}.{f}")
                for n, s, f in zip(node["items"], sub, fields, strict=True)
            )
        )
    if t in ("tuple", "list"):
        items = node["items"]
        if like is not None and (not isinstance(like, (tuple, list)) or len(like) != len(items)):
            raise ValueError(f"state{where} does not match the structure of like")
        sub = like if like is not None else [None] * len(items)
        out = [
            _decode(n, arrays, s, f"{where}[{i}]") for i, (n, s) in enumerate(zip(items, sub, strict=True))
        ]
        return tuple(out) if t == "tuple" else out
    if t == "dict":
        items = node["items"]
        if like is not None and (not isinstance(like, dict) or set(like) != set(items)):
            raise ValueError(f"state{where} does not match the structure of like")
        return {
            k: _decode(n, arrays, None if like is None else like[k], f"{where}[{k!r}]")
            for k, n in items.items()
        }
    raise ValueError(f"unknown node type {t!r} at state{where}")


def _write_npz(f, arrays: dict) -> None:
    """Write ``arrays`` as an uncompressed npz to the open binary file ``f``."""
    np.savez(f, **arrays)


def save_checkpoint(
    path: str | os.PathLike,
    params: ArrayLike,
    state: tuple,
    step: int,
    seed: int | None = None,
    history: ArrayLike | None = None,
) -> None:
    """Save a run atomically to ``path`` (an ``.npz`` file; no extension is added).

    Parameters
    ----------
    path : str or os.PathLike
        Target file. Its directory must exist.
    params : array_like, shape (P,)
        Current parameters.
    state : NamedTuple or tuple
        Optimiser state: a tree of NamedTuples, tuples, lists, str-keyed dicts, ndarrays, numpy
        scalars and Python scalars.
    step : int
        Number of completed steps (>= 0).
    seed : int, optional
        Root seed of the run (any non-negative Python int, stored exactly).
    history : array_like, shape (step,), optional
        Objective values of the completed steps; default empty.

    Raises
    ------
    TypeError
        If the state contains an unsupported type (e.g. object arrays), or ``step``/``seed`` is
        not an integer.
    ValueError
        If ``params`` is not a finite vector, ``step``/``seed`` is negative, or ``history`` is not
        one-dimensional.

    Examples
    --------
    >>> import os, tempfile
    >>> from refvpng.optim import adam
    >>> opt = adam(0.1)
    >>> state = opt.init(np.zeros(2))
    >>> path = os.path.join(tempfile.mkdtemp(), "run.npz")
    >>> save_checkpoint(path, np.zeros(2), state, step=0, seed=7)
    >>> ck = load_checkpoint(path)
    >>> type(ck.state).__name__, ck.step, ck.seed
    ('AdamState', 0, 7)
    """
    p = check_params(params)
    if isinstance(step, bool) or not isinstance(step, numbers.Integral):
        raise TypeError(f"step must be an integer, got {type(step).__name__}")
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    if seed is not None:
        if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
            raise TypeError(f"seed must be an integer or None, got {type(seed).__name__}")
        if seed < 0:
            raise ValueError(f"seed must be >= 0, got {seed}")
    h = np.zeros(0) if history is None else np.asarray(history, dtype=np.float64)
    if h.ndim != 1:
        raise ValueError(f"history must be one-dimensional, got shape {h.shape}")
    arrays: dict[str, np.ndarray] = {"params": p, "history": h}
    tree = _encode(state, arrays, "")
    meta = {
        "format": _FORMAT,
        "version": _VERSION,
        "step": int(step),
        "seed": None if seed is None else int(seed),
        "state": tree,
    }
    arrays["__meta__"] = np.array(json.dumps(meta))

    path = os.path.abspath(os.fspath(as_path(path, "path")))
    remove_stale_temporaries(os.path.dirname(path))
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        _write_npz(f, arrays)


def load_checkpoint(
    path: str | os.PathLike, *, like: tuple | Callable[[np.ndarray], tuple] | None = None
) -> Checkpoint:
    """Load a checkpoint written by :func:`save_checkpoint`, restoring the exact state types.

    Parameters
    ----------
    path : str or os.PathLike
        The checkpoint file.
    like : NamedTuple, tuple or callable, optional
        A state of the same structure (e.g. ``optimizer.init(params)``), or a callable
        ``params -> state``, whose types are used instead of importing the recorded classes
        (needed when a state class is defined inside a function). Its structure and field names
        must match the saved state.

    Returns
    -------
    Checkpoint
        ``(params, state, step, seed, history)``, every array a fresh copy.

    Raises
    ------
    ValueError
        If the file is not a refvpng checkpoint or is corrupted, a state class cannot be imported
        or no longer matches, or the structure differs from ``like``.
    FileNotFoundError
        If ``path`` does not exist.

    Examples
    --------
    See :func:`save_checkpoint`.
    """
    path = os.fspath(as_path(path, "path"))
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except FileNotFoundError:
        raise
    except Exception as exc:  # zipfile.BadZipFile, OSError, ValueError, EOFError, ...
        raise ValueError(f"{path} is not a readable checkpoint: {exc}") from None
    try:
        meta = json.loads(str(arrays.pop("__meta__")[()]))
    except (KeyError, ValueError) as exc:
        raise ValueError(f"{path} is not a refvpng checkpoint: {exc}") from None
    if meta.get("format") != _FORMAT or meta.get("version") != _VERSION:
        raise ValueError(
            f"{path} is not a version-{_VERSION} refvpng checkpoint "
            f"(format {meta.get('format')!r}, version {meta.get('version')!r})"
        )
    params = np.array(arrays["params"])
    if callable(like) and not isinstance(like, tuple):
        like = like(params)
    state = _decode(meta["state"], arrays, like, "")
    return Checkpoint(
        params=params,
        state=state,
        step=int(meta["step"]),
        seed=meta["seed"],
        history=np.array(arrays["history"]),
    )
