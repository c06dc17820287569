r"""Array-only hypothesis strategies for property-testing a *foreign* implementation (needs ``hypothesis``).

:func:`problem_arrays` draws plain NumPy arrays plus a JSON-ready spec -- nothing a PyTorch or
JAX implementation would have to import refvpng objects for -- and :func:`reference` returns
refvpng's answer for a drawn problem::

    from hypothesis import given, settings
    from refvpng.testing.arrays import problem_arrays, reference
    from refvpng.testing.compare import assert_close

    @given(problem_arrays(kinds=("logistic",)))
    @settings(deadline=None)
    def test_my_fisher(p):
        mine = my_vp_fisher(p["spec"], p["eta"], p["x"], p["eps"], p.get("cov"))
        assert_close(mine, reference(p, "vp_fisher_exact"), "exact")

A drawn problem is a dict with

- ``spec``: the model spec of :mod:`refvpng.conformance.models` (model, sizes, likelihood,
  :math:`\sigma` coordinate, local or global latents);
- ``packing``: the named blocks of :math:`\eta` (:meth:`~refvpng.conformance.interop.ParamSpec.to_json`);
- ``eta`` ``(P,)``, ``x`` ``(n, d)``, ``eps`` ``(S, n, dz)`` or ``(S, dz)``, ``x_pred``
  ``(S, M, n, d)`` drawn from the model's predictive distribution, and ``cov`` ``(n, D)`` for
  logistic regression.

Sizes and parameters are bounded, so every draw is a well-conditioned float64 problem.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

try:
    from hypothesis import strategies as st
except ImportError as exc:  # pragma: no cover - exercised only without the test extra
    raise ImportError("refvpng.testing.arrays needs hypothesis: pip install 'refvpng[test]'") from exc

from refvpng.conformance.models import build_model, param_spec
from refvpng.models.small import LIKELIHOODS

__all__ = ["KINDS", "QUANTITIES", "model_specs", "problem_arrays", "reference"]

KINDS = ("small", "logistic", "chain")


@st.composite
def model_specs(draw: st.DrawFn, kinds: Sequence[str] = KINDS, max_dim: int = 3) -> dict:
    """A model spec: a small random model, Bayesian logistic regression or a small VAE chain."""
    kind = draw(st.sampled_from(kinds))
    if kind == "small":
        return {
            "model": "small",
            "likelihood": draw(st.sampled_from(LIKELIHOODS)),
            "local": draw(st.booleans()),
            "scale": draw(st.sampled_from(["fixed", "exp", "softplus"])),
            "dz": draw(st.integers(1, max_dim)),
            "d": draw(st.integers(1, max_dim)),
            "sigma": 0.7,
        }
    if kind == "logistic":
        dim = draw(st.integers(1, max_dim + 1))
        return {
            "model": "logistic",
            "dim": dim,
            "prior_std": 2.5,
            "scale": draw(st.sampled_from(["exp", "softplus"])),
        }
    d, dz, h = draw(st.integers(1, max_dim)), draw(st.integers(1, 2)), draw(st.integers(1, max_dim))
    return {
        "model": "chain",
        "encoder_sizes": [d, h, 2 * dz],
        "decoder_sizes": [dz, h, d],
        "activation": draw(st.sampled_from(["tanh", "relu"])),
        "floor": 1e-4,
        "likelihood": "bernoulli",
    }


def _data(rng, spec: dict, model, n: int):
    lik = spec.get("likelihood", "bernoulli")
    if spec["model"] == "logistic" or lik == "bernoulli":
        return (rng.random((n, model.obs_dim)) < 0.5).astype(float)
    if lik.startswith("poisson"):
        return rng.poisson(1.0, size=(n, model.obs_dim)).astype(float)
    return rng.standard_normal((n, model.obs_dim))


@st.composite
def problem_arrays(
    draw: st.DrawFn,
    kinds: Sequence[str] = KINDS,
    max_n: int = 4,
    max_samples: int = 3,
    max_pred: int = 3,
    box: float = 1.5,
) -> dict:
    """A problem as plain arrays plus spec (module docstring); parameters uniform in ``[-box, box]``."""
    from refvpng.models.latent import draw_eps, draw_predictive

    spec = draw(model_specs(kinds))
    model = build_model(spec)
    seed = draw(st.integers(0, 2**32 - 1))
    n, s, m = draw(st.integers(1, max_n)), draw(st.integers(2, max_samples)), draw(st.integers(1, max_pred))
    rng = np.random.default_rng(seed)
    eta = rng.uniform(-box, box, model.n_params)
    cov = None
    if spec["model"] == "logistic":
        cov = np.hstack([rng.uniform(-2, 2, (n, spec["dim"] - 1)), np.ones((n, 1))])
    x = _data(rng, spec, model, n)
    shared = None if model.local else draw(st.booleans())
    eps = draw_eps(rng, model, n, s, shared=shared)
    out = {"spec": spec, "packing": param_spec(spec).to_json(), "eta": eta, "x": x, "eps": eps, "seed": seed}
    out["x_pred"] = draw_predictive(rng, model, eta, x, eps, m, cov)
    if cov is not None:
        out["cov"] = cov
    return out


def _elbo(model, p):
    from refvpng.elbo import elbo

    return np.asarray(elbo(model, p["eta"], p["x"], p["eps"], p.get("cov")))


def _grad(model, p):
    from refvpng.elbo import elbo_grad

    return elbo_grad(model, p["eta"], p["x"], p["eps"], p.get("cov"))


def _vp_exact(model, p):
    from refvpng.curvature.fisher import vp_fisher_exact

    return vp_fisher_exact(model, p["eta"], p["x"], p["eps"], p.get("cov"))


def _vp_mc(model, p):
    from refvpng.curvature.fisher import vp_fisher_mc

    return vp_fisher_mc(model, p["eta"], p["x"], p["eps"], p["x_pred"], p.get("cov"))


def _scores(model, p):
    from refvpng.curvature.fisher import vp_scores

    return vp_scores(model, p["eta"], p["x"], p["eps"], p["x_pred"], p.get("cov"))


def _q_fisher(model, p):
    from refvpng.curvature.fisher import q_fisher

    return q_fisher(model, p["eta"][: model.n_lambda], p["x"])


QUANTITIES = {
    "elbo": _elbo,
    "elbo_grad": _grad,
    "vp_fisher_exact": _vp_exact,
    "vp_fisher_mc": _vp_mc,
    "vp_scores": _scores,
    "q_fisher": _q_fisher,
}
"""Quantities :func:`reference` computes, with the meanings of the fixture outputs of the same names."""


def reference(problem: dict, quantity: str) -> np.ndarray:
    """The answer of refvpng for a drawn problem (a key of :data:`QUANTITIES`).

    Raises
    ------
    ValueError
        If ``quantity`` is unknown.
    """
    if not isinstance(quantity, str) or quantity not in QUANTITIES:
        raise ValueError(f"quantity must be one of {sorted(QUANTITIES)}, got {quantity!r}")
    keys = ("spec", "eta", "x", "eps") + (("x_pred",) if quantity in ("vp_fisher_mc", "vp_scores") else ())
    if not isinstance(problem, dict) or any(k not in problem for k in keys):
        raise TypeError(
            f"problem must be a dict with the keys {keys} (from problem_arrays), got {problem!r:.60}"
        )
    return np.asarray(QUANTITIES[quantity](build_model(problem["spec"]), problem), dtype=np.float64)
