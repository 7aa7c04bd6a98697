"""nuScenes readers: the official tables (without and with the devkit), multi-sweep merging, velocities,
the mmdet3d info layout and bad input, on the shared scene-0523 and mmdet3d demo samples."""

from __future__ import annotations

import json
import pickle
import shutil
import sys
from pathlib import Path
from typing import Dict, List

import numpy as np
import pytest

from largekernel3d.boxes import points_in_boxes, wrap_angle
from largekernel3d.data.detection.classes import NUSCENES_CATEGORY_TO_CLASS, NUSCENES_CLASSES
from largekernel3d.data.detection.nuscenes import (
    NuScenesDetection,
    NuScenesInfoDetection,
    NuScenesTables,
    choose_backend,
    remove_close,
)
from largekernel3d.data.detection.poses import invert_pose, quaternion_to_matrix

VERSION = "v1.0-mini"


@pytest.fixture
def scene_root(shared_data: Path) -> Path:
    root = shared_data / "nuscenes" / "mini_scene0523"
    if not (root / VERSION / "sample.json").is_file():
        pytest.skip("shared nuScenes scene-0523 sample absent")
    return root


@pytest.fixture
def demo_dir(shared_data: Path) -> Path:
    root = shared_data / "nuscenes" / "mmdet3d_demo"
    if not root.is_dir():
        pytest.skip("shared nuScenes mmdet3d demo absent")
    return root


def _manifest(shared_data: Path) -> dict:
    return json.loads((shared_data / "MANIFEST.json").read_text())["load_checks"]


def _tables(root: Path) -> Dict[str, list]:
    return {p.stem: json.loads(p.read_text()) for p in (root / VERSION).glob("*.json")}


def _linked_copy(src: Path, dst: Path, replace: Dict[str, list] | None = None) -> Path:
    """``dst`` with symlinks to ``src``'s tables and samples; tables in ``replace`` written from records."""
    (dst / VERSION).mkdir(parents=True)
    (dst / "samples").symlink_to(src / "samples")
    for path in (src / VERSION).glob("*.json"):
        if replace and path.stem in replace:
            (dst / VERSION / path.name).write_text(json.dumps(replace[path.stem]))
        else:
            (dst / VERSION / path.name).symlink_to(path)
    return dst


def _devkit_root(src: Path, dst: Path) -> Path:
    """A folder the devkit's ``NuScenes`` loads: the shared tables plus stand-ins for the four it lacks
    (attribute names are made up, ``attribute.<i>``; the shared sample has no attribute table)."""
    _linked_copy(src, dst)
    anns = json.loads((src / VERSION / "sample_annotation.json").read_text())
    tokens = sorted({t for a in anns for t in a["attribute_tokens"]})
    extra = {
        "attribute": [{"token": t, "name": f"attribute.{i}", "description": ""} for i, t in enumerate(tokens)],
        "visibility": [{"token": str(i), "level": f"v{i}", "description": ""} for i in range(1, 5)],
    }
    log_token = json.loads((src / VERSION / "scene.json").read_text())[0]["log_token"]
    extra["log"] = [{"token": log_token, "logfile": "", "vehicle": "", "date_captured": "", "location": ""}]
    extra["map"] = [{"token": "map0", "log_tokens": [log_token], "category": "", "filename": ""}]
    for name, records in extra.items():
        (dst / VERSION / f"{name}.json").write_text(json.dumps(records))
    return dst


