"""Invariants every curvature matrix and structured operator must satisfy, as assertions."""

from __future__ import annotations

import numpy as np

from refvpng.testing.tolerances import EXACT

__all__ = ["assert_symmetric_psd", "assert_operator_matches_dense"]


def assert_symmetric_psd(m, *, rtol: float = 1e-10) -> None:
    """Assert ``m`` is exactly symmetric and has no eigenvalue below ``-rtol * max|eig|``."""
    m = np.asarray(m, dtype=np.float64)
    assert m.ndim == 2 and m.shape[0] == m.shape[1], f"not square: {m.shape}"
    asym = np.max(np.abs(m - m.T)) if m.size else 0.0
    assert asym <= EXACT * max(1.0, np.max(np.abs(m))), f"not symmetric: max |m - m^T| = {asym:.3g}"
    ev = np.linalg.eigvalsh(m)
    assert ev[0] >= -rtol * max(1.0, abs(ev[-1])), f"not PSD: smallest eigenvalue {ev[0]:.3g}"


def assert_operator_matches_dense(op, *, rtol: float = EXACT, n_probe: int = 3, seed: int = 0) -> None:
    """Assert ``op.matvec(v) == op.to_dense() @ v`` for random probes ``v`` (relative ``rtol``)."""
    dense = np.asarray(op.to_dense())
    rng = np.random.default_rng(seed)
    for _ in range(n_probe):
        v = rng.standard_normal(dense.shape[1])
        ref = dense @ v
        got = np.asarray(op.matvec(v))
        err = np.max(np.abs(got - ref)) / max(1.0, np.max(np.abs(ref)))
        assert err <= rtol, f"matvec differs from to_dense() @ v by {err:.3g} (relative)"
