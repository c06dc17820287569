"""K-FAC direction with the running estimate in the optimiser state: semantics and resume."""

from __future__ import annotations

import numpy as np
import pytest

from refvpng.curvature.kfac import (
    BlockDiagKFAC,
    BlockTridiagKFAC,
    KFACConfig,
    kfac_ema,
    kfac_factors,
)
from refvpng.nn import make_vae, vae_step
from refvpng.optim import (
    KFACDirectionState,
    chain,
    kfac_direction,
    load_checkpoint,
    make_optimizer,
    resume,
    run,
    scale,
)
from refvpng.optim.two_step import BlockCurvature, two_step
from refvpng.testing.tolerances import EXACT

SIZES = ((3, 2), (3, 4), (5, 1))  # (input width incl. bias, output width) per layer


def _factor_batches(rng, count, cross):
    out = []
    for _ in range(count):
        pairs = [
            (np.c_[rng.standard_normal((7, a - 1)), np.ones(7)], rng.standard_normal((7, g)))
            for a, g in SIZES
        ]
        out.append(kfac_factors(pairs, cross=cross))
    return out


@pytest.mark.parametrize("tridiagonal", [False, True], ids=["blockdiag", "tridiag"])
def test_direction_is_the_solve_of_the_last_refreshed_ema(rng, tridiagonal):
    """EMA every update, decompositions refreshed at counts 0, T3, 2 T3, ... only."""
    cfg = KFACConfig(tridiagonal=tridiagonal, factor_damping=0.3, decay=0.8, inverse_every=3)
    d = kfac_direction(cfg)
    p = sum(a * g for a, g in SIZES)
    state = d.init(np.zeros(p))
    assert state == KFACDirectionState(0, None)
    cls = BlockTridiagKFAC if tridiagonal else BlockDiagKFAC
    ema = snapshot = None
    for k, f in enumerate(_factor_batches(rng, 6, tridiagonal)):
        ema = f if ema is None else kfac_ema(ema, f, cfg.decay)
        if k % cfg.inverse_every == 0:
            snapshot = ema
        g = rng.standard_normal(p)
        u, state = d.update(g, state, curvature=f)
        dense = cls(snapshot, cfg.factor_damping, lowrank_threshold=None).to_dense()
        if not tridiagonal or len(SIZES) == 2:
            want = np.linalg.solve(dense, g)
        else:  # the tridiagonal solve is exact for the operator's own inverse
            want = cls(snapshot, cfg.factor_damping).solve(g)
        assert np.max(np.abs(u - want)) <= EXACT * np.max(np.abs(want))
        assert state.count == k + 1
        for got, exp in zip(state.kfac.factors.A, ema.A, strict=True):
            assert np.max(np.abs(got - exp)) <= EXACT * np.max(np.abs(exp))


def test_index_block_and_damping_override(rng):
    cfg = KFACConfig(tridiagonal=False, factor_damping=0.2)
    f = _factor_batches(rng, 1, False)[0]
    p = sum(a * g for a, g in SIZES)
    d = kfac_direction(cfg, index=slice(2, 2 + p))
    g = rng.standard_normal(p + 3)
    u, _ = d.update(g, d.init(np.zeros(p + 3)), curvature=f)
    dense = BlockDiagKFAC(f, 0.2).to_dense()
    assert np.array_equal(u[:2], g[:2]) and np.array_equal(u[2 + p :], g[2 + p :])
    assert np.allclose(u[2 : 2 + p], np.linalg.solve(dense, g[2 : 2 + p]), rtol=1e-10)
    u5, _ = d.update(g, d.init(np.zeros(p + 3)), curvature=f, damping=5.0)
    dense5 = BlockDiagKFAC(f, 5.0).to_dense()
    assert np.allclose(u5[2 : 2 + p], np.linalg.solve(dense5, g[2 : 2 + p]), rtol=1e-10)


