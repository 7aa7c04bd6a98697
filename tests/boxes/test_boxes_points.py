"""Points in boxes against a brute-force transform of every point into every box frame, and on KITTI."""

from __future__ import annotations

import json
import math
import time

import numpy as np
import pytest
import torch

from boxes_reference import inside_box, kitti_lidar_boxes, random_boxes
from largekernel3d.boxes import points as points_module
from largekernel3d.boxes import points_in_boxes, points_in_boxes_index


def _brute_force(points: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    return np.stack([inside_box(points, box) for box in boxes], axis=1).reshape(len(points), len(boxes))


def _first_box(mask: np.ndarray) -> np.ndarray:
    return np.where(mask.any(axis=1), mask.argmax(axis=1), -1)


def _scene(rng, num_points: int, num_boxes: int):
    points = np.concatenate((rng.uniform(-6, 6, (num_points, 3)), rng.uniform(0, 1, (num_points, 1))), axis=1)
    boxes = random_boxes(rng, num_boxes, spread=5.0, extra=2)
    return points, boxes


def test_random_points_float64_numpy(rng):
    points, boxes = _scene(rng, 20_000, 40)
    expected = _brute_force(points, boxes)
    got = points_in_boxes(points, boxes)
    assert isinstance(got, np.ndarray) and got.dtype == np.bool_ and got.shape == (20_000, 40)
    assert expected.sum() > 1000 and (expected.sum(axis=1) > 1).any()  # overlapping boxes occur
    np.testing.assert_array_equal(got, expected)
    index = points_in_boxes_index(points, boxes)
    assert index.dtype == np.int64
    np.testing.assert_array_equal(index, _first_box(expected))


def test_random_points_float32_torch(rng):
    points, boxes = _scene(rng, 20_000, 30)
    points32, boxes32 = points.astype(np.float32), boxes.astype(np.float32)
    got = points_in_boxes(torch.from_numpy(points32), torch.from_numpy(boxes32)).numpy()
    expected = _brute_force(points32.astype(np.float64), boxes32.astype(np.float64))
    # float32 rounding may only flip points within a hair (0.1 mm) of a face
    near_face = np.stack(
        [
            inside_box(points32, box, slack=1e-4) ^ inside_box(points32, box, slack=-1e-4)
            for box in boxes32.astype(np.float64)
        ],
        axis=1,
    )
    assert ((got != expected) & ~near_face).sum() == 0
    assert (got != expected).sum() <= 2
    index = points_in_boxes_index(torch.from_numpy(points32), torch.from_numpy(boxes32))
    assert index.dtype == torch.int64
    np.testing.assert_array_equal(index.numpy(), _first_box(got))


def test_points_on_faces_edges_and_corners_count_as_inside():
    boxes = np.array([[1.0, -2.0, 0.5, 4.0, 2.0, 1.0, 0.0], [10.0, 10.0, 0.0, 2.0, 2.0, 2.0, math.pi / 2]])
    on = np.array([[3.0, -2.0, 0.5], [-1.0, -1.0, 0.5], [1.0, -3.0, 1.0], [3.0, -1.0, 1.0], [-1.0, -3.0, 0.0]])
    off = on + np.array([[1e-6, 0, 0], [-1e-6, 0, 0], [0, -1e-6, 0], [0, 0, 1e-6], [0, 0, -1e-6]])
    assert points_in_boxes(on, boxes)[:, 0].all()
    assert not points_in_boxes(off, boxes)[:, 0].any()
    assert (points_in_boxes_index(on, boxes) == 0).all()
    assert (points_in_boxes_index(off, boxes) == -1).all()


@pytest.mark.parametrize("dtype, outside", [(np.float64, 1e-6), (np.float32, 2e-3)])
def test_points_on_faces_of_rotated_boxes(rng, dtype, outside):
    boxes = random_boxes(rng, 25, spread=60.0)
    points, labels = [], []
    for k, box in enumerate(boxes):
        c, s = math.cos(box[6]), math.sin(box[6])
        rot = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
        half = box[3:6] / 2
        for axis in range(3):
            for sign in (-1.0, 1.0):
                local = rng.uniform(-1, 1, 3) * half
                local[axis] = sign * half[axis]
                for extra, label in ((0.0, True), (outside, False)):
                    shifted = local.copy()
                    shifted[axis] += sign * extra
                    points.append(rot @ shifted + box[:3])
                    labels.append((k, label))
    points = np.array(points, dtype=dtype)
    mask = points_in_boxes(torch.from_numpy(points), torch.from_numpy(boxes.astype(dtype))).numpy()
    for row, (k, label) in enumerate(labels):
        assert mask[row, k] == label, (row, k, label)


def test_chunked_candidates_give_the_same_result(rng, monkeypatch):
    points, boxes = _scene(rng, 3000, 20)
    expected = points_in_boxes(points, boxes)
    expected_index = points_in_boxes_index(points, boxes)
    monkeypatch.setattr(points_module, "PAIR_BUDGET", 37)
    np.testing.assert_array_equal(points_in_boxes(points, boxes), expected)
    np.testing.assert_array_equal(points_in_boxes_index(points, boxes), expected_index)


def test_empty_inputs():
    assert points_in_boxes(np.zeros((0, 4)), np.ones((3, 7))).shape == (0, 3)
    assert points_in_boxes(np.ones((5, 3)), np.zeros((0, 7))).shape == (5, 0)
    assert points_in_boxes_index(torch.ones(5, 3), torch.zeros(0, 7)).tolist() == [-1] * 5
    assert points_in_boxes_index(torch.zeros(0, 3), torch.zeros(0, 7)).shape == (0,)


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="points"):
        points_in_boxes(np.zeros((5, 2)), np.zeros((1, 7)))
    with pytest.raises(ValueError, match="boxes"):
        points_in_boxes_index(np.zeros((5, 3)), np.zeros((1, 6)))
    with pytest.raises(TypeError, match="points"):
        points_in_boxes(np.zeros((5, 3), dtype=np.int16), np.zeros((1, 7)))


