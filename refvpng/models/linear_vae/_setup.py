"""Shared argument checks of the linear VAE closed forms (private)."""

from __future__ import annotations

import autograd.numpy as anp
import numpy as np

from refvpng._checks import as_array
from refvpng.models.ppca.model import n_lambda
from refvpng.models.ppca.spec import PPCASpec


def check_spec(spec) -> PPCASpec:
    """The linear VAE closed forms are for ``noise="iso", noise_coord="log"``."""
    if not isinstance(spec, PPCASpec):
        raise TypeError(f"spec must be a PPCASpec, got {type(spec).__name__}")
    if spec.noise != "iso" or spec.noise_coord != "log":
        raise ValueError(
            f"spec must have noise='iso' and noise_coord='log' for the linear VAE closed forms, got {spec}"
        )
    return spec


def check_eta_x(spec, eta, x):
    """Validate ``spec``, ``eta`` (length n_lambda + n_params, finite) and ``x`` (n, d)."""
    spec = check_spec(spec)
    eta = as_array(eta, "eta", ndim=1)
    p = n_lambda(spec) + spec.n_params
    if eta.shape[0] != p:
        raise ValueError(f"eta must have length n_lambda + n_params = {p} ({spec}), got {eta.shape[0]}")
    x = as_array(x, "x", ndim=2)
    if x.shape[1] != spec.d or x.shape[0] < 1:
        raise ValueError(f"x must have shape (n, {spec.d}) with n >= 1, got {x.shape}")
    return spec, eta, x


def parts(spec: PPCASpec, eta):
    """Unpack without checks (autograd-friendly): ``A, c, rho, W, b, omega``."""
    d, k = spec.d, spec.k
    kd = k * d
    A = anp.transpose(anp.reshape(eta[:kd], (d, k)))
    c = eta[kd : kd + k]
    rho = eta[kd + k : kd + 2 * k]
    W, b, log_psi = spec.decoder_parts(eta[kd + 2 * k :])
    return A, c, rho, W, b, log_psi[0]


def moments(spec: PPCASpec, eta, x):
    """``W, sigma^2, psi, m`` (encoder means ``m = x A^T + c``), NumPy."""
    A, c, rho, W, _, om = parts(spec, eta)
    return np.asarray(W), np.exp(2.0 * rho), float(np.exp(om)), x @ A.T + c
