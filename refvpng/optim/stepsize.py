r"""Step-size rules: fixed, RMSProp and Adam, applied to the output of a direction.

Each rule is a :class:`~refvpng.optim.base.GradientTransformation` meant to follow a direction in
:func:`~refvpng.optim.base.chain`, e.g. ``chain(natural_direction(mu), scale_by_rmsprop(lr))``.
Its input ``grads`` is then the *direction* ``d`` (the vanilla gradient, the q-natural gradient
or the VPNG), so the RMS statistics are statistics of the direction, not of the raw gradient.
This is how Tang & Ranganath (2019, Section 5) "use RMSProp and Adam to set the learning rates in
all three algorithms".

Sign convention: the objective is maximised, so every rule returns ``+lr * (...)`` to be added to
the parameters.
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


def scale_by_rmsprop(lr: float, decay: float = 0.9, eps: float = 1e-8) -> GradientTransformation:
    r"""RMSProp step size (Tieleman & Hinton, 2012) applied to a direction ``d``.

    .. math::

        \nu_t = \rho\, \nu_{t-1} + (1 - \rho)\, d_t^2, \qquad
        \Delta_t = \mathrm{lr}\; \frac{d_t}{\sqrt{\nu_t} + \epsilon},

    elementwise, with :math:`\nu_0 = 0`, :math:`\rho` = ``decay`` and no bias correction (as in
    the original rule and PyTorch/Keras; ε is added outside the square root).

    Parameters
    ----------
    lr : float
        Learning rate, finite and > 0.
    decay : float, default 0.9
        Decay :math:`\rho \in (0, 1)` of the moving average.
    eps : float, default 1e-8
        Finite ε > 0 added to the denominator.

    Returns
    -------
    GradientTransformation
        With state :class:`RMSPropState`.

    Raises
    ------
    ValueError
        If ``lr`` or ``eps`` is not finite and > 0, or ``decay`` is outside (0, 1); from
        ``update``, if ``grads`` is not a finite vector of the initial parameters' shape.

    References
    ----------
    .. [1] T. Tieleman and G. Hinton, "Lecture 6.5 - RMSProp", COURSERA: Neural Networks for
       Machine Learning, 2012.
    .. [2] S. Tang and R. Ranganath, "The Variational Predictive Natural Gradient", ICML 2019,
       Section 5.

    Examples
    --------
    >>> r = scale_by_rmsprop(0.1, decay=0.75, eps=1e-8)
    >>> u, s = r.update(np.array([2.0]), r.init(np.zeros(1)))
    >>> s.nu                     # 0.25 * 2**2
    array([1.])
    >>> np.round(u, 8)           # 0.1 * 2 / (1 + 1e-8)
    array([0.2])
    """
    lr = as_positive_scalar(lr, "lr")
    decay = _unit_interval(decay, "decay", closed_left=False)
    eps = as_positive_scalar(eps, "eps")

    def init(params) -> RMSPropState:
        p = check_params(params)
        return RMSPropState(nu=np.zeros_like(p))

    def update(grads, state, params=None, **extra):
        g = check_grads(grads, params, size=state.nu.shape[0])
        nu = decay * state.nu + (1.0 - decay) * g**2
        return lr * g / (np.sqrt(nu) + eps), RMSPropState(nu=nu)

    return GradientTransformation(init, update)


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

    count: int
    mu: np.ndarray
    nu: np.ndarray


def scale_by_adam(
    lr: float, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8
) -> GradientTransformation:
    r"""Adam step size (Kingma & Ba, 2014) applied to a direction ``d``, with bias correction.

    For update :math:`t = 1, 2, \dots` (``count = t`` after it), elementwise,

    .. math::

        m_t = \beta_1 m_{t-1} + (1-\beta_1) d_t, \quad
        v_t = \beta_2 v_{t-1} + (1-\beta_2) d_t^2, \quad
        \hat m_t = \frac{m_t}{1-\beta_1^t}, \quad \hat v_t = \frac{v_t}{1-\beta_2^t},

    .. math::

        \Delta_t = \mathrm{lr}\; \frac{\hat m_t}{\sqrt{\hat v_t} + \epsilon},

    with :math:`m_0 = v_0 = 0`. The update is added (we maximise).

    Parameters
    ----------
    lr : float
        Learning rate, finite and > 0.
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
        If ``lr`` or ``eps`` is not finite and > 0, or ``b1``/``b2`` lie outside [0, 1); from
        ``update``, if ``grads`` is not a finite vector of the initial parameters' shape.

    References
    ----------
    .. [1] D. P. Kingma and J. Ba, "Adam: A method for stochastic optimization", ICLR 2015,
       Algorithm 1.
    .. [2] S. Tang and R. Ranganath, "The Variational Predictive Natural Gradient", ICML 2019,
       Section 5.

    Examples
    --------
    The first Adam step has magnitude ``lr`` in every coordinate (up to ε):

    >>> a = scale_by_adam(0.1)
    >>> u, s = a.update(np.array([3.0, -0.5]), a.init(np.zeros(2)))
    >>> np.round(u, 6), s.count
    (array([ 0.1, -0.1]), 1)
    """
    lr = as_positive_scalar(lr, "lr")
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
        nu = b2 * state.nu + (1.0 - b2) * g**2
        mu_hat = mu / (1.0 - b1**t)
        nu_hat = nu / (1.0 - b2**t)
        return lr * mu_hat / (np.sqrt(nu_hat) + eps), AdamState(count=t, mu=mu, nu=nu)

    return GradientTransformation(init, update)
