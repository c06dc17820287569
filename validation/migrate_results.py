"""Carry a results file written by refvpng 0.1.0 over to the current layout, renaming, not recomputing.

refvpng 0.1.0 named the q-natural method ``q_ng`` (Figure 2, pPCA) or ``ng`` (Table 1) and did not
record the harness fields (``experiment``, ``preset``, ``cells``). This script renames the method
and adds those fields with ``"carried_over_from"`` naming the commit that computed the numbers; it
changes no number. A carried-over file is replaced by the next ``refvpng reproduce NAME --publish``.

Usage: ``python validation/migrate_results.py validation/results/vae_figure2.json --commit SHA``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from refvpng._atomic import write_json_atomic

OLD_NAMES = {"q_ng": "q_natural", "ng": "q_natural"}
EXPERIMENT_OF = {"vae_figure2.json": "vae", "blr_table1.json": "blr", "bench_vae.json": None}


def _key(k: str) -> str:
    return OLD_NAMES.get(k, k.replace("_q_ng_", "_q_natural_"))


def _rename(x):
    if isinstance(x, dict):
        return {_key(k): _rename(v) for k, v in x.items()}
    if isinstance(x, list):
        return [OLD_NAMES.get(v, v) if isinstance(v, str) else _rename(v) for v in x]
    return OLD_NAMES.get(x, x) if isinstance(x, str) and x in OLD_NAMES else x


def migrate(doc: dict, experiment: str | None, commit: str) -> dict:
    """The 0.1.0 document ``doc`` in the current layout (method names, harness fields)."""
    if "experiment" in doc or "carried_over_from" in doc:
        raise ValueError("already in the current layout")
    out = _rename(doc)
    if experiment is None:  # a benchmark: names only
        return {**out, "carried_over_from": commit}
    s = out["settings"]
    cells = len(s["methods"]) * len(s["lrs"]) if experiment == "vae" else None
    out.update({"experiment": experiment, "preset": None, "cells": cells, "carried_over_from": commit})
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("path", type=Path)
    p.add_argument("--commit", required=True, help="the commit whose code computed the numbers")
    a = p.parse_args(argv)
    doc = json.loads(a.path.read_text())
    write_json_atomic(a.path, migrate(doc, EXPERIMENT_OF[a.path.name], a.commit))
    print(f"migrated {a.path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
