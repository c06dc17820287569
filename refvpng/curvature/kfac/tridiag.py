r"""Block-tridiagonal K-FAC (Martens & Grosse 2015, Section 4.3) on the shared operator base.

:class:`BlockTridiagKFAC` adds the cross blocks :math:`A_{l,l+1} \otimes G_{l,l+1}` to the
Kronecker blocks of :mod:`refvpng.curvature.kfac.operators` and solves with the inverse of the
directed Gaussian graphical model of M&G (its :math:`\Psi` factors and :math:`\Sigma`
decompositions kept per damping value in a :class:`~refvpng.curvature.kfac.operators.KFACCache`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from refvpng.curvature.kfac.factors import KFACFactors
from refvpng.curvature.kfac.linalg import kd_apply, kd_build, right_inverse
from refvpng.curvature.kfac.operators import KFACCache, _KFACBase

__all__ = ["BlockTridiagKFAC"]


class BlockTridiagKFAC(_KFACBase):
    r"""Block-tridiagonal K-FAC (Martens & Grosse 2015, Section 4.3).

    The approximation is the block-tridiagonal matrix

    .. math::
        \breve F^\gamma_{l,l} = A^\gamma_l \otimes G^\gamma_l, \qquad
        \breve F^\gamma_{l,l+1} = A_{l,l+1} \otimes G_{l,l+1}, \qquad
        \breve F^\gamma_{l+1,l} = (\breve F^\gamma_{l,l+1})^\top,

    with the factored damping on the diagonal factors only; ``matvec`` and ``to_dense`` give
    :math:`\breve F^\gamma` (``factor_damping=0.0``: undamped). Neighbours include the
    encoder's last and the decoder's first layer of a :class:`refvpng.nn.Chain`.

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
    :math:`\hat F^\gamma = \breve F^\gamma`. ``inverse().to_dense()`` returns
    :math:`\Xi^\top\Lambda\Xi`.

    Factors computed from rows by :func:`kfac_factors` (or EMAs of such) keep every
    :math:`\Sigma_{l|l+1}` positive definite for ``factor_damping > 0`` (a Schur complement of
    a Gram matrix plus damping).

    Parameters
    ----------
    factors : KFACFactors
        From :func:`kfac_factors` with ``cross=True``.
    factor_damping : float, default 0.1
        :math:`\gamma`, the factored Tikhonov damping (not the :math:`\mu` of Eq. 17).
    **kwargs
        ``pi_heuristic``, ``lowrank_c``, ``lowrank_threshold``, ``cache``, ``damping_split``,
        ``lowrank_remainder``, ``lowrank_factors``, ``lowrank_floor`` as in
        :class:`BlockDiagKFAC` (which also lists the attributes). With a dropped remainder,
        ``solve`` is the tridiagonal inverse in the coordinates of the kept eigenvectors,
        mapped back (zero on the dropped complement).

    Examples
    --------
    >>> import numpy as np
    >>> from refvpng.curvature.kfac import BlockTridiagKFAC, kfac_factors
    >>> rng = np.random.default_rng(0)
    >>> a0, g0 = np.c_[rng.standard_normal((6, 2)), np.ones(6)], rng.standard_normal((6, 2))
    >>> a1, g1 = np.c_[rng.standard_normal((6, 2)), np.ones(6)], rng.standard_normal((6, 1))
    >>> op = BlockTridiagKFAC(kfac_factors([(a0, g0), (a1, g1)]), factor_damping=0.1)
    >>> v = rng.standard_normal(op.shape[0])
    >>> bool(np.allclose(op.solve(v), np.linalg.solve(op.to_dense(), v)))  # two layers: exact
    True
    """

    _tridiagonal = True

    def __init__(self, factors: KFACFactors, factor_damping: float = 0.1, **kwargs: Any) -> None:
        super().__init__(factors, factor_damping, **kwargs)
        self._solvers: dict[float, KFACCache] = {}
        if len(self._cache.sigma) == len(self.factors.A) - 1 > 0:
            self._solvers[self._cache.factor_damping] = self._cache

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

    def solver(self, factor_damping: float | None = None) -> KFACCache:
        r""":math:`\Psi` factors and :math:`\Sigma` decompositions for ``factor_damping``.

        Computed once per damping value and kept. Truncated factors are used through their
        eigenpairs only (no dense inverse of a truncated factor is formed; see
        :class:`KronDiffEig`).

        Raises
        ------
        ValueError
            If a :math:`\Sigma_{l|l+1}` is not positive definite.
        """
        gamma = self._gamma(factor_damping)
        if gamma not in self._solvers:
            self._solvers[gamma] = _tridiag_cache(self.blocks, self.factors, gamma)
        return self._solvers[gamma]

    def _solve_blocks(self, x, gamma):
        c = self.solver(gamma)
        n_layers = len(x)
        w = []
        for k in range(n_layers):  # Lambda Xi v
            if k + 1 < n_layers:
                u = x[k] - c.psi_G[k] @ x[k + 1] @ c.psi_A[k].T
                w.append(kd_apply(c.sigma[k], u))
            else:
                w.append(self.blocks[k].solve(x[k], gamma))
        return [w[0]] + [  # Xi^T
            w[k] - c.psi_G[k - 1].T @ w[k - 1] @ c.psi_A[k - 1] for k in range(1, n_layers)
        ]


def _tridiag_cache(blocks, factors: KFACFactors, gamma: float) -> KFACCache:
    """Psi factors and Sigma decompositions of a tridiagonal operator for damping ``gamma``."""
    dd = [b.shifts(gamma) for b in blocks]
    ea = tuple(b.eig_A for b in blocks)
    eg = tuple(b.eig_G for b in blocks)
    psi_a, psi_g, sigma = [], [], []
    for k in range(len(blocks) - 1):
        ac, gc = factors.A_cross[k], factors.G_cross[k]
        pa = right_inverse(ac, ea[k + 1], dd[k + 1][0])
        pg = right_inverse(gc, eg[k + 1], dd[k + 1][1])
        try:
            kd = kd_build(ea[k], dd[k][0], pa, ac, eg[k], dd[k][1], pg, gc)
        except ValueError as exc:
            raise ValueError(f"Sigma_{{{k}|{k + 1}}} is not positive definite: {exc}") from None
        psi_a.append(pa)
        psi_g.append(pg)
        sigma.append(kd)
    return KFACCache(ea, eg, gamma, tuple(psi_a), tuple(psi_g), tuple(sigma))
