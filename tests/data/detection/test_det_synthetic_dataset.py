"""SyntheticLidarDataset / generate_frame: determinism, boxes around their points, point counts and
filtering, class subsets, class sizes and velocities in frames, refused arguments."""

import numpy as np
import pytest

from largekernel3d.data.detection import DetectionDataset, LidarFrame
from largekernel3d.data.detection.synthetic import (
    CLASS_SIZES,
    OBJECT_CLASSES,
    SEMANTIC_CLASSES,
    LidarSpec,
    StreetSceneConfig,
    SyntheticLidarDataset,
    generate_frame,
)

FAST = LidarSpec(beams=16, azimuth_resolution_deg=0.8)
CLEAN = LidarSpec(beams=32, azimuth_resolution_deg=0.6, range_noise_std=0.0)
SMALL = StreetSceneConfig(half_length=40.0)


@pytest.fixture(scope="module")
def clean_frames():
    return [generate_frame((3, i), CLEAN, SMALL) for i in range(3)]


def _in_box_frame(points, box):
    """Points [N, 3] in the frame of box [x, y, z, dx, dy, dz, yaw]: R(-yaw) (p - c)."""
    c, s = np.cos(box[6]), np.sin(box[6])
    rel = points - box[:3]
    return np.c_[rel[:, 0] * c + rel[:, 1] * s, -rel[:, 0] * s + rel[:, 1] * c, rel[:, 2]]


def test_frames_are_deterministic_per_seed_and_index():
    ds = SyntheticLidarDataset(4, seed=5, spec=FAST, scene_config=SMALL)
    a, b = ds[2], ds[2]
    c = generate_frame((5, 2), FAST, SMALL)
    for other in (b, c):
        np.testing.assert_array_equal(a.points, other.points)
        np.testing.assert_array_equal(a.boxes, other.boxes)
        np.testing.assert_array_equal(a.labels, other.labels)
        np.testing.assert_array_equal(a.point_labels, other.point_labels)
    assert isinstance(ds, DetectionDataset) and len(ds) == 4 and isinstance(a, LidarFrame)
    # frame i does not depend on the dataset's length or on the other frames
    np.testing.assert_array_equal(SyntheticLidarDataset(9, seed=5, spec=FAST, scene_config=SMALL)[2].points, a.points)
    other_seed = SyntheticLidarDataset(4, seed=6, spec=FAST, scene_config=SMALL)[2]
    other_index = ds[1]
    for other in (other_seed, other_index):
        assert other.points.shape != a.points.shape or not np.array_equal(other.points, a.points)


def test_every_box_contains_its_points_without_noise(clean_frames):
    checked = 0
    for frame in clean_frames:
        index = frame.metadata["point_box_index"]
        assert index.shape == (frame.num_points,) and index.max() < frame.num_boxes
        for i, box in enumerate(frame.boxes.astype(np.float64)):
            local = _in_box_frame(frame.points[index == i, :3].astype(np.float64), box)
            assert np.all(np.abs(local) <= box[3:6] / 2 + 2e-3), (frame.name, i)
            checked += len(local)
    assert checked > 500


def test_boxes_contain_their_points_up_to_the_range_noise():
    spec = LidarSpec(beams=32, azimuth_resolution_deg=0.6, range_noise_std=0.03)
    frame = generate_frame((3, 0), spec, SMALL)
    index = frame.metadata["point_box_index"]
    for i, box in enumerate(frame.boxes.astype(np.float64)):
        local = _in_box_frame(frame.points[index == i, :3].astype(np.float64), box)
        assert np.all(np.abs(local) <= box[3:6] / 2 + 6 * 0.03)


def test_point_counts_and_semantic_labels_match_the_boxes(clean_frames):
    for frame in clean_frames:
        index = frame.metadata["point_box_index"]
        counts = np.bincount(index[index >= 0], minlength=frame.num_boxes)
        np.testing.assert_array_equal(frame.num_lidar_points, counts)
        assert np.all(frame.num_lidar_points >= 1)
        for i, label in enumerate(frame.labels):
            semantic = SEMANTIC_CLASSES.index(OBJECT_CLASSES[label].lower())
            assert np.all(frame.point_labels[index == i] == semantic)
        assert frame.point_labels.max() < len(SEMANTIC_CLASSES) and frame.point_labels.min() >= 0


