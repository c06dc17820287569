r"""How close K-FAC comes to the exact VPNG direction of the VAE, at full size.

At a VAE parameter vector :math:`\eta`, a minibatch :math:`x_{1:n}`, latent noise
:math:`\varepsilon_{si}` and predictive uniforms :math:`u_{si}` (those of one
:func:`refvpng.nn.vae.vae_step`), :func:`direction_quality` computes

- the **exact damped VPNG direction** of Eq. 17 on the per-data-point scale of the VAE
  experiment,

  .. math::
      \delta^\star = (\hat F_r / n + \mu I)^{-1} \nabla \hat{\mathcal L},

  by conjugate gradients on the matrix-free operator
  (:func:`refvpng.nn.linearize.vae_fisher_operator`): :math:`\hat F_r` of Eq. 16 with the
  step's own predictive samples (what K-FAC approximates), or the exact :math:`F_r` over
  :math:`x'` at the same latent draws (``exact_over_x_pred=True``); :math:`\mu` defaults to the
  K-FAC factor damping :math:`\gamma`, since :math:`(A + \sqrt\gamma I) \otimes (G + \sqrt\gamma
  I)` approximates :math:`A \otimes G + \gamma I`;
- the directions of the VAE experiment's methods on the same minibatch and noise, from its own
  machinery (:func:`refvpng.nn.vae.vae_step` factors into
  :func:`refvpng.optim.kfac_direction.kfac_direction`): block-tridiagonal and block-diagonal
  K-FAC VPNG, the q-natural gradient (K-FAC of :math:`F_q` on the encoder, the vanilla gradient
  on the decoder) and the gradient itself; each from this minibatch's factors alone
  (``<name>``) and, when the caller passes the running K-FAC states of a run, from those states
  with this step's factors folded in, exactly the run's next direction (``<name>_running``);
  further directions (e.g. Adam's) may be passed in;
- the cosine of each to :math:`\delta^\star` and the CG iterations and residual.

The driver ``validation/vae_direction_quality.py`` runs a VPNG trajectory and measures at
several of its points.

References
----------
.. [1] Y. Tang and R. Ranganath, "The Variational Predictive Natural Gradient", ICML 2019,
   Eqs. (16), (17) and Section 5.2.
.. [2] J. Martens and R. Grosse, "Optimizing neural networks with Kronecker-factored
   approximate curvature", ICML 2015.
"""

from __future__ import annotations

import time
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

from refvpng._checks import as_array, as_nonneg_scalar, finite_output
from refvpng.curvature.kfac import KFACConfig
from refvpng.nn import vae_step
from refvpng.nn.chain import Chain
from refvpng.nn.linearize import vae_fisher_operator
from refvpng.optim.kfac_direction import kfac_direction

__all__ = ["KFAC_DIRECTIONS", "DirectionQuality", "cosine", "direction_quality"]

KFAC_DIRECTIONS = ("vpng_tridiag", "vpng_blockdiag", "q_natural")
"""The K-FAC directions compared (names as in :data:`refvpng.experiments.vae.METHODS`)."""


class DirectionQuality(NamedTuple):
    r"""What :func:`direction_quality` returns.

    Attributes
    ----------
    cosines : dict of str to float
        Cosine of each direction to :math:`\delta^\star`: ``vpng_tridiag``,
        ``vpng_blockdiag``, ``q_natural`` (this minibatch's factors), their ``_running``
        variants (if states were given), ``gradient`` and the names of ``extra``.
    cg_iterations : int
        CG iterations (products by :math:`\hat F_r`) to reach ``rtol``.
    cg_residual : float
        True relative residual of :math:`\delta^\star`.
    cg_converged : bool
    cg_seconds : float
        Process CPU time of the CG solve (forward pass included).
    exact : ndarray, shape (P,)
        :math:`\delta^\star`.
    directions : dict of str to ndarray
        Every compared direction, shape ``(P,)``.
    """

    cosines: dict[str, float]
    cg_iterations: int
    cg_residual: float
    cg_converged: bool
    cg_seconds: float
    exact: np.ndarray
    directions: dict[str, np.ndarray]


def cosine(a: ArrayLike, b: ArrayLike) -> float:
    r"""Return :math:`a^\top b / (\|a\| \|b\|)` (0 if either vector is zero).

    Examples
    --------
    >>> cosine(np.array([1.0, 0.0]), np.array([1.0, 1.0])).__round__(6)
    0.707107
    """
    a, b = as_array(a, "a", ndim=1), as_array(b, "b", ndim=1)
    if a.shape != b.shape:
        raise ValueError(f"a and b must have the same shape, got {a.shape} and {b.shape}")
    ma, mb = (float(np.max(np.abs(v), initial=0.0)) for v in (a, b))
    if ma == 0.0 or mb == 0.0:
        return 0.0
    a, b = a / ma, b / mb  # the cosine is scale-free: no overflow of the norms at any magnitude
    return float(np.clip(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)), -1.0, 1.0))


