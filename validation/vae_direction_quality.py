r"""How close K-FAC comes to the exact VPNG direction along a VPNG run of the Figure 2 VAE.

``python validation/vae_direction_quality.py [--quick] [--steps K] [--points 0,100,...]
[--timing] [--out PATH]``

Runs VPNG with block-tridiagonal K-FAC (the VAE experiment's settings and machinery,
:mod:`refvpng.experiments.vae`) for ``--steps`` iterations and, at each of ``--points``, on that
step's minibatch and noise, computes the exact damped VPNG direction by conjugate gradients on
the matrix-free :math:`\hat F_r / n + \gamma I` and its cosine to (see
:func:`refvpng.experiments.vae_directions.direction_quality`):

- the block-tridiagonal and block-diagonal K-FAC VPNG and q-NG directions from this minibatch's
  factors alone, and from the running estimates a run would use at this point (EMA and refresh
  schedule of the settings: the run's own for tridiagonal, shadow estimates fed the same
  trajectory's factors for the others);
- the gradient and Adam's direction (a shadow Adam fed the trajectory's gradients);

plus the CG iterations. Progress is checkpointed after every measured point
(``<out>.ckpt.npz``); a rerun with the same arguments resumes there.

``--timing`` times, at the paper's size (455,384 parameters, batch 600, ten samples), one
gradient evaluation, one product by :math:`\hat F_r` and the forward pass that linearises the
network, in process CPU seconds with one thread.

Writes ``validation/results/vae_direction_quality.json`` (or ``--out``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results" / "vae_direction_quality.json"


def _settings(a):
    from refvpng.experiments.vae import QUICK, Settings

    over = dict(QUICK) if a.quick else {}
    if a.data:
        over["data"] = a.data
    over["seed"] = a.seed
    return Settings(**over)


def _data(s):
    from refvpng.data.mnist import load_binarized_mnist
    from refvpng.experiments.vae import synthetic_data

    if s.data == "synthetic":
        return synthetic_data(s.seed)
    return load_binarized_mnist(None if s.data == "auto" else s.data, seed=s.seed, n_test=s.n_test or None)


def _members(s, lr, n_enc):
    from refvpng.experiments.vae import kfac_config
    from refvpng.optim import kfac_direction, make_optimizer, scale_by_adam

    return {
        "vpng_tridiag": kfac_direction(kfac_config(s, True)),
        "rule": make_optimizer("gradient", s.rule, lr),
        "vpng_blockdiag": kfac_direction(kfac_config(s, False)),
        "q_natural": kfac_direction(kfac_config(s, True), index=slice(0, n_enc)),
        "adam": scale_by_adam(),
    }


def _batch(s, data, k, batch):
    n_train = data.train.shape[0]
    epoch, j = divmod(k, n_train // batch)
    perm = np.random.default_rng([s.seed, 2, epoch]).permutation(n_train)
    rng = np.random.default_rng([s.seed, 3, k])
    x = data.train[perm[j * batch : (j + 1) * batch]]
    return (
        x,
        rng.standard_normal((s.samples, batch, s.d_z)),
        rng.random((s.samples, batch, data.train.shape[1])),
    )


def trajectory(s, lr, steps, points, out, *, rtol, maxiter, log=print):
    """Run VPNG (tridiagonal K-FAC) and measure at ``points``; resume from ``out``'s checkpoint."""
    from refvpng._atomic import write_json_atomic
    from refvpng.experiments.vae import kfac_config
    from refvpng.experiments.vae_directions import direction_quality
    from refvpng.nn import make_vae, vae_step
    from refvpng.optim import apply_updates
    from refvpng.optim.checkpoint import load_checkpoint, save_checkpoint

    data = _data(s)
    vae = make_vae(data.train.shape[1], s.hidden, s.d_z)
    batch = min(s.batch, data.train.shape[0])
    mem = _members(s, lr, vae.encoder.num_params)
    eta = vae.init(np.random.default_rng([s.seed, 0]))
    states = {k: m.init(eta) for k, m in mem.items()}
    ckpt = Path(str(out) + ".ckpt.npz")
    doc = {"settings": {**dataclasses.asdict(s), "lr": lr, "steps": steps, "rtol": rtol}, "points": []}
    start = 0
    if ckpt.exists() and out.exists():
        prev = json.loads(out.read_text())
        if prev.get("settings") == json.loads(json.dumps(doc["settings"])):
            cp = load_checkpoint(ckpt, like=lambda p: tuple(states.values()))
            eta, start, doc = cp.params, cp.step, prev
            states = dict(zip(states, cp.state, strict=True))
            log(f"resuming at step {start} ({len(doc['points'])} points measured)")
    kw = {"fisher_samples": s.fisher_samples, "factor_dtype": np.dtype(s.factor_dtype)}
    for k in range(start, steps):
        x, eps, u = _batch(s, data, k, batch)
        st = vae_step(vae, eta, x, eps, u, curvature="vp", **kw)
        adam_dir, states["adam"] = mem["adam"].update(st.grad, states["adam"])
        if k in points:
            q = direction_quality(
                vae, eta, x, eps, u, kfac_config(s, True), rtol=rtol, maxiter=maxiter,
                states={n: states[n] for n in ("vpng_tridiag", "vpng_blockdiag", "q_natural")},
                extra={"adam": adam_dir}, **kw,
            )  # fmt: skip
            row = {
                "step": k,
                "elbo": st.value,
                "cg_iterations": q.cg_iterations,
                "cg_residual": q.cg_residual,
                "cg_converged": q.cg_converged,
                "cg_seconds": q.cg_seconds,
                "cosines": q.cosines,
            }
            doc["points"].append(row)
            cos = ", ".join(f"{n} {c:.3f}" for n, c in q.cosines.items())
            log(f"step {k}: CG {q.cg_iterations} its ({q.cg_seconds:.1f} s), cosines {cos}")
        st_q = vae_step(vae, eta, x, eps, curvature="q", **kw)
        fold = {"vpng_blockdiag": st.factors_per_point, "q_natural": st_q.factors_per_point}
        for name, factors in fold.items():
            states[name] = mem[name].update(st.grad, states[name], curvature=factors)[1]
        d, states["vpng_tridiag"] = mem["vpng_tridiag"].update(
            st.grad, states["vpng_tridiag"], curvature=st.factors_per_point
        )
        upd, states["rule"] = mem["rule"].update(d, states["rule"], eta)
        eta = apply_updates(eta, upd)
        if k in points or k == steps - 1 or (k + 1) % 50 == 0:
            save_checkpoint(ckpt, eta, tuple(states.values()), k + 1, s.seed)
            write_json_atomic(out, doc)
    return doc


