"""KITTI 3D object detection AP (R40, or the older R11) on BEV and 3D rotated IoU, per difficulty.

The rules of the KITTI devkit (``evaluate_object.cpp``), applied to LiDAR-frame boxes
``[x, y, z, dx, dy, dz, yaw]``:

* **Difficulties** (easy, moderate, hard): minimum 2D box height 40 / 25 / 25 px, maximum occlusion
  0 / 1 / 2, maximum truncation 0.15 / 0.3 / 0.5. Each ground truth carries its *difficulty*, the easiest
  level whose limits it passes (:func:`~largekernel3d.data.detection.kitti.kitti_difficulty`; ``-1`` none,
  as OpenPCDet's infos store it; the devkit drops a box exactly 40 or 25 px high from that level, the
  stored difficulty keeps it). At level ``L`` a ground truth of the evaluated class counts when
  ``0 <= difficulty <= L``; otherwise it is ignored: it absorbs one detection that matches it, which is
  then neither TP nor FP.
* **Neighbouring classes** are ignored the same way: ``Van`` when evaluating ``Car``, ``Person_sitting`` for
  ``Pedestrian``. All other classes (and ``DontCare`` labels) play no part for the evaluated class.
* **Detections** of the evaluated class count. When their 2D box heights are given, those lower than the
  level's minimum height are left out (neither TP nor FP). The devkit lets them absorb the object they
  overlap instead: that changes none of its TP / FP counts, only, when such a detection outscores a
  counted one on the same object, which score enters its threshold list (a corner case not copied).
  :meth:`KittiDetections.from_lidar` gets the heights as OpenPCDet does, from the 3D boxes projected into
  image 2 with the frame's calibration. *LiDAR-only simplification:* without 2D heights every detection
  counts, so detections of far, tiny objects that the devkit would drop can be false positives here; keep
  detections inside the camera field of view, as OpenPCDet's KITTI pipeline does.
* **DontCare regions**: KITTI's ``DontCare`` labels have no 3D box, so they affect only the 2D image metric,
  which this module does not compute. Regions given here as 3D boxes act as the devkit's: an unmatched
  detection whose overlap with a region, intersection over the *detection's* area (BEV) or volume (3D), is
  above the class threshold is not a false positive.
* **Matching**: :func:`~.matching.greedy_match` at the class's IoU threshold (``IoU > t``; 0.7 car, 0.5
  pedestrian / cyclist; the loose set 0.5 / 0.25 / 0.25 on request), detections in descending score, each
  taking its best-overlapping free object. (The devkit loops over the objects instead; both assign the same
  pairs unless one detection overlaps two free objects above the threshold.)
* **AP**: :func:`~.curves.sampled_ap`, the devkit's 41 score thresholds and
  ``AP_R40 = sum_{m=1..40} p_m / 40`` (``AP_R11 = sum_{m=0,4,..,40} p_m / 11``), in percent.
  A class without counted ground truth at a level has AP NaN.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from largekernel3d.boxes import bev_iou, iou_3d
from largekernel3d.data.detection.classes import KITTI_CLASSES
from largekernel3d.data.detection.kitti import DIFFICULTY_THRESHOLDS, kitti_difficulty, project_boxes_to_image

from .curves import PrecisionRecallCurve, sampled_ap
from .matching import FP, IGNORED, MatchResult, greedy_match, match_problem, name_list
from .report import csv_table, markdown_table

KITTI_DIFFICULTIES: Tuple[str, ...] = ("easy", "moderate", "hard")
MIN_HEIGHT: Tuple[float, ...] = tuple(float(t[0]) for t in DIFFICULTY_THRESHOLDS)
"""Minimum 2D box height (pixels) of easy, moderate, hard."""
STRICT_IOU: Dict[str, float] = {"Car": 0.7, "Pedestrian": 0.5, "Cyclist": 0.5}
"""The benchmark's IoU thresholds (BEV and 3D)."""
LOOSE_IOU: Dict[str, float] = {"Car": 0.5, "Pedestrian": 0.25, "Cyclist": 0.25}
"""The second, looser set OpenPCDet also prints."""
NEIGHBOUR_CLASSES: Dict[str, Tuple[str, ...]] = {"Car": ("Van",), "Pedestrian": ("Person_sitting",)}
KITTI_METRICS: Tuple[str, ...] = ("bev", "3d")


