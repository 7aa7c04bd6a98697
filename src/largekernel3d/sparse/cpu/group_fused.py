"""SW-LK group products fused per thread on torch's OpenMP team (the CPU forward and backward of
``group_conv``).

With compact slots (:class:`.group_aggregate._Slots`: group-major blocks, output rows ascending inside a
group) the products of every group but the centre are::

    A[s]       = sum_{pairs (j, k) of slot s} x[j] + E[k]      (the bag entries of the compact layout)
    out[i(s)] += A[s] @ W[g(s)]

and a centre group that holds only the identity offset (SW-LK's centre voxel, zero encoding) is
``out[i] = x[i] @ W[centre]``, written by each row block into its own rows before the other groups add.

:func:`accumulate` cuts the output rows into one *part* per thread (about equal slot counts) and each
part into *row blocks* of about ``CpuTuning.group_block_bytes`` of output, so that a block of ``out`` stays in cache
while all groups add into it (and the neighbours its slots read are close together). Inside a block, the
slots of group ``g`` are one contiguous range (:meth:`_Slots.row_blocks`), cut into tiles::

    bag sums into A          (or straight into ``keep`` when the forward keeps A for backward)
    out[rows] += A @ W[g]    register panels that add each product row into its output row; rows of
                             this block only: no other thread writes them

all in one parallel region of torch's team (:func:`.team.run_on_team`), the arithmetic in the SIMD
kernels of :mod:`.simd`. :func:`backward` runs the same blocks for the gradients on a symmetric
map: the bags of ``dOut`` over the same slots give the input gradient (times the mirrored weights) and,
times the ``x`` rows of the slots, the weight gradient, so the forward's ``A`` is not needed (writing its
``[slots, C_in]`` in the forward cost 9 ms at 1 thread and 13 ms at 2 on KITTI 7^3 32 -> 32, its 85 MB
faulted in on every call); each thread adds into its own ``dW`` accumulator.

History, measured: the first version of this pass summed the bags with numba loops and multiplied each
tile with one MKL ``sgemm`` into a buffer, then scattered the buffer; against the chunked bags +
``torch.mm`` + team scatter of :func:`.group_aggregate._group_products` it took the paper-config
LargeKernel3D-Seg's SW-LK products at 2 threads from 739 to 670 ms. The SIMD kernels (bag sums in vector
registers; products in register panels added straight into the output rows; the weight gradient as
outer products read through the slots' row indices, with no gathered copy) took the products of KITTI
000001 7^3 32 -> 32 at 1 thread from ~35 to ~23 ms (bag sums 13.6 -> 9.3 ms, alone) and the layer's
forward + backward from ~125 to ~105 ms; prefetching the bags' rows and looping over a tile's slots inside
the SIMD kernel took the layer's forward from 51-53 to 47-48 ms (fwd + bwd 92-101 -> 86-88 ms).
"""

from __future__ import annotations

from typing import Optional

import numba as nb
import numpy as np
import torch
from torch import Tensor

from ..weight_cache import derived_layout
from . import simd, team
from .tuning import CpuTuning

# The int64 argument block of _groups_body: flags, sizes and addresses (0 for an absent array).
(_DOUBLE, _GROUPS, _CENTRE, _BLOCKS, _PARTS, _TILE, _USE, _X, _N_IN, _C_IN, _W, _W_STRIDE, _C_OUT, _OUT, _ENTRIES,
 _ENC, _BAG_PTR, _SLOTS, _ROWS, _RANGES, _PART_CUTS, _A_BUF, _KEEP, _CENTRE_START, _FEAT, _GRAD_W,
 _THREADS) = range(27)
_HEADER = 27


