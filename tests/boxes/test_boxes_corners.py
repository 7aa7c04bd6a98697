"""Angles, corners, BEV bounding rectangles, enlarged boxes and the argument checks shared by the box API."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from boxes_reference import corners_by_loop, random_boxes
from largekernel3d.boxes import (
    bev_iou,
    boxes_bev_aabb,
    boxes_to_bev_corners,
    boxes_to_corners_3d,
    enlarge_boxes,
    points_in_boxes,
    wrap_angle,
)


# ----------------------------------------------------------------------------------------------- wrap_angle
@pytest.mark.parametrize("offset, period", [(0.5, 2 * math.pi), (0.0, 2 * math.pi), (0.5, math.pi), (0.25, 1.0)])
def test_wrap_angle_matches_python_floor(rng, offset, period):
    angles = rng.uniform(-20, 20, 200)
    expected = np.array([a - math.floor(a / period + offset) * period for a in angles])
    np.testing.assert_allclose(wrap_angle(angles, offset, period), expected, rtol=0, atol=1e-12)
    tensor = wrap_angle(torch.tensor(angles), offset, period)
    assert isinstance(tensor, torch.Tensor) and tensor.dtype == torch.float64
    np.testing.assert_allclose(tensor.numpy(), expected, rtol=0, atol=1e-12)
    assert wrap_angle(float(angles[0]), offset, period) == pytest.approx(expected[0], abs=1e-12)


def test_wrap_angle_interval_and_dtype(rng):
    angles = torch.tensor(rng.uniform(-50, 50, 1000), dtype=torch.float32)
    wrapped = wrap_angle(angles)
    assert wrapped.dtype == torch.float32 and wrapped.shape == angles.shape
    assert wrapped.min() >= -math.pi - 1e-6 and wrapped.max() <= math.pi + 1e-6
    np.testing.assert_allclose(np.cos(wrapped.numpy()), np.cos(angles.numpy()), atol=2e-5)
    assert wrap_angle(-math.pi) == pytest.approx(-math.pi) and wrap_angle(math.pi) == pytest.approx(-math.pi)
    assert wrap_angle(np.zeros(0, dtype=np.float32)).dtype == np.float32


def test_wrap_angle_rejects_bad_input():
    with pytest.raises(TypeError, match="angle"):
        wrap_angle("1.0")
    with pytest.raises(TypeError, match="angle"):
        wrap_angle(torch.arange(3))
    with pytest.raises(ValueError, match="period"):
        wrap_angle(1.0, period=0.0)


# ------------------------------------------------------------------------------------------------- corners
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_corners_3d_match_explicit_rotation(rng, dtype):
    boxes = random_boxes(rng, 50, extra=2).astype(dtype)
    expected = np.array([corners_by_loop(box) for box in boxes.astype(np.float64)])
    got_numpy = boxes_to_corners_3d(boxes)
    got_torch = boxes_to_corners_3d(torch.from_numpy(boxes))
    assert isinstance(got_numpy, np.ndarray) and got_numpy.dtype == dtype and got_numpy.shape == (50, 8, 3)
    assert got_torch.dtype == torch.from_numpy(boxes).dtype
    atol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(got_numpy, expected, atol=atol, rtol=0)
    np.testing.assert_allclose(got_torch.numpy(), expected, atol=atol, rtol=0)


def test_corner_order_on_an_unrotated_box():
    box = np.array([[1.0, 2.0, 3.0, 4.0, 2.0, 6.0, 0.0]])
    corners = boxes_to_corners_3d(box)[0]
    assert corners[0].tolist() == [3.0, 3.0, 0.0]  # front-left bottom
    assert corners[2].tolist() == [-1.0, 1.0, 0.0]  # back-right bottom
    assert corners[4].tolist() == [3.0, 3.0, 6.0]  # front-left top
    np.testing.assert_array_equal(corners[4:, :2], corners[:4, :2])


def test_bev_corners_are_counter_clockwise_and_the_bottom_face(rng):
    boxes = random_boxes(rng, 40)
    bev = boxes_to_bev_corners(boxes)
    assert bev.shape == (40, 4, 2)
    x, y = bev[..., 0], bev[..., 1]
    signed_area = 0.5 * (x * np.roll(y, -1, axis=1) - np.roll(x, -1, axis=1) * y).sum(axis=1)
    np.testing.assert_allclose(signed_area, boxes[:, 3] * boxes[:, 4], rtol=1e-12)
    bottom = np.array([corners_by_loop(box)[:4] for box in boxes])[..., :2]
    for k in range(40):  # the same four points as the 3D bottom face
        dist = np.linalg.norm(bev[k][:, None, :] - bottom[k][None, :, :], axis=-1)
        assert np.allclose(dist.min(axis=1), 0, atol=1e-12)


def test_bev_aabb_bounds_the_corners(rng):
    boxes = random_boxes(rng, 60)
    aabb = boxes_bev_aabb(torch.from_numpy(boxes)).numpy()
    corners = np.array([corners_by_loop(box) for box in boxes])
    expected = np.concatenate((corners[..., :2].min(axis=1), corners[..., :2].max(axis=1)), axis=1)
    np.testing.assert_allclose(aabb, expected, atol=1e-12)


def test_enlarge_boxes_grows_sizes_only(rng):
    boxes = random_boxes(rng, 10, extra=2)
    grown = enlarge_boxes(boxes, 0.4)
    np.testing.assert_allclose(grown[:, 3:6], boxes[:, 3:6] + 0.4)
    np.testing.assert_array_equal(np.delete(grown, [3, 4, 5], axis=1), np.delete(boxes, [3, 4, 5], axis=1))
    per_axis = enlarge_boxes(torch.from_numpy(boxes).float(), (0.1, 0.2, -0.3))
    assert per_axis.dtype == torch.float32
    np.testing.assert_allclose(per_axis[:, 3:6].numpy(), boxes[:, 3:6] + [0.1, 0.2, -0.3], atol=1e-6)
    assert (enlarge_boxes(boxes, -10.0)[:, 3:6] == 0).all()
    assert boxes[0, 3] != grown[0, 3]  # the input is left alone
    with pytest.raises(ValueError, match="margin"):
        enlarge_boxes(boxes, (1.0, 2.0))


def test_enlarged_box_contains_points_a_margin_outside():
    box = np.array([[0.0, 0.0, 0.0, 2.0, 1.0, 1.0, 0.7]])
    yaw = 0.7
    outside = np.array([[1.1 * math.cos(yaw), 1.1 * math.sin(yaw), 0.0]])  # 0.1 m past the front face
    assert not points_in_boxes(outside, box)[0, 0]
    assert points_in_boxes(outside, enlarge_boxes(box, 0.3))[0, 0]


# ------------------------------------------------------------------------------------------ shared checks
def test_empty_boxes_give_empty_results():
    empty = np.zeros((0, 7))
    assert boxes_to_corners_3d(empty).shape == (0, 8, 3)
    assert boxes_to_bev_corners(torch.zeros(0, 9)).shape == (0, 4, 2)
    assert boxes_bev_aabb(empty).shape == (0, 4)
    assert enlarge_boxes(empty, 1.0).shape == (0, 7)


@pytest.mark.parametrize("fn", [boxes_to_corners_3d, boxes_to_bev_corners, boxes_bev_aabb])
def test_bad_boxes_are_named(fn):
    with pytest.raises(ValueError, match="boxes.*7"):
        fn(np.zeros((3, 6)))
    with pytest.raises(ValueError, match="boxes"):
        fn(np.zeros(7))
    with pytest.raises(TypeError, match="boxes.*float32 or float64"):
        fn(np.zeros((3, 7), dtype=np.int64))
    with pytest.raises(TypeError, match="boxes.*float32 or float64"):
        fn(torch.zeros(3, 7, dtype=torch.float16))
    with pytest.raises(TypeError, match="boxes"):
        fn([[0.0] * 7])


def test_mixed_numpy_and_torch_are_refused():
    with pytest.raises(TypeError, match="boxes_b.*numpy"):
        bev_iou(torch.zeros(1, 7), np.zeros((1, 7)))
