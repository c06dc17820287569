r"""The analytic verification report behind ``refvpng verify``.

Every check compares an estimator of refvpng with a closed form of Tang & Ranganath (2019) (or
of the linear-Gaussian latent models), by one of two rules:

- ``exact``: :math:`\max|\hat A - A| / \max(1, \max|A|) \le` tolerance (a named tier of
  :mod:`refvpng.testing.tolerances`);
- ``mc``: a Monte Carlo estimate must lie within ``k`` standard errors of the closed form, the
  standard error estimated from the same seeded samples; the reported error is the largest
  :math:`|\hat A - A|/\mathrm{SE}` over the entries.

The unit of the error column is therefore a **relative error** for ``exact`` rows (printed with
``rel``), a number of **standard errors** for ``mc`` rows (``SE``) and 0/1 for ``condition`` rows.
Groups (``refvpng verify --only GROUP``): the keys of :data:`CHECKS`, including ``chain`` (the VAE
chain's explicit-backward hooks against autograd), ``kfac`` (K-FAC pairs and operators),
``likelihoods`` (Eq 16 with ``M = 3`` for every likelihood and Eq 2 in every σ coordinate),
``importance_sampling`` and ``optimizers`` (Adam, RMSProp, damped natural direction).

Each check is a function returning :class:`Check` rows, so the same code runs in the test suite
(``tests/test_verify.py``) and on the command line.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass

import numpy as np

from refvpng._atomic import atomic_path
from refvpng._verify_groups import GROUPS
from refvpng.testing.mc import mc_mean_and_se
from refvpng.testing.tolerances import AUTOGRAD, EXACT, MC_K

__all__ = ["Check", "run_checks", "format_table", "write_json", "CHECKS"]


@dataclass
class Check:
    """One row of the verification report."""

    quantity: str
    equation: str
    closed_form: str
    estimate: str
    error: float
    tolerance: float
    rule: str
    passed: bool


def _fmt(a) -> str:
    a = np.asarray(a, dtype=float)
    if a.size == 1:
        return f"{float(a.reshape(-1)[0]):.6g}"
    if a.size <= 4:
        return "[" + ", ".join(f"{v:.4g}" for v in a.reshape(-1)) + "]"
    return f"{a.shape} |A|={np.linalg.norm(a):.5g}"


def _exact(quantity, equation, closed, estimate, tol) -> Check:
    closed, estimate = np.asarray(closed, float), np.asarray(estimate, float)
    err = float(np.max(np.abs(estimate - closed)) / max(1.0, float(np.max(np.abs(closed)))))
    return Check(quantity, equation, _fmt(closed), _fmt(estimate), err, tol, "exact", bool(err <= tol))


def _mc(quantity, equation, closed, samples, k=MC_K) -> Check:
    mean, se = mc_mean_and_se(samples)
    closed = np.broadcast_to(np.asarray(closed, float), mean.shape)
    z = np.abs(mean - closed) / np.maximum(se, 1e-300)
    z = np.where(np.abs(mean - closed) <= 1e-12, 0.0, z)
    err = float(np.max(z))
    return Check(
        quantity,
        equation,
        _fmt(closed),
        _fmt(mean),
        err,
        k,
        f"mc (SE of {len(samples)} iid terms)",
        bool(err <= k),
    )


def _cond(quantity, equation, closed_txt, est_txt, ok) -> Check:
    return Check(quantity, equation, closed_txt, est_txt, 0.0 if ok else 1.0, 0.0, "condition", bool(ok))


def check_gaussian_mean(seed: int = 0) -> list[Check]:
    """Eq 4-5: F_r = n Sigma^-1, F_q = I/sigma^2, gradient, Hessian, Eq 3, ELBO."""
    from refvpng.curvature.fisher import q_fisher, vp_fisher_exact, vp_fisher_mc
    from refvpng.curvature.hessian import elbo_hessian, eq3_integral_term_mc
    from refvpng.elbo import elbo_grad, elbo_per_sample
    from refvpng.models import gaussian_mean as gm
    from refvpng.models.latent import draw_eps, draw_predictive

    rng = np.random.default_rng(seed)
    eps_corr, sigma, n = 0.01, 0.5, 10
    model = gm.make_model(eps_corr, sigma)
    x = gm.make_data(rng, n, eps_corr)
    lam = np.array([0.4, -0.3])
    rows = []
    e1 = draw_eps(rng, model, n, 1)
    rows.append(
        _exact(
            "F_r = n Sigma^-1 (exact, one eps)",
            "Sec 3.3",
            gm.vp_fisher_closed(n, eps_corr),
            vp_fisher_exact(model, lam, x, e1),
            EXACT * 100,
        )
    )
    eps = draw_eps(rng, model, n, 700)
    xp = draw_predictive(rng, model, lam, x, eps, 3)  # M = 3: a missing 1/M triples F
    _, per = vp_fisher_mc(model, lam, x, eps, xp, per_sample=True)
    rows.append(_mc("F_r Monte Carlo (M=3)", "Eq 16", gm.vp_fisher_closed(n, eps_corr), per))
    rows.append(
        _exact("F_q = I / sigma^2", "Eq 2", gm.q_fisher_closed(sigma), q_fisher(model, lam, x), EXACT)
    )
    anti = np.concatenate([e1, -e1])
    rows.append(
        _exact(
            "ELBO gradient (antithetic pair)",
            "Eq 5",
            gm.elbo_grad_closed(lam, x, eps_corr),
            elbo_grad(model, lam, x, anti),
            AUTOGRAD,
        )
    )
    rows.append(
        _exact(
            "ELBO Hessian -(I + n Sigma^-1)",
            "Eq 3 lhs",
            gm.elbo_hessian_closed(n, eps_corr),
            elbo_hessian(model, lam, x, e1),
            AUTOGRAD,
        )
    )
    rows.append(
        _mc(
            "ELBO",
            "Eq 1",
            gm.elbo_closed(lam, x, eps_corr, sigma),
            elbo_per_sample(model, lam, x, eps),
        )
    )
    mean_post, cov_post = gm.posterior(x, eps_corr)
    kl = 0.5 * (
        np.trace(np.linalg.solve(cov_post, sigma**2 * np.eye(2)))
        + (mean_post - lam) @ np.linalg.solve(cov_post, mean_post - lam)
        - 2
        + np.linalg.slogdet(cov_post)[1]
        - 2 * np.log(sigma**2)
    )
    z = lam + sigma * rng.standard_normal((20000, 2))
    _, per = eq3_integral_term_mc(
        model, lam, x, z, lambda zs: gm.log_posterior(zs, x, eps_corr), baseline=kl, batches=40
    )
    rows.append(
        _mc(
            "Eq 3 integral term I + n Sigma^-1 - I/sigma^2",
            "Eq 3",
            gm.eq3_integral_closed(n, eps_corr, sigma),
            per,
        )
    )
    return rows


def check_linear_gaussian(seed: int = 1) -> list[Check]:
    """Section 3.2: the Eq 9 matrix, its PSD threshold, Eq 11, Eq 7, F_r, Eq 12 = Eq 13."""
    from refvpng.curvature.fisher import vp_fisher_exact, vp_fisher_mc
    from refvpng.curvature.hessian import eq9_matrix, ll_neg_hessian, vp_fisher_hessian_form
    from refvpng.models import linear_gaussian as lg
    from refvpng.models.latent import draw_eps, draw_model_samples, draw_predictive

    rng = np.random.default_rng(seed)
    sigma, n = 0.8, 4
    model = lg.make_model(sigma)
    rows = []
    for theta in (0.3, 1.0):
        eta = np.array([0.5, theta])
        z, xt = draw_model_samples(rng, model, eta, n, 4000)
        _, per = eq9_matrix(model, eta, z, xt, batches=40)
        rows.append(_mc(f"Eq 9 matrix, theta={theta}", "Eq 9", lg.eq9_closed(theta, n), per))
        xp = theta * z + rng.standard_normal(z.shape)
        _, per = eq9_matrix(model, eta, z, xt, x_pred=xp, batches=40)
        rows.append(
            _mc(
                f"Eq 11 matrix (predictive x'), theta={theta}",
                "Eq 11",
                lg.eq11_closed(theta, n),
                per,
            )
        )
    t0 = lg.PSD_THRESHOLD
    ev_lo = np.linalg.eigvalsh(lg.eq9_closed(0.99 * t0, 1))[0]
    ev_hi = np.linalg.eigvalsh(lg.eq9_closed(1.01 * t0, 1))[0]
    ev_at = np.linalg.det(lg.eq9_closed(t0, 1))
    rows.append(
        _cond(
            "Eq 9 not PSD iff |theta| < 1/sqrt(3)",
            "Sec 3.2",
            "det = 3 theta^2 - 1",
            f"min eig {ev_lo:.3g} @0.99, {ev_hi:.3g} @1.01; det@t0={ev_at:.1e}",
            ev_lo < 0 <= ev_hi and abs(ev_at) < 1e-12,
        )
    )
    x = lg.make_data(rng, n, 1.2)
    eta = np.array([0.35, -0.7])
    eps = draw_eps(rng, model, n, 4000)
    _, per = ll_neg_hessian(model, eta, x, eps, batches=40)
    rows.append(_mc("-Hessian of L_ll on data", "Eq 7", lg.ll_neg_hessian_closed(eta, x, sigma), per))
    per_f = np.stack([vp_fisher_exact(model, eta, x, eps[s : s + 1]) for s in range(0, 4000, 4)])
    rows.append(_mc("F_r (exact in x', MC in eps)", "Eq 13", lg.vp_fisher_closed(eta, x, sigma), per_f))
    e = eps[:800]
    xp = draw_predictive(rng, model, eta, x, e, 2)
    _, per_h = vp_fisher_hessian_form(model, eta, x, e, xp, batches=40)
    _, per_s = vp_fisher_mc(model, eta, x, e, xp, per_sample=True)
    per_s = per_s.reshape(40, -1, 2, 2).mean(axis=1)
    rows.append(_mc("Eq 12 Hessian form - Eq 13 score form", "Eq 12-13", np.zeros((2, 2)), per_h - per_s))
    rows.append(_mc("F_r Monte Carlo vs closed form", "Eq 16", lg.vp_fisher_closed(eta, x, sigma), per_s))
    return rows


def check_logistic(seed: int = 2) -> list[Check]:
    """Section 5.1: the hand-derived logistic-regression ELBO, gradient and F_r vs the generic path."""
    from refvpng.curvature.fisher import vp_fisher_exact
    from refvpng.elbo import elbo, elbo_grad, elbo_value_and_grad
    from refvpng.models import logistic as lr
    from refvpng.models.latent import draw_eps, without_hooks

    rng = np.random.default_rng(seed)
    model = lr.make_model()
    ref = without_hooks(model)
    x, y = lr.make_data(rng, 40)
    design = lr.add_bias(x)
    lam = np.concatenate([rng.standard_normal(5), rng.uniform(-3, 0, 5)])
    eps = draw_eps(rng, model, 40, 10)
    v, g = elbo_value_and_grad(model, lam, y[:, None], eps, design)
    return [
        _exact(
            "logistic ELBO: hand-derived hook vs autograd",
            "Eq 1",
            elbo(ref, lam, y[:, None], eps, design),
            v,
            EXACT * 100,
        ),
        _exact(
            "logistic gradient: hand-derived hook vs autograd",
            "Eq 1, 6",
            elbo_grad(ref, lam, y[:, None], eps, design),
            g,
            AUTOGRAD,
        ),
        _exact(
            "logistic F_r: hand-derived Jacobian hook vs autograd",
            "Eq 13",
            vp_fisher_exact(ref, lam, y[:, None], eps, design),
            vp_fisher_exact(model, lam, y[:, None], eps, design),
            EXACT * 100,
        ),
    ]


def check_solve_and_kernel(seed: int = 3) -> list[Check]:
    """Eq 17 damped solve vs a dense solve; numba outer-product kernel vs the NumPy spec."""
    from refvpng.curvature.outer import outer_sum
    from refvpng.curvature.solve import damped_solve

    rng = np.random.default_rng(seed)
    b = rng.standard_normal((30, 12))
    f = b.T @ b
    g = rng.standard_normal(12)
    rows = [
        _exact(
            "(F + mu I)^-1 g vs dense solve",
            "Eq 17",
            np.linalg.solve(f + 0.1 * np.eye(12), g),
            damped_solve(f, g, 0.1),
            1e-10,
        )
    ]
    bb = rng.standard_normal((5000, 40))
    rows.append(
        _exact(
            "numba sum_k b_k b_k^T vs NumPy",
            "Eq 16",
            outer_sum(bb, method="numpy"),
            outer_sum(bb, method="numba"),
            EXACT,
        )
    )
    return rows


def check_ppca(seed: int = 4) -> list[Check]:
    r"""Linear-Gaussian latent model: missing information and Fisher closed forms vs Monte Carlo.

    The joint Fisher is estimated by the generic :func:`~refvpng.curvature.latent_fisher.joint_fisher_mc`
    on the pPCA ``LatentModel``; the marginal one from the closed-form marginal scores at
    :math:`x \sim p(x)` drawn by :func:`~refvpng.curvature.latent_fisher.draw_joint`.
    """
    from refvpng.curvature.latent_fisher import draw_joint, joint_fisher_mc
    from refvpng.models import ppca

    rng = np.random.default_rng(seed)
    spec = ppca.PPCASpec(4, 2)
    model = ppca.make_model(spec)
    theta = spec.pack(rng.standard_normal((spec.d, spec.k)), rng.standard_normal(spec.d), 0.5)
    fj = ppca.joint_fisher_closed(spec, theta)
    fm = ppca.marginal_fisher_closed(spec, theta)
    mi = ppca.missing_information_closed(spec, theta)
    _, per_j = joint_fisher_mc(rng, model, theta, 1, 20000)
    x, _ = draw_joint(rng, model, theta, 1, 20000)
    s = ppca.marginal_score_closed(spec, theta, x[:, 0])
    per_m = s[:, :, None] * s[:, None, :]
    return [
        _exact("joint - marginal Fisher = missing information", "Louis 1982", mi, fj - fm, 1e-10),
        _mc("joint Fisher (pPCA) vs Monte Carlo", "note, Sec 2", fj, per_j),
        _mc("marginal Fisher (pPCA) vs Monte Carlo", "note, Sec 2", fm, per_m),
    ]


def _chain_problem(seed: int):
    from refvpng.conformance.cases import CHAIN_SPEC
    from refvpng.conformance.models import build_model
    from refvpng.models.latent import draw_eps, draw_predictive

    rng = np.random.default_rng(seed)
    model = build_model(CHAIN_SPEC)
    eta = 0.6 * rng.standard_normal(model.n_params)
    x = (rng.random((5, model.obs_dim)) < 0.5).astype(float)
    eps = draw_eps(rng, model, 5, 3)
    return model, eta, x, eps, draw_predictive(rng, model, eta, x, eps, 4)


def check_chain(seed: int = 5) -> list[Check]:
    """The VAE chain's explicit-backward hooks (Sec 5.2) against autograd on the same inputs."""
    from refvpng.curvature.fisher import vp_fisher_exact, vp_scores
    from refvpng.elbo import elbo_value_and_grad
    from refvpng.models.latent import without_hooks

    model, eta, x, eps, xp = _chain_problem(seed)
    ref = without_hooks(model)
    v, g = elbo_value_and_grad(model, eta, x, eps)
    v_ref, g_ref = elbo_value_and_grad(ref, eta, x, eps)
    return [
        _exact("chain ELBO: explicit backward vs autograd", "Eq 1", v_ref, v, EXACT * 100),
        _exact("chain ELBO gradient: explicit backward vs autograd", "Eq 1, 6", g_ref, g, AUTOGRAD),
        _exact(
            "chain score rows of Eq 16: explicit backward vs autograd",
            "Eq 16",
            vp_scores(ref, eta, x, eps, xp),
            vp_scores(model, eta, x, eps, xp),
            AUTOGRAD,
        ),
        _exact(
            "chain F_r: explicit Jacobian vs autograd",
            "Eq 13",
            vp_fisher_exact(ref, eta, x, eps),
            vp_fisher_exact(model, eta, x, eps),
            AUTOGRAD,
        ),
    ]


