"""voxelize_frame / collate_detection: columns chosen by name, voxels checked point by point, batching."""

import numpy as np
import pytest
import torch

from largekernel3d.data.detection.augment import boxes_in_range_mask
from largekernel3d.data.detection.batch import DetectionBatch, DetectionSample, collate_detection, voxelize_frame
from largekernel3d.data.detection.frame import LidarFrame
from largekernel3d.sparse.point_to_voxel import VoxelGrid

KITTI_GRID = VoxelGrid([0.0, -40.0, -3.0, 70.4, 40.0, 1.0], [0.05, 0.05, 0.1])


def random_boxes(rng, count, with_velocity=False):
    centre = rng.uniform([-10, -50, -4], [80, 50, 2], size=(count, 3))
    size = rng.uniform(0.5, 5.0, size=(count, 3))
    yaw = rng.uniform(-np.pi, np.pi, size=(count, 1))
    parts = [centre, size, yaw] + ([rng.normal(size=(count, 2))] if with_velocity else [])
    return np.concatenate(parts, axis=1).astype(np.float32)


@pytest.fixture
def kitti_frame(shared_data) -> LidarFrame:
    """KITTI 000002 with an extra (random) time column put before the intensity, and random boxes."""
    raw = np.fromfile(shared_data / "kitti" / "training" / "velodyne" / "000002.bin", dtype=np.float32)
    raw = raw.reshape(-1, 4)[::4]
    rng = np.random.default_rng(0)
    lag = rng.uniform(0, 0.5, size=(len(raw), 1)).astype(np.float32)
    points = np.concatenate([raw[:, :3], lag, raw[:, 3:]], axis=1)
    return LidarFrame(
        name="000002",
        points=points,
        point_features=("x", "y", "z", "time_lag", "intensity"),
        boxes=random_boxes(rng, 6),
        labels=rng.integers(0, 3, size=6),
        metadata={"source": "kitti"},
    )


def test_voxels_hold_the_chosen_columns_of_their_points(kitti_frame):
    sample = voxelize_frame(kitti_frame, KITTI_GRID, ("x", "y", "z", "intensity"), 5, 50_000)
    assert isinstance(sample, DetectionSample)
    assert sample.voxels.shape[1:] == (5, 4) and sample.voxels.dtype == torch.float32
    assert sample.coords.dtype == torch.int32 and sample.num_points.dtype == torch.int32
    expected_rows = kitti_frame.points[:, [0, 1, 2, 4]]
    # every stored point is a row of the frame, in the voxel it was given (z, y, x)
    lo = np.float32([0.0, -40.0, -3.0])
    size = np.float32([0.05, 0.05, 0.1])
    rows = {tuple(r) for r in expected_rows.tolist()}
    for j in range(0, sample.num_voxels, 97):
        for point in sample.voxels[j, : sample.num_points[j]].numpy():
            assert tuple(point.tolist()) in rows
            cell = np.floor((point[:3] - lo) / size).astype(int)[::-1]
            assert cell.tolist() == sample.coords[j].tolist()
        assert not sample.voxels[j, sample.num_points[j] :].any()
    # all in-range points are counted once (P = 5 caps some voxels, so compare with a P no voxel reaches)
    uncapped = voxelize_frame(kitti_frame, KITTI_GRID, ("x", "y", "z", "intensity"), 64, 50_000)
    assert int(uncapped.num_points.max()) < 64 and int(sample.num_points.max()) == 5
    inside = (
        (expected_rows[:, :3] >= KITTI_GRID.point_cloud_range[:3])
        & (expected_rows[:, :3] < KITTI_GRID.point_cloud_range[3:])
    ).all(axis=1)
    assert int(uncapped.num_points.sum()) == int(inside.sum())
    assert sample.num_voxels == uncapped.num_voxels and torch.equal(sample.coords, uncapped.coords)
    assert sample.name == "000002" and sample.metadata == {"source": "kitti"}
    assert sample.point_features == ("x", "y", "z", "intensity")
    np.testing.assert_array_equal(sample.gt_boxes.numpy(), kitti_frame.boxes)
    np.testing.assert_array_equal(sample.gt_labels.numpy(), kitti_frame.labels)


def test_column_order_follows_the_names(kitti_frame):
    a = voxelize_frame(kitti_frame, KITTI_GRID, ("x", "y", "z", "intensity", "time_lag"), 5, 50_000)
    b = voxelize_frame(kitti_frame, KITTI_GRID, ("x", "y", "z", "time_lag", "intensity"), 5, 50_000)
    assert torch.equal(a.voxels[..., 3], b.voxels[..., 4]) and torch.equal(a.voxels[..., 4], b.voxels[..., 3])


