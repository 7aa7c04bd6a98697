"""Gather – GEMM – scatter fused per thread on torch's OpenMP team (CPU convolution, forward and backward).

The tiled dataflow of :mod:`.functional` runs each pass of a tile (gather, GEMM, scatter-add) on all
threads in turn, with a fork/join between passes. At two threads that left much of the non-GEMM work
unscaled (scatters of ~2 k rows do not split profitably) and every GEMM of a few hundred rows was itself
split over threads. Here the *output rows* are split instead::

    rows [b_p, b_{p+1})  belong to part p          (bounds balance the pairs per part)
    part p:  out[b_p:b_{p+1}] = x[b_p:b_{p+1}] @ W[c]      the identity offset c, if the map has one
             for each other offset k, for each tile of its pairs (i, o) with o in part p:
                 A    = x[i, :]          gather (numba)
                 Y    = A @ W[k]         one single-threaded BLAS GEMM (MKL ``sgemm_``/``dgemm_``)
                 out[o, :] += Y          scatter-add into rows no other part touches

Each thread of torch's team (:func:`.openmp_team.run_on_team`) takes a run of consecutive parts (a few
per thread, so that a part's rows stay in cache while its offsets add into them) and runs whole tiles
from gather to scatter with its data in its own cache, in one parallel region, with no barrier and no
atomics. Every output row receives its additions offset by offset, as in the serial loop. The pairs of a
kernel map, re-bucketed by part (:func:`row_split_layout`, int32, memoised on the map), cost one pass
over the map.

The backward pass (:func:`backward`) runs the same way over the *adjoint* split (pairs bucketed by
input row): per tile ``d_out`` rows are gathered once, ``d_in[i] += d_out[o] W[k]^T`` is scattered into
the part's own input rows, and ``d_W[k] += x[i]^T d_out[o]`` goes into the thread's own accumulator
(summed over threads at the end; zeroed by its thread, so its pages are touched in parallel).

The BLAS is the MKL that torch itself links (``libtorch_cpu.so`` exports ``sgemm_``/``dgemm_``): MKL
called inside an OpenMP parallel region runs on the calling thread. Its entry points are registered with
LLVM by name before the team body is compiled, so the machine code stays in numba's disk cache.
Measured on a ScanNet scene (3^3 submanifold maps, against the tiled passes of :mod:`.functional` in one
process, alternating; first version: one part per thread, the identity offset by a separate
``torch.mm``): forward at 2 threads 64 ch at 4 cm 22.2 -> 17.1 ms, 96 ch at 4 cm 43.4 -> 33.7,
128 ch at 8 cm 69.9 -> 57.4, 256 ch at 16 cm 106 -> 73 (at 1 thread 41.3 -> 36.6 and 121 -> 116);
backward (both gradients) at 2 threads 54.8 -> 40.2, 164 -> 138 and 205 -> 181 ms (64 / 128 / 256 ch),
at 1 thread 96 ch 191 -> 154 ms. Four parts per thread with the identity product inside: the
segmentation network's convolutions at 1 thread 1,698 -> 1,514 ms against that first version; a cached
KITTI 7^3 64 -> 64 conv at 2 threads 88 ms against 134 ms for the three tiled passes (BENCHMARKS.md).

Used by :mod:`.functional` for ungrouped float32/float64 CPU convolutions when :func:`available`;
otherwise the tiled passes run.
"""

from __future__ import annotations

import ctypes
import functools
import os
from typing import Optional, Tuple

import numba as nb
import numpy as np
import torch
from numba import types
from torch import Tensor

from . import openmp_team

_HEADER = 28  # int64 words of the argument block of _fused_body
_INTS_BYTES = 64  # int32 BLAS arguments per team thread (a cache line of its own)
_N, _T = 78, 84  # ord("N"), ord("T"): BLAS "no transpose" / "transpose"
_gemm_signature = types.void(*([types.int64] * 13))  # Fortran BLAS: every argument by address
sgemm = types.ExternalFunction("sgemm_", _gemm_signature)
dgemm = types.ExternalFunction("dgemm_", _gemm_signature)


