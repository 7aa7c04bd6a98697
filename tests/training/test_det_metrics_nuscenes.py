"""nuScenes detection metric: against the official devkit (``nuscenes.eval.detection``) on generated scenes,
and analytic cases that need no devkit."""

from __future__ import annotations

import math

import numpy as np
import pytest

from largekernel3d.data.detection.classes import NUSCENES_CLASSES
from largekernel3d.training.detection_metrics import (
    TP_METRICS,
    NuScenesBoxes,
    NuScenesConfig,
    evaluate_nuscenes,
)

RELEVANT_ATTRIBUTES = {
    "pedestrian": ["pedestrian.moving", "pedestrian.sitting_lying_down", "pedestrian.standing"],
    "bicycle": ["cycle.with_rider", "cycle.without_rider"],
    "motorcycle": ["cycle.with_rider", "cycle.without_rider"],
}
VEHICLE_ATTRIBUTES = ["vehicle.moving", "vehicle.parked", "vehicle.stopped"]


def _attributes(name: str):
    if name in ("barrier", "traffic_cone"):
        return [""]
    return RELEVANT_ATTRIBUTES.get(name, VEHICLE_ATTRIBUTES)


def generated_scenes(seed: int, num_samples: int = 10):
    """Ground truth and noisy detections of all ten classes around moving egos (global frame).

    Detections: a noisy copy of ~75 % of the objects (centre noise up to a few metres so every distance
    threshold matters, size / heading / velocity noise, some headings flipped by pi), a few with the wrong
    class, and false positives; some ground truth with 0 points, NaN velocities or no attribute; bike racks
    holding some bicycles; objects beyond the class ranges.
    """
    rng = np.random.default_rng(seed)
    gt, pred, ego, racks = {}, {}, {}, {}
    for s in range(num_samples):
        token = f"sample{s:03d}"
        e = np.array([rng.uniform(-500, 500), rng.uniform(-500, 500), 0.0])
        ego[token] = e
        g_boxes, g_names, g_attr, g_pts = [], [], [], []
        for name in NUSCENES_CLASSES:
            for _ in range(rng.integers(0, 6)):
                r, phi = rng.uniform(0, 60), rng.uniform(-math.pi, math.pi)
                size = rng.uniform([0.3, 0.3, 0.5], [8.0, 3.0, 3.5])
                vel = rng.normal(0, 3, 2) if rng.random() > 0.1 else np.full(2, np.nan)
                g_boxes.append(
                    [
                        e[0] + r * math.cos(phi),
                        e[1] + r * math.sin(phi),
                        rng.uniform(-1, 2),
                        *size,
                        rng.uniform(-math.pi, math.pi),
                        *vel,
                    ]
                )
                g_names.append(name)
                attrs = _attributes(name)
                g_attr.append("" if rng.random() < 0.1 else attrs[rng.integers(len(attrs))])
                g_pts.append(0 if rng.random() < 0.08 else int(rng.integers(1, 500)))
        g_boxes = np.asarray(g_boxes, dtype=np.float64).reshape(-1, 9)
        rack_boxes = []
        for i, name in enumerate(g_names):  # bike racks around some bicycles / motorcycles
            if name in ("bicycle", "motorcycle") and rng.random() < 0.4:
                rack_boxes.append([*g_boxes[i, :3], 3.0, 1.5, 2.0, rng.uniform(-math.pi, math.pi)])
        racks[token] = np.asarray(rack_boxes, dtype=np.float64).reshape(-1, 7)
        p_boxes, p_names, p_attr, p_scores = [], [], [], []
        for i, name in enumerate(g_names):
            if rng.random() < 0.25:
                continue
            box = g_boxes[i].copy()
            box[:2] += rng.normal(0, rng.choice([0.2, 0.6, 1.5, 3.0]), 2)
            box[2] += rng.normal(0, 0.2)
            box[3:6] *= np.exp(rng.normal(0, 0.15, 3))
            box[6] += rng.normal(0, 0.3) + (math.pi if rng.random() < 0.15 else 0.0)
            box[7:9] = np.nan_to_num(box[7:9]) + rng.normal(0, 1.0, 2)
            p_boxes.append(box)
            p_names.append(name if rng.random() > 0.05 else NUSCENES_CLASSES[rng.integers(10)])
            attrs = _attributes(p_names[-1])
            p_attr.append(attrs[rng.integers(len(attrs))])
            p_scores.append(rng.uniform(0.05, 1.0))
        for _ in range(rng.integers(3, 12)):  # false positives
            name = NUSCENES_CLASSES[rng.integers(10)]
            r, phi = rng.uniform(0, 55), rng.uniform(-math.pi, math.pi)
            p_boxes.append(
                [
                    e[0] + r * math.cos(phi),
                    e[1] + r * math.sin(phi),
                    0.5,
                    *rng.uniform([0.3, 0.3, 0.5], [6.0, 3.0, 3.0]),
                    rng.uniform(-3, 3),
                    *rng.normal(0, 2, 2),
                ]
            )
            p_names.append(name)
            attrs = _attributes(name)
            p_attr.append(attrs[rng.integers(len(attrs))])
            p_scores.append(rng.uniform(0.0, 0.7))
        gt[token] = NuScenesBoxes(g_boxes, g_names, attributes=g_attr, num_points=np.asarray(g_pts, dtype=np.int64))
        pred[token] = NuScenesBoxes(
            np.asarray(p_boxes).reshape(-1, 9), p_names, scores=np.asarray(p_scores), attributes=p_attr
        )
    return gt, pred, ego, racks


