"""Synthetic LiDAR geometry: ray/solid kernels, ground crossing and window culling against brute force.

References are independent of the code under test: inside-tests written here from the solids' defining
inequalities, rays marched in small steps, and the nearest hit over every ray-primitive pair without
culling.
"""

from dataclasses import replace

import numpy as np
import pytest

from largekernel3d.data.detection.synthetic import LidarSpec, PartsBuilder, StreetGround, StreetSceneConfig
from largekernel3d.data.detection.synthetic.categories import ROAD, SIDEWALK
from largekernel3d.data.detection.synthetic.intersect import (
    box_interval,
    convex_interval,
    convex_slack,
    cylinder_interval,
    ellipsoid_interval,
)
from largekernel3d.data.detection.synthetic.materials import CONCRETE
from largekernel3d.data.detection.synthetic.primitives import Kind, rot_x, rot_y, rot_z
from largekernel3d.data.detection.synthetic.raycast import cast_rays
from largekernel3d.data.detection.synthetic.scene import generate_street_scene
from largekernel3d.data.detection.synthetic.sensor import ray_directions

STEP = 2e-3


def _random_rotation(rng):
    return rot_z(rng.uniform(-np.pi, np.pi)) @ rot_y(rng.uniform(-1, 1)) @ rot_x(rng.uniform(-1, 1))


def _inside(kind, x, half, planes=None):
    """Membership of local points ``x`` [..., 3] written from the defining inequalities."""
    if kind == "box":
        return (np.abs(x) <= half).all(-1)
    if kind == "cylinder":
        return (x[..., 0] ** 2 + x[..., 1] ** 2 <= half[0] ** 2) & (np.abs(x[..., 2]) <= half[2])
    if kind == "ellipsoid":
        return ((x / half) ** 2).sum(-1) <= 1.0
    return (x @ planes[:, :3].T <= planes[:, 3]).all(-1)


def _march(kind, o, d, half, planes=None, t_max=8.0):
    """First sampled t at which o + t d is inside (inf when never)."""
    t = np.arange(0.0, t_max, STEP)
    pts = o[:, None, :] + t[None, :, None] * d[:, None, :]
    inside = _inside(kind, pts, half, planes)
    first = np.where(inside.any(1), t[np.argmax(inside, axis=1)], np.inf)
    return first


def _random_planes(rng):
    builder = PartsBuilder()
    lo, hi = -rng.uniform(0.5, 1.2, 3), rng.uniform(0.5, 1.2, 3)
    cuts = [(rng.normal(size=3), rng.uniform(-0.3, 0.3, 3)) for _ in range(4)]
    builder.convex(lo, hi, cuts, 0, CONCRETE)
    prim = builder.build()
    return prim.planes[0], prim.half[0]


@pytest.mark.parametrize("kind", ["box", "cylinder", "ellipsoid", "convex"])
def test_kernel_entry_matches_marching(kind):
    rng = np.random.default_rng({"box": 1, "cylinder": 2, "ellipsoid": 3, "convex": 4}[kind])
    n = 300
    if kind == "convex":
        planes, half = _random_planes(rng)
    else:
        half = rng.uniform(0.2, 1.2, 3)
        if kind == "cylinder":
            half[1] = half[0]
        planes = None
    # origins on a sphere of radius 4 around the solid, aimed at random points near it
    o = rng.normal(size=(n, 3))
    o = 4.0 * o / np.linalg.norm(o, axis=1, keepdims=True)
    target = rng.uniform(-1.5, 1.5, (n, 3)) * np.maximum(half, 0.5)
    d = target - o
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    if kind == "box":
        t_in, t_out = box_interval(o, d, np.broadcast_to(half, (n, 3)))
    elif kind == "cylinder":
        t_in, t_out = cylinder_interval(o, d, np.broadcast_to(half, (n, 3)))
    elif kind == "ellipsoid":
        t_in, t_out = ellipsoid_interval(o, d, np.broadcast_to(half, (n, 3)))
    else:
        pl = np.broadcast_to(planes, (n,) + planes.shape)
        t_in, t_out = convex_interval(convex_slack(o, pl), d, pl)
    ref = _march(kind, o, d, half, planes)
    hit = np.isfinite(ref)
    assert 0.2 < hit.mean() < 0.95  # the rays both hit and miss
    grazing = np.isfinite(t_in) & ~hit & (t_out - t_in < 2 * STEP)
    assert (np.isfinite(t_in) == hit)[~grazing].all()
    assert np.all(np.abs(t_in[hit] - ref[hit]) <= STEP + 1e-9)
    # the exit point is on the boundary: just before it inside, just after it outside
    ok = hit & (t_out - t_in > 4 * STEP)
    before = o[ok] + (t_out[ok] - STEP)[:, None] * d[ok]
    after = o[ok] + (t_out[ok] + STEP)[:, None] * d[ok]
    assert _inside(kind, before, half, planes).all() and not _inside(kind, after, half, planes).any()


