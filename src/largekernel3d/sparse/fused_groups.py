"""SW-LK group products fused per thread on torch's OpenMP team (the CPU forward and backward of
``group_conv``).

With compact slots (:class:`.group_aggregate._Slots`: group-major blocks, output rows ascending inside a
group) the products of every group but the centre are::

    A[s]       = sum_{pairs (j, k) of slot s} x[j] + E[k]      (the bag entries of the compact layout)
    out[i(s)] += A[s] @ W[g(s)]

and a centre group that holds only the identity offset (SW-LK's centre voxel, zero encoding) is
``out[i] = x[i] @ W[centre]``, written by each row block into its own rows before the other groups add.

:func:`accumulate` cuts the output rows into one *part* per thread (about equal slot counts) and each
part into *row blocks* of about ``_BLOCK_BYTES`` of output, so that a block of ``out`` stays in cache
while all groups add into it (and the neighbours its slots read are close together). Inside a block, the
slots of group ``g`` are one contiguous range (:meth:`_Slots.row_blocks`), cut into tiles::

    bag sums into A (numba; or straight into ``keep`` when the forward keeps A for backward)
    Y = A @ W[g]          one single-threaded MKL GEMM (see :mod:`.fused_tiles`)
    out[rows] += Y        rows of this block only: no other thread writes them

all in one parallel region of torch's team (:func:`.openmp_team.run_on_team`). :func:`backward` runs the
same blocks for the gradients on a symmetric map: the bags of ``dOut`` over the same slots give the input
gradient (times the mirrored weights) and, times the gathered ``x`` rows of the slots, the weight
gradient, so the forward's ``A`` is not needed (writing its ``[slots, C_in]`` in the forward cost 9 ms
at 1 thread and 13 ms at 2 on KITTI 7^3 32 -> 32, its 85 MB faulted in on every call); each thread adds
into its own ``dW`` accumulator.

The bag sums read ``x`` and ``E`` in place (no ``[x; E]`` table is built) and add ``x[j] + E[k]`` per
pair, or without an encoding two rows at a time; LLVM vectorises them as well as FBGEMM's
``embedding_bag`` on these tables, and the rounding differs from the bags' sequential sums within float32
precision. Measured in the paper-config LargeKernel3D-Seg forward on a ScanNet scene at 2 threads
(all SW-LK layers of one shape together, against the chunked bags + ``torch.mm`` + team scatter of
:func:`.group_aggregate._group_products`, alternating in one process): 43 k sites x 32 ch 80.5 -> 68.7
ms, 23 k x 64 ch 153 -> 136, 6.7 k x 128 ch 203 -> 184, 1.6 k x 256 ch 248 -> 230 (all SW-LK
products 739 -> 670 ms). Single layers at 1 thread: 128 ch 199 -> 160 ms, 256 ch 204 -> 175 ms.
"""

from __future__ import annotations

from typing import Optional

import numba as nb
import numpy as np
import torch
from torch import Tensor

from . import fused_tiles, openmp_team

_HEADER = 33  # int64 words of the argument block of _groups_body
_BLOCK_BYTES = 1 << 20  # output bytes per row block
_MIN_BLOCK_ROWS = 256


@nb.njit(nogil=True, inline="always")
def _bag_sums(x, enc, n_in, entries, bag_ptr, use, s0, count, buf):
    """``buf[q] =`` the sum over the pairs of slot ``s0 + q`` (pairs ``bag_ptr[s] : bag_ptr[s + 1]``; a slot
    has at least one): pair ``p`` has the entries ``2 p`` (the row ``j`` of ``x``) and ``2 p + 1`` (``n_in +
    k`` for the row ``k`` of ``enc``). ``use`` 2 sums ``x[j] + enc[k]`` per pair; ``use`` 1 sums ``x[j]``
    only (two pairs at a time)."""
    c = x.shape[1]
    if use == 2:
        for q in range(count):
            p0, p1 = bag_ptr[s0 + q], bag_ptr[s0 + q + 1]
            j, k = entries[2 * p0], entries[2 * p0 + 1] - n_in
            for i in range(c):
                buf[q, i] = x[j, i] + enc[k, i]
            for p in range(p0 + 1, p1):
                j, k = entries[2 * p], entries[2 * p + 1] - n_in
                for i in range(c):
                    buf[q, i] += x[j, i] + enc[k, i]
        return
    for q in range(count):
        base = 2 * bag_ptr[s0 + q]
        m_end = bag_ptr[s0 + q + 1] - bag_ptr[s0 + q]
        r0 = entries[base]
        if m_end > 1:
            r1 = entries[base + 2]
            for i in range(c):
                buf[q, i] = x[r0, i] + x[r1, i]
            m = 2
        else:
            for i in range(c):
                buf[q, i] = x[r0, i]
            m = 1
        while m + 1 < m_end:
            ra, rb = entries[base + 2 * m], entries[base + 2 * m + 2]
            for i in range(c):
                buf[q, i] += x[ra, i] + x[rb, i]
            m += 2
        if m < m_end:
            ra = entries[base + 2 * m]
            for i in range(c):
                buf[q, i] += x[ra, i]


