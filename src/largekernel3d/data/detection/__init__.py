"""LiDAR detection data: the :class:`LidarFrame` every reader returns, the dataset readers (KITTI, nuScenes,
PandaSet, Waymo as mmdet3d converts it), the synthetic LiDAR (:mod:`.synthetic`), augmentations, ground-truth
sampling, voxelisation and batching.

Flow: a :class:`DetectionDataset` yields :class:`LidarFrame` (points with named columns, boxes
``[x, y, z, dx, dy, dz, yaw (, vx, vy)]`` in the LiDAR frame); :class:`VoxelizedDetection` samples, augments
and voxelises each frame into a :class:`DetectionSample`; :func:`collate_detection` batches samples into the
:class:`DetectionBatch` the detectors take.
"""

from .augment import DetectionAugmentation, boxes_in_range_mask, points_in_range_mask
from .batch import DetectionBatch, DetectionSample, collate_detection, select_point_columns, voxelize_frame
from .classes import (
    KITTI_CLASSES,
    KITTI_TYPES,
    NUSCENES_ATTRIBUTES,
    NUSCENES_CATEGORY_TO_CLASS,
    NUSCENES_CLASSES,
    PANDASET_CLASSES,
    PANDASET_LABEL_TO_CLASS,
    PANDASET_LABELS,
)
from .frame import BOX_FIELDS, VELOCITY_FIELDS, CachedFrames, DetectionDataset, LidarFrame
from .kitti import (
    KittiCalib,
    KittiDetection,
    KittiLabels,
    camera_boxes_to_lidar,
    kitti_difficulty,
    lidar_boxes_to_camera,
    read_kitti_labels,
    write_kitti_labels,
)
from .nuscenes import NuScenesDetection, NuScenesInfoDetection, NuScenesTables
from .pandaset import PandaSetDetection, split_frames_temporal
from .voxelized import VoxelizedDetection, drop_sparse_boxes
from .waymo import WAYMO_CLASSES, WAYMO_POINT_FEATURES, WaymoInfoDetection

__all__ = [
    "BOX_FIELDS",
    "VELOCITY_FIELDS",
    "LidarFrame",
    "DetectionDataset",
    "CachedFrames",
    "DetectionSample",
    "DetectionBatch",
    "voxelize_frame",
    "collate_detection",
    "select_point_columns",
    "boxes_in_range_mask",
    "points_in_range_mask",
    "VoxelizedDetection",
    "drop_sparse_boxes",
    "DetectionAugmentation",
    "KittiDetection",
    "KittiCalib",
    "KittiLabels",
    "read_kitti_labels",
    "write_kitti_labels",
    "kitti_difficulty",
    "camera_boxes_to_lidar",
    "lidar_boxes_to_camera",
    "NuScenesDetection",
    "NuScenesInfoDetection",
    "NuScenesTables",
    "PandaSetDetection",
    "split_frames_temporal",
    "WaymoInfoDetection",
    "WAYMO_CLASSES",
    "WAYMO_POINT_FEATURES",
    "KITTI_TYPES",
    "KITTI_CLASSES",
    "NUSCENES_CLASSES",
    "NUSCENES_CATEGORY_TO_CLASS",
    "NUSCENES_ATTRIBUTES",
    "PANDASET_LABELS",
    "PANDASET_CLASSES",
    "PANDASET_LABEL_TO_CLASS",
]
