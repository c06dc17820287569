"""Levenberg-Marquardt damping: the rule on hand cases, and its wrapper transformation."""

import math

import numpy as np
import pytest

from refvpng.optim import (
    LMDampingState,
    adam,
    chain,
    lm_adjust,
    lm_damping,
    make_optimizer,
    natural_direction,
    predicted_improvement,
    reduction_ratio,
    scale,
)
from refvpng.testing.tolerances import EXACT


def test_lm_adjust_rule():
    omega = (19 / 20) ** 5
    assert lm_adjust(2.0, 0.8, omega) == 2.0 * omega  # rho > 3/4: less damping
    assert lm_adjust(2.0, 0.2, omega) == 2.0 / omega  # rho < 1/4: more damping
    assert lm_adjust(2.0, -3.0, omega) == 2.0 / omega  # objective got worse
    assert lm_adjust(2.0, 0.5, omega) == 2.0
    assert lm_adjust(2.0, 0.75, omega) == 2.0  # boundaries are inclusive "no change"
    assert lm_adjust(2.0, 0.25, omega) == 2.0
    assert lm_adjust(2.0, math.nan, omega) == 2.0


def test_reduction_ratio_and_sign_convention():
    # maximising: the objective went up by 1, the model predicted 2
    assert reduction_ratio(3.0, 2.0, 2.0) == 0.5
    assert reduction_ratio(1.0, 2.0, 2.0) == -0.5
    assert math.isnan(reduction_ratio(3.0, 2.0, 0.0))
    assert math.isnan(reduction_ratio(3.0, 2.0, -1.0))
    assert math.isnan(reduction_ratio(math.nan, 2.0, 1.0))


def test_predicted_improvement_by_hand():
    g = np.array([1.0, 2.0, 3.0])
    d = np.array([0.5, -1.0, 2.0])
    F = np.array([[2.0, 1.0], [1.0, 3.0]])
    # full block: g.d = 0.5 - 2 + 6 = 4.5 ; block on (0, 1): dI = (0.5, -1)
    # dI^T F dI = 2*0.25 + 2*1*(0.5*-1) + 3*1 = 0.5 - 1 + 3 = 2.5
    assert predicted_improvement(g, d, F, index=slice(0, 2)) == pytest.approx(4.5 - 1.25, abs=EXACT)
    # with damping 2 in the model: + 2 * |dI|^2 = 2 * 1.25 = 2.5 -> 4.5 - 0.5 * 5.0
    assert predicted_improvement(g, d, F, 2.0, index=slice(0, 2)) == pytest.approx(2.0, abs=EXACT)
    with pytest.raises(ValueError, match="curvature"):
        predicted_improvement(g, d, F)


def _hand_case(rho_target):
    """period T1 = 2, lr = 1, F = diag(2, 1), mu0 = 0.5; returns states and updates."""
    F = np.diag([2.0, 1.0])
    opt = lm_damping(chain(natural_direction(), scale(1.0)), 0.5, period=2)
    x = np.zeros(2)
    state = opt.init(x)
    g0, g1, g2 = np.array([1.0, 0.0]), np.array([1.0, 2.0]), np.array([1.0, 1.0])
    _, s1 = opt.update(g0, state, x, value=0.0, curvature=F)
    u1, s2 = opt.update(g1, s1, x, value=1.0, curvature=F)
    # predicted improvement of step 1 by hand: d1 = (1/2.5, 2/1.5)
    d1 = (1.0 / 2.5, 2.0 / 1.5)
    pred1 = (1.0 * d1[0] + 2.0 * d1[1]) - 0.5 * (2.0 * d1[0] ** 2 + 1.0 * d1[1] ** 2)
    u2, s3 = opt.update(g2, s2, x, value=1.0 + rho_target * pred1, curvature=F)
    return F, (s1, s2, s3), (u1, u2), pred1


def test_lm_damping_hand_case_good_step_decreases_mu():
    F, (s1, s2, s3), (u1, u2), pred1 = _hand_case(0.9)
    omega = (19 / 20) ** 2
    assert s1.damping == 0.5 and s2.damping == 0.5  # no adjustment at k = 0, 1
    np.testing.assert_allclose(u1, [0.4, 2.0 / 1.5], rtol=EXACT)
    assert s2.predicted == pytest.approx(pred1, abs=EXACT)
    assert s3.rho == pytest.approx(0.9, abs=1e-12)
    assert s3.damping == pytest.approx(0.5 * omega, rel=EXACT)
    # the new damping is used for this very step
    np.testing.assert_allclose(u2, np.linalg.solve(F + 0.5 * omega * np.eye(2), [1.0, 1.0]), rtol=EXACT)
    assert isinstance(s3, LMDampingState) and s3.count == 3


