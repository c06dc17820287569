"""MLP forward/backward against an independent autograd build."""

from __future__ import annotations

import autograd.numpy as anp
import numpy as np
import pytest
from autograd import grad
from hypothesis import given, settings
from hypothesis import strategies as st

from refvpng.nn import MLP, per_example_gradients

GRAD_RTOL = 1e-10  # hand-written backward vs autograd, relative to the largest entry


def _close(a, b, rtol=GRAD_RTOL):
    a, b = np.asarray(a), np.asarray(b)
    scale = max(np.max(np.abs(b)), 1.0) if b.size else 1.0
    np.testing.assert_allclose(a, b, rtol=0, atol=rtol * scale)


def _act(name, s):
    if name == "relu":
        return anp.maximum(s, 0.0)
    if name == "tanh":
        return anp.tanh(s)
    return s


def ag_mlp(params, x, sizes, activation, deltas=None):
    """Independent autograd MLP; W_bar[o, j] = params[offset + j * d_out + o] (column-major)."""
    a, k = x, 0
    n_layers = len(sizes) - 1
    for layer, (i, o) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        block = params[k : k + o * (i + 1)]
        k += o * (i + 1)
        w = anp.stack([block[j * o : (j + 1) * o] for j in range(i + 1)], axis=1)  # (o, i+1)
        s = anp.dot(a, w[:, :-1].T) + w[:, -1]
        if deltas is not None:
            s = s + deltas[layer]
        a = s if layer == n_layers - 1 else _act(activation, s)
    return a


CASES = [
    ("one-layer", (3, 2), "relu"),
    ("relu-2hidden", (4, 5, 3, 2), "relu"),
    ("tanh", (2, 3, 4), "tanh"),
    ("identity", (3, 3, 1), "identity"),
]


@st.composite
def mlp_problems(draw):
    sizes = tuple(draw(st.lists(st.integers(1, 4), min_size=2, max_size=4)))
    activation = draw(st.sampled_from(["relu", "tanh", "identity"]))
    n = draw(st.integers(1, 4))
    seed = draw(st.integers(0, 2**31 - 1))
    return sizes, activation, n, seed


def _setup(sizes, activation, n, seed):
    rng = np.random.default_rng(seed)
    net = MLP(sizes, activation)
    params = rng.standard_normal(net.num_params)
    x = rng.standard_normal((n, sizes[0]))
    c = rng.standard_normal((n, sizes[-1]))
    return net, params, x, c


def _check_against_autograd(net, params, x, c):
    sizes, act = net.sizes, net.activation
    out, cache = net.forward(params, x)
    _close(out, ag_mlp(params, x, sizes, act))
    g = net.backward(cache, c)

    def loss(p, xx, deltas=None):
        return anp.sum(ag_mlp(p, xx, sizes, act, deltas) * c)

    _close(g.params, grad(loss, 0)(params, x))
    _close(g.input, grad(loss, 1)(params, x))
    deltas = [np.zeros((x.shape[0], o)) for o in sizes[1:]]
    g_ag = grad(lambda d: loss(params, x, d))(deltas)
    for mine, ref in zip(g.g, g_ag, strict=True):
        _close(mine, ref)
    # pairs: layer inputs in homogeneous coordinates, per-row gradients sum to the batch gradient
    for (a_bar, gl), gg in zip(g.pairs, g.g, strict=True):
        np.testing.assert_array_equal(a_bar[:, -1], 1.0)
        assert gl is gg
    _close(per_example_gradients(g.pairs).sum(0), g.params, 1e-12)


