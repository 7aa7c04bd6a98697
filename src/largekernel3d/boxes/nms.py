"""Greedy non-maximum suppression: rotated-BEV-IoU NMS and CenterPoint's circle NMS.

Both rank the boxes by score, highest first (equal scores: lower index first, so the result is
deterministic), and walk down the ranking: a box is kept unless it conflicts with an already kept box,
and a kept box suppresses every lower-ranked box it conflicts with. Conflicts:

- :func:`nms_bev`: ``IoU_bev(i, j) > iou_threshold`` (strictly greater, as in OpenPCDet / mmdet3d).
- :func:`circle_nms`: ``||c_i - c_j||_2 <= min_distance`` between BEV centres (metres).

The conflicting pairs are found in bulk in torch (any device; for IoU only the pairs whose BEV bounding
rectangles overlap are clipped exactly), then the sequential walk runs over them on the CPU.
"""

from __future__ import annotations

from typing import Optional, Tuple

import numpy as np
import torch
from torch import Tensor

from ._inputs import (
    ArrayLike,
    back,
    check_geometry,
    check_optional_count,
    check_real,
    check_scores,
    same_kind,
    to_tensor,
)
from .iou import aabb_overlap_pairs, pair_iou, row_blocks


def greedy_select(count: int, first: Tensor, second: Tensor) -> Tensor:
    """Greedy walk over ranks ``0 .. count - 1`` given conflicting rank pairs ``first[k] < second[k]``.

    Rank ``r`` is kept iff no kept rank ``q < r`` conflicts with it. Returns the kept ranks, ascending,
    as an int64 CPU tensor.
    """
    first_np = first.cpu().numpy()
    second_np = second.cpu().numpy()
    order = np.argsort(first_np, kind="stable")
    first_np, second_np = first_np[order], second_np[order]
    bounds = np.searchsorted(first_np, np.arange(count + 1))
    suppressed = np.zeros(count, dtype=bool)
    keep = []
    for rank in range(count):
        if suppressed[rank]:
            continue
        keep.append(rank)
        lo, hi = bounds[rank], bounds[rank + 1]
        if hi > lo:
            suppressed[second_np[lo:hi]] = True
    return torch.as_tensor(np.asarray(keep, dtype=np.int64))


def _checked_inputs(
    geometry: ArrayLike,
    name: str,
    min_cols: int,
    scores: ArrayLike,
    threshold: float,
    threshold_name: str,
    threshold_meaning: str,
    **counts: Optional[int],
) -> Tuple[Tensor, Tensor, float, bool]:
    """The argument checks both NMS functions make: ``geometry`` ``[N, >=min_cols]`` float32/float64, ``scores``
    ``[N]`` real and of the same kind and device, ``threshold`` a finite real ``>= 0``, each of ``counts`` ``None``
    or an int ``>= 0`` (checked in the order given). Returns ``(geometry, scores, threshold, was_numpy)``."""
    geometry_tensor, geometry_numpy = to_tensor(geometry, name)
    score_tensor, score_numpy = to_tensor(scores, "scores")
    was_numpy = same_kind(**{name: (geometry_tensor, geometry_numpy)}, scores=(score_tensor, score_numpy))
    check_geometry(geometry_tensor, name, min_cols)
    check_scores(score_tensor, "scores", geometry_tensor.shape[0])
    value = check_real(threshold, threshold_name)
    if value < 0:
        raise ValueError(f"{threshold_name} must be >= 0 ({threshold_meaning}), got {value}")
    for count_name, count in counts.items():
        check_optional_count(count, count_name)
    return geometry_tensor, score_tensor, value, was_numpy


def _ranking(scores: Tensor, pre_max_size: Optional[int]) -> Tensor:
    order = torch.sort(scores, descending=True, stable=True).indices
    return order if pre_max_size is None else order[:pre_max_size]


def _kept(order: Tensor, first: Tensor, second: Tensor, post_max_size: Optional[int], was_numpy: bool) -> ArrayLike:
    """The greedy walk over the ranking ``order`` with conflicting rank pairs ``(first, second)``: the kept
    indices (at most ``post_max_size``), numpy when the inputs were."""
    keep = order[greedy_select(order.shape[0], first, second).to(order.device)]
    if post_max_size is not None:
        keep = keep[:post_max_size]
    return back(keep, was_numpy)


