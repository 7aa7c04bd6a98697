"""Dataset-agnostic AP: hand-derived values, a brute-force reference (shapely IoU, plain sorting and
cumulating) on generated frames, and real PandaSet cuboids (skipped without the shared data / pandas)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from helpers import SHARED_DATA

from largekernel3d.training.detection_metrics.generic_ap import FrameBoxes, evaluate_ap

try:
    from shapely.geometry import Polygon
except ImportError:  # the brute-force references need shapely; the other tests do not
    Polygon = None

needs_shapely = pytest.mark.skipif(Polygon is None, reason="shapely is not installed")

CLASSES = ("car", "pedestrian", "cyclist")
SIZES = {0: (4.2, 1.8, 1.6), 1: (0.7, 0.7, 1.7), 2: (1.8, 0.6, 1.7)}


def _polygon(b):
    c, s = math.cos(b[6]), math.sin(b[6])
    pts = [(u * b[3] / 2, v * b[4] / 2) for u, v in ((1, 1), (-1, 1), (-1, -1), (1, -1))]
    return Polygon([(b[0] + c * x - s * y, b[1] + s * x + c * y) for x, y in pts])


def reference_affinity(matching, d, g):
    if matching == "center_distance":
        return math.hypot(d[0] - g[0], d[1] - g[1])
    inter = _polygon(d).intersection(_polygon(g)).area
    va, vb = d[3] * d[4], g[3] * g[4]
    if matching == "iou_3d":
        h = max(0.0, min(d[2] + d[5] / 2, g[2] + g[5] / 2) - max(d[2] - d[5] / 2, g[2] - g[5] / 2))
        inter, va, vb = inter * h, va * d[5], vb * g[5]
    return inter / (va + vb - inter)


def reference_ap(gt, dets, c, matching, threshold, points):
    """Sort all detections of class c by score; each takes its best free object (counted before ignored)
    beyond the threshold; cumulate TP / FP; AP = mean over r_j of the best precision at recall >= r_j."""
    passes = (lambda a: a < threshold) if matching == "center_distance" else (lambda a: a > threshold)
    better = (lambda a, b: a < b) if matching == "center_distance" else (lambda a, b: a > b)
    entries = [(d.scores[i], f, i) for f, d in enumerate(dets) for i in range(len(d.labels)) if d.labels[i] == c]
    entries.sort(key=lambda e: -e[0])
    taken = set()
    outcome = []
    for _, f, i in entries:
        g = gt[f]
        best = None
        for want_counted in (True, False):
            for j in range(len(g.labels)):
                counted = g.ignored is None or not g.ignored[j]
                if g.labels[j] != c or (f, j) in taken or counted != want_counted:
                    continue
                a = reference_affinity(matching, dets[f].boxes[i], g.boxes[j])
                if passes(a) and (best is None or better(a, best[0])):
                    best = (a, j, counted)
            if best is not None:
                break
        if best is None:
            outcome.append("fp")
        else:
            taken.add((f, best[1]))
            outcome.append("tp" if best[2] else "ignored")
    num_gt = sum(int(((g.labels == c) & (True if g.ignored is None else ~g.ignored)).sum()) for g in gt)
    if num_gt == 0:
        return float("nan")
    tp = fp = 0
    precision, recall = [], []
    for o in outcome:
        if o == "ignored":
            continue
        tp += o == "tp"
        fp += o == "fp"
        precision.append(tp / (tp + fp))
        recall.append(tp / num_gt)
    levels = [j / 40 for j in range(1, 41)] if points == 40 else [j / 100 for j in range(101)]
    total = 0.0
    for r in levels:
        total += max([p for p, q in zip(precision, recall) if q >= r], default=0.0)
    return 100.0 * total / len(levels)


def generated_frames(seed, num_frames=5):
    rng = np.random.default_rng(seed)
    gt, dets = [], []
    for _ in range(num_frames):
        n = int(rng.integers(8, 16))
        labels = rng.choice(3, n, p=[0.5, 0.3, 0.2])
        boxes = np.array(
            [[*rng.uniform(-12, 12, 2), rng.uniform(-1, 0.5), *SIZES[k], rng.uniform(-3, 3)] for k in labels]
        )
        ignored = rng.random(n) < 0.1
        d_boxes, d_labels = [], []
        for k in range(n):
            for _ in range(rng.choice([0, 1, 1, 2])):
                b = boxes[k].copy()
                b[:2] += rng.normal(0, 0.3, 2)
                b[2] += rng.normal(0, 0.15)
                b[3:6] *= np.exp(rng.normal(0, 0.1, 3))
                b[6] += rng.normal(0, 0.15)
                d_boxes.append(b)
                d_labels.append(labels[k] if rng.random() < 0.9 else rng.integers(3))
        for _ in range(4):
            k = rng.integers(3)
            d_boxes.append([*rng.uniform(-12, 12, 2), 0.0, *SIZES[k], rng.uniform(-3, 3)])
            d_labels.append(k)
        gt.append(FrameBoxes(boxes, labels, ignored=ignored))
        dets.append(FrameBoxes(np.asarray(d_boxes), np.asarray(d_labels), scores=rng.uniform(0, 1, len(d_labels))))
    return gt, dets


@needs_shapely
@pytest.mark.parametrize(
    "matching,thresholds",
    [
        ("bev_iou", {"car": 0.7, "pedestrian": 0.3, "cyclist": 0.5}),
        ("iou_3d", 0.5),
        ("center_distance", [0.25, 0.5, 1.0]),
    ],
)
@pytest.mark.parametrize("points", [40, 101])
def test_against_brute_force(matching, thresholds, points):
    gt, dets = generated_frames(21)
    m = evaluate_ap(gt, dets, CLASSES, matching=matching, thresholds=thresholds, num_recall_points=points)
    for c, name in enumerate(CLASSES):
        values = thresholds[name] if isinstance(thresholds, dict) else thresholds
        values = values if isinstance(values, list) else [values]
        expected = [reference_ap(gt, dets, c, matching, t, points) for t in values]
        np.testing.assert_allclose(m.ap[c, : len(values)], expected, atol=1e-9, err_msg=f"{name} {matching}")
        np.testing.assert_allclose(m.class_ap[c], np.mean(expected), atol=1e-9)
    assert 5 < m.mean_ap < 95
    np.testing.assert_allclose(m.mean_ap, np.nanmean(m.class_ap))


def test_hand_derived_values():
    """Perfect: 100. Half of the objects found at precision 1 (recall 0.5): R40 has 20 of 40 recall levels
    at or below 0.5 -> 50 %; the 101-point rule has r = 0, .., 0.50 -> 51 of 101 -> 50.495 %."""
    rng = np.random.default_rng(0)
    boxes = np.array([[i * 10.0, 0, 0, 4, 2, 1.5, rng.uniform(-3, 3)] for i in range(20)])
    labels = np.zeros(20, dtype=np.int64)
    gt = [FrameBoxes(boxes, labels)]
    perfect = [FrameBoxes(boxes, labels, scores=rng.uniform(0, 1, 20))]
    half = [FrameBoxes(boxes[::2], labels[::2], scores=rng.uniform(0, 1, 10))]
    for points in (40, 101):
        assert evaluate_ap(gt, perfect, ["car"], num_recall_points=points).mean_ap == pytest.approx(100.0)
    assert evaluate_ap(gt, half, ["car"], num_recall_points=40).mean_ap == pytest.approx(50.0)
    assert evaluate_ap(gt, half, ["car"], num_recall_points=101).mean_ap == pytest.approx(100.0 * 51 / 101)
    # a detection of another class does not match
    wrong = [FrameBoxes(boxes, np.ones(20, dtype=np.int64), scores=rng.uniform(0, 1, 20))]
    m = evaluate_ap(gt, wrong, ["car", "truck"])
    assert m.ap[0, 0] == 0.0 and np.isnan(m.ap[1, 0]) and m.mean_ap == 0.0


def test_reports_and_checks():
    gt, dets = generated_frames(3, num_frames=2)
    m = evaluate_ap(gt, dets, CLASSES, matching="center_distance", thresholds=[0.5, 1.0, 2.0])
    md = m.to_markdown()
    assert md.splitlines()[0] == "| class | GT | det | thresholds | AP@0.5m | AP@1m | AP@2m | AP (R40) |"
    assert f"| {m.mean_ap:.2f} |" in md.splitlines()[-1]
    rows = m.to_csv().splitlines()
    assert float(rows[1].split(",")[-1]) == m.class_ap[0]
    with pytest.raises(ValueError, match="matching"):
        evaluate_ap(gt, dets, CLASSES, matching="iou")
    with pytest.raises(ValueError, match="no scores"):
        evaluate_ap(gt, gt, CLASSES)
    with pytest.raises(ValueError, match="labels outside"):
        evaluate_ap(gt, dets, CLASSES[:1])
    with pytest.raises(ValueError, match="IoU thresholds"):
        evaluate_ap(gt, dets, CLASSES, thresholds=1.5)


def _pandaset_boxes(path):
    """PandaSet cuboids as ``[x, y, z, l, w, h, yaw]`` (l = dimensions.y, heading from +x = yaw + pi/2),
    keeping sensor_id -1 and 0 (one of each twin pair), and their labels."""
    pd = pytest.importorskip("pandas")
    frame = pd.read_pickle(path)
    frame = frame[frame["cuboids.sensor_id"] != 1]
    boxes = np.stack(
        [
            frame["position.x"],
            frame["position.y"],
            frame["position.z"],
            frame["dimensions.y"],
            frame["dimensions.x"],
            frame["dimensions.z"],
            frame["yaw"] + math.pi / 2,
        ],
        axis=1,
    )
    return boxes.astype(np.float64), frame["label"].to_numpy(), frame["uuid"].to_numpy()


@needs_shapely
@pytest.mark.shared_data
def test_pandaset_cuboids_against_brute_force():
    """Real boxes: frame 00 as ground truth, the same tracks 5 frames later as detections (moving objects
    have moved), scored by a seeded draw; our AP equals the brute-force reference at BEV IoU and centre
    distance, and each object matched with itself (frame 00 against itself) gives 100."""
    root = SHARED_DATA / "pandaset" / "002" / "annotations" / "cuboids"
    if not root.is_dir():
        pytest.skip("shared PandaSet sample absent")
    g_boxes, g_names, g_ids = _pandaset_boxes(root / "00.pkl.gz")
    d_boxes, d_names, _ = _pandaset_boxes(root / "05.pkl.gz")
    classes = ("Car", "Pedestrian", "Pedestrian with Object")
    keep_g = np.isin(g_names, classes)
    keep_d = np.isin(d_names, classes)
    label = {c: i for i, c in enumerate(classes)}
    gt = [FrameBoxes(g_boxes[keep_g], np.array([label[n] for n in g_names[keep_g]]))]
    rng = np.random.default_rng(0)
    dets = [
        FrameBoxes(
            d_boxes[keep_d], np.array([label[n] for n in d_names[keep_d]]), scores=rng.uniform(0, 1, int(keep_d.sum()))
        )
    ]
    assert int(gt[0].labels.size) > 60 and len(set(g_ids[keep_g])) == int(keep_g.sum())
    for matching, threshold in (("bev_iou", 0.7), ("center_distance", 0.5)):
        m = evaluate_ap(gt, dets, classes, matching=matching, thresholds=threshold)
        expected = [reference_ap(gt, dets, c, matching, threshold, 40) for c in range(3)]
        np.testing.assert_allclose(m.ap[:, 0], expected, atol=1e-9)
        assert 0 < m.ap[0, 0] < 100  # some cars moved, most did not
    itself = [FrameBoxes(gt[0].boxes, gt[0].labels, scores=rng.uniform(0, 1, gt[0].labels.size))]
    np.testing.assert_allclose(evaluate_ap(gt, itself, classes, thresholds=0.99).class_ap, 100.0)
