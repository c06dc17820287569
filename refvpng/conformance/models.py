r"""Models named by plain JSON-ready dicts: the ``"model"`` entry of a fixture manifest.

A *model spec* is a dict with a ``"model"`` key and that model's options, e.g.
``{"model": "small", "likelihood": "poisson_log", "local": True, "scale": "softplus", "dz": 2,
"d": 3}``. :func:`build_model` turns it into a :class:`~refvpng.models.latent.LatentModel` and
:func:`param_spec` into the named blocks of :math:`\eta`
(:class:`~refvpng.conformance.interop.ParamSpec`). The fixtures, the checker's
"other σ coordinate" diagnosis and the array-only strategies of :mod:`refvpng.testing.arrays`
all go through these two functions.

=================== =============================================== ============================
``"model"``         options                                         model
=================== =============================================== ============================
``gaussian_mean``   ``eps_corr``, ``sigma``, ``scale``              Eq 4 (global)
``linear_gaussian`` ``sigma``                                       Section 3.2 (local)
``logistic``        ``dim``, ``prior_std``, ``scale``               Section 5.1 (global)
``small``           ``likelihood``, ``local``, ``scale``, ``dz``,   ``make_small_model``
                    ``d``, ``sigma``
``ppca``            ``d``, ``k``, ``noise``, ``noise_coord``        pPCA / factor analysis
``linear_vae``      ``d``, ``k``                                    pPCA, iso noise, log coord
``chain``           ``encoder_sizes``, ``decoder_sizes``,           ``refvpng.nn.chain_model``
                    ``activation``, ``floor``, ``likelihood``
=================== =============================================== ============================
"""

from __future__ import annotations

from refvpng.conformance.interop import ParamSpec
from refvpng.models.latent import LatentModel

__all__ = ["MODELS", "build_model", "param_spec", "with_scale"]

MODELS = ("gaussian_mean", "linear_gaussian", "logistic", "small", "ppca", "linear_vae", "chain")


def _kind(spec: dict) -> str:
    if not isinstance(spec, dict) or spec.get("model") not in MODELS:
        raise ValueError(f"spec must be a dict whose 'model' is one of {MODELS}, got {spec!r}")
    return spec["model"]


def _ppca_spec(spec: dict):
    from refvpng.models.ppca import PPCASpec

    if spec["model"] == "linear_vae":
        return PPCASpec(spec["d"], spec["k"])
    return PPCASpec(spec["d"], spec["k"], spec.get("noise", "iso"), spec.get("noise_coord", "log"))


def _chain(spec: dict):
    from refvpng.nn import Chain

    return Chain.from_sizes(
        tuple(spec["encoder_sizes"]),
        tuple(spec["decoder_sizes"]),
        spec.get("activation", "tanh"),
        spec.get("floor", 1e-4),
    )


def build_model(spec: dict) -> LatentModel:
    """The :class:`~refvpng.models.latent.LatentModel` named by a model spec (module docstring)."""
    kind = _kind(spec)
    if kind == "gaussian_mean":
        from refvpng.models import gaussian_mean as gm

        scale = spec.get("scale", "fixed")
        return gm.make_model(spec["eps_corr"], spec.get("sigma") if scale == "fixed" else None, scale)
    if kind == "linear_gaussian":
        from refvpng.models import linear_gaussian as lg

        return lg.make_model(spec["sigma"])
    if kind == "logistic":
        from refvpng.models import logistic

        return logistic.make_model(spec["dim"], spec.get("prior_std", 100.0), spec.get("scale", "softplus"))
    if kind == "small":
        from refvpng.models.small import make_small_model

        return make_small_model(
            spec["likelihood"],
            local=spec["local"],
            scale=spec["scale"],
            dz=spec["dz"],
            d=spec["d"],
            sigma=spec.get("sigma", 0.7),
        )
    if kind in ("ppca", "linear_vae"):
        from refvpng.models import ppca

        return ppca.make_model(_ppca_spec(spec))
    from refvpng.models.likelihoods import Bernoulli
    from refvpng.nn import chain_model

    if spec.get("likelihood", "bernoulli") != "bernoulli":
        raise ValueError("chain fixtures use the Bernoulli likelihood of Section 5.2")
    return chain_model(_chain(spec), Bernoulli())


def _mlp_blocks(prefix: str, sizes) -> list:
    out = []
    for l_idx, (d_in, d_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True), start=1):
        out += [(f"{prefix}.layer{l_idx}.W", (d_out, d_in)), (f"{prefix}.layer{l_idx}.b", (d_out,))]
    return out


def param_spec(spec: dict) -> ParamSpec:
    r"""The named blocks of :math:`\eta` for a model spec (every matrix column-major)."""
    kind = _kind(spec)
    if kind in ("gaussian_mean", "logistic"):
        dim = 2 if kind == "gaussian_mean" else spec["dim"]
        fixed = spec.get("scale", "fixed" if kind == "gaussian_mean" else "softplus") == "fixed"
        blocks = [("lambda.m", (dim,))] + ([] if fixed else [("lambda.rho", (dim,))])
        return ParamSpec.sequential(blocks)
    if kind == "linear_gaussian":
        return ParamSpec.sequential([("lambda", (1,)), ("theta", (1,))], n_lambda=1)
    if kind == "small":
        dz, d, fixed = spec["dz"], spec["d"], spec["scale"] == "fixed"
        if spec["local"]:
            enc = [("encoder.mean.W", (dz, d)), ("encoder.mean.b", (dz,))]
            if not fixed:
                enc += [("encoder.scale.W", (dz, d)), ("encoder.scale.b", (dz,))]
        else:
            enc = [("lambda.m", (dz,))] + ([] if fixed else [("lambda.rho", (dz,))])
        n_lam = sum(int(_size(s)) for _, s in enc)
        return ParamSpec.sequential(enc + [("decoder.W", (d, dz)), ("decoder.b", (d,))], n_lambda=n_lam)
    if kind in ("ppca", "linear_vae"):
        ps = _ppca_spec(spec)
        d, k = ps.d, ps.k
        named: list[tuple[str, tuple[int, ...]]] = [
            ("encoder.mean.W", (k, d)),
            ("encoder.mean.b", (k,)),
            ("encoder.rho", (k,)),
            ("decoder.W", (d, k)),
            ("decoder.b", (d,)),
            ("decoder.noise", (ps.n_noise,)),
        ]
        return ParamSpec.sequential(named, n_lambda=k * d + 2 * k)
    enc = _mlp_blocks("encoder", spec["encoder_sizes"])
    dec = _mlp_blocks("decoder", spec["decoder_sizes"])
    return ParamSpec.sequential(enc + dec, n_lambda=sum(int(_size(s)) for _, s in enc))


def _size(shape) -> int:
    out = 1
    for s in shape:
        out *= int(s)
    return out


def with_scale(spec: dict, scale: str) -> dict | None:
    r"""The same spec in another :math:`\sigma` coordinate, or ``None`` if it has no such option."""
    _kind(spec)
    if scale not in ("exp", "softplus", "fixed"):
        raise ValueError(f"scale must be 'exp', 'softplus' or 'fixed', got {scale!r}")
    if spec.get("model") in ("gaussian_mean", "logistic", "small") and spec.get("scale") in (
        "exp",
        "softplus",
    ):
        return {**spec, "scale": scale}
    return None
