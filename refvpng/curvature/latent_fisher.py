r"""Joint and decoder Fishers of a latent-variable model; the marginal one is in ``marginal_is``.

For any :class:`~refvpng.models.latent.LatentModel` with prior :math:`p(z) = N(0, \tau^2 I)`,
likelihood :math:`p(x \mid z; \theta)` and encoder :math:`q(z \mid x; \phi)` (the
variational parameters, written :math:`\lambda` elsewhere in refvpng and :math:`\phi` in the
project note), this module and :mod:`refvpng.curvature.marginal_is` estimate the two Fishers the
note contrasts:

- the **joint** Fisher :math:`F_{\mathrm{joint}}(\theta) = E_{p(x,z)}[\nabla_\theta\log p(x,z)
  \nabla_\theta\log p(x,z)^\top]` by Monte Carlo (:func:`joint_fisher_mc`);
- the **marginal** Fisher :math:`F_{\mathrm{marg}}(\theta) = E_{p(x)}[\nabla_\theta\log p(x)
  \nabla_\theta\log p(x)^\top]`, the marginal score coming from Fisher's identity
  :math:`\nabla_\theta\log p(x) = E_{p(z\mid x)}[\nabla_\theta\log p(x, z)]` by self-normalised
  importance sampling with the encoder as proposal, together with the plain
  importance-sampling estimate of :math:`p(x)`: these estimators are in
  :mod:`refvpng.curvature.marginal_is`, on the joint density and score of this module.

The encoder changes how well :math:`p(x)` is estimated, never what is estimated:

.. math::
    p(x) = \int p(x \mid z)\,p(z)\,\frac{q(z\mid x)}{q(z\mid x)}\,dz, \qquad
    E_{q}\Big[\frac1K\sum_k \frac{p(x, z_k)}{q(z_k\mid x)}\Big] = p(x) \ \text{for any } q.

So :math:`\phi` does not parameterise :math:`p(x)`: as a metric over :math:`(\phi, \theta)` the
marginal Fisher has zero rows and columns for :math:`\phi` and is singular
(:mod:`refvpng.curvature.metric_check` builds that metric and says so). The q-Fisher
(Eq 2 of Tang & Ranganath) and the variational predictive Fisher :math:`F_r` (Eq 16) do see
:math:`\phi`. The two-step natural gradient of :mod:`refvpng.optim.two_step` uses the q-Fisher for
:math:`\phi` and, for :math:`\theta`, the Fisher of :math:`p(x \mid z; \theta)` at
:math:`z \sim q` (:func:`decoder_fisher`).

Units and sums
--------------
A *unit* is one independent draw of :math:`(x, z)`: a data point for local latents (``U = n``
units), the whole data set for a global latent (``U = 1``: the points share :math:`z`). Every
Fisher is a **sum over the units of one data set of** ``n`` **points** and a mean over Monte Carlo
samples, as everywhere in refvpng; :mod:`refvpng.models.ppca` gives its closed-form Fishers **per
point**, so for local latents ``joint_fisher_mc(..., n=n)`` estimates
``n * ppca.joint_fisher_closed(...)``; those closed forms are the anchors these estimators are
tested against.

References
----------
Project note ``papers/000``: joint versus marginal Fisher for latent-variable models, the
singularity of the approximate posterior's parameters, a two-step natural gradient.
T. A. Louis, "Finding the observed information matrix when using the EM algorithm", JRSS-B
44(2), 1982 (Fisher's identity, missing information).
S. Tang and R. Ranganath, "The Variational Predictive Natural Gradient", ICML 2019 (Eq 2, Eq 16).
"""

from __future__ import annotations

import autograd.numpy as anp
import numpy as np
from numpy.random import Generator
from numpy.typing import ArrayLike

from refvpng._checks import as_array, as_int, check_rng, check_samples, finite_output
from refvpng.curvature import _latent_fisher_support as support
from refvpng.curvature._autodiff import jacobian_fwd
from refvpng.models.latent import LatentModel, check_data, check_eps, check_model, latents, split_params

__all__ = [
    "log_prior",
    "log_joint",
    "joint_score",
    "draw_joint",
    "joint_fisher_mc",
    "decoder_fisher",
]

_LOG_2PI = float(np.log(2.0 * np.pi))


# --------------------------------------------------------------------------------------------
# joint density and its score
# --------------------------------------------------------------------------------------------


@finite_output
def log_prior(model: LatentModel, z: ArrayLike) -> np.ndarray:
    r""":math:`\log N(z \mid 0, \tau^2 I)` summed over the last axis (autograd-friendly).

    Parameters
    ----------
    model : LatentModel
    z : ndarray, shape (..., dz)

    Returns
    -------
    ndarray, shape (...)
    """
    check_model(model)
    z = support.check_latents(model, z)
    tau = model.prior_std
    dz = model.latent_dim
    return -0.5 * anp.sum(z * z, axis=-1) / tau**2 - dz * (np.log(tau) + 0.5 * _LOG_2PI)


