"""Fixtures of the CLI tests: a tiny YAML run configuration written to a temporary folder."""

import pytest
import yaml

TINY = {
    "name": "tiny_cli", "seed": 0,
    "data": {"dataset": "generated", "num_train_scenes": 2, "num_val_scenes": 2, "points_per_scene": 1500,
             "voxel_size": 0.25},
    "model": {"name": "largekernel3d_seg", "layers": [1] * 8, "planes": [8] * 8, "init_dim": 8,
              "stage_kernel_sizes": [3, 3, 3, 3], "stage_conv_types": "plain"},
    "train": {"epochs": 1, "batch_size": 2, "optimizer": "sgd", "lr": 0.05, "progress": False, "device": "cpu"},
}


@pytest.fixture
def tiny_yaml(tmp_path):
    """Path of a YAML config for a one-epoch run of a width-8 network on two 1500-point scenes."""
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(dict(TINY, output_dir=str(tmp_path / "run"))))
    return path


@pytest.fixture(autouse=True, scope="session")
def single_thread():
    """One torch/numba thread (shared 2-core CI machines); restored afterwards."""
    import torch
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
