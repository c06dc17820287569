"""A JAX port of the small VAE (Tang & Ranganath 2019, Section 5.2): F_r and block-diagonal K-FAC.

Written from the paper and the fixture manifest alone: this process never imports refvpng. It
reads the golden fixture ``vae_chain`` (numpy + json), rebuilds the network from the manifest's
``model`` and ``packing`` entries, and computes with jax (float64)

- the ELBO (Eq 1, exact KL) and its reparameterisation gradient,
- the variational predictive Fisher exact in x' (sum_i mean_s J^T Lambda J, Sec 3.3) and its
  Monte Carlo form with the M predictive samples (Eq 16),
- the K-FAC factors of every layer from the Eq 16 rows: A_l = mean of a_bar a_bar^T
  (a_bar = [layer input; 1]) and G_l = sum_r g g^T / (S M) (g = d log p(x'|t) / d pre-activation),
  the dense block-diagonal approximation blockdiag((A_l + sqrt(gamma) I) kron (G_l + sqrt(gamma) I))
  and its solve of the ELBO gradient,

writes them to ``OUT/vae_chain.npz`` and compares them with the fixture itself.

Usage::

    python examples/jax_vae_port.py [FIXTURE_DIR] [--out OUT_DIR]

Conventions that matter (docs/porting.md): flax stores Dense kernels as (in, out), refvpng packs
W (out, in) column-major followed by b, so a layer block of eta is vec([W, b]) and the Kronecker
order is A (input) kron G (output).
"""

from __future__ import annotations

import sys

import jax
import numpy as np

jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp  # noqa: E402
from _fixtures import run_port  # noqa: E402  (examples/_fixtures.py: numpy + json only)


def unpack(eta, packing):
    """{block name: array}; every block is stored column-major ("F")."""
    out = {}
    for b in packing["blocks"]:
        flat = eta[b["start"] : b["stop"]]
        shape = tuple(b["shape"])
        out[b["name"]] = (
            flat.reshape(shape[::-1]).T if b["order"] == "F" and len(shape) == 2 else flat.reshape(shape)
        )
    return out


def layer_names(spec):
    """Layer prefixes of the encoder and decoder, in chain order."""
    enc = [f"encoder.layer{k}" for k in range(1, len(spec["encoder_sizes"]))]
    dec = [f"decoder.layer{k}" for k in range(1, len(spec["decoder_sizes"]))]
    return enc, dec


def forward(eta, x, eps, spec, packing, deltas=None):
    """Logits t, the homogeneous inputs a_bar of every layer, and (mu, sigma).

    ``deltas`` (zeros) are added to the pre-activations, so that d loss / d deltas = g.
    """
    params = unpack(eta, packing)
    act = jnp.tanh if spec["activation"] == "tanh" else jax.nn.relu
    enc, dec = layer_names(spec)
    a_bars, k = [], 0

    def mlp(h, names):
        nonlocal k
        for j, name in enumerate(names):
            a_bars.append(jnp.concatenate([h, jnp.ones(h.shape[:-1] + (1,))], axis=-1))
            s = h @ params[name + ".W"].T + params[name + ".b"]
            if deltas is not None:
                s = s + deltas[k]
            k += 1
            h = s if j == len(names) - 1 else act(s)
        return h

    dz = spec["decoder_sizes"][0]
    h = mlp(x, enc)
    mu, raw = h[..., :dz], h[..., dz:]
    sigma = jnp.logaddexp(raw, 0.0) + spec["floor"]
    z = mu + sigma * eps
    return mlp(z, dec), a_bars, (mu, sigma)


def log_bernoulli(x, t):
    """Bernoulli log p(x | t) of logits t (no thresholded softplus)."""
    return x * t - jnp.logaddexp(t, 0.0)


