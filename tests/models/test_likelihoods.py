"""Likelihood families: densities against scipy, scores against autograd, output Fisher exact."""

import numpy as np
import pytest
from autograd import elementwise_grad
from scipy import stats

from refvpng.models.likelihoods import Bernoulli, Gaussian, Poisson, log_sigmoid, sigmoid, softplus
from refvpng.testing import AUTOGRAD, EXACT, assert_mc_close

COV = np.array([[1.0, 0.6], [0.6, 2.0]])
FAMILIES = {
    "gaussian": Gaussian(COV),
    "bernoulli": Bernoulli(),
    "poisson_log": Poisson("log"),
    "poisson_softplus": Poisson("softplus"),
}


@pytest.fixture(params=list(FAMILIES), ids=list(FAMILIES))
def fam(request):
    return FAMILIES[request.param]


def _t(rng):
    return rng.uniform(-2, 2, size=(5, 2))


def test_log_prob_against_scipy(fam, rng):
    t = _t(rng)
    x = fam.sample(rng, t)
    got = fam.log_prob(x, t)
    if isinstance(fam, Gaussian):
        ref = np.array([stats.multivariate_normal(t[i], COV).logpdf(x[i]) for i in range(5)])
    elif isinstance(fam, Bernoulli):
        ref = stats.bernoulli(1 / (1 + np.exp(-t))).logpmf(x).sum(-1)
    else:
        ref = stats.poisson(np.asarray(fam.rate(t))).logpmf(x).sum(-1)
    np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-12)


def test_score_against_autograd(fam, rng):
    t = _t(rng)
    x = fam.sample(rng, t)
    ref = elementwise_grad(lambda tt: fam.log_prob(x, tt).sum())(t)
    np.testing.assert_allclose(fam.score(x, t), ref, rtol=AUTOGRAD, atol=AUTOGRAD)


def test_output_fisher_is_expected_score_outer_product(fam):
    """Lambda(t) = E[score score^T]: exact sums for the discrete families, closed form for Gaussian."""
    t = np.array([[-1.5, 0.7]])
    if isinstance(fam, Gaussian):
        np.testing.assert_allclose(fam.output_fisher(t), np.linalg.inv(COV), atol=EXACT)
        return
    support = np.arange(0, 200.0) if isinstance(fam, Poisson) else np.array([0.0, 1.0])
    lam = fam.output_fisher(t)[0]
    for j in range(2):
        xs = np.zeros((support.size, 2))
        xs[:, j] = support
        tt = np.repeat(t, support.size, axis=0)
        pj = np.exp(fam.log_prob(xs, tt) - _log_p_other_zero(fam, t, j))
        sc = fam.score(xs, tt)[:, j]
        np.testing.assert_allclose(np.sum(pj * sc**2), lam[j], rtol=1e-10)


def _log_p_other_zero(fam, t, j):
    """log p(x_{-j} = 0 | t_{-j}) for the factorised families."""
    k = 1 - j
    x0 = np.zeros((1, 1))
    return fam.log_prob(x0, t[:, k : k + 1])[0]


def test_sampling_mean_within_se(fam, rng):
    t = np.array([[0.3, -0.4]])
    xs = fam.sample(rng, np.repeat(t, 20000, axis=0))
    mean = (
        t[0]
        if isinstance(fam, Gaussian)
        else (1 / (1 + np.exp(-t[0])) if isinstance(fam, Bernoulli) else np.asarray(fam.rate(t[0])))
    )
    assert_mc_close(xs, mean)


@pytest.mark.parametrize("t0", [-1000.0, -50.0, 0.0, 50.0, 1000.0])
def test_stable_up_to_1000(t0):
    t = np.array([[t0]])
    for fam in (Bernoulli(), Poisson("softplus")):
        for x in (0.0, 1.0, 3.0):
            if isinstance(fam, Bernoulli) and x > 1:
                continue
            xx = np.array([[x]])
            vals = [fam.log_prob(xx, t), fam.score(xx, t), fam.output_fisher(t)]
            assert all(np.all(np.isfinite(v)) for v in vals), (fam, t0, x, vals)
            g = elementwise_grad(lambda tt, f=fam, xv=xx: f.log_prob(xv, tt).sum())(t)
            assert np.all(np.isfinite(g))
    g = Gaussian(np.eye(1))
    assert np.isfinite(g.log_prob(np.zeros((1, 1)), t)).all()


def test_bernoulli_extreme_values_exact():
    b = Bernoulli()
    assert b.log_prob(np.array([[1.0]]), np.array([[-1000.0]]))[0] == -1000.0
    assert b.log_prob(np.array([[0.0]]), np.array([[1000.0]]))[0] == -1000.0
    assert b.log_prob(np.array([[1.0]]), np.array([[1000.0]]))[0] == 0.0


