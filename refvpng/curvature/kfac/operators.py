r"""K-FAC operators: one Kronecker block, the shared operator base and the block-diagonal operator.

Every K-FAC operator holds one :class:`KroneckerBlock` per layer, the damped
:math:`A^\gamma_l \otimes G^\gamma_l` (conventions in :mod:`refvpng.curvature.kfac`), and
implements the :class:`~refvpng.curvature.operator.Curvature` protocol with the factor damping
:math:`\gamma` (``factor_damping``) as its damping. :class:`BlockDiagKFAC` is the
block-diagonal of the blocks; :class:`~refvpng.curvature.kfac.tridiag.BlockTridiagKFAC`
(its own module) adds the cross blocks :math:`A_{l,l+1} \otimes G_{l,l+1}`.
"""

from __future__ import annotations

import abc
import math
from typing import Any, NamedTuple

import numpy as np
import scipy.linalg
from numpy.typing import ArrayLike
from scipy.sparse.linalg import LinearOperator

from refvpng._checks import (
    as_array,
    as_int,
    as_nonneg_scalar,
    as_positive_scalar,
    check_bool,
    check_choice,
    check_finite_output,
)
from refvpng.curvature.kfac.factors import KFACFactors, check_factors
from refvpng.curvature.kfac.linalg import (
    FactorEig,
    KronDiffEig,
    damped_apply,
    factor_eig,
    project,
    reconstruct,
)
from refvpng.curvature.operator import InverseCurvature, as_linear_operator

__all__ = ["KroneckerBlock", "KFACCache", "BlockDiagKFAC"]

DAMPING_SPLITS = ("sqrt", "each")
"""``damping_split``: factored Tikhonov (M&G Section 6.3) or the same value on every factor."""
LOWRANK_REMAINDERS = ("damped", "dropped")
"""``lowrank_remainder``: a truncated factor's complement kept at the damping value, or dropped."""
LOWRANK_FACTORS = ("both", "input")
"""``lowrank_factors``: the low-rank rule applies to input and output factors, or inputs only."""


class KroneckerBlock(NamedTuple):
    r"""One layer's Kronecker block :math:`A^\gamma \otimes G^\gamma` with factored damping.

    Attributes
    ----------
    A : ndarray, shape (d_{l-1} + 1, d_{l-1} + 1)
        Input factor as used (truncated where the low-rank rule applies).
    G : ndarray, shape (d_l, d_l)
        Output-gradient factor as used.
    eig_A, eig_G : FactorEig
        Their (possibly truncated) eigendecompositions.
    pi : float
        :math:`\pi_l` splitting the damping (1 without the heuristic).
    each : bool, default False
        Eigenvalue damping: :math:`\gamma` itself is added to the eigenvalues of **each**
        factor (:math:`A + \gamma I`, :math:`G + \gamma I`, ``pi`` ignored) instead of the
        factored :math:`\pi\sqrt\gamma`, :math:`\sqrt\gamma/\pi`.
    """

    A: np.ndarray
    G: np.ndarray
    eig_A: FactorEig
    eig_G: FactorEig
    pi: float = 1.0
    each: bool = False

    def shifts(self, gamma: float) -> tuple[float, float]:
        r"""Return the shifts added to :math:`(A, G)`.

        :math:`(\pi\sqrt\gamma, \sqrt\gamma/\pi)`, or :math:`(\gamma, \gamma)` with
        eigenvalue damping (``each``).
        """
        gamma = as_nonneg_scalar(gamma, "gamma")
        if self.each:
            return check_finite_output((gamma, gamma), "shifts")
        r = math.sqrt(gamma)
        return check_finite_output((self.pi * r, r / self.pi), "shifts")

    def damped(self, gamma: float) -> tuple[np.ndarray, np.ndarray]:
        r"""Return :math:`(A^\gamma, G^\gamma)` (a dropped remainder gets no shift)."""
        da, dg = self.shifts(gamma)
        return _shift(self.A, self.eig_A, da), _shift(self.G, self.eig_G, dg)

    def solve(self, x: np.ndarray, gamma: float) -> np.ndarray:
        r"""Apply :math:`(A^\gamma \otimes G^\gamma)^{-1}` to ``x`` (..., d_l, d_{l-1}+1)."""
        da, dg = self.shifts(gamma)
        x = as_array(x, "x", ndim=(2, 3))
        if x.shape[-2:] != (self.G.shape[0], self.A.shape[0]):
            raise ValueError(f"x must have shape (..., {self.G.shape[0]}, {self.A.shape[0]}), got {x.shape}")
        y = damped_apply(self.eig_G, dg, x, -1.0)
        y = damped_apply(self.eig_A, da, np.swapaxes(y, -1, -2), -1.0)
        return check_finite_output(np.swapaxes(y, -1, -2), "solve")