@nb.njit(nogil=True)
def _run_parts(h, x, enc, entries, bag_ptr, rows, ranges, part_cuts, out, a_buf, y_buf, keep, feat, grad_w):
    """This team thread's parts ``t, t + T, ...``: per row block, the centre (if ``centre_start``) then every
    other group, by tiles; the products into ``out`` (if ``products``) and, given ``feat``, ``feat[rows]^T A``
    per group into this thread's accumulator ``grad_w[t]``."""
    t, nt = openmp_team.omp_get_thread_num(), openmp_team.omp_get_num_threads()
    double = h[0] != 0
    itemsize = 8 if double else 4
    ng, centre, parts, tile, products, use = h[1], h[2], h[4], h[5], h[6] != 0, h[7]
    c_in, c_out = x.shape[1], out.shape[1]
    coef_addr = h[22]
    ints_addr = h[22] + 16 + fused_tiles._INTS_BYTES * t
    y_addr = h[25] + t * tile * c_out * itemsize
    with_keep = h[26] != 0
    with_w = h[30] != 0
    gw_addr = h[31] + t * ng * c_out * c_in * itemsize
    if with_w:
        for u in range(t, grad_w.shape[0], nt):  # every accumulator, also if the team has fewer threads
            grad_w[u] = 0
    for part in range(t, parts, nt):
        for blk in range(part_cuts[part], part_cuts[part + 1]):
            if h[27] >= 0:  # the centre group's slots are the rows: out[rows] = x[rows] @ W[centre]
                lo, hi = ranges[blk, centre, 0], ranges[blk, centre, 1]
                r0 = lo - h[27]
                if hi > lo and products:
                    fused_tiles._gemm(double, False, c_out, hi - lo, c_in, h[11] + centre * c_in * c_out * itemsize,
                                      c_out, h[8] + r0 * c_in * itemsize, c_in, 0, h[13] + r0 * c_out * itemsize,
                                      c_out, ints_addr, coef_addr, itemsize)
                if hi > lo and with_w:  # acc[centre] += feat[rows]^T x[rows] (both contiguous)
                    _weight_gradient(double, c_in, c_out, hi - lo, h[8] + r0 * c_in * itemsize,
                                     h[30] + r0 * c_out * itemsize, gw_addr + centre * c_out * c_in * itemsize,
                                     ints_addr, coef_addr, itemsize)
            for g in range(ng):
                if g == centre:
                    continue
                w_g = h[11] + g * c_in * c_out * itemsize
                hi = ranges[blk, g, 1]
                for s in range(ranges[blk, g, 0], hi, tile):
                    n = min(hi - s, tile)
                    if with_keep:
                        a = keep[s:s + n]
                        a_addr = h[26] + s * c_in * itemsize
                    else:
                        a = a_buf[t]
                        a_addr = h[24] + t * tile * c_in * itemsize
                    _bag_sums(x, enc, h[9], entries, bag_ptr, use, s, n, a)
                    if products:  # row-major Y = A W[g] is column-major Y^T = W[g]^T A^T
                        fused_tiles._gemm(double, False, c_out, n, c_in, w_g, c_out, a_addr, c_in, 0, y_addr, c_out,
                                          ints_addr, coef_addr, itemsize)
                        fused_tiles._scatter_add(y_buf[t], rows, s, n, out)
                    if with_w:  # acc[g] += feat[rows of the slots]^T A
                        fused_tiles._gather(feat, rows, s, n, y_buf[t])
                        _weight_gradient(double, c_in, c_out, n, a_addr, y_addr, gw_addr + g * c_out * c_in * itemsize,
                                         ints_addr, coef_addr, itemsize)


