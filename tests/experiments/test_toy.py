import json

import numpy as np
import pytest

from refvpng.experiments import toy


def test_quick_run_writes_results_and_reproduces_the_claim(tmp_path):
    r = toy.run_experiment(preset="quick", out=tmp_path, show_progress=False)
    data = json.loads((tmp_path / "toy_directions.json").read_text())
    assert set(data["cosine"]) == set(data["steps"]) == {"gradient", "q_natural", "vpng"}
    assert (tmp_path / "toy_figure1.png").stat().st_size > 1000
    # q-natural gradient = sigma^2 * gradient: the same direction, to rounding.
    assert abs(r["cosine"]["gradient"] - r["cosine"]["q_natural"]) < 1e-12
    assert r["cosine"]["vpng"] > 0.999
    assert r["cosine"]["gradient"] < 0.1
    assert r["cosine"]["gradient"] >= data["setting"]["min_possible_gradient_cosine"] - 1e-12


def test_vpng_with_unit_damping_is_newton():
    """(n Sigma^-1 + I)^-1 (I + n Sigma^-1) = I: one step of size 1 reaches the optimum."""
    s = toy.setup()
    k, _ = toy.steps_to_tol(s, "vpng", 1.0, damping=1.0, max_steps=5)
    assert k == 1


def test_directions_match_dense_formulas():
    s = toy.setup()
    d = toy.directions_at(s, s["lam0"], damping=0.3)
    from refvpng.models import gaussian_mean as gm

    g = gm.elbo_grad_closed(s["lam0"], s["x"], s["eps_corr"])
    np.testing.assert_allclose(d["q_natural"], s["sigma"] ** 2 * g, rtol=1e-12)
    fr = s["n"] * np.linalg.inv(gm.covariance(s["eps_corr"]))
    np.testing.assert_allclose(d["vpng"], np.linalg.solve(fr + 0.3 * np.eye(2), g), rtol=1e-12)


def test_vectorised_contour_values_match_closed_form():
    from refvpng.models import gaussian_mean as gm

    s = toy.setup()
    prec = np.linalg.inv(gm.covariance(s["eps_corr"]))
    lam = np.array([0.3, -2.0])
    r = s["x"] - lam
    quad = np.einsum("ni,ij,nj->", r, prec, r) + lam @ lam
    r0 = s["x"]
    c = gm.elbo_closed(np.zeros(2), s["x"], s["eps_corr"], s["sigma"]) + 0.5 * np.einsum(
        "ni,ij,nj->", r0, prec, r0
    )
    assert abs((c - 0.5 * quad) - gm.elbo_closed(lam, s["x"], s["eps_corr"], s["sigma"])) < 1e-9


@pytest.mark.slow
def test_full_figure1_run(tmp_path):
    r = toy.run_experiment(out=tmp_path, plot=False, show_progress=False)
    assert r["steps"]["vpng"] <= 10 < 1000 < r["steps"]["gradient"]
    assert r["cosine"]["gradient"] < 0.06 and r["cosine"]["vpng"] > 0.9999
