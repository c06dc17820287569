"""Figure 2 VAE: the fast step against the reference chain, and a --quick smoke run."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy.special import expit

from refvpng.curvature.kfac import kfac_factors
from refvpng.experiments import vae
from refvpng.experiments.vae import METHODS, bernoulli_terms, make_vae, vae_elbo, vae_step
from refvpng.nn import vp_kfac_pairs_chain
from refvpng.testing.tolerances import EXACT


def _rel(a, b):
    return np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300)


@pytest.fixture
def problem():
    chain = make_vae(12, 5, 3)
    rng = np.random.default_rng(0)
    eta = chain.init(rng)
    s, n = 4, 6
    x = (rng.random((n, 12)) < 0.4) * 1.0
    return chain, eta, x, rng.standard_normal((s, n, 3)), rng.random((s, n, 12))


def _reference(chain, eta, x, eps):
    """ELBO and gradient through the generic Chain on the tiled batch (no shared encoder)."""
    s, n = eps.shape[:2]
    rows = s * n
    xt, ef = np.tile(x, (s, 1)), eps.reshape(rows, -1)
    t, cache = chain.forward(eta, xt, ef)
    h, enc_cache = chain.encoder.forward(chain.split(eta)[0], x)
    mu, sraw = h[:, : chain.d_z], h[:, chain.d_z :]
    sig = np.logaddexp(0, sraw) + chain.floor
    value = (
        np.sum(xt * t - np.logaddexp(0, t)) / rows
        - np.sum(0.5 * (mu**2 + sig**2 - 1) - np.log(sig)) / n
    )
    grad = chain.backward(cache, (xt - expit(t)) / rows).eta
    d_h = np.concatenate([-mu / n, -(sig - 1 / sig) / n * expit(sraw)], axis=1)
    grad[: chain.encoder.num_params] += chain.encoder.backward(enc_cache, d_h).params
    return value, grad, t


@pytest.mark.parametrize("bern", ["numba", "numpy"])
def test_step_matches_reference_chain(problem, bern):
    chain, eta, x, eps, u = problem
    st = vae_step(chain, eta, x, eps, u, curvature="vp", bernoulli=bern)
    value, grad, t = _reference(chain, eta, x, eps)
    assert abs(st.value - value) <= EXACT * abs(value)
    assert _rel(st.grad, grad) <= EXACT
    # Kronecker factors equal those of the reference Eq. (16) pairs with weights 1/(S n)
    rows = eps.shape[0] * eps.shape[1]
    x_pred = (u.reshape(rows, -1) < expit(t)).astype(np.float64)
    pairs, _ = vp_kfac_pairs_chain(
        chain, eta, np.tile(x, (eps.shape[0], 1)), eps.reshape(rows, -1), x_pred[None]
    )
    ref = kfac_factors(pairs, np.full(rows, 1.0 / rows))
    for field in ref._fields:
        got, want = getattr(st.factors, field), getattr(ref, field)
        assert len(got) == len(want)
        for g, w in zip(got, want, strict=True):
            assert g.shape == w.shape and _rel(g, w) <= 1e-12


def test_step_options(problem):
    chain, eta, x, eps, u = problem
    full = vae_step(chain, eta, x, eps, u, curvature="vp")
    f32 = vae_step(chain, eta, x, eps, u, curvature="vp", factor_dtype=np.float32)
    for a, b in zip(full.factors.G, f32.factors.G, strict=True):
        assert b.dtype == np.float64 and _rel(b, a) < 1e-5
    diag = vae_step(chain, eta, x, eps, u, curvature="vp", cross=False)
    assert diag.factors.A_cross == () and len(diag.factors.A) == 6
    # M < S: factors from the first M samples only, equal to a run with S = M
    part = vae_step(chain, eta, x, eps, u, curvature="vp", fisher_samples=2)
    ref = vae_step(chain, eta, x, eps[:2], u[:2], curvature="vp")
    for a, b in zip(part.factors.G, ref.factors.G, strict=True):
        assert _rel(a, b) <= EXACT
    q = vae_step(chain, eta, x, eps, curvature="q")
    assert len(q.factors.A) == 3 and len(q.factors.G_cross) == 2
    none = vae_step(chain, eta, x, eps)
    assert none.factors is None and none.value == full.value
    with pytest.raises(ValueError, match="fisher_samples"):
        vae_step(chain, eta, x, eps, u, curvature="vp", fisher_samples=9)
    with pytest.raises(ValueError, match="uniforms"):
        vae_step(chain, eta, x, eps, curvature="vp")


def test_q_factors_are_the_q_score_kfac(problem):
    """q-Fisher rows: score of log q(z|x) w.r.t. the encoder outputs, back-propagated."""
    chain, eta, x, eps, _ = problem
    s, n = eps.shape[:2]
    lam = chain.split(eta)[0]
    h, _ = chain.encoder.forward(lam, x)
    sraw = h[:, chain.d_z :]
    sig = np.logaddexp(0, sraw) + chain.floor
    d_h = np.concatenate([eps / sig, (eps**2 - 1) / sig * expit(sraw)[None]], axis=2).reshape(
        s * n, -1
    )
    _, cache = chain.encoder.forward(lam, np.tile(x, (s, 1)))
    pairs = chain.encoder.backward(cache, d_h).pairs
    ref = kfac_factors(pairs, np.full(s * n, 1.0 / (s * n)))
    got = vae_step(chain, eta, x, eps, curvature="q").factors
    for field in ref._fields:
        for g, w in zip(getattr(got, field), getattr(ref, field), strict=True):
            assert _rel(g, w) <= 1e-12


def test_bernoulli_numba_matches_numpy(rng):
    t = 8 * rng.standard_normal((12, 7))
    x = (rng.random((4, 7)) < 0.5) * 1.0
    u = rng.random((12, 7))
    a = bernoulli_terms(t, x, u, method="numba")
    b = bernoulli_terms(t, x, u, method="numpy")
    for p, q in zip(a, b, strict=True):
        assert _rel(p, q) <= EXACT
    with pytest.raises(ValueError, match="multiple"):
        bernoulli_terms(t[:5], x)
    with pytest.raises(ValueError, match="method"):
        bernoulli_terms(t, x, method="fortran")


def test_vae_elbo_batches_agree(problem):
    chain, eta, x, eps, _ = problem
    whole = vae_elbo(chain, eta, x, eps, batch=100)
    assert whole == pytest.approx(vae_elbo(chain, eta, x, eps, batch=4), rel=1e-13)
    assert whole == pytest.approx(vae_step(chain, eta, x, eps).value, rel=1e-13)


def test_quick_run_writes_json_and_png(tmp_path):
    assert vae.main(["--quick", "--out", str(tmp_path), "--no-progress"]) == 0
    doc = json.loads((tmp_path / "vae_figure2.json").read_text())
    assert set(METHODS) <= set(doc) and "two_step" in METHODS
    assert doc["two_step"]["steps"] >= 2  # at least one encoder and one decoder step
    for m in METHODS:
        r = doc[m]
        for key in ("sec_per_iter", "final_train_elbo", "final_test_elbo", "curve", "lr"):
            assert key in r
        assert r["steps"] >= 1 and r["sec_per_iter"] > 0
        curve = np.asarray(r["curve"])
        assert curve.ndim == 2 and curve.shape[1] == 3 and curve.shape[0] >= 2
        assert np.all(np.isfinite(curve))
        assert np.all(np.diff(curve[:, 0]) > 0)
        assert r["final_test_elbo"] == curve[-1, 2]
    assert doc["settings"]["data"] == "synthetic" and doc["data_source"] == "synthetic"
    assert "Budget: 0.6 s of process CPU time" in doc["notes"]
    assert (tmp_path / "vae_figure2.png").stat().st_size > 0
    # finished cells are reused on rerun (resume)
    cell = tmp_path / "vae_figure2_runs" / "adam_lr0.001.json"
    before = cell.stat().st_mtime_ns
    assert vae.main(["--quick", "--out", str(tmp_path), "--no-progress", "--no-plot"]) == 0
    assert cell.stat().st_mtime_ns == before
    # a method run alone reuses its cell and merges into the earlier document
    cell = tmp_path / "vae_figure2_runs" / "two_step_lr0.001.json"
    before = cell.stat().st_mtime_ns
    args = ["--quick", "--out", str(tmp_path), "--no-progress", "--no-plot", "--merge"]
    assert vae.main([*args, "--methods", "two_step"]) == 0
    assert cell.stat().st_mtime_ns == before
    merged = json.loads((tmp_path / "vae_figure2.json").read_text())
    assert merged["settings"]["methods"] == list(METHODS)
    assert merged["adam"] == doc["adam"] and merged["two_step"]["curve"] == doc["two_step"]["curve"]
    with pytest.raises(ValueError, match="different settings"):
        vae.merge_results(merged, {**merged, "settings": {**merged["settings"], "batch": 7}})


def test_run_one_is_deterministic_in_steps():
    """Same seed and step count give the same curve values (the clock only decides when)."""
    s = vae.QUICK._replace(budget=1e9, n_evals=1)
    data = vae.synthetic_data(0)
    out = []
    for _ in range(2):
        stopper = {"n": 0}

        def clock(stopper=stopper):
            stopper["n"] += 1
            return 0.0 if stopper["n"] < 12 else 2e9

        out.append(vae.run_one("vpng_tridiag", 1e-3, s, data, _clock_fn=clock))
    assert out[0]["curve"][-1][1:] == out[1]["curve"][-1][1:]
    assert out[0]["steps"] == out[1]["steps"]
    assert math.isfinite(out[0]["final_train_elbo"])


def test_dec_factors_are_the_decoder_blocks_of_vp(problem):
    """curvature='dec': exactly the decoder blocks of the VPNG K-FAC factors."""
    chain, eta, x, eps, u = problem
    vp = vae_step(chain, eta, x, eps, u, curvature="vp").factors
    dec = vae_step(chain, eta, x, eps, u, curvature="dec").factors
    assert len(dec.A) == 3 and len(dec.A_cross) == 2
    for got, want in ((dec.A, vp.A[3:]), (dec.G, vp.G[3:])):
        for g, w in zip(got, want, strict=True):
            assert np.array_equal(g, w)
    for got, want in ((dec.A_cross, vp.A_cross[3:]), (dec.G_cross, vp.G_cross[3:])):
        for g, w in zip(got, want, strict=True):
            assert np.array_equal(g, w)
    diag = vae_step(chain, eta, x, eps, u, curvature="dec", cross=False).factors
    assert diag.A_cross == () and len(diag.G) == 3
    with pytest.raises(ValueError, match="uniforms"):
        vae_step(chain, eta, x, eps, curvature="dec")


def _dense_tridiag_completion(f, offsets):
    """The matrix that agrees with block-tridiagonal ``f`` on its band and has a
    block-tridiagonal inverse: F_{l,m} = F_{l,l+1} F_{l+1,l+1}^{-1} F_{l+1,m} for m > l + 1."""
    f = f.copy()
    nb = len(offsets) - 1

    def blk(i, j):
        return slice(offsets[i], offsets[i + 1]), slice(offsets[j], offsets[j + 1])

    for gap in range(2, nb):
        for i in range(nb - gap):
            j = i + gap
            ri, cj = blk(i, j)
            f[ri, cj] = f[blk(i, i + 1)] @ np.linalg.solve(f[blk(i + 1, i + 1)], f[blk(i + 1, j)])
            f[cj, ri] = f[ri, cj].T
    return f


def test_two_step_directions(problem):
    """Decoder step = dense solve of the damped decoder K-FAC; each step leaves the other block
    exactly unchanged; the encoder step is the q_ng encoder direction."""
    from refvpng.optim import apply_updates, make_optimizer
    from refvpng.optim.two_step import BlockCurvature

    chain, eta, x, eps, u = problem
    s = vae.QUICK._replace(rule="fixed", damping=0.05)
    ne = chain.encoder.num_params
    st_q = vae_step(chain, eta, x, eps, curvature="q")
    st_d = vae_step(chain, eta, x, eps, u, curvature="dec")
    op_q = vae.RunningKFAC(vae._kfac_config(s, True)).update(st_q.factors, 0)
    op_d = vae.RunningKFAC(vae._kfac_config(s, True)).update(st_d.factors, 0)
    curv = BlockCurvature(op_q, op_d)
    opt = vae.two_step_optimizer(ne, 1.0, s)
    state = opt.init(eta)
    # encoder step: decoder untouched, encoder = q_ng's direction
    upd, state = opt.update(st_q.grad, state, eta, value=st_q.value, curvature=curv)
    new = apply_updates(eta, upd)
    assert np.array_equal(new[ne:], eta[ne:]) and not np.array_equal(new[:ne], eta[:ne])
    q_ng = make_optimizer("q_natural", "fixed", 1.0, s.damping, index=slice(0, ne))
    ref, _ = q_ng.update(st_q.grad, q_ng.init(eta), eta, curvature=op_q)
    assert np.array_equal(upd[:ne], ref[:ne])
    # decoder step: encoder untouched, direction = dense solve of the damped decoder K-FAC
    upd, state = opt.update(st_d.grad, state, new, value=st_d.value, curvature=curv)
    new2 = apply_updates(new, upd)
    assert np.array_equal(new2[:ne], new[:ne]) and not np.array_equal(new2[ne:], new[ne:])
    f_band = op_d.to_dense(s.damping)  # A^γ ⊗ G^γ on the diagonal, A_c ⊗ G_c next to it
    f_hat = _dense_tridiag_completion(f_band, op_d.offsets)
    dense = np.linalg.solve(f_hat, st_d.grad[ne:])
    assert _rel(upd[ne:], dense) <= 1e-10
    assert state.count == 2
