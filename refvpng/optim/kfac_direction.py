r"""K-FAC natural-gradient direction with the running K-FAC estimate in the optimiser state.

:func:`kfac_direction` is the natural direction :math:`(\breve F^\gamma)^{-1} g` of
:func:`~refvpng.optim.directions.natural_direction` (Eq. 17 of Tang & Ranganath 2019, with the
K-FAC approximation of Martens & Grosse 2015 in place of :math:`\hat F_r`) whose curvature is a
**running estimate kept in the state**: every ``update`` receives this step's Kronecker factors
(``curvature=KFACFactors``, e.g. ``factors_per_point`` of :class:`refvpng.nn.vae.VAEStep`), folds them
into an exponential moving average and refreshes the decompositions every
``config.inverse_every`` of its own updates (M&G's :math:`T_3`). The state
:class:`KFACDirectionState` is a NamedTuple of arrays and Python scalars, so
:func:`refvpng.optim.run` checkpoints and resumes a K-FAC run bit for bit
(:mod:`refvpng.optim.checkpoint`).

The factors' scale is the caller's: the damping :math:`\gamma` of ``config`` is added (factored,
:math:`\sqrt\gamma` to each factor) to whatever scale the factors are on, e.g. per data point
for :func:`refvpng.nn.vae.vae_step`.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from refvpng._checks import as_nonneg_scalar
from refvpng.curvature.kfac import (
    BlockDiagKFAC,
    BlockTridiagKFAC,
    KFACConfig,
    KFACFactors,
    KFACState,
    kfac_init,
    kfac_operator,
    kfac_update,
)
from refvpng.curvature.solve import damped_solve
from refvpng.optim.base import GradientTransformation, check_grads, check_params
from refvpng.optim.directions import resolve_index

__all__ = ["KFACDirectionState", "kfac_direction"]


def _kfac_fold(kfac: KFACState | None, factors: KFACFactors, count: int, config: KFACConfig):
    """Start the estimate (first call) or fold in one step's factors (EMA, periodic refresh)."""
    if kfac is None:
        return kfac_init(factors, config)
    return kfac_update(kfac, factors, count)


def _kfac_operator(kfac: KFACState) -> BlockDiagKFAC | BlockTridiagKFAC:
    return kfac_operator(kfac)


def _kfac_damping(config: KFACConfig) -> float:
    return config.factor_damping


class KFACDirectionState(NamedTuple):
    """State of :func:`kfac_direction`.

    Attributes
    ----------
    count : int
        Factor batches folded in so far (this direction's own updates).
    kfac : KFACState or None
        ``None`` before the first update; then the EMA of the factors, the snapshot taken at
        the last refresh, its cached decompositions and the configuration
        (:class:`refvpng.curvature.kfac.KFACState`).
    """

    count: int  # type: ignore[assignment]  # the field shadows tuple.count
    kfac: Any


