"""A tiny detection run configuration for the training and CLI tests (a plain module, importable as
``det_tiny``)."""

from largekernel3d.training.config import build_config
from largekernel3d.training.det_config import DET_SCHEMA

TINY_DET = {
    "name": "tiny_det",
    "task": "det",
    "seed": 0,
    "data": {
        "dataset": "synthetic",
        "num_train_frames": 4,
        "num_val_frames": 2,
        "synthetic_beams": 16,
        "cache_frames": True,
        "point_cloud_range": [-12.8, -12.8, -3.0, 12.8, 12.8, 1.0],
        "voxel_size": [0.2, 0.2, 0.1],
        "max_points_per_voxel": 3,
        "max_voxels_train": 8000,
        "max_voxels_val": 8000,
    },
    "model": {
        "name": "centerpoint_largekernel3d",
        "tasks": [["Car", "Truck"], ["Pedestrian", "Cyclist"]],
        "backbone_preset": "v1_7773",
        "backbone": {
            "kernel_sizes": [5, 3, 3, 3],
            "conv_types": ["swlk", "plain", "plain", "plain"],
            "down_kernel_size": 3,
        },
        "neck": {
            "layer_nums": [1],
            "layer_strides": [1],
            "num_filters": [32],
            "upsample_strides": [1],
            "num_upsample_filters": [32],
        },
        "head": {
            "shared_channels": 16,
            "head_channels": 16,
            "decode": {"post_center_range": [-12.8, -12.8, -4.0, 12.8, 12.8, 2.0]},
        },
    },
    "train": {"epochs": 2, "batch_size": 2, "lr": 0.003, "progress": False, "device": "cpu", "threads": 1},
}


def tiny_det_config(output_dir, overrides=()):
    """A LargeKernel3D CenterPoint (SW-LK 5^3 in stage 1) on 4 + 2 generated 16-beam frames, 25.6 m square."""
    return build_config(dict(TINY_DET, output_dir=str(output_dir)), overrides, schema=DET_SCHEMA)
