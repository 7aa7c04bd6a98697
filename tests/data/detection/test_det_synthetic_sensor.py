"""The synthetic spinning LiDAR: range and field of view, the beam fan, intensities, density over range,
occlusion, and refused configurations."""

import numpy as np
import pytest

from largekernel3d.data.detection.synthetic import (
    IntensityModel,
    LidarSpec,
    PartsBuilder,
    Primitives,
    StreetGround,
    StreetScene,
    StreetSceneConfig,
    generate_frame,
    make_car,
    place_object,
    scan,
)
from largekernel3d.data.detection.synthetic.categories import BUILDING, CAR, ROAD, VEGETATION
from largekernel3d.data.detection.synthetic.materials import FACADE, FOLIAGE

FAST = LidarSpec(beams=16, azimuth_resolution_deg=1.0)
SMALL = StreetSceneConfig(half_length=40.0)
FLAT = StreetGround(road_half_width=200.0)  # one road everywhere


def _scene(objects=(), background=None):
    return StreetScene(FLAT, background if background is not None else Primitives.empty(), tuple(objects))


def _car(x, y=0.0):
    model = make_car(np.random.default_rng(0), size=(4.5, 1.8, 1.5))
    return place_object(model, x, y, 0.0, 0.0)


@pytest.fixture(scope="module")
def frame():
    return generate_frame(4, LidarSpec(beams=32, azimuth_resolution_deg=0.6), SMALL)


def test_points_respect_range_and_beam_fan(frame):
    spec = LidarSpec(beams=32, azimuth_resolution_deg=0.6)
    p = frame.points.astype(np.float64)
    r = np.linalg.norm(p[:, :3], axis=1)
    assert np.all(r >= spec.min_range - 1e-4) and np.all(r <= spec.max_range + 1e-4)
    elevation = np.arcsin(p[:, 2] / r)
    beams = spec.elevations()
    assert np.all(elevation >= beams[0] - 1e-4) and np.all(elevation <= beams[-1] + 1e-4)
    # every point lies on the cone of its own laser (range noise moves points along the ray only)
    np.testing.assert_allclose(elevation, beams[frame.metadata["ring"]], atol=2e-4)
    assert np.isfinite(frame.points).all()
    assert frame.points.dtype == np.float32 and frame.point_features == ("x", "y", "z", "intensity")


def test_intensity_lies_in_unit_interval_and_depends_on_material(frame):
    intensity = frame.points[:, 3]
    assert intensity.min() >= 0.0 and intensity.max() <= 1.0
    assert intensity.std() > 0.03
    labels = frame.point_labels
    road, building = intensity[labels == ROAD], intensity[labels == BUILDING]
    assert np.median(building) > np.median(road)  # facades return more than asphalt


def test_ground_lies_at_minus_mount_height_near_the_sensor():
    spec = LidarSpec(beams=16, azimuth_resolution_deg=1.0, mount_height=1.73, vertical_fov=(-25.0, -5.0))
    out = scan(_scene(), spec, np.random.default_rng(1))
    near = np.hypot(out.points[:, 0], out.points[:, 1]) < 10.0
    assert near.sum() > 1000
    assert np.all(np.abs(out.points[near, 2] + 1.73) < 5 * spec.range_noise_std)


def test_ground_density_falls_with_range():
    spec = LidarSpec(beams=32, azimuth_resolution_deg=0.5, dropout_probability=0.0)
    out = scan(_scene(), spec, np.random.default_rng(2))
    r = np.hypot(out.points[:, 0], out.points[:, 1])

    def per_square_metre(r0, r1):
        return ((r >= r0) & (r < r1)).sum() / (np.pi * (r1**2 - r0**2))

    near, far = per_square_metre(9.0, 11.0), per_square_metre(28.0, 32.0)
    assert near > 4 * far > 0  # about 1 / r^2 for a flat ground


def test_intensity_falls_with_range_on_uniform_ground():
    spec = LidarSpec(beams=32, azimuth_resolution_deg=1.0, intensity=IntensityModel(noise_std=0.0))
    out = scan(_scene(), spec, np.random.default_rng(3))
    r = np.linalg.norm(out.points[:, :3], axis=1)
    near, far = out.points[r < 8, 3], out.points[(r > 20) & (r < 40), 3]
    assert near.mean() > far.mean() > 0


def test_occlusion_by_a_building_and_by_another_car():
    rng = np.random.default_rng(4)
    spec = LidarSpec(beams=32, azimuth_resolution_deg=0.3)
    alone = scan(_scene([_car(15.0)]), spec, rng)
    seen = (alone.instance == 0).sum()
    assert seen > 100 and np.all(alone.semantic[alone.instance == 0] == CAR)
    wall = PartsBuilder()
    wall.box((8.0, -3.0, 0.0), (9.0, 3.0, 4.0), BUILDING, FACADE)
    hidden = scan(_scene([_car(15.0)], wall.build()), spec, np.random.default_rng(4))
    assert (hidden.instance == 0).sum() == 0
    behind = scan(_scene([_car(15.0), _car(8.0)]), spec, np.random.default_rng(4))
    assert 0 < (behind.instance == 0).sum() < 0.5 * seen
    assert (behind.instance == 1).sum() > seen  # the nearer car gets more points


