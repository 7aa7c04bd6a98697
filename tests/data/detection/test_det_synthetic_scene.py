"""Synthetic street scenes: object shapes and sizes, placement without overlap, boxes on the ground,
velocities, determinism."""

import numpy as np
import pytest

from largekernel3d.data.detection.synthetic import (
    CLASS_SIZES,
    OBJECT_CLASSES,
    StreetSceneConfig,
    generate_street_scene,
    make_car,
    make_cyclist,
    make_pedestrian,
    make_truck,
)
from largekernel3d.data.detection.synthetic.categories import CAR, CYCLIST, PEDESTRIAN, TRUCK

shapely = pytest.importorskip("shapely")
from shapely.geometry import Polygon  # noqa: E402

MAKERS = {"Car": make_car, "Truck": make_truck, "Pedestrian": make_pedestrian, "Cyclist": make_cyclist}
SEMANTIC = {"Car": CAR, "Truck": TRUCK, "Pedestrian": PEDESTRIAN, "Cyclist": CYCLIST}
CONFIG = StreetSceneConfig(half_length=45.0)


@pytest.fixture(scope="module")
def scenes():
    return [generate_street_scene(np.random.default_rng(seed), CONFIG) for seed in (11, 12, 13)]


def _footprint(box):
    c, s = np.cos(box[6]), np.sin(box[6])
    local = np.array([[1, 1], [-1, 1], [-1, -1], [1, -1]]) * box[3:5] / 2
    return Polygon(local @ np.array([[c, s], [-s, c]]) + box[:2])


@pytest.mark.parametrize("category", OBJECT_CLASSES)
def test_object_sizes_stay_in_class_ranges(category):
    rng = np.random.default_rng(sum(map(ord, category)))
    sizes = np.array([MAKERS[category](rng).size for _ in range(60)])
    stats = CLASS_SIZES[category]
    assert np.all(sizes >= np.asarray(stats.low) - 1e-9) and np.all(sizes <= np.asarray(stats.high) + 1e-9)
    # drawn around the class statistics (pedestrian length depends on the stride, so only its height)
    check = slice(2, 3) if category == "Pedestrian" else slice(0, 3)
    assert np.all(np.abs(sizes.mean(0) - stats.mean)[check] < 2.5 * np.asarray(stats.std)[check])


@pytest.mark.parametrize("category", OBJECT_CLASSES)
def test_objects_are_composed_shapes_on_the_ground(category):
    model = MAKERS[category](np.random.default_rng(7))
    assert len(model.parts) >= 5  # not a bare box
    assert len(set(model.parts.kind.tolist())) >= 2  # several primitive kinds
    assert np.all(model.parts.semantic == SEMANTIC[category])
    assert model.low[2] == pytest.approx(0.0, abs=1e-9)  # standing on z = 0
    np.testing.assert_allclose(model.low[:2], -model.high[:2], atol=1e-9)  # origin at the bottom centre
    lo, hi = model.parts.bounds()
    np.testing.assert_allclose(np.r_[lo, hi], np.r_[model.low, model.high], atol=1e-9)


def test_car_cabin_narrows_towards_the_roof():
    model = make_car(np.random.default_rng(3), size=(4.6, 1.8, 1.5))
    assert np.allclose(model.size, (4.6, 1.8, 1.5))
    ext = model.parts.extents()
    top = model.parts.centre[:, 2] + ext[:, 2]
    roof = np.argmax(top)  # the roof slab is shorter than the body
    body = np.argmax(ext[:, 0])
    assert ext[roof, 0] < 0.6 * ext[body, 0] and ext[roof, 1] < ext[body, 1]


def test_objects_do_not_overlap(scenes):
    for scene in scenes:
        boxes = scene.boxes()
        polys = [_footprint(b) for b in boxes]
        for i in range(len(boxes)):
            for j in range(i + 1, len(boxes)):
                z_overlap = abs(boxes[i, 2] - boxes[j, 2]) < (boxes[i, 5] + boxes[j, 5]) / 2
                if z_overlap:
                    assert polys[i].intersection(polys[j]).area < 1e-9, (i, j)


def _inside_primitive(prims, i, world):
    """Whether world points ``[K, 3]`` lie in primitive ``i`` (the solids' defining inequalities)."""
    x = (world - prims.centre[i]) @ prims.rotation[i]
    h = prims.half[i]
    kind = int(prims.kind[i])
    if kind == 0:
        return (np.abs(x) <= h).all(1)
    if kind == 1:
        return (x[:, 0] ** 2 + x[:, 1] ** 2 <= h[0] ** 2) & (np.abs(x[:, 2]) <= h[2])
    if kind == 2:
        return ((x / h) ** 2).sum(1) <= 1
    return (x @ prims.planes[i, :, :3].T <= prims.planes[i, :, 3]).all(1)


