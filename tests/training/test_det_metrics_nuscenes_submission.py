"""LiDAR -> global transform and the nuScenes results file: against the devkit's ``Box`` transforms
(pyquaternion) and scipy's rotations, and read back by the devkit's own loader classes."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from largekernel3d.data.detection.poses import quaternion_to_matrix
from largekernel3d.training.detection_metrics import NuScenesBoxes, SensorPose, lidar_to_global
from largekernel3d.training.detection_metrics.nuscenes_boxes import matrix_to_quaternion
from largekernel3d.training.detection_metrics.nuscenes_submission import default_attribute, to_nuscenes_submission


def _random_unit_quaternion(rng, tilt):
    """A rotation mostly about z, tilted by up to ``tilt`` radians about a random horizontal axis."""
    yaw = rng.uniform(-math.pi, math.pi)
    axis = np.array([math.cos(rng.uniform(0, 2 * math.pi)), math.sin(rng.uniform(0, 2 * math.pi)), 0.0])
    axis /= np.linalg.norm(axis)
    a = rng.uniform(-tilt, tilt)
    q_tilt = np.array([math.cos(a / 2), *(math.sin(a / 2) * axis)])
    q_yaw = np.array([math.cos(yaw / 2), 0, 0, math.sin(yaw / 2)])
    w1, x1, y1, z1 = q_tilt
    w2, x2, y2, z2 = q_yaw
    return np.array(
        [
            w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2,
            w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2,
            w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2,
            w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2,
        ]
    )


def _records(rng):
    """A ``calibrated_sensor`` and an ``ego_pose`` record, both slightly tilted."""
    return (
        {"rotation": _random_unit_quaternion(rng, 0.05).tolist(), "translation": rng.uniform(-1, 1, 3).tolist()},
        {"rotation": _random_unit_quaternion(rng, 0.03).tolist(), "translation": rng.uniform(-800, 800, 3).tolist()},
    )


def _pose(rng):
    return SensorPose.from_records(*_records(rng))


def _lidar_boxes(rng, n):
    return np.concatenate(
        [
            rng.uniform(-50, 50, (n, 2)),
            rng.uniform(-2, 1, (n, 1)),
            rng.uniform(0.5, 6, (n, 3)),
            rng.uniform(-math.pi, math.pi, (n, 1)),
            rng.normal(0, 4, (n, 2)),
        ],
        axis=1,
    )


def test_lidar_to_global_against_scipy_rotations():
    """``R(q_g) = R_e R_c R_z(yaw)``, centre ``R_e (R_c c + t_c) + t_e``, velocity ``(R_e R_c v)_xy``,
    yaw the heading of the rotated x axis; rotations from scipy (scalar-last quaternions)."""
    rotation_cls = pytest.importorskip("scipy.spatial.transform").Rotation
    rng = np.random.default_rng(0)
    cs, ego = _records(rng)
    pose = SensorPose.from_records(cs, ego)
    boxes = _lidar_boxes(rng, 30)
    out, q = lidar_to_global(boxes, pose)
    r_c = rotation_cls.from_quat(np.roll(cs["rotation"], -1)).as_matrix()
    r_e = rotation_cls.from_quat(np.roll(ego["rotation"], -1)).as_matrix()
    for i, b in enumerate(boxes):
        r_box = r_e @ r_c @ rotation_cls.from_euler("z", b[6]).as_matrix()
        np.testing.assert_allclose(quaternion_to_matrix(q[i]), r_box, atol=1e-12)
        np.testing.assert_allclose(np.linalg.norm(q[i]), 1.0, atol=1e-12)
        np.testing.assert_allclose(
            out[i, :3], r_e @ (r_c @ b[:3] + np.asarray(cs["translation"])) + np.asarray(ego["translation"]), atol=1e-9
        )
        np.testing.assert_allclose(out[i, 7:9], (r_e @ r_c @ np.array([b[7], b[8], 0.0]))[:2], atol=1e-12)
        assert out[i, 6] == pytest.approx(math.atan2(r_box[1, 0], r_box[0, 0]), abs=1e-12)
    np.testing.assert_array_equal(out[:, 3:6], boxes[:, 3:6])


def test_matrix_to_quaternion_every_branch():
    """Random rotations and ones near half turns about x, y, z (where w is small and another component has
    to lead): the quaternion's matrix is the input, and w >= 0 (scipy's quaternion up to sign)."""
    rotation_cls = pytest.importorskip("scipy.spatial.transform").Rotation
    rng = np.random.default_rng(4)
    rotations = list(rotation_cls.random(20, random_state=5).as_matrix())
    for axis in np.eye(3):
        rotations.append(rotation_cls.from_rotvec((math.pi - 0.01) * axis).as_matrix())
    for r in rotations:
        r = r @ rotation_cls.from_rotvec(rng.normal(0, 1e-3, 3)).as_matrix()
        q = matrix_to_quaternion(r)
        assert q[0] >= 0
        np.testing.assert_allclose(quaternion_to_matrix(q), r, atol=1e-12)
        ref = np.roll(rotation_cls.from_matrix(r).as_quat(), 1)
        np.testing.assert_allclose(q, ref * np.sign(ref[0]), atol=1e-12)


def test_submission_matches_the_devkit_box_transform(tmp_path):
    """Each record equals the devkit's ``Box`` moved by ``rotate(cs) translate(cs) rotate(pose) translate(pose)``
    (the conversion OpenPCDet and CenterPoint use), and the devkit's ``DetectionBox`` reads the file."""
    pytest.importorskip("pyquaternion")
    data_classes = pytest.importorskip("nuscenes.utils.data_classes")
    from nuscenes.eval.common.data_classes import EvalBoxes
    from nuscenes.eval.detection.data_classes import DetectionBox
    from pyquaternion import Quaternion

    rng = np.random.default_rng(1)
    names = ["car", "pedestrian", "bicycle", "barrier", "bus", "traffic_cone"]
    dets, poses, records = {}, {}, {}
    for s in range(3):
        boxes = _lidar_boxes(rng, 12)
        dets[f"t{s}"] = NuScenesBoxes(boxes, [names[i % 6] for i in range(12)], scores=rng.uniform(0, 1, 12))
        records[f"t{s}"] = _records(rng)
        poses[f"t{s}"] = SensorPose.from_records(*records[f"t{s}"])
    path = tmp_path / "results.json"
    sub = to_nuscenes_submission(dets, poses, path=path)
    assert json.loads(path.read_text()) == sub
    loaded = EvalBoxes.deserialize(sub["results"], DetectionBox)  # the devkit's checks pass
    assert len(loaded.all) == 36
    for token, d in dets.items():
        cs, ego = records[token]
        rows = sub["results"][token]
        order = np.argsort(-d.scores)
        assert [r["detection_score"] for r in rows] == d.scores[order].tolist()
        for r, i in zip(rows, order):
            b = d.boxes[i]
            box = data_classes.Box(
                b[:3], [b[4], b[3], b[5]], Quaternion(axis=[0, 0, 1], radians=b[6]), velocity=(b[7], b[8], 0.0)
            )
            box.rotate(Quaternion(cs["rotation"]))
            box.translate(np.array(cs["translation"]))
            box.rotate(Quaternion(ego["rotation"]))
            box.translate(np.array(ego["translation"]))
            np.testing.assert_allclose(r["translation"], box.center, atol=1e-9)
            np.testing.assert_allclose(r["size"], box.wlh, atol=0)
            q = np.asarray(r["rotation"])
            sign = 1.0 if np.dot(q, box.orientation.elements) >= 0 else -1.0
            np.testing.assert_allclose(sign * q, box.orientation.elements, atol=1e-12)
            np.testing.assert_allclose(r["velocity"], box.velocity[:2], atol=1e-12)
            assert r["attribute_name"] == default_attribute(d.names[i], float(np.hypot(*box.velocity[:2])))


