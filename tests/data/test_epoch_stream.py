"""The per-epoch augmentation stream both voxelised views inherit: one stream per (seed, item, epoch)."""

import numpy as np
import pytest

from largekernel3d.data.detection.voxelized import VoxelizedDetection
from largekernel3d.data.epoch_stream import EpochStream, check_step
from largekernel3d.data.voxelized import VoxelizedSegmentation


class _Items:
    class_names = ("a", "b")

    def __len__(self) -> int:
        return 5


def test_rng_is_the_documented_stream_per_seed_item_epoch():
    view = EpochStream(_Items(), seed=7)
    assert len(view) == 5 and view.class_names == ("a", "b") and view.epoch == 0
    first = view.rng(3).random(4)
    np.testing.assert_array_equal(first, np.random.default_rng([7, 3, 0]).random(4))
    np.testing.assert_array_equal(view.rng(3).random(4), first)  # reproducible
    assert not np.array_equal(view.rng(2).random(4), first)  # differs per item
    view.set_epoch(2)
    assert view.epoch == 2
    np.testing.assert_array_equal(view.rng(3).random(4), np.random.default_rng([7, 3, 2]).random(4))
    assert not np.array_equal(view.rng(3).random(4), first)  # differs per epoch
    with pytest.raises(ValueError, match="epoch must be >= 0"):
        view.set_epoch(-1)
    assert view.epoch == 2


def test_check_step_names_the_argument():
    check_step(None, "transforms", "scene")
    check_step(lambda item, rng: item, "transforms", "scene")
    with pytest.raises(TypeError, match=r"gt_sampler must be a callable \(frame, rng\) -> frame, got 3"):
        check_step(3, "gt_sampler", "frame")


def test_both_voxelised_views_use_the_one_stream():
    assert issubclass(VoxelizedSegmentation, EpochStream) and issubclass(VoxelizedDetection, EpochStream)
    for cls in (VoxelizedSegmentation, VoxelizedDetection):
        assert "set_epoch" not in vars(cls) and "rng" not in vars(cls)
