"""The authors' options of the fused VAE step against the reference estimators.

``one_z``: one latent draw per data point with M predictive samples from it, against the generic
``vp_kfac_pairs`` of the chain as a model (which takes exactly that layout, S = 1), for the
Bernoulli VAE and the softplus-Poisson VMF network (no decoder bias); ``output_diag``: the exact
expected last output factor, against the Monte Carlo average of the sampled factor
(|estimate - exact| <= k SE) and against a direct formula; ``truncated_normal_init``: the bounds
and the scale.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import expit
from scipy.stats import poisson

from refvpng.curvature.fisher import vp_kfac_pairs
from refvpng.curvature.kfac import KFACFactors, kfac_factors
from refvpng.models import Bernoulli
from refvpng.nn import chain_model, make_vae, make_vmf, truncated_normal_init, vae_step
from refvpng.nn.vmf import VMF_LIKELIHOOD
from refvpng.testing.tolerances import EXACT, MC_K


def _rel(a, b):
    return np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300)


@pytest.fixture(params=["bernoulli", "poisson"])
def problem(request):
    rng = np.random.default_rng(7)
    s, n = 4, 6
    if request.param == "bernoulli":
        chain, lik = make_vae(11, 5, 3), Bernoulli()
        x = (rng.random((n, 11)) < 0.4) * 1.0
    else:
        chain, lik = make_vmf(11, 5, 3), VMF_LIKELIHOOD
        x = rng.integers(0, 4, (n, 11)) * 1.0
    eta = chain.init(rng)
    return chain, lik, eta, x, rng.standard_normal((s, n, 3)), rng.random((s, n, 11)), rng


def _predictive(lik, t, u):
    """x' from the uniforms: [u < p] (Bernoulli) or the Poisson quantile of u at softplus(t)."""
    if isinstance(lik, Bernoulli):
        return (u < expit(t)).astype(np.float64)
    return poisson.ppf(u, np.logaddexp(0.0, t))


def _expected_sq_score(lik, t):
    if isinstance(lik, Bernoulli):
        p = expit(t)
        return p * (1 - p)
    return expit(t) ** 2 / np.logaddexp(0.0, t)


@pytest.mark.parametrize("m", [3, 4])
def test_one_z_factors_are_the_reference_kfac_of_one_latent_draw(problem, m):
    chain, lik, eta, x, eps, u, _ = problem
    n = x.shape[0]
    st = vae_step(chain, eta, x, eps, u, curvature="vp", fisher_samples=m, one_z=True, likelihood=lik)
    t0 = chain.forward(eta, x, eps[0])[0]
    x_pred = _predictive(lik, t0[None], u[:m])[None]  # (S=1, M, n, d)
    ref = kfac_factors(*vp_kfac_pairs(chain_model(chain, lik), eta, x, eps[:1], x_pred))  # sums: G / n
    got = st.factors_per_point
    scaled = KFACFactors(got.A, tuple(n * g for g in got.G), got.A_cross, tuple(n * g for g in got.G_cross))
    for field in KFACFactors._fields:
        for g, w in zip(getattr(scaled, field), getattr(ref, field), strict=True):
            assert g.shape == w.shape and _rel(g, w) <= EXACT, field
    # the default layout (one x' per latent draw) is a different estimate
    other = vae_step(
        chain, eta, x, eps, u, curvature="vp", fisher_samples=m, likelihood=lik
    ).factors_per_point
    assert _rel(other.G[-1], got.G[-1]) > 0.01
    # value and gradient do not depend on the factor layout
    assert np.array_equal(vae_step(chain, eta, x, eps, u, curvature="vp", likelihood=lik).grad, st.grad)
    kw = dict(curvature="dec", fisher_samples=m, one_z=True, likelihood=lik)
    dec = vae_step(chain, eta, x, eps, u, **kw).factors_per_point
    n_enc = len(chain.encoder.layer_shapes)
    for field in KFACFactors._fields:  # dec: the decoder blocks (after n_enc blocks / crosses)
        for g, w in zip(getattr(dec, field), getattr(got, field)[n_enc:], strict=True):
            assert np.array_equal(g, w)