def kfac_direction(
    config: KFACConfig,
    *,
    index: Any = None,
    name: str = "curvature",
) -> GradientTransformation:
    r"""Damped K-FAC natural direction with the running factor estimate in the state.

    Update :math:`k` (counted from 0 in this direction's own updates) with factors
    :math:`(A^{(k)}, G^{(k)})`:

    .. math::
        \bar A \leftarrow \begin{cases} A^{(0)} & k = 0 \\
        \beta \bar A + (1 - \beta) A^{(k)} & k > 0 \end{cases}

    (likewise every factor, :math:`\beta` = ``config.decay``); when
    :math:`k \bmod T_3 = 0` (:math:`T_3` = ``config.inverse_every``) the decompositions are
    recomputed from :math:`\bar A, \bar G`, otherwise the last ones are kept; the direction is
    the block-diagonal or block-tridiagonal K-FAC solve of the last refresh with the factored
    damping :math:`\gamma`,
    :math:`(\breve F^\gamma)^{-1} g` (see :class:`refvpng.curvature.kfac.BlockTridiagKFAC`),
    applied to ``grads[index]``; the other entries pass through (vanilla gradient).

    Parameters
    ----------
    config : KFACConfig
        ``tridiagonal``, damping :math:`\gamma`, ``decay``, ``inverse_every``,
        ``pi_heuristic`` and the low-rank rule.
    index : slice, array_like of int or bool, optional
        The block the factors describe (e.g. the encoder block for the q-natural gradient).
    name : str, default "curvature"
        Keyword of ``update`` carrying this step's :class:`~refvpng.curvature.kfac.KFACFactors`
        (the keyword :func:`refvpng.optim.run` fills from ``curvature_fn``).

    Returns
    -------
    GradientTransformation
        With state :class:`KFACDirectionState`; ``update(grads, state, params=None, *,
        curvature, damping=None, **extra)``, where a ``damping`` keyword overrides
        :math:`\gamma` of the solve (as for ``natural_direction``).

    Raises
    ------
    TypeError
        If ``config`` is not a ``KFACConfig``; from ``update``, if the factors are not
        ``KFACFactors``.
    ValueError
        From ``update``: the factors keyword missing, factors of a structure other than the
        first step's, or a block size that does not match ``grads[index]``.

    References
    ----------
    .. [1] J. Martens and R. Grosse, "Optimizing neural networks with Kronecker-factored
       approximate curvature", ICML 2015, Sections 4.2, 4.3, 6.3 and 8.
    .. [2] Y. Tang and R. Ranganath, "The Variational Predictive Natural Gradient", ICML 2019,
       Eq. 17 and Section 5.2.

    Examples
    --------
    >>> import numpy as np
    >>> from refvpng.curvature.kfac import KFACConfig, kfac_factors
    >>> rng = np.random.default_rng(0)
    >>> pairs = [(np.c_[rng.standard_normal((5, 2)), np.ones(5)], rng.standard_normal((5, 2)))]
    >>> d = kfac_direction(KFACConfig(tridiagonal=False, factor_damping=0.1, inverse_every=2))
    >>> state = d.init(np.zeros(6))
    >>> u, state = d.update(np.ones(6), state, curvature=kfac_factors(pairs, cross=False))
    >>> u.shape, state.count
    ((6,), 1)
    """
    if not isinstance(config, KFACConfig):
        raise TypeError(f"config must be a KFACConfig, got {type(config).__name__}")
    if not isinstance(name, str) or not name:
        raise TypeError("name must be a non-empty string")
    gamma0 = _kfac_damping(config)
    memo: list = [None, None]  # (cache, operator) of the last refresh: rebuilt only when it moves

    def operator(kfac: KFACState):
        if memo[0] is not kfac.cache:
            memo[1] = _kfac_operator(kfac)
            memo[0] = kfac.cache
        return memo[1]

    def init(params) -> KFACDirectionState:
        p = check_params(params)
        resolve_index(index, p.shape[0])
        return KFACDirectionState(0, None)

    def update(grads, state, params=None, **extra):
        if not isinstance(state, KFACDirectionState):
            raise ValueError(f"state must be a KFACDirectionState (from init), got {type(state).__name__}")
        g = check_grads(grads, params)
        if extra.get(name) is None:
            raise ValueError(f"kfac_direction.update needs the keyword {name}= (KFACFactors)")
        factors = extra[name]
        if not isinstance(factors, KFACFactors):
            raise TypeError(f"{name} must be KFACFactors, got {type(factors).__name__}")
        mu = gamma0 if extra.get("damping") is None else as_nonneg_scalar(extra["damping"], "damping")
        count = int(state.count)
        kfac = _kfac_fold(state.kfac, factors, count, config)
        op = operator(kfac)
        idx = resolve_index(index, g.shape[0])
        if idx is None:
            out = damped_solve(op, g, mu, name=name)
        else:
            out = g.copy()
            out[idx] = damped_solve(op, g[idx], mu, name=name)
        return out, KFACDirectionState(count + 1, kfac)

    return GradientTransformation(init, update)
