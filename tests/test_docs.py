"""The documentation site's inputs: fast checks that the build (in .ci/run) would otherwise catch late.

The full build (``sphinx-build -W``) runs in ``.ci/run`` after the README command; these tests
check, in a second, that what the pages read from the repository is there: every public
subpackage has an API page, each experiment page finds exactly one section of RESULTS.md and that
section shows a committed figure, the executed README example is the README's, and CI runs the
build and the type check.
"""

import importlib.metadata
import pkgutil
import re
import runpy
import sys
from pathlib import Path

import pytest

import refvpng

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"

pytest.importorskip("sphinx", reason="the docs extra is not installed")
sys.path.insert(0, str(DOCS / "_ext"))
import refvpng_docs  # noqa: E402

NOT_DOCUMENTED = {"cli"}  # the command line is documented by its --help and the README


def _conf():
    return runpy.run_path(str(DOCS / "conf.py"))


def test_every_public_subpackage_has_an_api_page():
    listed = set(_conf()["refvpng_api_packages"])
    public = {
        f"refvpng.{m.name}"
        for m in pkgutil.iter_modules(refvpng.__path__)
        if not m.name.startswith("_") and m.name not in NOT_DOCUMENTED
    }
    assert listed == public
    index = (DOCS / "api" / "index.rst").read_text()
    for name in listed:
        assert f"generated/{name}\n" in index


def test_api_page_of_a_module_documents_its_public_names():
    page = refvpng_docs.api_page("refvpng.testing.tolerances")  # no __all__: the #: comments
    for name in ("EXACT", "AUTOGRAD", "FINITE_DIFF", "MC_K"):
        assert f".. autodata:: {name}" in page
    page = refvpng_docs.api_page("refvpng.optim.kfac_direction")  # the package re-exports a function
    assert ".. autoclass:: KFACDirectionState" in page  # under the module's name
    assert ".. autofunction:: kfac_direction" in page


@pytest.mark.parametrize("page", sorted((DOCS / "experiments").glob("*.md")), ids=lambda p: p.stem)
def test_experiment_page_finds_its_results_section_and_figure(page):
    keys = re.findall(r"^```\{results-section\} (.+)$", page.read_text(), flags=re.M)
    if page.stem == "index":
        assert not keys
        return
    assert len(keys) == 1
    _, body = refvpng_docs.results_section(keys[0])  # exactly one matching section
    assert "*Not run yet.*" not in body, f"the RESULTS.md section of {page.name} is not run yet"
    if page.stem != "differences":
        figures = re.findall(r"\]\((results/[^)]+\.png)\)", body)
        assert figures, f"the RESULTS.md section of {page.name} shows no figure"
        for fig in figures:
            assert (ROOT / "validation" / fig).is_file()


def test_results_section_rejects_unknown_and_ambiguous_keys():
    text = "# t\n\n## 1. A (`reproduce a`)\nbody a\n## 2. B (`reproduce ab`)\nbody b\n"
    assert refvpng_docs.results_section("reproduce ab", text) == ("2. B (`reproduce ab`)", "body b\n")
    with pytest.raises(ValueError, match="0 sections"):
        refvpng_docs.results_section("reproduce c", text)
    with pytest.raises(ValueError, match="2 sections"):
        refvpng_docs.results_section("reproduce a", text)


def test_executed_readme_example_is_the_readmes_first_python_block():
    readme = (ROOT / "README.md").read_text()
    first = re.findall(r"```python\n(.*?)```", readme, flags=re.S)[0]
    assert refvpng_docs.readme_block("A first example") == first
    assert ":readme: A first example" in (DOCS / "examples.md").read_text()


def test_ci_builds_the_docs_and_type_checks_after_the_readme_command():
    ci = (ROOT / ".ci" / "run").read_text()
    readme_cmd = ci.index(".venv/bin/pytest")
    docs_cmd = ci.index("sphinx-build -W --keep-going")
    assert readme_cmd < docs_cmd < ci.index(".venv/bin/mypy")
    readme = (ROOT / "README.md").read_text()
    assert "sphinx-build -W --keep-going -b html docs docs/_build/html" in readme


def test_version_is_defined_once():
    pyproject = (ROOT / "pyproject.toml").read_text()
    project = pyproject.split("[project]\n", 1)[1].split("\n[", 1)[0]
    assert 'dynamic = ["version"]' in project
    assert not re.search(r"^version\s*=", project, flags=re.M)
    assert 'version = { attr = "refvpng.__version__" }' in pyproject
    assert importlib.metadata.version("refvpng") == refvpng.__version__
