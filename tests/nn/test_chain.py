"""The VAE chain of Section 5.2: forward, backward and Jacobians against an independent autograd build."""

from __future__ import annotations

import autograd.numpy as anp
import numpy as np
import pytest
from autograd import grad
from autograd import jacobian as ag_jacobian
from hypothesis import given, settings
from hypothesis import strategies as st

from refvpng.nn import MLP, Chain, per_example_gradients

GRAD_RTOL = 1e-10


def _close(a, b, rtol=GRAD_RTOL):
    a, b = np.asarray(a), np.asarray(b)
    scale = max(np.max(np.abs(b)), 1.0)
    np.testing.assert_allclose(a, b, rtol=0, atol=rtol * scale)


def _act(name, s):
    if name == "relu":
        return anp.maximum(s, 0.0)
    if name == "tanh":
        return anp.tanh(s)
    return s


def ag_mlp(params, x, sizes, activation, deltas):
    a, k = x, 0
    n_layers = len(sizes) - 1
    for layer, (i, o) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        block = params[k : k + o * (i + 1)]
        k += o * (i + 1)
        w = anp.stack([block[j * o : (j + 1) * o] for j in range(i + 1)], axis=1)
        s = anp.dot(a, w[:, :-1].T) + w[:, -1] + deltas[layer]
        a = s if layer == n_layers - 1 else _act(activation, s)
    return a


def ag_chain(chain, eta, x, eps, deltas=None):
    """Independent autograd forward of the chain; ``deltas`` perturb every pre-activation."""
    enc, dec = chain.encoder, chain.decoder
    if deltas is None:
        deltas = [0.0] * (enc.num_layers + dec.num_layers)
    lam, theta = eta[: enc.num_params], eta[enc.num_params :]
    h = ag_mlp(lam, x, enc.sizes, enc.activation, deltas[: enc.num_layers])
    dz = chain.d_z
    z = h[:, :dz] + (anp.logaddexp(0.0, h[:, dz:]) + chain.floor) * eps
    return ag_mlp(theta, z, dec.sizes, dec.activation, deltas[enc.num_layers :])


CASES = [
    # name, encoder sizes, decoder sizes, activation
    ("minimal", (2, 2), (1, 2), "relu"),
    ("vae-6layer", (5, 4, 3, 4), (2, 3, 4, 5), "relu"),
    ("tanh-asym", (3, 4, 6), (3, 2), "tanh"),
    ("identity", (3, 2), (1, 3, 3), "identity"),
]


def _problem(enc, dec, act, n, seed):
    rng = np.random.default_rng(seed)
    chain = Chain.from_sizes(enc, dec, act)
    eta = rng.standard_normal(chain.num_params) * 0.7
    x = (rng.random((n, chain.d_x)) < 0.5).astype(float)
    eps = rng.standard_normal((n, chain.d_z))
    return chain, eta, x, eps, rng


@st.composite
def chain_problems(draw):
    dz = draw(st.integers(1, 2))
    dx = draw(st.integers(1, 4))
    enc_hidden = draw(st.lists(st.integers(1, 3), max_size=2))
    dec_hidden = draw(st.lists(st.integers(1, 3), max_size=2))
    act = draw(st.sampled_from(["relu", "tanh", "identity"]))
    n = draw(st.integers(1, 3))
    seed = draw(st.integers(0, 2**31 - 1))
    return (dx, *enc_hidden, 2 * dz), (dz, *dec_hidden, dx), act, n, seed


def _check_backward(chain, eta, x, eps, rng):
    t, cache = chain.forward(eta, x, eps)
    _close(t, ag_chain(chain, eta, x, eps))
    c = rng.standard_normal(t.shape)
    g = chain.backward(cache, c)

    def loss(e, xx, deltas=None):
        return anp.sum(ag_chain(chain, e, xx, eps, deltas) * c)

    _close(g.eta, grad(loss, 0)(eta, x))
    _close(g.input, grad(loss, 1)(eta, x))
    shapes = chain.layer_shapes
    assert len(g.pairs) == len(shapes)
    deltas = [np.zeros((x.shape[0], o)) for o, _ in shapes]
    g_ag = grad(lambda d: loss(eta, x, d))(deltas)
    for (a_bar, gl), ref, (o, i) in zip(g.pairs, g_ag, shapes, strict=True):
        assert a_bar.shape == (x.shape[0], i) and gl.shape == (x.shape[0], o)
        _close(gl, ref)
    _close(per_example_gradients(g.pairs).sum(0), g.eta, 1e-12)
    # the decoder's first layer input is [z, 1]
    np.testing.assert_allclose(g.pairs[chain.encoder.num_layers][0][:, :-1], cache.z, atol=0)


