"""CenterPoint box coding on a BEV grid: the targets written out per box, and the round trip."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from boxes_reference import random_boxes
from largekernel3d.boxes import decode_center_boxes, encode_center_boxes

ORIGIN = (-54.0, -51.2)
CELL = (0.6, 0.8)


@pytest.mark.parametrize("extra", [0, 2])
def test_encode_matches_per_box_formulas(rng, extra):
    boxes = random_boxes(rng, 30, spread=50.0, extra=extra)
    cells, targets = encode_center_boxes(boxes, ORIGIN, CELL)
    assert cells.dtype == np.int64 and cells.shape == (30, 2)
    assert targets.dtype == np.float64 and targets.shape == (30, 8 + extra)
    for k, box in enumerate(boxes):
        gx, gy = (box[0] - ORIGIN[0]) / CELL[0], (box[1] - ORIGIN[1]) / CELL[1]
        assert cells[k].tolist() == [math.floor(gx), math.floor(gy)]
        expected = [
            gx - math.floor(gx),
            gy - math.floor(gy),
            box[2],
            math.log(box[3]),
            math.log(box[4]),
            math.log(box[5]),
            math.sin(box[6]),
            math.cos(box[6]),
            *box[7:],
        ]
        np.testing.assert_allclose(targets[k], expected, rtol=0, atol=1e-12)
    assert (targets[:, :2] >= 0).all() and (targets[:, :2] < 1).all()


@pytest.mark.parametrize("dtype, atol", [(torch.float64, 1e-9), (torch.float32, 2e-4)])
@pytest.mark.parametrize("extra", [0, 2])
def test_decode_inverts_encode(rng, dtype, atol, extra):
    boxes = torch.from_numpy(random_boxes(rng, 40, spread=50.0, extra=extra)).to(dtype)
    cells, targets = encode_center_boxes(boxes, ORIGIN, CELL)
    assert cells.dtype == torch.int64 and targets.dtype == dtype
    decoded = decode_center_boxes(cells, targets, ORIGIN, CELL)
    assert decoded.dtype == dtype and decoded.shape == boxes.shape
    np.testing.assert_allclose(decoded[:, :6].numpy(), boxes[:, :6].numpy(), rtol=1e-6, atol=atol)
    np.testing.assert_allclose(decoded[:, 7:].numpy(), boxes[:, 7:].numpy(), atol=atol)
    yaw_error = np.angle(np.exp(1j * (decoded[:, 6].double().numpy() - boxes[:, 6].double().numpy())))
    assert np.abs(yaw_error).max() < atol
    assert (decoded[:, 6] > -math.pi - 1e-6).all() and (decoded[:, 6] <= math.pi + 1e-6).all()


def test_decode_keeps_leading_dimensions(rng):
    cells = torch.from_numpy(rng.integers(0, 100, (2, 5, 2)))  # e.g. batch x top-K peaks, integer cells
    targets = torch.from_numpy(rng.normal(size=(2, 5, 10)))
    boxes = decode_center_boxes(cells, targets, ORIGIN, CELL)
    assert boxes.shape == (2, 5, 9)
    np.testing.assert_allclose(boxes[1, 3, 0].item(), (cells[1, 3, 0] + targets[1, 3, 0]).item() * 0.6 - 54.0)
    np.testing.assert_allclose(boxes[0, 2, 4].item(), math.exp(targets[0, 2, 4].item()))
    np.testing.assert_allclose(boxes[0, 2, 6].item(), math.atan2(targets[0, 2, 6].item(), targets[0, 2, 7].item()))
    float_cells = decode_center_boxes(cells.double(), targets, ORIGIN, CELL)
    np.testing.assert_array_equal(float_cells.numpy(), boxes.numpy())


def test_empty_and_bad_inputs():
    cells, targets = encode_center_boxes(np.zeros((0, 9)), ORIGIN, CELL)
    assert cells.shape == (0, 2) and targets.shape == (0, 10)
    assert decode_center_boxes(cells, targets, ORIGIN, CELL).shape == (0, 9)
    with pytest.raises(ValueError, match="boxes.*7 or 9"):
        encode_center_boxes(np.ones((3, 8)), ORIGIN, CELL)
    with pytest.raises(ValueError, match="cell_size_xy"):
        encode_center_boxes(np.ones((3, 7)), ORIGIN, (0.0, 0.5))
    with pytest.raises(TypeError, match="origin_xy"):
        encode_center_boxes(np.ones((3, 7)), 1.0, CELL)
    with pytest.raises(ValueError, match="cells_xy"):
        decode_center_boxes(np.zeros((4, 2)), np.ones((3, 8)), ORIGIN, CELL)
    with pytest.raises(ValueError, match="targets.*8 or 10"):
        decode_center_boxes(np.zeros((3, 2)), np.ones((3, 9)), ORIGIN, CELL)
    with pytest.raises(TypeError, match="cells_xy"):
        decode_center_boxes(torch.zeros(3, 2), np.ones((3, 8)), ORIGIN, CELL)
