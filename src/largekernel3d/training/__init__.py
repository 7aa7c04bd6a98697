"""Training, evaluation and checkpoints for segmentation and detection networks.

- :mod:`.loop`         the epoch loop both trainers share (ordering, exact resume, checkpoints, logs)
- :mod:`.config`       run configurations (schemas, YAML, ``key=value`` overrides); :mod:`.det_config` detection's
- :mod:`.setup`        datasets / network / optimiser / schedule from a configuration; :mod:`.det_setup` detection's
- :mod:`.trainer`      :class:`SegmentationTrainer` (single process or DDP), :func:`load_trained_model`
- :mod:`.det_trainer`  :class:`DetectionTrainer`, :func:`load_trained_detector`
- :mod:`.evaluation`   voxel and point scores, per-point predictions
- :mod:`.det_evaluation` detections per frame and their scores; :mod:`.det_baselines` a chance-level baseline
- :mod:`.detection_metrics` nuScenes (mAP, TP errors, NDS), KITTI (AP R40) and generic detection AP
- :mod:`.metrics`      confusion matrix, IoU, mIoU, accuracy, per-class tables
- :mod:`.checkpoint`   atomic checkpoints with architecture signatures
- :mod:`.distributed`  process groups, DDP wrapping, metric reduction
- :mod:`.run_log`      CSV / TensorBoard / text logs
"""

from .checkpoint import CheckpointError, architecture_signature, load_checkpoint, save_checkpoint
from .config import DEFAULTS, ConfigError, build_config, parse_override, read_yaml
from .distributed import DistContext, context_from_group, context_from_launcher
from .det_evaluation import DetectionEvaluation, FramePrediction, evaluate_detection
from .det_trainer import DetectionTrainer, load_trained_detector
from .evaluation import EvalResult, ScenePrediction, evaluate, predict_scenes
from .metrics import SegmentationScores, confusion_matrix
from .setup import SceneSubset
from .trainer import FitResult, SegmentationTrainer, load_trained_model

__all__ = [
    "DetectionTrainer",
    "load_trained_detector",
    "evaluate_detection",
    "DetectionEvaluation",
    "FramePrediction",
    "SegmentationTrainer",
    "FitResult",
    "load_trained_model",
    "build_config",
    "read_yaml",
    "parse_override",
    "DEFAULTS",
    "ConfigError",
    "CheckpointError",
    "save_checkpoint",
    "load_checkpoint",
    "architecture_signature",
    "DistContext",
    "context_from_group",
    "context_from_launcher",
    "evaluate",
    "predict_scenes",
    "EvalResult",
    "ScenePrediction",
    "SegmentationScores",
    "confusion_matrix",
    "SceneSubset",
]