@functools.lru_cache(maxsize=None)
def _torch_blas() -> bool:
    """Register the ``sgemm_``/``dgemm_`` of torch's MKL with LLVM; False where torch has no MKL (then a
    call inside the team might start threads of its own, or not exist)."""
    import llvmlite.binding as llvm

    if not torch.backends.mkl.is_available():
        return False
    try:
        lib = ctypes.CDLL(os.path.join(os.path.dirname(os.path.realpath(torch.__file__)), "lib", "libtorch_cpu.so"))
        addresses = {name: ctypes.cast(getattr(lib, name), ctypes.c_void_p).value for name in ("sgemm_", "dgemm_")}
    except (OSError, AttributeError):
        return False
    for name, address in addresses.items():
        llvm.add_symbol(name, address)
    return True


def available(x: Tensor, weight: Tensor, num_rows: int = 0) -> bool:
    """True when the fused team path can run ``x @ W`` products over maps of ``num_rows`` input/output rows
    at most: CPU float32/float64 of one dtype, one group, torch on GNU libgomp with MKL, rows (int32 pair
    lists) below 2^31."""
    if x.device.type != "cpu" or x.dtype not in (torch.float32, torch.float64) or weight.dtype != x.dtype:
        return False
    if num_rows >= 2 ** 31:
        return False
    if weight.shape[1] != 1:
        return False
    return openmp_team.team_available() and _torch_blas()


@nb.njit(cache=True, nogil=True)
def row_split_layout(src, dst, starts, skip, num_out, parts):
    """The pairs of every offset but ``skip``, bucketed by which of ``parts`` contiguous output-row ranges
    their destination falls in. Returns ``(bounds [parts + 1], seg [parts * K + 1], src32, dst32)``:
    part ``t`` owns rows ``[bounds[t], bounds[t + 1])`` and its offset-``k`` pairs are
    ``src32/dst32[seg[t K + k] : seg[t K + k + 1]]``, in their original order. Bounds are chosen so that
    each part has about the same number of pairs."""
    kv = starts.shape[0] - 1
    cum = np.zeros(num_out + 1, np.int64)
    for k in range(kv):
        if k != skip:
            for p in range(starts[k], starts[k + 1]):
                cum[dst[p] + 1] += 1
    for r in range(num_out):
        cum[r + 1] += cum[r]
    total = cum[num_out]
    bounds = np.empty(parts + 1, np.int64)
    bounds[0], bounds[parts] = 0, num_out
    r = 0
    for t in range(1, parts):
        while r < num_out and cum[r] < total * t // parts:
            r += 1
        bounds[t] = r
    owner = np.empty(num_out, np.int32)
    for t in range(parts):
        owner[bounds[t]:bounds[t + 1]] = t
    seg = np.zeros(parts * kv + 1, np.int64)
    for k in range(kv):
        if k != skip:
            for p in range(starts[k], starts[k + 1]):
                seg[owner[dst[p]] * kv + k + 1] += 1
    for c in range(parts * kv):
        seg[c + 1] += seg[c]
    cursor = seg[:-1].copy()
    src32, dst32 = np.empty(total, np.int32), np.empty(total, np.int32)
    for k in range(kv):
        if k != skip:
            for p in range(starts[k], starts[k + 1]):
                c = owner[dst[p]] * kv + k
                src32[cursor[c]], dst32[cursor[c]] = src[p], dst[p]
                cursor[c] += 1
    return bounds, seg, src32, dst32


@nb.njit(nogil=True, inline="always")
def _gather(rows, src, a, count, buf):
    """``buf[q] = rows[src[a + q]]`` for ``q < count``."""
    for q in range(count):
        i = src[a + q]
        for j in range(rows.shape[1]):
            buf[q, j] = rows[i, j]


