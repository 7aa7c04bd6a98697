"""Detection metrics on plain arrays: nuScenes (mAP, TP errors, NDS, submission files), KITTI (AP R40 / R11
on BEV and 3D rotated IoU per difficulty) and a dataset-agnostic AP (BEV IoU or centre distance).

- :mod:`.matching`          score-ordered greedy matching of detections to ground truth (shared by all)
- :mod:`.curves`            precision / recall curves and their interpolations (envelope, linear, KITTI's)
- :mod:`.nuscenes_boxes`    per-sample nuScenes boxes, poses, the LiDAR -> global transform
- :mod:`.nuscenes_metric`   :func:`evaluate_nuscenes` -> :class:`NuScenesMetrics`
- :mod:`.nuscenes_submission` :func:`to_nuscenes_submission` (the benchmark's results JSON)
- :mod:`.kitti_metric`      :func:`evaluate_kitti` -> :class:`KittiMetrics`
- :mod:`.generic_ap`        :func:`evaluate_ap` -> :class:`APMetrics`
- :mod:`.report`            Markdown / CSV tables
"""

from .curves import PrecisionRecallCurve, envelope_ap, linear_precision, recall_points, sampled_ap
from .matching import MatchProblem, MatchResult, greedy_match, match_problem, score_order
from .nuscenes_boxes import NUSCENES_ATTRIBUTES, NUSCENES_CLASSES, NuScenesBoxes, SensorPose, boxes_to_global, \
    lidar_to_global
from .nuscenes_metric import NUSCENES_CLASS_RANGE, TP_METRICS, NuScenesClassCurve, NuScenesConfig, NuScenesMetrics, \
    evaluate_nuscenes

__all__ = ["PrecisionRecallCurve", "envelope_ap", "linear_precision", "recall_points", "sampled_ap", "MatchProblem",
           "MatchResult", "greedy_match", "match_problem", "score_order", "NUSCENES_ATTRIBUTES", "NUSCENES_CLASSES",
           "NuScenesBoxes", "SensorPose", "boxes_to_global", "lidar_to_global", "NUSCENES_CLASS_RANGE",
           "TP_METRICS", "NuScenesClassCurve", "NuScenesConfig", "NuScenesMetrics", "evaluate_nuscenes"]
