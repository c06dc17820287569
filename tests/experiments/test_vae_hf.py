"""HF-SGVI as a method of the VAE experiment: a quick cell runs and counts its CG iterations;
it is opt-in (not a default method) and refused by Figure 3 (its F_r operator is Bernoulli)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from refvpng.experiments import chain_training, vae, vmf
from refvpng.nn import make_vmf
from refvpng.optim.hf_direction import HFDirectionState
from tests.experiments._clock import step_clock


def test_hf_sgvi_cell_runs_with_truncated_cg():
    s = vae.Settings(**{**vae.QUICK, "hf_iters": 3, "methods": ("hf_sgvi",)})
    opt, kinds = vae.method_optimizer("hf_sgvi", 1e-3, s, 10)
    assert kinds == ("hf",)
    assert isinstance(opt.init(np.zeros(12))[0], HFDirectionState)
    out = vae.run_one("hf_sgvi", 1e-3, s, vae.synthetic_data(0))
    assert out["steps"] >= 1 and math.isfinite(out["final_test_elbo"])
    assert 1.0 <= out["cg_iterations_mean"] <= 3.0
    assert "refresh_seconds_mean" not in out


def test_hf_sgvi_is_deterministic_in_steps_and_uses_its_settings():
    s = vae.Settings(**{**vae.QUICK, "budget": 1e9, "n_evals": 1, "hf_iters": 2})
    data = vae.synthetic_data(0)

    def run(settings):
        return vae.run_one("hf_sgvi", 1e-3, settings, data, _clock_fn=step_clock(10))

    a, b = run(s), run(s)
    assert a["curve"] == b["curve"] and a["steps"] == b["steps"] == 7
    assert a["cg_iterations_mean"] == 2.0  # every truncated solve uses its iterations
    c = run(vae.Settings(**{**vae.QUICK, "budget": 1e9, "n_evals": 1, "hf_iters": 1}))
    assert c["cg_iterations_mean"] == 1.0 and c["curve"] != a["curve"]


def test_hf_sgvi_is_opt_in_and_vae_only():
    assert "hf_sgvi" in chain_training.METHODS and "hf_sgvi" in vae.METHODS
    assert "hf_sgvi" not in vae.DEFAULT_METHODS and "hf_sgvi" not in vae.Settings().methods
    with pytest.raises(ValueError, match="methods"):
        vmf.Settings(methods=("hf_sgvi",))
    with pytest.raises(ValueError, match="hf_iters"):
        vae.Settings(hf_iters=0)
    with pytest.raises(ValueError, match="hf_warm"):
        vae.Settings(hf_warm=1.5)
    s = vmf.Settings(**vmf.QUICK)
    from refvpng.nn.vmf import VMF_LIKELIHOOD

    with pytest.raises(ValueError, match="Bernoulli"):
        chain_training.run_training(
            "hf_sgvi", 1e-3, s, make_vmf(24, 4, 3), VMF_LIKELIHOOD, vmf.synthetic_ratings(0)
        )
