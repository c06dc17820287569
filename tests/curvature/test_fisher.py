"""F_r and F_q on every case, against dense autograd builds and within k standard errors."""

import autograd.numpy as anp
import numpy as np
import pytest
from autograd import hessian, jacobian
from hypothesis import given
from hypothesis import strategies as st

from refvpng.curvature.fisher import (
    output_jacobian,
    q_fisher,
    q_fisher_mc,
    vp_fisher_exact,
    vp_fisher_mc,
)
from refvpng.curvature.hessian import vp_fisher_hessian_form
from refvpng.models.latent import draw_eps, draw_predictive, outputs
from refvpng.models.small import LIKELIHOODS, make_small_model
from refvpng.testing import AUTOGRAD, EXACT, assert_mc_close


def _eps(case, rng, s):
    return draw_eps(rng, case.model, case.x.shape[0], s, shared=case.shared)


def _dense_output_fisher(lik, t):
    if lik.diagonal:
        return np.diag(lik.output_fisher(t))
    return lik.output_fisher(t)


def test_output_jacobian_matches_reverse_mode(case, rng):
    eps = _eps(case, rng, 2)
    t, jac = output_jacobian(case.model, case.eta, case.x, eps, case.cov)
    ref = jacobian(lambda e: outputs(case.model, e, case.x, eps, case.cov))(case.eta)
    np.testing.assert_allclose(jac, ref, rtol=0, atol=AUTOGRAD * max(1.0, np.abs(ref).max()))


def test_vp_fisher_exact_against_dense_brute_force(case, rng):
    """F_r = (1/S) sum_s sum_i J_si^T Lambda(t_si) J_si with each J_si from reverse-mode autograd."""
    eps = _eps(case, rng, 3)
    got = vp_fisher_exact(case.model, case.eta, case.x, eps, case.cov)
    ref = np.zeros_like(got)
    t = np.asarray(outputs(case.model, case.eta, case.x, eps, case.cov))
    for s in range(eps.shape[0]):
        for i in range(case.x.shape[0]):

            def t_si(e, s=s, i=i):
                return outputs(case.model, e, case.x, eps, case.cov)[s, i]

            j = jacobian(t_si)(case.eta)
            ref += j.T @ _dense_output_fisher(case.model.likelihood, t[s, i]) @ j
    ref /= eps.shape[0]
    np.testing.assert_allclose(got, ref, rtol=0, atol=AUTOGRAD * max(1.0, np.abs(ref).max()))
    assert np.array_equal(got, got.T)


def test_vp_fisher_mc_unbiased_for_exact(case, rng):
    """Eq 16 is unbiased: with fixed noise, the mean over x' is within k SE of J^T Lambda J."""
    eps = _eps(case, rng, 1)
    target = vp_fisher_exact(case.model, case.eta, case.x, eps, case.cov)
    xs = draw_predictive(rng, case.model, case.eta, case.x, eps, 4000, case.cov)
    # one noise sample, many x': per-x' matrices are the i.i.d. terms.
    xs_t = np.swapaxes(xs, 0, 1)  # (M, 1, n, d) -> treat each x' as its own "sample"
    eps_rep = np.repeat(eps, xs_t.shape[0], axis=0)
    _, per = vp_fisher_mc(
        case.model,
        case.eta,
        case.x,
        eps_rep,
        xs_t.reshape((-1, 1) + xs.shape[2:]),
        case.cov,
        per_sample=True,
    )
    assert_mc_close(per, target)


def test_hessian_form_equals_score_form_in_expectation(case, rng):
    """Eq 12 (negative Hessians at x') and Eq 13 (score outer products) agree within k SE."""
    eps = _eps(case, rng, 1)
    xs = draw_predictive(rng, case.model, case.eta, case.x, eps, 400, case.cov)
    xs_t = np.swapaxes(xs, 0, 1).reshape((-1, 1) + xs.shape[2:])
    eps_rep = np.repeat(eps, xs_t.shape[0], axis=0)
    _, per_h = vp_fisher_hessian_form(case.model, case.eta, case.x, eps_rep, xs_t, case.cov, batches=40)
    _, per_s = vp_fisher_mc(case.model, case.eta, case.x, eps_rep, xs_t, case.cov, per_sample=True)
    per_s = per_s.reshape((40, -1) + per_s.shape[1:]).mean(axis=1)  # same 40 batches
    assert_mc_close(per_h - per_s, 0.0)
    # and the Hessian form is within k SE of the exact-in-x' Fisher
    assert_mc_close(per_h, vp_fisher_exact(case.model, case.eta, case.x, eps, case.cov))


def test_rank_bound_of_mc_fisher(case, rng):
    """rank(F_hat_r) <= S * M * n (the paper's rank(F_hat_r) <= M n with one noise sample)."""
    eps = _eps(case, rng, 1)
    m = 1
    xs = draw_predictive(rng, case.model, case.eta, case.x, eps, m, case.cov)
    f = vp_fisher_mc(case.model, case.eta, case.x, eps, xs, case.cov)
    rank = np.linalg.matrix_rank(f, tol=1e-10 * max(1.0, np.abs(f).max()))
    assert rank <= m * case.x.shape[0]


def test_q_fisher_exact_against_autograd(case):
    """F_q = -d^2/dlam'^2 E_{q_lam}[log q_lam'] at lam' = lam: Gaussian cross-entropy in closed form."""
    model, x = case.model, case.x
    lam = case.eta[: model.n_lambda]
    fam = model.family
    m0, rho0 = model.encode(lam, x)
    s0 = fam.std(rho0)

    def cross_entropy(lv):
        m, rho = model.encode(lv, x)
        s = fam.std(rho)
        return anp.sum(-((s0**2 + (m0 - m) ** 2) / (2 * s**2)) - anp.log(s * anp.ones_like(m)))

    ref = -hessian(cross_entropy)(lam)
    got = q_fisher(model, lam, x)
    np.testing.assert_allclose(got, ref, rtol=0, atol=AUTOGRAD * max(1.0, np.abs(ref).max()))