@finite_output
def log_joint(
    model: LatentModel, theta: ArrayLike, x: ArrayLike, z: ArrayLike, cov: ArrayLike | None = None
) -> np.ndarray:
    r"""Log joint :math:`\log p(z) + \log p(x \mid z; \theta)` per unit (autograd-friendly).

    .. math::
        \text{local: } \log p(x_i, z_i) = \log p(z_i) + \log p(x_i \mid z_i), \qquad
        \text{global: } \log p(x, z) = \log p(z) + \textstyle\sum_i \log p(x_i \mid z).

    Parameters
    ----------
    model : LatentModel
    theta : ndarray, shape (n_theta,)
    x : ndarray, shape (..., n, d)
        Observations (leading axes broadcast against those of ``z``).
    z : ndarray
        Local: shape ``(..., n, dz)``; global: shape ``(..., dz)``.
    cov : ndarray, shape (n, c), optional

    Returns
    -------
    ndarray
        Local: shape ``(..., n)``; global: shape ``(...,)``.
    """
    theta, x, z, cov = support.check_joint(model, theta, x, z, cov)
    if model.local:
        t = model.decode(theta, z, cov)
        return log_prior(model, z) + model.likelihood.log_prob(x, t)
    n = np.shape(x)[-2]
    zb = anp.expand_dims(z, -2) * anp.ones((n, 1))
    t = model.decode(theta, zb, cov)
    return log_prior(model, z) + anp.sum(model.likelihood.log_prob(x, t), axis=-1)


@finite_output
def joint_score(
    model: LatentModel, theta: ArrayLike, x: ArrayLike, z: ArrayLike, cov: ArrayLike | None = None
) -> np.ndarray:
    r"""Joint score :math:`\nabla_\theta \log p(x, z; \theta)` per unit, by forward-mode autograd.

    Parameters
    ----------
    model : LatentModel
    theta : array_like, shape (n_theta,)
    x, z, cov
        As in :func:`log_joint`.

    Returns
    -------
    ndarray, shape ``log_joint(...).shape + (n_theta,)``

    Examples
    --------
    >>> from refvpng.models import ppca
    >>> spec = ppca.PPCASpec(1, 1)
    >>> theta = spec.pack(np.ones((1, 1)), np.zeros(1), 1.0)
    >>> joint_score(ppca.make_model(spec), theta, np.array([[2.0]]), np.array([[0.5]])).tolist()
    [[0.75, 1.5, 0.625]]
    """
    theta, x, z, cov = support.check_joint(model, theta, x, z, cov)
    _, jac = jacobian_fwd(lambda th: log_joint(model, th, x, z, cov), theta)
    return jac


@finite_output
def draw_joint(
    rng: Generator, model: LatentModel, theta: ArrayLike, n: int, n_samples: int, cov: ArrayLike | None = None
) -> tuple[np.ndarray, np.ndarray]:
    r"""Draw ``n_samples`` data sets :math:`(x, z) \sim p(x, z; \theta)` of ``n`` points each.

    Draws, in order, :math:`z = \tau\,\xi` with :math:`\xi` standard normal (local: shape
    ``(S, n, dz)``; global: ``(S, dz)``, shared by the ``n`` points of a data set) and then
    :math:`x \sim p(x \mid z; \theta)` with ``model.likelihood.sample``.

    Parameters
    ----------
    rng : numpy.random.Generator
    model : LatentModel
    theta : array_like, shape (n_theta,)
    n : int
        Points per data set (the rows of ``cov`` when given).
    n_samples : int
        Number ``S`` of data sets.
    cov : ndarray, shape (n, c), optional

    Returns
    -------
    x : ndarray, shape (S, n, d)
    z : ndarray, shape (S, n, dz) or (S, dz)
    """
    check_rng(rng)
    check_model(model)
    theta = as_array(theta, "theta", shape=(model.n_theta,))
    n = as_int(n, "n")
    s = as_int(n_samples, "n_samples")
    z, zb = support.draw_prior(rng, model, s, n)
    t = np.asarray(model.decode(theta, zb, cov))
    return model.likelihood.sample(rng, t), z


