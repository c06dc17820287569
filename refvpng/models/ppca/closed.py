r"""Closed forms of pPCA / factor analysis: densities, posterior, scores and three Fishers.

Every Fisher here is the Fisher of **one** observation (and, for the joint, its latent): the
Fisher of ``n`` i.i.d. points is ``n`` times it, which is what the generic estimators of
:mod:`refvpng.curvature.latent_fisher` and :mod:`refvpng.curvature.marginal_is` (sums over data
points) estimate. Matrices are in the
packed coordinate of the :class:`~refvpng.models.ppca.spec.PPCASpec` (column-major
:math:`\mathrm{vec}W`, then :math:`b`, then the noise coordinate), built in the full coordinates
and pulled back, :math:`F = J^\top F_{\mathrm{full}} J` (:meth:`PPCASpec.pullback`).

The missing-information principle (Louis 1982) ties the three together,

.. math::
    F_{\mathrm{joint}}(\theta) = F_{\mathrm{marg}}(\theta)
        + E_{p(x)}\big[\mathrm{Cov}_{p(z \mid x)}(\nabla_\theta \log p(x, z))\big],

and it is an identity between three independent closed forms here. The marginal Fisher is
singular along the rotations :math:`W \mapsto WR`; the joint Fisher is diagonal and regular.

References
----------
M. E. Tipping and C. M. Bishop, "Probabilistic principal component analysis", JRSS-B 61(3),
1999 (Eq 6 the posterior). T. A. Louis, "Finding the observed information matrix when using
the EM algorithm", JRSS-B 44(2), 1982.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg
from numpy.typing import ArrayLike

from refvpng._checks import check_finite_output, finite_output
from refvpng.models.ppca.spec import PPCASpec

__all__ = [
    "log_marginal_closed",
    "posterior_closed",
    "marginal_score_closed",
    "joint_fisher_closed",
    "marginal_fisher_closed",
    "missing_information_closed",
]

_LOG_2PI = float(np.log(2.0 * np.pi))


def _sym(a: np.ndarray) -> np.ndarray:
    return 0.5 * (a + np.swapaxes(a, -1, -2))


def _spd_inv(a: np.ndarray) -> np.ndarray:
    """Symmetric inverse of an SPD matrix through its Cholesky factor."""
    c = scipy.linalg.cho_factor(a, lower=True)
    return _sym(scipy.linalg.cho_solve(c, np.eye(a.shape[0])))


def _setup(spec: PPCASpec, theta):
    if not isinstance(spec, PPCASpec):
        raise TypeError(f"spec must be a PPCASpec, got {type(spec).__name__}")
    W, b, _ = spec.unpack(theta)
    psi_d = spec.psi_diag(theta)
    check_finite_output(W @ W.T + np.diag(psi_d), "marginal covariance", "W W^T + Psi")
    return W, b, psi_d, spec.pullback(theta)


def _colmajor(wk: np.ndarray) -> np.ndarray:
    """``(..., d, k)`` per-entry values of W -> ``(..., d*k)`` in column-major vec order."""
    return np.swapaxes(wk, -1, -2).reshape(*wk.shape[:-2], -1)


# --------------------------------------------------------------------------------------------
# densities and posterior
# --------------------------------------------------------------------------------------------


@finite_output
def log_marginal_closed(spec: PPCASpec, theta: ArrayLike, x: ArrayLike) -> np.ndarray | float:
    r"""Log marginal density :math:`\log p(x; \theta) = \log N(x; b, C)`, per row.

    .. math::
        \log p(x) = -\tfrac12\big(d\log 2\pi + \log\lvert C\rvert + (x-b)^\top C^{-1}(x-b)\big),
        \qquad C = W W^\top + \Psi .

    Parameters
    ----------
    spec, theta, x : PPCASpec, array_like (spec.n_params,), array_like (n, d) or (d,)
        The model, its parameters and the observations (one value per row).

    Returns
    -------
    ndarray, shape (n,), or float for 1-D ``x``

    Raises
    ------
    ValueError
        On inconsistent shapes or invalid parameters.

    Examples
    --------
    >>> spec = PPCASpec(2, 1)
    >>> theta = spec.pack(np.ones((2, 1)), np.zeros(2), 1.0)
    >>> from scipy.stats import multivariate_normal
    >>> ref = multivariate_normal(np.zeros(2), [[2.0, 1.0], [1.0, 2.0]]).logpdf([0.3, -1.0])
    >>> bool(np.isclose(log_marginal_closed(spec, theta, [0.3, -1.0]), ref))
    True
    """
    W, b, psi_d, _ = _setup(spec, theta)
    x2, one = spec.check_data(x)
    L = np.linalg.cholesky(W @ W.T + np.diag(psi_d))
    u = scipy.linalg.solve_triangular(L, (x2 - b).T, lower=True)
    out = -0.5 * (spec.d * _LOG_2PI + 2.0 * np.sum(np.log(np.diag(L))) + np.sum(u * u, axis=0))
    return float(out[0]) if one else out


def _posterior_core(W, psi_d):
    """``Sigma = M^{-1}``, ``M``, and ``B = Sigma W^T Psi^{-1}`` (``mean = B (x - b)``)."""
    Wp = W / psi_d[:, None]
    M = np.eye(W.shape[1]) + W.T @ Wp
    Sigma = _spd_inv(M)
    return Sigma, M, Sigma @ Wp.T


@finite_output
def posterior_closed(spec: PPCASpec, theta: ArrayLike, x: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    r"""Exact posterior :math:`p(z \mid x; \theta) = N(\mu, \Sigma)` (Tipping & Bishop, Eq 6).

    .. math::
        M = W^\top \Psi^{-1} W + I_k, \qquad \Sigma = M^{-1}, \qquad
        \mu = M^{-1} W^\top \Psi^{-1} (x - b) = W^\top C^{-1} (x - b).

    Parameters
    ----------
    spec, theta, x : PPCASpec, array_like (spec.n_params,), array_like (n, d) or (d,)
        The model, its parameters and the conditioning observations.

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
    >>> spec = PPCASpec(2, 1, noise_coord="var")
    >>> theta = spec.pack(np.ones((2, 1)), np.zeros(2), 1.0)
    >>> mean, cov = posterior_closed(spec, theta, [1.0, 2.0])
    >>> mean.round(12).tolist(), cov.round(12).tolist()
    ([1.0], [[0.333333333333]])
    """
    W, b, psi_d, _ = _setup(spec, theta)
    x2, one = spec.check_data(x)
    Sigma, _, B = _posterior_core(W, psi_d)
    mean = (x2 - b) @ B.T
    return (mean[0] if one else mean), Sigma


@finite_output
def marginal_score_closed(spec: PPCASpec, theta: ArrayLike, x: ArrayLike) -> np.ndarray:
    r"""Score of the marginal, :math:`\nabla_\theta \log N(x; b, C(\theta))`, per row.

    With :math:`y = x - b`, :math:`\alpha = C^{-1} y` and
    :math:`dC = dW\,W^\top + W\,dW^\top + d\Psi`:

    .. math::
        \nabla_W = (\alpha\alpha^\top - C^{-1})\,W, \qquad \nabla_b = \alpha, \qquad
        \frac{\partial}{\partial\psi_a} = \tfrac12\big(\alpha_a^2 - (C^{-1})_{aa}\big),

    pulled back to the packed coordinate by :math:`J^\top`.

    Parameters
    ----------
    spec, theta, x : PPCASpec, array_like (spec.n_params,), array_like (n, d) or (d,)
        The model, its parameters and the points at which the score is taken.

    Returns
    -------
    ndarray, shape (n, P) or (P,)

    Raises
    ------
    ValueError
        On inconsistent shapes or invalid parameters.

    Examples
    --------
    >>> spec = PPCASpec(1, 1)
    >>> marginal_score_closed(spec, spec.pack(np.zeros((1, 1)), np.zeros(1), 1.0), [2.0]).tolist()
    [0.0, 2.0, 1.5]
    """
    W, b, psi_d, J = _setup(spec, theta)
    x2, one = spec.check_data(x)
    Cinv = _spd_inv(W @ W.T + np.diag(psi_d))
    alpha = (x2 - b) @ Cinv
    sW = alpha[:, :, None] * (alpha @ W)[:, None, :] - (Cinv @ W)[None]
    spsi = 0.5 * (alpha * alpha - np.diag(Cinv))
    s = np.concatenate([_colmajor(sW), alpha, spsi], axis=1) @ J
    return s[0] if one else s


# --------------------------------------------------------------------------------------------
# Fishers
# --------------------------------------------------------------------------------------------


@finite_output
def joint_fisher_closed(spec: PPCASpec, theta: ArrayLike) -> np.ndarray:
    r"""Fisher of the joint :math:`p(x, z; \theta)` for **one** data point.

    Only :math:`p(x \mid z)` has parameters. For a Gaussian with mean :math:`Wz + b` and
    covariance :math:`\Psi`, :math:`J_m = [\,z^\top \otimes I_d \;\; I_d \;\; 0\,]` and, with
    :math:`E[z] = 0`, :math:`E[zz^\top] = I_k`, in the full coordinates

    .. math::
        F_{\mathrm{joint}} = \mathrm{blockdiag}\big(I_k \otimes \Psi^{-1},\; \Psi^{-1},\;
        \tfrac12\Psi^{-2}\big),

    a **diagonal** matrix. In the packed coordinate the noise block is
    :math:`N^\top \tfrac12\Psi^{-2} N`: ``"diag"``/``"log"``: :math:`\tfrac12 I_d`;
    ``"diag"``/``"var"``: :math:`\mathrm{diag}(1/(2\psi_a^2))`; ``"iso"``/``"log"``:
    :math:`d/2`; ``"iso"``/``"var"``: :math:`d/(2\psi^2)`.

    Parameters
    ----------
    spec : PPCASpec
    theta : array_like, shape (spec.n_params,)

    Returns
    -------
    ndarray, shape (P, P)
        Diagonal and positive definite.

    Raises
    ------
    ValueError
        If ``theta`` has the wrong length, is not finite or has a variance <= 0.

    Examples
    --------
    >>> spec = PPCASpec(2, 1)
    >>> np.diag(joint_fisher_closed(spec, spec.pack(np.ones((2, 1)), np.zeros(2), 0.5))).tolist()
    [2.0, 2.0, 2.0, 2.0, 1.0]
    """
    _, _, psi_d, J = _setup(spec, theta)
    full = np.diag(np.concatenate([np.tile(1.0 / psi_d, spec.k), 1.0 / psi_d, 0.5 / psi_d**2]))
    return _sym(J.T @ full @ J)


@finite_output
def marginal_fisher_closed(spec: PPCASpec, theta: ArrayLike) -> np.ndarray:
    r"""Fisher of the marginal :math:`x \sim N(b, C(\theta))` for **one** data point.

    .. math::
        F_{ij} = \partial_i b^\top C^{-1}\partial_j b
               + \tfrac12\,\mathrm{tr}\big(C^{-1}\partial_i C\,C^{-1}\partial_j C\big).

    With :math:`\partial C/\partial W_{ac} = e_a w_c^\top + w_c e_a^\top`,
    :math:`\partial C/\partial\psi_a = e_a e_a^\top`, :math:`A = C^{-1}`, :math:`G = C^{-1}W`,
    :math:`H = W^\top C^{-1}W`, in the full coordinates (column-major :math:`\mathrm{vec}W`)

    .. math::
        F_{WW} = H \otimes A + (G^\top \otimes G) K\ \text{ i.e. }
        F_{(ac),(a'c')} = H_{cc'}A_{aa'} + G_{ac'}G_{a'c}, \\
        F_{(ac),\psi_i} = A_{ai}G_{ic}, \qquad
        F_{\psi_i\psi_j} = \tfrac12 A_{ij}^2, \qquad F_{bb} = A,

    and zero between ``b`` and the rest (:math:`K` the commutation matrix, :math:`K\,\mathrm{vec}X
    = \mathrm{vec}X^\top` for :math:`X` of shape ``(d, k)``). For ``"iso"``/``"var"`` this gives the familiar
    :math:`F_{W\psi} = \mathrm{vec}(C^{-2}W)`, :math:`F_{\psi\psi} = \tfrac12\mathrm{tr}(C^{-2})`.
    For ``k >= 2`` the matrix is singular: :math:`\delta W = W\Omega` with :math:`\Omega`
    antisymmetric leaves :math:`C` unchanged.

    Parameters
    ----------
    spec : PPCASpec
        Any noise model and coordinate.
    theta : array_like, shape (spec.n_params,)

    Returns
    -------
    ndarray, shape (P, P)
        Positive semi-definite, singular along the rotations for ``k >= 2``.

    Raises
    ------
    ValueError
        As :func:`joint_fisher_closed`.

    Examples
    --------
    >>> spec = PPCASpec(2, 1, noise_coord="var")
    >>> F = marginal_fisher_closed(spec, spec.pack(np.zeros((2, 1)), np.zeros(2), 1.0))
    >>> np.diag(F).tolist()   # W = 0: no information about W; tr(I)/2 for psi
    [0.0, 0.0, 1.0, 1.0, 1.0]
    """
    W, _, psi_d, J = _setup(spec, theta)
    d, k = W.shape
    A = _spd_inv(W @ W.T + np.diag(psi_d))
    G = A @ W
    H = _sym(W.T @ G)
    dk = d * k
    F = np.zeros((dk + 2 * d, dk + 2 * d))
    F[:dk, :dk] = np.kron(H, A) + np.einsum("af,ec->cafe", G, G).reshape(dk, dk)
    F[dk : dk + d, dk : dk + d] = A
    FWpsi = np.einsum("ai,ic->cai", A, G).reshape(dk, d)
    F[:dk, dk + d :] = FWpsi
    F[dk + d :, :dk] = FWpsi.T
    F[dk + d :, dk + d :] = 0.5 * A * A
    return _sym(J.T @ F @ J)


def _posterior_fisher_full(W, psi_d, m_y, S_y):
    """Mean over data of the Fisher of ``p(z | x)`` given ``E[y]`` and ``E[y y^T]``, y = x - b."""
    d, k = W.shape
    dk = d * k
    P = dk + 2 * d
    pinv = 1.0 / psi_d
    Wp = W * pinv[:, None]
    Sigma, M, B = _posterior_core(W, psi_d)
    Ik, Id = np.eye(k), np.eye(d)
    # dM (P, k, k) and d(W^T Psi^{-1}) (P, k, d); W rows in column-major order (c, a)
    dM = np.zeros((P, k, k))
    dWtP = np.zeros((P, k, d))
    dM[:dk] = (np.einsum("cj,al->cajl", Ik, Wp) + np.einsum("aj,cl->cajl", Wp, Ik)).reshape(dk, k, k)
    dWtP[:dk] = np.einsum("cj,ae->caje", Ik, np.diag(pinv)).reshape(dk, k, d)
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


@finite_output
def missing_information_closed(spec: PPCASpec, theta: ArrayLike, x: ArrayLike | None = None) -> np.ndarray:
    r"""Missing information: the expected Fisher of the posterior :math:`p(z \mid x; \theta)`.

    .. math::
        I_{\mathrm{miss}} = E_{p(x)}\big[\mathrm{Cov}_{p(z\mid x)}(\nabla_\theta\log p(x,z))\big]
        = E_{p(x)}\big[F_{z\mid x}(\theta; x)\big],

    computed **independently** of the joint and marginal Fishers from the Gaussian posterior
    :math:`N(\mu, \Sigma)`, :math:`\mu = B y`, :math:`y = x - b`,
    :math:`B = \Sigma W^\top\Psi^{-1}`, :math:`\Sigma = M^{-1}`:

    .. math::
        F_{z\mid x, ij} = \partial_i\mu^\top M\,\partial_j\mu
            + \tfrac12\mathrm{tr}(M\,\partial_i\Sigma\,M\,\partial_j\Sigma), \qquad
        \partial_i\mu = \partial_i B\,y - B\,\partial_i b,

    with :math:`\partial\Sigma = -\Sigma\,\partial M\,\Sigma`,
    :math:`\partial B = \partial\Sigma\,W^\top\Psi^{-1} + \Sigma\,\partial(W^\top\Psi^{-1})`.
    The average over :math:`y` needs only :math:`E[y]` and :math:`E[yy^\top]` (under
    :math:`p(x)`: :math:`0` and :math:`C`). :math:`F_{\mathrm{joint}} = F_{\mathrm{marg}} +
    I_{\mathrm{miss}}` is then an identity between three independent closed forms.

    Parameters
    ----------
    spec : PPCASpec
    theta : array_like, shape (spec.n_params,)
    x : array_like, shape (n, d) or (d,), optional
        If given, the **mean over the rows** of :math:`F_{z\mid x}(\theta; x_i)` (the empirical
        missing information) instead of the expectation over :math:`p(x)`.

    Returns
    -------
    ndarray, shape (P, P)

    Raises
    ------
    ValueError
        On invalid parameters or data.

    Examples
    --------
    >>> spec = PPCASpec(2, 1)
    >>> theta = spec.pack(np.array([[1.0], [0.5]]), np.zeros(2), 0.3)
    >>> Fj, Fm = joint_fisher_closed(spec, theta), marginal_fisher_closed(spec, theta)
    >>> bool(np.allclose(Fj - Fm, missing_information_closed(spec, theta), atol=1e-12))
    True
    """
    W, b, psi_d, J = _setup(spec, theta)
    if x is None:
        m_y, S_y = np.zeros(spec.d), W @ W.T + np.diag(psi_d)
    else:
        x2, _ = spec.check_data(x)
        y = x2 - b
        m_y, S_y = y.mean(axis=0), y.T @ y / y.shape[0]
    return _sym(J.T @ _posterior_fisher_full(W, psi_d, m_y, S_y) @ J)
