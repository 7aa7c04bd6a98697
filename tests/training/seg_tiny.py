"""A tiny run configuration for the training tests (importable as ``seg_tiny`` from this folder; a
plain module rather than ``conftest`` so that spawned DDP workers and module fixtures can import it)."""

from largekernel3d.training.config import build_config


def tiny_run_config(output_dir, overrides=()):
    """A LargeKernel3D-Seg of width 8 with 3^3 convs on 4 + 2 generated scenes of 1500 points, 25 cm voxels."""
    data = {
        "name": "tiny",
        "seed": 0,
        "output_dir": str(output_dir),
        "data": {
            "dataset": "generated",
            "num_train_scenes": 4,
            "num_val_scenes": 2,
            "points_per_scene": 1500,
            "voxel_size": 0.25,
            "augment": True,
        },
        "model": {
            "name": "largekernel3d_seg",
            "layers": [1] * 8,
            "planes": [8] * 8,
            "init_dim": 8,
            "stage_kernel_sizes": [3, 3, 3, 3],
            "stage_conv_types": "plain",
        },
        "train": {"epochs": 2, "batch_size": 2, "optimizer": "sgd", "lr": 0.05, "progress": False, "device": "cpu"},
    }
    return build_config(data, overrides)
