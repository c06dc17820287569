"""Fuzz the public API: one bad argument at a time, never a silent NaN/inf or an unclear error.

Every public function, class and method reachable from the ``__all__`` of every public module
has an entry in :mod:`tests.fuzz.registry` (one valid call). Hypothesis picks an argument and one
of its bad variants (:func:`tests.fuzz.harness.variants`: NaN, inf, +-1e300, wrong shape or ndim,
empty / S = 0 / M = 0 axes, complex, bool, object, None, a string, float32, a RandomState or the
``np.random`` module for an rng, zero and negative sizes) and :func:`tests.fuzz.harness.judge`
requires finite float64 output or a ``ValueError``/``TypeError`` naming the argument (a
``FloatingPointError`` naming the function for finite input whose result overflows).

The default run tries a few examples per entry; ``-m slow`` runs the same test at a large budget.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import refvpng
from tests.fuzz import harness
from tests.fuzz.harness import Entry, judge, variants
from tests.fuzz.registry import REGISTRY


def _public_modules():
    for m in pkgutil.walk_packages(refvpng.__path__, "refvpng."):
        if any(part.startswith("_") for part in m.name.split(".")[1:]) or ".conformance.fixtures" in m.name:
            continue
        yield importlib.import_module(m.name)


def public_names() -> dict[str, object]:
    """Every public function, class and public method, keyed ``module.qualname``."""
    out = {}
    for mod in _public_modules():
        for attr in getattr(mod, "__all__", ()):
            obj = getattr(mod, attr, None)
            if obj is None or inspect.ismodule(obj) or not callable(obj):
                continue
            if getattr(obj, "__module__", None) != mod.__name__:
                continue  # a re-export: registered under its home module
            key = f"{mod.__name__}.{attr}"
            out[key] = obj
            if inspect.isclass(obj):
                for klass in obj.__mro__:
                    if not klass.__module__.startswith("refvpng"):
                        continue
                    for name, member in vars(klass).items():
                        if name.startswith("_") or isinstance(member, property):
                            continue
                        if callable(member) or isinstance(member, (staticmethod, classmethod)):
                            out.setdefault(f"{key}.{name}", getattr(obj, name))
    return out


PUBLIC = public_names()
FUZZED = sorted(k for k, e in REGISTRY.items() if e.skip is None and k in PUBLIC)


def _target(key: str, entry: Entry):
    return entry.call if entry.call is not None else PUBLIC[key]


def run_variant(key: str, entry: Entry, arg: str, label: str) -> str | None:
    """Call ``key`` validly except ``arg`` replaced by its variant ``label``; describe a failure."""
    kwargs = entry.args()
    bad = dict(variants(kwargs[arg]))[label]
    kwargs[arg] = bad
    names = (arg, *entry.aliases.get(arg, ()))
    if isinstance(bad, (str, Path)):
        names += (str(bad),)
    return judge(
        _target(key, entry),
        kwargs,
        arg,
        names,
        key.rsplit(".", 1)[-1],
        raises=entry.raises,
        nan_ok=entry.nan_result is not None,
    )


def missing_entries(public, registry) -> list[str]:
    """Public names without a registry entry."""
    return sorted(set(public) - set(registry))


def test_completeness_check_sees_a_new_function():
    assert missing_entries({**PUBLIC, "refvpng.elbo.new_estimator": len}, REGISTRY) == [
        "refvpng.elbo.new_estimator"
    ]


def test_registry_is_complete():
    missing = missing_entries(PUBLIC, REGISTRY)
    assert not missing, (
        f"public names without a fuzz registry entry (add them to tests/fuzz/registry.py): {missing}"
    )
    stale = sorted(set(REGISTRY) - set(PUBLIC))
    assert not stale, f"registry entries for names that are no longer public: {stale}"


def test_not_fuzzed_entries_state_a_reason():
    for key, entry in REGISTRY.items():
        assert entry.skip is None or len(entry.skip) > 15, key


@pytest.mark.parametrize("key", FUZZED)
def test_valid_call_succeeds(key):
    """The registry's own call is valid: finite float64 output (so every failure is the variant's)."""
    entry = REGISTRY[key]
    problem = judge(_target(key, entry), entry.args(), "", ("<valid call>",), key.rsplit(".", 1)[-1])
    assert problem is None, f"{key}: the registry's valid call fails: {problem}"


def _fuzz(key, data):
    entry = REGISTRY[key]
    args = [a for a in entry.args() if a not in entry.fixed]
    if not args:
        return
    arg = data.draw(st.sampled_from(args), label="argument")
    labels = [label for label, _ in variants(entry.args()[arg])]
    label = data.draw(st.sampled_from(labels), label="variant")
    problem = run_variant(key, entry, arg, label)
    assert problem is None, f"{key}({arg}={label}): {problem}"


_COMMON = dict(deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))


@pytest.mark.parametrize("key", FUZZED)
@settings(max_examples=15, **_COMMON)
@given(data=st.data())
def test_fuzz(key, data):
    _fuzz(key, data)


@pytest.mark.slow
@pytest.mark.parametrize("key", FUZZED)
@settings(max_examples=300, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_fuzz_slow(key, data):
    _fuzz(key, data)


# ---------------------------------------------------------------- the oracle can fail


def _returns_nan(x):
    x = np.asarray(x, dtype=np.float64)
    return np.full_like(x, np.nan)


def _unclear_error(x):
    raise ValueError("B contains NaN")


def _wrong_type(x):
    raise ZeroDivisionError("division by zero")


def _float32(x):
    return np.asarray(x, dtype=np.float32)


def _good(x):
    x = np.asarray(x, dtype=np.float64)
    if not np.all(np.isfinite(x)):
        raise ValueError("x contains NaN or infinite values")
    return 2 * x


@pytest.mark.parametrize(
    "func,expected",
    [
        (_returns_nan, "silent"),
        (_unclear_error, "unclear"),
        (_wrong_type, "ZeroDivisionError"),
        (_float32, "float32"),
    ],
)
def test_oracle_catches_a_broken_function(func, expected):
    entry = Entry(lambda: dict(x=np.ones(3)), call=func)
    problem = run_variant("tests.broken", entry, "x", "nan" if func is not _float32 else "float32")
    assert problem is not None and expected in problem


def test_oracle_accepts_a_validating_function():
    entry = Entry(lambda: dict(x=np.ones(3)), call=_good)
    assert run_variant("tests.good", entry, "x", "nan") is None


def test_oracle_checks_namedtuple_leaves():
    from refvpng.curvature.kfac.linalg import FactorEig

    assert harness.bad_leaves(FactorEig(np.ones(2), np.eye(2))) == []
    assert harness.bad_leaves((1.0, FactorEig(np.array([1.0, np.inf]), np.eye(2)))) == [
        "result[1].values has NaN/inf"
    ]


def test_calls_run_in_a_scratch_folder(tmp_path, monkeypatch):
    """A bad relative path ("bogus") written by a fuzzed call never lands in the working directory."""
    monkeypatch.chdir(tmp_path)

    def writer(path):
        Path(path).mkdir()
        return 0.5

    name = f"bogus-{tmp_path.name}"
    assert judge(writer, {"path": name}, "path", ("path",), "writer") is None
    assert not (tmp_path / name).exists() and (harness._scratch() / name).is_dir()
