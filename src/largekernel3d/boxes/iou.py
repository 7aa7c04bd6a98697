"""Rotated BEV and 3D intersection over union.

BEV IoU of boxes ``a`` and ``b`` (their rectangles ``A``, ``B`` seen from above, areas ``dx * dy``):

    IoU_bev = |A ∩ B| / (|A| + |B| - |A ∩ B|)

3D IoU multiplies the BEV intersection by the overlap of the height intervals ``[z - dz/2, z + dz/2]``:

    h = max(0, min(z_a + dz_a/2, z_b + dz_b/2) - max(z_a - dz_a/2, z_b - dz_b/2))
    IoU_3d = |A ∩ B| h / (dx_a dy_a dz_a + dx_b dy_b dz_b - |A ∩ B| h)

``|A ∩ B|`` is exact: ``A`` (4 counter-clockwise vertices) is clipped by the four half-planes of ``B``'s
edges (Sutherland-Hodgman; a clip by one half-plane adds at most one vertex, so the intersection of two
rectangles has at most 8) and the area of the result is the shoelace sum
``1/2 sum_i (x_i y_{i+1} - x_{i+1} y_i)``. All pairs are clipped at once as padded ``[P, 8, 2]`` polygons with
a vertex count per pair. Coordinates are taken relative to ``a``'s centre, so large map coordinates do not
cost precision. Only pairs whose axis-aligned BEV rectangles overlap are clipped (the others have IoU 0),
in chunks of pairs, so memory stays bounded for large ``N * M``. When the union is zero (both boxes
degenerate) the IoU is defined as 0.
"""

from __future__ import annotations

from typing import Iterator, Tuple

import torch
from torch import Tensor

from ._inputs import ArrayLike, back, check_geometry, common_dtype, same_kind, to_tensor
from .corners import bev_corners_local, bev_half_extent

_MAX_VERTICES = 8
PAIR_CHUNK = 1 << 15  # pairs clipped at once (a few KiB of temporaries each)
BLOCK_ELEMENTS = 1 << 22  # entries of a dense [rows, M] test evaluated at once


