"""The testing toolkit itself: strategies draw valid problems, invariants catch violations."""

import numpy as np
import pytest
from autograd import jacobian
from hypothesis import given, settings

from refvpng.curvature.fisher import vp_fisher_exact
from refvpng.models.latent import outputs
from refvpng.testing.arrays import problem_arrays, reference
from refvpng.testing.compare import assert_close
from refvpng.testing.invariants import assert_operator_matches_dense, assert_symmetric_psd
from refvpng.testing.strategies import problems, spd_matrices
from refvpng.testing.tolerances import AUTOGRAD


@given(problems())
def test_vp_fisher_exact_matches_brute_force_on_random_models(p):
    """Every drawn problem: F_r against J^T Lambda J built point by point with reverse-mode autograd."""
    got = vp_fisher_exact(p.model, p.eta, p.x, p.eps)
    t = np.asarray(outputs(p.model, p.eta, p.x, p.eps))
    ref = np.zeros_like(got)
    lik = p.model.likelihood
    for s in range(t.shape[0]):
        for i in range(t.shape[1]):
            j = jacobian(lambda e, s=s, i=i: outputs(p.model, e, p.x, p.eps)[s, i])(p.eta)
            lam = np.diag(lik.output_fisher(t[s, i])) if lik.diagonal else lik.output_fisher(t[s, i])
            ref += j.T @ lam @ j
    ref /= t.shape[0]
    np.testing.assert_allclose(got, ref, rtol=0, atol=AUTOGRAD * max(1.0, np.abs(ref).max()))
    assert_symmetric_psd(got)


@given(spd_matrices())
def test_spd_strategy(m):
    assert_symmetric_psd(m)
    assert np.linalg.eigvalsh(m)[0] > 0


def test_invariants_catch_violations():
    with pytest.raises(AssertionError, match="not PSD"):
        assert_symmetric_psd(np.diag([1.0, -1.0]))
    with pytest.raises(AssertionError, match="not symmetric"):
        assert_symmetric_psd(np.array([[1.0, 0.5], [0.0, 1.0]]))

    class Op:
        def to_dense(self):
            return np.eye(2)

        def matvec(self, v):
            return 2 * v

    with pytest.raises(AssertionError, match="matvec differs"):
        assert_operator_matches_dense(Op())


def test_trees_bit_equal_catches_one_ulp():
    from refvpng.optim import AdamState
    from refvpng.testing.invariants import assert_trees_bit_equal

    a = (AdamState(np.int64(3), np.array([1.0, np.nan]), np.array([2.0, 3.0])), float("nan"))
    b = (AdamState(np.int64(3), np.array([1.0, np.nan]), np.array([2.0, 3.0])), float("nan"))
    assert_trees_bit_equal(a, b)
    c = (AdamState(np.int64(3), np.array([1.0, np.nan]), np.array([2.0, np.nextafter(3.0, 4.0)])), 0.0)
    with pytest.raises(AssertionError):
        assert_trees_bit_equal(a, c)


# ---------------------------------------------------------------- assert_close and tiers
def test_assert_close_passes_within_and_fails_outside_the_tier():
    from refvpng.testing import TIERS, assert_close, relative_error

    e = np.array([[100.0, -3.0], [0.5, 2.0]])
    assert_close(e * (1 + 5e-13), e, "exact")
    with pytest.raises(AssertionError, match=r"tier 'exact'.*worst entry \(0, 0\)"):
        assert_close(e * (1 + 5e-11), e, "exact")
    assert_close(e * (1 + 5e-11), e, "solve")
    assert_close(e + 1e-9, e, 1e-8)
    assert relative_error(np.array([1e-13]), np.array([0.0])) == 1e-13  # absolute below 1
    with pytest.raises(AssertionError, match="inf"):
        assert_close([np.nan, 1.0], [1.0, 1.0])
    with pytest.raises(ValueError, match="shape"):
        assert_close(e[0], e)
    with pytest.raises(ValueError, match="tier must be one of"):
        assert_close(e, e, "tight")
    with pytest.raises(ValueError, match="expected contains NaN"):
        assert_close(e, e * np.nan)
    with pytest.raises(TypeError, match="actual must be a real"):
        assert_close(np.array(["a"]), np.array([1.0]))
    # complex and bool are rejected, not cast (a complex answer would compare its real part)
    with pytest.raises(TypeError, match="actual must be a real .*complex"):
        assert_close(e + 1j, e)
    with pytest.raises(TypeError, match="expected must be a real .*boolean"):
        relative_error(e, e > 0)
    # a non-finite answer has no finite error: relative_error refuses, assert_close fails
    with pytest.raises(ValueError, match="actual contains NaN"):
        relative_error([np.inf, 1.0], [1.0, 1.0])
    # |a - e| overflowing float64 is still measured (on the scaled arrays), not inf
    assert relative_error([1.7e308], [-1.7e308]) == pytest.approx(2.0)
    with pytest.raises(TypeError, match="tier must be a real number"):
        assert_close(e, e, None)
    assert sorted(TIERS) == ["autograd", "exact", "finite_diff", "solve"]


# ---------------------------------------------------------------- assert_mc_close cannot pass vacuously
def test_assert_mc_close_rejects_nan_samples():
    from refvpng.testing import assert_mc_close

    s = 1.0 + np.random.default_rng(0).standard_normal(200)
    s[7] = np.nan
    with pytest.raises(ValueError, match="samples must be finite: 1 NaN"):
        assert_mc_close(s, 1.0)


