r"""Kronecker linear algebra of K-FAC: factor eigendecompositions, low rank, Kronecker differences.

The low-rank rule and the damped factors are described in :mod:`refvpng.curvature.kfac`.

References
----------
.. [1] J. Martens and R. Grosse, "Optimizing neural networks with Kronecker-factored
   approximate curvature", ICML 2015, Appendix B (the Kronecker-difference solve).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import scipy.linalg
from numpy.typing import ArrayLike

from refvpng._checks import as_array, as_int, as_positive_scalar, check_bool, check_symmetric

__all__ = [
    "FactorEig",
    "lowrank_rank",
    "factor_eig",
    "KronDiffEig",
    "kron_diff_eig",
    "kron_diff_solve",
]


class FactorEig(NamedTuple):
    r"""Eigendecomposition of a symmetric factor, possibly truncated to leading eigenpairs.

    Attributes
    ----------
    values : ndarray, shape (r,)
        Eigenvalues (ascending).
    vectors : ndarray, shape (n, r)
        Orthonormal eigenvectors; ``r < n`` means the factor is truncated (low-rank), the
        remaining eigenvalues being taken as zero.
    dropped : bool, default False
        Only for a truncated factor: the orthogonal complement of ``vectors`` is **dropped**
        rather than kept at the damping value. The damped factor is then
        :math:`U \operatorname{diag}(\alpha + \delta) U^\top` (singular), and every "inverse"
        is its Moore-Penrose pseudo-inverse :math:`U \operatorname{diag}(1/(\alpha +
        \delta)) U^\top`, zero on the complement (the configuration of Tang & Ranganath's
        public script, whose layer-1 update lives in the span of :math:`U`).
    """

    values: np.ndarray
    vectors: np.ndarray
    dropped: bool = False

    @property
    def truncated(self) -> bool:
        """Whether only leading eigenpairs are kept."""
        return self.vectors.shape[1] < self.vectors.shape[0]


def lowrank_rank(n: int, c: float = 4.0, *, floor: bool = False) -> int:
    r"""Return the number of kept eigenpairs :math:`r = \min(n, \lceil c \ln n \rceil)`.

    With ``floor=True`` the rank is :math:`\lfloor c \ln n \rfloor` instead (the authors'
    script takes ``int(4 * log(n))`` eigenpairs, 26 for the 785-wide input factor).

    Examples
    --------
    >>> lowrank_rank(785)  # the input factor of a 784-pixel image plus bias
    27
    >>> lowrank_rank(785, floor=True)
    26
    """
    n = as_int(n, "n")
    c = as_positive_scalar(c, "c")
    floor = check_bool(floor, "floor")
    r = math.floor(c * math.log(n)) if floor else math.ceil(c * math.log(n))
    return max(1, min(n, r))


def factor_eig(
    m: ArrayLike,
    *,
    lowrank_c: float = 4.0,
    lowrank_threshold: int | None = None,
    lowrank_floor: bool = False,
    drop_remainder: bool = False,
) -> FactorEig:
    r"""Eigendecomposition of a symmetric factor, truncated only if it exceeds a given threshold.

    An exactly diagonal untruncated factor (such as the diagonal output factor
    :math:`\operatorname{diag} E[p(1-p)]`) is decomposed without ``eigh``: its eigenvalues are
    its diagonal (sorted ascending) and its eigenvectors the matching unit vectors.

    Parameters
    ----------
    m : ndarray, shape (n, n)
        Symmetric factor.
    lowrank_c : float, default 4.0
        :math:`c` in :math:`r = \lceil c \ln n \rceil` (see :func:`lowrank_rank`).
    lowrank_threshold : int or None, default None
        Truncate only when ``n > lowrank_threshold``; ``None`` (the default) never truncates.
    lowrank_floor : bool, default False
        Round the rank down (see :func:`lowrank_rank`).
    drop_remainder : bool, default False
        Mark a truncated factor's complement as dropped (see :class:`FactorEig`).

    Returns
    -------
    FactorEig
    """
    m = check_symmetric(m, "m")
    n = m.shape[0]
    lowrank_c = as_positive_scalar(lowrank_c, "lowrank_c")
    if lowrank_threshold is not None:
        lowrank_threshold = as_int(lowrank_threshold, "lowrank_threshold")
    lowrank_floor = check_bool(lowrank_floor, "lowrank_floor")
    drop_remainder = check_bool(drop_remainder, "drop_remainder")
    if lowrank_threshold is not None and n > lowrank_threshold:
        r = lowrank_rank(n, lowrank_c, floor=lowrank_floor)
        if r < n:
            vals, vecs = scipy.linalg.eigh(m, subset_by_index=[n - r, n - 1])
            return FactorEig(vals, vecs, drop_remainder)
    diag = np.diagonal(m)
    if n > 1 and not np.any(m - np.diag(diag)):
        order = np.argsort(diag, kind="stable")
        return FactorEig(diag[order].copy(), np.eye(n)[:, order])
    vals, vecs = np.linalg.eigh(m)
    return FactorEig(vals, vecs)


def _damped_values(eig: FactorEig, delta: float) -> np.ndarray:
    """Eigenvalues of the damped factor; raise if it is not positive definite."""
    vals = eig.values + delta
    if np.any(vals <= 0) or (eig.truncated and not eig.dropped and delta <= 0):
        rounding = eig.values.shape[0] * np.finfo(float).eps * np.max(np.abs(eig.values))
        if 0 < delta < rounding and -eig.values.min() <= rounding:
            raise FloatingPointError(
                f"factor_damping {delta:.3g} is below the rounding error {rounding:.3g} of a Kronecker "
                f"factor whose largest eigenvalue is {np.max(np.abs(eig.values)):.3g}: the damped factor "
                "is not numerically positive definite at this magnitude (rescale the factors)"
            )
        raise ValueError(
            "factor_damping is too small: a damped Kronecker factor is not positive definite "
            f"(smallest damped eigenvalue {min(vals.min(), delta):.3g})"
        )
    return vals


def damped_apply(eig: FactorEig, delta: float, x: np.ndarray, power: float) -> np.ndarray:
    r"""Apply :math:`(U \operatorname{diag}(\alpha) U^\top + \delta I)^{p}` to ``x`` (..., n, k).

    A dropped remainder (``eig.dropped``) contributes nothing: the result is
    :math:`U \operatorname{diag}((\alpha + \delta)^p) U^\top x` (the pseudo-inverse for
    :math:`p = -1`).
    """
    vals = _damped_values(eig, delta)
    u = eig.vectors
    ux = np.swapaxes(u, -1, -2) @ x
    out = u @ (vals[:, None] ** power * ux)
    if eig.truncated and not eig.dropped:
        out = out + delta**power * (x - u @ ux)
    return out


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


def _check_kron_diff(s_a: np.ndarray, s_b: np.ndarray) -> None:
    if np.min(1.0 - np.outer(s_b, s_a)) <= 0:
        raise ValueError(
            "a kron b - c kron d is not positive definite (1 - s_a s_b <= 0): "
            "c and d are too large for a and b"
        )


def _kd_from_isqrt(a_isqrt, c, b_isqrt, d) -> KronDiffEig:
    s_a, e_a = np.linalg.eigh(a_isqrt @ c @ a_isqrt)
    s_b, e_b = np.linalg.eigh(b_isqrt @ d @ b_isqrt)
    _check_kron_diff(s_a, s_b)
    return KronDiffEig(a_isqrt @ e_a, s_a, b_isqrt @ e_b, s_b)


def _kd_side(eig: FactorEig, delta: float, left: np.ndarray, right: np.ndarray):
    r"""``(K, s)`` of one side from ``C = left @ right.T`` (``left``, ``right``: (n, m)).

    With :math:`V` the (possibly truncated) eigenvectors and :math:`D = \alpha + \delta`:
    :math:`M = D^{-1/2} (V^\top \mathrm{left})(V^\top \mathrm{right})^\top D^{-1/2}`,
    :math:`M = E S E^\top`, :math:`K = V D^{-1/2} E`.
    """
    vals = _damped_values(eig, delta)
    v = eig.vectors
    isq = 1.0 / np.sqrt(vals)
    m = ((v.T @ left) @ (right.T @ v)) * isq[:, None] * isq[None, :]
    s, e = np.linalg.eigh(0.5 * (m + m.T))
    return (v * isq) @ e, s


def kd_build(eig_a, delta_a, pa, ac, eig_b, delta_b, pg, gc) -> KronDiffEig:
    r"""Decompose :math:`\Sigma = A^\gamma \otimes G^\gamma - P_A A_c^\top \otimes P_G G_c^\top`.

    The products :math:`C, D` are never formed on truncated sides (see :class:`KronDiffEig`).
    """
    k_a, s_a = _kd_side(eig_a, delta_a, pa, ac)
    k_b, s_b = _kd_side(eig_b, delta_b, pg, gc)
    _check_kron_diff(s_a, s_b)
    plain = None
    if eig_a.truncated or eig_b.truncated:
        plain = (eig_a, delta_a, eig_b, delta_b)
    return KronDiffEig(k_a, s_a, k_b, s_b, plain)


def kd_apply(kd: KronDiffEig, x: np.ndarray) -> np.ndarray:
    """Apply the inverse to X of shape (..., n_b, n_a) (vec(X) column-major)."""
    if kd.plain is None:
        y = kd.k_b.T @ x @ kd.k_a
        y = y / (1.0 - np.outer(kd.s_b, kd.s_a))
        return kd.k_b @ y @ kd.k_a.T
    eig_a, delta_a, eig_b, delta_b = kd.plain
    p = np.outer(kd.s_b, kd.s_a)
    y = kd.k_b.T @ (x @ kd.k_a)
    corr = (kd.k_b @ (y * (p / (1.0 - p)))) @ kd.k_a.T
    out = damped_apply(eig_b, delta_b, x, -1.0)
    out = np.swapaxes(damped_apply(eig_a, delta_a, np.swapaxes(out, -1, -2), -1.0), -1, -2)
    return out + corr


def kron_diff_eig(a: ArrayLike, b: ArrayLike, c: ArrayLike, d: ArrayLike) -> KronDiffEig:
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
        mats[name] = check_symmetric(m, name)
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


def kron_diff_solve(a: ArrayLike, b: ArrayLike, c: ArrayLike, d: ArrayLike, v: ArrayLike) -> np.ndarray:
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
    out = kd_apply(kd, vv).transpose(2, 1, 0).reshape(na * nb, -1)
    return out.reshape(v.shape)


def reconstruct(m: np.ndarray, eig: FactorEig) -> np.ndarray:
    """Return the factor the operator uses: ``m`` itself, or its truncation."""
    if not eig.truncated:
        return m
    u = eig.vectors
    return (u * eig.values) @ u.T


def project(eig: FactorEig, m: np.ndarray, side: str) -> np.ndarray:
    """Project ``m``'s rows (side 'left') or columns ('right') onto a truncated factor's span."""
    if not eig.truncated:
        return m
    u = eig.vectors
    return u @ (u.T @ m) if side == "left" else (m @ u) @ u.T


def right_inverse(m: np.ndarray, eig: FactorEig, delta: float) -> np.ndarray:
    """Return ``m @ (U diag(a) U^T + delta I)^{-1}`` through the eigendecomposition."""
    return damped_apply(eig, delta, m.T, -1.0).T