@pytest.mark.parametrize(("sizes", "activation"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_mlp_backward_matches_autograd_cases(sizes, activation):
    _check_against_autograd(*_setup(sizes, activation, 3, 0))


@settings(max_examples=25, deadline=None)
@given(mlp_problems())
def test_mlp_backward_matches_autograd(problem):
    _check_against_autograd(*_setup(*problem))


@settings(max_examples=25, deadline=None)
@given(mlp_problems())
def test_pack_unpack_roundtrip_and_column_major(problem):
    sizes, activation, _, seed = problem
    net = MLP(sizes, activation)
    params = np.random.default_rng(seed).standard_normal(net.num_params)
    ws = net.unpack(params)
    np.testing.assert_array_equal(net.pack(ws), params)
    k = 0
    for w, (o, i) in zip(ws, net.layer_shapes, strict=True):
        assert w.shape == (o, i)
        # documented convention: W_bar[o, j] at offset j * d_out + o of the layer's block
        for oo in range(o):
            for j in range(i):
                assert w[oo, j] == params[k + j * o + oo]
        k += o * i


def test_per_example_gradient_block_is_kron_a_g():
    rng = np.random.default_rng(3)
    a_bar, g = rng.standard_normal((2, 4)), rng.standard_normal((2, 3))
    b = per_example_gradients([(a_bar, g)])
    for r in range(2):
        np.testing.assert_allclose(b[r], np.kron(a_bar[r], g[r]), rtol=0, atol=1e-15)
        np.testing.assert_allclose(b[r], np.outer(g[r], a_bar[r]).ravel(order="F"), atol=1e-15)


def test_init_shapes_and_determinism():
    net = MLP((5, 3, 2))
    p1 = net.init(np.random.default_rng(0))
    p2 = net.init(np.random.default_rng(0))
    np.testing.assert_array_equal(p1, p2)
    assert p1.shape == (net.num_params,) == ((5 + 1) * 3 + (3 + 1) * 2,)


def test_bad_inputs_name_the_argument():
    net = MLP((3, 2, 2))
    params = np.zeros(net.num_params)
    with pytest.raises(ValueError, match="params"):
        net.forward(params[:-1], np.zeros((1, 3)))
    with pytest.raises(ValueError, match="x"):
        net.forward(params, np.zeros((1, 4)))
    with pytest.raises(ValueError, match="x"):
        net.forward(params, np.full((1, 3), np.nan))
    with pytest.raises(ValueError, match="params"):
        net.forward(np.full(net.num_params, np.inf), np.zeros((1, 3)))
    _, cache = net.forward(params, np.zeros((2, 3)))
    with pytest.raises(ValueError, match="d_out"):
        net.backward(cache, np.zeros((1, 2)))
    with pytest.raises(ValueError, match="d_out"):
        net.backward(cache, np.full((2, 2), np.nan))
    with pytest.raises(ValueError, match="sizes"):
        MLP((3,))
    with pytest.raises(ValueError, match="sizes"):
        MLP((3, 0, 1))
    with pytest.raises(ValueError, match="activation"):
        MLP((3, 1), "sigmoid")
    with pytest.raises(ValueError, match="weights"):
        net.pack([np.zeros((2, 4))])
    with pytest.raises(ValueError, match="pairs"):
        per_example_gradients([(np.zeros((2, 3)), np.zeros((3, 1)))])


# ---- validation (issue 11)


def test_apply_init_and_backward_check_plain_arguments():
    from refvpng.nn.mlp import MLP

    net = MLP((3, 4, 2), "tanh")
    params = net.init(np.random.default_rng(0))
    with pytest.raises(ValueError, match="params must have shape"):
        net.apply(params[:-1], np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"x must have shape \(\.\.\., 3\)"):
        net.apply(params, np.ones((2, 4)))
    with pytest.raises(TypeError, match="rng must be a numpy.random.Generator"):
        net.init(np.random.RandomState(0))
    with pytest.raises(ValueError, match="bias_scale must be finite"):
        net.init(np.random.default_rng(0), bias_scale=np.inf)
    with pytest.raises(TypeError, match="cache must be the MLPCache"):
        net.backward(None, np.ones((2, 2)))
    with np.errstate(all="ignore"), pytest.raises(FloatingPointError, match="apply"):
        net.apply(np.full_like(params, 1e308), np.ones((2, 3)))