def test_poisson_log_link_overflow_is_an_error():
    with pytest.raises(ValueError, match="t exceeds 700"):
        Poisson("log").log_prob(np.zeros((1, 1)), np.array([[800.0]]))
    assert np.isfinite(Poisson("log").log_prob(np.ones((1, 1)), np.array([[-1000.0]]))).all()


def test_whiten_reproduces_output_fisher(fam, rng):
    t = _t(rng)
    jac = rng.standard_normal((5, 2, 3))
    w = fam.whiten(jac, t)
    got = np.einsum("ndp,ndq->npq", w, w)
    lam = fam.output_fisher(t)
    lam = (
        np.broadcast_to(lam, (5, 2, 2))
        if lam.ndim == 2 and lam.shape == (2, 2)
        else np.stack([np.diag(v) for v in lam])
    )
    ref = np.einsum("ndp,nde,neq->npq", jac, lam, jac)
    np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    "cov, msg",
    [
        (np.array([[1.0, 2.0], [2.0, 1.0]]), "positive definite"),
        (np.array([[1.0, 0.1], [0.0, 1.0]]), "symmetric"),
        (np.ones((2, 3)), "square"),
        (np.array([[np.nan]]), "cov contains NaN"),
    ],
)
def test_gaussian_bad_cov(cov, msg):
    with pytest.raises(ValueError, match=msg):
        Gaussian(cov)


def test_poisson_bad_link():
    with pytest.raises(ValueError, match="link"):
        Poisson("identity")


# ---- validation (issue 11): plain inputs are checked, autograd boxes pass


@pytest.mark.parametrize(
    "lik", [Gaussian(np.eye(2)), Bernoulli(), Poisson("log"), Poisson("softplus")], ids=repr
)
class TestValidation:
    def test_nan_t_is_named(self, lik):
        t = np.array([[0.1, np.nan]])
        for call in (lambda: lik.log_prob(np.ones((1, 2)), t), lambda: lik.score(np.ones((1, 2)), t)):
            with pytest.raises(ValueError, match="t contains NaN"):
                call()
        with pytest.raises(ValueError, match="t contains NaN"):
            lik.output_fisher(t)

    def test_x_columns_must_match_t(self, lik):
        with pytest.raises(ValueError, match="x must have as many columns as t"):
            lik.log_prob(np.ones((1, 3)), np.zeros((1, 2)))

    def test_x_must_broadcast_against_t(self, lik):
        with pytest.raises(ValueError, match="x of shape"):
            lik.score(np.ones((3, 2)), np.zeros((2, 2)))

    def test_complex_and_bool_rejected(self, lik):
        with pytest.raises(TypeError, match="t must be a real"):
            lik.output_fisher(np.zeros((1, 2)) + 1j)
        with pytest.raises(TypeError, match="x must be a real"):
            lik.log_prob(np.ones((1, 2), dtype=bool), np.zeros((1, 2)))

    def test_rng_must_be_a_generator(self, lik):
        with pytest.raises(TypeError, match="rng must be a numpy.random.Generator"):
            lik.sample(np.random.RandomState(0), np.zeros((1, 2)))
        with pytest.raises(TypeError, match="rng must be a numpy.random.Generator"):
            lik.sample(np.random, np.zeros((1, 2)))

    def test_jac_shape(self, lik):
        with pytest.raises(ValueError, match="jac must have shape"):
            lik.whiten(np.ones((1, 3, 4)), np.zeros((1, 2)))

    def test_float32_promoted(self, lik):
        x, t = np.ones((1, 2)), np.full((1, 2), 0.25)
        out = lik.score(x.astype(np.float32), t.astype(np.float32))
        assert out.dtype == np.float64
        np.testing.assert_array_equal(out, lik.score(x, t))

    def test_autograd_still_differentiates(self, lik):
        x, t = np.ones((2, 2)), np.full((2, 2), 0.3)
        g = elementwise_grad(lambda tt: lik.log_prob(x, tt))(t)
        np.testing.assert_allclose(g, lik.score(x, t), rtol=AUTOGRAD)


def test_gaussian_log_prob_overflow_names_the_function():
    with pytest.raises(FloatingPointError, match="log_prob"), np.errstate(all="ignore"):
        Gaussian(np.eye(2)).log_prob(np.ones((1, 2)), np.full((1, 2), 1e300))


def test_poisson_counts_must_be_nonnegative():
    with pytest.raises(ValueError, match="non-negative counts"):
        Poisson("softplus").log_prob(-np.ones((1, 2)), np.zeros((1, 2)))


@pytest.mark.parametrize("f", [softplus, log_sigmoid, sigmoid])
def test_sigmoid_family_validates_and_promotes(f):
    with pytest.raises(ValueError, match="t contains NaN"):
        f(np.array([0.0, np.nan]))
    with pytest.raises(TypeError, match="t must be a real"):
        f(np.array([1j]))
    assert np.asarray(f(np.float32(0.5))).dtype == np.float64
