r"""Closed-form ELBO of the linear VAE, its gradient, the optimal encoder and the ML point.

Packing :math:`\eta = (\lambda, \theta)` of :func:`refvpng.models.ppca.pack_eta`
(``vec([A, c])`` and ``vec([W, b])`` column-major, then :math:`\rho`, then :math:`\omega =
\log\psi`). Sums over the ``n`` data points, as everywhere in refvpng.
"""

from __future__ import annotations

import autograd.numpy as anp
import numpy as np
from autograd import grad
from numpy.typing import ArrayLike

from refvpng._checks import as_int, check_finite_output, finite_output
from refvpng.models.linear_vae._setup import check_eta_x, check_spec, parts
from refvpng.models.ppca.mle import mle_closed
from refvpng.models.ppca.model import pack_encoder
from refvpng.models.ppca.spec import PPCASpec

__all__ = [
    "sigma_point_eps",
    "elbo_closed",
    "elbo_closed_grad",
    "elbo_closed_value_and_grad",
    "optimal_encoder",
    "mle_eta",
]

_LOG_2PI = float(np.log(2.0 * np.pi))


def sigma_point_eps(n: int, k: int) -> np.ndarray:
    r"""Noise for which Monte Carlo averages of quadratics in :math:`\varepsilon` are exact.

    The ``2k`` rows :math:`\pm\sqrt k\, e_j` (shared by all ``n`` points) have sample mean
    :math:`0` and sample second moment :math:`I_k`, the first two moments of :math:`N(0, I_k)`.
    Every integrand of the linear VAE in :math:`\varepsilon` (expected log-likelihood,
    :math:`J^\top\Lambda J`) has degree at most two, so :func:`refvpng.elbo.elbo`,
    :func:`~refvpng.curvature.fisher.vp_fisher_exact` and friends return the exact expectation.

    Parameters
    ----------
    n, k : int
        Number of data points and latent dimension.

    Returns
    -------
    eps : ndarray, shape (2k, n, k)

    Examples
    --------
    >>> e = sigma_point_eps(3, 2)
    >>> e.shape, bool(np.all(e.mean(axis=0) == 0.0))
    ((4, 3, 2), True)
    >>> np.einsum("sni,snj->nij", e, e)[0] / 4
    array([[1., 0.],
           [0., 1.]])
    """
    n = as_int(n, "n")
    k = as_int(k, "k")
    base = np.sqrt(k) * np.concatenate([np.eye(k), -np.eye(k)])
    return np.broadcast_to(base[:, None, :], (2 * k, n, k)).copy()


def _elbo_core(spec, eta, x):
    A, c, rho, W, b, om = parts(spec, eta)
    n, d = x.shape
    m = anp.dot(x, anp.transpose(A)) + c
    s2 = anp.exp(2.0 * rho)
    r = x - anp.dot(m, anp.transpose(W)) - b
    tr = anp.sum(s2 * anp.sum(W * W, axis=0))
    ell = -0.5 * (n * d * (_LOG_2PI + om) + anp.exp(-om) * (anp.sum(r * r) + n * tr))
    kl = 0.5 * (n * anp.sum(s2 - 1.0 - 2.0 * rho) + anp.sum(m * m))
    return ell - kl


@finite_output
def elbo_closed(spec: PPCASpec, eta: ArrayLike, x: ArrayLike) -> float:
    r"""Closed-form ELBO (Eq 1) of the linear VAE, summed over the ``n`` data points.

    With :math:`m_i = Ax_i + c`, :math:`\sigma = e^\rho`, :math:`\psi = e^\omega`:

    .. math::
        \mathcal L = \sum_{i=1}^n\Big[-\tfrac12\Big(d\log 2\pi + d\,\omega
            + \frac{\lVert x_i - W m_i - b\rVert^2 + \sum_j \sigma_j^2\lVert w_j\rVert^2}{\psi}
            \Big) - \tfrac12\sum_j\big(\sigma_j^2 + m_{ij}^2 - 1 - 2\rho_j\big)\Big],

    the first term :math:`E_q[\log N(x_i \mid W z_i + b, \psi I)]` (:math:`w_j` the columns of
    :math:`W`), the second :math:`-\mathrm{KL}(q(z_i \mid x_i) \,\|\, N(0, I))`.

    Parameters
    ----------
    spec, eta, x : PPCASpec, array_like (n_lambda + n_params,), array_like (n, d)
        The linear VAE (``noise="iso"``, ``noise_coord="log"``), :math:`\eta` and the data.

    Returns
    -------
    float

    Raises
    ------
    ValueError
        On wrong shapes, non-finite inputs or another noise model.

    Examples
    --------
    At the ML solution with the matching encoder the ELBO is the maximal log-likelihood:

    >>> from refvpng.models.ppca import max_loglik_closed
    >>> spec = PPCASpec(3, 1)
    >>> x = np.random.default_rng(0).standard_normal((50, 3)) @ np.diag([2.0, 1.0, 0.3])
    >>> bool(np.isclose(elbo_closed(spec, mle_eta(spec, x), x) / 50, max_loglik_closed(spec, x)))
    True
    """
    spec, eta, x = check_eta_x(spec, eta, x)
    return float(_elbo_core(spec, eta, x))


