r"""The two Fisher informations of Tang & Ranganath (2019): :math:`F_q` (Eq 2) and :math:`F_r` (Eq 16).

:math:`F_q` is the Fisher information of the variational family in :math:`\lambda`.
:math:`F_r`, the *variational predictive Fisher*, is the expected Fisher of the
reparameterised predictive distribution :math:`p(x' \mid z = g(x, \varepsilon; \lambda); \theta)`
in :math:`\eta = (\lambda, \theta)` (Section 3.3):

.. math::
    F_r = \sum_{i=1}^n E_{\varepsilon_i} E_{x'_i}\big[\nabla_\eta \log p(x'_i \mid z_i)\,
          \nabla_\eta \log p(x'_i \mid z_i)^\top\big]
        = \sum_{i=1}^n E_{\varepsilon_i}\big[J_i^\top \Lambda(t_i) J_i\big],

with :math:`t_i = h(g(x_i, \varepsilon_i; \lambda); \theta)` the likelihood's output,
:math:`J_i = \partial t_i / \partial \eta` and :math:`\Lambda` the output Fisher of the
likelihood family. The second form is exact in :math:`x'` (no predictive sampling); the first,
estimated with ``M`` predictive samples per point, is Eq 16.

Every matrix is a sum over data points and a mean over Monte Carlo samples, indexed by the
packed :math:`\eta` of :mod:`refvpng.models.latent`. A model's fast-path hooks
(:class:`~refvpng.models.latent.ModelHooks`: ``layer_pairs``, ``jacobian``, ``predictive_scores``,
``kfac_pairs``) are used when present; without them everything is computed with autograd.

How the dense :math:`F_r` and Eq 16 are built, fastest first:

- ``layer_pairs`` (layered networks, e.g. :func:`refvpng.nn.chain_model`): per-layer factors of
  the seeded backward passes, contracted by
  :func:`refvpng.curvature.kron_fisher.kron_outer_sum` at :math:`SnP^2` flops;
- otherwise the whitened Jacobian :math:`\Lambda^{1/2}J / \sqrt S` (``jacobian`` hook or forward
  mode), whitened in place, and one BLAS ``syrk`` (:math:`Sn\,d_{out}P^2` flops), or for Eq 16
  the score rows and :func:`refvpng.curvature.outer.outer_sum`.
"""

from __future__ import annotations

import autograd.numpy as anp
import numpy as np
from numpy.typing import ArrayLike

from refvpng._checks import as_array, check_samples, finite_output
from refvpng.curvature._autodiff import jacobian_fwd
from refvpng.models.latent import (
    LatentModel,
    _check_x,
    check_data,
    check_eps,
    check_model,
    outputs,
    split_params,
)

__all__ = [
    "output_jacobian",
    "q_fisher",
    "q_fisher_mc",
    "vp_fisher_exact",
    "vp_fisher_mc",
    "vp_scores",
    "vp_kfac_pairs",
]


def _outer(b, weights=None):
    from refvpng.curvature.outer import outer_sum

    return outer_sum(b, weights)


def _prepare(model, eta, x, eps, cov):
    """Validate the model, ``eta``, the data and the noise; return them as float64 arrays."""
    check_model(model)
    eta = as_array(eta, "eta", ndim=1)
    x, cov = check_data(model, x, cov)
    eps = check_eps(model, eps, x.shape[0])
    split_params(model, eta)
    return eta, x, eps, cov


@finite_output
def output_jacobian(
    model: LatentModel, eta: ArrayLike, x: ArrayLike, eps: ArrayLike, cov: ArrayLike | None = None
) -> tuple[np.ndarray, np.ndarray]:
    r"""Outputs :math:`t_{si}` and Jacobians :math:`J_{si} = \partial t_{si}/\partial\eta`.

    The model's ``jacobian`` hook when it has one; otherwise forward mode (autograd), one pass
    per parameter, batched over samples and data points.

    Parameters
    ----------
    model : LatentModel
    eta : ndarray, shape (P,)
    x : ndarray, shape (n, d)
    eps : ndarray, shape (S, n, dz) or (S, dz)
    cov : ndarray, shape (n, c), optional

    Returns
    -------
    t : ndarray, shape (S, n, d)
    jac : ndarray, shape (S, n, d, P)
    """
    eta, x, eps, cov = _prepare(model, eta, x, eps, cov)
    if model.hooks.jacobian is not None:
        s, n, d = eps.shape[0], x.shape[0], model.obs_dim
        t, jac = model.hooks.jacobian(eta, x, eps, cov)
        t = as_array(t, "hooks.jacobian output t", shape=(s, n, d), finite=False)
        jac = as_array(jac, "hooks.jacobian output J", shape=(s, n, d, model.n_params), finite=False)
        return t, jac  # finiteness: @finite_output (an overflow of finite inputs)
    return jacobian_fwd(lambda e: outputs(model, e, x, eps, cov), eta)


