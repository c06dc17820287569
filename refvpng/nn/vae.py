r"""The fused VAE training step of Sections 5.2-5.3: ELBO, gradient and K-FAC factors in one pass.

The VAE is a :class:`refvpng.nn.Chain` (:func:`make_vae`) with Bernoulli logits out and prior
:math:`p(z) = N(0, I)`; the same step serves the variational Poisson matrix factorisation of
Section 5.3 (:func:`refvpng.nn.vmf.make_vmf`: a chain whose decoder is one linear layer without
bias, a softplus-link Poisson likelihood, ``likelihood=Poisson("softplus")``).
For a minibatch :math:`x_{1:n}` and noise :math:`\varepsilon_{si}`, :math:`s = 1..S`,
:func:`vae_step` returns the **per-data-point** ELBO estimate

.. math::
    \hat{\mathcal L} = \frac{1}{n} \sum_{i=1}^n \Big[\frac{1}{S} \sum_{s=1}^S
    \log p(x_i \mid z_{si}; \theta) - \mathrm{KL}(q(z \mid x_i; \lambda) \,\|\, p(z))\Big],

(KL exact), its gradient and, from the same forward pass, the Kronecker factors of the
variational predictive Fisher :math:`\hat F_r` (Eq. 16), of the q-Fisher, or of the decoder
Fisher, all **per data point**: :math:`A_l \otimes G_l` approximates :math:`\hat F_r / n`. The
input factors :math:`A_l` equal those of :func:`refvpng.curvature.kfac.kfac_factors` (weighted
means); the output factors are :math:`G_l = G^{\mathrm{sum}}_l / n` with :math:`G^{\mathrm{sum}}`
the sum over data points (mean over samples) that every other Fisher of refvpng uses. Damping
applied to these factors is therefore a per-data-point quantity.

Encoder inputs and activations do not depend on :math:`\varepsilon`, so the encoder runs once
per data point (:math:`n` rows) and its input factors come from those :math:`n` rows; the
decoder runs on :math:`S n` rows, row :math:`r = s n + i` being sample :math:`s` of point
:math:`i`. This is exact, and tested against the generic chain estimators.

References
----------
.. [1] Y. Tang and R. Ranganath, "The Variational Predictive Natural Gradient", ICML 2019,
   Eqs. (15)-(17) and Section 5.2.
.. [2] J. Martens and R. Grosse, "Optimizing neural networks with Kronecker-factored
   approximate curvature", ICML 2015.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike, DTypeLike
from scipy.special import expit

from refvpng._checks import (
    as_array,
    as_finite_scalar,
    as_int,
    as_positive_scalar,
    check_bool,
    check_finite_output,
    check_rng,
    finite_output,
)
from refvpng.curvature.kfac import KFACFactors
from refvpng.models.likelihoods import Bernoulli, Poisson
from refvpng.nn._bernoulli_kernel import (
    bernoulli_terms,
    bernoulli_terms_numba,
    check_uniforms,
    real_array,
    terms_numba,
    terms_numpy,
)
from refvpng.nn._poisson_kernel import (
    poisson_terms,
    poisson_terms_numba,
    poisson_terms_numba_checked,
    poisson_terms_numpy,
)
from refvpng.nn._vae_passes import backprop_rows, dec_backprop, forward, output_diag_factor
from refvpng.nn.chain import Chain

__all__ = [
    "CURVATURES",
    "VAEStep",
    "bernoulli_terms",
    "bernoulli_terms_numba",
    "cross_gram",
    "gram",
    "make_vae",
    "poisson_terms",
    "poisson_terms_numba",
    "truncated_normal_init",
    "vae_elbo",
    "vae_step",
]

CURVATURES = (None, "vp", "q", "dec")
"""Values of ``curvature`` in :func:`vae_step`."""

_TERMS = {
    ("bernoulli", "numba"): terms_numba,
    ("bernoulli", "numpy"): terms_numpy,
    ("poisson", "numba"): poisson_terms_numba_checked,
    ("poisson", "numpy"): poisson_terms_numpy,
}
KERNELS = ("numba", "numpy")
"""Values of ``kernel`` in :func:`vae_step`: the fused numba terms or their NumPy specification."""


def make_vae(d_x: int = 784, hidden: int = 200, d_z: int = 100, floor: float = 1e-4) -> Chain:
    r"""Build the paper's VAE: encoder ``d_x -> hidden -> hidden -> 2 d_z``, mirrored decoder.

    ReLU hidden units, :math:`\sigma = \operatorname{softplus}(\sigma_{raw}) + \sigma_{floor}`.

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
    d_x, hidden, d_z = as_int(d_x, "d_x"), as_int(hidden, "hidden"), as_int(d_z, "d_z")
    return Chain.from_sizes((d_x, hidden, hidden, 2 * d_z), (d_z, hidden, hidden, d_x), "relu", floor)


