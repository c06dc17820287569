"""Outer-product kernel F = sum_k w_k b_k b_k^T: NumPy spec vs numba twin, streaming, errors."""

from __future__ import annotations

import importlib.util
import json
import multiprocessing
import os
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
from hypothesis import given, settings
from hypothesis import strategies as st

from refvpng._checks import check_psd
from refvpng.curvature import _outer_kernel
from refvpng.curvature._outer_kernel import _row_slabs
from refvpng.curvature.outer import (
    gram_syrk,
    mirror_upper,
    outer_auto_method,
    outer_init,
    outer_sum,
    outer_sum_numba,
    outer_sum_numpy,
    outer_update,
)
from refvpng.testing.tolerances import EXACT

BENCH = Path(__file__).resolve().parents[2] / "validation" / "bench" / "bench_outer.py"

# Named shapes that reach every code path of the numba kernel (K, P; id names the path).
# The column path shares F's column panels between tasks; the row path (K >= 512 and small
# enough P) cuts the rows into slabs. P not a multiple of 6 or 8 exercises the ragged tiles;
# K * P**2 >= 2e6 runs on the thread pool.
SHAPES = [
    pytest.param(1, 1, id="1x1"),
    pytest.param(3, 5, id="3x5-cols"),
    pytest.param(40, 13, id="40x13-cols"),
    pytest.param(257, 9, id="257x9-cols-two-blocks"),
    pytest.param(700, 7, id="700x7-rows"),
    pytest.param(1100, 50, id="1100x50-rows-threads"),
    pytest.param(300, 130, id="300x130-cols-ragged-threads"),
    pytest.param(300, 144, id="300x144-cols-whole-tiles-threads"),
    pytest.param(520, 126, id="520x126-rows-threads"),
]


def _rel(a, b):
    a, b = np.asarray(a), np.asarray(b)
    if a.size == 0:
        return 0.0
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


def _data(k, p, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((k, p)), rng.random(k)


# --- parity ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("k", "p"), SHAPES)
def test_numba_matches_numpy_on_every_path(k, p):
    b, w = _data(k, p)
    assert _rel(outer_sum_numba(b), outer_sum_numpy(b)) <= EXACT
    assert _rel(outer_sum_numba(b, w), outer_sum_numpy(b, w)) <= EXACT


def test_shapes_cover_both_parallel_paths():
    assert _row_slabs(700, 7) > 0 and _row_slabs(1100, 50) > 0 and _row_slabs(520, 126) > 0
    assert _row_slabs(300, 130) == 0 and _row_slabs(257, 9) == 0 and _row_slabs(300, 144) == 0
    assert _row_slabs(6000, 2000) == 0  # large P: the column path


@given(
    k=st.integers(0, 120),
    p=st.integers(0, 30),
    seed=st.integers(0, 2**32 - 1),
    log_scale=st.floats(-100, 100),
    weighted=st.booleans(),
)
@settings(deadline=None, max_examples=30)
def test_parity_property(k, p, seed, log_scale, weighted):
    rng = np.random.default_rng(seed)
    b = rng.standard_normal((k, p)) * 2.0**log_scale
    b[rng.random((k, p)) < 0.2] = 0.0
    w = rng.random(k) * (rng.random(k) < 0.8) if weighted else None
    f_np, f_nb = outer_sum_numpy(b, w), outer_sum_numba(b, w)
    assert f_nb.shape == (p, p) and f_nb.dtype == np.float64
    assert _rel(f_nb, f_np) <= EXACT


@given(
    b=st.integers(1, 60).flatmap(
        lambda k: st.lists(
            st.lists(st.floats(-1e6, 1e6, allow_subnormal=False), min_size=4, max_size=4),
            min_size=k,
            max_size=k,
        )
    )
)
@settings(deadline=None, max_examples=25)
def test_parity_on_arbitrary_values(b):
    b = np.array(b)
    assert _rel(outer_sum_numba(b), outer_sum_numpy(b)) <= EXACT


# --- closed forms ------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["numpy", "numba", "auto"])
@pytest.mark.parametrize(("n", "copies"), [(8, 1), (32, 16), (128, 1)])
def test_hadamard_rows_give_exact_identity(method, n, copies):
    # Rows of a Hadamard matrix are orthogonal with squared norm n and integer entries, so
    # sum_k h_k h_k^T = copies * n * I holds exactly in floating point; the weight 1/(copies n)
    # is a power of two, hence exact too. (32, 16) takes the row-slab path, 128 the column path.
    h = np.tile(scipy.linalg.hadamard(n).astype(float), (copies, 1))
    np.testing.assert_array_equal(outer_sum(h, method=method), copies * n * np.eye(n))
    w = np.full(h.shape[0], 1.0 / (copies * n))
    np.testing.assert_array_equal(outer_sum(h, w, method=method), np.eye(n))


@pytest.mark.parametrize("method", ["numpy", "numba"])
def test_orthonormal_rows_give_a_projector(method):
    # B with K < P orthonormal rows: F = B^T B is the orthogonal projector onto the row space.
    q, _ = np.linalg.qr(np.random.default_rng(3).standard_normal((40, 40)))
    b = q[:, :25].T  # (25, 40), B B^T = I
    f = outer_sum(b, method=method)
    assert _rel(f @ f, f) <= 10 * EXACT
    assert abs(np.trace(f) - 25) <= 25 * EXACT
    assert _rel(f @ b.T, b.T) <= 10 * EXACT
    q_full = q.T  # square orthogonal: F = I
    assert _rel(outer_sum(q_full, method=method), np.eye(40)) <= EXACT


def test_eq16_small_example_by_hand():
    # n = 2 data points, M = 2 predictive samples: F_r = (1/M) sum_k sum_i b_ik b_ik^T.
    b = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [2.0, 0.0]])
    expected = np.array([[3.0, 0.5], [0.5, 1.0]])
    for method in ("numpy", "numba", "auto"):
        np.testing.assert_array_equal(outer_sum(b, np.full(4, 0.5), method=method), expected)
        np.testing.assert_array_equal(outer_sum(b, method=method) / 2, expected)