@finite_output
def q_fisher(model: LatentModel, lam: ArrayLike, x: ArrayLike) -> np.ndarray:
    r"""Exact q-Fisher information :math:`F_q` (Eq 2) of the Gaussian family, w.r.t. :math:`\lambda`.

    .. math::
        F_q = E_q[\nabla_\lambda \log q(z \mid x; \lambda)\nabla_\lambda \log q^\top]
            = \sum_i J_{q,i}^\top \operatorname{diag}\Big(\frac{1}{\sigma^2},
              \frac{2\sigma'(\rho)^2}{\sigma^2}\Big) J_{q,i},

    where :math:`J_{q,i} = \partial(m_i, \rho_i)/\partial\lambda` is the Jacobian of the encoder
    (the identity for a global mean-field family whose :math:`\lambda = (m, \rho)`). Holds in every
    scale coordinate of :class:`~refvpng.models.variational.MeanFieldGaussian`; for local latents
    :math:`q(z \mid x) = \prod_i q(z_i \mid x_i)`, so the Fisher is the sum over points.

    Parameters
    ----------
    model : LatentModel
    lam : ndarray, shape (n_lambda,)
    x : ndarray, shape (n, d)

    Returns
    -------
    ndarray, shape (n_lambda, n_lambda)

    Examples
    --------
    >>> import numpy as np
    >>> from refvpng.models import gaussian_mean as gm
    >>> model = gm.make_model(eps_corr=0.1, sigma=0.5)
    >>> q_fisher(model, np.zeros(2), np.zeros((3, 2)))  # I / sigma^2
    array([[4., 0.],
           [0., 4.]])
    """
    check_model(model)
    lam = as_array(lam, "lam", shape=(model.n_lambda,))
    x = _check_x(model, x)
    fam = model.family

    def enc_flat(lv):
        m, rho = model.encode(lv, x)
        if rho is None:
            return m
        return anp.concatenate([anp.reshape(m, (-1,)), anp.reshape(rho, (-1,))])

    m, rho = model.encode(lam, x)
    m = np.asarray(m)
    _, jac = jacobian_fwd(enc_flat, lam)
    jac = jac.reshape(-1, model.n_lambda)
    fm, frho = fam.fisher_diag(None if rho is None else np.asarray(rho), m.shape)
    w = fm.reshape(-1) if frho is None else np.concatenate([fm.reshape(-1), frho.reshape(-1)])
    return _outer(jac, w)


@finite_output
def q_fisher_mc(
    model: LatentModel, lam: ArrayLike, x: ArrayLike, z: ArrayLike
) -> tuple[np.ndarray, np.ndarray]:
    r"""Monte Carlo q-Fisher (Eq 2): mean of score outer products at samples :math:`z_s \sim q`.

    .. math::
        \hat F_q = \frac1S \sum_s \nabla_\lambda \log q(z_s \mid x;\lambda)
                   \nabla_\lambda \log q(z_s \mid x;\lambda)^\top

    The score is taken at fixed :math:`z_s` (not through the reparameterisation).

    Parameters
    ----------
    z : ndarray, shape (S, n, dz) for local latents or (S, dz) for global latents
        Independent draws from :math:`q(z \mid x; \lambda)`.

    Returns
    -------
    mean : ndarray, shape (n_lambda, n_lambda)
    per_sample : ndarray, shape (S, n_lambda, n_lambda)
        The i.i.d. terms, for a standard error.
    """
    check_model(model)
    lam = as_array(lam, "lam", shape=(model.n_lambda,))
    x = _check_x(model, x)
    dz = model.latent_dim
    z = as_array(z, "z", shape=(None, x.shape[0], dz) if model.local else (None, dz))
    check_samples(z, "z")

    def logq_each(lv):
        m, rho = model.encode(lv, x)
        lq = model.family.log_density(z, m, rho)
        return anp.sum(lq, axis=-1) if model.local else lq

    _, scores = jacobian_fwd(logq_each, lam)  # (S, n_lambda): per-sample scores, forward mode
    per = scores[:, :, None] * scores[:, None, :]
    return per.mean(axis=0), per


