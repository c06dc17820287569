"""Sphinx configuration of the refvpng documentation (build: see the README, "Documentation")."""

import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS.parent))  # document the working tree, installed or not
sys.path.insert(0, str(DOCS / "_ext"))

import refvpng  # noqa: E402

project = "refvpng"
author = "the refvpng developers"
copyright = "the refvpng developers"  # noqa: A001
release = refvpng.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "numpydoc",
    "myst_parser",
    "refvpng_docs",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build", "_ext", "Thumbs.db", ".DS_Store"]
root_doc = "index"

# A reference that does not resolve is a warning, and the build runs with -W: broken
# cross-references fail it. Targets outside refvpng (NumPy, SciPy, the standard library) are not
# resolvable offline (no intersphinx inventories), so those alone are ignored.
nitpicky = True
nitpick_ignore_regex = [
    (r"py:.*", r"(np|numpy|scipy|autograd|numba|hypothesis|st)(\..*)?"),  # st: hypothesis.strategies
    (r"py:.*", r"(argparse|collections|typing|os|pathlib|dataclasses)(\..*)?"),
    (r"py:.*", r"(Callable|Sequence|Mapping|Iterable|Iterator|Any|Path|PathLike|NDArray|ArrayLike)"),
    (r"py:.*", r"(ndarray|callable|optional|array_like|array-like|generator|Generator)"),
]

# API reference: one page per public module of these packages, written into api/generated/ by
# the refvpng_docs extension when the build starts (summary tables by autosummary).
refvpng_api_packages = [
    "refvpng.models",
    "refvpng.curvature",
    "refvpng.nn",
    "refvpng.optim",
    "refvpng.elbo",
    "refvpng.testing",
    "refvpng.data",
    "refvpng.experiments",
    "refvpng.verify",
    "refvpng.conformance",
]
autosummary_generate = False
autodoc_default_options = {"member-order": "bysource"}
autodoc_typehints = "signature"
# Type hints are rendered by name, not expanded (ArrayLike is a long Union).
autodoc_type_aliases = {"ArrayLike": "numpy.typing.ArrayLike", "DTypeLike": "numpy.typing.DTypeLike"}
autodoc_preserve_defaults = True
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

# MyST (Markdown pages and the generated RESULTS.md sections).
myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 3

html_theme = "furo"
html_title = f"refvpng {release}"

# numpydoc References sections list their sources without citing each one in the text; an
# unreferenced citation is not an error here. (Unknown citation *references* still are.)
suppress_warnings = ["ref.citation"]


def _alias_names(app, what, name, obj, options, signature, return_annotation):
    """Render an aliased type inside a union (``ArrayLike | None``) by its name.

    Sphinx prints such an alias as ``TypeAliasForwardRef('numpy.typing.ArrayLike')``.
    """
    import re

    def clean(text):
        return None if text is None else re.sub(r"TypeAliasForwardRef\('([^']*)'\)", r"\1", text)

    return clean(signature), clean(return_annotation)


def setup(app):
    """Connect the signature clean-up above."""
    app.connect("autodoc-process-signature", _alias_names)
