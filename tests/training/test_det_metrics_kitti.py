"""KITTI AP (R40 / R11, BEV and 3D, per difficulty): hand-derived cases, and two independent brute-force
references on random scenes (IoU from shapely polygons, matching redone from scratch at every threshold):
one with our detection-ordered matching on dense scenes, one with the KITTI devkit's object-ordered
matching on scenes where no detection overlaps two objects (there both rules assign the same pairs)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from largekernel3d.training.detection_metrics.kitti_metric import (
    KittiDetections,
    KittiGroundTruth,
    evaluate_kitti,
)

try:
    from shapely.geometry import Polygon
except ImportError:  # the brute-force references need shapely; the other tests do not
    Polygon = None

needs_shapely = pytest.mark.skipif(Polygon is None, reason="shapely is not installed")


def car_boxes(n, rng, spacing=12.0):
    """``n`` cars 4 x 1.8 x 1.5 m on a line, ``spacing`` apart, random headings."""
    x = np.arange(n) * spacing
    return np.stack(
        [
            x,
            rng.uniform(-1, 1, n),
            rng.uniform(-1, 0, n),
            np.full(n, 4.0),
            np.full(n, 1.8),
            np.full(n, 1.5),
            rng.uniform(-math.pi, math.pi, n),
        ],
        axis=1,
    )


def single_frame(boxes, names, difficulty=None, det_boxes=None, det_names=None, scores=None, **kw):
    difficulty = np.zeros(len(boxes), dtype=np.int64) if difficulty is None else np.asarray(difficulty)
    gt = KittiGroundTruth(boxes, names, difficulty, dontcare_boxes=kw.pop("dontcare", None))
    det = KittiDetections(
        np.zeros((0, 7)) if det_boxes is None else det_boxes,
        [] if det_names is None else det_names,
        np.zeros(0) if scores is None else scores,
        **kw,
    )
    return [gt], [det]


# ---------------------------------------------------------------------------------------------------------
# hand-derived values


def test_perfect_detections_give_100_at_every_difficulty():
    """60 cars (45 easy, 10 moderate, 5 hard), each found exactly: at every level the counted cars (>= 40)
    are all found at precision 1, and the harder cars are ignored at the easier levels (their detections
    neither TP nor FP), so AP = 100 for BEV and 3D, R40 and R11."""
    rng = np.random.default_rng(0)
    boxes = car_boxes(60, rng)
    difficulty = np.array([0] * 45 + [1] * 10 + [2] * 5)
    gt, det = single_frame(boxes, ["Car"] * 60, difficulty, boxes, ["Car"] * 60, rng.uniform(0.1, 1, 60))
    for points in (40, 11):
        m = evaluate_kitti(gt, det, classes=("Car",), num_recall_points=points)
        np.testing.assert_allclose(m.ap[0], 100.0)
        np.testing.assert_array_equal(m.num_gt[0], [45, 55, 60])


def test_all_false_gives_0():
    rng = np.random.default_rng(1)
    boxes = car_boxes(50, rng)
    far = boxes + np.array([0, 5.0, 0, 0, 0, 0, 0])
    gt, det = single_frame(boxes, ["Car"] * 50, None, far, ["Car"] * 50, rng.uniform(0, 1, 50))
    m = evaluate_kitti(gt, det, classes=("Car",))
    np.testing.assert_array_equal(m.ap[0], 0.0)


def test_half_found_with_perfect_precision_is_50():
    """80 cars, the first 40 found exactly, nothing else. TP i (0-based, by score) has recall (i + 1) / 80;
    the target recall starts at 0 and rises by 1/40 per kept TP. TP 0 is kept (target -> 1/40 = 2/80); TP 1
    (recall 2/80) is kept since TP 2's 3/80 is not nearer 2/80; TP 2 is skipped (TP 3's 4/80 is nearer the
    target 4/80), TP 3 kept, ... so TPs 0, 1, 3, 5, .., 39 are kept: 21 thresholds, all at precision 1.
    p_0..p_20 = 1, p_21..p_40 = 0: AP_R40 = 20 / 40 = 50 %; AP_R11 = (p_0 + p_4 + .. + p_20) / 11 = 6 / 11."""
    rng = np.random.default_rng(2)
    boxes = car_boxes(80, rng)
    gt, det = single_frame(boxes, ["Car"] * 80, None, boxes[:40], ["Car"] * 40, rng.uniform(0, 1, 40))
    np.testing.assert_allclose(evaluate_kitti(gt, det, classes=("Car",)).ap[0], 50.0)
    np.testing.assert_allclose(evaluate_kitti(gt, det, classes=("Car",), num_recall_points=11).ap[0], 100.0 * 6 / 11)


def test_few_objects_reproduce_the_devkit_shortfall():
    """With 10 objects all found, the devkit keeps only 10 thresholds (one per TP, the target recall
    rising 1/40 per TP), so p_1..p_9 = 1 and AP_R40 = 9 / 40 = 22.5 %, not 100 %."""
    rng = np.random.default_rng(3)
    boxes = car_boxes(10, rng)
    gt, det = single_frame(boxes, ["Car"] * 10, None, boxes, ["Car"] * 10, rng.uniform(0, 1, 10))
    np.testing.assert_allclose(evaluate_kitti(gt, det, classes=("Car",)).ap[0], 22.5)


def test_score_order_matters():
    """80 cars found exactly plus 80 false positives. Scored below every TP, the FPs cost nothing: 100.
    Scored above every TP: TP i comes after all 80 FPs, precision (i + 1) / (81 + i), increasing in i, so
    every interpolated p_m is the last one, 80 / 160; the kept thresholds are TPs 0, 1, 3, .., 79 (as in the
    half-found case), 41 of them, so AP = 40 * 0.5 / 40 = 50 %."""
    rng = np.random.default_rng(4)
    boxes = car_boxes(80, rng)
    fps = boxes + np.array([0, 6.0, 0, 0, 0, 0, 0])
    det_boxes = np.concatenate([boxes, fps])
    low = np.concatenate([rng.uniform(0.5, 1.0, 80), rng.uniform(0.0, 0.4, 80)])
    high = np.concatenate([rng.uniform(0.0, 0.4, 80), rng.uniform(0.5, 1.0, 80)])
    for scores, expected in ((low, 100.0), (high, 50.0)):
        gt, det = single_frame(boxes, ["Car"] * 80, None, det_boxes, ["Car"] * 160, scores)
        np.testing.assert_allclose(evaluate_kitti(gt, det, classes=("Car",)).ap[0], expected)


def test_exactly_40_objects_top_out_at_97_5():
    """40 objects all found: one threshold per TP (recall steps of 1/40 equal the target steps), 40 in all,
    so p_0..p_39 = 1, p_40 = 0 and AP_R40 = 39 / 40 = 97.5 % (the devkit needs more than 40 objects for 100)."""
    rng = np.random.default_rng(9)
    boxes = car_boxes(40, rng)
    gt, det = single_frame(boxes, ["Car"] * 40, None, boxes, ["Car"] * 40, rng.uniform(0, 1, 40))
    np.testing.assert_allclose(evaluate_kitti(gt, det, classes=("Car",)).ap[0], 97.5)


@pytest.mark.parametrize("iou,expected", [(0.701, 100.0), (0.699, 0.0)])
def test_iou_just_above_or_below_the_threshold(iou, expected):
    """Same centre, heading, width and height, length ``4 / iou``: BEV and 3D IoU are exactly ``iou``."""
    rng = np.random.default_rng(5)
    boxes = car_boxes(45, rng)
    longer = boxes.copy()
    longer[:, 3] = 4.0 / iou
    gt, det = single_frame(boxes, ["Car"] * 45, None, longer, ["Car"] * 45, rng.uniform(0, 1, 45))
    np.testing.assert_allclose(evaluate_kitti(gt, det, classes=("Car",)).ap[0], expected)
    loose = evaluate_kitti(gt, det, classes=("Car",), iou_thresholds="loose")
    np.testing.assert_allclose(loose.ap[0], 100.0)


def test_neighbours_dontcare_and_other_classes_are_not_false_positives():
    """50 cars found exactly (the lowest scores) plus 10 higher-scored Car detections on: 4 vans, 3 DontCare
    regions, 3 cyclists. Vans (neighbour class) and DontCare regions absorb theirs: without the cyclists the AP
    is 100. A Car detection on a cyclist is a false positive, and so is one in a region once the regions are
    gone: every precision is then at most 50 / 53."""
    rng = np.random.default_rng(6)
    cars = car_boxes(50, rng)
    extra = car_boxes(10, rng) + np.array([0, 30.0, 0, 0, 0, 0, 0])
    names = ["Car"] * 50 + ["Van"] * 4 + ["Cyclist"] * 3
    gt_boxes = np.concatenate([cars, extra[:4], extra[7:]])
    det_boxes = np.concatenate([cars, extra])
    scores = np.concatenate([rng.uniform(0, 0.5, 50), rng.uniform(0.6, 1, 10)])
    regions = extra[4:7] * np.array([1, 1, 1, 1.2, 1.2, 1.2, 1])
    bound = 100.0 * 50 / 53 + 1e-9

    def run(num_gt, num_det, dontcare):
        gt = [
            KittiGroundTruth(
                gt_boxes[:num_gt], names[:num_gt], np.zeros(num_gt, dtype=np.int64), dontcare_boxes=dontcare
            )
        ]
        det = [KittiDetections(det_boxes[:num_det], ["Car"] * num_det, scores[:num_det])]
        return evaluate_kitti(gt, det, classes=("Car",)).ap[0]

    np.testing.assert_allclose(run(54, 57, regions), 100.0)  # vans and regions only
    assert np.all(run(57, 60, regions) <= bound)  # + the cyclists' three
    assert np.all(run(54, 57, None) <= bound)  # regions removed
    np.testing.assert_allclose(run(54, 54, None), 100.0)  # vans only


def test_small_2d_detections_are_ignored_when_heights_are_given():
    """50 cars found; 5 higher-scored false positives 20 px high: ignored (below 25 px, so at every level)
    when heights are given, false positives otherwise."""
    rng = np.random.default_rng(7)
    cars = car_boxes(50, rng)
    fps = cars[:5] + np.array([0, 6.0, 0, 0, 0, 0, 0])
    boxes = np.concatenate([cars, fps])
    scores = np.concatenate([rng.uniform(0, 0.5, 50), rng.uniform(0.6, 1, 5)])
    heights = np.concatenate([np.full(50, 50.0), np.full(5, 20.0)])
    gt = [KittiGroundTruth(cars, ["Car"] * 50, np.zeros(50, dtype=np.int64))]
    with_heights = evaluate_kitti(
        gt, [KittiDetections(boxes, ["Car"] * 55, scores, heights_2d=heights)], classes=("Car",)
    )
    without = evaluate_kitti(gt, [KittiDetections(boxes, ["Car"] * 55, scores)], classes=("Car",))
    np.testing.assert_allclose(with_heights.ap[0], 100.0)
    assert np.all(without.ap[0] <= 100.0 * 50 / 55 + 1e-9)


def test_checks_and_reports():
    rng = np.random.default_rng(8)
    boxes = car_boxes(45, rng)
    gt, det = single_frame(boxes, ["Car"] * 45, None, boxes, ["Car"] * 45, rng.uniform(0, 1, 45))
    m = evaluate_kitti(gt, det, classes=("Car", "Pedestrian"))
    assert np.isnan(m.ap[1]).all() and m.num_gt[1].sum() == 0
    assert m.mean_ap("moderate", "3d") == pytest.approx(100.0)
    md = m.to_markdown()
    assert "| Car | 0.70 | bev | 100.00 | 100.00 | 100.00 | 45 | 45 | 45 |" in md
    assert "| Pedestrian | 0.50 | 3d | n/a | n/a | n/a | 0 | 0 | 0 |" in md
    csv_rows = m.to_csv().splitlines()
    assert csv_rows[0] == "class,IoU,metric,easy (R40),moderate (R40),hard (R40),GT easy,GT moderate,GT hard"
    with pytest.raises(ValueError, match="frames"):
        evaluate_kitti(gt, det + det)
    with pytest.raises(ValueError, match="no IoU threshold"):
        evaluate_kitti(gt, det, classes=("Truck",))
    with pytest.raises(ValueError, match="difficulty"):
        KittiGroundTruth(boxes, ["Car"] * 45, np.full(45, 3))
    with pytest.raises(ValueError, match="num_recall_points"):
        evaluate_kitti(gt, det, num_recall_points=101)


# ---------------------------------------------------------------------------------------------------------
# brute-force references on random scenes


def _polygon(b):
    c, s = math.cos(b[6]), math.sin(b[6])
    corners = [(sx * b[3] / 2, sy * b[4] / 2) for sx, sy in ((1, 1), (-1, 1), (-1, -1), (1, -1))]
    return Polygon([(b[0] + c * u - s * v, b[1] + s * u + c * v) for u, v in corners])


def shapely_overlap(a, b, three_d, over_first=False):
    """IoU (or intersection / |a|) of two boxes from shapely polygons and the z intervals."""
    inter = _polygon(a).intersection(_polygon(b)).area
    size_a, size_b = a[3] * a[4], b[3] * b[4]
    if three_d:
        h = max(0.0, min(a[2] + a[5] / 2, b[2] + b[5] / 2) - max(a[2] - a[5] / 2, b[2] - b[5] / 2))
        inter, size_a, size_b = inter * h, size_a * a[5], size_b * b[5]
    return inter / size_a if over_first else inter / (size_a + size_b - inter)


def _frame_tables(g, d, cls, level, three_d):
    """Per frame: the relevant objects (index, counted?), detections (index, score, ignored?), overlaps."""
    neighbours = {"Car": "van", "Pedestrian": "person_sitting"}.get(cls)
    objs = []
    for j, name in enumerate(g.names):
        if name.lower() == cls.lower():
            objs.append((j, 0 <= g.difficulty[j] <= level))
        elif neighbours and name.lower() == neighbours:
            objs.append((j, False))
    dets = [
        (i, d.scores[i], d.heights_2d is not None and d.heights_2d[i] < (40, 25, 25)[level])
        for i, name in enumerate(d.names)
        if name.lower() == cls.lower()
    ]
    overlap = {(i, j): shapely_overlap(d.boxes[i], g.boxes[j], three_d) for i, _, _ in dets for j, _ in objs}
    in_dontcare = {
        i: any(shapely_overlap(d.boxes[i], r, three_d, over_first=True) > THRESHOLD[cls] for r in g.dontcare_boxes)
        for i, _, _ in dets
    }
    return objs, dets, overlap, in_dontcare


THRESHOLD = {"Car": 0.7, "Pedestrian": 0.5, "Cyclist": 0.5}


def _detection_ordered(tables, cls, t):
    """Our rule, redone from scratch: detections scoring >= t (those too low in 2D left out), by descending
    score, each takes the free counted object of largest overlap above the threshold, else a free ignored
    one; yields (score, outcome) with outcome "tp", "fp" or "ignored"."""
    for objs, dets, overlap, in_dontcare in tables:
        taken = set()
        for i, score, too_low in sorted(dets, key=lambda e: -e[1]):
            if score < t or too_low:
                continue
            free = [
                (overlap[(i, j)], j, counted)
                for j, counted in objs
                if j not in taken and overlap[(i, j)] > THRESHOLD[cls]
            ]
            counted_free = [f for f in free if f[2]]
            pick = max(counted_free) if counted_free else (max(free) if free else None)
            if pick is not None:
                taken.add(pick[1])
                yield score, "tp" if pick[2] else "ignored"
            else:
                yield score, "ignored" if in_dontcare[i] else "fp"


def detection_ordered_counts(tables, cls, t):
    outcomes = [o for _, o in _detection_ordered(tables, cls, t)]
    return outcomes.count("tp"), outcomes.count("fp")


def detection_ordered_tp_scores(tables, cls):
    return [s for s, o in _detection_ordered(tables, cls, -np.inf) if o == "tp"]


def object_ordered_counts(tables, cls, t):
    """The devkit's rule: objects in label order each take the free detection (score >= t) of largest
    overlap, preferring detections that are not ignored; then unassigned counted detections are FP unless
    they lie in a DontCare region."""
    tp = fp = 0
    for objs, dets, overlap, in_dontcare in tables:
        assigned = set()
        live = [(i, s, ign) for i, s, ign in dets if s >= t]
        for j, counted in objs:
            best = None
            for i, _, ign in live:
                if i in assigned or not overlap[(i, j)] > THRESHOLD[cls]:
                    continue
                key = (not ign, overlap[(i, j)])
                if best is None or key > best[0]:
                    best = (key, i, ign)
            if best is not None:
                assigned.add(best[1])
                tp += int(counted and not best[2])
        fp += sum(1 for i, _, ign in live if i not in assigned and not ign and not in_dontcare[i])
    return tp, fp


def object_ordered_tp_scores(tables, cls):
    scores = []
    for objs, dets, overlap, _ in tables:
        assigned = set()
        for j, counted in objs:
            cand = [(s, i, ign) for i, s, ign in dets if i not in assigned and overlap[(i, j)] > THRESHOLD[cls]]
            if cand:
                s, i, ign = max(cand)
                assigned.add(i)
                if counted and not ign:
                    scores.append(s)
    return scores


def reference_ap(tables, cls, counts_fn, tp_scores_fn, points):
    """Sort the TP scores, keep the devkit's thresholds, recount at each, interpolate, average."""
    num_gt = sum(sum(1 for _, counted in objs if counted) for objs, _, _, _ in tables)
    if num_gt == 0:
        return float("nan")
    tp_scores = sorted(tp_scores_fn(tables, cls), reverse=True)
    kept, target = [], 0.0
    for i, s in enumerate(tp_scores):
        left = (i + 1) / num_gt
        right = (i + 2) / num_gt
        if i + 1 < len(tp_scores) and right - target < target - left:
            continue
        kept.append(s)
        target += 1 / 40
    precision = []
    for t in kept[:41]:
        tp, fp = counts_fn(tables, cls, t)
        precision.append(tp / (tp + fp))
    p = [max(precision[m:]) if m < len(precision) else 0.0 for m in range(41)]
    return 100.0 * (sum(p[1:]) / 40 if points == 40 else sum(p[0:41:4]) / 11)