def truncated_normal_init(chain: Chain, rng: np.random.Generator, std: float = 0.1) -> np.ndarray:
    r"""Every weight and bias drawn from :math:`N(0, \mathrm{std}^2)` truncated at two std.

    The initialisation of Tang & Ranganath's public script (``tf.truncated_normal`` with
    ``stddev=0.1`` on every augmented matrix :math:`[W; b]`): values beyond two standard
    deviations are redrawn. An alternative to :meth:`refvpng.nn.Chain.init` for any chain.

    Parameters
    ----------
    chain : Chain
    rng : numpy.random.Generator
    std : float, default 0.1

    Returns
    -------
    ndarray, shape (P,)

    Raises
    ------
    ValueError, TypeError
        Naming the argument: ``chain`` not a :class:`Chain`, ``rng`` not a Generator, ``std``
        not a positive finite number.

    Examples
    --------
    >>> eta = truncated_normal_init(make_vae(6, 4, 2), np.random.default_rng(0))
    >>> eta.shape, bool(np.abs(eta).max() <= 0.2)
    ((130,), True)
    """
    if not isinstance(chain, Chain):
        raise TypeError(f"chain must be a refvpng.nn.Chain, got {type(chain).__name__}")
    rng = check_rng(rng)
    std = as_positive_scalar(std, "std")
    out = rng.standard_normal(chain.num_params)
    bad = np.abs(out) > 2.0
    while bad.any():
        out[bad] = rng.standard_normal(int(bad.sum()))
        bad = np.abs(out) > 2.0
    return check_finite_output(std * out, "truncated_normal_init")


class VAEStep(NamedTuple):
    r"""What :func:`vae_step` returns.

    Attributes
    ----------
    value : float
        :math:`\hat{\mathcal L}`, the per-data-point ELBO estimate (nats per image).
    grad : ndarray, shape (P,)
        :math:`\nabla_{\lambda,\theta} \hat{\mathcal L}`.
    factors_per_point : KFACFactors or None
        Kronecker factors of the requested curvature **per data point** (sum over points
        divided by :math:`n`: the ``G`` and ``G_cross`` factors are those of
        :func:`refvpng.curvature.kfac.kfac_factors` with weights :math:`1/M` divided by
        :math:`n`, the ``A`` factors equal): all layers of :math:`\hat F_r / n`
        (``curvature="vp"``), the encoder layers of :math:`F_q / n` (``"q"``), the decoder
        layers of :math:`\hat F_r / n` (``"dec"``, the decoder Fisher of the two-step method),
        or ``None``.
    """

    value: float
    grad: np.ndarray
    factors_per_point: KFACFactors | None


def _check_chain(chain) -> Chain:
    if not isinstance(chain, Chain):
        raise TypeError(f"chain must be a refvpng.nn.Chain, got {type(chain).__name__}")
    if chain.d_out != chain.d_x:
        raise ValueError(
            f"chain must output one likelihood parameter per input entry, got d_out = {chain.d_out} "
            f"for d_x = {chain.d_x}"
        )
    if not chain.encoder.bias or chain.encoder.activation != "relu" or chain.decoder.activation != "relu":
        raise ValueError("the fused step needs a biased ReLU encoder and a ReLU decoder")
    return chain


def _family(likelihood) -> str:
    """``"bernoulli"`` or ``"poisson"`` for the likelihoods the fused step supports."""
    if likelihood is None or isinstance(likelihood, Bernoulli):
        return "bernoulli"
    if isinstance(likelihood, Poisson) and likelihood.link == "softplus":
        return "poisson"
    raise TypeError(f"likelihood must be Bernoulli() or Poisson('softplus'), got {likelihood!r}")


def _check_data(chain: Chain, eta, x, eps):
    """Validate ``eta``, ``x`` and ``eps`` against ``chain``; return them as float64 arrays."""
    eta = real_array(eta, "eta", (chain.num_params,))
    x = real_array(x, "x", (None, chain.d_x))
    if x.shape[0] == 0:
        raise ValueError("x must hold at least one data point")
    eps = real_array(eps, "eps", (None, x.shape[0], chain.d_z))
    if eps.shape[0] == 0:
        raise ValueError("eps must hold at least one sample (S >= 1)")
    return eta, x, eps


