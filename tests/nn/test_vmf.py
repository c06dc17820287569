"""The VMF network of Section 5.3: an independent autograd build, the dense Fishers, the fused step."""

from __future__ import annotations

import autograd.numpy as anp
import numpy as np
import pytest
from autograd import jacobian as ag_jacobian
from scipy.special import expit
from scipy.stats import poisson

from refvpng.curvature.fisher import q_fisher, vp_fisher_exact, vp_fisher_mc, vp_kfac_pairs
from refvpng.curvature.kfac import KFACFactors, kfac_factors
from refvpng.elbo import elbo, elbo_value_and_grad
from refvpng.models.latent import without_hooks
from refvpng.nn import vae_elbo, vae_step
from refvpng.nn.vmf import VMF_LIKELIHOOD, make_vmf, vmf_model
from refvpng.testing.tolerances import EXACT
from tests.nn.test_chain import ag_mlp

HOOK = 1e-11


def _rel(a, b):
    return np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300)


@pytest.fixture(params=[(7, 5, 3, 3, 4), (6, 4, 2, 2, 5)], ids=["m7-h5-d3", "m6-h4-d2"])
def problem(request):
    m, h, d, s, n = request.param
    chain = make_vmf(m, h, d, floor=1e-3)
    rng = np.random.default_rng(m + 10 * h)
    eta = 0.7 * rng.standard_normal(chain.num_params)
    x = rng.poisson(1.7, (n, m)) * 1.0
    return chain, eta, x, rng.standard_normal((s, n, d)), rng.random((s, n, m))


def _ag_outputs(chain, eta, x_i, eps_i):
    """Independent build: t = Theta beta with Theta = reshape(theta, (d, m)).T (column-major vec)."""
    k = chain.encoder.num_params
    h = ag_mlp(eta[:k], x_i, chain.encoder.sizes, "relu", [0.0] * 3)
    d, m = chain.d_z, chain.d_out
    beta = h[:, :d] + (anp.logaddexp(0.0, h[:, d:]) + chain.floor) * eps_i
    theta = anp.reshape(eta[k:], (d, m)).T
    return anp.dot(beta, theta.T)


def test_parameter_count_has_no_decoder_bias(problem):
    chain = problem[0]
    m, h, d = chain.d_x, chain.encoder.sizes[1], chain.d_z
    assert chain.decoder.num_params == m * d
    assert chain.num_params == (m + 1) * h + (h + 1) * h + (h + 1) * 2 * d + d * m


def test_vp_fisher_exact_against_independent_build(problem):
    """F_r = (1/S) sum_{s,i} J^T diag(sigmoid(t)^2 / softplus(t)) J, Jacobians by autograd."""
    chain, eta, x, eps, _ = problem
    ref = np.zeros((chain.num_params,) * 2)
    for s in range(eps.shape[0]):
        for i in range(x.shape[0]):
            fn = lambda e, s=s, i=i: _ag_outputs(chain, e, x[i : i + 1], eps[s, i : i + 1])[0]  # noqa: E731
            jac, t = ag_jacobian(fn)(eta), fn(eta)
            lam = expit(t) ** 2 / np.logaddexp(0.0, t)
            ref += jac.T @ (lam[:, None] * jac)
    ref /= eps.shape[0]
    model = vmf_model(chain)
    fast = vp_fisher_exact(model, eta, x, eps)
    assert _rel(fast, ref) <= HOOK
    assert _rel(vp_fisher_exact(without_hooks(model), eta, x, eps), ref) <= HOOK


def test_eq16_and_kfac_pairs_match_autograd(problem):
    """Eq 16 through the layer_pairs hook and through autograd; K-FAC rows rebuild it."""
    chain, eta, x, eps, u = problem
    model = vmf_model(chain)
    t = chain.forward(eta, np.tile(x, (eps.shape[0], 1)), eps.reshape(-1, chain.d_z))[0]
    x_pred = poisson.ppf(u, np.logaddexp(0.0, t).reshape(u.shape))[:, None]  # (S, M=1, n, m)
    f_hat = vp_fisher_mc(model, eta, x, eps, x_pred)
    assert _rel(f_hat, vp_fisher_mc(without_hooks(model), eta, x, eps, x_pred)) <= HOOK
    pairs, w = vp_kfac_pairs(model, eta, x, eps, x_pred)
    rows = np.concatenate([np.einsum("ri,ro->rio", a, g).reshape(a.shape[0], -1) for a, g in pairs], axis=1)
    assert _rel((rows * w[:, None]).T @ rows, f_hat) <= HOOK
    assert pairs[-1][0].shape[1] == chain.d_z  # the decoder input has no column of ones


