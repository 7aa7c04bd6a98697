"""The nuScenes detection metric (mAP, TP errors, NDS), with the definitions of the official devkit
(``nuscenes/eval/detection``, configuration ``detection_cvpr_2019``), on plain arrays.

Inputs are per-sample :class:`NuScenesBoxes` in the **global frame** (convert LiDAR-frame boxes with
:func:`~.nuscenes_boxes.boxes_to_global`) and the ego position of each sample.

Filtering (ground truth and predictions alike): a box of class ``c`` is kept when its BEV distance from
the ego ``||(x, y) - (x_ego, y_ego)||`` is ``< class_range[c]`` (50 m vehicles, 40 m pedestrian /
motorcycle / bicycle, 30 m traffic cone / barrier); ground truth with ``num_points == 0`` (LiDAR + radar)
is dropped; where bike racks are given, bicycles and motorcycles whose centre lies in a rack box are dropped.

Per class ``c`` and distance threshold ``d`` in ``(0.5, 1, 2, 4)`` m, predictions are matched greedily
(:mod:`.matching`) by BEV centre distance (a match needs ``dist < d``), in descending score over all
samples. With ``G`` ground truth, the precision ``TP_k / k`` and recall ``TP_k / G`` of the first ``k``
predictions are linearly interpolated at the 101 recalls ``r = 0, 0.01, .., 1`` (0 right of the largest
recall), and so is the score (the *confidence* curve). Then

    AP_{c,d} = 1 / (1 - p_min) * mean_{r > r_min} max(0, p(r) - p_min)       (r_min = p_min = 0.1;
                                                                               the r = r_min bin excluded)

TP errors use the matches at ``d = 2`` m. For each match, in score order:

    ATE = ||(x, y)_pred - (x, y)_gt||                 AVE = ||(vx, vy)_pred - (vx, vy)_gt||
    ASE = 1 - IoU of the two sizes aligned            (prod min(s_p, s_g) / (V_p + V_g - prod min(s_p, s_g)))
    AOE = |yaw_pred - yaw_gt| wrapped to [0, pi]      (period pi for barrier)
    AAE = 1 - [attribute_pred == attribute_gt]        (NaN where the ground truth has no attribute)

Each error series is replaced by its running mean over the matches (NaN entries skipped; all NaN -> 1),
read at the interpolated confidences (``numpy.interp`` over the matches' scores), and averaged over the
recall bins from ``r_min`` (excluded) to the largest recall reached (the last bin with confidence > 0);
no bin left -> 1. Not applicable (NaN): AVE, AAE, AOE for traffic_cone; AVE, AAE for barrier. A class
without ground truth or without any match has AP 0 and errors 1, as in the devkit.

    mAP = mean_c mean_d AP_{c,d},   mTP_e = nanmean_c TP_{c,e},
    NDS = (5 mAP + sum_e (1 - min(1, mTP_e))) / 10
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Mapping, Optional, Tuple, Union

import numpy as np

from largekernel3d.boxes import points_in_boxes_index, wrap_angle
from largekernel3d.data.detection.classes import NUSCENES_CLASSES

from .curves import PrecisionRecallCurve, linear_precision
from .matching import TP, MatchProblem, greedy_match, match_problem
from .nuscenes_boxes import NuScenesBoxes
from .report import csv_table, markdown_table

NUSCENES_CLASS_RANGE: Dict[str, float] = {
    "car": 50.0,
    "truck": 50.0,
    "bus": 50.0,
    "trailer": 50.0,
    "construction_vehicle": 50.0,
    "pedestrian": 40.0,
    "motorcycle": 40.0,
    "bicycle": 40.0,
    "traffic_cone": 30.0,
    "barrier": 30.0,
}
"""Evaluation range per class in metres (``detection_cvpr_2019``), in the devkit's class order (the order of
the reports)."""

TP_METRICS: Tuple[str, ...] = ("trans_err", "scale_err", "orient_err", "vel_err", "attr_err")
"""The true-positive error names, in the devkit's order."""