def _check_kernel(kernel: str) -> str:
    if kernel not in KERNELS:
        raise ValueError(f"kernel must be 'numba' or 'numpy', got {kernel!r}")
    return kernel


def gram(a: ArrayLike, scale: float, dtype: DTypeLike) -> np.ndarray:
    r"""Return ``scale * a.T @ a`` computed in ``dtype`` and returned in float64.

    The Gram product behind every diagonal Kronecker factor of :func:`vae_step`.

    Examples
    --------
    >>> gram(np.array([[1.0, 2.0]]), 0.5, np.float64)
    array([[0.5, 1. ],
           [1. , 2. ]])
    """
    a, scale, dtype = _check_gram(a, "a", scale, dtype)
    a = a.astype(dtype, copy=False)
    return check_finite_output((a.T @ a).astype(np.float64) * scale, "gram")


def cross_gram(a: ArrayLike, b: ArrayLike, scale: float, dtype: DTypeLike) -> np.ndarray:
    """Return ``scale * a.T @ b`` computed in ``dtype`` and returned in float64 (cross factors)."""
    a, scale, dtype = _check_gram(a, "a", scale, dtype)
    b = as_array(b, "b", shape=(a.shape[0], None), dtype=None)
    out = (a.astype(dtype, copy=False).T @ b.astype(dtype, copy=False)).astype(np.float64) * scale
    return check_finite_output(out, "cross_gram")


def _check_gram(a, name, scale, dtype):
    """Validate a Gram operand (its dtype kept), the scale and the compute dtype."""
    a = as_array(a, name, ndim=2, dtype=None)
    scale = as_finite_scalar(scale, "scale")
    fdt = np.dtype(dtype) if isinstance(dtype, (type, np.dtype, str)) else None
    if fdt is None or fdt not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise TypeError(f"dtype must be float32 or float64, got {dtype!r}")
    return a, scale, fdt


def _check_counts(family: str, x) -> None:
    """Bernoulli data must be binary, Poisson data non-negative integer counts."""
    if family == "bernoulli" and np.any((x != 0.0) & (x != 1.0)):
        raise ValueError("x must be binary (entries 0 or 1) for the Bernoulli VAE")
    if family == "poisson" and (x.min() < 0.0 or np.any(x != np.floor(x))):
        raise ValueError("x must hold non-negative integer counts for a Poisson likelihood")


def _check_step_args(
    chain, eta, x, eps, u, curvature, fisher_samples, factor_dtype, cross, kernel, likelihood
):
    """Validate every argument of :func:`vae_step` before any computation."""
    chain = _check_chain(chain)
    family = _family(likelihood)
    eta, x, eps = _check_data(chain, eta, x, eps)
    _check_counts(family, x)
    if curvature not in CURVATURES:
        raise ValueError(f"curvature must be one of {CURVATURES}, got {curvature!r}")
    s_count, n = eps.shape[:2]
    if u is not None:
        u = check_uniforms(u, (s_count, n, chain.d_x))
    elif curvature in ("vp", "dec"):
        raise ValueError(f"curvature={curvature!r} needs the uniforms u for the predictive samples")
    m = s_count if fisher_samples is None else as_int(fisher_samples, "fisher_samples")
    if not 1 <= m <= s_count:
        raise ValueError(f"fisher_samples must be in [1, {s_count}], got {fisher_samples}")
    if not isinstance(cross, (bool, np.bool_)):
        raise TypeError(f"cross must be a bool, got {type(cross).__name__}")
    fdt = np.dtype(factor_dtype) if isinstance(factor_dtype, (type, np.dtype, str)) else None
    if fdt is None or fdt not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise TypeError(f"factor_dtype must be float32 or float64, got {factor_dtype!r}")
    return chain, eta, x, eps, u, m, fdt, (family, _check_kernel(kernel))


