"""Tiny trained checkpoints shared by the inference tests (one short training run each per session)."""

import sys
from pathlib import Path

import pytest
from helpers import torch_threads

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "training"))
SHARED_DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    """``../shared/data`` beside the repository (the test is skipped when it is absent)."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not present")
    return SHARED_DATA.resolve()


@pytest.fixture(autouse=True, scope="module")
def single_thread():
    """One torch / numba thread (shared CI machines); restored afterwards."""
    with torch_threads(1):
        yield


@pytest.fixture(scope="session")
def seg_checkpoint(tmp_path_factory):
    """A one-epoch LargeKernel3D-Seg (width 8, 3³ stages) on generated rooms, 25 cm voxels."""
    from seg_tiny import tiny_run_config

    from largekernel3d.training import SegmentationTrainer

    folder = tmp_path_factory.mktemp("seg_ckpt")
    cfg = tiny_run_config(folder, ["train.epochs=1", "data.num_val_scenes=1"])
    with torch_threads(1):
        return SegmentationTrainer(cfg).fit().last_checkpoint


@pytest.fixture(scope="session")
def det_checkpoint(tmp_path_factory):
    """A one-epoch LargeKernel3D CenterPoint on generated LiDAR frames (det_tiny)."""
    from det_tiny import tiny_det_config

    from largekernel3d.training.det_trainer import DetectionTrainer

    folder = tmp_path_factory.mktemp("det_ckpt")
    cfg = tiny_det_config(folder, ["train.epochs=1", "data.num_train_frames=2", "data.num_val_frames=1"])
    with torch_threads(1):
        return DetectionTrainer(cfg).fit().last_checkpoint