@finite_output
def joint_fisher_mc(
    rng: Generator, model: LatentModel, theta: ArrayLike, n: int, n_samples: int, cov: ArrayLike | None = None
) -> tuple[np.ndarray, np.ndarray]:
    r"""Monte Carlo joint Fisher of a data set of ``n`` points, with :math:`(x, z)` from the model.

    .. math::
        \hat F_{\mathrm{joint}} = \frac1S\sum_{s=1}^S \sum_{u} s_{su}s_{su}^\top, \qquad
        s_{su} = \nabla_\theta\big[\log p(z_{su}) + \log p(x_{su} \mid z_{su}; \theta)\big],

    with :math:`(x_s, z_s)` from :func:`draw_joint` and the score by autograd
    (:func:`joint_score`). For local latents the units are the ``n`` points (their scores are
    independent with mean zero, so :math:`E[(\sum_i s_i)(\sum_i s_i)^\top] = \sum_i
    E[s_is_i^\top]` and the sum of per-point outer products is the lower-variance unbiased
    form); for a global latent the one unit is the data set. Unbiased for the joint Fisher
    :math:`n\,F_{\mathrm{joint}}^{\text{(per point)}}` (local).

    Parameters
    ----------
    rng : numpy.random.Generator
        Used by :func:`draw_joint` only.
    model : LatentModel
    theta : array_like, shape (n_theta,)
    n : int
        Points per data set (``n = 1``: the per-point Fisher of :mod:`refvpng.models.ppca`).
    n_samples : int
        Number ``S >= 2`` of data sets (so a standard error can be formed).
    cov : ndarray, shape (n, c), optional

    Returns
    -------
    fisher : ndarray, shape (n_theta, n_theta)
        Mean of ``per_sample``.
    per_sample : ndarray, shape (S, n_theta, n_theta)
        The i.i.d. per-data-set terms.

    Raises
    ------
    ValueError
        If ``n_samples < 2`` or ``theta`` has the wrong length (messages name the argument).

    Examples
    --------
    >>> from refvpng.models import ppca
    >>> spec = ppca.PPCASpec(2, 1)
    >>> theta = spec.pack(np.ones((2, 1)), np.zeros(2), 0.5)
    >>> F, per = joint_fisher_mc(np.random.default_rng(0), ppca.make_model(spec), theta, 1, 4000)
    >>> F_closed = ppca.joint_fisher_closed(spec, theta)   # per point: n = 1
    >>> F.shape, bool(np.allclose(np.diag(F), np.diag(F_closed), rtol=0.2))
    ((5, 5), True)
    """
    s = as_int(n_samples, "n_samples", minimum=2)
    x, z = draw_joint(rng, model, theta, n, s, cov)
    scores = joint_score(model, theta, x, z, cov)
    per = support.per_sample_outer(scores, model.local)
    return per.mean(axis=0), per


# --------------------------------------------------------------------------------------------
# the decoder Fisher of the two-step natural gradient
# --------------------------------------------------------------------------------------------


@finite_output
def decoder_fisher(
    model: LatentModel, eta: ArrayLike, x: ArrayLike, eps: ArrayLike, cov: ArrayLike | None = None
) -> np.ndarray:
    r"""Fisher of :math:`p(x \mid z; \theta)` in :math:`\theta` at :math:`z \sim q(z \mid x; \phi)`.

    .. math::
        F_\theta = \sum_{i=1}^n E_{q(z_i \mid x_i;\phi)}\big[J_{\theta,i}^\top
            \Lambda(t_i) J_{\theta,i}\big], \qquad
        J_{\theta,i} = \frac{\partial t_i}{\partial\theta}, \quad t_i = h(z_i; \theta),

    the output Fisher :math:`\Lambda` pulled back through the decoder's :math:`\theta`-Jacobian
    only, Monte Carlo over the rows of ``eps`` (:math:`z = g(x, \varepsilon; \phi)`, not
    differentiated). It is the :math:`\theta\theta` block of the variational predictive Fisher
    :func:`~refvpng.curvature.fisher.vp_fisher_exact` (Section 3.3), computed with ``n_theta``
    forward passes instead of ``P``, and the curvature of the decoder step of
    :func:`refvpng.optim.two_step.two_step`.

    Parameters
    ----------
    model : LatentModel
    eta : array_like, shape (P,)
    x : array_like, shape (n, d)
    eps : array_like, shape (S, n, dz) or (S, dz)
    cov : ndarray, shape (n, c), optional

    Returns
    -------
    ndarray, shape (n_theta, n_theta)
        Symmetric positive semi-definite.

    Examples
    --------
    >>> from refvpng.models import linear_vae as lv
    >>> spec = lv.PPCASpec(3, 2)
    >>> model = lv.make_model(spec)
    >>> eta = np.random.default_rng(0).standard_normal(model.n_params)
    >>> x = np.random.default_rng(1).standard_normal((5, 3))
    >>> F = decoder_fisher(model, eta, x, lv.sigma_point_eps(5, 2))
    >>> bool(np.allclose(F, lv.decoder_fisher_closed(spec, eta, x)))
    True
    """
    check_model(model)
    check_model(model)
    eta = as_array(eta, "eta", ndim=1)
    lam, theta = split_params(model, eta)
    x, cov = check_data(model, x, cov)
    eps = check_samples(check_eps(model, eps, x.shape[0]), "eps")
    if model.hooks.jacobian is not None:  # the theta columns of the model's fast Jacobian
        t, jac = model.hooks.jacobian(eta, x, eps, cov)
        jac = np.asarray(jac)[..., model.n_lambda :]
    else:
        z = np.asarray(latents(model, lam, x, eps))
        t, jac = jacobian_fwd(lambda th: model.decode(th, z, cov), theta)
    rows = model.likelihood.whiten(jac, t).reshape(-1, model.n_theta)
    f = rows.T @ rows / eps.shape[0]
    return 0.5 * (f + f.T)
