"""The two-step natural gradient: phases, block directions, resume bit for bit, convergence."""

from __future__ import annotations

import numpy as np
import pytest

from refvpng.curvature.fisher import q_fisher
from refvpng.curvature.latent_fisher import draw_joint
from refvpng.elbo import elbo, elbo_grad
from refvpng.models import linear_vae as lv
from refvpng.models import ppca
from refvpng.models.latent import draw_eps
from refvpng.models.small import make_small_model
from refvpng.optim import (
    adam,
    chain,
    identity_direction,
    load_checkpoint,
    natural_direction,
    resume,
    run,
    scale,
)
from refvpng.optim.two_step import (
    BlockCurvature,
    TwoStepState,
    current_phase,
    make_two_step,
    two_step,
    two_step_curvature,
)
from refvpng.testing.invariants import assert_trees_bit_equal
from refvpng.testing.tolerances import EXACT


def _raise():
    raise AssertionError("the curvature of the other phase must not be evaluated")


# --------------------------------------------------------------------------------------------
# mechanics
# --------------------------------------------------------------------------------------------


def test_phases_follow_inner_step_counts():
    opt = make_two_step(2, encoder_steps=2, decoder_steps=3)
    params = np.zeros(5)
    state = opt.init(params)
    phases = []
    for _ in range(10):
        phases.append(current_phase(state, 2, 3))
        enc = np.eye(2) if phases[-1] == "encoder" else _raise
        dec = np.eye(3) if phases[-1] == "decoder" else _raise
        u, state = opt.update(np.ones(5), state, params, curvature=BlockCurvature(enc, dec))
        block = slice(0, 2) if phases[-1] == "encoder" else slice(2, 5)
        other = np.ones(5, dtype=bool)
        other[block] = False
        assert np.all(u[other] == 0.0) and np.allclose(u[block], 1.0)
    assert phases == ["encoder"] * 2 + ["decoder"] * 3 + ["encoder"] * 2 + ["decoder"] * 3
    assert isinstance(state, TwoStepState) and state.count == 10


def test_members_see_only_their_block_and_keep_their_state():
    opt = two_step(
        chain(identity_direction(), adam(0.1)), chain(natural_direction(), scale(0.5)), n_encoder=1
    )
    params = np.zeros(3)
    state = opt.init(params)
    assert state.encoder[1].mu.shape == (1,)
    curv = BlockCurvature(encoder=_raise, decoder=lambda: np.diag([2.0, 4.0]))
    # the encoder member ignores curvature (Adam on the vanilla gradient): not evaluated
    u, state = opt.update(
        np.array([3.0, 2.0, 4.0]), state, params, curvature=BlockCurvature(encoder=None, decoder=_raise)
    )
    assert np.allclose(u, [0.1, 0.0, 0.0]) and state.encoder[1].count == 1
    u, state = opt.update(np.array([3.0, 2.0, 4.0]), state, params, curvature=curv)
    assert np.allclose(u, [0.0, 0.5, 0.5]) and state.encoder[1].count == 1


def test_steps_are_the_block_natural_gradients_of_the_linear_vae():
    d, k, n = 4, 2, 9
    spec = lv.PPCASpec(d, k)
    model = lv.make_model(spec)
    rng = np.random.default_rng(0)
    eta = 0.5 * rng.standard_normal(model.n_params)
    x = rng.standard_normal((n, d))
    g = lv.elbo_closed_grad(spec, eta, x)
    nl = model.n_lambda
    opt = make_two_step(nl, encoder_lr=0.7, decoder_lr=0.3)
    state = opt.init(eta)
    curv = two_step_curvature(model, x, n_samples=1)(eta, np.random.default_rng(1))
    u_enc, state = opt.update(g, state, eta, curvature=curv)
    Fq = q_fisher(model, eta[:nl], x)
    assert np.allclose(u_enc[:nl], 0.7 * np.linalg.solve(Fq, g[:nl]), rtol=1e-10)
    assert np.all(u_enc[nl:] == 0.0)
    closed = BlockCurvature(encoder=None, decoder=lambda: lv.decoder_fisher_closed(spec, eta, x))
    u_dec, state = opt.update(g, state, eta, curvature=closed)
    Fd = lv.decoder_fisher_closed(spec, eta, x)
    assert np.allclose(u_dec[nl:], 0.3 * np.linalg.solve(Fd, g[nl:]), rtol=1e-10)
    assert np.all(u_dec[:nl] == 0.0)


