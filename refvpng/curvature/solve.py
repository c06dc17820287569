r"""The damped natural-gradient solve of Eq 17 of Tang & Ranganath (2019).

.. math::
    \hat\nabla^{\mathrm{VPNG}}_{\lambda,\theta}\mathcal{L} = (\hat F_r + \mu I)^{-1}
        \nabla_{\lambda,\theta}\mathcal{L}

Damping convention (stated once): :math:`\mu` is added to the diagonal of the *summed* Fisher
(the sum over data points), in the same units as :math:`\hat F_r`.
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import cho_factor, cho_solve

from refvpng._checks import as_array, as_nonneg_scalar

__all__ = ["damped_solve"]


def damped_solve(fisher, grad, damping: float = 0.0) -> np.ndarray:
    r"""Solve :math:`(F + \mu I)\,\delta = g` by Cholesky (Eq 17).

    Parameters
    ----------
    fisher : ndarray, shape (P, P)
        Symmetric positive semi-definite curvature (:math:`\hat F_r`, :math:`F_q`, ...).
    grad : ndarray, shape (P,) or (P, k)
        Right-hand side(s).
    damping : float, default 0.0
        :math:`\mu \ge 0`.

    Returns
    -------
    ndarray, same shape as ``grad``

    Raises
    ------
    ValueError
        If shapes disagree, inputs are not finite, ``fisher`` is not symmetric, or
        :math:`F + \mu I` is not positive definite (a singular Fisher needs ``damping > 0``).

    Examples
    --------
    >>> import numpy as np
    >>> damped_solve(np.diag([2.0, 4.0]), np.array([2.0, 2.0]), damping=0.0)
    array([1. , 0.5])
    """
    f = as_array(fisher, "fisher", ndim=2)
    if f.shape[0] != f.shape[1]:
        raise ValueError(f"fisher must be square, got shape {f.shape}")
    g = as_array(grad, "grad", ndim=(1, 2))
    if g.shape[0] != f.shape[0]:
        raise ValueError(f"grad must have {f.shape[0]} rows to match fisher, got shape {g.shape}")
    mu = as_nonneg_scalar(damping, "damping")
    scale = max(float(np.max(np.abs(f))), np.finfo(float).tiny)
    if np.max(np.abs(f - f.T)) > 1e-10 * scale:
        raise ValueError("fisher must be symmetric")
    a = f + mu * np.eye(f.shape[0])
    try:
        c = cho_factor(a, lower=True, check_finite=False)
    except np.linalg.LinAlgError:
        c = None
    # Numerically singular: the squared pivot ratio (a lower bound on 1/cond) is at rounding level.
    if c is None or (np.min(np.abs(np.diag(c[0]))) / np.max(np.abs(np.diag(c[0])))) ** 2 <= (
        10.0 * f.shape[0] * np.finfo(float).eps
    ):
        raise ValueError(
            f"fisher + damping * I is singular or not positive definite (damping={mu}); "
            "pass damping > 0"
        )
    return cho_solve(c, g, check_finite=False)
