"""SW-LK group products fused per thread on torch's OpenMP team (the CPU forward and backward of
``group_conv``).

With compact slots (:class:`.group_layout.GroupLayout`: group-major blocks, output rows ascending inside a
group) the products of every group but the centre are::

    A[s]       = sum_{pairs (j, k) of slot s} x[j] + E[k]      (the bag entries of the compact layout)
    out[i(s)] += A[s] @ W[g(s)]

and a centre group that holds only the identity offset (SW-LK's centre voxel, zero encoding) is
``out[i] = x[i] @ W[centre]``, written by each row block into its own rows before the other groups add.

:func:`accumulate` cuts the output rows into one *part* per thread (about equal slot counts) and each
part into *row blocks* of about ``CpuTuning.group_block_bytes`` of output, so that a block of ``out`` stays in cache
while all groups add into it (and the neighbours its slots read are close together). Inside a block, the
slots of group ``g`` are one contiguous range (:meth:`.group_layout.GroupLayout.row_blocks`), cut into tiles::

    bag sums into A          (or straight into ``keep`` when the forward keeps A for backward)
    out[rows] += A @ W[g]    register panels that add each product row into its output row; rows of
                             this block only: no other thread writes them

all in one parallel region of torch's team (:func:`.team.run_on_team`), the arithmetic in the SIMD
kernels of :mod:`.simd`. :func:`backward` runs the same blocks for the gradients on a symmetric
map: the bags of ``dOut`` over the same slots give the input gradient (times the mirrored weights) and,
times the ``x`` rows of the slots, the weight gradient, so the forward's ``A`` is not needed (writing its
``[slots, C_in]`` in the forward costs a pass over memory that is faulted in on every call); each thread adds
into its own ``dW`` accumulator.
"""

from __future__ import annotations

from typing import Optional

import numba as nb
import numpy as np
import torch
from torch import Tensor

from ..weight_cache import derived_layout
from . import simd, team
from .arg_blocks import GroupFused, open_block, reads
from .tuning import CpuTuning


