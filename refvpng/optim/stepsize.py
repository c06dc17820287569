r"""Step-size rules: fixed, RMSProp and Adam, applied to the output of a direction.

Each rule is a :class:`~refvpng.optim.base.GradientTransformation` meant to follow a direction in
:func:`~refvpng.optim.base.chain`, e.g. ``chain(natural_direction(mu), rmsprop(lr))``. As in
optax, ``scale_by_adam`` and ``scale_by_rmsprop`` carry no learning rate (compose them with
:func:`scale`); :func:`adam` and :func:`rmsprop` include it.
Its input ``grads`` is then the *direction* ``d`` (the vanilla gradient, the q-natural gradient
or the VPNG), so the RMS statistics are statistics of the direction, not of the raw gradient.
This is how Tang & Ranganath (2019, Section 5) "use RMSProp and Adam to set the learning rates in
all three algorithms".

Sign convention: the objective is maximised, so every rule returns ``+lr * (...)`` to be added to
the parameters. The second-moment statistics refuse to carry ``inf``: an update whose squared
direction overflows raises ``FloatingPointError``.
"""

from __future__ import annotations

import numbers
from typing import NamedTuple

import numpy as np

from refvpng._checks import as_positive_scalar
from refvpng.optim.base import EmptyState, GradientTransformation, check_grads, check_params

__all__ = [
    "AdamState",
    "RMSPropState",
    "scale",
    "scale_by_adam",
    "scale_by_rmsprop",
    "adam",
    "rmsprop",
]


def _unit_interval(x, name: str, *, closed_left: bool) -> float:
    """Return ``x`` as a float in ``(0, 1)`` (or ``[0, 1)`` when ``closed_left``)."""
    if not isinstance(x, numbers.Real) and not (isinstance(x, np.ndarray) and x.ndim == 0):
        raise TypeError(f"{name} must be a real number, got {type(x).__name__}")
    v = float(x)
    lo_ok = v >= 0.0 if closed_left else v > 0.0
    if not (np.isfinite(v) and lo_ok and v < 1.0):
        interval = "[0, 1)" if closed_left else "(0, 1)"
        raise ValueError(f"{name} must lie in {interval}, got {v}")
    return v


def scale(lr: float) -> GradientTransformation:
    r"""Scale the direction by a fixed step size: ``updates = lr * d``.

    Parameters
    ----------
    lr : float
        Learning rate, finite and > 0.

    Returns
    -------
    GradientTransformation
        Stateless transformation (state :class:`~refvpng.optim.base.EmptyState`).

    Raises
    ------
    ValueError
        If ``lr`` is not finite and > 0; from ``update``, if ``grads`` is not a finite vector of
        the parameters' shape.

    Examples
    --------
    >>> s = scale(0.1)
    >>> s.update(np.array([1.0, -2.0]), s.init(np.zeros(2)))[0]
    array([ 0.1, -0.2])
    """
    lr = as_positive_scalar(lr, "lr")

    def init(params) -> EmptyState:
        check_params(params)
        return EmptyState()

    def update(grads, state, params=None, **extra):
        g = check_grads(grads, params)
        return lr * g, state

    return GradientTransformation(init, update)


class RMSPropState(NamedTuple):
    """State of :func:`scale_by_rmsprop`.

    Attributes
    ----------
    nu : ndarray, shape (P,)
        Exponential moving average of the squared direction.
    """

    nu: np.ndarray


def _finite_moment(nu: np.ndarray, rule: str) -> np.ndarray:
    if not np.all(np.isfinite(nu)):
        raise FloatingPointError(
            f"{rule}: the second moment of the direction overflowed float64 (a direction entry "
            "of magnitude above ~1e154); the state would carry inf and freeze those coordinates"
        )
    return nu


def _rmsprop(lr: float | None, decay: float, eps: float) -> GradientTransformation:
    decay = _unit_interval(decay, "decay", closed_left=False)
    eps = as_positive_scalar(eps, "eps")

    def init(params) -> RMSPropState:
        p = check_params(params)
        return RMSPropState(nu=np.zeros_like(p))

    def update(grads, state, params=None, **extra):
        g = check_grads(grads, params, size=state.nu.shape[0])
        with np.errstate(over="ignore"):
            nu = _finite_moment(decay * state.nu + (1.0 - decay) * g**2, "RMSProp")
        out = g / (np.sqrt(nu) + eps) if lr is None else lr * g / (np.sqrt(nu) + eps)
        return out, RMSPropState(nu=nu)

    return GradientTransformation(init, update)


