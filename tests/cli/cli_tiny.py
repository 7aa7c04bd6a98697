"""The tiny YAML run configuration of the CLI tests (a plain module, importable as ``cli_tiny``)."""

TINY = {
    "name": "tiny_cli",
    "seed": 0,
    "data": {
        "dataset": "generated",
        "num_train_scenes": 2,
        "num_val_scenes": 2,
        "points_per_scene": 1500,
        "voxel_size": 0.25,
    },
    "model": {
        "name": "largekernel3d_seg",
        "layers": [1] * 8,
        "planes": [8] * 8,
        "init_dim": 8,
        "stage_kernel_sizes": [3, 3, 3, 3],
        "stage_conv_types": "plain",
    },
    "train": {"epochs": 1, "batch_size": 2, "optimizer": "sgd", "lr": 0.05, "progress": False, "device": "cpu"},
}