def test_objects_do_not_overlap_the_background(scenes):
    grid = np.stack(np.meshgrid(*[np.linspace(-0.5, 0.5, 7)] * 3, indexing="ij"), -1).reshape(-1, 3)
    checked = 0
    for scene in scenes:
        bg = scene.background
        reach = np.linalg.norm(bg.half, axis=1)
        for obj in scene.objects:
            b = obj.box
            c, s = np.cos(b[6]), np.sin(b[6])
            local = grid * b[3:6]
            pts = np.c_[local[:, 0] * c - local[:, 1] * s, local[:, 0] * s + local[:, 1] * c, local[:, 2]] + b[:3]
            near = np.linalg.norm(bg.centre - b[:3], axis=1) < reach + np.linalg.norm(b[3:6]) / 2
            for i in np.flatnonzero(near):
                checked += 1
                assert not _inside_primitive(bg, i, pts).any(), (obj.category, obj.box, i)
    assert checked > 20


def test_boxes_stand_on_the_ground_and_enclose_their_parts(scenes):
    for scene in scenes:
        for obj in scene.objects:
            b = obj.box
            assert b[2] - b[5] / 2 == pytest.approx(float(scene.ground.height(b[0], b[1])), abs=1e-6)
            # the parts turned into the box frame, x -> R_z(-yaw) (x - centre), lie inside the box
            c, s = np.cos(-b[6]), np.sin(-b[6])
            shift = -np.array([c * b[0] - s * b[1], s * b[0] + c * b[1], b[2]])
            local = obj.parts.transformed(-b[6], shift)
            reach = np.abs(local.centre) + local.extents()
            assert np.all(reach <= b[3:6] / 2 + 1e-6)
            assert np.allclose(reach.max(axis=0), b[3:6] / 2, atol=1e-6)  # and the box is tight


def test_velocities_follow_the_heading(scenes):
    seen = set()
    for scene in scenes:
        for obj in scene.objects:
            b = obj.box
            speed = np.hypot(b[7], b[8])
            seen.add(obj.attribute)
            if obj.attribute in ("vehicle.parked", "vehicle.stopped", "pedestrian.standing"):
                assert speed == 0.0
                continue
            heading = np.array([np.cos(b[6]), np.sin(b[6])])
            assert speed > 0.5
            assert np.allclose(b[7:9], speed * heading, atol=1e-9)
            limit = {"Car": 15.0, "Truck": 12.0, "Pedestrian": 2.0, "Cyclist": 8.0}[obj.category]
            assert speed <= limit
    assert {"vehicle.parked", "vehicle.moving", "pedestrian.moving"} <= seen


def test_moving_vehicles_drive_along_the_street(scenes):
    for scene in scenes:
        direction = scene.ground.direction
        for obj in scene.objects:
            if obj.category in ("Car", "Truck") and obj.attribute == "vehicle.moving":
                off = np.angle(np.exp(1j * (obj.box[6] - direction)))
                assert min(abs(off), np.pi - abs(off)) < np.radians(6)
                u, v = scene.ground.to_street(obj.box[0], obj.box[1])
                assert abs(v) < scene.ground.road_half_width  # on the road
                assert (v < 0) == (abs(off) < np.pi / 2) or all(lane.direction >= 0 for lane in scene.layout.lanes)


def test_scene_is_a_function_of_the_stream():
    a = generate_street_scene(np.random.default_rng(21), CONFIG)
    b = generate_street_scene(np.random.default_rng(21), CONFIG)
    c = generate_street_scene(np.random.default_rng(22), CONFIG)
    pa, pb = a.primitives(), b.primitives()
    assert np.array_equal(a.boxes(), b.boxes()) and np.array_equal(pa.centre, pb.centre)
    assert np.array_equal(pa.half, pb.half) and np.array_equal(pa.semantic, pb.semantic)
    assert a.boxes().shape != c.boxes().shape or not np.array_equal(a.boxes(), c.boxes())


def test_scene_has_a_street_population(scenes):
    counts = {name: 0 for name in OBJECT_CLASSES}
    for scene in scenes:
        for obj in scene.objects:
            counts[obj.category] += 1
        semantic = set(scene.background.semantic.tolist())
        assert len(semantic) >= 4  # buildings, trees/bushes, poles, signs
    assert counts["Car"] >= 10 and counts["Pedestrian"] >= 5


def test_bad_scene_config_is_refused():
    with pytest.raises(ValueError, match="lane_width"):
        StreetSceneConfig(lane_width=(3.6, 3.0))
    with pytest.raises(ValueError, match="parking_probability"):
        StreetSceneConfig(parking_probability=1.5)
    with pytest.raises(ValueError, match="half_length"):
        StreetSceneConfig(half_length=5.0)
    with pytest.raises(ValueError, match="lanes_per_direction"):
        StreetSceneConfig(lanes_per_direction=(0, 2))
    with pytest.raises(TypeError, match="rng"):
        generate_street_scene(0, CONFIG)