def scale_by_rmsprop(*, decay: float = 0.9, eps: float = 1e-8) -> GradientTransformation:
    r"""RMSProp rescaling (Tieleman & Hinton, 2012) of a direction ``d``, without a learning rate.

    .. math::

        \nu_t = \rho\, \nu_{t-1} + (1 - \rho)\, d_t^2, \qquad
        \Delta_t = \frac{d_t}{\sqrt{\nu_t} + \epsilon},

    elementwise, with :math:`\nu_0 = 0`, :math:`\rho` = ``decay`` and no bias correction (as in
    the original rule and PyTorch/Keras; ε is added outside the square root). As in optax, the
    learning rate is a separate :func:`scale`; :func:`rmsprop` is the two together.

    Parameters
    ----------
    decay : float, default 0.9
        Decay :math:`\rho \in (0, 1)` of the moving average (keyword only).
    eps : float, default 1e-8
        Finite ε > 0 added to the denominator (keyword only).

    Returns
    -------
    GradientTransformation
        With state :class:`RMSPropState`.

    Raises
    ------
    ValueError
        If ``eps`` is not finite and > 0, or ``decay`` is outside (0, 1); from ``update``, if
        ``grads`` is not a finite vector of the initial parameters' shape.
    FloatingPointError
        From ``update``, if the second moment overflows.

    References
    ----------
    .. [1] T. Tieleman and G. Hinton, "Lecture 6.5 - RMSProp", COURSERA: Neural Networks for
       Machine Learning, 2012.

    Examples
    --------
    >>> r = scale_by_rmsprop(decay=0.75)
    >>> u, s = r.update(np.array([2.0]), r.init(np.zeros(1)))
    >>> s.nu                     # 0.25 * 2**2
    array([1.])
    >>> u                        # 2 / (sqrt(1) + 1e-8)
    array([1.99999998])
    """
    return _rmsprop(None, decay, eps)


def rmsprop(lr: float, decay: float = 0.9, eps: float = 1e-8) -> GradientTransformation:
    r"""RMSProp step size: ``lr`` times :func:`scale_by_rmsprop` of the direction.

    .. math::
        \Delta_t = \mathrm{lr}\; \frac{d_t}{\sqrt{\nu_t} + \epsilon}

    One transformation (state :class:`RMSPropState`), equal to
    ``chain(scale_by_rmsprop(decay=decay, eps=eps), scale(lr))`` up to the rounding of one
    product. Tang & Ranganath (2019, Section 5) use RMSProp and Adam "to set the learning rates
    in all three algorithms".

    Parameters
    ----------
    lr : float
        Learning rate, finite and > 0.
    decay : float, default 0.9
    eps : float, default 1e-8

    Returns
    -------
    GradientTransformation

    Raises
    ------
    ValueError
        If an argument is out of range (see :func:`scale_by_rmsprop`).

    Examples
    --------
    >>> r = rmsprop(0.1, decay=0.75)
    >>> np.round(r.update(np.array([2.0]), r.init(np.zeros(1)))[0], 8)   # 0.1 * 2 / (1 + 1e-8)
    array([0.2])
    """
    return _rmsprop(as_positive_scalar(lr, "lr"), decay, eps)


class AdamState(NamedTuple):
    """State of :func:`scale_by_adam`.

    Attributes
    ----------
    count : int
        Number of updates done so far (``t - 1`` during update ``t``).
    mu : ndarray, shape (P,)
        First-moment moving average of the direction.
    nu : ndarray, shape (P,)
        Second-moment moving average of the direction.
    """

    count: int  # type: ignore[assignment]  # the field shadows tuple.count
    mu: np.ndarray
    nu: np.ndarray