# --------------------------------------------------------------------------------------------- key frames
def test_tables_reader_loads_every_key_frame(scene_root: Path, shared_data: Path) -> None:
    manifest = _manifest(shared_data)
    ds = NuScenesDetection(scene_root, VERSION, backend="json")
    assert ds.backend == "json" and len(ds) == 40
    for i in (0, 13, 39):
        frame = ds[i]
        expect = manifest[f"nuscenes/mini_scene0523/{i:02d}"]
        assert frame.name == expect["sample_token"]
        assert frame.metadata["lidar_token"] == expect["lidar_sample_data_token"]
        assert frame.num_points == expect["n_points"]
        assert frame.point_features == ("x", "y", "z", "intensity", "time_lag")
        raw = np.fromfile(
            scene_root / Path(expect["file"]).relative_to("nuscenes/mini_scene0523"), dtype=np.float32
        ).reshape(-1, 5)
        np.testing.assert_array_equal(frame.points[:, :4], raw[:, :4])
        assert (frame.points[:, 4] == 0).all()
        by_category = expect["annotations_by_category"]
        expected_boxes = sum(n for c, n in by_category.items() if c in NUSCENES_CATEGORY_TO_CLASS)
        assert frame.boxes.shape == (expected_boxes, 9)
        assert frame.attributes is None  # the shared sample has no attribute table
        names = [NUSCENES_CLASSES[k] for k in frame.labels]
        assert names == [NUSCENES_CATEGORY_TO_CLASS[c] for c in frame.metadata["categories"]]


def test_num_lidar_points_recount(scene_root: Path) -> None:
    """The boxes hold the points the annotations record.

    Exactly: our centre and size with the annotation's full 3D rotation (the README's check, exact for all
    2,625 boxes). Our 7-value boxes keep only the heading; the boxes are upright in the global frame but the
    LiDAR is tilted by ~2° against it, so a box differs from the full one by a rotation of angle theta
    about its centre, which moves any point by at most ``e = 2 sin(theta/2) |half diagonal|``: the count
    must lie between the counts of our box shrunk and grown by ``e`` per face (no free tolerance).
    """
    ds = NuScenesDetection(scene_root, VERSION, backend="json")
    tables = ds.tables
    for i in (0, 21, 38):
        frame = ds[i]
        global_to_lidar = invert_pose(frame.metadata["ego_to_global"] @ frame.metadata["lidar_to_ego"])
        xyz = frame.points[:, :3].astype(np.float64)
        margins = []
        for m, token in enumerate(frame.metadata["annotation_tokens"]):
            ann = tables.get("sample_annotation", token)
            rot = global_to_lidar[:3, :3] @ quaternion_to_matrix(ann["rotation"])
            local = (xyz - frame.boxes[m, :3]) @ rot  # points in the full box frame
            half = frame.boxes[m, 3:6].astype(np.float64) / 2
            exact = int((np.abs(local) <= half).all(axis=1).sum())
            assert exact == frame.num_lidar_points[m] == ann["num_lidar_pts"], token
            yaw_rot = np.array(
                [
                    [np.cos(frame.boxes[m, 6]), -np.sin(frame.boxes[m, 6]), 0],
                    [np.sin(frame.boxes[m, 6]), np.cos(frame.boxes[m, 6]), 0],
                    [0, 0, 1],
                ]
            )
            theta = np.arccos(np.clip((np.trace(yaw_rot.T @ rot) - 1) / 2, -1, 1))
            assert theta < np.radians(3.5)
            margins.append(2 * np.sin(theta / 2) * np.linalg.norm(half) + 1e-4)
        margins = np.array(margins)[:, None]
        grown, shrunk = frame.boxes.copy(), frame.boxes.copy()
        grown[:, 3:6] += 2 * margins
        shrunk[:, 3:6] = np.maximum(shrunk[:, 3:6] - 2 * margins, 1e-3)
        upper = points_in_boxes(frame.points, grown).sum(axis=0)
        lower = points_in_boxes(frame.points, shrunk).sum(axis=0)
        assert (lower <= frame.num_lidar_points).all() and (frame.num_lidar_points <= upper).all()
        counts = points_in_boxes(frame.points, frame.boxes).sum(axis=0)
        assert (counts == frame.num_lidar_points).mean() > 0.6  # most boxes are still exact


