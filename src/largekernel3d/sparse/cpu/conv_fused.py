"""Sparse convolution products fused per thread on torch's OpenMP team (CPU convolution, forward and
backward).

The tiled dataflow of :mod:`.conv_tiled` runs each pass of a tile (gather, GEMM, scatter-add) on all
threads in turn, with a fork/join between passes. At two threads that left much of the non-GEMM work
unscaled (scatters of ~2 k rows do not split profitably) and every GEMM of a few hundred rows was itself
split over threads. Here the *output rows* are split instead::

    rows [b_p, b_{p+1})  belong to part p          (bounds balance the pairs per part)
    part p:  out[b_p:b_{p+1}] = x[b_p:b_{p+1}] @ W[c]      the identity offset c, if the map has one
             for each other offset k, for its pairs (i, o) with o in part p:
                 out[o, :] += x[i, :] @ W[k]      rows read and added in place, no other part writes them

Each thread of torch's team (:func:`.team.run_on_team`) takes a run of consecutive parts (a few
per thread, so that a part's rows stay in cache while its offsets add into them), in one parallel region,
with no barrier and no atomics. Every output row receives its additions offset by offset, as in the
serial loop. The products are the register panels of :mod:`.simd`: four pairs at a time, their
``x`` rows broadcast from where they lie and the product rows added straight into ``out`` (no gathered
tile, no product buffer, no scatter pass). The pairs of a kernel map, re-bucketed by part
(:func:`layout`, int32, memoised on the map), cost two passes over the map, split over the team.

The backward pass (:func:`backward`) runs the same way over the *adjoint* split (pairs bucketed by input
row): ``d_in[i] += d_out[o] W[k]^T`` into the part's own input rows, and ``d_W[k] += x[i]^T d_out[o]`` as
indexed outer products into the thread's own accumulator (summed over threads at the end; zeroed by its
thread, so its pages are touched in parallel).

The ``CPU_FUSED`` dataflow of :class:`..dispatch.ConvPlan` (ungrouped float32/float64 CPU convolutions where
torch runs on libgomp: the rule is :func:`..dispatch.conv_blocker`).
"""

from __future__ import annotations

from typing import Optional, Tuple

import numba as nb
import numpy as np
import torch
from torch import Tensor

from ..kernel_map import KernelMap
from ..weight_cache import derived_layout
from . import host_memory, simd, team
from .arg_blocks import ConvFused, ConvLayout, open_block, reads
from .array_index import uidx
from .maps import identity_offset
from .tuning import CpuTuning


@nb.njit(cache=True, nogil=True)
def _part_bounds(dst, starts, skip, num_out, parts, stride):
    """``(bounds [parts + 1], owner [num_out])``: contiguous output-row ranges with about equal pairs (of every
    offset but ``skip``; every ``stride``-th pair counted), and the part of every row (int32)."""
    kv = starts.shape[0] - 1
    cum = np.zeros(num_out + 1, np.int64)
    for k in range(kv):
        if k != skip:
            for p in range(starts[k], starts[k + 1], stride):
                cum[uidx(dst[uidx(p)] + 1)] += 1
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
        owner[bounds[t] : bounds[t + 1]] = t
    return bounds, owner


