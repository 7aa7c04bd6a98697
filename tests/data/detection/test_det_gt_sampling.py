"""Ground-truth database and sampler on a tiny synthetic dataset: the database holds exactly each object's
points, pasted boxes collide with nothing (checked by an own point-sampling overlap test), pasted points lie
in their boxes, the frame's boxes keep their points, a seed fixes the result, and bad databases are named."""

from __future__ import annotations

import json
from typing import Optional

import numpy as np
import pytest

from largekernel3d.boxes import bev_iou, points_in_boxes
from largekernel3d.data.detection.frame import DetectionDataset, LidarFrame
from largekernel3d.data.detection.gt_sampling import INDEX_NAME, GTDatabase, GTSampler, build_gt_database

CLASSES = ("Car", "Pedestrian", "Cyclist")
SIZES = {0: (4.0, 1.8, 1.6), 1: (0.8, 0.7, 1.8), 2: (1.8, 0.6, 1.7)}
FEATURES = ("x", "y", "z", "intensity")


def _rotate(local: np.ndarray, yaw: float) -> np.ndarray:
    c, s = np.cos(yaw), np.sin(yaw)
    return np.stack([c * local[:, 0] - s * local[:, 1], s * local[:, 0] + c * local[:, 1], local[:, 2]], 1)


def inside_box(points: np.ndarray, box: np.ndarray) -> np.ndarray:
    """Own membership test: ``|R(-yaw) (p - c)| <= size / 2`` per axis."""
    local = _rotate(points[:, :3] - box[:3], -box[6])
    return (np.abs(local) <= box[3:6] / 2 + 1e-6).all(1)