@pytest.mark.parametrize(("enc", "dec", "act"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_chain_backward_matches_autograd_cases(enc, dec, act):
    _check_backward(*_problem(enc, dec, act, 3, 1))


@settings(max_examples=20, deadline=None)
@given(chain_problems())
def test_chain_backward_matches_autograd(problem):
    _check_backward(*_problem(*problem))


@settings(max_examples=15, deadline=None)
@given(chain_problems())
def test_jacobian_matches_autograd(problem):
    chain, eta, x, eps, _ = _problem(*problem)
    jac = chain.jacobian(eta, x[0], eps[0])
    ref = ag_jacobian(lambda e: ag_chain(chain, e, x[:1], eps[:1])[0])(eta)
    assert jac.shape == (chain.d_out, chain.num_params)
    _close(jac, ref)


def test_split_and_layer_order():
    chain = Chain.from_sizes((3, 4, 2), (1, 2, 3))
    eta = np.arange(chain.num_params, dtype=float)
    lam, theta = chain.split(eta)
    assert lam.size == chain.encoder.num_params and theta.size == chain.decoder.num_params
    np.testing.assert_array_equal(np.concatenate([lam, theta]), eta)
    assert chain.layer_shapes == ((4, 4), (2, 5), (2, 2), (3, 3))


def test_bad_inputs_name_the_argument():
    chain, eta, x, eps, _ = _problem((3, 2), (1, 3), "relu", 2, 0)
    with pytest.raises(ValueError, match="eta"):
        chain.forward(eta[:-1], x, eps)
    with pytest.raises(ValueError, match="x"):
        chain.forward(eta, x[:, :2], eps)
    with pytest.raises(ValueError, match="eps"):
        chain.forward(eta, x, eps[:1])
    with pytest.raises(ValueError, match="eps"):
        chain.forward(eta, x, np.full_like(eps, np.nan))
    with pytest.raises(ValueError, match="x"):
        chain.forward(eta, np.full_like(x, np.inf), eps)
    _, cache = chain.forward(eta, x, eps)
    with pytest.raises(ValueError, match="d_t"):
        chain.backward(cache, np.zeros((2, 2)))
    with pytest.raises(ValueError, match="x_i"):
        chain.jacobian(eta, x, eps[0])
    with pytest.raises(ValueError, match="eps_i"):
        chain.jacobian(eta, x[0], eps)
    with pytest.raises(ValueError, match="d_enc"):
        chain.backward(cache, np.zeros((2, 3)), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="encoder"):
        Chain(MLP((3, 3)), MLP((1, 3)))
    with pytest.raises(ValueError, match="floor"):
        Chain(MLP((3, 2)), MLP((1, 3)), floor=-1.0)


# ---------------------------------------------------------------- validation (issue 11)


def test_from_sizes_names_the_bad_argument():
    for bad in (None, "34", 3):
        with pytest.raises(TypeError, match="^encoder_sizes must be a sequence"):
            Chain.from_sizes(bad, (1, 3, 3), "tanh")
    with pytest.raises(ValueError, match="^decoder_sizes must have at least 2 entries"):
        Chain.from_sizes((3, 4, 2), (), "tanh")
    with pytest.raises(ValueError, match="activation"):
        Chain.from_sizes((3, 4, 2), (1, 3, 3), "no-such-activation")


def test_forward_backward_jacobian_reject_and_name():
    chain = Chain.from_sizes((3, 4, 2), (1, 3, 3), "tanh", floor=0.01)
    rng = np.random.default_rng(3)
    eta, x, eps = chain.init(rng), rng.standard_normal((2, 3)), rng.standard_normal((2, 1))
    with pytest.raises(ValueError, match="one row per row of x"):
        chain.forward(eta, x[:0], eps)
    with pytest.raises(TypeError, match="cache must be the ChainCache"):
        chain.backward(None, np.ones((2, 3)))
    # finite but extreme parameters: the activations overflow -> an error naming the method
    with pytest.raises(FloatingPointError, match="^forward: "):
        chain.forward(np.full_like(eta, 1e300), x, eps)
    with pytest.raises(FloatingPointError, match="^jacobian: "):
        chain.jacobian(np.full_like(eta, 1e300), x[0], eps[0])
