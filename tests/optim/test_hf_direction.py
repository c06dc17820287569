"""The Hessian-free (truncated CG) direction: exact when run to convergence, truncated otherwise."""

from __future__ import annotations

import numpy as np
import pytest

from refvpng.curvature.fisher import vp_fisher_mc
from refvpng.curvature.fr_operator import VPFisherOperator
from refvpng.curvature.solve import damped_solve
from refvpng.models.latent import draw_predictive
from refvpng.models.likelihoods import Bernoulli
from refvpng.nn import Chain, chain_model
from refvpng.optim import adam, chain, hf_direction
from refvpng.optim.hf_direction import HFDirectionState
from refvpng.testing.compare import assert_close
from refvpng.testing.tolerances import EXACT, SOLVE


def _problem(rng, n=5, s=3, m=2):
    net = Chain.from_sizes((4, 3, 2), (1, 3, 4), "tanh", floor=0.01)
    model = chain_model(net, Bernoulli())
    eta = 0.6 * rng.standard_normal(model.n_params)
    x = (rng.random((n, 4)) < 0.5) * 1.0
    eps = rng.standard_normal((s, n, 1))
    x_pred = draw_predictive(rng, model, eta, x, eps, m)
    return model, eta, x, eps, x_pred


@pytest.mark.parametrize("form", ["operator", "dense"])
def test_run_to_convergence_it_is_the_damped_vpng_direction(rng, form):
    model, eta, x, eps, x_pred = _problem(rng)
    mu = 0.03
    dense = vp_fisher_mc(model, eta, x, eps, x_pred)
    curv = VPFisherOperator(model, eta, x, eps, x_pred, damping=5.0) if form == "operator" else dense
    d = hf_direction(max_iter=10 * model.n_params, damping=mu, rtol=1e-13)
    g = rng.standard_normal(model.n_params)
    out, state = d.update(g, d.init(eta), curvature=curv)  # the operator's own damping is ignored
    assert_close(out, damped_solve(dense, g, mu), SOLVE)
    assert state.iterations > 5 and state.total_iterations == state.iterations
    assert state.residual <= 1e-12


def test_one_iteration_from_zero_is_the_scaled_gradient(rng):
    model, eta, x, eps, x_pred = _problem(rng)
    mu = 0.2
    c = vp_fisher_mc(model, eta, x, eps, x_pred) + mu * np.eye(model.n_params)
    g = rng.standard_normal(model.n_params)
    op = VPFisherOperator(model, eta, x, eps, x_pred)
    d = hf_direction(max_iter=1, damping=mu)
    out, state = d.update(g, d.init(eta), curvature=op)
    assert_close(out, (g @ g) / (g @ c @ g) * g, EXACT)
    assert state.iterations == 1 and op.products == 1


def test_warm_start_and_override(rng):
    model, eta, x, eps, x_pred = _problem(rng)
    dense = vp_fisher_mc(model, eta, x, eps, x_pred)
    g = rng.standard_normal(model.n_params)
    exact = damped_solve(dense, g, 0.1)
    d = hf_direction(max_iter=3, damping=7.0, warm_start=1.0, rtol=1e-9)
    state = HFDirectionState(exact, 0, 4, 0.0)
    out, new = d.update(g, state, curvature=dense, damping=0.1)  # keyword overrides mu
    assert new.iterations == 0 and new.total_iterations == 4
    assert_close(out, exact, EXACT)
    cold = hf_direction(max_iter=3, damping=0.1)
    out_c, st_c = cold.update(g, state, curvature=dense)
    assert st_c.iterations == 3 and not np.allclose(out_c, exact, rtol=1e-6)


def test_composes_with_adam(rng):
    model, eta, x, eps, x_pred = _problem(rng)
    opt = chain(hf_direction(max_iter=2, damping=0.1), adam(0.01))
    state = opt.init(eta)
    op = VPFisherOperator(model, eta, x, eps, x_pred)
    u, state = opt.update(rng.standard_normal(model.n_params), state, eta, curvature=op)
    assert u.shape == eta.shape and np.isfinite(u).all()


def test_errors(rng):
    with pytest.raises(ValueError, match="warm_start"):
        hf_direction(warm_start=1.5)
    with pytest.raises(ValueError, match="max_iter"):
        hf_direction(max_iter=0)
    d = hf_direction()
    with pytest.raises(ValueError, match="curvature="):
        d.update(np.ones(2), d.init(np.zeros(2)))
    with pytest.raises(TypeError, match="Curvature"):
        d.update(np.ones(2), d.init(np.zeros(2)), curvature="F")
    with pytest.raises(ValueError, match="HFDirectionState"):
        d.update(np.ones(2), None, curvature=np.eye(2))
