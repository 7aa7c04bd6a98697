"""PandaSet reader: sequence 002 against MANIFEST.json (points per sensor, points in cuboids, twins), the
box convention checked on the points and on the motion, semseg, the temporal split and bad input."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from largekernel3d.boxes import points_in_boxes, points_in_boxes_index, wrap_angle
from largekernel3d.data.detection.classes import PANDASET_LABEL_TO_CLASS, PANDASET_LABELS
from largekernel3d.data.detection.pandaset import PandaSetDetection, split_frames_temporal

pd = pytest.importorskip("pandas")

#: every PandaSet label as its own class: the reader then keeps every cuboid
ALL_LABELS = {label: label for label in PANDASET_LABELS}


@pytest.fixture
def seq(shared_data: Path) -> Path:
    root = shared_data / "pandaset" / "002"
    if not (root / "lidar" / "00.pkl.gz").is_file():
        pytest.skip("shared PandaSet sequence 002 absent")
    return root


def _manifest(shared_data: Path, frame: int) -> dict:
    return json.loads((shared_data / "MANIFEST.json").read_text())["load_checks"][f"pandaset/002/{frame:02d}"]


def test_points_per_sensor(seq: Path, shared_data: Path) -> None:
    expect = _manifest(shared_data, 0)["lidar"]["n_points_by_sensor"]
    raw = pd.read_pickle(seq / "lidar" / "00.pkl.gz")
    for sensor, n in ((0, expect["0"]), (1, expect["1"]), (None, expect["0"] + expect["1"])):
        frame = PandaSetDetection(seq, sensor=sensor, frames=[0])[0]
        assert frame.num_points == n and frame.name == "002/00"
        assert frame.point_features == ("x", "y", "z", "intensity")
        mask = np.ones(len(raw), bool) if sensor is None else raw["d"].to_numpy() == sensor
        np.testing.assert_array_equal(frame.points[:, 3], raw["i"].to_numpy()[mask].astype(np.float32))
        assert frame.point_labels.shape == (n,)
        assert frame.point_labels.min() >= 1 and frame.point_labels.max() <= 42


def test_points_in_cuboids_match_manifest(seq: Path, shared_data: Path) -> None:
    """Every cuboid (twins kept), all points, frames 00 and 07: MANIFEST's total of points inside cuboids and
    its number of empty cuboids (counted in the world frame with float64). Our points and boxes are float32
    in the LiDAR frame, so a point lying within ~1e-5 m of a face can change sides: the total may differ
    by a handful of points (<= 3) and the per-box counts by at most 2 from a float64 world-frame recount."""
    ds = PandaSetDetection(
        seq, sensor=None, dedupe_twins=False, classes=sorted(ALL_LABELS), class_map=ALL_LABELS, frames=[0, 7]
    )
    for frame, k in zip((ds[0], ds[1]), (0, 7), strict=False):
        expect = _manifest(shared_data, k)["cuboids"]
        assert frame.num_boxes == expect["n_cuboids"]
        counts = points_in_boxes(frame.points, frame.boxes).sum(axis=0)
        assert abs(int(counts.sum()) - expect["points_in_cuboids_total"]) <= 3
        assert int((counts == 0).sum()) == expect["n_cuboids_with_zero_points"]
        # the README's world-frame reading (length along +y at yaw 0, i.e. heading yaw + pi/2 from +x)
        raw = pd.read_pickle(seq / "lidar" / f"{k:02d}.pkl.gz")
        cub = pd.read_pickle(seq / "annotations" / "cuboids" / f"{k:02d}.pkl.gz")
        world_boxes = np.column_stack(
            [
                cub["position.x"],
                cub["position.y"],
                cub["position.z"],
                cub["dimensions.y"],
                cub["dimensions.x"],
                cub["dimensions.z"],
                cub["yaw"] + np.pi / 2,
            ]
        )
        world = points_in_boxes(raw[["x", "y", "z"]].to_numpy(), world_boxes).sum(axis=0)
        assert np.abs(counts - world).max() <= 2
        if k == 0:
            car = np.array([lab == "Car" for lab in frame.metadata["pandaset_labels"]])
            assert abs(int(counts[car].sum()) - expect["car_points_documented_vs_dims_xy_swapped"][0]) <= 3
            swapped = frame.boxes[car][:, [0, 1, 2, 4, 3, 5, 6]]
            assert (
                abs(
                    int(points_in_boxes(frame.points, swapped).sum())
                    - expect["car_points_documented_vs_dims_xy_swapped"][1]
                )
                <= 3
            )


def test_twins_and_class_mapping(seq: Path, shared_data: Path) -> None:
    expect = _manifest(shared_data, 0)["cuboids"]
    full = PandaSetDetection(seq, frames=[0], classes=sorted(ALL_LABELS), class_map=ALL_LABELS)[0]
    names = full.metadata["pandaset_labels"]
    assert {n: names.count(n) for n in set(names)} == expect["by_label_without_sensor1_duplicates"]
    assert set(full.metadata["cuboid_sensor_id"].tolist()) <= {-1, 0}
    gt = PandaSetDetection(seq, frames=[0], sensor=1, classes=sorted(ALL_LABELS), class_map=ALL_LABELS)[0]
    by_sensor = expect["by_sensor_id"]
    assert gt.num_boxes == by_sensor["-1"] + by_sensor["1"]
    assert set(gt.metadata["cuboid_sensor_id"].tolist()) <= {-1, 1}
    default_ds = PandaSetDetection(seq, frames=[0])
    default = default_ds[0]
    mapped = [PANDASET_LABEL_TO_CLASS[n] for n in names]
    kept = [m for m in mapped if m is not None]
    assert [default_ds.class_names[k] for k in default.labels] == kept
    assert default.metadata["ignored_labels"] == [n for n, m in zip(names, mapped, strict=False) if m is None]
    cub = pd.read_pickle(seq / "annotations" / "cuboids" / "00.pkl.gz")
    values = {v for c in cub.columns if c.startswith("attributes.") for v in cub[c] if isinstance(v, str)}
    assert set(default.attributes) <= values | {""}
    assert {"Parked", "Moving"} <= set(default.attributes)


def test_semseg_cars_lie_in_car_boxes(seq: Path) -> None:
    """Independent annotations agree: >= 98 % of the points labelled Car by the semantic segmentation lie
    in a Car box (Pandar64 points, frame 00)."""
    ds = PandaSetDetection(seq, frames=[0])
    frame = ds[0]
    assert frame.metadata["semseg_classes"][13] == "Car"
    car_points = frame.point_labels == 13
    inside = points_in_boxes_index(frame.points, frame.boxes[frame.labels == ds.class_names.index("Car")])
    assert (inside[car_points] >= 0).mean() >= 0.98


def test_moving_cars_advance_along_their_heading(seq: Path) -> None:
    """Frames 00 and 05: a moving car's displacement (its centre in frame 05 moved into frame 00) points
    along its box heading (cos >= 0.97), and its yaw is nearly the same in both frames."""
    ds = PandaSetDetection(seq, frames=[0, 5])
    a, b = ds[0], ds[1]
    b_to_a = a.metadata["world_to_frame"] @ np.linalg.inv(b.metadata["world_to_frame"])
    index_b = {t: n for n, t in enumerate(b.metadata["track_ids"])}
    checked = 0
    for m, track in enumerate(a.metadata["track_ids"]):
        if a.attributes[m] != "Moving" or track not in index_b:
            continue
        box_b = b.boxes[index_b[track]].astype(np.float64)
        centre_b = b_to_a[:3, :3] @ box_b[:3] + b_to_a[:3, 3]
        step = centre_b[:2] - a.boxes[m, :2]
        if np.linalg.norm(step) < 1.0:
            continue
        heading = np.array([np.cos(a.boxes[m, 6]), np.sin(a.boxes[m, 6])])
        assert step @ heading / np.linalg.norm(step) >= 0.97, track
        yaw_b = box_b[6] + np.arctan2(b_to_a[1, 0], b_to_a[0, 0])
        assert abs(wrap_angle(float(yaw_b - a.boxes[m, 6]))) < 0.1
        checked += 1
    assert checked >= 5


def test_sensor_frame_axes(seq: Path, shared_data: Path) -> None:
    """``gravity_aligned=False``: the sensor frame, checked against scipy's quaternion; with ``x_forward`` the
    forward LiDAR looks along +x (MANIFEST's azimuth percentiles, measured from the y-forward frame, minus
    90°)."""
    rotation = pytest.importorskip("scipy.spatial.transform").Rotation
    expect = _manifest(shared_data, 0)["lidar"]["sensor1_azimuth_deg_p2_p50_p98_lidar_frame"]
    frame = PandaSetDetection(seq, frames=[0], sensor=1, gravity_aligned=False)[0]
    pose = json.loads((seq / "lidar" / "poses.json").read_text())[0]
    q = pose["heading"]
    rot = rotation.from_quat([q["x"], q["y"], q["z"], q["w"]]).as_matrix()
    raw = pd.read_pickle(seq / "lidar" / "00.pkl.gz")
    world = raw[raw["d"] == 1][["x", "y", "z"]].to_numpy()
    lidar = (world - [pose["position"][c] for c in "xyz"]) @ rot
    np.testing.assert_allclose(
        frame.points[:, :3], np.column_stack([lidar[:, 1], -lidar[:, 0], lidar[:, 2]]), atol=1e-4
    )
    azimuth = np.degrees(np.arctan2(frame.points[:, 1], frame.points[:, 0]))
    np.testing.assert_allclose(np.percentile(azimuth, [2, 50, 98]), np.array(expect) - 90.0, atol=0.3)
    y_fwd = PandaSetDetection(seq, frames=[0], sensor=1, gravity_aligned=False, x_forward=False)[0]
    np.testing.assert_allclose(y_fwd.points[:, :3], lidar, atol=1e-4)
    upright = PandaSetDetection(seq, frames=[0], sensor=1)[0]
    assert (
        np.abs(upright.points[:, :3] - frame.points[:, :3]).max()
        < 0.05 * np.linalg.norm(frame.points[:, :3], axis=1).max()
    )


def test_split_frames_temporal() -> None:
    train, val = split_frames_temporal(30)
    assert train == list(range(20)) and val == list(range(22, 30))
    train, val = split_frames_temporal(10, val_fraction=0.3, gap=0)
    assert train == list(range(7)) and val == [7, 8, 9]
    for bad in ({"n": 0}, {"n": 3, "gap": 2}, {"n": 10, "val_fraction": 1.0}, {"n": 10, "gap": -1}):
        with pytest.raises(ValueError):
            split_frames_temporal(**{"val_fraction": 0.25, "gap": 2, **bad})


# ---------------------------------------------------------------------------------------- tmp sequences
def _make_sequence(seq: Path, root: Path, n_points: int = 4000) -> Path:
    """A one-frame copy of frame 00 (every 40th point, all cuboids) under ``root/002``."""
    out = root / "002"
    for sub in ("lidar", "annotations/cuboids", "annotations/semseg"):
        (out / sub).mkdir(parents=True)
    lidar = pd.read_pickle(seq / "lidar" / "00.pkl.gz")
    rows = np.arange(0, len(lidar), max(1, len(lidar) // n_points))
    lidar.iloc[rows].reset_index(drop=True).to_pickle(out / "lidar" / "00.pkl.gz")
    pd.read_pickle(seq / "annotations" / "semseg" / "00.pkl.gz").iloc[rows].reset_index(drop=True).to_pickle(
        out / "annotations" / "semseg" / "00.pkl.gz"
    )
    cuboids = pd.read_pickle(seq / "annotations" / "cuboids" / "00.pkl.gz")
    cuboids.to_pickle(out / "annotations" / "cuboids" / "00.pkl.gz")
    for name in ("poses.json", "timestamps.json"):
        (out / "lidar" / name).write_text((seq / "lidar" / name).read_text())
    return out


def test_dataset_root_with_sequences_and_empty_frame(seq: Path, tmp_path: Path) -> None:
    out = _make_sequence(seq, tmp_path)
    ds = PandaSetDetection(tmp_path)
    assert ds.frame_names == ["002/00"] and PandaSetDetection(tmp_path, sequences=["002"]).frame_names == ["002/00"]
    cub = pd.read_pickle(out / "annotations" / "cuboids" / "00.pkl.gz")
    cub.iloc[:0].to_pickle(out / "annotations" / "cuboids" / "00.pkl.gz")
    frame = ds[0]
    assert frame.boxes.shape == (0, 7) and frame.labels.shape == (0,) and frame.num_points > 0
    assert frame.metadata["timestamp"] == json.loads((seq / "lidar" / "timestamps.json").read_text())[0]


def test_bad_input(seq: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = _make_sequence(seq, tmp_path)
    ds = PandaSetDetection(out)
    cub_path = out / "annotations" / "cuboids" / "00.pkl.gz"
    cub = pd.read_pickle(cub_path)

    bad = cub.copy()
    bad.loc[3, "label"] = "Spaceship"
    bad.to_pickle(cub_path)
    with pytest.raises(ValueError, match=r"cuboids/00\.pkl\.gz.*unknown cuboid labels \['Spaceship'\]"):
        ds[0]
    bad = cub.copy()
    bad.loc[0, "yaw"] = np.nan  # row 0 is a Car with sensor_id -1: kept
    bad.to_pickle(cub_path)
    with pytest.raises(ValueError, match=r"cuboid rows \[0\].*non-finite"):
        ds[0]
    cub.drop(columns=["yaw"]).to_pickle(cub_path)
    with pytest.raises(ValueError, match=r"lacks the columns \['yaw'\]"):
        ds[0]
    cub_path.write_bytes(b"\x1f\x8b\x08\x00garbage")
    with pytest.raises(ValueError, match=r"cuboids/00\.pkl\.gz.*not a readable pickled DataFrame"):
        ds[0]
    cub_path.unlink()
    with pytest.raises(FileNotFoundError, match=r"cuboids/00\.pkl\.gz"):
        ds[0]
    cub.to_pickle(cub_path)
    assert ds[0].num_boxes > 0

    semseg = out / "annotations" / "semseg" / "00.pkl.gz"
    pd.read_pickle(semseg).iloc[:-3].to_pickle(semseg)
    with pytest.raises(ValueError, match=r"semseg/00\.pkl\.gz.*rows"):
        ds[0]
    assert PandaSetDetection(out, with_semseg=False)[0].point_labels is None
    semseg.unlink()

    poses = json.loads((out / "lidar" / "poses.json").read_text())
    (out / "lidar" / "poses.json").write_text(json.dumps(poses[:0]))
    with pytest.raises(ValueError, match=r"poses\.json.*0 poses"):
        PandaSetDetection(out)[0]
    poses[0]["heading"] = {"w": 0.0, "x": 0.0, "y": 0.0}
    (out / "lidar" / "poses.json").write_text(json.dumps(poses))
    with pytest.raises(ValueError, match=r"poses\.json.*heading"):
        PandaSetDetection(out)[0]

    with pytest.raises(ValueError, match="sensor"):
        PandaSetDetection(out, sensor=2)
    with pytest.raises(ValueError, match="frames"):
        PandaSetDetection(out, frames=[1])
    with pytest.raises(ValueError, match="Truck"):
        PandaSetDetection(out, class_map={"Car": "Truckk"})
    with pytest.raises(FileNotFoundError):
        PandaSetDetection(tmp_path / "empty_dir_that_does_not_exist")

    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(ImportError, match="pip install pandas"):
        PandaSetDetection(out)
