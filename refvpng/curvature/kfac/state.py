r"""Running K-FAC state: EMA of the factors and periodic refresh of the decompositions.

One init/update pair in the optax manner. Computing the factors is a separate step
(:func:`~refvpng.curvature.kfac.kfac_factors` from ``(a_bar, g)`` pairs, or a model's fast path);
the state only uses them:

>>> import numpy as np
>>> from refvpng.curvature.kfac import KFACConfig, kfac_factors, kfac_init, kfac_operator, kfac_update
>>> rng = np.random.default_rng(0)
>>> def pairs():
...     return [(np.c_[rng.standard_normal((4, 2)), np.ones(4)], rng.standard_normal((4, 2)))]
>>> state = kfac_init(kfac_factors(pairs()), KFACConfig(inverse_every=5))
>>> state = kfac_update(state, kfac_factors(pairs()), step=1)  # EMA only, decompositions kept
>>> kfac_operator(state).solve(np.ones(6)).shape
(6,)
"""

from __future__ import annotations

from typing import NamedTuple

from refvpng._checks import as_int, as_nonneg_scalar, as_positive_scalar, check_bool, check_choice
from refvpng.curvature.kfac.factors import KFACFactors, check_factors, kfac_ema
from refvpng.curvature.kfac.operators import (
    DAMPING_SPLITS,
    LOWRANK_FACTORS,
    LOWRANK_REMAINDERS,
    BlockDiagKFAC,
    KFACCache,
)
from refvpng.curvature.kfac.tridiag import BlockTridiagKFAC

__all__ = ["KFACConfig", "KFACState", "kfac_init", "kfac_update", "kfac_operator"]


class KFACConfig(NamedTuple):
    r"""Hyperparameters of the K-FAC curvature (conventions in :mod:`refvpng.curvature.kfac`).

    Attributes
    ----------
    tridiagonal : bool, default True
        Block-tridiagonal (M&G Section 4.3) or block-diagonal (Section 4.2).
    factor_damping : float, default 0.1
        :math:`\gamma` of the factored Tikhonov damping: factors get :math:`\pi\sqrt\gamma` and
        :math:`\sqrt\gamma/\pi`. Not the :math:`\mu` of Eq. 17 (``damping`` elsewhere).
    decay : float, default 0.9
        EMA decay of the factors.
    inverse_every : int, default 20
        Recompute the decompositions when ``step % inverse_every == 0`` (M&G's :math:`T_3`).
    pi_heuristic : bool, default False
        Use M&G's :math:`\pi_l` to split the damping between the two factors.
    lowrank_c : float, default 4.0
        :math:`c` in :math:`r = \lceil c \ln n \rceil`.
    lowrank_threshold : int or None, default None
        Factors of size :math:`n >` threshold are truncated; ``None`` (the default) never
        truncates.
    damping_split : {"sqrt", "each"}, default "sqrt"
        Factored damping, or :math:`\gamma` added to every factor's eigenvalues.
    lowrank_remainder : {"damped", "dropped"}, default "damped"
        A truncated factor's complement kept at the damping value, or dropped.
    lowrank_factors : {"both", "input"}, default "both"
        Which factors the low-rank rule may truncate.
    lowrank_floor : bool, default False
        Round the rank :math:`c \ln n` down instead of up.

    (The last four are the options of :class:`~refvpng.curvature.kfac.BlockDiagKFAC`.)
    """

    tridiagonal: bool = True
    factor_damping: float = 0.1
    decay: float = 0.9
    inverse_every: int = 20
    pi_heuristic: bool = False
    lowrank_c: float = 4.0
    lowrank_threshold: int | None = None
    damping_split: str = "sqrt"
    lowrank_remainder: str = "damped"
    lowrank_factors: str = "both"
    lowrank_floor: bool = False


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
        decompositions for ``config.factor_damping``).
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
        config.factor_damping,
        pi_heuristic=config.pi_heuristic,
        lowrank_c=config.lowrank_c,
        lowrank_threshold=config.lowrank_threshold,
        cache=cache,
        damping_split=config.damping_split,
        lowrank_remainder=config.lowrank_remainder,
        lowrank_factors=config.lowrank_factors,
        lowrank_floor=config.lowrank_floor,
    )