def _boxes7(value, what: str) -> np.ndarray:
    boxes = np.asarray(value, dtype=np.float64)
    if boxes.size == 0:
        boxes = boxes.reshape(0, 7)
    if boxes.ndim != 2 or boxes.shape[1] < 7:
        raise ValueError(f"{what} must have shape [N, >=7] ([x, y, z, dx, dy, dz, yaw]), got {boxes.shape}")
    boxes = np.ascontiguousarray(boxes[:, :7])
    if not np.isfinite(boxes).all() or (boxes[:, 3:6] <= 0).any():
        raise ValueError(f"{what} must be finite with positive sizes")
    return boxes


@dataclass
class KittiGroundTruth:
    """The labels of one frame in the LiDAR frame.

    Attributes:
        boxes: ``[G, 7]``.
        names: ``G`` KITTI class names (``Car``, ``Van``, ``Pedestrian``, ``Person_sitting``, ``Cyclist``, ...).
        difficulty: int ``[G]`` 0 easy, 1 moderate, 2 hard, -1 none (as :class:`LidarFrame` stores it).
        dontcare_boxes: optional ``[K, 7]`` regions where unmatched detections are not false positives.
    """

    boxes: np.ndarray
    names: Sequence[str]
    difficulty: np.ndarray
    dontcare_boxes: Optional[np.ndarray] = None

    def __post_init__(self) -> None:
        self.boxes = _boxes7(self.boxes, "ground-truth boxes")
        n = self.boxes.shape[0]
        self.names = name_list(self.names, n, "ground-truth names")
        difficulty = np.asarray(self.difficulty).reshape(-1)
        if difficulty.size and not np.issubdtype(difficulty.dtype, np.integer):
            raise TypeError(f"difficulty must be integers (0, 1, 2 or -1), got {difficulty.dtype}")
        if difficulty.shape != (n,) or (difficulty.size and (difficulty.min() < -1 or difficulty.max() > 2)):
            raise ValueError(f"difficulty must be [{n}] values in {{-1, 0, 1, 2}}, got {difficulty}")
        self.difficulty = difficulty.astype(np.int64)
        self.dontcare_boxes = _boxes7(
            self.dontcare_boxes if self.dontcare_boxes is not None else np.zeros((0, 7)), "dontcare_boxes"
        )

    @classmethod
    def from_frame(cls, frame: Any) -> "KittiGroundTruth":
        """From a ``LidarFrame`` of :class:`~largekernel3d.data.detection.kitti.KittiDetection`: its boxes under
        their original KITTI type names (``metadata["label"]``, so a ``Van`` folded into ``Car`` for training
        is a neighbour again here) with the frame's difficulties, plus the objects the reader set aside
        (``metadata["ignored"]``; ``Van`` / ``Person_sitting`` among them act as neighbours, the other types
        play no part). ``DontCare`` labels have no 3D box and are not used (module docstring)."""
        meta = frame.metadata
        if "label" not in meta or "ignored" not in meta:
            raise ValueError(f"frame {frame.name!r} has no KITTI labels in its metadata (read it with KittiDetection)")
        ignored = meta["ignored"]
        ign_label = ignored["label"]
        return cls(
            boxes=np.concatenate(
                [
                    np.asarray(frame.boxes, dtype=np.float64)[:, :7],
                    np.asarray(ignored["boxes"], dtype=np.float64).reshape(-1, 7),
                ]
            ),
            names=list(meta["label"].names) + list(ign_label.names),
            difficulty=np.concatenate(
                [frame.difficulty, kitti_difficulty(ign_label.bbox2d, ign_label.occluded, ign_label.truncated)]
            ),
        )