def check_kfac(seed: int = 6) -> list[Check]:
    r"""K-FAC on the chain: pairs give the Eq 16 score rows, operators match their Kronecker form."""
    from refvpng.conformance.kfac_outputs import kfac_operator
    from refvpng.curvature.fisher import vp_kfac_pairs, vp_scores
    from refvpng.curvature.kfac import kfac_factors
    from refvpng.models.latent import without_hooks

    model, eta, x, eps, xp = _chain_problem(seed)
    pairs, weights = vp_kfac_pairs(model, eta, x, eps, xp)
    rows = np.concatenate([np.einsum("ri,ro->rio", a, g).reshape(a.shape[0], -1) for a, g in pairs], axis=1)
    scores = vp_scores(without_hooks(model), eta, x, eps, xp).reshape(rows.shape)
    factors = kfac_factors(pairs, weights)
    gamma = 0.023
    r = np.sqrt(gamma)
    blocks = [
        np.kron(a + r * np.eye(len(a)), g + r * np.eye(len(g)))
        for a, g in zip(factors.A, factors.G, strict=True)
    ]
    dense = np.zeros((model.n_params, model.n_params))
    k = 0
    for b in blocks:
        dense[k : k + len(b), k : k + len(b)] = b
        k += len(b)
    v = np.random.default_rng(seed).standard_normal(model.n_params)
    layer = np.repeat(np.arange(len(blocks)), [len(b) for b in blocks])
    mask = (np.abs(layer[:, None] - layer[None, :]) <= 1).astype(float)
    diag = kfac_operator("blockdiag", factors, gamma)
    tri = kfac_operator("blocktridiag", factors, gamma)
    return [
        _exact(
            "K-FAC rows a_bar kron g (A kron G order) = Eq 16 score rows (autograd)",
            "Eq 16",
            scores,
            rows,
            AUTOGRAD,
        ),
        _exact(
            "block-diagonal K-FAC = blockdiag((A + sqrt(g) I) kron (G + sqrt(g) I))",
            "M&G 4.2",
            dense,
            diag.to_dense(),
            EXACT,
        ),
        _exact(
            "block-diagonal K-FAC solve vs dense solve",
            "M&G 4.2",
            np.linalg.solve(dense, v),
            diag.solve(v),
            1e-10,
        ),
        _exact(
            "block-tridiagonal K-FAC: inverse of solve() = to_dense() on the tridiagonal blocks",
            "M&G 4.3",
            tri.to_dense() * mask,
            np.linalg.inv(np.column_stack([tri.solve(e) for e in np.eye(model.n_params)])) * mask,
            1e-10,
        ),
    ]


