"""Monte Carlo assertions: ``|estimate - truth| <= k * SE`` with the SE from the same samples."""

from __future__ import annotations

import numpy as np

from refvpng.testing.tolerances import MC_K

__all__ = ["mc_mean_and_se", "assert_mc_close"]


def mc_mean_and_se(samples) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard error over the first axis of ``samples``.

    Parameters
    ----------
    samples : ndarray, shape (S, ...)
        Independent, identically distributed per-sample estimates.

    Returns
    -------
    mean, se : ndarray, shape (...)
        ``mean = samples.mean(0)`` and ``se = samples.std(0, ddof=1) / sqrt(S)``.
    """
    samples = np.asarray(samples, dtype=np.float64)
    if samples.shape[0] < 2:
        raise ValueError(
            f"samples needs at least 2 rows to estimate a standard error, got {samples.shape[0]}"
        )
    s = samples.shape[0]
    return samples.mean(axis=0), samples.std(axis=0, ddof=1) / np.sqrt(s)


def assert_mc_close(samples, truth, *, k: float = MC_K, atol: float = 1e-12) -> None:
    """Assert every entry of the sample mean lies within ``k`` standard errors of ``truth``.

    ``atol`` absorbs entries whose per-sample values are all identical (zero standard error).

    Raises
    ------
    AssertionError
        Naming the worst entry, its estimate, truth, SE and the number of SEs away.
    """
    mean, se = mc_mean_and_se(samples)
    truth = np.asarray(truth, dtype=np.float64)
    if truth.ndim and truth.shape != mean.shape:
        raise ValueError(f"truth must be a scalar or have shape {mean.shape}, got {truth.shape}")
    truth = np.broadcast_to(truth, mean.shape)
    err = np.abs(mean - truth)
    bound = k * se + atol
    bad = err > bound
    if np.any(bad):
        idx = np.unravel_index(np.argmax(err / bound), err.shape)
        raise AssertionError(
            f"Monte Carlo estimate off at {idx}: estimate {mean[idx]:.6g}, truth {truth[idx]:.6g}, "
            f"SE {se[idx]:.3g}, {err[idx] / max(se[idx], 1e-300):.2f} SE away (bound k={k}); "
            f"{int(bad.sum())} of {bad.size} entries outside"
        )