@pytest.mark.parametrize("method", ["numpy", "numba"])
def test_empty_inputs(method):
    np.testing.assert_array_equal(outer_sum(np.zeros((0, 3)), method=method), np.zeros((3, 3)))
    np.testing.assert_array_equal(outer_sum(np.zeros((0, 3)), [], method=method), np.zeros((3, 3)))
    assert outer_sum(np.zeros((4, 0)), method=method).shape == (0, 0)


# --- structure: symmetry, PSD, weights --------------------------------------------------------


@pytest.mark.parametrize("method", ["numpy", "numba"])
@pytest.mark.parametrize(("k", "p"), SHAPES)
def test_symmetric_psd(method, k, p):
    b, w = _data(k, p, seed=1)
    for ww in (None, w):
        f = outer_sum(b, ww, method=method)
        np.testing.assert_array_equal(f, f.T)
        check_psd(f, "F")


@given(k=st.integers(1, 80), p=st.integers(1, 20), seed=st.integers(0, 2**32 - 1))
@settings(deadline=None)
def test_weight_identities(k, p, seed):
    rng = np.random.default_rng(seed)
    b, w = rng.standard_normal((k, p)), rng.random(k)
    for method in ("numpy", "numba"):
        # unit weights are the unweighted sum; scaling the weights scales F
        assert _rel(outer_sum(b, np.ones(k), method=method), outer_sum(b, method=method)) <= EXACT
        scaled = outer_sum(b, 3.0 * w, method=method)
        assert _rel(scaled, 3.0 * outer_sum(b, w, method=method)) <= EXACT
        # a weight of 2 is a repeated row, a weight of 0 a dropped one
        mult = rng.integers(0, 3, size=k)
        expanded = np.repeat(b, mult, axis=0)
        assert _rel(outer_sum(b, mult, method=method), outer_sum(expanded, method=method)) <= EXACT


def test_unit_weights_are_bit_identical_in_numba():
    b, _ = _data(300, 33)
    np.testing.assert_array_equal(outer_sum_numba(b, np.ones(300)), outer_sum_numba(b))