@pytest.mark.parametrize("truth", [None, float("nan"), np.array([1.0, np.inf])])
def test_assert_mc_close_rejects_missing_truth(truth):
    from refvpng.testing import assert_mc_close

    s = 1.0 + np.random.default_rng(0).standard_normal((200, 2))
    with pytest.raises(ValueError, match="truth must be"):
        assert_mc_close(s, truth)


def test_assert_mc_close_zero_standard_error():
    """Identical samples: a clear ValueError when off the truth, a pass when equal to it to rounding."""
    from refvpng.testing import assert_mc_close

    s = np.full((50, 2), 3.0)
    with pytest.raises(ValueError, match=r"zero standard error at \(1,\).*degenerate"):
        assert_mc_close(s, np.array([3.0, 3.1]))
    assert_mc_close(s, 3.0)
    assert_mc_close(s * 1e6, 3e6 * (1 + 1e-15))  # rounding-level difference of a large value
    with pytest.raises(ValueError, match="at least 2"):
        assert_mc_close(s[:1], 3.0)


def test_assert_mc_close_still_fails_a_biased_estimate():
    from refvpng.testing import assert_mc_close

    s = 1.0 + np.random.default_rng(1).standard_normal(400)
    assert_mc_close(s, 1.0)
    with pytest.raises(AssertionError, match="SE away"):
        assert_mc_close(s, 1.5)


# ---------------------------------------------------------------- array-only strategies
@given(problem_arrays(kinds=("logistic",)))
@settings(deadline=None, max_examples=15)
def test_array_problem_matches_a_plain_numpy_port(p):
    """A foreign implementation written against the arrays alone (numpy here) agrees with refvpng."""
    spec, eta, y, eps, design = p["spec"], p["eta"], p["x"][:, 0], p["eps"], p["cov"]
    d = spec["dim"]
    m, rho = eta[:d], eta[d:]
    sig = np.exp(rho) if spec["scale"] == "exp" else np.logaddexp(0, rho)
    dsig = np.exp(rho) if spec["scale"] == "exp" else 1 / (1 + np.exp(-rho))
    e = eps if eps.ndim == 3 else np.broadcast_to(eps[:, None], (eps.shape[0], y.size, d))
    t = np.einsum("snd,nd->sn", m + sig * e, design)
    jac = np.concatenate([np.broadcast_to(design, e.shape), design * e * dsig], axis=-1)
    lam = 1 / (1 + np.exp(-t)) / (1 + np.exp(t))
    mine = np.einsum("sn,snp,snq->pq", lam, jac, jac) / eps.shape[0]
    assert_close(mine, reference(p, "vp_fisher_exact"), "exact")
    assert set(p) >= {"spec", "packing", "eta", "x", "eps", "x_pred", "cov"}
    assert p["packing"]["n_params"] == eta.size


@given(problem_arrays(kinds=("small", "chain"), max_n=3))
@settings(deadline=None, max_examples=10)
def test_array_problems_are_plain_and_consistent(p):
    assert all(
        isinstance(p[k], np.ndarray) and p[k].dtype == np.float64 for k in ("eta", "x", "eps", "x_pred")
    )
    s, m, n, d = p["x_pred"].shape
    assert p["x"].shape == (n, d) and p["eps"].shape[0] == s and s >= 2
    f_mc = reference(p, "vp_fisher_mc")
    scores = reference(p, "vp_scores")
    assert_close(f_mc, np.einsum("smnp,smnq->pq", scores, scores) / (s * m), "exact")
    assert_symmetric_psd(reference(p, "vp_fisher_exact"))


def test_reference_rejects_an_unknown_quantity():
    with pytest.raises(ValueError, match="quantity must be one of"):
        reference({"spec": {"model": "logistic", "dim": 2}}, "hessian")


# ------------------------------------------------- helpers reject what they cannot judge (issue 11)
def test_mc_mean_and_se_finite_at_extreme_magnitude_and_names_samples():
    from refvpng.testing import mc_mean_and_se

    s = np.random.default_rng(2).standard_normal((50, 2))
    s[7, 0] = 1e300  # (1e300)^2 overflows: the SE is still finite and right
    mean, se = mc_mean_and_se(s)
    assert np.isfinite(mean).all() and np.isfinite(se).all()
    np.testing.assert_allclose(mean[0], 1e300 / 50, rtol=1e-12)
    np.testing.assert_allclose(se[0], (s[:, 0] / 1e300).std(ddof=1) * 1e300 / np.sqrt(50), rtol=1e-12)
    np.testing.assert_array_equal(mc_mean_and_se(s[:, 1:])[1], s[:, 1:].std(0, ddof=1) / np.sqrt(50))
    with pytest.raises(TypeError, match="samples must be"):
        mc_mean_and_se(None)
    with pytest.raises(TypeError, match="samples must be a real .*complex"):
        mc_mean_and_se(s + 1j)


def test_assert_mc_close_names_samples_on_a_shape_mismatch():
    from refvpng.testing import assert_mc_close

    s = np.random.default_rng(3).standard_normal((40, 3))
    with pytest.raises(ValueError, match=r"trailing shape \(3,\) of samples"):
        assert_mc_close(s, np.zeros(2))


def test_assert_operator_matches_dense_rejects_a_non_operator():
    for bad in (None, "op", np.eye(2)):
        with pytest.raises(TypeError, match="op must be an operator"):
            assert_operator_matches_dense(bad)


def test_reference_rejects_a_problem_that_is_not_one():
    from refvpng.testing.arrays import reference

    for bad in (None, "p", {"spec": {"model": "small"}}):
        with pytest.raises(TypeError, match="problem must be a dict"):
            reference(bad, "elbo")