TP_METRIC_LABELS: Tuple[str, ...] = ("ATE", "ASE", "AOE", "AVE", "AAE")
"""Short names of :data:`TP_METRICS` as papers print them."""

NOT_APPLICABLE: Dict[str, Tuple[str, ...]] = {
    "traffic_cone": ("attr_err", "vel_err", "orient_err"),
    "barrier": ("attr_err", "vel_err"),
}
"""TP errors the benchmark does not define for a class (reported as NaN, left out of the means)."""

HALF_TURN_CLASSES: Tuple[str, ...] = ("barrier",)
"""Classes whose heading is only defined up to 180 degrees (AOE with period pi)."""

NUM_RECALL_BINS = 101


@dataclass(frozen=True)
class NuScenesConfig:
    """Settings of the nuScenes metric (defaults: the official ``detection_cvpr_2019``).

    Attributes:
        class_range: evaluated classes and their ranges in metres.
        dist_thresholds: BEV centre-distance thresholds of the AP, metres.
        tp_threshold: the threshold whose matches give the TP errors (one of ``dist_thresholds``).
        min_recall, min_precision: the AP and TP-error clipping ``r_min``, ``p_min``.
        max_boxes_per_sample: more predictions than this in a sample is an error, as in the devkit.
        mean_ap_weight: the weight of mAP in the NDS.
    """

    class_range: Mapping[str, float] = field(default_factory=lambda: dict(NUSCENES_CLASS_RANGE))
    dist_thresholds: Tuple[float, ...] = (0.5, 1.0, 2.0, 4.0)
    tp_threshold: float = 2.0
    min_recall: float = 0.1
    min_precision: float = 0.1
    max_boxes_per_sample: int = 500
    mean_ap_weight: float = 5.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "class_range", {str(k): float(v) for k, v in dict(self.class_range).items()})
        object.__setattr__(self, "dist_thresholds", tuple(float(d) for d in self.dist_thresholds))
        if not self.class_range:
            raise ValueError("class_range must name at least one class")
        if not self.dist_thresholds or min(self.dist_thresholds) <= 0:
            raise ValueError(f"dist_thresholds must be positive distances, got {self.dist_thresholds}")
        if float(self.tp_threshold) not in self.dist_thresholds:
            raise ValueError(f"tp_threshold {self.tp_threshold} must be one of dist_thresholds {self.dist_thresholds}")
        if not 0 <= self.min_precision < 1:
            raise ValueError(f"min_precision must lie in [0, 1), got {self.min_precision}")
        if not 0 <= self.min_recall <= 1:
            raise ValueError(f"min_recall must lie in [0, 1], got {self.min_recall}")

    @property
    def class_names(self) -> Tuple[str, ...]:
        return tuple(self.class_range)


@dataclass(frozen=True)
class NuScenesClassCurve:
    """The devkit's per-class, per-threshold metric data: 101 recall bins.

    Attributes:
        recall: ``[101]`` ``0, 0.01, .., 1``.
        precision: ``[101]`` interpolated precision.
        confidence: ``[101]`` interpolated score (0 beyond the largest recall).
        errors: TP error name -> ``[101]`` running-mean error at each bin's confidence.
    """

    recall: np.ndarray
    precision: np.ndarray
    confidence: np.ndarray
    errors: Mapping[str, np.ndarray]

    @classmethod
    def no_predictions(cls) -> "NuScenesClassCurve":
        """Precision 0, confidence 0, errors 1 (no ground truth, or nothing matched)."""
        return cls(
            recall=np.linspace(0, 1, NUM_RECALL_BINS),
            precision=np.zeros(NUM_RECALL_BINS),
            confidence=np.zeros(NUM_RECALL_BINS),
            errors={m: np.ones(NUM_RECALL_BINS) for m in TP_METRICS},
        )

    @property
    def max_recall_index(self) -> int:
        """The last bin with a confidence ``!= 0`` (0 when there is none)."""
        nonzero = np.flatnonzero(self.confidence)
        return int(nonzero[-1]) if nonzero.shape[0] else 0


