r"""The Fisher outer-product kernel :math:`F = \sum_k w_k\, b_k b_k^\top`.

Every empirical Fisher in the package ends in this sum over rows :math:`b_k` of a matrix
:math:`B`: the Monte Carlo variational predictive Fisher of Eq. (16) of Tang & Ranganath (2019),

.. math::
    \hat F_r = \frac{1}{M} \sum_{k=1}^{n} \sum_{i=1}^{M} b_{ik} b_{ik}^\top,

is ``outer_sum(B, weights)`` with the :math:`nM` score vectors :math:`b_{ik}` stacked as the
rows of ``B`` and every weight equal to :math:`1/M` (or ``outer_sum(B) / M``).

Two implementations with the same signature:

- :func:`outer_sum_numpy` is the specification, ``B.T @ (w[:, None] * B)`` in plain NumPy
  (BLAS ``syrk`` when unweighted, ``gemm`` otherwise).
- :func:`outer_sum_numba` is its numba twin. It streams over the rows of ``B`` in blocks of
  ``_KC`` rows, packs each block into cache-sized panels and accumulates rank-``_KC`` updates
  into the upper triangle with a register-blocked ``_MR x _NR`` micro-kernel, then mirrors the
  upper triangle. Nothing of size ``K * P`` is allocated besides ``B`` itself.

:func:`outer_sum` picks between them (``method="auto"``, rule in its docstring), and
:func:`outer_init` / :func:`outer_update` accumulate the same sum from chunks of rows, so a
caller never needs to hold all :math:`b_k` at once.

Conventions (stated once)
-------------------------
*Sum, not mean.* Nothing is divided by ``K``; pass ``weights`` (e.g. :math:`1/M`) for the
mean over predictive samples. *Symmetry.* Every returned matrix is exactly symmetric.
*Determinism.* Each path gives bit-identical output for identical input on one machine: the
numba kernel's summation order depends on the shape only, never on the number of threads, and
``"auto"`` is a fixed function of the shape. Floating-point contraction (FMA) and fastmath are
off. The NumPy path and the numba path agree to :data:`refvpng.testing.tolerances.EXACT`
relative to the largest entry, not bit for bit.

References
----------
.. [1] Y. Tang and R. Ranganath, "The Variational Predictive Natural Gradient", ICML 2019,
   Eq. (16).
.. [2] K. Goto and R. van de Geijn, "Anatomy of high-performance matrix multiplication",
   ACM TOMS 34(3), 2008 (the packing and blocking of the numba kernel).
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from refvpng._checks import as_array, as_int

__all__ = [
    "outer_sum",
    "outer_sum_numpy",
    "outer_sum_numba",
    "outer_init",
    "outer_update",
    "outer_auto_method",
]

_METHODS = ("numpy", "numba", "auto")

# Blocking of the numba kernel. _MR x _NR is the register tile (12 vectors of 4 doubles),
# _KC rows form one packed block (a _KC x _NR panel is 16 KiB, it stays in L1), _MC rows of
# F are swept per L2-resident block of packed A panels.
_MR = 6
_NR = 8
_KC = 256
_MC = 96
_OWN_PANELS = 8  # column panels per ownership block (64 columns: no false sharing inside)
_VEC = 4  # doubles per SIMD vector in the micro-kernel (AVX2; LLVM splits it where narrower)

# Row-slab parallelism (see _row_slabs): the rows are cut into at most this many slabs,
# independently of the thread count, so the result does not depend on it.
_SLABS = 4
_SLAB_BYTES = 8 * 2**20  # at most this much memory for the slab accumulators
_PARALLEL_MIN_WORK = 2 * 10**6  # K * P**2 below which the kernel runs on the calling thread

# The "auto" rule (outer_auto_method), set from validation/bench/bench_outer.py.
_AUTO_MIN_WORK = _PARALLEL_MIN_WORK  # K * P**2 below which "auto" always takes NumPy
_AUTO_NUMBA_WEIGHTED = True  # weighted: numba (the NumPy spec pays a gemm and a K x P temporary)


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------


def _check_b(B, name: str) -> np.ndarray:
    """Return ``B`` as a 2-D float64 array, naming ``name`` in errors.

    Finiteness is checked on the result by :func:`_finite_or_raise` instead: a NaN or an
    infinity anywhere in column ``i`` of ``B`` makes ``F_ii`` NaN or infinite, so the full scan of
    ``B`` (and its ``K x P`` boolean temporary) is only paid when something is wrong.
    """
    if isinstance(B, np.ndarray) and B.dtype.kind in "cSUVMm":
        raise TypeError(f"{name} must be a real numeric array, got dtype {B.dtype}")
    if np.iscomplexobj(B):
        raise TypeError(f"{name} must be a real numeric array, got complex values")
    return as_array(B, name, ndim=2, finite=False)


def _finite_or_raise(F: np.ndarray, b: np.ndarray, name: str) -> np.ndarray:
    """Return ``F``, or raise if ``b`` has NaN or infinite entries (seen on ``F``'s diagonal).

    A finite ``b`` whose squares overflow gives infinities in ``F``, as ``B.T @ B`` does.
    """
    if not np.isfinite(np.diagonal(F)).all() and not np.isfinite(b).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return F


def _check_weights(weights, name: str, k: int) -> np.ndarray | None:
    """Return ``weights`` as a finite non-negative float64 array of length ``k`` (or None)."""
    if weights is None:
        return None
    if isinstance(weights, np.ndarray) and weights.dtype.kind in "cSUVMm":
        raise TypeError(f"{name} must be a real numeric array, got dtype {weights.dtype}")
    if np.iscomplexobj(weights):
        raise TypeError(f"{name} must be a real numeric array, got complex values")
    w = as_array(weights, name, ndim=1)
    if w.shape[0] != k:
        raise ValueError(f"{name} must have length K = {k} (the rows of B), got {w.shape[0]}")
    if np.any(w < 0):
        raise ValueError(f"{name} must be >= 0, got minimum {w.min():.3g}")
    return w


def _check_method(method) -> str:
    if method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}, got {method!r}")
    return method


# --------------------------------------------------------------------------------------------
# NumPy specification
# --------------------------------------------------------------------------------------------


def _numpy_kernel(B: np.ndarray, w: np.ndarray | None) -> np.ndarray:
    with np.errstate(invalid="ignore", over="ignore"):  # non-finite B is reported afterwards
        if w is None:
            f = B.T @ B  # BLAS syrk: exactly symmetric already
        else:
            f = B.T @ (w[:, None] * B)  # BLAS gemm: symmetric up to rounding
    # Mirror the upper triangle onto the lower one, in place and in blocks of columns.
    p = f.shape[0]
    for j0 in range(0, p, 256):
        j1 = min(p, j0 + 256)
        f[j1:, j0:j1] = f[j0:j1, j1:].T
        diag = f[j0:j1, j0:j1]
        lower = np.tril_indices(j1 - j0, -1)
        diag[lower] = diag.T[lower]
    return f


def outer_sum_numpy(B, weights=None) -> np.ndarray:
    r"""Weighted sum of outer products of the rows of ``B``, in plain NumPy (the specification).

    .. math::
        F = \sum_{k=1}^{K} w_k\, b_k b_k^\top = B^\top \operatorname{diag}(w)\, B,

    with :math:`b_k` the :math:`k`-th row of :math:`B`. With the :math:`nM` score vectors
    :math:`b_{ik}` as rows and :math:`w_k = 1/M` this is :math:`\hat F_r` of Eq. (16) of
    Tang & Ranganath (2019).

    Parameters
    ----------
    B : array_like, shape (K, P)
        Rows :math:`b_k`; converted to float64. ``K = 0`` gives the zero matrix.
    weights : array_like, shape (K,), optional
        Non-negative finite weights :math:`w_k`; all ones when omitted.

    Returns
    -------
    F : ndarray, shape (P, P)
        The symmetric positive semi-definite sum, computed as ``B.T @ (w[:, None] * B)``
        (``B.T @ B`` when unweighted) with the upper triangle mirrored onto the lower one.

    Raises
    ------
    TypeError
        If ``B`` or ``weights`` is not a real numeric array.
    ValueError
        If ``B`` is not 2-D or not finite, or ``weights`` is not 1-D of length ``K``, not finite
        or negative somewhere.

    See Also
    --------
    outer_sum_numba : The streaming numba twin.
    outer_sum : Dispatch between the two.

    References
    ----------
    .. [1] Y. Tang and R. Ranganath, "The Variational Predictive Natural Gradient", ICML 2019,
       Eq. (16).

    Examples
    --------
    >>> import numpy as np
    >>> from refvpng.curvature.outer import outer_sum_numpy
    >>> B = np.array([[1.0, 2.0], [3.0, 0.0]])
    >>> outer_sum_numpy(B)
    array([[10.,  2.],
           [ 2.,  4.]])
    >>> outer_sum_numpy(B, weights=[0.5, 0.0])
    array([[0.5, 1. ],
           [1. , 2. ]])
    """
    b = _check_b(B, "B")
    w = _check_weights(weights, "weights", b.shape[0])
    return _finite_or_raise(_numpy_kernel(b, w), b, "B")


# --------------------------------------------------------------------------------------------
# numba twin
# --------------------------------------------------------------------------------------------


@intrinsic
def _micro_kernel(typingctx, a_pack, a_off, b_pack, b_off, kc, c, c_off, c_stride, c_next):
    """``C[r, q] += sum_{k < kc} a_pack[a_off + k*_MR + r] * b_pack[b_off + k*_NR + q]``.

    The ``_MR x _NR`` tile of ``C`` starts at flat index ``c_off`` of ``c`` with rows
    ``c_stride`` elements apart. It is loaded into ``_MR * _NR / _VEC`` vector registers, updated
    ``kc`` times with a separate multiply and add (no FMA contraction, no reassociation: each
    entry is the plain sequential sum over ``k``), and stored back. Written as LLVM IR because
    numba's default pipeline leaves the SLP vectoriser off, without which the scalar
    accumulators of a register tile never reach vector registers.
    """
    f64_1d = types.Array(types.float64, 1, "C")
    ok = (
        a_pack == f64_1d
        and b_pack == f64_1d
        and isinstance(c, types.Array)
        and c.dtype == types.float64
        and c.layout == "C"
    )
    if not ok:
        return None
    intp = types.intp
    sig = types.void(a_pack, intp, b_pack, intp, intp, c, intp, intp, intp)
    n_vec = _NR // _VEC

    def codegen(context, builder, signature, args):
        a_v, a_off_v, b_v, b_off_v, kc_v, c_v, c_off_v, c_stride_v, c_next_v = args
        a_ty, _, b_ty, _, _, c_ty, _, _, _ = signature.args
        a_ptr = context.make_array(a_ty)(context, builder, a_v).data
        b_ptr = context.make_array(b_ty)(context, builder, b_v).data
        c_ptr = context.make_array(c_ty)(context, builder, c_v).data
        i64 = ir.IntType(64)
        i32 = ir.IntType(32)
        vec = ir.VectorType(ir.DoubleType(), _VEC)
        vec_ptr = vec.as_pointer()
        undef = ir.Constant(vec, ir.Undefined)
        splat = ir.Constant(ir.VectorType(i32, _VEC), [0] * _VEC)

        def const(v):
            return ir.Constant(i64, v)

        tile_ptrs = []
        for r in range(_MR):
            row = builder.add(c_off_v, builder.mul(c_stride_v, const(r)))
            for q in range(n_vec):
                p = builder.gep(c_ptr, [builder.add(row, const(q * _VEC))], inbounds=True)
                tile_ptrs.append(builder.bitcast(p, vec_ptr))
        # Accumulators as allocas: LLVM's mem2reg promotes them to registers.
        acc = [cgutils.alloca_once_value(builder, builder.load(p, align=8)) for p in tile_ptrs]
        # Prefetch the next tile of C (F is usually far larger than the caches), both ends of
        # each row segment in case it straddles two cache lines.
        i8p = ir.IntType(8).as_pointer()
        prefetch = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32]), "llvm.prefetch.p0"
        )
        for r in range(_MR):
            row = builder.add(c_next_v, builder.mul(c_stride_v, const(r)))
            for q in (0, _NR - 1):
                p = builder.gep(c_ptr, [builder.add(row, const(q))], inbounds=True)
                args_pf = [builder.bitcast(p, i8p), ir.Constant(i32, 1), ir.Constant(i32, 3)]
                builder.call(prefetch, [*args_pf, ir.Constant(i32, 1)])
        with cgutils.for_range(builder, kc_v) as loop:
            k = loop.index
            a_base = builder.add(a_off_v, builder.mul(k, const(_MR)))
            b_base = builder.add(b_off_v, builder.mul(k, const(_NR)))
            b_vec = []
            for q in range(n_vec):
                p = builder.gep(b_ptr, [builder.add(b_base, const(q * _VEC))], inbounds=True)
                b_vec.append(builder.load(builder.bitcast(p, vec_ptr), align=8))
            for r in range(_MR):
                p = builder.gep(a_ptr, [builder.add(a_base, const(r))], inbounds=True)
                a_s = builder.insert_element(undef, builder.load(p), ir.Constant(i32, 0))
                a_vec = builder.shuffle_vector(a_s, undef, splat)
                for q in range(n_vec):
                    slot = acc[r * n_vec + q]
                    prod = builder.fmul(a_vec, b_vec[q])
                    builder.store(builder.fadd(builder.load(slot), prod), slot)
        for slot, p in zip(acc, tile_ptrs, strict=True):
            builder.store(builder.load(slot), p, align=8)
        return context.get_dummy_value()

    return sig, codegen


def _make_copy(n: int, scaled: bool):
    """Build an intrinsic ``copy(src, s_off, dst, d_off, s)`` of ``n`` doubles, times ``s``.

    ``n`` doubles move as vectors of 4 and 2 (numba's pipeline would copy them one by one); with
    ``scaled=False`` the factor ``s`` is ignored.
    """

    @intrinsic
    def _copy(typingctx, src, s_off, dst, d_off, s):
        arrays_ok = all(
            isinstance(x, types.Array) and x.dtype == types.float64 and x.layout == "C"
            for x in (src, dst)
        )
        if not arrays_ok:
            return None
        sig = types.void(src, types.intp, dst, types.intp, types.float64)

        def codegen(context, builder, signature, args):
            src_v, s_off_v, dst_v, d_off_v, s_v = args
            src_ptr = context.make_array(signature.args[0])(context, builder, src_v).data
            dst_ptr = context.make_array(signature.args[2])(context, builder, dst_v).data
            i64 = ir.IntType(64)
            i32 = ir.IntType(32)
            done = 0
            while done < n:
                width = 4 if n - done >= 4 else (2 if n - done >= 2 else 1)
                vec = ir.VectorType(ir.DoubleType(), width)
                sp = builder.gep(src_ptr, [builder.add(s_off_v, ir.Constant(i64, done))])
                dp = builder.gep(dst_ptr, [builder.add(d_off_v, ir.Constant(i64, done))])
                x = builder.load(builder.bitcast(sp, vec.as_pointer()), align=8)
                if scaled:
                    undef = ir.Constant(vec, ir.Undefined)
                    s1 = builder.insert_element(undef, s_v, ir.Constant(i32, 0))
                    mask = ir.Constant(ir.VectorType(i32, width), [0] * width)
                    x = builder.fmul(x, builder.shuffle_vector(s1, undef, mask))
                builder.store(x, builder.bitcast(dp, vec.as_pointer()), align=8)
                done += width
            return context.get_dummy_value()

        return sig, codegen

    return _copy


_copy_a = _make_copy(_MR, scaled=True)
_copy_b = _make_copy(_NR, scaled=False)


@njit(cache=True)
def _owner(jp, nt):
    """Return the task, of ``nt``, that owns column panel ``jp``.

    Panels go in blocks of ``_OWN_PANELS``, dealt out to tasks 0, 1, ..., nt-1, nt-1, ..., 0,
    0, 1, ... so that the growing columns of the triangle even out.
    """
    blk = jp // _OWN_PANELS
    pos = blk % nt
    return pos if (blk // nt) % 2 == 0 else nt - 1 - pos


@njit(cache=True)
def _pack_block(B, w, k0, kc, a_pack, b_pack, jp_own, nt):
    """Pack rows ``k0:k0+kc`` of ``B`` into column panels.

    ``a_pack`` gets every panel of width ``_MR``, scaled by ``w``; ``b_pack`` the panels of
    width ``_NR`` that task ``jp_own`` of ``nt`` owns. Panel ``ip`` holds row ``k`` at
    ``(ip * _KC + k) * _MR``. Columns past ``P`` in the last panels are never written: the
    buffers come zeroed from :func:`np.zeros` and stay so.
    """
    P = B.shape[1]
    n_pa = (P + _MR - 1) // _MR
    n_pb = (P + _NR - 1) // _NR
    full_a = P // _MR
    full_b = P // _NR
    bf = B.reshape(B.size)
    for k in range(kc):
        s = w[k0 + k]
        src0 = (k0 + k) * P
        for ip in range(full_a):
            _copy_a(bf, src0 + ip * _MR, a_pack, (ip * _KC + k) * _MR, s)
        if full_a < n_pa:  # ragged last panel; its padding stays zero from allocation
            dst = (full_a * _KC + k) * _MR
            for r in range(P - full_a * _MR):
                a_pack[dst + r] = bf[src0 + full_a * _MR + r] * s
        for jp in range(full_b):
            if _owner(jp, nt) != jp_own:
                continue
            _copy_b(bf, src0 + jp * _NR, b_pack, (jp * _KC + k) * _NR, 1.0)
        if full_b < n_pb and _owner(full_b, nt) == jp_own:
            dst = (full_b * _KC + k) * _NR
            for q in range(P - full_b * _NR):
                b_pack[dst + q] = bf[src0 + full_b * _NR + q]


@njit(cache=True)
def _block_upper(C, a_pack, b_pack, kc, jp_own, nt, tile):
    """Add one packed block into the upper triangle of ``C`` (and the tiles crossing it).

    Only the column panels task ``jp_own`` owns are touched, so ``nt`` callers with distinct
    ``jp_own`` write disjoint entries. Each entry of ``C`` is updated by exactly one tile whose
    shape depends on ``P`` only.
    """
    P = C.shape[0]
    n_pa = (P + _MR - 1) // _MR
    n_pb = (P + _NR - 1) // _NR
    mc = _MC // _MR
    for ic in range(0, n_pa, mc):
        for jp in range(n_pb):
            if _owner(jp, nt) != jp_own:
                continue
            j0 = jp * _NR
            nr = min(_NR, P - j0)
            for ip in range(ic, min(n_pa, ic + mc)):
                i0 = ip * _MR
                if i0 >= j0 + nr:
                    break
                mr = min(_MR, P - i0)
                a_off = ip * _KC * _MR
                b_off = jp * _KC * _NR
                if mr == _MR and nr == _NR:
                    # prefetch the tile below (same columns), or this one again at the end
                    nxt = (i0 + _MR) * P + j0 if i0 + 2 * _MR <= P else i0 * P + j0
                    _micro_kernel(a_pack, a_off, b_pack, b_off, kc, C, i0 * P + j0, P, nxt)
                else:  # edge tile: go through a zero-padded scratch tile
                    tile[:] = 0.0
                    for r in range(mr):
                        for q in range(nr):
                            tile[r * _NR + q] = C[i0 + r, j0 + q]
                    _micro_kernel(a_pack, a_off, b_pack, b_off, kc, tile, 0, _NR, 0)
                    for r in range(mr):
                        for q in range(nr):
                            C[i0 + r, j0 + q] = tile[r * _NR + q]


@njit(cache=True, nogil=True)
def _columns_task(F, B, w, t, nt):
    """Task ``t`` of ``nt``: add every row into the column panels of ``F`` that it owns.

    The ``nt`` tasks write disjoint entries and may run concurrently (the GIL is released).
    Every entry ends as the sequential sum ``F_ij + sum_k (w_k b_ki) b_kj`` in row order,
    whatever ``nt`` is.
    """
    K, P = B.shape
    a_pack = np.zeros(((P + _MR - 1) // _MR) * _KC * _MR)
    b_pack = np.zeros(((P + _NR - 1) // _NR) * _KC * _NR)
    tile = np.zeros(_MR * _NR)
    for k0 in range(0, K, _KC):
        kc = min(_KC, K - k0)
        _pack_block(B, w, k0, kc, a_pack, b_pack, t, nt)
        _block_upper(F, a_pack, b_pack, kc, t, nt, tile)


@njit(cache=True, nogil=True)
def _rows_task(acc, B, w, lo, hi):
    """Add rows ``lo:hi`` into the upper triangle of ``acc`` (one slab, the GIL released)."""
    P = B.shape[1]
    a_pack = np.zeros(((P + _MR - 1) // _MR) * _KC * _MR)
    b_pack = np.zeros(((P + _NR - 1) // _NR) * _KC * _NR)
    tile = np.zeros(_MR * _NR)
    for k0 in range(lo, hi, _KC):
        kc = min(_KC, hi - k0)
        _pack_block(B, w, k0, kc, a_pack, b_pack, 0, 1)
        _block_upper(acc, a_pack, b_pack, kc, 0, 1, tile)


@njit(cache=True)
def _mirror_upper(F):
    """Copy the strict upper triangle onto the lower one, in cache-sized blocks."""
    P = F.shape[0]
    bs = 64
    for i0 in range(0, P, bs):
        for j0 in range(i0, P, bs):
            for i in range(i0, min(P, i0 + bs)):
                for j in range(max(j0, i + 1), min(P, j0 + bs)):
                    F[j, i] = F[i, j]


def _row_slabs(K: int, P: int) -> int:
    """Return the number of row slabs for the row-parallel path (0: use the column path).

    Cutting the rows into slabs packs every row once and balances the threads perfectly, but
    needs one ``(P, P)`` accumulator per slab: it is used while those stay under
    ``_SLAB_BYTES`` and every slab holds at least one full block of ``_KC`` rows. The count
    depends on the shape only, never on the number of threads.
    """
    n = min(_SLABS, K // _KC, _SLAB_BYTES // max(1, 8 * P * P))
    return n if n >= 2 else 0


def _n_threads() -> int:
    """Threads for the numba kernel: the CPUs this process may use, capped by numba's setting."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, numba.config.NUMBA_NUM_THREADS))


_POOL: ThreadPoolExecutor | None = None
_POOL_PID = -1
_POOL_LOCK = threading.Lock()


def _pool() -> ThreadPoolExecutor:
    """The module's worker pool, created on first use (and afresh in a forked child)."""
    global _POOL, _POOL_PID
    with _POOL_LOCK:
        if _POOL is None or _POOL_PID != os.getpid():
            _POOL = ThreadPoolExecutor(max_workers=_n_threads(), thread_name_prefix="refvpng-outer")
            _POOL_PID = os.getpid()
        return _POOL


def _run_tasks(fn, arg_lists: list[tuple], n_threads: int) -> None:
    """Run ``fn(*args)`` for every entry, on a thread pool unless ``n_threads`` is 1.

    A plain thread pool, not numba's ``parallel=True``: its idle threads sleep instead of
    spinning, so they do not steal cores from BLAS's own pool between calls, and the kernel
    compiles in a fraction of the time. The tasks write disjoint memory; which thread runs
    which task has no effect on the result.
    """
    if n_threads <= 1 or len(arg_lists) <= 1:
        for args in arg_lists:
            fn(*args)
        return
    for future in [_pool().submit(fn, *args) for args in arg_lists]:
        future.result()


def _numba_accumulate(F: np.ndarray, B: np.ndarray, w: np.ndarray | None) -> np.ndarray:
    """Add ``B^T diag(w) B`` into ``F`` (C-contiguous float64, modified) and symmetrise it."""
    K, P = B.shape
    if K and P:
        b = np.ascontiguousarray(B)
        ww = np.ones(K) if w is None else np.ascontiguousarray(w)
        # below about a millisecond of work, threads cost more than they save
        n_threads = _n_threads() if K * P * P >= _PARALLEL_MIN_WORK else 1
        n_slabs = _row_slabs(K, P)
        if n_slabs:
            acc = np.zeros((n_slabs, P, P))
            rows = -(-K // n_slabs)
            slabs = [(acc[s], b, ww, s * rows, min(K, (s + 1) * rows)) for s in range(n_slabs)]
            _run_tasks(_rows_task, slabs, n_threads)
            for s in range(n_slabs):  # fixed order: independent of the threads
                F += acc[s]
        else:
            nt = min(n_threads, -(-P // (_NR * _OWN_PANELS)))
            _run_tasks(_columns_task, [(F, b, ww, t, nt) for t in range(nt)], nt)
    if P:
        _mirror_upper(F)
    return F


def outer_sum_numba(B, weights=None) -> np.ndarray:
    r"""Weighted sum of outer products of the rows of ``B``, streamed by a numba kernel.

    The numba twin of :func:`outer_sum_numpy`, same signature and result to
    :data:`~refvpng.testing.tolerances.EXACT` relative to the largest entry:

    .. math::
        F = \sum_{k=1}^{K} w_k\, b_k b_k^\top,

    which with :math:`w_k = 1/M` over the :math:`nM` score vectors is :math:`\hat F_r` of
    Eq. (16) of Tang & Ranganath (2019).

    The rows are streamed in blocks of 256; each block is packed into zero-padded column
    panels (the weights applied on packing) and added into the upper triangle of :math:`F` by a
    6 x 8 register-tiled micro-kernel, after which the upper triangle is mirrored. The work
    runs on a small thread pool (one thread per usable CPU, capped by ``NUMBA_NUM_THREADS``):
    the rows are cut into at most 4 slabs with their own accumulators while those take at most
    8 MiB in all (and ``K >= 512``), otherwise the column panels of :math:`F` are shared out.
    Besides ``B`` (and a C-ordered copy if ``B`` is not C-contiguous) it allocates :math:`F`,
    the slab accumulators and, per thread, packing buffers of about :math:`2 \cdot 256 P`
    doubles. The result is bit-identical for any number of threads. The first call in a fresh
    environment compiles the kernel (seconds; cached on disk afterwards).

    Parameters
    ----------
    B : array_like, shape (K, P)
        Rows :math:`b_k`; converted to float64.
    weights : array_like, shape (K,), optional
        Non-negative finite weights :math:`w_k`; all ones when omitted.

    Returns
    -------
    F : ndarray, shape (P, P)
        The exactly symmetric positive semi-definite sum.

    Raises
    ------
    TypeError
        If ``B`` or ``weights`` is not a real numeric array.
    ValueError
        If ``B`` is not 2-D or not finite, or ``weights`` is not 1-D of length ``K``, not finite
        or negative somewhere.

    See Also
    --------
    outer_sum_numpy : The specification.
    outer_init, outer_update : The same sum fed in chunks of rows.

    References
    ----------
    .. [1] Y. Tang and R. Ranganath, "The Variational Predictive Natural Gradient", ICML 2019,
       Eq. (16).

    Examples
    --------
    >>> import numpy as np
    >>> from refvpng.curvature.outer import outer_sum_numba, outer_sum_numpy
    >>> B = np.array([[1.0, 2.0], [3.0, 0.0]])
    >>> outer_sum_numba(B)
    array([[10.,  2.],
           [ 2.,  4.]])
    >>> rng = np.random.default_rng(0)
    >>> B, w = rng.standard_normal((500, 30)), rng.random(500)
    >>> F = outer_sum_numba(B, w)
    >>> bool(np.max(np.abs(F - outer_sum_numpy(B, w))) <= 1e-12 * np.max(np.abs(F)))
    True
    """
    b = _check_b(B, "B")
    w = _check_weights(weights, "weights", b.shape[0])
    P = b.shape[1]
    return _finite_or_raise(_numba_accumulate(np.zeros((P, P)), b, w), b, "B")


# --------------------------------------------------------------------------------------------
# Dispatch and streaming
# --------------------------------------------------------------------------------------------


def outer_auto_method(n_rows: int, n_params: int, weighted: bool = False) -> str:
    r"""Return the method that ``"auto"`` picks for a ``(n_rows, n_params)`` matrix.

    A fixed function of the shape (never of a timing taken at run time), so ``"auto"`` is
    deterministic: numba for weighted sums of at least :math:`2 \cdot 10^6` multiply-adds
    (:math:`K P^2`), NumPy (BLAS) otherwise. The rule was set from
    ``validation/bench/bench_outer.py``; :func:`outer_sum` gives the measurements behind it.

    Parameters
    ----------
    n_rows : int
        ``K``, the number of rows of ``B``.
    n_params : int
        ``P``, the number of columns of ``B``.
    weighted : bool, default False
        Whether weights are given.

    Returns
    -------
    str
        ``"numpy"`` or ``"numba"``.

    Examples
    --------
    >>> from refvpng.curvature.outer import outer_auto_method
    >>> outer_auto_method(6000, 200)
    'numpy'
    >>> outer_auto_method(6000, 200, weighted=True)
    'numba'
    >>> outer_auto_method(60000, 50)
    'numpy'
    """
    k = as_int(n_rows, "n_rows", minimum=0)
    p = as_int(n_params, "n_params", minimum=0)
    if k * p * p < _AUTO_MIN_WORK:
        return "numpy"
    if weighted and _AUTO_NUMBA_WEIGHTED:
        return "numba"
    return "numpy"


def outer_sum(B, weights=None, method: str = "auto") -> np.ndarray:
    r"""Weighted sum of outer products of the rows of ``B``: the public entry point.

    .. math::
        F = \sum_{k=1}^{K} w_k\, b_k b_k^\top, \qquad
        \hat F_r = \frac{1}{M} \sum_{k=1}^{n} \sum_{i=1}^{M} b_{ik} b_{ik}^\top
        \quad \text{(Eq. 16)}.

    Parameters
    ----------
    B : array_like, shape (K, P)
        Rows :math:`b_k`; converted to float64.
    weights : array_like, shape (K,), optional
        Non-negative finite weights :math:`w_k`; all ones when omitted.
    method : {"auto", "numpy", "numba"}, default "auto"
        ``"numpy"``: :func:`outer_sum_numpy` (BLAS). ``"numba"``: :func:`outer_sum_numba`.
        ``"auto"``: the one :func:`outer_auto_method` names for the shape, by a fixed rule
        measured with ``validation/bench/bench_outer.py`` (results in
        ``validation/results/bench_outer.json``):

        1. :math:`K P^2 < 2 \cdot 10^6` multiply-adds: NumPy (no thread start-up, no
           compilation);
        2. weighted: numba, whose cost does not change with weights while the NumPy
           specification then pays a ``gemm`` (twice the flops of ``syrk``) and a ``K x P``
           temporary: numba took 0.3-0.8 of its time at every benchmarked size, in every run;
        3. unweighted: BLAS ``syrk``. Over six runs of the benchmark on an otherwise idle
           2-core machine the numba kernel took 0.9-1.3 of BLAS's time at (6000, 200),
           1.1-1.5 at (6000, 2000) and 0.9-1.2 at (60000, 50) (medians; the spread is the
           machine's run-to-run drift), so no shape class showed numba reliably faster.

    Returns
    -------
    F : ndarray, shape (P, P)
        The exactly symmetric positive semi-definite sum; bit-identical for identical inputs on
        one machine.

    Raises
    ------
    TypeError
        If ``B`` or ``weights`` is not a real numeric array.
    ValueError
        If ``B`` is not 2-D or not finite, ``weights`` is not 1-D of length ``K``, not finite or
        negative somewhere, or ``method`` is unknown.

    References
    ----------
    .. [1] Y. Tang and R. Ranganath, "The Variational Predictive Natural Gradient", ICML 2019,
       Eq. (16).

    Examples
    --------
    Eq. (16) with :math:`M = 2` predictive samples for each of :math:`n = 2` data points:

    >>> import numpy as np
    >>> from refvpng.curvature.outer import outer_sum
    >>> b = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [2.0, 0.0]])
    >>> outer_sum(b, weights=np.full(4, 1 / 2))
    array([[3. , 0.5],
           [0.5, 1. ]])
    >>> np.array_equal(outer_sum(b, method="numba"), outer_sum(b, method="numpy"))
    True
    """
    _check_method(method)
    b = _check_b(B, "B")
    w = _check_weights(weights, "weights", b.shape[0])
    if method == "auto":
        method = outer_auto_method(b.shape[0], b.shape[1], w is not None)
    if method == "numpy":
        return _finite_or_raise(_numpy_kernel(b, w), b, "B")
    P = b.shape[1]
    return _finite_or_raise(_numba_accumulate(np.zeros((P, P)), b, w), b, "B")


def outer_init(n_params: int) -> np.ndarray:
    """Start a streamed outer-product sum: the ``(P, P)`` zero matrix.

    Parameters
    ----------
    n_params : int
        ``P``, the length of each row :math:`b_k`.

    Returns
    -------
    F : ndarray, shape (P, P)
        Zeros, to be passed to :func:`outer_update`.

    Examples
    --------
    >>> from refvpng.curvature.outer import outer_init
    >>> outer_init(2)
    array([[0., 0.],
           [0., 0.]])
    """
    P = as_int(n_params, "n_params", minimum=0)
    return np.zeros((P, P))


def outer_update(F, B_chunk, weights_chunk=None, method: str = "numba") -> np.ndarray:
    r"""Add a chunk of rows to a streamed outer-product sum; ``F`` is not modified.

    .. math::
        F' = F + \sum_{k \in \text{chunk}} w_k\, b_k b_k^\top.

    Starting from :func:`outer_init` and feeding the rows of ``B`` in any chunks gives
    :func:`outer_sum` of the whole ``B`` to :data:`~refvpng.testing.tolerances.EXACT`; the
    chunks are never held together. Feeding the sum of Eq. (16) of Tang & Ranganath (2019)
    data point by data point is the intended use.

    Parameters
    ----------
    F : array_like, shape (P, P)
        The running symmetric sum (from :func:`outer_init` or a previous update).
    B_chunk : array_like, shape (K_c, P)
        The next rows :math:`b_k`; ``K_c = 0`` is allowed.
    weights_chunk : array_like, shape (K_c,), optional
        Their non-negative finite weights; all ones when omitted.
    method : {"numba", "numpy", "auto"}, default "numba"
        As in :func:`outer_sum`. With ``"numba"`` the chunk is streamed into a copy of ``F``
        directly (each entry continues its sequential sum over rows); with ``"numpy"`` the
        chunk's sum is formed and added.

    Returns
    -------
    F_new : ndarray, shape (P, P)
        The updated, exactly symmetric sum (a new array).

    Raises
    ------
    TypeError
        If an argument is not a real numeric array.
    ValueError
        If ``F`` is not finite or not ``(P, P)`` for the ``P`` of ``B_chunk``, or the chunk or its
        weights fail the checks of :func:`outer_sum`, or ``method`` is unknown.

    Examples
    --------
    >>> import numpy as np
    >>> from refvpng.curvature.outer import outer_init, outer_sum, outer_update
    >>> rng = np.random.default_rng(1)
    >>> B = rng.standard_normal((100, 5))
    >>> F = outer_init(5)
    >>> for chunk in np.array_split(B, 3):
    ...     F = outer_update(F, chunk)
    >>> bool(np.allclose(F, outer_sum(B), rtol=0, atol=1e-12 * np.abs(F).max()))
    True
    """
    _check_method(method)
    b = _check_b(B_chunk, "B_chunk")
    w = _check_weights(weights_chunk, "weights_chunk", b.shape[0])
    P = b.shape[1]
    f = as_array(F, "F", shape=(P, P))
    if method == "auto":
        method = outer_auto_method(b.shape[0], P, w is not None)
    if method == "numpy":
        return _finite_or_raise(f + _numpy_kernel(b, w), b, "B_chunk")
    f_new = _numba_accumulate(np.array(f, dtype=np.float64, order="C", copy=True), b, w)
    return _finite_or_raise(f_new, b, "B_chunk")