def _refresh(factors: KFACFactors, config: KFACConfig) -> KFACCache:
    op = _make_operator(factors, config, None)
    if isinstance(op, BlockTridiagKFAC):
        return op.solver()
    return op._cache


def _check_config(config: KFACConfig) -> KFACConfig:
    if not isinstance(config, KFACConfig):
        raise TypeError(f"config must be a KFACConfig, got {type(config).__name__}")
    decay = as_nonneg_scalar(config.decay, "decay")
    if decay > 1:
        raise ValueError(f"decay must be in [0, 1], got {decay}")
    as_int(config.inverse_every, "inverse_every")
    as_nonneg_scalar(config.factor_damping, "factor_damping")
    as_positive_scalar(config.lowrank_c, "lowrank_c")
    check_choice(config.damping_split, "damping_split", DAMPING_SPLITS)
    check_choice(config.lowrank_remainder, "lowrank_remainder", LOWRANK_REMAINDERS)
    check_choice(config.lowrank_factors, "lowrank_factors", LOWRANK_FACTORS)
    check_bool(config.lowrank_floor, "lowrank_floor")
    return config


def _drop_cross(factors: KFACFactors, config: KFACConfig) -> KFACFactors:
    """The block-diagonal state keeps no cross factors."""
    if not config.tridiagonal and isinstance(factors, KFACFactors):
        return KFACFactors(factors.A, factors.G)
    return factors


def kfac_init(factors: KFACFactors, config: KFACConfig | None = None) -> KFACState:
    r"""Start a K-FAC estimate from a first step's factors.

    Parameters
    ----------
    factors : KFACFactors
        From :func:`~refvpng.curvature.kfac.kfac_factors` (or a model's fast path); with cross
        factors when ``config.tridiagonal`` (dropped otherwise).
    config : KFACConfig, optional
        Hyperparameters; default ``KFACConfig()``.

    Returns
    -------
    KFACState
        With ``factors = inverse_factors`` = the given factors and fresh decompositions.

    Raises
    ------
    TypeError
        If ``factors`` or ``config`` has the wrong type.
    ValueError
        If a hyperparameter is out of range or the factors are malformed.
    """
    config = _check_config(KFACConfig() if config is None else config)
    factors = check_factors(_drop_cross(factors, config), config.tridiagonal)
    return KFACState(factors, factors, _refresh(factors, config), config)


def kfac_update(state: KFACState, factors: KFACFactors, step: int) -> KFACState:
    r"""One K-FAC step: EMA of the factors, decompositions refreshed when ``step % k == 0``.

    .. math::
        \text{factors} \leftarrow \text{decay} \cdot \text{factors}
        + (1 - \text{decay}) \cdot \text{this step's factors},

    and, if ``step % config.inverse_every == 0``, ``inverse_factors = factors`` with fresh
    decompositions; otherwise ``inverse_factors`` and ``cache`` are carried over unchanged.
    Pure: ``state`` is not modified.

    Parameters
    ----------
    state : KFACState
    factors : KFACFactors
        This step's factors, same structure as ``state.factors`` (cross factors are dropped by
        a block-diagonal state).
    step : int
        Iteration counter (non-negative).

    Returns
    -------
    KFACState
    """
    if not isinstance(state, KFACState):
        raise TypeError(f"state must be a KFACState, got {type(state).__name__}")
    step = as_int(step, "step", minimum=0)
    if not isinstance(factors, KFACFactors):
        raise TypeError(f"factors must be KFACFactors, got {type(factors).__name__}")
    config = state.config
    factors = kfac_ema(state.factors, _drop_cross(factors, config), config.decay)  # checks the shapes
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
        Representing ``state.inverse_factors`` with ``state.config``'s factor damping.
    """
    if not isinstance(state, KFACState):
        raise TypeError(f"state must be a KFACState, got {type(state).__name__}")
    return _make_operator(state.inverse_factors, state.config, state.cache)
