r"""Kronecker-factored approximations (K-FAC) of the variational predictive Fisher.

Tang & Ranganath (2019), Section 5.2, view the VAE as one feed-forward network with a stochastic
layer (:class:`refvpng.nn.Chain`) and approximate :math:`\hat F_r` of Eq. (16) with the
block-tridiagonal K-FAC of Martens & Grosse (2015). This module holds the factors, the
block-diagonal (M&G Section 4.2) and block-tridiagonal (M&G Section 4.3) operators, the
Kronecker-difference solve of M&G Appendix B, factored Tikhonov damping (M&G Section 6.3),
exponential moving averages, periodic inverse refresh and a low-rank eigen-approximation of
large factors.

Conventions (stated once)
-------------------------
*Vec order and Kronecker ordering.* As in :mod:`refvpng.nn.mlp`: the layer-:math:`l` block of
a parameter vector is the column-major :math:`\operatorname{vec}(\bar W_l)` of
:math:`\bar W_l = [W_l, b_l] \in \mathbb{R}^{d_l \times (d_{l-1}+1)}`, the per-example gradient
block is :math:`\bar a_{l-1} \otimes g_l`, and every Kronecker product is written
**input factor left**, :math:`A \otimes G`, with
:math:`(A \otimes G)\operatorname{vec}(X) = \operatorname{vec}(G X A^\top)`. Blocks are
ordered as the layers of the network (for a chain: encoder layers, then decoder layers), which
is also the order of :math:`\eta = (\lambda, \theta)`.

*Layer indexing.* In code, block ``l = 0 .. L-1`` is a layer with input
:math:`\bar a` (``A[l]``) and output gradient :math:`g` (``G[l]``); in the notation of
M&G these are :math:`\bar A_{l-1,l-1}` and :math:`G_{l,l}`.

*Scale (sum over data, mean over samples).* From per-row pairs
:math:`(\bar a_{l,r}, g_{l,r})` with weights :math:`w_r` (:math:`1/M` for the :math:`Mn` rows
of Eq. 16),

.. math::
    A_l = \frac{\sum_r w_r \bar a_{l,r} \bar a_{l,r}^\top}{\sum_r w_r}, \qquad
    G_l = \sum_r w_r\, g_{l,r} g_{l,r}^\top,

    A_{l,l+1} = \frac{\sum_r w_r \bar a_{l,r} \bar a_{l+1,r}^\top}{\sum_r w_r}, \qquad
    G_{l,l+1} = \sum_r w_r\, g_{l,r} g_{l+1,r}^\top,

so that :math:`A \otimes G` carries the total weight :math:`\sum_r w_r = n`, like
:math:`\hat F_r` (the paper's :math:`F_r` carries the factor :math:`n`). With one row (one data
point, one predictive sample) :math:`A_l \otimes G_m`-type blocks are exactly
:math:`\hat b_l \hat b_m^\top`.

*Damping.* ``damping`` is :math:`\gamma`. The factored Tikhonov damping of M&G Section 6.3
adds :math:`\pi_l \sqrt\gamma\, I` to :math:`A_l` and :math:`\sqrt\gamma / \pi_l\, I` to
:math:`G_l`; :math:`\pi_l = 1` unless ``pi_heuristic=True``, in which case
:math:`\pi_l = \sqrt{(\operatorname{tr} A_l / \dim A_l) / (\operatorname{tr} G_l / \dim G_l)}`
(1 if a trace vanishes). Only diagonal factors are damped; cross factors never are. We write
:math:`A_l^\gamma = A_l + \pi_l\sqrt\gamma I`, :math:`G_l^\gamma = G_l + \sqrt\gamma/\pi_l I`.
``matvec``, ``to_dense`` and ``solve`` all take ``damping`` (``None`` means the operator's own
value); pass ``damping=0.0`` to ``matvec``/``to_dense`` for the undamped approximation.

*Low-rank factors.* A diagonal factor of size :math:`n >` ``lowrank_threshold`` is replaced by
its :math:`r = \min(n, \lceil c \ln n \rceil)` leading eigenpairs
(:math:`c` = ``lowrank_c``): :math:`A \approx U_r \operatorname{diag}(\alpha_r) U_r^\top`, the
other :math:`n - r` eigenvalues set to zero, so the damped factor has eigenvalues
:math:`\alpha_r + \pi\sqrt\gamma` on :math:`U_r` and exactly the damping :math:`\pi\sqrt\gamma`
on its orthogonal complement. This equals projecting every :math:`\bar a` (or :math:`g`) onto
:math:`U_r`, and the cross factors touching that layer are projected in the same way
(:math:`A_{l,l+1} \to P_l A_{l,l+1} P_{l+1}`, :math:`P = U_r U_r^\top`), which keeps the
tridiagonal model consistent (its conditional covariances stay positive definite). ``matvec``,
``to_dense`` and ``solve`` all use the truncated factors, so ``solve`` remains the exact inverse
described below. Truncation requires ``damping > 0`` in ``solve``.

References
----------
.. [1] J. Martens and R. Grosse, "Optimizing neural networks with Kronecker-factored
   approximate curvature", ICML 2015, Sections 3, 4.2, 4.3, 6.3 and Appendix B.
.. [2] Y. Tang and R. Ranganath, "The Variational Predictive Natural Gradient", ICML 2019,
   Eq. (16) and Section 5.2.

Examples
--------
>>> import numpy as np
>>> from refvpng.nn import Chain, sample_predictive, vp_kfac_pairs_chain
>>> from refvpng.curvature.kfac import BlockTridiagKFAC, kfac_factors
>>> chain = Chain.from_sizes((4, 3, 2), (1, 3, 4))
>>> rng = np.random.default_rng(0)
>>> eta = chain.init(rng)
>>> x, eps = (rng.random((6, 4)) < 0.5) * 1.0, rng.standard_normal((6, 1))
>>> x_pred = sample_predictive(rng, chain, eta, x, eps, m=2)
>>> pairs, weights = vp_kfac_pairs_chain(chain, eta, x, eps, x_pred)
>>> op = BlockTridiagKFAC(kfac_factors(pairs, weights), damping=0.1)
>>> v = rng.standard_normal(chain.num_params)
>>> op.solve(v).shape
(45,)
>>> bool(np.allclose(op.matvec(v), op.to_dense() @ v))
True
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import scipy.linalg
from scipy.sparse.linalg import LinearOperator

from refvpng._checks import as_array, as_int, as_nonneg_scalar, as_positive_scalar

__all__ = [
    "KFACFactors",
    "kfac_factors",
    "kfac_ema",
    "FactorEig",
    "lowrank_rank",
    "factor_eig",
    "KronDiffEig",
    "kron_diff_eig",
    "kron_diff_solve",
    "BlockDiagKFAC",
    "BlockTridiagKFAC",
    "KFACConfig",
    "KFACCache",
    "KFACState",
    "kfac_init",
    "kfac_update",
    "kfac_state",
    "kfac_step",
    "kfac_operator",
]


# =========================================================================== factors
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


def kfac_factors(pairs, weights=None, *, cross: bool = True) -> KFACFactors:
    r"""Kronecker factors from per-layer ``(a_bar, g)`` pairs (M&G 2015, Sections 3 and 4.3).

    .. math::
        A_l = \frac{\sum_r w_r \bar a_{l,r} \bar a_{l,r}^\top}{\sum_r w_r}, \quad
        G_l = \sum_r w_r g_{l,r} g_{l,r}^\top, \quad
        A_{l,l+1} = \frac{\sum_r w_r \bar a_{l,r} \bar a_{l+1,r}^\top}{\sum_r w_r}, \quad
        G_{l,l+1} = \sum_r w_r g_{l,r} g_{l+1,r}^\top.

    With the :math:`Mn` rows of Eq. (16) and :math:`w_r = 1/M`
    (:func:`refvpng.nn.vp_kfac_pairs_chain`), :math:`A_l \otimes G_l` approximates the layer's
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
    if len(pairs) == 0:
        raise ValueError("pairs must not be empty")
    a_bars, gs, rows = [], [], None
    for k, pair in enumerate(pairs):
        if len(pair) != 2:
            raise ValueError(f"pairs[{k}] must be a pair (a_bar, g)")
        a_bar = as_array(pair[0], f"pairs[{k}][0]", ndim=2)
        g = as_array(pair[1], f"pairs[{k}][1]", ndim=2)
        rows = a_bar.shape[0] if rows is None else rows
        if a_bar.shape[0] != rows or g.shape[0] != rows:
            raise ValueError(
                f"pairs[{k}] must have {rows} rows, got {a_bar.shape[0]} and {g.shape[0]}"
            )
        a_bars.append(a_bar)
        gs.append(g)
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
    a_cross = tuple(
        (a0 * w[:, None]).T @ a1 / wsum for a0, a1 in zip(a_bars[:-1], a_bars[1:], strict=True)
    )
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
    ValueError
        If ``decay`` is outside :math:`[0, 1]` or the structures differ.
    """
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


# =========================================================================== eigen helpers
class FactorEig(NamedTuple):
    r"""Eigendecomposition of a symmetric factor, possibly truncated to leading eigenpairs.

    Attributes
    ----------
    values : ndarray, shape (r,)
        Eigenvalues (ascending).
    vectors : ndarray, shape (n, r)
        Orthonormal eigenvectors; ``r < n`` means the factor is truncated (low-rank), the
        remaining eigenvalues being taken as zero.
    """

    values: np.ndarray
    vectors: np.ndarray

    @property
    def truncated(self) -> bool:
        """Whether only leading eigenpairs are kept."""
        return self.vectors.shape[1] < self.vectors.shape[0]


def lowrank_rank(n: int, c: float = 4.0) -> int:
    r"""Return the number of kept eigenpairs :math:`r = \min(n, \lceil c \ln n \rceil)`.

    Examples
    --------
    >>> lowrank_rank(785)  # the input factor of a 784-pixel image plus bias
    27
    """
    n = as_int(n, "n")
    c = as_positive_scalar(c, "c")
    return max(1, min(n, math.ceil(c * math.log(n))))


def factor_eig(m, *, lowrank_c: float = 4.0, lowrank_threshold: int | None = 512) -> FactorEig:
    r"""Eigendecomposition of a symmetric factor, truncated if it is larger than the threshold.

    Parameters
    ----------
    m : ndarray, shape (n, n)
        Symmetric factor.
    lowrank_c : float, default 4.0
        :math:`c` in :math:`r = \lceil c \ln n \rceil` (see :func:`lowrank_rank`).
    lowrank_threshold : int or None, default 512
        Truncate only when ``n > lowrank_threshold``; ``None`` never truncates.

    Returns
    -------
    FactorEig
    """
    m = as_array(m, "m", ndim=2)
    n = m.shape[0]
    if lowrank_threshold is not None and n > lowrank_threshold:
        r = lowrank_rank(n, lowrank_c)
        if r < n:
            vals, vecs = scipy.linalg.eigh(m, subset_by_index=[n - r, n - 1])
            return FactorEig(vals, vecs)
    vals, vecs = np.linalg.eigh(m)
    return FactorEig(vals, vecs)


def _damped_apply(eig: FactorEig, delta: float, x: np.ndarray, power: float) -> np.ndarray:
    r"""Apply :math:`(U \operatorname{diag}(\alpha) U^\top + \delta I)^{p}` to ``x`` (..., n, k)."""
    vals = eig.values + delta
    if np.any(vals <= 0) or (eig.truncated and delta <= 0):
        raise ValueError(
            "damping is too small: a damped Kronecker factor is not positive definite "
            f"(smallest damped eigenvalue {min(vals.min(), delta):.3g})"
        )
    u = eig.vectors
    ux = np.swapaxes(u, -1, -2) @ x
    out = u @ (vals[:, None] ** power * ux)
    if eig.truncated:
        out = out + delta**power * (x - u @ ux)
    return out


def _damped_dense(eig: FactorEig, delta: float, power: float) -> np.ndarray:
    return _damped_apply(eig, delta, np.eye(eig.vectors.shape[0]), power)


class KronDiffEig(NamedTuple):
    r"""Decomposition for solving :math:`(A \otimes B - C \otimes D) x = v` (M&G App. B).

    With :math:`A^{-1/2} C A^{-1/2} = E_A S_A E_A^\top`, :math:`K_A = A^{-1/2} E_A` (and the
    same for :math:`B, D`),

    .. math::
        (A \otimes B - C \otimes D)^{-1} = (K_A \otimes K_B)
        (I \otimes I - S_A \otimes S_B)^{-1} (K_A \otimes K_B)^\top.

    *Low-rank form* (``plain`` set). When :math:`A` (or :math:`B`) is a truncated damped factor
    :math:`U \operatorname{diag}(\alpha + \delta) U^\top + \delta (I - U U^\top)` and
    :math:`C` lies in the span of :math:`U` (as the projected cross factors do), every
    eigenvalue of :math:`A^{-1/2} C A^{-1/2}` outside that span is zero, so only the
    :math:`r` columns of :math:`K_A` inside it are kept and, using
    :math:`1/(1 - p) = 1 + p/(1 - p)`,

    .. math::
        (A \otimes B - C \otimes D)^{-1} = A^{-1} \otimes B^{-1}
        + (K_A \otimes K_B)\, \operatorname{diag}\Big(\frac{s_A \otimes s_B}
        {1 - s_A \otimes s_B}\Big) (K_A \otimes K_B)^\top,

    which costs :math:`O(n r)` instead of :math:`O(n^2)` per column on the truncated side
    and never forms an :math:`n \times n` matrix.

    Attributes
    ----------
    k_a : ndarray, shape (n_a, r_a)
    s_a : ndarray, shape (r_a,)
    k_b : ndarray, shape (n_b, r_b)
    s_b : ndarray, shape (r_b,)
    plain : tuple (FactorEig, float, FactorEig, float) or None
        Low-rank form: the eigendecompositions and damping of :math:`A` and :math:`B`
        (for :math:`A^{-1} \otimes B^{-1}`); ``None`` for the full form (``r = n``).
    """

    k_a: np.ndarray
    s_a: np.ndarray
    k_b: np.ndarray
    s_b: np.ndarray
    plain: tuple | None = None


def _kd_from_isqrt(a_isqrt, c, b_isqrt, d) -> KronDiffEig:
    s_a, e_a = np.linalg.eigh(a_isqrt @ c @ a_isqrt)
    s_b, e_b = np.linalg.eigh(b_isqrt @ d @ b_isqrt)
    kd = KronDiffEig(a_isqrt @ e_a, s_a, b_isqrt @ e_b, s_b)
    if np.min(1.0 - np.outer(s_b, s_a)) <= 0:
        raise ValueError("A kron B - C kron D is not positive definite (1 - s_a s_b <= 0)")
    return kd


def _kd_side(eig: FactorEig, delta: float, left: np.ndarray, right: np.ndarray):
    r"""``(K, s)`` of one side from ``C = left @ right.T`` (``left``, ``right``: (n, m)).

    With :math:`V` the (possibly truncated) eigenvectors and :math:`D = \alpha + \delta`:
    :math:`M = D^{-1/2} (V^\top \mathrm{left})(V^\top \mathrm{right})^\top D^{-1/2}`,
    :math:`M = E S E^\top`, :math:`K = V D^{-1/2} E`.
    """
    vals = eig.values + delta
    if np.any(vals <= 0) or (eig.truncated and delta <= 0):
        raise ValueError(
            "damping is too small: a damped Kronecker factor is not positive definite "
            f"(smallest damped eigenvalue {min(vals.min(), delta):.3g})"
        )
    v = eig.vectors
    isq = 1.0 / np.sqrt(vals)
    m = ((v.T @ left) @ (right.T @ v)) * isq[:, None] * isq[None, :]
    s, e = np.linalg.eigh(0.5 * (m + m.T))
    return (v * isq) @ e, s


def _kd_build(eig_a, delta_a, pa, ac, eig_b, delta_b, pg, gc) -> KronDiffEig:
    r"""Decompose :math:`\Sigma = A^\gamma \otimes G^\gamma - P_A A_c^\top \otimes P_G G_c^\top`.

    The products :math:`C, D` are never formed on truncated sides (see :class:`KronDiffEig`).
    """
    k_a, s_a = _kd_side(eig_a, delta_a, pa, ac)
    k_b, s_b = _kd_side(eig_b, delta_b, pg, gc)
    if np.min(1.0 - np.outer(s_b, s_a)) <= 0:
        raise ValueError("A kron B - C kron D is not positive definite (1 - s_a s_b <= 0)")
    plain = None
    if eig_a.truncated or eig_b.truncated:
        plain = (eig_a, delta_a, eig_b, delta_b)
    return KronDiffEig(k_a, s_a, k_b, s_b, plain)


def _kd_apply(kd: KronDiffEig, x: np.ndarray) -> np.ndarray:
    """Apply the inverse to X of shape (..., n_b, n_a) (vec(X) column-major)."""
    if kd.plain is None:
        y = kd.k_b.T @ x @ kd.k_a
        y = y / (1.0 - np.outer(kd.s_b, kd.s_a))
        return kd.k_b @ y @ kd.k_a.T
    eig_a, delta_a, eig_b, delta_b = kd.plain
    p = np.outer(kd.s_b, kd.s_a)
    y = kd.k_b.T @ (x @ kd.k_a)
    corr = (kd.k_b @ (y * (p / (1.0 - p)))) @ kd.k_a.T
    out = _damped_apply(eig_b, delta_b, x, -1.0)
    out = np.swapaxes(_damped_apply(eig_a, delta_a, np.swapaxes(out, -1, -2), -1.0), -1, -2)
    return out + corr


def kron_diff_eig(a, b, c, d) -> KronDiffEig:
    r"""Precompute the Kronecker-difference inverse of M&G 2015, Appendix B.

    Parameters
    ----------
    a : ndarray, shape (n_a, n_a)
        Symmetric positive definite.
    b : ndarray, shape (n_b, n_b)
        Symmetric positive definite.
    c : ndarray, shape (n_a, n_a)
        Symmetric.
    d : ndarray, shape (n_b, n_b)
        Symmetric.

    Returns
    -------
    KronDiffEig

    Raises
    ------
    ValueError
        If ``a`` or ``b`` is not positive definite, shapes mismatch, or
        :math:`A \otimes B - C \otimes D` is not positive definite.
    """
    mats = {}
    for name, m in (("a", a), ("b", b), ("c", c), ("d", d)):
        mats[name] = as_array(m, name, ndim=2)
    na, nb = mats["a"].shape[0], mats["b"].shape[0]
    for name, n in (("a", na), ("c", na), ("b", nb), ("d", nb)):
        if mats[name].shape != (n, n):
            raise ValueError(f"{name} must have shape ({n}, {n}), got {mats[name].shape}")
    isqrt = {}
    for name in ("a", "b"):
        vals, vecs = np.linalg.eigh(mats[name])
        if vals[0] <= 0:
            raise ValueError(f"{name} must be positive definite")
        isqrt[name] = (vecs / np.sqrt(vals)) @ vecs.T
    return _kd_from_isqrt(isqrt["a"], mats["c"], isqrt["b"], mats["d"])


def kron_diff_solve(a, b, c, d, v) -> np.ndarray:
    r"""Solve :math:`(A \otimes B - C \otimes D)\, x = v` without forming the Kronecker products.

    Uses :func:`kron_diff_eig` (M&G 2015, Appendix B). ``np.kron`` ordering: with
    :math:`v = \operatorname{vec}(V)`, :math:`V \in \mathbb{R}^{n_b \times n_a}` column-major,
    :math:`(A \otimes B - C \otimes D)\operatorname{vec}(X) = \operatorname{vec}(B X A^\top -
    D X C^\top)`.

    Parameters
    ----------
    a, b, c, d : ndarray
        As in :func:`kron_diff_eig`.
    v : ndarray, shape (n_a n_b,) or (n_a n_b, k)

    Returns
    -------
    ndarray, same shape as ``v``

    Examples
    --------
    >>> import numpy as np
    >>> a, b = np.diag([2.0, 3.0]), np.diag([1.0, 4.0])
    >>> c, d = np.eye(2), np.eye(2)
    >>> v = np.arange(4.0)
    >>> x = kron_diff_solve(a, b, c, d, v)
    >>> bool(np.allclose((np.kron(a, b) - np.kron(c, d)) @ x, v))
    True
    """
    kd = kron_diff_eig(a, b, c, d)
    na, nb = kd.k_a.shape[0], kd.k_b.shape[0]
    v = as_array(v, "v", ndim=(1, 2))
    if v.shape[0] != na * nb:
        raise ValueError(f"v must have {na * nb} rows, got {v.shape[0]}")
    vv = v.reshape(na, nb, -1).transpose(2, 1, 0)
    out = _kd_apply(kd, vv).transpose(2, 1, 0).reshape(na * nb, -1)
    return out.reshape(v.shape)


# =========================================================================== operators
class KFACConfig(NamedTuple):
    r"""Hyperparameters of the K-FAC curvature (see the module docstring for each).

    Attributes
    ----------
    tridiagonal : bool, default True
        Block-tridiagonal (M&G Section 4.3) or block-diagonal (Section 4.2).
    damping : float, default 0.1
        :math:`\gamma`; factors get :math:`\pi\sqrt\gamma` and :math:`\sqrt\gamma/\pi`.
    decay : float, default 0.9
        EMA decay of the factors.
    inverse_every : int, default 20
        Recompute the decompositions when ``step % inverse_every == 0`` (M&G's :math:`T_3`).
    pi_heuristic : bool, default False
        Use M&G's :math:`\pi_l` to split the damping between the two factors.
    lowrank_c : float, default 4.0
        :math:`c` in :math:`r = \lceil c \ln n \rceil`.
    lowrank_threshold : int or None, default 512
        Factors of size :math:`n >` threshold are truncated; ``None`` disables.
    """

    tridiagonal: bool = True
    damping: float = 0.1
    decay: float = 0.9
    inverse_every: int = 20
    pi_heuristic: bool = False
    lowrank_c: float = 4.0
    lowrank_threshold: int | None = 512


class KFACCache(NamedTuple):
    r"""Decompositions an operator needs for ``solve``, computed at inverse-refresh time.

    Attributes
    ----------
    eig_A, eig_G : tuple of FactorEig
        (Possibly truncated) eigendecompositions of the undamped diagonal factors.
    damping : float
        The :math:`\gamma` that ``psi_A``, ``psi_G`` and ``sigma`` were computed for.
    psi_A, psi_G : tuple of ndarray
        Tridiagonal only: :math:`\Psi^A_l = A_{l,l+1} (A^\gamma_{l+1})^{-1}` and
        :math:`\Psi^G_l = G_{l,l+1} (G^\gamma_{l+1})^{-1}`, ``L - 1`` entries (empty for the
        block-diagonal operator).
    sigma : tuple of KronDiffEig
        Tridiagonal only: decompositions of :math:`\Sigma_{l|l+1}`, ``L - 1`` entries.
    """

    eig_A: tuple[FactorEig, ...]
    eig_G: tuple[FactorEig, ...]
    damping: float = 0.0
    psi_A: tuple[np.ndarray, ...] = ()
    psi_G: tuple[np.ndarray, ...] = ()
    sigma: tuple[KronDiffEig, ...] = ()


def _check_factors(factors: KFACFactors, need_cross: bool) -> KFACFactors:
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


def _reconstruct(m: np.ndarray, eig: FactorEig) -> np.ndarray:
    """Return the factor the operator uses: ``m`` itself, or its truncation."""
    if not eig.truncated:
        return m
    u = eig.vectors
    return (u * eig.values) @ u.T


def _project(eig: FactorEig, m: np.ndarray, side: str) -> np.ndarray:
    """Project ``m``'s rows (side 'left') or columns ('right') onto a truncated factor's span."""
    if not eig.truncated:
        return m
    u = eig.vectors
    return u @ (u.T @ m) if side == "left" else (m @ u) @ u.T


class _KFACBase:
    """Shared machinery: block partition, damping, vec/unvec, LinearOperator wrapper."""

    _tridiagonal = False

    def __init__(
        self,
        factors: KFACFactors,
        damping: float = 0.1,
        *,
        pi_heuristic: bool = False,
        lowrank_c: float = 4.0,
        lowrank_threshold: int | None = 512,
        cache: KFACCache | None = None,
    ) -> None:
        raw = _check_factors(factors, self._tridiagonal)
        self.damping = as_nonneg_scalar(damping, "damping")
        self.pi_heuristic = bool(pi_heuristic)
        self.lowrank_c = as_positive_scalar(lowrank_c, "lowrank_c")
        if lowrank_threshold is not None:
            lowrank_threshold = as_int(lowrank_threshold, "lowrank_threshold", minimum=1)
        self.lowrank_threshold = lowrank_threshold
        n_layers = len(raw.A)
        if cache is None:
            cache = KFACCache(
                tuple(
                    factor_eig(m, lowrank_c=lowrank_c, lowrank_threshold=lowrank_threshold)
                    for m in raw.A
                ),
                tuple(
                    factor_eig(m, lowrank_c=lowrank_c, lowrank_threshold=lowrank_threshold)
                    for m in raw.G
                ),
            )
        elif len(cache.eig_A) != n_layers or len(cache.eig_G) != n_layers:
            raise ValueError(f"cache must hold {n_layers} eigendecompositions per factor kind")
        self._eig_A, self._eig_G = cache.eig_A, cache.eig_G
        big_a = tuple(_reconstruct(m, e) for m, e in zip(raw.A, self._eig_A, strict=True))
        big_g = tuple(_reconstruct(m, e) for m, e in zip(raw.G, self._eig_G, strict=True))
        a_c, g_c = [], []
        for k in range(len(raw.A_cross)):
            a_c.append(
                _project(
                    self._eig_A[k + 1], _project(self._eig_A[k], raw.A_cross[k], "left"), "right"
                )
            )
            g_c.append(
                _project(
                    self._eig_G[k + 1], _project(self._eig_G[k], raw.G_cross[k], "left"), "right"
                )
            )
        # the factors actually used (truncated / projected where low-rank applies)
        self.factors = KFACFactors(big_a, big_g, tuple(a_c), tuple(g_c))
        self.block_shapes = tuple(
            (g.shape[0], a.shape[0]) for a, g in zip(big_a, big_g, strict=True)
        )
        sizes = [o * i for o, i in self.block_shapes]
        self.offsets = tuple(int(k) for k in np.concatenate([[0], np.cumsum(sizes)]))
        self.shape = (self.offsets[-1], self.offsets[-1])
        self.dtype = np.dtype(np.float64)
        self._pis = tuple(self._pi(a, g) for a, g in zip(big_a, big_g, strict=True))
        self._cache = cache

    # ------------------------------------------------------------------ damping
    def _pi(self, a: np.ndarray, g: np.ndarray) -> float:
        if not self.pi_heuristic:
            return 1.0
        ta, tg = np.trace(a) / a.shape[0], np.trace(g) / g.shape[0]
        if ta <= 0 or tg <= 0:
            return 1.0
        return float(np.sqrt(ta / tg))

    def _damping(self, damping) -> float:
        return self.damping if damping is None else as_nonneg_scalar(damping, "damping")

    def factor_damping(self, damping: float | None = None) -> tuple[tuple[float, float], ...]:
        r"""Per-layer :math:`(\pi_l\sqrt\gamma, \sqrt\gamma/\pi_l)` added to :math:`(A_l, G_l)`."""
        r = math.sqrt(self._damping(damping))
        return tuple((p * r, r / p) for p in self._pis)

    def _damped_factors(self, damping) -> tuple[list, list]:
        dd = self.factor_damping(damping)
        a = [m + da * np.eye(m.shape[0]) for m, (da, _) in zip(self.factors.A, dd, strict=True)]
        g = [m + dg * np.eye(m.shape[0]) for m, (_, dg) in zip(self.factors.G, dd, strict=True)]
        return a, g

    # ------------------------------------------------------------------ vec helpers
    def _split(self, v, name: str = "v") -> tuple[list[np.ndarray], bool]:
        v = as_array(v, name, ndim=(1, 2))
        if v.shape[0] != self.shape[0]:
            raise ValueError(f"{name} must have {self.shape[0]} rows, got {v.shape[0]}")
        vec = v.ndim == 1
        v2 = v[:, None] if vec else v
        blocks = []
        for (o, i), start in zip(self.block_shapes, self.offsets[:-1], strict=True):
            blocks.append(v2[start : start + o * i].reshape(i, o, -1).transpose(2, 1, 0))
        return blocks, vec

    def _join(self, blocks, vec: bool) -> np.ndarray:
        cols = [b.transpose(2, 1, 0).reshape(-1, b.shape[0]) for b in blocks]
        out = np.concatenate(cols, axis=0)
        return out[:, 0] if vec else out

    # ------------------------------------------------------------------ public API
    def matvec(self, v, damping: float | None = None) -> np.ndarray:
        r"""Multiply by the damped approximation :math:`\breve F^\gamma` (class docstring).

        Parameters
        ----------
        v : ndarray, shape (P,) or (P, k)
        damping : float, optional
            :math:`\gamma`; default the operator's ``damping``. ``0.0`` gives the undamped
            approximation.

        Returns
        -------
        ndarray, same shape as ``v``

        Raises
        ------
        ValueError
            If ``v`` has the wrong number of rows or non-finite entries.
        """
        x, vec = self._split(v)
        a, g = self._damped_factors(damping)
        return self._join(self._matvec_blocks(x, a, g), vec)

    def to_dense(self, damping: float | None = None) -> np.ndarray:
        r"""Dense :math:`\breve F^\gamma`, shape (P, P): the matrix :meth:`matvec` multiplies by.

        Parameters
        ----------
        damping : float, optional
            :math:`\gamma`; default the operator's ``damping``; ``0.0`` for undamped.

        Returns
        -------
        ndarray, shape (P, P)
        """
        a, g = self._damped_factors(damping)
        return self._dense(a, g)

    def solve(self, v, damping: float | None = None) -> np.ndarray:
        r"""Apply the approximate inverse (the exact matrix is stated in the class docstring).

        Parameters
        ----------
        v : ndarray, shape (P,) or (P, k)
        damping : float, optional
            :math:`\gamma`; default the operator's ``damping``.

        Returns
        -------
        ndarray, same shape as ``v``

        Raises
        ------
        ValueError
            If ``v`` is malformed, or a damped factor (or, block-tridiagonal, a
            :math:`\Sigma_{l|l+1}`) is not positive definite, e.g. ``damping=0`` with a singular
            or truncated factor.
        """
        x, vec = self._split(v)
        return self._join(self._solve_blocks(x, self._damping(damping)), vec)

    def inverse_to_dense(self, damping: float | None = None) -> np.ndarray:
        """Dense matrix that :meth:`solve` applies, shape (P, P), built column by column.

        Parameters
        ----------
        damping : float, optional
            Default the operator's ``damping``.

        Returns
        -------
        ndarray, shape (P, P)
        """
        return self.solve(np.eye(self.shape[0]), damping)

    def aslinearoperator(self, damping: float | None = None, *, inverse: bool = False):
        r"""Wrap as a symmetric :class:`scipy.sparse.linalg.LinearOperator`.

        Parameters
        ----------
        damping : float, optional
            Fixed :math:`\gamma` of the wrapped operator; default the operator's.
        inverse : bool, default False
            Wrap :meth:`solve` instead of :meth:`matvec`.

        Returns
        -------
        scipy.sparse.linalg.LinearOperator, shape (P, P)
        """
        gamma = self._damping(damping)
        f = self.solve if inverse else self.matvec

        def mv(v):
            return f(np.asarray(v, dtype=np.float64).reshape(-1), gamma)

        def mm(v):
            return f(np.asarray(v, dtype=np.float64), gamma)

        return LinearOperator(
            self.shape, matvec=mv, rmatvec=mv, matmat=mm, rmatmat=mm, dtype=np.float64
        )

    def _solve_last(self, k: int, x: np.ndarray, gamma: float) -> np.ndarray:
        """Apply (A^gamma_k kron G^gamma_k)^{-1} blockwise: G^-1 X A^-1."""
        da, dg = self.factor_damping(gamma)[k]
        y = _damped_apply(self._eig_G[k], dg, x, -1.0)
        y = _damped_apply(self._eig_A[k], da, np.swapaxes(y, -1, -2), -1.0)
        return np.swapaxes(y, -1, -2)


class BlockDiagKFAC(_KFACBase):
    r"""Block-diagonal K-FAC (Martens & Grosse 2015, Section 4.2).

    .. math::
        \breve F^\gamma = \operatorname{diag}\big(A^\gamma_1 \otimes G^\gamma_1, \dots,
        A^\gamma_L \otimes G^\gamma_L\big), \qquad
        A^\gamma_l = A_l + \pi_l\sqrt\gamma I,\ G^\gamma_l = G_l + \frac{\sqrt\gamma}{\pi_l} I,

    in the vec / Kronecker ordering of the module docstring. ``matvec`` and ``to_dense`` give
    :math:`\breve F^\gamma` (``damping=0.0``: the undamped :math:`\operatorname{diag}(A_l \otimes
    G_l)`), and ``solve`` applies its **exact inverse**
    :math:`\operatorname{diag}((A^\gamma_l)^{-1} \otimes (G^\gamma_l)^{-1})`, blockwise
    :math:`X \mapsto (G^\gamma_l)^{-1} X (A^\gamma_l)^{-1}`, through the cached
    eigendecompositions of the factors. Large factors may be truncated (module docstring).

    Parameters
    ----------
    factors : KFACFactors
        From :func:`kfac_factors` (cross factors are ignored).
    damping : float, default 0.1
        :math:`\gamma`.
    pi_heuristic : bool, default False
        Split the damping with M&G's :math:`\pi_l`.
    lowrank_c : float, default 4.0
        :math:`c` of the low-rank approximation.
    lowrank_threshold : int or None, default 512
        Truncate factors larger than this; ``None`` never truncates.
    cache : KFACCache, optional
        Precomputed decompositions (from :func:`kfac_update`); normally left ``None``.

    Attributes
    ----------
    factors : KFACFactors
        The factors actually used (truncated / projected where the low-rank rule applies).
    block_shapes : tuple of (int, int)
        :math:`(d_l, d_{l-1} + 1)` per layer, the shape of :math:`\bar W_l`.
    offsets : tuple of int
        Start of each layer's block in a length-:math:`P` vector (last entry :math:`P`).
    shape : (int, int)
        :math:`(P, P)`.
    damping : float
        Default :math:`\gamma`.

    Examples
    --------
    >>> import numpy as np
    >>> from refvpng.curvature.kfac import BlockDiagKFAC, kfac_factors
    >>> rng = np.random.default_rng(0)
    >>> a_bar = np.c_[rng.standard_normal((5, 2)), np.ones(5)]
    >>> pairs = [(a_bar, rng.standard_normal((5, 2)))]
    >>> op = BlockDiagKFAC(kfac_factors(pairs), damping=0.1)
    >>> v = rng.standard_normal(6)
    >>> bool(np.allclose(op.solve(op.matvec(v)), v))
    True
    """

    def _matvec_blocks(self, x, a, g):
        return [gg @ xx @ aa.T for xx, aa, gg in zip(x, a, g, strict=True)]

    def _dense(self, a, g):
        return scipy.linalg.block_diag(*[np.kron(aa, gg) for aa, gg in zip(a, g, strict=True)])

    def _solve_blocks(self, x, gamma):
        return [self._solve_last(k, xx, gamma) for k, xx in enumerate(x)]


class BlockTridiagKFAC(_KFACBase):
    r"""Block-tridiagonal K-FAC (Martens & Grosse 2015, Section 4.3).

    The approximation is the block-tridiagonal matrix

    .. math::
        \breve F^\gamma_{l,l} = A^\gamma_l \otimes G^\gamma_l, \qquad
        \breve F^\gamma_{l,l+1} = A_{l,l+1} \otimes G_{l,l+1}, \qquad
        \breve F^\gamma_{l+1,l} = (\breve F^\gamma_{l,l+1})^\top,

    with the factored damping on the diagonal factors only (module docstring); ``matvec`` and
    ``to_dense`` give :math:`\breve F^\gamma` (``damping=0.0``: undamped). Neighbours include
    the encoder's last and the decoder's first layer of a :class:`refvpng.nn.Chain`.

    ``solve`` applies the inverse of the directed Gaussian graphical model of M&G,

    .. math::
        \hat F^{-1} = \Xi^\top \Lambda \Xi, \quad
        \Xi = \begin{bmatrix} I & -\Psi_{1,2} & & \\ & I & -\Psi_{2,3} & \\
        & & \ddots & \ddots \\ & & & I \end{bmatrix}, \quad
        \Lambda = \operatorname{diag}(\Sigma_{1|2}^{-1}, \dots, \Sigma_{L-1|L}^{-1},
        (\breve F^\gamma_{L,L})^{-1}),

    .. math::
        \Psi_{l,l+1} = \breve F^\gamma_{l,l+1} (\breve F^\gamma_{l+1,l+1})^{-1}
        = \Psi^A_l \otimes \Psi^G_l
        = A_{l,l+1} (A^\gamma_{l+1})^{-1} \otimes G_{l,l+1} (G^\gamma_{l+1})^{-1},

    .. math::
        \Sigma_{l|l+1} = \breve F^\gamma_{l,l} - \Psi_{l,l+1} \breve F^\gamma_{l+1,l+1}
        \Psi_{l,l+1}^\top = A^\gamma_l \otimes G^\gamma_l
        - \Psi^A_l A^\gamma_{l+1} \Psi^{A\top}_l \otimes \Psi^G_l G^\gamma_{l+1} \Psi^{G\top}_l,

    each :math:`\Sigma_{l|l+1}^{-1}` applied with the Kronecker-difference solve of M&G
    Appendix B (:func:`kron_diff_solve`). The matrix it inverts exactly is
    :math:`\hat F^\gamma = (\Xi^\top\Lambda\Xi)^{-1}`, the unique matrix that **agrees with**
    :math:`\breve F^\gamma` **on the diagonal and first off-diagonal blocks** and whose inverse
    is block-tridiagonal; the blocks further out are
    :math:`\hat F_{l,m} = \Psi_{l,l+1} \hat F_{l+1,m}` (:math:`m > l + 1`). For two layers
    :math:`\hat F^\gamma = \breve F^\gamma`. ``inverse_to_dense`` returns
    :math:`\Xi^\top\Lambda\Xi`.

    Factors computed from rows by :func:`kfac_factors` (or EMAs of such) keep every
    :math:`\Sigma_{l|l+1}` positive definite for ``damping > 0`` (a Schur complement of a Gram
    matrix plus damping).

    Parameters
    ----------
    factors : KFACFactors
        From :func:`kfac_factors` with ``cross=True``.
    damping : float, default 0.1
        :math:`\gamma`.
    **kwargs
        ``pi_heuristic``, ``lowrank_c``, ``lowrank_threshold``, ``cache`` as in
        :class:`BlockDiagKFAC` (which also lists the attributes).

    Examples
    --------
    >>> import numpy as np
    >>> from refvpng.curvature.kfac import BlockTridiagKFAC, kfac_factors
    >>> rng = np.random.default_rng(0)
    >>> a0, g0 = np.c_[rng.standard_normal((6, 2)), np.ones(6)], rng.standard_normal((6, 2))
    >>> a1, g1 = np.c_[rng.standard_normal((6, 2)), np.ones(6)], rng.standard_normal((6, 1))
    >>> op = BlockTridiagKFAC(kfac_factors([(a0, g0), (a1, g1)]), damping=0.1)
    >>> v = rng.standard_normal(op.shape[0])
    >>> bool(np.allclose(op.solve(v), np.linalg.solve(op.to_dense(), v)))  # two layers: exact
    True
    """

    _tridiagonal = True

    def __init__(self, factors: KFACFactors, damping: float = 0.1, **kwargs) -> None:
        super().__init__(factors, damping, **kwargs)
        self._solvers: dict[float, KFACCache] = {}
        if len(self._cache.sigma) == len(self.factors.A) - 1 > 0:
            self._solvers[self._cache.damping] = self._cache

    def _matvec_blocks(self, x, a, g):
        ac, gc = self.factors.A_cross, self.factors.G_cross
        out = []
        for k in range(len(x)):
            y = g[k] @ x[k] @ a[k].T
            if k + 1 < len(x):
                y = y + gc[k] @ x[k + 1] @ ac[k].T
            if k > 0:
                y = y + gc[k - 1].T @ x[k - 1] @ ac[k - 1]
            out.append(y)
        return out

    def _dense(self, a, g):
        off = self.offsets
        out = np.zeros(self.shape)
        for k in range(len(a)):
            out[off[k] : off[k + 1], off[k] : off[k + 1]] = np.kron(a[k], g[k])
            if k + 1 < len(a):
                blk = np.kron(self.factors.A_cross[k], self.factors.G_cross[k])
                out[off[k] : off[k + 1], off[k + 1] : off[k + 2]] = blk
                out[off[k + 1] : off[k + 2], off[k] : off[k + 1]] = blk.T
        return out

    def _solver(self, gamma: float) -> KFACCache:
        if gamma not in self._solvers:
            self._solvers[gamma] = _tridiag_cache(self, gamma)
        return self._solvers[gamma]

    def _solve_blocks(self, x, gamma):
        c = self._solver(gamma)
        n_layers = len(x)
        w = []
        for k in range(n_layers):  # Lambda Xi v
            if k + 1 < n_layers:
                u = x[k] - c.psi_G[k] @ x[k + 1] @ c.psi_A[k].T
                w.append(_kd_apply(c.sigma[k], u))
            else:
                w.append(self._solve_last(k, x[k], gamma))
        return [w[0]] + [  # Xi^T
            w[k] - c.psi_G[k - 1].T @ w[k - 1] @ c.psi_A[k - 1] for k in range(1, n_layers)
        ]


def _right_inverse(m: np.ndarray, eig: FactorEig, delta: float) -> np.ndarray:
    """Return ``m @ (U diag(a) U^T + delta I)^{-1}`` through the eigendecomposition."""
    return _damped_apply(eig, delta, m.T, -1.0).T


def _tridiag_cache(op: BlockTridiagKFAC, gamma: float) -> KFACCache:
    """Psi factors and Sigma decompositions of a tridiagonal operator for damping ``gamma``.

    Truncated factors are used through their eigenpairs only (no dense inverse or inverse
    square root of a truncated factor is formed; see :class:`KronDiffEig`).
    """
    dd = op.factor_damping(gamma)
    ea, eg = op._eig_A, op._eig_G
    psi_a, psi_g, sigma = [], [], []
    for k in range(len(ea) - 1):
        ac, gc = op.factors.A_cross[k], op.factors.G_cross[k]
        pa = _right_inverse(ac, ea[k + 1], dd[k + 1][0])
        pg = _right_inverse(gc, eg[k + 1], dd[k + 1][1])
        try:
            kd = _kd_build(ea[k], dd[k][0], pa, ac, eg[k], dd[k][1], pg, gc)
        except ValueError as exc:
            raise ValueError(f"Sigma_{{{k}|{k + 1}}} is not positive definite: {exc}") from None
        psi_a.append(pa)
        psi_g.append(pg)
        sigma.append(kd)
    return KFACCache(ea, eg, gamma, tuple(psi_a), tuple(psi_g), tuple(sigma))


# =========================================================================== state
class KFACState(NamedTuple):
    r"""State of the running K-FAC curvature estimate (init/update pair).

    Attributes
    ----------
    factors : KFACFactors
        Exponential moving average of the factors, updated every step.
    inverse_factors : KFACFactors
        Snapshot of ``factors`` at the last inverse refresh: what ``cache`` decomposes and
        what :func:`kfac_operator` represents (so that its ``solve`` inverts its ``to_dense``).
    cache : KFACCache
        Cached eigendecompositions (and, tridiagonal, :math:`\Psi`, :math:`\Sigma`
        decompositions for ``config.damping``).
    config : KFACConfig
        Hyperparameters.
    """

    factors: KFACFactors
    inverse_factors: KFACFactors
    cache: KFACCache
    config: KFACConfig


def _make_operator(factors: KFACFactors, config: KFACConfig, cache: KFACCache | None):
    cls = BlockTridiagKFAC if config.tridiagonal else BlockDiagKFAC
    return cls(
        factors,
        config.damping,
        pi_heuristic=config.pi_heuristic,
        lowrank_c=config.lowrank_c,
        lowrank_threshold=config.lowrank_threshold,
        cache=cache,
    )


def _refresh(factors: KFACFactors, config: KFACConfig) -> KFACCache:
    op = _make_operator(factors, config, None)
    if isinstance(op, BlockTridiagKFAC):
        return op._solver(op.damping)
    return op._cache


def kfac_init(pairs, weights=None, *, config: KFACConfig | None = None, **kwargs) -> KFACState:
    r"""Start a K-FAC estimate from a first batch of ``(a_bar, g)`` pairs.

    Parameters
    ----------
    pairs : sequence of (ndarray, ndarray)
        Per-layer pairs (e.g. from :func:`refvpng.nn.vp_kfac_pairs_chain`).
    weights : ndarray, shape (R,), optional
        Row weights (:math:`1/M` for Eq. 16).
    config : KFACConfig, optional
        Hyperparameters; alternatively pass its fields as keyword arguments.
    **kwargs
        Fields of :class:`KFACConfig` (only without ``config``).

    Returns
    -------
    KFACState
        With ``factors = inverse_factors`` = the batch's factors and fresh decompositions.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> pairs = [(np.c_[rng.standard_normal((4, 2)), np.ones(4)], rng.standard_normal((4, 2)))]
    >>> state = kfac_init(pairs, inverse_every=5)
    >>> state = kfac_update(state, pairs, step=1)  # EMA only, decompositions kept
    >>> kfac_operator(state).solve(np.ones(6)).shape
    (6,)
    """
    if config is None:
        config = KFACConfig(**kwargs)
    elif kwargs:
        raise TypeError("pass either config or keyword hyperparameters, not both")
    config = _check_config(config)
    return kfac_state(kfac_factors(pairs, weights, cross=config.tridiagonal), config)


def kfac_state(factors: KFACFactors, config: KFACConfig | None = None, **kwargs) -> KFACState:
    r"""Start a K-FAC estimate from precomputed factors (e.g. a model-specific fast path).

    Same as :func:`kfac_init` for ``factors = kfac_factors(pairs, weights)``.

    Parameters
    ----------
    factors : KFACFactors
        With cross factors when ``config.tridiagonal``.
    config : KFACConfig, optional
        Hyperparameters; alternatively pass its fields as keyword arguments.
    **kwargs
        Fields of :class:`KFACConfig` (only without ``config``).

    Returns
    -------
    KFACState
    """
    if config is None:
        config = KFACConfig(**kwargs)
    elif kwargs:
        raise TypeError("pass either config or keyword hyperparameters, not both")
    config = _check_config(config)
    factors = _check_factors(factors, config.tridiagonal)
    return KFACState(factors, factors, _refresh(factors, config), config)


def _check_config(config: KFACConfig) -> KFACConfig:
    if not isinstance(config, KFACConfig):
        raise TypeError(f"config must be a KFACConfig, got {type(config).__name__}")
    decay = as_nonneg_scalar(config.decay, "decay")
    if decay > 1:
        raise ValueError(f"decay must be in [0, 1], got {decay}")
    as_int(config.inverse_every, "inverse_every")
    as_nonneg_scalar(config.damping, "damping")
    as_positive_scalar(config.lowrank_c, "lowrank_c")
    return config


def kfac_update(state: KFACState, pairs, step: int, weights=None) -> KFACState:
    r"""One K-FAC step: EMA of the factors, decompositions refreshed when ``step % k == 0``.

    .. math::
        \text{factors} \leftarrow \text{decay} \cdot \text{factors}
        + (1 - \text{decay}) \cdot \text{kfac\_factors}(\text{pairs}),

    and, if ``step % config.inverse_every == 0``, ``inverse_factors = factors`` with fresh
    decompositions; otherwise ``inverse_factors`` and ``cache`` are carried over unchanged.
    Pure: ``state`` is not modified.

    Parameters
    ----------
    state : KFACState
    pairs : sequence of (ndarray, ndarray)
        This step's per-layer pairs.
    step : int
        Iteration counter (non-negative).
    weights : ndarray, shape (R,), optional
        Row weights.

    Returns
    -------
    KFACState
    """
    if not isinstance(state, KFACState):
        raise TypeError(f"state must be a KFACState, got {type(state).__name__}")
    new = kfac_factors(pairs, weights, cross=state.config.tridiagonal)
    return kfac_step(state, new, step)


def kfac_step(state: KFACState, factors: KFACFactors, step: int) -> KFACState:
    r""":func:`kfac_update` with this step's factors precomputed.

    Parameters
    ----------
    state : KFACState
    factors : KFACFactors
        This step's factors, same structure as ``state.factors``.
    step : int
        Iteration counter (non-negative); the decompositions are refreshed when
        ``step % config.inverse_every == 0``.

    Returns
    -------
    KFACState
    """
    if not isinstance(state, KFACState):
        raise TypeError(f"state must be a KFACState, got {type(state).__name__}")
    step = as_int(step, "step", minimum=0)
    config = state.config
    if not config.tridiagonal and isinstance(factors, KFACFactors):
        factors = KFACFactors(factors.A, factors.G)
    factors = kfac_ema(state.factors, factors, config.decay)
    if step % config.inverse_every == 0:
        return KFACState(factors, factors, _refresh(factors, config), config)
    return KFACState(factors, state.inverse_factors, state.cache, config)


def kfac_operator(state: KFACState) -> BlockDiagKFAC | BlockTridiagKFAC:
    """Build the operator of the last refresh from the cached decompositions (no new eig).

    Parameters
    ----------
    state : KFACState

    Returns
    -------
    BlockDiagKFAC or BlockTridiagKFAC
        Representing ``state.inverse_factors`` with ``state.config``'s damping.
    """
    if not isinstance(state, KFACState):
        raise TypeError(f"state must be a KFACState, got {type(state).__name__}")
    return _make_operator(state.inverse_factors, state.config, state.cache)
