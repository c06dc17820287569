r"""The marginal likelihood, score and Fisher of a latent-variable model by importance sampling.

The encoder :math:`q(z \mid x; \phi)` of a :class:`~refvpng.models.latent.LatentModel` is the
proposal: :func:`log_importance_weights` gives :math:`\log p(x, z_k) - \log q(z_k \mid x)` at
pre-drawn noise, :func:`marginal_likelihood_is` the plain estimate of :math:`p(x)`,
:func:`marginal_score_is` the marginal score :math:`\nabla_\theta \log p(x)` from Fisher's
identity by self-normalised weights, and :func:`marginal_fisher_is` the marginal Fisher
:math:`E_{p(x)}[\nabla_\theta\log p(x)\nabla_\theta\log p(x)^\top]` over data sets drawn from
the model. Why the encoder changes only the variance, never the target, and the units and sums
every estimator here follows, are in :mod:`refvpng.curvature.latent_fisher`, whose joint density
and score (:func:`~refvpng.curvature.latent_fisher.log_joint`,
:func:`~refvpng.curvature.latent_fisher.joint_score`) these estimators weight.

References
----------
Project note ``papers/000``: joint versus marginal Fisher for latent-variable models.
T. A. Louis, "Finding the observed information matrix when using the EM algorithm", JRSS-B
44(2), 1982 (Fisher's identity).
"""

from __future__ import annotations

import numpy as np
from numpy.random import Generator
from numpy.typing import ArrayLike

from refvpng._checks import as_array, as_int, check_finite_output, check_rng, check_samples, finite_output
from refvpng.curvature import _latent_fisher_support as support
from refvpng.curvature.latent_fisher import draw_joint, joint_score, log_joint
from refvpng.models.latent import LatentModel, check_data, check_eps, check_model, split_params

__all__ = ["log_importance_weights", "marginal_likelihood_is", "marginal_score_is", "marginal_fisher_is"]


# --------------------------------------------------------------------------------------------
# importance sampling with the encoder as proposal
# --------------------------------------------------------------------------------------------


@finite_output
def log_importance_weights(
    model: LatentModel, eta: ArrayLike, x: ArrayLike, eps: ArrayLike, cov: ArrayLike | None = None
) -> tuple[np.ndarray, np.ndarray]:
    r"""Log importance weights :math:`\log p(x, z_k) - \log q(z_k \mid x; \phi)` at pre-drawn noise.

    The proposals are the encoder's reparameterised draws :math:`z_k = g(x, \varepsilon_k; \phi)`
    (Eq 6).

    Parameters
    ----------
    model : LatentModel
    eta : array_like, shape (P,)
        Packed :math:`(\phi, \theta)`.
    x : array_like, shape (n, d)
        One data set.
    eps : array_like, shape (K, n, dz) (local) or (K, dz) (global)
        Standard-normal noise, ``K`` proposals per unit.
    cov : ndarray, shape (n, c), optional

    Returns
    -------
    log_w : ndarray, shape (K, U)
        ``U = n`` (local) or ``1`` (global).
    z : ndarray, shape (K, n, dz) or (K, dz)
        The proposals.

    Raises
    ------
    ValueError
        On inconsistent shapes (naming the argument).
    """
    check_model(model)
    eta = as_array(eta, "eta", ndim=1)
    lam, theta = split_params(model, eta)
    x, cov = check_data(model, x, cov)
    eps = check_samples(check_eps(model, eps, x.shape[0]), "eps")
    if not model.local and eps.ndim != 2:
        raise ValueError(f"eps must have shape (K, {model.latent_dim}) for a global latent")
    m, rho = model.encode(lam, x)
    m = check_finite_output(np.asarray(m), "encode", "encoder mean")
    rho = None if rho is None else np.asarray(rho)
    z = np.asarray(model.family.reparam(m, rho, eps))
    log_q = np.asarray(model.family.log_density(z, m, rho))
    log_p = np.asarray(log_joint(model, theta, x, z, cov))
    log_w = log_p - log_q
    return (log_w if model.local else log_w[:, None]), z


