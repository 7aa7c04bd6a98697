"""SW-LK group products on the CPU: ``out = sum_g A_g @ W[g]`` over the compact slots of
:class:`.group_layout.GroupLayout`, and its backward pass on symmetric maps (see :mod:`..group_conv` for the maths).

Fused per thread and row block on torch's team where it runs on libgomp (:mod:`.group_fused`), else chunk by
chunk: embedding bags, ``torch.mm`` and the team's scatter-add.
"""

from __future__ import annotations

from typing import Optional, Tuple

import numba as nb
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..kernel_map import KernelMap
from . import group_fused, host_memory, simd, team
from .group_layout import GroupLayout
from .maps import identity_offset
from .tuning import CpuTuning


def identity_group(kmap: KernelMap, group: np.ndarray) -> Tuple[int, int]:
    """``(g, k)`` when group ``g`` holds only offset ``k`` and that offset's pairs are the identity ``(r, r)``
    (the centre voxel of a submanifold window: ``A_g = x + E[k]`` needs no aggregation), else ``(-1, -1)``."""
    k = identity_offset(kmap)
    if k < 0 or int(np.count_nonzero(group == group[k])) != 1:
        return -1, -1
    return int(group[k]), k


def _inference_chunk_rows(c_in: int, c_out: int, itemsize: int, tuning: CpuTuning) -> int:
    """Slots per aggregation + GEMM + row-add step of :func:`group_products`: ``tuning.group_chunk_bytes`` of the
    wider of ``A`` and ``Y`` (at least ``tuning.group_min_chunk_rows``)."""
    return max(tuning.group_min_chunk_rows, tuning.group_chunk_bytes // (max(c_in, c_out) * itemsize))


def group_products(
    features: Tensor,
    encoding: Optional[Tensor],
    weight: Tensor,
    kmap: KernelMap,
    group: Tensor,
    fused: bool,
    tuning: CpuTuning,
    keep: Optional[np.ndarray] = None,
    acc: Optional[Tensor] = None,
    acc_rows: Optional[Tensor] = None,
) -> Tensor:
    """``out = sum_g A_g @ W[g]`` (numba path) without holding ``A`` at once: the group blocks in chunks
    (:func:`_inference_chunk_rows`), each aggregated, multiplied into a reused buffer and added into the
    output rows while both stay in cache. A centre group (identity pairs) is one dense GEMM that
    initialises the output: ``out = x W_g + E[k] W_g``. ``keep`` (``[slots, C_in]``, for the backward pass)
    receives every chunk of ``A`` (the centre block as ``x + E[k]``), written serially as it is computed so
    that its fresh pages are touched by one thread (see :func:`.host_memory.touched_empty`). With ``fused``
    (the plan's ``CPU_FUSED``: float32/64, int32 slots, torch on libgomp), the groups run
    fused per thread and row block instead (:mod:`.group_fused`; the centre's ``x W_g`` too, written by
    each block into its own rows, unless the centre has a non-zero encoding; ``keep`` is then written by
    the threads that own its rows). ``acc`` (``[G, C_r, C_in]``, chunked path only) receives ``acc[g] +=
    acc_rows[rows of g]^T A_g`` (``acc_rows [N_out, C_r]``; the centre's ``A`` is ``features``, which needs a
    zero centre encoding)."""
    group_np = group.numpy()
    slots = GroupLayout.for_map(kmap, group_np, weight.shape[0], True, tuning)
    centre, k_centre = identity_group(kmap, group_np)
    c_out = weight.shape[2]
    with_centre_encoding = centre >= 0 and encoding is not None and bool(encoding[k_centre].any())  # SW-LK: 0
    centre_in_blocks = fused and centre >= 0 and not with_centre_encoding
    if centre_in_blocks:  # every row block writes x W_c into its own rows (group_fused)
        out = host_memory.empty((kmap.num_out, c_out), features.dtype)
    elif centre >= 0:
        w_c = weight[centre]
        out = torch.mm(features, w_c, out=host_memory.empty((kmap.num_out, c_out), features.dtype))
        if with_centre_encoding:
            out += encoding[k_centre : k_centre + 1].mm(w_c)
    else:
        out = host_memory.zeros((kmap.num_out, c_out), features.dtype)
    if keep is not None and centre >= 0:
        block = keep[int(slots.gstart[centre]) : int(slots.gstart[centre + 1])]
        if with_centre_encoding:
            np.add(features.numpy(), encoding[k_centre].numpy(), out=block)
        else:
            np.copyto(block, features.numpy())
    chunk = _inference_chunk_rows(weight.shape[1], c_out, features.element_size(), tuning)
    threads = torch.get_num_threads()
    if fused:
        ranges, part_cuts = slots.row_blocks(group_fused.block_rows(c_out, features.element_size(), tuning), threads)
        group_fused.accumulate(
            features,
            encoding,
            slots.entries,
            2 if encoding is not None else 1,
            slots.bag_ptr,
            slots.rows,
            ranges,
            part_cuts,
            weight,
            out,
            centre,
            chunk,
            threads,
            keep,
            int(slots.gstart[centre]) if centre_in_blocks else -1,
        )
        return out
    if acc is not None and centre >= 0:
        acc[centre].addmm_(acc_rows.t(), features)
    sizes = np.diff(slots.gstart)
    if centre >= 0:
        sizes[centre] = 0
    rows = min(chunk, int(sizes.max()) if sizes.size else 0)
    if rows == 0:
        return out
    buf_y = features.new_empty((rows, c_out))
    out_np = out.numpy()
    table = slots.table(features, encoding)
    for g, s, e in slots.blocks(chunk):
        if g == centre:
            continue
        a = slots.aggregate(table, encoding is not None, s, e)
        if keep is not None:
            np.copyto(keep[s:e], a.numpy())
        if acc is not None:
            acc[g].addmm_(acc_rows[torch.from_numpy(slots.rows[s:e])].t(), a)
        y = buf_y[: e - s]
        torch.mm(a, weight[g], out=y)
        team.scatter_add_segments(
            y.numpy(), slots.rows, s, [(0, e - s)], out_np, threads, tuning.scatter_min_parallel_rows
        )
    return out


def mirror_groups(kmap: KernelMap, group: np.ndarray, num_groups: int) -> Optional[np.ndarray]:
    """``sigma [G]`` with ``g(K - 1 - k) = sigma(g(k))`` for every offset ``k``, or ``None`` unless the map is
    symmetric (submanifold, odd kernel sizes) and the grouping mirror-symmetric (as every SW-LK partition
    is). Groups without offsets map to themselves (they have no pairs)."""
    if not kmap.symmetric:
        return None
    sigma = np.full(num_groups, -1, np.int64)
    for g, h in zip(group.tolist(), group[::-1].tolist()):
        if sigma[g] not in (-1, h):
            return None
        sigma[g] = h
    sigma[sigma < 0] = np.flatnonzero(sigma < 0)
    return sigma


def _mirrored_weight_of(weight: Tensor, sigma: np.ndarray) -> Tensor:
    """``W' [G, C_out, C_in]`` with ``W'[g] = W[sigma(g)]^T`` (``sigma`` from :func:`mirror_groups`), so that
    the input gradient of ``group_conv(x, E, W)`` is ``group_conv(dOut, None, W')`` on the same map and
    grouping.

    Why: ``dx[j] = sum_{(j, i) in pairs(k)} dOut[i] W[g(k)]^T``; each such pair is the pair ``(i, j)`` at
    offset ``k' = K - 1 - k``, whose group is ``g(k')`` with ``g(k) = sigma(g(k'))``."""
    return weight[torch.from_numpy(sigma)].transpose(1, 2).contiguous()


def _offset_sums(grad_out: Tensor, kmap: KernelMap) -> Tensor:
    """``S[k] = sum_{(j, i) in pairs(k)} dOut[i]`` as ``[K, C_out]`` (one embedding bag per offset over the pairs'
    output rows), for :func:`_encoding_terms`. On a symmetric map only the stored offsets from the centre ``c``
    on are read (:meth:`.KernelMap.stored_pairs`): for ``k < c`` the pairs of ``k`` are those of ``K - 1 - k``
    swapped, so ``S[k]`` sums ``dOut`` over the *input* rows of offset ``K - 1 - k``."""
    starts = kmap.offset_starts
    c = kmap.kernel_volume // 2

    def bags(rows: Tensor, first: int, last: int) -> Tensor:  # one bag per offset in [first, last)
        base = starts[first]
        bounds = torch.tensor(starts[first:last], dtype=torch.int64) - base
        return F.embedding_bag(rows[base : starts[last]], grad_out, bounds, mode="sum")

    if not kmap.symmetric or c == 0:
        return bags(kmap.pair_out, 0, kmap.kernel_volume)
    pair_in, pair_out = kmap.stored_pairs()
    return torch.cat([bags(pair_in, c + 1, kmap.kernel_volume).flip(0), bags(pair_out, c, kmap.kernel_volume)])


def mirrored_backward(
    grad_out: Tensor,
    features: Tensor,
    encoding: Optional[Tensor],
    weight: Tensor,
    kmap: KernelMap,
    group: Tensor,
    slots: GroupLayout,
    sigma: np.ndarray,
    centre: int,
    need_x: bool,
    need_e: bool,
    need_w: bool,
    fused: bool,
    tuning: CpuTuning,
) -> Tuple[Optional[Tensor], Optional[Tensor], Optional[Tensor]]:
    """``(dx, dE, dW)`` of :class:`GroupConvFunction` on a symmetric map and mirror-symmetric grouping (see its
    docstring): one product of ``dOut`` with the mirrored weights over the same slots gives ``dx`` and, from the
    same bags, ``acc[g] = sum_{slots s of g} x[row(s)]^T Agg(dOut)[s]``; then ``dW[h] = acc[sigma(h)] +
    sum_{k in h} E[k]^T S[k]`` and ``dE[k] = S[k] W[g(k)]^T``. Fused per row block with ``fused`` (the
    forward's plan), else chunk by chunk (:func:`group_products`, bags of ``[dOut; 0]``)."""
    mirrored = _mirrored_weight_of(weight, sigma)
    with_e_term = need_w and encoding is not None
    d_e, d_w_e = (
        _encoding_terms(_offset_sums(grad_out, kmap), encoding, mirrored, sigma, slots, need_e, with_e_term)
        if need_e or with_e_term
        else (None, None)
    )
    d_x = acc = None
    if fused:
        if need_x or need_w:
            d_x, acc = _fused_backward(grad_out, mirrored, slots, centre, need_x, features if need_w else None, tuning)
    elif need_x or need_w:  # the chunked bags sum a zero encoding (cheaper than building encoding-free entries)
        acc = grad_out.new_zeros((weight.shape[0], weight.shape[1], weight.shape[2])) if need_w else None
        zero = grad_out.new_zeros((kmap.kernel_volume, grad_out.shape[1]))
        d_x = group_products(grad_out, zero, mirrored, kmap, group, False, tuning, acc=acc, acc_rows=features)
        d_x = d_x if need_x else None
    d_w = None
    if acc is not None:
        d_w = acc[torch.from_numpy(sigma)]
        if d_w_e is not None:
            d_w += d_w_e
    return d_x, d_e, d_w


def _encoding_terms(
    sums: Tensor,
    encoding: Tensor,
    mirrored: Tensor,
    sigma: np.ndarray,
    slots: "GroupLayout",
    need_e: bool,
    need_w: bool,
) -> Tuple[Optional[Tensor], Optional[Tensor]]:
    """``(dE, dW_E)`` from the per-offset sums ``S [K, C_out]`` (:func:`_offset_sums`), one group at a time:
    ``dE[k] = S[k] @ W[g]^T`` for the offsets ``k`` of group ``g`` (if ``need_e``) and the encoding's part of
    the weight gradient ``dW_E[g] = E[k in g]^T S[k in g]`` (if ``need_w``), in the SIMD kernels of
    :mod:`.simd` (:func:`_encoding_terms_kernel`). ``W[g]^T`` is ``mirrored[sigma(g)]``
    (:func:`_mirrored_weight_of`; ``sigma`` pairs mirror groups, so it is its own inverse). One kernel call
    instead of a ``torch.mm`` of a few rows per group, whose per-call overhead dominated a training step."""
    groups, c_out, c_in = mirrored.shape
    d_e = sums.new_empty((encoding.shape[0] if need_e else 0, c_in))
    d_w_e = sums.new_zeros((groups if need_w else 0, c_in, c_out))
    _encoding_terms_kernel(
        sums.contiguous().numpy(),
        encoding.detach().contiguous().numpy(),
        simd.padded_weight(mirrored.detach().numpy()),
        sigma,
        slots.offsets.astype(np.int32),
        slots.offset_ptr,
        d_e.numpy(),
        d_w_e.numpy(),
        need_e,
        need_w,
    )
    return (d_e if need_e else None), (d_w_e if need_w else None)


@nb.njit(cache=True, nogil=True)
def _encoding_terms_kernel(sums, enc, w_t, sigma, offsets, offset_ptr, d_e, d_w_e, need_e, need_w):
    """:func:`_encoding_terms` on arrays: ``sums [K, C_out]``, ``enc [K, C_in]``, ``w_t [G, C_out, C_pad]``
    (``w_t[sigma(g)] = W[g]^T``, padded by :func:`.simd.padded_weight`), ``offsets`` int32 (group ``g`` owns
    ``offsets[offset_ptr[g]:offset_ptr[g + 1]]``), ``d_e [K, C_in]`` and ``d_w_e [G, C_in, C_out]`` (zeros)
    written where asked."""
    c_out, c_in = sums.shape[1], enc.shape[1]
    itemsize = sums.itemsize
    w_bytes = w_t.shape[1] * w_t.shape[2] * itemsize
    for g in range(offset_ptr.shape[0] - 1):
        lo, n = offset_ptr[g], offset_ptr[g + 1] - offset_ptr[g]
        if n == 0:
            continue
        if need_e:  # dE[k] = S[k] @ W[g]^T, every offset's row written once
            simd.pair_products(
                sums,
                sums.ctypes.data,
                offsets,
                offsets,
                lo,
                n,
                c_out,
                w_t.ctypes.data + sigma[g] * w_bytes,
                w_t.shape[2],
                d_e.ctypes.data,
                c_in,
                False,
            )
        if need_w:  # dW_E[g] = E[k in g]^T S[k in g]
            simd.outer_products(
                sums,
                enc.ctypes.data,
                c_in,
                offsets.ctypes.data + 4 * lo,
                0,
                n,
                sums.ctypes.data,
                c_out,
                d_w_e.ctypes.data + g * c_in * c_out * itemsize,
                offsets.ctypes.data + 4 * lo,
            )


def _fused_backward(
    grad_out: Tensor,
    mirrored: Tensor,
    slots: "GroupLayout",
    centre: int,
    need_x: bool,
    features: Optional[Tensor],
    tuning: CpuTuning,
) -> Tuple[Optional[Tensor], Optional[Tensor]]:
    """``(dx, acc)`` of :class:`GroupConvFunction` on a symmetric map in one pass of
    :func:`.group_fused.backward` over the forward's row blocks: ``dx = sum_g Agg_g(dOut) @ W[sigma(g)]^T``
    (if ``need_x``; each block writes the centre's ``dOut W[centre]^T`` into its rows first) and, given the
    forward's ``features``, ``acc[g] = sum_{slots s of g} features[row(s)]^T Agg(dOut)[s]``: ``acc[sigma(h)]``
    is ``dW[h]`` without its encoding term."""
    c_x = mirrored.shape[2]
    d_x = None
    if need_x:
        shape = (slots.num_out, c_x)
        d_x = host_memory.empty(shape, grad_out.dtype) if centre >= 0 else host_memory.zeros(shape, grad_out.dtype)
    threads = torch.get_num_threads()
    itemsize = grad_out.element_size()
    ranges, part_cuts = slots.row_blocks(group_fused.block_rows(c_x, itemsize, tuning), threads)
    acc = group_fused.backward(
        grad_out,
        None if features is None else features.contiguous(),
        slots.entries,
        slots.bag_ptr,
        slots.rows,
        ranges,
        part_cuts,
        mirrored,
        d_x,
        centre,
        _inference_chunk_rows(grad_out.shape[1], c_x, itemsize, tuning),
        threads,
        int(slots.gstart[centre]) if centre >= 0 else -1,
    )
    return d_x, acc
