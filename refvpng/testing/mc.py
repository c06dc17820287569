"""Monte Carlo assertions: ``|estimate - truth| <= k * SE`` with the SE from the same samples.

The assertion cannot pass vacuously or fail absurdly: NaN or infinite samples, a missing or
non-finite ``truth``, and entries whose samples are all identical (a zero standard error, from
degenerate samples) away from the truth are rejected with a ``ValueError`` that says so, instead
of passing (NaN compares false) or failing "1e19 standard errors away".
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from refvpng._checks import as_array
from refvpng.testing.tolerances import MC_K

__all__ = ["mc_mean_and_se", "assert_mc_close"]


def mc_mean_and_se(samples: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard error over the first axis of ``samples``.

    Parameters
    ----------
    samples : ndarray, shape (S, ...)
        Independent, identically distributed per-sample estimates, all finite.

    Returns
    -------
    mean, se : ndarray, shape (...)
        ``mean = samples.mean(0)`` and ``se = samples.std(0, ddof=1) / sqrt(S)``.

    Raises
    ------
    ValueError
        If there are fewer than 2 samples or a sample is NaN or infinite.
    """
    samples = as_array(samples, "samples", finite=False)
    if samples.ndim == 0 or samples.shape[0] < 2:
        raise ValueError(
            "samples needs at least 2 rows to estimate a standard error, got "
            f"{samples.shape[0] if samples.ndim else 'a scalar'}"
        )
    if not np.all(np.isfinite(samples)):
        bad = int(np.sum(~np.isfinite(samples)))
        raise ValueError(f"samples must be finite: {bad} NaN or infinite entries")
    s = samples.shape[0]
    with np.errstate(over="ignore", invalid="ignore"):
        mean, std = samples.mean(axis=0), samples.std(axis=0, ddof=1)
    if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(std))):
        # squares (or sums) beyond float64: the same statistics of the samples scaled to |x| <= 1
        scale = np.max(np.abs(samples), axis=0)
        scale = np.where(scale > 0, scale, 1.0)
        mean = (samples / scale).mean(axis=0) * scale
        std = (samples / scale).std(axis=0, ddof=1) * scale
    return mean, std / np.sqrt(s)


def assert_mc_close(samples: ArrayLike, truth: ArrayLike, *, k: float = MC_K, atol: float = 1e-12) -> None:
    """Assert every entry of the sample mean lies within ``k`` standard errors of ``truth``.

    Parameters
    ----------
    samples : ndarray, shape (S, ...)
        i.i.d. per-sample estimates (finite).
    truth : float or ndarray, shape (...)
        The exact value (finite, not ``None``).
    k : float, default ``MC_K``
        Number of standard errors allowed.
    atol : float, default 1e-12
        Absolute slack, relative to ``max(1, |truth|)``, for entries whose samples all agree.

    Raises
    ------
    AssertionError
        Naming the worst entry, its estimate, truth, SE and the number of SEs away.
    ValueError
        If ``truth`` is ``None``, NaN or infinite, a sample is NaN or infinite, fewer than two
        samples are given, or an entry has zero standard error (all its samples identical) and
        its mean differs from the truth: the test then cannot measure anything, so it must use a
        deterministic comparison (:func:`refvpng.testing.compare.assert_close`) or draw samples
        that vary.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> assert_mc_close(1.0 + rng.standard_normal(400), 1.0)
    >>> assert_mc_close(np.ones(5), float("nan"))
    Traceback (most recent call last):
    ...
    ValueError: truth must be finite, got nan
    """
    if truth is None:
        raise ValueError("truth must be a number or an array, got None")
    mean, se = mc_mean_and_se(samples)
    truth = np.asarray(truth, dtype=np.float64)
    if not np.all(np.isfinite(truth)):
        raise ValueError(f"truth must be finite, got {truth if truth.ndim == 0 else 'non-finite entries'}")
    if truth.ndim and truth.shape != mean.shape:
        raise ValueError(
            f"truth must be a scalar or have the trailing shape {mean.shape} of samples "
            f"{np.shape(samples)}, got {truth.shape}"
        )
    truth = np.broadcast_to(truth, mean.shape)
    err = np.abs(mean - truth)
    slack = atol * np.maximum(1.0, np.abs(truth))
    degenerate = (se == 0) & (err > slack)
    if np.any(degenerate):
        idx = tuple(int(i) for i in np.argwhere(degenerate)[0])
        raise ValueError(
            f"zero standard error at {idx}: all {np.asarray(samples).shape[0]} samples equal "
            f"{mean[idx]:.6g} but truth is {truth[idx]:.6g}; degenerate samples cannot measure a "
            "Monte Carlo error (use a deterministic comparison, or samples that vary)"
        )
    bound = k * se + slack
    bad = err > bound
    if np.any(bad):
        idx = tuple(int(i) for i in np.unravel_index(np.argmax(err / bound), err.shape))
        raise AssertionError(
            f"Monte Carlo estimate off at {idx}: estimate {mean[idx]:.6g}, truth {truth[idx]:.6g}, "
            f"SE {se[idx]:.3g}, {err[idx] / se[idx]:.2f} SE away (bound k={k}); "
            f"{int(bad.sum())} of {bad.size} entries outside"
        )
