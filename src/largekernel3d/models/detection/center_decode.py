"""CenterPoint decoding: from per-task heatmaps and regression maps to boxes, scores and labels.

Per task and sample:

1. ``P = sigmoid(hm)`` ``[n, H, W]``; keep only local maxima, ``P * [P == maxpool_3x3(P)]`` (a cheap NMS
   on the map: a centre's neighbours drop out);
2. the ``top_k`` largest entries over classes and cells give a class ``c``, a cell ``(ix, iy)`` and a score;
3. the regression maps at those cells (offset x, y; z; log dx, dy, dz; sin, cos yaw; vx, vy) decode into
   boxes with :func:`largekernel3d.boxes.decode_center_boxes`: ``x = x_0 + (ix + offset_x) s_x``,
   ``y = y_0 + (iy + offset_y) s_y``, ``d = exp(log d)``, ``yaw = atan2(sin, cos)``;
4. boxes scoring ``<= score_threshold``, boxes whose regression is no valid box (non-finite, size <= 0) and
   boxes whose centre leaves ``post_center_range`` are dropped;
5. class-agnostic NMS within the task: rotated BEV IoU (:func:`largekernel3d.boxes.nms_bev`) or centre
   distance (:func:`largekernel3d.boxes.circle_nms`), keeping at most ``post_max_size``.

The tasks' survivors are concatenated, their labels mapped from channel ``c`` of task ``t`` to the global
class id ``task_class_ids[t][c]``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple, cast

import torch
import torch.nn.functional as F
from torch import Tensor

from ...boxes import circle_nms, decode_center_boxes, nms_bev
from .center_targets import gather_bev

NMS_TYPES = ("rotate", "circle")
REGRESSION_HEADS = ("center", "center_z", "dim", "rot")


@dataclass(frozen=True)
class CenterDecodeConfig:
    """Post-processing of CenterPoint predictions.

    Attributes:
        score_threshold: keep detections with score ``> score_threshold``.
        top_k: peaks taken per task and sample before NMS (over all the task's classes and cells).
        post_max_size: detections kept per task and sample after NMS.
        nms_type: ``"rotate"`` (rotated BEV IoU) or ``"circle"`` (centre distance).
        nms_iou: IoU above which ``"rotate"`` NMS suppresses a lower-scored box.
        circle_min_distances: for ``"circle"``, one distance in metres per task: a lower-scored centre
            closer than it to a kept one is suppressed. (CenterPoint's det3d config lists
            ``min_radius = [4, 12, 10, 1, 0.85, 0.175]`` for nuScenes, but compares them with *squared*
            distances; the equivalent distances are their square roots.)
        post_center_range: ``(x_min, y_min, z_min, x_max, y_max, z_max)``: drop boxes whose centre lies
            outside (bounds inclusive); ``None`` keeps all.
    """

    score_threshold: float = 0.1
    top_k: int = 500
    post_max_size: int = 83
    nms_type: str = "rotate"
    nms_iou: float = 0.2
    circle_min_distances: Optional[Tuple[float, ...]] = None
    post_center_range: Optional[Tuple[float, float, float, float, float, float]] = None

    def __post_init__(self) -> None:
        if not (isinstance(self.score_threshold, (int, float)) and math.isfinite(self.score_threshold)):
            raise ValueError(f"score_threshold must be a finite number, got {self.score_threshold!r}")
        for name in ("top_k", "post_max_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        if self.nms_type not in NMS_TYPES:
            raise ValueError(f"nms_type must be one of {NMS_TYPES}, got {self.nms_type!r}")
        if not (isinstance(self.nms_iou, (int, float)) and 0.0 <= float(self.nms_iou) <= 1.0):
            raise ValueError(f"nms_iou must lie in [0, 1], got {self.nms_iou!r}")
        if self.circle_min_distances is not None:
            dists = tuple(float(d) for d in self.circle_min_distances)
            if not dists or not all(0.0 <= d < float("inf") for d in dists):
                raise ValueError(
                    f"circle_min_distances must be finite distances >= 0 (metres), one per task, "
                    f"got {self.circle_min_distances!r}"
                )
            object.__setattr__(self, "circle_min_distances", dists)
        elif self.nms_type == "circle":
            raise ValueError("nms_type 'circle' needs circle_min_distances (metres, one per task)")
        if self.post_center_range is not None:
            rng = tuple(float(v) for v in self.post_center_range)
            if len(rng) != 6 or not all(math.isfinite(v) for v in rng) or any(rng[a] > rng[a + 3] for a in range(3)):
                raise ValueError(
                    f"post_center_range must be (x_min, y_min, z_min, x_max, y_max, z_max) with "
                    f"min <= max, got {self.post_center_range!r}"
                )
            object.__setattr__(self, "post_center_range", rng)


@dataclass
class Detections:
    """The detections of one sample.

    Attributes:
        boxes: ``[K, 7 | 9]`` ``x, y, z (centre), dx, dy, dz, yaw (, vx, vy)`` in the LiDAR frame.
        scores: ``[K]`` in ``(0, 1)``.
        labels: ``[K]`` int64 ids into the head's ``class_names``.
    """

    boxes: Tensor
    scores: Tensor
    labels: Tensor

    def __len__(self) -> int:
        return int(self.scores.shape[0])


def local_peaks(heat: Tensor, kernel: int = 3) -> Tensor:
    """``heat * [heat == maxpool_{kernel x kernel}(heat)]`` on ``[B, n, H, W]`` (stride 1, same padding)."""
    pooled = F.max_pool2d(heat, kernel_size=kernel, stride=1, padding=(kernel - 1) // 2)
    return heat * (pooled == heat).to(heat.dtype)


def top_peaks(heat: Tensor, k: int) -> Tuple[Tensor, Tensor, Tensor]:
    """The ``k`` largest entries of ``heat [B, n, H, W]`` over classes and cells (``k`` capped at ``n H W``).

    Returns:
        scores ``[B, k]`` (descending), classes ``[B, k]`` int64 and flat cell indices ``[B, k]`` int64
        (``iy W + ix``).
    """
    b, n, h, w = heat.shape
    scores, flat = torch.topk(heat.reshape(b, n * h * w), min(k, n * h * w), dim=1)
    return scores, torch.div(flat, h * w, rounding_mode="floor"), flat % (h * w)


def _regression_maps(pred: Dict[str, Tensor], with_velocity: bool) -> Tensor:
    names = REGRESSION_HEADS + (("vel",) if with_velocity else ())
    return torch.cat([pred[name] for name in names], dim=1)


def decode_task(
    pred: Dict[str, Tensor],
    origin_xy: Tuple[float, float],
    cell_size_xy: Tuple[float, float],
    config: CenterDecodeConfig,
    task_index: int = 0,
) -> List[Tuple[Tensor, Tensor, Tensor]]:
    """Steps 1-5 of the module docstring for one task.

    Args:
        pred: the task's head outputs: ``"hm"`` ``[B, n, H, W]`` logits, ``"center"`` ``[B, 2, H, W]``,
            ``"center_z"`` ``[B, 1, ..]``, ``"dim"`` ``[B, 3, ..]`` (log sizes), ``"rot"`` ``[B, 2, ..]``
            (sin, cos) and, when present, ``"vel"`` ``[B, 2, ..]``.
        origin_xy, cell_size_xy: the map's minimum corner and cell size in metres.
        config: thresholds and NMS settings.
        task_index: which entry of ``config.circle_min_distances`` applies.
    Returns:
        per sample ``(boxes [K, 7 | 9], scores [K], channel ids [K] int64)``, sorted by score.
    """
    dtype = torch.float64 if pred["hm"].dtype == torch.float64 else torch.float32  # half precision decodes in fp32
    heat = local_peaks(torch.sigmoid(pred["hm"].to(dtype)))
    w = heat.shape[-1]
    regs = _regression_maps(pred, "vel" in pred).to(dtype)
    scores, classes, cells = top_peaks(heat, config.top_k)
    gathered = gather_bev(regs, cells)
    cells_xy = torch.stack(((cells % w), torch.div(cells, w, rounding_mode="floor")), dim=-1).to(gathered.dtype)
    boxes = cast(Tensor, decode_center_boxes(cells_xy, gathered, origin_xy, cell_size_xy))
    # a peak whose regression gives no valid box (non-finite values, a log-size that under- or overflows exp,
    # as an untrained head's can) is no detection
    keep = (scores > config.score_threshold) & torch.isfinite(boxes).all(dim=-1) & (boxes[..., 3:6] > 0).all(dim=-1)
    if config.post_center_range is not None:
        rng = torch.tensor(config.post_center_range, dtype=boxes.dtype, device=boxes.device)
        keep &= ((boxes[..., :3] >= rng[:3]) & (boxes[..., :3] <= rng[3:])).all(dim=-1)
    out = []
    for i in range(heat.shape[0]):
        bx, sc, cl = boxes[i][keep[i]], scores[i][keep[i]], classes[i][keep[i]]
        if bx.shape[0] > 0:
            if config.nms_type == "rotate":
                sel = nms_bev(bx, sc, config.nms_iou, post_max_size=config.post_max_size)
            else:
                dists = config.circle_min_distances or ()  # set whenever nms_type is "circle"
                sel = circle_nms(bx[:, :2], sc, dists[task_index], post_max_size=config.post_max_size)
            bx, sc, cl = bx[sel], sc[sel], cl[sel]
        out.append((bx, sc, cl))
    return out


def decode_detections(
    preds: Sequence[Dict[str, Tensor]],
    task_class_ids: Sequence[Sequence[int]],
    origin_xy: Tuple[float, float],
    cell_size_xy: Tuple[float, float],
    config: CenterDecodeConfig,
) -> List[Detections]:
    """Decode every task (:func:`decode_task`) and concatenate the tasks per sample, labels made global.

    Args:
        preds: one dict per task (see :func:`decode_task`).
        task_class_ids: per task, the global class id of each heatmap channel.
    Returns:
        one :class:`Detections` per sample, tasks in order, each task's detections by descending score.
    """
    if len(preds) != len(task_class_ids):
        raise ValueError(f"got predictions for {len(preds)} tasks but the head has {len(task_class_ids)}")
    if config.nms_type == "circle" and len(config.circle_min_distances or ()) != len(task_class_ids):
        raise ValueError(
            f"circle_min_distances has {len(config.circle_min_distances or ())} entries, "
            f"needs one per task ({len(task_class_ids)})"
        )
    per_task = [decode_task(p, origin_xy, cell_size_xy, config, t) for t, p in enumerate(preds)]
    batch = len(per_task[0]) if per_task else 0
    out = []
    for i in range(batch):
        boxes, scores, labels = [], [], []
        for t, results in enumerate(per_task):
            bx, sc, cl = results[i]
            mapping = torch.tensor(list(task_class_ids[t]), dtype=torch.int64, device=cl.device)
            boxes.append(bx)
            scores.append(sc)
            labels.append(mapping[cl])
        out.append(Detections(boxes=torch.cat(boxes), scores=torch.cat(scores), labels=torch.cat(labels)))
    return out


__all__ = [
    "CenterDecodeConfig",
    "Detections",
    "NMS_TYPES",
    "decode_detections",
    "decode_task",
    "local_peaks",
    "top_peaks",
]
