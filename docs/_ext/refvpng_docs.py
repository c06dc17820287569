"""Sphinx helpers for the refvpng documentation, offline and without a notebook kernel.

API pages
    When the build starts, one page per public module of the packages listed in
    ``refvpng_api_packages`` is written to ``api/generated/``: a package's page is its docstring and
    a table of its modules, a module's page its docstring, a summary table and every public member
    (``automodule`` with ``:members:``, which follows ``__all__``). New modules appear without
    editing the docs. (Autosummary's own recursion is not used: it resolves
    ``refvpng.optim.kfac_direction`` to the function that the package re-exports under the
    module's name.)

``executed-example``
    Runs a Python example while the site is built and shows the code and what it printed. The
    code is the directive's content, or (``:readme: HEADING``) the first ``python`` code block
    under the heading ``## HEADING`` of the README, so the README's example is the one that runs.
    An exception is a build error, so with ``-W`` a failing example fails the build.

Re-exported names
    ``refvpng.nn.chain_model`` and ``refvpng.nn.chain.chain_model`` are one function; the API
    reference documents it once, in its module. A Python cross-reference that Sphinx cannot
    resolve is looked up by importing it (from the current module for a short name); if the
    object is documented under another name, the reference goes there. Anything else stays
    unresolved, and with ``nitpicky`` and ``-W`` fails the build.

``results-section``
    Inserts the section of ``validation/RESULTS.md`` whose heading contains the argument (for
    example ``reproduce toy``), parsed as Markdown: its heading line is dropped (the page has
    its own), sub-headings become rubrics, and image paths are rewritten to point at
    ``validation/results/``. A key that matches no heading, or more than one, is a build error.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import io
import os
import pkgutil
import re
import traceback
from pathlib import Path

from docutils import nodes
from docutils.parsers.rst import directives
from docutils.statemachine import StringList
from sphinx.pycode import ModuleAnalyzer
from sphinx.util.docutils import SphinxDirective

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
RESULTS = ROOT / "validation" / "RESULTS.md"


def readme_block(heading: str, text: str | None = None) -> str:
    """The first fenced ``python`` block under ``## heading`` of the README."""
    text = README.read_text(encoding="utf-8") if text is None else text
    sections = re.split(r"^## ", text, flags=re.M)
    for section in sections[1:]:
        title, _, body = section.partition("\n")
        if title.strip() == heading:
            match = re.search(r"^```python\n(.*?)^```", body, flags=re.M | re.S)
            if match is None:
                raise ValueError(f"README section {heading!r} has no ```python block")
            return match.group(1)
    raise ValueError(f"README has no section '## {heading}'")


def results_section(key: str, text: str | None = None) -> tuple[str, str]:
    """``(heading, body)`` of the one ``## `` section of RESULTS.md whose heading contains key."""
    text = RESULTS.read_text(encoding="utf-8") if text is None else text
    found = []
    for section in re.split(r"^## ", text, flags=re.M)[1:]:
        title, _, body = section.partition("\n")
        if key in title:
            found.append((title.strip(), body))
    if len(found) != 1:
        raise ValueError(f"{len(found)} sections of {RESULTS.name} have {key!r} in their heading")
    return found[0]


class ExecutedExample(SphinxDirective):
    """Run Python code at build time; show it and its standard output."""

    has_content = True
    option_spec = {"readme": directives.unchanged_required}

    def run(self) -> list[nodes.Node]:
        """Run the example; return its code and output."""
        try:
            if "readme" in self.options:
                code = readme_block(self.options["readme"])
                self.env.note_dependency(str(README))
            else:
                code = "\n".join(self.content) + "\n"
        except ValueError as exc:
            raise self.error(str(exc)) from None
        out = io.StringIO()
        try:
            with contextlib.redirect_stdout(out):
                exec(compile(code, f"<{self.env.docname} example>", "exec"), {"__name__": "__example__"})  # noqa: S102
        except Exception:  # any failure of the example fails the build
            raise self.error("example failed:\n" + traceback.format_exc()) from None
        result: list[nodes.Node] = [nodes.literal_block(code, code, language="python")]
        if out.getvalue():
            result.append(nodes.rubric("", "Output (computed when this page was built)"))
            result.append(nodes.literal_block(out.getvalue(), out.getvalue(), language="none"))
        return result


class ResultsSection(SphinxDirective):
    """Insert one section of validation/RESULTS.md (Markdown pages only)."""

    required_arguments = 1
    final_argument_whitespace = True

    def run(self) -> list[nodes.Node]:
        """Parse the section into a container."""
        try:
            _, body = results_section(self.arguments[0])
        except ValueError as exc:
            raise self.error(str(exc)) from None
        self.env.note_dependency(str(RESULTS))
        here = (Path(self.env.srcdir) / self.env.docname).parent
        rel = Path(os.path.relpath(RESULTS.parent, here)).as_posix()
        body = re.sub(r"\]\((results/[^)]+)\)", lambda m: f"]({rel}/{m.group(1)})", body)
        body = re.sub(r"^#{3,} (.*)$", r"**\1**", body, flags=re.M)
        container = nodes.container(classes=["results-section"])
        self.state.nested_parse(StringList(body.splitlines(), source=str(RESULTS)), 0, container)
        return [container]


def _import(path: str):
    """The object named by a dotted path, or None."""
    parts = path.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        try:
            for attr in parts[i:]:
                obj = getattr(obj, attr)
        except AttributeError:
            return None
        return obj
    return None


