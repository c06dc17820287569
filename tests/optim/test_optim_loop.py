"""Algorithm 1 loop: per-step randomness, bit-for-bit resume, callbacks, validation."""

import numpy as np
import pytest

from refvpng.optim import (
    load_checkpoint,
    make_optimizer,
    resume,
    run,
    step_rngs,
)
from refvpng.testing.invariants import assert_trees_bit_equal

P = 4
_rng = np.random.default_rng(42)
_M = _rng.standard_normal((P, P))
A = _M @ _M.T + 0.5 * np.eye(P)  # negative Hessian of the quadratic
THETA_STAR = _rng.standard_normal(P)


def noisy_objective_and_grad(theta, rng):
    """L(theta) = -1/2 r^T A r with r = theta - theta*, observed with noise."""
    r = theta - THETA_STAR
    noise = rng.standard_normal(P)
    return -0.5 * r @ A @ r + 0.01 * rng.standard_normal(), -A @ r + 0.3 * noise


def noisy_curvature(theta, rng):
    """A rank-deficient Monte Carlo-like Fisher: two outer products plus a little of A."""
    b = rng.standard_normal((2, P))
    return 0.5 * A + b.T @ b / 2.0


def test_step_rngs_are_keyed_by_seed_and_step():
    a_obj, a_curv = step_rngs(7, 3)
    ss = np.random.SeedSequence(7).spawn(4)[3].spawn(2)
    assert np.array_equal(a_obj.random(5), np.random.default_rng(ss[0]).random(5))
    assert np.array_equal(a_curv.random(5), np.random.default_rng(ss[1]).random(5))
    x = step_rngs(7, 3)[0].random(3)
    assert not np.array_equal(x, step_rngs(7, 4)[0].random(3))
    assert not np.array_equal(x, step_rngs(8, 3)[0].random(3))
    assert not np.array_equal(x, step_rngs(7, 3)[1].random(3))


CONFIGS = [
    ("vpng", "adam", dict(damping=0.1, adapt_damping=True, period=2)),
    ("q_natural", "rmsprop", dict(damping=0.01, index=slice(0, 2))),
    ("gradient", "fixed", {}),
]


def _curvature_for(direction):
    if direction == "q_natural":
        return lambda theta, rng: noisy_curvature(theta, rng)[:2, :2]
    if direction == "vpng":
        return noisy_curvature
    return None


@pytest.mark.parametrize("direction,rule,kw", CONFIGS, ids=[c[0] + "-" + c[1] for c in CONFIGS])
def test_resume_from_checkpoint_is_bit_for_bit(tmp_path, direction, rule, kw):
    opt = make_optimizer(direction, rule, 0.05, **kw)
    curv = _curvature_for(direction)
    theta0 = np.zeros(P)
    full = run(noisy_objective_and_grad, theta0, opt, 20, curvature_fn=curv, seed=123)

    path = tmp_path / "run.npz"

    class Killed(Exception):
        pass

    def kill_at_13(step, params, state, value):
        if step == 13:
            raise Killed

    with pytest.raises(Killed):
        run(
            noisy_objective_and_grad,
            theta0,
            opt,
            20,
            curvature_fn=curv,
            seed=123,
            callback=kill_at_13,
            checkpoint_path=path,
            checkpoint_every=5,
        )
    ck = load_checkpoint(path)
    assert ck.step == 10 and ck.seed == 123 and ck.history.shape == (10,)

    resumed = resume(path, noisy_objective_and_grad, opt, 20, curvature_fn=curv)
    assert resumed.step == full.step == 20
    assert np.array_equal(resumed.params, full.params)
    assert np.array_equal(resumed.history, full.history)
    assert_trees_bit_equal(resumed.state, full.state)
    # the final checkpoint holds the end of the run
    end = load_checkpoint(path)
    assert end.step == 20 and np.array_equal(end.params, full.params)
    assert_trees_bit_equal(end.state, full.state)


