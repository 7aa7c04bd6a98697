"""Dataset-agnostic detection AP (PandaSet, generated frames, any dataset with boxes and class ids).

Per class, detections are matched to ground truth with :func:`~.matching.greedy_match` by one of

* ``"bev_iou"``: rotated BEV IoU, a match needs ``IoU > t``;
* ``"iou_3d"``: rotated 3D IoU, ``IoU > t``;
* ``"center_distance"``: BEV centre distance ``||(x, y)_det - (x, y)_gt||``, a match needs ``dist < t``;

at one threshold per class (IoU) or at each of a list of thresholds (distance, as nuScenes: AP averaged
over them). Ground truth flagged ``ignored`` absorbs one detection without counting. AP is the envelope
interpolation of :mod:`.curves`:

    AP = mean_j max {precision_k : recall_k >= r_j}
    r_j = j / 40, j = 1..40 (``num_recall_points=40``)  or  j / 100, j = 0..100 (101)

in percent; NaN for a class without counted ground truth; mAP is the mean over the classes that have some.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from largekernel3d.boxes import bev_iou, iou_3d

from .curves import PrecisionRecallCurve, envelope_ap
from .matching import greedy_match, match_problem
from .report import csv_table, markdown_table

MATCHINGS: Tuple[str, ...] = ("bev_iou", "iou_3d", "center_distance")


@dataclass
class FrameBoxes:
    """The boxes of one frame (ground truth or detections).

    Attributes:
        boxes: ``[N, >=7]`` ``[x, y, z, dx, dy, dz, yaw, ...]`` (columns after 7 are not used).
        labels: int ``[N]`` class ids into the evaluation's ``class_names``.
        scores: ``[N]`` detection scores (detections only).
        ignored: bool ``[N]`` ground truth that absorbs a detection without counting (default none).
    """

    boxes: np.ndarray
    labels: np.ndarray
    scores: Optional[np.ndarray] = None
    ignored: Optional[np.ndarray] = None

    def __post_init__(self) -> None:
        boxes = np.asarray(self.boxes, dtype=np.float64)
        if boxes.size == 0:
            boxes = boxes.reshape(0, 7)
        if boxes.ndim != 2 or boxes.shape[1] < 7:
            raise ValueError(f"boxes must have shape [N, >=7], got {boxes.shape}")
        if not np.isfinite(boxes[:, :7]).all() or (boxes[:, 3:6] <= 0).any():
            raise ValueError("boxes must be finite with positive sizes")
        self.boxes = np.ascontiguousarray(boxes[:, :7])
        n = self.boxes.shape[0]
        labels = np.asarray(self.labels).reshape(-1)
        if labels.size and not np.issubdtype(labels.dtype, np.integer):
            raise TypeError(f"labels must be integer class ids, got {labels.dtype}")
        if labels.shape != (n,):
            raise ValueError(f"labels must have shape [{n}], got {labels.shape}")
        self.labels = labels.astype(np.int64)
        if self.scores is not None:
            self.scores = np.asarray(self.scores, dtype=np.float64).reshape(-1)
            if self.scores.shape != (n,) or not np.isfinite(self.scores).all():
                raise ValueError(f"scores must be [{n}] finite numbers, got shape {self.scores.shape}")
        if self.ignored is not None:
            self.ignored = np.asarray(self.ignored, dtype=bool).reshape(-1)
            if self.ignored.shape != (n,):
                raise ValueError(f"ignored must have shape [{n}], got {self.ignored.shape}")

    @classmethod
    def from_frame(cls, frame: Any) -> "FrameBoxes":
        """From any object with ``boxes`` and ``labels`` (e.g. a ``LidarFrame``), and ``scores`` if it has them."""
        return frame if isinstance(frame, cls) else cls(frame.boxes, frame.labels, getattr(frame, "scores", None))


def _affinity(matching: str, det: np.ndarray, gt: np.ndarray) -> np.ndarray:
    if matching == "center_distance":
        return np.hypot(det[:, None, 0] - gt[None, :, 0], det[:, None, 1] - gt[None, :, 1])
    return (bev_iou if matching == "bev_iou" else iou_3d)(det, gt)


def _class_thresholds(matching: str, thresholds, class_names: Sequence[str]) -> List[Tuple[float, ...]]:
    if isinstance(thresholds, Mapping):
        missing = [c for c in class_names if c not in thresholds]
        if missing:
            raise ValueError(f"thresholds has no value for classes {missing}")
        per_class = [thresholds[c] for c in class_names]
    else:
        per_class = [thresholds] * len(class_names)
    out = []
    for c, t in zip(class_names, per_class):
        values = tuple(float(v) for v in (t if isinstance(t, (list, tuple, np.ndarray)) else [t]))
        if not values:
            raise ValueError(f"class {c!r} has no threshold")
        if matching != "center_distance" and not all(0 < v < 1 for v in values):
            raise ValueError(f"IoU thresholds must lie in (0, 1), got {values} for {c!r}")
        if matching == "center_distance" and not all(v > 0 for v in values):
            raise ValueError(f"distance thresholds must be positive, got {values} for {c!r}")
        out.append(values)
    return out


def evaluate_ap(
    gt: Sequence[Any],
    detections: Sequence[Any],
    class_names: Sequence[str],
    matching: str = "bev_iou",
    thresholds: Union[float, Sequence[float], Mapping[str, Union[float, Sequence[float]]]] = 0.5,
    num_recall_points: int = 40,
) -> "APMetrics":
    """Per-class AP and mAP (module docstring).

    Args:
        gt: per frame a :class:`FrameBoxes` (or anything with ``boxes`` and ``labels``, e.g. a ``LidarFrame``).
        detections: per frame a :class:`FrameBoxes` with scores, in the same order.
        class_names: names of the class ids ``0..C-1``.
        matching: ``"bev_iou"``, ``"iou_3d"`` or ``"center_distance"``.
        thresholds: one value or a list of values for every class, or class name -> value(s).
        num_recall_points: 40 or 101.

    Returns:
        :class:`APMetrics` (AP in percent).
    """
    if matching not in MATCHINGS:
        raise ValueError(f"matching must be one of {MATCHINGS}, got {matching!r}")
    if num_recall_points not in (40, 101):
        raise ValueError(f"num_recall_points must be 40 or 101, got {num_recall_points!r}")
    if len(gt) != len(detections):
        raise ValueError(f"gt has {len(gt)} frames but detections has {len(detections)}")
    class_names = tuple(class_names)
    per_class = _class_thresholds(matching, thresholds, class_names)
    gt = [FrameBoxes.from_frame(g) for g in gt]
    detections = [FrameBoxes.from_frame(d) for d in detections]
    for f, d in enumerate(detections):
        if d.scores is None:
            raise ValueError(f"detections of frame {f} have no scores")
    for what, frames in (("gt", gt), ("detections", detections)):
        for f, b in enumerate(frames):
            if b.labels.size and (b.labels.min() < 0 or b.labels.max() >= len(class_names)):
                raise ValueError(f"{what} of frame {f} has labels outside 0..{len(class_names) - 1}")
    width = max(len(t) for t in per_class)
    ap = np.full((len(class_names), width), np.nan)
    num_gt = np.zeros(len(class_names), dtype=np.int64)
    num_det = np.zeros(len(class_names), dtype=np.int64)
    for c in range(len(class_names)):
        scores, affinity, ignored = [], [], []
        for g, d in zip(gt, detections):
            gm, dm = g.labels == c, d.labels == c
            scores.append(d.scores[dm])
            affinity.append(_affinity(matching, d.boxes[dm], g.boxes[gm]))
            ignored.append(None if g.ignored is None else g.ignored[gm])
        problem = match_problem(scores, affinity, higher_is_better=matching != "center_distance", gt_ignored=ignored)
        num_gt[c] = problem.num_counted_gt
        num_det[c] = problem.num_predictions
        for j, t in enumerate(per_class[c]):
            curve = PrecisionRecallCurve.from_match(problem.scores, greedy_match(problem, t))
            ap[c, j] = 100.0 * envelope_ap(curve, num_recall_points)
    return APMetrics(
        class_names=class_names,
        matching=matching,
        thresholds=tuple(per_class),
        ap=ap,
        num_gt=num_gt,
        num_det=num_det,
        num_recall_points=num_recall_points,
    )


@dataclass(frozen=True)
class APMetrics:
    """The result of :func:`evaluate_ap`.

    Attributes:
        class_names: ``C`` names; matching: the matching rule; thresholds: per class its thresholds.
        ap: ``[C, T]`` AP in percent per class and threshold (NaN past a class's own thresholds, or when the
            class has no counted ground truth).
        num_gt, num_det: ``[C]`` counted ground truth and detections per class.
        num_recall_points: 40 or 101.
    """

    class_names: Tuple[str, ...]
    matching: str
    thresholds: Tuple[Tuple[float, ...], ...]
    ap: np.ndarray
    num_gt: np.ndarray
    num_det: np.ndarray
    num_recall_points: int = 40

    @property
    def class_ap(self) -> np.ndarray:
        """``[C]`` AP per class, the mean over its thresholds (NaN without ground truth)."""
        out = np.full(len(self.class_names), np.nan)
        for c, t in enumerate(self.thresholds):
            if self.num_gt[c]:
                out[c] = float(np.mean(self.ap[c, : len(t)]))
        return out

    @property
    def mean_ap(self) -> float:
        """Mean of :attr:`class_ap` over the classes with ground truth (NaN if none)."""
        values = self.class_ap
        return float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")

    def to_dict(self) -> Dict[str, object]:
        return {
            "mAP": self.mean_ap,
            "matching": self.matching,
            "num_recall_points": self.num_recall_points,
            "per_class": {
                c: {
                    "thresholds": list(self.thresholds[i]),
                    "ap": self.ap[i, : len(self.thresholds[i])].tolist(),
                    "ap_mean": float(self.class_ap[i]),
                    "num_gt": int(self.num_gt[i]),
                    "num_det": int(self.num_det[i]),
                }
                for i, c in enumerate(self.class_names)
            },
        }

    def _table(self):
        shared = all(t == self.thresholds[0] for t in self.thresholds)
        width = self.ap.shape[1]
        unit = "m" if self.matching == "center_distance" else ""
        columns = [f"AP@{t:g}{unit}" for t in self.thresholds[0]] if shared else [f"AP #{j + 1}" for j in range(width)]
        header = (
            ["class", "GT", "det", "thresholds"] + (columns if width > 1 else []) + [f"AP (R{self.num_recall_points})"]
        )
        rows = []
        for c, name in enumerate(self.class_names):
            per_threshold = [float(v) for v in self.ap[c]] if width > 1 else []
            rows.append(
                [name, int(self.num_gt[c]), int(self.num_det[c]), "/".join(f"{t:g}" for t in self.thresholds[c])]
                + per_threshold
                + [float(self.class_ap[c])]
            )
        rows.append(
            ["mean", int(self.num_gt.sum()), int(self.num_det.sum()), self.matching]
            + [float("nan")] * (width if width > 1 else 0)
            + [self.mean_ap]
        )
        return header, rows

    def to_markdown(self) -> str:
        """Per-class AP (percent), one column per threshold when there are several, then the mAP row."""
        header, rows = self._table()
        return markdown_table(header, rows, decimals=2)

    def to_csv(self, path: Optional[Union[str, Path]] = None) -> str:
        """The same table as CSV; written to ``path`` when given."""
        header, rows = self._table()
        return csv_table(header, rows, path)


__all__ = ["MATCHINGS", "FrameBoxes", "evaluate_ap", "APMetrics"]
