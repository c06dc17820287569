r"""K-FAC factors: computing the Kronecker factors from ``(a_bar, g)`` pairs, and their EMA.

The scale and ordering conventions are stated once in :mod:`refvpng.curvature.kfac`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from refvpng._checks import as_array, as_nonneg_scalar, check_pairs, finite_output

__all__ = ["KFACFactors", "kfac_factors", "kfac_ema"]


class KFACFactors(NamedTuple):
    r"""Kronecker factors of a network with :math:`L` layers (chain order).

    Attributes
    ----------
    A : tuple of ndarray, shape (d_{l-1} + 1, d_{l-1} + 1)
        Input factors :math:`A_l` (weighted means of :math:`\bar a \bar a^\top`), one per layer.
    G : tuple of ndarray, shape (d_l, d_l)
        Output-gradient factors :math:`G_l` (weighted sums of :math:`g g^\top`), one per layer.
    A_cross : tuple of ndarray, shape (d_{l-1} + 1, d_l + 1)
        :math:`A_{l,l+1}` between neighbouring layers (``L - 1`` entries, or empty).
    G_cross : tuple of ndarray, shape (d_l, d_{l+1})
        :math:`G_{l,l+1}` between neighbouring layers (``L - 1`` entries, or empty).
    """

    A: tuple[np.ndarray, ...]
    G: tuple[np.ndarray, ...]
    A_cross: tuple[np.ndarray, ...] = ()
    G_cross: tuple[np.ndarray, ...] = ()


@finite_output
def kfac_factors(
    pairs: Sequence[tuple[ArrayLike, ArrayLike]], weights: ArrayLike | None = None, *, cross: bool = True
) -> KFACFactors:
    r"""Kronecker factors from per-layer ``(a_bar, g)`` pairs (M&G 2015, Sections 3 and 4.3).

    .. math::
        A_l = \frac{\sum_r w_r \bar a_{l,r} \bar a_{l,r}^\top}{\sum_r w_r}, \quad
        G_l = \sum_r w_r g_{l,r} g_{l,r}^\top, \quad
        A_{l,l+1} = \frac{\sum_r w_r \bar a_{l,r} \bar a_{l+1,r}^\top}{\sum_r w_r}, \quad
        G_{l,l+1} = \sum_r w_r g_{l,r} g_{l+1,r}^\top.

    With the :math:`Mn` rows of Eq. (16) and :math:`w_r = 1/M`
    (:func:`refvpng.curvature.fisher.vp_kfac_pairs`), :math:`A_l \otimes G_l` approximates the layer's
    block of :math:`\hat F_r` on its scale (sum over data points, mean over samples).

    Parameters
    ----------
    pairs : sequence of (ndarray, ndarray)
        ``(a_bar_l, g_l)`` per layer in network order, shapes ``(R, d_{l-1} + 1)``, ``(R, d_l)``.
    weights : ndarray, shape (R,), optional
        Non-negative row weights with a positive sum; default all ones.
    cross : bool, default True
        Also compute the neighbouring cross factors (needed by :class:`BlockTridiagKFAC`).

    Returns
    -------
    KFACFactors

    Raises
    ------
    ValueError
        If ``pairs`` is empty, the row counts differ, or ``weights`` is malformed.

    Examples
    --------
    >>> import numpy as np
    >>> a_bar, g = np.array([[2.0, 1.0]]), np.array([[3.0]])
    >>> f = kfac_factors([(a_bar, g)])
    >>> f.A[0], f.G[0]
    (array([[4., 2.],
           [2., 1.]]), array([[9.]]))
    """
    if isinstance(pairs, (list, tuple)) and len(pairs) == 0:
        raise ValueError("pairs must not be empty")
    pairs = check_pairs(pairs)
    a_bars, gs, rows = [], [], None
    for k, pair in enumerate(pairs):
        if len(pair) != 2:
            raise ValueError(f"pairs[{k}] must be a pair (a_bar, g)")
        a_bar = as_array(pair[0], f"pairs[{k}][0]", ndim=2)
        g = as_array(pair[1], f"pairs[{k}][1]", ndim=2)
        rows = a_bar.shape[0] if rows is None else rows
        if a_bar.shape[0] != rows or g.shape[0] != rows:
            raise ValueError(f"pairs[{k}] must have {rows} rows, got {a_bar.shape[0]} and {g.shape[0]}")
        a_bars.append(a_bar)
        gs.append(g)
    assert rows is not None  # pairs is not empty
    if weights is None:
        w = np.ones(rows)
    else:
        w = as_array(weights, "weights", shape=(rows,))
        if np.any(w < 0) or w.sum() <= 0:
            raise ValueError("weights must be non-negative with a positive sum")
    wsum = w.sum()

    def sym(m):
        return 0.5 * (m + m.T)

    big_a = tuple(sym((a * w[:, None]).T @ a) / wsum for a in a_bars)
    big_g = tuple(sym((g * w[:, None]).T @ g) for g in gs)
    if not cross:
        return KFACFactors(big_a, big_g)
    a_cross = tuple((a0 * w[:, None]).T @ a1 / wsum for a0, a1 in zip(a_bars[:-1], a_bars[1:], strict=True))
    g_cross = tuple((g0 * w[:, None]).T @ g1 for g0, g1 in zip(gs[:-1], gs[1:], strict=True))
    return KFACFactors(big_a, big_g, a_cross, g_cross)


def kfac_ema(old: KFACFactors, new: KFACFactors, decay: float = 0.9) -> KFACFactors:
    r"""Exponential moving average of Kronecker factors.

    .. math::
        \text{out} = \text{decay} \cdot \text{old} + (1 - \text{decay}) \cdot \text{new},

    for every factor (diagonal and cross). Pure: returns new arrays, leaves ``old`` and
    ``new`` untouched.

    Parameters
    ----------
    old, new : KFACFactors
        Factors of identical structure and shapes.
    decay : float, default 0.9
        Weight of ``old``, in :math:`[0, 1]`.

    Returns
    -------
    KFACFactors

    Raises
    ------
    TypeError
        If ``old`` or ``new`` is not a :class:`KFACFactors`.
    ValueError
        If ``decay`` is outside :math:`[0, 1]` or the structures differ.
    """
    for name, f in (("old", old), ("new", new)):
        if not isinstance(f, KFACFactors):
            raise TypeError(f"{name} must be KFACFactors, got {type(f).__name__}")
    decay = as_nonneg_scalar(decay, "decay")
    if decay > 1:
        raise ValueError(f"decay must be in [0, 1], got {decay}")
    out = []
    for field in KFACFactors._fields:
        o, n = getattr(old, field), getattr(new, field)
        if len(o) != len(n) or any(x.shape != y.shape for x, y in zip(o, n, strict=True)):
            raise ValueError(f"old and new must have matching {field} factors")
        out.append(tuple(decay * x + (1.0 - decay) * y for x, y in zip(o, n, strict=True)))
    return KFACFactors(*out)


def check_factors(factors: KFACFactors, need_cross: bool) -> KFACFactors:
    """Validate ``factors`` (float64 copies where needed); cross factors only if needed."""
    if not isinstance(factors, KFACFactors):
        raise TypeError(f"factors must be KFACFactors, got {type(factors).__name__}")
    n_layers = len(factors.A)
    if n_layers == 0 or len(factors.G) != n_layers:
        raise ValueError("factors must hold the same positive number of A and G factors")
    big_a = tuple(as_array(m, f"factors.A[{k}]", ndim=2) for k, m in enumerate(factors.A))
    big_g = tuple(as_array(m, f"factors.G[{k}]", ndim=2) for k, m in enumerate(factors.G))
    for name, ms in (("A", big_a), ("G", big_g)):
        for k, m in enumerate(ms):
            if m.shape[0] != m.shape[1]:
                raise ValueError(f"factors.{name}[{k}] must be square, got {m.shape}")
    if not need_cross:
        return KFACFactors(big_a, big_g)
    if len(factors.A_cross) != n_layers - 1 or len(factors.G_cross) != n_layers - 1:
        raise ValueError(
            f"factors must hold {n_layers - 1} A_cross and G_cross factors for the "
            "block-tridiagonal approximation (use kfac_factors(..., cross=True))"
        )
    a_c, g_c = [], []
    for k in range(n_layers - 1):
        want = (big_a[k].shape[0], big_a[k + 1].shape[0])
        a_c.append(as_array(factors.A_cross[k], f"factors.A_cross[{k}]", shape=want))
        want = (big_g[k].shape[0], big_g[k + 1].shape[0])
        g_c.append(as_array(factors.G_cross[k], f"factors.G_cross[{k}]", shape=want))
    return KFACFactors(big_a, big_g, tuple(a_c), tuple(g_c))