@nb.njit(nogil=True)
def _run_parts(h, x, bag_ptr, rows, ranges, part_cuts, grad_w):
    """This team thread's parts ``t, t + T, ...``: per row block, the centre (if ``centre_start >= 0``) then every
    other group, by tiles: the bag sums, the products into ``out`` (if given) and, given ``feat``, ``feat[rows]^T A``
    per group into this thread's accumulator ``grad_w[t]`` (``h``: the words of :data:`.arg_blocks.GroupFused`).
    ``x`` (the
    ``[N_in, C_in]`` input) also sets the element type of the SIMD kernels."""
    t, nt = team.omp_get_thread_num(), team.omp_get_num_threads()
    itemsize = x.itemsize
    ng, centre, parts, tile = h[GroupFused.GROUPS], h[GroupFused.CENTRE], h[GroupFused.PARTS], h[GroupFused.TILE]
    c_in, c_out, n_in = h[GroupFused.C_IN], h[GroupFused.C_OUT], h[GroupFused.N_IN]
    x_addr, w_addr, w_stride = h[GroupFused.X], h[GroupFused.W], h[GroupFused.W_STRIDE]
    out_addr, feat_addr, enc_addr, entries_addr = (
        h[GroupFused.OUT],
        h[GroupFused.FEAT],
        h[GroupFused.ENC],
        h[GroupFused.ENTRIES],
    )
    with_enc, centre_start = h[GroupFused.USE] == 2, h[GroupFused.CENTRE_START]
    w_bytes = c_in * w_stride * itemsize  # one group's (padded) weight
    gw_bytes = c_out * c_in * itemsize  # one group's weight gradient
    gw_addr = h[GroupFused.GRAD_W] + t * ng * gw_bytes
    if feat_addr != 0:
        for u in range(t, grad_w.shape[0], nt):  # every accumulator, also if the team has fewer threads
            grad_w[u] = 0
    for part in range(t, parts, nt):
        for blk in range(part_cuts[part], part_cuts[part + 1]):
            if centre_start >= 0:  # the centre group's slots are the rows: out[rows] = x[rows] @ W[centre]
                lo, hi = ranges[blk, centre, 0], ranges[blk, centre, 1]
                r0 = lo - centre_start
                x_rows = x_addr + r0 * c_in * itemsize
                if hi > lo and out_addr != 0:
                    simd.dense_products(
                        x,
                        x_rows,
                        hi - lo,
                        c_in,
                        w_addr + centre * w_bytes,
                        w_stride,
                        out_addr + r0 * c_out * itemsize,
                        c_out,
                        False,
                    )
                if hi > lo and feat_addr != 0:  # acc[centre] += feat[rows]^T x[rows] (both contiguous)
                    simd.outer_products(x, feat_addr, c_out, 0, r0, hi - lo, x_rows, c_in, gw_addr + centre * gw_bytes)
            for g in range(ng):
                if g == centre:
                    continue
                hi = ranges[blk, g, 1]
                for s in range(ranges[blk, g, 0], hi, tile):
                    n = min(hi - s, tile)
                    a_addr = (
                        h[GroupFused.KEEP] + s * c_in * itemsize
                        if h[GroupFused.KEEP] != 0
                        else h[GroupFused.A_BUF] + t * tile * c_in * itemsize
                    )
                    simd.bag_sums(x, x_addr, enc_addr, c_in, entries_addr, bag_ptr, n_in, with_enc, s, n, a_addr)
                    if out_addr != 0:
                        simd.scatter_products(
                            x, a_addr, n, c_in, w_addr + g * w_bytes, w_stride, out_addr, c_out, rows, s, True
                        )
                    if feat_addr != 0:  # acc[g] += feat[rows of the slots]^T A
                        simd.outer_products(
                            x, feat_addr, c_out, h[GroupFused.ROWS] + 4 * s, 0, n, a_addr, c_in, gw_addr + g * gw_bytes
                        )


@reads(GroupFused)
def _groups_body(block):
    """The ``GOMP_parallel`` body of :func:`accumulate` and :func:`backward`. Argument block:
    :data:`.arg_blocks.GroupFused`. ``x`` ``[N_in, C_in]``; ``W`` ``[G, C_in, W_stride]`` (the weight padded
    by :func:`.simd.padded_weight`); ``out`` ``[*, C_out]`` or 0 (then no products); ``entries``,
    ``bag_ptr`` ``[slots + 1]`` and ``rows`` ``[slots]`` int32; ``enc`` ``[K, C_in]`` (read when ``use`` is
    2); ``ranges`` ``[blocks, G, 2]`` and ``part_cuts`` ``[parts + 1]`` int64; ``a_buf`` ``threads`` tiles of
    ``[tile, C_in]``; ``keep`` ``[slots, C_in]`` or 0; ``centre_start`` the first slot of the centre group
    when each block writes ``x[rows] @ W[centre]`` into its rows first (the centre's slots are the rows in
    order), else -1; ``feat`` ``[*, C_out]`` or 0, and ``grad_w`` ``[threads, G, C_out, C_in]``: the
    accumulators of ``feat[rows]^T A`` per group."""
    h, ok = open_block(block, GroupFused.SIZE, GroupFused.FINGERPRINT)
    if not ok:
        return
    ng, nblk, parts = h[GroupFused.GROUPS], h[GroupFused.BLOCKS], h[GroupFused.PARTS]
    slots, threads = h[GroupFused.SLOTS], h[GroupFused.THREADS]
    bag_ptr = nb.carray(team.int32_pointer(h[GroupFused.BAG_PTR]), (slots + 1,))
    rows = nb.carray(team.int32_pointer(h[GroupFused.ROWS]), (slots,))
    ranges = nb.carray(team.int64_pointer(h[GroupFused.RANGES]), (nblk, ng, 2))
    part_cuts = nb.carray(team.int64_pointer(h[GroupFused.PART_CUTS]), (parts + 1,))
    gw_threads = threads if h[GroupFused.FEAT] != 0 else 0
    x_shape = (h[GroupFused.N_IN], h[GroupFused.C_IN])
    gw_shape = (gw_threads, ng, h[GroupFused.C_OUT], h[GroupFused.C_IN])
    if h[GroupFused.DOUBLE]:
        p = team.float64_pointer
        _run_parts(
            h,
            nb.carray(p(h[GroupFused.X]), x_shape),
            bag_ptr,
            rows,
            ranges,
            part_cuts,
            nb.carray(p(h[GroupFused.GRAD_W]), gw_shape),
        )
    else:
        p = team.float32_pointer
        _run_parts(
            h,
            nb.carray(p(h[GroupFused.X]), x_shape),
            bag_ptr,
            rows,
            ranges,
            part_cuts,
            nb.carray(p(h[GroupFused.GRAD_W]), gw_shape),
        )


