"""Dense F_r and Eq 16 from per-layer factors (kron_outer_sum, the layer_pairs hook) and the syrk path.

The Kronecker algorithm is checked against the Jacobian formulation of the same estimator
(EXACT) and against autograd (AUTOGRAD), on chains with several layers of unequal widths,
S > 1 noise draws, M > 1 predictive samples, and Gaussian (full Lambda), Bernoulli and Poisson
likelihoods.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from refvpng.curvature.fisher import output_jacobian, vp_fisher_exact, vp_fisher_mc, vp_scores
from refvpng.curvature.kron_fisher import kron_outer_sum
from refvpng.curvature.outer import gram_syrk, mirror_upper
from refvpng.models import Bernoulli, Gaussian, Poisson
from refvpng.models.latent import draw_eps, draw_predictive, without_hooks
from refvpng.nn import Chain, chain_model, per_example_gradients
from refvpng.testing import AUTOGRAD, EXACT


def _rel(a, b):
    return float(np.max(np.abs(np.asarray(a) - b)) / max(1e-300, np.max(np.abs(b))))


def _full_cov(d):
    a = np.linspace(-1.0, 1.0, d * d).reshape(d, d)
    return 0.4 * np.eye(d) + a @ a.T / d


# name, encoder widths, decoder widths, activation, likelihood, S, M
CHAINS = [
    ("gaussian-full-lambda", (5, 7, 3, 4), (2, 6, 4, 5), "tanh", Gaussian(_full_cov(5)), 3, 2),
    ("bernoulli", (4, 6, 2), (1, 5, 3, 4), "relu", Bernoulli(), 2, 4),
    ("poisson-softplus", (3, 8, 4), (2, 3, 3), "tanh", Poisson("softplus"), 2, 3),
    ("poisson-log-one-layer-each", (3, 2), (1, 3), "identity", Poisson("log"), 1, 2),
]


def _jacobian_path(model):
    """The same model without its layer_pairs hook: the Jacobian formulation."""
    return dataclasses.replace(model, hooks=model.hooks._replace(layer_pairs=None))


def _data(lik, rng, n, d):
    if isinstance(lik, Bernoulli):
        return (rng.random((n, d)) < 0.5).astype(float)
    if isinstance(lik, Poisson):
        return rng.poisson(1.1, size=(n, d)).astype(float)
    return rng.standard_normal((n, d))


@pytest.fixture(params=CHAINS, ids=[c[0] for c in CHAINS])
def problem(request):
    _, enc, dec, act, lik, s, m = request.param
    rng = np.random.default_rng(len(request.param[0]))
    chain = Chain.from_sizes(enc, dec, act, floor=0.02)
    model = chain_model(chain, lik)
    eta = 0.5 * rng.standard_normal(chain.num_params)
    x = _data(lik, rng, 4, chain.d_x)
    eps = draw_eps(rng, model, 4, s)
    return model, eta, x, eps, draw_predictive(rng, model, eta, x, eps, m)


# --- kron_outer_sum on its own --------------------------------------------------------------------


@pytest.mark.parametrize("weighted", [False, True])
def test_kron_outer_sum_is_the_gram_of_the_kronecker_rows(weighted):
    """Rows a_l kron g_lk (per_example_gradients), K rows per group sharing a_l, weights w_r."""
    rng = np.random.default_rng(0)
    r, k = 7, 3
    widths = [(4, 3), (2, 5), (6, 1)]  # (a_l, d_l): unequal, a layer with d_l = 1
    a_bars = [rng.standard_normal((r, a)) for a, _ in widths]
    gs = [rng.standard_normal((r, k, d)) for _, d in widths]
    w = rng.random(r) if weighted else np.ones(r)
    rows = per_example_gradients(
        [(np.repeat(a, k, axis=0), g.reshape(r * k, -1)) for a, g in zip(a_bars, gs, strict=True)]
    )
    ref = rows.T @ (np.repeat(w, k)[:, None] * rows)
    got = kron_outer_sum(a_bars, gs, w if weighted else 1.0)
    assert _rel(got, ref) <= EXACT
    assert np.array_equal(got, got.T)


@pytest.mark.parametrize("cut", ["groups", "tile-rows", "both"])
def test_kron_outer_sum_in_chunks_equals_one_product(monkeypatch, cut):
    """Groups cut into chunks (accumulated into the output) and tile rows cut one by one."""
    import refvpng.curvature.kron_fisher as kf

    rng = np.random.default_rng(1)
    a_bars = [rng.standard_normal((150, 3)), rng.standard_normal((150, 4))]
    gs = [rng.standard_normal((150, 2, 2)), rng.standard_normal((150, 2, 3))]
    w = rng.random(150)
    rows = per_example_gradients(
        [(np.repeat(a, 2, axis=0), g.reshape(300, -1)) for a, g in zip(a_bars, gs, strict=True)]
    )
    ref = rows.T @ (np.repeat(w, 2)[:, None] * rows)
    if cut in ("groups", "both"):
        monkeypatch.setattr(kf, "_CHUNK_DOUBLES", 1)
        monkeypatch.setattr(kf, "_MIN_CHUNK", 16)
    if cut in ("tile-rows", "both"):
        monkeypatch.setattr(kf, "_TILE_DOUBLES", 1)
    assert _rel(kron_outer_sum(a_bars, gs, w), ref) <= EXACT


def test_kron_outer_sum_bad_arguments():
    a, g = np.ones((3, 2)), np.ones((3, 2, 4))
    with pytest.raises(ValueError, match="equal length"):
        kron_outer_sum([a], [g, g])
    with pytest.raises(ValueError, match=r"gs\[1\]"):
        kron_outer_sum([a, a], [g, np.ones((2, 2, 4))])
    with pytest.raises(ValueError, match="weights"):
        kron_outer_sum([a], [g], -np.ones(3))
    with pytest.raises(ValueError, match="weights"):
        kron_outer_sum([a], [g], np.ones(4))


# --- the chain's layer_pairs hook through the estimators ----------------------------------------


def test_layer_pairs_rows_are_the_whitened_jacobian(problem):
    """The hook's factors, seeded by Lambda^{1/2}, rebuild whiten(J) row for row."""
    model, eta, x, eps, _ = problem
    lik = model.likelihood
    t, jac = output_jacobian(without_hooks(model), eta, x, eps)

    def seed(tt):
        return lik.whiten(np.broadcast_to(np.eye(tt.shape[-1]), tt.shape + tt.shape[-1:]), tt)

    a_bars, gs = model.hooks.layer_pairs(eta, x, eps, None, seed)
    s, n, d = t.shape
    rows = per_example_gradients(
        [
            (np.repeat(a.reshape(s * n, -1), d, axis=0), g.reshape(s * n * d, -1))
            for a, g in zip(a_bars, gs, strict=True)
        ]
    )
    ref = lik.whiten(jac, t).reshape(-1, model.n_params)
    assert _rel(rows, ref) <= AUTOGRAD


