r"""Further groups of ``refvpng verify``: likelihoods, σ coordinates, importance sampling, optimizers.

Issue 11: a user's ``verify`` run catches what the unit tests catch.

Registered in :data:`refvpng.verify.CHECKS`; each group returns :class:`refvpng.verify.Check`
rows at generic points (``M > 1``, damping :math:`\mu \ne 1`, decays :math:`\ne 0.5`).
"""

from __future__ import annotations

import numpy as np

__all__: list[str] = []


def check_likelihoods(seed: int = 7) -> list:
    r"""Eq 16 (``M = 3``) against the exact :math:`F_r` for every likelihood; Eq 2 in every σ coordinate.

    For each likelihood of :func:`refvpng.models.small.make_small_model` and each σ coordinate
    (``exp``, ``softplus``, ``fixed``), the per-noise-sample :math:`\hat F_r` of Eq 16 must lie
    within ``k`` standard errors of :math:`F_r = \frac1S\sum_s J_s^\top\Lambda J_s` at the same
    noise (exact in :math:`x'`): a missing :math:`1/M`, a wrong output Fisher :math:`\Lambda` or
    a wrong σ derivative moves the mean by many standard errors. The Monte Carlo q-Fisher at
    draws from :math:`q` must match the closed :math:`F_q` of Eq 2 in each coordinate.
    """
    from refvpng.curvature.fisher import q_fisher, q_fisher_mc, vp_fisher_exact, vp_fisher_mc
    from refvpng.models.latent import draw_eps, draw_predictive
    from refvpng.models.small import LIKELIHOODS, make_small_model
    from refvpng.verify import _mc

    rng = np.random.default_rng(seed)
    rows = []
    for scale in ("exp", "softplus", "fixed"):
        for lik in LIKELIHOODS:
            model = make_small_model(lik, local=True, scale=scale, dz=2, d=3, sigma=0.7)
            eta = 0.4 * rng.standard_normal(model.n_params)
            x = draw_predictive(rng, model, eta, np.zeros((4, 3)), draw_eps(rng, model, 4, 1), 1)[0, 0]
            eps = draw_eps(rng, model, 4, 300)
            xp = draw_predictive(rng, model, eta, x, eps, 3)
            _, per = vp_fisher_mc(model, eta, x, eps, xp, per_sample=True)
            exact = vp_fisher_exact(model, eta, x, eps)
            rows.append(_mc(f"F_r Monte Carlo (M=3), {lik}, sigma '{scale}'", "Eq 16", exact, per))
        lam = eta[: model.n_lambda]
        m, rho = model.encode(lam, x)
        z = model.family.reparam(np.asarray(m), None if rho is None else np.asarray(rho), eps[:, :, :])
        _, per_q = q_fisher_mc(model, lam, x, z)
        rows.append(_mc(f"F_q Monte Carlo, sigma '{scale}'", "Eq 2", q_fisher(model, lam, x), per_q))
    return rows