@nb.njit(nogil=True)
def _run_parts(h, x, bag_ptr, rows, ranges, part_cuts, grad_w):
    """This team thread's parts ``t, t + T, ...``: per row block, the centre (if ``h[_CENTRE_START] >= 0``)
    then every other group, by tiles: the bag sums, the products into ``out`` (if ``h[_OUT]``) and, given
    ``h[_FEAT]``, ``feat[rows]^T A`` per group into this thread's accumulator ``grad_w[t]``. ``x`` (the
    ``[N_in, C_in]`` input) also sets the element type of the SIMD kernels."""
    t, nt = team.omp_get_thread_num(), team.omp_get_num_threads()
    itemsize = x.itemsize
    ng, centre, parts, tile, c_in, c_out = h[_GROUPS], h[_CENTRE], h[_PARTS], h[_TILE], h[_C_IN], h[_C_OUT]
    x_addr, w_addr, w_stride, out_addr, feat_addr = h[_X], h[_W], h[_W_STRIDE], h[_OUT], h[_FEAT]
    with_enc, centre_start = h[_USE] == 2, h[_CENTRE_START]
    w_bytes = c_in * w_stride * itemsize  # one group's (padded) weight
    gw_bytes = c_out * c_in * itemsize  # one group's weight gradient
    gw_addr = h[_GRAD_W] + t * ng * gw_bytes
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
                    simd.dense_products(x, x_rows, hi - lo, c_in, w_addr + centre * w_bytes, w_stride,
                                                 out_addr + r0 * c_out * itemsize, c_out, False)
                if hi > lo and feat_addr != 0:  # acc[centre] += feat[rows]^T x[rows] (both contiguous)
                    simd.outer_products(x, feat_addr, c_out, 0, r0, hi - lo, x_rows, c_in,
                                                 gw_addr + centre * gw_bytes)
            for g in range(ng):
                if g == centre:
                    continue
                hi = ranges[blk, g, 1]
                for s in range(ranges[blk, g, 0], hi, tile):
                    n = min(hi - s, tile)
                    a_addr = h[_KEEP] + s * c_in * itemsize if h[_KEEP] != 0 else \
                        h[_A_BUF] + t * tile * c_in * itemsize
                    simd.bag_sums(x, x_addr, h[_ENC], c_in, h[_ENTRIES], bag_ptr, h[_N_IN], with_enc, s, n,
                                           a_addr)
                    if out_addr != 0:
                        simd.scatter_products(x, a_addr, n, c_in, w_addr + g * w_bytes, w_stride, out_addr,
                                                       c_out, rows, s, True)
                    if feat_addr != 0:  # acc[g] += feat[rows of the slots]^T A
                        simd.outer_products(x, feat_addr, c_out, h[_ROWS] + 4 * s, 0, n, a_addr, c_in,
                                                     gw_addr + g * gw_bytes)


def _groups_body(block):
    """The ``GOMP_parallel`` body of :func:`accumulate` and :func:`backward`. Argument block (int64, the
    ``_HEADER`` words named above): ``x`` ``[N_in, C_in]``; ``W`` ``[G, C_in, W_stride]`` (the weight padded
    by :func:`.simd.padded_weight`); ``out`` ``[*, C_out]`` or 0 (then no products); ``entries``,
    ``bag_ptr`` ``[slots + 1]`` and ``rows`` ``[slots]`` int32; ``enc`` ``[K, C_in]`` (read when ``use`` is
    2); ``ranges`` ``[blocks, G, 2]`` and ``part_cuts`` ``[parts + 1]`` int64; ``a_buf`` ``threads`` tiles of
    ``[tile, C_in]``; ``keep`` ``[slots, C_in]`` or 0; ``centre_start`` the first slot of the centre group
    when each block writes ``x[rows] @ W[centre]`` into its rows first (the centre's slots are the rows in
    order), else -1; ``feat`` ``[*, C_out]`` or 0, and ``grad_w`` ``[threads, G, C_out, C_in]``: the
    accumulators of ``feat[rows]^T A`` per group."""
    h = nb.carray(block, (_HEADER,))
    ng, nblk, parts, slots, threads = h[_GROUPS], h[_BLOCKS], h[_PARTS], h[_SLOTS], h[_THREADS]
    bag_ptr = nb.carray(team.int32_pointer(h[_BAG_PTR]), (slots + 1,))
    rows = nb.carray(team.int32_pointer(h[_ROWS]), (slots,))
    ranges = nb.carray(team.int64_pointer(h[_RANGES]), (nblk, ng, 2))
    part_cuts = nb.carray(team.int64_pointer(h[_PART_CUTS]), (parts + 1,))
    gw_threads = threads if h[_FEAT] != 0 else 0
    x_shape, gw_shape = (h[_N_IN], h[_C_IN]), (gw_threads, ng, h[_C_OUT], h[_C_IN])
    if h[_DOUBLE]:
        p = team.float64_pointer
        _run_parts(h, nb.carray(p(h[_X]), x_shape), bag_ptr, rows, ranges, part_cuts,
                   nb.carray(p(h[_GRAD_W]), gw_shape))
    else:
        p = team.float32_pointer
        _run_parts(h, nb.carray(p(h[_X]), x_shape), bag_ptr, rows, ranges, part_cuts,
                   nb.carray(p(h[_GRAD_W]), gw_shape))


