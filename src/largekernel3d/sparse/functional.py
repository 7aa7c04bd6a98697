"""Gather – GEMM – scatter: the one computation behind every sparse convolution.

With a kernel map (pairs per offset ``k``) and a grouped weight ``W`` of shape
``[K, G, C_in / G, C_out / G]`` the forward pass is::

    out[i_out, g] += in[i_in, g] @ W[k, g]          for every pair (i_in, i_out) of offset k

and the backward pass reuses the same primitive on the adjoint map::

    d_in[i_in, g]  += d_out[i_out, g] @ W[k, g]^T
    d_W[k, g]       = in[pairs_in(k), g]^T @ d_out[pairs_out(k), g]

Dataflow, chosen by :func:`~.kernel_map.choose_backend` on the feature device/dtype:

* ``"numba"`` (CPU, float32/64), ungrouped, where torch runs on libgomp (the Linux wheels):
  :mod:`.fused_tiles`. The output rows are split into ``_PARTS_PER_THREAD`` ranges per thread and each
  offset's pairs bucketed by range (memoised on the map). Every thread of torch's OpenMP team takes a
  run of parts; per part it writes the product of the offset whose pairs are the identity ``(r, r)``
  (the centre of a submanifold map) into the part's rows (added to the bias, if any), then adds every
  other offset's pairs with the SIMD register panels of :mod:`.simd_products` (rows read and added in
  place), all in one parallel region. The backward pass does the same over the adjoint split (input-row
  ranges) for ``d_in``, and the thread's own ``d_W`` accumulator takes the indexed outer products.
* ``"numba"`` otherwise (grouped weights, torch without libgomp): the offset-major pair list is cut into *tiles* of
  consecutive pairs (about 1 MiB of gathered rows, so they stay in cache). Per tile: one gather of the
  source rows into a reused buffer (the serial numba loop on one thread, ``torch.index_select`` on
  torch's threads otherwise), one ``torch.mm`` per offset segment of the tile into a second
  buffer, one numba scatter-add into the output (:func:`.openmp_team.scatter_add_segments`: each
  offset segment, whose destination rows are distinct, split over torch's own OpenMP threads; torch's
  ``index_add_``/``index_put_`` were 2-6x slower). The identity offset skips gather/scatter: its dense
  GEMM initialises the accumulator (with the bias). The
  backward pass gathers ``d_out`` once per tile and uses it for both ``d_in`` and ``d_W``. Peak extra
  memory is two or three tiles, never ``[P, C]``.
* ``"torch"`` (any device): per offset ``index_select`` → matmul → ``index_add_``.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from . import fused_tiles, host_memory, openmp_team
from .kernel_map import NUMBA, KernelMap, choose_backend
from .validation import check_conv_operands

_TILE_BYTES = 1 << 20  # gathered bytes per tile of the numba dataflow
_MIN_TILE_ROWS, _MAX_TILE_ROWS = 256, 16384
# Output-row parts per thread of the fused tiles: a part's rows stay in cache while its offsets add into them
# (network forward at 1 thread: convs 1,603 -> 1,514 ms with 4 against 1, alternating).
_PARTS_PER_THREAD = 4


def module_weight_to_grouped(weight: Tensor, groups: int) -> Tensor:
    """spconv layout ``[C_out, *kernel, C_in / G]`` → grouped ``[K, G, C_in / G, C_out / G]`` (a view)."""
    c_out = weight.shape[0]
    cig = weight.shape[-1]
    k = weight[0, ..., 0].numel()
    return weight.reshape(groups, c_out // groups, k, cig).permute(2, 0, 3, 1)


def _apply_offset(x: Tensor, w_k: Tensor, out: Optional[Tensor] = None) -> Tensor:
    """``x [P, G * A] @ blockdiag(w_k [G, A, B]) -> [P, G * B]`` (written into ``out`` when given)."""
    g, a, b = w_k.shape
    if g == 1:
        return x.mm(w_k[0]) if out is None else torch.mm(x, w_k[0], out=out)
    if a == 1 and b == 1:
        res = x * w_k.reshape(1, g)
    else:
        p = x.shape[0]
        res = torch.bmm(x.reshape(p, g, a).transpose(0, 1), w_k).transpose(0, 1).reshape(p, g * b)
    return res if out is None else out.copy_(res)


def _weight_block(xs: Tensor, gs: Tensor, g: int) -> Tensor:
    """``blockdiag`` weight gradient of one offset: ``[G, A, B]`` from ``xs [P, G * A]``, ``gs [P, G * B]``."""
    p = xs.shape[0]
    if g == 1:
        return xs.t().mm(gs).unsqueeze(0)
    return torch.bmm(xs.reshape(p, g, -1).permute(1, 2, 0), gs.reshape(p, g, -1).transpose(0, 1))


def _use_numba(x: Tensor, weight: Tensor, kmap: KernelMap) -> bool:
    """The dataflow rule: numba tiles when :func:`choose_backend` says so for the feature tensor, the
    pair lists are CPU tensors, and no autograd graph must be recorded through this call (the tiles
    write into buffers; :class:`SparseConvFunction` calls this with grad mode off)."""
    if choose_backend(x.device, kmap.geometry.ndim, x.dtype) != NUMBA or weight.dtype != x.dtype:
        return False
    if kmap.device.type != "cpu":
        return False
    return not (torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad))


def _tile_rows(channels: int, itemsize: int) -> int:
    return int(min(_MAX_TILE_ROWS, max(_MIN_TILE_ROWS, _TILE_BYTES // max(1, channels * itemsize))))


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


def _identity_offset(kmap: KernelMap) -> int:
    """The offset whose pairs are exactly ``(r, r)`` for every row ``r`` in order (the centre of a
    submanifold map with an odd kernel, as both builders write it), or ``-1`` (memoised on the map). Its
    product needs no gather/scatter: it is one dense GEMM that also initialises the accumulator."""
    return kmap.derived("identity_offset", lambda: _find_identity_offset(kmap))


def _find_identity_offset(kmap: KernelMap) -> int:
    from . import cpu_kernels as ck

    kv = kmap.kernel_volume
    if kmap.num_in != kmap.num_out or kv % 2 == 0 or kmap.num_in == 0:
        return -1
    c = kv // 2
    s, e = kmap.offset_starts[c], kmap.offset_starts[c + 1]
    pair_in, pair_out = kmap.stored_pairs()  # the centre is stored on every map
    if e - s != kmap.num_in or not ck.is_identity(_np(pair_in), _np(pair_out), s, e):
        return -1
    return c


def _np(t: Tensor):
    return t.detach().numpy()


def _init_out(x: Tensor, num_out: int, c_out: int, bias: Optional[Tensor]) -> Tensor:
    """The accumulator (CPU, :mod:`.host_memory`): zeros, or ``bias`` in every row (saves a separate pass
    adding it)."""
    if bias is None:
        return host_memory.zeros((num_out, c_out), x.dtype)
    # a fresh buffer: ``expand(...).contiguous()`` would alias the bias itself when num_out == 1
    return host_memory.empty((num_out, c_out), x.dtype).copy_(bias.detach().reshape(1, c_out).expand(num_out, c_out))


def _row_gatherer(x: Tensor, idx: Tensor):
    """``gather(a, b, buf)``: ``buf[:b - a] = x[idx[a:b]]``. With one thread, the serial numba loop (about
    20 % faster than torch there); with more, ``torch.index_select``, parallel on torch's own threads
    (15-20 % off a 7^3 forward at 2 threads)."""
    from . import cpu_kernels as ck

    if torch.get_num_threads() > 1:
        return lambda a, b, buf: torch.index_select(x, 0, idx[a:b], out=buf[: b - a])
    xn, idxn = _np(x), _np(idx)
    return lambda a, b, buf: ck.gather_rows(xn, idxn, a, b, _np(buf))


def _ggs_numba(x: Tensor, w: Tensor, src: Tensor, dst: Tensor, starts, num_out: int, c_out: int,
               bias: Optional[Tensor] = None, identity: int = -1) -> Tensor:
    x = x.contiguous()
    if identity >= 0:  # the identity offset's GEMM initialises the accumulator
        out = _apply_offset(x, w[identity], out=host_memory.empty((num_out, c_out), x.dtype))
        if bias is not None:
            out += bias.detach().to(out.dtype)
    else:
        out = _init_out(x, num_out, c_out, bias)
    if starts[-1] == 0:
        return out
    tile = _tile_rows(max(x.shape[1], c_out), x.element_size())
    buf_in = x.new_empty((tile, x.shape[1]))
    buf_out = x.new_empty((tile, c_out))
    gather = _row_gatherer(x, src)
    dstn, bout, outn = (_np(t) for t in (dst, buf_out, out))
    threads = torch.get_num_threads()
    for a, b, segs in _tiles(starts, tile, identity):
        gather(a, b, buf_in)
        for k, s, e in segs:
            _apply_offset(buf_in[s:e], w[k], out=buf_out[s:e])
        openmp_team.scatter_add_segments(bout, dstn, a, [(s, e) for _, s, e in segs], outn, threads)
    return out


def build_row_split(kmap: KernelMap, adjoint: bool, threads: int) -> fused_tiles.Layout:
    """The pairs of ``kmap`` (or of its adjoint) bucketed by ``threads * _PARTS_PER_THREAD`` output-row
    ranges, without the identity offset, built afresh (:func:`_row_split` memoises it on the map)."""
    src, dst = (kmap.pair_out, kmap.pair_in) if adjoint else (kmap.pair_in, kmap.pair_out)
    num_out = kmap.num_in if adjoint else kmap.num_out
    return fused_tiles.layout(src, dst, kmap.offset_starts, _identity_offset(kmap), num_out,
                              threads * _PARTS_PER_THREAD, threads)


def _row_split(kmap: KernelMap, adjoint: bool, threads: int) -> fused_tiles.Layout:
    """:func:`build_row_split`, memoised on the map."""
    return kmap.derived(("row_split", adjoint, threads), lambda: build_row_split(kmap, adjoint, threads))


def _ggs_fused(x: Tensor, w: Tensor, kmap: KernelMap, adjoint: bool, num_out: int,
               bias: Optional[Tensor]) -> Tensor:
    """The forward by :mod:`.fused_tiles` (``w`` is ``[K, C_in, C_out]``) on torch's team: each part of the
    output rows is set by the identity offset's GEMM (added to the bias, if any; else the accumulator
    starts as the bias or zeros), then every other offset is added."""
    x = x.contiguous()
    c_out = w.shape[2]
    identity = _identity_offset(kmap)
    if identity >= 0 and bias is None:  # every part sets its own rows with the identity product
        out = host_memory.empty((num_out, c_out), x.dtype)
    else:
        out = _init_out(x, num_out, c_out, bias)
    threads = torch.get_num_threads()
    split = _row_split(kmap, adjoint, threads)
    fused_tiles.accumulate(x, w, split, out, threads, identity, add_identity=bias is not None)
    return out


def gather_gemm_scatter(x: Tensor, weight: Tensor, kmap: KernelMap, num_out: int, adjoint: bool = False,
                        backend: Optional[str] = None, bias: Optional[Tensor] = None) -> Tensor:
    """``out[j] = bias + sum_k sum_{(i, j) in pairs(k)} x[i] @ W[k]`` with block-diagonal groups.

    ``weight`` is ``[K, G, A, B]``; with ``adjoint=True`` pairs run output → input and ``W[k]^T`` is used
    (the input gradient of the forward). ``bias`` (optional ``[C_out]``) initialises the accumulator
    (no gradient flows to it here). ``backend=None`` picks the dataflow by :func:`_use_numba`;
    ``"torch"`` forces the per-offset torch path (the reference; differentiable by autograd in ``x``
    and ``weight``).
    """
    if backend not in (None, "torch"):
        raise ValueError(f"backend must be None or 'torch', got {backend!r}")
    g, a, b = weight.shape[1:]
    w = weight.transpose(2, 3) if adjoint else weight
    c_out = g * (a if adjoint else b)
    src_all, dst_all = (kmap.pair_out, kmap.pair_in) if adjoint else (kmap.pair_in, kmap.pair_out)
    if backend is None and _use_numba(x, weight, kmap):
        if fused_tiles.available(x, weight, max(kmap.num_in, kmap.num_out)):
            return _ggs_fused(x, w[:, 0], kmap, adjoint, num_out, bias)
        return _ggs_numba(x, w, src_all, dst_all, kmap.offset_starts, num_out, c_out, bias, _identity_offset(kmap))
    out = x.new_zeros((num_out, c_out)) if bias is None else x.new_zeros((num_out, c_out)) + bias.detach()
    for k in range(kmap.kernel_volume):
        p_in, p_out = kmap.pairs(k)
        if p_in.numel() == 0:
            continue
        src, dst = (p_out, p_in) if adjoint else (p_in, p_out)
        out.index_add_(0, dst, _apply_offset(x.index_select(0, src), w[k]))
    return out


def weight_gradient(x: Tensor, grad_out: Tensor, kmap: KernelMap, weight_shape: torch.Size) -> Tensor:
    """``d_W[k, g] = x[pairs_in(k), g]^T @ grad_out[pairs_out(k), g]`` in the grouped layout."""
    kv, g, a, b = weight_shape
    grad = grad_out.new_zeros((kv, g, a, b))
    for k in range(kv):
        p_in, p_out = kmap.pairs(k)
        if p_in.numel() == 0:
            continue
        grad[k] = _weight_block(x.index_select(0, p_in), grad_out.index_select(0, p_out), g)
    return grad


def _backward_fused(x: Tensor, grad_out: Tensor, weight: Tensor, kmap: KernelMap, need_x: bool, need_w: bool):
    """Both gradients by :mod:`.fused_tiles` over the adjoint row split (ungrouped ``weight`` ``[K, 1, A,
    B]``): each part of ``d_in`` is set by the identity offset's product first, and adds its rows to that
    offset's ``d_W``."""
    w = weight[:, 0]
    x = x.contiguous()
    identity = _identity_offset(kmap)
    if not need_x:
        grad_x = None
    elif identity >= 0:  # every part sets its own rows with the identity product
        grad_x = host_memory.empty((kmap.num_in, w.shape[1]), x.dtype)
    else:
        grad_x = host_memory.zeros((kmap.num_in, w.shape[1]), x.dtype)
    threads = torch.get_num_threads()
    split = _row_split(kmap, True, threads)
    grad_w = fused_tiles.backward(grad_out, w, x, split, grad_x, need_w, threads, identity)
    if need_w:
        grad_w = grad_w.reshape(weight.shape)
    return grad_x, grad_w


