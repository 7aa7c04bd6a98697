"""Scoring a detector's predictions: the metric adapters on real frames (KITTI, nuScenes) and generated ones,
and the chance-level baseline."""

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from largekernel3d.training.det_baselines import class_box_statistics, random_box_predictions
from largekernel3d.training.det_evaluation import FramePrediction, resolve_metric, score_predictions

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
EVAL = {"iou_threshold": None, "distance_thresholds": [0.5, 1.0, 2.0, 4.0]}


def _as_predictions(frames, shift=0.0, seed=0):
    """Each frame's ground truth as its detections (centres moved by ``shift`` metres along x), random scores."""
    rng = np.random.default_rng(seed)
    out = []
    for f in frames:
        boxes = f.boxes.copy()
        boxes[:, 0] += shift
        meta = dict(f.metadata, difficulty=f.difficulty, num_lidar_points=f.num_lidar_points, attributes=f.attributes)
        out.append(
            FramePrediction(
                f.name,
                boxes,
                rng.uniform(0.2, 1, len(boxes)).astype(np.float32),
                f.labels.copy(),
                f.boxes.copy(),
                f.labels.copy(),
                meta,
            )
        )
    return out


@pytest.fixture(scope="module")
def generated():
    from largekernel3d.data.detection.synthetic import LidarSpec, SyntheticLidarDataset

    ds = SyntheticLidarDataset(3, seed=5, spec=LidarSpec(beams=16))
    return ds, [ds[i] for i in range(3)]


def test_generic_ap_of_the_ground_truth_is_one_and_of_far_boxes_zero(generated):
    ds, frames = generated
    perfect = score_predictions(_as_predictions(frames), ds.class_names, "generic", EVAL)
    assert perfect.score == pytest.approx(1.0) and perfect.score_name == "mAP"
    present = {ds.class_names[i] for f in frames for i in f.labels}
    assert all(perfect.per_class_ap[c] == pytest.approx(1.0) for c in present)
    far = score_predictions(_as_predictions(frames, shift=5.0), ds.class_names, "generic", EVAL)
    assert far.score < 0.05
    by_iou = score_predictions(
        _as_predictions(frames, shift=0.3), ds.class_names, "generic", dict(EVAL, iou_threshold=0.95)
    )
    assert by_iou.score < perfect.score


def test_chance_baseline_follows_the_class_statistics(generated):
    ds, frames = generated
    stats = class_box_statistics(frames, ds.num_classes)
    counts = np.array([[np.sum(f.labels == c) for c in range(ds.num_classes)] for f in frames]).mean(axis=0)
    np.testing.assert_allclose(stats.boxes_per_frame, counts)
    preds = random_box_predictions(_as_predictions(frames), stats, [-20, -20, -3, 20, 20, 1], seed=1)
    for p in preds:
        for c in range(ds.num_classes):
            assert np.sum(p.labels == c) == int(round(stats.boxes_per_frame[c]))
        assert (np.abs(p.boxes[:, :2]) <= 20).all()
        car = p.boxes[p.labels == 0]
        if len(car):
            np.testing.assert_allclose(car[:, 3:6], np.tile(stats.mean_size[0], (len(car), 1)), rtol=1e-5)
    chance = score_predictions(preds, ds.class_names, "generic", EVAL)
    assert chance.score < 0.2


def test_metric_is_chosen_by_dataset():
    assert [resolve_metric("auto", d) for d in ("kitti", "nuscenes", "pandaset", "synthetic")] == [
        "kitti",
        "nuscenes",
        "generic",
        "generic",
    ]
    assert resolve_metric("generic", "kitti") == "generic"
    with pytest.raises(ValueError, match="metric must be"):
        score_predictions([], ["Car"], "coco", EVAL)


def test_kitti_adapter_on_real_frames():
    if not (SHARED / "kitti" / "training").is_dir():
        pytest.skip("../shared/data/kitti is not present")
    from largekernel3d.data.detection import KittiDetection

    ds = KittiDetection(SHARED / "kitti" / "training" / "..")
    frames = [ds[i] for i in range(len(ds))]
    perfect = score_predictions(_as_predictions(frames), ds.class_names, "kitti", EVAL)
    moved = score_predictions(_as_predictions(frames, shift=1.5), ds.class_names, "kitti", EVAL)
    assert perfect.score_name == "moderate 3D mAP"
    assert perfect.score > 0 and moved.score == 0.0
    assert "Car" in perfect.result.to_markdown()


def test_nuscenes_adapter_on_a_real_scene():
    root = SHARED / "nuscenes" / "mini_scene0523"
    if not root.is_dir():
        pytest.skip("../shared/data/nuscenes/mini_scene0523 is not present")
    from largekernel3d.data.detection import NuScenesDetection

    ds = NuScenesDetection(root, version="v1.0-mini", backend="json")
    frames = [ds[i] for i in range(0, len(ds), 8)]
    predictions = _as_predictions(frames)
    for p in predictions:  # detections of the boxes the benchmark counts (it drops boxes without any point)
        seen = p.metadata["num_lidar_points"] + np.asarray(p.metadata["num_radar_points"]) > 0
        p.boxes, p.scores, p.labels = p.boxes[seen], p.scores[seen], p.labels[seen]
    perfect = score_predictions(predictions, ds.class_names, "nuscenes", EVAL)
    result = perfect.result
    assert perfect.score_name == "NDS" and 0 < perfect.score <= 1
    counted = [c for c, n in zip(result.class_names, result.num_gt) if n > 0]
    assert len(counted) >= 5
    assert all(perfect.per_class_ap[c] == pytest.approx(1.0) for c in counted)
    assert result.mean_tp_errors["trans_err"] == pytest.approx(0.0, abs=1e-6)
    moved = score_predictions(_as_predictions(frames, shift=6.0), ds.class_names, "nuscenes", EVAL)
    assert moved.score < 0.01 and max(moved.per_class_ap.values()) < 0.01  # barriers in a row: a moved box
    # can land on a neighbour
    assert replace(perfect, score=0.5).summary().startswith("NDS 50.0")