@nb.njit(nogil=True, inline="always")
def _weight_gradient(double, c_in, c_out, n, x_addr, a_addr, gw_addr, ints_addr, coef_addr, itemsize):
    """Row-major ``D[c_out, c_in] += A^T X`` for ``n`` rows of ``X [n, c_in]`` at ``x_addr`` and ``A [n, c_out]``
    at ``a_addr``: column-major ``D^T [c_in, c_out] += X^T A``."""
    fused_tiles._gemm(double, True, c_in, c_out, n, x_addr, c_in, a_addr, c_out, 1, gw_addr, c_in, ints_addr,
                      coef_addr, itemsize)


def _groups_body(block):
    """The ``GOMP_parallel`` body of :func:`accumulate` and :func:`backward`. Argument block (int64):
    ``[double, G, centre, blocks, parts, tile, products, use, x, N_in, C_in, W, C_out, out, N_out, entries, E,
    bag_ptr, slots, rows, ranges, part_cuts, scalars, threads, a_buf, y_buf, keep, centre_start, enc, K, feat,
    grad_w, N_feat]``: flags, sizes and addresses (``enc`` ``[K, C_in]``, K may be 0);
    ``W`` ``[G, C_in, C_out]``; ``entries``, ``bag_ptr`` ``[slots + 1]`` and ``rows`` ``[slots]`` int32;
    ``ranges`` ``[blocks, G, 2]`` and ``part_cuts`` ``[parts + 1]`` int64; ``scalars`` as in
    :mod:`.fused_tiles`; ``a_buf``/``y_buf`` ``threads`` tiles of ``[tile, C_in]`` / ``[tile, C_out]``;
    ``keep`` ``[slots, C_in]`` or 0; ``centre_start`` the first slot of the centre group when each block
    writes ``x[rows] @ W[centre]`` into its rows first (the centre's slots are the rows in order), else -1;
    ``products`` 0 leaves ``out`` (then ``N_out`` 0) alone; ``feat`` ``[N_feat, C_out]`` or 0, and ``grad_w``
    ``[threads, G, C_out, C_in]``: the accumulators of ``feat[rows]^T A`` per group.
    """
    h = nb.carray(block, (_HEADER,))
    ng, nblk, parts, tile, c_in, c_out, slots, threads = h[1], h[3], h[4], h[5], h[10], h[12], h[18], h[23]
    entries = nb.carray(openmp_team.int32_pointer(h[15]), (h[16],))
    bag_ptr = nb.carray(openmp_team.int32_pointer(h[17]), (slots + 1,))
    rows = nb.carray(openmp_team.int32_pointer(h[19]), (slots,))
    ranges = nb.carray(openmp_team.int64_pointer(h[20]), (nblk, ng, 2))
    part_cuts = nb.carray(openmp_team.int64_pointer(h[21]), (parts + 1,))
    keep_rows = slots if h[26] != 0 else 0
    gw_threads = threads if h[30] != 0 else 0
    c_feat = c_out if h[30] != 0 else 0
    if h[0]:
        p = openmp_team.float64_pointer
        _run_parts(h, nb.carray(p(h[8]), (h[9], c_in)), nb.carray(p(h[28]), (h[29], c_in)), entries, bag_ptr, rows,
                   ranges, part_cuts, nb.carray(p(h[13]), (h[14], c_out)), nb.carray(p(h[24]), (threads, tile, c_in)),
                   nb.carray(p(h[25]), (threads, tile, c_out)), nb.carray(p(h[26]), (keep_rows, c_in)),
                   nb.carray(p(h[30]), (h[32], c_feat)), nb.carray(p(h[31]), (gw_threads, ng, c_out, c_in)))
    else:
        p = openmp_team.float32_pointer
        _run_parts(h, nb.carray(p(h[8]), (h[9], c_in)), nb.carray(p(h[28]), (h[29], c_in)), entries, bag_ptr, rows,
                   ranges, part_cuts, nb.carray(p(h[13]), (h[14], c_out)), nb.carray(p(h[24]), (threads, tile, c_in)),
                   nb.carray(p(h[25]), (threads, tile, c_out)), nb.carray(p(h[26]), (keep_rows, c_in)),
                   nb.carray(p(h[30]), (h[32], c_feat)), nb.carray(p(h[31]), (gw_threads, ng, c_out, c_in)))


