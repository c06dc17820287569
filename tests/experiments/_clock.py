"""A fake training clock for the chain experiments: a fixed number of steps, whatever the CPU."""

from __future__ import annotations

from collections.abc import Callable


def step_clock(calls: int) -> Callable[[], float]:
    """A clock that reads 0 for its first ``calls - 1`` readings and then far past any budget.

    ``run_training`` reads the clock a fixed number of times per step, so a run on this clock
    stops after the same number of steps on any machine and at any load.
    """
    count = {"n": 0}

    def clock() -> float:
        count["n"] += 1
        return 0.0 if count["n"] < calls else 2e9

    return clock