def _documented_names(env) -> dict[int, str]:
    """``id(object) -> documented name`` for every object in the Python domain (built once)."""
    cache = getattr(env, "_refvpng_documented", None)
    if cache is None:
        cache = {}
        for name, entry in env.get_domain("py").objects.items():
            obj = _import(name)
            if obj is not None and entry.objtype not in ("data", "attribute") and id(obj) not in cache:
                cache[id(obj)] = name
        env._refvpng_documented = cache
    return cache


def resolve_reexport(app, env, node, contnode):
    """Resolve a reference to a re-exported refvpng name to where it is documented."""
    if node.get("refdomain") != "py":
        return None
    target = node["reftarget"].lstrip(".~")
    modname, clsname = node.get("py:module"), node.get("py:class")
    candidates = [target] if target.startswith("refvpng.") else []
    if modname:
        candidates += [f"{modname}.{clsname}.{target}"] if clsname else []
        candidates.append(f"{modname}.{target}")
        if "." in modname:  # a sibling that the parent package re-exports
            candidates.append(f"{modname.rsplit('.', 1)[0]}.{target}")
    for path in candidates:
        obj = _import(path)
        name = None if obj is None else _documented_names(env).get(id(obj))
        if name is not None:
            domain = env.get_domain("py")
            return domain.resolve_xref(env, node["refdoc"], app.builder, "obj", name, node, contnode)
    return None


def _public_modules(name: str) -> list[str]:
    """``name`` and its public submodules, depth first (private ``_x`` modules left out)."""
    module = importlib.import_module(name)
    out = [name]
    for info in pkgutil.iter_modules(getattr(module, "__path__", [])):
        if not info.name.startswith("_"):
            out += _public_modules(f"{name}.{info.name}")
    return out


def _members(module) -> list[str]:
    """Public members of a module, in ``__all__`` order.

    Without ``__all__``: the public functions and classes defined in the module and the variables
    with a ``#:`` doc comment, in source order.
    """
    if hasattr(module, "__all__"):
        return list(module.__all__)
    documented = {
        attr for (cls, attr) in ModuleAnalyzer.for_module(module.__name__).find_attr_docs() if not cls
    }
    return [
        n
        for n, obj in vars(module).items()
        if not n.startswith("_")
        and (
            n in documented
            or ((inspect.isfunction(obj) or inspect.isclass(obj)) and obj.__module__ == module.__name__)
        )
    ]


def _summary_line(module) -> str:
    doc = inspect.getdoc(module) or ""
    return doc.strip().split("\n\n")[0].replace("\n", " ")


def api_page(name: str) -> str:
    """The reST source of the API page of module or package ``name``."""
    module = importlib.import_module(name)
    lines = [name.replace("_", r"\_"), "=" * (len(name) + name.count("_")), ""]
    submodules = [m for m in _public_modules(name)[1:] if m.count(".") == name.count(".") + 1]
    if hasattr(module, "__path__"):
        lines += [f".. automodule:: {name}", "   :no-members:", "", ".. rubric:: Modules", ""]
        lines += [".. list-table::", "   :widths: 35 65", ""]
        for sub in submodules:
            lines += [f"   * - :mod:`{sub}`", f"     - {_summary_line(importlib.import_module(sub))}"]
        lines += ["", ".. toctree::", "   :hidden:", ""] + [f"   {sub}" for sub in submodules]
    else:
        members = _members(module)
        lines += [f".. automodule:: {name}", "   :no-members:", "", f".. currentmodule:: {name}", ""]
        if members:
            lines += [".. rubric:: Summary", "", ".. autosummary::", ""] + [f"   {m}" for m in members]
            lines += ["", ".. rubric:: Reference", ""]
        for m in members:
            obj = getattr(module, m)
            if inspect.isclass(obj):
                lines += [f".. autoclass:: {m}", "   :members:", ""]
            elif inspect.isroutine(obj) or hasattr(obj, "py_func"):  # py_func: a numba dispatcher
                lines += [f".. autofunction:: {m}", ""]
            else:
                lines += [f".. autodata:: {m}", ""]
    return "\n".join(lines) + "\n"


def write_api_pages(app) -> None:
    """Write ``api/generated/*.rst`` for ``refvpng_api_packages`` (only files whose text changed)."""
    out = Path(app.srcdir) / "api" / "generated"
    out.mkdir(parents=True, exist_ok=True)
    wanted = {}
    for top in app.config.refvpng_api_packages:
        for name in _public_modules(top):
            wanted[f"{name}.rst"] = api_page(name)
    for stale in set(p.name for p in out.glob("*.rst")) - set(wanted):
        (out / stale).unlink()
    for fname, text in wanted.items():
        path = out / fname
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")


def skip_namedtuple_fields(app, what, name, obj, skip, options):
    """Leave out NamedTuple fields (``Alias for field number k``): Attributes sections list them."""
    if (getattr(obj, "__doc__", None) or "").startswith("Alias for field number"):
        return True
    return None


def setup(app):
    """Register the directives and the re-export resolver."""
    app.add_directive("executed-example", ExecutedExample)
    app.add_directive("results-section", ResultsSection)
    app.connect("missing-reference", resolve_reexport)
    app.add_config_value("refvpng_api_packages", [], "env")
    app.connect("builder-inited", write_api_pages)
    app.connect("autodoc-skip-member", skip_namedtuple_fields)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
