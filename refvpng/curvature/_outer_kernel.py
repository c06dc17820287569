r"""The numba kernel behind :func:`refvpng.curvature.outer.outer_sum_numba` (private).

:func:`numba_accumulate` adds :math:`B^\top \operatorname{diag}(w) B` into a ``(P, P)`` array.
It streams over the rows of ``B`` in blocks of ``_KC`` rows, packs each block into cache-sized
panels (the weights applied on packing) and accumulates rank-``_KC`` updates into the upper
triangle with a register-blocked ``_MR x _NR`` micro-kernel written in LLVM IR, then mirrors the
upper triangle. The work runs on a small thread pool: the rows are cut into at most ``_SLABS``
slabs with their own accumulators while those fit in ``_SLAB_BYTES`` (see :func:`_row_slabs`),
otherwise the column panels of :math:`F` are shared out. The summation order of every entry
depends on the shape only, never on the number of threads; FMA contraction and fastmath are off.

References
----------
.. [1] K. Goto and R. van de Geijn, "Anatomy of high-performance matrix multiplication",
   ACM TOMS 34(3), 2008 (the packing and blocking).
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

__all__ = ["numba_accumulate", "PARALLEL_MIN_WORK"]

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
PARALLEL_MIN_WORK = _PARALLEL_MIN_WORK  # the public name, read by outer's "auto" rule


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
            isinstance(x, types.Array) and x.dtype == types.float64 and x.layout == "C" for x in (src, dst)
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
    return max(1, min(cpus, numba.config.NUMBA_NUM_THREADS))  # type: ignore[attr-defined]


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


def numba_accumulate(F: np.ndarray, B: np.ndarray, w: np.ndarray | None) -> np.ndarray:
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