@nb.njit(nogil=True, inline="always")
def _scatter_add(buf, dst, a, count, out):
    """``out[dst[a + q]] += buf[q]`` for ``q < count``."""
    for q in range(count):
        o = dst[a + q]
        for j in range(out.shape[1]):
            out[o, j] += buf[q, j]


@nb.njit(nogil=True, inline="always")
def _gemm(double, transb, m, n, k, a, lda, b, ldb, beta, c, ldc, ints_addr, coef_addr, itemsize):
    """Column-major ``C[m, n] = A[m, k] op(B) + beta C`` by the BLAS (``op(B)`` is ``B[k, n]``, or
    ``B[n, k]^T`` with ``transb``), ``beta`` 0 or 1; ``a``/``b``/``c`` are addresses. The int32 arguments
    go through this thread's 8 words at ``ints_addr``; ``coef_addr`` holds ``(1, 0)`` in the value dtype."""
    ints = nb.carray(openmp_team.int32_pointer(ints_addr), (8,))
    ints[0], ints[1], ints[2], ints[3], ints[4], ints[5] = m, n, k, lda, ldb, ldc
    ints[6] = _N
    ints[7] = _T if transb else _N
    beta_addr = coef_addr if beta else coef_addr + itemsize
    if double:
        dgemm(ints_addr + 24, ints_addr + 28, ints_addr, ints_addr + 4, ints_addr + 8, coef_addr, a, ints_addr + 12,
              b, ints_addr + 16, beta_addr, c, ints_addr + 20)
    else:
        sgemm(ints_addr + 24, ints_addr + 28, ints_addr, ints_addr + 4, ints_addr + 8, coef_addr, a, ints_addr + 12,
              b, ints_addr + 16, beta_addr, c, ints_addr + 20)


@nb.njit(nogil=True)
def _forward_part(part, x, w_addr, out, src, dst, seg, kv, tile, a_buf, a_addr, y_buf, y_addr, ints_addr, coef_addr,
                  itemsize, double):
    """One part of :func:`accumulate`: each offset by tiles of ``tile`` pairs: gather ``x`` rows into
    ``a_buf``, ``y_buf = a_buf @ W[k]``, scatter-add into ``out``."""
    c_in, c_out = x.shape[1], out.shape[1]
    for k in range(kv):
        w_k = w_addr + k * c_in * c_out * itemsize
        s1 = seg[part * kv + k + 1]
        for a in range(seg[part * kv + k], s1, tile):
            rows = min(s1 - a, tile)
            _gather(x, src, a, rows, a_buf)
            # row-major Y = A W is column-major Y^T = W^T A^T
            _gemm(double, False, c_out, rows, c_in, w_k, c_out, a_addr, c_in, 0, y_addr, c_out, ints_addr, coef_addr,
                  itemsize)
            _scatter_add(y_buf, dst, a, rows, out)


@nb.njit(nogil=True)
def _backward_part(part, g, wt_addr, grad_x, src, dst, seg, kv, tile, g_buf, g_addr, y_buf, y_addr, x, x_buf, x_addr,
                   gw_addr, ints_addr, coef_addr, itemsize, double, need_x, need_w):
    """One part of :func:`backward`: per tile of an offset's adjoint pairs ``(o, i)``, gather ``g`` rows
    once; ``grad_x[i] += g[o] W[k]^T`` (``wt_addr``: ``W^T`` as ``[K, C_out, C_in]``) and
    ``dW[k] += x[i]^T g[o]`` (``gw_addr``: this thread's ``[K, C_in, C_out]`` accumulator)."""
    c_out, c_in = g.shape[1], x.shape[1]
    for k in range(kv):
        s1 = seg[part * kv + k + 1]
        for a in range(seg[part * kv + k], s1, tile):
            rows = min(s1 - a, tile)
            _gather(g, src, a, rows, g_buf)
            if need_x:  # row-major Y = G W[k]^T is column-major Y^T = (W[k]^T)^T G^T
                _gemm(double, False, c_in, rows, c_out, wt_addr + k * c_in * c_out * itemsize, c_in, g_addr, c_out, 0,
                      y_addr, c_in, ints_addr, coef_addr, itemsize)
                _scatter_add(y_buf, dst, a, rows, grad_x)
            if need_w:  # row-major dW += X^T G is column-major dW^T += G^T X
                _gather(x, dst, a, rows, x_buf)
                _gemm(double, True, c_out, c_in, rows, g_addr, c_out, x_addr, c_in, 1,
                      gw_addr + k * c_in * c_out * itemsize, c_out, ints_addr, coef_addr, itemsize)