def test_vp_fisher_exact_kron_equals_jacobian_path_and_autograd(problem):
    model, eta, x, eps, _ = problem
    got = vp_fisher_exact(model, eta, x, eps)
    assert got.shape == (model.n_params,) * 2
    assert np.array_equal(got, got.T)
    assert _rel(got, vp_fisher_exact(_jacobian_path(model), eta, x, eps)) <= EXACT
    assert _rel(got, vp_fisher_exact(without_hooks(model), eta, x, eps)) <= AUTOGRAD


def test_vp_fisher_mc_kron_equals_score_rows_and_autograd(problem):
    model, eta, x, eps, x_pred = problem
    got = vp_fisher_mc(model, eta, x, eps, x_pred)
    s, m = x_pred.shape[:2]
    b = vp_scores(model, eta, x, eps, x_pred).reshape(-1, model.n_params)
    assert _rel(got, b.T @ b / (s * m)) <= EXACT
    assert _rel(got, vp_fisher_mc(_jacobian_path(model), eta, x, eps, x_pred)) <= EXACT
    assert _rel(got, vp_fisher_mc(without_hooks(model), eta, x, eps, x_pred)) <= AUTOGRAD
    f, per = vp_fisher_mc(model, eta, x, eps, x_pred, per_sample=True)  # the score-row path
    assert _rel(f, got) <= EXACT
    assert _rel(per.mean(axis=0), got) <= EXACT


def test_layer_pairs_seed_of_the_wrong_shape_is_refused(problem):
    model, eta, x, eps, _ = problem
    with pytest.raises(ValueError, match="seed"):
        model.hooks.layer_pairs(eta, x, eps, None, lambda t: t)


def test_bad_layer_pairs_hook_output_is_refused(problem):
    model, eta, x, eps, _ = problem

    def wrong(eta, x, eps, cov, seed):
        a_bars, gs = model.hooks.layer_pairs(eta, x, eps, cov, seed)
        return a_bars[:-1], gs[:-1]  # a layer short: P does not match

    bad = dataclasses.replace(model, hooks=model.hooks._replace(layer_pairs=wrong))
    with pytest.raises(ValueError, match="layer_pairs"):
        vp_fisher_exact(bad, eta, x, eps)