def running_mean(values: np.ndarray) -> np.ndarray:
    """Running mean of ``values [M]`` skipping NaN (0 before the first number); all NaN -> ones."""
    values = np.asarray(values, dtype=np.float64)
    valid = ~np.isnan(values)
    if not valid.any():
        return np.ones_like(values)
    sums = np.cumsum(np.where(valid, values, 0.0))
    counts = np.cumsum(valid)
    return np.divide(sums, counts, out=np.zeros_like(sums), where=counts != 0)


def class_ap(curve: NuScenesClassCurve, min_recall: float, min_precision: float) -> float:
    """``mean_{bins after r_min} max(0, p - p_min) / (1 - p_min)``."""
    start = round((NUM_RECALL_BINS - 1) * min_recall) + 1
    precision = np.clip(curve.precision[start:] - min_precision, 0.0, None)
    return float(np.mean(precision)) / (1.0 - min_precision)


def class_tp_error(curve: NuScenesClassCurve, min_recall: float, metric: str) -> float:
    """Mean of ``curve.errors[metric]`` over the bins after ``r_min`` up to the largest recall (1 if none)."""
    start = round((NUM_RECALL_BINS - 1) * min_recall) + 1
    stop = curve.max_recall_index
    if stop < start:
        return 1.0
    return float(np.mean(curve.errors[metric][start : stop + 1]))


def _pair_errors(
    gt: np.ndarray, pred: np.ndarray, gt_attr: np.ndarray, pred_attr: np.ndarray, period: float
) -> Dict[str, np.ndarray]:
    """Per-match errors (module docstring) for matched rows ``gt [M, 9]``, ``pred [M, 9]``."""
    inter = np.prod(np.minimum(gt[:, 3:6], pred[:, 3:6]), axis=1)
    union = np.prod(gt[:, 3:6], axis=1) + np.prod(pred[:, 3:6], axis=1) - inter
    attr = np.where(gt_attr == "", np.nan, (gt_attr != pred_attr).astype(np.float64))
    return {
        "trans_err": np.linalg.norm(pred[:, :2] - gt[:, :2], axis=1),
        "vel_err": np.linalg.norm(pred[:, 7:9] - gt[:, 7:9], axis=1),
        "scale_err": 1.0 - inter / union,
        "orient_err": np.abs(wrap_angle(gt[:, 6] - pred[:, 6], 0.5, period)),
        "attr_err": attr,
    }


@dataclass
class _ClassData:
    """One class over all samples, flattened sample after sample."""

    gt: np.ndarray  # [G, 9]
    gt_attr: np.ndarray  # [G] str
    pred: np.ndarray  # [P, 9]
    pred_attr: np.ndarray  # [P] str
    scores: np.ndarray  # [P]
    problem: MatchProblem  # BEV centre distances, sample by sample


def _accumulate(data: _ClassData, class_name: str, threshold: float, with_errors: bool) -> NuScenesClassCurve:
    """The devkit's ``accumulate`` for one class and distance threshold."""
    if data.gt.shape[0] == 0:
        return NuScenesClassCurve.no_predictions()
    problem = data.problem
    match = greedy_match(problem, threshold)
    curve = PrecisionRecallCurve.from_match(problem.scores, match)
    if curve.tp.shape[0] == 0 or curve.tp[-1] == 0:
        return NuScenesClassCurve.no_predictions()
    bins = np.linspace(0, 1, NUM_RECALL_BINS)
    precision = linear_precision(curve, bins)
    confidence = np.interp(bins, curve.recall, curve.scores, right=0)
    errors = {m: np.ones(NUM_RECALL_BINS) for m in TP_METRICS}
    if with_errors:
        matched = match.order[match.status[match.order] == TP]
        gt_rows = match.matched_gt[matched]
        period = math.pi if class_name in HALF_TURN_CLASSES else 2 * math.pi
        pair = _pair_errors(
            data.gt[gt_rows], data.pred[matched], data.gt_attr[gt_rows], data.pred_attr[matched], period
        )
        match_conf = data.scores[matched]
        for metric in TP_METRICS:
            errors[metric] = np.interp(confidence[::-1], match_conf[::-1], running_mean(pair[metric])[::-1])[::-1]
    return NuScenesClassCurve(recall=bins, precision=precision, confidence=confidence, errors=errors)


