"""Rotated-BEV NMS and circle NMS against brute-force greedy references."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from boxes_reference import bev_iou_shapely, greedy_nms, random_boxes
from largekernel3d.boxes import circle_nms, nms_bev
from largekernel3d.boxes import iou as iou_module


def _clustered_boxes(rng, clusters: int, per_cluster: int) -> np.ndarray:
    """Detections jittered around a few objects, the situation NMS is for."""
    centres = random_boxes(rng, clusters, spread=12.0)
    boxes = np.repeat(centres, per_cluster, axis=0)
    boxes[:, 0:2] += rng.normal(0, 0.4, (len(boxes), 2))
    boxes[:, 3:6] *= rng.uniform(0.8, 1.2, (len(boxes), 3))
    boxes[:, 6] += rng.normal(0, 0.3, len(boxes))
    return boxes


@pytest.mark.parametrize("threshold", [0.0, 0.1, 0.5, 0.8])
def test_nms_bev_matches_brute_force(rng, threshold):
    pytest.importorskip("shapely")
    boxes = _clustered_boxes(rng, 12, 10)
    scores = rng.uniform(size=len(boxes))
    expected = greedy_nms(bev_iou_shapely(boxes, boxes) > threshold, scores)
    got = nms_bev(boxes, scores, threshold)
    assert isinstance(got, np.ndarray) and got.dtype == np.int64
    assert got.tolist() == expected
    torch_got = nms_bev(torch.from_numpy(boxes).float(), torch.from_numpy(scores).float(), threshold)
    assert torch_got.dtype == torch.int64 and torch_got.tolist() == expected
    assert 0 < len(expected) < len(boxes)


def test_nms_bev_ties_are_broken_by_index(rng):
    box = random_boxes(rng, 1)
    boxes = np.repeat(box, 4, axis=0)
    assert nms_bev(boxes, np.array([0.5, 0.9, 0.9, 0.1]), 0.5).tolist() == [1]
    far = boxes.copy()
    far[:, 0] += np.arange(4) * 100.0  # no overlaps: every box kept, by score then index
    assert nms_bev(far, np.array([0.5, 0.9, 0.9, 0.1]), 0.5).tolist() == [1, 2, 0, 3]


def test_nms_bev_pre_and_post_max_size(rng):
    pytest.importorskip("shapely")
    boxes = _clustered_boxes(rng, 10, 8)
    scores = rng.uniform(size=len(boxes))
    top = np.argsort(-scores, kind="stable")[:30]
    reference = [int(top[k]) for k in greedy_nms(bev_iou_shapely(boxes[top], boxes[top]) > 0.2, scores[top])]
    assert nms_bev(boxes, scores, 0.2, pre_max_size=30).tolist() == reference
    assert nms_bev(boxes, scores, 0.2, pre_max_size=30, post_max_size=3).tolist() == reference[:3]
    assert nms_bev(boxes, scores, 0.2, post_max_size=0).tolist() == []


def test_nms_bev_identical_under_chunking(rng, monkeypatch):
    boxes = _clustered_boxes(rng, 8, 12)
    scores = rng.uniform(size=len(boxes))
    expected = nms_bev(boxes, scores, 0.3)
    monkeypatch.setattr(iou_module, "PAIR_CHUNK", 5)
    monkeypatch.setattr(iou_module, "BLOCK_ELEMENTS", 64)
    assert nms_bev(boxes, scores, 0.3).tolist() == expected.tolist()


def test_nms_bev_many_boxes_runs(rng):
    boxes = random_boxes(rng, 3000, spread=60.0)
    scores = torch.rand(3000, generator=torch.Generator().manual_seed(0))
    keep = nms_bev(torch.from_numpy(boxes), scores, 0.1)
    assert keep.unique().numel() == keep.numel()
    assert (scores[keep][:-1] >= scores[keep][1:]).all()  # descending score order


def _circle_reference(centres: np.ndarray, scores: np.ndarray, distance: float):
    conflict = np.zeros((len(centres), len(centres)), dtype=bool)
    for i in range(len(centres)):
        for j in range(len(centres)):
            conflict[i, j] = math.hypot(*(centres[i, :2] - centres[j, :2])) <= distance
    return greedy_nms(conflict, scores)


@pytest.mark.parametrize("distance", [0.0, 0.5, 1.3, 4.0])
def test_circle_nms_matches_brute_force(rng, distance):
    centres = rng.uniform(-6, 6, (150, 2))
    scores = rng.uniform(size=150)
    expected = _circle_reference(centres, scores, distance)
    assert circle_nms(centres, scores, distance).tolist() == expected
    got = circle_nms(torch.from_numpy(centres).float(), torch.from_numpy(scores).float(), distance)
    assert got.dtype == torch.int64 and got.tolist() == expected
    assert circle_nms(centres, scores, distance, post_max_size=5).tolist() == expected[:5]


def test_circle_nms_uses_xy_of_boxes_and_includes_the_radius(rng):
    boxes = random_boxes(rng, 3)
    boxes[:, 0:2] = [[0.0, 0.0], [2.0, 0.0], [5.0, 0.0]]
    boxes[:, 2] = [0.0, 50.0, 0.0]  # z is ignored
    assert circle_nms(boxes, np.array([0.9, 0.8, 0.7]), 2.0).tolist() == [0, 2]  # distance exactly 2: suppressed
    assert circle_nms(boxes, np.array([0.9, 0.8, 0.7]), 1.99).tolist() == [0, 1, 2]


def test_circle_nms_relation_to_centerpoint_squared_threshold(rng):
    """CenterPoint suppresses when dx^2 + dy^2 <= min_radius; ours with min_distance = sqrt(min_radius)."""
    centres = rng.uniform(-5, 5, (120, 2))
    scores = rng.permutation(120) / 120.0  # distinct scores: tie order does not matter
    min_radius = 4.0
    order = list(np.argsort(scores)[::-1])
    suppressed, keep = set(), []
    for position, i in enumerate(order):
        if i in suppressed:
            continue
        keep.append(int(i))
        for j in order[position + 1 :]:
            if (centres[i, 0] - centres[j, 0]) ** 2 + (centres[i, 1] - centres[j, 1]) ** 2 <= min_radius:
                suppressed.add(j)
    assert circle_nms(centres, scores, math.sqrt(min_radius)).tolist() == keep


@pytest.mark.parametrize("fn, args", [(nms_bev, (0.5,)), (circle_nms, (1.0,))])
def test_empty_and_bad_inputs(fn, args):
    empty = fn(np.zeros((0, 7)), np.zeros(0), *args)
    assert empty.dtype == np.int64 and empty.shape == (0,)
    assert fn(torch.zeros(0, 7), torch.zeros(0), *args).shape == (0,)
    with pytest.raises(ValueError, match="scores"):
        fn(np.zeros((3, 7)), np.zeros(2), *args)
    with pytest.raises(TypeError, match="scores"):
        fn(torch.zeros(3, 7), np.zeros(3), *args)
    with pytest.raises(ValueError, match="post_max_size"):
        fn(np.zeros((3, 7)), np.zeros(3), *args, post_max_size=-1)
    with pytest.raises(ValueError, match="min_distance"):
        circle_nms(np.zeros((3, 2)), np.zeros(3), -1.0)
    with pytest.raises(ValueError, match="iou_threshold"):
        nms_bev(np.zeros((3, 7)), np.zeros(3), -0.1)
    with pytest.raises(ValueError, match="pre_max_size"):
        nms_bev(np.zeros((3, 7)), np.zeros(3), 0.5, pre_max_size=1.5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu(rng):
    boxes = torch.from_numpy(_clustered_boxes(rng, 20, 10))
    scores = torch.from_numpy(rng.uniform(size=len(boxes)))
    keep = nms_bev(boxes.cuda(), scores.cuda(), 0.2)
    assert keep.device.type == "cuda" and keep.cpu().tolist() == nms_bev(boxes, scores, 0.2).tolist()
    keep = circle_nms(boxes.cuda(), scores.cuda(), 1.0)
    assert keep.device.type == "cuda" and keep.cpu().tolist() == circle_nms(boxes, scores, 1.0).tolist()
