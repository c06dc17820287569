"""validation/RESULTS.md is exactly what validation/make_results.py renders from the committed JSON."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _module():
    spec = importlib.util.spec_from_file_location("make_results", ROOT / "validation" / "make_results.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_results_md_is_regenerated_not_typed():
    mod = _module()
    expected = mod.render(ROOT / "validation" / "results")
    assert (ROOT / "validation" / "RESULTS.md").read_text() == expected, (
        "RESULTS.md is stale or hand-edited: run `python validation/make_results.py`"
    )


def test_missing_results_say_how_to_produce_them(tmp_path):
    text = _module().render(tmp_path, notes=tmp_path / "none.md")
    assert text.count("*Not run yet.*") >= 5
