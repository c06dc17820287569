"""Evaluation metrics of the experiments."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from scipy.stats import rankdata

from refvpng._checks import as_array

__all__ = ["roc_auc"]


def roc_auc(y: ArrayLike, score: ArrayLike) -> float:
    r"""Area under the ROC curve by the Mann-Whitney statistic (ties count one half).

    .. math::
        \mathrm{AUC} = \frac{\sum_{i: y_i = 1} r_i - n_1(n_1+1)/2}{n_1 n_0},

    with :math:`r_i` the mid-ranks of the scores.

    Examples
    --------
    >>> roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    0.75
    """
    y = as_array(y, "y", ndim=1)
    score = as_array(score, "score", shape=(y.shape[0],))
    if not np.all((y == 0) | (y == 1)):
        raise ValueError("y must contain only 0 and 1")
    n1 = float(y.sum())
    n0 = y.size - n1
    if n1 == 0 or n0 == 0:
        raise ValueError("y must contain both classes for an AUC")
    r = rankdata(score)
    return float((r[y == 1].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))
