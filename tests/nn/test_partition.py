"""Spatial partitions: parts per axis, group numbering, group sizes, and bad input."""

from __future__ import annotations

import pytest
import torch

from largekernel3d.nn.partition import PARTITIONS, SpatialPartition, axis_parts


@pytest.mark.parametrize(
    "k, name, sizes",
    [
        (7, "center1", [3, 1, 3]),
        (5, "center1", [2, 1, 2]),
        (3, "center1", [1, 1, 1]),
        (31, "center1", [15, 1, 15]),
        (7, "center3", [2, 3, 2]),
        (9, "center3", [3, 3, 3]),
        (3, "center3", [3]),
        (9, "thirds", [3, 3, 3]),
        (7, "thirds", [2, 3, 2]),
        (5, "thirds", [2, 1, 2]),
        (13, "thirds", [4, 5, 4]),
        (15, "thirds", [5, 5, 5]),
    ],
)
def test_axis_parts_tile_the_axis_symmetrically(k, name, sizes):
    parts = axis_parts(k, name)
    assert [e - s for s, e in parts] == sizes
    assert parts[0][0] == 0 and parts[-1][1] == k
    assert all(a[1] == b[0] for a, b in zip(parts, parts[1:]))
    # symmetric about the centre: the centre position lies in the middle part
    centre = [j for j, (s, e) in enumerate(parts) if s <= k // 2 < e][0]
    assert centre == len(parts) // 2


def test_center1_group_index_matches_a_dense_3x3x3_label_volume():
    p = SpatialPartition.create(7)
    assert p.num_groups == 27 and p.group_shape == (3, 3, 3) and p.kernel_volume == 343
    lab = torch.tensor([0, 0, 0, 1, 2, 2, 2])
    expected = (lab.view(7, 1, 1) * 9 + lab.view(1, 7, 1) * 3 + lab.view(1, 1, 7)).reshape(-1)
    assert torch.equal(p.group_index(), expected)
    sizes = p.group_sizes().view(3, 3, 3)
    assert sizes[1, 1, 1] == 1 and sizes[0, 0, 0] == 27 and sizes[0, 1, 2] == 9 and int(sizes.sum()) == 343
    assert p.group_index()[p.centre_offset] == 13


def test_per_axis_kernel_sizes_and_degenerate_axes():
    p = SpatialPartition.create((3, 5, 9), "center3")
    assert p.group_shape == (1, 3, 3) and p.num_groups == 9
    assert p.kernel_volume == 135 and int(p.group_sizes().sum()) == 135
    assert p.centre_offset == (1 * 5 + 2) * 9 + 4
    q = SpatialPartition.create(3)
    assert torch.equal(q.group_index(), torch.arange(27))  # k = 3: every offset its own group


@pytest.mark.parametrize("bad", [4, 2, 1, 0, -3, 33, (7, 7), (7, 6, 7), True, 7.0, "7"])
def test_bad_kernel_size_names_the_argument(bad):
    with pytest.raises((ValueError, TypeError), match="kernel_size"):
        SpatialPartition.create(bad)


@pytest.mark.parametrize("bad", ["center", "Center1", "", None, 3])
def test_unknown_partition_names_the_argument(bad):
    with pytest.raises(ValueError, match="partition must be one of"):
        SpatialPartition.create(7, bad)
    assert "center1" in PARTITIONS