def test_q_fisher_mc_within_se(case, rng):
    model, x = case.model, case.x
    lam = case.eta[: model.n_lambda]
    m, rho = model.encode(lam, x)
    s = model.family.std(rho)
    shape = (3000,) + np.shape(m)
    z = np.asarray(m) + np.asarray(s) * rng.standard_normal(shape)
    _, per = q_fisher_mc(model, lam, x, z)
    assert_mc_close(per, q_fisher(model, lam, x))


@given(
    seed=st.integers(0, 2**31 - 1),
    lik=st.sampled_from(LIKELIHOODS),
    local=st.booleans(),
    scale=st.sampled_from(["fixed", "exp", "softplus"]),
)
def test_fishers_symmetric_psd_for_any_parameters(seed, lik, local, scale):
    rng = np.random.default_rng(seed)
    model = make_small_model(lik, local=local, scale=scale, dz=2, d=2)
    eta = rng.uniform(-2, 2, model.n_params)
    x = (
        rng.poisson(1.0, size=(3, 2)).astype(float)
        if lik != "bernoulli"
        else (rng.random((3, 2)) < 0.5).astype(float)
    )
    eps = draw_eps(rng, model, 3, 2)
    for f in (
        vp_fisher_exact(model, eta, x, eps),
        q_fisher(model, eta[: model.n_lambda], x),
    ):
        assert np.array_equal(f, f.T)
        ev = np.linalg.eigvalsh(f)
        assert ev[0] >= -EXACT * 100 * max(1.0, abs(ev[-1]))


def test_vp_fisher_bad_inputs(rng):
    model = make_small_model("gaussian", dz=2, d=2)
    eta = np.zeros(model.n_params)
    x = np.zeros((3, 2))
    eps = draw_eps(rng, model, 3, 2)
    with pytest.raises(ValueError, match="eta"):
        vp_fisher_exact(model, eta[:-1], x, eps)
    with pytest.raises(ValueError, match="x"):
        vp_fisher_exact(model, eta, np.zeros((3, 5)), eps)
    with pytest.raises(ValueError, match="eps"):
        vp_fisher_exact(model, eta, x, eps[:, :2])
    bad = x.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="x contains NaN"):
        vp_fisher_exact(model, eta, bad, eps)
    with pytest.raises(ValueError, match="x_pred"):
        vp_fisher_mc(model, eta, x, eps, np.zeros((2, 1, 3, 5)))
    with pytest.raises(TypeError, match="rng"):
        draw_predictive(0, model, eta, x, eps, 2)


# ---------------------------------------------------------------- validation (issue 11)


def _small_problem():
    model = make_small_model("gaussian", local=True, scale="exp", dz=2, d=3, sigma=0.7)
    rng = np.random.default_rng(7)
    eta = 0.3 * rng.standard_normal(model.n_params)
    x = rng.standard_normal((4, 3))
    eps = rng.standard_normal((3, 4, 2))
    return model, eta, x, eps, draw_predictive(rng, model, eta, x, eps, 2)


def test_zero_monte_carlo_samples_are_rejected_by_name():
    from refvpng.curvature.fisher import vp_scores

    model, eta, x, eps, xp = _small_problem()
    lam = eta[: model.n_lambda]
    with pytest.raises(ValueError, match="eps must have at least one sample"):
        vp_fisher_exact(model, eta, x, eps[:0])
    for fn in (vp_fisher_mc, vp_scores):
        with pytest.raises(ValueError, match="eps must have at least one sample"):
            fn(model, eta, x, eps[:0], xp[:0])
    with pytest.raises(ValueError, match="z must have at least one sample"):
        q_fisher_mc(model, lam, x, np.zeros((0, 4, 2)))
    with pytest.raises(ValueError, match="x must have 3 columns"):
        q_fisher(model, lam, x[:, :2])
    with pytest.raises(ValueError, match="x must have at least one row"):
        q_fisher_mc(model, lam, x[:0], np.zeros((2, 0, 2)))
    with pytest.raises(TypeError, match="model must be a refvpng LatentModel"):
        vp_fisher_mc(None, eta, x, eps, xp)


@pytest.mark.parametrize(
    "name,call",
    [
        ("output_jacobian", lambda m, e, x, eps, xp: output_jacobian(m, e, x, eps)),
        ("q_fisher", lambda m, e, x, eps, xp: q_fisher(m, e[: m.n_lambda], x)),
        ("vp_fisher_exact", lambda m, e, x, eps, xp: vp_fisher_exact(m, e, x, eps)),
        ("vp_fisher_mc", lambda m, e, x, eps, xp: vp_fisher_mc(m, e, x, eps, xp)),
    ],
)
def test_overflow_of_finite_input_names_the_estimator(name, call):
    """eta of 1e300 is finite; its Fisher is not: FloatingPointError, never inf/NaN or 'jac contains NaN'."""
    model, eta, x, eps, xp = _small_problem()
    with pytest.raises(FloatingPointError, match=f"^{name}: "):
        call(model, np.full_like(eta, 1e300), x, eps, xp)
    assert np.all(np.isfinite(call(model, eta, x, eps, xp)[-1]))


def test_vp_fisher_mc_overflowing_predictive_samples_raise():
    model, eta, x, eps, xp = _small_problem()
    with pytest.raises(FloatingPointError, match="^vp_fisher_mc: "):
        vp_fisher_mc(model, eta, x, eps, np.where(xp > 0, 1e300, xp))
