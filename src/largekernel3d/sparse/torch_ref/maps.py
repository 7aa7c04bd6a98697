"""Kernel maps in pure PyTorch (any device; today's CUDA path and the tests' oracle): sorted site keys and
``searchsorted`` look-ups per offset for submanifold maps, candidate output keys and ``torch.unique`` for strided
ones. Within an offset, submanifold pairs ascend by output row and strided pairs by input row."""

from __future__ import annotations

from typing import Sequence, Tuple

import torch
from torch import Tensor

from ..coords import decode, encode
from ..geometry import ConvGeometry


def _starts_from_counts(counts: Tensor) -> Tuple[int, ...]:
    starts = [0]
    for c in counts.tolist():
        starts.append(starts[-1] + int(c))
    return tuple(starts)


def _lookup_pairs(
    indices: Tensor, spatial_shape: Sequence[int], query_coords_fn, num_offsets: int, candidate_chunk: int
) -> Tuple[Tensor, Tensor, Tuple[int, ...]]:
    """For each offset ``j`` and input row ``n``, look up the site ``query_coords_fn(j-chunk)`` among
    ``indices``, about ``candidate_chunk`` (offset, site) candidates at once (a memory bound); return (row of
    found site, n, starts) offset-major."""
    n = indices.shape[0]
    device = indices.device
    idx = indices.to(torch.int64)
    batch, coords = idx[:, 0], idx[:, 1:]
    keys = encode(batch, coords, spatial_shape)
    sorted_keys, perm = torch.sort(keys)
    shape_t = torch.tensor(list(spatial_shape), dtype=torch.int64, device=device)
    rows_found, rows_query, counts = [], [], []
    chunk = max(1, candidate_chunk // max(n, 1))
    for j0 in range(0, num_offsets, chunk):
        j1 = min(num_offsets, j0 + chunk)
        q = query_coords_fn(coords, j0, j1)  # [J, N, D]
        valid = ((q >= 0) & (q < shape_t)).all(dim=-1)
        qk = encode(batch.expand(j1 - j0, n).reshape(-1), q.reshape(-1, q.shape[-1]), spatial_shape)
        pos = torch.searchsorted(sorted_keys, qk).clamp_(max=max(n - 1, 0))
        found = valid.reshape(-1) & (sorted_keys[pos] == qk)
        flat = torch.nonzero(found).squeeze(1)
        j = torch.div(flat, n, rounding_mode="floor")
        rows_found.append(perm[pos[flat]])
        rows_query.append(flat - j * n)
        counts.append(torch.bincount(j, minlength=j1 - j0))
    return torch.cat(rows_found), torch.cat(rows_query), _starts_from_counts(torch.cat(counts))


def _unique_output_sites(
    batch: Tensor,
    cand: Tensor,
    valid: Tensor,
    out_shape: Sequence[int],
) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    """From candidate output coords ``cand [K, N, D]`` and mask ``valid [K, N]`` (chunked by caller),
    return (out sites int32, pair_in, pair_out, counts per offset)."""
    k, n = valid.shape
    flat = torch.nonzero(valid.reshape(-1)).squeeze(1)
    j = torch.div(flat, n, rounding_mode="floor")
    rows = flat - j * n
    keys = encode(batch[rows], cand.reshape(-1, cand.shape[-1])[flat], out_shape)
    uniq, inverse = torch.unique(keys, sorted=True, return_inverse=True)
    counts = torch.bincount(j, minlength=k)
    return decode(uniq, out_shape), rows, inverse, counts


def kernel_offsets(geometry: ConvGeometry, device: torch.device) -> Tensor:
    """All kernel positions ``k`` as an int64 ``[K, D]`` tensor, row-major (last axis fastest)."""
    grids = torch.meshgrid(*[torch.arange(k, device=device) for k in geometry.kernel_size], indexing="ij")
    return torch.stack([g.reshape(-1) for g in grids], dim=1)


def submanifold_map_pairs(
    indices: Tensor, spatial_shape: Sequence[int], geometry: ConvGeometry, candidate_chunk: int
) -> Tuple[Tensor, Tensor, Tuple[int, ...]]:
    """``(pair_in, pair_out, offset_starts)``: for output ``p`` and offset ``k`` the input is the active site at
    ``p + dilation * (k - kernel_size // 2)``; ``candidate_chunk`` (offset, site) candidates are looked up at once
    (``CpuTuning.torch_candidate_chunk``)."""
    offs = kernel_offsets(geometry, indices.device)
    centre = torch.tensor([k // 2 for k in geometry.kernel_size], device=indices.device)
    dil = torch.tensor(geometry.dilation, device=indices.device)
    deltas = (offs - centre) * dil

    def query(coords: Tensor, j0: int, j1: int) -> Tensor:
        return coords.unsqueeze(0) + deltas[j0:j1].unsqueeze(1)

    return _lookup_pairs(indices, spatial_shape, query, geometry.kernel_volume, candidate_chunk)


def strided_map_pairs(
    indices: Tensor,
    out_shape: Sequence[int],
    geometry: ConvGeometry,
    transposed: bool,
) -> Tuple[Tensor, Tensor, Tensor, Tuple[int, ...]]:
    """``(out_sites, pair_in, pair_out, offset_starts)`` of a regular map (output ``q`` is active when some input
    ``p = stride*q - padding + dilation*k`` is) or a ``transposed`` one (input ``q`` reaches every output ``p =
    stride*q - padding + dilation*k`` inside the output grid); output sites sorted by key."""
    device = indices.device
    stride = torch.tensor(geometry.stride, device=device)
    pad = torch.tensor(geometry.padding, device=device)
    dil = torch.tensor(geometry.dilation, device=device)
    idx = indices.to(torch.int64)
    batch, coords = idx[:, 0], idx[:, 1:]
    offs = kernel_offsets(geometry, device)
    if transposed:
        cand = (coords * stride - pad).unsqueeze(0) + (offs * dil).unsqueeze(1)
        valid = torch.ones(cand.shape[:2], dtype=torch.bool, device=device)
    else:
        num = coords.unsqueeze(0) + pad - (offs * dil).unsqueeze(1)
        cand = torch.div(num, stride, rounding_mode="floor")
        valid = (num - cand * stride == 0).all(dim=-1)
    out_t = torch.tensor(list(out_shape), dtype=torch.int64, device=device)
    valid &= ((cand >= 0) & (cand < out_t)).all(dim=-1)
    out_sites, pair_in, pair_out, counts = _unique_output_sites(batch, cand, valid, out_shape)
    return out_sites, pair_in, pair_out, _starts_from_counts(counts)
