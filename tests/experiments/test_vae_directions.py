"""The direction-quality measurement at a small size: cosines, the exact direction, large damping."""

from __future__ import annotations

import numpy as np
import pytest

from refvpng.curvature.fisher import vp_fisher_exact, vp_fisher_mc
from refvpng.curvature.kfac import KFACConfig
from refvpng.curvature.solve import damped_solve
from refvpng.experiments.vae_directions import cosine, direction_quality
from refvpng.models.likelihoods import Bernoulli
from refvpng.nn import chain_model, make_vae, vae_step
from refvpng.nn.linearize import vae_fisher_operator
from refvpng.optim import kfac_direction
from refvpng.testing.compare import assert_close
from refvpng.testing.tolerances import SOLVE

N, S, M = 7, 3, 2


def _point(rng):
    vae = make_vae(9, 5, 2, floor=0.01)
    eta = 0.5 * rng.standard_normal(vae.num_params)
    x = (rng.random((N, 9)) < 0.4) * 1.0
    return vae, eta, x, rng.standard_normal((S, N, 2)), rng.random((S, N, 9))


def test_exact_direction_solves_the_system_and_cosines_are_cosines(rng):
    vae, eta, x, eps, u = _point(rng)
    cfg = KFACConfig(factor_damping=0.07, inverse_every=1)
    g = vae_step(vae, eta, x, eps).grad
    q = direction_quality(vae, eta, x, eps, u, cfg, fisher_samples=M, rtol=1e-12, extra={"flipped": -g})
    assert set(q.cosines) == {"gradient", "vpng_tridiag", "vpng_blockdiag", "q_natural", "flipped"}
    for name, c in q.cosines.items():
        assert -1.0 <= c <= 1.0, name
    assert q.cosines["flipped"] == pytest.approx(-q.cosines["gradient"], abs=1e-14)
    assert 0.0 < q.cosines["gradient"] < 0.999  # damping 0.07 turns the direction away from g
    assert q.cg_converged and q.cg_residual <= 1e-11 and q.cg_iterations > 0
    op = vae_fisher_operator(vae, eta, x, eps, u, fisher_samples=M, damping=0.07)
    assert_close(q.directions["gradient"], g, 1e-14)
    assert_close(op.matvec(q.exact), g, 1e-10)
    # against the dense Eq 16 of the same samples, per data point, damped by gamma
    model = chain_model(vae, Bernoulli())
    f = vp_fisher_mc(model, eta, x, eps[:M], _x_pred(vae, eta, x, eps, u)) / N
    assert_close(q.exact, damped_solve(f, g, 0.07), SOLVE)
    # the K-FAC directions are the experiment's own (kfac_direction on vae_step's factors)
    st = vae_step(vae, eta, x, eps, u, curvature="vp", fisher_samples=M)
    d = kfac_direction(cfg._replace(tridiagonal=False))
    want = d.update(st.grad, d.init(eta), curvature=st.factors_per_point)[0]
    assert_close(q.directions["vpng_blockdiag"], want, 1e-14)
    assert q.cosines["vpng_blockdiag"] == pytest.approx(cosine(want, q.exact))
    # exact over x': the dense F_r at the same latent draws
    qe = direction_quality(vae, eta, x, eps, u, cfg, fisher_samples=M, rtol=1e-12, exact_over_x_pred=True)
    assert_close(qe.exact, damped_solve(vp_fisher_exact(model, eta, x, eps[:M]) / N, g, 0.07), SOLVE)


def _x_pred(vae, eta, x, eps, u):
    from scipy.special import expit

    t, _ = vae.forward(eta, np.tile(x, (M, 1)), eps[:M].reshape(-1, 2))
    return (u[:M] < expit(t.reshape(M, N, -1))).astype(float)[:, None]


def test_large_damping_gives_the_gradient(rng):
    vae, eta, x, eps, u = _point(rng)
    big = 1e6
    q = direction_quality(vae, eta, x, eps, u, KFACConfig(factor_damping=big), fisher_samples=M, rtol=1e-12)
    assert q.cosines["gradient"] > 1 - 1e-6
    assert_close(q.exact, q.directions["gradient"] / big, 1e-5)
    assert q.cosines["vpng_tridiag"] > 1 - 1e-3 and q.cosines["vpng_blockdiag"] > 1 - 1e-3
    small = direction_quality(vae, eta, x, eps, u, KFACConfig(factor_damping=1e-3), fisher_samples=M)
    assert small.cosines["gradient"] < 0.99  # the measurement can tell directions apart


def test_running_states_and_errors(rng):
    vae, eta, x, eps, u = _point(rng)
    cfg = KFACConfig(factor_damping=0.1, inverse_every=2)
    st = vae_step(vae, eta, x, eps, u, curvature="vp", fisher_samples=M)
    d = kfac_direction(cfg)
    _, state = d.update(st.grad, d.init(eta), curvature=st.factors_per_point)
    x2 = (rng.random((N, 9)) < 0.4) * 1.0
    q = direction_quality(vae, eta, x2, eps, u, cfg, fisher_samples=M, states={"vpng_tridiag": state})
    st2 = vae_step(vae, eta, x2, eps, u, curvature="vp", fisher_samples=M)
    want = d.update(st2.grad, state, curvature=st2.factors_per_point)[0]
    assert_close(q.directions["vpng_tridiag_running"], want, 1e-14)
    assert not np.allclose(q.directions["vpng_tridiag_running"], q.directions["vpng_tridiag"])
    with pytest.raises(ValueError, match="states"):
        direction_quality(vae, eta, x, eps, u, cfg, states={"adam": state})
    with pytest.raises(TypeError, match="KFACConfig"):
        direction_quality(vae, eta, x, eps, u, {"damping": 0.1})
    with pytest.raises(ValueError, match="same shape"):
        cosine(np.ones(2), np.ones(3))


def test_cosine_is_scale_free_at_any_magnitude():
    a, b = np.array([3.0, -1.0, 2.0]), np.array([0.5, 2.0, -1.0])
    want = a @ b / np.sqrt((a @ a) * (b @ b))
    assert cosine(a, b) == pytest.approx(want, rel=1e-15)
    assert cosine(1e300 * a, b) == pytest.approx(want, rel=1e-15)  # the norms would overflow
    assert cosine(1e-300 * a, 1e300 * b) == pytest.approx(want, rel=1e-15)
    assert cosine(np.zeros(3), b) == 0.0
