r"""Maximum likelihood of probabilistic PCA in closed form (Tipping & Bishop 1999, Eqs 7-8).

References
----------
M. E. Tipping and C. M. Bishop, "Probabilistic principal component analysis", JRSS-B 61(3),
1999, pp. 611-622.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg
from numpy.typing import ArrayLike

from refvpng._checks import as_array, finite_output
from refvpng.models.ppca.spec import PPCASpec

__all__ = ["mle_closed", "max_loglik_closed", "principal_angles"]

_LOG_2PI = float(np.log(2.0 * np.pi))


def _mle_parts(spec: PPCASpec, x):
    if not isinstance(spec, PPCASpec):
        raise TypeError(f"spec must be a PPCASpec, got {type(spec).__name__}")
    if spec.noise != "iso":
        raise ValueError(f"spec must have noise='iso': the closed-form MLE is pPCA's, got {spec.noise!r}")
    x = as_array(x, "x", ndim=2)
    n, d = x.shape
    if d != spec.d:
        raise ValueError(f"x must have {spec.d} columns, got shape {x.shape}")
    if n < 2:
        raise ValueError(f"x must have at least 2 rows, got {n}")
    k = spec.k
    if k >= d:
        raise ValueError(
            f"spec.k must be < d for the pPCA MLE (sigma^2 is the mean of the d - k "
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


@finite_output
def mle_closed(spec: PPCASpec, x: ArrayLike) -> np.ndarray:
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
    spec : PPCASpec
        ``noise="iso"``, ``k < d``; the result is packed in its ``noise_coord``.
    x : array_like, shape (n, d)
        Data, ``n >= 2``.

    Returns
    -------
    theta : ndarray, shape (spec.n_params,)

    Raises
    ------
    ValueError
        If ``x`` is not a finite ``(n, d)`` array with ``n >= 2``, ``k >= d``, the noise is not
        isotropic, or :math:`\sigma^2_{\mathrm{ML}} = 0`.

    Examples
    --------
    >>> from refvpng.models.ppca.closed import log_marginal_closed
    >>> spec = PPCASpec(3, 1)
    >>> x = np.random.default_rng(0).standard_normal((50, 3))
    >>> theta = mle_closed(spec, x)
    >>> bool(np.isclose(log_marginal_closed(spec, theta, x).mean(), max_loglik_closed(spec, x)))
    True
    """
    mean, lam, U, sigma2 = _mle_parts(spec, x)
    k = spec.k
    W = U[:, :k] * np.sqrt(np.maximum(lam[:k] - sigma2, 0.0))
    return spec.pack(W, mean, sigma2)


@finite_output
def max_loglik_closed(spec: PPCASpec, x: ArrayLike) -> float:
    r"""Maximal pPCA log-likelihood **per data point**, in closed form.

    At the MLE :math:`\log|C| = \sum_{j\le k}\log\lambda_j + (d-k)\log\sigma^2` and
    :math:`\mathrm{tr}(C^{-1}S) = d`, hence

    .. math::
        \frac1n\max_\theta\sum_i\log p(x_i;\theta) = -\frac d2\log 2\pi - \frac12\Big[
        \sum_{j\le k}\log\lambda_j + (d-k)\log\sigma^2_{\mathrm{ML}} + d\Big].

    Parameters
    ----------
    spec : PPCASpec
        ``noise="iso"``, ``k < d``.
    x : array_like, shape (n, d)

    Returns
    -------
    float

    Raises
    ------
    ValueError
        As :func:`mle_closed`.

    Examples
    --------
    >>> x = np.random.default_rng(1).standard_normal((40, 4))
    >>> bool(max_loglik_closed(PPCASpec(4, 2), x) >= max_loglik_closed(PPCASpec(4, 1), x))
    True
    """
    _, lam, _, sigma2 = _mle_parts(spec, x)
    d, k = spec.d, spec.k
    if not lam[k - 1] > 0:
        raise ValueError("x: the sample covariance has fewer than k positive eigenvalues")
    return float(-0.5 * d * _LOG_2PI - 0.5 * (np.sum(np.log(lam[:k])) + (d - k) * np.log(sigma2) + d))


@finite_output
def principal_angles(U: ArrayLike, V: ArrayLike) -> np.ndarray:
    r"""Principal angles between the column spaces of ``U`` and ``V``, ascending.

    For orthonormal bases :math:`\cos\theta_j` are the singular values of :math:`U^\top V`
    (:func:`scipy.linalg.subspace_angles`, which returns them descending).

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
        raise ValueError(f"U and V must have the same number of rows, got {U.shape[0]} and {V.shape[0]}")
    return np.sort(scipy.linalg.subspace_angles(U, V))