@nb.njit(nogil=True)
def _run_parts(h, a, out, x, grad_w, a_buf, y_buf, x_buf, src, dst, seg, bounds):
    """This team thread's run of parts (``T`` threads share them in ``T`` consecutive runs), forward or
    backward; each part first writes the identity offset's product into its own rows (if given)."""
    t, nt = openmp_team.omp_get_thread_num(), openmp_team.omp_get_num_threads()
    backward, double, kv, tile = h[0] != 0, h[1] != 0, h[2], h[3]
    itemsize = 8 if double else 4
    parts = (seg.shape[0] - 1) // kv
    ints_addr, coef_addr = h[9] + 16 + _INTS_BYTES * t, h[9]
    if backward and h[23]:
        for u in range(t, grad_w.shape[0], nt):  # every accumulator, also if the team has fewer threads
            grad_w[u] = 0
    gw_addr = h[21] + t * kv * x.shape[1] * a.shape[1] * itemsize
    a_addr, y_addr, x_addr = _thread_buffers(h, t, itemsize)
    for part in range(parts * t // nt, parts * (t + 1) // nt):
        if h[26] != 0:  # the identity offset of this part's rows: out[lo:hi] (+)= a[lo:hi] @ W_identity
            lo, hi = bounds[part], bounds[part + 1]
            if hi > lo:
                c_a, c_o = a.shape[1], out.shape[1]
                _gemm(double, False, c_o, hi - lo, c_a, h[26], c_o, h[11] + lo * c_a * itemsize, c_a, h[27],
                      h[15] + lo * c_o * itemsize, c_o, ints_addr, coef_addr, itemsize)
        if backward:
            _backward_part(part, a, h[14], out, src, dst, seg, kv, tile, a_buf[t], a_addr, y_buf[t], y_addr, x,
                           x_buf[t], x_addr, gw_addr, ints_addr, coef_addr, itemsize, double, h[22] != 0, h[23] != 0)
        else:
            _forward_part(part, a, h[14], out, src, dst, seg, kv, tile, a_buf[t], a_addr, y_buf[t], y_addr,
                          ints_addr, coef_addr, itemsize, double)


@nb.njit(nogil=True, inline="always")
def _thread_buffers(h, t, itemsize):
    """Addresses of team thread ``t``'s ``[tile, C_a]``, ``[tile, C_out]`` and ``[tile, C_x]`` buffers."""
    tile, threads = h[3], h[10]
    a_addr = h[24] + t * tile * h[13] * itemsize
    y_addr = h[24] + (threads * tile * h[13] + t * tile * h[17]) * itemsize
    x_addr = h[24] + (threads * tile * (h[13] + h[17]) + t * tile * h[20]) * itemsize
    return a_addr, y_addr, x_addr


def _fused_body(block):
    """The ``GOMP_parallel`` body of :func:`accumulate` and :func:`backward`. Argument block (int64):
    ``[backward, double, K, tile, src, dst, seg, total, parts, scalars, threads, a, N_a, C_a, W, out,
    N_out, C_out, x, N_x, C_x, grad_w, need_x, need_w, buffers, bounds, W_identity, beta_identity]``:
    flags, addresses and sizes. ``a`` is the gathered operand (``x`` forward, ``grad_out`` backward),
    ``W`` ``[K, C_a, C_out]`` (``W^T`` backward), ``out`` the scatter target (``out`` / ``grad_x``),
    ``x``/``grad_w`` backward only
    (``grad_w``: ``[threads, K, C_x, C_a]``); ``src``/``dst`` int32, ``seg`` int64 ``[parts K + 1]``;
    ``scalars``: 16 bytes of ``(1, 0)`` in the value dtype, then ``_INTS_BYTES`` per thread; ``buffers``:
    ``threads`` ``[tile, C_a]`` tiles, then as many ``[tile, C_out]``, then ``[tile, C_x]``; ``bounds``
    ``[parts + 1]`` the parts' rows; ``W_identity`` (``[C_a, C_out]``, or 0) the weight of an identity
    offset, whose product each part writes into its own rows first (``beta_identity`` 1: added to them).
    """
    h = nb.carray(block, (_HEADER,))
    kv, tile, total, parts, threads = h[2], h[3], h[7], h[8], h[10]
    src = nb.carray(openmp_team.int32_pointer(h[4]), (total,))
    dst = nb.carray(openmp_team.int32_pointer(h[5]), (total,))
    seg = nb.carray(openmp_team.int64_pointer(h[6]), (parts * kv + 1,))
    bounds = nb.carray(openmp_team.int64_pointer(h[25]), (parts + 1,))
    y_at = threads * tile * h[13]
    x_at = threads * tile * (h[13] + h[17])
    if h[1]:
        p = openmp_team.float64_pointer
        _run_parts(h, nb.carray(p(h[11]), (h[12], h[13])), nb.carray(p(h[15]), (h[16], h[17])),
                   nb.carray(p(h[18]), (h[19], h[20])), nb.carray(p(h[21]), (threads if h[23] else 0, kv, h[20], h[13])),
                   nb.carray(p(h[24]), (threads, tile, h[13])), nb.carray(p(h[24] + 8 * y_at), (threads, tile, h[17])),
                   nb.carray(p(h[24] + 8 * x_at), (threads, tile, h[20])), src, dst, seg, bounds)
    else:
        p = openmp_team.float32_pointer
        _run_parts(h, nb.carray(p(h[11]), (h[12], h[13])), nb.carray(p(h[15]), (h[16], h[17])),
                   nb.carray(p(h[18]), (h[19], h[20])), nb.carray(p(h[21]), (threads if h[23] else 0, kv, h[20], h[13])),
                   nb.carray(p(h[24]), (threads, tile, h[13])), nb.carray(p(h[24] + 4 * y_at), (threads, tile, h[17])),
                   nb.carray(p(h[24] + 4 * x_at), (threads, tile, h[20])), src, dst, seg, bounds)


Layout = Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def layout(src: Tensor, dst: Tensor, starts, skip: int, num_out: int, parts: int) -> Layout:
    """:func:`row_split_layout` of torch pair lists."""
    return row_split_layout(src.numpy(), dst.numpy(), np.asarray(starts, np.int64), skip, num_out, parts)


def blas_scalars(threads: int, dtype) -> np.ndarray:
    """The ``scalars`` block of a team body calling :func:`_gemm`: 16 bytes of coefficients ``(1, 0)`` in
    ``dtype``, then ``_INTS_BYTES`` of int32 BLAS arguments per thread."""
    scalars = np.zeros((16 + _INTS_BYTES * threads) // 8, np.int64)
    scalars[:2].view(dtype)[:2] = (1.0, 0.0)
    return scalars


def _uninitialised(shape: Tuple[int, ...], dtype) -> np.ndarray:
    """``np.empty``: the per-thread ``d_W`` accumulators, zeroed on torch's team by the threads that use them."""
    return np.empty(shape, dtype)


def _launch(backward: bool, split: Layout, a: Tensor, w: Tensor, out: Optional[Tensor], x: Optional[Tensor],
            grad_w: Optional[np.ndarray], tile: int, threads: int, identity: Optional[Tensor] = None,
            add_identity: bool = False) -> None:
    bounds, seg, src32, dst32 = split
    kv = w.shape[0]
    double = a.dtype == torch.float64
    dtype = np.float64 if double else np.float32
    c_a, c_out = w.shape[1], w.shape[2]
    c_x = x.shape[1] if x is not None else 0
    buffers = np.empty(threads * tile * (c_a + c_out + (c_x if backward else 0)), dtype)
    scalars = blas_scalars(threads, dtype)

    def address(t):
        return 0 if t is None else (t.ctypes.data if isinstance(t, np.ndarray) else t.data_ptr())

    def rows(t):
        return 0 if t is None else t.shape[0]

    block = np.array([int(backward), int(double), kv, tile, src32.ctypes.data, dst32.ctypes.data, seg.ctypes.data,
                      src32.shape[0], (seg.shape[0] - 1) // kv, scalars.ctypes.data, threads,
                      address(a), rows(a), c_a, w.data_ptr(), address(out), rows(out), c_out,
                      address(x), rows(x), c_x, address(grad_w), int(out is not None), int(grad_w is not None),
                      buffers.ctypes.data, bounds.ctypes.data, 0 if identity is None else identity.data_ptr(),
                      int(add_identity)], np.int64)
    _torch_blas()
    openmp_team.run_on_team(_fused_body, block, threads)


def accumulate(x: Tensor, w: Tensor, split: Layout, out: Tensor, tile: int, threads: int, identity: int = -1,
               add_identity: bool = False) -> None:
    """``out[o] += x[i] @ W[k]`` for every pair ``(i, o)`` of offset ``k`` in ``split`` (a :func:`layout`
    with any number of parts) on ``threads`` threads of torch's team, tiles of ``tile`` pairs. ``x [N_in,
    C_in]``, ``w [K, C_in, C_out]`` and ``out [N_out, C_out]`` are contiguous CPU tensors of one dtype;
    only when :func:`available`. With ``identity >= 0`` (an offset left out of ``split`` whose pairs are
    ``(r, r)``), each part first sets its rows ``out[r] = x[r] @ W[identity]`` (``out`` may be
    uninitialised), or adds that with ``add_identity``."""
    w = w.contiguous()
    _launch(False, split, x, w, out, None, None, tile, threads, w[identity] if identity >= 0 else None,
            add_identity)


def backward(grad_out: Tensor, w: Tensor, x: Tensor, split: Layout, grad_x: Optional[Tensor], need_w: bool,
             tile: int, threads: int, identity: int = -1) -> Optional[Tensor]:
    """Both gradients of :func:`accumulate` over the *adjoint* ``split`` (pairs ``(o, i)`` bucketed by input
    row ``i``): ``grad_x[i] += grad_out[o] @ W[k]^T`` (when ``grad_x`` is given) and, when ``need_w``,
    returns ``d_W[k] = sum x[i]^T grad_out[o]`` ``[K, C_in, C_out]`` (summed over the threads' accumulators).
    ``w`` is ``[K, C_in, C_out]``; tensors as in :func:`accumulate`. With ``identity >= 0`` each part first
    sets its rows ``grad_x[r] = grad_out[r] @ W[identity]^T`` (``grad_x`` may be uninitialised); the
    identity offset's ``d_W`` is left to the caller."""
    kv, c_in, c_out = w.shape
    grad_w = _uninitialised((threads, kv, c_in, c_out), np.float64 if x.dtype == torch.float64 else np.float32) \
        if need_w else None
    wt = w.transpose(1, 2).contiguous()
    _launch(True, split, grad_out, wt, grad_x, x, grad_w, tile, threads,
            wt[identity] if identity >= 0 and grad_x is not None else None)
    return torch.from_numpy(grad_w).sum(dim=0) if need_w else None
