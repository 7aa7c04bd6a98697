"""Detection metrics on plain arrays: nuScenes (mAP, TP errors, NDS, results files), KITTI (AP R40 / R11 on
BEV and 3D rotated IoU per difficulty) and a dataset-agnostic AP (BEV / 3D IoU or centre distance).

- :mod:`.matching`            score-ordered greedy matching of detections to ground truth (used by all three)
- :mod:`.curves`              precision / recall curves and their interpolations (envelope, linear, KITTI's)
- :mod:`.nuscenes_boxes`      per-sample nuScenes boxes, sensor poses, the LiDAR -> global transform
- :mod:`.nuscenes_ground_truth` ground truth from the tables or from reader frames, global frame
- :mod:`.nuscenes_metric`     :func:`evaluate_nuscenes` -> :class:`NuScenesMetrics`
- :mod:`.nuscenes_submission` :func:`to_nuscenes_submission` (the benchmark's results JSON)
- :mod:`.kitti_metric`        :func:`evaluate_kitti` -> :class:`KittiMetrics`
- :mod:`.generic_ap`          :func:`evaluate_ap` -> :class:`APMetrics`
- :mod:`.report`              Markdown / CSV tables
"""

from .curves import PrecisionRecallCurve, envelope_ap, linear_precision, recall_points, sampled_ap
from .generic_ap import APMetrics, FrameBoxes, evaluate_ap
from .kitti_metric import (
    KITTI_DIFFICULTIES,
    KittiDetections,
    KittiGroundTruth,
    KittiMetrics,
    evaluate_kitti,
)
from .matching import MatchProblem, MatchResult, greedy_match, match_problem, score_order
from .nuscenes_boxes import (
    NuScenesBoxes,
    SensorPose,
    boxes_to_global,
    lidar_to_global,
)
from .nuscenes_ground_truth import SampleGroundTruth, frame_ground_truth, tables_ground_truth
from .nuscenes_metric import (
    NUSCENES_CLASS_RANGE,
    TP_METRICS,
    NuScenesClassCurve,
    NuScenesConfig,
    NuScenesMetrics,
    evaluate_nuscenes,
)
from .nuscenes_submission import default_attribute, to_nuscenes_submission

__all__ = [
    "KITTI_DIFFICULTIES",
    "NUSCENES_CLASS_RANGE",
    "TP_METRICS",
    "APMetrics",
    "boxes_to_global",
    "default_attribute",
    "envelope_ap",
    "evaluate_ap",
    "evaluate_kitti",
    "evaluate_nuscenes",
    "frame_ground_truth",
    "FrameBoxes",
    "greedy_match",
    "KittiDetections",
    "KittiGroundTruth",
    "KittiMetrics",
    "lidar_to_global",
    "linear_precision",
    "match_problem",
    "MatchProblem",
    "MatchResult",
    "NuScenesBoxes",
    "NuScenesClassCurve",
    "NuScenesConfig",
    "NuScenesMetrics",
    "PrecisionRecallCurve",
    "recall_points",
    "sampled_ap",
    "SampleGroundTruth",
    "score_order",
    "SensorPose",
    "tables_ground_truth",
    "to_nuscenes_submission",
]