def _backward_numba(x: Tensor, grad_out: Tensor, weight: Tensor, kmap: KernelMap, need_x: bool, need_w: bool):
    """Both gradients in one tiled pass: per tile ``d_out`` rows are gathered once and serve
    ``d_W[k] += x_tile^T d_out_tile`` and ``d_in[pairs_in] += d_out_tile W[k]^T``."""
    g, a, b = weight.shape[1:]
    c_in, c_out = g * a, g * b
    x = x.contiguous()
    wt = weight.transpose(2, 3)
    identity = _identity_offset(kmap)
    grad_w = weight.new_zeros(weight.shape) if need_w else None
    if identity >= 0:  # identity offset: dense GEMMs, no gather/scatter
        grad_x = _apply_offset(grad_out, wt[identity], out=host_memory.empty((kmap.num_in, c_in), x.dtype)) \
            if need_x else None
        if need_w:
            grad_w[identity] = _weight_block(x, grad_out, g)
    else:
        grad_x = host_memory.zeros((kmap.num_in, c_in), x.dtype) if need_x else None
    if kmap.num_pairs == 0:
        return grad_x, grad_w
    tile = _tile_rows(max(c_in, c_out), x.element_size())
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
                grad_w[k] += _weight_block(buf_x[s:e], buf_g[s:e], g)
            if need_x:
                _apply_offset(buf_g[s:e], wt[k], out=buf_y[s:e])
        if need_x:
            openmp_team.scatter_add_segments(_np(buf_y), pin, lo, [(s, e) for _, s, e in segs], _np(grad_x), threads)
    return grad_x, grad_w


