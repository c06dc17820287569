"""The public API: every public module declares __all__, every exported name exists, the README
lists every public module, no module grows far past one concept (about 500 lines), and every
public callable is fully type-annotated."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from pathlib import Path

import pytest

import refvpng

ROOT = Path(__file__).resolve().parents[1]
MAX_LINES = 560  # "about 500": a module past this is doing more than one thing


def _public_modules():
    out = []
    for m in pkgutil.walk_packages(refvpng.__path__, "refvpng."):
        if any(part.startswith("_") for part in m.name.split(".")[1:]):
            continue
        if ".conformance.fixtures" in m.name:
            continue
        out.append(m.name)
    return sorted(out)


MODULES = _public_modules()


@pytest.mark.parametrize("name", MODULES)
def test_module_declares_all_and_every_name_exists(name):
    mod = importlib.import_module(name)
    assert hasattr(mod, "__all__"), f"{name} has no __all__"
    for attr in mod.__all__:
        assert hasattr(mod, attr) or importlib.util.find_spec(f"{name}.{attr}") is not None, (
            f"{name}.__all__ names {attr!r}, which does not exist"
        )


def test_readme_lists_every_public_module():
    readme = (ROOT / "README.md").read_text()
    top = {".".join(n.split(".")[:3]) for n in MODULES if n.count(".") >= 1}
    missing = [n for n in sorted(top) if f"`{n}`" not in readme and n.replace("refvpng.", "") not in readme]
    assert not missing, f"README's module table does not list: {missing}"


def test_no_module_is_much_over_500_lines():
    long = {
        str(p.relative_to(ROOT)): n
        for p in (ROOT / "refvpng").rglob("*.py")
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert not long, f"modules over {MAX_LINES} lines: {long}"


def test_no_estimator_name_ends_in_chain():
    names = {a for n in MODULES for a in getattr(importlib.import_module(n), "__all__", [])}
    assert not [a for a in names if a.endswith("_chain")]


# -- type hints ------------------------------------------------------------------------------------
# Every public callable (functions, classes' __init__, public methods and properties, inherited ones
# from refvpng base classes included) reachable from an __all__ annotates every parameter and its
# return; mypy (configured in pyproject.toml) then checks the bodies.


def _missing_annotations(func, *, is_method: bool = False) -> list[str]:
    """Names of ``func``'s unannotated parameters, and ``"return"`` if its return is unannotated."""
    try:
        sig = inspect.signature(func)  # follows functools.wraps to the decorated function
    except (TypeError, ValueError):  # builtins without a signature
        return []
    params = list(sig.parameters.values())
    if is_method and params and params[0].name in ("self", "cls"):
        params = params[1:]
    missing = [p.name for p in params if p.annotation is inspect.Parameter.empty]
    if sig.return_annotation is inspect.Signature.empty:
        missing.append("return")
    return missing


def _class_callables(cls: type, package: str = "refvpng"):
    """``(qualified name, function, is_method)`` of a class's public surface defined in ``package``."""
    owners = [c for c in cls.__mro__ if c.__module__.split(".")[0] == package]
    names = {"__init__"} | {n for c in owners for n in vars(c) if not n.startswith("_")}
    for name in sorted(names):
        owner = next((c for c in cls.__mro__ if name in vars(c)), None)
        if owner not in owners:  # object.__init__, NamedTuple and dataclass machinery
            continue
        attr = vars(owner)[name]
        is_method = not isinstance(attr, staticmethod)
        if isinstance(attr, (staticmethod, classmethod)):
            attr = attr.__func__
        elif isinstance(attr, property):
            attr = attr.fget
        if inspect.isfunction(attr) and attr.__module__.split(".")[0] == package:
            yield f"{owner.__module__}.{attr.__qualname__}", attr, is_method


def _public_callables():
    seen = {}
    for name in ["refvpng", *MODULES]:
        mod = importlib.import_module(name)
        for attr in getattr(mod, "__all__", []):
            obj = getattr(mod, attr, None)
            if obj is None or inspect.ismodule(obj) or not callable(obj):
                continue
            if inspect.isclass(obj):
                if obj.__module__.split(".")[0] == "refvpng":
                    for key, func, is_method in _class_callables(obj):
                        seen.setdefault(key, (func, is_method))
            elif inspect.isroutine(obj) or type(obj).__module__.split(".")[0] == "refvpng":
                func = obj if inspect.isroutine(obj) else type(obj).__call__
                key = f"{getattr(func, '__module__', name)}.{getattr(func, '__qualname__', attr)}"
                seen.setdefault(key, (func, not inspect.isroutine(obj)))
    return seen


def _unannotated():
    out = {}
    for key, (func, is_method) in _public_callables().items():
        if missing := _missing_annotations(func, is_method=is_method):
            out[key] = missing
    return out


def test_public_api_is_fully_annotated():
    callables = _public_callables()
    assert len(callables) > 300  # the walk reaches the whole API
    bad = _unannotated()
    assert not bad, f"{len(bad)} public callables lack type hints: " + "; ".join(
        f"{k}({', '.join(v)})" for k, v in sorted(bad.items())
    )


def test_annotation_check_catches_what_it_should():
    def bare(x, y: int = 1):
        return x

    def no_return(x: int):
        return x

    def full(x: int, *args: float, **kw: str) -> int:
        return x

    def star(*args, **kw) -> None:
        pass

    class C:
        def __init__(self, a) -> None:
            pass

        def m(self, b: int):
            return b

        @property
        def p(self):
            return 1

    assert _missing_annotations(bare) == ["x", "return"]
    assert _missing_annotations(no_return) == ["return"]
    assert _missing_annotations(full) == []
    assert _missing_annotations(star) == ["args", "kw"]
    found = {
        k.rsplit(".", 1)[-1]: _missing_annotations(f, is_method=m)
        for k, f, m in _class_callables(C, package=__name__.split(".")[0])
    }
    assert found == {"__init__": ["a"], "m": ["return"], "p": ["return"]}


def test_walk_reports_an_unannotated_export(monkeypatch):
    mod = importlib.import_module("refvpng.elbo")

    def bare(x, y: int = 1):
        return x

    bare.__module__ = mod.__name__
    monkeypatch.setattr(mod, "bare", bare, raising=False)
    monkeypatch.setattr(mod, "__all__", [*mod.__all__, "bare"])
    assert _unannotated() == {f"refvpng.elbo.{bare.__qualname__}": ["x", "return"]}
