"""Run trained networks on point clouds from files or arrays: :class:`Predictor` (segmentation labels or
detection boxes), exact tiling of large scenes, test-time augmentation, and the per-file outputs."""

from .batch import FileSummary, predict_files, summary_table
from .detection import DetectionPredictor, DetPrediction
from .outputs import kitti_lines, write_det_outputs, write_seg_outputs
from .predictor import Predictor, predict_cloud, predict_file
from .receptive_field import conv_radius, receptive_field_radius
from .segmentation import SegmentationPredictor, SegPrediction
from .tiling import Tile, plan_tiles
from .tta import transform_coords, tta_transforms

__all__ = [
    "FileSummary",
    "predict_files",
    "summary_table",
    "DetectionPredictor",
    "DetPrediction",
    "kitti_lines",
    "write_det_outputs",
    "write_seg_outputs",
    "Predictor",
    "predict_cloud",
    "predict_file",
    "conv_radius",
    "receptive_field_radius",
    "SegmentationPredictor",
    "SegPrediction",
    "Tile",
    "plan_tiles",
    "transform_coords",
    "tta_transforms",
]
