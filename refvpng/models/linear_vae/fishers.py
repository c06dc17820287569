r"""Closed-form Fishers of the linear VAE: q-Fisher, decoder Fisher and VP Fisher :math:`F_r`.

Column-major packing (:func:`refvpng.models.ppca.pack_eta`): with :math:`\bar A = [A, c]`,
:math:`\bar x_i = (x_i, 1)`, :math:`\bar W = [W, b]`, :math:`\bar z_i = (z_i, 1)`,

.. math::
    \frac{\partial m_i}{\partial\,\mathrm{vec}\bar A} = \bar x_i^\top \otimes I_k, \qquad
    \frac{\partial \mu_i}{\partial\,\mathrm{vec}\bar W} = \bar z_i^\top \otimes I_d,

so every block is a Kronecker product input :math:`\otimes` output. Sums over the ``n`` points;
each equals the generic estimator of :mod:`refvpng.curvature` on
:func:`refvpng.models.ppca.make_model` (exactly, at :func:`~refvpng.models.linear_vae.sigma_point_eps`).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from refvpng._checks import finite_output
from refvpng.models.linear_vae._setup import check_eta_x, moments
from refvpng.models.ppca.spec import PPCASpec

__all__ = ["q_fisher_closed", "decoder_fisher_closed", "vp_fisher_closed"]


def _bar(a: np.ndarray) -> np.ndarray:
    """Append a column of ones: ``(n, p) -> (n, p + 1)``."""
    return np.concatenate([a, np.ones((a.shape[0], 1))], axis=1)


@finite_output
def q_fisher_closed(spec: PPCASpec, eta: ArrayLike, x: ArrayLike) -> np.ndarray:
    r"""Closed-form q-Fisher (Eq 2) of the encoder in :math:`\lambda = (\mathrm{vec}\bar A, \rho)`.

    :math:`q(z \mid x) = \prod_i N(m_i, \operatorname{diag}\sigma^2)`, :math:`m_i = \bar A\bar x_i`:

    .. math::
        F_q = \begin{pmatrix} \bar X^\top\bar X \otimes D & 0 \\ 0 & 2n I_k\end{pmatrix},
        \qquad D = \operatorname{diag}(\sigma^{-2}), \quad \bar X = [X, \mathbf 1],

    summed over the ``n`` points. Equals :func:`refvpng.curvature.fisher.q_fisher`.

    Parameters
    ----------
    spec, eta, x : PPCASpec, array_like (n_lambda + n_params,), array_like (n, d)
        The linear VAE (iso noise, log-variance), :math:`\eta` (only :math:`\lambda` is used) and
        the data.

    Returns
    -------
    ndarray, shape (k*d + 2*k, k*d + 2*k)

    Raises
    ------
    ValueError
        On wrong shapes, non-finite inputs or another noise model.
    """
    spec, eta, x = check_eta_x(spec, eta, x)
    _, s2, _, _ = moments(spec, eta, x)
    n, k = x.shape[0], spec.k
    xb = _bar(x)
    na = xb.shape[1] * k
    F = np.zeros((na + k, na + k))
    F[:na, :na] = np.kron(xb.T @ xb, np.diag(1.0 / s2))
    F[na:, na:] = 2.0 * n * np.eye(k)
    return F


def _decoder_block(n, d, s2, psi, m):
    mb = _bar(m)
    ezz = mb.T @ mb
    ezz[:-1, :-1] += n * np.diag(s2)
    nb = d * mb.shape[1]
    F = np.zeros((nb + 1, nb + 1))
    F[:nb, :nb] = np.kron(ezz, np.eye(d)) / psi
    F[-1, -1] = 0.5 * n * d
    return F


@finite_output
def decoder_fisher_closed(spec: PPCASpec, eta: ArrayLike, x: ArrayLike) -> np.ndarray:
    r"""Closed-form decoder Fisher: the Fisher of :math:`p(x \mid z; \theta)` at :math:`z \sim q`.

    .. math::
        F_\theta = \sum_i E_{q(z_i \mid x_i)}\big[J_{\theta,i}^\top \Lambda J_{\theta,i}\big]
        = \begin{pmatrix} G \otimes I_d/\psi & 0 \\ 0 & nd/2 \end{pmatrix}, \qquad
        G = \sum_i E_q[\bar z_i\bar z_i^\top]
          = \begin{pmatrix} \sum_i m_im_i^\top + n\operatorname{diag}\sigma^2 & \sum_i m_i \\
            \sum_i m_i^\top & n\end{pmatrix},

    in :math:`\theta = (\mathrm{vec}\bar W, \omega)`. The :math:`\theta\theta` block of
    :func:`vp_fisher_closed`, the curvature of the decoder step of
    :func:`refvpng.optim.two_step.make_two_step`, and the negative Hessian of the ELBO in
    :math:`(W, b)`. Equals :func:`refvpng.curvature.latent_fisher.decoder_fisher` at
    :func:`~refvpng.models.linear_vae.sigma_point_eps`.

    Parameters
    ----------
    spec, eta, x : PPCASpec, array_like (n_lambda + n_params,), array_like (n, d)
        The linear VAE (iso noise, log-variance), :math:`\eta` and the data whose encodings
        :math:`q(z_i \mid x_i)` the latents are drawn from.

    Returns
    -------
    ndarray, shape (d*k + d + 1, d*k + d + 1)

    Raises
    ------
    ValueError
        On wrong shapes, non-finite inputs or another noise model.
    """
    spec, eta, x = check_eta_x(spec, eta, x)
    _, s2, psi, m = moments(spec, eta, x)
    return _decoder_block(x.shape[0], spec.d, s2, psi, m)


@finite_output
def vp_fisher_closed(spec: PPCASpec, eta: ArrayLike, x: ArrayLike) -> np.ndarray:
    r"""Closed-form variational predictive Fisher :math:`F_r` (Section 3.3) of the linear VAE.

    :math:`F_r = \sum_i E_{\varepsilon_i}[J_i^\top\Lambda J_i]`, exact in :math:`x'` and in
    :math:`\varepsilon`. The mean output :math:`\mu_i = W(\bar A\bar x_i + \sigma\odot
    \varepsilon_i) + b` has the Jacobian

    .. math::
        J_{\mu,i} = \big[\,\bar x_i^\top \otimes W,\ W\operatorname{diag}(\sigma\odot
        \varepsilon_i),\ \bar z_i^\top \otimes I_d,\ 0\,\big]

    (blocks :math:`\mathrm{vec}\bar A, \rho, \mathrm{vec}\bar W, \omega`), weighted by
    :math:`1/\psi`; the log-variance output contributes :math:`nd/2` to :math:`\omega\omega`.
    With :math:`Q = W^\top W`, :math:`E[\varepsilon] = 0`, :math:`E[\varepsilon
    \varepsilon^\top] = I`: :math:`F_{\bar A\bar A} = \bar X^\top\bar X \otimes Q/\psi`,
    :math:`F_{\bar A\bar W} = \bar X^\top\bar M \otimes W^\top/\psi` (:math:`\bar M` the stacked
    :math:`(m_i, 1)`), :math:`F_{\rho\rho} = n\operatorname{diag}(\sigma^2\odot\operatorname{diag}
    Q)/\psi`, :math:`F_{\rho_j, W_{ac}} = n\sigma_j^2W_{aj}\delta_{jc}/\psi`, zero between
    :math:`\bar A` and :math:`\rho`; the :math:`\theta\theta` block is
    :func:`decoder_fisher_closed`.

    :math:`F_r` is singular, of rank ``P - 2k``: the likelihood is invariant under the affine
    maps of the latent space that keep :math:`q` mean-field, :math:`z \to Dz + v` with
    :math:`D` diagonal (:math:`w_j \to w_j/D_{jj}`, :math:`b \to b - WD^{-1}v`); the ELBO is
    not, so the VPNG of Eq 17 needs a damping :math:`\mu > 0` here.

    Parameters
    ----------
    spec, eta, x : PPCASpec, array_like (n_lambda + n_params,), array_like (n, d)
        The linear VAE (iso noise, log-variance), :math:`\eta` and the data.

    Returns
    -------
    ndarray, shape (P, P)
        Equals :func:`refvpng.curvature.fisher.vp_fisher_exact` at
        :func:`~refvpng.models.linear_vae.sigma_point_eps`.

    Raises
    ------
    ValueError
        On wrong shapes, non-finite inputs or another noise model.
    """
    spec, eta, x = check_eta_x(spec, eta, x)
    W, s2, psi, m = moments(spec, eta, x)
    n, d, k = x.shape[0], spec.d, spec.k
    xb, mb = _bar(x), _bar(m)
    na = (d + 1) * k
    nl = na + k
    F = np.zeros((eta.shape[0], eta.shape[0]))
    iA, ir, iW = slice(0, na), slice(na, nl), slice(nl, nl + d * (k + 1))
    F[iA, iA] = np.kron(xb.T @ xb, W.T @ W) / psi
    F[ir, ir] = n * np.diag(s2 * np.sum(W * W, axis=0)) / psi
    F[iA, iW] = np.kron(xb.T @ mb, W.T) / psi
    for j in range(k):
        F[na + j, nl + j * d : nl + (j + 1) * d] = n * s2[j] * W[:, j] / psi
    F[nl:, :nl] = F[:nl, nl:].T
    F[nl:, nl:] = _decoder_block(n, d, s2, psi, m)
    return F
