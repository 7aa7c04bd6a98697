"""LiDAR detection data: the :class:`LidarFrame` every reader returns, the dataset readers (KITTI,
nuScenes, PandaSet), the synthetic LiDAR, augmentations and ground-truth sampling."""

from .frame import BOX_FIELDS, VELOCITY_FIELDS, DetectionDataset, LidarFrame

__all__ = ["BOX_FIELDS", "VELOCITY_FIELDS", "LidarFrame", "DetectionDataset"]
