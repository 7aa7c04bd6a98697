"""CenterPoint decoding: perfect predictions (targets written into the maps) give back the ground truth through
peak extraction, top-K, thresholds and NMS; rotate and circle NMS behave as documented."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from largekernel3d.models.detection.center_decode import (
    CenterDecodeConfig,
    Detections,
    decode_detections,
    decode_task,
    local_peaks,
    top_peaks,
)

# small tensors: one thread avoids contention on a shared machine
pytestmark = pytest.mark.usefixtures("one_thread")

ORIGIN = (-12.8, -10.24)
CELL = (0.64, 0.64)
H, W = 32, 40
PEAK_LOGIT = 4.0
BACKGROUND_LOGIT = -9.0


def _separated_boxes(g, n, velocity, min_cells=5):
    """``n`` boxes whose cells lie >= ``min_cells`` apart along x or y, so their centres are more than
    ``(min_cells - 1) * 0.64 = 2.56 m`` apart and, with sizes <= 1.6 m (diagonal < 2.27 m), no two overlap."""
    cells = set()
    out = []
    while len(out) < n:
        ix = int(torch.randint(1, W - 1, (1,), generator=g))
        iy = int(torch.randint(1, H - 1, (1,), generator=g))
        if any(abs(ix - a) < min_cells and abs(iy - b) < min_cells for a, b in cells):
            continue
        cells.add((ix, iy))
        off = torch.rand(2, generator=g, dtype=torch.float64) * 0.98 + 0.01
        x = ORIGIN[0] + (ix + float(off[0])) * CELL[0]
        y = ORIGIN[1] + (iy + float(off[1])) * CELL[1]
        z = float(torch.rand(1, generator=g)) * 2 - 1
        dims = (torch.rand(3, generator=g, dtype=torch.float64) * 1.2 + 0.4).tolist()
        yaw = (float(torch.rand(1, generator=g)) - 0.5) * 2 * math.pi * 0.999
        box = [x, y, z, *dims, yaw]
        if velocity:
            box += torch.randn(2, generator=g, dtype=torch.float64).tolist()
        out.append(box)
    return torch.tensor(out, dtype=torch.float64)


def _perfect_preds(g, boxes_per_sample, labels_per_sample, n_classes, velocity):
    """Head outputs with logit peaks at the boxes' cells and the exact regression targets there (float64),
    written independently of the library's coder: offsets, z, log sizes, sin, cos, velocity."""
    b = len(boxes_per_sample)
    code = 10 if velocity else 8
    hm = torch.full((b, n_classes, H, W), BACKGROUND_LOGIT, dtype=torch.float64)
    hm += torch.rand(hm.shape, generator=g, dtype=torch.float64)  # noise below the threshold
    regs = torch.randn(b, code, H, W, generator=g, dtype=torch.float64)
    for i, (boxes, labels) in enumerate(zip(boxes_per_sample, labels_per_sample)):
        for box, label in zip(boxes.tolist(), labels.tolist()):
            gx, gy = (box[0] - ORIGIN[0]) / CELL[0], (box[1] - ORIGIN[1]) / CELL[1]
            ix, iy = math.floor(gx), math.floor(gy)
            hm[i, label, iy, ix] = PEAK_LOGIT
            vals = [
                gx - ix,
                gy - iy,
                box[2],
                math.log(box[3]),
                math.log(box[4]),
                math.log(box[5]),
                math.sin(box[6]),
                math.cos(box[6]),
            ] + box[7:9]
            regs[i, :, iy, ix] = torch.tensor(vals, dtype=torch.float64)
    pred = {"hm": hm, "center": regs[:, 0:2], "center_z": regs[:, 2:3], "dim": regs[:, 3:6], "rot": regs[:, 6:8]}
    if velocity:
        pred["vel"] = regs[:, 8:10]
    return pred


def _assert_same_boxes(det_boxes, det_labels, gt_boxes, gt_labels, atol=1e-4):
    assert det_boxes.shape == gt_boxes.shape
    order_d = np.lexsort((det_boxes[:, 1].numpy(), det_boxes[:, 0].numpy()))
    order_g = np.lexsort((gt_boxes[:, 1].numpy(), gt_boxes[:, 0].numpy()))
    d, gt = det_boxes[order_d], gt_boxes[order_g]
    np.testing.assert_array_equal(det_labels[order_d].numpy(), gt_labels[order_g].numpy())
    np.testing.assert_allclose(d[:, [0, 1, 2, 3, 4, 5]].numpy(), gt[:, [0, 1, 2, 3, 4, 5]].numpy(), atol=atol)
    dyaw = torch.remainder(d[:, 6] - gt[:, 6] + math.pi, 2 * math.pi) - math.pi
    assert float(dyaw.abs().max()) < atol
    np.testing.assert_allclose(d[:, 7:].numpy(), gt[:, 7:].numpy(), atol=atol)


