"""The VAE's matrix-free F_r at vae_step's noise against the dense Eq 16 and F_r."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import expit

from refvpng.curvature.fisher import vp_fisher_exact, vp_fisher_mc
from refvpng.models.likelihoods import Bernoulli
from refvpng.nn import chain_model, make_vae
from refvpng.nn.linearize import vae_fisher_operator
from refvpng.testing.compare import assert_close
from refvpng.testing.tolerances import EXACT


@pytest.mark.parametrize("m", [2, 3])
def test_vae_operator_is_eq16_of_the_steps_samples_per_point(rng, m):
    vae = make_vae(7, 5, 2, floor=0.01)
    model = chain_model(vae, Bernoulli())
    n, s, mu = 5, 3, 0.23
    eta = 0.5 * rng.standard_normal(vae.num_params)
    x = (rng.random((n, 7)) < 0.4) * 1.0
    eps, u = rng.standard_normal((s, n, 2)), rng.random((s, n, 7))
    t, _ = vae.forward(eta, np.tile(x, (m, 1)), eps[:m].reshape(-1, 2))
    x_pred = (u[:m] < expit(t.reshape(m, n, 7))).astype(float)[:, None]
    want = vp_fisher_mc(model, eta, x, eps[:m], x_pred) / n + mu * np.eye(vae.num_params)
    op = vae_fisher_operator(vae, eta, x, eps, u, fisher_samples=m, damping=mu)
    assert_close(op.to_dense(), want, EXACT)
    exact = vae_fisher_operator(vae, eta, x, eps, fisher_samples=m)
    assert_close(exact.to_dense(), vp_fisher_exact(model, eta, x, eps[:m]) / n, EXACT)
    with pytest.raises(ValueError, match="fisher_samples"):
        vae_fisher_operator(vae, eta, x, eps, u, fisher_samples=4)
    with pytest.raises(ValueError, match="uniforms"):
        vae_fisher_operator(vae, eta, x, eps, u + 1.0)