@finite_output
def elbo_closed_grad(spec: PPCASpec, eta: ArrayLike, x: ArrayLike) -> np.ndarray:
    r"""Gradient of :func:`elbo_closed` by autograd on the closed form: the derivative oracle.

    Returns
    -------
    ndarray, shape (n_lambda + n_params,)

    Raises
    ------
    ValueError
        As :func:`elbo_closed`.

    Examples
    --------
    >>> spec = PPCASpec(3, 1)
    >>> x = np.random.default_rng(0).standard_normal((30, 3))
    >>> bool(np.allclose(elbo_closed_grad(spec, mle_eta(spec, x), x), 0.0, atol=1e-8))
    True
    """
    spec, eta, x = check_eta_x(spec, eta, x)
    return np.asarray(grad(lambda e: _elbo_core(spec, e, x))(eta), dtype=np.float64)


@finite_output
def elbo_closed_value_and_grad(spec: PPCASpec, eta: ArrayLike, x: ArrayLike) -> tuple[float, np.ndarray]:
    r"""Closed-form ELBO and its hand-derived gradient (NumPy; autograd-checked).

    With :math:`M = XA^\top + \mathbf 1c^\top` (rows :math:`m_i`),
    :math:`R = X - MW^\top - \mathbf 1 b^\top`, :math:`\nu_j = \lVert w_j\rVert^2` and
    :math:`T = \lVert R\rVert_F^2 + n\sum_j\sigma_j^2\nu_j`:

    .. math::
        \bar M = RW/\psi - M, \quad
        \nabla_A\mathcal L = \bar M^\top X, \quad \nabla_c\mathcal L = \bar M^\top\mathbf 1,
        \quad \nabla_{\rho_j}\mathcal L = -n\sigma_j^2\nu_j/\psi - n(\sigma_j^2 - 1),

    .. math::
        \nabla_W\mathcal L = \big(R^\top M - nW\operatorname{diag}\sigma^2\big)/\psi, \quad
        \nabla_b\mathcal L = R^\top\mathbf 1/\psi, \quad
        \nabla_\omega\mathcal L = -\tfrac{nd}2 + \tfrac{T}{2\psi},

    packed like :math:`\eta` (``A`` and ``W`` column-major).

    Returns
    -------
    value : float
        :func:`elbo_closed`.
    grad : ndarray, shape (n_lambda + n_params,)
        Equal to :func:`elbo_closed_grad` (to rounding).

    Raises
    ------
    ValueError
        As :func:`elbo_closed`.

    Examples
    --------
    >>> spec = PPCASpec(3, 2)
    >>> x = np.random.default_rng(0).standard_normal((20, 3))
    >>> eta = np.random.default_rng(1).standard_normal(20)
    >>> v, g = elbo_closed_value_and_grad(spec, eta, x)
    >>> bool(np.allclose(g, elbo_closed_grad(spec, eta, x)))
    True
    >>> bool(np.isclose(v, elbo_closed(spec, eta, x)))
    True
    """
    spec, eta, x = check_eta_x(spec, eta, x)
    A, c, rho, W, b, om = parts(spec, eta)
    n, d = x.shape
    m = x @ A.T + c
    s2 = np.exp(2.0 * rho)
    psi = float(np.exp(om))
    r = x - m @ W.T - b
    nu = np.sum(W * W, axis=0)
    tot = float(np.sum(r * r)) + n * float(np.sum(s2 * nu))
    value = -0.5 * (n * d * (_LOG_2PI + om) + tot / psi) - 0.5 * (
        n * float(np.sum(s2 - 1.0 - 2.0 * rho)) + float(np.sum(m * m))
    )
    mbar = r @ W / psi - m
    g = np.concatenate(
        [
            (mbar.T @ x).ravel(order="F"),
            mbar.sum(axis=0),
            -n * s2 * nu / psi - n * (s2 - 1.0),
            ((r.T @ m - n * W * s2) / psi).ravel(order="F"),
            r.sum(axis=0) / psi,
            [-0.5 * n * d + 0.5 * tot / psi],
        ]
    )
    return float(value), g


