"""The fused VAE step (refvpng.nn.vae) against the generic chain estimators, and its checks."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import expit

from refvpng.curvature.kfac import KFACFactors, kfac_factors
from refvpng.elbo import elbo_value_and_grad
from refvpng.models import Bernoulli, Poisson
from refvpng.nn import chain_model, make_vae, vae_elbo, vae_step
from refvpng.testing.tolerances import EXACT


def _rel(a, b):
    return np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300)


def _assert_factors(got: KFACFactors, want: KFACFactors, tol=EXACT):
    for field in want._fields:
        g_list, w_list = getattr(got, field), getattr(want, field)
        assert len(g_list) == len(w_list), field
        for g, w in zip(g_list, w_list, strict=True):
            assert g.shape == w.shape and _rel(g, w) <= tol, field


@pytest.fixture(params=[(12, 5, 3, 4, 6), (9, 4, 2, 3, 5)], ids=["d12-h5-z3", "d9-h4-z2"])
def problem(request):
    d, h, dz, s, n = request.param
    chain = make_vae(d, h, dz)
    rng = np.random.default_rng(d)
    eta = chain.init(rng)
    x = (rng.random((n, d)) < 0.4) * 1.0
    return chain, eta, x, rng.standard_normal((s, n, dz)), rng.random((s, n, d))


def _vp_sum_factors(chain, eta, x, eps, u):
    """kfac_factors (sum over data points, mean over samples) of the chain model's Eq. (16) pairs,
    one predictive sample x' = [u < sigmoid(t)] per latent draw."""
    t = chain.forward(eta, np.tile(x, (eps.shape[0], 1)), eps.reshape(-1, chain.d_z))[0]
    x_pred = (u < expit(t).reshape(u.shape)).astype(np.float64)[:, None]  # (S, M=1, n, d)
    pairs, weights = chain_model(chain, Bernoulli()).hooks.kfac_pairs(eta, x, eps, x_pred, None)
    return kfac_factors(pairs, weights)


@pytest.mark.parametrize("bern", ["numba", "numpy"])
def test_step_matches_reference_chain(problem, bern):
    chain, eta, x, eps, u = problem
    """Value and gradient equal refvpng.elbo on the chain model divided by n (per data point)."""
    st = vae_step(chain, eta, x, eps, u, curvature="vp", kernel=bern)
    n = x.shape[0]
    value, grad = elbo_value_and_grad(chain_model(chain, Bernoulli()), eta, x, eps)
    assert abs(st.value - value / n) <= EXACT * abs(value / n)
    assert _rel(st.grad, grad / n) <= EXACT


def test_factors_are_per_point_kfac_factors(problem):
    """Per point: A equal to kfac_factors' (a mean), G = kfac_factors' G (a sum over points) / n."""
    chain, eta, x, eps, u = problem
    n = x.shape[0]
    per_point = vae_step(chain, eta, x, eps, u, curvature="vp").factors_per_point
    total = _vp_sum_factors(chain, eta, x, eps, u)
    scaled = KFACFactors(
        per_point.A,
        tuple(n * g for g in per_point.G),
        per_point.A_cross,
        tuple(n * g for g in per_point.G_cross),
    )
    _assert_factors(scaled, total)
    # and the scale is not accidentally the same: G differs from the sum by the factor n
    assert _rel(per_point.G[-1], total.G[-1]) > 0.5


def test_q_factors_are_the_q_score_kfac(problem):
    """q-Fisher rows: score of log q(z|x) w.r.t. the encoder outputs, back-propagated."""
    chain, eta, x, eps, _ = problem
    s, n = eps.shape[:2]
    lam = chain.split(eta)[0]
    h, _ = chain.encoder.forward(lam, x)
    sraw = h[:, chain.d_z :]
    sig = np.logaddexp(0, sraw) + chain.floor
    d_h = np.concatenate([eps / sig, (eps**2 - 1) / sig * expit(sraw)[None]], axis=2).reshape(s * n, -1)
    _, cache = chain.encoder.forward(lam, np.tile(x, (s, 1)))
    pairs = chain.encoder.backward(cache, d_h).pairs
    ref = kfac_factors(pairs, np.full(s * n, 1.0 / (s * n)))  # weights 1/(S n): per point
    _assert_factors(vae_step(chain, eta, x, eps, curvature="q").factors_per_point, ref)


def test_dec_factors_are_the_decoder_blocks_of_vp(problem):
    chain, eta, x, eps, u = problem
    vp = vae_step(chain, eta, x, eps, u, curvature="vp").factors_per_point
    dec = vae_step(chain, eta, x, eps, u, curvature="dec").factors_per_point
    assert len(dec.A) == 3 and len(dec.A_cross) == 2
    for field in KFACFactors._fields:
        for g, w in zip(getattr(dec, field), getattr(vp, field)[3:], strict=True):
            assert np.array_equal(g, w)
    diag = vae_step(chain, eta, x, eps, u, curvature="dec", cross=False).factors_per_point
    assert diag.A_cross == () and len(diag.G) == 3


