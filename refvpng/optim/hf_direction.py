r"""Hessian-free direction: truncated conjugate gradients on a curvature-vector product each step.

HF-SGVI (Fan et al. 2015) is stochastic variational inference with a Hessian-free step
(Martens 2010): every iteration approximately solves :math:`(C + \mu I)\,\delta = g` by a few
conjugate-gradient iterations, touching the curvature :math:`C` only through products. Here the
curvature is the variational predictive Fisher of the step's minibatch and noise, as a
matrix-free operator (:class:`refvpng.curvature.fr_operator.VPFisherOperator`, e.g.
:func:`refvpng.nn.linearize.vae_fisher_operator`), so the direction is a truncated solve of the
damped VPNG system of Eq. 17 of Tang & Ranganath (2019). (Fan et al. multiply by the Hessian of
the ELBO; the Fisher is positive semi-definite, so CG is well defined at every point.)

Cost per iteration (stated once): one gradient, one forward pass to linearise the network at the
step's noise, and at most ``max_iter`` products :math:`(C + \mu I) v` (one more for the initial
residual of a warm start), each one Jacobian-vector and one vector-Jacobian product (0.86 of a
gradient evaluation at the paper's VAE size, measured by ``validation/vae_direction_quality.py
--timing``); :class:`HFDirectionState` counts the CG iterations.

Warm start (Martens 2010, Section 4.5): CG starts from :math:`\zeta\,\delta_{k-1}`, the previous
direction decayed by ``warm_start`` :math:`= \zeta` (``0``: from zero, where one iteration gives
the gradient scaled by :math:`g^\top g / g^\top (C + \mu I) g`).

References
----------
.. [1] K. Fan, Z. Wang, J. Beck, J. Kwok and K. Heller, "Fast second-order stochastic
   backpropagation for variational inference", NeurIPS 2015.
.. [2] J. Martens, "Deep learning via Hessian-free optimization", ICML 2010.
.. [3] Y. Tang and R. Ranganath, "The Variational Predictive Natural Gradient", ICML 2019,
   Eq. 17 and Section 5.2.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from refvpng._checks import as_int, as_nonneg_scalar
from refvpng.curvature.cg import cg_solve
from refvpng.optim.base import GradientTransformation, check_grads, check_params

__all__ = ["HFDirectionState", "hf_direction"]


class HFDirectionState(NamedTuple):
    """State of :func:`hf_direction`.

    Attributes
    ----------
    previous : ndarray, shape (P,)
        The last direction (zeros before the first update), the warm start of the next solve.
    iterations : int
        CG iterations (curvature products) of the last update.
    total_iterations : int
        CG iterations of all updates so far.
    residual : float
        Relative residual of the last truncated solve.
    """

    previous: np.ndarray
    iterations: int
    total_iterations: int
    residual: float


def _matvec(curvature, mu: float, name: str):
    if isinstance(curvature, np.ndarray):
        return lambda v: curvature @ v + mu * v
    if not callable(getattr(curvature, "matvec", None)):
        raise TypeError(f"{name} must be a Curvature (with matvec) or a dense ndarray")
    return lambda v: curvature.matvec(v, 0.0) + mu * v


def hf_direction(
    max_iter: int = 5,
    damping: float = 0.0,
    *,
    warm_start: float = 0.0,
    rtol: float = 1e-8,
    name: str = "curvature",
) -> GradientTransformation:
    r"""Truncated-CG (Hessian-free) direction :math:`\delta \approx (C + \mu I)^{-1} g`.

    Each ``update`` runs :func:`refvpng.curvature.cg.cg_solve` on
    :math:`(C + \mu I)\delta = g` from :math:`\zeta \delta_{k-1}` for at most ``max_iter``
    iterations (or until the relative residual reaches ``rtol``), with :math:`C` this step's
    curvature (module docstring).

    Parameters
    ----------
    max_iter : int, default 5
        CG iterations per step (the truncation).
    damping : float, default 0.0
        :math:`\mu \ge 0`, on the scale of :math:`C` (per data point for
        :func:`refvpng.nn.linearize.vae_fisher_operator`); a ``damping`` keyword of ``update``
        overrides it. Added here: the operator's own damping is not used.
    warm_start : float, default 0.0
        :math:`\zeta \in [0, 1]`.
    rtol : float, default 1e-8
        Early stop of CG.
    name : str, default "curvature"
        Keyword of ``update`` carrying :math:`C`: a
        :class:`~refvpng.curvature.operator.Curvature` (``matvec(v, 0.0)`` must be the
        undamped product: true of :class:`~refvpng.curvature.fr_operator.VPFisherOperator` and
        :class:`~refvpng.curvature.operator.DenseCurvature`) or a dense ndarray.

    Returns
    -------
    GradientTransformation
        State :class:`HFDirectionState`.

    Raises
    ------
    ValueError, TypeError
        Naming the argument; from ``update``: the curvature keyword missing or of the wrong
        type, or a non-positive-definite system.

    Examples
    --------
    >>> d = hf_direction(max_iter=2, damping=1.0)
    >>> state = d.init(np.zeros(2))
    >>> u, state = d.update(np.array([2.0, 4.0]), state, curvature=np.diag([1.0, 3.0]))
    >>> u.round(12), state.iterations
    (array([1., 1.]), 2)
    """
    max_iter = as_int(max_iter, "max_iter")
    mu0 = as_nonneg_scalar(damping, "damping")
    zeta = as_nonneg_scalar(warm_start, "warm_start")
    if zeta > 1:
        raise ValueError(f"warm_start must be in [0, 1], got {zeta}")
    rtol = as_nonneg_scalar(rtol, "rtol")
    if not isinstance(name, str) or not name:
        raise TypeError("name must be a non-empty string")

    def init(params) -> HFDirectionState:
        p = check_params(params)
        return HFDirectionState(np.zeros(p.shape[0]), 0, 0, 0.0)

    def update(grads, state, params=None, **extra: Any):
        if not isinstance(state, HFDirectionState):
            raise ValueError(f"state must be an HFDirectionState (from init), got {type(state).__name__}")
        g = check_grads(grads, params)
        if extra.get(name) is None:
            raise ValueError(f"hf_direction.update needs the keyword {name}= (the curvature C)")
        mu = mu0 if extra.get("damping") is None else as_nonneg_scalar(extra["damping"], "damping")
        mv = _matvec(extra[name], mu, name)
        x0 = zeta * state.previous if zeta > 0 else None
        res = cg_solve(mv, g, x0=x0, rtol=rtol, maxiter=max_iter, true_residual=False)
        new = HFDirectionState(
            res.x, res.iterations, int(state.total_iterations) + res.iterations, res.residual
        )
        return res.x.copy(), new

    return GradientTransformation(init, update)
