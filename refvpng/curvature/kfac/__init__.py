r"""Kronecker-factored approximations (K-FAC) of the variational predictive Fisher.

Tang & Ranganath (2019), Section 5.2, view the VAE as one feed-forward network with a stochastic
layer (:class:`refvpng.nn.Chain`) and approximate :math:`\hat F_r` of Eq. (16) with the
block-tridiagonal K-FAC of Martens & Grosse (2015). The subpackage keeps computing the factors
apart from using them:

- :mod:`~refvpng.curvature.kfac.factors`: the factors from ``(a_bar, g)`` pairs
  (:func:`kfac_factors`) and their exponential moving average (:func:`kfac_ema`);
- :mod:`~refvpng.curvature.kfac.linalg`: Kronecker linear algebra (factor eigendecompositions,
  the optional low-rank approximation, the Kronecker-difference solve of M&G Appendix B);
- :mod:`~refvpng.curvature.kfac.operators` and :mod:`~refvpng.curvature.kfac.tridiag`: the
  block-diagonal (M&G Section 4.2) and block-tridiagonal (M&G Section 4.3) operators, built from
  one :class:`KroneckerBlock` per layer, with factored Tikhonov damping (M&G Section 6.3); both implement the
  :class:`~refvpng.curvature.operator.Curvature` protocol;
- :mod:`~refvpng.curvature.kfac.state`: the running estimate, one init/update pair
  (:func:`kfac_init`, :func:`kfac_update`) with periodic refresh of the decompositions.

Every public name is importable from ``refvpng.curvature.kfac``.

Conventions (stated once)
-------------------------
*Vec order and Kronecker ordering.* As in :mod:`refvpng.nn.mlp`: the layer-:math:`l` block of
a parameter vector is the column-major :math:`\operatorname{vec}(\bar W_l)` of
:math:`\bar W_l = [W_l, b_l] \in \mathbb{R}^{d_l \times (d_{l-1}+1)}`, the per-example gradient
block is :math:`\bar a_{l-1} \otimes g_l`, and every Kronecker product is written
**input factor left**, :math:`A \otimes G`, with
:math:`(A \otimes G)\operatorname{vec}(X) = \operatorname{vec}(G X A^\top)`. Blocks are
ordered as the layers of the network (for a chain: encoder layers, then decoder layers), which
is also the order of :math:`\eta = (\lambda, \theta)`.

*Layer indexing.* In code, block ``l = 0 .. L-1`` is a layer with input
:math:`\bar a` (``A[l]``) and output gradient :math:`g` (``G[l]``); in the notation of
M&G these are :math:`\bar A_{l-1,l-1}` and :math:`G_{l,l}`.

*Scale: sums over data points, means over samples.* From per-row pairs
:math:`(\bar a_{l,r}, g_{l,r})` with weights :math:`w_r` (:math:`1/M` for the :math:`Mn` rows
of Eq. 16),

.. math::
    A_l = \frac{\sum_r w_r \bar a_{l,r} \bar a_{l,r}^\top}{\sum_r w_r}, \qquad
    G_l = \sum_r w_r\, g_{l,r} g_{l,r}^\top,

    A_{l,l+1} = \frac{\sum_r w_r \bar a_{l,r} \bar a_{l+1,r}^\top}{\sum_r w_r}, \qquad
    G_{l,l+1} = \sum_r w_r\, g_{l,r} g_{l+1,r}^\top,

so that :math:`A \otimes G` carries the total weight :math:`\sum_r w_r = n`, like
:math:`\hat F_r` (the paper's :math:`F_r` carries the factor :math:`n`). With one row (one data
point, one predictive sample) :math:`A_l \otimes G_m`-type blocks are exactly
:math:`\hat b_l \hat b_m^\top`.

*Damping.* The K-FAC damping is the factor damping ``factor_damping`` :math:`= \gamma`, a
different quantity from the Eq. 17 damping ``damping`` :math:`= \mu` of
:func:`refvpng.curvature.solve.damped_solve` (which adds :math:`\mu I` to the summed Fisher).
The factored Tikhonov damping of M&G Section 6.3 adds :math:`\pi_l \sqrt\gamma\, I` to
:math:`A_l` and :math:`\sqrt\gamma / \pi_l\, I` to :math:`G_l`, approximating
:math:`A_l \otimes G_l + \gamma I`; :math:`\pi_l = 1` unless ``pi_heuristic=True``, in which
case :math:`\pi_l = \sqrt{(\operatorname{tr} A_l / \dim A_l) / (\operatorname{tr} G_l / \dim
G_l)}` (1 if a trace vanishes). Only diagonal factors are damped; cross factors never are. We
write :math:`A_l^\gamma = A_l + \pi_l\sqrt\gamma I`, :math:`G_l^\gamma = G_l + \sqrt\gamma/\pi_l
I`. ``matvec``, ``to_dense``, ``solve`` and ``inverse`` all take ``factor_damping`` (``None``
means the operator's own value); pass ``0.0`` to ``matvec``/``to_dense`` for the undamped
approximation. Given to :func:`~refvpng.curvature.solve.damped_solve` (or a natural direction)
with damping :math:`\mu`, an operator solves with :math:`\gamma = \mu`.

*Low-rank factors (off by default).* Only if ``lowrank_threshold`` is given, a diagonal factor
of size :math:`n >` ``lowrank_threshold`` is replaced by
its :math:`r = \min(n, \lceil c \ln n \rceil)` leading eigenpairs
(:math:`c` = ``lowrank_c``): :math:`A \approx U_r \operatorname{diag}(\alpha_r) U_r^\top`, the
other :math:`n - r` eigenvalues set to zero, so the damped factor has eigenvalues
:math:`\alpha_r + \pi\sqrt\gamma` on :math:`U_r` and exactly the damping :math:`\pi\sqrt\gamma`
on its orthogonal complement. This equals projecting every :math:`\bar a` (or :math:`g`) onto
:math:`U_r`, and the cross factors touching that layer are projected in the same way
(:math:`A_{l,l+1} \to P_l A_{l,l+1} P_{l+1}`, :math:`P = U_r U_r^\top`), which keeps the
tridiagonal model consistent (its conditional covariances stay positive definite). ``matvec``,
``to_dense`` and ``solve`` all use the truncated factors, so ``solve`` remains the exact inverse
described in the operators. Truncation requires ``factor_damping > 0`` in ``solve``.

References
----------
.. [1] J. Martens and R. Grosse, "Optimizing neural networks with Kronecker-factored
   approximate curvature", ICML 2015, Sections 3, 4.2, 4.3, 6.3 and Appendix B.
.. [2] Y. Tang and R. Ranganath, "The Variational Predictive Natural Gradient", ICML 2019,
   Eq. (16) and Section 5.2.

Examples
--------
>>> import numpy as np
>>> from refvpng.curvature.fisher import vp_kfac_pairs
>>> from refvpng.curvature.kfac import BlockTridiagKFAC, kfac_factors
>>> from refvpng.models import Bernoulli
>>> from refvpng.models.latent import draw_eps, draw_predictive
>>> from refvpng.nn import Chain, chain_model
>>> chain = Chain.from_sizes((4, 3, 2), (1, 3, 4))
>>> model = chain_model(chain, Bernoulli())
>>> rng = np.random.default_rng(0)
>>> eta = chain.init(rng)
>>> x, eps = (rng.random((6, 4)) < 0.5) * 1.0, draw_eps(rng, model, n=6, n_samples=1)
>>> x_pred = draw_predictive(rng, model, eta, x, eps, 2)
>>> pairs, weights = vp_kfac_pairs(model, eta, x, eps, x_pred)
>>> op = BlockTridiagKFAC(kfac_factors(pairs, weights), factor_damping=0.1)
>>> v = rng.standard_normal(chain.num_params)
>>> op.solve(v).shape
(45,)
>>> bool(np.allclose(op.matvec(v), op.to_dense() @ v))
True
"""

from refvpng.curvature.kfac.factors import KFACFactors, kfac_ema, kfac_factors
from refvpng.curvature.kfac.linalg import (
    FactorEig,
    KronDiffEig,
    factor_eig,
    kron_diff_eig,
    kron_diff_solve,
    lowrank_rank,
)
from refvpng.curvature.kfac.operators import (
    BlockDiagKFAC,
    KFACCache,
    KroneckerBlock,
)
from refvpng.curvature.kfac.state import (
    KFACConfig,
    KFACState,
    kfac_init,
    kfac_operator,
    kfac_update,
)
from refvpng.curvature.kfac.tridiag import BlockTridiagKFAC

__all__ = [
    "BlockDiagKFAC",
    "BlockTridiagKFAC",
    "FactorEig",
    "KFACCache",
    "KFACConfig",
    "KFACFactors",
    "KFACState",
    "KronDiffEig",
    "KroneckerBlock",
    "factor_eig",
    "kfac_ema",
    "kfac_factors",
    "kfac_init",
    "kfac_operator",
    "kfac_update",
    "kron_diff_eig",
    "kron_diff_solve",
    "lowrank_rank",
]