@finite_output
def vae_step(
    chain: Chain,
    eta: ArrayLike,
    x: ArrayLike,
    eps: ArrayLike,
    u: ArrayLike | None = None,
    *,
    curvature: str | None = None,
    fisher_samples: int | None = None,
    factor_dtype: DTypeLike = np.float64,
    cross: bool = True,
    kernel: str = "numba",
    likelihood: Bernoulli | Poisson | None = None,
    one_z: bool = False,
    output_diag: bool = False,
) -> VAEStep:
    r"""ELBO estimate, its gradient and (optionally) per-point K-FAC factors, one forward pass.

    Parameters
    ----------
    chain : Chain
        The VAE (see :func:`make_vae`, :func:`refvpng.nn.vmf.make_vmf`): a biased ReLU encoder,
        a ReLU decoder with or without biases, one likelihood parameter per input entry
        (``d_out == d_x``).
    eta : ndarray, shape (P,)
        :math:`(\lambda, \theta)`.
    x : ndarray, shape (n, d_x)
        Minibatch: binary (Bernoulli) or counts (Poisson).
    eps : ndarray, shape (S, n, d_z)
        Standard normal noise, :math:`S` draws per data point.
    u : ndarray, shape (S, n, d_x), optional
        Uniforms in [0, 1) for the predictive samples :math:`x'_{si}` (Eq. 15; needed for
        ``curvature="vp"`` and ``"dec"``).
    curvature : {None, "vp", "q", "dec"}
        Which Kronecker factors to return (see :class:`VAEStep`); ``"dec"`` gives exactly the
        decoder blocks (diagonal and decoder-decoder cross factors) of ``"vp"``. The q-Fisher
        rows are the scores of :math:`\log q(z_{si} \mid x_i)` with respect to the encoder
        outputs, :math:`(\varepsilon / \sigma,\ (\varepsilon^2 - 1)/\sigma \cdot
        \operatorname{sigmoid}(\sigma_{raw}))`, back-propagated with :math:`z` held fixed.
    fisher_samples : int, optional
        Use only the first :math:`M \le S` latent samples per data point (rows
        :math:`r < M n`) for the factors; default all :math:`S`.
    factor_dtype : {float64, float32}, default float64
        Precision of the Gram products :math:`\bar a^\top \bar a`, :math:`g^\top g` (``float32``
        halves their cost; the factors are returned in float64).
    cross : bool, default True
        Also compute the cross factors (block-tridiagonal K-FAC); ``False`` for block-diagonal.
    kernel : {"numba", "numpy"}, default "numba"
        The likelihood terms' fused numba kernel (:func:`bernoulli_terms_numba`,
        :func:`poisson_terms_numba`) or its NumPy specification (:func:`bernoulli_terms`,
        :func:`poisson_terms`).
    likelihood : Bernoulli or Poisson, optional
        ``Bernoulli()`` (the default, logits out) or ``Poisson("softplus")`` (rates
        :math:`\operatorname{softplus}(t)`, predictive samples by CDF inversion of ``u``).
    one_z : bool, default False
        ``"vp"``/``"dec"`` only. ``False``: each of the first :math:`M` latent draws
        :math:`z_{si}` gets one predictive sample :math:`x'_{si}` (from ``u[s]``). ``True``:
        **one** latent draw per data point, :math:`z_{0i}` (the step's first), and :math:`M`
        predictive samples :math:`x'_{mi}` from it, drawn from ``u[m]`` as above (Eq. 15 with a
        single :math:`\hat z`, as the authors' script draws them); the decoder input factors
        then come from the :math:`n` rows :math:`z_{0i}`.
    output_diag : bool, default False
        Replace the output factor of the last layer by its exact expectation, a diagonal matrix:
        for ``"vp"``/``"dec"`` the mean over the factor rows of the expected squared predictive
        score, :math:`\operatorname{diag}(p(1-p))` (Bernoulli) or
        :math:`\operatorname{diag}(\operatorname{sigmoid}(t)^2/\operatorname{softplus}(t))`
        (Poisson); for ``"q"`` the encoder's :math:`\frac1n\sum_i
        \operatorname{diag}(1/\sigma_i^2,\ 2\,\operatorname{sigmoid}(\sigma_{raw,i})^2/\sigma_i^2)`
        (the expectation over :math:`\varepsilon` of the q-score rows). Cross factors stay sampled.

    Returns
    -------
    VAEStep

    Raises
    ------
    ValueError, TypeError
        Naming the argument, before any computation: ``chain`` not a :class:`Chain` of the
        kind above; ``eta``, ``x``, ``eps`` or ``u`` of the wrong shape or not finite
        (``u`` also outside [0, 1); ``x`` not counts for a Poisson); ``u`` missing for
        ``"vp"``/``"dec"``; an unknown ``curvature``, ``kernel`` or ``likelihood``;
        ``fisher_samples`` outside :math:`[1, S]`; ``factor_dtype`` not float32/float64;
        ``one_z`` or ``output_diag`` not a bool.
    FloatingPointError
        Poisson with ``u``: a rate above 700 (the CDF inversion would underflow).

    Notes
    -----
    With :math:`M n` rows of weight :math:`1/(M n)`, the factors are
    :math:`A_l = \frac{1}{Mn}\sum_r \bar a_{l,r} \bar a_{l,r}^\top` and
    :math:`G_l = \frac{1}{Mn}\sum_r g_{l,r} g_{l,r}^\top` (likewise the cross factors): with
    ``F = kfac_factors(pairs, weights=1/M)`` of the reference pairs,
    ``A = F.A`` and ``G = F.G / n`` (**per data point**). Encoder inputs, identical across the
    samples, enter through their :math:`n` distinct rows.

    Examples
    --------
    >>> chain = make_vae(6, 4, 2)
    >>> rng = np.random.default_rng(0)
    >>> x = (rng.random((3, 6)) < 0.5) * 1.0
    >>> eps, u = rng.standard_normal((2, 3, 2)), rng.random((2, 3, 6))
    >>> st = vae_step(chain, chain.init(rng), x, eps, u, curvature="vp")
    >>> st.grad.shape, len(st.factors_per_point.A)
    ((130,), 6)
    """
    chain, eta, x, eps, u, m, fdt, terms = _check_step_args(
        chain, eta, x, eps, u, curvature, fisher_samples, factor_dtype, cross, kernel, likelihood
    )
    one_z, output_diag = check_bool(one_z, "one_z"), check_bool(output_diag, "output_diag")
    s_count, n = eps.shape[0], x.shape[0]
    rows = s_count * n
    dz = chain.d_z
    w_enc, w_dec, enc_in, enc_s, dec_in, dec_s, mu, sraw, sigma, t = forward(chain, eta, x, eps)
    want_vp = curvature in ("vp", "dec")
    one_z = one_z and want_vp
    ll, d, dp = _TERMS[terms](t, x, u.reshape(rows, -1) if want_vp and not one_z else None, fdt)
    kl = np.sum(0.5 * (mu**2 + sigma**2 - 1.0) - np.log(sigma), axis=1)
    value = float(ll.sum() / rows - kl.sum() / n)

    # ---- gradient of the per-data-point ELBO
    sizes = chain.decoder.sizes
    gs_dec, d_z = dec_backprop(w_dec, dec_s, d / rows, sizes)
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
            g = (g @ w_enc[k][:, :-1]) * (enc_s[k - 1] > 0.0)
    enc_grads = grads[::-1]
    dec_grads = [gg.T @ ab for gg, ab in zip(gs_dec, dec_in, strict=True)]
    check_finite_output(value, "vae_step", "ELBO")
    for k, gk in enumerate(enc_grads + dec_grads):
        check_finite_output(gk, "vae_step", f"gradient of layer {k}")
    grad = np.concatenate([chain.encoder.pack(enc_grads), chain.decoder.pack(dec_grads)])
    if curvature is None:
        return VAEStep(value, grad, None)

    # ---- Kronecker factors, per data point
    mrows = m * n
    w_n, w_r = 1.0 / n, 1.0 / mrows
    w_dec_a = w_n if one_z else w_r  # decoder input rows: n (one z per point) or M n
    dt = fdt
    want_enc = curvature != "dec"
    a_f, g_f, a_c, g_c = [], [], [], []
    g_enc: list = []
    g_dec: list = []
    if one_z:  # M predictive samples from z_0: M n score rows over the n rows of z_0
        dp = _TERMS[terms](np.tile(t[:n], (m, 1)), x, u[:m].reshape(mrows, -1), fdt)[2]
        g_dec, dzp = backprop_rows(w_dec, [s_[:n] for s_ in dec_s], dp, m, sizes, want_input=want_enc)
        dec_in = [ab[:n] for ab in dec_in]
    elif want_vp:
        g_dec, dzp = dec_backprop(w_dec, [s_[:mrows] for s_ in dec_s], dp[:mrows], sizes, want_input=want_enc)
        dec_in = [ab[:mrows] for ab in dec_in]
    if want_enc:
        eps_m = eps[:m].astype(fdt, copy=False)
        if one_z:
            eps_m = np.broadcast_to(eps[:1].astype(fdt, copy=False), (m, n, dz))
        sig_rows = np.broadcast_to(sig_sraw.astype(fdt, copy=False)[None], (m, n, dz))
        if want_vp:
            dzp = dzp.reshape(m, n, dz)
            g_h_rows = np.concatenate([dzp, dzp * eps_m * sig_rows], axis=2).reshape(mrows, -1)
        else:  # score of log q(z | x) w.r.t. (mu, sigma_raw), z held fixed
            sig_b = sigma.astype(fdt, copy=False)[None]
            g_h_rows = np.concatenate([eps_m / sig_b, (eps_m**2 - 1.0) / sig_b * sig_rows], axis=2).reshape(
                mrows, -1
            )
        g_enc = backprop_rows(w_enc, enc_s, g_h_rows, m, chain.encoder.sizes)[0]
        a_f += [gram(ab, w_n, dt) for ab in enc_in]
    if want_vp:
        a_f += [gram(ab, w_dec_a, dt) for ab in dec_in]
    g_rows = g_enc + g_dec  # the output factors in layer order; the last one may be exact
    g_f = [gram(gg, w_r, dt) for gg in g_rows[:-1]]
    if output_diag:
        g_f.append(output_diag_factor(terms[0], curvature, t[:n] if one_z else t[:mrows], sigma, sig_sraw))
    else:
        g_f.append(gram(g_rows[-1], w_r, dt))
    if not cross:
        return VAEStep(value, grad, KFACFactors(tuple(a_f), tuple(g_f)))
    if want_enc:
        a_c += [cross_gram(enc_in[k], enc_in[k + 1], w_n, dt) for k in range(len(enc_in) - 1)]
        g_c += [cross_gram(g_enc[k], g_enc[k + 1], w_r, dt) for k in range(len(g_enc) - 1)]
    if curvature == "vp":
        z_bar_mean = dec_in[0] if one_z else dec_in[0].reshape(m, n, -1).mean(axis=0)
        a_c.append(cross_gram(enc_in[-1], z_bar_mean, w_n, dt))
        g_c.append(cross_gram(g_enc[-1], g_dec[0], w_r, dt))
    if want_vp:
        a_c += [cross_gram(dec_in[k], dec_in[k + 1], w_dec_a, dt) for k in range(len(dec_in) - 1)]
        g_c += [cross_gram(g_dec[k], g_dec[k + 1], w_r, dt) for k in range(len(g_dec) - 1)]
    return VAEStep(value, grad, KFACFactors(tuple(a_f), tuple(g_f), tuple(a_c), tuple(g_c)))