def test_layout_and_dtype_do_not_matter():
    b, w = _data(200, 17)
    ref = outer_sum_numba(b, w)
    np.testing.assert_array_equal(outer_sum_numba(np.asfortranarray(b), w), ref)
    big = np.zeros((400, 34))
    big[::2, ::2] = b
    np.testing.assert_array_equal(outer_sum_numba(big[::2, ::2], w[::-1][::-1]), ref)
    ints = np.arange(12).reshape(4, 3)
    np.testing.assert_array_equal(outer_sum_numba(ints), outer_sum_numpy(ints.astype(float)))
    np.testing.assert_array_equal(outer_sum_numba(ints.tolist()), outer_sum_numba(ints))


def test_inputs_are_not_modified():
    b, w = _data(100, 9)
    b0, w0 = b.copy(), w.copy()
    f = outer_sum_numba(b, w)
    f0 = f.copy()
    for method in ("numpy", "numba"):
        outer_sum(b, w, method=method)
        outer_update(f, b, w, method=method)
    np.testing.assert_array_equal(b, b0)
    np.testing.assert_array_equal(w, w0)
    np.testing.assert_array_equal(f, f0)


# --- streaming ---------------------------------------------------------------------------------


@given(
    k=st.integers(0, 150),
    p=st.integers(1, 20),
    cuts=st.lists(st.integers(0, 150), max_size=6),
    seed=st.integers(0, 2**32 - 1),
    weighted=st.booleans(),
)
@settings(deadline=None)
def test_chunked_equals_one_shot(k, p, cuts, seed, weighted):
    rng = np.random.default_rng(seed)
    b = rng.standard_normal((k, p))
    w = rng.random(k) if weighted else None
    edges = sorted({0, k, *(c for c in cuts if c <= k)})
    for method in ("numba", "numpy", "auto"):
        f = outer_init(p)
        for lo, hi in zip(edges[:-1], edges[1:], strict=True):
            f = outer_update(f, b[lo:hi], None if w is None else w[lo:hi], method=method)
        one_shot = outer_sum(b, w, method=method)
        assert _rel(f, one_shot) <= EXACT
        np.testing.assert_array_equal(f, f.T)


@pytest.mark.parametrize(("k", "p"), [(500, 130), (300, 9)])
def test_chunked_numba_is_bit_identical_on_the_column_path(k, p):
    # On the column path each entry is one sequential sum over the rows, whatever the blocks.
    b, w = _data(k, p, seed=5)
    assert _row_slabs(k, p) == 0
    f = outer_init(p)
    for chunk in np.array_split(np.arange(k), 7):
        f = outer_update(f, b[chunk], w[chunk], method="numba")
    np.testing.assert_array_equal(f, outer_sum_numba(b, w))


def test_chunked_on_the_row_path():
    b, w = _data(2000, 40, seed=6)
    f = outer_init(40)
    for chunk in np.array_split(np.arange(2000), 3):
        f = outer_update(f, b[chunk], w[chunk])
    assert _rel(f, outer_sum_numpy(b, w)) <= EXACT


# --- determinism and dispatch ------------------------------------------------------------------


@pytest.mark.parametrize(("k", "p"), [(700, 7), (300, 130), (2100, 60)])
def test_numba_is_independent_of_thread_count(k, p, monkeypatch):
    b, w = _data(k, p, seed=7)
    results = []
    for n in (1, 2, 3, 5):
        monkeypatch.setattr(_outer_kernel, "_n_threads", lambda n=n: n)
        monkeypatch.setattr(_outer_kernel, "_PARALLEL_MIN_WORK", 0)
        results.append(outer_sum_numba(b, w))
    for r in results[1:]:
        np.testing.assert_array_equal(r, results[0])


@pytest.mark.parametrize("method", ["numpy", "numba", "auto"])
def test_repeated_calls_are_bit_identical(method):
    b, w = _data(600, 60, seed=8)
    first = outer_sum(b, w, method=method)
    for _ in range(3):
        np.testing.assert_array_equal(outer_sum(b, w, method=method), first)