def _filter(
    boxes: NuScenesBoxes, ego: np.ndarray, config: NuScenesConfig, racks: Optional[np.ndarray], where: str
) -> NuScenesBoxes:
    unknown = sorted({n for n in boxes.names if n not in config.class_range and n not in NUSCENES_CLASSES})
    if unknown:
        raise ValueError(
            f"{where}: unknown detection names {unknown[:5]}; use the nuScenes detection classes "
            f"{NUSCENES_CLASSES} (or add the class to NuScenesConfig.class_range)"
        )
    limit = np.array([config.class_range.get(n, -1.0) for n in boxes.names], dtype=np.float64)
    keep = np.hypot(boxes.boxes[:, 0] - ego[0], boxes.boxes[:, 1] - ego[1]) < limit
    if boxes.num_points is not None:
        keep &= boxes.num_points != 0
    if racks is not None and racks.shape[0]:
        cycles = np.array([n in ("bicycle", "motorcycle") for n in boxes.names], dtype=bool)
        keep &= ~(cycles & (points_in_boxes_index(boxes.boxes[:, :3], racks) >= 0))
    return boxes.subset(keep)


def _check_keys(gt: Mapping, predictions: Mapping, ego_translation: Mapping) -> None:
    missing = [k for k in gt if k not in predictions]
    extra = [k for k in predictions if k not in gt]
    if missing or extra:
        raise ValueError(
            f"predictions must cover exactly the ground-truth samples: missing {missing[:3]} "
            f"({len(missing)}), extra {extra[:3]} ({len(extra)}); give an empty NuScenesBoxes for a "
            f"sample without detections"
        )
    no_ego = [k for k in gt if k not in ego_translation]
    if no_ego:
        raise ValueError(f"ego_translation lacks samples {no_ego[:3]} ({len(no_ego)})")