def test_remove_outside_boxes_uses_the_centre():
    rng = np.random.default_rng(1)
    boxes = random_boxes(rng, 40)
    frame = LidarFrame(
        name="f",
        points=rng.uniform(0, 10, size=(50, 4)),
        point_features=("x", "y", "z", "i"),
        boxes=boxes,
        labels=np.arange(40) % 3,
    )
    sample = voxelize_frame(frame, KITTI_GRID, ("x", "y", "z", "i"), 5, 1000, remove_outside_boxes=True)
    pcr = KITTI_GRID.point_cloud_range
    keep = [all(pcr[a] <= b[a] < pcr[a + 3] for a in range(3)) for b in boxes.tolist()]
    assert 0 < sum(keep) < 40
    np.testing.assert_array_equal(sample.gt_boxes.numpy(), boxes[keep])
    np.testing.assert_array_equal(sample.gt_labels.numpy(), (np.arange(40) % 3)[keep])
    assert boxes_in_range_mask(boxes, pcr, use_z=True).tolist() == keep


def test_collate_prepends_the_batch_index(kitti_frame):
    rng = np.random.default_rng(2)
    other = LidarFrame(
        name="other",
        points=kitti_frame.points[::3] + np.float32([1, 0, 0, 0, 0]),
        point_features=kitti_frame.point_features,
        boxes=random_boxes(rng, 3, with_velocity=True),
        labels=[0, 1, 2],
    )
    empty = LidarFrame(
        name="empty",
        points=np.zeros((0, 5)),
        point_features=kitti_frame.point_features,
        boxes=np.zeros((0, 7)),
        labels=[],
    )
    names = ("x", "y", "z", "intensity")
    samples = [voxelize_frame(f, KITTI_GRID, names, 4, 30_000) for f in (kitti_frame, empty, other)]
    batch = collate_detection(samples)
    assert isinstance(batch, DetectionBatch) and batch.batch_size == 3
    assert batch.names == ["000002", "empty", "other"]
    assert batch.coords.shape == (sum(s.num_voxels for s in samples), 4) and batch.coords.dtype == torch.int32
    start = 0
    for b, s in enumerate(samples):
        rows = slice(start, start + s.num_voxels)
        assert (batch.coords[rows, 0] == b).all()
        assert torch.equal(batch.coords[rows, 1:], s.coords)
        assert torch.equal(batch.voxels[rows], s.voxels) and torch.equal(batch.num_points[rows], s.num_points)
        assert torch.equal(batch.gt_boxes[b], s.gt_boxes) and torch.equal(batch.gt_labels[b], s.gt_labels)
        start += s.num_voxels
    assert samples[1].num_voxels == 0 and batch.gt_boxes[1].shape == (0, 7)
    moved = batch.to("cpu")
    assert moved.device == torch.device("cpu") and moved.batch_size == 3


def test_bad_input_names_the_problem(kitti_frame):
    with pytest.raises(ValueError, match=r"no point column\(s\) \['elongation'\]"):
        voxelize_frame(kitti_frame, KITTI_GRID, ("x", "y", "z", "elongation"), 5, 100)
    with pytest.raises(ValueError, match="must start with 'x', 'y', 'z'"):
        voxelize_frame(kitti_frame, KITTI_GRID, ("intensity", "x", "y", "z"), 5, 100)
    with pytest.raises(TypeError, match="grid must be a VoxelGrid"):
        voxelize_frame(kitti_frame, [0, 0, 0, 1, 1, 1], ("x", "y", "z"), 5, 100)
    with pytest.raises(ValueError, match="max_voxels must be >= 1"):
        voxelize_frame(kitti_frame, KITTI_GRID, ("x", "y", "z"), 5, 0)
    a = voxelize_frame(kitti_frame, KITTI_GRID, ("x", "y", "z"), 5, 100)
    b = voxelize_frame(kitti_frame, KITTI_GRID, ("x", "y", "z", "intensity"), 5, 100)
    with pytest.raises(ValueError, match="same settings"):
        collate_detection([a, b])
    with pytest.raises(ValueError, match="at least one sample"):
        collate_detection([])
    with pytest.raises(TypeError, match="wrap it in a list"):
        collate_detection(a)
