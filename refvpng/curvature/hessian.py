r"""Negative Hessians of the expected log-likelihood: Eq 3, 7, 9 and 11-12 of Tang & Ranganath (2019).

Notation: :math:`u(x_i, x'_i, \varepsilon_i, \eta) = \partial^2_\eta \log p(x'_i \mid z_i =
g(x_i, \varepsilon_i; \lambda); \theta)`, and :math:`v(x_i, x'_i, z_i, \eta)` the same Hessian with
:math:`\varepsilon_i = g^{-1}(x_i, z_i; \lambda)` expressed through :math:`z_i`. All matrices are
sums over data points and means over Monte Carlo samples, all computed by autograd, and every
function can return the i.i.d. per-sample matrices for a standard error.

========================== ===================================================================
function                   matrix
========================== ===================================================================
``elbo_hessian``           :math:`\partial^2_\eta \mathcal{L}` (Eq 1) at fixed noise
``eq3_integral_term_mc``   :math:`\int \partial^2_\lambda q\,(\log q - \log p(z\mid x))\,dz` (Eq 3)
``ll_neg_hessian``         :math:`-\partial^2_\eta \mathcal{L}_{ll}` on the data (Eq 7)
``eq9_matrix``             :math:`-\sum_i E_{p(z_i)}E_{p(x_i\mid z_i)}[v(x_i, x_i, z_i, \eta)]`
                           (Eq 9); with ``x_pred`` the predictive-sampling version (Eq 11)
``vp_fisher_hessian_form`` :math:`\sum_i E_{\varepsilon_i}E_{x'_i}[-u(x_i, x'_i, \varepsilon_i,
                           \eta)]` (Eq 12), equal to the score form :math:`F_r` (Eq 13)
========================== ===================================================================
"""

from __future__ import annotations

from collections.abc import Callable

import autograd.numpy as anp
import numpy as np
from autograd import hessian
from numpy.typing import ArrayLike

from refvpng._checks import as_array, check_finite_output, check_samples, finite_output
from refvpng.curvature._autodiff import jacobian_fwd
from refvpng.elbo import _elbo_samples
from refvpng.models.latent import (
    LatentModel,
    check_data,
    check_eps,
    check_model,
    latents,
    outputs,
    split_params,
)

__all__ = [
    "elbo_hessian",
    "eq3_integral_term_mc",
    "ll_neg_hessian",
    "eq9_matrix",
    "vp_fisher_hessian_form",
]


def _hessians(fun_batch, eta, n_samples, batches, func):
    """Mean over samples of the Hessians of ``fun_batch(eta, sl)`` (mean over the slice ``sl``).

    With ``batches=None`` one vectorised Hessian over all samples is returned. With an integer,
    the samples are split into that many contiguous batches and the i.i.d. batch means are
    returned as well: their mean is the overall mean and their spread gives a standard error.
    """
    if batches is None:
        return check_finite_output(
            np.asarray(hessian(lambda e: fun_batch(e, slice(0, n_samples)))(eta)), func
        )
    if isinstance(batches, bool) or not isinstance(batches, (int, np.integer)) or batches < 2:
        raise ValueError(f"batches must be None or an integer >= 2, got {batches!r}")
    if batches > n_samples:
        raise ValueError(f"batches ({batches}) must not exceed the number of samples ({n_samples})")
    edges = np.linspace(0, n_samples, batches + 1).astype(int)
    per = np.stack(
        [
            np.asarray(hessian(lambda e, a=a, b=b: fun_batch(e, slice(a, b)))(eta))
            for a, b in zip(edges[:-1], edges[1:], strict=True)
        ]
    )
    sizes = np.diff(edges).astype(float)
    check_finite_output(per, func, "batch Hessians")
    return np.tensordot(sizes / sizes.sum(), per, axes=1), per


