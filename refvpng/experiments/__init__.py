"""Experiments of the paper, each a module declaring an :class:`~refvpng.experiments.harness.Experiment`.

- :mod:`~refvpng.experiments.harness`: the one harness (settings and CLI, cell cache, resume,
  lock, joblib or Dask cells, atomic results, figure, RESULTS.md section);
- :mod:`~refvpng.experiments.toy` (Figure 1), :mod:`~refvpng.experiments.blr` (Table 1),
  :mod:`~refvpng.experiments.vae`, :mod:`~refvpng.experiments.vae_report` and
  :mod:`~refvpng.experiments.vae_authors` (Figure 2; the authors' configuration),
  :mod:`~refvpng.experiments.ppca` (the note's Fishers on pPCA),
  :mod:`~refvpng.experiments.vmf` and :mod:`~refvpng.experiments.vmf_report` (Figure 3), both
  chain experiments on :mod:`~refvpng.experiments.chain_training`;
- :mod:`~refvpng.experiments.metrics`: the ROC AUC of Table 1.

``refvpng reproduce NAME`` runs one; results go to ``./refvpng-results/`` unless ``--out`` or
``--publish`` (the source tree's ``validation/results/``) says otherwise.
"""

__all__ = [
    "harness",
    "output",
    "toy",
    "blr",
    "chain_training",
    "vae",
    "vae_authors",
    "vae_report",
    "vmf",
    "vmf_report",
    "ppca",
    "metrics",
]