@finite_output
def vae_elbo(
    chain: Chain,
    eta: ArrayLike,
    x: ArrayLike,
    eps: ArrayLike,
    *,
    batch: int = 1000,
    kernel: str = "numba",
    likelihood: Bernoulli | Poisson | None = None,
) -> float:
    r"""Per-data-point ELBO estimate :math:`\hat{\mathcal L}` on a data set, in batches.

    Parameters
    ----------
    chain : Chain
        The VAE, as in :func:`vae_step`.
    eta : ndarray, shape (P,)
    x : ndarray, shape (N, d_x)
    eps : ndarray, shape (S, N, d_z)
        Fixed noise (common random numbers make curves comparable across methods).
    batch : int, default 1000
        Data points per forward pass.
    kernel : {"numba", "numpy"}, default "numba"
        As in :func:`vae_step`.
    likelihood : Bernoulli or Poisson, optional
        As in :func:`vae_step` (default Bernoulli).

    Returns
    -------
    float
        Mean over the :math:`N` points of the :math:`S`-sample ELBO estimate; equals
        ``vae_step(chain, eta, x, eps, likelihood=likelihood).value``.

    Raises
    ------
    ValueError, TypeError
        Naming the argument, as :func:`vae_step`; ``batch`` not a positive integer.
    """
    chain = _check_chain(chain)
    family = _family(likelihood)
    eta, x, eps = _check_data(chain, eta, x, eps)
    _check_counts(family, x)
    batch = as_int(batch, "batch")
    terms = _TERMS[family, _check_kernel(kernel)]
    total = 0.0
    n_all = x.shape[0]
    for start in range(0, n_all, batch):
        xb, eb = x[start : start + batch], eps[:, start : start + batch]
        *_, mu, _, sigma, t = forward(chain, eta, xb, eb)
        s_count = eb.shape[0]
        ll, _, _ = terms(t, xb, None, np.dtype(np.float64))
        kl = np.sum(0.5 * (mu**2 + sigma**2 - 1.0) - np.log(sigma))
        total += ll.sum() / s_count - kl
    return float(total / n_all)