def test_velocity_is_the_centred_displacement(scene_root: Path) -> None:
    """v(k) = (c(k+1) - c(k-1)) / (t(k+1) - t(k-1)) with the centres of frames k-1, k+1 (our boxes, moved to
    frame k through the poses): the devkit's rule, and the velocity rotated into the LiDAR frame."""
    ds = NuScenesDetection(scene_root, VERSION, backend="json")
    k = 20
    frames = [ds[j] for j in (k - 1, k, k + 1)]
    to_global = [f.metadata["ego_to_global"] @ f.metadata["lidar_to_ego"] for f in frames]
    mid = frames[1]
    valid = mid.metadata["velocity_valid"]
    assert valid.mean() > 0.9 and np.isfinite(mid.boxes).all()
    speeds = np.linalg.norm(mid.boxes[:, 7:9], axis=1)
    assert speeds.max() < 30.0
    index = [{t: n for n, t in enumerate(f.metadata["instance_tokens"])} for f in frames]
    checked, moving = 0, 0
    for m, inst in enumerate(mid.metadata["instance_tokens"]):
        if inst not in index[0] or inst not in index[2]:
            continue
        ends = []
        for j in (0, 2):
            centre = frames[j].boxes[index[j][inst], :3].astype(np.float64)
            ends.append(invert_pose(to_global[1]) @ to_global[j] @ np.append(centre, 1.0))
        dt = 1e-6 * (frames[2].metadata["timestamp"] - frames[0].metadata["timestamp"])
        expect = (ends[1][:3] - ends[0][:3]) / dt
        np.testing.assert_allclose(mid.boxes[m, 7:9], expect[:2], atol=2e-4)
        checked += 1
        moving += bool(np.linalg.norm(expect[:2]) > 2.0)
    assert checked > 30 and moving >= 1


def test_boxes_and_velocities_match_the_devkit(scene_root: Path, tmp_path: Path) -> None:
    """Against nuscenes-devkit: ``get_sample_data`` boxes in the sensor frame and ``box_velocity``; the devkit
    backend gives the same frames as the JSON tables; the category map is the devkit's."""
    pytest.importorskip("nuscenes.nuscenes")
    from nuscenes.eval.detection.utils import category_to_detection_name
    from pyquaternion import Quaternion

    root = _devkit_root(scene_root, tmp_path / "nus")
    assert choose_backend(root, VERSION) == "devkit" and choose_backend(scene_root, VERSION) == "json"
    dev = NuScenesDetection(root, VERSION)
    js = NuScenesDetection(root, VERSION, backend="json")
    assert dev.backend == "devkit" and dev.frame_names == js.frame_names
    nusc = dev.tables.nusc
    for i in (3, 26):
        fd, fj = dev[i], js[i]
        np.testing.assert_array_equal(fd.points, fj.points)
        np.testing.assert_allclose(fd.boxes, fj.boxes, atol=1e-5)
        assert fd.attributes == fj.attributes and any(fd.attributes)
        _, boxes, _ = nusc.get_sample_data(fd.metadata["lidar_token"])
        by_token = {b.token: b for b in boxes}
        sd = nusc.get("sample_data", fd.metadata["lidar_token"])
        cs = nusc.get("calibrated_sensor", sd["calibrated_sensor_token"])
        pose = nusc.get("ego_pose", sd["ego_pose_token"])
        for m, token in enumerate(fd.metadata["annotation_tokens"]):
            ref = by_token[token]
            np.testing.assert_allclose(fd.boxes[m, :3], ref.center, atol=2e-5)
            np.testing.assert_allclose(fd.boxes[m, 3:6], ref.wlh[[1, 0, 2]], atol=1e-6)
            rot = ref.orientation.rotation_matrix
            assert abs(wrap_angle(float(fd.boxes[m, 6]) - np.arctan2(rot[1, 0], rot[0, 0]))) < 1e-5
            # pyquaternion's yaw_pitch_roll uses 2(wz - xy) where the projected heading has 2(wz + xy): the two
            # differ by a term second order in the ~2° tilt.
            assert abs(wrap_angle(float(fd.boxes[m, 6]) - ref.orientation.yaw_pitch_roll[0])) < 2e-3
            velocity = nusc.box_velocity(token)
            if np.isfinite(velocity).all():
                v = Quaternion(cs["rotation"]).inverse.rotate(Quaternion(pose["rotation"]).inverse.rotate(velocity))
                np.testing.assert_allclose(fd.boxes[m, 7:9], v[:2], atol=1e-4)
                assert fd.metadata["velocity_valid"][m]
            else:
                assert not fd.metadata["velocity_valid"][m] and (fd.boxes[m, 7:9] == 0).all()
    categories = [c["name"] for c in nusc.category] + [
        "human.pedestrian.child",
        "human.pedestrian.police_officer",
        "human.pedestrian.stroller",
        "animal",
        "vehicle.bus.bendy",
        "vehicle.emergency.ambulance",
        "movable_object.pushable_pullable",
    ]
    for name in categories:
        assert NUSCENES_CATEGORY_TO_CLASS.get(name) == category_to_detection_name(name), name


