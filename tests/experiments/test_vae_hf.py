"""HF-SGVI as a method of the VAE experiment: a quick cell runs and counts its CG iterations."""

from __future__ import annotations

import math

import numpy as np

from refvpng.experiments import vae
from refvpng.optim.hf_direction import HFDirectionState


def test_hf_sgvi_cell_runs_with_truncated_cg():
    s = vae.Settings(**{**vae.QUICK, "hf_iters": 3, "methods": ("hf_sgvi",)})
    opt, kinds = vae.method_optimizer("hf_sgvi", 1e-3, s, 10)
    assert kinds == ("hf",)
    assert isinstance(opt.init(np.zeros(12))[0], HFDirectionState)
    out = vae.run_one("hf_sgvi", 1e-3, s, vae.synthetic_data(0))
    assert out["steps"] >= 1 and math.isfinite(out["final_test_elbo"])
    assert 1.0 <= out["cg_iterations_mean"] <= 3.0
    assert "refresh_seconds_mean" not in out