def evaluate_nuscenes(
    gt: Mapping[str, NuScenesBoxes],
    predictions: Mapping[str, NuScenesBoxes],
    ego_translation: Mapping[str, np.ndarray],
    config: Optional[NuScenesConfig] = None,
    bike_racks: Optional[Mapping[str, np.ndarray]] = None,
) -> "NuScenesMetrics":
    """The nuScenes detection metrics (module docstring) of ``predictions`` against ``gt``.

    Args:
        gt: sample token -> ground-truth boxes in the global frame (``attributes`` and ``num_points``
            where known). The samples are taken in this mapping's order.
        predictions: sample token -> detections in the global frame with ``scores`` (``attributes``
            ``None``: every attribute error counts as wrong where the ground truth has one).
        ego_translation: sample token -> ego position ``[3]`` in the global frame (the ``ego_pose`` of the
            sample's ``LIDAR_TOP`` sweep).
        config: :class:`NuScenesConfig` (default: the official one).
        bike_racks: optional sample token -> ``[K, 7]`` global boxes of ``static_object.bicycle_rack``.

    Returns:
        :class:`NuScenesMetrics`.
    """
    config = config or NuScenesConfig()
    _check_keys(gt, predictions, ego_translation)
    classes = config.class_names
    samples = list(gt)
    per_class = {c: {"gt": [], "gt_attr": [], "pred": [], "pred_attr": [], "scores": [], "dist": []} for c in classes}
    num_pred = np.zeros(len(classes), dtype=np.int64)
    for token in samples:
        pred = predictions[token]
        if pred.scores is None:
            raise ValueError(f"sample {token!r}: predictions need scores")
        if len(pred) > config.max_boxes_per_sample:
            raise ValueError(
                f"sample {token!r} has {len(pred)} predictions; the benchmark allows at most "
                f"{config.max_boxes_per_sample} per sample (keep the highest-scored ones)"
            )
        ego = np.asarray(ego_translation[token], dtype=np.float64).reshape(-1)
        if ego.shape != (3,) or not np.isfinite(ego).all():
            raise ValueError(f"ego_translation[{token!r}] must be 3 finite numbers, got {ego}")
        racks = None
        if bike_racks is not None and token in bike_racks:
            racks = np.asarray(bike_racks[token], dtype=np.float64).reshape(-1, 7)
        g = _filter(gt[token], ego, config, racks, f"ground truth of sample {token!r}")
        p = _filter(pred, ego, config, racks, f"predictions of sample {token!r}")
        g_names = np.asarray(g.names, dtype=object)
        p_names = np.asarray(p.names, dtype=object)
        g_attr = np.asarray(g.attributes if g.attributes is not None else [""] * len(g), dtype=object)
        p_attr = np.asarray(p.attributes if p.attributes is not None else [""] * len(p), dtype=object)
        for ci, c in enumerate(classes):
            gm = g_names == c
            pm = p_names == c
            bucket = per_class[c]
            gb, pb = g.boxes[gm], p.boxes[pm]
            bucket["gt"].append(gb)
            bucket["gt_attr"].append(g_attr[gm])
            bucket["pred"].append(pb)
            bucket["pred_attr"].append(p_attr[pm])
            bucket["scores"].append(p.scores[pm])
            bucket["dist"].append(np.hypot(pb[:, None, 0] - gb[None, :, 0], pb[:, None, 1] - gb[None, :, 1]))
            num_pred[ci] += int(pm.sum())

    ap = np.zeros((len(classes), len(config.dist_thresholds)))
    curves: Dict[Tuple[str, float], NuScenesClassCurve] = {}
    tp_errors = np.zeros((len(classes), len(TP_METRICS)))
    num_gt = np.zeros(len(classes), dtype=np.int64)
    for ci, c in enumerate(classes):
        b = per_class[c]
        data = _ClassData(
            gt=np.concatenate(b["gt"]).reshape(-1, 9),
            gt_attr=np.concatenate(b["gt_attr"]),
            pred=np.concatenate(b["pred"]).reshape(-1, 9),
            pred_attr=np.concatenate(b["pred_attr"]),
            scores=np.concatenate(b["scores"]).astype(np.float64),
            problem=match_problem(b["scores"], b["dist"], higher_is_better=False),
        )
        num_gt[ci] = data.gt.shape[0]
        for ti, d in enumerate(config.dist_thresholds):
            is_tp = d == config.tp_threshold
            curve = _accumulate(data, c, d, with_errors=is_tp)
            curves[(c, d)] = curve
            ap[ci, ti] = class_ap(curve, config.min_recall, config.min_precision)
            if is_tp:
                for mi, metric in enumerate(TP_METRICS):
                    tp_errors[ci, mi] = (
                        math.nan
                        if metric in NOT_APPLICABLE.get(c, ())
                        else class_tp_error(curve, config.min_recall, metric)
                    )
    return NuScenesMetrics(
        class_names=classes,
        dist_thresholds=config.dist_thresholds,
        ap=ap,
        tp_errors=tp_errors,
        num_gt=num_gt,
        num_pred=num_pred,
        mean_ap_weight=config.mean_ap_weight,
        curves=curves,
    )


