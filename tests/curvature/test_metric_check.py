"""Singular-metric diagnostics: the marginal Fisher over (phi, theta), F_r, and check_metric."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from refvpng.curvature import metric_check as mc
from refvpng.curvature.fisher import vp_fisher_exact
from refvpng.curvature.latent_fisher import draw_joint
from refvpng.models import linear_vae as lv
from refvpng.models import ppca

SPEC = ppca.PPCASpec(4, 2)
K = SPEC.k


@pytest.fixture(scope="module")
def model():
    return ppca.make_model(SPEC)


@pytest.fixture(scope="module")
def theta_orth():
    rng = np.random.default_rng(12)
    W = np.linalg.qr(rng.standard_normal((SPEC.d, K)))[0] * np.array([2.0, 1.0])
    return SPEC.pack(W, rng.standard_normal(SPEC.d), 0.5)


def test_marginal_metric_over_phi_theta_is_singular_on_phi(model, theta_orth):
    n = 5
    F = mc.metric_over_phi_theta(model, n * ppca.marginal_fisher_closed(SPEC, theta_orth))
    assert np.all(F[: model.n_lambda] == 0.0) and np.all(F[:, : model.n_lambda] == 0.0)
    with pytest.raises(mc.SingularMetricError) as info:
        mc.check_metric(F, mc.phi_theta_blocks(model))
    nl = model.n_lambda
    assert (
        f"parameters phi[0..{nl - 1}] do not enter the marginal p(x; theta): their rows and "
        "columns of the marginal Fisher are zero; use the q-Fisher (Eq 2) or the VP Fisher F_r "
        "for them"
    ) in str(info.value)
    phi, theta = info.value.report.blocks
    assert phi.singular and phi.rank == 0 and np.array_equal(phi.zero, np.arange(nl))
    # pPCA's marginal Fisher is itself singular along the k(k-1)/2 rotations W -> W R
    assert theta.singular and theta.rank == model.n_theta - K * (K - 1) // 2
    assert theta.zero.size == 0 and "rotations" in theta.message


def test_vp_fisher_gives_phi_a_nonsingular_block(model, theta_orth):
    x = draw_joint(np.random.default_rng(13), model, theta_orth, 20, 1)[0][0]
    eta = np.concatenate([lv.optimal_encoder(SPEC, theta_orth), theta_orth])
    Fr = vp_fisher_exact(model, eta, x, lv.sigma_point_eps(20, K))
    rep = mc.check_metric(Fr, mc.phi_theta_blocks(model), raise_error=False, metric="VP Fisher")
    phi, theta = rep.blocks
    assert not phi.singular and phi.rank == model.n_lambda and phi.zero.size == 0
    assert not theta.singular
    # F_r mixes the blocks along the 2k latent scale/shift directions: damping is needed
    assert rep.rank == model.n_params - 2 * K and rep.singular
    assert "mix" in rep.messages[0]


def test_joint_fisher_is_regular(theta_orth):
    rep = mc.check_metric(3 * ppca.joint_fisher_closed(SPEC, theta_orth), {"theta": slice(None)})
    assert not rep.singular and rep.messages == ()


@given(
    st.integers(0, 10_000),
    st.lists(st.booleans(), min_size=6, max_size=6).filter(lambda z: not all(z)),
)
def test_check_metric_reports_exactly_the_zero_rows(seed, zero):
    rng = np.random.default_rng(seed)
    B = rng.standard_normal((6, 8))
    F = B @ B.T
    zero = np.array(zero)
    F[zero] = 0.0
    F[:, zero] = 0.0
    rep = mc.check_metric(F, [("a", slice(0, 3)), ("b", slice(3, 6))], raise_error=False)
    found = np.concatenate([rep.blocks[0].zero, 3 + rep.blocks[1].zero])
    assert np.array_equal(found, np.flatnonzero(zero))
    assert rep.singular == bool(zero.any())


@pytest.mark.parametrize(
    ("call", "exc", "match"),
    [
        (lambda m: mc.metric_over_phi_theta(m, np.eye(3)), ValueError, "fisher_theta"),
        (
            lambda m: mc.check_metric(np.eye(3), {"a": slice(0, 2), "b": slice(1, 3)}),
            ValueError,
            "blocks must not overlap",
        ),
        (lambda m: mc.check_metric(np.eye(3), {"a": [5]}), ValueError, "blocks"),
        (lambda m: mc.check_metric(np.ones((2, 3)), {"a": [0]}), ValueError, "fisher must"),
        (lambda m: mc.check_metric(np.eye(2), {"a": [0]}, rtol=0.0), ValueError, "rtol"),
        (lambda m: mc.check_metric(np.eye(2), "a"), TypeError, "blocks"),
    ],
)
def test_bad_inputs_name_the_argument(model, call, exc, match):
    with pytest.raises(exc, match=match):
        call(model)