def test_auto_backend_falls_back_to_the_tables(
    scene_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``auto`` takes the JSON reader when tables are missing (the shared sample) or the devkit does not import."""
    assert NuScenesDetection(scene_root, VERSION).backend == "json"
    root = _devkit_root(scene_root, tmp_path / "nus")
    monkeypatch.setitem(sys.modules, "nuscenes.nuscenes", None)
    assert choose_backend(root, VERSION) == "json"
    assert NuScenesDetection(root, VERSION).backend == "json"
    with pytest.raises(ImportError, match="pip install nuscenes-devkit"):
        NuScenesDetection(root, VERSION, backend="devkit")


# ----------------------------------------------------------------------------------------------------- sweeps
def _sweep_chain(tables: NuScenesTables, lidar_token: str) -> List[dict]:
    out, token = [], tables.get("sample_data", lidar_token)["prev"]
    while token:
        record = tables.get("sample_data", token)
        out.append(record)
        token = record["prev"]
    return out


def test_sweeps_bring_the_previous_key_frame_into_its_boxes(scene_root: Path) -> None:
    """Key frame k with the sweep window reaching key frame k-1 (the only LiDAR file on that chain in the
    shared sample; the other sweeps are skipped): the merged older points, moved into frame k, fill the
    annotations of sample k-1 exactly as their num_lidar_pts say (full-rotation boxes, as in the recount
    test) -- ego-motion compensation checked against the annotations. Key points come first, unchanged."""
    k = 12
    ds1 = NuScenesDetection(scene_root, VERSION, backend="json")
    key = ds1[k]
    chain = _sweep_chain(ds1.tables, key.metadata["lidar_token"])
    depth = next(n for n, rec in enumerate(chain) if rec["is_key_frame"]) + 1
    ds = NuScenesDetection(scene_root, VERSION, backend="json", nsweeps=depth + 1, missing_sweeps="skip")
    frame = ds[k]
    assert frame.metadata["sweeps"] == [chain[depth - 1]["token"]]
    assert len(frame.metadata["missing_sweeps"]) == depth - 1
    n_key = key.num_points
    np.testing.assert_array_equal(frame.points[:n_key], key.points)
    older = frame.points[n_key:]
    prev_raw = ds1[k - 1].points
    assert len(older) == len(remove_close(prev_raw, 1.0)) < len(prev_raw)
    lag = 1e-6 * (frame.metadata["timestamp"] - ds1[k - 1].metadata["timestamp"])
    np.testing.assert_allclose(older[:, 4], lag, rtol=1e-6)
    assert 0.3 < lag < 0.7
    np.testing.assert_array_equal(older[:, 3], remove_close(prev_raw, 1.0)[:, 3])
    # points of frame k-1, now in frame k -> global -> each annotation box of sample k-1
    to_global = frame.metadata["ego_to_global"] @ frame.metadata["lidar_to_ego"]
    xyz_global = older[:, :3].astype(np.float64) @ to_global[:3, :3].T + to_global[:3, 3]
    tables = ds.tables
    prev_sample = ds1[k - 1].name
    checked = 0
    for token in tables.annotation_tokens(prev_sample):
        ann = tables.get("sample_annotation", token)
        local = (xyz_global - ann["translation"]) @ quaternion_to_matrix(ann["rotation"])
        half = np.array(ann["size"])[[1, 0, 2]] / 2
        inside = int((np.abs(local) <= half).all(axis=1).sum())
        # the roof points removed from the sweep are never inside an annotated box
        assert inside == ann["num_lidar_pts"], token
        checked += ann["num_lidar_pts"] > 0
    assert checked > 20


def test_multisweep_matches_the_devkit(scene_root: Path, tmp_path: Path) -> None:
    """Sweep files written into a copy (real LiDAR points of neighbouring key frames, stored under the sweep
    records' names) merged by us and by the devkit's ``LidarPointCloud.from_file_multisweep``: the same
    points and time lags (the devkit also drops the key frame's roof points; we keep the key frame whole)."""
    pytest.importorskip("nuscenes.nuscenes")
    from nuscenes.utils.data_classes import LidarPointCloud

    root = _devkit_root(scene_root, tmp_path / "nus")
    ds = NuScenesDetection(root, VERSION, nsweeps=4)
    assert ds.backend == "devkit"
    k = 8
    key_token = ds.tables.key_lidar_token(ds.frame_names[k], "LIDAR_TOP")
    chain = _sweep_chain(ds.tables, key_token)[:3]
    donors = sorted((root / "samples" / "LIDAR_TOP").glob("*.pcd.bin"))
    with pytest.raises(FileNotFoundError, match="missing_sweeps='skip'"):
        ds[k]
    for n, record in enumerate(chain):
        path = root / record["filename"]
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(donors[(k + 5 + n) % len(donors)], path)
    frame = ds[k]
    assert len(frame.metadata["sweeps"]) == 3 and frame.metadata["missing_sweeps"] == []
    nusc = ds.tables.nusc
    pc, times = LidarPointCloud.from_file_multisweep(
        nusc, nusc.get("sample", frame.name), "LIDAR_TOP", "LIDAR_TOP", nsweeps=4, min_distance=1.0
    )
    ref = np.concatenate([pc.points.T, times.T], axis=1)
    n_key = int((frame.points[:, 4] == 0).sum())
    ours_key = remove_close(frame.points[:n_key], 1.0)
    ours = np.concatenate([ours_key, frame.points[n_key:]], axis=0)
    assert ours.shape == ref.shape
    np.testing.assert_allclose(ours[:, :4], ref[:, :4], atol=2e-4)
    np.testing.assert_allclose(ours[:, 4], ref[:, 4], atol=1e-5)
    lags = np.unique(frame.points[:, 4])
    assert len(lags) == 4 and lags[0] == 0 and 0 < lags[1] < lags[-1] < 0.25


# --------------------------------------------------------------------------------------------- info files
def test_info_reader_on_the_mmdet3d_demo(demo_dir: Path, shared_data: Path) -> None:
    """69 instances, one of no detection class; the pkl and its JSON transcription agree; the recount
    equals num_lidar_pts for exactly the 61 boxes MANIFEST finds (z is the box centre)."""
    manifest = _manifest(shared_data)["nuscenes/mmdet3d_demo"]
    name = "n015-2018-07-24-11-22-45+0800"
    from_json = NuScenesInfoDetection(demo_dir / f"{name}.json")
    from_pkl = NuScenesInfoDetection(demo_dir / f"{name}.pkl")
    fj, fp = from_json[0], from_pkl[0]
    np.testing.assert_array_equal(fj.boxes, fp.boxes)
    assert fj.name == manifest["sample_token"] and fj.num_points == manifest["n_points"]
    assert fj.num_boxes == manifest["n_boxes"] - manifest["classes"]["ignored(-1)"]
    names = [NUSCENES_CLASSES[k] for k in fj.labels]
    assert {n: names.count(n) for n in set(names)} == {k: v for k, v in manifest["classes"].items() if "(" not in k}
    counts = points_in_boxes(fj.points, fj.boxes).sum(axis=0)
    matches = int((counts == fj.num_lidar_points).sum())
    # MANIFEST counts over all 69 instances: add the one of no detection class, straight from the file
    other = [
        inst
        for inst in json.loads((demo_dir / f"{name}.json").read_text())["data_list"][0]["instances"]
        if inst["bbox_label_3d"] == -1
    ]
    other_counts = points_in_boxes(fj.points, np.array([o["bbox_3d"] for o in other], dtype=np.float32)).sum(axis=0)
    matches += sum(int(c == o["num_lidar_pts"]) for c, o in zip(other_counts, other, strict=False))
    assert matches == manifest["num_lidar_pts_match_if_z_is_centre"]
    valid = NuScenesInfoDetection(demo_dir / f"{name}.json", valid_only=True, min_points=1)[0]
    assert valid.num_boxes == int(((fj.num_lidar_points >= 1) & fj.metadata["bbox_3d_isvalid"]).sum())


def test_info_sweeps_agree_with_the_tables_reader(scene_root: Path, tmp_path: Path) -> None:
    """An info entry written from the tables (key frame k, one sweep = key frame k-1 with lidar2sensor from
    the poses) merges the same points as the tables reader."""
    k = 12
    ds1 = NuScenesDetection(scene_root, VERSION, backend="json")
    chain = _sweep_chain(ds1.tables, ds1[k].metadata["lidar_token"])
    depth = next(n for n, rec in enumerate(chain) if rec["is_key_frame"]) + 1
    merged = NuScenesDetection(scene_root, VERSION, backend="json", nsweeps=depth + 1, missing_sweeps="skip")[k]
    cur, prev = ds1[k], ds1[k - 1]
    key_to_global = cur.metadata["ego_to_global"] @ cur.metadata["lidar_to_ego"]
    prev_to_global = prev.metadata["ego_to_global"] @ prev.metadata["lidar_to_ego"]
    key_to_prev = invert_pose(prev_to_global) @ key_to_global
    info = {
        "metainfo": {"categories": {n: i for i, n in enumerate(NUSCENES_CLASSES)}},
        "data_list": [
            {
                "token": cur.name,
                "timestamp": cur.metadata["timestamp"] / 1e6,
                "lidar_points": {
                    "num_pts_feats": 5,
                    "lidar_path": ds1.tables.get("sample_data", cur.metadata["lidar_token"])["filename"],
                },
                "lidar_sweeps": [
                    {
                        "timestamp": prev.metadata["timestamp"] / 1e6,
                        "lidar_points": {
                            "lidar_path": Path(chain[depth - 1]["filename"]).name,
                            "lidar2sensor": key_to_prev.tolist(),
                        },
                    }
                ],
                "instances": [
                    {
                        "bbox_3d": b[:7].tolist(),
                        "velocity": b[7:9].tolist(),
                        "bbox_label_3d": int(label),
                        "num_lidar_pts": int(n),
                        "bbox_3d_isvalid": True,
                    }
                    for b, label, n in zip(cur.boxes, cur.labels, cur.num_lidar_points, strict=False)
                ],
            }
        ],
    }
    path = tmp_path / "infos.json"
    path.write_text(json.dumps(info))
    frame = NuScenesInfoDetection(path, data_root=scene_root, nsweeps=2)[0]
    np.testing.assert_allclose(frame.points, merged.points, atol=1e-4)
    np.testing.assert_allclose(frame.boxes, cur.boxes, atol=1e-5)
    np.testing.assert_array_equal(frame.labels, cur.labels)
    assert NuScenesInfoDetection(path, data_root=scene_root)[0].num_points == cur.num_points
    with open(tmp_path / "infos.pkl", "wb") as fh:
        pickle.dump(info, fh)
    np.testing.assert_array_equal(
        NuScenesInfoDetection(tmp_path / "infos.pkl", data_root=scene_root, nsweeps=2)[0].points, frame.points
    )


# ----------------------------------------------------------------------------------------------- bad input
def test_frame_without_objects(scene_root: Path, tmp_path: Path) -> None:
    root = _linked_copy(scene_root, tmp_path / "nus", {"sample_annotation": []})
    frame = NuScenesDetection(root, VERSION, backend="json")[5]
    assert frame.boxes.shape == (0, 9) and frame.labels.shape == (0,) and frame.num_points > 0


def test_bad_tables_and_files(scene_root: Path, tmp_path: Path) -> None:
    tables = _tables(scene_root)
    anns = tables["sample_annotation"]
    first_sample = tables["scene"][0]["first_sample_token"]
    target = next(
        a
        for a in anns
        if a["sample_token"] == first_sample
        and a["num_lidar_pts"] > 0
        and "vehicle.car"
        == next(
            c["name"]
            for c in tables["category"]
            if c["token"] == next(i["category_token"] for i in tables["instance"] if i["token"] == a["instance_token"])
        )
    )
    target["size"] = [float("nan"), 1.0, 1.0]
    root = _linked_copy(scene_root, tmp_path / "nan", {"sample_annotation": anns})
    with pytest.raises(ValueError, match=rf"sample_annotation\.json.*{target['token']}.*non-finite"):
        NuScenesDetection(root, VERSION, backend="json")[0]

    root = _linked_copy(scene_root, tmp_path / "broken", None)
    (root / VERSION / "ego_pose.json").unlink()
    (root / VERSION / "ego_pose.json").write_text('[{"token": "a", ')
    with pytest.raises(ValueError, match=r"ego_pose\.json.*not valid JSON"):
        NuScenesDetection(root, VERSION, backend="json")
    (root / VERSION / "ego_pose.json").unlink()
    with pytest.raises(FileNotFoundError, match=r"ego_pose\.json"):
        NuScenesDetection(root, VERSION, backend="json")

    root = tmp_path / "short"
    _linked_copy(scene_root, root, None)
    (root / "samples").unlink()
    (root / "samples" / "LIDAR_TOP").mkdir(parents=True)
    src = sorted((scene_root / "samples" / "LIDAR_TOP").glob("*.pcd.bin"))[0]
    (root / "samples" / "LIDAR_TOP" / src.name).write_bytes(src.read_bytes()[:-8])
    with pytest.raises(ValueError, match=rf"{src.name}.*multiple of 20"):
        NuScenesDetection(root, VERSION, backend="json")[0]
    with pytest.raises(FileNotFoundError, match=r"\.pcd\.bin"):
        NuScenesDetection(root, VERSION, backend="json")[1]

    with pytest.raises(ValueError, match="scene-9999"):
        NuScenesDetection(scene_root, VERSION, scenes=["scene-9999"])
    assert len(NuScenesDetection(scene_root, VERSION, scenes=["scene-0523"])) == 40
    with pytest.raises(ValueError, match="backend"):
        NuScenesDetection(scene_root, VERSION, backend="fast")
    with pytest.raises(ValueError, match="nsweeps"):
        NuScenesDetection(scene_root, VERSION, nsweeps=0)
    with pytest.raises(ValueError, match="pedestrian_adult"):
        NuScenesDetection(scene_root, VERSION, classes=("car", "pedestrian_adult"))
    with pytest.raises(FileNotFoundError, match="table folder"):
        NuScenesDetection(scene_root, "v1.0-trainval")


def test_bad_info_files(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text('{"data_list": []}')
    with pytest.raises(ValueError, match="mmdet3d v1.x info dict"):
        NuScenesInfoDetection(tmp_path / "a.json")
    (tmp_path / "b.pkl").write_bytes(b"\x80\x04garbage")
    with pytest.raises(ValueError, match=r"b\.pkl.*cannot be read"):
        NuScenesInfoDetection(tmp_path / "b.pkl")
    info = {
        "metainfo": {"categories": {"car": 0}},
        "data_list": [{"token": "t", "timestamp": 1.0, "lidar_points": {"lidar_path": "nowhere.bin"}}],
    }
    (tmp_path / "c.json").write_text(json.dumps(info))
    with pytest.raises(FileNotFoundError, match="nowhere.bin"):
        NuScenesInfoDetection(tmp_path / "c.json")[0]
    rng = np.random.default_rng(1)
    rng.uniform(-20, 20, size=(100, 5)).astype(np.float32).tofile(tmp_path / "pts.bin")
    info["data_list"][0]["lidar_points"]["lidar_path"] = "pts.bin"
    info["data_list"][0]["instances"] = [{"bbox_3d": [1, 2, 0, 4, 2, float("inf"), 0], "bbox_label_3d": 0}]
    (tmp_path / "c.json").write_text(json.dumps(info))
    with pytest.raises(ValueError, match="non-finite bbox_3d"):
        NuScenesInfoDetection(tmp_path / "c.json")[0]
