"""Rotated BEV / 3D IoU against shapely polygons and a Monte-Carlo volume estimate."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from boxes_reference import bev_iou_shapely, corners_by_loop, inside_box, iou_3d_shapely, random_boxes
from largekernel3d.boxes import bev_iou, bev_iou_aligned, iou_3d, iou_3d_aligned
from largekernel3d.boxes import iou as iou_module

pytest.importorskip("shapely")


def test_bev_iou_random_boxes_float64_numpy(rng):
    a, b = random_boxes(rng, 45, extra=2), random_boxes(rng, 35)
    got = bev_iou(a, b)
    expected = bev_iou_shapely(a, b)
    assert isinstance(got, np.ndarray) and got.dtype == np.float64 and got.shape == (45, 35)
    assert (expected > 0).sum() > 100  # plenty of overlapping pairs
    np.testing.assert_allclose(got, expected, atol=1e-10, rtol=0)


def test_bev_iou_random_boxes_float32_torch(rng):
    a, b = random_boxes(rng, 30), random_boxes(rng, 40)
    got = bev_iou(torch.from_numpy(a).float(), torch.from_numpy(b).float())
    assert got.dtype == torch.float32 and got.shape == (30, 40)
    np.testing.assert_allclose(got.numpy(), bev_iou_shapely(a, b), atol=2e-5, rtol=0)


def test_bev_iou_far_from_origin_keeps_precision(rng):
    a, b = random_boxes(rng, 20), random_boxes(rng, 20)
    shift = np.array([2500.0, -1800.0])
    a[:, 0:2] += shift
    b[:, 0:2] += shift
    got = bev_iou(torch.from_numpy(a), torch.from_numpy(b)).numpy()
    a[:, 0:2] -= shift
    b[:, 0:2] -= shift
    np.testing.assert_allclose(got, bev_iou_shapely(a, b), atol=1e-9, rtol=0)


def test_bev_iou_mixed_precision_promotes(rng):
    a, b = random_boxes(rng, 5), random_boxes(rng, 6)
    got = bev_iou(torch.from_numpy(a).float(), torch.from_numpy(b))
    assert got.dtype == torch.float64


SPECIAL = {
    # name: (box a, box b, expected BEV IoU)
    "identical": ([1, 2, 0, 4, 2, 1, 0.3], [1, 2, 0, 4, 2, 1, 0.3], 1.0),
    "disjoint": ([0, 0, 0, 2, 2, 1, 0.0], [5, 0, 0, 2, 2, 1, 0.7], 0.0),
    "touching edge": ([0, 0, 0, 2, 2, 1, 0.0], [2, 0, 0, 2, 2, 1, 0.0], 0.0),
    "touching corner": ([0, 0, 0, 2, 2, 1, 0.0], [2, 2, 0, 2, 2, 1, 0.0], 0.0),
    "nested": ([0, 0, 0, 4, 4, 1, 0.4], [0.3, -0.2, 0, 1, 2, 1, 1.1], 2.0 / 16.0),
    "rotated by pi": ([1, -1, 0, 3, 1, 1, 0.25], [1, -1, 0, 3, 1, 1, 0.25 + math.pi], 1.0),
    "rotated by pi/2 square": ([0, 0, 0, 2, 2, 1, 0.1], [0, 0, 0, 2, 2, 1, 0.1 + math.pi / 2], 1.0),
    "yaw near +pi vs -pi": ([0, 0, 0, 3, 1, 1, math.pi - 1e-12], [0, 0, 0, 3, 1, 1, -math.pi + 1e-12], 1.0),
    "half overlap": ([0, 0, 0, 2, 2, 1, 0.0], [1, 0, 0, 2, 2, 1, 0.0], 2.0 / 6.0),
    "cross": ([0, 0, 0, 4, 1, 1, 0.0], [0, 0, 0, 4, 1, 1, math.pi / 2], 1.0 / 7.0),
    "thin box inside": ([0, 0, 0, 2, 2, 1, 0.0], [0, 0, 0, 1, 1e-9, 1, 0.3], 0.0),
    "zero-area boxes": ([0, 0, 0, 0, 0, 1, 0.0], [0, 0, 0, 0, 0, 1, 0.0], 0.0),
    # a regular octagon of inradius 1: area 8 (sqrt 2 - 1)
    "octagon": ([0, 0, 0, 2, 2, 1, 0.0], [0, 0, 0, 2, 2, 1, math.pi / 4], (math.sqrt(2) - 1) / (2 - math.sqrt(2))),
}


@pytest.mark.parametrize("name", list(SPECIAL))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_bev_iou_special_cases(name, dtype):
    box_a, box_b, expected = SPECIAL[name]
    a = torch.tensor([box_a], dtype=dtype)
    b = torch.tensor([box_b], dtype=dtype)
    atol = 1e-5 if dtype == torch.float32 else 1e-9
    assert bev_iou(a, b).item() == pytest.approx(expected, abs=atol)
    assert bev_iou(b, a).item() == pytest.approx(expected, abs=atol)
    assert bev_iou_aligned(a, b).item() == pytest.approx(expected, abs=atol)
    reference = bev_iou_shapely(np.array([box_a], float), np.array([box_b], float))[0, 0]
    assert reference == pytest.approx(expected, abs=1e-9)  # the expected values agree with shapely


def test_bev_iou_is_symmetric_and_one_on_the_diagonal(rng):
    boxes = torch.from_numpy(random_boxes(rng, 50))
    matrix = bev_iou(boxes, boxes).numpy()
    np.testing.assert_allclose(matrix, matrix.T, atol=1e-12, rtol=0)
    np.testing.assert_allclose(np.diagonal(matrix), 1.0, atol=1e-12, rtol=0)


def test_degenerate_thin_boxes(rng):
    a = random_boxes(rng, 20)
    thin = a.copy()
    thin[:, 4] = 1e-7
    got = bev_iou(thin, a)
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, bev_iou_shapely(thin, a), atol=1e-6)


def test_aligned_equals_the_diagonal(rng):
    a, b = random_boxes(rng, 60, spread=2.0), random_boxes(rng, 60, spread=2.0)
    np.testing.assert_allclose(bev_iou_aligned(a, b), np.diagonal(bev_iou_shapely(a, b)), atol=1e-10)
    np.testing.assert_allclose(iou_3d_aligned(a, b), np.diagonal(iou_3d_shapely(a, b)), atol=1e-10)
    with pytest.raises(ValueError, match="same number"):
        bev_iou_aligned(a, b[:5])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_iou_3d_against_shapely_times_height(rng, dtype):
    a, b = random_boxes(rng, 30, extra=1), random_boxes(rng, 25)
    got = iou_3d(a.astype(dtype), b.astype(dtype))
    assert got.dtype == dtype and got.shape == (30, 25)
    atol = 2e-5 if dtype == np.float32 else 1e-10
    np.testing.assert_allclose(got, iou_3d_shapely(a, b), atol=atol, rtol=0)
    assert (got <= bev_iou(a, b) + atol).all()


def test_iou_3d_against_monte_carlo_volume(rng):
    """Volume fractions by counting random samples inside both boxes (independent of the polygon clip)."""
    a = np.array([[0.0, 0.0, 0.0, 3.0, 1.5, 1.6, 0.4], [1.0, 1.0, 0.5, 2.0, 2.0, 1.0, -2.0]])
    b = np.array([[0.5, 0.3, 0.4, 2.5, 1.2, 1.4, 1.3], [1.4, 0.2, 0.2, 1.0, 3.0, 2.0, 3.0]])
    for k in range(2):
        corners = np.array(corners_by_loop(a[k]) + corners_by_loop(b[k]))
        samples = rng.uniform(corners.min(axis=0), corners.max(axis=0), (300_000, 3))
        in_a, in_b = inside_box(samples, a[k]), inside_box(samples, b[k])
        estimate = (in_a & in_b).sum() / (in_a | in_b).sum()
        assert iou_3d_aligned(a[k : k + 1], b[k : k + 1])[0] == pytest.approx(estimate, abs=0.01)
        assert estimate > 0.05


def test_iou_3d_special_cases():
    box = np.array([[0, 0, 0, 2, 2, 2, 0.5]], float)
    assert iou_3d(box, box)[0, 0] == pytest.approx(1.0)
    above = box.copy()
    above[0, 2] = 2.0  # touching faces
    assert iou_3d(box, above)[0, 0] == 0.0
    half_up = box.copy()
    half_up[0, 2] = 1.0
    assert iou_3d(box, half_up)[0, 0] == pytest.approx(1.0 / 3.0)
    small = np.array([[0, 0, 0, 1, 1, 1, 0.0]])
    assert iou_3d(box, small)[0, 0] == pytest.approx(1.0 / 8.0)


def test_chunked_paths_give_the_same_result(rng, monkeypatch):
    a, b = random_boxes(rng, 40), random_boxes(rng, 33)
    expected = bev_iou(a, b)
    expected_3d = iou_3d(a, b)
    monkeypatch.setattr(iou_module, "PAIR_CHUNK", 7)
    monkeypatch.setattr(iou_module, "BLOCK_ELEMENTS", 50)
    np.testing.assert_array_equal(bev_iou(a, b), expected)
    np.testing.assert_array_equal(iou_3d(a, b), expected_3d)


@pytest.mark.parametrize("fn", [bev_iou, iou_3d])
def test_empty_inputs(fn):
    some = np.ones((3, 7))
    assert fn(np.zeros((0, 7)), some).shape == (0, 3)
    assert fn(some, np.zeros((0, 9))).shape == (3, 0)
    assert fn(torch.zeros(0, 7), torch.zeros(0, 7)).shape == (0, 0)
    assert bev_iou_aligned(np.zeros((0, 7)), np.zeros((0, 7))).shape == (0,)
    assert iou_3d_aligned(torch.zeros(0, 7), torch.zeros(0, 7)).shape == (0,)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="boxes_b"):
        bev_iou(np.zeros((2, 7)), np.zeros((2, 5)))
    with pytest.raises(TypeError, match="boxes_a"):
        iou_3d(np.zeros((2, 7), dtype=np.int32), np.zeros((2, 7)))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu(rng):
    a, b = torch.from_numpy(random_boxes(rng, 300)), torch.from_numpy(random_boxes(rng, 200))
    for fn in (bev_iou, iou_3d):
        np.testing.assert_allclose(fn(a.cuda(), b.cuda()).cpu().numpy(), fn(a, b).numpy(), atol=1e-10, rtol=0)