def _shift(m: np.ndarray, eig: FactorEig, delta: float) -> np.ndarray:
    """``m + delta I``, or ``m + delta U U^T`` when the truncated remainder is dropped."""
    if eig.dropped and eig.truncated:
        return m + delta * (eig.vectors @ eig.vectors.T)
    return m + delta * np.eye(m.shape[0])


class KFACCache(NamedTuple):
    r"""Decompositions an operator needs for ``solve``, computed at inverse-refresh time.

    Attributes
    ----------
    eig_A, eig_G : tuple of FactorEig
        (Possibly truncated) eigendecompositions of the undamped diagonal factors.
    factor_damping : float
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
    factor_damping: float = 0.0
    psi_A: tuple[np.ndarray, ...] = ()
    psi_G: tuple[np.ndarray, ...] = ()
    sigma: tuple[KronDiffEig, ...] = ()


def _pi(a: np.ndarray, g: np.ndarray, heuristic: bool) -> float:
    if not heuristic:
        return 1.0
    ta, tg = np.trace(a) / a.shape[0], np.trace(g) / g.shape[0]
    if ta <= 0 or tg <= 0:
        return 1.0
    return float(np.sqrt(ta / tg))


class _KFACBase(abc.ABC):
    """Shared machinery: Kronecker blocks, damping, vec/unvec, the Curvature protocol."""

    _tridiagonal = False

    def __init__(
        self,
        factors: KFACFactors,
        factor_damping: float = 0.1,
        *,
        pi_heuristic: bool = False,
        lowrank_c: float = 4.0,
        lowrank_threshold: int | None = None,
        cache: KFACCache | None = None,
        damping_split: str = "sqrt",
        lowrank_remainder: str = "damped",
        lowrank_factors: str = "both",
        lowrank_floor: bool = False,
    ) -> None:
        raw = check_factors(factors, self._tridiagonal)
        self.factor_damping = as_nonneg_scalar(factor_damping, "factor_damping")
        self.pi_heuristic = bool(pi_heuristic)
        self.lowrank_c = as_positive_scalar(lowrank_c, "lowrank_c")
        if lowrank_threshold is not None:
            lowrank_threshold = as_int(lowrank_threshold, "lowrank_threshold", minimum=1)
        self.lowrank_threshold = lowrank_threshold
        self.damping_split = check_choice(damping_split, "damping_split", DAMPING_SPLITS)
        self.lowrank_remainder = check_choice(lowrank_remainder, "lowrank_remainder", LOWRANK_REMAINDERS)
        self.lowrank_factors = check_choice(lowrank_factors, "lowrank_factors", LOWRANK_FACTORS)
        lowrank_floor = check_bool(lowrank_floor, "lowrank_floor")
        n_layers = len(raw.A)
        if cache is None:
            kw: dict[str, Any] = {
                "lowrank_c": lowrank_c,
                "lowrank_threshold": lowrank_threshold,
                "lowrank_floor": lowrank_floor,
                "drop_remainder": self.lowrank_remainder == "dropped",
            }
            kw_g = kw if self.lowrank_factors == "both" else {**kw, "lowrank_threshold": None}
            cache = KFACCache(
                tuple(factor_eig(m, **kw) for m in raw.A),
                tuple(factor_eig(m, **kw_g) for m in raw.G),
            )
        elif len(cache.eig_A) != n_layers or len(cache.eig_G) != n_layers:
            raise ValueError(f"cache must hold {n_layers} eigendecompositions per factor kind")
        ea, eg = cache.eig_A, cache.eig_G
        big_a = tuple(reconstruct(m, e) for m, e in zip(raw.A, ea, strict=True))
        big_g = tuple(reconstruct(m, e) for m, e in zip(raw.G, eg, strict=True))
        a_c = tuple(project(ea[k + 1], project(ea[k], m, "left"), "right") for k, m in enumerate(raw.A_cross))
        g_c = tuple(project(eg[k + 1], project(eg[k], m, "left"), "right") for k, m in enumerate(raw.G_cross))
        # the factors actually used (truncated / projected where low-rank applies)
        self.factors = KFACFactors(big_a, big_g, a_c, g_c)
        self.blocks = tuple(
            KroneckerBlock(a, g, e_a, e_g, _pi(a, g, self.pi_heuristic), self.damping_split == "each")
            for a, g, e_a, e_g in zip(big_a, big_g, ea, eg, strict=True)
        )
        self.block_shapes = tuple((g.shape[0], a.shape[0]) for a, g in zip(big_a, big_g, strict=True))
        sizes = [o * i for o, i in self.block_shapes]
        self.offsets = tuple(int(k) for k in np.concatenate([[0], np.cumsum(sizes)]))
        self.shape = (self.offsets[-1], self.offsets[-1])
        self.dtype = np.dtype(np.float64)
        self._cache = cache

    # Each operator defines how it applies, assembles and inverts its blocks (abstract: the base
    # class cannot be instantiated).
    @abc.abstractmethod
    def _matvec_blocks(self, x, a, g): ...

    @abc.abstractmethod
    def _dense(self, a, g): ...

    @abc.abstractmethod
    def _solve_blocks(self, x, gamma): ...

    # ------------------------------------------------------------------ damping
    def _gamma(self, factor_damping) -> float:
        if factor_damping is None:
            return self.factor_damping
        return as_nonneg_scalar(factor_damping, "factor_damping")

    def factor_shifts(self, factor_damping: float | None = None) -> tuple[tuple[float, float], ...]:
        r"""Per-layer :math:`(\pi_l\sqrt\gamma, \sqrt\gamma/\pi_l)` added to :math:`(A_l, G_l)`."""
        gamma = self._gamma(factor_damping)
        return tuple(b.shifts(gamma) for b in self.blocks)

    def _damped_factors(self, factor_damping) -> tuple[list, list]:
        gamma = self._gamma(factor_damping)
        damped = [b.damped(gamma) for b in self.blocks]
        return [a for a, _ in damped], [g for _, g in damped]

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

    # ------------------------------------------------------------------ Curvature protocol
    def matvec(self, v: ArrayLike, factor_damping: float | None = None) -> np.ndarray:
        r"""Multiply by the damped approximation :math:`\breve F^\gamma` (class docstring).

        Parameters
        ----------
        v : ndarray, shape (P,) or (P, k)
        factor_damping : float, optional
            :math:`\gamma`; default the operator's. ``0.0`` gives the undamped approximation.

        Returns
        -------
        ndarray, same shape as ``v``

        Raises
        ------
        ValueError
            If ``v`` has the wrong number of rows or non-finite entries.
        """
        x, vec = self._split(v)
        a, g = self._damped_factors(factor_damping)
        return self._join(self._matvec_blocks(x, a, g), vec)

    def to_dense(self, factor_damping: float | None = None) -> np.ndarray:
        r"""Dense :math:`\breve F^\gamma`, shape (P, P): the matrix :meth:`matvec` multiplies by.

        Parameters
        ----------
        factor_damping : float, optional
            :math:`\gamma`; default the operator's; ``0.0`` for undamped.

        Returns
        -------
        ndarray, shape (P, P)
        """
        a, g = self._damped_factors(factor_damping)
        return self._dense(a, g)

    def solve(self, v: ArrayLike, factor_damping: float | None = None) -> np.ndarray:
        r"""Apply the approximate inverse (the exact matrix is stated in the class docstring).

        Takes ``v`` and ``factor_damping`` and returns an array shaped like ``v``, as
        :meth:`matvec` does.

        Raises
        ------
        ValueError
            If ``v`` is malformed, or a damped factor (or, block-tridiagonal, a
            :math:`\Sigma_{l|l+1}`) is not positive definite, e.g. ``factor_damping=0`` with a
            singular or truncated factor.
        """
        x, vec = self._split(v)
        return self._join(self._solve_blocks(x, self._gamma(factor_damping)), vec)

    def inverse(self, factor_damping: float | None = None) -> InverseCurvature:
        """Return the operator whose ``matvec`` is :meth:`solve` (at ``factor_damping``).

        Its ``to_dense()`` is the dense matrix :meth:`solve` applies, built column by column.
        """
        return InverseCurvature(self, factor_damping)

    def aslinearoperator(self, factor_damping: float | None = None) -> LinearOperator:
        r"""Wrap :meth:`matvec` as a symmetric :class:`scipy.sparse.linalg.LinearOperator`.

        ``op.inverse().aslinearoperator()`` wraps :meth:`solve` instead.
        """
        return as_linear_operator(self, factor_damping)


class BlockDiagKFAC(_KFACBase):
    r"""Block-diagonal K-FAC (Martens & Grosse 2015, Section 4.2).

    .. math::
        \breve F^\gamma = \operatorname{diag}\big(A^\gamma_1 \otimes G^\gamma_1, \dots,
        A^\gamma_L \otimes G^\gamma_L\big), \qquad
        A^\gamma_l = A_l + \pi_l\sqrt\gamma I,\ G^\gamma_l = G_l + \frac{\sqrt\gamma}{\pi_l} I,

    in the vec / Kronecker ordering of :mod:`refvpng.curvature.kfac`. ``matvec`` and
    ``to_dense`` give :math:`\breve F^\gamma` (``factor_damping=0.0``: the undamped
    :math:`\operatorname{diag}(A_l \otimes G_l)`), and ``solve`` applies its **exact inverse**
    :math:`\operatorname{diag}((A^\gamma_l)^{-1} \otimes (G^\gamma_l)^{-1})`, blockwise
    :math:`X \mapsto (G^\gamma_l)^{-1} X (A^\gamma_l)^{-1}`, through the cached
    eigendecompositions of the factors. Factors are truncated only if ``lowrank_threshold``
    is given.

    Parameters
    ----------
    factors : KFACFactors
        From :func:`kfac_factors` (cross factors are ignored).
    factor_damping : float, default 0.1
        :math:`\gamma`, the factored Tikhonov damping (not the :math:`\mu` of Eq. 17).
    pi_heuristic : bool, default False
        Split the damping with M&G's :math:`\pi_l`.
    lowrank_c : float, default 4.0
        :math:`c` of the low-rank approximation.
    lowrank_threshold : int or None, default None
        Truncate factors larger than this; ``None`` (the default) never truncates.
    cache : KFACCache, optional
        Precomputed decompositions (from the K-FAC state); normally left ``None``.
    damping_split : {"sqrt", "each"}, default "sqrt"
        ``"sqrt"``: the factored damping above; ``"each"``: eigenvalue damping,
        :math:`A^\gamma_l = A_l + \gamma I`, :math:`G^\gamma_l = G_l + \gamma I` (Tang &
        Ranganath's public script adds 0.1 to every factor's eigenvalues this way).
    lowrank_remainder : {"damped", "dropped"}, default "damped"
        What a truncated factor keeps off its leading eigenvectors :math:`U`: the damping value
        (the module's convention), or nothing: ``"dropped"`` makes the damped factor
        :math:`U\operatorname{diag}(\alpha + \delta)U^\top` and ``solve`` apply the
        **pseudo-inverse** of ``to_dense`` (that layer's update lies in the span of :math:`U`).
    lowrank_factors : {"both", "input"}, default "both"
        Apply the low-rank rule to input and output factors, or to input factors :math:`A_l` only.
    lowrank_floor : bool, default False
        Rank :math:`\lfloor c \ln n \rfloor` instead of :math:`\lceil c \ln n \rceil`.

    Attributes
    ----------
    factors : KFACFactors
        The factors actually used (truncated / projected where the low-rank rule applies).
    blocks : tuple of KroneckerBlock
        One per layer.
    block_shapes : tuple of (int, int)
        :math:`(d_l, d_{l-1} + 1)` per layer, the shape of :math:`\bar W_l`.
    offsets : tuple of int
        Start of each layer's block in a length-:math:`P` vector (last entry :math:`P`).
    shape : (int, int)
        :math:`(P, P)`.
    factor_damping : float
        Default :math:`\gamma`.

    Examples
    --------
    >>> import numpy as np
    >>> from refvpng.curvature.kfac import BlockDiagKFAC, kfac_factors
    >>> rng = np.random.default_rng(0)
    >>> a_bar = np.c_[rng.standard_normal((5, 2)), np.ones(5)]
    >>> pairs = [(a_bar, rng.standard_normal((5, 2)))]
    >>> op = BlockDiagKFAC(kfac_factors(pairs), factor_damping=0.1)
    >>> v = rng.standard_normal(6)
    >>> bool(np.allclose(op.solve(op.matvec(v)), v))
    True
    """

    def _matvec_blocks(self, x, a, g):
        return [gg @ xx @ aa.T for xx, aa, gg in zip(x, a, g, strict=True)]

    def _dense(self, a, g):
        return scipy.linalg.block_diag(*[np.kron(aa, gg) for aa, gg in zip(a, g, strict=True)])

    def _solve_blocks(self, x, gamma):
        return [b.solve(xx, gamma) for b, xx in zip(self.blocks, x, strict=True)]