def test_lm_damping_hand_case_poor_step_increases_mu():
    _, (_, _, s3), _, _ = _hand_case(0.1)
    assert s3.damping == pytest.approx(0.5 / (19 / 20) ** 2, rel=EXACT)
    _, (_, _, s3), _, _ = _hand_case(-1.0)
    assert s3.damping == pytest.approx(0.5 / (19 / 20) ** 2, rel=EXACT)


def test_lm_damping_hand_case_middle_keeps_mu():
    _, (_, _, s3), _, _ = _hand_case(0.5)
    assert s3.damping == 0.5


def test_exact_quadratic_gives_rho_one():
    """L(x) = -1/2 x^T A x, F = A: the undamped model is exact, so rho = 1 for any step."""
    A = np.array([[3.0, 1.0], [1.0, 2.0]])
    opt = lm_damping(chain(natural_direction(), adam(0.3)), 1.0, period=1)
    x = np.array([1.0, -1.0])
    state = opt.init(x)
    for _ in range(4):
        u, state = opt.update(-A @ x, state, x, value=-0.5 * x @ A @ x, curvature=A)
        x = x + u
    assert state.rho == pytest.approx(1.0, abs=1e-10)
    assert state.damping == pytest.approx((19 / 20) ** 3, rel=EXACT)


def test_bounds_and_validation():
    inner = chain(natural_direction(), scale(1.0))
    with pytest.raises(ValueError, match="damping"):
        lm_damping(inner, 0.0)
    with pytest.raises(ValueError, match="period"):
        lm_damping(inner, 1.0, period=0)
    with pytest.raises(ValueError, match="omega"):
        lm_damping(inner, 1.0, omega=1.5)
    with pytest.raises(ValueError, match="damping must lie in"):
        lm_damping(inner, 1.0, min_damping=2.0)
    opt = lm_damping(inner, 1.0)
    state = opt.init(np.zeros(1))
    with pytest.raises(ValueError, match="value="):
        opt.update(np.ones(1), state, curvature=np.eye(1))
    with pytest.raises(ValueError, match="value must be finite"):
        opt.update(np.ones(1), state, value=math.nan, curvature=np.eye(1))
    with pytest.raises(ValueError, match="curvature="):
        opt.update(np.ones(1), state, value=0.0)

    # clipping to max_damping
    opt = lm_damping(inner, 1.0, period=1, omega=0.5, max_damping=1.5)
    x = np.zeros(1)
    s = opt.init(x)
    _, s = opt.update(np.ones(1), s, x, value=0.0, curvature=np.eye(1))
    _, s = opt.update(np.ones(1), s, x, value=-10.0, curvature=np.eye(1))
    assert s.damping == 1.5


def test_make_optimizer_adaptive_uses_lm():
    opt = make_optimizer("vpng", "rmsprop", 0.1, damping=1e-2, adapt_damping=True, period=3)
    state = opt.init(np.zeros(2))
    assert isinstance(state, LMDampingState) and state.damping == 1e-2
    with pytest.raises(ValueError, match="natural directions only"):
        make_optimizer("gradient", "adam", 0.1, adapt_damping=True)


# ---- validation (issue 11)


def test_lm_adjust_and_reduction_ratio_check_their_arguments():
    from refvpng.optim.damping import lm_adjust, reduction_ratio

    assert lm_adjust(2.0, np.nan, 0.5) == 2.0  # documented: NaN keeps the damping
    with pytest.raises(ValueError, match=r"omega must be in \(0, 1\)"):
        lm_adjust(1.0, 0.1, 1.5)
    with pytest.raises(ValueError, match="damping must be finite and >= 0"):
        lm_adjust(-1.0, 0.1, 0.5)
    with pytest.raises(TypeError, match="rho must be a real number"):
        lm_adjust(1.0, None, 0.5)
    with pytest.raises(FloatingPointError, match="lm_adjust"):
        lm_adjust(1e308, 0.1, 1e-10)  # mu / omega overflows
    with pytest.raises(TypeError, match="predicted must be a real number"):
        reduction_ratio(1.0, 0.5, "0.2")


def test_predicted_improvement_overflow_is_raised():
    from refvpng.curvature.operator import DenseCurvature
    from refvpng.optim.damping import predicted_improvement

    with np.errstate(all="ignore"), pytest.raises(FloatingPointError, match="predicted_improvement"):
        predicted_improvement(np.ones(2), np.full(2, 1e300), DenseCurvature(np.eye(2)))