def test_errors(rng):
    f = _factor_batches(rng, 1, True)[0]
    d = kfac_direction(KFACConfig())
    state = d.init(np.zeros(3))
    with pytest.raises(TypeError, match="config"):
        kfac_direction({"damping": 0.1})
    with pytest.raises(ValueError, match="curvature"):
        d.update(np.ones(3), state)
    with pytest.raises(TypeError, match="curvature"):
        d.update(np.ones(3), state, curvature=np.eye(3))
    with pytest.raises(ValueError, match="rows"):
        d.update(np.ones(3), state, curvature=f)
    with pytest.raises(ValueError, match="KFACDirectionState"):
        d.update(np.ones(3), (), curvature=f)


# ---------------------------------------------------------------- checkpoint and resume
VAE = make_vae(10, 4, 2)
X = (np.random.default_rng(3).random((6, 10)) < 0.3) * 1.0


def _objective(eta, rng):
    st = vae_step(VAE, eta, X, rng.standard_normal((2, 6, 2)))
    return st.value, st.grad


def _factors(eta, rng, kind):
    eps, u = rng.standard_normal((2, 6, 2)), rng.random((2, 6, 10))
    return vae_step(VAE, eta, X, eps, u, curvature=kind, factor_dtype=np.float32).factors_per_point


def _vpng(cfg):
    return chain(kfac_direction(cfg), make_optimizer("gradient", "adam", 1e-2)), (
        lambda eta, rng: _factors(eta, rng, "vp")
    )


def _q_natural(cfg):
    index = slice(0, VAE.encoder.num_params)
    return chain(kfac_direction(cfg, index=index), scale(1e-2)), (lambda eta, rng: _factors(eta, rng, "q"))


def _two_step(cfg):
    def member():
        return chain(kfac_direction(cfg), make_optimizer("gradient", "rmsprop", 1e-2))

    opt = two_step(member(), member(), VAE.encoder.num_params, decoder_steps=2)
    return opt, lambda eta, rng: BlockCurvature(
        lambda: _factors(eta, rng, "q"), lambda: _factors(eta, rng, "dec")
    )


def _leaves(tree, path="state"):
    if isinstance(tree, dict):
        for k, v in tree.items():
            yield from _leaves(v, f"{path}[{k!r}]")
    elif isinstance(tree, (tuple, list)):
        names = getattr(type(tree), "_fields", range(len(tree)))
        for k, v in zip(names, tree, strict=True):
            yield from _leaves(v, f"{path}.{k}")
    else:
        yield path, tree


def _assert_same_tree(a, b):
    la, lb = list(_leaves(a)), list(_leaves(b))
    assert [p for p, _ in la] == [p for p, _ in lb]
    for (path, x), (_, y) in zip(la, lb, strict=True):
        assert type(x) is type(y), path
        if isinstance(x, np.ndarray):
            assert x.dtype == y.dtype and np.array_equal(x, y), path
        else:
            assert x == y or (x != x and y != y), path


@pytest.mark.parametrize("make", [_vpng, _q_natural, _two_step], ids=["vpng", "q_natural", "two_step"])
@pytest.mark.parametrize("threshold", [None, 6], ids=["full", "lowrank"])
def test_run_resumes_bit_for_bit(tmp_path, make, threshold):
    """N steps = k steps, save, load, N - k steps: params and every state leaf identical."""
    cfg = KFACConfig(tridiagonal=True, factor_damping=0.1, inverse_every=2, lowrank_threshold=threshold)
    opt, curvature_fn = make(cfg)
    eta0 = VAE.init(np.random.default_rng(0))
    n_steps, k = 7, 3
    whole = run(_objective, eta0, opt, n_steps, seed=5, curvature_fn=curvature_fn)
    path = tmp_path / "run.npz"
    first = run(_objective, eta0, opt, k, seed=5, curvature_fn=curvature_fn, checkpoint_path=path)
    ck = load_checkpoint(path, like=opt.init)
    _assert_same_tree(ck.state, first.state)  # the saved state is the run's state
    rest = resume(path, _objective, opt, n_steps, curvature_fn=curvature_fn)
    assert np.array_equal(rest.params, whole.params)
    assert np.array_equal(rest.history, whole.history)
    _assert_same_tree(rest.state, whole.state)
    # the K-FAC estimate is really in the state (refreshed at least once after the first)
    kfacs = [v for p, v in _leaves(whole.state) if p.endswith(".count")]
    assert kfacs and max(kfacs) >= 3
