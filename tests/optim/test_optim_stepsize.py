"""Step-size rules against hand computations on a 2-d quadratic."""

import math

import numpy as np
import pytest

from refvpng.optim import (
    AdamState,
    EmptyState,
    RMSPropState,
    adam,
    apply_updates,
    chain,
    identity_direction,
    natural_direction,
    rmsprop,
    scale,
    scale_by_adam,
    scale_by_rmsprop,
)
from refvpng.testing.tolerances import EXACT

# L(x) = -1/2 x^T A x + b^T x, to maximise; gradient b - A x.
A = np.array([[2.0, 0.5], [0.5, 1.0]])
B = np.array([1.0, -1.0])


def grad(x):
    return B - A @ x


def grad_by_hand(x0, x1):
    """b - A x written out coordinate by coordinate."""
    return (1.0 - (2.0 * x0 + 0.5 * x1), -1.0 - (0.5 * x0 + 1.0 * x1))


def test_scale_two_steps_by_hand():
    lr = 0.1
    opt = scale(lr)
    x = np.zeros(2)
    state = opt.init(x)
    for _ in range(2):
        u, state = opt.update(grad(x), state, x)
        x = apply_updates(x, u)
    # step 1: g = (1, -1) -> x = (0.1, -0.1)
    # step 2: g = (1 - 0.2 + 0.05, -1 - 0.05 + 0.1) = (0.85, -0.95) -> x = (0.185, -0.195)
    np.testing.assert_allclose(x, [0.185, -0.195], rtol=0, atol=EXACT)
    assert state == EmptyState()


def test_rmsprop_two_steps_by_hand():
    lr, rho, eps = 0.1, 0.9, 1e-8
    opt = rmsprop(lr, decay=rho, eps=eps)
    x = np.zeros(2)
    state = opt.init(x)
    for _ in range(2):
        u, state = opt.update(grad(x), state, x)
        x = apply_updates(x, u)

    # by hand, coordinate by coordinate
    x0 = x1 = 0.0
    nu0 = nu1 = 0.0
    for _ in range(2):
        g0, g1 = grad_by_hand(x0, x1)
        nu0 = rho * nu0 + (1 - rho) * g0 * g0
        nu1 = rho * nu1 + (1 - rho) * g1 * g1
        x0 += lr * g0 / (math.sqrt(nu0) + eps)
        x1 += lr * g1 / (math.sqrt(nu1) + eps)
    np.testing.assert_allclose(x, [x0, x1], rtol=0, atol=EXACT)
    np.testing.assert_allclose(state.nu, [nu0, nu1], rtol=0, atol=EXACT)
    # first step moves each coordinate by lr / sqrt(1 - rho) (up to eps)
    assert isinstance(state, RMSPropState)


def test_adam_two_steps_by_hand():
    lr, b1, b2, eps = 0.1, 0.9, 0.999, 1e-8
    opt = adam(lr, b1=b1, b2=b2, eps=eps)
    x = np.zeros(2)
    state = opt.init(x)
    for _ in range(2):
        u, state = opt.update(grad(x), state, x)
        x = apply_updates(x, u)

    # Step 1: g = (1, -1); m = 0.1 g, v = 0.001 g^2; m_hat = g, v_hat = g^2;
    # x1 = 0.1 * g / (1 + eps).
    s1 = 0.1 / (1.0 + eps)
    x_1 = (s1, -s1)
    # Step 2: g = b - A x_1.
    g = grad_by_hand(*x_1)
    m = [0.9 * 0.1 * 1.0 + 0.1 * g[0], 0.9 * 0.1 * -1.0 + 0.1 * g[1]]
    v = [0.999 * 0.001 * 1.0 + 0.001 * g[0] ** 2, 0.999 * 0.001 * 1.0 + 0.001 * g[1] ** 2]
    m_hat = [mi / (1 - 0.9**2) for mi in m]
    v_hat = [vi / (1 - 0.999**2) for vi in v]
    x_2 = [x_1[i] + lr * m_hat[i] / (math.sqrt(v_hat[i]) + eps) for i in range(2)]

    np.testing.assert_allclose(x, x_2, rtol=0, atol=EXACT)
    assert isinstance(state, AdamState)
    assert state.count == 2
    np.testing.assert_allclose(state.mu, m, rtol=0, atol=EXACT)
    np.testing.assert_allclose(state.nu, v, rtol=0, atol=EXACT)


