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


def test_vae_speed_table_divides_the_authors_methods_by_the_authors_adam(tmp_path):
    """Each ratio uses its own baseline; an every-iteration refresh is said, not shown as 0."""
    import json

    def m(sec, wall, every, refresh=0.0, n_refresh=0):
        return {
            "amortized_sec_per_iter": sec,
            "amortized_sec_per_iter_wall": wall,
            "inverse_every": every,
            "refresh_sec": refresh,
            "refreshes_timed": n_refresh,
        }

    doc = {
        "settings": {"batch": 7, "fisher_samples": 7},
        "methods": {
            "adam": m(0.2, 0.25, 10),
            "vpng_tridiag": m(0.5, 0.75, 10, refresh=0.3, n_refresh=2),
            "adam_authors": m(0.4, 0.5, 1),
            "vpng_authors": m(1.4, 2.0, 1, n_refresh=5),
        },
    }
    (tmp_path / "bench_vae.json").write_text(json.dumps(doc))
    rows = {r.split("|")[1].strip(): r for r in _module().section_vae_speed(tmp_path) if r.startswith("| ")}
    assert rows["adam"] == "| adam | 0.2 | 0 | 0.25 | 1.00 | 1.00 |"
    assert rows["vpng_tridiag"] == "| vpng_tridiag | 0.5 | 0.03 | 0.75 | 2.50 | 3.00 |"
    assert rows["adam_authors"] == "| adam_authors | 0.4 | 0 | 0.5 | 1.00 | 1.00 |"
    assert rows["vpng_authors"] == "| vpng_authors | 1.4 | refreshes every iteration | 2 | 3.50 | 4.00 |"
    # a K-FAC method whose refresh no timed round caught says so instead of a 0
    doc["methods"]["vpng_tridiag"]["refresh_sec"] = None
    (tmp_path / "bench_vae.json").write_text(json.dumps(doc))
    rows = {r.split("|")[1].strip(): r for r in _module().section_vae_speed(tmp_path) if r.startswith("| ")}
    assert rows["vpng_tridiag"] == "| vpng_tridiag | 0.5 | not timed (left out) | 0.75 | 2.50 | 3.00 |"
    text = "\n".join(_module().section_vae_speed(tmp_path))
    assert "one z with 7 x'" in text  # the bench's predictive samples, not a fixed "ten"