@finite_output
def marginal_likelihood_is(
    rng: Generator, model: LatentModel, eta: ArrayLike, x: ArrayLike, K: int, cov: ArrayLike | None = None
) -> tuple[np.ndarray, np.ndarray]:
    r"""Importance-sampling estimate of :math:`p(x)` per unit, with the encoder as proposal.

    .. math::
        \hat p(x) = \frac1K\sum_{k=1}^K w_k, \qquad
        w_k = \frac{p(x, z_k; \theta)}{q(z_k \mid x; \phi)}, \quad z_k \sim q(\cdot \mid x;\phi).

    :math:`E_q[\hat p(x)] = p(x)` for **any** encoder :math:`\phi` (with :math:`q > 0`), while
    :math:`\mathrm{Var}(\hat p) = \mathrm{Var}_q(w)/K` depends on :math:`\phi` and vanishes for
    :math:`q = p(z \mid x)`: :math:`\phi` changes the estimator, not the estimand.

    Parameters
    ----------
    rng : numpy.random.Generator
        Draws the standard-normal noise of the ``K`` proposals.
    model : LatentModel
    eta : array_like, shape (P,)
    x : array_like, shape (n, d)
    K : int
        Proposals per unit.
    cov : ndarray, shape (n, c), optional

    Returns
    -------
    p_hat : ndarray, shape (U,)
    w : ndarray, shape (K, U)
        The weights, i.i.d. unbiased estimates of :math:`p(x)` (``U = n`` local, ``1`` global).

    Examples
    --------
    >>> from refvpng.models import linear_vae as lv, ppca
    >>> spec = ppca.PPCASpec(2, 1)
    >>> theta = spec.pack(np.array([[1.0], [0.0]]), np.zeros(2), 0.5)
    >>> eta = np.concatenate([lv.optimal_encoder(spec, theta), theta])  # exact posterior
    >>> x = np.array([[0.3, -1.0]])
    >>> p_hat, w = marginal_likelihood_is(np.random.default_rng(0), lv.make_model(spec), eta, x, 5)
    >>> bool(np.allclose(w, np.exp(ppca.log_marginal_closed(spec, theta, x))))  # zero variance
    True
    """
    check_model(model)
    check_rng(rng)
    K = as_int(K, "K")
    x, cov = check_data(model, x, cov)
    shape = (K, x.shape[0], model.latent_dim) if model.local else (K, model.latent_dim)
    log_w, _ = log_importance_weights(model, eta, x, rng.standard_normal(shape), cov)
    w = np.exp(log_w)
    return w.mean(axis=0), w


@finite_output
def marginal_score_is(
    model: LatentModel, eta: ArrayLike, x: ArrayLike, eps: ArrayLike, cov: ArrayLike | None = None
) -> tuple[np.ndarray, np.ndarray]:
    r"""Estimate the marginal score :math:`\nabla_\theta\log p(x)` per unit by self-normalised IS.

    .. math::
        \nabla_\theta\log p(x) = E_{p(z \mid x)}[\nabla_\theta\log p(x, z)] \approx
        \hat s(x) = \sum_k \bar w_k\,\nabla_\theta\log p(x, z_k), \qquad
        \bar w_k = \frac{w_k}{\sum_l w_l},

    with :math:`z_k = g(x, \varepsilon_k; \phi)` drawn from the encoder. Consistent in ``K``;
    exact in expectation when :math:`q = p(z \mid x)` (constant weights), :math:`O(1/K)` biased
    otherwise. Pure in the pre-drawn ``eps``.

    Parameters
    ----------
    model : LatentModel
    eta : array_like, shape (P,)
    x : array_like, shape (n, d)
    eps : array_like, shape (K, n, dz) or (K, dz)
    cov : ndarray, shape (n, c), optional

    Returns
    -------
    score : ndarray, shape (U, n_theta)
    log_w : ndarray, shape (K, U)
        The log weights (their log-mean-exp is :math:`\log\hat p(x)`).
    """
    check_model(model)
    log_w, z = log_importance_weights(model, eta, x, eps, cov)
    eta = as_array(eta, "eta", ndim=1)
    _, theta = split_params(model, eta)
    x, cov = check_data(model, x, cov)
    scores = joint_score(model, theta, x, z, cov)  # (K, n, P) or (K, P)
    if not model.local:
        scores = scores[:, None, :]
    return support.self_normalised(log_w, scores), log_w