def check_importance_sampling(seed: int = 8) -> list:
    r"""Importance sampling on pPCA: unbiased :math:`\hat p(x)` and a consistent marginal score.

    The weights :math:`w_k = p(x, z_k)/q(z_k \mid x)` of
    :func:`~refvpng.curvature.marginal_is.marginal_likelihood_is` with an encoder that is *not*
    the posterior are i.i.d. unbiased estimates of the closed-form :math:`p(x)`; with the exact
    posterior as encoder every weight equals :math:`p(x)` and the self-normalised score of
    :func:`~refvpng.curvature.marginal_is.marginal_score_is` equals the closed marginal score.
    """
    from refvpng.curvature.latent_fisher import joint_score
    from refvpng.curvature.marginal_is import marginal_likelihood_is, marginal_score_is
    from refvpng.models import linear_vae as lv
    from refvpng.models import ppca
    from refvpng.testing.tolerances import AUTOGRAD, EXACT
    from refvpng.verify import _exact, _mc

    rng = np.random.default_rng(seed)
    spec = ppca.PPCASpec(3, 1)  # k = 1: the mean-field encoder can be the exact posterior
    model = lv.make_model(spec)
    theta = spec.pack(0.8 * rng.standard_normal((3, 1)), 0.3 * rng.standard_normal(3), 0.6)
    x = rng.standard_normal((2, 3))
    exact_enc = lv.optimal_encoder(spec, theta)
    off = exact_enc + 0.15 * rng.standard_normal(exact_enc.shape)  # a proposal that is not p(z | x)
    p_true = np.exp(ppca.log_marginal_closed(spec, theta, x))
    _, w = marginal_likelihood_is(rng, model, np.concatenate([off, theta]), x, 4000)
    _, w_post = marginal_likelihood_is(rng, model, np.concatenate([exact_enc, theta]), x, 3)
    # with q = p(z | x) the weights are constant: the self-normalised score is the plain mean of
    # the joint scores at the K draws, each an i.i.d. unbiased term of the marginal score
    eta_post = np.concatenate([exact_enc, theta])
    eps = rng.standard_normal((1500, 2, 1))
    score, _ = marginal_score_is(model, eta_post, x, eps)
    m, rho = model.encode(exact_enc, x)
    terms = joint_score(model, theta, x, model.family.reparam(np.asarray(m), np.asarray(rho), eps))
    return [
        _mc("p(x) by importance sampling, off-posterior proposal", "IS", p_true, w),
        _exact(
            "IS weights with the exact posterior = p(x)", "IS", np.tile(p_true, (3, 1)), w_post, EXACT * 100
        ),
        _exact("IS score, exact posterior = mean of joint scores", "IS", terms.mean(axis=0), score, AUTOGRAD),
        _mc(
            "IS marginal score, exact posterior vs closed score",
            "IS",
            ppca.marginal_score_closed(spec, theta, x),
            terms,
        ),
    ]


def check_optimizers(seed: int = 9) -> list:
    r"""Adam, RMSProp and the damped natural direction against their update rules, step by step.

    Three steps at generic hyperparameters (:math:`\beta_1 = 0.8`, :math:`\beta_2 = 0.95`,
    RMSProp decay 0.7, damping :math:`\mu = 0.3`), so a missing bias correction, a swapped
    decay or a squared damping changes the numbers.
    """
    from refvpng.optim import adam, natural_direction, rmsprop
    from refvpng.testing.tolerances import EXACT
    from refvpng.verify import _exact

    rng = np.random.default_rng(seed)
    grads = rng.standard_normal((3, 4))
    lr, b1, b2, eps, decay = 0.05, 0.8, 0.95, 1e-8, 0.7
    tx_a, tx_r = adam(lr, b1, b2, eps), rmsprop(lr, decay, eps)
    s_a, s_r = tx_a.init(np.zeros(4)), tx_r.init(np.zeros(4))
    m = v = nu = np.zeros(4)
    got_a, want_a, got_r, want_r = [], [], [], []
    for t, g in enumerate(grads, start=1):
        u, s_a = tx_a.update(g, s_a, np.zeros(4))
        m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g**2
        got_a.append(u)
        want_a.append(lr * (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + eps))
        u, s_r = tx_r.update(g, s_r, np.zeros(4))
        nu = decay * nu + (1 - decay) * g**2
        got_r.append(u)
        want_r.append(lr * g / (np.sqrt(nu) + eps))
    a = rng.standard_normal((4, 6))
    fisher, mu = a @ a.T / 6, 0.3
    nat = natural_direction(damping=mu)
    d, _ = nat.update(grads[0], nat.init(np.zeros(4)), curvature=fisher)
    return [
        _exact("Adam, 3 steps (b1=0.8, b2=0.95, bias-corrected)", "Kingma & Ba", want_a, got_a, EXACT),
        _exact("RMSProp, 3 steps (decay 0.7)", "Tieleman & Hinton", want_r, got_r, EXACT),
        _exact(
            "damped natural direction (F + mu I)^-1 g, mu = 0.3",
            "Eq 17",
            np.linalg.solve(fisher + mu * np.eye(4), grads[0]),
            d,
            EXACT * 100,
        ),
    ]


GROUPS = {
    "likelihoods": check_likelihoods,
    "importance_sampling": check_importance_sampling,
    "optimizers": check_optimizers,
}