@pytest.mark.parametrize(("k", "p"), [(6000, 200), (6000, 2000), (60000, 50), (10, 3), (800, 60)])
@pytest.mark.parametrize("weighted", [False, True])
def test_auto_follows_the_rule(k, p, weighted):
    choice = outer_auto_method(k, p, weighted)
    assert choice in ("numpy", "numba")
    if k * p <= 50000:  # only run the small ones
        b, w = _data(k, p)
        ww = w if weighted else None
        np.testing.assert_array_equal(outer_sum(b, ww), outer_sum(b, ww, method=choice))


def test_auto_rule_as_documented():
    # the rule of outer_auto_method, from validation/bench/bench_outer.py
    assert outer_auto_method(10, 3) == outer_auto_method(10, 3, weighted=True) == "numpy"
    assert outer_auto_method(6000, 2000) == outer_auto_method(6000, 200) == "numpy"
    assert outer_auto_method(60000, 50) == "numpy"
    assert outer_auto_method(6000, 2000, weighted=True) == "numba"
    assert outer_auto_method(60000, 50, weighted=True) == "numba"
    with pytest.raises(ValueError, match="n_rows"):
        outer_auto_method(-1, 3)


# --- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize("fn", [outer_sum, outer_sum_numpy, outer_sum_numba])
def test_bad_b(fn):
    with pytest.raises(ValueError, match="B"):
        fn(np.ones(3))
    with pytest.raises(ValueError, match="B"):
        fn(np.ones((2, 2, 2)))
    with pytest.raises(ValueError, match="B"):
        fn(np.array([[1.0, np.nan]]))
    with pytest.raises(ValueError, match="B"):
        fn(np.array([[1.0, np.inf]]))
    with pytest.raises(TypeError, match="B"):
        fn([["a", "b"]])
    with pytest.raises(TypeError, match="B"):
        fn(None)
    with pytest.raises(TypeError, match="B"):
        fn(np.ones((2, 2)) * 1j)