def block_rows(c_out: int, itemsize: int, tuning: CpuTuning) -> int:
    """Output rows per row block: ``tuning.group_block_bytes`` of output (at least ``group_min_block_rows``)."""
    return max(tuning.group_min_block_rows, tuning.group_block_bytes // (c_out * itemsize))


def _padded(weight: Tensor) -> np.ndarray:
    """The kernels' weight array: ``weight`` ``[..., C_in, C_out]`` C-contiguous, last axis padded
    (:func:`.simd.padded_weight`); memoised per parameter version by :func:`.weight_cache.derived_layout`."""
    return simd.padded_weight(weight.detach().contiguous().numpy())


def _launch(x: Tensor, enc: Optional[Tensor], entries: np.ndarray, use: int, bag_ptr: np.ndarray, rows: np.ndarray,
            ranges: np.ndarray, part_cuts: np.ndarray, weight: Tensor, out: Optional[Tensor], centre: int, tile: int,
            threads: int, keep: Optional[np.ndarray], centre_start: int, feat: Optional[Tensor] = None,
            grad_w: Optional[np.ndarray] = None) -> None:
    """Run :func:`_groups_body` on ``threads`` threads of torch's team (arguments as in :func:`accumulate` and
    :func:`backward`)."""
    nblk, ng = ranges.shape[0], ranges.shape[1]
    c_in, c_out = x.shape[1], weight.shape[2]
    enc = x.new_empty((0, c_in)) if enc is None else enc.contiguous()
    padded = derived_layout(weight, "padded", _padded)
    dtype = np.float64 if x.dtype == torch.float64 else np.float32
    a_buf = np.empty(threads * tile * c_in if keep is None else 0, dtype)
    fields = {_DOUBLE: int(x.dtype == torch.float64), _GROUPS: ng, _CENTRE: centre, _BLOCKS: nblk,
              _PARTS: part_cuts.shape[0] - 1, _TILE: tile, _USE: use, _X: x.data_ptr(), _N_IN: x.shape[0],
              _C_IN: c_in, _W: padded.ctypes.data, _W_STRIDE: padded.shape[2], _C_OUT: c_out,
              _OUT: 0 if out is None else out.data_ptr(), _ENTRIES: entries.ctypes.data, _ENC: enc.data_ptr(),
              _BAG_PTR: bag_ptr.ctypes.data, _SLOTS: rows.shape[0], _ROWS: rows.ctypes.data,
              _RANGES: ranges.ctypes.data, _PART_CUTS: part_cuts.ctypes.data, _A_BUF: a_buf.ctypes.data,
              _KEEP: 0 if keep is None else keep.ctypes.data, _CENTRE_START: centre_start,
              _FEAT: 0 if feat is None else feat.data_ptr(), _GRAD_W: 0 if grad_w is None else grad_w.ctypes.data,
              _THREADS: threads}
    team.run_on_team(_groups_body, team.argument_block(fields, _HEADER), threads)


def accumulate(x: Tensor, enc: Optional[Tensor], entries: np.ndarray, use: int, bag_ptr: np.ndarray,
               rows: np.ndarray, ranges: np.ndarray, part_cuts: np.ndarray, weight: Tensor, out: Tensor, centre: int,
               tile: int, threads: int, keep: Optional[np.ndarray] = None, centre_start: int = -1) -> None:
    """``out[rows[s]] += A[s] @ W[g]`` for every slot ``s`` of every group ``g != centre``, ``A[s]`` the sum
    of its pairs' ``x[j] + enc[k]`` (``use`` 2) or ``x[j]`` (``use`` 1; the entries as in
    :func:`.simd.bag_sums`), on ``threads`` threads of torch's team. ``ranges [blocks, G, 2]`` are
    the slots of each group in each row block and part ``t`` owns blocks ``part_cuts[t]:part_cuts[t + 1]``
    (:meth:`.group_aggregate._Slots.row_blocks`; parts are taken by threads ``t, t + T, ...``); ``keep``
    (``[slots, C_in]``) receives ``A``. With ``centre_start >= 0`` (the first slot of the identity centre
    group, whose slots are the output rows in order) each row block first sets its rows ``out[r] = x[r] @
    W[centre]`` (``out`` may be uninitialised).
    Only for ``Dataflow.CPU_FUSED`` (:func:`..dispatch.group_conv_blocker`)."""
    if ranges.shape[0] == 0:
        return
    _launch(x, enc, entries, use, bag_ptr, rows, ranges, part_cuts, weight, out, centre, tile, threads, keep,
            centre_start)


def backward(grad_out: Tensor, features: Optional[Tensor], entries: np.ndarray, bag_ptr: np.ndarray,
             rows: np.ndarray, ranges: np.ndarray, part_cuts: np.ndarray, mirrored: Tensor, grad_x: Optional[Tensor],
             centre: int, tile: int, threads: int, centre_start: int = -1) -> Optional[Tensor]:
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
    grad_w = np.empty((threads, ng, c_in, c_out), np.float64 if double else np.float32) if features is not None \
        else None
    if ranges.shape[0] > 0:
        _launch(grad_out, None, entries, 1, bag_ptr, rows, ranges, part_cuts, mirrored, grad_x, centre, tile,
                threads, None, centre_start, features, grad_w)
    elif grad_w is not None:
        grad_w.fill(0)
    return None if grad_w is None else torch.from_numpy(grad_w).sum(dim=0)