def timing(threads=1, rounds=3):
    """CPU seconds of a gradient, a forward pass and an F_r product at the paper's VAE size."""
    from refvpng._threads import limit_threads
    from refvpng.nn import make_vae, vae_step
    from refvpng.nn.linearize import vae_fisher_operator

    rng = np.random.default_rng(0)
    vae, n, s_count = make_vae(), 600, 10
    eta = vae.init(rng)
    x = (rng.random((n, 784)) < 0.13) * 1.0
    eps, u = rng.standard_normal((s_count, n, 100)), rng.random((s_count, n, 784))
    v = rng.standard_normal(vae.num_params)

    def best(f):
        f()
        out = []
        for _ in range(rounds):
            t0 = time.process_time()
            f()
            out.append(time.process_time() - t0)
        return min(out)

    with limit_threads(threads):
        grad = best(lambda: vae_step(vae, eta, x, eps))
        build = best(lambda: vae_fisher_operator(vae, eta, x, eps, u))
        op = vae_fisher_operator(vae, eta, x, eps, u)
        matvec = best(lambda: op.matvec(v))
        exact = vae_fisher_operator(vae, eta, x, eps)
        matvec_exact = best(lambda: exact.matvec(v))
    return {
        "num_params": vae.num_params, "batch": n, "samples": s_count, "threads": threads,
        "gradient_sec": grad, "linearize_sec": build, "matvec_eq16_sec": matvec,
        "matvec_exact_sec": matvec_exact, "matvec_to_gradient": matvec / grad,
    }  # fmt: skip


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny network on synthetic data (smoke test)")
    p.add_argument("--steps", type=int, default=None, help="VPNG iterations (default 1000; quick 6)")
    p.add_argument("--points", default=None, help="comma-separated steps to measure at")
    p.add_argument("--lr", type=float, default=None, help="step size (default 1e-2; quick 1e-3)")
    p.add_argument("--rtol", type=float, default=1e-4, help="CG relative residual")
    p.add_argument("--maxiter", type=int, default=2000, help="CG iteration limit")
    p.add_argument("--data", default=None, help="as the VAE experiment's --data")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--timing", action="store_true", help="also time an F_r product at the paper's size")
    p.add_argument("--out", default=None)
    a = p.parse_args(argv)
    from refvpng._threads import limit_threads

    out = Path(a.out) if a.out else RESULTS
    out.parent.mkdir(parents=True, exist_ok=True)
    steps = a.steps or (6 if a.quick else 1000)
    default_points = "0,2,5" if a.quick else "0,50,200,500,999"
    points = sorted({int(v) for v in (a.points or default_points).split(",")})
    lr = a.lr or (1e-3 if a.quick else 1e-2)
    with limit_threads(a.threads):
        doc = trajectory(_settings(a), lr, steps, points, out, rtol=a.rtol, maxiter=a.maxiter)
    if a.timing:
        doc["timing"] = timing(a.threads)
        print(json.dumps(doc["timing"], indent=1))
        from refvpng._atomic import write_json_atomic

        write_json_atomic(out, doc)
    names = list(doc["points"][0]["cosines"]) if doc["points"] else []
    print("| step | CG its | " + " | ".join(names) + " |")
    for r in doc["points"]:
        print(
            f"| {r['step']} | {r['cg_iterations']} | "
            + " | ".join(f"{r['cosines'][n]:.3f}" for n in names)
            + " |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