def _adam(lr: float | None, b1: float, b2: float, eps: float) -> GradientTransformation:
    b1 = _unit_interval(b1, "b1", closed_left=True)
    b2 = _unit_interval(b2, "b2", closed_left=True)
    eps = as_positive_scalar(eps, "eps")

    def init(params) -> AdamState:
        p = check_params(params)
        return AdamState(count=0, mu=np.zeros_like(p), nu=np.zeros_like(p))

    def update(grads, state, params=None, **extra):
        g = check_grads(grads, params, size=state.mu.shape[0])
        t = int(state.count) + 1
        mu = b1 * state.mu + (1.0 - b1) * g
        with np.errstate(over="ignore"):
            nu = _finite_moment(b2 * state.nu + (1.0 - b2) * g**2, "Adam")
        mu_hat = mu / (1.0 - b1**t)
        nu_hat = nu / (1.0 - b2**t)
        out = mu_hat / (np.sqrt(nu_hat) + eps) if lr is None else lr * mu_hat / (np.sqrt(nu_hat) + eps)
        return out, AdamState(count=t, mu=mu, nu=nu)

    return GradientTransformation(init, update)


def scale_by_adam(*, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8) -> GradientTransformation:
    r"""Adam rescaling (Kingma & Ba, 2014) of a direction ``d``, with bias correction, no learning rate.

    For update :math:`t = 1, 2, \dots` (``count = t`` after it), elementwise,

    .. math::

        m_t = \beta_1 m_{t-1} + (1-\beta_1) d_t, \quad
        v_t = \beta_2 v_{t-1} + (1-\beta_2) d_t^2, \quad
        \hat m_t = \frac{m_t}{1-\beta_1^t}, \quad \hat v_t = \frac{v_t}{1-\beta_2^t},

    .. math::

        \Delta_t = \frac{\hat m_t}{\sqrt{\hat v_t} + \epsilon},

    with :math:`m_0 = v_0 = 0`. As in optax, the learning rate is a separate :func:`scale`;
    :func:`adam` is the two together.

    Parameters
    ----------
    b1 : float, default 0.9
        First-moment decay in [0, 1).
    b2 : float, default 0.999
        Second-moment decay in [0, 1).
    eps : float, default 1e-8
        Finite ε > 0 added to the denominator.

    Returns
    -------
    GradientTransformation
        With state :class:`AdamState`.

    Raises
    ------
    ValueError
        If ``eps`` is not finite and > 0, or ``b1``/``b2`` lie outside [0, 1); from ``update``,
        if ``grads`` is not a finite vector of the initial parameters' shape.
    FloatingPointError
        From ``update``, if the second moment overflows.

    References
    ----------
    .. [1] D. P. Kingma and J. Ba, "Adam: A method for stochastic optimization", ICLR 2015,
       Algorithm 1.
    .. [2] S. Tang and R. Ranganath, "The Variational Predictive Natural Gradient", ICML 2019,
       Section 5.

    Examples
    --------
    The first step has magnitude 1 in every coordinate (up to ε):

    >>> a = scale_by_adam()
    >>> u, s = a.update(np.array([3.0, -0.5]), a.init(np.zeros(2)))
    >>> np.round(u, 6), s.count
    (array([ 1., -1.]), 1)
    """
    return _adam(None, b1, b2, eps)


def adam(lr: float, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8) -> GradientTransformation:
    r"""Adam step size: ``lr`` times :func:`scale_by_adam` of the direction.

    .. math::
        \Delta_t = \mathrm{lr}\; \frac{\hat m_t}{\sqrt{\hat v_t} + \epsilon}

    One transformation (state :class:`AdamState`), equal to
    ``chain(scale_by_adam(b1=b1, b2=b2, eps=eps), scale(lr))`` up to the rounding of one product.

    Parameters
    ----------
    lr : float
        Learning rate, finite and > 0.
    b1, b2, eps : float
        As in :func:`scale_by_adam`.

    Returns
    -------
    GradientTransformation

    Raises
    ------
    ValueError
        If an argument is out of range.

    Examples
    --------
    The first Adam step has magnitude ``lr`` in every coordinate (up to ε):

    >>> a = adam(0.1)
    >>> np.round(a.update(np.array([3.0, -0.5]), a.init(np.zeros(2)))[0], 6)
    array([ 0.1, -0.1])
    """
    return _adam(as_positive_scalar(lr, "lr"), b1, b2, eps)
