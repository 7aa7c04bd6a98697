"""Fixtures of the training tests: a tiny run configuration on generated scenes (seconds per run)."""

import pytest

from largekernel3d.training.config import build_config


def tiny_run_config(output_dir, overrides=()):
    """A LargeKernel3D-Seg of width 8 with 3^3 convs on 4 + 2 generated scenes of 1500 points, 25 cm voxels."""
    data = {"name": "tiny", "seed": 0, "output_dir": str(output_dir),
            "data": {"dataset": "generated", "num_train_scenes": 4, "num_val_scenes": 2, "points_per_scene": 1500,
                     "voxel_size": 0.25, "augment": True},
            "model": {"name": "largekernel3d_seg", "layers": [1] * 8, "planes": [8] * 8, "init_dim": 8,
                      "stage_kernel_sizes": [3, 3, 3, 3], "stage_conv_types": "plain"},
            "train": {"epochs": 2, "batch_size": 2, "optimizer": "sgd", "lr": 0.05, "progress": False,
                      "device": "cpu"}}
    return build_config(data, overrides)


@pytest.fixture
def tiny_config():
    """``tiny_config(output_dir, overrides=())`` -> a validated tiny run configuration."""
    return tiny_run_config


@pytest.fixture(autouse=True, scope="session")
def single_thread():
    """One torch (and hence numba) thread: on a shared 2-core CI machine, 2 spinning threads per
    process make tiny sparse convs many times slower. Restored afterwards."""
    import torch
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
