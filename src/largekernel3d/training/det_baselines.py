"""A chance-level detection baseline, the floor a trained detector's AP is read against.

From the training frames, per class ``c``: the mean box size ``d_c``, the mean box-centre height ``z_c`` and the
mean number of boxes per frame ``n_c``. On each evaluated frame the baseline places ``round(n_c)`` boxes of size
``d_c`` at height ``z_c``, at centres uniform over the BEV range, with uniform yaw and uniform scores: a detector
that knows the class statistics but not where anything is. Its AP measures what matching by chance gives under
the metric's thresholds (it is not zero for loose centre-distance thresholds and many objects).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Iterable, List, Sequence

import numpy as np

from ..data.detection.frame import LidarFrame
from .det_evaluation import FramePrediction


@dataclass(frozen=True)
class ClassBoxStatistics:
    """Per class: ``mean_size [C, 3]`` (dx, dy, dz), ``mean_z [C]``, ``boxes_per_frame [C]``."""

    mean_size: np.ndarray
    mean_z: np.ndarray
    boxes_per_frame: np.ndarray


def class_box_statistics(frames: Iterable[LidarFrame], num_classes: int) -> ClassBoxStatistics:
    """The statistics of the boxes of ``frames`` (classes without boxes get size 1 m and no boxes)."""
    sums = np.zeros((num_classes, 4))
    counts = np.zeros(num_classes)
    n = 0
    for frame in frames:
        n += 1
        for c in range(num_classes):
            boxes = frame.boxes[frame.labels == c]
            counts[c] += len(boxes)
            sums[c] += np.concatenate([boxes[:, 3:6], boxes[:, 2:3]], axis=1).sum(axis=0) if len(boxes) else 0.0
    if n == 0:
        raise ValueError("class_box_statistics needs at least one frame")
    means = np.where(counts[:, None] > 0, sums / np.maximum(counts[:, None], 1), [1.0, 1.0, 1.0, 0.0])
    return ClassBoxStatistics(mean_size=means[:, :3], mean_z=means[:, 3], boxes_per_frame=counts / n)


def random_box_predictions(
    frames: Sequence[FramePrediction], stats: ClassBoxStatistics, point_cloud_range: Sequence[float], seed: int = 0
) -> List[FramePrediction]:
    """The baseline's detections (module docstring) for each of ``frames`` (their ground truth is kept)."""
    rng = np.random.default_rng(seed)
    x0, y0, _, x1, y1, _ = (float(v) for v in point_cloud_range)
    out = []
    for frame in frames:
        boxes, labels = [], []
        for c, per_frame in enumerate(stats.boxes_per_frame):
            k = int(round(per_frame))
            if k == 0:
                continue
            centres = np.stack([rng.uniform(x0, x1, k), rng.uniform(y0, y1, k), np.full(k, stats.mean_z[c])], axis=1)
            yaw = rng.uniform(-np.pi, np.pi, (k, 1))
            boxes.append(np.concatenate([centres, np.tile(stats.mean_size[c], (k, 1)), yaw], axis=1))
            labels.append(np.full(k, c, dtype=np.int64))
        box_array = np.concatenate(boxes).astype(np.float32) if boxes else np.zeros((0, 7), np.float32)
        label_array = np.concatenate(labels) if labels else np.zeros(0, np.int64)
        out.append(
            replace(
                frame,
                boxes=box_array,
                labels=label_array,
                scores=rng.uniform(0, 1, len(label_array)).astype(np.float32),
            )
        )
    return out


__all__ = ["ClassBoxStatistics", "class_box_statistics", "random_box_predictions"]
