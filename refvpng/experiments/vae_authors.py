r"""The authors' configuration of Figure 2 as settings values, its step sizes and its ablation.

Tang & Ranganath's public TensorFlow 1 script (``src/vae.py`` of github.com/datang1992/VPNG)
trains the VAE of Figure 2 with choices that differ from refvpng's defaults; each choice is a
field of :class:`refvpng.experiments.vae.Settings` (the protocol and what each choice means are
documented in :mod:`refvpng.experiments.vae`). This module holds them as data
(:data:`AUTHORS`, :data:`AUTHORS_LRS`, :data:`ABLATIONS`) and maps the ``*_authors`` methods and
the ablation cells to a base method and its settings (:func:`resolve_method`,
:func:`ablation_settings`). Every public name is also importable from
:mod:`refvpng.experiments.vae`.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from refvpng.experiments.chain_training import METHODS as BASE_METHODS

if TYPE_CHECKING:  # vae.py imports this module
    import refvpng.experiments.vae

__all__ = [
    "BASE_METHODS",
    "AUTHORS_METHODS",
    "AUTHORS",
    "AUTHORS_LRS",
    "ABLATIONS",
    "authors_settings",
    "resolve_method",
    "ablation_settings",
]

AUTHORS_METHODS = ("adam_authors", "q_natural_authors", "vpng_authors")
"""``X_authors`` is ``X`` (``vpng``: ``vpng_tridiag``) with all of :data:`AUTHORS` and the step
size :data:`AUTHORS_LRS` of ``X``."""

AUTHORS: dict[str, Any] = {
    "predictive": "one_z",
    "damping": 0.1,
    "damping_split": "each",
    "inverse_every": 1,
    "lowrank_remainder": "dropped",
    "lowrank_factors": "input",
    "lowrank_floor": True,
    "output_factor": "diag",
    "init": "truncated_normal",
    "init_std": 0.1,
    "sigma_floor": 1e-6,
}
"""The authors' configuration as :class:`refvpng.experiments.vae.Settings` values."""

AUTHORS_LRS = {"adam": 3e-3, "q_natural": 2e-3, "vpng_tridiag": 1e-2}
"""The Adam learning rates of the authors' script per base method."""

ABLATIONS = {
    "predictive": "10 z with one x' each instead of one z with 10 x'",
    "damping_split": "factored damping sqrt(0.1) per factor instead of 0.1 on every factor",
    "inverse_every": "inverses refreshed every 10 iterations instead of every iteration",
    "lowrank_remainder": "rest of the 785-wide input factor kept at the damping, not dropped",
    "output_factor": "sampled 784-wide decoder output factor instead of diag E[p(1-p)]",
    "lr": "the pilot's step size of vpng_tridiag instead of 0.01",
    "init": "refvpng's scaled-normal initialisation instead of truncated normal (0.1)",
    "sigma_floor": "sigma floor 1e-4 instead of 1e-6",
}
"""Ablation cells: ``vpng_authors`` with one choice reverted to the settings' value (for ``lr``:
the step size chosen for ``vpng_tridiag``); the values in the descriptions are the defaults."""


def authors_settings(s: refvpng.experiments.vae.Settings) -> refvpng.experiments.vae.Settings:
    """``s`` (a :class:`refvpng.experiments.vae.Settings`) with all of :data:`AUTHORS`.

    Raises
    ------
    TypeError
        If ``s`` is not a dataclass instance with the fields of :data:`AUTHORS`.
    """
    if not dataclasses.is_dataclass(s) or isinstance(s, type):
        raise TypeError(f"s must be an experiment's Settings, got {type(s).__name__}")
    missing = [k for k in AUTHORS if not hasattr(s, k)]
    if missing:
        raise TypeError(f"s must have the fields {missing} (a refvpng.experiments.vae.Settings)")
    return dataclasses.replace(s, **AUTHORS)


def resolve_method(
    method: str, s: refvpng.experiments.vae.Settings
) -> tuple[str, refvpng.experiments.vae.Settings]:
    """The base method of :data:`refvpng.experiments.chain_training.METHODS` and its settings.

    ``X_authors`` resolves to ``X`` (``vpng_authors``: ``vpng_tridiag``) with
    :func:`~refvpng.experiments.vae_authors.authors_settings`; any other method to itself with
    ``s`` (a subclass such as :class:`refvpng.experiments.vmf.Settings` is kept).

    Raises
    ------
    ValueError
        If ``method`` is neither a base method nor one of
        :data:`~refvpng.experiments.vae_authors.AUTHORS_METHODS`.

    Examples
    --------
    >>> from refvpng.experiments.vae import Settings
    >>> base, s = resolve_method("vpng_authors", Settings())
    >>> base, s.inverse_every, s.predictive
    ('vpng_tridiag', 1, 'one_z')
    """
    if method in AUTHORS_METHODS:
        base = method.removesuffix("_authors")
        return ("vpng_tridiag" if base == "vpng" else base), authors_settings(s)
    if method not in BASE_METHODS:
        raise ValueError(f"method must be one of {BASE_METHODS + AUTHORS_METHODS}, got {method!r}")
    return method, s


def ablation_settings(s: refvpng.experiments.vae.Settings, revert: str) -> refvpng.experiments.vae.Settings:
    """The settings of an ablation cell: the authors' configuration with ``revert`` from ``s``.

    ``revert="lr"`` keeps all of :data:`AUTHORS` (the cell's step size is what changes).

    Raises
    ------
    ValueError
        If ``revert`` is not a key of :data:`ABLATIONS`.
    """
    if not isinstance(revert, str) or revert not in ABLATIONS:
        raise ValueError(f"revert must be one of {tuple(ABLATIONS)}, got {revert!r}")
    out = authors_settings(s)
    if revert != "lr":
        out = dataclasses.replace(out, **{revert: getattr(s, revert)})
    return out
