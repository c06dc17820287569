"""Small named problems shared by the estimator tests (curvlinops-style cases as data).

Each case builds a model, parameters and data from its own seed, so every estimator runs on
every case and a failure names the case.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from refvpng.models import gaussian_mean as gm
from refvpng.models import linear_gaussian as lg
from refvpng.models import logistic as lr
from refvpng.models import ppca
from refvpng.models.likelihoods import Bernoulli, Gaussian
from refvpng.models.small import make_small_model
from refvpng.nn import Chain, chain_model


@dataclass
class Case:
    id: str
    model: object
    eta: np.ndarray
    x: np.ndarray
    cov: np.ndarray | None = None
    shared: bool | None = None  # global-latent noise mode


def _small(seed, likelihood, local, scale, n=4, shared=None):
    rng = np.random.default_rng(seed)
    model = make_small_model(likelihood, local=local, scale=scale, dz=2, d=2)
    eta = 0.5 * rng.standard_normal(model.n_params)
    if likelihood == "gaussian":
        x = rng.standard_normal((n, 2))
    elif likelihood == "bernoulli":
        x = (rng.random((n, 2)) < 0.5).astype(float)
    else:
        x = rng.poisson(1.5, size=(n, 2)).astype(float)
    return Case(
        f"small-{likelihood}-{'local' if local else 'global'}-{scale}"
        + ("" if shared is None else ("-shared" if shared else "-perpoint")),
        model,
        eta,
        x,
        None,
        shared,
    )


def _chain(seed, enc, dec, activation, likelihood, n=3):
    rng = np.random.default_rng(seed)
    chain = Chain.from_sizes(enc, dec, activation, floor=0.01)
    model = chain_model(chain, likelihood, prior_std=1.2)
    eta = 0.6 * rng.standard_normal(model.n_params)
    if isinstance(likelihood, Bernoulli):
        x = (rng.random((n, chain.d_x)) < 0.5).astype(float)
    else:
        x = rng.standard_normal((n, chain.d_x))
    name = type(likelihood).__name__.lower()
    return Case(f"chain-{name}-{len(enc) + len(dec) - 2}layer", model, eta, x)


def make_cases():
    rng = np.random.default_rng(20190601)
    cases = []
    m = gm.make_model(eps_corr=0.1, sigma=0.5)
    cases.append(Case("gaussian_mean-fixed", m, np.array([0.3, -0.2]), gm.make_data(rng, 6, 0.1)))
    m = gm.make_model(eps_corr=0.1, scale="exp")
    cases.append(Case("gaussian_mean-exp", m, np.array([0.3, -0.2, -0.5, 0.1]), gm.make_data(rng, 6, 0.1)))
    m = lg.make_model(sigma=0.7)
    cases.append(Case("linear_gaussian", m, np.array([0.4, 0.3]), lg.make_data(rng, 5, 1.3)))
    m = lr.make_model(dim=3, prior_std=10.0)
    xx, yy = lr.make_data(rng, 5)
    design = lr.add_bias(xx[:, :2])
    cases.append(Case("logistic-shared", m, 0.3 * rng.standard_normal(6), yy[:, None], design, True))
    cases.append(Case("logistic-perpoint", m, 0.3 * rng.standard_normal(6), yy[:, None], design, False))
    cases.append(_small(1, "gaussian", True, "exp"))
    cases.append(_small(2, "bernoulli", True, "softplus"))
    cases.append(_small(3, "poisson_log", True, "fixed"))
    cases.append(_small(4, "poisson_softplus", False, "exp", shared=True))
    cases.append(_small(5, "bernoulli", False, "softplus", shared=False))
    cases.append(_chain(6, (3, 4, 2), (1, 3, 3), "tanh", Bernoulli()))
    cov = np.array([[1.0, 0.3], [0.3, 0.5]])
    cases.append(_chain(7, (2, 3, 3, 4), (2, 2, 2), "relu", Gaussian(cov)))
    cases.append(_ppca(8, ppca.PPCASpec(3, 2, "iso", "log"), "ppca-iso"))
    cases.append(_ppca(9, ppca.PPCASpec(3, 2, "diag", "var"), "factor_analysis-diag"))
    return cases


def _ppca(seed, spec, name, n=4):
    """pPCA / factor analysis with the affine mean-field encoder (refvpng.models.ppca.make_model)."""
    rng = np.random.default_rng(seed)
    model = ppca.make_model(spec)
    theta = spec.pack(
        rng.standard_normal((spec.d, spec.k)),
        rng.standard_normal(spec.d),
        rng.uniform(0.5, 1.5, spec.n_noise),
    )
    eta = np.concatenate([0.5 * rng.standard_normal(model.n_lambda), theta])
    return Case(name, model, eta, rng.standard_normal((n, spec.d)))


CASES = make_cases()
CASE_IDS = [c.id for c in CASES]
