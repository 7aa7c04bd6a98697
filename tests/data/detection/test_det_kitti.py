"""KITTI object reader: the shared frames against MANIFEST.json, the label round trip, difficulty, calibration
and bad input."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from largekernel3d.boxes import points_in_boxes, wrap_angle
from largekernel3d.data.detection.classes import KITTI_TYPES
from largekernel3d.data.detection.kitti import (
    KittiCalib,
    KittiDetection,
    camera_boxes_to_lidar,
    kitti_difficulty,
    lidar_boxes_to_camera,
    png_size,
    read_kitti_labels,
    write_kitti_labels,
)

ALL_TYPES = KITTI_TYPES[:-1]  # every object type but DontCare


@pytest.fixture
def kitti_root(shared_data: Path) -> Path:
    root = shared_data / "kitti"
    if not (root / "training" / "velodyne").is_dir():
        pytest.skip("shared KITTI sample absent")
    return root


def _manifest(shared_data: Path) -> dict:
    return json.loads((shared_data / "MANIFEST.json").read_text())["load_checks"]


def _calib_matrices(path: Path) -> dict:
    """The raw matrices of a calib file, parsed independently of KittiCalib."""
    out = {}
    for line in path.read_text().splitlines():
        if ":" in line:
            key, rest = line.split(":", 1)
            out[key.strip()] = np.array(rest.split(), dtype=np.float64)
    return out


def _iou_2d(a: np.ndarray, b: np.ndarray) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


# ------------------------------------------------------------------------------------------- shared sample
def test_shared_frames_match_manifest(kitti_root: Path, shared_data: Path) -> None:
    """All six frames, all object types, no FOV crop: point counts, the LiDAR boxes MANIFEST lists (rounded to
    0.01 there) and the exact number of points inside every non-DontCare box."""
    manifest = _manifest(shared_data)
    ds = KittiDetection(kitti_root, classes=ALL_TYPES, fov_only=False)
    assert len(ds) == 6
    for i in range(len(ds)):
        frame = ds[i]
        expect = manifest[f"kitti/training/{frame.name}"]
        assert frame.num_points == expect["n_points"]
        assert frame.point_features == ("x", "y", "z", "intensity")
        ref = np.array(expect["boxes_lidar_xyzlwh_yaw"], dtype=np.float64)
        assert frame.boxes.shape == (len(ref), 7)
        np.testing.assert_allclose(frame.boxes[:, :6], ref[:, :6], atol=0.0051)
        assert np.abs(wrap_angle(frame.boxes[:, 6].astype(np.float64) - ref[:, 6])).max() <= 0.0051
        assert frame.boxes[:, 6].min() >= -math.pi and frame.boxes[:, 6].max() < math.pi
        counts = points_in_boxes(frame.points, frame.boxes).sum(axis=0)
        assert counts.tolist() == expect["points_in_boxes"]
        assert frame.metadata["dontcare_bbox2d"].shape == (expect["classes"].get("DontCare", 0), 4)
        names = [ALL_TYPES[k] for k in frame.labels]
        assert names == frame.metadata["label"].names
        assert {n: names.count(n) for n in names} == {k: v for k, v in expect["classes"].items() if k != "DontCare"}


def test_default_reader_crops_to_the_camera_view(kitti_root: Path, shared_data: Path) -> None:
    """Car / Pedestrian / Cyclist only (Truck, Misc ignored into metadata); every kept point projects into the
    1242 x 375 image with positive depth (checked with the composed 3x4 matrix P2 R0 Tr), every dropped one
    does not, and untruncated boxes keep all their points."""
    manifest = _manifest(shared_data)
    full = KittiDetection(kitti_root, fov_only=False)
    crop = KittiDetection(kitti_root)
    for i in range(len(crop)):
        f_full, f_crop = full[i], crop[i]
        mats = _calib_matrices(kitti_root / "training" / "calib" / f"{f_crop.name}.txt")
        r0 = np.eye(4)
        r0[:3, :3] = mats["R0_rect"].reshape(3, 3)
        tr = np.eye(4)
        tr[:3] = mats["Tr_velo_to_cam"].reshape(3, 4)
        proj = mats["P2"].reshape(3, 4) @ r0 @ tr
        hom = np.concatenate([f_full.points[:, :3].astype(np.float64), np.ones((f_full.num_points, 1))], axis=1)
        uvw = hom @ proj.T
        u, v = uvw[:, 0] / uvw[:, 2], uvw[:, 1] / uvw[:, 2]
        inside = (uvw[:, 2] > 0) & (u >= 0) & (u < 1242) & (v >= 0) & (v < 375)
        np.testing.assert_array_equal(f_crop.points, f_full.points[inside])
        assert f_crop.metadata["image_size_source"] == "default"
        assert set(f_crop.labels.tolist()) <= {0, 1, 2}
        ignored = f_crop.metadata["ignored"]
        expect = manifest[f"kitti/training/{f_crop.name}"]["classes"]
        assert sorted(ignored["label"].names) == sorted(
            n for n in expect for _ in range(expect[n]) if n in ("Truck", "Misc")
        )
        assert ignored["boxes"].shape == (len(ignored["label"]), 7)
        untruncated = f_crop.metadata["label"].truncated == 0
        counts_crop = points_in_boxes(f_crop.points, f_crop.boxes).sum(axis=0)
        counts_full = points_in_boxes(f_full.points, f_crop.boxes).sum(axis=0)
        np.testing.assert_array_equal(counts_crop[untruncated], counts_full[untruncated])


def test_difficulty_levels() -> None:
    """The benchmark thresholds at their boundaries (height >= 40/25 px, occlusion <= 0/1/2, truncation
    <= 0.15/0.30/0.50), and the shared labels of frame 000001."""
    cases = [  # (height, occluded, truncated) -> level
        ((40.0, 0, 0.15), 0),
        ((39.99, 0, 0.0), 1),
        ((100.0, 1, 0.0), 1),
        ((25.0, 1, 0.30), 1),
        ((25.0, 2, 0.5), 2),
        ((80.0, 0, 0.31), 2),
        ((24.99, 0, 0.0), -1),
        ((100.0, 3, 0.0), -1),
        ((100.0, 0, 0.51), -1),
    ]
    bbox = np.array([[10.0, 50.0, 60.0, 50.0 + h] for (h, _, _), _ in cases])
    occ = np.array([o for (_, o, _), _ in cases])
    trunc = np.array([t for (_, _, t), _ in cases])
    assert kitti_difficulty(bbox, occ, trunc).tolist() == [level for _, level in cases]


def test_shared_difficulty(kitti_root: Path) -> None:
    frame = KittiDetection(kitti_root, classes=ALL_TYPES)[1]
    # Truck: 32.85 px, occ 0 -> moderate; Car: 21.6 px -> none; Cyclist: occluded 3 -> none
    assert frame.difficulty.tolist() == [1, -1, -1]


def test_label_round_trip(kitti_root: Path, tmp_path: Path) -> None:
    """KITTI label -> LiDAR box -> written label -> read: the same h, w, l, x, y, z, rotation_y.

    alpha is recomputed from the rounded location and rotation_y, so it differs from the labelled (rounded)
    alpha by up to 0.005 (label rounding) + 0.005 (rotation_y rounding) + ~0.001 (the viewing angle from the
    rounded x, z): tolerance 0.012. The 2D box is the projection of the 3D box, which encloses the tight
    labelled 2D box: IoU > 0.75.
    """
    ds = KittiDetection(kitti_root, classes=ALL_TYPES, fov_only=False)
    for i in range(len(ds)):
        frame = ds[i]
        label = frame.metadata["label"]
        out = tmp_path / f"{frame.name}.txt"
        write_kitti_labels(out, frame.boxes.astype(np.float64), None, label.names, frame.metadata["calib"])
        back = read_kitti_labels(out)
        assert back.names == label.names and back.score is None
        np.testing.assert_allclose(back.location, label.location, atol=1e-4)
        np.testing.assert_allclose(back.dims_hwl, label.dims_hwl, atol=1e-4)
        np.testing.assert_allclose(back.rotation_y, label.rotation_y, atol=1e-4)
        assert np.abs(wrap_angle(back.alpha - label.alpha)).max() <= 0.012
        assert all(_iou_2d(a, b) > 0.75 for a, b in zip(back.bbox2d, label.bbox2d, strict=False))
        assert (back.truncated == -1).all() and (back.occluded == -1).all()


def test_random_boxes_round_trip_with_scores(kitti_root: Path, tmp_path: Path) -> None:
    """Random LiDAR boxes written with scores and read back give the same boxes (4 written decimals)."""
    rng = np.random.default_rng(3)
    calib = KittiCalib.from_file(kitti_root / "training" / "calib" / "000000.txt")
    m = 40
    boxes = np.column_stack(
        [
            rng.uniform(2, 70, m),
            rng.uniform(-30, 30, m),
            rng.uniform(-2, 1, m),
            rng.uniform(0.5, 12, m),
            rng.uniform(0.4, 3, m),
            rng.uniform(1, 4, m),
            rng.uniform(-math.pi, math.pi, m),
        ]
    )
    scores = rng.uniform(0, 1, m)
    names = [["Car", "Pedestrian", "Cyclist"][k] for k in rng.integers(0, 3, m)]
    path = tmp_path / "pred.txt"
    write_kitti_labels(path, boxes, scores, names, calib)
    back = read_kitti_labels(path)
    assert back.names == names
    np.testing.assert_allclose(back.score, scores, atol=6e-5)
    again = camera_boxes_to_lidar(back.location, back.dims_hwl, back.rotation_y, calib)
    np.testing.assert_allclose(again[:, :6], boxes[:, :6], atol=5e-4)
    assert np.abs(wrap_angle(again[:, 6] - boxes[:, 6])).max() < 2e-4
    loc, dims, ry = lidar_boxes_to_camera(boxes, calib)
    np.testing.assert_allclose(
        camera_boxes_to_lidar(loc, dims, ry, calib), np.column_stack([boxes[:, :6], wrap_angle(boxes[:, 6])]), atol=1e-9
    )
    write_kitti_labels(tmp_path / "empty.txt", np.zeros((0, 7)), np.zeros(0), [], calib)
    assert (tmp_path / "empty.txt").read_text() == "" and len(read_kitti_labels(tmp_path / "empty.txt")) == 0


def test_calib_transforms_are_consistent(kitti_root: Path) -> None:
    calib = KittiCalib.from_file(kitti_root / "training" / "calib" / "000001.txt")
    rng = np.random.default_rng(0)
    pts = rng.uniform([-50, -30, -3], [70, 30, 3], size=(500, 3))
    np.testing.assert_allclose(calib.rect_to_lidar(calib.lidar_to_rect(pts)), pts, atol=1e-9)
    mats = _calib_matrices(kitti_root / "training" / "calib" / "000001.txt")
    rect = (pts @ mats["Tr_velo_to_cam"].reshape(3, 4)[:, :3].T + mats["Tr_velo_to_cam"].reshape(3, 4)[:, 3]) @ mats[
        "R0_rect"
    ].reshape(3, 3).T
    np.testing.assert_allclose(calib.lidar_to_rect(pts), rect, atol=1e-9)
    uv, depth = calib.lidar_to_image(pts)
    proj = np.concatenate([rect, np.ones((500, 1))], axis=1) @ mats["P2"].reshape(3, 4).T
    np.testing.assert_allclose(depth, proj[:, 2])
    np.testing.assert_allclose(uv, proj[:, :2] / proj[:, 2:], rtol=1e-9)


# --------------------------------------------------------------------------------------- small tmp datasets
def _make_frame(
    root: Path,
    kitti_root: Path,
    fid: str = "000000",
    label: str = "",
    points: np.ndarray | None = None,
    split: str = "training",
    with_labels: bool = True,
) -> None:
    for sub in ("velodyne", "calib") + (("label_2",) if with_labels else ()):
        (root / split / sub).mkdir(parents=True, exist_ok=True)
    if points is None:
        points = np.fromfile(kitti_root / "training" / "velodyne" / "000000.bin", dtype=np.float32)
        points = points.reshape(-1, 4)[::50]
    points.astype(np.float32).tofile(root / split / "velodyne" / f"{fid}.bin")
    (root / split / "calib" / f"{fid}.txt").write_text((kitti_root / "training" / "calib" / "000000.txt").read_text())
    if with_labels:
        (root / split / "label_2" / f"{fid}.txt").write_text(label)


PED = "Pedestrian 0.00 0 -0.20 712.40 143.00 810.73 307.92 1.89 0.48 1.20 1.84 1.47 8.41 0.01\n"
VAN = "Van 0.00 0 -0.20 100.40 143.00 300.73 307.92 2.1 1.9 4.8 -4.0 1.6 15.0 0.30\n"


def test_frame_without_objects_and_testing_split(kitti_root: Path, tmp_path: Path) -> None:
    _make_frame(tmp_path, kitti_root, label="")
    frame = KittiDetection(tmp_path)[0]
    assert frame.boxes.shape == (0, 7) and frame.labels.shape == (0,) and frame.difficulty.shape == (0,)
    assert frame.num_points > 0
    _make_frame(tmp_path, kitti_root, split="testing", with_labels=False)
    frame = KittiDetection(tmp_path, split="testing")[0]
    assert frame.num_boxes == 0 and frame.metadata["has_labels"] is False


def test_class_map_folds_van_into_car(kitti_root: Path, tmp_path: Path) -> None:
    _make_frame(tmp_path, kitti_root, label=PED + VAN)
    plain = KittiDetection(tmp_path, fov_only=False)[0]
    assert plain.labels.tolist() == [1] and plain.metadata["ignored"]["label"].names == ["Van"]
    mapped = KittiDetection(tmp_path, fov_only=False, class_map={"Van": "Car"})[0]
    assert mapped.labels.tolist() == [1, 0] and mapped.metadata["label"].names == ["Pedestrian", "Van"]
    dropped = KittiDetection(tmp_path, fov_only=False, class_map={"Pedestrian": None})[0]
    assert dropped.num_boxes == 0
    with pytest.raises(ValueError, match="Bus"):
        KittiDetection(tmp_path, class_map={"Van": "Bus"})
    with pytest.raises(ValueError, match="DontCare"):
        KittiDetection(tmp_path, classes=("Car", "DontCare"))
    with pytest.raises(ValueError, match="distinct"):
        KittiDetection(tmp_path, classes=("Car", "Car"))


def test_image_size_from_png(kitti_root: Path, tmp_path: Path) -> None:
    pil = pytest.importorskip("PIL.Image")
    _make_frame(tmp_path, kitti_root, label=PED)
    (tmp_path / "training" / "image_2").mkdir()
    pil.new("RGB", (700, 200), (10, 20, 30)).save(tmp_path / "training" / "image_2" / "000000.png")
    assert png_size(tmp_path / "training" / "image_2" / "000000.png") == (700, 200)
    frame = KittiDetection(tmp_path)[0]
    assert frame.metadata["image_size"] == (700, 200) and frame.metadata["image_size_source"] == "image"
    uv, depth = frame.metadata["calib"].lidar_to_image(frame.points[:, :3])
    assert (depth > 0).all() and (uv >= 0).all() and (uv[:, 0] < 700).all() and (uv[:, 1] < 200).all()
    assert frame.num_points < KittiDetection(tmp_path, fov_only=False)[0].num_points


@pytest.mark.parametrize(
    "label, message",
    [
        ("Car 0.00 0 1.85 387.63 181.54 423.81 203.12 1.67 1.87\n", "line 1: a KITTI label line has 15 fields"),
        (
            PED + "Bus 0.00 0 1.85 387.63 181.54 423.81 203.12 1.67 1.87 3.69 -16.53 2.39 58.49 1.57\n",
            "line 2: unknown object type 'Bus'",
        ),
        ("Car 0.00 0 1.85 387.63 181.54 423.81 203.12 1.67 1.87 nan -16.53 2.39 58.49 1.57\n", "non-finite"),
        ("Car 0.00 0 1.85 387.63 181.54 423.81 203.12 1.67 1.87 abc -16.53 2.39 58.49 1.57\n", "must be numbers"),
        ("Car 0.00 0 1.85 387.63 181.54 423.81 203.12 1.67 0.0 3.69 -16.53 2.39 58.49 1.57\n", "must be positive"),
    ],
)
def test_bad_label_lines(kitti_root: Path, tmp_path: Path, label: str, message: str) -> None:
    _make_frame(tmp_path, kitti_root, label=label)
    with pytest.raises(ValueError, match=message) as info:
        KittiDetection(tmp_path)[0]
    assert "000000.txt" in str(info.value)


def test_bad_point_and_calib_files(kitti_root: Path, tmp_path: Path) -> None:
    _make_frame(tmp_path, kitti_root, label=PED)
    ds = KittiDetection(tmp_path)
    bin_path = tmp_path / "training" / "velodyne" / "000000.bin"
    good = bin_path.read_bytes()
    bin_path.write_bytes(good[:-6])  # truncated: not a multiple of 16 bytes
    with pytest.raises(ValueError, match=r"000000\.bin.*multiple of 16"):
        ds[0]
    bad = np.frombuffer(good, dtype=np.float32).copy()
    bad[5] = np.inf
    bad.tofile(bin_path)
    with pytest.raises(ValueError, match=r"000000\.bin.*NaN or inf"):
        ds[0]
    bin_path.write_bytes(good)
    calib_path = tmp_path / "training" / "calib" / "000000.txt"
    text = calib_path.read_text()
    calib_path.write_text("\n".join(line for line in text.splitlines() if not line.startswith("P2")))
    with pytest.raises(ValueError, match=r"000000\.txt.*'P2'"):
        ds[0]
    calib_path.write_text(text.replace("R0_rect: 9.999", "R0_rect: 9.999 1.0 "))
    with pytest.raises(ValueError, match="R0_rect must hold 9"):
        ds[0]
    calib_path.unlink()
    with pytest.raises(FileNotFoundError, match=r"calib.*000000\.txt"):
        ds[0]
    calib_path.write_text(text)
    (tmp_path / "training" / "label_2" / "000000.txt").unlink()
    with pytest.raises(FileNotFoundError, match=r"label_2.*000000\.txt"):
        ds[0]
    with pytest.raises(FileNotFoundError, match="KITTI split folder"):
        KittiDetection(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="000007.bin"):
        KittiDetection(tmp_path, frame_ids=[7])[0]
