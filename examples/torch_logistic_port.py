"""A PyTorch port of Bayesian logistic regression (Tang & Ranganath 2019, Section 5.1).

Written from the paper and the fixture manifests alone: this process never imports refvpng. It
reads the golden fixtures ``logistic.exp`` and ``logistic.softplus`` (numpy + json), computes

- the ELBO (Eq 1) and its reparameterisation gradient (Eq 6) with torch.autograd,
- the q-Fisher F_q (Eq 2),
- the variational predictive Fisher exact in x' (J^T Lambda J, Sec 3.3) and its Monte Carlo
  form with M predictive samples (Eq 16, note the 1/M), and the score rows of Eq 16,
- the damped VPNG direction (F_r + mu I)^-1 grad (Eq 17),

writes them to ``OUT/<fixture>.npz`` (so that ``refvpng check OUT`` can be run by anyone) and
compares them with the fixture outputs itself. Exit status 0 if every quantity is within its
tolerance.

Usage::

    python examples/torch_logistic_port.py [FIXTURE_DIR] [--out OUT_DIR]

Traps met on the way (see docs/porting.md): ``torch.nn.functional.softplus`` returns t itself
above ``threshold=20`` (the fixture has a logit near 22, so that error of ~e^-22 is visible);
the KL term is exact, not Monte Carlo; F_r is a SUM over data points and a MEAN over samples.
"""

from __future__ import annotations

import sys

import numpy as np
import torch
from _fixtures import run_port  # examples/_fixtures.py: numpy + json only

torch.set_default_dtype(torch.float64)


def softplus(t):
    """log(1 + e^t) for every t (torch's F.softplus switches to t above threshold=20)."""
    return torch.logaddexp(t, torch.zeros_like(t))


def sigma_of(rho, scale):
    """sigma(rho) in the fixture's coordinate: exp or softplus."""
    return torch.exp(rho) if scale == "exp" else softplus(rho)


def logits(eta, design, eps, scale):
    """t_si = a_i . (m + sigma(rho) * eps_s): eps (S, D) shared by the points, result (S, n)."""
    d = design.shape[1]
    m, rho = eta[:d], eta[d:]
    w = m + sigma_of(rho, scale) * eps  # (S, D)
    return w @ design.T


def elbo(eta, y, design, eps, scale, prior_std):
    """Eq 1: mean over S of sum_i log Bernoulli(y_i | sigmoid(t_si)) minus the exact KL."""
    d = design.shape[1]
    m, rho = eta[:d], eta[d:]
    t = logits(eta, design, eps, scale)
    ll = (y * t - softplus(t)).sum(dim=1).mean()
    s = sigma_of(rho, scale)
    kl = (np.log(prior_std) - torch.log(s) + (s**2 + m**2) / (2 * prior_std**2) - 0.5).sum()
    return ll - kl


def port(manifest, arrays):
    """Every quantity of the port, keyed like the fixture outputs."""
    spec, hyper = manifest["model"], manifest["hyperparameters"]
    scale, prior_std, mu = spec["scale"], spec["prior_std"], hyper["damping"]
    eta = torch.tensor(arrays["eta"], requires_grad=True)
    y = torch.tensor(arrays["x"][:, 0])
    design = torch.tensor(arrays["cov"])
    eps = torch.tensor(arrays["eps"])  # (S, D): one draw per sample, shared by all points
    x_pred = torch.tensor(arrays["x_pred"][..., 0])  # (S, M, n)
    s_count, m_count = x_pred.shape[:2]
    p_count = eta.shape[0]
    d = design.shape[1]

    value = elbo(eta, y, design, eps, scale, prior_std)
    (grad,) = torch.autograd.grad(value, eta)

    # J = dt/deta, (S, n, P); Bernoulli output Fisher sigmoid(t) sigmoid(-t)
    t = logits(eta, design, eps, scale).detach()
    jac = torch.autograd.functional.jacobian(lambda e: logits(e, design, eps, scale), eta.detach())
    lam = torch.sigmoid(t) * torch.sigmoid(-t)
    f_exact = torch.einsum("sn,snp,snq->pq", lam, jac, jac) / s_count  # sum over n, mean over S

    # Eq 16: b_ski = (x'_ski - sigmoid(t_si)) J_si, F = 1/(S M) sum b b^T
    scores = (x_pred - torch.sigmoid(t)[:, None, :])[..., None] * jac[:, None]  # (S, M, n, P)
    rows = scores.reshape(-1, p_count)
    f_mc = rows.T @ rows / (s_count * m_count)

    # Eq 2: F_q of the mean-field Gaussian, diag(1 / sigma^2, 2 sigma'(rho)^2 / sigma^2)
    rho = eta.detach()[d:]
    s = sigma_of(rho, scale)
    ds = torch.exp(rho) if scale == "exp" else torch.sigmoid(rho)
    q_fisher = torch.diag(torch.cat([1 / s**2, 2 * ds**2 / s**2]))

    eye = torch.eye(p_count)
    return {
        "elbo": value.detach().numpy(),
        "elbo_grad": grad.numpy(),
        "outputs_t": t[..., None].numpy(),
        "output_jacobian": jac[:, :, None, :].numpy(),
        "q_fisher": q_fisher.numpy(),
        "vp_fisher_exact": f_exact.numpy(),
        "vp_scores": scores.numpy(),
        "vp_fisher_mc": f_mc.numpy(),
        "vpng_direction": torch.linalg.solve(f_mc + mu * eye, grad).numpy(),
        "vpng_direction_exact": torch.linalg.solve(f_exact + mu * eye, grad).numpy(),
    }


def main(argv=None) -> int:
    """Run the port on its fixtures, write OUT/<fixture>.npz, return 0 if all agree."""
    return run_port(port, ("logistic.exp", "logistic.softplus"), __doc__.split("\n")[0], argv)


if __name__ == "__main__":
    sys.exit(main())
