"""The shared validation helpers of refvpng/_checks.py (each can fail for the input it guards)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from autograd import grad

from refvpng import _checks as C


def test_is_traced_and_as_array_or_traced():
    seen = []

    def f(x):
        seen.append(C.is_traced(x))
        assert C.as_array_or_traced(x, "x") is x  # a box passes unchanged
        return x * 2.0

    assert grad(f)(1.5) == 2.0 and seen == [True]
    assert not C.is_traced(np.ones(2))
    with pytest.raises(ValueError, match="x contains NaN"):
        C.as_array_or_traced(np.array([np.nan]), "x")


def test_check_trailing_and_samples():
    C.check_trailing(np.ones((2, 3)), "t", 3)
    with pytest.raises(ValueError, match=r"t must have shape \(\.\.\., 2\)"):
        C.check_trailing(np.ones((2, 3)), "t", 2)
    C.check_samples(np.ones((1, 2)), "eps")
    with pytest.raises(ValueError, match=r"eps .*S >= 1"):
        C.check_samples(np.ones((0, 2)), "eps")
    with pytest.raises(ValueError, match=r"x_pred .*M >= 1"):
        C.check_samples(np.ones((2, 0, 3)), "x_pred", axis=1, what="M")


def test_finite_output_names_the_function_and_wraps_helpers():
    @C.finite_output
    def inner(x):
        return np.array([x]) * 1e300

    @C.finite_output
    def outer(x):
        return inner(x)

    assert inner(1.0)[0] == 1e300
    with np.errstate(over="ignore"), pytest.raises(FloatingPointError, match="^outer: inner: "):
        outer(1e10)

    @C.finite_output
    def powers(x):
        return x**400

    with pytest.raises(FloatingPointError, match="powers"):
        powers(1e10)  # Python's OverflowError becomes a FloatingPointError
    assert powers.__name__ == "powers"


def test_as_real_scalar_allows_nan_not_bool():
    assert np.isnan(C.as_real_scalar(np.nan, "rho"))
    for bad in (True, 1j, np.ones(2), None):
        with pytest.raises(TypeError, match="rho"):
            C.as_real_scalar(bad, "rho")


def test_check_symmetric():
    C.check_symmetric(np.eye(2), "m")
    with pytest.raises(ValueError, match="m must be symmetric"):
        C.check_symmetric(np.array([[1.0, 0.5], [0.0, 1.0]]), "m")
    with pytest.raises(ValueError, match="m must be square"):
        C.check_symmetric(np.ones((2, 3)), "m")


def test_check_pairs():
    assert len(C.check_pairs([(np.ones((2, 1)), np.ones((2, 1)))])) == 1
    for bad in (None, "ab", [], [np.ones(2)], [(1, 2, 3)]):
        with pytest.raises(TypeError, match="pairs"):
            C.check_pairs(bad)


def test_as_path():
    assert C.as_path("a/b") == Path("a/b")
    with pytest.raises(TypeError, match="directory must be a str or os.PathLike"):
        C.as_path(None, "directory")


def test_check_bool_and_check_choice():
    from refvpng._checks import check_bool, check_choice

    assert check_bool(np.bool_(True), "flag") is True and check_bool(False, "flag") is False
    for bad in (1, 0.0, "yes", None):
        with pytest.raises(TypeError, match="flag"):
            check_bool(bad, "flag")
    assert check_choice("each", "damping_split", ("sqrt", "each")) == "each"
    for bad in ("Each", 3, None):
        with pytest.raises(ValueError, match="damping_split"):
            check_choice(bad, "damping_split", ("sqrt", "each"))