@finite_output
def elbo_hessian(
    model: LatentModel,
    eta: ArrayLike,
    x: ArrayLike,
    eps: ArrayLike,
    cov: ArrayLike | None = None,
    *,
    wrt: str = "lambda",
    batches: int | None = None,
) -> np.ndarray:
    r"""Hessian of the Monte Carlo ELBO (Eq 1) at fixed noise, w.r.t. :math:`\lambda` or :math:`\eta`.

    An unbiased estimate of :math:`\partial^2 \mathcal{L}`; exact for any noise when the ELBO is
    quadratic in the parameters (Eq 4 with fixed :math:`\sigma`, where it is
    :math:`-(I + n\Sigma^{-1})`). The negative of the :math:`\lambda` block is the left side of Eq 3.

    Parameters
    ----------
    wrt : {"lambda", "eta"}
        Differentiate in :math:`\lambda` only (shape ``(n_lambda, n_lambda)``) or in all of
        :math:`\eta` (``(P, P)``).
    batches : int, optional
        Also return this many i.i.d. batch-mean Hessians, for a standard error.
    """
    check_model(model)
    eta = as_array(eta, "eta", ndim=1)
    lam, theta = split_params(model, eta)
    x, cov = check_data(model, x, cov)
    eps = check_samples(check_eps(model, eps, x.shape[0]), "eps")
    if wrt not in ("lambda", "eta"):
        raise ValueError(f"wrt must be 'lambda' or 'eta', got {wrt!r}")

    if wrt == "eta":

        def f(e, sl):
            return anp.mean(_elbo_samples(model, e, x, eps[sl], cov))

        return _hessians(f, eta, eps.shape[0], batches, "elbo_hessian")

    def f_lam(lv, sl):
        return anp.mean(_elbo_samples(model, anp.concatenate([lv, theta]), x, eps[sl], cov))

    return _hessians(f_lam, lam, eps.shape[0], batches, "elbo_hessian")


@finite_output
def eq3_integral_term_mc(
    model: LatentModel,
    eta: ArrayLike,
    x: ArrayLike,
    z: ArrayLike,
    log_posterior: Callable[[np.ndarray], float],
    *,
    baseline: float = 0.0,
    batches: int = 20,
) -> tuple[np.ndarray, np.ndarray]:
    r"""Score-function estimate of the integral term of Eq 3.

    .. math::
        -\frac{\partial^2 \mathcal{L}}{\partial\lambda^2} = F_q
          + \int \frac{\partial^2 q}{\partial\lambda^2}\,(\log q(z\mid x;\lambda)
            - \log p(z \mid x))\,dz,

    estimated with :math:`\partial^2_\lambda q = q\,(\partial^2_\lambda\log q +
    \nabla_\lambda\log q\,\nabla_\lambda\log q^\top)` at draws :math:`z_s \sim q`:

    .. math::
        \hat T = \frac1S\sum_s (\partial^2_\lambda \log q + \nabla\log q\nabla\log q^\top)(z_s)
                 \,\big(\log q(z_s) - \log p(z_s\mid x) - c\big).

    Any constant ``baseline`` :math:`c` leaves it unbiased because
    :math:`\int\partial^2_\lambda q\,dz = 0`; :math:`c = \mathrm{KL}(q\|p(\cdot\mid x))` reduces the
    variance. Requires the exact posterior, so it applies to models with a known posterior.

    Parameters
    ----------
    z : ndarray, shape (S, n, dz) or (S, dz)
        Draws from :math:`q(z \mid x; \lambda)`.
    log_posterior : callable ``z -> float``
        :math:`\log p(z \mid x)` of one draw (summed over points for local latents).
    baseline : float
        The constant :math:`c`.
    batches : int, default 20
        Number of i.i.d. batch means returned for a standard error.

    Returns
    -------
    mean : ndarray, shape (n_lambda, n_lambda)
    batch_means : ndarray, shape (batches, n_lambda, n_lambda)
    """
    check_model(model)
    eta = as_array(eta, "eta", ndim=1)
    lam, _ = split_params(model, eta)
    x = as_array(x, "x", shape=(None, model.obs_dim))
    if x.shape[0] < 1:
        raise ValueError("x must have at least one row")
    if isinstance(batches, bool) or not isinstance(batches, (int, np.integer)) or batches < 2:
        raise ValueError(f"batches must be an integer >= 2, got {batches!r}")
    dz = model.latent_dim
    z = check_samples(as_array(z, "z", shape=(None, x.shape[0], dz) if model.local else (None, dz)), "z")
    s_count = z.shape[0]
    if not callable(log_posterior):
        raise TypeError(f"log_posterior must be callable, got {type(log_posterior).__name__}")

    def logq_each(lv):  # (S,) log q(z_s | x; lv)
        m, rho = model.encode(lv, x)
        lq = model.family.log_density(z, m, rho)
        return anp.sum(lq, axis=-1) if model.local else lq

    lq0, scores = jacobian_fwd(logq_each, lam)  # (S,), (S, n_lambda)
    w = lq0 - np.array([float(log_posterior(zs)) for zs in z]) - baseline

    def f(lv, sl):
        return anp.mean(w[sl] * logq_each(lv)[sl])

    _, hess_b = _hessians(f, lam, s_count, batches, "eq3_integral_term_mc")
    edges = np.linspace(0, s_count, batches + 1).astype(int)
    outer_b = np.stack(
        [
            np.einsum("s,sp,sq->pq", w[a:b], scores[a:b], scores[a:b]) / (b - a)
            for a, b in zip(edges[:-1], edges[1:], strict=True)
        ]
    )
    per = hess_b + outer_b
    sizes = np.diff(edges).astype(float)
    check_finite_output(per, "eq3_integral_term_mc", "batch terms")
    return np.tensordot(sizes / sizes.sum(), per, axes=1), per


