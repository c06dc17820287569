"""Named tolerance tiers, float64 throughout.

Every comparison in the suite uses one of these, so a change of policy happens in one place.

- ``EXACT``: the same algebra computed two ways (closed form vs closed form, structured operator
  vs its own dense form, NumPy vs numba twin). Relative to the largest entry.
- ``SOLVE``: the result of a linear solve or a short optimiser trajectory, computed the same way
  by two implementations (rounding is amplified by the condition number).
- ``AUTOGRAD``: a hand-written derivative or matrix against an autograd build.
- ``FINITE_DIFF``: against central finite differences.
- ``MC_K``: a Monte Carlo estimate must lie within ``MC_K`` standard errors of the truth, the
  standard error estimated from the same samples (see :func:`refvpng.testing.mc.assert_mc_close`).

``TIERS`` maps the names used in fixture manifests and by
:func:`refvpng.testing.compare.assert_close` to these values.
"""

__all__ = ["EXACT", "SOLVE", "AUTOGRAD", "FINITE_DIFF", "MC_K", "TIERS"]

#: Relative tolerance of exact algebra computed two ways.
EXACT = 1e-12
#: Relative tolerance of a linear solve against a dense solve.
SOLVE = 1e-10
#: Relative tolerance against an autograd build.
AUTOGRAD = 1e-8
#: Relative tolerance against central finite differences.
FINITE_DIFF = 1e-5
#: Bound, in standard errors, of a Monte Carlo estimate's distance to the truth.
MC_K = 5.0

TIERS = {"exact": EXACT, "solve": SOLVE, "autograd": AUTOGRAD, "finite_diff": FINITE_DIFF}
"""Tier name -> tolerance of :func:`refvpng.testing.compare.relative_error`."""
