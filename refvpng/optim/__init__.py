"""Optimisers for maximising the ELBO, optax style: directions, step-size rules, damping, loop.

An optimiser is a :class:`GradientTransformation` ``(init, update)``; ``grads`` are gradients of
the objective to **maximise** and ``updates`` are **added** to the flat parameter vector
(:func:`apply_updates`). A direction (vanilla, q-natural, VPNG) and a step-size rule (fixed,
RMSProp, Adam) compose with :func:`chain`; :func:`make_optimizer` builds the paper's
combinations, :func:`run` is Algorithm 1 of Tang & Ranganath (2019), and
:mod:`refvpng.optim.checkpoint` saves and restores a run bit for bit.

Examples
--------
>>> import numpy as np
>>> from refvpng.optim import adam, apply_updates, chain, natural_direction
>>> opt = chain(natural_direction(damping=1e-3), adam(0.1))
>>> params = np.zeros(2)
>>> state = opt.init(params)
>>> updates, state = opt.update(np.array([1.0, 2.0]), state, params, curvature=np.eye(2))
>>> apply_updates(params, updates).round(6)
array([0.1, 0.1])
"""

from refvpng.optim.base import (
    EmptyState,
    GradientTransformation,
    apply_updates,
    chain,
    check_grads,
    check_params,
)
from refvpng.optim.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from refvpng.optim.damping import (
    LMDampingState,
    lm_adjust,
    lm_damping,
    predicted_improvement,
    reduction_ratio,
)
from refvpng.optim.directions import (
    damped_solve,
    identity_direction,
    natural_direction,
    resolve_index,
)
from refvpng.optim.hf_direction import HFDirectionState, hf_direction
from refvpng.optim.kfac_direction import KFACDirectionState, kfac_direction
from refvpng.optim.loop import RunResult, make_optimizer, resume, run, step_rngs
from refvpng.optim.stepsize import (
    AdamState,
    RMSPropState,
    adam,
    rmsprop,
    scale,
    scale_by_adam,
    scale_by_rmsprop,
)

__all__ = [
    "AdamState",
    "Checkpoint",
    "EmptyState",
    "GradientTransformation",
    "HFDirectionState",
    "KFACDirectionState",
    "LMDampingState",
    "RMSPropState",
    "RunResult",
    "adam",
    "apply_updates",
    "chain",
    "check_grads",
    "check_params",
    "damped_solve",
    "hf_direction",
    "identity_direction",
    "kfac_direction",
    "lm_adjust",
    "lm_damping",
    "load_checkpoint",
    "make_optimizer",
    "natural_direction",
    "predicted_improvement",
    "reduction_ratio",
    "resolve_index",
    "resume",
    "rmsprop",
    "run",
    "save_checkpoint",
    "scale",
    "scale_by_adam",
    "scale_by_rmsprop",
    "step_rngs",
]
