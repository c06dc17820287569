r"""Dense Fishers of layered networks from per-layer ``(a_bar, g)`` factors, at :math:`nP^2` flops.

A row of the Jacobian (or a score row of Eq 16 of Tang & Ranganath, 2019) of an affine layer
with weights :math:`\bar W_l = [W_l, b_l]` (``d_l x a_l``, packed column-major) is
:math:`\operatorname{vec}(g\,\bar a^\top) = \bar a \otimes g`. All ``K`` rows that belong to one
group :math:`r` (one data point and one noise draw: its ``d_out`` whitened unit backward passes
for the exact :math:`F_r`, or its ``M`` predictive samples for Eq 16) share the same inputs
:math:`\bar a_{rl}`, so the ``(l, m)`` block of :math:`F = \sum_r w_r \sum_k b_{rk} b_{rk}^\top` is

.. math::
    F_{lm} = \sum_r w_r\, (\bar a_{rl}\bar a_{rm}^\top) \otimes \Gamma_r^{lm}, \qquad
    \Gamma_r^{lm} = \sum_{k=1}^{K} g_{rlk}\, g_{rmk}^\top = G_{rl}^\top G_{rm},

(Kronecker order :math:`A \otimes G`, input side first, as everywhere in refvpng). Each block is
one matrix product with inner dimension :math:`R` (the number of groups), about :math:`R P^2`
flops in all against :math:`R K P^2` for the stacked rows: the ``R K x P`` Jacobian is never
built. Blocks are written through strided views of the output; the upper triangle is computed
and mirrored once.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike

from refvpng._checks import as_array, finite_output
from refvpng.curvature.outer import _mirror_upper

__all__ = ["kron_outer_sum"]

# Rows of the (R, a_l a_m) and (R, d_l d_m) operands held at once: at most about this many
# doubles, but never fewer than _MIN_CHUNK rows (the inner dimension of each product).
_CHUNK_DOUBLES = 1 << 23
_MIN_CHUNK = 64
# Tile rows i of one product, at most about this many doubles: kept in cache until copied.
_TILE_DOUBLES = 1 << 19


def _check_factors(a_bars, gs, weights):
    for name, seq in (("a_bars", a_bars), ("gs", gs)):
        if not isinstance(seq, (list, tuple)):
            raise TypeError(f"{name} must be a sequence of arrays (one per layer), got {type(seq).__name__}")
    if len(a_bars) != len(gs) or not a_bars:
        raise ValueError(f"a_bars and gs must be non-empty and of equal length, got {len(a_bars)}, {len(gs)}")
    a_bars = [as_array(a, f"a_bars[{k}]", ndim=2) for k, a in enumerate(a_bars)]
    gs = [as_array(g, f"gs[{k}]", ndim=3) for k, g in enumerate(gs)]
    r, k_rows = a_bars[0].shape[0], gs[0].shape[1]
    for k, (a, g) in enumerate(zip(a_bars, gs, strict=True)):
        if a.shape[0] != r or g.shape[:2] != (r, k_rows):
            raise ValueError(
                f"a_bars[{k}] must have {r} rows and gs[{k}] shape ({r}, {k_rows}, d), "
                f"got {a.shape} and {g.shape}"
            )
    w = as_array(weights, "weights", ndim=(0, 1))
    w = np.broadcast_to(w, (r,)) if w.ndim == 0 else w
    if w.shape != (r,):
        raise ValueError(f"weights must be a scalar or have length R = {r}, got {w.shape}")
    if np.any(w < 0):
        raise ValueError("weights must be >= 0")
    return a_bars, gs, w


@finite_output
def kron_outer_sum(
    a_bars: Sequence[ArrayLike], gs: Sequence[ArrayLike], weights: float | ArrayLike = 1.0
) -> np.ndarray:
    r"""Dense :math:`F = \sum_r w_r \sum_k b_{rk} b_{rk}^\top` from per-layer factors.

    .. math::
        b_{rk} = \big(\bar a_{r1} \otimes g_{r1k}, \dots, \bar a_{rL} \otimes g_{rLk}\big),
        \qquad
        F_{lm} = \sum_r w_r (\bar a_{rl}\bar a_{rm}^\top) \otimes G_{rl}^\top G_{rm}.

    With the ``d_out`` backward passes of each data point seeded by the rows of
    :math:`\Lambda^{1/2}` and :math:`w_r = 1/S` this is the exact :math:`F_r` (Section 3.3);
    with its ``M`` predictive-score passes and :math:`w_r = 1/(SM)` it is :math:`\hat F_r`
    (Eq 16). :func:`refvpng.curvature.fisher.vp_fisher_exact` and
    :func:`~refvpng.curvature.fisher.vp_fisher_mc` call it through a model's ``layer_pairs`` hook.

    Parameters
    ----------
    a_bars : sequence of ndarray, shapes (R, a_l)
        Layer inputs :math:`\bar a_{rl}` (homogeneous: last column ones), shared by the ``K``
        rows of group ``r``; layers in parameter order.
    gs : sequence of ndarray, shapes (R, K, d_l)
        Output-side gradients :math:`g_{rlk}` of the ``K`` rows of each group.
    weights : float or ndarray, shape (R,), default 1.0
        Non-negative group weights :math:`w_r`.

    Returns
    -------
    ndarray, shape (P, P)
        Exactly symmetric, :math:`P = \sum_l a_l d_l`, indexed like the column-major packing
        :math:`(\operatorname{vec}\bar W_1, \dots, \operatorname{vec}\bar W_L)`.

    Raises
    ------
    ValueError
        If the factors' shapes disagree or a weight is negative.

    Examples
    --------
    >>> import numpy as np
    >>> from refvpng.nn import per_example_gradients
    >>> rng = np.random.default_rng(0)
    >>> a, g = rng.standard_normal((4, 3)), rng.standard_normal((4, 2, 5))
    >>> rows = per_example_gradients([(np.repeat(a, 2, axis=0), g.reshape(8, 5))])
    >>> bool(np.allclose(kron_outer_sum([a], [g]), rows.T @ rows))
    True
    """
    a_bars, gs, w = _check_factors(a_bars, gs, weights)
    sizes = [a.shape[1] * g.shape[2] for a, g in zip(a_bars, gs, strict=True)]
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    f = np.empty((int(offsets[-1]),) * 2)
    for k in range(len(a_bars)):
        for m in range(k, len(a_bars)):
            block = f[offsets[k] : offsets[k + 1], offsets[m] : offsets[m + 1]]
            _upper_block(block, a_bars[k], gs[k], a_bars[m], gs[m], w, diagonal=k == m)
    return _mirror_upper(f)


def _upper_block(block, a_l, g_l, a_m, g_m, w, diagonal):
    r"""Write :math:`F_{lm} = \sum_r w_r (\bar a_{rl}\bar a_{rm}^\top) \otimes \Gamma_r^{lm}` into ``block``.

    Products :math:`U^\top \Gamma` with rows :math:`(i, j)` (:math:`U_{r,ij} = \bar a_{rli}
    \bar a_{rmj}`) and columns :math:`(o, p)`, for a few tile rows :math:`i` at a time (so the
    product stays in cache until it is copied), written through the ``(a_l, d_l, a_m, d_m)``
    view of ``block``. On a diagonal block (``l == m``) only the tiles :math:`j \ge i` are
    formed: those below are left for the final mirror.
    """
    r, na, nm, dl, dm = a_l.shape[0], a_l.shape[1], a_m.shape[1], g_l.shape[2], g_m.shape[2]
    view = block.reshape(na, dl, nm, dm)  # a view: splitting the axes of a 2-D slice never copies
    if not np.may_share_memory(view, block):  # pragma: no cover
        raise RuntimeError("block view is not a view of the output")
    r_chunk = max(_MIN_CHUNK, _CHUNK_DOUBLES // (nm + dl * dm))
    i_chunk = max(1, _TILE_DOUBLES // (nm * dl * dm))
    for r0 in range(0, r, r_chunk):
        sl = slice(r0, min(r, r0 + r_chunk))
        # (c, d_l, d_m), R K d_l d_m flops: einsum's own loop, not R tiny BLAS calls
        gamma = np.einsum("rko,rkp->rop", g_l[sl], g_m[sl])
        gamma *= w[sl, None, None]
        gamma = gamma.reshape(-1, dl * dm)
        for i0 in range(0, na, i_chunk):
            i1 = min(na, i0 + i_chunk)
            j0 = i0 if diagonal else 0  # tiles j < i0 of a diagonal block lie below it
            u = a_l[sl, i0:i1, None] * a_m[sl, None, j0:]  # (c, i1 - i0, nm - j0)
            acc = (u.reshape(u.shape[0], -1).T @ gamma).reshape(i1 - i0, nm - j0, dl, dm)
            tiles = view[i0:i1, :, j0:, :]
            if r0 == 0:
                tiles[...] = acc.transpose(0, 2, 1, 3)
            else:
                tiles += acc.transpose(0, 2, 1, 3)