@dataclass
class KittiDetections:
    """The detections of one frame in the LiDAR frame.

    Attributes:
        boxes: ``[P, 7]``; names: ``P`` class names; scores: ``[P]``.
        heights_2d: optional ``[P]`` heights in pixels of the detections' 2D image boxes.
    """

    boxes: np.ndarray
    names: Sequence[str]
    scores: np.ndarray
    heights_2d: Optional[np.ndarray] = None

    def __post_init__(self) -> None:
        self.boxes = _boxes7(self.boxes, "detection boxes")
        n = self.boxes.shape[0]
        self.names = name_list(self.names, n, "detection names")
        self.scores = np.asarray(self.scores, dtype=np.float64).reshape(-1)
        if self.scores.shape != (n,) or not np.isfinite(self.scores).all():
            raise ValueError(f"scores must be [{n}] finite numbers, got shape {self.scores.shape}")
        if self.heights_2d is not None:
            self.heights_2d = np.asarray(self.heights_2d, dtype=np.float64).reshape(-1)
            if self.heights_2d.shape != (n,):
                raise ValueError(f"heights_2d must have shape [{n}], got {self.heights_2d.shape}")

    @classmethod
    def from_lidar(
        cls, boxes: np.ndarray, names: Sequence[str], scores: np.ndarray, frame: Optional[Any] = None
    ) -> "KittiDetections":
        """Detections ``boxes [P, >=7]`` (LiDAR frame) of a KITTI ``LidarFrame``; with the frame, the 2D heights
        are those of the boxes projected into image 2 and clipped to the image (``metadata["calib"]``,
        ``metadata["image_size"]``), OpenPCDet's way; without it, no heights (every detection counts)."""
        boxes = _boxes7(boxes, "detection boxes")
        heights = None
        if frame is not None:
            if "calib" not in frame.metadata:
                raise ValueError(
                    f"frame {frame.name!r} has no calibration in its metadata (read it with KittiDetection)"
                )
            rect = project_boxes_to_image(boxes, frame.metadata["calib"], frame.metadata.get("image_size"))
            heights = rect[:, 3] - rect[:, 1]
        return cls(boxes, names, scores, heights_2d=heights)


def _thresholds(iou_thresholds: Union[str, Mapping[str, float]], classes: Sequence[str]) -> Dict[str, float]:
    if isinstance(iou_thresholds, str):
        table = {"strict": STRICT_IOU, "loose": LOOSE_IOU}.get(iou_thresholds)
        if table is None:
            raise ValueError(
                f"iou_thresholds must be 'strict', 'loose' or a class -> IoU mapping, got {iou_thresholds!r}"
            )
    else:
        table = dict(iou_thresholds)
    missing = [c for c in classes if c not in table]
    if missing:
        raise ValueError(f"no IoU threshold for classes {missing}; give iou_thresholds a value for each")
    return {c: float(table[c]) for c in classes}


@dataclass
class _ClassFrame:
    """One frame seen by one evaluated class."""

    gt_boxes: np.ndarray  # [G, 7] the class's objects and its neighbours'
    own: np.ndarray  # [G] bool: of the class itself (neighbours are False)
    difficulty: np.ndarray  # [G]
    det_boxes: np.ndarray  # [P, 7] detections of the class
    scores: np.ndarray  # [P]
    heights: Optional[np.ndarray]  # [P] 2D heights or None
    dontcare: np.ndarray  # [K, 7]


def _class_frame(g: KittiGroundTruth, d: KittiDetections, class_name: str) -> _ClassFrame:
    key = class_name.lower()
    neighbours = [n.lower() for n in NEIGHBOUR_CLASSES.get(class_name, ())]
    g_names = np.array([n.lower() for n in g.names], dtype=object)
    own = g_names == key
    keep = own | np.isin(g_names, neighbours)
    d_mask = np.array([n.lower() == key for n in d.names], dtype=bool)
    return _ClassFrame(
        gt_boxes=g.boxes[keep],
        own=own[keep],
        difficulty=g.difficulty[keep],
        det_boxes=d.boxes[d_mask],
        scores=d.scores[d_mask],
        heights=None if d.heights_2d is None else d.heights_2d[d_mask],
        dontcare=g.dontcare_boxes,
    )


