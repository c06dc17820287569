"""Tools for people testing their own implementations against refvpng.

- :mod:`refvpng.testing.tolerances`: the named tolerance tiers used throughout the suite.
- :mod:`refvpng.testing.compare`: :func:`assert_close` and :func:`relative_error` by named tier.
- :mod:`refvpng.testing.mc`: Monte Carlo checks as ``|estimate - truth| <= k * SE``.
- :mod:`refvpng.testing.invariants`: symmetric PSD, structured operator == its dense form.
- :mod:`refvpng.testing.strategies`: hypothesis strategies for refvpng models, parameters, data
  and noise; :mod:`refvpng.testing.arrays`: array-only strategies (plain arrays plus a spec) and
  refvpng's answer for them, for foreign implementations (both need the ``test`` extra).
"""

from refvpng.testing.compare import assert_close, relative_error
from refvpng.testing.invariants import (
    assert_operator_matches_dense,
    assert_symmetric_psd,
    assert_trees_bit_equal,
)
from refvpng.testing.mc import assert_mc_close, mc_mean_and_se
from refvpng.testing.tolerances import AUTOGRAD, EXACT, FINITE_DIFF, MC_K, SOLVE, TIERS

__all__ = [
    "AUTOGRAD",
    "EXACT",
    "FINITE_DIFF",
    "MC_K",
    "SOLVE",
    "TIERS",
    "assert_close",
    "assert_mc_close",
    "assert_operator_matches_dense",
    "assert_symmetric_psd",
    "assert_trees_bit_equal",
    "mc_mean_and_se",
    "relative_error",
]
