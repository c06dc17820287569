"""Small autograd utilities: forward-mode Jacobians batched over a leading data shape."""

from __future__ import annotations

import numpy as np
from autograd import make_jvp


def jacobian_fwd(fun, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Value and Jacobian of ``fun`` at ``x`` by forward mode, one pass per input coordinate.

    Returns ``(fun(x), J)`` with ``J.shape == fun(x).shape + x.shape``. Cheap when ``x`` is
    short and ``fun(x)`` is a large batch (the per-data-point Jacobians of the estimators).
    """
    x = np.asarray(x, dtype=np.float64)
    jvp = make_jvp(fun)(x)
    cols = []
    val = None
    for p in range(x.size):
        e = np.zeros(x.size)
        e[p] = 1.0
        val, col = jvp(e.reshape(x.shape))
        cols.append(np.asarray(col, dtype=np.float64))
    if val is None:
        val = fun(x)
        return np.asarray(val), np.zeros(np.shape(val) + (0,))
    return np.asarray(val, dtype=np.float64), np.stack(cols, axis=-1)
