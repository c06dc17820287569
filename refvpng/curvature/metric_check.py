r"""Singular metrics: is a Fisher usable as a metric over these parameter blocks, and if not, why.

The marginal Fisher :math:`F_{\mathrm{marg}}(\theta)` of a latent-variable model
(:func:`refvpng.curvature.marginal_is.marginal_fisher_is`) does not see the encoder parameters
:math:`\phi`: :math:`p(x; \theta) = \int p(x \mid z;\theta)p(z)\,dz` does not depend on them
(the proposal cancels, :math:`\int p(x,z)\,\frac{q}{q}\,dz`). As a metric over
:math:`(\phi, \theta)` (:func:`metric_over_phi_theta`) it therefore has zero rows and columns
for :math:`\phi` and is singular; :func:`check_metric` detects this (and rank deficiency
inside a block, such as pPCA's rotations :math:`W \to WR`, or across blocks, such as the VP
Fisher of the linear VAE) and says which parameters and why. The q-Fisher (Eq 2 of Tang &
Ranganath) and the variational predictive Fisher :math:`F_r` (Eq 16) do see :math:`\phi`;
:mod:`refvpng.optim.two_step` uses the q-Fisher for :math:`\phi` and the decoder Fisher for
:math:`\theta`.

References
----------
Project note ``papers/000``: joint versus marginal Fisher for latent-variable models, the
singularity of the approximate posterior's parameters, a two-step natural gradient.
S. Tang and R. Ranganath, "The Variational Predictive Natural Gradient", ICML 2019 (Eq 2, Eq 16).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from refvpng._checks import as_array, as_positive_scalar
from refvpng.models.latent import LatentModel, check_model

__all__ = [
    "phi_theta_blocks",
    "metric_over_phi_theta",
    "check_metric",
    "BlockReport",
    "MetricReport",
    "SingularMetricError",
]


def phi_theta_blocks(model: LatentModel) -> dict[str, slice]:
    r"""Return the blocks ``{"phi": encoder, "theta": decoder}`` of the packed :math:`\eta`.

    Examples
    --------
    >>> from refvpng.models import ppca
    >>> phi_theta_blocks(ppca.make_model(ppca.PPCASpec(3, 1)))
    {'phi': slice(0, 5, None), 'theta': slice(5, 12, None)}
    """
    check_model(model)
    return {"phi": slice(0, model.n_lambda), "theta": slice(model.n_lambda, model.n_params)}


def metric_over_phi_theta(model: LatentModel, fisher_theta: ArrayLike) -> np.ndarray:
    r"""Embed the marginal Fisher in a metric over :math:`(\phi, \theta)`, zero for :math:`\phi`.

    :math:`p(x; \theta) = \int p(x \mid z;\theta)p(z)\,dz` does not depend on the encoder
    parameters :math:`\phi` (the proposal :math:`q(z \mid x;\phi)` cancels in
    :math:`\int p(x,z)\,\frac{q}{q}\,dz`), so :math:`\nabla_\phi\log p(x) = 0` and

    .. math::
        F_{\mathrm{marg}}(\phi, \theta) = \begin{pmatrix} 0 & 0 \\ 0 &
        F_{\mathrm{marg}}(\theta) \end{pmatrix},

    singular whatever :math:`F_{\mathrm{marg}}(\theta)` is: it cannot precondition a gradient
    in :math:`\phi` (:func:`check_metric` says so).

    Parameters
    ----------
    model : LatentModel
    fisher_theta : array_like, shape (n_theta, n_theta)
        The marginal Fisher in :math:`\theta` (e.g.
        :func:`refvpng.curvature.marginal_is.marginal_fisher_is`, or
        :func:`refvpng.models.ppca.marginal_fisher_closed` times ``n``).

    Returns
    -------
    ndarray, shape (P, P)
        Indexed by the packed :math:`\eta = (\phi, \theta)`.

    Raises
    ------
    ValueError
        If ``fisher_theta`` has the wrong shape, is not finite or not symmetric.

    Examples
    --------
    >>> from refvpng.models import ppca
    >>> model = ppca.make_model(ppca.PPCASpec(2, 1))
    >>> F = metric_over_phi_theta(model, np.eye(model.n_theta))
    >>> F.shape, float(np.abs(F[: model.n_lambda]).max())
    ((9, 9), 0.0)
    """
    check_model(model)
    f = as_array(fisher_theta, "fisher_theta", shape=(model.n_theta, model.n_theta))
    if np.max(np.abs(f - f.T)) > 1e-10 * max(float(np.max(np.abs(f))), np.finfo(float).tiny):
        raise ValueError("fisher_theta must be symmetric")
    out = np.zeros((model.n_params, model.n_params))
    out[model.n_lambda :, model.n_lambda :] = f
    return out


class BlockReport(NamedTuple):
    """Diagnosis of one parameter block of a metric (see :func:`check_metric`).

    Attributes
    ----------
    name : str
        Block name.
    index : ndarray of int
        Positions of the block in the metric.
    rank : int
        Numerical rank of the block's diagonal sub-matrix.
    eigmin : float
        Its smallest eigenvalue.
    zero : ndarray of int
        Positions *within the block* whose rows and columns of the **full** metric are zero.
    singular : bool
        ``rank < len(index)``.
    message : str
        Empty when the block is non-singular.
    """

    name: str
    index: np.ndarray  # type: ignore[assignment]  # the field shadows tuple.index
    rank: int
    eigmin: float
    zero: np.ndarray
    singular: bool
    message: str


class MetricReport(NamedTuple):
    """Result of :func:`check_metric`.

    Attributes
    ----------
    blocks : tuple of BlockReport
        One per block, in the order given.
    rank : int
        Numerical rank of the full metric.
    size : int
        Its dimension ``P``.
    singular : bool
        Whether a block, or the full metric, is singular.
    messages : tuple of str
        One clear sentence per problem found.
    """

    blocks: tuple
    rank: int
    size: int
    singular: bool
    messages: tuple


class SingularMetricError(ValueError):
    """A metric (Fisher) is singular on a parameter block; ``report`` holds the diagnosis."""

    def __init__(self, report: MetricReport) -> None:
        super().__init__("\n".join(report.messages))
        self.report = report


def _ranges(pos: np.ndarray) -> str:
    """``[0, 1, 2, 5]`` -> ``"0..2, 5"``."""
    parts = []
    start = prev = int(pos[0])
    for p in list(map(int, pos[1:])) + [None]:
        if p is not None and p == prev + 1:
            prev = p
            continue
        parts.append(str(start) if start == prev else f"{start}..{prev}")
        if p is not None:
            start = prev = p
    return ", ".join(parts)


def _resolve_blocks(blocks, size: int) -> list[tuple[str, np.ndarray]]:
    from refvpng.optim.directions import resolve_index

    if isinstance(blocks, Mapping):
        items = list(blocks.items())
    elif isinstance(blocks, Sequence) and not isinstance(blocks, str):
        items = list(blocks)
    else:
        raise TypeError("blocks must be a mapping name -> index or a sequence of (name, index)")
    if not items:
        raise ValueError("blocks must name at least one block")
    out = []
    seen = np.zeros(size, dtype=bool)
    for item in items:
        if not (isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str)):
            raise TypeError("blocks entries must be (name, index) pairs with a str name")
        name, index = item
        try:
            idx = resolve_index(index, size)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"blocks[{name!r}]: {exc}") from None
        if idx is None:
            idx = np.arange(size)
        if idx.size == 0:
            raise ValueError(f"blocks[{name!r}] is empty")
        if np.any(seen[idx]):
            raise ValueError(f"blocks must not overlap; blocks[{name!r}] repeats parameters")
        seen[idx] = True
        out.append((name, idx))
    return out


_ZERO_MSG = (
    "parameters {params} do not enter {what}: their rows and columns of the {metric} are zero; {remedy}"
)


def check_metric(
    fisher: ArrayLike,
    blocks: Mapping[str, Any] | Sequence[tuple[str, Any]],
    *,
    rtol: float = 1e-9,
    raise_error: bool = True,
    metric: str = "marginal Fisher",
    what: str = "the marginal p(x; theta)",
    remedy: str = "use the q-Fisher (Eq 2) or the VP Fisher F_r for them",
) -> MetricReport:
    r"""Detect singular parameter blocks of a metric and say which parameters and why.

    For every block :math:`B`, the diagonal sub-matrix :math:`F_{BB}` is singular when it has an
    eigenvalue :math:`\le` ``rtol`` :math:`\cdot\lambda_{\max}(F)`. Two causes are told apart:

    - parameters whose **rows and columns are zero** (:math:`\max_j|F_{pj}| \le` ``rtol``
      :math:`\cdot\lambda_{\max}`) do not enter the distribution whose Fisher this is; for the
      marginal Fisher over :math:`(\phi, \theta)` (:func:`metric_over_phi_theta`) these are all
      of :math:`\phi`:

        "parameters phi[0..k] do not enter the marginal p(x; theta): their rows and columns of
        the marginal Fisher are zero; use the q-Fisher (Eq 2) or the VP Fisher F_r for them"

    - otherwise the block is rank-deficient along directions that leave the distribution
      unchanged (for pPCA's marginal Fisher: the rotations :math:`W \to WR`).

    The full matrix is checked as well: it can be singular along directions that mix blocks while
    every block is regular (e.g. the VP Fisher of the linear VAE, see
    :func:`refvpng.models.linear_vae.vp_fisher_closed`).

    Parameters
    ----------
    fisher : array_like, shape (P, P)
        Symmetric positive semi-definite metric.
    blocks : mapping or sequence of (name, index)
        Non-overlapping blocks; an index is a slice, integer positions or a boolean mask (as
        :func:`refvpng.optim.directions.resolve_index`). E.g. :func:`phi_theta_blocks`.
    rtol : float, default 1e-9
        Relative threshold, against the largest eigenvalue of ``fisher``.
    raise_error : bool, default True
        Raise :class:`SingularMetricError` (a ``ValueError``) when something is singular.
    metric, what, remedy : str
        Wording of the zero-row message (defaults: the marginal Fisher over
        :math:`(\phi, \theta)`).

    Returns
    -------
    MetricReport

    Raises
    ------
    SingularMetricError
        If ``raise_error`` and a block or the full metric is singular; its message names the
        parameters and the reason.
    ValueError
        If ``fisher`` is not a finite symmetric square matrix, ``rtol`` is not > 0, or
        ``blocks`` are invalid (overlapping, out of range, empty).

    Examples
    --------
    >>> F = np.diag([0.0, 0.0, 2.0, 3.0])
    >>> rep = check_metric(F, {"phi": slice(0, 2), "theta": slice(2, 4)}, raise_error=False)
    >>> print(rep.messages[0])  # doctest: +NORMALIZE_WHITESPACE
    parameters phi[0..1] do not enter the marginal p(x; theta): their rows and columns of the
    marginal Fisher are zero; use the q-Fisher (Eq 2) or the VP Fisher F_r for them
    >>> [b.singular for b in rep.blocks]
    [True, False]
    """
    f = as_array(fisher, "fisher", ndim=2)
    if f.shape[0] != f.shape[1]:
        raise ValueError(f"fisher must be square, got shape {f.shape}")
    rtol = as_positive_scalar(rtol, "rtol")
    size = f.shape[0]
    amax = float(np.max(np.abs(f))) if f.size else 0.0
    if np.max(np.abs(f - f.T)) > 1e-10 * max(amax, np.finfo(float).tiny):
        raise ValueError("fisher must be symmetric")
    resolved = _resolve_blocks(blocks, size)
    ev_full = np.linalg.eigvalsh(0.5 * (f + f.T))
    scale = max(float(np.max(np.abs(ev_full))), np.finfo(float).tiny)
    thr = rtol * scale
    rank_full = int(np.sum(ev_full > thr))
    zero_rows = np.max(np.abs(f), axis=1) <= thr
    reports = []
    messages = []
    for name, idx in resolved:
        ev = np.linalg.eigvalsh(f[np.ix_(idx, idx)])
        rank = int(np.sum(ev > thr))
        zero = np.flatnonzero(zero_rows[idx])
        singular = rank < idx.size
        msgs = []
        if zero.size:
            msgs.append(
                _ZERO_MSG.format(params=f"{name}[{_ranges(zero)}]", what=what, metric=metric, remedy=remedy)
            )
        if singular and rank < idx.size - zero.size:
            n_null = idx.size - zero.size - rank
            msgs.append(
                f"block {name} is singular beyond its zero rows: rank {rank} of {idx.size} "
                f"(smallest eigenvalue {ev[0]:.3g}); the {metric} does not change along "
                f"{n_null} direction(s) of {name} (reparameterisations that leave the "
                f"distribution unchanged, e.g. the rotations W -> W R of pPCA); "
                "use damping mu > 0 or remove those directions"
            )
        message = " ".join(msgs)
        messages.extend(msgs)
        reports.append(BlockReport(name, idx, rank, float(ev[0]), zero, singular, message))
    block_singular = any(r.singular for r in reports)
    if rank_full < size and not block_singular:
        messages.append(
            f"the {metric} is singular (rank {rank_full} of {size}) along directions that mix "
            f"the blocks {', '.join(n for n, _ in resolved)}, although each block is regular; "
            "use damping mu > 0"
        )
    report = MetricReport(
        tuple(reports), rank_full, size, block_singular or rank_full < size, tuple(messages)
    )
    if raise_error and report.singular:
        raise SingularMetricError(report)
    return report
