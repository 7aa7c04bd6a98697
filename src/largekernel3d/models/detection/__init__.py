"""LiDAR 3D object detection: voxel feature encoders, sparse 3D backbones (VoxelBackBone8x,
VoxelResBackBone8x, the LargeKernel3D backbone), the BEV neck, the CenterPoint head and the assembled
CenterPoint detector (:func:`build_detector`)."""

from .backbone3d import (
    LARGEKERNEL3D_BACKBONE_PRESETS,
    BackbonePreset,
    DetectionBackbone3d,
    LargeKernel3DBackbone,
    VoxelBackBone8x,
    VoxelResBackBone8x,
    build_largekernel3d_backbone,
)
from .bev import BEVNeck, HeightCompression
from .center_decode import CenterDecodeConfig, Detections
from .center_head import CenterHead, rot_channels_from_openpcdet
from .center_losses import CenterLossConfig
from .center_targets import CenterTargetConfig
from .centerpoint import (
    DETECTOR_NAMES,
    DETECTOR_PRESETS,
    CenterPoint,
    allowed_detector_keys,
    build_detector,
    kitti_detector_config,
    nuscenes_detector_config,
)
from .official_det import OfficialLoadReport, load_official_backbone
from .vfe import MeanVFE

__all__ = [
    "MeanVFE",
    "DetectionBackbone3d",
    "VoxelBackBone8x",
    "VoxelResBackBone8x",
    "LargeKernel3DBackbone",
    "BackbonePreset",
    "LARGEKERNEL3D_BACKBONE_PRESETS",
    "build_largekernel3d_backbone",
    "HeightCompression",
    "BEVNeck",
    "CenterHead",
    "rot_channels_from_openpcdet",
    "CenterLossConfig",
    "CenterTargetConfig",
    "CenterDecodeConfig",
    "Detections",
    "CenterPoint",
    "DETECTOR_NAMES",
    "DETECTOR_PRESETS",
    "build_detector",
    "allowed_detector_keys",
    "nuscenes_detector_config",
    "kitti_detector_config",
    "OfficialLoadReport",
    "load_official_backbone",
]