@finite_output
def ll_neg_hessian(
    model: LatentModel,
    eta: ArrayLike,
    x: ArrayLike,
    eps: ArrayLike,
    cov: ArrayLike | None = None,
    *,
    batches: int | None = None,
) -> np.ndarray:
    r"""Negative Hessian of the expected log-likelihood on the observed data (Eq 7).

    .. math::
        -\frac{\partial^2 \mathcal{L}_{ll}}{\partial\eta^2}
          = -\sum_{i=1}^n E_{\varepsilon_i}\Big[\frac{\partial^2}{\partial\eta^2}
            \log p(x_i \mid z_i = g(x_i, \varepsilon_i; \lambda); \theta)\Big]

    This is the matrix whose curvature VPNG imitates; it is not positive semi-definite in general.
    """
    check_model(model)
    eta = as_array(eta, "eta", ndim=1)
    split_params(model, eta)
    x, cov = check_data(model, x, cov)
    eps = check_samples(check_eps(model, eps, x.shape[0]), "eps")

    def f(e, sl):
        t = outputs(model, e, x, eps[sl], cov)
        return -anp.mean(anp.sum(model.likelihood.log_prob(x, t), axis=-1))

    return _hessians(f, eta, eps.shape[0], batches, "ll_neg_hessian")


@finite_output
def eq9_matrix(
    model: LatentModel,
    eta: ArrayLike,
    z_tilde: ArrayLike,
    x_tilde: ArrayLike,
    cov: ArrayLike | None = None,
    *,
    x_pred: ArrayLike | None = None,
    batches: int | None = None,
) -> np.ndarray:
    r"""The model-sampled negative Hessian of Eq 9, or its predictive-sampling version (Eq 11).

    With :math:`\tilde z_{si} \sim p(z)`, :math:`\tilde x_{si} \sim p(x \mid \tilde z_{si};
    \theta)` and :math:`\tilde\varepsilon_{si} = g^{-1}(\tilde x_{si}, \tilde z_{si}; \lambda)`
    (held fixed while differentiating),

    .. math::
        \text{Eq 9:}\quad -\frac1S\sum_{s}\sum_{i=1}^n
            \frac{\partial^2}{\partial\eta^2}\log p(\tilde x_{si} \mid
            z = g(\tilde x_{si}, \tilde\varepsilon_{si}; \lambda); \theta),

    an estimate of :math:`-n E_{p(z_i)}E_{p(x_i\mid z_i)}[v(x_i, x_i, z_i, \eta)]`. Passing
    ``x_pred`` (:math:`x'_{si} \sim p(x' \mid \tilde z_{si}; \theta)`, drawn independently of
    :math:`\tilde x_{si}`) replaces the target by :math:`x'` (Eq 11), the form that is positive
    semi-definite in expectation.

    Conditions: this is the approximation of Eq 7 made by Eq 8, :math:`p(z_i)p(x_i\mid z_i)
    \approx Q(x_i)q(z_i\mid x_i)`; it equals Eq 7 in expectation only when the data follow the
    model and :math:`q` is the exact posterior. It is computed here for any parameters.
    For the 1-D linear-Gaussian model of Section 3.2 it is
    :math:`n[[\theta^2(\theta^2+1), \theta^2-1], [\theta^2-1, 1]]`
    (see :mod:`refvpng.models.linear_gaussian`).

    Parameters
    ----------
    z_tilde : ndarray, shape (S, n, dz)
    x_tilde : ndarray, shape (S, n, d)
        From :func:`refvpng.models.latent.draw_model_samples`.
    x_pred : ndarray, shape (S, n, d), optional
        Independent predictive draws given ``z_tilde`` (Eq 11).
    """
    check_model(model)
    eta = as_array(eta, "eta", ndim=1)
    lam, _ = split_params(model, eta)
    dz, d = model.latent_dim, model.obs_dim
    z_tilde = check_samples(as_array(z_tilde, "z_tilde", ndim=3), "z_tilde")
    s_count, n = z_tilde.shape[:2]
    if n < 1:
        raise ValueError(f"z_tilde must have at least one data slot, got shape {z_tilde.shape}")
    if z_tilde.shape[2] != dz:
        raise ValueError(f"z_tilde must have shape (S, n, {dz}), got {z_tilde.shape}")
    x_tilde = as_array(x_tilde, "x_tilde", shape=(s_count, n, d))
    target = x_tilde if x_pred is None else as_array(x_pred, "x_pred", shape=(s_count, n, d))
    if model.n_cov:
        cov = as_array(cov, "cov", shape=(n, model.n_cov))
    # Noise that reproduces z_tilde at the current lambda: eps = g^{-1}(x_tilde, z_tilde; lambda).
    # Local encoders see every (s, i) point, so the samples are flattened to rows.
    xt_rows = x_tilde.reshape(s_count * n, d)
    m, rho = model.encode(lam, xt_rows)
    eps_t = np.asarray(model.family.inverse(z_tilde.reshape(s_count * n, dz), m, rho)).reshape(s_count, n, dz)

    def f(e, sl):
        lv, th = e[: model.n_lambda], e[model.n_lambda :]
        k = len(range(s_count)[sl])
        mm, rr = model.encode(lv, x_tilde[sl].reshape(k * n, d))
        if model.local:
            z = model.family.reparam(mm, rr, eps_t[sl].reshape(k * n, dz))
            z = anp.reshape(z, (k, n, dz))
        else:
            z = model.family.reparam(mm, rr, eps_t[sl])
        t = model.decode(th, z, cov)
        return -anp.sum(model.likelihood.log_prob(target[sl], t)) / k

    return _hessians(f, eta, s_count, batches, "eq9_matrix")


