r"""Dense variational predictive Fisher of one VAE chain: refvpng against curvlinops and torch.func.

``python validation/bench/bench_fisher.py [--quick] [--out PATH] [--threads N] [--max-p P] [--max-n N]``

For a Bernoulli VAE chain (``d_x = d_out = 20``, ``d_z = 4``, two hidden ``tanh`` layers of width
``h`` in encoder and decoder, ``h`` in {25, 40, 55, 74}: P = 2678, 5468, 9158, 15124) and
``n`` in {50, 100, 200} data points with one noise draw each, it builds in the same run the
same dense matrices:

- exact :math:`F_r = \sum_i J_i^\top \Lambda_i J_i` (Section 3.3 of Tang & Ranganath, 2019)
  with :func:`refvpng.curvature.fisher.vp_fisher_exact` through the chain's ``layer_pairs``
  hook (``kron``: the per-example Kronecker algorithm, :math:`nP^2` flops) and without it
  (``jacobian``: the ``n d_out x P`` whitened Jacobian and one ``syrk``, :math:`n d_{out} P^2`);
  with curvlinops' ``GGNLinearOperator @ I`` (``curvlinops``; the GGN of the summed
  ``BCEWithLogitsLoss`` of the same network at the same noise is :math:`F_r`) and with a
  ``torch.func`` Jacobian build (``torch_func``: ``vmap(jacrev)``, whitened, ``J^T J``);
- Eq 16 with ``M = 10`` predictive samples per point, :math:`\hat F_r = \frac1M\sum b b^\top`,
  with :func:`refvpng.curvature.fisher.vp_fisher_mc` through the hook (``kron_mc``) and from
  the score rows (``rows_mc``), against ``torch.func`` per-sample gradients (``torch_func_mc``)
  fed the same predictive samples.

Every matrix is compared with refvpng's (``agreement``: max abs difference over max abs entry,
after mapping torch's row-major ``(W, b)`` parameters to refvpng's column-major
``vec([W, b])``). Each build is timed once (after a warm-up at the smallest size) as process
CPU seconds and wall seconds; the machine may be shared, so CPU time is the figure to read.
OpenBLAS threads spin between calls and that spinning is counted as CPU time: on a loaded machine
two threads inflated refvpng's CPU time (many mid-sized products) three- to fourfold, so a run on a
busy machine is best made with ``--threads 1`` (recorded in ``settings``). Ratios are refvpng's time over
each peer's; growth exponents are least-squares slopes of log CPU time in log P (at fixed n) and
in log n (at fixed P). The torch parts need the optional ``bench`` extra (torch and
curvlinops-for-pytorch); without it only refvpng's two paths run.

Results go to ``validation/results/bench_fisher.json`` unless ``--out`` is given; ``--quick``
runs tiny sizes for smoke testing. No timing is asserted anywhere.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import sys
import time
from pathlib import Path

D, DZ, M_PRED = 20, 4, 10
FULL_H, FULL_N = (25, 40, 55, 74), (50, 100, 200)
QUICK_H, QUICK_N = (3, 5), (4, 6)
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "results" / "bench_fisher.json"
EXACT_METHODS = ("kron", "jacobian", "curvlinops", "torch_func")
MC_METHODS = ("kron_mc", "rows_mc", "torch_func_mc")


def _timed(fn):
    gc.collect()
    w0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w0, time.process_time() - c0


def _problem(h, n, seed=0):
    import numpy as np

    from refvpng.models import Bernoulli
    from refvpng.models.latent import draw_predictive
    from refvpng.nn import Chain, chain_model

    chain = Chain.from_sizes((D, h, h, 2 * DZ), (DZ, h, h, D), "tanh")
    model = chain_model(chain, Bernoulli())
    rng = np.random.default_rng(seed)
    eta = chain.init(rng)
    x = (rng.random((n, D)) < 0.5).astype(float)
    eps = rng.standard_normal((1, n, DZ))
    x_pred = draw_predictive(rng, model, eta, x, eps, M_PRED)
    return chain, model, eta, x, eps, x_pred


def _torch_order(chain):
    """Index ``q`` with ``F_refvpng[q][:, q] = F_torch`` (row-major (W, b) per layer -> vec([W, b]))."""
    import numpy as np

    q, off = [], 0
    for out, inp1 in chain.layer_shapes:
        inp = inp1 - 1
        o, i = np.divmod(np.arange(out * inp), inp)  # torch W.flatten(): o * inp + i
        q.append(off + i * out + o)
        q.append(off + inp * out + np.arange(out))
        off += out * inp1
    return np.concatenate(q)


def _rel_permuted(f_ref, f_torch, q, rows=512):
    """Return max |F_ref[q][:, q] - F_torch| / max |F_ref|, by blocks of rows (no full-size copy)."""
    import numpy as np

    err = 0.0
    for r0 in range(0, len(q), rows):
        blk = f_ref[q[r0 : r0 + rows]][:, q]
        err = max(err, float(np.max(np.abs(blk - f_torch[r0 : r0 + rows]))))
    return err / float(np.max(np.abs(f_ref)))


class _Torch:
    """The same chain in PyTorch (float64), its input being ``[x, eps]``."""

    def __init__(self, chain, eta):
        import numpy as np
        import torch

        self.torch = torch
        lam, theta = chain.split(eta)
        layers = []
        for mlp, params in ((chain.encoder, lam), (chain.decoder, theta)):
            for wb in mlp.unpack(params):
                lin = torch.nn.Linear(wb.shape[1] - 1, wb.shape[0], dtype=torch.float64)
                lin.weight.data = torch.from_numpy(np.ascontiguousarray(wb[:, :-1]))
                lin.bias.data = torch.from_numpy(np.ascontiguousarray(wb[:, -1]))
                layers.append(lin)
        self.enc = torch.nn.ModuleList(layers[: chain.encoder.num_layers])
        self.dec = torch.nn.ModuleList(layers[chain.encoder.num_layers :])
        self.floor, self.dz, self.dx = chain.floor, chain.d_z, chain.d_x
        chain_ = self

        class Net(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.enc, self.dec = chain_.enc, chain_.dec

            def forward(self, inp):
                return chain_.forward(inp)

        self.net = Net()
        self.names = [k for k, _ in self.net.named_parameters()]

    def _mlp(self, layers, a):
        for k, lin in enumerate(layers):
            a = lin(a)
            if k < len(layers) - 1:
                a = self.torch.tanh(a)
        return a

    def forward(self, inp):
        torch = self.torch
        x, eps = inp[..., : self.dx], inp[..., self.dx :]
        hid = self._mlp(self.enc, x)
        mu, raw = hid[..., : self.dz], hid[..., self.dz :]
        sigma = torch.logaddexp(raw, torch.zeros_like(raw)) + self.floor
        return self._mlp(self.dec, mu + sigma * eps)

    def params(self):
        return {k: v.detach() for k, v in self.net.named_parameters()}


def _torch_methods(chain, eta, x, eps, x_pred):
    import numpy as np
    import torch
    from torch.func import functional_call, grad, jacrev, vmap

    tc = _Torch(chain, eta)
    n = x.shape[0]
    inp = torch.from_numpy(np.concatenate([x, eps[0]], axis=1))
    p = chain.num_params

    def t_one(params, row):
        return functional_call(tc.net, params, (row[None],))[0]

    def torch_func():
        jac = vmap(jacrev(t_one), in_dims=(None, 0))(tc.params(), inp)
        j = torch.cat([jac[k].reshape(n, D, -1) for k in tc.names], dim=2)
        t = tc.forward(inp).detach()
        lam = torch.sigmoid(t) * torch.sigmoid(-t)
        rows = (j * lam.sqrt()[..., None]).reshape(-1, p)
        return (rows.T @ rows).numpy()

    def curvlinops():
        from curvlinops import GGNLinearOperator

        loss = torch.nn.BCEWithLogitsLoss(reduction="sum")
        params = [v for _, v in tc.net.named_parameters()]
        y = torch.from_numpy(x)
        ggn = GGNLinearOperator(tc.net, loss, params, [(inp, y)], check_deterministic=False)
        return (ggn @ torch.eye(p, dtype=torch.float64)).numpy()

    def torch_func_mc():
        def logp(params, row, xp):
            t = t_one(params, row)
            return torch.sum(xp * t - torch.logaddexp(t, torch.zeros_like(t)))

        xp = torch.from_numpy(np.moveaxis(x_pred[0], 0, 1).reshape(-1, D))  # rows (i, k)
        rows_in = inp.repeat_interleave(M_PRED, dim=0)
        g = vmap(grad(logp), in_dims=(None, 0, 0))(tc.params(), rows_in, xp)
        b = torch.cat([g[k].reshape(n * M_PRED, -1) for k in tc.names], dim=1)
        return (b.T @ b).numpy() / M_PRED

    return {"curvlinops": curvlinops, "torch_func": torch_func, "torch_func_mc": torch_func_mc}


def _refvpng_methods(model, eta, x, eps, x_pred):
    import dataclasses

    from refvpng.curvature.fisher import vp_fisher_exact, vp_fisher_mc

    plain = dataclasses.replace(model, hooks=model.hooks._replace(layer_pairs=None))
    return {
        "kron": lambda: vp_fisher_exact(model, eta, x, eps),
        "jacobian": lambda: vp_fisher_exact(plain, eta, x, eps),
        "kron_mc": lambda: vp_fisher_mc(model, eta, x, eps, x_pred),
        "rows_mc": lambda: vp_fisher_mc(plain, eta, x, eps, x_pred),
    }


def run_cell(h, n, with_torch):
    """Build every matrix of one ``(h, n)`` cell; return times and agreements."""
    import numpy as np

    chain, model, eta, x, eps, x_pred = _problem(h, n)
    methods = _refvpng_methods(model, eta, x, eps, x_pred)
    if with_torch:
        methods.update(_torch_methods(chain, eta, x, eps, x_pred))
    q = _torch_order(chain)
    cell = {"h": h, "n": n, "P": chain.num_params, "wall": {}, "cpu": {}, "agreement": {}}
    refs = {}
    for name in (*EXACT_METHODS, *MC_METHODS):
        if name not in methods:
            continue
        f, wall, cpu = _timed(methods[name])
        cell["wall"][name], cell["cpu"][name] = wall, cpu
        ref_name = "kron_mc" if name.endswith("_mc") else "kron"
        if name == ref_name:
            refs[name] = f
        elif name.startswith(("curvlinops", "torch")):
            cell["agreement"][name] = _rel_permuted(refs[ref_name], f, q)
        else:
            cell["agreement"][name] = float(
                np.max(np.abs(f - refs[ref_name])) / np.max(np.abs(refs[ref_name]))
            )
        del f
    del refs
    gc.collect()
    return cell


def _slope(xs, ys):
    import numpy as np

    if len(xs) < 2:
        return None
    return float(np.polyfit(np.log(xs), np.log(ys), 1)[0])


def summarize(cells):
    """Time ratios (refvpng over peer, per cell) and growth exponents of CPU time in P and n."""
    pairs = [
        ("kron", "curvlinops"),
        ("kron", "torch_func"),
        ("kron", "jacobian"),
        ("jacobian", "curvlinops"),
        ("kron_mc", "torch_func_mc"),
        ("kron_mc", "rows_mc"),
    ]
    ratios = {}
    for a, b in pairs:
        vals = [
            (c["P"], c["n"], c["cpu"][a] / c["cpu"][b], c["wall"][a] / c["wall"][b])
            for c in cells
            if b in c["cpu"]
        ]
        if vals:
            ratios[f"{a}/{b}"] = [{"P": p, "n": n, "cpu": rc, "wall": rw} for p, n, rc, rw in vals]
    methods = sorted({m for c in cells for m in c["cpu"]})
    ps, ns = sorted({c["P"] for c in cells}), sorted({c["n"] for c in cells})
    growth = {}
    for m in methods:
        by_p = {}
        for n in ns:
            pts = [(c["P"], c["cpu"][m]) for c in cells if c["n"] == n and m in c["cpu"]]
            by_p[str(n)] = _slope(*zip(*pts, strict=True)) if len(pts) > 1 else None
        by_n = {}
        for p in ps:
            pts = [(c["n"], c["cpu"][m]) for c in cells if c["P"] == p and m in c["cpu"]]
            by_n[str(p)] = _slope(*zip(*pts, strict=True)) if len(pts) > 1 else None
        growth[m] = {"exponent_in_P_at_n": by_p, "exponent_in_n_at_P": by_n}
    worst = {
        m: max(c["agreement"][m] for c in cells if m in c["agreement"])
        for m in methods
        if m not in ("kron", "kron_mc")
    }
    return {"ratios": ratios, "growth": growth, "worst_agreement": worst}


def _versions(with_torch):
    import numpy as np
    import scipy

    out = {"python": platform.python_version(), "numpy": np.__version__, "scipy": scipy.__version__}
    if with_torch:
        from importlib.metadata import version

        import torch

        out["torch"] = torch.__version__
        out["curvlinops"] = version("curvlinops-for-pytorch")
        out["torch_threads"] = torch.get_num_threads()
    return out


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and write the JSON."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny sizes, for smoke testing")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--threads", type=int, default=2, help="BLAS and torch threads")
    ap.add_argument("--max-p", type=int, default=None, help="skip cells with more parameters")
    ap.add_argument("--max-n", type=int, default=None, help="skip cells with more data points")
    ap.add_argument("--no-torch", action="store_true", help="refvpng only, even if torch is installed")
    a = ap.parse_args(argv)
    try:
        import curvlinops  # noqa: F401
        import torch

        with_torch = not a.no_torch
        torch.set_num_threads(a.threads)
    except ImportError:
        with_torch = False
    from refvpng.nn import Chain

    hs, ns = (QUICK_H, QUICK_N) if a.quick else (FULL_H, FULL_N)
    run_cell(hs[0], ns[0], with_torch)  # warm-up: imports, first-call costs
    cells, t0 = [], time.perf_counter()
    load0 = os.getloadavg()
    for h in hs:
        for n in ns:
            p = Chain.from_sizes((D, h, h, 2 * DZ), (DZ, h, h, D)).num_params
            if (a.max_p and p > a.max_p) or (a.max_n and n > a.max_n):
                continue
            cell = run_cell(h, n, with_torch)
            cells.append(cell)
            print(
                f"P={cell['P']:6d} n={n:4d}  cpu "
                + "  ".join(f"{k}={v:.3g}" for k, v in cell["cpu"].items())
                + "  agree "
                + " ".join(f"{k}={v:.1e}" for k, v in cell["agreement"].items()),
                flush=True,
            )
    doc = {
        "settings": {
            "d": D,
            "d_z": DZ,
            "M": M_PRED,
            "S": 1,
            "hidden": list(hs),
            "n": list(ns),
            "activation": "tanh",
            "likelihood": "Bernoulli",
            "threads": a.threads,
            "quick": a.quick,
            "max_p": a.max_p,
            "max_n": a.max_n,
            "with_torch": with_torch,
        },
        "cells": cells,
        "summary": summarize(cells),
        "run": {
            "seconds": time.perf_counter() - t0,
            "loadavg_before": load0,
            "loadavg_after": os.getloadavg(),
            "cpus": os.cpu_count(),
            "machine": platform.machine(),
            **_versions(with_torch),
        },
    }
    a.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = a.out.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc, indent=1, allow_nan=False) + "\n")
    tmp.replace(a.out)
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    # Run as a script, BLAS threads are fixed before numpy, scipy or torch load their BLAS.
    _threads = next((sys.argv[k + 1] for k, v in enumerate(sys.argv[:-1]) if v == "--threads"), "2")
    for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[_var] = _threads
    sys.exit(main())