def test_sparse_boxes_are_dropped_or_kept_with_their_count():
    dropped = generate_frame((8, 1), FAST, SMALL, min_points=5)
    kept = generate_frame((8, 1), FAST, SMALL, min_points=5, keep_sparse=True)
    assert np.all(dropped.num_lidar_points >= 5)
    assert kept.num_boxes > dropped.num_boxes and (kept.num_lidar_points < 5).any()
    # the points are the same; only the boxes differ
    np.testing.assert_array_equal(dropped.points, kept.points)
    dense = kept.boxes[kept.num_lidar_points >= 5]
    np.testing.assert_array_equal(np.sort(dense, axis=0), np.sort(dropped.boxes, axis=0))


def test_class_subset_and_order():
    frame = generate_frame((8, 2), FAST, SMALL, class_names=("Pedestrian", "Car"))
    full = generate_frame((8, 2), FAST, SMALL)
    assert set(frame.labels.tolist()) <= {0, 1}
    assert (frame.labels == 0).sum() == (full.labels == OBJECT_CLASSES.index("Pedestrian")).sum()
    assert (frame.labels == 1).sum() == (full.labels == OBJECT_CLASSES.index("Car")).sum()
    ds = SyntheticLidarDataset(2, spec=FAST, scene_config=SMALL, class_names=("Car",))
    assert ds.num_classes == 1 and ds.class_names == ("Car",)


def test_frame_boxes_have_class_sizes_and_heading_velocities():
    frames = [generate_frame((12, i), FAST, SMALL, min_points=0, keep_sparse=True) for i in range(3)]
    seen = set()
    for frame in frames:
        assert frame.boxes.shape[1] == 9 and frame.has_velocity and frame.boxes.dtype == np.float32
        for box, label, attribute in zip(frame.boxes.astype(np.float64), frame.labels, frame.attributes, strict=True):
            name = OBJECT_CLASSES[label]
            seen.add(name)
            stats = CLASS_SIZES[name]
            assert np.all(box[3:6] >= np.asarray(stats.low) - 1e-4)
            assert np.all(box[3:6] <= np.asarray(stats.high) + 1e-4)
            speed = np.hypot(box[7], box[8])
            if attribute.endswith(("parked", "stopped", "standing")):
                assert speed == 0.0
            else:
                assert speed > 0.5
                np.testing.assert_allclose(box[7:9], speed * np.array([np.cos(box[6]), np.sin(box[6])]), atol=1e-4)
    assert {"Car", "Pedestrian"} <= seen


def test_boxes_stand_on_the_scanned_ground(clean_frames):
    ground_ids = [SEMANTIC_CLASSES.index("road"), SEMANTIC_CLASSES.index("sidewalk")]
    checked = 0
    for frame in clean_frames:
        ground = frame.points[np.isin(frame.point_labels, ground_ids), :3]
        for box in frame.boxes:
            near = np.hypot(ground[:, 0] - box[0], ground[:, 1] - box[1]) < 3.0
            if near.sum() >= 5:
                checked += 1
                # within a curb height and the slope over 3 m of the ground around the box
                assert abs(np.median(ground[near, 2]) - (box[2] - box[5] / 2)) < 0.3
    assert checked > 10


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(num_frames=0), ValueError, "num_frames"),
        (dict(num_frames=3, seed=-1), ValueError, "seed"),
        (dict(num_frames=3, class_names=("Car", "Bus")), ValueError, "Bus"),
        (dict(num_frames=3, class_names=()), ValueError, "class_names"),
        (dict(num_frames=3, class_names="Car"), TypeError, "class_names"),
        (dict(num_frames=3, min_points=-1), ValueError, "min_points"),
        (dict(num_frames=3, spec="hdl64"), TypeError, "spec"),
        (dict(num_frames=3, scene_config={}), TypeError, "scene_config"),
    ],
)
def test_bad_dataset_arguments_are_refused(kwargs, error, match):
    with pytest.raises(error, match=match):
        SyntheticLidarDataset(**kwargs)


def test_index_checks():
    ds = SyntheticLidarDataset(2, spec=FAST, scene_config=SMALL)
    with pytest.raises(IndexError):
        ds[2]
    with pytest.raises(TypeError):
        ds["0"]
    with pytest.raises(ValueError, match="seed"):
        generate_frame(-3, FAST, SMALL)
