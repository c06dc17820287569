import autograd.numpy as anp
import numpy as np
import pytest
from autograd import hessian
from scipy import stats

from refvpng.models.variational import MeanFieldGaussian
from refvpng.testing import AUTOGRAD, assert_mc_close

FAMILIES = [("exp", 0.0), ("softplus", 0.0), ("exp", 0.37), ("softplus", 0.23)]


@pytest.mark.parametrize(("scale", "floor"), FAMILIES)
def test_log_density_and_kl(scale, floor, rng):
    fam = MeanFieldGaussian(scale, floor=floor)
    m, rho = np.array([0.3, -1.0]), np.array([-0.5, 0.8])
    s = np.asarray(fam.std(rho))
    z = fam.reparam(m, rho, rng.standard_normal((20000, 2)))
    ref = stats.norm(m, s).logpdf(z).sum(-1)
    np.testing.assert_allclose(fam.log_density(z, m, rho), ref, rtol=1e-12)
    kl_samples = ref - stats.norm(0, 2.0).logpdf(z).sum(-1)
    assert_mc_close(kl_samples, fam.kl_to_normal(m, rho, 2.0))


@pytest.mark.parametrize(("scale", "floor"), FAMILIES)
def test_fisher_diag_against_autograd(scale, floor):
    fam = MeanFieldGaussian(scale, floor=floor)
    m0, rho0 = np.array([0.3, -1.0]), np.array([-0.5, 0.8])
    s0 = fam.std(rho0)

    def cross_entropy(p):
        m, rho = p[:2], p[2:]
        s = fam.std(rho)
        return anp.sum(-(s0**2 + (m0 - m) ** 2) / (2 * s**2) - fam.log_std(rho))

    ref = -hessian(cross_entropy)(np.concatenate([m0, rho0]))
    fm, frho = fam.fisher_diag(rho0, (2,))
    np.testing.assert_allclose(np.diag(np.concatenate([fm, frho])), ref, atol=AUTOGRAD)


def test_softplus_fisher_stable_at_extremes():
    fam = MeanFieldGaussian("softplus")
    fm, frho = fam.fisher_diag(np.array([-300.0, 1000.0]), (2,))
    assert np.all(np.isfinite(fm)) and np.all(np.isfinite(frho)) and np.all(frho > 0)
    np.testing.assert_allclose(frho, [2.0, 2.0 / 1000.0**2], rtol=1e-12)
    np.testing.assert_allclose(fm, [np.exp(600.0), 1e-6], rtol=1e-12)
    # a finite rho whose 1/sigma^2 overflows: FloatingPointError naming the function (issue 11)
    with pytest.raises(FloatingPointError, match="fisher_diag: rho is so small"):
        fam.fisher_diag(np.array([-1000.0]), (1,))


def test_bad_family_arguments():
    with pytest.raises(ValueError, match="scale"):
        MeanFieldGaussian("log")
    with pytest.raises(ValueError, match="sigma"):
        MeanFieldGaussian("fixed", -1.0)
    with pytest.raises(ValueError, match="sigma"):
        MeanFieldGaussian("exp", 1.0)


@pytest.mark.parametrize("scale", ["exp", "softplus"])
def test_floor_shifts_sigma_not_its_derivative(scale):
    rho = np.array([-0.7, 0.4, 2.1])
    plain, floored = MeanFieldGaussian(scale), MeanFieldGaussian(scale, floor=0.3)
    np.testing.assert_allclose(floored.std(rho), plain.std(rho) + 0.3, rtol=1e-15)
    np.testing.assert_allclose(floored.log_std(rho), np.log(plain.std(rho) + 0.3), rtol=1e-15)
    np.testing.assert_array_equal(floored.dstd(rho), plain.dstd(rho))


def test_floor_keeps_sigma_positive_where_rho_underflows():
    fam = MeanFieldGaussian("softplus", floor=1e-4)
    fm, frho = fam.fisher_diag(np.array([-1000.0]), (1,))
    np.testing.assert_allclose(fm, [1e8], rtol=1e-12)
    assert np.all(np.isfinite(frho))


def test_bad_floor():
    with pytest.raises(ValueError, match="floor"):
        MeanFieldGaussian("softplus", floor=-1e-3)
    with pytest.raises(ValueError, match="floor"):
        MeanFieldGaussian("fixed", 1.0, floor=0.1)
    with pytest.raises(TypeError, match="floor"):
        MeanFieldGaussian("exp", floor="x")


# ---- validation (issue 11)


def test_mean_field_methods_validate_plain_inputs():
    from refvpng.models.variational import MeanFieldGaussian

    fam = MeanFieldGaussian("softplus")
    m, rho = np.zeros((3, 2)), np.zeros((3, 2))
    with pytest.raises(ValueError, match="rho must have the shape of m"):
        fam.kl_to_normal(m, rho[:, :1], 1.0)  # would broadcast silently
    with pytest.raises(ValueError, match="prior_std must be finite and > 0"):
        fam.kl_to_normal(m, rho, 0.0)
    with pytest.raises(TypeError, match="rho must be a numeric array"):
        fam.std(None)
    with pytest.raises(ValueError, match="m of shape .* and rho of shape .* do not broadcast"):
        fam.reparam(m, np.zeros((2, 2)), np.zeros((1, 3, 2)))
    with pytest.raises(TypeError, match="m_shape must be a tuple"):
        fam.fisher_diag(rho, [3, 2])
    with pytest.raises(ValueError, match="rho must have shape m_shape"):
        fam.fisher_diag(rho, (2, 3))
    with pytest.raises(TypeError, match="eps must be a real"):
        fam.reparam(m, rho, np.zeros((1, 3, 2)) + 1j)


def test_mean_field_overflow_names_the_method():
    from refvpng.models.variational import MeanFieldGaussian

    with np.errstate(all="ignore"), pytest.raises(FloatingPointError, match="std"):
        MeanFieldGaussian("exp").std(np.array([800.0]))
