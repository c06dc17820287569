r"""The variational predictive Fisher as a matrix-free operator: :math:`v \mapsto F_r v`.

No dense :math:`F_r` fits at the paper's VAE size (455,384 parameters), but its product with a
vector does. On a minibatch :math:`x_{1:n}` with fixed noise :math:`\varepsilon_{si}`
(:math:`s = 1..S`) and outputs :math:`t_{si}` with Jacobians :math:`J_{si} = \partial t_{si} /
\partial\eta`,

.. math::
    F_r v = \frac{1}{S}\sum_{s=1}^S \sum_{i=1}^n J_{si}^\top \Lambda_{si} J_{si} v,

one Jacobian-vector product forward, :math:`\Lambda` in between, one vector-Jacobian product
back, where

- ``x_pred=None``: :math:`\Lambda_{si} = \Lambda(t_{si})`, the likelihood's output Fisher: the
  :math:`F_r` of :func:`refvpng.curvature.fisher.vp_fisher_exact` (exact over :math:`x'`);
- ``x_pred`` of shape ``(S, M, n, d)``: :math:`\Lambda_{si} = \frac1M \sum_k \hat r_{ski}
  \hat r_{ski}^\top`, :math:`\hat r_{ski} = \nabla_t \log p(\hat x'^{(k)}_{si} \mid t_{si})`:
  :math:`\hat F_r` of Eq. 16, :func:`refvpng.curvature.fisher.vp_fisher_mc` with the same
  pre-drawn predictive samples.

The forward pass runs once, when the operator is built. The products come from the model's
``linearize`` hook when present (:func:`refvpng.nn.linearize.chain_linearize` for
:func:`refvpng.nn.chain_model`: explicit forward and backward passes) and otherwise from autograd
(forward mode for :math:`Jv`, reverse mode for :math:`J^\top u`), for any
:class:`~refvpng.models.latent.LatentModel`. :class:`VPFisherOperator` implements the
:class:`~refvpng.curvature.operator.Curvature` protocol with the Eq. 17 damping :math:`\mu`
(``damping``): ``matvec`` multiplies by :math:`c F_r + \mu I` (``scale`` :math:`= c`, e.g.
:math:`1/n` for the per-data-point scale of :mod:`refvpng.nn.vae`), ``solve`` runs conjugate
gradients (:func:`refvpng.curvature.cg.cg_solve`) to ``rtol``.

References
----------
.. [1] Y. Tang and R. Ranganath, "The Variational Predictive Natural Gradient", ICML 2019,
   Eqs. (13), (16) and (17).
.. [2] N. N. Schraudolph, "Fast curvature matrix-vector products for second-order gradient
   descent", Neural Computation 14(7), 2002.

Examples
--------
>>> import numpy as np
>>> from refvpng.models import gaussian_mean as gm
>>> model = gm.make_model(eps_corr=0.01, sigma=0.5)
>>> rng = np.random.default_rng(0)
>>> x, eps = gm.make_data(rng, 10, eps_corr=0.01), rng.standard_normal((1, 2))
>>> op = VPFisherOperator(model, np.array([0.4, -0.3]), x, eps)
>>> np.allclose(op.to_dense(), gm.vp_fisher_closed(10, 0.01))   # F_r = n Sigma^-1
True
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from autograd import make_jvp, make_vjp
from numpy.typing import ArrayLike

from refvpng._checks import as_array, as_int, as_nonneg_scalar, as_positive_scalar, check_finite_output
from refvpng.curvature.cg import CGResult, _NotPositiveDefinite, cg_solve
from refvpng.curvature.fisher import _check_x_pred, _prepare
from refvpng.curvature.operator import EyeDamped
from refvpng.models.latent import LatentModel, outputs

__all__ = ["VPFisherOperator", "linearize"]


def linearize(
    model: LatentModel, eta: ArrayLike, x: ArrayLike, eps: ArrayLike, cov: ArrayLike | None = None
) -> tuple[np.ndarray, Callable[[np.ndarray], np.ndarray], Callable[[np.ndarray], np.ndarray]]:
    r"""Outputs and the products :math:`v \mapsto Jv`, :math:`u \mapsto \sum J_{si}^\top u_{si}`.

    The model's ``linearize`` hook when it has one, otherwise autograd (the reference).

    Parameters
    ----------
    model, eta, x, eps, cov
        As in :func:`refvpng.curvature.fisher.output_jacobian`.

    Returns
    -------
    t : ndarray, shape (S, n, d_t)
        The likelihood's output parameters (``d_t = d`` except for families with more
        outputs, e.g. a learned variance).
    jvp : callable ``(P,) -> (S, n, d_t)``
    vjp : callable ``(S, n, d_t) -> (P,)``

    Raises
    ------
    FloatingPointError
        If the outputs overflow although every input is finite.
    """
    eta, x, eps, cov = _prepare(model, eta, x, eps, cov)
    s, n = eps.shape[0], x.shape[0]
    if model.hooks.linearize is not None:
        t_h, jvp_h, vjp_h = model.hooks.linearize(eta, x, eps, cov)
        t_h = as_array(t_h, "hooks.linearize output t", shape=(s, n, None), finite=False)
        return check_finite_output(t_h, "linearize", "output t"), jvp_h, vjp_h

    def f(e):
        return outputs(model, e, x, eps, cov)

    vjp_fn, t = make_vjp(f)(eta)
    jvp_at = make_jvp(f)(eta)
    t = as_array(np.asarray(t), "outputs", shape=(s, n, None), finite=False)
    t = check_finite_output(t, "linearize", "output t")

    def jvp(v):
        return np.asarray(jvp_at(v)[1], dtype=np.float64)

    def vjp(u):
        return np.asarray(vjp_fn(u), dtype=np.float64)

    return t, jvp, vjp


class VPFisherOperator(EyeDamped):
    r"""Matrix-free :math:`c F_r + \mu I` (module docstring) on fixed data and noise.

    Parameters
    ----------
    model, eta, x, cov
        As in :func:`refvpng.curvature.fisher.output_jacobian` (``cov`` after ``x_pred``).
    eps : ndarray, shape (S, n, dz) or (S, dz)
        Pre-drawn latent noise.
    x_pred : ndarray, shape (S, M, n, d), or callable, optional
        Pre-drawn predictive samples: Eq. 16's :math:`\hat F_r`; default the exact :math:`F_r`.
        A callable receives the outputs ``t`` ``(S, n, d)`` of the operator's forward pass and
        returns the samples (e.g. :math:`[u < \sigma(t)]` from pre-drawn uniforms ``u``), so
        they need no second forward pass.
    damping : float, default 0.0
        :math:`\mu \ge 0` of Eq. 17, in the units of :math:`c F_r`.
    scale : float, default 1.0
        :math:`c > 0` (``1 / n``: per data point).
    rtol : float, default 1e-10
        Relative residual at which ``solve`` stops.
    maxiter : int, optional
        CG iterations allowed in ``solve`` (default :math:`10 P`).

    Attributes
    ----------
    shape : (int, int)
    t : ndarray, shape (S, n, d)
        The outputs at ``eta``.
    products : int
        Products by :math:`F_r` made so far (one Jacobian-vector and one vector-Jacobian
        product each): the cost counter of a Hessian-free step.

    Raises
    ------
    TypeError, ValueError
        Naming the argument, as the dense estimators.
    FloatingPointError
        If the outputs overflow although every input is finite.
    """

    def __init__(
        self,
        model: LatentModel,
        eta: ArrayLike,
        x: ArrayLike,
        eps: ArrayLike,
        x_pred: ArrayLike | Callable[[np.ndarray], ArrayLike] | None = None,
        cov: ArrayLike | None = None,
        *,
        damping: float = 0.0,
        scale: float = 1.0,
        rtol: float = 1e-10,
        maxiter: int | None = None,
    ) -> None:
        eta, x, eps, cov = _prepare(model, eta, x, eps, cov)
        if x_pred is not None and not callable(x_pred):
            x_pred = _check_x_pred(model, x, eps, x_pred)
        self.damping = as_nonneg_scalar(damping, "damping")
        self.scale = as_positive_scalar(scale, "scale")
        self.rtol = as_nonneg_scalar(rtol, "rtol")
        self.maxiter = None if maxiter is None else as_int(maxiter, "maxiter")
        p = model.n_params
        self.shape: tuple[int, int] = (p, p)
        try:
            self.t, self._jvp, self._vjp = linearize(model, eta, x, eps, cov)
        except FloatingPointError as exc:
            raise FloatingPointError(f"VPFisherOperator: {exc}") from None
        self.products = 0
        lik, s = model.likelihood, eps.shape[0]
        self._weight = self.scale / s
        if callable(x_pred):  # samples from pre-drawn uniforms at the outputs of this forward pass
            x_pred = _check_x_pred(model, x, eps, x_pred(self.t))
        self._diag = bool(getattr(lik, "diagonal", False))
        self._r: np.ndarray | None = None  # Eq 16: the scores (S, M, n, d) of the samples
        self._lam = np.zeros(0)  # exact: the output Fisher
        if x_pred is not None:
            self._r = np.asarray(lik.score(x_pred, self.t[:, None]), dtype=np.float64)
        else:
            self._lam = np.asarray(lik.output_fisher(self.t), dtype=np.float64)

    def _apply_lambda(self, u: np.ndarray) -> np.ndarray:
        if self._r is not None:  # (1/M) sum_k r_k (r_k . u)
            c = np.einsum("smnd,snd->smn", self._r, u)
            return np.einsum("smn,smnd->snd", c, self._r) / self._r.shape[1]
        if self._diag:
            return self._lam * u
        if self._lam.ndim == 2:  # one symmetric Lambda for every output (Gaussian)
            return u @ self._lam
        return np.einsum("...ij,...j->...i", self._lam, u)

    def _fisher_vec(self, v: np.ndarray) -> np.ndarray:
        self.products += 1
        out = self._vjp(self._apply_lambda(self._jvp(v)))
        return self._weight * np.asarray(out, dtype=np.float64).reshape(-1)

    def matvec(self, v: ArrayLike, damping: float | None = None) -> np.ndarray:
        r"""Return :math:`(c F_r + \mu I) v` for ``v`` of shape ``(P,)`` or ``(P, k)``."""
        v, mu = self._vec(v), self._mu(damping)
        if v.ndim == 1:
            return self._fisher_vec(v) + mu * v
        cols = [self._fisher_vec(v[:, j]) for j in range(v.shape[1])]
        return np.stack(cols, axis=1) + mu * v if cols else np.zeros(v.shape)

    def cg(
        self,
        g: ArrayLike,
        damping: float | None = None,
        *,
        x0: ArrayLike | None = None,
        rtol: float | None = None,
        maxiter: int | None = None,
    ) -> CGResult:
        r"""Conjugate gradients on :math:`(c F_r + \mu I)\delta = g` (:func:`cg_solve`).

        Parameters
        ----------
        g : ndarray, shape (P,)
        damping : float, optional
            :math:`\mu` (default the operator's).
        x0 : ndarray, shape (P,), optional
            Warm start.
        rtol, maxiter : optional
            Override the operator's.

        Returns
        -------
        CGResult

        Raises
        ------
        ValueError
            Naming the argument; or if CG meets non-positive curvature (:math:`F_r` singular
            to rounding at this damping: increase it).
        """
        mu = self._mu(damping)
        g = as_array(g, "g", shape=(self.shape[0],))
        try:
            return cg_solve(
                lambda v: self._fisher_vec(v) + mu * v,
                g,
                x0=x0,
                rtol=self.rtol if rtol is None else rtol,
                maxiter=self.maxiter if maxiter is None else maxiter,
            )
        except _NotPositiveDefinite as exc:
            raise ValueError(
                f"{exc}: c F_r + mu I is singular to rounding at damping mu = {mu:g}; increase damping"
            ) from None

    def solve(self, v: ArrayLike, damping: float | None = None) -> np.ndarray:
        r"""Return :math:`(c F_r + \mu I)^{-1} v` by conjugate gradients to ``rtol``.

        Raises
        ------
        ValueError
            If CG does not reach ``rtol`` within ``maxiter`` iterations (singular or badly
            conditioned system: increase damping) or meets non-positive curvature.
        """
        v = self._vec(v)
        cols = [v] if v.ndim == 1 else [v[:, j] for j in range(v.shape[1])]
        out = []
        for col in cols:
            res = self.cg(col, damping)
            if not res.converged:
                raise ValueError(
                    f"CG did not reach rtol={self.rtol:g} in {res.iterations} iterations "
                    f"(relative residual {res.residual:.3g}); increase damping or maxiter"
                )
            out.append(res.x)
        return out[0] if v.ndim == 1 else np.stack(out, axis=1)

    def to_dense(self, damping: float | None = None) -> np.ndarray:
        r"""Return :math:`c F_r + \mu I`, shape ``(P, P)``, column by column (small models)."""
        return self.matvec(np.eye(self.shape[0]), damping)
