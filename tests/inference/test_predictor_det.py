"""DetectionPredictor: the checkpoint's detector on raw points equals CenterPoint.predict_points, column
handling, windows over a long scan, KITTI text round trip, and the task check."""

import numpy as np
import pytest
import torch

from largekernel3d.inference import DetectionPredictor, Predictor, SegmentationPredictor, kitti_lines


@pytest.fixture(scope="module")
def predictor(det_checkpoint):
    return Predictor.from_checkpoint(det_checkpoint, device="cpu")


def frame_points(seed=0, n=6000):
    rng = np.random.default_rng(seed)
    xyz = np.c_[rng.uniform(-12, 12, (n, 2)), rng.uniform(-2.5, 0.5, n)]
    return xyz, rng.uniform(0, 1, n)


def test_predict_equals_the_model_on_the_same_points(predictor):
    assert isinstance(predictor, DetectionPredictor) and predictor.point_features == ("x", "y", "z", "intensity")
    xyz, inten = frame_points()
    got = predictor.predict(xyz, {"intensity": inten})
    (ref,) = predictor.model.predict_points([torch.from_numpy(np.c_[xyz, inten].astype(np.float32))])
    np.testing.assert_allclose(got.boxes, ref.boxes.double().numpy(), atol=1e-5)
    np.testing.assert_allclose(got.scores, ref.scores.numpy(), atol=1e-6)
    assert got.points_in_range == len(xyz) and got.num_voxels > 0
    same = predictor.predict(np.c_[xyz, inten])  # full [N, C] table
    np.testing.assert_allclose(same.scores, got.scores)
    with pytest.raises(ValueError, match="not columns of this model"):
        predictor.predict(xyz, {"ring": inten})


def test_windows_cover_a_long_scan(det_checkpoint):
    win = DetectionPredictor.from_checkpoint(det_checkpoint, device="cpu", windows=True, overlap=6.0)
    a, ia = frame_points(1)
    b, ib = frame_points(2)
    xyz = np.r_[a, b + [60.0, 0, 0]]  # two frames 60 m apart: 84 m long
    got = win.predict(xyz, {"intensity": np.r_[ia, ib]})
    assert got.num_windows == 4  # ceil((84 - 6) / (25.6 - 6)) windows in x
    assert got.points_in_range >= len(xyz)  # every point seen at least once
    if len(got.boxes):
        assert (got.boxes[:, 0] > xyz[:, 0].min() - 13).all() and (got.boxes[:, 0] < xyz[:, 0].max() + 13).all()


def test_kitti_lines_round_trip_through_a_real_calibration(shared_data):
    from largekernel3d.data.detection.kitti import KittiCalib, camera_boxes_to_lidar

    calib = KittiCalib.from_file(shared_data / "kitti/training/calib/000001.txt")
    rng = np.random.default_rng(0)
    boxes = np.c_[
        rng.uniform(10, 40, (5, 1)),
        rng.uniform(-4, 4, (5, 1)),
        rng.uniform(-1.5, 0, (5, 1)),
        rng.uniform(1, 4, (5, 3)),
        rng.uniform(-3, 3, (5, 1)),
    ]
    lines = kitti_lines(boxes, np.linspace(0.9, 0.5, 5), ["Car", "Pedestrian", "Car", "Cyclist", "Car"], calib)
    fields = np.array([line.split()[1:] for line in lines], dtype=np.float64)
    assert [line.split()[0] for line in lines][:2] == ["Car", "Pedestrian"] and fields.shape == (5, 15)
    back = camera_boxes_to_lidar(fields[:, 10:13], fields[:, 7:10], fields[:, 13], calib)
    np.testing.assert_allclose(back[:, :6], boxes[:, :6], atol=2e-4)  # 4 decimals written
    np.testing.assert_allclose(np.cos(back[:, 6] - boxes[:, 6]), 1.0, atol=1e-6)
    np.testing.assert_allclose(fields[:, 14], np.linspace(0.9, 0.5, 5))
    # boxes behind the camera or beside the image are not KITTI objects: left out with a calibration, kept without
    away = np.array([[-12.0, 0.0, -1.0, 4.0, 1.8, 1.5, 0.0], [3.0, 25.0, -1.0, 4.0, 1.8, 1.5, 0.0]])
    both = np.r_[boxes[:1], away]
    kept = kitti_lines(both, np.array([0.9, 0.8, 0.7]), ["Car"] * 3, calib)
    assert len(kept) == 1 and kept[0] == lines[0]
    assert len(kitti_lines(both, np.array([0.9, 0.8, 0.7]), ["Car"] * 3)) == 3  # nominal frame: every box


def test_a_detection_checkpoint_is_refused_for_segmentation(det_checkpoint):
    with pytest.raises(ValueError, match="'det' model"):
        SegmentationPredictor.from_checkpoint(det_checkpoint, device="cpu")