def _kfac(config: KFACConfig, name: str, n_encoder: int):
    cfg = config._replace(tridiagonal=name != "vpng_blockdiag")
    return kfac_direction(cfg, index=slice(0, n_encoder) if name == "q_natural" else None)


@finite_output
def direction_quality(
    chain: Chain,
    eta: ArrayLike,
    x: ArrayLike,
    eps: ArrayLike,
    u: ArrayLike,
    config: KFACConfig,
    *,
    fisher_samples: int | None = None,
    factor_dtype: DTypeLike = np.float64,
    damping: float | None = None,
    exact_over_x_pred: bool = False,
    rtol: float = 1e-6,
    maxiter: int | None = None,
    states: dict[str, Any] | None = None,
    extra: dict[str, np.ndarray] | None = None,
) -> DirectionQuality:
    r"""Exact damped VPNG direction by CG and the cosines of the K-FAC, q-NG and other directions.

    Parameters
    ----------
    chain : Chain
        The VAE (:func:`refvpng.nn.make_vae`).
    eta : ndarray, shape (P,)
    x : ndarray, shape (n, d_x)
        Binary minibatch.
    eps : ndarray, shape (S, n, d_z)
        Latent noise.
    u : ndarray, shape (S, n, d_x)
        Uniforms of the predictive samples.
    config : KFACConfig
        The K-FAC settings of the run (damping :math:`\gamma`, low-rank rule, ...); its
        ``tridiagonal`` flag is set per direction.
    fisher_samples : int, optional
        :math:`M \le S` samples for the factors and :math:`\hat F_r` (default :math:`S`).
    factor_dtype : {float64, float32}, default float64
        Precision of the Gram products behind the factors (as the run's).
    damping : float, optional
        :math:`\mu` of :math:`\delta^\star`, per data point; default ``config.factor_damping``.
    exact_over_x_pred : bool, default False
        :math:`\delta^\star` with the exact :math:`F_r` over :math:`x'` instead of Eq. 16.
    rtol : float, default 1e-6
        CG stopping rule (relative residual).
    maxiter : int, optional
        CG iteration limit (default :math:`10 P`).
    states : dict of str to KFACDirectionState, optional
        Running states of a run, keyed by names of :data:`KFAC_DIRECTIONS`: adds the
        ``<name>_running`` directions (this step's factors folded in; the states are not
        modified).
    extra : dict of str to ndarray, optional
        More directions to compare (e.g. ``{"adam": ...}``), each shape ``(P,)``.

    Returns
    -------
    DirectionQuality

    Raises
    ------
    ValueError, TypeError
        Naming the argument (as :func:`refvpng.nn.vae.vae_step`); unknown names in ``states``;
        a damping at which :math:`\hat F_r / n + \mu I` is singular to rounding.
    FloatingPointError
        If the network's outputs overflow although every input is finite.
    """
    if not isinstance(config, KFACConfig):
        raise TypeError(f"config must be a KFACConfig, got {type(config).__name__}")
    for name, value in (("states", states), ("extra", extra)):
        if value is not None and not isinstance(value, dict):
            raise TypeError(f"{name} must be a dict keyed by direction names, got {type(value).__name__}")
    if not isinstance(exact_over_x_pred, (bool, np.bool_)):
        raise TypeError(f"exact_over_x_pred must be a bool, got {type(exact_over_x_pred).__name__}")
    states = dict(states or {})
    bad = sorted(set(states) - set(KFAC_DIRECTIONS))
    if bad:
        raise ValueError(f"states must be keyed by {KFAC_DIRECTIONS}, got {bad}")
    mu = config.factor_damping if damping is None else as_nonneg_scalar(damping, "damping")
    st = vae_step(
        chain, eta, x, eps, u, curvature="vp", fisher_samples=fisher_samples, factor_dtype=factor_dtype
    )
    st_q = vae_step(
        chain, eta, x, eps, curvature="q", fisher_samples=fisher_samples, factor_dtype=factor_dtype
    )
    g, n_enc = st.grad, chain.encoder.num_params
    directions = {"gradient": g}
    for name in KFAC_DIRECTIONS:
        factors = st_q.factors_per_point if name == "q_natural" else st.factors_per_point
        d = _kfac(config, name, n_enc)
        directions[name] = d.update(g, d.init(np.asarray(eta, dtype=np.float64)), curvature=factors)[0]
        if name in states:
            directions[name + "_running"] = d.update(g, states[name], curvature=factors)[0]
    for name, v in (extra or {}).items():
        directions[name] = as_array(v, f"extra[{name!r}]", shape=g.shape)
    t0 = time.process_time()
    op = vae_fisher_operator(
        chain, eta, x, eps, None if exact_over_x_pred else u, fisher_samples=fisher_samples, damping=mu
    )
    res = op.cg(g, rtol=rtol, maxiter=maxiter)
    seconds = time.process_time() - t0
    cosines = {name: cosine(v, res.x) for name, v in directions.items()}
    return DirectionQuality(cosines, res.iterations, res.residual, res.converged, seconds, res.x, directions)
