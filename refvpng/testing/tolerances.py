"""Named tolerance tiers, float64 throughout.

Every comparison in the suite uses one of these, so a change of policy happens in one place.

- ``EXACT``: the same algebra computed two ways (closed form vs closed form, structured operator
  vs its own dense form, NumPy vs numba twin). Relative to the largest entry.
- ``AUTOGRAD``: a hand-written derivative or matrix against an autograd build.
- ``FINITE_DIFF``: against central finite differences.
- ``MC_K``: a Monte Carlo estimate must lie within ``MC_K`` standard errors of the truth, the
  standard error estimated from the same samples (see :func:`refvpng.testing.mc.assert_mc_close`).
"""

__all__ = ["EXACT", "AUTOGRAD", "FINITE_DIFF", "MC_K"]

#: Relative tolerance of exact algebra computed two ways.
EXACT = 1e-12
#: Relative tolerance against an autograd build.
AUTOGRAD = 1e-8
#: Relative tolerance against central finite differences.
FINITE_DIFF = 1e-5
#: Bound, in standard errors, of a Monte Carlo estimate's distance to the truth.
MC_K = 5.0