@pytest.mark.parametrize("nms_type,velocity", [("rotate", True), ("circle", False), ("rotate", False)])
def test_perfect_predictions_decode_to_the_ground_truth(nms_type, velocity):
    g = torch.Generator().manual_seed(1 if velocity else 2)
    tasks = [(3, 0), (1,), (2, 4)]
    gts, gt_labels, preds_per_task = [], [], []
    for _ in range(2):
        boxes = _separated_boxes(g, 9, velocity)
        gts.append(boxes)
        gt_labels.append(torch.randint(0, 5, (9,), generator=g))
    for ids in tasks:
        boxes_t, labels_t = [], []
        for boxes, labels in zip(gts, gt_labels):
            sel = torch.tensor([int(lab) in ids for lab in labels], dtype=torch.bool)
            boxes_t.append(boxes[sel])
            labels_t.append(torch.tensor([ids.index(int(lab)) for lab in labels[sel]], dtype=torch.int64))
        preds_per_task.append(_perfect_preds(g, boxes_t, labels_t, len(ids), velocity))
    config = CenterDecodeConfig(
        nms_type=nms_type,
        circle_min_distances=(1.0, 1.5, 0.5) if nms_type == "circle" else None,
        post_center_range=(-20, -20, -5, 20, 20, 5),
    )
    dets = decode_detections(preds_per_task, tasks, ORIGIN, CELL, config)
    assert len(dets) == 2 and all(isinstance(d, Detections) for d in dets)
    for det, boxes, labels in zip(dets, gts, gt_labels):
        assert det.boxes.shape[1] == (9 if velocity else 7) and det.labels.dtype == torch.int64
        torch.testing.assert_close(det.scores, torch.full_like(det.scores, 1 / (1 + math.exp(-PEAK_LOGIT))))
        _assert_same_boxes(det.boxes, det.labels, boxes, labels)


def test_half_precision_predictions_decode_in_float32():
    g = torch.Generator().manual_seed(9)
    boxes = _separated_boxes(g, 5, True)
    labels = torch.zeros(5, dtype=torch.int64)
    pred = {k: v.half() for k, v in _perfect_preds(g, [boxes], [labels], 1, True).items()}
    ((bx, sc, cl),) = decode_task(pred, ORIGIN, CELL, CenterDecodeConfig())
    assert bx.dtype == torch.float32 and sc.dtype == torch.float32
    _assert_same_boxes(bx.double(), cl, boxes, labels, atol=2e-2)


def test_range_filter_score_threshold_and_top_k():
    g = torch.Generator().manual_seed(3)
    boxes = _separated_boxes(g, 6, False)
    labels = torch.zeros(6, dtype=torch.int64)
    pred = _perfect_preds(g, [boxes], [labels], 1, False)
    # the first box gets a weak peak (below the threshold), the second one stays but leaves the range
    gx, gy = [math.floor((boxes[0, a] - ORIGIN[a]) / CELL[a]) for a in (0, 1)]
    pred["hm"][0, 0, gy, gx] = -2.5  # sigmoid 0.076 < 0.1
    x_cut = float(boxes[1, 0]) - 0.01
    if x_cut > 0:
        rng = (-100, -100, -100, x_cut, 100, 100)
        outside = boxes[:, 0] > x_cut
    else:
        rng = (x_cut + 0.02, -100, -100, 100, 100, 100)
        outside = boxes[:, 0] < x_cut + 0.02
    ((bx, sc, cl),) = decode_task(pred, ORIGIN, CELL, CenterDecodeConfig(post_center_range=rng))
    keep = ~outside
    keep[0] = False
    _assert_same_boxes(bx, cl, boxes[keep], labels[keep])
    assert bool((sc[:-1] >= sc[1:]).all())
    ((bx1, sc1, _),) = decode_task(pred, ORIGIN, CELL, CenterDecodeConfig(top_k=1))
    assert bx1.shape[0] == 1 and float(sc1[0]) == pytest.approx(1 / (1 + math.exp(-PEAK_LOGIT)))


def _two_overlapping(g, dist_cells):
    """Two boxes 3 m (along x) x 2 m, yaw 0, whose peaks lie ``dist_cells`` cells apart along x."""
    centers = [(10, 12), (10 + dist_cells, 12)]
    boxes = []
    for ix, iy in centers:
        boxes.append([ORIGIN[0] + (ix + 0.5) * CELL[0], ORIGIN[1] + (iy + 0.5) * CELL[1], 0.0, 3.0, 2.0, 1.5, 0.0])
    pred = _perfect_preds(g, [torch.tensor(boxes, dtype=torch.float64)], [torch.zeros(2, dtype=torch.int64)], 1, False)
    pred["hm"][0, 0, 12, 10 + dist_cells] = PEAK_LOGIT - 1.0  # the second is weaker
    return pred, torch.tensor(boxes, dtype=torch.float64)