@finite_output
def marginal_fisher_is(
    rng: Generator,
    model: LatentModel,
    eta: ArrayLike,
    n: int,
    n_samples: int,
    K: int,
    cov: ArrayLike | None = None,
    *,
    paired: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    r"""Marginal Fisher of a data set of ``n`` points from IS scores at :math:`x \sim p(x; \theta)`.

    Draws ``S`` data sets :math:`x_s` with :func:`draw_joint` (latents discarded), then for each
    unit the self-normalised score :math:`\hat s` of :func:`marginal_score_is` with ``K``
    encoder proposals, and averages

    - ``paired=False``: :math:`\sum_u \hat s_{su}\hat s_{su}^\top`. Biased upward by the noise of
      :math:`\hat s` even for the exact posterior as proposal: then
      :math:`E = F_{\mathrm{marg}} + I_{\mathrm{miss}}/K`, between the joint (``K = 1``) and
      the marginal Fisher (``K`` :math:`\to\infty`);
    - ``paired=True``: two independent proposal sets give :math:`\hat s^{(1)}, \hat s^{(2)}` and
      :math:`\sum_u \tfrac12(\hat s^{(1)}_{su}\hat s^{(2)\top}_{su} + \hat s^{(2)}_{su}\hat
      s^{(1)\top}_{su})`: unbiased when the encoder is the exact posterior, :math:`O(1/K)`
      biased (self-normalisation) otherwise.

    The result is a metric over :math:`\theta` only; see
    :func:`refvpng.curvature.metric_check.metric_over_phi_theta` for why :math:`\phi` gets zero
    rows.

    Parameters
    ----------
    rng : numpy.random.Generator
        Draws, in order, the data (:func:`draw_joint`), the proposal noise and (``paired``) a
        second proposal noise.
    model : LatentModel
    eta : array_like, shape (P,)
        :math:`(\phi, \theta)`: :math:`\theta` defines :math:`p(x)`, :math:`\phi` the proposal.
    n : int
        Points per data set.
    n_samples : int
        Number ``S >= 2`` of data sets.
    K : int
        Proposals per unit.
    cov : ndarray, shape (n, c), optional
    paired : bool, default False

    Returns
    -------
    fisher : ndarray, shape (n_theta, n_theta)
    per_sample : ndarray, shape (S, n_theta, n_theta)

    Raises
    ------
    ValueError
        If ``n_samples < 2`` or inputs have inconsistent shapes.
    """
    check_model(model)
    check_rng(rng)
    eta = as_array(eta, "eta", ndim=1)
    _, theta = split_params(model, eta)
    s = as_int(n_samples, "n_samples", minimum=2)
    K = as_int(K, "K")
    n = as_int(n, "n")
    x, _ = draw_joint(rng, model, theta, n, s, cov)
    dz = model.latent_dim
    n_sets = 2 if paired else 1
    if model.local:
        # the S data sets are S*n independent points: one flat batch
        xf = x.reshape(s * n, -1)
        cf = None if cov is None else np.tile(np.asarray(cov, dtype=np.float64), (s, 1))
        scores = [
            marginal_score_is(model, eta, xf, rng.standard_normal((K, s * n, dz)), cf)[0]
            for _ in range(n_sets)
        ]
        scores = [a.reshape(s, n, -1) for a in scores]
    else:  # all S data sets at once, each a unit
        scores = support.global_scores(rng, model, eta, theta, x, cov, K, n_sets, log_joint, joint_score)
    a = scores[0]
    b = scores[-1]
    per = np.einsum("sup,suq->spq", a, b)
    per = 0.5 * (per + np.swapaxes(per, 1, 2))
    return per.mean(axis=0), per