def test_foliage_is_entered_and_partly_passed_through():
    spec = LidarSpec(beams=32, azimuth_resolution_deg=0.3, range_noise_std=0.0, dropout_probability=0.0)
    parts = PartsBuilder()
    centre, semi = np.array([10.0, 0.0, 2.0]), np.array([2.0, 2.0, 1.5])
    parts.ellipsoid(centre, semi, VEGETATION, FOLIAGE)
    parts.box((16.0, -8.0, 0.0), (17.0, 8.0, 6.0), BUILDING, FACADE)
    out = scan(_scene(background=parts.build()), spec, np.random.default_rng(6))
    world = out.points[:, :3] + [0.0, 0.0, spec.mount_height]
    leaves = world[out.semantic == VEGETATION]
    assert len(leaves) > 100 and np.all((((leaves - centre) / semi) ** 2).sum(1) <= 1 + 1e-6)  # inside the crown
    # how far past the crown's surface each return lies: the entry of its ray, |o + t d - c|_semi = 1
    origin = np.array([0.0, 0.0, spec.mount_height])
    r = np.linalg.norm(leaves - origin, axis=1)
    d = (leaves - origin) / r[:, None]
    oc, ds = (origin - centre) / semi, d / semi
    a, b, c = (ds * ds).sum(1), (oc * ds).sum(1), (oc * oc).sum() - 1
    entry = (-b - np.sqrt(b * b - a * c)) / a
    depth = r - entry
    assert np.all(depth >= -1e-6)
    assert (depth > 0.05).mean() > 0.5 and 0.1 < depth.mean() < FOLIAGE.free_path * 1.5
    # some rays through the crown (those with a short chord) reach the wall behind it
    wall = world[out.semantic == BUILDING]
    d = (wall - origin) / np.linalg.norm(wall - origin, axis=1, keepdims=True)
    ds = d / semi
    a, b = (ds * ds).sum(1), (oc * ds).sum(1)
    crosses = b * b - a * c > 0
    assert crosses.sum() > 10


def test_facade_windows_return_less_often_and_weaker():
    spec = LidarSpec(beams=32, azimuth_resolution_deg=0.3, dropout_probability=0.0)
    counts = []
    for windows in (None, (2.0, 0.5, 0.5, 3.0, 0.5)):
        parts = PartsBuilder()
        parts.box((12.0, -10.0, 0.0), (13.0, 10.0, 12.0), BUILDING, FACADE, windows=windows)
        out = scan(_scene(background=parts.build()), spec, np.random.default_rng(7))
        wall = out.semantic == BUILDING
        counts.append((wall.sum(), np.percentile(out.points[wall, 3], 10)))
    (plain, plain_low), (glazed, glazed_low) = counts
    assert glazed < 0.95 * plain and glazed_low < 0.5 * plain_low


def test_more_beams_see_the_same_scene_with_more_points():
    a = generate_frame(9, LidarSpec(beams=16, azimuth_resolution_deg=1.0), SMALL, keep_sparse=True, min_points=0)
    b = generate_frame(9, LidarSpec(beams=32, azimuth_resolution_deg=1.0), SMALL, keep_sparse=True, min_points=0)
    np.testing.assert_array_equal(a.boxes, b.boxes)  # the scene does not depend on the sensor
    assert 1.7 < b.num_points / a.num_points < 2.3


def test_explicit_beam_angles():
    angles = (-2.5, -15.0, -8.0, -4.0)  # any order
    spec = LidarSpec.from_beam_angles(angles, azimuth_resolution_deg=1.0)
    out = scan(_scene([_car(10.0)]), spec, np.random.default_rng(5))
    r = np.linalg.norm(out.points[:, :3], axis=1)
    elevation = np.degrees(np.arcsin(out.points[:, 2] / r))
    np.testing.assert_allclose(elevation, np.sort(angles)[out.beam], atol=0.02)  # beams ascending
    assert set(out.beam.tolist()) == {0, 1, 2, 3}


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(beams=0), "beams"),
        (dict(beams=-4), "beams"),
        (dict(beams=2.5), "beams"),
        (dict(max_range=1.0, min_range=2.0), "max_range"),
        (dict(max_range=5.0, min_range=5.0), "max_range"),
        (dict(vertical_fov=(3.0, -25.0)), "vertical_fov"),
        (dict(beams=3, beam_angles=(1.0, 2.0)), "beam_angles"),
        (dict(azimuth_resolution_deg=0.0), "azimuth_resolution_deg"),
        (dict(dropout_probability=1.0), "dropout"),
        (dict(mount_height=0.0), "mount_height"),
        (dict(range_noise_std=-0.1), "range_noise_std"),
    ],
)
def test_bad_sensor_config_is_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        LidarSpec(**kwargs)


def test_bad_intensity_model_is_refused():
    with pytest.raises(ValueError, match="ambient"):
        IntensityModel(ambient=1.5)
    with pytest.raises(ValueError, match="range_decay"):
        IntensityModel(range_decay=0.0)
    with pytest.raises(TypeError, match="spec"):
        scan(_scene(), "64 beams", np.random.default_rng(0))