@dataclass(frozen=True)
class NuScenesMetrics:
    """The result of :func:`evaluate_nuscenes`.

    Attributes:
        class_names: ``C`` evaluated classes.
        dist_thresholds: ``T`` matching distances (metres).
        ap: ``[C, T]`` AP per class and distance threshold, in ``[0, 1]``.
        tp_errors: ``[C, 5]`` TP errors in the order of :data:`TP_METRICS` (NaN: not applicable).
        num_gt: ``[C]`` ground truth per class after filtering; ``num_pred``: ``[C]`` predictions.
        mean_ap_weight: the mAP weight of the NDS (5).
        curves: ``(class, threshold)`` -> :class:`NuScenesClassCurve` (the devkit's metric data, for plots).
    """

    class_names: Tuple[str, ...]
    dist_thresholds: Tuple[float, ...]
    ap: np.ndarray
    tp_errors: np.ndarray
    num_gt: np.ndarray
    num_pred: np.ndarray
    mean_ap_weight: float = 5.0
    curves: Mapping[Tuple[str, float], NuScenesClassCurve] = field(default_factory=dict, repr=False, compare=False)

    @property
    def class_ap(self) -> np.ndarray:
        """``[C]`` AP per class, the mean over the distance thresholds."""
        return self.ap.mean(axis=1)

    @property
    def mean_ap(self) -> float:
        """mAP: the mean over classes and thresholds."""
        return float(self.class_ap.mean())

    @property
    def mean_tp_errors(self) -> Dict[str, float]:
        """TP error name -> mean over the classes where it applies."""
        return {m: float(np.nanmean(self.tp_errors[:, i])) for i, m in enumerate(TP_METRICS)}

    @property
    def tp_scores(self) -> Dict[str, float]:
        """TP error name -> ``1 - min(1, mTP)``."""
        return {m: max(0.0, 1.0 - e) for m, e in self.mean_tp_errors.items()}

    @property
    def nds(self) -> float:
        """``(w mAP + sum_e (1 - min(1, mTP_e))) / (w + 5)`` with ``w = mean_ap_weight``."""
        scores = self.tp_scores
        return (self.mean_ap_weight * self.mean_ap + sum(scores.values())) / (self.mean_ap_weight + len(scores))

    def to_dict(self) -> Dict[str, object]:
        """Plain numbers: mAP, NDS, mean TP errors, per-class AP per threshold and TP errors."""
        return {
            "mAP": self.mean_ap,
            "NDS": self.nds,
            "mean_tp_errors": self.mean_tp_errors,
            "per_class": {
                c: {
                    "ap": {d: float(self.ap[i, j]) for j, d in enumerate(self.dist_thresholds)},
                    "ap_mean": float(self.class_ap[i]),
                    "tp_errors": {m: float(self.tp_errors[i, k]) for k, m in enumerate(TP_METRICS)},
                    "num_gt": int(self.num_gt[i]),
                    "num_pred": int(self.num_pred[i]),
                }
                for i, c in enumerate(self.class_names)
            },
        }

    def _table(self):
        header = (
            ["class", "GT", "pred"] + [f"AP@{d:g}m" for d in self.dist_thresholds] + ["AP"] + list(TP_METRIC_LABELS)
        )
        rows = [
            [c, int(self.num_gt[i]), int(self.num_pred[i])]
            + [float(v) for v in self.ap[i]]
            + [float(self.class_ap[i])]
            + [float(v) for v in self.tp_errors[i]]
            for i, c in enumerate(self.class_names)
        ]
        errors = self.mean_tp_errors
        rows.append(
            ["mean", int(self.num_gt.sum()), int(self.num_pred.sum())]
            + [float(v) for v in self.ap.mean(axis=0)]
            + [self.mean_ap]
            + [errors[m] for m in TP_METRICS]
        )
        return header, rows

    def to_markdown(self) -> str:
        """Per-class AP / TP-error table, then the mAP and NDS line (values in ``[0, 1]``, errors in metres,
        ``1 - IoU``, radians, m/s, ``1 - accuracy``)."""
        header, rows = self._table()
        return markdown_table(header, rows, decimals=4) + f"\nmAP {self.mean_ap:.4f}, NDS {self.nds:.4f}\n"

    def to_csv(self, path: Optional[Union[str, Path]] = None) -> str:
        """The per-class table as CSV (the last row the means); written to ``path`` when given."""
        header, rows = self._table()
        rows.append(["NDS"] + [""] * (len(header) - 2) + [self.nds])
        return csv_table(header, rows, path)


__all__ = [
    "NUSCENES_CLASS_RANGE",
    "TP_METRICS",
    "TP_METRIC_LABELS",
    "NOT_APPLICABLE",
    "HALF_TURN_CLASSES",
    "NuScenesConfig",
    "NuScenesClassCurve",
    "running_mean",
    "class_ap",
    "class_tp_error",
    "evaluate_nuscenes",
    "NuScenesMetrics",
]
