"""Hypothesis strategies for models, parameters, data and noise (requires ``hypothesis``).

For people property-testing their own implementation against refvpng::

    from hypothesis import given
    from refvpng.testing.strategies import problems

    @given(problems())
    def test_my_fisher(problem):
        model, eta, x, eps = problem.model, problem.eta, problem.x, problem.eps
        ...  # compare your F_r with refvpng.curvature.fisher.vp_fisher_exact

All strategies are bounded (small sizes, parameters in a box) so that every draw is a
well-conditioned float64 problem.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

try:
    from hypothesis import strategies as st
except ImportError as exc:  # pragma: no cover - exercised only without the test extra
    raise ImportError("refvpng.testing.strategies needs hypothesis: pip install 'refvpng[test]'") from exc

from refvpng.models.latent import LatentModel, draw_eps
from refvpng.models.small import LIKELIHOODS, make_small_model

__all__ = ["Problem", "small_models", "problems", "spd_matrices"]


class Problem(NamedTuple):
    """A model with parameters, data and pre-drawn noise."""

    model: LatentModel
    eta: np.ndarray
    x: np.ndarray
    eps: np.ndarray
    seed: int


@st.composite
def small_models(draw: st.DrawFn, likelihoods: Sequence[str] = LIKELIHOODS, max_dim: int = 3) -> LatentModel:
    """A :func:`refvpng.models.small.make_small_model` with random structure."""
    return make_small_model(
        draw(st.sampled_from(likelihoods)),
        local=draw(st.booleans()),
        scale=draw(st.sampled_from(["fixed", "exp", "softplus"])),
        dz=draw(st.integers(1, max_dim)),
        d=draw(st.integers(1, max_dim)),
    )


def _data(rng, model, n):
    name = model.name
    if "bernoulli" in name:
        return (rng.random((n, model.obs_dim)) < 0.5).astype(float)
    if "poisson" in name:
        return rng.poisson(1.0, size=(n, model.obs_dim)).astype(float)
    return rng.standard_normal((n, model.obs_dim))


@st.composite
def problems(
    draw: st.DrawFn,
    models: st.SearchStrategy[LatentModel] | None = None,
    max_n: int = 4,
    max_samples: int = 3,
    param_box: float = 1.5,
) -> Problem:
    """A :class:`Problem`: parameters uniform in ``[-param_box, param_box]``, data of the model's type."""
    model = draw(models if models is not None else small_models())
    seed = draw(st.integers(0, 2**32 - 1))
    n = draw(st.integers(1, max_n))
    s = draw(st.integers(1, max_samples))
    rng = np.random.default_rng(seed)
    eta = rng.uniform(-param_box, param_box, model.n_params)
    shared = None if model.local else draw(st.booleans())
    return Problem(model, eta, _data(rng, model, n), draw_eps(rng, model, n, s, shared=shared), seed)


@st.composite
def spd_matrices(draw: st.DrawFn, max_size: int = 6, min_eig: float = 1e-3) -> np.ndarray:
    """Symmetric positive definite matrices with eigenvalues in ``[min_eig, 10]``."""
    p = draw(st.integers(1, max_size))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((p, p)))
    ev = rng.uniform(min_eig, 10.0, p)
    m = (q * ev) @ q.T
    return 0.5 * (m + m.T)