def _large_frame(rng):
    """170 k points x 120 boxes, LiDAR-like density (most points near the sensor)."""
    radius = np.abs(rng.normal(0, 15, 170_000)) + 2
    angle = rng.uniform(-math.pi, math.pi, 170_000)
    points = np.stack(
        (radius * np.cos(angle), radius * np.sin(angle), rng.uniform(-2, 1, 170_000), rng.uniform(0, 1, 170_000)),
        axis=1,
    ).astype(np.float32)
    boxes = random_boxes(rng, 120, spread=30.0).astype(np.float32)
    boxes[:, 3:6] *= 1.5
    return torch.from_numpy(points), torch.from_numpy(boxes)


def test_large_frame_mask_and_index_agree(rng):
    points, boxes = _large_frame(rng)
    mask = points_in_boxes(points, boxes)
    index = points_in_boxes_index(points, boxes)
    assert mask.sum() > 1000
    assert torch.equal(index >= 0, mask.any(dim=1))


@pytest.mark.perf
def test_large_frame_is_fast(rng):
    """The goal is well under a second on one CPU thread; the bound leaves room for a busy machine."""
    points, boxes = _large_frame(rng)
    start = time.perf_counter()
    points_in_boxes(points, boxes)
    points_in_boxes_index(points, boxes)
    elapsed = time.perf_counter() - start
    assert elapsed < 2.0, f"points_in_boxes + points_in_boxes_index took {elapsed:.2f} s"


@pytest.mark.shared_data
@pytest.mark.parametrize("frame", ["000000", "000001", "000002", "000003", "000004", "000005"])
def test_kitti_points_in_boxes_match_the_manifest(shared_data, frame):
    root = shared_data / "kitti" / "training"
    facts = json.loads((shared_data / "MANIFEST.json").read_text())["load_checks"][f"kitti/training/{frame}"]
    boxes = kitti_lidar_boxes(root / "label_2" / f"{frame}.txt", root / "calib" / f"{frame}.txt")
    np.testing.assert_allclose(boxes, np.array(facts["boxes_lidar_xyzlwh_yaw"]), atol=0.006)  # our conversion
    points = np.fromfile(root / "velodyne" / f"{frame}.bin", dtype=np.float32).reshape(-1, 4)
    assert len(points) == facts["n_points"]
    mask = points_in_boxes(points, boxes.astype(np.float32))
    assert mask.sum(axis=0).tolist() == facts["points_in_boxes"]
    np.testing.assert_array_equal(mask, _brute_force(points, boxes.astype(np.float32)))
