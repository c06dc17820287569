r"""Forward and backward passes of the fused VAE step (:func:`refvpng.nn.vae.vae_step`).

Private helpers on checked arrays: the encoder on :math:`n` rows and the decoder on :math:`S n`
rows (:func:`forward`), back-propagation of output rows through an MLP (:func:`dec_backprop`,
and :func:`backprop_rows` for :math:`S n` rows whose activations repeat over the samples), and
the exact expected last output factor of the ``output_diag`` option (:func:`output_diag_factor`).
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit

from refvpng.nn._poisson_kernel import _log_rate_and_ratio
from refvpng.nn.chain import Chain


def _with_ones(a, bias=True):
    if not bias:
        return a
    out = np.empty((a.shape[0], a.shape[1] + 1))
    out[:, :-1] = a
    out[:, -1] = 1.0
    return out


def mlp_forward(weights, a, bias=True):
    """Affine layers with ReLU between them; return the inputs ``[a, 1]`` (or ``a``) and pre-activations."""
    ins, pre = [], []
    for k, w in enumerate(weights):
        ab = _with_ones(a, bias)
        s = ab @ w.T
        ins.append(ab)
        pre.append(s)
        a = s if k == len(weights) - 1 else np.maximum(s, 0.0)
    return ins, pre, a


def forward(chain: Chain, eta, x, eps):
    """Run the encoder on n rows and the decoder on S n rows; return what the passes need."""
    lam, theta = chain.split(eta)
    w_enc = chain.encoder.unpack(lam)
    w_dec = chain.decoder.unpack(theta)
    n, dz = x.shape[0], chain.d_z
    enc_in, enc_s, h = mlp_forward(w_enc, x)
    mu, sraw = h[:, :dz], h[:, dz:]
    sigma = np.logaddexp(0.0, sraw) + chain.floor
    z = (mu[None] + sigma[None] * eps).reshape(eps.shape[0] * n, dz)
    dec_in, dec_s, t = mlp_forward(w_dec, z, chain.decoder.bias)
    return w_enc, w_dec, enc_in, enc_s, dec_in, dec_s, mu, sraw, sigma, t


def dec_backprop(w_dec, dec_s, g_out, sizes, want_input=True):
    """Per-layer g of the decoder (chain order) and dL/dz, in the dtype of ``g_out``; ``sizes``: widths."""
    gs = [None] * len(w_dec)
    g = g_out
    dt = g_out.dtype
    for k in range(len(w_dec) - 1, -1, -1):
        gs[k] = g
        w = w_dec[k][:, : sizes[k]].astype(dt, copy=False)
        if k > 0:
            g = g @ w
            g *= dec_s[k - 1] > 0.0
        elif want_input:
            g = g @ w
    return gs, g


def backprop_rows(weights, pre, g_out, s_count, sizes, want_input=False):
    """Back-propagate S n rows through an MLP whose activations (n rows) repeat over the S samples.

    ``sizes`` are the layer input widths (the weight columns without the bias). Returns the
    per-layer g (chain order) and, if ``want_input``, the gradient at the input (else ``None``).
    """
    n = pre[0].shape[0]
    gs = [None] * len(weights)
    g = g_out
    for k in range(len(weights) - 1, -1, -1):
        gs[k] = g
        w = weights[k][:, : sizes[k]].astype(g_out.dtype, copy=False)
        if k > 0:
            g = g @ w
            g.reshape(s_count, n, -1)[...] *= (pre[k - 1] > 0.0)[None]
        elif want_input:
            g = g @ w
    return gs, (g if want_input else None)


def output_diag_factor(family: str, curvature: str, t_rows, sigma, sig_sraw) -> np.ndarray:
    r"""The exact expected last output factor (diagonal), per data point.

    ``"q"``: the mean over the :math:`n` points of :math:`\operatorname{diag}(1/\sigma^2,\
    2\operatorname{sigmoid}(\sigma_{raw})^2/\sigma^2)`, the expectation over :math:`\varepsilon`
    of the q-score rows' outer products. ``"vp"``/``"dec"``: the mean over the factor rows
    ``t_rows`` of the expected squared predictive score, :math:`p(1-p)` (Bernoulli,
    :math:`p = \operatorname{sigmoid}(t)`) or :math:`\operatorname{sigmoid}(t)^2 / r`
    (softplus Poisson, :math:`r = \operatorname{softplus}(t)`).
    """
    if curvature == "q":
        d = np.concatenate([1.0 / sigma**2, 2.0 * (sig_sraw / sigma) ** 2], axis=1).mean(axis=0)
    elif family == "bernoulli":
        p = expit(t_rows)
        d = (p * (1.0 - p)).mean(axis=0)
    else:
        _, _, sig, ratio = _log_rate_and_ratio(t_rows)
        d = (sig * ratio).mean(axis=0)
    return np.diag(d)