@pytest.mark.parametrize("method", ["numpy", "numba"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_b_is_caught_wherever_it_is(method, bad):
    # B's finiteness is read off the diagonal of F; a zero weight must not hide the bad value.
    b, _ = _data(600, 20, seed=10)
    b[417, 13] = bad
    w = np.ones(600)
    w[417] = 0.0
    for ww in (None, w):
        with pytest.raises(ValueError, match="B contains NaN"):
            outer_sum(b, ww, method=method)
        with pytest.raises(ValueError, match="B_chunk contains NaN"):
            outer_update(outer_init(20), b, ww, method=method)


@pytest.mark.parametrize("method", ["numpy", "numba"])
def test_finite_b_that_overflows_raises_naming_the_function(method):
    """A finite B whose squares overflow raises instead of returning BLAS's inf (issue 11)."""
    b = np.array([[1e200, 1.0], [1.0, 1.0]])
    with pytest.raises(FloatingPointError, match="outer_sum: .*overflows"):
        outer_sum(b, method=method)
    with pytest.raises(FloatingPointError, match=f"outer_sum_{method}: "):
        (outer_sum_numpy if method == "numpy" else outer_sum_numba)(b)
    with pytest.raises(FloatingPointError, match="outer_update: "):
        outer_update(outer_init(2), b, method=method)
    assert np.isfinite(outer_sum(b * 1e-60, method=method)).all()  # 1e140 squared is finite


def test_gram_syrk_and_mirror_upper_validate():
    b = np.arange(6.0).reshape(3, 2)
    np.testing.assert_array_equal(gram_syrk(b), b.T @ b)
    with pytest.raises(ValueError, match="B must have 2"):
        gram_syrk(np.ones(3))
    with pytest.raises(ValueError, match="B contains NaN"):
        gram_syrk(np.array([[np.nan, 1.0]]))
    with pytest.raises(FloatingPointError, match="gram_syrk: "):
        gram_syrk(np.array([[1e200, 1.0]]))
    f = np.array([[1.0, 2.0], [0.0, 3.0]])
    assert mirror_upper(f) is f and f[1, 0] == 2.0
    with pytest.raises(ValueError, match="f must be square"):
        mirror_upper(np.ones((2, 3)))
    with pytest.raises(ValueError, match="f contains NaN"):
        mirror_upper(np.array([[1.0, np.nan], [0.0, 1.0]]))
    with pytest.raises(TypeError, match="f must be"):
        mirror_upper(None)


def test_outer_update_messages_name_b_chunk():
    with pytest.raises(ValueError, match="rows of B_chunk"):
        outer_update(outer_init(3), np.ones((0, 3)), np.ones(5))
    with pytest.raises(ValueError, match="columns of B_chunk"):
        outer_update(outer_init(3), np.ones((2, 4)))


@pytest.mark.parametrize("fn", [outer_sum, outer_sum_numpy, outer_sum_numba])
def test_bad_weights(fn):
    b = np.ones((3, 2))
    for bad in (np.ones(2), np.ones((3, 1)), [1.0, -1.0, 1.0], [1.0, np.nan, 1.0], [np.inf] * 3):
        with pytest.raises(ValueError, match="weights"):
            fn(b, bad)
    with pytest.raises(TypeError, match="weights"):
        fn(b, ["x", "y", "z"])
    with pytest.raises(TypeError, match="weights"):
        fn(b, np.ones(3) * 1j)


def test_bad_method_and_streaming_arguments():
    b = np.ones((3, 2))
    with pytest.raises(ValueError, match="method"):
        outer_sum(b, method="blas")
    with pytest.raises(ValueError, match="method"):
        outer_update(outer_init(2), b, method="fast")
    with pytest.raises(ValueError, match="F"):
        outer_update(outer_init(3), b)
    with pytest.raises(ValueError, match="F"):
        outer_update(np.full((2, 2), np.nan), b)
    with pytest.raises(ValueError, match="B_chunk"):
        outer_update(outer_init(2), np.ones(2))
    with pytest.raises(ValueError, match="weights_chunk"):
        outer_update(outer_init(2), b, -np.ones(3))
    with pytest.raises(ValueError, match="n_params"):
        outer_init(-1)
    with pytest.raises(TypeError, match="n_params"):
        outer_init(2.5)


# --- benchmark smoke test ----------------------------------------------------------------------


def test_bench_quick_writes_json(tmp_path):
    spec = importlib.util.spec_from_file_location("bench_outer", BENCH)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "sub" / "bench.json"
    assert bench.main(["--quick", "--out", str(out)]) == 0
    data = json.loads(out.read_text())
    sizes = [f"{k}x{p}" for k, p in bench.QUICK_SIZES]
    for key in sizes:
        entry = data[key]
        for field in ("blas_s", "numba_s", "auto_s", "ratio_numba", "ratio_auto"):
            assert entry[field] > 0
        assert entry["auto_method"] in ("numpy", "numba")
        assert entry["max_rel_err_numba_vs_blas"] <= EXACT
    for field in ("numpy", "numba", "cpu_count"):
        assert field in data["machine"]
    assert data["quick"] is True
    assert list(out.parent.iterdir()) == [out]  # no temporary file left behind


def _child_outer_sum(queue):
    b, w = _data(2000, 60, seed=9)
    queue.put(outer_sum_numba(b, w))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_thread_pool_survives_fork():
    b, w = _data(2000, 60, seed=9)
    ref = outer_sum_numba(b, w)  # the parent's pool exists now
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_child_outer_sum, args=(queue,))
    child.start()
    got = queue.get(timeout=120)
    child.join(timeout=60)
    assert child.exitcode == 0
    np.testing.assert_array_equal(got, ref)


def test_numba_kernel_is_bit_for_bit_deterministic():
    """Same inputs, same bits: the threaded kernel splits work by fixed slabs, not by timing."""
    rng = np.random.default_rng(0)
    b = rng.standard_normal((3000, 130))
    w = rng.random(3000)
    first = outer_sum_numba(b, w)
    for _ in range(3):
        assert np.array_equal(outer_sum_numba(b, w), first)
