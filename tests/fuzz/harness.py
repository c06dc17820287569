"""The fuzz oracle: bad variants of one argument, and the judgement of one call's outcome.

A call passes when it either returns finite float64 output (every float and floating array leaf of
the result, through tuples, lists, dicts and NamedTuples) or raises

- ``ValueError``/``TypeError`` whose message names the replaced argument, or
- ``FloatingPointError`` naming the function (finite input whose result overflows).

Anything else (a silent NaN/inf, a float32 result, another exception type, a message that does not
name the argument) is a failure, returned as a short description by :func:`judge`.
"""

from __future__ import annotations

import contextlib
import functools
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

HUGE = 1e300


@dataclass(frozen=True)
class Entry:
    """One registry entry: how to call a public function (or method) validly.

    Attributes
    ----------
    args : callable () -> dict
        Fresh keyword arguments of one valid call on small generic inputs (in signature order).
    call : callable, optional
        What to call with ``**args``; ``None`` calls the registered public object itself.
    skip : str, optional
        Reason the entry is not fuzzed (only file writers, experiment drivers, plotting, protocols
        and plain records).
    fixed : tuple of str
        Arguments not replaced (e.g. callbacks whose misuse is the caller's program).
    raises : tuple of exception types
        Further exceptions that are the documented outcome (``AssertionError`` of a test helper).
    nan_result : str, optional
        Why a NaN result is the documented answer (e.g. a sentinel meaning "no information").
    aliases : dict
        Other names an error may use for an argument (``{"x": ("eps",)}``: a wrong ``x`` may be
        reported as an ``eps`` that does not match it).
    """

    args: Callable[[], dict] = dict
    call: Callable | None = None
    skip: str | None = None
    fixed: tuple = ()
    raises: tuple = ()
    nan_result: str | None = None
    aliases: dict = field(default_factory=dict)


def not_fuzzed(reason: str) -> Entry:
    """An entry that is deliberately not fuzzed, with the reason."""
    return Entry(skip=reason)


class _Opaque:
    """A value of a type no public function accepts."""

    def __repr__(self):
        return "<opaque object>"


@functools.cache
def _scratch() -> Path:
    """The working directory of every fuzzed call."""
    return Path(tempfile.mkdtemp(prefix="refvpng-fuzz-cwd-"))


def _garbage(n=37) -> Path:
    path = Path(tempfile.gettempdir()) / f"refvpng-fuzz-garbage-{n}.bin"
    if not path.exists():
        path.write_bytes(np.random.default_rng(n).integers(0, 256, n, dtype=np.uint8).tobytes())
    return path


