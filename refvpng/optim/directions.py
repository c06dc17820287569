r"""Update directions (preconditioners): vanilla gradient and damped natural gradients.

A direction is the first member of an optimiser chain; a step-size rule from
:mod:`refvpng.optim.stepsize` follows it. Both natural gradients of the paper are the same
transformation with a different curvature matrix supplied per step through ``extra``:

- q-natural gradient: ``curvature = F_q``, the Fisher of the variational distribution, usually on
  the variational block λ only (``index``), the model parameters θ taking the vanilla gradient;
- VPNG: ``curvature = F_r`` (or its Monte Carlo estimate :math:`\hat F_r`, Eq. 16), on all of
  (λ, θ), damped as in Eq. 17 of Tang & Ranganath (2019).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from refvpng._checks import as_int, as_nonneg_scalar
from refvpng.curvature.solve import damped_solve
from refvpng.optim.base import EmptyState, GradientTransformation, check_grads, check_params

__all__ = [
    "damped_solve",
    "identity_direction",
    "natural_direction",
    "resolve_index",
]

_EPS = np.finfo(np.float64).eps


def identity_direction() -> GradientTransformation:
    """Vanilla gradient direction: return ``grads`` unchanged (as a new array).

    Returns
    -------
    GradientTransformation
        Stateless transformation (state :class:`~refvpng.optim.base.EmptyState`).

    Examples
    --------
    >>> d = identity_direction()
    >>> d.update(np.array([1.0, -2.0]), d.init(np.zeros(2)))[0]
    array([ 1., -2.])
    """

    def init(params) -> EmptyState:
        check_params(params)
        return EmptyState()

    def update(grads, state, params=None, **extra):
        g = check_grads(grads, params)
        return g.copy(), state

    return GradientTransformation(init, update)


def resolve_index(index: slice | ArrayLike | None, size: int) -> np.ndarray | None:
    """Turn a block ``index`` (slice, integer array or boolean mask) into integer positions.

    Parameters
    ----------
    index : None, slice, array_like of int, or array_like of bool
        The block. Integer positions must be unique and in ``[0, size)``; a boolean mask must have
        length ``size``. The order of integer positions is kept: it is the row order of the
        block's curvature matrix.
    size : int
        The number of parameters ``P``.

    Returns
    -------
    ndarray of int, shape (n,), or None
        The positions, or ``None`` when ``index`` is ``None`` (the whole vector).

    Raises
    ------
    ValueError
        Naming ``index`` if it is out of range, has repeated entries or a wrong mask length.
    TypeError
        If ``index`` is neither a slice nor an integer/boolean array.

    Examples
    --------
    >>> resolve_index(slice(1, None), 4)
    array([1, 2, 3])
    >>> resolve_index([True, False, True], 3)
    array([0, 2])
    """
    size = as_int(size, "size", minimum=0)
    if index is None:
        return None
    if isinstance(index, slice):
        return np.arange(size)[index]
    arr = np.asarray(index)
    if arr.dtype == bool:
        if arr.shape != (size,):
            raise ValueError(f"index as a boolean mask must have shape ({size},), got {arr.shape}")
        return np.flatnonzero(arr)
    if arr.ndim != 1 or not (np.issubdtype(arr.dtype, np.integer) or arr.size == 0):
        raise TypeError("index must be a slice, a 1-d integer array or a boolean mask")
    arr = arr.astype(np.intp)
    if arr.size and (arr.min() < 0 or arr.max() >= size):
        raise ValueError(f"index entries must lie in [0, {size}), got range [{arr.min()}, {arr.max()}]")
    if np.unique(arr).size != arr.size:
        raise ValueError("index must not contain repeated entries")
    return arr


def natural_direction(
    damping: float = 0.0,
    name: str = "curvature",
    *,
    index: Any = None,
) -> GradientTransformation:
    r"""Damped natural-gradient direction :math:`(F + \mu I)^{-1} g`.

    With ``F`` the variational predictive Fisher :math:`\hat F_r` this is the damped VPNG of
    Eq. 17 of Tang & Ranganath (2019),

    .. math::

        \hat\nabla^{\mathrm{VPNG}}_{\lambda,\theta}\mathcal L
            = (\hat F_r + \mu I)^{-1} \nabla_{\lambda,\theta}\mathcal L,

    and with ``F`` the Fisher of ``q`` (on the λ block, via ``index``) it is the traditional
    q-natural gradient. ``F`` is not part of the state: it is passed to every ``update`` call as
    the keyword ``curvature=F`` (or under the keyword ``name``), as computed by the loop's
    ``curvature_fn`` (Algorithm 1).

    Parameters
    ----------
    damping : float, default 0.0
        Fixed damping :math:`\mu \ge 0`. An ``update`` call receiving the keyword
        ``damping=mu`` uses that value instead; this is how
        :func:`~refvpng.optim.damping.lm_damping` feeds its adapted μ.
    name : str, default "curvature"
        Keyword under which ``update`` expects the curvature.
    index : slice, array_like of int or bool, optional
        Apply the natural direction to the block ``grads[index]`` only; the other entries pass
        through unchanged (vanilla gradient). The curvature then has shape ``(n, n)`` with ``n``
        the block size, rows in the order of ``index``.

    Returns
    -------
    GradientTransformation
        Stateless transformation (state :class:`~refvpng.optim.base.EmptyState`) whose
        ``update(grads, state, params=None, *, curvature, damping=None, **extra)`` returns the
        direction.

    Raises
    ------
    ValueError
        From ``update``: if the curvature keyword is missing, its shape does not match the
        block of ``grads`` (message names the keyword), or :math:`F + \mu I` is singular or not
        positive definite (with μ = 0: "... pass damping > 0"). See :func:`damped_solve`.

    Notes
    -----
    ``curvature`` is either a dense symmetric PSD ndarray, solved by Cholesky, or any
    :class:`~refvpng.curvature.operator.Curvature` (``DenseCurvature``, the K-FAC operators),
    called as ``solve(g, mu)``: the operator approximates :math:`(F + \mu I)^{-1} g` with
    :math:`\mu` as its own damping (K-FAC: its factor damping).
    :func:`~refvpng.optim.damping.lm_damping` additionally needs ``F @ v`` (dense) or the
    operator's ``matvec(v)``.

    References
    ----------
    .. [1] S. Tang and R. Ranganath, "The Variational Predictive Natural Gradient", ICML 2019,
       Eqs. 14 and 17, Algorithm 1.
    .. [2] S. Amari, "Natural gradient works efficiently in learning", Neural Computation, 1998.

    Examples
    --------
    VPNG direction on all parameters:

    >>> d = natural_direction(damping=1.0)
    >>> F = np.diag([1.0, 3.0])
    >>> d.update(np.array([2.0, 4.0]), d.init(np.zeros(2)), curvature=F)[0]
    array([1., 1.])

    q-natural direction on the first block only; the rest keeps the vanilla gradient:

    >>> d = natural_direction(index=slice(0, 1))
    >>> d.update(np.array([2.0, 4.0]), d.init(np.zeros(2)), curvature=np.array([[2.0]]))[0]
    array([1., 4.])
    """
    mu0 = as_nonneg_scalar(damping, "damping")
    if not isinstance(name, str) or not name:
        raise TypeError("name must be a non-empty string")
    if index is not None:
        resolve_index(index, _max_size(index))

    def init(params) -> EmptyState:
        p = check_params(params)
        resolve_index(index, p.shape[0])
        return EmptyState()

    def update(grads, state, params=None, **extra):
        g = check_grads(grads, params)
        if name not in extra:
            raise ValueError(f"natural_direction.update needs the keyword {name}= (the curvature matrix F)")
        mu = mu0 if extra.get("damping") is None else as_nonneg_scalar(extra["damping"], "damping")
        idx = resolve_index(index, g.shape[0])
        if idx is None:
            return damped_solve(extra[name], g, mu, name=name), state
        out = g.copy()
        out[idx] = damped_solve(extra[name], g[idx], mu, name=name)
        return out, state

    return GradientTransformation(init, update)


def _max_size(index) -> int:
    """Size large enough to validate ``index`` before the parameter count is known."""
    if isinstance(index, slice):
        return 0
    arr = np.asarray(index)
    if arr.dtype == bool:
        return arr.shape[0] if arr.ndim == 1 else 0
    if arr.ndim == 1 and arr.size and np.issubdtype(arr.dtype, np.integer):
        return int(arr.max()) + 1
    return 0
