"""GeneratedIndoorDataset: scene i is a pure function of (seed, i), cached scenes are independent copies,
bad arguments are refused."""

import numpy as np
import pytest

from largekernel3d.data import GeneratedIndoorDataset


def test_deterministic_per_seed_and_index():
    a = GeneratedIndoorDataset(3, seed=5, points_per_scene=3000)
    b = GeneratedIndoorDataset(3, seed=5, points_per_scene=3000)
    for i in range(3):
        np.testing.assert_array_equal(a[i].points, b[i].points)
        np.testing.assert_array_equal(a[i].colors, b[i].colors)
        np.testing.assert_array_equal(a[i].labels, b[i].labels)
    assert not np.array_equal(a[0].points, a[1].points)
    c = GeneratedIndoorDataset(1, seed=6, points_per_scene=3000)
    assert not np.array_equal(a[0].points, c[0].points)
    # index i of a longer dataset is the same scene
    np.testing.assert_array_equal(GeneratedIndoorDataset(10, seed=5, points_per_scene=3000)[2].points, a[2].points)


def test_cache_returns_equal_independent_copies():
    ds = GeneratedIndoorDataset(2, seed=5, points_per_scene=3000, cache=True)
    a = ds[1]
    a.points[:] = 0.0
    b = ds[1]
    np.testing.assert_array_equal(b.points, GeneratedIndoorDataset(2, seed=5, points_per_scene=3000)[1].points)


def test_bad_arguments():
    with pytest.raises(ValueError, match="num_scenes"):
        GeneratedIndoorDataset(0)
    with pytest.raises(ValueError, match="points_per_scene"):
        GeneratedIndoorDataset(2, points_per_scene=10)
    with pytest.raises(IndexError):
        GeneratedIndoorDataset(2)[2]