def overlap_by_sampling(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two boxes overlap in BEV, by testing a 25 x 25 grid of a's footprint against b (and back)."""
    u = np.linspace(-0.49, 0.49, 25)
    grid = np.stack(np.meshgrid(u, u), -1).reshape(-1, 2)

    def samples(box):
        local = np.concatenate([grid * box[3:5], np.zeros((len(grid), 1))], 1)
        return _rotate(local, box[6]) + [box[0], box[1], 0.0]

    flat = lambda box: np.concatenate([box[:2], [0.0], box[3:5], [10.0], box[6:7]])  # noqa: E731 (ignore z)
    return bool(inside_box(samples(a), flat(b)).any() or inside_box(samples(b), flat(a)).any())


class TinyDataset(DetectionDataset):
    """Three frames; boxes sit in distinct cells of a 6 x 6 grid of 7 m cells, each with a known number of
    points strictly inside; background points stay clear of every box. With ``distinct`` no two boxes of the
    dataset share a cell (so no two stored objects overlap), else frames reuse each other's cells."""

    class_names = CLASSES

    def __init__(self, seed: int = 0, velocity: bool = True, distinct: bool = False) -> None:
        self.frame_names = ["f0", "scene/f1", "f2"]
        cells = np.random.default_rng(seed).choice(36, 18, replace=False).reshape(3, 6)
        self.frames = [
            self._make(i, np.random.default_rng(seed * 10 + i), velocity, cells[i] if distinct else None)
            for i in range(3)
        ]

    @staticmethod
    def _make(index: int, rng: np.random.Generator, velocity: bool, cells: Optional[np.ndarray]) -> LidarFrame:
        m = 6
        cells = rng.choice(36, m, replace=False) if cells is None else cells
        labels = rng.integers(0, 3, m)
        labels[:2] = [0, 1]
        centres = np.stack([(cells % 6) * 7.0 - 17.5, (cells // 6) * 7.0 - 17.5, rng.uniform(-1.0, 0.0, m)], 1)
        sizes = np.array([SIZES[int(c)] for c in labels]) * rng.uniform(0.9, 1.1, (m, 3))
        yaw = rng.uniform(-np.pi, np.pi, m)
        boxes = np.concatenate([centres, sizes, yaw[:, None]], 1)
        if velocity:
            boxes = np.concatenate([boxes, rng.normal(0, 3, (m, 2))], 1)
        counts = rng.integers(8, 60, m)
        counts[-1] = 3  # too few points for the database (min_points=5)
        clouds = []
        for j in range(m):
            local = rng.uniform(-0.45, 0.45, (counts[j], 3)) * sizes[j]
            clouds.append(np.concatenate([_rotate(local, yaw[j]) + centres[j], rng.uniform(0, 1, (counts[j], 1))], 1))
        bg = rng.uniform([-22, -22, -2], [22, 22, 1], (3000, 3))
        near = [np.abs(_rotate(bg - centres[j], -yaw[j])[:, :2]).max(1) < sizes[j, :2].max() for j in range(m)]
        bg = bg[~np.any(near, axis=0)]
        clouds.append(np.concatenate([bg, rng.uniform(0, 1, (len(bg), 1))], 1))
        return LidarFrame(
            name=["f0", "scene/f1", "f2"][index],
            points=np.concatenate(clouds),
            point_features=FEATURES,
            boxes=boxes,
            labels=labels,
            difficulty=rng.integers(0, 3, m),
            num_lidar_points=counts,
            metadata={"counts": counts},
        )

    def _load(self, index: int) -> LidarFrame:
        return self.frames[index]


@pytest.fixture
def dataset() -> TinyDataset:
    return TinyDataset()


@pytest.fixture
def database(dataset, tmp_path):
    build_gt_database(dataset, tmp_path / "db", min_points=5, progress=False)
    return tmp_path / "db"


def test_database_round_trip(dataset, database):
    db = GTDatabase.load(database)
    assert db.point_features == FEATURES and db.box_dims == 9 and db.class_names == CLASSES
    expected = [(i, j) for i in range(3) for j in range(6) if dataset.frames[i].metadata["counts"][j] >= 5]
    assert [(r["frame_index"], r["box_index"]) for r in db.objects] == expected
    for rec in db.objects:
        frame = dataset.frames[rec["frame_index"]]
        j = rec["box_index"]
        assert rec["frame"] == frame.name and rec["class"] == CLASSES[frame.labels[j]]
        assert rec["num_points"] == frame.metadata["counts"][j] and rec["difficulty"] == frame.difficulty[j]
        np.testing.assert_allclose(rec["box"], frame.boxes[j], atol=1e-6)
        pts = db.load_points(rec).astype(np.float64)
        pts[:, :3] += frame.boxes[j, :3]
        own = frame.points[inside_box(frame.points, frame.boxes[j])]
        order = lambda a: a[np.lexsort(a.T[::-1])]  # noqa: E731
        np.testing.assert_allclose(order(pts), order(own.astype(np.float64)), atol=1e-5)
    files = sorted(p.name for p in (database / "objects").iterdir())
    assert len(files) == len(expected) and not any(name.endswith(".tmp") for name in files)


def test_database_class_filter_and_overwrite(dataset, tmp_path):
    build_gt_database(dataset, tmp_path / "db", classes=["Pedestrian"], min_points=1, progress=False)
    db = GTDatabase.load(tmp_path / "db")
    assert {r["class"] for r in db.objects} == {"Pedestrian"}
    with pytest.raises(FileExistsError, match="overwrite=True"):
        build_gt_database(dataset, tmp_path / "db", progress=False)
    build_gt_database(dataset, tmp_path / "db", min_points=1, overwrite=True, progress=False)
    db = GTDatabase.load(tmp_path / "db")
    assert len(db.objects) == 18 and len(list((tmp_path / "db" / "objects").iterdir())) == 18
    with pytest.raises(ValueError, match="Truck"):
        build_gt_database(dataset, tmp_path / "db2", classes=["Truck"], progress=False)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_paste_collides_with_nothing_and_keeps_points(dataset, database, seed):
    sampler = GTSampler(database, {"Car": 8, "Pedestrian": 6, "Cyclist": 5})
    frame = dataset[seed % 3]
    out = sampler(frame, np.random.default_rng(seed))
    m, added = frame.num_boxes, out.num_boxes - frame.num_boxes
    assert added > 0
    assert np.array_equal(out.boxes[:m], frame.boxes) and np.array_equal(out.labels[:m], frame.labels)
    for a in range(out.num_boxes):
        for b in range(max(a + 1, m), out.num_boxes):
            assert not overlap_by_sampling(out.boxes[a], out.boxes[b]), (a, b)
    iou = bev_iou(out.boxes[:, :7], out.boxes[:, :7])
    assert (iou[~np.eye(out.num_boxes, dtype=bool)] == 0).all()
    inside = points_in_boxes(out.xyz(), out.boxes)
    before = points_in_boxes(frame.xyz(), frame.boxes).sum(0)
    assert np.array_equal(inside[:, :m].sum(0), before)  # original boxes
    db = GTDatabase.load(database)
    for k in range(added):
        box = out.boxes[m + k]
        rec = next(r for r in db.objects if np.allclose(r["box"], box, atol=1e-6))
        assert inside[:, m + k].sum() == rec["num_points"] == out.num_lidar_points[m + k]  # only its own points
        assert out.labels[m + k] == CLASSES.index(rec["class"])
        assert out.difficulty[m + k] == rec["difficulty"]
    pasted = out.num_points - (frame.num_points - points_in_boxes(frame.xyz(), out.boxes[m:]).any(1).sum())
    assert inside[:pasted, m:].any(1).all()  # every pasted point lies in a pasted box
    counts = {c: int((out.labels == c).sum()) for c in range(3)}
    assert counts[0] <= max(8, (frame.labels == 0).sum()) and counts[2] <= max(5, (frame.labels == 2).sum())


def test_paste_is_deterministic_and_filters(dataset, database):
    sampler = GTSampler(database, {"Car": 10, "Cyclist": 6}, min_points_per_class={"Car": 20}, exclude_difficulty=[2])
    frame = dataset[1]
    a, b = sampler(frame, np.random.default_rng(7)), sampler(frame, np.random.default_rng(7))
    assert np.array_equal(a.points, b.points) and np.array_equal(a.boxes, b.boxes)
    outs = [sampler(frame, np.random.default_rng(s)) for s in range(8)]
    assert len({o.boxes.tobytes() for o in outs}) > 1
    for out in outs:
        new = slice(frame.num_boxes, None)
        assert (out.difficulty[new] != 2).all()
        assert (out.num_lidar_points[new][out.labels[new] == 0] >= 20).all()
        assert not (out.labels[new] == 1).any()


def test_fill_up_or_fixed_number(tmp_path):
    """With limit_whole_scene a frame is filled up to the group size, without it the group size is drawn
    afresh. No two stored objects overlap here, so every candidate away from the frame's far box is kept."""
    dataset = TinyDataset(seed=3, distinct=True)
    build_gt_database(dataset, tmp_path / "db", min_points=1, progress=False)
    frame = dataset[0]
    one_car = LidarFrame(
        name="one",
        points=frame.points[:10],
        point_features=FEATURES,
        boxes=[[60.0, 60.0, 0.0, 4.0, 1.8, 1.6, 0.0, 0.0, 0.0]],
        labels=np.array([0]),
    )
    cars = sum(int((f.labels == 0).sum()) for f in dataset.frames)
    assert cars >= 4
    for seed in range(3):
        filled = GTSampler(tmp_path / "db", {"Car": 3})(one_car, np.random.default_rng(seed))
        fixed = GTSampler(tmp_path / "db", {"Car": 3}, limit_whole_scene=False)(one_car, np.random.default_rng(seed))
        assert (filled.labels == 0).sum() == 3 and (fixed.labels == 0).sum() == 4
        everything = GTSampler(tmp_path / "db", {"Car": 100})(one_car, np.random.default_rng(seed))
        assert (everything.labels == 0).sum() == 1 + cars  # the pool runs out: each object once


def test_paste_into_frames_without_velocity_or_fields(database):
    frame = TinyDataset(seed=5, velocity=False)[0]
    bare = LidarFrame(
        name="bare",
        points=frame.points,
        point_features=FEATURES,
        boxes=frame.boxes,
        labels=frame.labels,
        point_labels=np.arange(frame.num_points) % 3,
    )
    out = GTSampler(database, {"Pedestrian": 5})(bare, np.random.default_rng(0))
    assert out.boxes.shape[1] == 7 and out.difficulty is None and out.num_lidar_points is None
    assert out.num_boxes > bare.num_boxes
    pasted = int((out.point_labels == -1).sum())
    assert pasted > 0 and (out.point_labels[pasted:] >= 0).all()


def test_missing_and_corrupt_databases_are_named(dataset, database, tmp_path):
    with pytest.raises(FileNotFoundError, match="build_gt_database"):
        GTSampler(tmp_path / "nowhere", {"Car": 3})
    with pytest.raises(ValueError, match="Truck"):
        GTSampler(database, {"Truck": 3})
    frame = dataset[0]
    with pytest.raises(ValueError, match="point features"):
        GTSampler(database, {"Car": 3})(
            LidarFrame(
                name="xyz",
                points=frame.points[:, :3],
                point_features=FEATURES[:3],
                boxes=frame.boxes,
                labels=frame.labels,
            ),
            np.random.default_rng(0),
        )
    index = database / INDEX_NAME
    text = index.read_text()
    records = json.loads(text)["objects"]
    for rec in records:
        (database / rec["file"]).unlink()
    with pytest.raises(FileNotFoundError, match="missing"):
        GTSampler(database, {"Car": 12})(frame, np.random.default_rng(0))
    index.write_text(text[: len(text) // 2])
    with pytest.raises(ValueError, match="corrupt"):
        GTSampler(database, {"Car": 3})
    broken = json.loads(text)
    del broken["objects"][0]["box"]
    index.write_text(json.dumps(broken))
    with pytest.raises(ValueError, match="corrupt"):
        GTDatabase.load(database)