def _array_variants(a: np.ndarray) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    if a.dtype.kind == "f" and a.size:
        for label, val in (("nan", np.nan), ("inf", np.inf), ("huge", HUGE), ("-huge", -HUGE)):
            b = a.copy()
            b.flat[a.size // 2] = val
            out.append((label, b))
        out.append(("all-huge", np.full_like(a, HUGE)))
        out.append(("float32", a.astype(np.float32)))
    out.append(("ndim+1", a[None]))
    if a.ndim >= 1:
        out.append(("ndim-1", a[0] if a.shape[0] else a.reshape(a.shape[1:])))
        shape = list(a.shape)
        shape[-1] += 1
        out.append(("shape", np.resize(a, shape)))
        out.append(("empty", a[:0]))
    if a.ndim >= 3:
        out.append(("empty-axis1", a[:, :0]))
    out += [
        ("complex", a.astype(np.complex128) + 1j),
        ("bool", np.ones(a.shape, dtype=bool)),
        ("object", a.astype(object)),
    ]
    return out


def _scalar_variants(v) -> list[tuple[str, Any]]:
    if isinstance(v, (bool, np.bool_)):
        return [("none", None), ("str", "yes"), ("array", np.ones(2))]
    if isinstance(v, (int, np.integer)):
        return [("zero", 0), ("negative", -1), ("float", 1.5), ("bool", True), ("array", np.ones(2))]
    return [
        ("nan", np.nan),
        ("inf", np.inf),
        ("huge", HUGE),
        ("-huge", -HUGE),
        ("zero", 0.0),
        ("negative", -1.0),
        ("bool", True),
        ("complex", 1.0 + 1.0j),
        ("array", np.ones(2)),
    ]


def variants(value) -> list[tuple[str, Any]]:
    """The bad variants of one valid argument value (``None`` always among them)."""
    common = [("none", None), ("str", "bogus"), ("opaque", _Opaque())]
    if value is None:
        return [("str", "bogus"), ("opaque", _Opaque())]
    if isinstance(value, Path):
        return [
            ("missing-file", value.parent / "no-such-file"),
            ("garbage-file", _garbage()),
            ("empty-file", _garbage(0)),
            ("directory", value.parent if value.is_file() else value / "x"),
        ] + common
    if isinstance(value, np.random.Generator):
        return [("RandomState", np.random.RandomState(0)), ("np.random", np.random), ("seed", 0)] + common
    if isinstance(value, str):
        return [("bogus-choice", "no-such-choice"), ("none", None), ("int", 3)]
    if isinstance(value, np.ndarray):
        return common[:2] + _array_variants(value)
    if isinstance(value, (bool, np.bool_, int, float, np.integer, np.floating)):
        return common[:2] + _scalar_variants(value)
    if isinstance(value, (list, tuple)) and value and not hasattr(value, "_fields"):
        leaves = _first_array_path(value)
        out = common + [("empty-seq", type(value)())]
        if leaves is not None:
            for label, val in (("leaf-nan", np.nan), ("leaf-huge", HUGE)):
                out.append((label, _replace_leaf(value, leaves, val)))
        return out
    return common


def _first_array_path(v, path=()):
    if isinstance(v, np.ndarray) and v.dtype.kind == "f" and v.size:
        return path
    if isinstance(v, (list, tuple)):
        for i, item in enumerate(v):
            p = _first_array_path(item, path + (i,))
            if p is not None:
                return p
    return None


def _replace_leaf(v, path, val):
    if not path:
        b = v.copy()
        b.flat[0] = val
        return b
    items = list(v)
    items[path[0]] = _replace_leaf(items[path[0]], path[1:], val)
    return type(v)(*items) if hasattr(v, "_fields") else type(v)(items)


def bad_leaves(out, where="result") -> list[str]:
    """Describe every non-finite or non-float64 float leaf of a result."""
    if isinstance(out, (float, np.floating)):
        if isinstance(out, np.floating) and out.dtype != np.float64:
            return [f"{where} is {out.dtype}"]
        return [] if np.isfinite(out) else [f"{where} = {out}"]
    if isinstance(out, np.ndarray):
        if out.dtype.kind == "c":
            return [f"{where} is complex"]
        if out.dtype.kind != "f":
            return []
        if out.dtype != np.float64:
            return [f"{where} is {out.dtype}"]
        return [] if np.all(np.isfinite(out)) else [f"{where} has NaN/inf"]
    if isinstance(out, dict):
        return [b for k, v in out.items() for b in bad_leaves(v, f"{where}[{k!r}]")]
    if isinstance(out, (list, tuple)):
        names = getattr(out, "_fields", None)
        return [
            b
            for i, v in enumerate(out)
            for b in bad_leaves(v, f"{where}.{names[i]}" if names else f"{where}[{i}]")
        ]
    return []


def judge(
    func: Callable,
    kwargs: dict,
    arg: str,
    names: tuple[str, ...],
    func_name: str,
    *,
    raises: tuple = (),
    nan_ok: bool = False,
) -> str | None:
    """Call ``func(**kwargs)`` (``arg`` replaced by a bad variant) and describe a bad outcome.

    Returns ``None`` when the outcome is acceptable (module docstring), else a short description.
    """
    try:
        # relative paths (the "bogus" string variant of a path) land in a scratch folder, never the
        # working directory
        with warnings.catch_warnings(), np.errstate(all="ignore"), contextlib.chdir(_scratch()):
            warnings.simplefilter("ignore")
            out = func(**kwargs)
    except raises:
        return None
    except (ValueError, TypeError) as exc:
        msg = str(exc)
        if any(n in msg for n in names):
            return None
        return f"unclear {type(exc).__name__}: {msg[:120]}"
    except OSError as exc:  # a bad path: the OS error names the file
        if any(n in str(exc) for n in names):
            return None
        return f"unclear {type(exc).__name__}: {str(exc)[:120]}"
    except FloatingPointError as exc:
        if func_name in str(exc):
            return None
        return f"FloatingPointError not naming {func_name}: {str(exc)[:120]}"
    except Exception as exc:  # noqa: BLE001 - the point is to classify every exception
        return f"{type(exc).__name__}: {str(exc)[:120]}"
    bad = bad_leaves(out)
    if nan_ok and isinstance(out, float) and np.isnan(out):
        bad = []
    if bad:
        return "silent: " + "; ".join(bad[:3])
    return None