@finite_output
def vp_fisher_exact(
    model: LatentModel, eta: ArrayLike, x: ArrayLike, eps: ArrayLike, cov: ArrayLike | None = None
) -> np.ndarray:
    r"""Variational predictive Fisher :math:`F_r = \sum_i E_\varepsilon[J_i^\top\Lambda(t_i)J_i]`.

    Exact in the predictive samples :math:`x'` (the expectation over :math:`x'` is the output
    Fisher :math:`\Lambda`), Monte Carlo over the ``S`` rows of ``eps`` (exact for any single
    ``eps`` when :math:`t` is affine in :math:`\varepsilon` with :math:`\eta`-independent slope,
    e.g. the model of Eq 4 where :math:`F_r = n\Sigma^{-1}`). Section 3.3, Eq 13.

    With the model's ``layer_pairs`` hook, the ``d`` backward passes of each :math:`(s, i)` are
    seeded with the rows of :math:`\Lambda^{1/2}` (``likelihood.whiten`` of the identity: the
    full :math:`\Sigma^{-1/2}` for a Gaussian) and contracted per layer pair
    (:func:`~refvpng.curvature.kron_fisher.kron_outer_sum`); otherwise from the Jacobian.

    Parameters
    ----------
    model : LatentModel
    eta : ndarray, shape (P,)
    x : ndarray, shape (n, d)
    eps : ndarray, shape (S, n, dz) or (S, dz)
    cov : ndarray, shape (n, c), optional

    Returns
    -------
    ndarray, shape (P, P)
        Exactly symmetric positive semi-definite.
    """
    check_model(model)
    if model.hooks.layer_pairs is not None:
        eta, x, eps, cov = _prepare(model, eta, x, eps, cov)
        lik = model.likelihood

        def seed(t):  # rows of Lambda^{1/2}: whiten(I) = L^{-1} (Gaussian), diag(sqrt(lambda))
            return lik.whiten(np.broadcast_to(np.eye(t.shape[-1]), t.shape + t.shape[-1:]), t)

        return _kron(model, eta, x, eps, cov, seed, 1.0 / eps.shape[0])
    t, jac = output_jacobian(model, eta, x, eps, cov)
    scale = np.sqrt(1.0 / t.shape[0])
    if getattr(model.likelihood, "diagonal", False):  # whiten in place: rows times sqrt(lambda / S)
        jac *= (scale * np.sqrt(model.likelihood.output_fisher(t)))[..., None]
    else:
        jac = model.likelihood.whiten(jac, t)
        jac *= scale
    return _gram(jac.reshape(-1, jac.shape[-1]), "jacobian")


def _gram(rows, name):
    r""":math:`R^\top R` of rows computed from validated (finite) inputs: non-finite means overflow."""
    from refvpng.curvature.outer import _syrk

    with np.errstate(invalid="ignore", over="ignore"):
        f = _syrk(np.ascontiguousarray(rows))
    if not np.isfinite(np.diagonal(f)).all():
        raise FloatingPointError(f"the {name} rows or their outer products overflow float64")
    return f


def _kron(model, eta, x, eps, cov, seed, weight):
    """Dense Fisher from the model's ``layer_pairs`` hook (:func:`kron_outer_sum`)."""
    from refvpng.curvature.kron_fisher import kron_outer_sum

    s, n = eps.shape[0], x.shape[0]
    a_bars, gs = model.hooks.layer_pairs(eta, x, eps, cov, seed)
    a_bars = [as_array(a, f"hooks.layer_pairs a_bars[{k}]", ndim=3) for k, a in enumerate(a_bars)]
    gs = [as_array(g, f"hooks.layer_pairs gs[{k}]", ndim=4) for k, g in enumerate(gs)]
    for k, (a, g) in enumerate(zip(a_bars, gs, strict=True)):
        if a.shape[:2] != (s, n) or g.shape[:2] != (s, n):
            raise ValueError(f"hooks.layer_pairs factors of layer {k} must start with ({s}, {n})")
    f = kron_outer_sum(
        [a.reshape(s * n, -1) for a in a_bars],
        [g.reshape((s * n,) + g.shape[2:]) for g in gs],
        weight,
    )
    if f.shape != (model.n_params,) * 2:
        raise ValueError(
            f"hooks.layer_pairs factors give {f.shape[0]} parameters, the model has {model.n_params}"
        )
    return f