def nms_bev(
    boxes: ArrayLike,
    scores: ArrayLike,
    iou_threshold: float,
    pre_max_size: Optional[int] = None,
    post_max_size: Optional[int] = None,
) -> ArrayLike:
    """Greedy NMS with the rotated BEV IoU of :func:`~largekernel3d.boxes.bev_iou`.

    Boxes are ranked by score (descending; ties by index); only the first ``pre_max_size`` of the ranking
    take part; a box is suppressed by a kept higher-ranked box when their BEV IoU ``> iou_threshold``; at
    most ``post_max_size`` kept boxes are returned.

    Args:
        boxes: ``[N, >=7]`` float32/float64 ``[x, y, z, dx, dy, dz, yaw, ...]`` (torch or numpy).
        scores: ``[N]`` real scores, of the same kind and device as ``boxes``.
        iou_threshold: suppression threshold on the BEV IoU, ``>= 0`` (``0``: any overlap suppresses).
        pre_max_size: keep only this many top-scoring boxes before NMS (``None``: all).
        post_max_size: return at most this many boxes (``None``: all kept).

    Returns:
        int64 ``[K]`` indices into ``boxes`` of the kept boxes, in descending score order.
    """
    box_tensor, score_tensor, threshold, was_numpy = _checked_inputs(
        boxes,
        "boxes",
        7,
        scores,
        iou_threshold,
        "iou_threshold",
        "a box suppresses others whose IoU with it is above it",
        pre_max_size=pre_max_size,
        post_max_size=post_max_size,
    )
    order = _ranking(score_tensor, pre_max_size)
    ranked = box_tensor[order]
    first, second = aabb_overlap_pairs(ranked, ranked, upper=True)
    if first.numel():
        conflict = pair_iou(ranked, ranked, first, second, three_d=False) > threshold
        first, second = first[conflict], second[conflict]
    return _kept(order, first, second, post_max_size, was_numpy)


def circle_nms(
    centers: ArrayLike, scores: ArrayLike, min_distance: float, post_max_size: Optional[int] = None
) -> ArrayLike:
    """CenterPoint's circle NMS: greedy suppression of centres within ``min_distance`` metres.

    A box is suppressed by a kept higher-ranked box when ``sqrt((x_i - x_j)^2 + (y_i - y_j)^2) <=
    min_distance``. Boxes are ranked by score (descending; ties by index).

    Relation to CenterPoint: its ``circle_nms(dets, thresh)`` compares the SQUARED distance with ``thresh``
    (``dist^2 <= thresh``), and its configs pass ``min_radius`` (e.g. 4 for nuScenes cars) as ``thresh``.
    Here the argument is a distance in metres, so CenterPoint's ``min_radius = r`` is
    ``min_distance = sqrt(r)`` (``r = 4`` -> 2 m). CenterPoint breaks score ties by its
    ``argsort()[::-1]`` order (higher index first); here the lower index wins.

    Args:
        centers: ``[N, >=2]`` float32/float64 whose first two columns are the BEV centre ``(x, y)``: centres
            ``[N, 2]`` or whole boxes ``[N, >=7]`` (torch or numpy).
        scores: ``[N]`` real scores, of the same kind and device.
        min_distance: suppression radius in metres (``>= 0``).
        post_max_size: return at most this many boxes (``None``: all kept).

    Returns:
        int64 ``[K]`` indices into ``centers`` of the kept boxes, in descending score order.
    """
    center_tensor, score_tensor, radius, was_numpy = _checked_inputs(
        centers, "centers", 2, scores, min_distance, "min_distance", "metres", post_max_size=post_max_size
    )
    order = _ranking(score_tensor, None)
    xy = center_tensor[order, 0:2]
    count = xy.shape[0]
    columns = torch.arange(count, device=xy.device)
    firsts, seconds = [], []
    for start, stop in row_blocks(count, count):
        delta = xy[start:stop, None, :] - xy[None, :, :]
        close = delta[..., 0] ** 2 + delta[..., 1] ** 2 <= radius * radius
        close &= torch.arange(start, stop, device=xy.device)[:, None] < columns[None, :]
        rows, cols = close.nonzero(as_tuple=True)
        firsts.append(rows + start)
        seconds.append(cols)
    empty = torch.zeros(0, dtype=torch.long, device=xy.device)
    first = torch.cat(firsts) if firsts else empty
    second = torch.cat(seconds) if seconds else empty
    return _kept(order, first, second, post_max_size, was_numpy)