def test_step_options(problem):
    chain, eta, x, eps, u = problem
    full = vae_step(chain, eta, x, eps, u, curvature="vp")
    f32 = vae_step(chain, eta, x, eps, u, curvature="vp", factor_dtype=np.float32)
    for a, b in zip(full.factors_per_point.G, f32.factors_per_point.G, strict=True):
        assert b.dtype == np.float64 and _rel(b, a) < 1e-5
    diag = vae_step(chain, eta, x, eps, u, curvature="vp", cross=False)
    assert diag.factors_per_point.A_cross == () and len(diag.factors_per_point.A) == 6
    # M < S: factors from the first M samples only, equal to a run with S = M
    part = vae_step(chain, eta, x, eps, u, curvature="vp", fisher_samples=2)
    ref = vae_step(chain, eta, x, eps[:2], u[:2], curvature="vp")
    _assert_factors(part.factors_per_point, ref.factors_per_point)
    none = vae_step(chain, eta, x, eps)
    assert none.factors_per_point is None and none.value == full.value


def test_vae_elbo_batches_agree(problem):
    chain, eta, x, eps, _ = problem
    whole = vae_elbo(chain, eta, x, eps, batch=100)
    assert whole == pytest.approx(vae_elbo(chain, eta, x, eps, batch=4), rel=EXACT)
    assert whole == pytest.approx(vae_step(chain, eta, x, eps).value, rel=EXACT)
    assert whole == pytest.approx(vae_elbo(chain, eta, x, eps, kernel="numpy"), rel=EXACT)


def _bad_step_args(chain, eta, x, eps, u):
    s, n, d = u.shape
    nan_x = x.copy()
    nan_x[0, 0] = np.nan
    return [
        ("chain", TypeError, {"chain": "vae"}),
        ("eta", ValueError, {"eta": eta[:-1]}),
        ("eta", ValueError, {"eta": np.full_like(eta, np.inf)}),
        ("eta", TypeError, {"eta": eta + 0j}),
        ("x", ValueError, {"x": x[:, :-1]}),
        ("x", ValueError, {"x": nan_x}),
        ("eps", ValueError, {"eps": eps[:, :-1]}),
        ("eps", ValueError, {"eps": eps[0]}),
        ("u", ValueError, {"u": u[:, :, :-1]}),  # slightly short u: wrong factors before
        ("u", ValueError, {"u": u.reshape(s * n, d)}),  # wrong-shaped u: segfault before
        ("u", ValueError, {"u": u[:-1]}),
        ("u", ValueError, {"u": u + 1.0}),
        ("u", TypeError, {"u": u > 0.5}),
        ("uniforms", ValueError, {"u": None}),
        ("curvature", ValueError, {"curvature": "kfac"}),
        ("fisher_samples", ValueError, {"fisher_samples": s + 1}),
        ("fisher_samples", TypeError, {"fisher_samples": 1.5}),
        ("factor_dtype", TypeError, {"factor_dtype": np.int64}),
        ("factor_dtype", TypeError, {"factor_dtype": None}),
        ("cross", TypeError, {"cross": "yes"}),
        ("kernel", ValueError, {"kernel": "fortran"}),
        ("likelihood", TypeError, {"likelihood": Poisson("log")}),
    ]


def test_step_validates_every_argument(problem):
    chain, eta, x, eps, u = problem
    good = {"chain": chain, "eta": eta, "x": x, "eps": eps, "u": u, "curvature": "vp"}
    vae_step(**good)
    for name, exc, change in _bad_step_args(chain, eta, x, eps, u):
        with pytest.raises(exc, match=name):
            vae_step(**{**good, **change})
    with pytest.raises(ValueError, match="chain"):
        vae_step(_wrong_output_chain(), eta, x, eps)
    with pytest.raises(ValueError, match="batch"):
        vae_elbo(chain, eta, x, eps, batch=0)


def _wrong_output_chain():
    from refvpng.nn import Chain

    return Chain.from_sizes((12, 5, 6), (3, 5, 11))


# ---- validation (issue 11)


def test_gram_and_vae_data_checks():
    from refvpng.nn.vae import cross_gram, gram, make_vae, vae_elbo

    a = np.ones((3, 2), dtype=np.float32)
    assert gram(a, 0.5, np.float32).dtype == np.float64  # float32 compute, float64 out (documented)
    with pytest.raises(ValueError, match="a contains NaN"):
        gram(np.array([[np.nan, 1.0]]), 1.0, np.float64)
    with pytest.raises(ValueError, match="scale must be finite"):
        gram(a, np.inf, np.float64)
    with pytest.raises(TypeError, match="dtype must be float32 or float64"):
        gram(a, 1.0, np.int64)
    with pytest.raises(ValueError, match=r"b must have shape \(3, \*\)"):
        cross_gram(a, np.ones((2, 2)), 1.0, np.float64)
    with pytest.raises(ValueError, match="d_z must be >= 1"):
        make_vae(5, 4, 0)
    chain = make_vae(5, 4, 2)
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="x must be binary"):
        vae_elbo(chain, chain.init(rng), np.full((2, 5), 0.5), rng.standard_normal((1, 2, 2)))