# --- the Jacobian formulation: whitening and one syrk ------------------------------------------


@pytest.mark.parametrize("lik", [Bernoulli(), Gaussian(_full_cov(3))], ids=["diagonal", "full"])
def test_jacobian_path_is_j_lambda_j(lik):
    """(1/S) sum J^T Lambda J with an explicit Lambda, against the whitened syrk path."""
    rng = np.random.default_rng(4)
    model = _jacobian_path(chain_model(Chain.from_sizes((3, 4, 2), (1, 5, 3)), lik))
    eta = 0.7 * rng.standard_normal(model.n_params)
    x, eps = _data(lik, rng, 5, 3), draw_eps(rng, model, 5, 3)
    t, jac = output_jacobian(model, eta, x, eps)
    lam = lik.output_fisher(t)
    lam = (
        np.broadcast_to(lam, t.shape + (3,)) if lam.ndim == 2 else np.einsum("...a,ab->...ab", lam, np.eye(3))
    )
    ref = np.einsum("snap,snab,snbq->pq", jac, lam, jac) / 3
    assert _rel(vp_fisher_exact(model, eta, x, eps), ref) <= EXACT


def test_gram_syrk_any_layout_and_empty():
    rng = np.random.default_rng(5)
    b = rng.standard_normal((9, 6))
    ref = b.T @ b
    for layout in (b, np.asfortranarray(b), b[:, ::1][::1], np.repeat(b, 2, axis=1)[:, ::2]):
        got = gram_syrk(layout)
        assert _rel(got, ref) <= EXACT
        assert np.array_equal(got, got.T)
    assert np.array_equal(gram_syrk(np.zeros((0, 4))), np.zeros((4, 4)))


def test_mirror_upper_copies_the_upper_triangle():
    f = np.arange(600.0 * 600).reshape(600, 600)  # more than one block of 256 columns
    up = np.triu(f)
    got = mirror_upper(f.copy())
    assert np.array_equal(got, up + np.triu(f, 1).T)


def test_bench_fisher_quick_writes_json(tmp_path):
    """validation/bench/bench_fisher.py at tiny size with its peers (the bench extra is part of the
    test extra, so curvlinops and torch.func always run here): every path agrees with refvpng's."""
    bench = Path(__file__).resolve().parents[2] / "validation" / "bench" / "bench_fisher.py"
    spec = importlib.util.spec_from_file_location("bench_fisher", bench)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = tmp_path / "bench.json"
    assert mod.main(["--quick", "--threads", "1", "--out", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["settings"]["quick"] is True and len(doc["cells"]) == 4
    for cell in doc["cells"]:
        assert {"kron", "jacobian", "kron_mc", "rows_mc", "curvlinops", "torch_func"} <= set(cell["cpu"])
        assert len(cell["agreement"]) >= 4
        assert max(cell["agreement"].values()) <= 10 * EXACT
    assert doc["summary"]["ratios"]["kron/jacobian"]
    assert doc["summary"]["ratios"]["kron/curvlinops"]


def test_bench_fisher_largest_quick_checks_its_matrix(tmp_path):
    """validation/bench/bench_fisher_largest.py at tiny size: rows agree with the Jacobian's Gram rows."""
    bench = Path(__file__).resolve().parents[2] / "validation" / "bench" / "bench_fisher_largest.py"
    spec = importlib.util.spec_from_file_location("bench_fisher_largest", bench)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = tmp_path / "largest.json"
    assert mod.main(["--quick", "--check-rows", "40", "--out", str(out)]) == 0
    rec = json.loads(out.read_text())["largest"]
    assert rec["checked_rows"] == 40 and rec["finite"]
    assert rec["agreement_rows_vs_jacobian"] <= 10 * EXACT and rec["max_asymmetry"] == 0.0


def test_kron_outer_sum_validates_and_names_overflow():
    rng = np.random.default_rng(11)
    a, g = rng.standard_normal((4, 3)), rng.standard_normal((4, 2, 5))
    for bad in (None, "a", np.ones((4, 3))):
        with pytest.raises(TypeError, match="a_bars must be a sequence"):
            kron_outer_sum(bad, [g])
    with pytest.raises(FloatingPointError, match="^kron_outer_sum: "):
        kron_outer_sum([a * 1e200], [g])
    with pytest.raises(ValueError, match=r"a_bars\[0\] contains NaN"):
        kron_outer_sum([np.where(a > 0, np.nan, a)], [g])