# ---------------------------------------------------------------------------------------------------------
# the official devkit as the reference


def _devkit_boxes(samples, ego, box_cls, quaternion_cls, eval_boxes_cls, with_scores):
    eval_boxes = eval_boxes_cls()
    for token, b in samples.items():
        rows = []
        for i in range(len(b)):
            x = b.boxes[i]
            rows.append(
                box_cls(
                    sample_token=token,
                    translation=tuple(float(v) for v in x[:3]),
                    size=(float(x[4]), float(x[3]), float(x[5])),
                    rotation=tuple(quaternion_cls(axis=[0, 0, 1], radians=float(x[6])).elements.tolist()),
                    velocity=(float(x[7]), float(x[8])),
                    ego_translation=tuple(float(v) for v in x[:3] - ego[token]),
                    num_pts=int(b.num_points[i]) if b.num_points is not None else -1,
                    detection_name=b.names[i],
                    detection_score=float(b.scores[i]) if with_scores else -1.0,
                    attribute_name=b.attributes[i] if b.attributes is not None else "",
                )
            )
        eval_boxes.add_boxes(token, rows)
    return eval_boxes


class _FakeNuScenes:
    """What ``filter_eval_boxes`` reads from a ``NuScenes`` instance: the bike-rack annotations."""

    def __init__(self, racks, quaternion_cls):
        self.records = {}
        for token, boxes in racks.items():
            anns = []
            for k, r in enumerate(boxes):
                key = f"{token}-rack{k}"
                self.records[("sample_annotation", key)] = {
                    "category_name": "static_object.bicycle_rack",
                    "translation": r[:3].tolist(),
                    "size": [float(r[4]), float(r[3]), float(r[5])],
                    "rotation": quaternion_cls(axis=[0, 0, 1], radians=float(r[6])).elements.tolist(),
                }
                anns.append(key)
            self.records[("sample", token)] = {"anns": anns}

    def get(self, table, token):
        return self.records[(table, token)]


def devkit_reference(gt, pred, ego, racks):
    """The devkit's ``DetectionEval.evaluate`` steps on our generated samples."""
    pytest.importorskip("pyquaternion")
    algo = pytest.importorskip("nuscenes.eval.detection.algo")
    from nuscenes.eval.common.config import config_factory
    from nuscenes.eval.common.data_classes import EvalBoxes
    from nuscenes.eval.common.loaders import filter_eval_boxes
    from nuscenes.eval.detection.data_classes import DetectionBox, DetectionMetrics
    from pyquaternion import Quaternion

    cfg = config_factory("detection_cvpr_2019")
    nusc = _FakeNuScenes(racks, Quaternion)
    gt_boxes = filter_eval_boxes(
        nusc, _devkit_boxes(gt, ego, DetectionBox, Quaternion, EvalBoxes, False), cfg.class_range
    )
    pred_boxes = filter_eval_boxes(
        nusc, _devkit_boxes(pred, ego, DetectionBox, Quaternion, EvalBoxes, True), cfg.class_range
    )
    metrics = DetectionMetrics(cfg)
    data = {}
    for c in cfg.class_names:
        for d in cfg.dist_ths:
            md = algo.accumulate(gt_boxes, pred_boxes, c, cfg.dist_fcn_callable, d)
            data[(c, d)] = md
            metrics.add_label_ap(c, d, algo.calc_ap(md, cfg.min_recall, cfg.min_precision))
        for m in TP_METRICS:
            md = data[(c, cfg.dist_th_tp)]
            if (c == "traffic_cone" and m in ("attr_err", "vel_err", "orient_err")) or (
                c == "barrier" and m in ("attr_err", "vel_err")
            ):
                tp = np.nan
            else:
                tp = algo.calc_tp(md, cfg.min_recall, m)
            metrics.add_label_tp(c, m, tp)
    return metrics, data


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_the_devkit(seed):
    gt, pred, ego, racks = generated_scenes(seed)
    reference, reference_data = devkit_reference(gt, pred, ego, racks)
    ours = evaluate_nuscenes(gt, pred, ego, bike_racks=racks)
    worst = 0.0
    for ci, c in enumerate(ours.class_names):
        for ti, d in enumerate(ours.dist_thresholds):
            md, curve = reference_data[(c, d)], ours.curves[(c, d)]
            for ref, got in (
                (md.precision, curve.precision),
                (md.confidence, curve.confidence),
                (np.array([reference.get_label_ap(c, d)]), np.array([ours.ap[ci, ti]])),
            ):
                worst = max(worst, float(np.max(np.abs(ref - got))))
            if d == 2.0:
                for m in TP_METRICS:
                    worst = max(worst, float(np.max(np.abs(getattr(md, m) - curve.errors[m]))))
        for mi, m in enumerate(TP_METRICS):
            ref = reference.get_label_tp(c, m)
            got = ours.tp_errors[ci, mi]
            assert np.isnan(ref) == np.isnan(got), (c, m)
            if not np.isnan(ref):
                worst = max(worst, abs(ref - got))
    for m in TP_METRICS:
        worst = max(worst, abs(reference.tp_errors[m] - ours.mean_tp_errors[m]))
    worst = max(worst, abs(reference.mean_ap - ours.mean_ap), abs(reference.nd_score - ours.nds))
    print(f"seed {seed}: mAP {ours.mean_ap:.4f} NDS {ours.nds:.4f}; max |ours - devkit| = {worst:.3g}")
    assert worst <= 1e-6
    # the scenes exercise what they should: some matches, misses and false positives at every threshold
    assert 0.05 < ours.mean_ap < 0.95
    assert (ours.ap[:, 0] < ours.ap[:, -1]).sum() >= 5