def test_elbo_and_q_fisher_run_on_the_model(problem):
    chain, eta, x, eps, _ = problem
    model = vmf_model(chain)
    v, g = elbo_value_and_grad(model, eta, x, eps)
    v_ref, g_ref = elbo_value_and_grad(without_hooks(model), eta, x, eps)
    assert abs(v - v_ref) <= HOOK * abs(v_ref) and _rel(g, g_ref) <= HOOK
    fq = q_fisher(model, eta[: model.n_lambda], x)
    assert fq.shape == (model.n_lambda,) * 2 and np.all(np.linalg.eigvalsh(fq) > -1e-10)


@pytest.mark.parametrize("kernel", ["numba", "numpy"])
def test_fused_step_matches_the_model(problem, kernel):
    """vae_step with the Poisson likelihood: value, gradient and per-point factors against the model."""
    chain, eta, x, eps, u = problem
    s, n = eps.shape[:2]
    st = vae_step(chain, eta, x, eps, u, curvature="vp", kernel=kernel, likelihood=VMF_LIKELIHOOD)
    model = vmf_model(chain)
    value, grad = elbo_value_and_grad(model, eta, x, eps)
    assert abs(st.value - value / n) <= EXACT * abs(value / n)
    assert _rel(st.grad, grad / n) <= EXACT
    t = chain.forward(eta, np.tile(x, (s, 1)), eps.reshape(-1, chain.d_z))[0]
    x_pred = poisson.ppf(u, np.logaddexp(0.0, t).reshape(u.shape))[:, None]
    total = kfac_factors(*vp_kfac_pairs(model, eta, x, eps, x_pred))
    got = st.factors_per_point
    scaled = KFACFactors(got.A, tuple(n * g for g in got.G), got.A_cross, tuple(n * g for g in got.G_cross))
    for field in KFACFactors._fields:
        for a, b in zip(getattr(scaled, field), getattr(total, field), strict=True):
            assert a.shape == b.shape and _rel(a, b) <= EXACT, field
    assert len(got.A) == 4 and len(got.A_cross) == 3 and got.A[-1].shape == (chain.d_z,) * 2
    assert vae_elbo(chain, eta, x, eps, kernel=kernel, likelihood=VMF_LIKELIHOOD) == pytest.approx(
        elbo(model, eta, x, eps) / n, rel=EXACT
    )


def test_fused_step_dec_and_q_factors(problem):
    chain, eta, x, eps, u = problem
    vp = vae_step(chain, eta, x, eps, u, curvature="vp", likelihood=VMF_LIKELIHOOD).factors_per_point
    dec = vae_step(chain, eta, x, eps, u, curvature="dec", likelihood=VMF_LIKELIHOOD).factors_per_point
    assert len(dec.A) == 1 and dec.A_cross == () and np.array_equal(dec.G[0], vp.G[-1])
    q = vae_step(chain, eta, x, eps, curvature="q", likelihood=VMF_LIKELIHOOD).factors_per_point
    assert len(q.A) == 3 and np.array_equal(q.A[0], vp.A[0])


def test_counts_are_validated(problem):
    chain, eta, x, eps, _ = problem
    for bad in (x - 9.0, x + 0.5):
        with pytest.raises(ValueError, match="x"):
            vae_step(chain, eta, bad, eps, likelihood=VMF_LIKELIHOOD)
        with pytest.raises(ValueError, match="x"):
            vae_elbo(chain, eta, bad, eps, likelihood=VMF_LIKELIHOOD)
    with pytest.raises(ValueError, match="m"):
        make_vmf(0)
