"""The matrix-free F_r operator against the dense F_r (exact and Eq 16), on every case."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.sparse.linalg import LinearOperator

from refvpng.curvature.fisher import output_jacobian, vp_fisher_exact, vp_fisher_mc
from refvpng.curvature.fr_operator import VPFisherOperator, linearize
from refvpng.curvature.operator import Curvature
from refvpng.curvature.solve import damped_solve
from refvpng.models.latent import draw_eps, draw_predictive, without_hooks
from refvpng.models.likelihoods import Bernoulli
from refvpng.nn import Chain, chain_model
from refvpng.testing.compare import assert_close
from refvpng.testing.tolerances import EXACT, SOLVE

S, M = 3, 2  # never 1: a missing 1/S or 1/M fails


def _noise(case, rng):
    eps = draw_eps(rng, case.model, case.x.shape[0], S, shared=case.shared)
    x_pred = draw_predictive(rng, case.model, case.eta, case.x, eps, M, case.cov)
    return eps, x_pred


@pytest.mark.parametrize("path", ["hooks", "autograd"])
def test_operator_equals_dense_fr_exact_and_eq16(case, rng, path):
    eps, x_pred = _noise(case, rng)
    model = case.model if path == "hooks" else without_hooks(case.model)
    dense = vp_fisher_exact(case.model, case.eta, case.x, eps, case.cov)
    op = VPFisherOperator(model, case.eta, case.x, eps, cov=case.cov)
    assert isinstance(op, Curvature)
    assert_close(op.to_dense(), dense, EXACT)
    dense16 = vp_fisher_mc(case.model, case.eta, case.x, eps, x_pred, case.cov)
    op16 = VPFisherOperator(model, case.eta, case.x, eps, x_pred, case.cov)
    assert_close(op16.to_dense(), dense16, EXACT)
    assert op16.products == case.model.n_params


def _chain_case(rng, n=7):
    chain = Chain.from_sizes((5, 4, 3, 4), (2, 3, 5), "relu", floor=0.01)
    model = chain_model(chain, Bernoulli(), prior_std=1.3)
    eta = 0.7 * rng.standard_normal(model.n_params)
    x = (rng.random((n, 5)) < 0.4).astype(float)
    eps = rng.standard_normal((S, n, 2))
    return chain, model, eta, x, eps


def test_chain_linearize_hook_against_the_dense_jacobian(rng):
    _, model, eta, x, eps = _chain_case(rng)
    t_ref, jac = output_jacobian(without_hooks(model), eta, x, eps)
    t, jvp, vjp = linearize(model, eta, x, eps)
    assert_close(t, t_ref, EXACT)
    v, u = rng.standard_normal(model.n_params), rng.standard_normal(t.shape)
    assert_close(jvp(v), np.einsum("sndp,p->snd", jac, v), EXACT)
    assert_close(vjp(u), np.einsum("sndp,snd->p", jac, u), EXACT)


def test_scale_damping_and_the_protocol(rng):
    _, model, eta, x, eps = _chain_case(rng)
    n, mu, c = x.shape[0], 0.37, 1.0 / x.shape[0]
    dense = vp_fisher_exact(model, eta, x, eps) * c + mu * np.eye(model.n_params)
    op = VPFisherOperator(model, eta, x, eps, damping=mu, scale=c)
    v = rng.standard_normal((model.n_params, 2))
    assert_close(op.matvec(v), dense @ v, EXACT)
    assert_close(op.matvec(v[:, 0], 0.0), (dense - mu * np.eye(model.n_params)) @ v[:, 0], EXACT)
    lin = op.aslinearoperator()
    assert isinstance(lin, LinearOperator)
    assert_close(lin @ v[:, 1], dense @ v[:, 1], EXACT)
    g = rng.standard_normal(model.n_params)
    assert_close(op.solve(g), np.linalg.solve(dense, g), SOLVE)
    assert_close(op.inverse().matvec(g), damped_solve(dense, g), SOLVE)
    assert_close(damped_solve(op, g, 2.5), np.linalg.solve(dense + (2.5 - mu) * np.eye(len(g)), g), SOLVE)
    assert n == 7


def test_cg_on_the_operator_against_the_dense_solve(rng):
    _, model, eta, x, eps = _chain_case(rng)
    x_pred = draw_predictive(rng, model, eta, x, eps, M)
    mu = 0.05
    op = VPFisherOperator(model, eta, x, eps, x_pred, damping=mu)
    g = rng.standard_normal(model.n_params)
    want = damped_solve(vp_fisher_mc(model, eta, x, eps, x_pred), g, mu)
    res = op.cg(g, rtol=1e-12)
    assert res.converged and res.residual <= 1e-11 and 0 < res.iterations <= model.n_params + 5
    assert_close(res.x, want, SOLVE)
    warm = op.cg(g, x0=res.x, rtol=1e-10)
    assert warm.iterations == 0 and warm.converged
    short = op.cg(g, maxiter=3)
    assert short.iterations == 3 and not short.converged and short.residual > 1e-6


def test_solve_raises_when_cg_does_not_converge(rng):
    _, model, eta, x, eps = _chain_case(rng, n=1)  # rank <= S n d < P: singular without damping
    op = VPFisherOperator(model, eta, x, eps[:, :1], maxiter=4)
    with pytest.raises(ValueError, match="increase damping"):
        op.solve(rng.standard_normal(model.n_params), 1e-3)


def test_bad_inputs(rng):
    _, model, eta, x, eps = _chain_case(rng)
    with pytest.raises(ValueError, match="x_pred"):
        VPFisherOperator(model, eta, x, eps, np.zeros((S, M, 2, 5)))
    with pytest.raises(ValueError, match="damping"):
        VPFisherOperator(model, eta, x, eps, damping=-1.0)
    with pytest.raises(ValueError, match="scale"):
        VPFisherOperator(model, eta, x, eps, scale=0.0)
    with pytest.raises(ValueError, match="rows"):
        VPFisherOperator(model, eta, x, eps).matvec(np.ones(3))
    with pytest.raises(TypeError, match="model"):
        VPFisherOperator("chain", eta, x, eps)