def _check_x_pred(model, x, eps, x_pred):
    s, n, d = eps.shape[0], x.shape[0], model.obs_dim
    x_pred = as_array(x_pred, "x_pred", ndim=4)
    if x_pred.shape[0] != s or x_pred.shape[2:] != (n, d) or x_pred.shape[1] < 1:
        raise ValueError(f"x_pred must have shape ({s}, M, {n}, {d}) with M >= 1, got {x_pred.shape}")
    return x_pred


def _prepare_predictive(model, eta, x, eps, x_pred, cov):
    eta, x, eps, cov = _prepare(model, eta, x, eps, cov)
    return eta, x, eps, _check_x_pred(model, x, eps, x_pred), cov


@finite_output
def vp_scores(
    model: LatentModel,
    eta: ArrayLike,
    x: ArrayLike,
    eps: ArrayLike,
    x_pred: ArrayLike,
    cov: ArrayLike | None = None,
) -> np.ndarray:
    r"""Predictive scores :math:`\hat b_{s,k,i}` of Eq 16, one row per predictive sample.

    .. math::
        \hat b_{s,k,i} = \nabla_\eta \log p(\hat x'^{(k)}_{si} \mid
            z = g(x_i, \varepsilon_{si}; \lambda); \theta)
            = J_{si}^\top \nabla_t \log p(\hat x'^{(k)}_{si} \mid t_{si}).

    The model's ``predictive_scores`` hook (one backward pass per row) when present; otherwise
    :math:`J_{si}^\top` times the likelihood's score, with :math:`J` from
    :func:`output_jacobian`.

    Parameters
    ----------
    model : LatentModel
    eta : ndarray, shape (P,)
    x : ndarray, shape (n, d)
    eps : ndarray, shape (S, n, dz) or (S, dz)
    x_pred : ndarray, shape (S, M, n, d)
        Predictive samples (Eq 15), e.g. from :func:`refvpng.models.latent.draw_predictive`.
    cov : ndarray, shape (n, c), optional

    Returns
    -------
    ndarray, shape (S, M, n, P)

    Raises
    ------
    ValueError
        If an argument has the wrong shape or non-finite entries.
    """
    eta, x, eps, x_pred, cov = _prepare_predictive(model, eta, x, eps, x_pred, cov)
    if model.hooks.predictive_scores is not None:
        b = model.hooks.predictive_scores(eta, x, eps, x_pred, cov)
        shape = x_pred.shape[:3] + (model.n_params,)
        return as_array(b, "hooks.predictive_scores output", shape=shape, finite=False)
    t, jac = output_jacobian(model, eta, x, eps, cov)
    score = model.likelihood.score(x_pred, t[:, None])  # (S, M, n, d)
    return np.einsum("smnd,sndp->smnp", score, jac)