@reads(ConvLayout)
def _layout_body(block):
    """Torch's OpenMP team buckets the pairs of :func:`layout` (argument block: :data:`.arg_blocks.ConvLayout`),
    thread ``t`` of ``T`` the offsets ``t, t + T, ...``: it counts their pairs per part into ``seg``, and after a
    barrier (and the prefix sum) writes them, each into its own ``(part, offset)`` runs."""
    h, ok = open_block(block, ConvLayout.SIZE, ConvLayout.FINGERPRINT)
    if not ok:
        return
    kv, parts, skip, num_pairs = h[ConvLayout.K], h[ConvLayout.PARTS], h[ConvLayout.SKIP], h[ConvLayout.NUM_PAIRS]
    src = nb.carray(team.int64_pointer(h[ConvLayout.SRC]), (num_pairs,))
    dst = nb.carray(team.int64_pointer(h[ConvLayout.DST]), (num_pairs,))
    starts = nb.carray(team.int64_pointer(h[ConvLayout.STARTS]), (kv + 1,))
    owner = nb.carray(team.int32_pointer(h[ConvLayout.OWNER]), (h[ConvLayout.NUM_OUT],))
    seg = nb.carray(team.int64_pointer(h[ConvLayout.SEG]), (parts * kv + 1,))
    src32 = nb.carray(team.int32_pointer(h[ConvLayout.SRC32]), (h[ConvLayout.TOTAL],))
    dst32 = nb.carray(team.int32_pointer(h[ConvLayout.DST32]), (h[ConvLayout.TOTAL],))
    t, nt = team.omp_get_thread_num(), team.omp_get_num_threads()
    for k in range(t, kv, nt):
        if k != skip:
            for p in range(starts[k], starts[k + 1]):
                seg[uidx(owner[uidx(dst[uidx(p)])] * kv + k + 1)] += 1
    team.gomp_barrier()
    if t == 0:
        for c in range(parts * kv):
            seg[c + 1] += seg[c]
    team.gomp_barrier()
    cursor = np.empty(parts, np.int64)
    for k in range(t, kv, nt):
        if k == skip:
            continue
        for c in range(parts):
            cursor[c] = seg[c * kv + k]
        for p in range(starts[k], starts[k + 1]):
            c = uidx(owner[uidx(dst[uidx(p)])])
            pos = cursor[c]
            src32[uidx(pos)] = src[uidx(p)]
            dst32[uidx(pos)] = dst[uidx(p)]
            cursor[c] = pos + 1


