"""CenterPoint training targets: Gaussian heatmaps and per-object regression targets on the BEV map.

For a task with classes ``c_1 .. c_n`` and a BEV map of ``H x W`` cells (cell ``(ix, iy)`` covers
``[x_0 + ix s_x, x_0 + (ix + 1) s_x) x [y_0 + iy s_y, y_0 + (iy + 1) s_y)``, with ``(x_0, y_0)`` the
point-cloud range's minimum corner and ``(s_x, s_y)`` the cell size), each ground-truth box of the task

* puts a Gaussian peak on channel ``label`` of the heatmap ``[n, H, W]``, centred on the cell that holds
  its centre: ``G(u, v) = exp(-(u^2 + v^2) / (2 sigma^2))`` for offsets ``|u|, |v| <= r`` cells,
  ``sigma = (2 r + 1) / 6``, merged by maximum with the peaks already drawn; ``r`` is CornerNet's
  radius (:func:`gaussian_radius`) of the box's BEV footprint in cells, floored to an int and raised to
  ``min_radius``;
* gets a slot ``k < max_objects``: the flat cell index ``iy W + ix``, a mask bit and the regression target
  of :func:`largekernel3d.boxes.encode_center_boxes` (sub-cell offset x, y; z; log dx, dy, dz; sin, cos of
  yaw; vx, vy when predicted).

Boxes whose centre falls outside the grid, or whose BEV size is not positive, are skipped; a frame
without boxes gives an all-zero heatmap and an all-false mask.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Sequence, Tuple, cast

import torch
from torch import Tensor

from ...boxes import encode_center_boxes

RADIUS_RULES = ("centerpoint", "cornernet")


@dataclass(frozen=True)
class CenterTargetConfig:
    """How ground-truth boxes become heatmap and regression targets.

    Attributes:
        gaussian_overlap: the IoU a box displaced by the radius must keep (CornerNet's ``min_overlap``).
        min_radius: lower bound of the Gaussian radius, in cells.
        max_objects: regression slots per task and sample; boxes past it are dropped (heatmap included).
        radius_rule: ``"centerpoint"`` (the radius CenterPoint and OpenPCDet train with) or
            ``"cornernet"`` (the exact roots of the three quadratics); see :func:`gaussian_radius`.
    """

    gaussian_overlap: float = 0.1
    min_radius: int = 2
    max_objects: int = 500
    radius_rule: str = "centerpoint"

    def __post_init__(self) -> None:
        if not 0.0 < float(self.gaussian_overlap) < 1.0:
            raise ValueError(f"gaussian_overlap must lie in (0, 1), got {self.gaussian_overlap!r}")
        if isinstance(self.min_radius, bool) or not isinstance(self.min_radius, int) or self.min_radius < 0:
            raise ValueError(f"min_radius must be an int >= 0 (cells), got {self.min_radius!r}")
        if isinstance(self.max_objects, bool) or not isinstance(self.max_objects, int) or self.max_objects < 1:
            raise ValueError(f"max_objects must be an int >= 1, got {self.max_objects!r}")
        if self.radius_rule not in RADIUS_RULES:
            raise ValueError(f"radius_rule must be one of {RADIUS_RULES}, got {self.radius_rule!r}")


def gaussian_radius(size_x: Tensor, size_y: Tensor, min_overlap: float, rule: str = "centerpoint") -> Tensor:
    """CornerNet's Gaussian radius of boxes ``size_x x size_y`` (any unit; the radius has the same unit).

    CornerNet asks how far ``r`` the two corners of a box ``w x h`` (``w + h = s``, ``w h = p``) may move
    while the IoU with the original stays ``>= o``, in three cases, each a quadratic ``a r^2 + b r + c = 0``:

    1. both corners move the same way (a shifted copy): ``(w - r)(h - r) / (2 p - (w - r)(h - r)) = o``,
       i.e. ``r^2 - s r + p (1 - o) / (1 + o) = 0``;
    2. both move inwards (a box inside the original): ``(w - 2r)(h - 2r) / p = o``,
       i.e. ``4 r^2 - 2 s r + p (1 - o) = 0``;
    3. both move outwards (a box around the original): ``p / ((w + 2r)(h + 2r)) = o``,
       i.e. ``4 o r^2 + 2 o s r - p (1 - o) = 0``.

    ``rule="cornernet"`` returns the smallest of the exact roots (the smaller root in cases 1 and 2, the
    positive root in case 3), so every case keeps IoU ``>= o``. ``rule="centerpoint"`` returns what
    CenterPoint and OpenPCDet compute and train with: ``min_k (B_k + sqrt(B_k^2 - 4 A_k C_k)) / 2`` with
    ``(A, B, C)`` = ``(1, s, p (1 - o)/(1 + o))``, ``(4, 2 s, p (1 - o))``, ``(4 o, -2 o s, p (o - 1))``:
    the larger root of case 1, four times the larger root of case 2 and ``4 o`` times the root of case 3
    (the division by ``2 a`` is missing). Models trained with those targets expect it.

    Args:
        size_x, size_y: box sizes ``[...]`` (same shape).
        min_overlap: ``o`` in ``(0, 1)``.
        rule: ``"centerpoint"`` or ``"cornernet"``.
    Returns:
        radii ``[...]``, in the unit of the sizes.
    """
    if rule not in RADIUS_RULES:
        raise ValueError(f"rule must be one of {RADIUS_RULES}, got {rule!r}")
    o = float(min_overlap)
    if not 0.0 < o < 1.0:
        raise ValueError(f"min_overlap must lie in (0, 1), got {min_overlap!r}")
    s = size_x + size_y
    p = size_x * size_y
    disc1 = (s * s - 4.0 * p * (1.0 - o) / (1.0 + o)).clamp_min(0.0).sqrt()
    disc2 = (4.0 * s * s - 16.0 * p * (1.0 - o)).clamp_min(0.0).sqrt()
    disc3 = (4.0 * o * o * s * s + 16.0 * o * p * (1.0 - o)).sqrt()
    if rule == "cornernet":
        r1 = (s - disc1) / 2.0
        r2 = (2.0 * s - disc2) / 8.0
        r3 = (disc3 - 2.0 * o * s) / (8.0 * o)
    else:
        r1 = (s + disc1) / 2.0
        r2 = (2.0 * s + disc2) / 2.0
        r3 = (disc3 - 2.0 * o * s) / 2.0
    return torch.minimum(torch.minimum(r1, r2), r3)


def gaussian_kernel(radius: int, dtype: torch.dtype = torch.float32, device: torch.device | None = None) -> Tensor:
    """The ``(2r + 1) x (2r + 1)`` Gaussian ``exp(-(u^2 + v^2) / (2 sigma^2))``, ``sigma = (2 r + 1) / 6``.

    ``u, v`` run over ``-r .. r``; the centre is exactly 1. Values below ``eps_64 * max`` (float64's machine
    epsilon) are set to 0, as CenterNet does.
    """
    if isinstance(radius, bool) or not isinstance(radius, int) or radius < 0:
        raise ValueError(f"radius must be an int >= 0, got {radius!r}")
    sigma = (2 * radius + 1) / 6.0
    u = torch.arange(-radius, radius + 1, dtype=torch.float64)
    g = torch.exp(-(u[:, None] ** 2 + u[None, :] ** 2) / (2.0 * sigma * sigma))
    g[g < torch.finfo(torch.float64).eps * g.max()] = 0.0
    return g.to(dtype=dtype, device=device)


def draw_gaussian_(heatmap: Tensor, center_xy: Tuple[int, int], radius: int) -> Tensor:
    """Max-merge :func:`gaussian_kernel` ``(radius)`` into ``heatmap [H, W]`` centred on cell ``(ix, iy)``.

    ``heatmap[iy + v, ix + u] = max(heatmap[iy + v, ix + u], G(u, v))`` for the cells inside the map;
    modifies ``heatmap`` in place and returns it.
    """
    if heatmap.dim() != 2:
        raise ValueError(f"heatmap must be [H, W], got shape {tuple(heatmap.shape)}")
    h, w = heatmap.shape
    ix, iy = int(center_xy[0]), int(center_xy[1])
    if not (0 <= ix < w and 0 <= iy < h):
        raise ValueError(f"center_xy {center_xy} lies outside the {h} x {w} heatmap")
    g = gaussian_kernel(radius, dtype=heatmap.dtype, device=heatmap.device)
    left, right = min(ix, radius), min(w - ix, radius + 1)
    top, bottom = min(iy, radius), min(h - iy, radius + 1)
    patch = heatmap[iy - top : iy + bottom, ix - left : ix + right]
    torch.maximum(patch, g[radius - top : radius + bottom, radius - left : radius + right], out=patch)
    return heatmap


@dataclass(frozen=True)
class TaskTargets:
    """The targets of one task for a batch.

    Attributes:
        heatmap: ``[B, n_task, H, W]`` Gaussian peaks in ``[0, 1]`` (exactly 1 at object centres).
        indices: ``[B, K]`` int64 flat cell index ``iy W + ix`` of each slot (0 in unused slots).
        mask: ``[B, K]`` bool, True for the slots that hold an object.
        boxes: ``[B, K, code_size]`` regression targets (zeros in unused slots).
    """

    heatmap: Tensor
    indices: Tensor
    mask: Tensor
    boxes: Tensor


def build_task_targets(
    gt_boxes: Sequence[Tensor],
    gt_labels: Sequence[Tensor],
    task_class_ids: Sequence[Sequence[int]],
    bev_shape: Tuple[int, int],
    origin_xy: Tuple[float, float],
    cell_size_xy: Tuple[float, float],
    config: CenterTargetConfig,
    code_size: int,
) -> List[TaskTargets]:
    """Targets of every task for a batch (see the module docstring).

    Args:
        gt_boxes: per sample ``[M_b, 7 | 9]`` boxes ``x, y, z, dx, dy, dz, yaw (, vx, vy)`` (validated by
            the caller: finite, enough columns).
        gt_labels: per sample ``[M_b]`` int64 global class ids.
        task_class_ids: per task, the global class ids of its channels, in channel order.
        bev_shape: ``(H, W)``.
        origin_xy: ``(x_0, y_0)``, the minimum corner of the map in metres.
        cell_size_xy: ``(s_x, s_y)`` metres per cell.
        config: radius and slot settings.
        code_size: 8 (no velocity) or 10 (velocity; needs 9-column boxes).
    Returns:
        one :class:`TaskTargets` per task, on the boxes' device, float32 heatmap and boxes (built on the
        CPU: drawing is a loop over boxes). Needs at least one sample.
    """
    h, w = bev_shape
    k_max = config.max_objects
    per_task: List[Tuple[List[Tensor], List[Tensor], List[Tensor], List[Tensor]]] = [
        ([], [], [], []) for _ in task_class_ids
    ]
    for boxes, labels in zip(gt_boxes, gt_labels):
        device = boxes.device
        boxes64 = boxes.detach().to(device="cpu", dtype=torch.float64)[:, : 7 if code_size == 8 else 9]
        labels = labels.detach().cpu()
        if boxes64.shape[0] > 0:
            encoded = encode_center_boxes(boxes64, origin_xy, cell_size_xy)
            cells, regs = cast(Tensor, encoded[0]), cast(Tensor, encoded[1])
        else:
            cells = torch.zeros(0, 2, dtype=torch.int64)
            regs = torch.zeros(0, code_size, dtype=torch.float64)
        inside = (
            (cells[:, 0] >= 0)
            & (cells[:, 0] < w)
            & (cells[:, 1] >= 0)
            & (cells[:, 1] < h)
            & (boxes64[:, 3] > 0)
            & (boxes64[:, 4] > 0)
        )
        radii = gaussian_radius(
            boxes64[:, 3] / cell_size_xy[0],
            boxes64[:, 4] / cell_size_xy[1],
            config.gaussian_overlap,
            config.radius_rule,
        )
        radii = radii.floor().clamp_min(config.min_radius)
        for t, class_ids in enumerate(task_class_ids):
            heatmap = torch.zeros(len(class_ids), h, w, dtype=torch.float32)
            indices = torch.zeros(k_max, dtype=torch.int64)
            mask = torch.zeros(k_max, dtype=torch.bool)
            targets = torch.zeros(k_max, code_size, dtype=torch.float32)
            channel_of = {int(c): i for i, c in enumerate(class_ids)}
            in_task = torch.isin(labels, torch.tensor([int(c) for c in class_ids], dtype=labels.dtype))
            chosen = torch.nonzero(in_task & inside).flatten()[:k_max]
            for slot, j in enumerate(chosen.tolist()):
                ix, iy = int(cells[j, 0]), int(cells[j, 1])
                draw_gaussian_(heatmap[channel_of[int(labels[j])]], (ix, iy), int(radii[j]))
                indices[slot] = iy * w + ix
            n = int(chosen.numel())
            mask[:n] = True
            targets[:n] = regs[chosen].to(torch.float32)
            for store, value in zip(per_task[t], (heatmap, indices, mask, targets)):
                store.append(value.to(device))
    return [
        TaskTargets(heatmap=torch.stack(hm), indices=torch.stack(ind), mask=torch.stack(msk), boxes=torch.stack(tgt))
        for hm, ind, msk, tgt in per_task
    ]


def gather_bev(feature: Tensor, indices: Tensor) -> Tensor:
    """``out[b, k, c] = feature[b, c, i // W, i % W]`` with ``i = indices[b, k]``.

    Args:
        feature: ``[B, C, H, W]``.
        indices: ``[B, K]`` int64 flat cell indices ``iy W + ix``.
    Returns:
        ``[B, K, C]``.
    """
    b, c = feature.shape[:2]
    flat = feature.reshape(b, c, -1)
    return flat.gather(2, indices[:, None, :].expand(b, c, indices.shape[1])).transpose(1, 2)


__all__ = [
    "CenterTargetConfig",
    "RADIUS_RULES",
    "TaskTargets",
    "build_task_targets",
    "draw_gaussian_",
    "gather_bev",
    "gaussian_kernel",
    "gaussian_radius",
]
