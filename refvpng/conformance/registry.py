r"""The registry of golden cases: named problems, their inputs and refvpng's answers.

A :class:`Case` draws its inputs from a fixed seed (its ``make``) and computes its outputs
from those inputs alone (its ``compute``), so that the checker can recompute a quantity
under a changed convention (another :math:`\sigma` coordinate) and the strategies of
:mod:`refvpng.testing.arrays` can ask for refvpng's answer on any drawn input.

The cases themselves are defined in :mod:`refvpng.conformance.cases`; this module holds the
shared estimator suite, the description of every output key (:data:`OUTPUTS`: equation,
tolerance tier, meaning) and the lookup functions.

Conventions of every output (stated once, repeated in each manifest): sums over data points,
means over Monte Carlo samples (noise ``eps`` ``(S, n, dz)`` or ``(S, dz)``, predictive samples
``x_pred`` ``(S, M, n, d)``); :math:`\eta = (\lambda, \theta)` packed block by block,
column-major; the ELBO is maximised (gradients are ascent directions).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from refvpng._checks import as_array, as_nonneg_scalar
from refvpng.conformance.models import build_model

__all__ = ["Case", "OUTPUTS", "CONVENTIONS", "output_info", "estimator_suite", "cases", "get_case"]

CONVENTIONS = (
    "Every log-likelihood, ELBO, Hessian and Fisher is a SUM over the n data points and a MEAN "
    "over the S Monte Carlo noise samples (and the M predictive samples of Eq 16).",
    "eta = (lambda, theta): variational parameters first; every matrix block column-major "
    "(W.ravel(order='F')), a layer's weight W (out, in) followed by its bias b; see 'packing'.",
    "K-FAC blocks are A (input, a_bar = [a; 1]) kron G (output); A is a weighted MEAN over rows, "
    "G a weighted SUM with row weights 1/(S M), so A kron G is on the scale of F_r.",
    "sigma coordinate of the variational scale as in the model spec: 'exp' sigma = exp(rho), "
    "'softplus' sigma = log(1 + exp(rho)) (+ floor), 'fixed' no scale parameter.",
    "The ELBO is maximised: elbo_grad and the directions are ascent directions.",
    "The KL term of the ELBO is exact (Gaussian to Gaussian), not Monte Carlo.",
    "Noise: z = m + sigma(rho) * eps; global latents with eps (S, dz) share one draw per sample "
    "across data points, with eps (S, n, dz) each point has its own.",
)

OUTPUTS: dict[str, tuple[str, str, str]] = {
    # key: (equation, tier, meaning)
    "elbo": ("Eq 1", "exact", "Monte Carlo ELBO: mean over S of sum_i log p(x_i | z_si) - KL"),
    "elbo_per_sample": ("Eq 1", "exact", "the S per-noise-sample ELBO estimates, shape (S,)"),
    "kl": ("Eq 1", "exact", "KL(q || p(z)), exact, summed over data points"),
    "elbo_grad": ("Eq 1, 6", "exact", "reparameterisation gradient of 'elbo' at the given noise"),
    "outputs_t": ("Eq 6", "exact", "likelihood outputs t_si = h(g(x_i, eps_si; lambda); theta), (S, n, d_t)"),
    "output_jacobian": ("Sec 3.3", "exact", "J = dt/deta, shape (S, n, d_t, P)"),
    "q_fisher": ("Eq 2", "exact", "exact q-Fisher F_q in lambda, summed over points"),
    "q_fisher_mc": ("Eq 2", "exact", "Monte Carlo F_q: mean over z_q of score outer products"),
    "vp_fisher_exact": ("Eq 13", "exact", "F_r exact in x' (J^T Lambda(t) J), mean over S, sum over i"),
    "vp_scores": ("Eq 16", "exact", "score rows b_ski = grad_eta log p(x'_ski | z_si), (S, M, n, P)"),
    "vp_fisher_mc": ("Eq 16", "exact", "F_r hat = 1/(S M) sum_s,k,i b b^T (note the 1/M)"),
    "vpng_direction": ("Eq 17", "solve", "(vp_fisher_mc + damping I)^-1 elbo_grad"),
    "vpng_direction_exact": ("Eq 17", "solve", "(vp_fisher_exact + damping I)^-1 elbo_grad"),
    "q_natural_direction": ("Eq 2", "solve", "(q_fisher + damping I)^-1 elbo_grad[:n_lambda]"),
    "elbo_hessian": ("Eq 3", "exact", "Hessian of 'elbo' in eta at the given noise"),
    "ll_neg_hessian": ("Eq 7", "exact", "-Hessian of the expected log-likelihood on the data"),
    "eq9_matrix": ("Eq 9", "exact", "model-sampled negative Hessian at (z_model, x_model)"),
    "eq11_matrix": ("Eq 11", "exact", "Eq 9 with targets x_pred_model (predictive sampling)"),
    "vp_fisher_hessian_form": ("Eq 12", "exact", "1/(S M) sum -Hessian log p(x' | z) at x_pred"),
    "vp_fisher_closed": ("Sec 3.3", "exact", "closed-form F_r of the model"),
    "q_fisher_closed": ("Eq 2", "exact", "closed-form F_q of the model"),
    "elbo_closed": ("Eq 1", "exact", "closed-form (exact-expectation) ELBO"),
    "elbo_hessian_closed": ("Eq 3", "exact", "closed-form ELBO Hessian"),
    "eq9_closed": ("Eq 9", "exact", "closed-form Eq 9 expectation"),
    "eq11_closed": ("Eq 11", "exact", "closed-form Eq 11 expectation"),
    "joint_fisher_closed": ("note, Sec 2", "exact", "joint Fisher of (x, z) in theta, per data point"),
    "marginal_fisher_closed": ("note, Sec 2", "exact", "marginal Fisher of x in theta, per data point"),
    "direction": ("Eq 17", "solve", "(F + damping I)^-1 grad, one row per entry of 'damping'"),
    "kfac.A": ("M&G 2015 Sec 3", "exact", "K-FAC input factor A_l = weighted mean of a_bar a_bar^T"),
    "kfac.G": ("M&G 2015 Sec 3", "exact", "K-FAC output factor G_l = sum_r w_r g g^T, w_r = 1/(S M)"),
    "kfac.A_cross": ("M&G 2015 Sec 4.3", "exact", "cross factor A_{l,l+1} (weighted mean)"),
    "kfac.G_cross": ("M&G 2015 Sec 4.3", "exact", "cross factor G_{l,l+1} (weighted sum)"),
    "kfac_blockdiag_dense": ("M&G Sec 4.2", "exact", "dense damped block-diagonal K-FAC matrix"),
    "kfac_blockdiag_direction": ("M&G Sec 4.2", "solve", "block-diagonal K-FAC solve of elbo_grad"),
    "kfac_blocktridiag_dense": ("M&G Sec 4.3", "exact", "dense damped block-tridiagonal K-FAC matrix"),
    "kfac_blocktridiag_direction": ("M&G Sec 4.3", "solve", "block-tridiagonal K-FAC solve of elbo_grad"),
    "trajectory": ("Alg 1", "autograd", "parameters eta_0..eta_K of K optimiser steps, (K+1, P)"),
    "values": ("Alg 1", "autograd", "ELBO estimate at eta_0..eta_{K-1}, (K,)"),
}


def output_info(key: str) -> tuple[str, str, str]:
    """(equation, tier, meaning) of an output key (``"kfac.A.0"``, ``"trajectory.vpng.adam"``: by prefix)."""
    if not isinstance(key, str):
        raise TypeError(f"key must be an output name (str), got {type(key).__name__}")
    if key in OUTPUTS:
        return OUTPUTS[key]
    head = key.rsplit(".", 1)[0]
    for k in (head, key.split(".", 1)[0]):
        if k in OUTPUTS:
            return OUTPUTS[k]
    raise KeyError(f"no description of output {key!r}")


@dataclass(frozen=True)
class Case:
    """A named golden case.

    Attributes
    ----------
    name : str
        Fixture name (file stem).
    description : str
        One line.
    model : dict or None
        Model spec of :mod:`refvpng.conformance.models` (``None`` for model-free cases).
    make : callable ``() -> (inputs, hyper)``
        Draws the inputs (dict of arrays) from the case's fixed seed; ``hyper`` holds scalars.
    compute : callable ``(model_spec, inputs, hyper) -> outputs``
        refvpng's answers (dict of float64 arrays) from the inputs alone.
    notes : tuple of str
        Case-specific convention notes, added to :data:`CONVENTIONS` in the manifest.
    """

    name: str
    description: str
    model: dict | None
    make: Callable
    compute: Callable
    notes: tuple[str, ...] = field(default=())


def estimator_suite(model_spec: dict, inputs: dict, hyper: dict) -> dict:
    r"""Every generic estimator of refvpng on one model at the given inputs.

    ``inputs``: ``eta``, ``x``, ``eps``, ``x_pred``, ``z_q`` and optionally ``cov``; ``hyper``:
    ``damping`` (Eq 17). Returns the keys ``elbo`` ... ``ll_neg_hessian`` of :data:`OUTPUTS`.
    """
    from refvpng.curvature.fisher import (
        output_jacobian,
        q_fisher,
        q_fisher_mc,
        vp_fisher_exact,
        vp_fisher_mc,
        vp_scores,
    )
    from refvpng.curvature.hessian import elbo_hessian, ll_neg_hessian
    from refvpng.curvature.solve import damped_solve
    from refvpng.elbo import elbo_per_sample, elbo_value_and_grad, kl_term

    if not isinstance(model_spec, dict):
        raise TypeError(f"model_spec must be a model spec dict, got {type(model_spec).__name__}")
    model = build_model(model_spec)
    for what, d, keys in (
        ("inputs", inputs, ("eta", "x", "eps", "x_pred", "z_q")),
        ("hyper", hyper, ("damping",)),
    ):
        if not isinstance(d, dict) or any(k not in d for k in keys):
            raise TypeError(f"{what} must be a dict with the keys {keys}, got {d!r:.60}")
    eta = as_array(inputs["eta"], "inputs['eta']", ndim=1)
    x, eps, xp = inputs["x"], inputs["eps"], inputs["x_pred"]
    cov = inputs.get("cov")
    lam = eta[: model.n_lambda]
    mu = as_nonneg_scalar(hyper["damping"], "hyper['damping']")
    out: dict[str, Any] = {}
    out["elbo"], out["elbo_grad"] = elbo_value_and_grad(model, eta, x, eps, cov)
    out["elbo_per_sample"] = elbo_per_sample(model, eta, x, eps, cov)
    out["kl"] = kl_term(model, lam, x)
    out["outputs_t"], out["output_jacobian"] = output_jacobian(model, eta, x, eps, cov)
    out["q_fisher"] = q_fisher(model, lam, x)
    out["q_fisher_mc"] = q_fisher_mc(model, lam, x, inputs["z_q"])[0]
    out["vp_fisher_exact"] = vp_fisher_exact(model, eta, x, eps, cov)
    out["vp_scores"] = vp_scores(model, eta, x, eps, xp, cov)
    out["vp_fisher_mc"] = vp_fisher_mc(model, eta, x, eps, xp, cov)
    out["vpng_direction"] = damped_solve(out["vp_fisher_mc"], out["elbo_grad"], mu)
    out["vpng_direction_exact"] = damped_solve(out["vp_fisher_exact"], out["elbo_grad"], mu)
    out["q_natural_direction"] = damped_solve(out["q_fisher"], out["elbo_grad"][: model.n_lambda], mu)
    out["elbo_hessian"] = elbo_hessian(model, eta, x, eps, cov, wrt="eta")
    out["ll_neg_hessian"] = ll_neg_hessian(model, eta, x, eps, cov)
    return {k: np.asarray(v, dtype=np.float64) for k, v in out.items()}


def draw_suite_inputs(
    rng: np.random.Generator, model_spec: dict, eta, x, *, s: int, m: int, cov=None, shared=None
):
    r"""The inputs of :func:`estimator_suite`: noise, predictive samples and draws ``z_q`` from q."""
    from refvpng.models.latent import draw_eps, draw_predictive

    model = build_model(model_spec)
    n = x.shape[0]
    eps = draw_eps(rng, model, n, s, shared=shared)
    x_pred = draw_predictive(rng, model, eta, x, eps, m, cov)
    m_q, rho_q = model.encode(eta[: model.n_lambda], x)
    eps_q = draw_eps(rng, model, n, s + 1, shared=None if model.local else True)
    z_q = np.asarray(
        model.family.reparam(np.asarray(m_q), None if rho_q is None else np.asarray(rho_q), eps_q)
    )
    out = {"eta": np.asarray(eta, dtype=np.float64), "x": np.asarray(x, dtype=np.float64), "eps": eps}
    out.update({"x_pred": x_pred, "z_q": z_q})
    if cov is not None:
        out["cov"] = np.asarray(cov, dtype=np.float64)
    return out


def cases() -> dict[str, Case]:
    """Every registered case, by name (defined in :mod:`refvpng.conformance.cases`)."""
    from refvpng.conformance.cases import CASES

    return {c.name: c for c in CASES}


def get_case(name: str) -> Case:
    """The case called ``name`` (``KeyError`` listing the names otherwise)."""
    if not isinstance(name, str):
        raise TypeError(f"name must be a case name (str), got {type(name).__name__}")
    all_cases = cases()
    if name not in all_cases:
        raise KeyError(f"no case {name!r}; cases are {sorted(all_cases)}")
    return all_cases[name]