def test_submission_limits_and_checks():
    rng = np.random.default_rng(2)
    pose = _pose(rng)
    d = NuScenesBoxes(_lidar_boxes(rng, 40), ["car"] * 40, scores=rng.uniform(0, 1, 40))
    sub = to_nuscenes_submission({"t": d}, {"t": pose}, max_boxes_per_sample=25)
    kept = [r["detection_score"] for r in sub["results"]["t"]]
    assert kept == sorted(d.scores.tolist(), reverse=True)[:25]
    with pytest.raises(ValueError, match="poses lacks"):
        to_nuscenes_submission({"t": d}, {})
    with pytest.raises(ValueError, match="velocities"):
        to_nuscenes_submission({"t": NuScenesBoxes(d.boxes[:, :7], d.names, scores=d.scores)}, {"t": pose})
    sheared = np.eye(4)
    sheared[0, 1] = 0.1
    with pytest.raises(ValueError, match="rotation"):
        SensorPose(sheared, np.eye(4))


def test_default_attributes():
    assert default_attribute("car", 3.0) == "vehicle.moving"
    assert default_attribute("car", 0.1) == "vehicle.parked"
    assert default_attribute("bus", 0.0) == "vehicle.stopped"
    assert default_attribute("bicycle", 1.0) == "cycle.with_rider"
    assert default_attribute("motorcycle", 0.0) == "cycle.without_rider"
    assert default_attribute("pedestrian", 1.0) == "pedestrian.moving"
    assert default_attribute("pedestrian", float("nan")) == "pedestrian.standing"
    assert default_attribute("barrier", 5.0) == ""
    with pytest.raises(ValueError, match="unknown detection name"):
        default_attribute("Car", 0.0)