# ---------------------------------------------------------------------------------------------------------
# analytic cases (no devkit)


def _sample(boxes, names, scores=None, attributes=None):
    return NuScenesBoxes(
        np.asarray(boxes, dtype=np.float64).reshape(-1, 9),
        names,
        scores=None if scores is None else np.asarray(scores, dtype=np.float64),
        attributes=attributes,
    )


def test_perfect_detections():
    """Exact copies: AP 1 at every threshold; ATE, ASE, AOE, AVE 0; AAE 0 with the right attributes;
    NDS = (5 + 5) / 10 = 1 for the classes present (one class here: mAP = 1, NDS = 1)."""
    rng = np.random.default_rng(3)
    boxes = np.concatenate(
        [
            rng.uniform(-20, 20, (20, 3)),
            rng.uniform(1, 4, (20, 3)),
            rng.uniform(-3, 3, (20, 1)),
            rng.normal(0, 2, (20, 2)),
        ],
        axis=1,
    )
    names = ["car"] * 20
    attrs = [VEHICLE_ATTRIBUTES[i % 3] for i in range(20)]
    gt = {
        "a": _sample(boxes[:12], names[:12], attributes=attrs[:12]),
        "b": _sample(boxes[12:], names[12:], attributes=attrs[12:]),
    }
    pred = {
        "a": _sample(boxes[:12], names[:12], rng.uniform(0.1, 1, 12), attrs[:12]),
        "b": _sample(boxes[12:], names[12:], rng.uniform(0.1, 1, 8), attrs[12:]),
    }
    ego = {"a": np.zeros(3), "b": np.zeros(3)}
    m = evaluate_nuscenes(gt, pred, ego, NuScenesConfig(class_range={"car": 50.0}))
    np.testing.assert_allclose(m.ap, 1.0)
    np.testing.assert_allclose(m.tp_errors, 0.0, atol=1e-12)
    assert m.nds == pytest.approx(1.0)


def test_half_found_with_a_false_positive_first():
    """10 cars; the top-scored detection is a false positive, then 5 exact hits. Precision after k hits is
    k / (k + 1) at recall k / 10; interpolated linearly between those points, 0 beyond recall 0.5.

    Bins r = 0.11 .. 0.50 lie on segments between (k/10, k/(k+1)) and ((k+1)/10, (k+1)/(k+2)), so
    AP = sum over those 40 bins of (p(r) - 0.1) / 0.9 / 90 (the 50 bins above 0.5 are 0)."""
    x = np.arange(10, dtype=np.float64) * 5.0
    boxes = np.stack(
        [
            x,
            np.zeros(10),
            np.zeros(10),
            np.full(10, 4.0),
            np.full(10, 2.0),
            np.full(10, 1.5),
            np.zeros(10),
            np.zeros(10),
            np.zeros(10),
        ],
        axis=1,
    )
    fp = [[0.0, 30.0, 0.0, 4.0, 2.0, 1.5, 0.0, 0.0, 0.0]]
    pred = _sample(np.concatenate([fp, boxes[:5]]), ["car"] * 6, [0.99, 0.9, 0.8, 0.7, 0.6, 0.5])
    m = evaluate_nuscenes(
        {"s": _sample(boxes, ["car"] * 10)}, {"s": pred}, {"s": np.zeros(3)}, NuScenesConfig(class_range={"car": 60.0})
    )
    r = np.arange(11, 51) / 100.0
    k = np.floor(r * 10 + 1e-9)
    p_lo, p_hi = k / (k + 1), (k + 1) / (k + 2)
    p = p_lo + (r * 10 - k) * (p_hi - p_lo)
    expected = float(np.sum(np.clip(p - 0.1, 0, None)) / 0.9 / 90)
    np.testing.assert_allclose(m.ap[0], expected, atol=1e-12)


