"""Thread limits for BLAS and numba inside a block, restored on exit."""

from __future__ import annotations

import contextlib

import numba

__all__ = ["limit_threads"]


@contextlib.contextmanager
def limit_threads(n: int | None):
    """Limit BLAS (via threadpoolctl, if installed) and numba threads inside the block.

    Both are restored on exit. ``None`` leaves them as they are.
    """
    if n is None:
        yield
        return
    old = numba.get_num_threads()
    numba.set_num_threads(max(1, min(n, numba.config.NUMBA_NUM_THREADS)))  # type: ignore[attr-defined]
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - optional
        limiter = contextlib.nullcontext()
    else:
        limiter = threadpool_limits(n)
    try:
        with limiter:
            yield
    finally:
        numba.set_num_threads(old)
