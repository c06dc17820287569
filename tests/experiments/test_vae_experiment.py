"""Figure 2 VAE experiment: the methods' optimisers, a --quick smoke run, cells reused on rerun."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from refvpng.curvature.kfac import BlockTridiagKFAC
from refvpng.experiments import vae
from refvpng.experiments.vae import DEFAULT_METHODS as METHODS
from refvpng.nn import make_vae, vae_step
from tests.experiments._clock import step_clock


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


def test_quick_run_writes_json_and_png(tmp_path, capsys):
    assert vae.main(["--quick", "--out", str(tmp_path), "--no-progress"]) == 0
    assert "paper" in capsys.readouterr().out
    doc = json.loads((tmp_path / "vae_figure2.json").read_text())
    assert set(METHODS) <= set(doc) and "two_step" in METHODS and "q_natural" in METHODS
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
    # finished cells are reused on rerun (resume), and a grid extended by a step size keeps them
    cache = next((tmp_path / ".cells").iterdir())
    cell = cache / "adam-lr0.001.json"
    before = cell.stat().st_mtime_ns
    args = ["--quick", "--out", str(tmp_path), "--no-progress", "--no-plot"]
    assert vae.main(args) == 0
    assert cell.stat().st_mtime_ns == before
    assert vae.main([*args, "--methods", "adam", "--lrs", "1e-3", "2e-3"]) == 0
    assert cell.stat().st_mtime_ns == before and (cache / "adam-lr0.002.json").exists()
    doc2 = json.loads((tmp_path / "vae_figure2.json").read_text())
    assert doc2["settings"]["methods"] == ["adam"] and len(doc2["adam"]["grid"]) == 2
    with pytest.raises(ValueError, match="methods"):
        vae.Settings(methods=("newton",))


def test_run_one_is_deterministic_in_steps():
    """Same seed and step count give the same curve values (the clock only decides when)."""
    s = vae.Settings(**{**vae.QUICK, "budget": 1e9, "n_evals": 1})
    data = vae.synthetic_data(0)
    out = []
    for _ in range(2):
        out.append(vae.run_one("vpng_tridiag", 1e-3, s, data, _clock_fn=step_clock(12)))
    assert out[0]["curve"][-1][1:] == out[1]["curve"][-1][1:]
    assert out[0]["steps"] == out[1]["steps"]
    assert math.isfinite(out[0]["final_train_elbo"])


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
    exactly unchanged; the encoder step is the q_natural encoder direction."""
    from refvpng.optim import apply_updates
    from refvpng.optim.two_step import BlockCurvature

    chain, eta, x, eps, u = problem
    s = vae.Settings(**{**vae.QUICK, "rule": "fixed", "damping": 0.05})
    ne = chain.encoder.num_params
    st_q = vae_step(chain, eta, x, eps, curvature="q")
    st_d = vae_step(chain, eta, x, eps, u, curvature="dec")
    curv = BlockCurvature(st_q.factors_per_point, st_d.factors_per_point)
    opt, kinds = vae.method_optimizer("two_step", 1.0, s, ne)
    assert kinds == ("q", "dec")
    state = opt.init(eta)
    # encoder step: decoder untouched, encoder = q_natural's direction
    upd, state = opt.update(st_q.grad, state, eta, value=st_q.value, curvature=curv)
    new = apply_updates(eta, upd)
    assert np.array_equal(new[ne:], eta[ne:]) and not np.array_equal(new[:ne], eta[:ne])
    q_nat, kinds = vae.method_optimizer("q_natural", 1.0, s, ne)
    ref, _ = q_nat.update(st_q.grad, q_nat.init(eta), eta, curvature=st_q.factors_per_point)
    assert kinds == ("q",) and np.array_equal(upd[:ne], ref[:ne])
    assert np.array_equal(ref[ne:], st_q.grad[ne:])  # vanilla gradient on the decoder
    # decoder step: encoder untouched, direction = dense solve of the damped decoder K-FAC
    upd, state = opt.update(st_d.grad, state, new, value=st_d.value, curvature=curv)
    new2 = apply_updates(new, upd)
    assert np.array_equal(new2[:ne], new[:ne]) and not np.array_equal(new2[ne:], new[ne:])
    op_d = BlockTridiagKFAC(st_d.factors_per_point, s.damping)
    f_band = op_d.to_dense()  # A^γ ⊗ G^γ on the diagonal, A_c ⊗ G_c next to it
    f_hat = _dense_tridiag_completion(f_band, op_d.offsets)
    dense = np.linalg.solve(f_hat, st_d.grad[ne:])
    assert _rel(upd[ne:], dense) <= 1e-10
    assert state.count == 2
    with pytest.raises(ValueError, match="method"):
        vae.method_optimizer("newton", 1.0, s, ne)
