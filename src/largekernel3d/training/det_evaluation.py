"""Inference and evaluation of a detector on voxelised frames.

The detector gives, per frame, boxes ``[K, 7 | 9]`` in the LiDAR frame with scores and class ids; they are
scored against the frame's ground truth with the metric the configuration names (``eval.metric``; ``auto``
picks it from the dataset):

* ``generic`` (generated frames, PandaSet): per-class AP matching by BEV centre distance (mean over
  ``eval.distance_thresholds``) or, with ``eval.iou_threshold``, by rotated BEV IoU
  (:func:`.detection_metrics.generic_ap.evaluate_ap`); the run's score is the mAP over the classes with
  ground truth;
* ``kitti``: AP R40 on BEV and 3D rotated IoU per difficulty
  (:func:`.detection_metrics.kitti_metric.evaluate_kitti`), the run's score is the moderate 3D mAP;
* ``nuscenes``: mAP over centre distances, TP errors and NDS
  (:func:`.detection_metrics.nuscenes_metric.evaluate_nuscenes`) in the global frame (ground truth and
  detections moved there with each frame's poses), the run's score is the NDS.

Scores are fractions in ``[0, 1]`` (the metric tables print percent).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from .distributed import DistContext


@dataclass
class FramePrediction:
    """The detections of one frame, with the ground truth they are scored against.

    Attributes:
        name: frame name.
        boxes: float32 ``[K, 7 | 9]`` detections (LiDAR frame); scores ``[K]``; labels int64 ``[K]`` (class ids).
        gt_boxes, gt_labels: the frame's ground truth as the validation view gives it.
        metadata: the frame's metadata (calibration, difficulty, ignored boxes, ...).
    """

    name: str
    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray
    gt_boxes: np.ndarray
    gt_labels: np.ndarray
    metadata: Dict[str, Any] = field(default_factory=dict)


@dataclass
class DetectionEvaluation:
    """Scores of one evaluation pass.

    Attributes:
        metric: ``generic``, ``kitti`` or ``nuscenes``.
        score: the number that selects the best checkpoint (fraction in ``[0, 1]``).
        score_name: what ``score`` is (``mAP``, ``moderate 3D mAP``, ``NDS``).
        per_class_ap: class name -> AP (fraction) of the headline setting.
        result: the metric's own result object (its ``to_markdown`` / ``to_csv`` write the tables).
        num_frames: frames scored.
    """

    metric: str
    score: float
    score_name: str
    per_class_ap: Dict[str, float]
    result: Any
    num_frames: int

    def summary(self) -> str:
        return f"{self.score_name} {100 * self.score:.1f} ({self.metric}, {self.num_frames} frames)"

    def markdown(self, title: Optional[str] = None) -> str:
        head = f"### {title}\n\n" if title else ""
        return f"{head}{self.result.to_markdown()}\n\n{self.score_name}: {100 * self.score:.2f}\n"

    def write(self, folder: Path, stem: str, title: Optional[str] = None) -> Path:
        """``<stem>.md`` and ``<stem>.csv`` in ``folder``; returns the Markdown path."""
        folder.mkdir(parents=True, exist_ok=True)
        md = folder / f"{stem}.md"
        md.write_text(self.markdown(title))
        self.result.to_csv(folder / f"{stem}.csv")
        return md


def resolve_metric(metric: str, dataset: str) -> str:
    """``metric``, or for ``"auto"`` the dataset's own (KITTI → ``kitti``, nuScenes → ``nuscenes``, else
    ``generic``)."""
    if metric != "auto":
        return metric
    return {"kitti": "kitti", "nuscenes": "nuscenes"}.get(dataset, "generic")


def _numpy(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy()


@torch.no_grad()
def predict_frames(
    model: nn.Module,
    view,
    device: torch.device,
    indices: Optional[Sequence[int]] = None,
    batch_size: int = 1,
    progress: bool = True,
    desc: str = "predict",
) -> List[FramePrediction]:
    """Detections of ``model`` (eval mode) on frames ``indices`` (default: all) of the voxelised ``view``."""
    from ..data.detection.batch import collate_detection

    was_training = model.training
    model.eval()
    indices = list(range(len(view))) if indices is None else list(indices)
    out: List[FramePrediction] = []
    try:
        chunks = [indices[i : i + batch_size] for i in range(0, len(indices), batch_size)]
        for chunk in tqdm(chunks, desc=desc, leave=False, disable=not progress):
            samples = [view[i] for i in chunk]
            detections = model(collate_detection(samples).to(device))
            for sample, det in zip(samples, detections):
                out.append(
                    FramePrediction(
                        name=sample.name,
                        boxes=_numpy(det.boxes).astype(np.float32),
                        scores=_numpy(det.scores).astype(np.float32),
                        labels=_numpy(det.labels).astype(np.int64),
                        gt_boxes=_numpy(sample.gt_boxes),
                        gt_labels=_numpy(sample.gt_labels),
                        metadata=dict(sample.metadata),
                    )
                )
    finally:
        model.train(was_training)
    return out


def _gather(predictions: List[FramePrediction], ctx: DistContext) -> List[FramePrediction]:
    if not ctx.distributed:
        return predictions
    import torch.distributed as dist

    parts: List[Any] = [None] * ctx.world_size
    dist.all_gather_object(parts, predictions)
    return [p for part in parts for p in part]


def _generic(
    predictions: Sequence[FramePrediction], class_names: Sequence[str], eval_cfg: Mapping[str, Any]
) -> DetectionEvaluation:
    from .detection_metrics.generic_ap import FrameBoxes, evaluate_ap

    if eval_cfg["iou_threshold"] is not None:
        matching, thresholds = "bev_iou", float(eval_cfg["iou_threshold"])
    else:
        matching, thresholds = "center_distance", [float(t) for t in eval_cfg["distance_thresholds"]]
    result = evaluate_ap(
        [FrameBoxes(p.gt_boxes, p.gt_labels) for p in predictions],
        [FrameBoxes(p.boxes, p.labels, p.scores) for p in predictions],
        class_names,
        matching=matching,
        thresholds=thresholds,
    )
    per_class = {c: float(v) / 100.0 for c, v in zip(class_names, result.class_ap)}
    score = result.mean_ap / 100.0
    return DetectionEvaluation(
        "generic", score if np.isfinite(score) else 0.0, "mAP", per_class, result, len(predictions)
    )


def _kitti(predictions: Sequence[FramePrediction], class_names: Sequence[str]) -> DetectionEvaluation:
    from types import SimpleNamespace

    from .detection_metrics.kitti_metric import KittiDetections, KittiGroundTruth, evaluate_kitti

    gts, dets = [], []
    for p in predictions:
        frame = SimpleNamespace(
            name=p.name, boxes=p.gt_boxes, difficulty=p.metadata.get("difficulty"), metadata=p.metadata
        )
        gts.append(KittiGroundTruth.from_frame(frame))
        dets.append(
            KittiDetections.from_lidar(p.boxes[:, :7], [class_names[int(i)] for i in p.labels], p.scores, frame)
        )
    result = evaluate_kitti(gts, dets, classes=class_names)
    per_class = {c: result.get(c, "moderate", "3d") / 100.0 for c in class_names}
    return DetectionEvaluation(
        "kitti", result.mean_ap("moderate", "3d") / 100.0, "moderate 3D mAP", per_class, result, len(predictions)
    )


def _nuscenes(predictions: Sequence[FramePrediction], class_names: Sequence[str]) -> DetectionEvaluation:
    from types import SimpleNamespace

    from .detection_metrics.nuscenes_boxes import NuScenesBoxes, SensorPose, boxes_to_global
    from .detection_metrics.nuscenes_ground_truth import frame_ground_truth
    from .detection_metrics.nuscenes_metric import evaluate_nuscenes

    gt, det, ego = {}, {}, {}
    for p in predictions:
        frame = SimpleNamespace(
            name=p.name,
            boxes=p.gt_boxes,
            labels=p.gt_labels,
            metadata=p.metadata,
            num_lidar_points=p.metadata.get("num_lidar_points"),
            attributes=p.metadata.get("attributes"),
        )
        pose = SensorPose.from_frame(frame)
        gt[p.name] = frame_ground_truth(frame, class_names)
        det[p.name] = boxes_to_global(
            NuScenesBoxes(p.boxes, [class_names[int(i)] for i in p.labels], scores=p.scores), pose
        )
        ego[p.name] = pose.ego_translation
    result = evaluate_nuscenes(gt, det, ego)
    per_class = {c: float(v) for c, v in zip(result.class_names, result.class_ap)}
    return DetectionEvaluation("nuscenes", float(result.nds), "NDS", per_class, result, len(predictions))


def score_predictions(
    predictions: Sequence[FramePrediction], class_names: Sequence[str], metric: str, eval_cfg: Mapping[str, Any]
) -> DetectionEvaluation:
    """Score ``predictions`` with ``metric`` (``generic`` / ``kitti`` / ``nuscenes``; see the module docstring)."""
    if metric == "kitti":
        return _kitti(predictions, class_names)
    if metric == "nuscenes":
        return _nuscenes(predictions, class_names)
    if metric == "generic":
        return _generic(predictions, class_names, eval_cfg)
    raise ValueError(f"metric must be 'generic', 'kitti' or 'nuscenes', got {metric!r}")


def evaluate_detection(
    model: nn.Module,
    view,
    class_names: Sequence[str],
    cfg: Mapping[str, Any],
    ctx: Optional[DistContext] = None,
    progress: bool = True,
    desc: str = "eval",
) -> DetectionEvaluation:
    """Predict every frame of ``view`` (with several processes each rank takes frames ``rank, rank + R, ...``
    and the predictions are gathered) and score them with the configured metric."""
    ctx = ctx or DistContext()
    e = cfg["eval"]
    n = len(view) if e["max_frames"] is None else min(int(e["max_frames"]), len(view))
    mine = list(range(ctx.rank, n, ctx.world_size))
    preds = predict_frames(model, view, ctx.device, mine, int(e["batch_size"]), progress and ctx.is_main, desc)
    order = {name: i for i, name in enumerate(view.frame_names)}
    preds = sorted(_gather(preds, ctx), key=lambda p: order[p.name])
    metric = resolve_metric(str(e["metric"]), str(cfg["data"]["dataset"]))
    return score_predictions(preds, class_names, metric, e)


__all__ = [
    "FramePrediction",
    "DetectionEvaluation",
    "resolve_metric",
    "predict_frames",
    "score_predictions",
    "evaluate_detection",
]