def block_rows(c_out: int, itemsize: int, tuning: CpuTuning) -> int:
    """Output rows per row block: ``tuning.group_block_bytes`` of output (at least ``group_min_block_rows``)."""
    return max(tuning.group_min_block_rows, tuning.group_block_bytes // (c_out * itemsize))


def _padded(weight: Tensor) -> np.ndarray:
    """The kernels' weight array: ``weight`` ``[..., C_in, C_out]`` C-contiguous, last axis padded
    (:func:`.simd.padded_weight`); memoised per parameter version by :func:`.weight_cache.derived_layout`."""
    return simd.padded_weight(weight.detach().contiguous().numpy())


def _launch(
    x: Tensor,
    enc: Optional[Tensor],
    entries: np.ndarray,
    use: int,
    bag_ptr: np.ndarray,
    rows: np.ndarray,
    ranges: np.ndarray,
    part_cuts: np.ndarray,
    weight: Tensor,
    out: Optional[Tensor],
    centre: int,
    tile: int,
    threads: int,
    keep: Optional[np.ndarray],
    centre_start: int,
    feat: Optional[Tensor] = None,
    grad_w: Optional[np.ndarray] = None,
) -> None:
    """Run :func:`_groups_body` on ``threads`` threads of torch's team (arguments as in :func:`accumulate` and
    :func:`backward`)."""
    nblk, ng = ranges.shape[0], ranges.shape[1]
    c_in, c_out = x.shape[1], weight.shape[2]
    enc = x.new_empty((0, c_in)) if enc is None else enc.contiguous()
    padded = derived_layout(weight, "padded", _padded)
    dtype = np.float64 if x.dtype == torch.float64 else np.float32
    a_buf = np.empty(threads * tile * c_in if keep is None else 0, dtype)
    block = GroupFused.pack(
        double=x.dtype == torch.float64,
        groups=ng,
        centre=centre,
        blocks=nblk,
        parts=part_cuts.shape[0] - 1,
        tile=tile,
        use=use,
        n_in=x.shape[0],
        c_in=c_in,
        w_stride=padded.shape[2],
        c_out=c_out,
        slots=rows.shape[0],
        centre_start=centre_start,
        threads=threads,
        x=x,
        w=padded,
        out=out,
        entries=entries,
        enc=enc,
        bag_ptr=bag_ptr,
        rows=rows,
        ranges=ranges,
        part_cuts=part_cuts,
        a_buf=a_buf,
        keep=keep,
        feat=feat,
        grad_w=grad_w,
    )
    team.run_on_team(_groups_body, block, threads)


def accumulate(
    x: Tensor,
    enc: Optional[Tensor],
    entries: np.ndarray,
    use: int,
    bag_ptr: np.ndarray,
    rows: np.ndarray,
    ranges: np.ndarray,
    part_cuts: np.ndarray,
    weight: Tensor,
    out: Tensor,
    centre: int,
    tile: int,
    threads: int,
    keep: Optional[np.ndarray] = None,
    centre_start: int = -1,
) -> None:
    """``out[rows[s]] += A[s] @ W[g]`` for every slot ``s`` of every group ``g != centre``, ``A[s]`` the sum
    of its pairs' ``x[j] + enc[k]`` (``use`` 2) or ``x[j]`` (``use`` 1; the entries as in
    :func:`.simd.bag_sums`), on ``threads`` threads of torch's team. ``ranges [blocks, G, 2]`` are
    the slots of each group in each row block and part ``t`` owns blocks ``part_cuts[t]:part_cuts[t + 1]``
    (:meth:`.group_layout.GroupLayout.row_blocks`; parts are taken by threads ``t, t + T, ...``); ``keep``
    (``[slots, C_in]``) receives ``A``. With ``centre_start >= 0`` (the first slot of the identity centre
    group, whose slots are the output rows in order) each row block first sets its rows ``out[r] = x[r] @
    W[centre]`` (``out`` may be uninitialised).
    Only for ``Dataflow.CPU_FUSED`` (:func:`..dispatch.group_conv_blocker`)."""
    if ranges.shape[0] == 0:
        return
    _launch(
        x, enc, entries, use, bag_ptr, rows, ranges, part_cuts, weight, out, centre, tile, threads, keep, centre_start
    )


def backward(
    grad_out: Tensor,
    features: Optional[Tensor],
    entries: np.ndarray,
    bag_ptr: np.ndarray,
    rows: np.ndarray,
    ranges: np.ndarray,
    part_cuts: np.ndarray,
    mirrored: Tensor,
    grad_x: Optional[Tensor],
    centre: int,
    tile: int,
    threads: int,
    centre_start: int = -1,
) -> Optional[Tensor]:
    """The backward pass of :func:`accumulate` on a symmetric map and mirror-symmetric grouping, in one
    parallel region over the same row blocks. Per tile of slots ``s`` (group ``g``, output row ``i(s)``), the
    bags of ``grad_out`` over the slots' entries, ``B[s] = sum_{pairs (j, k) of s} grad_out[j]`` (encoding
    rows skipped), then:

    - when ``grad_x`` is given, ``grad_x[i(s)] += B[s] @ mirrored[g]`` (``mirrored[g] = W[sigma(g)]^T``: the
      input gradient, as pair ``j -> i`` at offset ``k`` is pair ``i -> j`` at ``K - 1 - k``);
    - when the forward's ``features`` are given, ``acc[g] += features[i(s)]^T B[s]``, returned as
      ``[G, C_in, C_out]`` (each thread adds into its own, summed here). ``acc[sigma(h)]`` is the part
      ``sum_{pairs j -> i in group h} features[j]^T grad_out[i]`` of ``dW[h]``: the weight gradient without
      its encoding term, from the same bags as ``grad_x`` (``A`` is neither kept nor summed again).

    The centre group's ``B`` is ``grad_out`` itself (its slots are the rows).
    Only for ``Dataflow.CPU_FUSED`` (:func:`..dispatch.group_conv_blocker`)."""
    ng, c_out, c_in = mirrored.shape
    double = grad_out.dtype == torch.float64
    grad_w = (
        np.empty((threads, ng, c_in, c_out), np.float64 if double else np.float32) if features is not None else None
    )
    if ranges.shape[0] > 0:
        _launch(
            grad_out,
            None,
            entries,
            1,
            bag_ptr,
            rows,
            ranges,
            part_cuts,
            mirrored,
            grad_x,
            centre,
            tile,
            threads,
            None,
            centre_start,
            features,
            grad_w,
        )
    elif grad_w is not None:
        grad_w.fill(0)
    return None if grad_w is None else torch.from_numpy(grad_w).sum(dim=0)