@nb.njit(nogil=True)
def _run_parts(h, a, grad_w, src, dst, seg, bounds):
    """This team thread's run of parts (``T`` threads share them in ``T`` consecutive runs), forward or
    backward: each part first writes the identity offset's product into its own rows (if any), then adds
    every other offset's pairs, ``out[dst] += a[src] @ W[k]`` (rows read and written in place), and in the
    backward pass ``dW[k] += x[dst]^T a[src]`` (the identity's over the part's rows) into this thread's
    accumulator ``grad_w[t]``. ``a`` (the gathered operand) also sets the element type of the SIMD kernels."""
    t, nt = team.omp_get_thread_num(), team.omp_get_num_threads()
    kv, c_a, c_out, c_x = h[ConvFused.K], h[ConvFused.C_A], h[ConvFused.C_OUT], h[ConvFused.C_X]
    a_addr, w_addr, w_stride = h[ConvFused.A], h[ConvFused.W], h[ConvFused.W_STRIDE]
    out_addr, x_addr = h[ConvFused.OUT], h[ConvFused.X]
    itemsize = a.itemsize
    w_bytes = c_a * w_stride * itemsize  # one offset's (padded) weight
    need_w = h[ConvFused.GRAD_W] != 0
    parts = (seg.shape[0] - 1) // kv
    if need_w:
        for u in range(t, grad_w.shape[0], nt):  # every accumulator, also if the team has fewer threads
            grad_w[u] = 0
    gw_addr = h[ConvFused.GRAD_W] + t * kv * c_x * c_a * itemsize
    identity = h[ConvFused.IDENTITY]
    for part in range(parts * t // nt, parts * (t + 1) // nt):
        lo, hi = bounds[part], bounds[part + 1]
        if identity >= 0 and out_addr != 0:  # out[lo:hi] (+)= a[lo:hi] @ W_identity
            simd.dense_products(
                a,
                a_addr + lo * c_a * itemsize,
                hi - lo,
                c_a,
                w_addr + identity * w_bytes,
                w_stride,
                out_addr + lo * c_out * itemsize,
                c_out,
                h[ConvFused.ADD_IDENTITY] != 0,
            )
        if identity >= 0 and need_w and hi > lo:  # dW_identity += x[lo:hi]^T a[lo:hi] (rows in order)
            simd.outer_products(
                a,
                x_addr,
                c_x,
                0,
                lo,
                hi - lo,
                a_addr + lo * c_a * itemsize,
                c_a,
                gw_addr + identity * c_x * c_a * itemsize,
            )
        for k in range(kv):
            s0, s1 = seg[part * kv + k], seg[part * kv + k + 1]
            if s1 == s0:
                continue
            if out_addr != 0:
                simd.pair_products(
                    a, a_addr, src, dst, s0, s1 - s0, c_a, w_addr + k * w_bytes, w_stride, out_addr, c_out, True
                )
            if need_w:
                simd.outer_products(
                    a,
                    x_addr,
                    c_x,
                    h[ConvFused.DST] + 4 * s0,
                    0,
                    s1 - s0,
                    a_addr,
                    c_a,
                    gw_addr + k * c_x * c_a * itemsize,
                    h[ConvFused.SRC] + 4 * s0,
                )


@reads(ConvFused)
def _fused_body(block):
    """The ``GOMP_parallel`` body of :func:`accumulate` and :func:`backward`. Argument block:
    :data:`.arg_blocks.ConvFused`. ``a`` ``[N_a, C_a]`` is the read operand (``x`` forward, ``grad_out``
    backward), ``W`` ``[K, C_a, W_stride]`` (``W^T`` backward; padded by :func:`.simd.padded_weight`),
    ``out`` ``[*, C_out]`` the target (``out`` / ``grad_x``, or 0), ``x`` ``[*, C_x]`` and ``grad_w``
    ``[threads, K, C_x, C_a]`` backward only (``grad_w`` 0: no weight gradient); ``src``/``dst`` int32,
    ``seg`` int64 ``[parts K + 1]``, ``bounds`` ``[parts + 1]`` the parts' rows; ``identity`` the offset
    (left out of ``src``/``dst``) whose pairs are ``(r, r)``, whose product each part writes into its own
    rows first (``add_identity`` 1: added to them), or -1."""
    h, ok = open_block(block, ConvFused.SIZE, ConvFused.FINGERPRINT)
    if not ok:
        return
    kv, total, parts, threads = h[ConvFused.K], h[ConvFused.TOTAL], h[ConvFused.PARTS], h[ConvFused.THREADS]
    src = nb.carray(team.int32_pointer(h[ConvFused.SRC]), (total,))
    dst = nb.carray(team.int32_pointer(h[ConvFused.DST]), (total,))
    seg = nb.carray(team.int64_pointer(h[ConvFused.SEG]), (parts * kv + 1,))
    bounds = nb.carray(team.int64_pointer(h[ConvFused.BOUNDS]), (parts + 1,))
    gw_shape = (threads if h[ConvFused.GRAD_W] != 0 else 0, kv, h[ConvFused.C_X], h[ConvFused.C_A])
    a_shape = (h[ConvFused.N_A], h[ConvFused.C_A])
    if h[ConvFused.DOUBLE]:
        p = team.float64_pointer
        _run_parts(
            h, nb.carray(p(h[ConvFused.A]), a_shape), nb.carray(p(h[ConvFused.GRAD_W]), gw_shape), src, dst, seg, bounds
        )
    else:
        p = team.float32_pointer
        _run_parts(
            h, nb.carray(p(h[ConvFused.A]), a_shape), nb.carray(p(h[ConvFused.GRAD_W]), gw_shape), src, dst, seg, bounds
        )


Layout = Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def layout(
    src: Tensor, dst: Tensor, starts, skip: int, num_out: int, parts: int, threads: int, bound_sample: int
) -> Layout:
    """The pairs ``(src, dst)`` (int64, offset-major with ``starts``) of every offset but ``skip``, bucketed by
    which of ``parts`` contiguous output-row ranges their destination falls in, on ``threads`` threads of
    torch's team (:func:`_layout_body`). Returns ``(bounds [parts + 1], seg [parts * K + 1], src32, dst32)``:
    part ``t`` owns rows ``[bounds[t], bounds[t + 1])`` and its offset-``k`` pairs are ``src32/dst32[seg[t K
    + k] : seg[t K + k + 1]]``, in their original order. Bounds give each part about the same number of
    pairs (counted on about ``bound_sample`` of them, ``CpuTuning.conv_bound_sample``). Only where torch runs
    on libgomp (:func:`.team.team_available`)."""
    starts = np.asarray(starts, np.int64)
    src_np, dst_np = (np.ascontiguousarray(t.numpy(), np.int64) for t in (src, dst))
    kv = starts.shape[0] - 1
    total = int(starts[-1]) - (int(starts[skip + 1] - starts[skip]) if 0 <= skip < kv else 0)
    stride = max(1, int(starts[-1]) // bound_sample)
    bounds, owner = _part_bounds(dst_np, starts, skip, num_out, parts, stride)
    seg = np.zeros(parts * kv + 1, np.int64)
    src32, dst32 = np.empty(total, np.int32), np.empty(total, np.int32)
    block = ConvLayout.pack(
        num_pairs=src_np.shape[0],
        k=kv,
        skip=skip,
        num_out=num_out,
        parts=parts,
        total=total,
        src=src_np,
        dst=dst_np,
        starts=starts,
        owner=owner,
        seg=seg,
        src32=src32,
        dst32=dst32,
    )
    team.run_on_team(_layout_body, block, threads)
    return bounds, seg, src32, dst32


def _uninitialised(shape: Tuple[int, ...], dtype) -> np.ndarray:
    """``np.empty``: the per-thread ``d_W`` accumulators, zeroed on torch's team by the threads that use them."""
    return np.empty(shape, dtype)


def _padded(weight: Tensor) -> np.ndarray:
    """The kernels' weight array: ``weight`` ``[..., C_in, C_out]`` C-contiguous, last axis padded
    (:func:`.simd.padded_weight`); memoised per parameter version by :func:`.weight_cache.derived_layout`."""
    return simd.padded_weight(weight.detach().contiguous().numpy())


def _launch(
    split: Layout,
    a: Tensor,
    w: Tensor,
    out: Optional[Tensor],
    x: Optional[Tensor],
    grad_w: Optional[np.ndarray],
    threads: int,
    identity: int = -1,
    add_identity: bool = False,
) -> None:
    bounds, seg, src32, dst32 = split
    kv = w.shape[0]
    padded = derived_layout(w, "padded", _padded)
    block = ConvFused.pack(
        double=a.dtype == torch.float64,
        k=kv,
        total=src32.shape[0],
        parts=(seg.shape[0] - 1) // kv,
        threads=threads,
        n_a=a.shape[0],
        c_a=w.shape[1],
        w_stride=padded.shape[2],
        c_out=w.shape[2],
        c_x=0 if x is None else x.shape[1],
        identity=identity,
        add_identity=add_identity,
        src=src32,
        dst=dst32,
        seg=seg,
        bounds=bounds,
        a=a,
        w=padded,
        out=out,
        x=x,
        grad_w=grad_w,
    )
    team.run_on_team(_fused_body, block, threads)


def accumulate(
    x: Tensor, w: Tensor, split: Layout, out: Tensor, threads: int, identity: int = -1, add_identity: bool = False
) -> None:
    """``out[o] += x[i] @ W[k]`` for every pair ``(i, o)`` of offset ``k`` in ``split`` (a :func:`layout`
    with any number of parts) on ``threads`` threads of torch's team. ``x [N_in, C_in]``, ``w [K, C_in,
    C_out]`` and ``out [N_out, C_out]`` are contiguous CPU tensors of one dtype; only when
    torch on libgomp. With ``identity >= 0`` (an offset left out of ``split`` whose pairs are ``(r, r)``),
    each part first sets its rows ``out[r] = x[r] @ W[identity]`` (``out`` may be uninitialised), or adds
    that with ``add_identity``."""
    _launch(split, x, w, out, None, None, threads, identity, add_identity)


def backward(
    grad_out: Tensor,
    w: Tensor,
    x: Tensor,
    split: Layout,
    grad_x: Optional[Tensor],
    need_w: bool,
    threads: int,
    identity: int = -1,
) -> Optional[Tensor]:
    """Both gradients of :func:`accumulate` over the *adjoint* ``split`` (pairs ``(o, i)`` bucketed by input
    row ``i``): ``grad_x[i] += grad_out[o] @ W[k]^T`` (when ``grad_x`` is given) and, when ``need_w``,
    returns ``d_W[k] = sum x[i]^T grad_out[o]`` ``[K, C_in, C_out]`` (summed over the threads' accumulators).
    ``w`` is ``[K, C_in, C_out]``; tensors as in :func:`accumulate`. With ``identity >= 0`` each part first
    sets its rows ``grad_x[r] = grad_out[r] @ W[identity]^T`` (``grad_x`` may be uninitialised) and adds
    ``x[r]^T grad_out[r]`` over its rows to the identity offset's ``d_W`` (outer products of rows in order, in
    the thread's cache, instead of one ``torch.mm`` of the whole ``x^T grad_out`` afterwards)."""
    kv, c_in, c_out = w.shape
    grad_w = (
        _uninitialised((threads, kv, c_in, c_out), np.float64 if x.dtype == torch.float64 else np.float32)
        if need_w
        else None
    )
    _launch(split, grad_out.contiguous(), w.transpose(1, 2), grad_x, x, grad_w, threads, identity)
    return torch.from_numpy(grad_w).sum(dim=0) if need_w else None


def build_row_split(kmap: KernelMap, adjoint: bool, threads: int, tuning: CpuTuning) -> Layout:
    """The pairs of ``kmap`` (or of its adjoint) bucketed by ``threads * tuning.conv_parts_per_thread``
    output-row ranges, without the identity offset, built afresh (:func:`row_split` memoises it on the map)."""
    src, dst = (kmap.pair_out, kmap.pair_in) if adjoint else (kmap.pair_in, kmap.pair_out)
    num_out = kmap.num_in if adjoint else kmap.num_out
    return layout(
        src,
        dst,
        kmap.offset_starts,
        identity_offset(kmap),
        num_out,
        threads * tuning.conv_parts_per_thread,
        threads,
        tuning.conv_bound_sample,
    )


def row_split(kmap: KernelMap, adjoint: bool, threads: int, tuning: CpuTuning) -> Layout:
    """:func:`build_row_split`, memoised on the map (keyed by the tuning values it depends on)."""
    key = ("row_split", adjoint, threads, tuning.conv_parts_per_thread, tuning.conv_bound_sample)
    return kmap.derived(key, lambda: build_row_split(kmap, adjoint, threads, tuning))


def conv_forward(
    x: Tensor, w: Tensor, kmap: KernelMap, adjoint: bool, num_out: int, bias: Optional[Tensor], tuning: CpuTuning
) -> Tensor:
    """The forward fused per thread (``w`` is ``[K, C_in, C_out]``) on torch's team: each part of the
    output rows is set by the identity offset's GEMM (added to the bias, if any; else the accumulator
    starts as the bias or zeros), then every other offset is added."""
    x = x.contiguous()
    c_out = w.shape[2]
    identity = identity_offset(kmap)
    if identity >= 0 and bias is None:  # every part sets its own rows with the identity product
        out = host_memory.empty((num_out, c_out), x.dtype)
    else:
        out = host_memory.accumulator(num_out, c_out, x.dtype, bias)
    threads = torch.get_num_threads()
    split = row_split(kmap, adjoint, threads, tuning)
    accumulate(x, w, split, out, threads, identity, add_identity=bias is not None)
    return out


def conv_backward(
    x: Tensor, grad_out: Tensor, weight: Tensor, kmap: KernelMap, need_x: bool, need_w: bool, tuning: CpuTuning
):
    """Both gradients fused per thread over the adjoint row split (ungrouped ``weight`` ``[K, 1, A,
    B]``): each part of ``d_in`` is set by the identity offset's product first, and adds its rows to that
    offset's ``d_W``."""
    w = weight[:, 0]
    x = x.contiguous()
    identity = identity_offset(kmap)
    if not need_x:
        grad_x = None
    elif identity >= 0:  # every part sets its own rows with the identity product
        grad_x = host_memory.empty((kmap.num_in, w.shape[1]), x.dtype)
    else:
        grad_x = host_memory.zeros((kmap.num_in, w.shape[1]), x.dtype)
    threads = torch.get_num_threads()
    split = row_split(kmap, True, threads, tuning)
    grad_w = backward(grad_out, w, x, split, grad_x, need_w, threads, identity)
    if need_w:
        grad_w = grad_w.reshape(weight.shape)
    return grad_x, grad_w