@pytest.mark.parametrize("make", [lambda: scale(0.1), lambda: rmsprop(0.1), lambda: adam(0.1)])
def test_inputs_not_mutated(make):
    opt = make()
    x = np.array([0.3, -0.2])
    state = opt.init(x)
    state = opt.update(grad(x), state, x)[1]
    g = grad(x)
    g_copy, x_copy = g.copy(), x.copy()
    leaves = [np.array(s, copy=True) for s in state]
    opt.update(g, state, x)
    assert np.array_equal(g, g_copy) and np.array_equal(x, x_copy)
    for before, after in zip(leaves, state, strict=True):
        assert np.array_equal(before, np.asarray(after))


def test_rms_statistics_are_of_the_direction():
    """chain(natural, rmsprop): nu accumulates the natural direction, not the raw gradient."""
    F = np.diag([4.0, 0.25])
    opt = chain(natural_direction(), rmsprop(0.1, decay=0.3))
    x = np.zeros(2)
    state = opt.init(x)
    g = np.array([2.0, 1.0])
    _, state = opt.update(g, state, x, curvature=F)
    d = np.linalg.solve(F, g)
    np.testing.assert_allclose(state[1].nu, 0.7 * d**2, rtol=EXACT)


@pytest.mark.parametrize("lr", [0.0, -1.0, math.nan, math.inf])
@pytest.mark.parametrize("factory", [scale, rmsprop, adam])
def test_lr_validated(factory, lr):
    with pytest.raises(ValueError, match="lr"):
        factory(lr)


@pytest.mark.parametrize("decay", [0.0, 1.0, -0.1, 1.5, math.nan])
def test_decay_validated(decay):
    with pytest.raises(ValueError, match="decay"):
        rmsprop(0.1, decay=decay)


def test_adam_betas_and_eps_validated():
    with pytest.raises(ValueError, match="b1"):
        adam(0.1, b1=1.0)
    with pytest.raises(ValueError, match="b2"):
        scale_by_adam(b2=-0.5)
    with pytest.raises(ValueError, match="eps"):
        adam(0.1, eps=0.0)
    with pytest.raises(TypeError, match="lr"):
        scale("0.1")


@pytest.mark.parametrize(
    "make",
    [
        lambda: scale(0.1),
        lambda: rmsprop(0.1),
        lambda: adam(0.1),
        identity_direction,
    ],
)
def test_grads_validated(make):
    opt = make()
    x = np.zeros(2)
    state = opt.init(x)
    with pytest.raises(ValueError, match="grads"):
        opt.update(np.array([1.0, np.nan]), state, x)
    with pytest.raises(ValueError, match="grads"):
        opt.update(np.ones(3), state, x)
    with pytest.raises(ValueError, match="grads"):
        opt.update(np.ones((2, 1)), state, x)


def test_stateful_rules_check_size_without_params():
    opt = adam(0.1)
    state = opt.init(np.zeros(2))
    with pytest.raises(ValueError, match="grads"):
        opt.update(np.ones(3), state)


def test_init_validates_params():
    with pytest.raises(ValueError, match="params"):
        adam(0.1).init(np.zeros((2, 2)))
    with pytest.raises(ValueError, match="params"):
        scale(0.1).init(np.array([np.inf]))


@pytest.mark.parametrize(
    ("scaled", "plain"),
    [
        (lambda: scale_by_adam(b1=0.8, b2=0.99, eps=1e-3), lambda: adam(0.37, b1=0.8, b2=0.99, eps=1e-3)),
        (lambda: scale_by_rmsprop(decay=0.7, eps=1e-3), lambda: rmsprop(0.37, decay=0.7, eps=1e-3)),
    ],
    ids=["adam", "rmsprop"],
)
def test_scale_by_rules_carry_no_learning_rate(scaled, plain):
    """optax meaning: chain(scale_by_x(), scale(lr)) is x(lr); scale_by_x alone has lr = 1."""
    a, b = chain(scaled(), scale(0.37)), plain()
    x = np.array([0.3, -0.2, 1.1])
    sa, sb = a.init(x), b.init(x)
    for k in range(4):
        g = np.array([1.0, -2.5, 0.3]) * (k + 1)
        ua, sa = a.update(g, sa, x)
        ub, sb = b.update(g, sb, x)
        np.testing.assert_allclose(ua, ub, rtol=1e-15, atol=0)
        assert not np.allclose(ua, ua / 0.37)
    # a learning rate passed positionally (the pre-optax signature) is refused, not taken as b1
    with pytest.raises(TypeError):
        scale_by_adam(0.1)
    with pytest.raises(TypeError):
        scale_by_rmsprop(0.1)


@pytest.mark.parametrize("make", [lambda: adam(0.1), lambda: rmsprop(0.1), scale_by_adam])
def test_moment_overflow_is_an_error_not_a_frozen_coordinate(make):
    opt = make()
    x = np.zeros(2)
    with pytest.raises(FloatingPointError, match="overflow"):
        opt.update(np.array([1e200, 1.0]), opt.init(x), x)
