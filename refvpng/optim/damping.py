r"""Levenberg–Marquardt adaptation of the damping μ (Martens & Grosse, 2015, Section 6.5).

Tang & Ranganath (2019) add a damping μ to the estimated Fisher, Eq. 17,
:math:`(\hat F_r + \mu I)^{-1} \nabla \mathcal L`, which "can be fixed or dynamically adjusted"
(Algorithm 1, last line); their experiments keep it fixed (the default of
:func:`~refvpng.optim.directions.natural_direction`). :func:`lm_damping` provides the dynamic
option, as a transformation that wraps a whole optimiser (direction and step-size rule):

- it keeps μ in its own state (so a resumed run continues identically),
- passes μ to the wrapped chain as the keyword ``damping=mu`` (which
  :func:`~refvpng.optim.directions.natural_direction` uses in place of its fixed damping),
- sees the final ``updates`` δ of the chain, the raw gradient ``g`` and the curvature ``F``, and
  stores the quadratic model's predicted improvement :math:`m(\delta)` and the objective value,
- and at the next call, given the new objective value through the keyword ``value=``, forms the
  reduction ratio ρ and applies the Levenberg–Marquardt rule.

Sign convention: we **maximise** ``L``. With :math:`h = -L` (the minimised objective of Martens &
Grosse) and :math:`M(\delta) - M(0) = \nabla h^\top \delta + \tfrac12 \delta^\top F \delta
= -m(\delta)`, their ratio :math:`(h(\theta+\delta) - h(\theta)) / (M(\delta) - M(0))` equals
ours, :math:`(L(\theta+\delta) - L(\theta)) / m(\delta)`; a good step has ρ near 1 in both.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, NamedTuple, cast

import numpy as np
from numpy.typing import ArrayLike

from refvpng._checks import (
    as_array,
    as_int,
    as_nonneg_scalar,
    as_positive_scalar,
    as_real_scalar,
    finite_output,
)
from refvpng.optim.base import GradientTransformation, check_grads, check_params
from refvpng.optim.directions import resolve_index

if TYPE_CHECKING:
    from refvpng.curvature.operator import Curvature

__all__ = [
    "LMDampingState",
    "lm_adjust",
    "lm_damping",
    "predicted_improvement",
    "reduction_ratio",
]


@finite_output
def predicted_improvement(
    grads: ArrayLike,
    updates: ArrayLike,
    curvature: ArrayLike | Curvature,
    damping: float = 0.0,
    *,
    index: Any = None,
) -> float:
    r"""Improvement of the objective predicted by the local quadratic model.

    .. math::

        m(\delta) = g^\top \delta - \tfrac12\, \delta_I^\top (F + \mu I)\, \delta_I,

    where :math:`\delta_I` is the block of ``updates`` selected by ``index`` (all of it by
    default) and ``F`` the curvature of that block (a PSD stand-in for the negative Hessian of the
    maximised objective ``L``). Coordinates outside the block enter linearly only.

    Parameters
    ----------
    grads : array_like, shape (P,)
        Gradient ``g`` of the maximised objective at the current parameters.
    updates : array_like, shape (P,)
        The step δ actually added to the parameters.
    curvature : ndarray, shape (n, n), or operator
        Dense ``F``, or an object with a ``matvec(v)`` method.
    damping : float, default 0.0
        μ to include in the model (0 gives the undamped model of Martens & Grosse).
    index : slice, array_like of int or bool, optional
        The block the curvature belongs to (see
        :func:`~refvpng.optim.directions.natural_direction`).

    Returns
    -------
    float
        :math:`m(\delta)`.

    Raises
    ------
    ValueError
        If shapes do not match (naming ``grads``, ``updates`` or ``curvature``) or an input is
        not finite.
    TypeError
        If ``curvature`` is neither an array nor has a ``matvec`` method.

    Examples
    --------
    >>> predicted_improvement(np.array([2.0]), np.array([1.0]), np.array([[2.0]]))
    1.0
    """
    g = check_grads(grads)
    d = as_array(updates, "updates", shape=g.shape)
    mu = as_nonneg_scalar(damping, "damping")
    idx = resolve_index(index, g.shape[0])
    db = d if idx is None else d[idx]
    if not isinstance(curvature, np.ndarray) and callable(getattr(curvature, "matvec", None)):
        fd = as_array(cast("Curvature", curvature).matvec(db), "curvature.matvec(v)", shape=db.shape)
    else:
        f = as_array(curvature, "curvature", ndim=2)
        n = db.shape[0]
        if f.shape != (n, n):
            raise ValueError(f"curvature must have shape ({n}, {n}) to match grads, got {f.shape}")
        fd = f @ db
    return float(g @ d - 0.5 * (db @ fd + mu * (db @ db)))


def reduction_ratio(value_new: float, value_old: float, predicted: float) -> float:
    r"""Reduction ratio :math:`\rho = (L_{\text{new}} - L_{\text{old}}) / m(\delta)`.

    Parameters
    ----------
    value_new, value_old : float
        Objective (to maximise) after and before the step.
    predicted : float
        Predicted improvement :math:`m(\delta)` of the step (:func:`predicted_improvement`).

    Returns
    -------
    float
        ρ, or NaN when it is undefined: ``predicted`` is not finite and > 0 (the model predicts no
        improvement, e.g. a zero gradient) or a value is not finite. The rule
        :func:`lm_adjust` leaves μ unchanged for NaN.

    Examples
    --------
    >>> reduction_ratio(1.5, 1.0, 1.0)
    0.5
    """
    vn = as_real_scalar(value_new, "value_new")
    vo = as_real_scalar(value_old, "value_old")
    p = as_real_scalar(predicted, "predicted")
    if not (math.isfinite(vn) and math.isfinite(vo) and math.isfinite(p) and p > 0.0):
        return math.nan
    return (vn - vo) / p


@finite_output
def lm_adjust(damping: float, rho: float, omega: float) -> float:
    r"""One Levenberg–Marquardt adjustment of the damping (Martens & Grosse, 2015, Sec. 6.5).

    .. math::

        \mu \leftarrow \begin{cases}
            \omega\, \mu & \rho > 3/4 \quad\text{(model trustworthy: damp less)}\\
            \mu / \omega & \rho < 1/4 \quad\text{(model poor: damp more)}\\
            \mu & \text{otherwise, or } \rho \text{ is NaN}
        \end{cases}

    Parameters
    ----------
    damping : float
        Current μ ≥ 0.
    rho : float
        Reduction ratio (:func:`reduction_ratio`).
    omega : float
        Factor in (0, 1); Martens & Grosse use :math:`\omega = (19/20)^{T_1}`.

    Returns
    -------
    float
        The new μ.

    Examples
    --------
    >>> lm_adjust(1.0, 0.9, 0.5), lm_adjust(1.0, 0.1, 0.5), lm_adjust(1.0, 0.5, 0.5)
    (0.5, 2.0, 1.0)
    """
    mu = as_nonneg_scalar(damping, "damping")
    r = as_real_scalar(rho, "rho")
    omega = as_positive_scalar(omega, "omega")
    if omega >= 1.0:
        raise ValueError(f"omega must be in (0, 1), got {omega}")
    if r > 0.75:
        return omega * mu
    if r < 0.25:
        return mu / omega
    return mu


class LMDampingState(NamedTuple):
    """State of :func:`lm_damping`.

    Attributes
    ----------
    inner : NamedTuple or tuple
        State of the wrapped transformation.
    damping : float
        Current damping μ, passed to the wrapped transformation at the next update.
    count : int
        Number of updates done so far.
    prev_value : float
        Objective value at the parameters of the last update (NaN before the first).
    predicted : float
        Predicted improvement ``m(delta)`` of the last update (NaN before the first).
    rho : float
        Reduction ratio of the most recent adjustment (NaN if none yet); for monitoring.
    """

    inner: Any
    damping: float
    count: int  # type: ignore[assignment]  # the field shadows tuple.count
    prev_value: float
    predicted: float
    rho: float


def lm_damping(
    inner: GradientTransformation,
    damping: float,
    *,
    period: int = 5,
    omega: float | None = None,
    name: str = "curvature",
    index: Any = None,
    include_damping_in_model: bool = False,
    min_damping: float = 0.0,
    max_damping: float = math.inf,
) -> GradientTransformation:
    r"""Wrap an optimiser so that its damping μ is adapted by the Levenberg–Marquardt rule.

    The rule of Martens & Grosse (2015, Section 6.5), restated for maximisation. Let call
    ``k = 0, 1, ...`` of ``update`` receive the gradient :math:`g_k` and the curvature
    :math:`F_k` at :math:`\theta_k`, and the objective value :math:`L_k = L(\theta_k)` as the
    keyword ``value=``. Then:

    1. If :math:`k \ge 1` and :math:`k \bmod T_1 = 0` (every ``period`` :math:`T_1` updates),
       compute the reduction ratio of the previous step :math:`\delta_{k-1}`

       .. math::

           \rho = \frac{L_k - L_{k-1}}{m_{k-1}(\delta_{k-1})}, \qquad
           m_{k-1}(\delta) = g_{k-1}^\top \delta - \tfrac12 \delta^\top F_{k-1} \delta,

       and set :math:`\mu \leftarrow \omega\mu` if :math:`\rho > 3/4`, :math:`\mu \leftarrow
       \mu/\omega` if :math:`\rho < 1/4` (unchanged otherwise, or when ρ is undefined because
       :math:`m \le 0`), with :math:`\omega = (19/20)^{T_1}`; then clip μ to
       ``[min_damping, max_damping]``.
    2. Call the wrapped ``inner.update(g_k, ..., damping=mu, **extra)``, giving the step
       :math:`\delta_k` (after any step-size rule).
    3. Store :math:`L_k` and :math:`m_k(\delta_k)` for the next call.

    The quadratic model uses the undamped curvature, as Martens & Grosse (and the reference
    TensorFlow K-FAC) do; ``include_damping_in_model=True`` uses :math:`F + \mu I` instead. The
    curvature is the one the direction used (for the VPNG the Monte Carlo :math:`\hat F_r`), and
    :math:`L_k`, :math:`L_{k-1}` are the loop's objective estimates, drawn with different noise
    at each step: with a noisy ELBO, ρ is noisy too.

    Parameters
    ----------
    inner : GradientTransformation
        The optimiser whose direction reads ``damping`` from ``extra``, e.g.
        ``chain(natural_direction(), adam(lr))``.
    damping : float
        Initial μ, finite and > 0 (a zero μ could never grow).
    period : int, default 5
        Adjustment period :math:`T_1 \ge 1`.
    omega : float, optional
        Factor in (0, 1); default :math:`(19/20)^{T_1}`.
    name : str, default "curvature"
        Keyword under which ``update`` receives the curvature (dense ndarray, or an object with
        ``matvec(v)`` as well as the ``solve(v, damping)`` the direction needs).
    index : slice, array_like of int or bool, optional
        The block the curvature belongs to, as given to the natural direction.
    include_damping_in_model : bool, default False
        Use :math:`F + \mu I` in the quadratic model.
    min_damping, max_damping : float, default 0 and inf
        Bounds on μ.

    Returns
    -------
    GradientTransformation
        With state :class:`LMDampingState`; ``update(grads, state, params=None, *, value,
        curvature, **extra)``.

    Raises
    ------
    ValueError
        If ``damping`` is not finite and > 0, ``period < 1``, ``omega`` is outside (0, 1) or the
        bounds are inconsistent; from ``update``, if the keyword ``value`` is missing or not
        finite, or the curvature keyword is missing.

    References
    ----------
    .. [1] J. Martens and R. Grosse, "Optimizing neural networks with Kronecker-factored
       approximate curvature", ICML 2015, Section 6.5.
    .. [2] S. Tang and R. Ranganath, "The Variational Predictive Natural Gradient", ICML 2019,
       Eq. 17 and Algorithm 1 ("Adjust the dampening parameter µ").

    Examples
    --------
    On the exact quadratic ``L(x) = -x**2`` (``F = 2``) with a fixed step ``lr = 1`` the model
    is exact, ρ = 1 > 3/4, so μ shrinks by ω = 0.5 at each adjustment:

    >>> from refvpng.optim import chain, natural_direction, scale
    >>> opt = lm_damping(chain(natural_direction(), scale(1.0)), 1.0, period=1, omega=0.5)
    >>> x = np.array([1.0]); state = opt.init(x)
    >>> for _ in range(3):
    ...     u, state = opt.update(-2 * x, state, x, value=-float(x @ x), curvature=np.eye(1) * 2)
    ...     x = x + u
    >>> state.damping, round(state.rho, 12)
    (0.25, 1.0)
    """
    if not isinstance(inner, GradientTransformation):
        raise TypeError(f"inner must be a GradientTransformation, got {type(inner).__name__}")
    mu0 = as_positive_scalar(damping, "damping")
    period = as_int(period, "period", minimum=1)
    if omega is None:
        omega = (19.0 / 20.0) ** period
    omega = as_positive_scalar(omega, "omega")
    if omega >= 1.0:
        raise ValueError(f"omega must lie in (0, 1), got {omega}")
    lo = as_nonneg_scalar(min_damping, "min_damping")
    if not (isinstance(max_damping, (int, float)) and max_damping > 0):
        raise ValueError(f"max_damping must be > 0, got {max_damping}")
    hi = float(max_damping)
    if not lo <= mu0 <= hi:
        raise ValueError(f"damping must lie in [min_damping, max_damping] = [{lo}, {hi}]")
    include = bool(include_damping_in_model)

    def init(params) -> LMDampingState:
        p = check_params(params)
        resolve_index(index, p.shape[0])
        return LMDampingState(
            inner=inner.init(p),
            damping=mu0,
            count=0,
            prev_value=math.nan,
            predicted=math.nan,
            rho=math.nan,
        )

    def update(grads, state, params=None, **extra):
        g = check_grads(grads, params)
        if "value" not in extra:
            raise ValueError("lm_damping.update needs the keyword value= (the current objective)")
        value = extra["value"]
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise TypeError(f"value must be a real number, got {type(value).__name__}") from None
        if not math.isfinite(value):
            raise ValueError(f"value must be finite, got {value}")
        if name not in extra:
            raise ValueError(f"lm_damping.update needs the keyword {name}= (the curvature)")
        mu, rho, k = float(state.damping), float(state.rho), int(state.count)
        if k >= 1 and k % period == 0:
            rho = reduction_ratio(value, state.prev_value, state.predicted)
            mu = min(max(lm_adjust(mu, rho, omega), lo), hi)
        inner_extra = dict(extra)
        inner_extra["damping"] = mu
        updates, inner_state = inner.update(g, state.inner, params, **inner_extra)
        pred = predicted_improvement(g, updates, extra[name], mu if include else 0.0, index=index)
        new_state = LMDampingState(
            inner=inner_state, damping=mu, count=k + 1, prev_value=value, predicted=pred, rho=rho
        )
        return updates, new_state

    return GradientTransformation(init, update)