@finite_output
def vp_fisher_hessian_form(
    model: LatentModel,
    eta: ArrayLike,
    x: ArrayLike,
    eps: ArrayLike,
    x_pred: ArrayLike,
    cov: ArrayLike | None = None,
    *,
    batches: int | None = None,
) -> np.ndarray:
    r"""The Hessian form of the variational predictive Fisher (Eq 12).

    .. math::
        \frac{1}{SM}\sum_{s,k}\sum_{i=1}^n -\frac{\partial^2}{\partial\eta^2}
            \log p(x'^{(k)}_{si} \mid z = g(x_i, \varepsilon_{si}; \lambda); \theta)

    With :math:`x'` drawn from the predictive distribution, its expectation equals the score form
    (Eq 13, :func:`refvpng.curvature.fisher.vp_fisher_mc`) because
    :math:`E_{x'}[-\partial^2\log p] = E_{x'}[\nabla\log p\,\nabla\log p^\top]` for every
    :math:`(x_i, \varepsilon_i)`.

    Parameters
    ----------
    x_pred : ndarray, shape (S, M, n, d)
    """
    check_model(model)
    eta = as_array(eta, "eta", ndim=1)
    lam, _ = split_params(model, eta)
    x, cov = check_data(model, x, cov)
    eps = check_samples(check_eps(model, eps, x.shape[0]), "eps")
    s_count, n = eps.shape[0], x.shape[0]
    x_pred = check_samples(as_array(x_pred, "x_pred", ndim=4), "x_pred", axis=1, what="M")
    if x_pred.shape[0] != s_count or x_pred.shape[2:] != (n, model.obs_dim):
        raise ValueError(f"x_pred must have shape ({s_count}, M, {n}, {model.obs_dim}), got {x_pred.shape}")

    def f(e, sl):
        lv, th = e[: model.n_lambda], e[model.n_lambda :]
        t = model.decode(th, latents(model, lv, x, eps[sl]), cov)  # (k, n, d)
        lp = model.likelihood.log_prob(x_pred[sl], t[:, None])  # (k, M, n)
        return -anp.mean(anp.sum(lp, axis=-1))

    return _hessians(f, eta, s_count, batches, "vp_fisher_hessian_form")
