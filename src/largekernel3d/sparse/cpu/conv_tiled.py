"""The tiled CPU convolution (grouped weights, or torch without libgomp): gather, GEMM and scatter-add per
tile of consecutive pairs, the passes run one after the other on torch's threads.

The offset-major pair list is cut into tiles of about ``tile_bytes`` of gathered rows, so they stay in cache. Per
tile: one gather of the source rows into a reused buffer (the serial numba loop on one thread,
``torch.index_select`` on torch's threads otherwise), one ``torch.mm`` per offset segment of the tile into a
second buffer, one scatter-add into the output (:func:`.team.scatter_add_segments`: each offset segment, whose
destination rows are distinct, split over torch's own OpenMP threads). The identity offset skips gather/scatter:
its dense GEMM initialises the accumulator (with the bias). The backward pass gathers ``d_out`` once per tile and
uses it for both ``d_in`` and ``d_W``. Peak extra memory is two or three tiles, never ``[P, C]``.
"""

from __future__ import annotations

from typing import Optional

import numba as nb
import torch
from torch import Tensor

from ..kernel_map import KernelMap
from ..torch_ref.conv import apply_offset, weight_block
from . import host_memory, team
from .maps import identity_offset
from .tuning import CpuTuning


def _tile_rows(channels: int, itemsize: int, tuning: CpuTuning) -> int:
    """Pairs per tile: ``tuning.conv_tile_bytes`` of gathered rows, clamped to the tuning's row bounds."""
    rows = tuning.conv_tile_bytes // max(1, channels * itemsize)
    return int(min(tuning.conv_max_tile_rows, max(tuning.conv_min_tile_rows, rows)))


def _tiles(starts, tile: int, skip: int = -1):
    """Consecutive pair ranges ``[a, b)`` of at most ``tile`` pairs, with the offset segments
    ``(k, s, e)`` (relative to ``a``) that each range covers; the pairs of offset ``skip`` (if
    ``>= 0``) are left out."""
    total = starts[-1]
    kv = len(starts) - 1
    spans = [(0, total)] if skip < 0 else [(0, starts[skip]), (starts[skip + 1], total)]
    for lo, hi in spans:
        k = 0
        for a in range(lo, hi, tile):
            b = min(hi, a + tile)
            while starts[k + 1] <= a:
                k += 1
            segs = []
            j = k
            while j < kv and starts[j] < b:
                s, e = max(a, starts[j]), min(b, starts[j + 1])
                if e > s:
                    segs.append((j, s - a, e - a))
                j += 1
            yield a, b, segs


def _np(t: Tensor):
    return t.detach().numpy()


def _row_gatherer(x: Tensor, idx: Tensor):
    """``gather(a, b, buf)``: ``buf[:b - a] = x[idx[a:b]]``. With one thread, the serial numba loop (faster
    than torch there); with more, ``torch.index_select``, parallel on torch's own threads."""
    if torch.get_num_threads() > 1:
        return lambda a, b, buf: torch.index_select(x, 0, idx[a:b], out=buf[: b - a])
    xn, idxn = _np(x), _np(idx)
    return lambda a, b, buf: gather_rows(xn, idxn, a, b, _np(buf))


def conv_forward(
    x: Tensor,
    w: Tensor,
    src: Tensor,
    dst: Tensor,
    starts,
    num_out: int,
    c_out: int,
    tuning: CpuTuning,
    bias: Optional[Tensor] = None,
    identity: int = -1,
) -> Tensor:
    """``out[dst] += x[src] @ W[k]`` per offset segment of ``starts`` (``w [K, G, A, B]``), tile by tile; the
    ``identity`` offset's dense GEMM initialises ``out`` (with ``bias``)."""
    x = x.contiguous()
    if identity >= 0:  # the identity offset's GEMM initialises the accumulator
        out = apply_offset(x, w[identity], out=host_memory.empty((num_out, c_out), x.dtype))
        if bias is not None:
            out += bias.detach().to(out.dtype)
    else:
        out = host_memory.accumulator(num_out, c_out, x.dtype, bias)
    if starts[-1] == 0:
        return out
    tile = _tile_rows(max(x.shape[1], c_out), x.element_size(), tuning)
    buf_in = x.new_empty((tile, x.shape[1]))
    buf_out = x.new_empty((tile, c_out))
    gather = _row_gatherer(x, src)
    dstn, bout, outn = (_np(t) for t in (dst, buf_out, out))
    threads = torch.get_num_threads()
    for a, b, segs in _tiles(starts, tile, identity):
        gather(a, b, buf_in)
        for k, s, e in segs:
            apply_offset(buf_in[s:e], w[k], out=buf_out[s:e])
        team.scatter_add_segments(
            bout, dstn, a, [(s, e) for _, s, e in segs], outn, threads, tuning.scatter_min_parallel_rows
        )
    return out


def conv_backward(
    x: Tensor, grad_out: Tensor, weight: Tensor, kmap: KernelMap, need_x: bool, need_w: bool, tuning: CpuTuning
):
    """Both gradients in one tiled pass: per tile ``d_out`` rows are gathered once and serve
    ``d_W[k] += x_tile^T d_out_tile`` and ``d_in[pairs_in] += d_out_tile W[k]^T``."""
    g, a, b = weight.shape[1:]
    c_in, c_out = g * a, g * b
    x = x.contiguous()
    wt = weight.transpose(2, 3)
    identity = identity_offset(kmap)
    grad_w = weight.new_zeros(weight.shape) if need_w else None
    if identity >= 0:  # identity offset: dense GEMMs, no gather/scatter
        grad_x = (
            apply_offset(grad_out, wt[identity], out=host_memory.empty((kmap.num_in, c_in), x.dtype))
            if need_x
            else None
        )
        if need_w:
            grad_w[identity] = weight_block(x, grad_out, g)
    else:
        grad_x = host_memory.zeros((kmap.num_in, c_in), x.dtype) if need_x else None
    if kmap.num_pairs == 0:
        return grad_x, grad_w
    tile = _tile_rows(max(c_in, c_out), x.element_size(), tuning)
    buf_g = grad_out.new_empty((tile, c_out))
    buf_x = x.new_empty((tile, c_in)) if need_w else None
    buf_y = x.new_empty((tile, c_in)) if need_x else None
    pin = _np(kmap.pair_in)
    threads = torch.get_num_threads()
    gather_g = _row_gatherer(grad_out, kmap.pair_out)
    gather_x = _row_gatherer(x, kmap.pair_in)
    for lo, hi, segs in _tiles(kmap.offset_starts, tile, identity):
        gather_g(lo, hi, buf_g)
        if need_w:
            gather_x(lo, hi, buf_x)
        for k, s, e in segs:
            if need_w:
                grad_w[k] += weight_block(buf_x[s:e], buf_g[s:e], g)
            if need_x:
                apply_offset(buf_g[s:e], wt[k], out=buf_y[s:e])
        if need_x:
            team.scatter_add_segments(
                _np(buf_y),
                pin,
                lo,
                [(s, e) for _, s, e in segs],
                _np(grad_x),
                threads,
                tuning.scatter_min_parallel_rows,
            )
    return grad_x, grad_w


@nb.njit(cache=True, nogil=True)
def gather_rows(x, idx, start, stop, buf):
    """``buf[r] = x[idx[start + r]]`` for ``r < stop - start``."""
    c = x.shape[1]
    for r in range(stop - start):
        i = idx[start + r]
        for j in range(c):
            buf[r, j] = x[i, j]