def available(x: Tensor, weight: Tensor, index_dtype) -> bool:
    """True when :func:`accumulate` can run: CPU float32/float64 ``x``/``weight`` of one dtype, int32 slot
    indices, torch on GNU libgomp with MKL."""
    if x.device.type != "cpu" or x.dtype not in (torch.float32, torch.float64) or weight.dtype != x.dtype:
        return False
    return index_dtype == np.int32 and openmp_team.team_available() and fused_tiles._torch_blas()


def block_rows(c_out: int, itemsize: int) -> int:
    """Output rows per row block: ``_BLOCK_BYTES`` of output (at least ``_MIN_BLOCK_ROWS``)."""
    return max(_MIN_BLOCK_ROWS, _BLOCK_BYTES // (c_out * itemsize))


def _launch(x: Tensor, enc: Optional[Tensor], entries: np.ndarray, use: int, bag_ptr: np.ndarray, rows: np.ndarray,
            ranges: np.ndarray, part_cuts: np.ndarray, weight: Tensor, out: Optional[Tensor], centre: int, tile: int,
            threads: int, keep: Optional[np.ndarray], centre_start: int, feat: Optional[Tensor] = None,
            grad_w: Optional[np.ndarray] = None) -> None:
    """Run :func:`_groups_body` on ``threads`` threads of torch's team (arguments as in :func:`accumulate` and
    :func:`backward`)."""
    nblk, ng = ranges.shape[0], ranges.shape[1]
    double = x.dtype == torch.float64
    dtype = np.float64 if double else np.float32
    c_in, c_out = x.shape[1], weight.shape[2]
    enc = x.new_empty((0, c_in)) if enc is None else enc.contiguous()
    weight = weight.contiguous()
    parts = part_cuts.shape[0] - 1
    a_buf = np.empty(threads * tile * c_in if keep is None else 0, dtype)
    y_buf = np.empty(threads * tile * c_out, dtype)
    scalars = fused_tiles.blas_scalars(threads, dtype)
    block = np.array([int(double), ng, centre, nblk, parts, tile, int(out is not None), use, x.data_ptr(),
                      x.shape[0], c_in, weight.data_ptr(), c_out, 0 if out is None else out.data_ptr(),
                      0 if out is None else out.shape[0], entries.ctypes.data, entries.shape[0], bag_ptr.ctypes.data,
                      rows.shape[0], rows.ctypes.data, ranges.ctypes.data, part_cuts.ctypes.data, scalars.ctypes.data,
                      threads, a_buf.ctypes.data, y_buf.ctypes.data, 0 if keep is None else keep.ctypes.data,
                      centre_start, enc.data_ptr(), enc.shape[0], 0 if feat is None else feat.data_ptr(),
                      0 if grad_w is None else grad_w.ctypes.data, 0 if feat is None else feat.shape[0]], np.int64)
    openmp_team.run_on_team(_groups_body, block, threads)


def accumulate(x: Tensor, enc: Optional[Tensor], entries: np.ndarray, use: int, bag_ptr: np.ndarray,
               rows: np.ndarray, ranges: np.ndarray, part_cuts: np.ndarray, weight: Tensor, out: Tensor, centre: int,
               tile: int, threads: int, keep: Optional[np.ndarray] = None, centre_start: int = -1) -> None:
    """``out[rows[s]] += A[s] @ W[g]`` for every slot ``s`` of every group ``g != centre``, ``A[s]`` the sum
    of its pairs' ``x[j]`` (``+ enc[k]``; see :func:`_bag_sums` for the entries and ``use``), on
    ``threads`` threads of torch's team. ``ranges [blocks, G, 2]`` are the slots of each group in each row
    block and part ``t`` owns blocks ``part_cuts[t]:part_cuts[t + 1]``
    (:meth:`.group_aggregate._Slots.row_blocks`; parts are taken by threads ``t, t + T, ...``); ``keep``
    (``[slots, C_in]``) receives ``A``. With ``centre_start >= 0`` (the first slot of the identity centre
    group, whose slots are the output rows in order) each row block first sets its rows ``out[r] = x[r] @
    W[centre]`` (``out`` may be uninitialised). Only when :func:`available`."""
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

    The centre group's ``B`` is ``grad_out`` itself (its slots are the rows). Only when :func:`available`."""
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