def row_blocks(rows: int, cols: int) -> Iterator[Tuple[int, int]]:
    """``(start, stop)`` row ranges such that ``(stop - start) * cols`` stays near :data:`BLOCK_ELEMENTS`."""
    step = max(1, BLOCK_ELEMENTS // max(cols, 1))
    for start in range(0, rows, step):
        yield start, min(rows, start + step)


def _clip_half_plane(poly: Tensor, count: Tensor, e0: Tensor, e1: Tensor) -> Tuple[Tensor, Tensor]:
    """Clip polygons ``poly [P, V, 2]`` (``count [P]`` valid vertices) to the left of ``e0 -> e1`` ([P, 2]).

    A vertex is kept when its signed distance ``d = cross(e1 - e0, p - e0) >= 0``; where ``d`` changes sign
    strictly along an edge ``p -> q`` the crossing ``p + (q - p) d_p / (d_p - d_q)`` is inserted.
    """
    num, cap_in, _ = poly.shape
    slot = torch.arange(cap_in, device=poly.device)
    valid = slot[None, :] < count[:, None]
    nxt_slot = torch.where(slot[None, :] + 1 < count[:, None], slot[None, :] + 1, 0)
    nxt = torch.gather(poly, 1, nxt_slot[..., None].expand(-1, -1, 2))
    edge = (e1 - e0)[:, None, :]
    rel = poly - e0[:, None, :]
    dist = edge[..., 0] * rel[..., 1] - edge[..., 1] * rel[..., 0]
    dist_nxt = torch.gather(dist, 1, nxt_slot)
    keep = valid & (dist >= 0)
    crossing = valid & (((dist > 0) & (dist_nxt < 0)) | ((dist < 0) & (dist_nxt > 0)))
    frac = dist / torch.where(crossing, dist - dist_nxt, torch.ones_like(dist))
    cut = poly + (nxt - poly) * frac[..., None]
    candidates = torch.stack((poly, cut), dim=2).reshape(num, 2 * cap_in, 2)
    mask = torch.stack((keep, crossing), dim=2).reshape(num, 2 * cap_in)
    cap_out = min(2 * cap_in, _MAX_VERTICES)
    position = torch.cumsum(mask, dim=1) - 1
    position = torch.where(mask & (position < cap_out), position, cap_out)  # the rest go to a spare slot
    out = poly.new_zeros(num, cap_out + 1, 2)
    out.scatter_(1, position[..., None].expand(-1, -1, 2), candidates)
    return out[:, :cap_out], mask.sum(dim=1).clamp_max(cap_out)


def _polygon_area(poly: Tensor, count: Tensor) -> Tensor:
    """Shoelace area of counter-clockwise polygons ``poly [P, V, 2]`` with ``count [P]`` vertices (>= 0)."""
    slot = torch.arange(poly.shape[1], device=poly.device)
    valid = slot[None, :] < count[:, None]
    nxt_slot = torch.where(slot[None, :] + 1 < count[:, None], slot[None, :] + 1, 0)
    nxt = torch.gather(poly, 1, nxt_slot[..., None].expand(-1, -1, 2))
    cross = poly[..., 0] * nxt[..., 1] - nxt[..., 0] * poly[..., 1]
    return (0.5 * torch.where(valid, cross, torch.zeros_like(cross)).sum(dim=1)).clamp_min(0)


def _rect_intersection_area(boxes_a: Tensor, boxes_b: Tensor) -> Tensor:
    """``|A_k ∩ B_k|`` of aligned rectangles ``boxes_a [P, >=7]``, ``boxes_b [P, >=7]`` (one chunk)."""
    subject = bev_corners_local(boxes_a)
    clip = bev_corners_local(boxes_b) + (boxes_b[:, None, 0:2] - boxes_a[:, None, 0:2])
    count = torch.full((subject.shape[0],), 4, dtype=torch.long, device=subject.device)
    poly = subject
    for k in range(4):
        poly, count = _clip_half_plane(poly, count, clip[:, k], clip[:, (k + 1) % 4])
    area = _polygon_area(poly, count)
    smaller = torch.minimum(boxes_a[:, 3] * boxes_a[:, 4], boxes_b[:, 3] * boxes_b[:, 4]).clamp_min(0)
    return torch.minimum(area, smaller)


def pair_intersection_area(boxes_a: Tensor, boxes_b: Tensor, index_a: Tensor, index_b: Tensor) -> Tensor:
    """BEV intersection areas ``|A_{index_a[k]} ∩ B_{index_b[k]}|`` for ``K`` pairs: ``[K]`` (chunked)."""
    parts = [
        _rect_intersection_area(boxes_a[index_a[s : s + PAIR_CHUNK]], boxes_b[index_b[s : s + PAIR_CHUNK]])
        for s in range(0, index_a.shape[0], PAIR_CHUNK)
    ]
    return torch.cat(parts) if parts else boxes_a.new_zeros(0)


def aabb_overlap_pairs(boxes_a: Tensor, boxes_b: Tensor, upper: bool = False) -> Tuple[Tensor, Tensor]:
    """Pairs ``(i, j)`` whose BEV bounding rectangles overlap or touch (``i < j`` only when ``upper``).

    Evaluated densely in row blocks of ``[rows, M]``; returns two int64 tensors of equal length,
    ordered by ``i`` then ``j``.
    """
    half_a, half_b = bev_half_extent(boxes_a), bev_half_extent(boxes_b)
    lo_a, hi_a = boxes_a[:, 0:2] - half_a, boxes_a[:, 0:2] + half_a
    lo_b, hi_b = boxes_b[:, 0:2] - half_b, boxes_b[:, 0:2] + half_b
    cols = torch.arange(boxes_b.shape[0], device=boxes_b.device)
    found_a, found_b = [], []
    for start, stop in row_blocks(boxes_a.shape[0], boxes_b.shape[0]):
        overlap = ((lo_a[start:stop, None, :] <= hi_b[None]) & (lo_b[None] <= hi_a[start:stop, None, :])).all(-1)
        if upper:
            rows = torch.arange(start, stop, device=boxes_a.device)
            overlap &= rows[:, None] < cols[None, :]
        rows_found, cols_found = overlap.nonzero(as_tuple=True)
        found_a.append(rows_found + start)
        found_b.append(cols_found)
    if not found_a:
        empty = torch.zeros(0, dtype=torch.long, device=boxes_a.device)
        return empty, empty
    return torch.cat(found_a), torch.cat(found_b)


def _z_overlap(boxes_a: Tensor, boxes_b: Tensor) -> Tensor:
    """``max(0, min(top_a, top_b) - max(bottom_a, bottom_b))`` for aligned ``[K, >=7]`` boxes."""
    top = torch.minimum(boxes_a[:, 2] + boxes_a[:, 5] * 0.5, boxes_b[:, 2] + boxes_b[:, 5] * 0.5)
    bottom = torch.maximum(boxes_a[:, 2] - boxes_a[:, 5] * 0.5, boxes_b[:, 2] - boxes_b[:, 5] * 0.5)
    return (top - bottom).clamp_min(0)


def _ratio(inter: Tensor, union: Tensor) -> Tensor:
    positive = union > 0
    return torch.where(positive, inter / torch.where(positive, union, torch.ones_like(union)), torch.zeros_like(inter))


def pair_iou(boxes_a: Tensor, boxes_b: Tensor, index_a: Tensor, index_b: Tensor, three_d: bool) -> Tensor:
    """BEV (or 3D) IoU of the pairs ``(boxes_a[index_a[k]], boxes_b[index_b[k]])``: ``[K]``."""
    area_a, area_b = boxes_a[:, 3] * boxes_a[:, 4], boxes_b[:, 3] * boxes_b[:, 4]
    if not three_d:
        inter = pair_intersection_area(boxes_a, boxes_b, index_a, index_b)
        return _ratio(inter, area_a[index_a] + area_b[index_b] - inter)
    height = _z_overlap(boxes_a[index_a], boxes_b[index_b])
    result = torch.zeros_like(height)
    overlapping = (height > 0).nonzero(as_tuple=True)[0]
    if overlapping.numel():
        sel_a, sel_b = index_a[overlapping], index_b[overlapping]
        inter = pair_intersection_area(boxes_a, boxes_b, sel_a, sel_b) * height[overlapping]
        volume_a, volume_b = area_a * boxes_a[:, 5], area_b * boxes_b[:, 5]
        result[overlapping] = _ratio(inter, volume_a[sel_a] + volume_b[sel_b] - inter)
    return result


def _prepare(boxes_a: ArrayLike, boxes_b: ArrayLike) -> Tuple[Tensor, Tensor, bool]:
    tensor_a, numpy_a = to_tensor(boxes_a, "boxes_a")
    tensor_b, numpy_b = to_tensor(boxes_b, "boxes_b")
    was_numpy = same_kind(boxes_a=(tensor_a, numpy_a), boxes_b=(tensor_b, numpy_b))
    check_geometry(tensor_a, "boxes_a", 7)
    check_geometry(tensor_b, "boxes_b", 7)
    dtype = common_dtype(tensor_a, tensor_b)
    return tensor_a.to(dtype), tensor_b.to(dtype), was_numpy


def _dense(boxes_a: ArrayLike, boxes_b: ArrayLike, three_d: bool) -> ArrayLike:
    tensor_a, tensor_b, was_numpy = _prepare(boxes_a, boxes_b)
    out = tensor_a.new_zeros(tensor_a.shape[0], tensor_b.shape[0])
    index_a, index_b = aabb_overlap_pairs(tensor_a, tensor_b)
    if index_a.numel():
        out[index_a, index_b] = pair_iou(tensor_a, tensor_b, index_a, index_b, three_d)
    return back(out, was_numpy)


def _aligned(boxes_a: ArrayLike, boxes_b: ArrayLike, three_d: bool) -> ArrayLike:
    tensor_a, tensor_b, was_numpy = _prepare(boxes_a, boxes_b)
    if tensor_a.shape[0] != tensor_b.shape[0]:
        raise ValueError(
            f"boxes_a and boxes_b must have the same number of boxes for an aligned IoU, got "
            f"{tensor_a.shape[0]} and {tensor_b.shape[0]}"
        )
    half_a, half_b = bev_half_extent(tensor_a), bev_half_extent(tensor_b)
    overlap = (
        (tensor_a[:, 0:2] - half_a <= tensor_b[:, 0:2] + half_b)
        & (tensor_b[:, 0:2] - half_b <= tensor_a[:, 0:2] + half_a)
    ).all(-1)
    index = overlap.nonzero(as_tuple=True)[0]
    out = tensor_a.new_zeros(tensor_a.shape[0])
    if index.numel():
        out[index] = pair_iou(tensor_a, tensor_b, index, index, three_d)
    return back(out, was_numpy)


def bev_iou(boxes_a: ArrayLike, boxes_b: ArrayLike) -> ArrayLike:
    """Rotated BEV IoU of every pair, ``|A ∩ B| / (|A| + |B| - |A ∩ B|)`` (see the module docstring).

    Args:
        boxes_a: ``[N, >=7]`` float32/float64 boxes ``[x, y, z, dx, dy, dz, yaw, ...]`` (torch or numpy).
        boxes_b: ``[M, >=7]``, of the same kind and device (float32 with float64 computes in float64).

    Returns:
        ``[N, M]`` IoU in ``[0, 1]``, in the (promoted) input dtype.
    """
    return _dense(boxes_a, boxes_b, three_d=False)


def bev_iou_aligned(boxes_a: ArrayLike, boxes_b: ArrayLike) -> ArrayLike:
    """Rotated BEV IoU of ``boxes_a[k]`` with ``boxes_b[k]``.

    Args:
        boxes_a, boxes_b: ``[N, >=7]`` float32/float64 (torch or numpy, same kind).

    Returns:
        ``[N]`` IoU in the (promoted) input dtype.
    """
    return _aligned(boxes_a, boxes_b, three_d=False)


def iou_3d(boxes_a: ArrayLike, boxes_b: ArrayLike) -> ArrayLike:
    """3D IoU of every pair of yaw-rotated boxes, ``|A ∩ B| h / (V_a + V_b - |A ∩ B| h)`` (module docstring).

    Args:
        boxes_a: ``[N, >=7]`` float32/float64 (torch or numpy); ``z`` is the box centre.
        boxes_b: ``[M, >=7]``, of the same kind and device.

    Returns:
        ``[N, M]`` IoU in ``[0, 1]``, in the (promoted) input dtype.
    """
    return _dense(boxes_a, boxes_b, three_d=True)


def iou_3d_aligned(boxes_a: ArrayLike, boxes_b: ArrayLike) -> ArrayLike:
    """3D IoU of ``boxes_a[k]`` with ``boxes_b[k]``.

    Args:
        boxes_a, boxes_b: ``[N, >=7]`` float32/float64 (torch or numpy, same kind).

    Returns:
        ``[N]`` IoU in the (promoted) input dtype.
    """
    return _aligned(boxes_a, boxes_b, three_d=True)