def _in_dontcare(dets: np.ndarray, regions: np.ndarray, iou, three_d: bool, threshold: float) -> np.ndarray:
    """bool ``[P]``: ``|D ∩ R| / |D| > threshold`` for some region ``R``, with ``|D ∩ R|`` recovered from the
    IoU ``I / (|D| + |R| - I)`` as ``IoU (|D| + |R|) / (1 + IoU)`` (areas in BEV, volumes in 3D)."""
    if dets.shape[0] == 0 or regions.shape[0] == 0:
        return np.zeros(dets.shape[0], dtype=bool)

    def size(b):
        return b[:, 3] * b[:, 4] * (b[:, 5] if three_d else 1.0)

    overlap = iou(dets, regions)
    inter = overlap * (size(dets)[:, None] + size(regions)[None, :]) / (1.0 + overlap)
    return (inter / size(dets)[:, None] > threshold).any(axis=1)


def _suppress_dontcare(match: MatchResult, in_dontcare: np.ndarray) -> MatchResult:
    """False positives inside a DontCare region become ignored."""
    status = match.status.copy()
    status[(status == FP) & in_dontcare] = IGNORED
    return dataclasses.replace(match, status=status)


def evaluate_kitti(
    gt: Sequence[KittiGroundTruth],
    detections: Sequence[KittiDetections],
    classes: Sequence[str] = KITTI_CLASSES,
    iou_thresholds: Union[str, Mapping[str, float]] = "strict",
    num_recall_points: int = 40,
    metrics: Sequence[str] = KITTI_METRICS,
) -> "KittiMetrics":
    """KITTI AP (module docstring) per class, difficulty and metric.

    Args:
        gt, detections: one entry per frame, in the same order.
        classes: evaluated classes (names compared case-insensitively).
        iou_thresholds: ``"strict"`` (0.7 / 0.5 / 0.5), ``"loose"`` (0.5 / 0.25 / 0.25) or class -> IoU.
        num_recall_points: 40 (R40) or 11 (R11).
        metrics: any of ``"bev"``, ``"3d"``.

    Returns:
        :class:`KittiMetrics` with AP in percent.
    """
    if len(gt) != len(detections):
        raise ValueError(f"gt has {len(gt)} frames but detections has {len(detections)}")
    if num_recall_points not in (40, 11):
        raise ValueError(f"num_recall_points must be 40 or 11, got {num_recall_points!r}")
    metrics = tuple(metrics)
    unknown = [m for m in metrics if m not in KITTI_METRICS]
    if unknown or not metrics:
        raise ValueError(f"metrics must be a non-empty subset of {KITTI_METRICS}, got {metrics}")
    classes = tuple(classes)
    thresholds = _thresholds(iou_thresholds, classes)
    ap = np.full((len(classes), len(KITTI_DIFFICULTIES), len(metrics)), np.nan)
    num_gt = np.zeros((len(classes), len(KITTI_DIFFICULTIES)), dtype=np.int64)
    for ci, c in enumerate(classes):
        frames = [_class_frame(g, d, c) for g, d in zip(gt, detections)]
        for mi, metric in enumerate(metrics):
            iou = bev_iou if metric == "bev" else iou_3d
            affinity = [iou(f.det_boxes, f.gt_boxes) for f in frames]
            in_dontcare = [_in_dontcare(f.det_boxes, f.dontcare, iou, metric == "3d", thresholds[c]) for f in frames]
            for level in range(len(KITTI_DIFFICULTIES)):
                rows = [
                    np.ones(f.scores.shape[0], dtype=bool) if f.heights is None else f.heights >= MIN_HEIGHT[level]
                    for f in frames
                ]
                gt_ignored = [~f.own | (f.difficulty < 0) | (f.difficulty > level) for f in frames]
                problem = match_problem(
                    [f.scores[r] for f, r in zip(frames, rows)],
                    [a[r] for a, r in zip(affinity, rows)],
                    higher_is_better=True,
                    gt_ignored=gt_ignored,
                )
                hits = np.concatenate([h[r] for h, r in zip(in_dontcare, rows)]) if frames else np.zeros(0, bool)
                match = _suppress_dontcare(greedy_match(problem, thresholds[c]), hits)
                num_gt[ci, level] = match.num_gt
                ap[ci, level, mi] = 100.0 * sampled_ap(
                    PrecisionRecallCurve.from_match(problem.scores, match), num_recall_points
                )
    return KittiMetrics(
        class_names=classes,
        metrics=metrics,
        ap=ap,
        num_gt=num_gt,
        iou_thresholds=tuple(thresholds[c] for c in classes),
        num_recall_points=num_recall_points,
    )


