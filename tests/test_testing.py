"""The testing toolkit itself: strategies draw valid problems, invariants catch violations."""

import numpy as np
import pytest
from autograd import jacobian
from hypothesis import given

from refvpng.curvature.fisher import vp_fisher_exact
from refvpng.models.latent import outputs
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