CHECKS = {
    "gaussian_mean": check_gaussian_mean,
    "linear_gaussian": check_linear_gaussian,
    "logistic": check_logistic,
    "solve_and_kernel": check_solve_and_kernel,
    "ppca": check_ppca,
    "chain": check_chain,
    "kfac": check_kfac,
    **GROUPS,  # likelihoods, importance_sampling, optimizers
}


def run_checks(names: Iterable[str] | None = None) -> list[Check]:
    """Run the named groups of checks (all by default) and return their rows."""
    names = list(CHECKS) if names is None else list(names)
    unknown = [n for n in names if n not in CHECKS]
    if unknown:
        raise ValueError(f"unknown check group(s) {unknown}; choose from {list(CHECKS)}")
    rows = []
    for name in names:
        rows.extend(CHECKS[name]())
    return rows


def _unit(rule: str) -> str:
    return "rel" if rule == "exact" else ("SE" if rule.startswith("mc") else "")


def format_table(rows: list[Check]) -> str:
    """A fixed-width text table of the report (error unit: ``rel`` relative error, ``SE`` standard errors)."""
    head = (
        "quantity",
        "equation",
        "closed form",
        "estimate",
        "error",
        "tolerance",
        "rule",
        "result",
    )
    body = [
        (
            r.quantity,
            r.equation,
            r.closed_form,
            r.estimate,
            f"{r.error:.3g} {_unit(r.rule)}",
            f"{r.tolerance:.3g}",
            r.rule,
            "pass" if r.passed else "FAIL",
        )
        for r in rows
    ]
    widths = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(head)]
    line = "  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True))
    out = [line, "-" * len(line)]
    out += ["  ".join(c.ljust(w) for c, w in zip(b, widths, strict=True)) for b in body]
    n_pass = sum(r.passed for r in rows)
    out.append(
        "\nerror: 'rel' = max|estimate - closed| / max(1, max|closed|); 'SE' = largest "
        "|estimate - closed| / standard error over the entries"
    )
    out.append(f"{n_pass} passed, {len(rows) - n_pass} failed")
    return "\n".join(out)


def write_json(rows: list[Check], path: str | os.PathLike[str]) -> None:
    """Write the report atomically (temporary file, then rename)."""
    path = os.fspath(path)
    payload = {
        "checks": [asdict(r) for r in rows],
        "passed": sum(r.passed for r in rows),
        "failed": sum(not r.passed for r in rows),
    }
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(payload, indent=2), encoding="utf-8")