@dataclass(frozen=True)
class KittiMetrics:
    """The result of :func:`evaluate_kitti`.

    Attributes:
        class_names: ``C`` classes; metrics: ``M`` of ``("bev", "3d")``.
        ap: ``[C, 3, M]`` AP in percent per class, difficulty (easy, moderate, hard) and metric (NaN: no
            counted ground truth).
        num_gt: ``[C, 3]`` counted ground truth per class and difficulty.
        iou_thresholds: ``C`` IoU thresholds used.
        num_recall_points: 40 or 11.
    """

    class_names: Tuple[str, ...]
    metrics: Tuple[str, ...]
    ap: np.ndarray
    num_gt: np.ndarray
    iou_thresholds: Tuple[float, ...]
    num_recall_points: int = 40

    def get(self, class_name: str, difficulty: str = "moderate", metric: str = "3d") -> float:
        """One AP value in percent."""
        return float(
            self.ap[
                self.class_names.index(class_name), KITTI_DIFFICULTIES.index(difficulty), self.metrics.index(metric)
            ]
        )

    def mean_ap(self, difficulty: str = "moderate", metric: str = "3d") -> float:
        """Mean AP over the classes with counted ground truth at ``difficulty`` (NaN if none)."""
        values = self.ap[:, KITTI_DIFFICULTIES.index(difficulty), self.metrics.index(metric)]
        return float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")

    def _table(self) -> Tuple[List[str], List[list]]:
        header = (
            ["class", "IoU", "metric"]
            + [f"{d} (R{self.num_recall_points})" for d in KITTI_DIFFICULTIES]
            + ["GT easy", "GT moderate", "GT hard"]
        )
        rows = []
        for ci, c in enumerate(self.class_names):
            for mi, m in enumerate(self.metrics):
                rows.append(
                    [c, self.iou_thresholds[ci], m]
                    + [float(v) for v in self.ap[ci, :, mi]]
                    + [int(v) for v in self.num_gt[ci]]
                )
        for m in self.metrics:
            rows.append(["mean", "", m] + [self.mean_ap(d, m) for d in KITTI_DIFFICULTIES] + ["", "", ""])
        return header, rows

    def to_markdown(self) -> str:
        """AP (percent) per class and metric, columns easy / moderate / hard, then the class means."""
        header, rows = self._table()
        return markdown_table(header, rows, decimals=2)

    def to_csv(self, path: Optional[Union[str, Path]] = None) -> str:
        """The same table as CSV (full precision); written to ``path`` when given."""
        header, rows = self._table()
        return csv_table(header, rows, path)


__all__ = [
    "KITTI_DIFFICULTIES",
    "MIN_HEIGHT",
    "STRICT_IOU",
    "LOOSE_IOU",
    "NEIGHBOUR_CLASSES",
    "KITTI_METRICS",
    "KittiGroundTruth",
    "KittiDetections",
    "evaluate_kitti",
    "KittiMetrics",
]