@pytest.mark.parametrize("kind", [Kind.BOX, Kind.CYLINDER, Kind.ELLIPSOID, Kind.CONVEX])
def test_extents_bound_sampled_points_tightly(kind):
    rng = np.random.default_rng(10 + int(kind))
    b = PartsBuilder()
    for _ in range(5):
        c = rng.normal(size=3)
        if kind == Kind.BOX:
            b.oriented_box(c, rng.uniform(0.2, 2, 3), _random_rotation(rng), 0, CONCRETE)
        elif kind == Kind.CYLINDER:
            b.cylinder(c, rng.uniform(0.1, 1), rng.uniform(0.2, 2), rng.normal(size=3), 0, CONCRETE)
        elif kind == Kind.ELLIPSOID:
            b.ellipsoid(c, rng.uniform(0.1, 1, 3), 0, CONCRETE, rotation=_random_rotation(rng))
        else:
            b.convex(
                c - rng.uniform(0.3, 1, 3),
                c + rng.uniform(0.3, 1, 3),
                [(rng.normal(size=3), c + rng.uniform(-0.2, 0.2, 3))],
                0,
                CONCRETE,
            )
    prims = b.build()
    ext = prims.extents()
    name = {Kind.BOX: "box", Kind.CYLINDER: "cylinder", Kind.ELLIPSOID: "ellipsoid", Kind.CONVEX: "convex"}[kind]
    for i in range(len(prims)):
        local = rng.uniform(-1, 1, (200000, 3)) * prims.half[i]
        local = local[_inside(name, local, prims.half[i], prims.planes[i])]
        world = local @ prims.rotation[i].T + prims.centre[i]
        lo, hi = world.min(0), world.max(0)
        assert np.all(lo >= prims.centre[i] - ext[i] - 1e-9) and np.all(hi <= prims.centre[i] + ext[i] + 1e-9)
        assert np.all(hi - lo >= 0.93 * 2 * ext[i])  # tight: the samples reach close to the bounds


def test_ground_crossing_matches_marching():
    rng = np.random.default_rng(5)
    ground = StreetGround(
        direction=0.3,
        lateral_offset=-2.0,
        road_half_width=5.0,
        curb_height=0.15,
        grade=0.04,
        curvature=-4e-4,
        cross_street=(14.0, 5.0),
    )
    origin = np.array([0.0, 0.0, 1.8])
    n = 400
    el = np.radians(rng.uniform(-25, -3, n))
    az = rng.uniform(-np.pi, np.pi, n)
    d = np.c_[np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)]
    hits = ground.intersect(origin, d)
    step = 0.01
    t = np.arange(0.0, 100.0, step)
    pts = origin + t[None, :, None] * d[:, None, :]
    below = pts[..., 2] <= ground.height(pts[..., 0], pts[..., 1])
    ref = np.where(below.any(1), t[np.argmax(below, axis=1)], np.inf)
    both = np.isfinite(ref) & np.isfinite(hits.t)
    assert both.mean() > 0.9 and (np.isfinite(ref) == np.isfinite(hits.t)).all()
    assert np.all(np.abs(hits.t[both] - ref[both]) <= step + 1e-9)
    p = origin + hits.t[both, None] * d[both]
    u, v = ground.to_street(p[:, 0], p[:, 1])
    on_top = np.abs(p[:, 2] - ground.height(p[:, 0], p[:, 1])) < 1e-6  # not on a curb face
    expect = np.where(ground.is_road(u, v), ROAD, SIDEWALK)
    assert (hits.semantic[both][on_top] == expect[on_top]).all()
    assert (~on_top).any() and (hits.semantic[both][~on_top] == SIDEWALK).all()  # curb faces are sidewalk


def test_window_culling_finds_the_same_nearest_hits_as_brute_force():
    scene = generate_street_scene(np.random.default_rng(3), StreetSceneConfig(half_length=30.0))
    prims = scene.primitives()
    prims = replace(prims, free_path=np.zeros(len(prims)))  # no random penetration
    spec = LidarSpec(beams=8, azimuth_resolution_deg=2.0, max_range=60.0)
    origin = np.array([0.0, 0.0, spec.mount_height])
    el, az = spec.elevations(), spec.azimuths(0.0123)
    hits = cast_rays(origin, el, az, prims, scene.ground, np.random.default_rng(0), spec.max_range)
    dirs = ray_directions(el, az).reshape(-1, 3)
    best = scene.ground.intersect(origin, dirs).t.copy()
    best[best > spec.max_range] = np.inf
    winner = np.full(len(dirs), -1)
    for i in range(len(prims)):
        r = prims.rotation[i]
        o = np.broadcast_to(r.T @ (origin - prims.centre[i]), dirs.shape)
        d = dirs @ r
        if prims.kind[i] == Kind.CONVEX:
            pl = np.broadcast_to(prims.planes[i], (len(dirs),) + prims.planes[i].shape)
            t_in, _ = convex_interval(convex_slack(o, pl), d, pl)
        else:
            fn = {Kind.BOX: box_interval, Kind.CYLINDER: cylinder_interval, Kind.ELLIPSOID: ellipsoid_interval}
            t_in, _ = fn[Kind(prims.kind[i])](o, d, np.broadcast_to(prims.half[i], dirs.shape))
        better = (t_in > 1e-6) & (t_in <= spec.max_range) & (t_in < best)
        best[better], winner[better] = t_in[better], i
    assert hits.pairs < 0.2 * len(dirs) * len(prims)  # culling skips most pairs
    assert np.array_equal(np.isfinite(hits.t), np.isfinite(best))
    finite = np.isfinite(best)
    np.testing.assert_allclose(hits.t[finite], best[finite], rtol=0, atol=1e-9)
    assert (hits.primitive >= 0).sum() > 100
    assert np.array_equal(hits.primitive, winner)
