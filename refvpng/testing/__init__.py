"""Tools for people testing their own implementations against refvpng.

- :mod:`refvpng.testing.tolerances`: the named tolerance tiers used throughout the suite.
- :mod:`refvpng.testing.mc`: Monte Carlo checks as ``|estimate - truth| <= k * SE``.
- :mod:`refvpng.testing.invariants`: symmetric PSD, structured operator == its dense form.
- :mod:`refvpng.testing.strategies`: hypothesis strategies for models, parameters, data and
  noise (needs the ``test`` extra).
"""

from refvpng.testing.invariants import (
    assert_operator_matches_dense,
    assert_symmetric_psd,
    assert_trees_bit_equal,
)
from refvpng.testing.mc import assert_mc_close, mc_mean_and_se
from refvpng.testing.tolerances import AUTOGRAD, EXACT, FINITE_DIFF, MC_K

__all__ = [
    "AUTOGRAD",
    "EXACT",
    "FINITE_DIFF",
    "MC_K",
    "assert_mc_close",
    "assert_operator_matches_dense",
    "assert_symmetric_psd",
    "assert_trees_bit_equal",
    "mc_mean_and_se",
]
