"""Which points lie inside which boxes.

A point ``p`` is inside box ``[x, y, z, dx, dy, dz, yaw]`` when its box-frame coordinates

    u =  (p_x - x) cos yaw + (p_y - y) sin yaw,     v = -(p_x - x) sin yaw + (p_y - y) cos yaw,    w = p_z - z

satisfy ``|u| <= dx/2 + t``, ``|v| <= dy/2 + t`` and ``|w| <= dz/2 + t``: points on a face count as inside.
The tolerance ``t = 8 eps (|x| + |y| + |z| + dx + dy + dz)`` (``eps`` the machine epsilon of the dtype: about
0.1 mm for float32 boxes 70 m away, sub-nanometre for float64) absorbs the rounding of the rotation, so a
point computed as lying on a face of a rotated box is still found inside.

Search: the points are sorted once by ``x`` and once by ``y``; for each box a binary search gives the points
inside its axis-aligned BEV bounding rectangle's ``x`` slab and ``y`` slab, and the smaller of the two is
tested exactly. The candidate (point, box) pairs are processed in chunks of bounded size.
"""

from __future__ import annotations

from typing import Iterator, Tuple

import numpy as np
import torch
from torch import Tensor

from ._inputs import ArrayLike, back, check_geometry, common_dtype, same_kind, to_tensor
from .corners import bev_half_extent

PAIR_BUDGET = 1 << 21  # candidate (point, box) pairs tested at once
_TOLERANCE_ULPS = 8


def _prepare(points: ArrayLike, boxes: ArrayLike) -> Tuple[Tensor, Tensor, bool]:
    point_tensor, point_numpy = to_tensor(points, "points")
    box_tensor, box_numpy = to_tensor(boxes, "boxes")
    was_numpy = same_kind(points=(point_tensor, point_numpy), boxes=(box_tensor, box_numpy))
    check_geometry(point_tensor, "points", 3)
    check_geometry(box_tensor, "boxes", 7)
    dtype = common_dtype(point_tensor, box_tensor)
    return point_tensor[:, :3].to(dtype), box_tensor[:, :7].to(dtype), was_numpy


def _chunks(counts: np.ndarray) -> Iterator[Tuple[int, int]]:
    """Consecutive box ranges whose candidate counts sum to at most :data:`PAIR_BUDGET` (or one box)."""
    start, total = 0, 0
    for index, count in enumerate(counts.tolist()):
        if total and total + count > PAIR_BUDGET:
            yield start, index
            start, total = index, 0
        total += count
    if start < len(counts):
        yield start, len(counts)


def inside_pairs(points: Tensor, boxes: Tensor) -> Iterator[Tuple[Tensor, Tensor]]:
    """Yield ``(point_index, box_index)`` int64 tensors of the (point, box) pairs with the point inside.

    ``points [P, 3]`` and ``boxes [M, 7]`` of one dtype and device (unchecked). Each pair is yielded once.
    """
    num_points, num_boxes = points.shape[0], boxes.shape[0]
    if num_points == 0 or num_boxes == 0:
        return
    eps = torch.finfo(boxes.dtype).eps
    tolerance = _TOLERANCE_ULPS * eps * (boxes[:, 0:3].abs().sum(-1) + boxes[:, 3:6].abs().sum(-1))
    half = bev_half_extent(boxes) + tolerance[:, None]
    low, high = boxes[:, 0:2] - half, boxes[:, 0:2] + half
    sorted_x, order_x = torch.sort(points[:, 0])
    sorted_y, order_y = torch.sort(points[:, 1])
    start_x = torch.searchsorted(sorted_x, low[:, 0].contiguous(), side="left")
    stop_x = torch.searchsorted(sorted_x, high[:, 0].contiguous(), side="right")
    start_y = torch.searchsorted(sorted_y, low[:, 1].contiguous(), side="left")
    stop_y = torch.searchsorted(sorted_y, high[:, 1].contiguous(), side="right")
    use_y = (stop_y - start_y) < (stop_x - start_x)
    flat_order = torch.cat((order_x, order_y))
    start = torch.where(use_y, start_y + num_points, start_x)
    counts = torch.where(use_y, stop_y - start_y, stop_x - start_x).clamp_min(0)
    cos, sin = torch.cos(boxes[:, 6]), torch.sin(boxes[:, 6])
    limit = boxes[:, 3:6] * 0.5 + tolerance[:, None]
    for first, last in _chunks(counts.cpu().numpy()):
        chunk_counts = counts[first:last]
        total = int(chunk_counts.sum())
        if total == 0:
            continue
        box_index = torch.repeat_interleave(
            torch.arange(first, last, device=boxes.device), chunk_counts, output_size=total
        )
        offsets = torch.cumsum(chunk_counts, 0) - chunk_counts
        within = torch.arange(total, device=boxes.device) - torch.repeat_interleave(
            offsets, chunk_counts, output_size=total
        )
        point_index = flat_order[start[box_index] + within]
        rel = points[point_index] - boxes[box_index, 0:3]
        c, s = cos[box_index], sin[box_index]
        u = rel[:, 0] * c + rel[:, 1] * s
        v = rel[:, 1] * c - rel[:, 0] * s
        lim = limit[box_index]
        inside = (u.abs() <= lim[:, 0]) & (v.abs() <= lim[:, 1]) & (rel[:, 2].abs() <= lim[:, 2])
        yield point_index[inside], box_index[inside]


def points_in_boxes(points: ArrayLike, boxes: ArrayLike) -> ArrayLike:
    """Membership matrix: ``mask[p, m]`` is True when point ``p`` lies in box ``m`` (faces included).

    See the module docstring for the test and its rounding tolerance.

    Args:
        points: ``[P, >=3]`` float32/float64, ``(x, y, z, ...)`` (torch or numpy).
        boxes: ``[M, >=7]`` float32/float64 ``[x, y, z, dx, dy, dz, yaw, ...]``, of the same kind and device.

    Returns:
        bool ``[P, M]``.
    """
    point_tensor, box_tensor, was_numpy = _prepare(points, boxes)
    mask = torch.zeros(point_tensor.shape[0], box_tensor.shape[0], dtype=torch.bool, device=point_tensor.device)
    for point_index, box_index in inside_pairs(point_tensor, box_tensor):
        mask[point_index, box_index] = True
    return back(mask, was_numpy)


def points_in_boxes_index(points: ArrayLike, boxes: ArrayLike) -> ArrayLike:
    """For each point, the index of the first box (lowest index) that contains it, ``-1`` for none.

    Equals ``argmax`` over the rows of :func:`points_in_boxes` where a row has a True, without forming it.

    Args:
        points: ``[P, >=3]`` float32/float64 (torch or numpy).
        boxes: ``[M, >=7]`` float32/float64, of the same kind and device.

    Returns:
        int64 ``[P]``.
    """
    point_tensor, box_tensor, was_numpy = _prepare(points, boxes)
    num_boxes = box_tensor.shape[0]
    first = torch.full((point_tensor.shape[0],), num_boxes, dtype=torch.long, device=point_tensor.device)
    for point_index, box_index in inside_pairs(point_tensor, box_tensor):
        first.scatter_reduce_(0, point_index, box_index, reduce="amin")
    first[first == num_boxes] = -1
    return back(first, was_numpy)