@pytest.mark.parametrize("one_z", [False, True])
def test_output_diag_is_the_expected_decoder_factor(problem, one_z):
    chain, lik, eta, x, eps, u, rng = problem
    s, n, d = u.shape
    m = 3
    kw = dict(curvature="vp", fisher_samples=m, one_z=one_z, likelihood=lik)
    exact = vae_step(chain, eta, x, eps, u, output_diag=True, **kw).factors_per_point
    # direct formula: the mean over the factor rows, rows of z_0 or of z_{s<M}
    rows = eps[:1] if one_z else eps[:m]
    t = np.concatenate([chain.forward(eta, x, e)[0] for e in rows])
    assert _rel(exact.G[-1], np.diag(_expected_sq_score(lik, t).mean(axis=0))) <= EXACT
    # every other factor is the sampled one
    sampled = vae_step(chain, eta, x, eps, u, **kw).factors_per_point
    for field in KFACFactors._fields:
        pairs = list(zip(getattr(exact, field), getattr(sampled, field), strict=True))
        for k, (a, b) in enumerate(pairs):
            if not (field == "G" and k == len(pairs) - 1):
                assert np.array_equal(a, b)
    # Monte Carlo over the predictive uniforms: the sampled factor averages to the diagonal
    draws = np.stack(
        [
            vae_step(chain, eta, x, eps, rng.random((s, n, d)), **kw).factors_per_point.G[-1]
            for _ in range(150)
        ]
    )
    se = draws.std(axis=0, ddof=1) / np.sqrt(draws.shape[0])
    assert np.all(np.abs(draws.mean(axis=0) - exact.G[-1]) <= MC_K * se + 1e-15)
    assert np.abs(draws.mean(axis=0) - exact.G[-1]).max() > 0  # a real estimate, not a copy


def test_output_diag_of_the_q_fisher(problem):
    chain, lik, eta, x, eps, _, rng = problem
    exact = vae_step(chain, eta, x, eps, curvature="q", output_diag=True, likelihood=lik).factors_per_point
    lam = chain.split(eta)[0]
    h = chain.encoder.forward(lam, x)[0]
    sraw = h[:, chain.d_z :]
    sig = np.logaddexp(0, sraw) + chain.floor
    want = np.concatenate([1 / sig**2, 2 * (expit(sraw) / sig) ** 2], axis=1).mean(axis=0)
    assert _rel(exact.G[-1], np.diag(want)) <= EXACT
    s, n, dz = eps.shape
    draws = np.stack(
        [
            vae_step(
                chain, eta, x, rng.standard_normal((s, n, dz)), curvature="q", likelihood=lik
            ).factors_per_point.G[-1]
            for _ in range(300)
        ]
    )
    se = draws.std(axis=0, ddof=1) / np.sqrt(draws.shape[0])
    assert np.all(np.abs(draws.mean(axis=0) - exact.G[-1]) <= MC_K * se + 1e-15)


def test_truncated_normal_init():
    chain = make_vae(30, 20, 4)
    eta = truncated_normal_init(chain, np.random.default_rng(3), 0.07)
    assert eta.shape == (chain.num_params,) and np.abs(eta).max() <= 0.14
    # std of N(0, 1) truncated at +-2 is 0.8796; 2,0xx draws: 5 SE of a sample std is ~0.07 rel
    assert abs(eta.std() / (0.07 * 0.8796) - 1) <= 0.08
    assert np.array_equal(eta, truncated_normal_init(chain, np.random.default_rng(3), 0.07))
    assert truncated_normal_init(make_vmf(7, 4, 2), np.random.default_rng(0)).shape == (
        make_vmf(7, 4, 2).num_params,
    )
    with pytest.raises(TypeError, match="rng"):
        truncated_normal_init(chain, 3)
    with pytest.raises(ValueError, match="std"):
        truncated_normal_init(chain, np.random.default_rng(0), -1.0)
    with pytest.raises(TypeError, match="chain"):
        truncated_normal_init("vae", np.random.default_rng(0))


def test_options_must_be_bools(problem):
    chain, lik, eta, x, eps, u, _ = problem
    for name in ("one_z", "output_diag"):
        with pytest.raises(TypeError, match=name):
            vae_step(chain, eta, x, eps, u, curvature="vp", likelihood=lik, **{name: 1})
