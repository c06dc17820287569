"""Core types of :mod:`refvpng.optim`: gradient transformations, their composition and updates.

Conventions (stated once, used by every optimiser in the subpackage):

- Parameters are flat float64 vectors ``params`` of shape ``(P,)``.
- ``grads`` are gradients of the objective to **maximise** (the ELBO), i.e. ascent directions.
- ``update`` returns ``updates`` that are **added**:
  ``new_params = apply_updates(params, updates) = params + updates``.
- A :class:`GradientTransformation` is a pair of pure functions ``init(params) -> state`` and
  ``update(grads, state, params=None, **extra) -> (updates, state)``. States are NamedTuples (or
  plain tuples, for :func:`chain`) of ndarrays and Python scalars; inputs are never mutated, so a
  state can be saved, restored and reused (see :mod:`refvpng.optim.checkpoint`).
- Keyword ``extra`` carries per-step side information supplied by the loop, e.g.
  ``curvature=F`` (read by :func:`~refvpng.optim.directions.natural_direction`) and ``value=L``
  (read by :func:`~refvpng.optim.damping.lm_damping`). Every transformation accepts and ignores
  extras it does not use.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from refvpng._checks import as_array

__all__ = [
    "EmptyState",
    "GradientTransformation",
    "InitFn",
    "UpdateFn",
    "apply_updates",
    "chain",
    "check_grads",
    "check_params",
]

#: ``init(params) -> state``.
InitFn = Callable[[np.ndarray], Any]
#: ``update(grads, state, params=None, **extra) -> (updates, state)``.
UpdateFn = Callable[..., tuple[np.ndarray, Any]]


class GradientTransformation(NamedTuple):
    """A pair of pure functions ``init`` and ``update`` (optax style).

    Attributes
    ----------
    init : callable
        ``init(params) -> state`` with ``params`` an ndarray of shape ``(P,)``.
    update : callable
        ``update(grads, state, params=None, **extra) -> (updates, new_state)``. ``grads`` is an
        ascent direction of shape ``(P,)``; ``updates`` are to be added to ``params``.
    """

    init: InitFn
    update: UpdateFn


class EmptyState(NamedTuple):
    """State of a stateless transformation."""


def check_params(params: ArrayLike, name: str = "params") -> np.ndarray:
    """Validate a flat, finite float64 parameter vector.

    Parameters
    ----------
    params : array_like, shape (P,)
        Parameter vector.
    name : str, default "params"
        Argument name used in error messages.

    Returns
    -------
    ndarray, shape (P,)
        ``params`` as a float64 array (not copied when already float64).

    Raises
    ------
    ValueError
        If ``params`` is not one-dimensional or contains NaN or infinite values.
    TypeError
        If ``params`` is not numeric.
    """
    return as_array(params, name, ndim=1)


def check_grads(grads: ArrayLike, params: ArrayLike | None = None, *, size: int | None = None) -> np.ndarray:
    """Validate ``grads``: one-dimensional, finite, and matching ``params`` (or ``size``).

    Parameters
    ----------
    grads : array_like, shape (P,)
        Gradient (or direction) passed to an ``update`` function.
    params : array_like, shape (P,), optional
        If given, ``grads`` must have the same shape.
    size : int, optional
        If given, ``grads`` must have this length (e.g. the length recorded in a state).

    Returns
    -------
    ndarray, shape (P,)
        ``grads`` as a float64 array.

    Raises
    ------
    ValueError
        Naming ``grads`` if it is not a vector, contains NaN/inf, or has the wrong length.

    Examples
    --------
    >>> check_grads([1.0, float("nan")])
    Traceback (most recent call last):
    ...
    ValueError: grads contains NaN or infinite values
    """
    g = as_array(grads, "grads", ndim=1)
    if params is not None:
        p_shape = np.shape(params)
        if g.shape != p_shape:
            raise ValueError(f"grads must have the same shape as params {p_shape}, got {g.shape}")
    if size is not None and g.shape[0] != size:
        raise ValueError(f"grads must have shape ({size},) as at init, got {g.shape}")
    return g


def apply_updates(params: ArrayLike, updates: ArrayLike) -> np.ndarray:
    """Return ``params + updates`` as a new array.

    Parameters
    ----------
    params : array_like, shape (P,)
        Current parameters.
    updates : array_like, shape (P,)
        Updates returned by a transformation's ``update``.

    Returns
    -------
    ndarray, shape (P,)
        The new parameters; neither input is modified.

    Raises
    ------
    ValueError
        If the shapes differ or either input contains NaN or infinite values.

    Examples
    --------
    >>> apply_updates(np.array([1.0, 2.0]), np.array([0.5, -0.5]))
    array([1.5, 1.5])
    """
    p = check_params(params)
    u = as_array(updates, "updates", ndim=1)
    if u.shape != p.shape:
        raise ValueError(f"updates must have the same shape as params {p.shape}, got {u.shape}")
    return p + u


def chain(*transforms: GradientTransformation) -> GradientTransformation:
    """Compose transformations left to right, as ``optax.chain``.

    The output of each ``update`` is the ``grads`` input of the next; ``params`` and every
    keyword in ``extra`` are passed unchanged to every member (members ignore extras they do not
    use). The state is the plain tuple of the members' states.

    Parameters
    ----------
    *transforms : GradientTransformation
        The members, applied in order, e.g. a direction followed by a step-size rule.

    Returns
    -------
    GradientTransformation
        The composition.

    Raises
    ------
    TypeError
        If a member is not a :class:`GradientTransformation`.

    Examples
    --------
    >>> from refvpng.optim import identity_direction, scale
    >>> opt = chain(identity_direction(), scale(0.5))
    >>> state = opt.init(np.zeros(2))
    >>> updates, state = opt.update(np.array([2.0, -4.0]), state)
    >>> updates
    array([ 1., -2.])
    """
    for i, t in enumerate(transforms):
        if not isinstance(t, GradientTransformation):
            raise TypeError(f"transforms[{i}] must be a GradientTransformation, got {type(t).__name__}")
    transforms = tuple(transforms)

    def init(params) -> tuple:
        params = check_params(params)
        return tuple(t.init(params) for t in transforms)

    def update(grads, state, params=None, **extra):
        if not isinstance(state, tuple) or len(state) != len(transforms):
            raise ValueError(
                f"state must be a tuple of {len(transforms)} member states (from init), "
                f"got {type(state).__name__}"
            )
        updates = check_grads(grads, params)
        new_states = []
        for t, s in zip(transforms, state, strict=True):
            updates, s = t.update(updates, s, params, **extra)
            new_states.append(s)
        return updates, tuple(new_states)

    return GradientTransformation(init, update)
