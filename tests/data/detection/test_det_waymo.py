"""Waymo frames as mmdet3d v1.x converts them (kitti_format): boxes from the bottom centre to our gravity centre,
points (x, y, z, tanh intensity, elongation), classes, filters and errors; the real mmdet3d fixture when present."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest

from largekernel3d.boxes import points_in_boxes
from largekernel3d.data.detection import WAYMO_CLASSES, WAYMO_POINT_FEATURES, WaymoInfoDetection


def _box_points(rng, centre, size, yaw, n):
    """``n`` points strictly inside the box with gravity centre ``centre``, ``size`` (l, w, h) and heading ``yaw``."""
    local = rng.uniform(-0.45, 0.45, (n, 3)) * np.asarray(size)
    c, s = np.cos(yaw), np.sin(yaw)
    xy = local[:, :2] @ np.array([[c, s], [-s, c]])
    return np.c_[xy, local[:, 2]] + np.asarray(centre)


def _write(tmp_path, instances, points, name="0000005.bin", ext="json", metainfo=None, ncols=6):
    root = tmp_path / "kitti_format"
    (root / "training" / "velodyne").mkdir(parents=True, exist_ok=True)
    points.astype("<f4").tofile(root / "training" / "velodyne" / name)
    info = {
        "metainfo": metainfo if metainfo is not None else {"dataset": "waymo", "info_version": "mmdet3d_v1.4"},
        "data_list": [
            {
                "sample_idx": 5,
                "timestamp": 1550083467346370,
                "context_name": "ctx",
                "ego2global": np.eye(4).tolist(),
                "lidar_points": {"lidar_path": name, "num_pts_feats": ncols},
                "instances": instances,
                "cam_sync_instances": instances[:1],
            }
        ],
    }
    path = root / f"waymo_infos_train.{ext}"
    if ext == "json":
        path.write_text(json.dumps(info))
    else:
        path.write_bytes(pickle.dumps(info))
    return path


def _scene(rng):
    """A car (bottom centre z = 0.2), a pedestrian, a cyclist with 2 points and a sign (-1), with points in the car and
    the pedestrian (placed in their true boxes) and random intensities up to 30."""
    car = dict(centre=(12.0, -3.0, 0.2 + 0.8), size=(4.5, 1.9, 1.6), yaw=0.7)
    ped = dict(centre=(-5.0, 4.0, -0.1 + 0.9), size=(0.8, 0.7, 1.8), yaw=-2.0)
    instances = [
        {"bbox_3d": [12.0, -3.0, 0.2, 4.5, 1.9, 1.6, 0.7], "bbox_label_3d": 0, "num_lidar_pts": 120},
        {"bbox_3d": [-5.0, 4.0, -0.1, 0.8, 0.7, 1.8, -2.0], "bbox_label_3d": 1, "num_lidar_pts": 40},
        {"bbox_3d": [30.0, 1.0, 0.0, 1.8, 0.6, 1.7, 0.0], "bbox_label_3d": 2, "num_lidar_pts": 2},
        {"bbox_3d": [8.0, 8.0, 2.0, 0.1, 0.8, 0.8, 0.0], "bbox_label_3d": -1, "num_lidar_pts": 9},
    ]
    xyz = np.concatenate([_box_points(rng, n=50, **car), _box_points(rng, n=30, **ped)])
    xyz = np.concatenate([xyz, rng.uniform(-40, 40, (40, 3))])
    feats = np.c_[rng.uniform(0, 30, len(xyz)), rng.uniform(0, 1.5, len(xyz)), np.full(len(xyz), 1.55e15)]
    return instances, np.c_[xyz, feats], (car, ped)


@pytest.mark.parametrize("ext", ["json", "pkl"])
def test_boxes_move_to_the_gravity_centre_and_contain_their_points(tmp_path, ext):
    rng = np.random.default_rng(0)
    instances, points, (car, ped) = _scene(rng)
    frame = WaymoInfoDetection(_write(tmp_path, instances, points, ext=ext))[0]
    assert frame.name == "ctx/5" and frame.point_features == WAYMO_POINT_FEATURES
    assert frame.points.shape == (len(points), 5)
    np.testing.assert_allclose(frame.points[:, :3], points[:, :3].astype(np.float32))
    np.testing.assert_allclose(frame.points[:, 3], np.tanh(points[:, 3].astype(np.float32)), rtol=1e-6)
    np.testing.assert_allclose(frame.points[:, 4], points[:, 4].astype(np.float32))
    assert frame.labels.tolist() == [0, 1, 2]  # the sign (-1) is not a Waymo class
    np.testing.assert_allclose(frame.boxes[0, :3], car["centre"], atol=1e-6)  # z: 0.2 + 1.6 / 2
    np.testing.assert_allclose(frame.boxes[1, :3], ped["centre"], atol=1e-6)
    inside = points_in_boxes(frame.points[:, :3].astype(np.float64), frame.boxes.astype(np.float64))
    assert inside[:50, 0].all() and inside[50:80, 1].all()
    bottom_read = frame.boxes.copy()  # read as if z were the centre: the upper halves fall out of the boxes
    bottom_read[:, 2] -= bottom_read[:, 5] / 2
    assert not points_in_boxes(frame.points[:50, :3].astype(np.float64), bottom_read[:1].astype(np.float64)).all()
    assert frame.num_lidar_points.tolist() == [120, 40, 2]
    assert frame.metadata["timestamp"] == 1550083467346370 and frame.metadata["context_name"] == "ctx"


def test_classes_min_points_instances_and_raw_intensity(tmp_path):
    rng = np.random.default_rng(1)
    instances, points, _ = _scene(rng)
    path = _write(tmp_path, instances, points)
    assert WaymoInfoDetection(path, min_points=5)[0].labels.tolist() == [0, 1]  # the 2-point cyclist dropped
    peds = WaymoInfoDetection(path, classes=("Pedestrian",))[0]
    assert peds.labels.tolist() == [0] and peds.boxes[0, 0] == pytest.approx(-5.0)
    assert WaymoInfoDetection(path, instances="cam_sync_instances")[0].labels.tolist() == [0]
    raw = WaymoInfoDetection(path, tanh_intensity=False)[0]
    np.testing.assert_allclose(raw.points[:, 3], points[:, 3].astype(np.float32))
    named = _write(tmp_path / "named", instances, points, metainfo={"categories": {"Pedestrian": 0, "Sign": -1}})
    assert WaymoInfoDetection(named)[0].labels.tolist() == [1]  # the info's own names: id 0 is a pedestrian here
    assert WAYMO_CLASSES == ("Car", "Pedestrian", "Cyclist")


def test_errors_name_the_problem(tmp_path):
    rng = np.random.default_rng(2)
    instances, points, _ = _scene(rng)
    path = _write(tmp_path, instances, points)
    with pytest.raises(ValueError, match="instances must be one of"):
        WaymoInfoDetection(path, instances="camera")
    with pytest.raises(ValueError, match="min_points"):
        WaymoInfoDetection(path, min_points=-1)
    with pytest.raises(ValueError, match="Truck"):
        WaymoInfoDetection(path, classes=("Car", "Truck"))
    (tmp_path / "kitti_format" / "training" / "velodyne" / "0000005.bin").unlink()
    with pytest.raises(FileNotFoundError, match="0000005.bin.*not found"):
        WaymoInfoDetection(path)[0]
    short = _write(tmp_path / "short", instances, points[:, :4], ncols=4)
    with pytest.raises(ValueError, match="num_pts_feats=4"):
        WaymoInfoDetection(short)[0]
    flat = [dict(instances[0], bbox_3d=[1.0, 2.0, 0.0, 4.0, 0.0, 1.5, 0.0])]
    with pytest.raises(ValueError, match="non-positive length, width or height"):
        WaymoInfoDetection(_write(tmp_path / "flat", flat, points))[0]
    (tmp_path / "bad.json").write_text(json.dumps({"data_list": []}))
    with pytest.raises(ValueError, match="not an mmdet3d v1.x info dict"):
        WaymoInfoDetection(tmp_path / "bad.json")


def test_mmdet3d_waymo_fixture(shared_data):
    """The two frames of mmdet3d's Waymo test fixture: 800 points each, one Car whose stored bottom-centre z moves up
    by half its height; the JSON and the pickle agree."""
    root = shared_data / "waymo" / "mmdet3d_tiny" / "kitti_format"
    for split, raw_points in (("train", 309), ("val", 535)):
        info = json.loads((root / f"waymo_infos_{split}.json").read_text())["data_list"][0]
        stored = np.asarray(info["instances"][0]["bbox_3d"])
        frames = [WaymoInfoDetection(root / f"waymo_infos_{split}.{ext}")[0] for ext in ("json", "pkl")]
        for frame in frames:
            assert frame.points.shape == (800, 5) and frame.labels.tolist() == [0]
            assert frame.num_lidar_points.tolist() == [raw_points]
            np.testing.assert_allclose(frame.boxes[0, [0, 1, 3, 4, 5, 6]], stored[[0, 1, 3, 4, 5, 6]], rtol=1e-6)
            assert frame.boxes[0, 2] == pytest.approx(stored[2] + stored[5] / 2, abs=1e-5)
            raw = np.fromfile(root / "training" / "velodyne" / info["lidar_points"]["lidar_path"], "<f4").reshape(-1, 6)
            np.testing.assert_allclose(frame.points[:, 3], np.tanh(raw[:, 3]), rtol=1e-6)  # raw intensity up to 27
        np.testing.assert_array_equal(frames[0].points, frames[1].points)
