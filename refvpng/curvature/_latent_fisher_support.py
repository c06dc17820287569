"""Private support of :mod:`refvpng.curvature.latent_fisher`.

Validation of the joint-density arguments (plain arrays checked, autograd boxes passed through)
and the two small array kernels of its Monte Carlo estimators.
"""

from __future__ import annotations

import numpy as np

from refvpng._checks import as_array, as_array_or_traced, check_finite_output, check_trailing
from refvpng.models.latent import LatentModel, check_model


def check_latents(model: LatentModel, z):
    """Latents ``z`` (..., dz) of ``model`` (plain arrays checked; autograd boxes pass)."""
    return check_trailing(as_array_or_traced(z, "z"), "z", model.latent_dim)


def check_joint(model: LatentModel, theta, x, z, cov):
    """Validate the arguments of ``log_joint`` (plain arrays; autograd boxes pass)."""
    check_model(model)
    theta = as_array_or_traced(theta, "theta", shape=(model.n_theta,))
    x = check_trailing(as_array_or_traced(x, "x"), "x", model.obs_dim, ndim_min=2)
    z = check_trailing(as_array_or_traced(z, "z"), "z", model.latent_dim, ndim_min=2 if model.local else 1)
    n = np.shape(x)[-2]
    if n < 1:
        raise ValueError(f"x must have at least one data point, got shape {np.shape(x)}")
    lead_x = np.shape(x)[:-1] if model.local else np.shape(x)[:-2]
    lead_z = np.shape(z)[:-1]
    try:
        np.broadcast_shapes(lead_x, lead_z)
    except ValueError:
        raise ValueError(f"x of shape {np.shape(x)} and z of shape {np.shape(z)} do not broadcast") from None
    if model.n_cov:
        cov = as_array(cov, "cov", shape=(n, model.n_cov))
    elif cov is not None:
        raise ValueError(f"model {model.name!r} takes no covariates; cov must be None")
    return theta, x, z, cov


def per_sample_outer(scores: np.ndarray, local: bool) -> np.ndarray:
    """(S, U, P) scores -> (S, P, P): sum over units of outer products (local) or one outer."""
    if local:
        return np.einsum("sup,suq->spq", scores, scores)
    return np.einsum("sp,sq->spq", scores, scores)


def self_normalised(log_w: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """``sum_k wbar_k s_k`` per unit; log_w (K, U), scores (K, U, P)."""
    w = np.exp(log_w - log_w.max(axis=0, keepdims=True))
    w /= w.sum(axis=0, keepdims=True)
    return np.einsum("ku,kup->up", w, scores)


def draw_prior(rng, model: LatentModel, s: int, n: int):
    """``S`` prior draws ``z`` (local ``(S, n, dz)``, global ``(S, dz)``) and ``z`` as ``(S, n, dz)``."""
    if model.local:
        z = model.prior_std * rng.standard_normal((s, n, model.latent_dim))
        return z, z
    z = model.prior_std * rng.standard_normal((s, model.latent_dim))
    return z, np.broadcast_to(z[:, None, :], (s, n, model.latent_dim))


def global_scores(rng, model: LatentModel, eta, theta, x, cov, K: int, n_sets: int, log_joint, joint_score):
    """``n_sets`` lists of self-normalised IS scores ``(S, 1, P)`` of ``S`` global-latent data sets.

    All data sets at once: ``x`` ``(S, 1, n, d)`` against proposals ``z`` ``(S, K, dz)``; the data
    sets play the role of units (``marginal_fisher_is``; ``log_joint``/``joint_score`` passed in).
    """
    m, rho = model.encode(eta[: model.n_lambda], x[0])
    m = check_finite_output(np.asarray(m), "encode", "encoder mean")
    rho = None if rho is None else np.asarray(rho)
    xs, s = x[:, None], x.shape[0]
    scores = []
    for _ in range(n_sets):
        z = np.asarray(model.family.reparam(m, rho, rng.standard_normal((s, K, model.latent_dim))))
        log_w = np.asarray(log_joint(model, theta, xs, z, cov)) - np.asarray(
            model.family.log_density(z, m, rho)
        )
        sc = joint_score(model, theta, xs, z, cov)  # (S, K, P)
        # (K, S) weights, (K, S, P) scores
        scores.append(self_normalised(log_w.T, np.swapaxes(sc, 0, 1))[:, None, :])
    return scores