def test_manual_continuation_is_bit_for_bit():
    opt = make_optimizer("vpng", "rmsprop", 0.05, damping=0.1)
    a = run(noisy_objective_and_grad, np.zeros(P), opt, 12, curvature_fn=noisy_curvature, seed=5)
    h = run(noisy_objective_and_grad, np.zeros(P), opt, 7, curvature_fn=noisy_curvature, seed=5)
    b = run(
        noisy_objective_and_grad,
        h.params,
        opt,
        12,
        curvature_fn=noisy_curvature,
        seed=5,
        state=h.state,
        start_step=h.step,
        history=h.history,
    )
    assert np.array_equal(a.params, b.params) and np.array_equal(a.history, b.history)
    assert_trees_bit_equal(a.state, b.state)


def test_noisy_run_makes_progress():
    opt = make_optimizer("vpng", "fixed", 0.5, damping=0.1)
    res = run(noisy_objective_and_grad, np.zeros(P), opt, 60, curvature_fn=noisy_curvature, seed=1)
    assert np.linalg.norm(res.params - THETA_STAR) < 0.3 * np.linalg.norm(THETA_STAR)
    assert res.history[-1] > res.history[0]


def test_default_seed_is_recorded_and_reproduces():
    opt = make_optimizer("gradient", "fixed", 0.05)
    a = run(noisy_objective_and_grad, np.zeros(P), opt, 5)
    assert isinstance(a.seed, int)
    b = run(noisy_objective_and_grad, np.zeros(P), opt, 5, seed=a.seed)
    assert np.array_equal(a.params, b.params)


def test_callback_sees_iterate_and_can_stop():
    seen = []

    def cb(step, params, state, value):
        seen.append((step, params.copy(), value))
        return step == 3

    opt = make_optimizer("gradient", "fixed", 0.05)
    theta0 = np.ones(P)
    res = run(noisy_objective_and_grad, theta0, opt, 10, seed=0, callback=cb)
    assert res.step == 3 and res.history.shape == (3,)
    assert [s[0] for s in seen] == [0, 1, 2, 3]
    assert np.array_equal(seen[0][1], theta0)
    assert np.array_equal(res.history, [s[2] for s in seen[:3]])
    assert np.array_equal(theta0, np.ones(P))  # params0 not mutated


def test_loop_validation():
    opt = make_optimizer("gradient", "fixed", 0.05)
    with pytest.raises(ValueError, match="n_steps"):
        run(noisy_objective_and_grad, np.zeros(P), opt, 2, start_step=3)
    with pytest.raises(ValueError, match="history"):
        run(noisy_objective_and_grad, np.zeros(P), opt, 5, start_step=2, history=[1.0])
    with pytest.raises(ValueError, match="not finite"):
        run(lambda t, r: (np.nan, np.zeros(P)), np.zeros(P), opt, 3, seed=0)
    with pytest.raises(ValueError, match="grads"):
        run(lambda t, r: (0.0, np.zeros(P + 1)), np.zeros(P), opt, 3, seed=0)
    with pytest.raises(ValueError, match="grads"):
        run(lambda t, r: (0.0, np.full(P, np.inf)), np.zeros(P), opt, 3, seed=0)
    with pytest.raises(ValueError, match="seed"):
        run(noisy_objective_and_grad, np.zeros(P), opt, 3, seed=-1)
    with pytest.raises(TypeError, match="optimizer"):
        run(noisy_objective_and_grad, np.zeros(P), object(), 3)
    with pytest.raises(ValueError, match="pass damping > 0"):
        run(
            noisy_objective_and_grad,
            np.zeros(P),
            make_optimizer("vpng", "fixed", 0.1),
            3,
            curvature_fn=lambda t, r: np.zeros((P, P)),
            seed=0,
        )


def test_make_optimizer_validation():
    with pytest.raises(ValueError, match="direction"):
        make_optimizer("newton", "fixed", 0.1)
    with pytest.raises(ValueError, match="rule"):
        make_optimizer("vpng", "sgd", 0.1)
    with pytest.raises(ValueError, match="lr"):
        make_optimizer("vpng", "adam", -0.1)
    with pytest.raises(ValueError, match="decay"):
        make_optimizer("vpng", "rmsprop", 0.1, decay=1.0)


def test_step_rngs_checks_seed_and_step():
    from refvpng.optim.loop import step_rngs

    with pytest.raises(ValueError, match="seed must be >= 0"):
        step_rngs(-1, 0)
    with pytest.raises(TypeError, match="step must be an integer"):
        step_rngs(0, 1.5)