@finite_output
def optimal_encoder(spec: PPCASpec, theta: ArrayLike) -> np.ndarray:
    r"""Return the maximiser :math:`\lambda^*(\theta)` of the ELBO over the encoder.

    With :math:`M = I_k + W^\top\Psi^{-1}W` (the posterior precision, Tipping & Bishop Eq 6) the
    mean-field optimum has the exact posterior mean and the diagonal precisions of :math:`M`:

    .. math::
        A = M^{-1}W^\top\Psi^{-1}, \qquad c = -A b, \qquad \sigma_j^2 = 1/M_{jj}.

    The encoder is affine in :math:`x`, so this optimum is attained for every data point at once.
    When :math:`M` is diagonal (:math:`\Psi^{-1/2}W` has orthogonal columns) :math:`q` is the
    exact posterior :math:`p(z \mid x; \theta)`. Any noise model of ``spec``.

    Parameters
    ----------
    spec : PPCASpec
    theta : array_like, shape (spec.n_params,)

    Returns
    -------
    lam : ndarray, shape (k*d + 2*k,)

    Raises
    ------
    ValueError
        On a wrong length, non-finite entries or a non-positive variance.

    Examples
    --------
    >>> from refvpng.models.ppca import posterior_closed
    >>> spec = PPCASpec(2, 1)
    >>> theta = spec.pack(np.array([[2.0], [0.0]]), np.zeros(2), 1.0)
    >>> lam = optimal_encoder(spec, theta)
    >>> mean, cov = posterior_closed(spec, theta, np.array([[1.0, 3.0]]))
    >>> bool(np.isclose(lam[:2] @ [1.0, 3.0] + lam[2], mean[0, 0]))
    True
    >>> bool(np.isclose(np.exp(2 * lam[3]), cov[0, 0]))
    True
    """
    if not isinstance(spec, PPCASpec):
        raise TypeError(f"spec must be a PPCASpec, got {type(spec).__name__}")
    W, b, _ = spec.unpack(theta)
    Wp = W / spec.psi_diag(theta)[:, None]
    M = np.eye(spec.k) + W.T @ Wp
    A = check_finite_output(np.linalg.solve(M, Wp.T), "optimal_encoder", "encoder weight A")
    return pack_encoder(spec, A, -A @ b, -0.5 * np.log(np.diag(M)))


@finite_output
def mle_eta(spec: PPCASpec, x: ArrayLike) -> np.ndarray:
    r"""Packed :math:`\eta` at the closed-form pPCA MLE with the matching (exact) encoder.

    :math:`\theta = \theta_{\mathrm{ML}}` of :func:`refvpng.models.ppca.mle_closed` (orthogonal
    columns), :math:`\lambda = \lambda^*(\theta_{\mathrm{ML}})` of :func:`optimal_encoder`,
    which is then the exact posterior, so :math:`\mathcal L(\eta) = \max_\theta \log p(x;\theta)`.

    Parameters
    ----------
    spec : PPCASpec
        ``noise="iso"``, ``noise_coord="log"``, ``k < d``.
    x : array_like, shape (n, d)
        Data, ``n >= 2``.

    Returns
    -------
    eta : ndarray, shape (n_lambda + n_params,)

    Raises
    ------
    ValueError
        As :func:`refvpng.models.ppca.mle_closed`.
    """
    spec = check_spec(spec)
    theta = mle_closed(spec, x)
    return np.concatenate([optimal_encoder(spec, theta), theta])