def test_distance_threshold_is_strict_and_range_filters_both_sides():
    """A detection 1.0 m from its object matches at 2 and 4 m but not at 0.5 or 1 m (``dist < d``);
    an object and a detection beyond the class range (50 m for cars) are dropped from both sides."""
    gt = _sample([[10.0, 0, 0, 4, 2, 1.5, 0, 0, 0], [55.0, 0, 0, 4, 2, 1.5, 0, 0, 0]], ["car", "car"])
    pred = _sample([[11.0, 0, 0, 4, 2, 1.5, 0, 0, 0], [55.0, 0, 0, 4, 2, 1.5, 0, 0, 0]], ["car", "car"], [0.9, 0.8])
    m = evaluate_nuscenes({"s": gt}, {"s": pred}, {"s": np.zeros(3)}, NuScenesConfig(class_range={"car": 50.0}))
    assert m.num_gt[0] == 1 and m.num_pred[0] == 1
    np.testing.assert_allclose(m.ap[0], [0.0, 0.0, 1.0, 1.0])
    assert m.tp_errors[0, TP_METRICS.index("trans_err")] == pytest.approx(1.0)


def test_orientation_error_barrier_half_turn_and_cone_not_applicable():
    """A heading off by pi - 0.2: AOE pi - 0.2 for a car, 0.2 for a barrier (period pi); n/a for a cone."""
    yaw = math.pi - 0.2
    names = ["car", "barrier", "traffic_cone"]
    gt = _sample([[i * 5.0, 0, 0, 2, 1, 1, 0, 0, 0] for i in range(3)], names)
    pred = _sample([[i * 5.0, 0, 0, 2, 1, 1, yaw, 0, 0] for i in range(3)], names, [0.9, 0.8, 0.7])
    m = evaluate_nuscenes(
        {"s": gt}, {"s": pred}, {"s": np.zeros(3)}, NuScenesConfig(class_range={n: 30.0 for n in names})
    )
    aoe = m.tp_errors[:, TP_METRICS.index("orient_err")]
    np.testing.assert_allclose(aoe[:2], [math.pi - 0.2, 0.2], atol=1e-9)
    assert math.isnan(aoe[2])


def test_errors_name_the_problem():
    gt = {"s": _sample([[0.0, 0, 0, 1, 1, 1, 0, 0, 0]], ["car"])}
    with pytest.raises(ValueError, match="missing"):
        evaluate_nuscenes(gt, {}, {"s": np.zeros(3)})
    with pytest.raises(ValueError, match="unknown detection names"):
        evaluate_nuscenes(gt, {"s": _sample([[0.0, 0, 0, 1, 1, 1, 0, 0, 0]], ["Car"], [0.5])}, {"s": np.zeros(3)})
    with pytest.raises(ValueError, match="at most 500"):
        evaluate_nuscenes(
            gt,
            {"s": _sample(np.tile([0.0, 0, 0, 1, 1, 1, 0, 0, 0], (501, 1)), ["car"] * 501, np.linspace(0, 1, 501))},
            {"s": np.zeros(3)},
        )
    with pytest.raises(ValueError, match="tp_threshold"):
        NuScenesConfig(tp_threshold=3.0)
    with pytest.raises(ValueError, match="positive"):
        NuScenesBoxes([[0.0, 0, 0, 0, 1, 1, 0, 0, 0]], ["car"])


def test_report_tables():
    gt, pred, ego, racks = generated_scenes(5, num_samples=4)
    m = evaluate_nuscenes(gt, pred, ego, bike_racks=racks)
    md = m.to_markdown()
    assert md.count("\n|") == len(NUSCENES_CLASSES) + 2  # separator + classes + mean row
    assert f"NDS {m.nds:.4f}" in md
    rows = m.to_csv().strip().splitlines()
    assert rows[0].startswith("class,GT,pred,AP@0.5m")
    assert float(rows[-1].split(",")[-1]) == m.nds
    car = rows[1].split(",")
    assert float(car[3]) == m.ap[0, 0]
