"""validation/migrate_results.py renames the 0.1.0 method names and changes no number."""

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _module():
    spec = importlib.util.spec_from_file_location("migrate", ROOT / "validation" / "migrate_results.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_renames_methods_and_keeps_every_number():
    old = {
        "settings": {"methods": ["adam", "q_ng"], "lrs": [0.003, 0.01], "budget": 100.0},
        "adam": {"lr": 0.003, "curve": [[0.0, -500.5, -501.25]]},
        "q_ng": {"lr": 0.01, "final_test_elbo": -113.8125, "grid": [{"lr": 0.003}]},
    }
    new = _module().migrate(json.loads(json.dumps(old)), "vae", "abc1234")
    assert new["settings"]["methods"] == ["adam", "q_natural"] and "q_ng" not in new
    assert new["q_natural"] == old["q_ng"] and new["adam"] == old["adam"]
    assert new["cells"] == 4 and new["carried_over_from"] == "abc1234" and new["experiment"] == "vae"
    with pytest.raises(ValueError, match="already"):
        _module().migrate(new, "vae", "abc1234")
