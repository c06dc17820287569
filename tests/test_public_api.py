"""The public API: every public module declares __all__, every exported name exists, the README
lists every public module, and no module grows far past one concept (about 500 lines)."""

from __future__ import annotations

import importlib
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