def random_scenes(seed, sparse, num_frames=6):
    """Cars, pedestrians, cyclists, vans, persons sitting; noisy detections, duplicates, false positives,
    random difficulties, DontCare regions and 2D heights (15 - 80 px, so some detections are too low).
    ``sparse``: objects 15 m apart on a grid, so no detection overlaps two objects; otherwise objects are
    packed into a small area and overlap."""
    rng = np.random.default_rng(seed)
    kinds = {
        "Car": (4.0, 1.8, 1.5),
        "Van": (5.0, 2.0, 2.2),
        "Pedestrian": (0.8, 0.7, 1.7),
        "Person_sitting": (0.8, 0.7, 1.2),
        "Cyclist": (1.8, 0.7, 1.7),
    }
    names_all = list(kinds)
    gts, dets = [], []
    for _ in range(num_frames):
        n = int(rng.integers(12, 20))
        names = [names_all[k] for k in rng.choice(5, n, p=[0.45, 0.1, 0.2, 0.05, 0.2])]
        if sparse:
            cells = rng.choice(100, n, replace=False)
            centres = np.stack([(cells % 10) * 15.0, (cells // 10) * 15.0], axis=1)
        else:
            centres = rng.uniform(0, 14, (n, 2))
        boxes = np.array(
            [[*centres[k], rng.uniform(-1, 0), *kinds[names[k]], rng.uniform(-math.pi, math.pi)] for k in range(n)]
        )
        difficulty = rng.choice([-1, 0, 1, 2], n, p=[0.1, 0.5, 0.25, 0.15])
        d_boxes, d_names, d_object = [], [], []
        object_height = rng.uniform(15, 80, n)  # the duplicates of an object share its 2D height
        for k in range(n):
            for _ in range(rng.choice([0, 1, 1, 1, 2])):
                d_object.append(k)
                b = boxes[k].copy()
                scale = 0.15 if names[k] in ("Car", "Van") else 0.06
                b[:2] += rng.normal(0, scale, 2)
                b[2] += rng.normal(0, 0.1)
                b[3:6] *= np.exp(rng.normal(0, 0.08, 3))
                b[6] += rng.normal(0, 0.08)
                d_boxes.append(b)
                d_names.append(
                    {"Van": "Car", "Person_sitting": "Pedestrian"}.get(names[k], names[k])
                    if rng.random() < 0.9
                    else names_all[rng.integers(5)]
                )
        free = [c for c in range(100) if not sparse or c not in cells]
        for c in rng.choice(free, 5, replace=False):  # false positives
            xy = np.array([(c % 10) * 15.0, (c // 10) * 15.0]) if sparse else rng.uniform(0, 14, 2)
            name = ["Car", "Pedestrian", "Cyclist"][rng.integers(3)]
            d_boxes.append([*xy, -0.5, *kinds[name], rng.uniform(-3, 3)])
            d_names.append(name)
        dontcare = np.array([[*d_boxes[-1][:3], 6.0, 6.0, 4.0, 0.0]]) if rng.random() < 0.5 else None
        gts.append(KittiGroundTruth(boxes, names, difficulty, dontcare_boxes=dontcare))
        m = len(d_boxes)
        heights = np.concatenate([object_height[d_object], rng.uniform(15, 80, m - len(d_object))])
        dets.append(KittiDetections(np.asarray(d_boxes), d_names, rng.uniform(0, 1, m), heights_2d=heights))
    return gts, dets


@needs_shapely
@pytest.mark.parametrize("sparse", [False, True])
def test_against_brute_force_references(sparse):
    """Dense scenes: our rule, brute force. Sparse scenes: also the devkit's object-ordered rule (there no
    detection overlaps two objects, and the duplicates of an object share its 2D height, the two cases where
    the rules part)."""
    classes = ("Car", "Pedestrian", "Cyclist")
    gts, dets = random_scenes(11 if sparse else 12, sparse)
    got = {points: evaluate_kitti(gts, dets, classes=classes, num_recall_points=points) for points in (40, 11)}
    rules = [(detection_ordered_counts, detection_ordered_tp_scores)]
    if sparse:
        rules.append((object_ordered_counts, object_ordered_tp_scores))
    checked = 0
    for ci, cls in enumerate(classes):
        for mi, three_d in enumerate((False, True)):
            for level in range(3):
                tables = [_frame_tables(g, d, cls, level, three_d) for g, d in zip(gts, dets)]
                for counts_fn, scores_fn in rules:
                    for points in (40, 11):
                        expected = reference_ap(tables, cls, counts_fn, scores_fn, points)
                        np.testing.assert_allclose(
                            got[points].ap[ci, level, mi],
                            expected,
                            atol=1e-9,
                            err_msg=f"{cls} level {level} 3d={three_d} R{points}",
                        )
                        checked += 1
    assert checked == len(rules) * 36
    ap = got[40].ap
    assert np.isfinite(ap).all() and (ap > 5).sum() > 6 and (ap < 95).sum() > 6  # not trivial values


@pytest.mark.shared_data
def test_real_kitti_frames_through_the_reader():
    """The six shared KITTI frames read by ``KittiDetection`` (Van folded into Car for training, as configs
    do): the ground truth keeps the original names and the reader's difficulties; the labels' own boxes,
    used as detections, project into image 2 with heights within a few pixels of the annotated 2D boxes
    (a 3D box's projection is not its 2D label); they are found at every level where they count, and the
    counts per difficulty follow the stored difficulties."""
    from helpers import SHARED_DATA

    from largekernel3d.data.detection.kitti import KittiDetection

    root = SHARED_DATA / "kitti"
    if not (root / "training" / "label_2").is_dir():
        pytest.skip("shared KITTI sample absent")
    ds = KittiDetection(root, "training", class_map={"Van": "Car", "Person_sitting": "Pedestrian"})
    gts, dets = [], []
    rng = np.random.default_rng(0)
    for i in range(len(ds)):
        frame = ds[i]
        gt = KittiGroundTruth.from_frame(frame)
        own = np.isin(gt.names, ("Car", "Pedestrian", "Cyclist"))
        det = KittiDetections.from_lidar(
            gt.boxes[own], [n for n, o in zip(gt.names, own) if o], rng.uniform(0, 1, int(own.sum())), frame
        )
        labelled = frame.metadata["label"].bbox2d
        np.testing.assert_allclose(det.heights_2d, labelled[:, 3] - labelled[:, 1], atol=8.0)
        np.testing.assert_array_equal(gt.difficulty[: frame.num_boxes], frame.difficulty)
        gts.append(gt)
        dets.append(det)
    m = evaluate_kitti(gts, dets)
    difficulty = np.concatenate([g.difficulty[np.array(g.names) == "Car"] for g in gts])
    np.testing.assert_array_equal(m.num_gt[0], [((difficulty >= 0) & (difficulty <= L)).sum() for L in range(3)])
    assert m.num_gt[0, 2] >= 3
    # every counted car found at precision 1: n cars keep n thresholds, so AP_R40 = (n - 1) / 40
    for level in range(3):
        n = m.num_gt[0, level]
        np.testing.assert_allclose(m.ap[0, level], 100.0 * (n - 1) / 40 if n else np.nan)