def port(manifest, arrays):
    """Every quantity of the port, keyed like the fixture outputs."""
    spec, packing, hyper = manifest["model"], manifest["packing"], manifest["hyperparameters"]
    eta, x, eps, x_pred = (jnp.asarray(arrays[k]) for k in ("eta", "x", "eps", "x_pred"))
    s_count, m_count, n, d = x_pred.shape

    def elbo(e):
        t, _, (mu, sigma) = forward(e, x[None], eps, spec, packing)  # eps (S, n, dz)
        ll = log_bernoulli(x[None], t).sum(axis=(1, 2)).mean()
        kl = (-jnp.log(sigma[0]) + (sigma[0] ** 2 + mu[0] ** 2) / 2 - 0.5).sum()  # prior N(0, I)
        return ll - kl

    value, grad = jax.value_and_grad(elbo)(eta)

    def logits(e):
        return forward(e, x[None], eps, spec, packing)[0]  # (S, n, d)

    t = logits(eta)
    jac = jax.jacfwd(logits)(eta)  # (S, n, d, P)
    lam = jax.nn.sigmoid(t) * jax.nn.sigmoid(-t)
    f_exact = jnp.einsum("sno,snop,snoq->pq", lam, jac, jac) / s_count

    # Eq 16 rows in the order (s, k, i), i fastest; weights 1 / (S M)
    x_rows = jnp.broadcast_to(x, (s_count, m_count, n, d)).reshape(-1, d)
    eps_rows = jnp.broadcast_to(eps[:, None], (s_count, m_count) + eps.shape[1:]).reshape(x_rows.shape[0], -1)
    xp_rows = x_pred.reshape(-1, d)

    def row_loglik(e, deltas=None):
        t_r, a_bars, _ = forward(e, x_rows, eps_rows, spec, packing, deltas)
        return log_bernoulli(xp_rows, t_r).sum(), a_bars

    scores = jax.jacrev(
        lambda e: log_bernoulli(xp_rows, forward(e, x_rows, eps_rows, spec, packing)[0]).sum(-1)
    )(eta)
    f_mc = scores.T @ scores / (s_count * m_count)

    _, a_bars = row_loglik(eta)
    widths = list(spec["encoder_sizes"][1:]) + list(spec["decoder_sizes"][1:])
    zeros = [jnp.zeros((x_rows.shape[0], w)) for w in widths]
    gs = jax.grad(lambda dl: row_loglik(eta, dl)[0])(zeros)
    w = 1.0 / (s_count * m_count)
    out = {"elbo": np.asarray(value), "elbo_grad": np.asarray(grad), "vp_fisher_exact": np.asarray(f_exact)}
    out["vp_fisher_mc"] = np.asarray(f_mc)
    root = np.sqrt(hyper["kfac_damping"])
    blocks, direction, pos = [], [], 0
    for k, (a, g) in enumerate(zip(a_bars, gs, strict=True)):
        big_a = a.T @ a / a.shape[0]  # weighted MEAN over rows
        big_g = w * g.T @ g  # weighted SUM over rows
        out[f"kfac.A.{k}"], out[f"kfac.G.{k}"] = np.asarray(big_a), np.asarray(big_g)
        da, dg = big_a + root * jnp.eye(len(big_a)), big_g + root * jnp.eye(len(big_g))
        blocks.append(jnp.kron(da, dg))  # A (input) kron G (output)
        size = len(big_a) * len(big_g)
        v = grad[pos : pos + size].reshape(len(big_a), len(big_g)).T  # column-major vec^-1: (out, in+1)
        direction.append(jnp.linalg.solve(dg, jnp.linalg.solve(da, v.T).T).T.reshape(-1))
        pos += size
    out["kfac_blockdiag_dense"] = np.asarray(jax.scipy.linalg.block_diag(*blocks))
    out["kfac_blockdiag_direction"] = np.asarray(jnp.concatenate(direction))
    return out


def main(argv=None) -> int:
    """Run the port on its fixtures, write OUT/<fixture>.npz, return 0 if all agree."""
    return run_port(port, ("vae_chain",), __doc__.split("\n")[0], argv)


if __name__ == "__main__":
    sys.exit(main())