def test_unit_decoder_step_is_newton_in_w_and_b():
    """The ELBO is quadratic in (W, b) with negative Hessian = the decoder Fisher's (W, b) block."""
    d, k, n = 3, 2, 12
    spec = lv.PPCASpec(d, k)
    rng = np.random.default_rng(2)
    eta = 0.5 * rng.standard_normal(lv.n_lambda(spec) + spec.n_params)
    x = rng.standard_normal((n, d))
    nl, wb = lv.n_lambda(spec), slice(lv.n_lambda(spec), lv.n_lambda(spec) + d * k + d)
    g = lv.elbo_closed_grad(spec, eta, x)
    F = lv.decoder_fisher_closed(spec, eta, x)[: d * k + d, : d * k + d]
    new = eta.copy()
    new[wb] += np.linalg.solve(F, g[wb])
    assert np.max(np.abs(lv.elbo_closed_grad(spec, new, x)[wb])) <= 1e-9 * n
    assert nl == wb.start


@pytest.mark.parametrize(
    ("call", "exc", "match"),
    [
        (lambda: make_two_step(0), ValueError, "n_encoder must be >= 1"),
        (lambda: make_two_step(2, encoder_steps=0), ValueError, "encoder_steps must be >= 1"),
        (lambda: make_two_step(2, decoder_steps=-1), ValueError, "decoder_steps must be >= 1"),
        (lambda: make_two_step(2, encoder_lr=0.0), ValueError, "lr must be finite and > 0"),
        (lambda: make_two_step(2, decoder_damping=-1.0), ValueError, "damping must be"),
        (lambda: make_two_step(2, encoder_rule="sgd"), ValueError, "rule must be one of"),
        (lambda: make_two_step(3).init(np.zeros(3)), ValueError, "n_encoder = 3 must be smaller"),
        (lambda: two_step(identity_direction(), "x", 1), TypeError, "decoder_opt"),
        (
            lambda: two_step_curvature(lv.make_model(lv.PPCASpec(2, 1)), np.zeros((3, 2)), n_samples=0),
            ValueError,
            "n_samples must be >= 1",
        ),
    ],
)
def test_bad_arguments_raise_naming_them(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_update_without_or_with_wrong_curvature_raises():
    opt = make_two_step(1)
    state = opt.init(np.zeros(3))
    with pytest.raises(ValueError, match="curvature="):
        opt.update(np.ones(3), state, np.zeros(3))
    with pytest.raises(ValueError, match="curvature must be a BlockCurvature"):
        opt.update(np.ones(3), state, np.zeros(3), curvature=np.eye(3))
    with pytest.raises(ValueError, match="state must be a TwoStepState"):
        opt.update(np.ones(3), (), np.zeros(3), curvature=BlockCurvature(np.eye(1), np.eye(2)))


# --------------------------------------------------------------------------------------------
# checkpoint and resume, bit for bit (Monte Carlo gradients and decoder Fisher)
# --------------------------------------------------------------------------------------------


def test_resume_is_bit_for_bit(tmp_path):
    model = make_small_model("gaussian", local=True, scale="exp", dz=2, d=3)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((5, 3))
    eta0 = 0.3 * rng.standard_normal(model.n_params)

    def objective_and_grad(params, key):
        eps = draw_eps(key, model, 5, 2)
        return elbo(model, params, x, eps), elbo_grad(model, params, x, eps)

    def make():
        return make_two_step(
            model.n_lambda,
            encoder_lr=0.05,
            decoder_lr=0.02,
            encoder_damping=1.0,
            decoder_damping=1.0,
            encoder_rule="rmsprop",
            decoder_rule="adam",
            encoder_steps=2,
            decoder_steps=1,
        )

    curv = two_step_curvature(model, x, n_samples=2)
    full = run(objective_and_grad, eta0, make(), 9, curvature_fn=curv, seed=7)
    path = tmp_path / "two_step.npz"
    part = run(objective_and_grad, eta0, make(), 4, curvature_fn=curv, seed=7, checkpoint_path=path)
    assert load_checkpoint(path, like=make().init).step == 4
    resumed = resume(path, objective_and_grad, make(), 9, curvature_fn=curv)
    assert part.step == 4 and resumed.step == 9
    assert np.array_equal(resumed.params, full.params)
    assert np.array_equal(resumed.history, full.history)
    assert_trees_bit_equal(resumed.state, full.state)
    assert isinstance(resumed.state, TwoStepState) and resumed.state.count == 9


# --------------------------------------------------------------------------------------------
# convergence on pPCA
# --------------------------------------------------------------------------------------------


def make_problem(d, k, n, seed):
    """pPCA data with W_true = G diag(2..1), psi_true = 0.5, and the closed-form ML targets."""
    rng = np.random.default_rng(seed)
    spec = ppca.PPCASpec(d, k)
    W = rng.standard_normal((d, k)) * np.linspace(2.0, 1.0, k)
    theta = spec.pack(W, rng.standard_normal(d), 0.5)
    x = draw_joint(rng, ppca.make_model(spec), theta, n, 1)[0][0]
    theta_ml = ppca.mle_closed(spec, x)
    return {
        "x": x,
        "spec": spec,
        "d": d,
        "k": k,
        "n": n,
        "theta_ml": theta_ml,
        "psi_ml": float(np.exp(theta_ml[-1])),
        "max_loglik": ppca.max_loglik_closed(spec, x),
    }


def initial_eta(p, seed=1):
    """Small random start: A = 0.01 G, c = 0, rho = 0, W = 0.1 G, b = 0, psi = 1."""
    d, k = p["d"], p["k"]
    rng = np.random.default_rng(seed)
    A = 0.01 * rng.standard_normal((k, d))
    W = 0.1 * rng.standard_normal((d, k))
    return lv.pack_eta(p["spec"], A, np.zeros(k), np.zeros(k), W, np.zeros(d), 1.0)


def _closed_curvature(spec, x):
    def curvature_fn(params, rng):
        return BlockCurvature(
            encoder=lambda: lv.q_fisher_closed(spec, params, x),
            decoder=lambda: lv.decoder_fisher_closed(spec, params, x),
        )

    return curvature_fn


def test_two_step_smoke_gap_decreases():
    p = make_problem(5, 2, 200, seed=0)
    x, spec, n = p["x"], p["spec"], p["n"]
    opt = make_two_step(lv.n_lambda(spec), encoder_damping=1e-3, decoder_damping=1e-3)
    res = run(
        lambda e, r: lv.elbo_closed_value_and_grad(spec, e, x),
        initial_eta(p),
        opt,
        60,
        curvature_fn=_closed_curvature(spec, x),
        seed=0,
    )
    gap = p["max_loglik"] - res.history / n
    assert np.all(gap >= -EXACT * abs(p["max_loglik"]))  # the ELBO is below the log-likelihood
    assert np.all(np.diff(gap) <= 1e-10)  # block coordinate ascent: never worse
    assert gap[-1] < 1e-2 * gap[0] and gap[-1] < 1e-2


@pytest.mark.slow
def test_two_step_reaches_ml_subspace_and_noise_variance():
    """Generic curvatures (autograd q-Fisher, Monte Carlo decoder Fisher), exact gradients."""
    p = make_problem(4, 2, 100, seed=3)
    x, spec, n = p["x"], p["spec"], p["n"]
    model = lv.make_model(spec)
    opt = make_two_step(model.n_lambda, encoder_damping=1e-3, decoder_damping=1e-3)
    gaps = []

    def callback(step, params, state, value):
        gaps.append(p["max_loglik"] - value / n)
        return gaps[-1] < 1e-13

    res = run(
        lambda e, r: lv.elbo_closed_value_and_grad(spec, e, x),
        initial_eta(p, 4),
        opt,
        4000,
        curvature_fn=two_step_curvature(model, x, n_samples=4),
        seed=0,
        callback=callback,
    )
    _, _, _, W, _, psi = lv.unpack_eta(spec, res.params)
    W_ml = spec.unpack(p["theta_ml"])[0]
    assert np.max(ppca.principal_angles(W, W_ml)) < 1e-6
    assert abs(psi[0] - p["psi_ml"]) <= 1e-6 * p["psi_ml"]
    assert gaps[-1] < 1e-10


# ---- validation (issue 11)


def test_make_two_step_names_the_learning_rate():
    from refvpng.optim.two_step import make_two_step, two_step_curvature

    with pytest.raises(ValueError, match="encoder_lr must be finite and > 0"):
        make_two_step(2, encoder_lr=0.0)
    with pytest.raises(TypeError, match="decoder_lr must be a real number"):
        make_two_step(2, decoder_lr=None)
    with pytest.raises(TypeError, match="model must be a refvpng LatentModel"):
        two_step_curvature(None, np.ones((2, 2)))
