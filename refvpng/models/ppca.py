r"""Linear-Gaussian latent models: probabilistic PCA and factor analysis, in closed form.

The model is

.. math::

    z \sim N(0, I_k), \qquad x \mid z \sim N(W z + b, \Psi), \qquad
    x \sim N(b, C), \quad C = W W^\top + \Psi,

with isotropic noise :math:`\Psi = \psi I_d` (probabilistic PCA, ``noise="iso"``) or diagonal
noise :math:`\Psi = \mathrm{diag}(\psi_1, \dots, \psi_d)` (factor analysis, ``noise="diag"``).
Every quantity the project note on latent-variable Fishers asks about has a closed form here:
the Fisher of the *joint* :math:`p(x, z; \theta)`, the Fisher of the *marginal*
:math:`p(x; \theta)`, their difference (the missing information, the expected Fisher of the
posterior :math:`p(z \mid x; \theta)`), and the maximum-likelihood solution. The Monte Carlo and
importance-sampling estimators are tested against these anchors.

Parameter packing
-----------------
:math:`\theta` is a flat float64 vector of length ``n_params(d, k, noise) = d*k + d + m`` with
``m = 1`` (``"iso"``) or ``m = d`` (``"diag"``)::

    theta = [ W.ravel()  |  b  |  eta ]
              d*k           d     m

- ``W.ravel()`` is the **row-major** vec of ``W`` (shape ``(d, k)``): entry ``a*k + c`` is
  ``W[a, c]``. Every Kronecker product below is written for this order.
- ``eta`` is the noise coordinate, chosen by ``noise_coord``: ``"log"`` (default) stores the
  log-variance :math:`\rho = \log\psi`; ``"var"`` stores the variance :math:`\psi` itself (which
  must then be > 0). Every score and Fisher matrix is with respect to the packed vector **in
  that coordinate**; the two are related by the Jacobian :math:`\partial\psi/\partial\rho =
  \psi`, :math:`F_\rho = D F_\psi D` with :math:`D = \mathrm{diag}(1, \dots, 1, \psi)`.

Every function that takes ``theta`` also takes keyword-only ``d`` and ``k``, and checks the
data against them: the length of ``theta`` alone is ambiguous (``d=4, k=2`` and ``d=3, k=3``
both give 13 isotropic parameters).

Internally every matrix is first built in the *full* coordinates (``W``, ``b``, one variance
per output, :math:`\psi_1, \dots, \psi_d`) and then pulled back by the Jacobian
:math:`J = \partial\theta_{\mathrm{full}} / \partial\theta = \mathrm{blockdiag}(I_{dk+d}, N)`, where
:math:`N = \partial(\psi_1..\psi_d)/\partial\eta` is :math:`I_d` or :math:`\mathrm{diag}(\psi)`
(``"diag"``) and :math:`\mathbf 1_d` or :math:`\psi \mathbf 1_d` (``"iso"``); scores transform as
:math:`s = J^\top s_{\mathrm{full}}` and Fishers as :math:`F = J^\top F_{\mathrm{full}} J`.

Per point, not per data set
---------------------------
Every Fisher here is the Fisher of **one** observation (and, for the joint, its latent). The
Fisher of ``n`` i.i.d. points is ``n`` times it. Log-densities are returned per row.

Which Fisher (joint or marginal)
--------------------------------
The missing-information principle (Louis 1982) ties the two together:

.. math::

    F_{\mathrm{joint}}(\theta) = F_{\mathrm{marg}}(\theta)
        + E_{p(x)}\big[\mathrm{Cov}_{p(z \mid x)}(\nabla_\theta \log p(x, z))\big],

so the joint Fisher dominates the marginal one (their difference is PSD). For pPCA the
marginal Fisher is singular along the rotations :math:`W \mapsto W R` (they leave :math:`C`
unchanged), while the joint Fisher is diagonal and non-singular: the parameters that do not
move :math:`p(x)` are exactly those the note warns give singular metrics.

References
----------
M. E. Tipping and C. M. Bishop, "Probabilistic principal component analysis", JRSS-B 61(3),
1999, pp. 611-622 (Eqs 7, 8 for the ML solution, Eq 6 for the posterior).
T. A. Louis, "Finding the observed information matrix when using the EM algorithm", JRSS-B
44(2), 1982 (the missing-information principle).
Project note ``papers/000``: choice of Fisher for latent-variable models (joint vs marginal)
and the remark that the proposal :math:`q(z \mid x)` does not change :math:`p(x)` but does change
how well it is estimated.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import scipy.linalg

from refvpng._checks import as_array, as_int

__all__ = [
    "n_params",
    "pack",
    "unpack",
    "sample",
    "sample_from_noise",
    "log_joint",
    "log_marginal",
    "posterior",
    "joint_score",
    "marginal_score",
    "joint_fisher_ppca",
    "marginal_fisher_ppca",
    "missing_information",
    "joint_fisher_mc",
    "marginal_fisher_mc",
    "posterior_proposal",
    "importance_log_weights",
    "marginal_likelihood_is",
    "marginal_score_is",
    "marginal_fisher_is",
    "ppca_mle",
    "ppca_max_loglik",
    "principal_angles",
]

_LOG_2PI = float(np.log(2.0 * np.pi))
_NOISES = ("iso", "diag")
_COORDS = ("log", "var")

Proposal = tuple[Callable[[np.ndarray], np.ndarray], Callable[[np.ndarray], np.ndarray]]


# --------------------------------------------------------------------------------------------
# packing and validation
# --------------------------------------------------------------------------------------------


def _check_options(noise: str, noise_coord: str) -> None:
    if noise not in _NOISES:
        raise ValueError(f"noise must be one of {_NOISES}, got {noise!r}")
    if noise_coord not in _COORDS:
        raise ValueError(f"noise_coord must be one of {_COORDS}, got {noise_coord!r}")


def _check_dims(d, k) -> tuple[int, int]:
    d = as_int(d, "d")
    k = as_int(k, "k")
    if k > d:
        raise ValueError(f"k must be <= d, got k={k} > d={d}")
    return d, k


def _n_noise(d: int, noise: str) -> int:
    return 1 if noise == "iso" else d


def n_params(d: int, k: int, noise: str = "iso") -> int:
    """Length of the packed parameter vector, ``d*k + d + m`` (``m = 1`` iso, ``m = d`` diag).

    Parameters
    ----------
    d, k : int
        Observed and latent dimensions, ``1 <= k <= d``.
    noise : {"iso", "diag"}, default "iso"
        Isotropic (pPCA) or diagonal (factor analysis) noise.

    Returns
    -------
    int
        The number of parameters ``P``.

    Raises
    ------
    ValueError
        If ``k > d`` or ``noise`` is unknown.

    Examples
    --------
    >>> n_params(3, 2), n_params(3, 2, "diag")
    (10, 12)
    """
    _check_options(noise, "log")
    d, k = _check_dims(d, k)
    return d * k + d + _n_noise(d, noise)


def _psi_from_eta(eta: np.ndarray, noise_coord: str) -> np.ndarray:
    if noise_coord == "log":
        with np.errstate(over="ignore", under="ignore"):
            psi = np.exp(eta)
    else:
        psi = eta.copy()
    if not (np.all(np.isfinite(psi)) and np.all(psi > 0)):
        raise ValueError(
            f"theta: noise variance must be finite and > 0, got {psi} (noise_coord={noise_coord!r})"
        )
    return psi


def _unpack(theta, d: int, k: int, noise: str, noise_coord: str):
    """Unpack with checks into ``W, b, psi_m, psi_d`` (``psi_d`` the diagonal of Psi)."""
    theta = as_array(theta, "theta", ndim=1)
    p = d * k + d + _n_noise(d, noise)
    if theta.shape[0] != p:
        raise ValueError(
            f"theta must have length d*k + d + m = {p} (d={d}, k={k}, noise={noise!r}), "
            f"got {theta.shape[0]}"
        )
    W = theta[: d * k].reshape(d, k)
    b = theta[d * k : d * k + d]
    psi = _psi_from_eta(theta[d * k + d :], noise_coord)
    psi_d = np.full(d, psi[0]) if noise == "iso" else psi
    return W, b, psi, psi_d


def pack(W, b, psi, *, noise: str = "iso", noise_coord: str = "log") -> np.ndarray:
    r"""Pack ``(W, b, psi)`` into the flat parameter vector.

    Parameters
    ----------
    W : array_like, shape (d, k)
        Loading matrix; stored row-major, ``theta[a*k + c] = W[a, c]``.
    b : array_like, shape (d,)
        Offset (the mean of :math:`x`).
    psi : float or array_like, shape (1,) or (d,)
        Noise **variance** (always in variance units here): a scalar or shape ``(1,)`` for
        ``noise="iso"``, shape ``(d,)`` for ``noise="diag"``.
    noise : {"iso", "diag"}, default "iso"
        Isotropic (pPCA) or diagonal (factor analysis) noise.
    noise_coord : {"log", "var"}, default "log"
        Store :math:`\rho = \log\psi` or :math:`\psi`.

    Returns
    -------
    theta : ndarray, shape (d*k + d + m,)
        ``[W.ravel(), b, eta]``.

    Raises
    ------
    ValueError
        On wrong shapes, non-finite entries, ``k > d`` or ``psi <= 0``.

    Examples
    --------
    >>> theta = pack(np.ones((3, 2)), np.zeros(3), 0.5, noise_coord="var")
    >>> theta.shape, float(theta[-1])
    ((10,), 0.5)
    >>> bool(np.isclose(pack(np.ones((3, 2)), np.zeros(3), 0.5)[-1], np.log(0.5)))
    True
    """
    _check_options(noise, noise_coord)
    W = as_array(W, "W", ndim=2)
    d, k = _check_dims(W.shape[0], W.shape[1])
    b = as_array(b, "b", shape=(d,))
    m = _n_noise(d, noise)
    psi = as_array(psi, "psi", ndim=(0, 1)).reshape(-1)
    if psi.shape[0] != m:
        raise ValueError(
            f"psi must have {m} entr{'y' if m == 1 else 'ies'} for noise={noise!r}, "
            f"got {psi.shape[0]}"
        )
    if np.any(psi <= 0):
        raise ValueError(f"psi must be > 0, got {psi}")
    eta = np.log(psi) if noise_coord == "log" else psi
    return np.concatenate([W.ravel(), b, eta])


def unpack(theta, *, d: int, k: int, noise: str = "iso", noise_coord: str = "log"):
    r"""Unpack the flat parameter vector into ``(W, b, psi)``.

    Parameters
    ----------
    theta : array_like, shape (d*k + d + m,)
        Packed parameters (see the module docstring).
    d, k : int
        Observed and latent dimensions, ``1 <= k <= d``.
    noise : {"iso", "diag"}, default "iso"
        Isotropic or diagonal noise (``m = 1`` or ``m = d``).
    noise_coord : {"log", "var"}, default "log"
        Coordinate of the noise entries of ``theta``.

    Returns
    -------
    W : ndarray, shape (d, k)
    b : ndarray, shape (d,)
    psi : ndarray, shape (m,)
        Noise variance(s) :math:`\psi` (variance units whatever ``noise_coord`` is), so that
        ``pack(*unpack(theta, ...), ...)`` round-trips.

    Raises
    ------
    ValueError
        On a wrong length, NaN/inf, ``k > d``, or a non-positive variance.

    Examples
    --------
    >>> theta = np.arange(10.0)
    >>> W, b, psi = unpack(theta, d=3, k=2, noise_coord="log")
    >>> W.tolist(), b.tolist(), bool(np.isclose(psi[0], np.exp(9.0)))
    ([[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]], [6.0, 7.0, 8.0], True)
    """
    _check_options(noise, noise_coord)
    d, k = _check_dims(d, k)
    W, b, psi, _ = _unpack(theta, d, k, noise, noise_coord)
    return W.copy(), b.copy(), psi


def _noise_jacobian(psi: np.ndarray, d: int, noise: str, noise_coord: str) -> np.ndarray:
    """``N = d(psi_1..psi_d)/d eta``, shape ``(d, m)``."""
    scale = psi if noise_coord == "log" else np.ones_like(psi)
    if noise == "iso":
        return np.full((d, 1), scale[0])
    return np.diag(scale)


def _pullback(psi: np.ndarray, d: int, k: int, noise: str, noise_coord: str) -> np.ndarray:
    """Jacobian ``J = d theta_full / d theta``, shape ``(d*k + 2d, P)``."""
    n_wb = d * k + d
    N = _noise_jacobian(psi, d, noise, noise_coord)
    J = np.zeros((n_wb + d, n_wb + N.shape[1]))
    J[:n_wb, :n_wb] = np.eye(n_wb)
    J[n_wb:, n_wb:] = N
    return J


def _as_data(x, name: str, dim: int | None):
    """``x`` as a 2-D array ``(n, dim)``; also return whether the input was 1-D."""
    x = as_array(x, name, ndim=(1, 2))
    one = x.ndim == 1
    x2 = x[None, :] if one else x
    if dim is not None and x2.shape[1] != dim:
        raise ValueError(f"{name} must have {dim} columns, got shape {x.shape}")
    return x2, one


def _setup(theta, x, d, k, noise, noise_coord):
    """Validate options and dims, unpack ``theta``, check ``x`` against ``d``."""
    _check_options(noise, noise_coord)
    d, k = _check_dims(d, k)
    W, b, psi, psi_d = _unpack(theta, d, k, noise, noise_coord)
    x2, one = _as_data(x, "x", d)
    return x2, one, d, k, W, b, psi, psi_d


def _sym(a: np.ndarray) -> np.ndarray:
    return 0.5 * (a + np.swapaxes(a, -1, -2))


def _spd_inv(a: np.ndarray) -> np.ndarray:
    """Symmetric inverse of an SPD matrix through its Cholesky factor."""
    c = scipy.linalg.cho_factor(a, lower=True)
    return _sym(scipy.linalg.cho_solve(c, np.eye(a.shape[0])))


def _marg_cov(W: np.ndarray, psi_d: np.ndarray) -> np.ndarray:
    return W @ W.T + np.diag(psi_d)


# --------------------------------------------------------------------------------------------
# sampling and densities
# --------------------------------------------------------------------------------------------


def sample_from_noise(
    theta, eps_z, eps_x, *, d: int, k: int, noise: str = "iso", noise_coord: str = "log"
):
    r"""Map pre-drawn standard-normal noise to ``(x, z)`` draws from :math:`p(x, z; \theta)`.

    .. math::

        z = \varepsilon_z, \qquad x = W z + b + \Psi^{1/2} \varepsilon_x .

    Parameters
    ----------
    theta : array_like, shape (P,)
        Packed parameters.
    eps_z : array_like, shape (n, k)
        Standard-normal noise for the latents.
    eps_x : array_like, shape (n, d)
        Standard-normal noise for the observations.
    d, k : int
        Observed and latent dimensions.
    noise : {"iso", "diag"}, default "iso"
    noise_coord : {"log", "var"}, default "log"

    Returns
    -------
    x : ndarray, shape (n, d)
    z : ndarray, shape (n, k)

    Raises
    ------
    ValueError
        On inconsistent shapes or invalid parameters.

    Examples
    --------
    >>> theta = pack(np.eye(2), np.array([1.0, -1.0]), 0.25)
    >>> x, z = sample_from_noise(theta, np.zeros((1, 2)), np.ones((1, 2)), d=2, k=2)
    >>> x.tolist()
    [[1.5, -0.5]]
    """
    _check_options(noise, noise_coord)
    d, k = _check_dims(d, k)
    W, b, _, psi_d = _unpack(theta, d, k, noise, noise_coord)
    eps_x = as_array(eps_x, "eps_x", shape=(None, d))
    eps_z = as_array(eps_z, "eps_z", shape=(eps_x.shape[0], k))
    z = eps_z.copy()
    x = z @ W.T + b + np.sqrt(psi_d) * eps_x
    return x, z


def sample(
    rng: np.random.Generator,
    theta,
    n: int,
    *,
    d: int,
    k: int,
    noise: str = "iso",
    noise_coord: str = "log",
):
    r"""Draw ``n`` i.i.d. pairs :math:`(x, z) \sim p(x, z; \theta)`.

    Draws ``eps_z`` of shape ``(n, k)`` and then ``eps_x`` of shape ``(n, d)`` from ``rng`` (in
    that order) and calls :func:`sample_from_noise`.

    Parameters
    ----------
    rng : numpy.random.Generator
    theta : array_like, shape (P,)
    n : int
        Number of draws.
    d, k : int
        Observed and latent dimensions.
    noise : {"iso", "diag"}, default "iso"
    noise_coord : {"log", "var"}, default "log"

    Returns
    -------
    x : ndarray, shape (n, d)
    z : ndarray, shape (n, k)

    Raises
    ------
    ValueError
        On invalid sizes or parameters.

    Examples
    --------
    >>> theta = pack(np.ones((3, 1)), np.zeros(3), 0.1)
    >>> x, z = sample(np.random.default_rng(0), theta, 5, d=3, k=1)
    >>> x.shape, z.shape
    ((5, 3), (5, 1))
    """
    _check_options(noise, noise_coord)
    d, k = _check_dims(d, k)
    n = as_int(n, "n")
    _unpack(theta, d, k, noise, noise_coord)
    eps_z = rng.standard_normal((n, k))
    eps_x = rng.standard_normal((n, d))
    return sample_from_noise(theta, eps_z, eps_x, d=d, k=k, noise=noise, noise_coord=noise_coord)


def _log_joint_core(W, b, psi_d, x, z):
    """Broadcasting ``log p(x, z)``; ``x`` (..., d), ``z`` (..., k)."""
    d, k = W.shape
    r = x - z @ W.T - b
    log_prior = -0.5 * (k * _LOG_2PI + np.sum(z * z, axis=-1))
    log_lik = -0.5 * (d * _LOG_2PI + np.sum(np.log(psi_d)) + np.sum(r * r / psi_d, axis=-1))
    return log_prior + log_lik


def log_joint(theta, x, z, *, d: int, k: int, noise: str = "iso", noise_coord: str = "log"):
    r"""Log joint density :math:`\log p(x, z; \theta)`, per row.

    .. math::

        \log p(x, z) = -\tfrac12\big(k\log 2\pi + \lVert z\rVert^2\big)
        - \tfrac12\Big(d\log 2\pi + \sum_a \log\psi_a + \sum_a r_a^2/\psi_a\Big),
        \qquad r = x - W z - b .

    Parameters
    ----------
    theta : array_like, shape (P,)
        Packed parameters.
    x : array_like, shape (n, d) or (d,)
    z : array_like, shape (n, k) or (k,)
        Same number of rows (or both 1-D).
    d, k : int
        Observed and latent dimensions.
    noise : {"iso", "diag"}, default "iso"
    noise_coord : {"log", "var"}, default "log"

    Returns
    -------
    ndarray, shape (n,) or float
        One value per row (a float for 1-D inputs).

    Raises
    ------
    ValueError
        On inconsistent shapes or invalid parameters.

    Examples
    --------
    >>> theta = pack(np.zeros((1, 1)), np.zeros(1), 1.0)
    >>> bool(np.isclose(log_joint(theta, [0.0], [0.0], d=1, k=1), -np.log(2 * np.pi)))
    True
    """
    x2, one, d, k, W, b, _, psi_d = _setup(theta, x, d, k, noise, noise_coord)
    z = as_array(z, "z", ndim=2 - one)
    z2 = z[None, :] if one else z
    if z2.shape != (x2.shape[0], k):
        raise ValueError(f"z must have shape {(k,) if one else (x2.shape[0], k)}, got {z.shape}")
    out = _log_joint_core(W, b, psi_d, x2, z2)
    return float(out[0]) if one else out


def log_marginal(theta, x, *, d: int, k: int, noise: str = "iso", noise_coord: str = "log"):
    r"""Log marginal density :math:`\log p(x; \theta) = \log N(x; b, C)`, per row.

    .. math::

        \log p(x) = -\tfrac12\big(d\log 2\pi + \log\lvert C\rvert + (x-b)^\top C^{-1}(x-b)\big),
        \qquad C = W W^\top + \Psi .

    Parameters
    ----------
    theta : array_like, shape (P,)
    x : array_like, shape (n, d) or (d,)
    d, k : int
        Observed and latent dimensions.
    noise : {"iso", "diag"}, default "iso"
    noise_coord : {"log", "var"}, default "log"

    Returns
    -------
    ndarray, shape (n,) or float

    Raises
    ------
    ValueError
        On inconsistent shapes or invalid parameters.

    Examples
    --------
    >>> theta = pack(np.ones((2, 1)), np.zeros(2), 1.0)
    >>> from scipy.stats import multivariate_normal
    >>> ref = multivariate_normal(np.zeros(2), [[2.0, 1.0], [1.0, 2.0]]).logpdf([0.3, -1.0])
    >>> bool(np.isclose(log_marginal(theta, [0.3, -1.0], d=2, k=1), ref))
    True
    """
    x2, one, d, _, W, b, _, psi_d = _setup(theta, x, d, k, noise, noise_coord)
    L = np.linalg.cholesky(_marg_cov(W, psi_d))
    u = scipy.linalg.solve_triangular(L, (x2 - b).T, lower=True)
    out = -0.5 * (d * _LOG_2PI + 2.0 * np.sum(np.log(np.diag(L))) + np.sum(u * u, axis=0))
    return float(out[0]) if one else out


def _posterior_core(W, psi_d):
    """``Sigma = M^{-1}``, ``M``, and ``B = Sigma W^T Psi^{-1}`` (``mean = B (x - b)``)."""
    Wp = W / psi_d[:, None]
    M = np.eye(W.shape[1]) + W.T @ Wp
    Sigma = _spd_inv(M)
    return Sigma, M, Sigma @ Wp.T


def posterior(theta, x, *, d: int, k: int, noise: str = "iso", noise_coord: str = "log"):
    r"""Exact posterior :math:`p(z \mid x; \theta) = N(\mu, \Sigma)`.

    Tipping & Bishop (1999), Eq 6:

    .. math::

        M = W^\top \Psi^{-1} W + I_k, \qquad \Sigma = M^{-1}, \qquad
        \mu = M^{-1} W^\top \Psi^{-1} (x - b) = W^\top C^{-1} (x - b).

    Parameters
    ----------
    theta : array_like, shape (P,)
    x : array_like, shape (n, d) or (d,)
    d, k : int
        Observed and latent dimensions.
    noise : {"iso", "diag"}, default "iso"
    noise_coord : {"log", "var"}, default "log"

    Returns
    -------
    mean : ndarray, shape (n, k) or (k,)
    cov : ndarray, shape (k, k)
        The same for every ``x``.

    Raises
    ------
    ValueError
        On inconsistent shapes or invalid parameters.

    Examples
    --------
    >>> theta = pack(np.ones((2, 1)), np.zeros(2), 1.0, noise_coord="var")
    >>> mean, cov = posterior(theta, [1.0, 2.0], d=2, k=1, noise_coord="var")
    >>> mean.round(12).tolist(), cov.round(12).tolist()
    ([1.0], [[0.333333333333]])
    """
    x2, one, _, _, W, b, _, psi_d = _setup(theta, x, d, k, noise, noise_coord)
    Sigma, _, B = _posterior_core(W, psi_d)
    mean = (x2 - b) @ B.T
    return (mean[0] if one else mean), Sigma


# --------------------------------------------------------------------------------------------
# scores
# --------------------------------------------------------------------------------------------


def _joint_score_full(W, b, psi_d, x, z):
    """Score in full coordinates ``(W, b, psi_1..psi_d)``; broadcasting, shape (..., dk + 2d)."""
    d, k = W.shape
    r = x - z @ W.T - b
    rp = r / psi_d
    sW = (rp[..., :, None] * z[..., None, :]).reshape(*rp.shape[:-1], d * k)
    spsi = (r * r - psi_d) / (2.0 * psi_d**2)
    return np.concatenate([sW, rp, spsi], axis=-1)


def joint_score(theta, x, z, *, d: int, k: int, noise: str = "iso", noise_coord: str = "log"):
    r"""Score of the joint, :math:`\nabla_\theta \log p(x, z; \theta)`, per row.

    With :math:`r = x - Wz - b` and the full coordinates (one variance per output),

    .. math::

        \frac{\partial}{\partial W_{ac}} = \frac{r_a z_c}{\psi_a}, \qquad
        \frac{\partial}{\partial b_a} = \frac{r_a}{\psi_a}, \qquad
        \frac{\partial}{\partial \psi_a} = \frac{r_a^2 - \psi_a}{2\psi_a^2},

    pulled back to the packed coordinate by :math:`s = J^\top s_{\mathrm{full}}` (for
    ``noise="iso", noise_coord="log"`` the last entry is
    :math:`\lVert r\rVert^2/(2\psi) - d/2`). The prior :math:`N(0, I)` has no parameters.

    Parameters
    ----------
    theta : array_like, shape (P,)
    x : array_like, shape (n, d) or (d,)
    z : array_like, shape (n, k) or (k,)
    d, k : int
        Observed and latent dimensions.
    noise : {"iso", "diag"}, default "iso"
    noise_coord : {"log", "var"}, default "log"

    Returns
    -------
    ndarray, shape (n, P) or (P,)

    Raises
    ------
    ValueError
        On inconsistent shapes or invalid parameters.

    Examples
    --------
    >>> theta = pack(np.zeros((1, 1)), np.zeros(1), 1.0)
    >>> joint_score(theta, [2.0], [1.0], d=1, k=1).tolist()
    [2.0, 2.0, 1.5]
    """
    x2, one, d, k, W, b, psi, psi_d = _setup(theta, x, d, k, noise, noise_coord)
    z = as_array(z, "z", ndim=2 - one)
    z2 = z[None, :] if one else z
    if z2.shape != (x2.shape[0], k):
        raise ValueError(f"z must have shape {(k,) if one else (x2.shape[0], k)}, got {z.shape}")
    s = _joint_score_full(W, b, psi_d, x2, z2) @ _pullback(psi, d, k, noise, noise_coord)
    return s[0] if one else s


def marginal_score(theta, x, *, d: int, k: int, noise: str = "iso", noise_coord: str = "log"):
    r"""Score of the marginal, :math:`\nabla_\theta \log N(x; b, C(\theta))`, per row.

    With :math:`y = x - b`, :math:`\alpha = C^{-1} y` and
    :math:`d\,(-\tfrac12\log|C| - \tfrac12 y^\top C^{-1}y)
    = \tfrac12\mathrm{tr}\big((\alpha\alpha^\top - C^{-1})\,dC\big)`, and
    :math:`dC = dW\,W^\top + W\,dW^\top + d\Psi`:

    .. math::

        \nabla_W = (\alpha\alpha^\top - C^{-1})\,W, \qquad \nabla_b = \alpha, \qquad
        \frac{\partial}{\partial\psi_a} = \tfrac12\big(\alpha_a^2 - (C^{-1})_{aa}\big),

    pulled back to the packed coordinate by :math:`J^\top`.

    Parameters
    ----------
    theta : array_like, shape (P,)
    x : array_like, shape (n, d) or (d,)
    d, k : int
        Observed and latent dimensions.
    noise : {"iso", "diag"}, default "iso"
    noise_coord : {"log", "var"}, default "log"

    Returns
    -------
    ndarray, shape (n, P) or (P,)

    Raises
    ------
    ValueError
        On inconsistent shapes or invalid parameters.

    Examples
    --------
    >>> theta = pack(np.zeros((1, 1)), np.zeros(1), 1.0)
    >>> marginal_score(theta, [2.0], d=1, k=1).tolist()
    [0.0, 2.0, 1.5]
    """
    x2, one, d, k, W, b, psi, psi_d = _setup(theta, x, d, k, noise, noise_coord)
    Cinv = _spd_inv(_marg_cov(W, psi_d))
    alpha = (x2 - b) @ Cinv
    # (alpha alpha^T - C^{-1}) W, row by row
    sW = alpha[:, :, None] * (alpha @ W)[:, None, :] - (Cinv @ W)[None]
    spsi = 0.5 * (alpha * alpha - np.diag(Cinv))
    s_full = np.concatenate([sW.reshape(x2.shape[0], d * k), alpha, spsi], axis=1)
    s = s_full @ _pullback(psi, d, k, noise, noise_coord)
    return s[0] if one else s


# --------------------------------------------------------------------------------------------
# closed-form Fishers
# --------------------------------------------------------------------------------------------


def joint_fisher_ppca(
    theta, *, d: int, k: int, noise: str = "iso", noise_coord: str = "log"
) -> np.ndarray:
    r"""Closed-form Fisher of the joint :math:`p(x, z; \theta)` for **one** data point.

    :math:`F_{\mathrm{joint}} = E_{p(x,z)}[s s^\top]`, :math:`s = \nabla_\theta\log p(x,z)`;
    the Fisher of ``n`` i.i.d. pairs is ``n`` times this.

    The prior has no parameters, so only :math:`p(x \mid z)` contributes. For a Gaussian with
    mean :math:`m(\theta) = Wz + b` and covariance :math:`\Psi(\theta)` the conditional Fisher is

    .. math::

        F(z) = J_m^\top \Psi^{-1} J_m
             + \tfrac12\,\mathrm{tr}\big(\Psi^{-1}\partial_i\Psi\,\Psi^{-1}\partial_j\Psi\big),
        \qquad J_m = [\,I_d \otimes z^\top \;\; I_d \;\; 0\,]

    (mean and covariance blocks are orthogonal: odd moments of :math:`r` vanish). With
    :math:`E[z] = 0`, :math:`E[zz^\top] = I_k` the W-b cross block vanishes and, in the full
    coordinates (one variance per output),

    .. math::

        F_{\mathrm{joint}} = \mathrm{blockdiag}\big(\Psi^{-1} \otimes I_k,\; \Psi^{-1},\;
        \tfrac12\Psi^{-2}\big),

    a **diagonal** matrix (row-major vec of W). In the packed coordinate the noise block is
    :math:`N^\top \tfrac12\Psi^{-2} N`: ``"diag"``/``"log"``: :math:`\tfrac12 I_d`;
    ``"diag"``/``"var"``: :math:`\mathrm{diag}(1/(2\psi_a^2))`; ``"iso"``/``"log"``: :math:`d/2`;
    ``"iso"``/``"var"``: :math:`d/(2\psi^2)`.

    Parameters
    ----------
    theta : array_like, shape (P,)
    d, k : int
        Observed and latent dimensions.
    noise : {"iso", "diag"}, default "iso"
    noise_coord : {"log", "var"}, default "log"

    Returns
    -------
    ndarray, shape (P, P)

    Raises
    ------
    ValueError
        On invalid sizes or parameters.

    Examples
    --------
    >>> theta = pack(np.ones((2, 1)), np.zeros(2), 0.5)
    >>> np.diag(joint_fisher_ppca(theta, d=2, k=1)).tolist()
    [2.0, 2.0, 2.0, 2.0, 1.0]
    """
    _check_options(noise, noise_coord)
    d, k = _check_dims(d, k)
    _, _, psi, psi_d = _unpack(theta, d, k, noise, noise_coord)
    full = np.diag(np.concatenate([np.repeat(1.0 / psi_d, k), 1.0 / psi_d, 0.5 / psi_d**2]))
    J = _pullback(psi, d, k, noise, noise_coord)
    return _sym(J.T @ full @ J)


def _marginal_fisher_full(W: np.ndarray, psi_d: np.ndarray) -> np.ndarray:
    d, k = W.shape
    A = _spd_inv(_marg_cov(W, psi_d))
    G = A @ W
    H = _sym(W.T @ G)
    dk = d * k
    F = np.zeros((dk + 2 * d, dk + 2 * d))
    F[:dk, :dk] = np.kron(A, H) + np.einsum("ae,cb->abce", G, G).reshape(dk, dk)
    F[dk : dk + d, dk : dk + d] = A
    FWpsi = np.einsum("ai,ib->abi", A, G).reshape(dk, d)
    F[:dk, dk + d :] = FWpsi
    F[dk + d :, :dk] = FWpsi.T
    F[dk + d :, dk + d :] = 0.5 * A * A
    return F


def marginal_fisher_ppca(
    theta, *, d: int, k: int, noise: str = "iso", noise_coord: str = "log"
) -> np.ndarray:
    r"""Closed-form Fisher of the marginal :math:`x \sim N(b, C(\theta))` for **one** point.

    For a Gaussian family :math:`N(b(\theta), C(\theta))`,

    .. math::

        F_{ij} = \partial_i b^\top C^{-1}\partial_j b
               + \tfrac12\,\mathrm{tr}\big(C^{-1}\partial_i C\,C^{-1}\partial_j C\big).

    With :math:`\partial C/\partial W_{ac} = E_{ac}W^\top + W E_{ca} = e_a w_c^\top + w_c e_a^\top`
    (:math:`w_c` the c-th column of W), :math:`\partial C/\partial\psi_a = e_a e_a^\top`,
    :math:`A = C^{-1}`, :math:`G = C^{-1}W` and :math:`H = W^\top C^{-1}W`, the four traces give,
    in the full coordinates,

    .. math::

        F_{(ac),(a'c')} &= A_{aa'}H_{cc'} + G_{ac'}G_{a'c}
            \quad\text{i.e. } A\otimes H + (G\otimes G^\top)K \text{ (row-major vec)},\\
        F_{(ac),\psi_i} &= A_{ai}G_{ic}, \qquad
        F_{\psi_i\psi_j} = \tfrac12 A_{ij}^2, \qquad F_{bb} = A,

    and zero between ``b`` and the rest (:math:`b` does not enter :math:`C`). Here :math:`K`
    is the commutation matrix with :math:`K\,\mathrm{vec}(X) = \mathrm{vec}(X^\top)` for
    :math:`X` of shape ``(d, k)`` (both vecs row-major).
    Pulling back to the packed coordinate (:math:`F = J^\top F_{\mathrm{full}} J`) gives for
    ``"iso"``/``"var"`` the familiar :math:`F_{W\psi} = C^{-2}W`,
    :math:`F_{\psi\psi} = \tfrac12\mathrm{tr}(C^{-2})`. The Fisher of ``n`` points is ``n``
    times this.

    For ``k >= 2`` the matrix is singular: :math:`\delta W = W\Omega` with :math:`\Omega`
    antisymmetric leaves :math:`C` unchanged.

    Parameters
    ----------
    theta : array_like, shape (P,)
    d, k : int
        Observed and latent dimensions.
    noise : {"iso", "diag"}, default "iso"
    noise_coord : {"log", "var"}, default "log"

    Returns
    -------
    ndarray, shape (P, P)

    Raises
    ------
    ValueError
        On invalid sizes or parameters.

    Examples
    --------
    >>> theta = pack(np.zeros((2, 1)), np.zeros(2), 1.0, noise_coord="var")
    >>> F = marginal_fisher_ppca(theta, d=2, k=1, noise_coord="var")
    >>> np.diag(F).tolist()   # W = 0: no information about W; tr(I)/2 for psi
    [0.0, 0.0, 1.0, 1.0, 1.0]
    """
    _check_options(noise, noise_coord)
    d, k = _check_dims(d, k)
    W, _, psi, psi_d = _unpack(theta, d, k, noise, noise_coord)
    J = _pullback(psi, d, k, noise, noise_coord)
    return _sym(J.T @ _marginal_fisher_full(W, psi_d) @ J)


def _posterior_fisher_full(W, psi_d, m_y, S_y):
    """Mean over data of the Fisher of ``p(z | x)`` given ``E[y]`` and ``E[y y^T]``, y = x - b."""
    d, k = W.shape
    dk = d * k
    P = dk + 2 * d
    pinv = 1.0 / psi_d
    Wp = W * pinv[:, None]
    Sigma, M, B = _posterior_core(W, psi_d)
    Ik, Id = np.eye(k), np.eye(d)
    # dM (P, k, k) and d(W^T Psi^{-1}) (P, k, d)
    dM = np.zeros((P, k, k))
    dWtP = np.zeros((P, k, d))
    dM[:dk] = (np.einsum("cj,al->acjl", Ik, Wp) + np.einsum("aj,cl->acjl", Wp, Ik)).reshape(
        dk, k, k
    )
    dWtP[:dk] = np.einsum("cj,ae->acje", Ik, np.diag(pinv)).reshape(dk, k, d)
    dM[dk + d :] = -np.einsum("cj,cl->cjl", W, W) * (pinv**2)[:, None, None]
    dWtP[dk + d :] = -np.einsum("cj,ce->cje", W, Id) * (pinv**2)[:, None, None]
    dSigma = -np.einsum("jl,ilm,mn->ijn", Sigma, dM, Sigma)
    dB = np.einsum("ijl,el->ije", dSigma, Wp) + np.einsum("jl,ile->ije", Sigma, dWtP)
    db = np.zeros((P, d))
    db[dk : dk + d] = Id
    V = db @ B.T  # (P, k): B db_i
    U = dB @ m_y  # (P, k): dB_i E[y]
    MdB = np.einsum("jl,ile->ije", M, dB)
    F = np.einsum("ile,jlf,fe->ij", dB, MdB, S_y)
    cross = U @ M @ V.T
    F += V @ M @ V.T - cross - cross.T
    X = np.einsum("jl,ilm->ijm", M, dSigma)
    F += 0.5 * np.einsum("ijl,klj->ik", X, X)
    return F


def missing_information(
    theta,
    *,
    d: int,
    k: int,
    x=None,
    noise: str = "iso",
    noise_coord: str = "log",
) -> np.ndarray:
    r"""Missing information: the (expected) Fisher of the posterior :math:`p(z \mid x; \theta)`.

    .. math::

        I_{\mathrm{miss}} = E_{p(x)}\big[\mathrm{Cov}_{p(z\mid x)}(\nabla_\theta\log p(x,z))\big]
        = E_{p(x)}\big[F_{z\mid x}(\theta; x)\big],

    because :math:`\nabla\log p(x,z) = \nabla\log p(x) + \nabla\log p(z\mid x)` and
    :math:`E_{p(z\mid x)}\nabla\log p(x,z) = \nabla\log p(x)` (Fisher's identity). Computed
    **independently** of the joint and marginal Fishers, from the Gaussian posterior
    :math:`N(\mu, \Sigma)`, :math:`\mu = B y`, :math:`y = x - b`,
    :math:`B = \Sigma W^\top\Psi^{-1}`, :math:`\Sigma = M^{-1}`:

    .. math::

        F_{z\mid x, ij} = \partial_i\mu^\top M\,\partial_j\mu
            + \tfrac12\mathrm{tr}(M\,\partial_i\Sigma\,M\,\partial_j\Sigma), \qquad
        \partial_i\mu = \partial_i B\,y - B\,\partial_i b,

    with :math:`\partial\Sigma = -\Sigma\,\partial M\,\Sigma`,
    :math:`\partial B = \partial\Sigma\,W^\top\Psi^{-1} + \Sigma\,\partial(W^\top\Psi^{-1})`,
    :math:`\partial M/\partial W_{ac} = E_{ca}\Psi^{-1}W + W^\top\Psi^{-1}E_{ac}`,
    :math:`\partial M/\partial\psi_a = -\psi_a^{-2}W_{a,:}^\top W_{a,:}`. The average over
    :math:`y` needs only :math:`E[y]` and :math:`E[yy^\top]`:

    .. math::

        E[\partial_i\mu^\top M\partial_j\mu] = \mathrm{tr}(\partial_i B^\top M\,\partial_j B\,
        E[yy^\top]) - E[y]^\top(\partial_i B^\top M B\,\partial_j b + \partial_j B^\top M B\,
        \partial_i b) + \partial_i b^\top B^\top M B\,\partial_j b .

    Under :math:`p(x)`: :math:`E[y] = 0`, :math:`E[yy^\top] = C`. The missing-information
    principle :math:`F_{\mathrm{joint}} = F_{\mathrm{marg}} + I_{\mathrm{miss}}` is then an
    identity between three independent closed forms (checked in the tests).

    Parameters
    ----------
    theta : array_like, shape (P,)
    d, k : int
        Observed and latent dimensions.
    x : array_like, shape (n, d) or (d,), optional
        If given, return the **average over the rows** of the posterior Fisher
        :math:`F_{z\mid x}(\theta; x_i)` (the empirical missing information) instead of the
        expectation over :math:`p(x)`.
    noise : {"iso", "diag"}, default "iso"
    noise_coord : {"log", "var"}, default "log"

    Returns
    -------
    ndarray, shape (P, P)

    Raises
    ------
    ValueError
        On invalid sizes, parameters or data.

    Examples
    --------
    >>> theta = pack(np.array([[1.0], [0.5]]), np.zeros(2), 0.3)
    >>> Fj = joint_fisher_ppca(theta, d=2, k=1)
    >>> Fm = marginal_fisher_ppca(theta, d=2, k=1)
    >>> bool(np.allclose(Fj - Fm, missing_information(theta, d=2, k=1), atol=1e-12))
    True
    """
    _check_options(noise, noise_coord)
    d, k = _check_dims(d, k)
    W, b, psi, psi_d = _unpack(theta, d, k, noise, noise_coord)
    if x is None:
        m_y, S_y = np.zeros(d), _marg_cov(W, psi_d)
    else:
        x2, _ = _as_data(x, "x", d)
        y = x2 - b
        m_y, S_y = y.mean(axis=0), y.T @ y / y.shape[0]
    J = _pullback(psi, d, k, noise, noise_coord)
    return _sym(J.T @ _posterior_fisher_full(W, psi_d, m_y, S_y) @ J)


# --------------------------------------------------------------------------------------------
# Monte Carlo estimators
# --------------------------------------------------------------------------------------------


def _outer(s: np.ndarray) -> np.ndarray:
    return s[:, :, None] * s[:, None, :]


def joint_fisher_mc(
    rng: np.random.Generator,
    theta,
    S: int,
    *,
    d: int,
    k: int,
    noise: str = "iso",
    noise_coord: str = "log",
):
    r"""Monte Carlo joint Fisher: score outer products at :math:`(x_s, z_s) \sim p(x, z)`.

    .. math::

        \hat F_{\mathrm{joint}} = \frac1S\sum_{s=1}^S s_s s_s^\top, \qquad
        s_s = \nabla_\theta\log p(x_s, z_s; \theta),

    unbiased for :func:`joint_fisher_ppca`. Draws with :func:`sample`.

    Parameters
    ----------
    rng : numpy.random.Generator
    theta : array_like, shape (P,)
    S : int
        Number of draws (``>= 2`` so a standard error can be formed).
    d, k : int
    noise : {"iso", "diag"}, default "iso"
    noise_coord : {"log", "var"}, default "log"

    Returns
    -------
    fisher : ndarray, shape (P, P)
        The mean of ``per_sample`` over its first axis.
    per_sample : ndarray, shape (S, P, P)
        The i.i.d. outer products (for the standard error).

    Raises
    ------
    ValueError
        On invalid sizes or parameters.

    Examples
    --------
    >>> theta = pack(np.ones((2, 1)), np.zeros(2), 0.5)
    >>> F, per = joint_fisher_mc(np.random.default_rng(0), theta, 100, d=2, k=1)
    >>> F.shape, per.shape
    ((5, 5), (100, 5, 5))
    """
    S = as_int(S, "S", minimum=2)
    x, z = sample(rng, theta, S, d=d, k=k, noise=noise, noise_coord=noise_coord)
    per = _outer(joint_score(theta, x, z, d=d, k=k, noise=noise, noise_coord=noise_coord))
    return per.mean(axis=0), per


def marginal_fisher_mc(
    rng: np.random.Generator,
    theta,
    S: int,
    *,
    d: int,
    k: int,
    noise: str = "iso",
    noise_coord: str = "log",
):
    r"""Monte Carlo marginal Fisher with the exact marginal score at :math:`x_s \sim p(x)`.

    .. math::

        \hat F_{\mathrm{marg}} = \frac1S\sum_s \nabla\log p(x_s)\nabla\log p(x_s)^\top,

    unbiased for :func:`marginal_fisher_ppca`. The latents drawn by :func:`sample` are
    discarded.

    Parameters
    ----------
    rng : numpy.random.Generator
    theta : array_like, shape (P,)
    S : int
        Number of draws (``>= 2``).
    d, k : int
    noise : {"iso", "diag"}, default "iso"
    noise_coord : {"log", "var"}, default "log"

    Returns
    -------
    fisher : ndarray, shape (P, P)
    per_sample : ndarray, shape (S, P, P)

    Raises
    ------
    ValueError
        On invalid sizes or parameters.

    Examples
    --------
    >>> theta = pack(np.ones((2, 1)), np.zeros(2), 0.5)
    >>> F, per = marginal_fisher_mc(np.random.default_rng(0), theta, 50, d=2, k=1)
    >>> bool(np.allclose(F, F.T))
    True
    """
    S = as_int(S, "S", minimum=2)
    x, _ = sample(rng, theta, S, d=d, k=k, noise=noise, noise_coord=noise_coord)
    per = _outer(marginal_score(theta, x, d=d, k=k, noise=noise, noise_coord=noise_coord))
    return per.mean(axis=0), per


def posterior_proposal(
    theta, *, d: int, k: int, noise: str = "iso", noise_coord: str = "log"
) -> Proposal:
    r"""Return the exact posterior as an importance-sampling proposal ``(mean_fn, cov_fn)``.

    ``mean_fn(x)`` maps ``x`` of shape ``(n, d)`` to :math:`\mu` of shape ``(n, k)`` and
    ``cov_fn(x)`` returns :math:`\Sigma` of shape ``(k, k)`` (see :func:`posterior`).

    Parameters
    ----------
    theta : array_like, shape (P,)
    d, k : int
        Observed and latent dimensions.
    noise : {"iso", "diag"}, default "iso"
    noise_coord : {"log", "var"}, default "log"

    Returns
    -------
    mean_fn, cov_fn : callable
        Gaussian proposal :math:`q(z\mid x) = p(z\mid x;\theta)`.

    Raises
    ------
    ValueError
        On invalid options or parameters.

    Examples
    --------
    >>> theta = pack(np.ones((2, 1)), np.zeros(2), 1.0)
    >>> mean_fn, cov_fn = posterior_proposal(theta, d=2, k=1)
    >>> mean_fn(np.array([[1.0, 2.0]])).round(12).tolist(), cov_fn(np.zeros((1, 2))).shape
    ([[1.0]], (1, 1))
    """
    _check_options(noise, noise_coord)
    d, k = _check_dims(d, k)
    theta = as_array(theta, "theta", ndim=1).copy()
    _unpack(theta, d, k, noise, noise_coord)
    kw = {"d": d, "k": k, "noise": noise, "noise_coord": noise_coord}

    def mean_fn(x):
        return posterior(theta, x, **kw)[0]

    def cov_fn(x):
        return posterior(theta, x, **kw)[1]

    return mean_fn, cov_fn


def importance_log_weights(
    theta,
    x,
    eps,
    proposal: Proposal,
    *,
    d: int,
    k: int,
    noise: str = "iso",
    noise_coord: str = "log",
):
    r"""Log importance weights :math:`\log p(x, z_j) - \log q(z_j\mid x)` from pre-drawn noise.

    The proposal is Gaussian, :math:`q(z\mid x) = N(m(x), V(x))` with
    ``(mean_fn, cov_fn) = proposal``; :math:`z_j = m(x) + L\varepsilon_j`, :math:`LL^\top = V`,
    so :math:`\log q(z_j\mid x) = -\tfrac k2\log 2\pi - \log|L| - \tfrac12\lVert
    \varepsilon_j\rVert^2`. For :math:`q = p(z\mid x)` every weight equals :math:`p(x)` exactly.

    Parameters
    ----------
    theta : array_like, shape (P,)
    x : array_like, shape (n, d)
    eps : array_like, shape (n, K, k)
        Standard-normal noise, ``K`` proposals per row of ``x``.
    proposal : tuple of callables ``(mean_fn, cov_fn)``
        ``mean_fn(x) -> (n, k)``; ``cov_fn(x) -> (k, k)`` or ``(n, k, k)``, positive definite.
    d, k : int
        Observed and latent dimensions.
    noise : {"iso", "diag"}, default "iso"
    noise_coord : {"log", "var"}, default "log"

    Returns
    -------
    log_w : ndarray, shape (n, K)
    z : ndarray, shape (n, K, k)
        The proposals.

    Raises
    ------
    ValueError
        On inconsistent shapes, invalid parameters, or a proposal returning wrong shapes or a
        covariance that is not positive definite.

    Examples
    --------
    >>> theta = pack(np.ones((2, 1)), np.zeros(2), 1.0)
    >>> x = np.array([[0.5, -0.2]])
    >>> q = posterior_proposal(theta, d=2, k=1)
    >>> log_w, z = importance_log_weights(theta, x, np.ones((1, 3, 1)), q, d=2, k=1)
    >>> bool(np.allclose(log_w, log_marginal(theta, x, d=2, k=1)[0], atol=1e-12))
    True
    """
    x2, _, d, k, W, b, _, psi_d = _setup(theta, x, d, k, noise, noise_coord)
    n = x2.shape[0]
    eps = as_array(eps, "eps", ndim=3)
    if eps.shape[0] != n or eps.shape[2] != k:
        raise ValueError(f"eps must have shape ({n}, K, {k}), got {eps.shape}")
    if not (isinstance(proposal, tuple) and len(proposal) == 2 and all(map(callable, proposal))):
        raise TypeError("proposal must be a tuple (mean_fn, cov_fn) of callables")
    mean = as_array(proposal[0](x2), "proposal mean_fn(x)", shape=(n, k))
    cov = as_array(proposal[1](x2), "proposal cov_fn(x)", ndim=(2, 3))
    if cov.shape not in ((k, k), (n, k, k)):
        raise ValueError(
            f"proposal cov_fn(x) must have shape ({k}, {k}) or ({n}, {k}, {k}), got {cov.shape}"
        )
    try:
        L = np.linalg.cholesky(_sym(cov))
    except np.linalg.LinAlgError:
        raise ValueError("proposal cov_fn(x) must be positive definite") from None
    L = np.broadcast_to(L, (n, k, k))
    z = mean[:, None, :] + np.einsum("nij,nKj->nKi", L, eps)
    log_det = np.sum(np.log(np.diagonal(L, axis1=1, axis2=2)), axis=1)
    log_q = -0.5 * (k * _LOG_2PI + np.sum(eps * eps, axis=-1)) - log_det[:, None]
    log_p = _log_joint_core(W, b, psi_d, x2[:, None, :], z)
    return log_p - log_q, z


def marginal_likelihood_is(
    rng: np.random.Generator,
    theta,
    x,
    K: int,
    proposal: Proposal,
    *,
    d: int,
    k: int,
    noise: str = "iso",
    noise_coord: str = "log",
):
    r"""Importance-sampling estimate of the marginal likelihood :math:`p(x)`, per row.

    .. math::

        \hat p(x) = \frac1K\sum_{j=1}^K w_j, \qquad w_j = \frac{p(x, z_j)}{q(z_j\mid x)},
        \quad z_j \sim q(\cdot\mid x),

    :math:`E_q[\hat p(x)] = \int p(x,z)\,dz = p(x)` for **any** proposal with
    :math:`q > 0` where :math:`p(x, \cdot) > 0`: the proposal does not change the quantity,
    only how well it is estimated (the project note's point). Its variance
    :math:`\mathrm{Var}_q(w)/K` depends on :math:`q` and is exactly zero for
    :math:`q = p(z\mid x)`, where :math:`w_j = p(x)` for every draw.

    Parameters
    ----------
    rng : numpy.random.Generator
        Draws ``eps`` of shape ``(n, K, k)``.
    theta : array_like, shape (P,)
    x : array_like, shape (n, d)
    K : int
        Proposals per row.
    proposal : tuple ``(mean_fn, cov_fn)``
        See :func:`importance_log_weights`.
    d, k : int
        Observed and latent dimensions.
    noise : {"iso", "diag"}, default "iso"
    noise_coord : {"log", "var"}, default "log"

    Returns
    -------
    p_hat : ndarray, shape (n,)
    w : ndarray, shape (n, K)
        The individual weights, i.i.d. unbiased estimates of :math:`p(x)`.

    Raises
    ------
    ValueError
        See :func:`importance_log_weights`.

    Examples
    --------
    >>> theta = pack(np.ones((2, 1)), np.zeros(2), 1.0)
    >>> x = np.array([[0.5, -0.2]])
    >>> q = posterior_proposal(theta, d=2, k=1)
    >>> p_hat, w = marginal_likelihood_is(np.random.default_rng(0), theta, x, 4, q, d=2, k=1)
    >>> bool(np.allclose(w, np.exp(log_marginal(theta, x, d=2, k=1))[0], rtol=1e-12))
    True
    """
    x2, _, d, k, *_ = _setup(theta, x, d, k, noise, noise_coord)
    K = as_int(K, "K")
    eps = rng.standard_normal((x2.shape[0], K, k))
    log_w, _ = importance_log_weights(
        theta, x2, eps, proposal, d=d, k=k, noise=noise, noise_coord=noise_coord
    )
    w = np.exp(log_w)
    return w.mean(axis=1), w


def marginal_score_is(
    rng: np.random.Generator,
    theta,
    x,
    K: int,
    proposal: Proposal,
    *,
    d: int,
    k: int,
    noise: str = "iso",
    noise_coord: str = "log",
):
    r"""Importance-sampling estimates of the marginal score (Fisher's identity), per row.

    Fisher's identity :math:`\nabla\log p(x) = E_{p(z\mid x)}[\nabla\log p(x, z)]` is estimated
    by self-normalised importance sampling with proposal :math:`q(z\mid x)`:

    .. math::

        \hat s(x) = \sum_j \bar w_j\,\nabla\log p(x, z_j), \qquad
        \bar w_j = w_j / \textstyle\sum_l w_l .

    :math:`\hat s` is consistent but biased at finite ``K`` for a general :math:`q`. The
    unnormalised numerator :math:`\widehat{\nabla p}(x) = \frac1K\sum_j w_j\nabla\log p(x,z_j)`
    is **unbiased** for :math:`\nabla_\theta p(x) = p(x)\nabla\log p(x)` for any :math:`q`.

    For :math:`q = p(z\mid x)` the weights are constant, so :math:`\hat s` is the plain mean of
    ``K`` joint scores at posterior draws: unbiased, but **not** of zero variance; its
    conditional covariance is :math:`F_{z\mid x}(\theta; x)/K` (the per-point missing
    information over ``K``). Only the estimate of :math:`p(x)` has zero variance.

    Parameters
    ----------
    rng : numpy.random.Generator
        Draws ``eps`` of shape ``(n, K, k)``.
    theta : array_like, shape (P,)
    x : array_like, shape (n, d)
    K : int
        Proposals per row.
    proposal : tuple ``(mean_fn, cov_fn)``
        See :func:`importance_log_weights`.
    d, k : int
        Observed and latent dimensions.
    noise : {"iso", "diag"}, default "iso"
    noise_coord : {"log", "var"}, default "log"

    Returns
    -------
    score : ndarray, shape (n, P)
        Self-normalised estimate :math:`\hat s(x)`.
    grad_p : ndarray, shape (n, P)
        Unbiased estimate of :math:`\nabla_\theta p(x)`.
    p_hat : ndarray, shape (n,)
        Unbiased estimate of :math:`p(x)` (so ``score == grad_p / p_hat[:, None]``).

    Raises
    ------
    ValueError
        See :func:`importance_log_weights`.

    Examples
    --------
    >>> theta = pack(np.ones((2, 1)), np.zeros(2), 1.0)
    >>> x = np.array([[0.5, -0.2]])
    >>> q = posterior_proposal(theta, d=2, k=1)
    >>> s, g, p = marginal_score_is(np.random.default_rng(0), theta, x, 3, q, d=2, k=1)
    >>> s.shape, bool(np.allclose(g, s * p[:, None]))
    ((1, 5), True)
    """
    x2, _, d, k, *_ = _setup(theta, x, d, k, noise, noise_coord)
    K = as_int(K, "K")
    eps = rng.standard_normal((x2.shape[0], K, k))
    return _score_is_from_noise(theta, x2, eps, proposal, d, k, noise, noise_coord)


def _score_is_from_noise(theta, x2, eps, proposal, d, k, noise, noise_coord):
    log_w, z = importance_log_weights(
        theta, x2, eps, proposal, d=d, k=k, noise=noise, noise_coord=noise_coord
    )
    _, _, d, k, W, b, psi, psi_d = _setup(theta, x2, d, k, noise, noise_coord)
    J = _pullback(psi, d, k, noise, noise_coord)
    scores = _joint_score_full(W, b, psi_d, x2[:, None, :], z) @ J  # (n, K, P)
    shift = log_w.max(axis=1, keepdims=True)
    w_rel = np.exp(log_w - shift)
    wbar = w_rel / w_rel.sum(axis=1, keepdims=True)
    score = np.einsum("nj,njp->np", wbar, scores)
    w = np.exp(log_w)
    K = log_w.shape[1]
    grad_p = np.einsum("nj,njp->np", w, scores) / K
    return score, grad_p, w.mean(axis=1)


def marginal_fisher_is(
    rng: np.random.Generator,
    theta,
    S: int,
    K: int,
    proposal: Proposal,
    *,
    d: int,
    k: int,
    paired: bool = False,
    noise: str = "iso",
    noise_coord: str = "log",
):
    r"""Marginal Fisher from importance-sampled scores at :math:`x_s \sim p(x)`.

    Draws :math:`x_s` with :func:`sample`, then per :math:`x_s` the self-normalised score
    :math:`\hat s(x_s)` of :func:`marginal_score_is` with ``K`` proposals.

    - ``paired=False``: per-sample :math:`\hat s\hat s^\top`. Even with the exact posterior as
      proposal this is biased upward by the score's noise:

      .. math::

          E[\hat s\hat s^\top] = F_{\mathrm{marg}} + \tfrac1K I_{\mathrm{miss}}
          \qquad (q = p(z\mid x)),

      which interpolates between the joint Fisher (``K = 1``) and the marginal Fisher
      (``K`` :math:`\to\infty`).
    - ``paired=True``: two independent sets of ``K`` proposals give :math:`\hat s_1, \hat s_2`
      and the per-sample matrix :math:`\tfrac12(\hat s_1\hat s_2^\top + \hat s_2\hat s_1^\top)`;
      unbiased for :math:`F_{\mathrm{marg}}` when :math:`q = p(z\mid x)` (each :math:`\hat s_i`
      is then conditionally unbiased), and biased by :math:`O(1/K)` (self-normalisation)
      otherwise.

    Parameters
    ----------
    rng : numpy.random.Generator
        Draws, in order, the data (:func:`sample`), ``eps`` of shape ``(S, K, k)``, and for
        ``paired=True`` a second ``eps``.
    theta : array_like, shape (P,)
    S : int
        Number of data draws (``>= 2``).
    K : int
        Proposals per data draw.
    proposal : tuple ``(mean_fn, cov_fn)``
        See :func:`importance_log_weights`.
    d, k : int
    paired : bool, default False
    noise : {"iso", "diag"}, default "iso"
    noise_coord : {"log", "var"}, default "log"

    Returns
    -------
    fisher : ndarray, shape (P, P)
    per_sample : ndarray, shape (S, P, P)

    Raises
    ------
    ValueError
        On invalid sizes or parameters, or an invalid proposal.

    Examples
    --------
    >>> theta = pack(np.ones((2, 1)), np.zeros(2), 0.5)
    >>> q = posterior_proposal(theta, d=2, k=1)
    >>> F, per = marginal_fisher_is(np.random.default_rng(0), theta, 10, 4, q, d=2, k=1,
    ...                             paired=True)
    >>> per.shape
    (10, 5, 5)
    """
    S = as_int(S, "S", minimum=2)
    K = as_int(K, "K")
    x, _ = sample(rng, theta, S, d=d, k=k, noise=noise, noise_coord=noise_coord)
    opts = (d, k, noise, noise_coord)
    s1 = _score_is_from_noise(theta, x, rng.standard_normal((S, K, k)), proposal, *opts)[0]
    if paired:
        s2 = _score_is_from_noise(theta, x, rng.standard_normal((S, K, k)), proposal, *opts)[0]
        per = _sym(s1[:, :, None] * s2[:, None, :])
    else:
        per = _outer(s1)
    return per.mean(axis=0), per


# --------------------------------------------------------------------------------------------
# maximum likelihood (Tipping & Bishop 1999)
# --------------------------------------------------------------------------------------------


def _mle_parts(x, k):
    x = as_array(x, "x", ndim=2)
    n, d = x.shape
    if n < 2:
        raise ValueError(f"x must have at least 2 rows, got {n}")
    k = as_int(k, "k")
    if k >= d:
        raise ValueError(
            f"k must be < d for the pPCA MLE (sigma^2 is the mean of the d - k "
            f"discarded eigenvalues), got k={k}, d={d}"
        )
    mean = x.mean(axis=0)
    xc = x - mean
    lam, U = np.linalg.eigh(xc.T @ xc / n)
    lam, U = lam[::-1], U[:, ::-1]
    sigma2 = float(np.mean(lam[k:]))
    if not sigma2 > 0:
        raise ValueError(
            f"x: the discarded eigenvalues of the sample covariance are all zero "
            f"(sigma^2_ML = {sigma2}); the data lie in a {k}-dim subspace"
        )
    return mean, lam, U, sigma2


def ppca_mle(x, k: int, *, noise_coord: str = "log") -> np.ndarray:
    r"""Closed-form maximum-likelihood pPCA parameters (Tipping & Bishop 1999, Eqs 7-8).

    With :math:`\bar x` the sample mean and :math:`S = \frac1n\sum_i (x_i-\bar x)(x_i-\bar x)^\top
    = U\Lambda U^\top` (eigenvalues :math:`\lambda_1\ge\dots\ge\lambda_d`):

    .. math::

        b_{\mathrm{ML}} = \bar x, \qquad
        \sigma^2_{\mathrm{ML}} = \frac1{d-k}\sum_{j>k}\lambda_j, \qquad
        W_{\mathrm{ML}} = U_k(\Lambda_k - \sigma^2_{\mathrm{ML}} I)^{1/2}

    (unique up to :math:`W \mapsto WR`, :math:`R` orthogonal, and the eigenvector signs).

    Parameters
    ----------
    x : array_like, shape (n, d)
        Data, ``n >= 2``.
    k : int
        Latent dimension, ``1 <= k < d``.
    noise_coord : {"log", "var"}, default "log"
        Coordinate of the returned noise entry.

    Returns
    -------
    theta : ndarray, shape (d*k + d + 1,)
        Packed ``noise="iso"`` parameters.

    Raises
    ------
    ValueError
        If ``x`` is not a finite 2-D array with ``n >= 2``, ``k >= d``, or
        :math:`\sigma^2_{\mathrm{ML}} = 0`.

    Examples
    --------
    >>> x = np.random.default_rng(0).standard_normal((50, 3))
    >>> theta = ppca_mle(x, 1)
    >>> bool(np.isclose(log_marginal(theta, x, d=3, k=1).mean(), ppca_max_loglik(x, 1)))
    True
    """
    _check_options("iso", noise_coord)
    mean, lam, U, sigma2 = _mle_parts(x, k)
    W = U[:, :k] * np.sqrt(np.maximum(lam[:k] - sigma2, 0.0))
    return pack(W, mean, sigma2, noise="iso", noise_coord=noise_coord)


def ppca_max_loglik(x, k: int) -> float:
    r"""Maximal pPCA log-likelihood **per data point**, in closed form.

    At the MLE, :math:`C = U_k\Lambda_k U_k^\top + \sigma^2(I - U_kU_k^\top)`, so
    :math:`\log|C| = \sum_{j\le k}\log\lambda_j + (d-k)\log\sigma^2` and
    :math:`\mathrm{tr}(C^{-1}S) = \sum_{j\le k}\lambda_j/\lambda_j + \sum_{j>k}\lambda_j/\sigma^2
    = k + (d-k) = d`. Hence

    .. math::

        \frac1n\max_\theta\sum_i\log p(x_i;\theta) = -\frac d2\log 2\pi - \frac12\Big[
        \sum_{j\le k}\log\lambda_j + (d-k)\log\sigma^2_{\mathrm{ML}} + d\Big].

    Parameters
    ----------
    x : array_like, shape (n, d)
    k : int
        Latent dimension, ``1 <= k < d``.

    Returns
    -------
    float

    Raises
    ------
    ValueError
        As :func:`ppca_mle`.

    Examples
    --------
    >>> x = np.random.default_rng(1).standard_normal((40, 4))
    >>> bool(ppca_max_loglik(x, 2) >= ppca_max_loglik(x, 1))
    True
    """
    _, lam, _, sigma2 = _mle_parts(x, k)
    d = lam.shape[0]
    if not lam[k - 1] > 0:
        raise ValueError("x: the sample covariance has fewer than k positive eigenvalues")
    return float(
        -0.5 * d * _LOG_2PI - 0.5 * (np.sum(np.log(lam[:k])) + (d - k) * np.log(sigma2) + d)
    )


def principal_angles(U, V) -> np.ndarray:
    r"""Principal angles between the column spaces of ``U`` and ``V``, ascending.

    Uses :func:`scipy.linalg.subspace_angles` (which returns them descending). For
    orthonormal bases :math:`\cos\theta_j` are the singular values of :math:`U^\top V`.

    Parameters
    ----------
    U : array_like, shape (d, p)
    V : array_like, shape (d, q)

    Returns
    -------
    ndarray, shape (min(p, q),)
        Angles in radians, in :math:`[0, \pi/2]`, smallest first.

    Raises
    ------
    ValueError
        If the inputs are not finite 2-D arrays with the same number of rows.

    Examples
    --------
    >>> principal_angles(np.eye(3)[:, :1], np.array([[1.0], [1.0], [0.0]])).round(6).tolist()
    [0.785398]
    """
    U = as_array(U, "U", ndim=2)
    V = as_array(V, "V", ndim=2)
    if U.shape[0] != V.shape[0]:
        raise ValueError(
            f"U and V must have the same number of rows, got {U.shape[0]} and {V.shape[0]}"
        )
    return np.sort(scipy.linalg.subspace_angles(U, V))
