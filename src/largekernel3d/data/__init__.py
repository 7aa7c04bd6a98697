"""Datasets, the procedural scene generator, augmentations, voxelisation and batching.

Flow: a :class:`SegmentationDataset` yields :class:`PointCloudScene` (points in metres, colours in
[0, 1], per-point labels); :class:`VoxelizedSegmentation` augments and voxelises each scene into a
:class:`SegSample`; :func:`collate_segmentation` batches samples into a :class:`SegBatch` whose
``to_sparse_tensor()`` feeds the networks.
"""

from .generator import GeneratedIndoorDataset, generate_indoor_scene
from .render import label_colors, render_scene
from .s3dis import S3DIS_CLASSES, S3DISDataset
from .scannet import (
    NYU40_TO_SCANNET20,
    SCANNET20_CLASSES,
    SCANNET20_COLORS,
    SCANNET20_NYU40_IDS,
    ScanNetDataset,
    nyu40_to_scannet20,
    room_id,
    split_scenes_by_room,
)
from .scene import IGNORE_INDEX, PointCloudScene, SegmentationDataset
from .semantickitti import SEMANTICKITTI_CLASSES, SEMANTICKITTI_LEARNING_MAP, SemanticKITTIDataset
from .transforms import ColorJitter, Compose, ElasticDistortion, RandomFlip, RandomJitter, RandomRotateZ, RandomScale
from .voxelized import (
    IN_CHANNELS,
    SegBatch,
    SegSample,
    VoxelizedSegmentation,
    collate_segmentation,
    majority_labels,
    voxelize_scene,
)

__all__ = [
    "IGNORE_INDEX",
    "PointCloudScene",
    "SegmentationDataset",
    "ScanNetDataset",
    "SCANNET20_CLASSES",
    "SCANNET20_COLORS",
    "SCANNET20_NYU40_IDS",
    "NYU40_TO_SCANNET20",
    "nyu40_to_scannet20",
    "room_id",
    "split_scenes_by_room",
    "S3DISDataset",
    "S3DIS_CLASSES",
    "SemanticKITTIDataset",
    "SEMANTICKITTI_CLASSES",
    "SEMANTICKITTI_LEARNING_MAP",
    "GeneratedIndoorDataset",
    "generate_indoor_scene",
    "render_scene",
    "label_colors",
    "Compose",
    "RandomRotateZ",
    "RandomFlip",
    "RandomScale",
    "RandomJitter",
    "ColorJitter",
    "ElasticDistortion",
    "IN_CHANNELS",
    "SegSample",
    "SegBatch",
    "VoxelizedSegmentation",
    "collate_segmentation",
    "majority_labels",
    "voxelize_scene",
]