@finite_output
def vp_kfac_pairs(
    model: LatentModel,
    eta: ArrayLike,
    x: ArrayLike,
    eps: ArrayLike,
    x_pred: ArrayLike,
    cov: ArrayLike | None = None,
) -> tuple[tuple[tuple[np.ndarray, np.ndarray], ...], np.ndarray]:
    r"""Per-layer ``(a_bar, g)`` pairs and row weights for K-FAC on :math:`\hat F_r` (Eq 16).

    The rows are the :math:`SMn` rows of :func:`vp_scores` in the order ``(s, k, i)`` (``i``
    fastest), each with weight :math:`1/(SM)`, so that
    :func:`refvpng.curvature.kfac.kfac_factors` gives Kronecker factors on the scale of
    :math:`\hat F_r`: a sum over data points and a mean over samples. Needs the model's
    ``kfac_pairs`` hook (a layered network such as :func:`refvpng.nn.chain_model`).

    Parameters
    ----------
    model : LatentModel
    eta : ndarray, shape (P,)
    x : ndarray, shape (n, d)
    eps : ndarray, shape (S, n, dz)
    x_pred : ndarray, shape (S, M, n, d)
    cov : ndarray, shape (n, c), optional

    Returns
    -------
    pairs : tuple of (ndarray, ndarray)
        Layer-order ``(a_bar_l, g_l)``, shapes ``(S M n, d_{l-1} + 1)`` and ``(S M n, d_l)``.
    weights : ndarray, shape (S M n,)
        All equal to :math:`1/(SM)`.

    Raises
    ------
    TypeError
        If the model has no ``kfac_pairs`` hook.
    """
    eta, x, eps, x_pred, cov = _prepare_predictive(model, eta, x, eps, x_pred, cov)
    if model.hooks.kfac_pairs is None:
        raise TypeError(
            f"model {model.name!r} has no kfac_pairs hook: K-FAC needs a layered network "
            "(e.g. refvpng.nn.chain_model)"
        )
    return model.hooks.kfac_pairs(eta, x, eps, x_pred, cov)


@finite_output
def vp_fisher_mc(
    model: LatentModel,
    eta: ArrayLike,
    x: ArrayLike,
    eps: ArrayLike,
    x_pred: ArrayLike,
    cov: ArrayLike | None = None,
    *,
    per_sample: bool = False,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    r"""Monte Carlo variational predictive Fisher :math:`\hat F_r` (Eq 16).

    .. math::
        \hat F_r = \frac{1}{SM}\sum_{s=1}^{S}\sum_{k=1}^{M}\sum_{i=1}^n
            \hat b_{s,k,i}\hat b_{s,k,i}^\top, \qquad
        \hat b_{s,k,i} = \nabla_\eta \log p(\hat x'^{(k)}_{si} \mid
            z = g(x_i, \varepsilon_{si}; \lambda); \theta) = J_{si}^\top
            \nabla_t \log p(\hat x'^{(k)}_{si} \mid t_{si}).

    Unbiased for :func:`vp_fisher_exact`'s target; its rank is at most ``S * M * n`` (with
    ``S = 1`` this is the paper's bound :math:`\operatorname{rank}\hat F_r \le Mn`). With the
    model's ``layer_pairs`` hook (and ``per_sample=False``) the ``M`` score passes of each
    :math:`(s, i)` share their layer inputs and are contracted per layer pair
    (:func:`~refvpng.curvature.kron_fisher.kron_outer_sum`, :math:`SnP^2` flops instead of
    :math:`SMnP^2`); otherwise from the score rows of :func:`vp_scores`.

    Parameters
    ----------
    x_pred : ndarray, shape (S, M, n, d)
        Predictive samples :math:`\hat x'^{(k)}_{si} \sim p(x' \mid z_{si}; \theta)` (Eq 15),
        e.g. from :func:`refvpng.models.latent.draw_predictive`.
    per_sample : bool, default False
        Also return the ``S`` i.i.d. per-noise-sample matrices (each averaged over its ``M``
        predictive samples), for a standard error.

    Returns
    -------
    F : ndarray, shape (P, P)
    per : ndarray, shape (S, P, P)
        Only when ``per_sample=True``.
    """
    check_model(model)
    if model.hooks.layer_pairs is not None and not per_sample:
        eta, x, eps, x_pred, cov = _prepare_predictive(model, eta, x, eps, x_pred, cov)
        s, m = x_pred.shape[:2]
        lik = model.likelihood

        def seed(t):  # the M score seeds of each (s, i): (S, n, M, d)
            return np.moveaxis(lik.score(x_pred, t[:, None]), 1, 2)

        return _kron(model, eta, x, eps, cov, seed, 1.0 / (s * m))
    b = vp_scores(model, eta, x, eps, x_pred, cov)
    s, m = b.shape[:2]
    rows = b.reshape(-1, model.n_params)
    f = _outer(rows, np.full(rows.shape[0], 1.0 / (s * m)))
    if not per_sample:
        return f
    per = np.einsum("smnp,smnq->spq", b, b) / m
    return f, per
