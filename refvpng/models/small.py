r"""Small random models for property-based tests and brute-force comparisons.

:func:`make_small_model` builds a nonlinear latent-variable model with an affine encoder and a
``tanh`` decoder for any likelihood family, local or global latents, and any scale coordinate:

.. math::
    m_i = A x_i + c,\ \rho_i = D x_i + e \ (\text{local}),\qquad
    t_i = W\tanh(z_i) + b\ (+\ \text{covariates}\ C a_i\ \text{when}\ n_{cov}>0).

Packing: :math:`\lambda = (\mathrm{vec}A, c, \mathrm{vec}D, e)` for local latents (``D, e``
absent when the scale is fixed) or :math:`(m, \rho)` for global ones;
:math:`\theta = (\mathrm{vec}W, b)`, with the package-wide column-major ``vec``
(``W.ravel(order="F")``, as :mod:`refvpng.nn.mlp`): each layer's block is
:math:`\operatorname{vec}([W, b])`.
"""

from __future__ import annotations

import autograd.numpy as anp
import numpy as np
from autograd.extend import defjvp, defvjp, primitive

from refvpng._checks import as_int
from refvpng.models.latent import LatentModel
from refvpng.models.likelihoods import Bernoulli, Gaussian, Poisson
from refvpng.models.variational import MeanFieldGaussian

__all__ = ["make_small_model", "LIKELIHOODS"]

LIKELIHOODS = ("gaussian", "bernoulli", "poisson_log", "poisson_softplus")


def _likelihood(kind: str, d: int):
    if kind == "gaussian":
        a = np.eye(d) + 0.3 * np.ones((d, d))
        return Gaussian(a @ a.T / np.max(a @ a.T))
    if kind == "bernoulli":
        return Bernoulli()
    if kind == "poisson_log":
        return Poisson("log")
    if kind == "poisson_softplus":
        return Poisson("softplus")
    raise ValueError(f"likelihood must be one of {LIKELIHOODS}, got {kind!r}")


@primitive
def _tanh(x):
    return np.tanh(x)


# d tanh = 1 - tanh^2, written in the output: autograd's own rule 1/cosh(x)^2 overflows (with a
# RuntimeWarning) for |x| > 355, where the derivative is simply 0.
defvjp(_tanh, lambda ans, x: lambda g: g * (1.0 - ans**2))
defjvp(_tanh, lambda g, ans, x: g * (1.0 - ans**2))


def make_small_model(
    likelihood: str = "gaussian",
    *,
    local: bool = True,
    scale: str = "exp",
    dz: int = 2,
    d: int = 3,
    sigma: float = 0.7,
) -> LatentModel:
    """A small nonlinear model (see the module docstring for the packing)."""
    dz, d = as_int(dz, "dz"), as_int(d, "d")
    if not isinstance(local, (bool, np.bool_)):
        raise TypeError(f"local must be a bool, got {type(local).__name__}")
    family = MeanFieldGaussian("fixed", sigma) if scale == "fixed" else MeanFieldGaussian(scale)
    has_rho = scale != "fixed"
    if local:
        sizes = [dz * d, dz] + ([dz * d, dz] if has_rho else [])
    else:
        sizes = [dz] + ([dz] if has_rho else [])
    n_lambda = int(sum(sizes))
    offs = np.cumsum([0] + sizes)

    def encode(lam, x):
        parts = [lam[offs[k] : offs[k + 1]] for k in range(len(sizes))]
        if not local:
            return parts[0], (parts[1] if has_rho else None)
        m = anp.dot(x, anp.reshape(parts[0], (d, dz))) + parts[1]  # A = reshape(., (d, dz)).T
        rho = anp.dot(x, anp.reshape(parts[2], (d, dz))) + parts[3] if has_rho else None
        return m, rho

    def decode(theta, z, cov):
        w_t = anp.reshape(theta[: d * dz], (dz, d))  # W.T: column-major vec of W (d, dz)
        return anp.dot(_tanh(z), w_t) + theta[d * dz :]

    return LatentModel(
        name=f"small({likelihood},{'local' if local else 'global'},{scale},dz={dz},d={d})",
        n_lambda=n_lambda,
        n_theta=d * dz + d,
        latent_dim=dz,
        obs_dim=d,
        local=local,
        family=family,
        likelihood=_likelihood(likelihood, d),
        encode=encode,
        decode=decode,
    )
