"""Detection augmentations: points stay in their boxes, velocities move with positions, flips and full turns
are identities, headings follow the geometry, the pipeline is built from a dict and is reproducible."""

from __future__ import annotations

import numpy as np
import pytest

from largekernel3d.boxes import points_in_boxes, wrap_angle
from largekernel3d.data.detection.augment import (
    BoxRangeFilter,
    DetectionAugmentation,
    GlobalRotation,
    GlobalScaling,
    GlobalTranslation,
    PointRangeFilter,
    RandomFlip,
    ShufflePoints,
    flip_frame,
    keep_boxes,
    rotate_frame,
    scale_frame,
    translate_frame,
)
from largekernel3d.data.detection.frame import LidarFrame

FEATURES = ("x", "y", "z", "intensity", "owner")  # owner: the box a point was generated in (-1 background)


def make_frame(
    seed: int, num_boxes: int = 6, velocity: bool = True, per_box: int = 40, background: int = 400
) -> LidarFrame:
    """Boxes on a 3 x 3 grid of 8 m cells (never overlapping), ``per_box`` points strictly inside each (at
    most 90 % of the half size from the centre along every box axis) and background points outside all
    boxes. The ``owner`` column records where every point was generated."""
    rng = np.random.default_rng(seed)
    cells = rng.choice(9, num_boxes, replace=False)
    centres = np.stack([(cells % 3 - 1) * 8.0, (cells // 3 - 1) * 8.0, rng.uniform(-1, 1, num_boxes)], 1)
    centres[:, :2] += rng.uniform(-1, 1, (num_boxes, 2))
    sizes = rng.uniform([1.0, 0.6, 1.0], [4.5, 2.5, 2.5], (num_boxes, 3))
    yaw = rng.uniform(-np.pi, np.pi, num_boxes)
    boxes = np.concatenate([centres, sizes, yaw[:, None]], 1)
    if velocity:
        boxes = np.concatenate([boxes, rng.normal(0, 5, (num_boxes, 2))], 1)
    clouds = []
    for j in range(num_boxes):
        local = rng.uniform(-0.9, 0.9, (per_box, 3)) * sizes[j] / 2
        c, s = np.cos(yaw[j]), np.sin(yaw[j])
        world = np.stack([c * local[:, 0] - s * local[:, 1], s * local[:, 0] + c * local[:, 1], local[:, 2]], 1)
        clouds.append(
            np.concatenate([world + centres[j], rng.uniform(0, 1, (per_box, 1)), np.full((per_box, 1), j)], 1)
        )
    bg = rng.uniform([-13, -13, -2], [13, 13, 2], (background * 3, 3))
    # keep background points clear of every box by a margin (box sizes + 0.4 m): counts stay unambiguous
    grown = boxes[:, :7].copy()
    grown[:, 3:6] += 0.4
    bg = bg[~points_in_boxes(bg, grown).any(1)][:background]
    clouds.append(np.concatenate([bg, rng.uniform(0, 1, (len(bg), 1)), np.full((len(bg), 1), -1)], 1))
    points = np.concatenate(clouds)
    return LidarFrame(
        name=f"synthetic{seed}",
        points=points,
        point_features=FEATURES,
        boxes=boxes,
        labels=rng.integers(0, 3, num_boxes),
        difficulty=rng.integers(0, 3, num_boxes),
        num_lidar_points=np.full(num_boxes, per_box),
        attributes=[f"obj{j}" for j in range(num_boxes)],
    )


def assert_points_in_own_boxes(frame: LidarFrame) -> None:
    """Every box holds exactly the points generated in it (identified by the owner column)."""
    inside = points_in_boxes(frame.xyz(), frame.boxes)
    owner = frame.points[:, 4].astype(int)
    for j, name in enumerate(frame.attributes):
        source = int(name[3:])
        assert np.array_equal(np.flatnonzero(inside[:, j]), np.flatnonzero(owner == source)), f"box {name}"


def front_point(boxes: np.ndarray) -> np.ndarray:
    """The middle of the front face in BEV: ``(x, y) + dx / 2 (cos yaw, sin yaw)``."""
    return boxes[:, :2] + boxes[:, 3:4] / 2 * np.stack([np.cos(boxes[:, 6]), np.sin(boxes[:, 6])], 1)


STEPS = [
    GlobalRotation((-np.pi, np.pi)),
    GlobalScaling((0.8, 1.25)),
    RandomFlip(("x", "y"), p=0.5),
    GlobalTranslation((1.0, 1.0, 0.3)),
    ShufflePoints(),
]


@pytest.mark.parametrize("step", STEPS, ids=lambda s: type(s).__name__)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_every_augmentation_keeps_each_box_points(step, seed):
    frame = make_frame(seed)
    out = step(frame, np.random.default_rng(seed + 10))
    assert out.num_points == frame.num_points and out.num_boxes == frame.num_boxes
    assert_points_in_own_boxes(out)
    assert np.array_equal(points_in_boxes(out.xyz(), out.boxes).sum(0), np.full(frame.num_boxes, 40))
    assert np.array_equal(out.labels, frame.labels) and out.attributes == frame.attributes
    assert frame.points is not out.points  # the input frame is untouched
    assert np.array_equal(frame.points, make_frame(seed).points)
    assert (out.boxes[:, 6] >= -np.pi).all() and (out.boxes[:, 6] < np.pi + 1e-6).all()


@pytest.mark.parametrize("seed", [3, 4])
def test_full_pipeline_keeps_each_box_points(seed):
    aug = DetectionAugmentation(
        {
            "flip_axes": ["x", "y"],
            "rotation_range": [-np.pi / 4, np.pi / 4],
            "scale_range": [0.9, 1.1],
            "translation_std": 0.5,
            "shuffle": True,
        }
    )
    frame = make_frame(seed)
    out = aug(frame, np.random.default_rng(seed))
    assert_points_in_own_boxes(out)


@pytest.mark.parametrize("seed", [0, 5])
def test_velocity_transforms_like_positions(seed):
    """Move every object's points and centre by ``v dt``; augmenting that frame equals augmenting the
    original and then moving by the augmented velocity ``v' dt``."""
    dt = 0.5
    frame = make_frame(seed)
    owner = frame.points[:, 4].astype(int)
    shift = np.zeros((frame.num_points, 3))
    shift[owner >= 0, :2] = frame.boxes[owner[owner >= 0], 7:9] * dt
    moved_points = frame.points.copy()
    moved_points[:, :3] += shift
    moved_boxes = frame.boxes.copy()
    moved_boxes[:, :2] += frame.boxes[:, 7:9] * dt
    moved = LidarFrame(
        name="moved",
        points=moved_points,
        point_features=FEATURES,
        boxes=moved_boxes,
        labels=frame.labels,
        attributes=frame.attributes,
    )
    aug = DetectionAugmentation(
        {
            "ALONG_AXIS_LIST": ["x", "y"],
            "WORLD_ROT_ANGLE": [-np.pi, np.pi],
            "WORLD_SCALE_RANGE": [0.7, 1.3],
            "NOISE_TRANSLATE_STD": [2.0, 2.0, 0.5],
        }
    )
    for run in range(4):
        a = aug(frame, np.random.default_rng(100 * seed + run))
        b = aug(moved, np.random.default_rng(100 * seed + run))
        expected = a.points[:, :3].astype(np.float64)
        expected[owner >= 0, :2] += a.boxes[owner[owner >= 0], 7:9] * dt
        np.testing.assert_allclose(b.points[:, :3], expected, atol=2e-4)
        np.testing.assert_allclose(b.boxes[:, :2], a.boxes[:, :2] + a.boxes[:, 7:9] * dt, atol=2e-4)
        np.testing.assert_allclose(b.boxes[:, 7:9], a.boxes[:, 7:9], atol=1e-5)


@pytest.mark.parametrize("axis", ["x", "y"])
def test_flip_twice_is_identity_and_mirrors_geometry(axis):
    frame = make_frame(7)
    once = flip_frame(frame, axis)
    twice = flip_frame(once, axis)
    np.testing.assert_allclose(twice.points, frame.points, atol=1e-6)
    np.testing.assert_allclose(
        twice.boxes[:, [0, 1, 2, 3, 4, 5, 7, 8]], frame.boxes[:, [0, 1, 2, 3, 4, 5, 7, 8]], atol=1e-6
    )
    np.testing.assert_allclose(wrap_angle(twice.boxes[:, 6] - frame.boxes[:, 6]), 0, atol=1e-6)
    # the mirror, written out: flipping along x negates y, along y negates x (positions, front points, velocity)
    k = 1 if axis == "x" else 0
    mirrored = frame.boxes.astype(np.float64).copy()
    mirrored[:, k] *= -1
    np.testing.assert_allclose(once.boxes[:, :3], mirrored[:, :3], atol=1e-6)
    front = front_point(frame.boxes.astype(np.float64))
    front[:, k] *= -1
    np.testing.assert_allclose(front_point(once.boxes.astype(np.float64)), front, atol=1e-5)
    np.testing.assert_allclose(once.boxes[:, 7 + k], -frame.boxes[:, 7 + k], atol=1e-6)
    np.testing.assert_allclose(once.boxes[:, 8 - k], frame.boxes[:, 8 - k], atol=1e-6)
    assert_points_in_own_boxes(once)


def test_rotation_by_full_turn_is_identity_and_turns_fronts():
    frame = make_frame(8)
    full = rotate_frame(frame, 2 * np.pi)
    np.testing.assert_allclose(full.points, frame.points, atol=1e-5)
    np.testing.assert_allclose(
        full.boxes[:, [0, 1, 2, 3, 4, 5, 7, 8]], frame.boxes[:, [0, 1, 2, 3, 4, 5, 7, 8]], atol=1e-5
    )
    np.testing.assert_allclose(wrap_angle(full.boxes[:, 6] - frame.boxes[:, 6]), 0, atol=1e-5)
    theta = 0.7
    turned = rotate_frame(frame, theta)
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    np.testing.assert_allclose(
        front_point(turned.boxes.astype(np.float64)), front_point(frame.boxes.astype(np.float64)) @ rot.T, atol=1e-5
    )
    np.testing.assert_allclose(turned.boxes[:, 7:9], frame.boxes[:, 7:9] @ rot.T, atol=1e-4)


def test_scale_and_translate_written_out():
    frame = make_frame(9)
    s = scale_frame(frame, 1.2)
    np.testing.assert_allclose(s.points[:, :3], frame.points[:, :3] * 1.2, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(
        s.boxes[:, [0, 1, 2, 3, 4, 5, 7, 8]], frame.boxes[:, [0, 1, 2, 3, 4, 5, 7, 8]] * 1.2, rtol=1e-6, atol=1e-6
    )
    np.testing.assert_allclose(s.points[:, 3:], frame.points[:, 3:])
    t = translate_frame(frame, [1.0, -2.0, 0.5])
    np.testing.assert_allclose(t.points[:, :3], frame.points[:, :3] + [1.0, -2.0, 0.5], atol=1e-5)
    np.testing.assert_allclose(t.boxes[:, 3:], frame.boxes[:, 3:], atol=1e-6)
    assert_points_in_own_boxes(s)
    assert_points_in_own_boxes(t)


def test_range_filters_against_brute_force():
    frame = make_frame(10, num_boxes=8)
    rng_ = [-6.0, -9.0, -1.0, 9.0, 6.0, 1.5]
    points = PointRangeFilter(rng_)(frame)
    xyz = frame.points[:, :3]
    expected = [i for i in range(frame.num_points) if all(rng_[a] <= xyz[i, a] < rng_[a + 3] for a in range(3))]
    assert np.array_equal(points.points, frame.points[expected])
    boxes = BoxRangeFilter(rng_)(frame)
    kept = [j for j in range(frame.num_boxes) if all(rng_[a] <= frame.boxes[j, a] < rng_[a + 3] for a in range(2))]
    assert 0 < len(kept) < frame.num_boxes
    assert np.array_equal(boxes.boxes, frame.boxes[kept])
    assert np.array_equal(boxes.labels, frame.labels[kept])
    assert np.array_equal(boxes.difficulty, frame.difficulty[kept])
    assert boxes.attributes == [frame.attributes[j] for j in kept]
    assert np.array_equal(boxes.points, frame.points)


def test_pipeline_from_dict_is_ordered_and_reproducible():
    cfg = {
        "shuffle": True,
        "point_cloud_range": [-10, -10, -3, 10, 10, 3],
        "translation_std": [0.2, 0.2, 0.1],
        "scale_range": [0.95, 1.05],
        "rotation_range": [-0.78, 0.78],
        "flip_axes": ["x"],
    }
    aug = DetectionAugmentation(cfg)
    assert [type(t).__name__ for t in aug.transforms] == [
        "RandomFlip",
        "GlobalRotation",
        "GlobalScaling",
        "GlobalTranslation",
        "PointRangeFilter",
        "BoxRangeFilter",
        "ShufflePoints",
    ]
    frame = make_frame(11)
    a, b = aug(frame, np.random.default_rng(5)), aug(frame, np.random.default_rng(5))
    c = aug(frame, np.random.default_rng(6))
    assert np.array_equal(a.points, b.points) and np.array_equal(a.boxes, b.boxes)
    assert not np.array_equal(a.points[:, :3], c.points[:, :3])
    assert DetectionAugmentation({}).transforms == [] and DetectionAugmentation(None).transforms == []
    seen = []

    def sampler(f, rng):  # ground-truth sampling runs first, on the frame as given
        seen.append(f)
        return f

    aug = DetectionAugmentation(cfg, gt_sampler=sampler)
    assert aug.transforms[0] is sampler
    aug(frame, np.random.default_rng(5))
    assert len(seen) == 1 and seen[0] is frame


def test_keep_boxes_accepts_masks_and_indices():
    frame = make_frame(12)
    mask = np.array([True, False, True, False, False, True])
    by_mask, by_index = keep_boxes(frame, mask), keep_boxes(frame, [0, 2, 5])
    assert by_mask.attributes == by_index.attributes == ["obj0", "obj2", "obj5"]
    assert np.array_equal(by_mask.num_lidar_points, frame.num_lidar_points[[0, 2, 5]])


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="unknown key 'rotation'"):
        DetectionAugmentation({"rotation": [0, 1]})
    with pytest.raises(ValueError, match="twice"):
        DetectionAugmentation({"rotation_range": [0, 1], "WORLD_ROT_ANGLE": [0, 1]})
    with pytest.raises(ValueError, match="scale_range"):
        GlobalScaling((1.1, 0.9))
    with pytest.raises(ValueError, match="axes"):
        RandomFlip(("z",))
    with pytest.raises(ValueError, match="point_cloud_range"):
        PointRangeFilter([0, 0, 0, -1, 1, 1])
    with pytest.raises(ValueError, match="axis"):
        flip_frame(make_frame(0), "z")
    with pytest.raises(TypeError, match="Generator"):
        DetectionAugmentation({"flip_axes": ["x"]})(make_frame(0), 3)
    with pytest.raises(ValueError, match="mask"):
        keep_boxes(make_frame(0), np.ones(2, dtype=bool))