def test_rotate_versus_circle_nms():
    g = torch.Generator().manual_seed(4)
    pred, boxes = _two_overlapping(g, 2)  # 1.28 m apart: BEV IoU = (3 - 1.28) / (3 + 1.28) = 0.40
    iou = (3.0 - 2 * CELL[0]) / (3.0 + 2 * CELL[0])
    ((bx, _, _),) = decode_task(pred, ORIGIN, CELL, CenterDecodeConfig(nms_type="rotate", nms_iou=iou - 0.05))
    torch.testing.assert_close(bx, boxes[:1])  # the weaker one is suppressed
    ((bx, _, _),) = decode_task(pred, ORIGIN, CELL, CenterDecodeConfig(nms_type="rotate", nms_iou=iou + 0.05))
    assert bx.shape[0] == 2
    far = CenterDecodeConfig(nms_type="circle", circle_min_distances=(2 * CELL[0] + 0.05,))
    near = CenterDecodeConfig(nms_type="circle", circle_min_distances=(2 * CELL[0] - 0.05,))
    ((bx, _, _),) = decode_task(pred, ORIGIN, CELL, far)
    torch.testing.assert_close(bx, boxes[:1])
    ((bx, _, _),) = decode_task(pred, ORIGIN, CELL, near)
    assert bx.shape[0] == 2


def test_adjacent_peaks_are_merged_by_the_max_pool_and_tasks_do_not_suppress_each_other():
    g = torch.Generator().manual_seed(5)
    pred, boxes = _two_overlapping(g, 1)  # neighbours: the 3x3 max-pool keeps only the stronger
    ((bx, _, _),) = decode_task(pred, ORIGIN, CELL, CenterDecodeConfig(nms_iou=1.0))
    torch.testing.assert_close(bx, boxes[:1])
    # the same box in two tasks survives in both (NMS runs per task)
    pred2, _ = _two_overlapping(g, 1)
    (det,) = decode_detections([pred, pred2], [(1,), (0,)], ORIGIN, CELL, CenterDecodeConfig())
    assert det.labels.tolist() == [1, 0]
    torch.testing.assert_close(det.boxes[0], det.boxes[1])


def test_local_peaks_and_top_peaks_against_loops():
    g = torch.Generator().manual_seed(6)
    heat = torch.rand(2, 3, 7, 9, generator=g)
    peaks = local_peaks(heat)
    for b in range(2):
        for c in range(3):
            for y in range(7):
                for x in range(9):
                    window = heat[b, c, max(0, y - 1) : y + 2, max(0, x - 1) : x + 2]
                    want = float(heat[b, c, y, x]) if float(heat[b, c, y, x]) == float(window.max()) else 0.0
                    assert float(peaks[b, c, y, x]) == want
    scores, classes, cells = top_peaks(heat, 10)
    for b in range(2):
        flat = [(float(heat[b, c, i // 9, i % 9]), c, i) for c in range(3) for i in range(63)]
        flat.sort(key=lambda v: -v[0])
        assert scores[b].tolist() == pytest.approx([v[0] for v in flat[:10]])
        assert classes[b].tolist() == [v[1] for v in flat[:10]] and cells[b].tolist() == [v[2] for v in flat[:10]]
    assert top_peaks(heat, 10_000)[0].shape == (2, 3 * 63)


def test_empty_predictions_give_empty_detections():
    g = torch.Generator().manual_seed(7)
    pred = _perfect_preds(
        g, [torch.zeros(0, 7, dtype=torch.float64)] * 2, [torch.zeros(0, dtype=torch.int64)] * 2, 2, False
    )
    for nms in ("rotate", "circle"):
        cfg = CenterDecodeConfig(nms_type=nms, circle_min_distances=(1.0,) if nms == "circle" else None)
        dets = decode_detections([pred], [(0, 1)], ORIGIN, CELL, cfg)
        assert [len(d) for d in dets] == [0, 0]
        assert dets[0].boxes.shape == (0, 7) and dets[0].labels.dtype == torch.int64


def test_decode_config_validation():
    with pytest.raises(ValueError, match="circle_min_distances"):
        CenterDecodeConfig(nms_type="circle")
    with pytest.raises(ValueError, match="nms_type"):
        CenterDecodeConfig(nms_type="bev")
    with pytest.raises(ValueError, match="top_k"):
        CenterDecodeConfig(top_k=0)
    with pytest.raises(ValueError, match="post_center_range"):
        CenterDecodeConfig(post_center_range=(1, 0, 0, 0, 1, 1))
    with pytest.raises(ValueError, match="nms_iou"):
        CenterDecodeConfig(nms_iou=1.5)
    g = torch.Generator().manual_seed(8)
    pred = _perfect_preds(g, [torch.zeros(0, 7, dtype=torch.float64)], [torch.zeros(0, dtype=torch.int64)], 1, False)
    with pytest.raises(ValueError, match="one per task"):
        decode_detections(
            [pred, pred], [(0,), (1,)], ORIGIN, CELL, CenterDecodeConfig(nms_type="circle", circle_min_distances=(1.0,))
        )
    with pytest.raises(ValueError, match="tasks"):
        decode_detections([pred], [(0,), (1,)], ORIGIN, CELL, CenterDecodeConfig())