class SparseConvFunction(torch.autograd.Function):
    """Autograd wrapper of :func:`gather_gemm_scatter` (with an optional bias folded into the
    accumulator, ``d_bias = sum_rows d_out``); saves only the input and the weight."""

    @staticmethod
    def forward(ctx, features: Tensor, weight: Tensor, kmap: KernelMap, bias: Optional[Tensor] = None) -> Tensor:
        ctx.kmap = kmap
        ctx.save_for_backward(features, weight)
        return gather_gemm_scatter(features, weight, kmap, kmap.num_out, bias=bias)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out: Tensor):
        features, weight = ctx.saved_tensors
        kmap: KernelMap = ctx.kmap
        grad_out = grad_out.contiguous()
        need_x, need_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        grad_b = grad_out.sum(dim=0) if len(ctx.needs_input_grad) > 3 and ctx.needs_input_grad[3] else None
        if _use_numba(grad_out, weight, kmap) and features.dtype == grad_out.dtype:
            backward = _backward_fused if fused_tiles.available(grad_out, weight, max(kmap.num_in, kmap.num_out)) \
                else _backward_numba
            grad_x, grad_w = backward(features, grad_out, weight, kmap, need_x, need_w)
            return grad_x, grad_w, None, grad_b
        grad_x = grad_w = None
        if need_x:
            grad_x = gather_gemm_scatter(grad_out, weight, kmap, kmap.num_in, adjoint=True)
        if need_w:
            grad_w = weight_gradient(features, grad_out, kmap, weight.shape)
        return grad_x, grad_w, None, grad_b


def sparse_conv(features: Tensor, weight: Tensor, kmap: KernelMap, groups: int = 1,
                bias: Optional[Tensor] = None) -> Tensor:
    """Sparse convolution of ``features [N_in, C_in]`` by a spconv-layout ``weight
    [C_out, *kernel, C_in / groups]`` over ``kmap``; returns ``[N_out, C_out]``.

    Shapes, dtypes, devices and the map's rows are checked first (:func:`.validation.check_conv_operands`):
    a mismatch raises ``TypeError``/``ValueError`` before any kernel touches memory."""
    check_conv_operands(features, weight, kmap, groups, bias)
    grouped = module_weight_to_grouped(weight, groups)
    if bias is not None and bias.dtype == features.dtype and bias.shape == (grouped.shape[1] * grouped.shape[3],):
        return SparseConvFunction.apply(features, grouped, kmap, bias)
    out = SparseConvFunction.apply(features, grouped, kmap)
    if bias is not None:
        out = out + bias
    return out
