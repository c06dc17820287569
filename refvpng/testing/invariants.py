"""Invariants every curvature matrix and structured operator must satisfy, as assertions."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike

from refvpng.testing.tolerances import EXACT

if TYPE_CHECKING:
    from refvpng.curvature.operator import Curvature

__all__ = ["assert_symmetric_psd", "assert_operator_matches_dense", "assert_trees_bit_equal"]


def assert_symmetric_psd(m: ArrayLike, *, rtol: float = 1e-10) -> None:
    """Assert ``m`` is exactly symmetric and has no eigenvalue below ``-rtol * max|eig|``."""
    m = np.asarray(m, dtype=np.float64)
    assert m.ndim == 2 and m.shape[0] == m.shape[1], f"not square: {m.shape}"
    asym = np.max(np.abs(m - m.T)) if m.size else 0.0
    assert asym <= EXACT * max(1.0, np.max(np.abs(m))), f"not symmetric: max |m - m^T| = {asym:.3g}"
    ev = np.linalg.eigvalsh(m)
    assert ev[0] >= -rtol * max(1.0, abs(ev[-1])), f"not PSD: smallest eigenvalue {ev[0]:.3g}"


def assert_operator_matches_dense(
    op: Curvature, *, rtol: float = EXACT, n_probe: int = 3, seed: int = 0
) -> None:
    """Assert ``op.matvec(v) == op.to_dense() @ v`` for random probes ``v`` (relative ``rtol``)."""
    if not (callable(getattr(op, "to_dense", None)) and callable(getattr(op, "matvec", None))):
        raise TypeError(f"op must be an operator with matvec and to_dense, got {type(op).__name__}")
    dense = np.asarray(op.to_dense())
    rng = np.random.default_rng(seed)
    for _ in range(n_probe):
        v = rng.standard_normal(dense.shape[1])
        ref = dense @ v
        got = np.asarray(op.matvec(v))
        err = np.max(np.abs(got - ref)) / max(1.0, np.max(np.abs(ref)))
        assert err <= rtol, f"matvec differs from to_dense() @ v by {err:.3g} (relative)"


def _leaves(tree) -> list:
    if isinstance(tree, tuple):  # NamedTuple states and plain tuples of them
        out = []
        for t in tree:
            out.extend(_leaves(t))
        return out
    return [tree]


def assert_trees_bit_equal(a: Any, b: Any) -> None:
    """Assert two optimiser states (nested (Named)tuples of arrays and scalars) are bit-identical.

    Same tree types, same leaf types, same dtypes, and equal values (NaN equal to NaN): the check
    behind "a resumed run reproduces the uninterrupted one bit for bit".
    """
    assert type(a) is type(b), f"tree types differ: {type(a).__name__} vs {type(b).__name__}"
    la, lb = _leaves(a), _leaves(b)
    assert len(la) == len(lb), f"trees have {len(la)} and {len(lb)} leaves"
    for x, y in zip(la, lb, strict=True):
        assert type(x) is type(y), f"leaf types differ: {type(x).__name__} vs {type(y).__name__}"
        if isinstance(x, np.ndarray):
            assert x.dtype == y.dtype and np.array_equal(x, y, equal_nan=x.dtype.kind in "fc")
        elif isinstance(x, float) and np.isnan(x):
            assert np.isnan(y)
        else:
            assert x == y
