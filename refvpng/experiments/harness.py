r"""One harness for every experiment: settings, cells, cache, resume, output, figure, headline.

An experiment declares

- its **settings**: one frozen dataclass whose defaults are the full run; the command line is
  generated from its fields, ``--quick`` is a named preset of overrides, and every setting is
  recorded in the results;
- its **cells**: the grid, a list of :class:`Cell` (a key and JSON parameters);
- ``run_cell(settings, cell) -> dict``: a pure function of the settings and the cell (its seed is
  a parameter), returning JSON-serialisable numbers;
- ``summarize(settings, results) -> dict``: the table from all cell results;
- ``headline(doc) -> str``: the headline numbers beside the paper's, printed at the end;
- optionally ``plot(doc, path)`` and ``markdown(doc) -> str`` (its RESULTS.md section).

The harness does the rest alike for every experiment (:func:`run_experiment`):

- **output folder**: ``./refvpng-results/`` in the current directory, or ``--out DIR``; only
  ``--publish`` writes into the source tree's ``validation/results/`` (never a quick run). The
  folder is checked for writability and locked (``.refvpng.lock``) before any work starts: a
  second process on the same folder is refused with a message naming the holder;
- **cell cache**: every finished cell is written at once, atomically, to
  ``<out>/.cells/<result>-<fingerprint>/<key>.json`` (the fingerprint is a hash of the settings
  other than the ``grid`` fields, which only choose the cells), so a killed run resumes where it
  stopped, a changed setting never reuses a stale cell, and a grid extended by a method or a
  step size reuses the cells it already has;
- **time**: every cell records its process CPU time and wall time; the results report their sums
  over all cells, so a run resumed across sessions reports its whole cost;
- **parallel cells**: in-process, through joblib on local cores (``--jobs N``), or on a Dask
  distributed cluster (``--scheduler ADDRESS``, joblib's Dask backend); results are identical bit
  for bit, since every cell is a pure function of its parameters;
- **results**: ``<result>.json`` with the settings, the preset, package versions and the machine,
  written atomically; the PNG likewise; progress bars (tqdm) with time estimates.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import sys
import time
import typing
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from refvpng._atomic import atomic_path, remove_stale_temporaries, write_json_atomic
from refvpng._checks import as_int, as_real_scalar
from refvpng.experiments.output import (
    DEFAULT_OUT,
    OutputLockedError,
    machine_info,
    output_dir,
    output_lock,
)

__all__ = [
    "Cell",
    "Experiment",
    "OutputLockedError",
    "build_parser",
    "settings_from_args",
    "output_dir",
    "output_lock",
    "machine_info",
    "run_experiment",
    "declare",
    "results_section",
    "fmt",
    "main",
]


class Cell(NamedTuple):
    """One cell of an experiment's grid.

    Attributes
    ----------
    key : str
        Unique within the experiment; letters, digits and ``-_.=`` only (it names a file).
    params : dict
        JSON-serialisable parameters of the cell (method, step size, seed, ...).
    """

    key: str
    params: dict


@dataclasses.dataclass(frozen=True)
class Experiment:
    """What an experiment module declares; see the module docstring."""

    name: str
    result: str
    settings: type[Any]
    cells: Callable[[Any], Sequence[Cell]]
    run_cell: Callable[[Any, Cell], dict]
    summarize: Callable[[Any, dict], dict]
    headline: Callable[[dict], str]
    presets: Mapping[str, Mapping[str, Any]] = dataclasses.field(default_factory=dict)
    plot: Callable[[dict, Path], None] | None = None
    figure: str | None = None
    description: str = ""
    markdown: Callable[[dict], list[str]] | None = None
    title: str = ""


def declare(
    module: str, *, name: str, result: str, figure: str | None, title: str, description: str
) -> tuple[Experiment, Callable[..., dict], Callable[[Sequence[str] | None], int]]:
    """Declare the experiment defined in ``module`` by the harness's naming convention.

    The module defines ``Settings`` (the frozen dataclass), ``QUICK`` (the ``--quick`` preset),
    ``cells``, ``run_cell``, ``summarize``, ``headline``, ``plot`` and ``markdown``; this returns
    ``(EXPERIMENT, run_experiment, main)`` for it.
    """
    g = sys.modules[module].__dict__
    exp = Experiment(
        name=name, result=result, settings=g["Settings"], cells=g["cells"], run_cell=g["run_cell"],
        summarize=g["summarize"], headline=g["headline"], presets={"quick": g["QUICK"]},
        plot=g["plot"], figure=figure, description=description, markdown=g["markdown"], title=title,
    )  # fmt: skip

    def run_experiment_(settings: Any = None, **kwargs: Any) -> dict:
        return run_experiment(exp, settings, **kwargs)

    def main_(argv: Sequence[str] | None = None) -> int:
        return main(exp, argv)

    run_experiment_.__doc__ = f"Run {name!r} through the harness (see :func:`run_experiment`)."
    main_.__doc__ = f"``refvpng reproduce {name} [--quick] [--out DIR | --publish] ...`` (see ``--help``)."
    for f in (run_experiment_, main_):
        f.__module__ = module
        f.__name__ = f.__qualname__ = f.__name__.rstrip("_")
    return exp, run_experiment_, main_


# ----------------------------------------------------------------------------- settings and CLI
def _field_types(cls) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _scalar_type(tp):
    origin = typing.get_origin(tp)
    if origin is tuple:
        return typing.get_args(tp)[0], True
    return tp, False


def build_parser(exp: Experiment) -> argparse.ArgumentParser:
    """The ``refvpng reproduce NAME`` parser, generated from the settings dataclass.

    Every settings field becomes ``--field-name`` (tuples take several values, booleans
    ``--x/--no-x``); the harness adds ``--quick`` (and other presets), ``--out``, ``--publish``,
    ``--jobs``, ``--scheduler``, ``--no-plot`` and ``--no-progress``.
    """
    p = argparse.ArgumentParser(
        prog=f"refvpng reproduce {exp.name}",
        description=exp.description,
        argument_default=argparse.SUPPRESS,
    )
    hints = _field_types(exp.settings)
    g = p.add_argument_group("settings (defaults: the full run)")
    for f in dataclasses.fields(exp.settings):
        tp, many = _scalar_type(hints[f.name])
        flag = "--" + f.name.replace("_", "-")
        helptext = f.metadata.get("help", "") + f" (default {f.default!r})"
        if tp is bool:
            g.add_argument(flag, action=argparse.BooleanOptionalAction, help=helptext)
        else:
            g.add_argument(flag, type=tp, nargs="+" if many else None, help=helptext, dest=f.name)
    for name, over in exp.presets.items():
        p.add_argument(f"--{name}", action="store_true", help=f"preset: {dict(over)}")
    p.add_argument("--out", metavar="DIR", help=f"results folder (default ./{DEFAULT_OUT})")
    p.add_argument(
        "--publish",
        action="store_true",
        help="write into the source tree's validation/results/ (full runs only)",
    )
    p.add_argument("--jobs", type=int, help="cells in parallel on this machine (joblib)")
    p.add_argument("--scheduler", metavar="ADDRESS", help="run the cells on this Dask scheduler")
    p.add_argument("--no-plot", action="store_true", help="skip the figure")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def settings_from_args(exp: Experiment, ns: argparse.Namespace) -> tuple[Any, str | None]:
    """Settings from parsed arguments: dataclass defaults, then the preset, then explicit flags."""
    values: dict[str, Any] = {}
    preset = None
    for name, over in exp.presets.items():
        if getattr(ns, name, False):
            if preset is not None:
                raise ValueError(f"choose one preset, got --{preset} and --{name}")
            preset = name
            values.update(over)
    names = {f.name for f in dataclasses.fields(exp.settings)}
    hints = _field_types(exp.settings)
    for k, v in vars(ns).items():
        if k in names:
            values[k] = tuple(v) if _scalar_type(hints[k])[1] else v
    return exp.settings(**values), preset


def _fingerprint(settings) -> str:
    """Hash of the settings a cell's result depends on: all but the ``grid`` fields.

    A field with ``metadata={"grid": True}`` only selects which cells exist (its value is part
    of each cell's parameters), so extending a grid reuses the cells already run.
    """
    keep = {
        f.name: getattr(settings, f.name)
        for f in dataclasses.fields(settings)
        if not f.metadata.get("grid", False)
    }
    text = json.dumps(keep, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


# ----------------------------------------------------------------------------- running cells
def _timed_cell(module: str, settings, cell: Cell) -> dict:
    """Run one cell in this process (a joblib/Dask worker or the client); record its cost."""
    import importlib

    exp = importlib.import_module(module).EXPERIMENT
    c0, w0 = time.process_time(), time.perf_counter()
    out = exp.run_cell(settings, cell)
    return {
        "key": cell.key,
        "result": out,
        "cpu_seconds": time.process_time() - c0,
        "wall_seconds": time.perf_counter() - w0,
    }


def _progress(total: int, desc: str, disable: bool):
    if disable:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(total=total, desc=desc, leave=False)


def _execute(module, settings, todo, jobs, scheduler):
    """Yield finished cell records as they complete."""
    if scheduler is None and jobs <= 1:
        for cell in todo:
            yield _timed_cell(module, settings, cell)
        return
    from joblib import Parallel, delayed, parallel_config

    calls = (delayed(_timed_cell)(module, settings, c) for c in todo)
    if scheduler is not None:
        try:
            from distributed import Client
        except ImportError:
            raise ImportError("--scheduler needs dask.distributed: pip install 'refvpng[dask]'") from None
        with Client(scheduler) as client, parallel_config(backend="dask"):
            n = max(1, sum(client.nthreads().values()))
            yield from Parallel(n_jobs=n, return_as="generator_unordered")(calls)
        return
    with parallel_config(backend="loky"):
        yield from Parallel(n_jobs=jobs, return_as="generator_unordered")(calls)


def run_experiment(
    exp: Experiment,
    settings: Any = None,
    *,
    out: str | os.PathLike[str] | None = None,
    publish: bool = False,
    preset: str | None = None,
    jobs: int = 1,
    scheduler: str | None = None,
    plot: bool = True,
    show_progress: bool = True,
) -> dict:
    """Run (or resume) every cell of ``exp`` and write its results; return the results document.

    Parameters
    ----------
    exp : Experiment
    settings : dataclass instance, optional
        Default: ``exp.settings()`` with the preset applied.
    out, publish, preset
        See :func:`output_dir`.
    jobs : int, default 1
        Cells in parallel through joblib.
    scheduler : str, optional
        Address of a Dask scheduler to run the cells on.
    plot, show_progress : bool

    Returns
    -------
    dict
        The document written to ``<out>/<exp.result>.json``.
    """
    if settings is None:
        settings = exp.settings(**dict(exp.presets.get(preset, {}))) if preset else exp.settings()
    if not isinstance(settings, exp.settings):
        raise TypeError(f"settings must be a {exp.settings.__name__}, got {type(settings).__name__}")
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs must be an integer >= 1, got {jobs!r}")
    folder = output_dir(out, publish=publish, preset=preset)
    module = sys.modules[exp.run_cell.__module__].__name__
    with output_lock(folder):
        cache = folder / ".cells" / f"{exp.result}-{_fingerprint(settings)}"
        cache.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(cache)
        cells = list(exp.cells(settings))
        keys = [c.key for c in cells]
        if len(set(keys)) != len(keys):
            raise ValueError(f"experiment {exp.name!r} has duplicate cell keys")
        done = {}
        for c in cells:
            p = cache / f"{c.key}.json"
            if p.exists():
                done[c.key] = json.loads(p.read_text())
        todo = [c for c in cells if c.key not in done]
        bar = _progress(len(cells), exp.name, not show_progress)
        if bar is not None:
            bar.update(len(done))
        try:
            for rec in _execute(module, settings, todo, jobs, scheduler):
                write_json_atomic(cache / f"{rec['key']}.json", rec)
                done[rec["key"]] = json.loads(json.dumps(rec, default=_plain))  # as a resume reads it
                if bar is not None:
                    bar.update(1)
        finally:
            if bar is not None:
                bar.close()
        results = {k: done[k]["result"] for k in keys}
        doc = {
            **exp.summarize(settings, results),
            "experiment": exp.name,
            "settings": dataclasses.asdict(settings),
            "preset": preset,
            "cells": len(cells),
            "seconds": sum(done[k]["cpu_seconds"] for k in keys),
            "wall_seconds": sum(done[k]["wall_seconds"] for k in keys),
            "machine": machine_info(),
        }
        doc = json.loads(json.dumps(doc, default=_plain))
        write_json_atomic(folder / f"{exp.result}.json", doc)
        if plot and exp.plot is not None and exp.figure is not None:
            with atomic_path(folder / exp.figure) as tmp:
                exp.plot(doc, tmp)
    return doc


def fmt(v: float | str | None, nd: int = 3) -> str:
    """A number for a results table: ``nd`` decimals, ``—`` for a missing value."""
    if v is None:
        return "—"
    if isinstance(v, str):
        return v
    nd = as_int(nd, "nd", minimum=0)
    return f"{as_real_scalar(v, 'v'):.{nd}f}"


def results_section(exp: Experiment, folder: str | os.PathLike[str]) -> list[str]:
    """The RESULTS.md section of ``exp`` from ``<folder>/<exp.result>.json`` (or how to make it)."""
    head = [f"## {exp.title} (`refvpng reproduce {exp.name}`)", ""]
    p = Path(folder) / f"{exp.result}.json"
    if not p.exists() or exp.markdown is None:
        return head + [f"*Not run yet.* Produce it with `refvpng reproduce {exp.name} --publish`.", ""]
    doc = json.loads(p.read_text())
    if "carried_over_from" in doc:
        cost = (
            f"These numbers were computed by the code of commit {doc['carried_over_from']} and carried "
            "over to the current layout by `validation/migrate_results.py` (method names only, no "
            f"number changed); `refvpng reproduce {exp.name} --publish` replaces them."
        )
    else:
        cost = (
            f"Run cost: {doc['seconds']:.0f} s of CPU time over {doc['cells']} cells (summed over resumes)."
        )
    figure = [f"![{exp.title}](results/{exp.figure})", ""] if exp.figure else []
    return head + exp.markdown(doc) + ["", cost, ""] + figure


def _plain(o):
    from refvpng._atomic import json_default

    return json_default(o)


def main(exp: Experiment, argv: Sequence[str] | None = None) -> int:
    """Command-line entry point of one experiment (``refvpng reproduce NAME ...``)."""
    parser = build_parser(exp)
    ns = parser.parse_args(argv)
    try:
        settings, preset = settings_from_args(exp, ns)
        doc = run_experiment(
            exp,
            settings,
            out=getattr(ns, "out", None),
            publish=getattr(ns, "publish", False),
            preset=preset,
            jobs=getattr(ns, "jobs", 1),
            scheduler=getattr(ns, "scheduler", None),
            plot=not getattr(ns, "no_plot", False),
            show_progress=not getattr(ns, "no_progress", False),
        )
    except (ValueError, TypeError, OSError, OutputLockedError) as exc:
        print(f"refvpng reproduce {exp.name}: {exc}", file=sys.stderr)
        return 2
    folder = output_dir(getattr(ns, "out", None), publish=getattr(ns, "publish", False), preset=preset)
    print(exp.headline(doc))
    where = folder / (exp.result + ".json")
    print(f"results: {where} ({doc['seconds']:.1f} s CPU over {doc['cells']} cells)")
    return 0
