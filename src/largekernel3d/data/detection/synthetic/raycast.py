"""Casting the sensor's rays against the ground and the primitives: nearest hit per ray.

The rays form a ``[B, A]`` grid (beam elevations ascending x azimuth columns) from one origin. Testing
every ray against every primitive would cost ``B * A * P`` tests; instead each primitive is tested only
against the rays that can reach it. Its bounding sphere (centre ``c``, radius ``rho``, at distance
``D = |c - o|`` from the origin and ``D_xy`` in the ground plane) is seen within

    azimuth   atan2(c_y, c_x) +- asin(rho / D_xy)       (all azimuths when D_xy <= rho)
    elevation atan2(c_z, D_xy) +- asin(rho / D)          (all beams when D <= rho)

which selects a contiguous band of beams and a (wrapping) run of azimuth columns: the primitive's
window. Primitives farther than ``max_range + rho`` are skipped. The ray-primitive pairs of all windows
are tested kind by kind with the kernels of :mod:`.intersect`, in chunks to bound memory. Porous
primitives (``free_path > 0``) return a ray at ``t_in + Exp(free_path)`` when that is before ``t_out``
and let it pass otherwise. The nearest crossing over the ground and all pairs wins.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

import numpy as np

from .ground import GroundHits, StreetGround
from .intersect import box_interval, convex_interval, convex_slack, cylinder_interval, ellipsoid_interval, local_normals
from .primitives import Kind, Primitives
from .sensor import ray_directions

CHUNK = 1 << 16
_NONE = np.iinfo(np.int64).max


@dataclass(frozen=True)
class RayHits:
    """Nearest hit of each of the ``R = B * A`` rays (beam-major order).

    Attributes:
        t: float64 ``[R]`` distance along the unit ray (``inf`` = no hit within ``max_range``).
        primitive: int64 ``[R]`` index of the primitive hit, -1 where the ground (or nothing) was hit.
        normal: float64 ``[R, 3]`` unit surface normal at the hit (world frame; zeros where no hit).
        local: float64 ``[R, 3]`` hit point in the frame of the primitive hit (zeros elsewhere).
        ground: the :class:`GroundHits` of all rays (semantic class and reflectivity of ground hits).
        pairs: number of ray-primitive pairs tested.
    """

    t: np.ndarray
    primitive: np.ndarray
    normal: np.ndarray
    local: np.ndarray
    ground: GroundHits
    pairs: int


def primitive_windows(
    prims: Primitives, origin: np.ndarray, elevations: np.ndarray, azimuths: np.ndarray, max_range: float
) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Ray windows of the primitives (see the module docstring).

    ``elevations`` ``[B]`` ascending, ``azimuths`` ``[A]`` evenly spaced from ``azimuths[0]`` over a full
    turn. Returns int64 ``[P]`` arrays ``(beam0, beams, col0, cols)``: primitive ``p`` is tested
    against beams ``beam0 .. beam0 + beams - 1`` and columns ``(col0 + j) mod A`` for ``j < cols``.
    """
    n_cols = len(azimuths)
    step = 2.0 * np.pi / n_cols
    rel = prims.centre - origin
    radius = prims.bounding_radius()
    dist = np.linalg.norm(rel, axis=1)
    dxy = np.hypot(rel[:, 0], rel[:, 1])
    with np.errstate(divide="ignore", invalid="ignore"):
        cone = np.arcsin(np.clip(radius / dist, 0.0, 1.0))
        fan = np.arcsin(np.clip(radius / dxy, 0.0, 1.0))
    centre_el = np.arctan2(rel[:, 2], dxy)
    inside = dist <= radius
    beam0 = np.where(inside, 0, np.searchsorted(elevations, centre_el - cone, side="left"))
    beam1 = np.where(inside, len(elevations), np.searchsorted(elevations, centre_el + cone, side="right"))
    centre_az = np.arctan2(rel[:, 1], rel[:, 0])
    all_round = dxy <= radius
    first = np.ceil((centre_az - fan - azimuths[0]) / step)
    last = np.floor((centre_az + fan - azimuths[0]) / step)
    first, last = np.where(all_round, 0, first).astype(np.int64), np.where(all_round, 0, last).astype(np.int64)
    col0 = np.where(all_round, 0, np.mod(first, n_cols))
    cols = np.where(all_round, n_cols, np.clip(last - first + 1, 0, n_cols))
    beams = np.clip(beam1 - beam0, 0, None)
    reachable = dist - radius <= max_range
    return (
        beam0.astype(np.int64),
        np.where(reachable, beams, 0).astype(np.int64),
        col0.astype(np.int64),
        np.where(reachable, cols, 0).astype(np.int64),
    )


def _pairs(
    idx: np.ndarray, beam0: np.ndarray, beams: np.ndarray, col0: np.ndarray, cols: np.ndarray, n_cols: int
) -> Tuple[np.ndarray, np.ndarray]:
    """``(primitive, ray)`` int64 arrays of every pair in the windows of the primitives ``idx``."""
    counts = beams[idx] * cols[idx]
    total = int(counts.sum())
    prim = np.repeat(idx, counts)
    k = np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(counts) - counts, counts)
    width = cols[prim]
    beam = beam0[prim] + k // width
    col = np.mod(col0[prim] + k % width, n_cols)
    return prim, beam * n_cols + col


_INTERVAL = {Kind.BOX: box_interval, Kind.CYLINDER: cylinder_interval, Kind.ELLIPSOID: ellipsoid_interval}


def cast_rays(
    origin,
    elevations: np.ndarray,
    azimuths: np.ndarray,
    prims: Primitives,
    ground: StreetGround,
    rng: np.random.Generator,
    max_range: float,
) -> RayHits:
    """Nearest hits of the rays from ``origin`` ``[3]`` over ``elevations`` ``[B]`` (ascending, radians)
    x ``azimuths`` ``[A]`` (radians, a full turn) against ``ground`` and ``prims`` (world frame).
    ``rng`` draws the penetration depths in porous primitives. Returns :class:`RayHits`."""
    origin = np.asarray(origin, dtype=np.float64)
    n_cols = len(azimuths)
    dirs = ray_directions(elevations, azimuths).reshape(-1, 3)
    n_rays = len(dirs)
    ground_hits = ground.intersect(origin, dirs)
    best = np.where(ground_hits.t <= max_range, ground_hits.t, np.inf)
    rot = prims.rotation
    o_local = np.einsum("pji,pj->pi", rot, origin - prims.centre)  # R^T (o - c) per primitive
    convex = prims.kind == Kind.CONVEX
    used = int((np.abs(prims.planes[convex, :, :3]).sum(axis=2) > 0).sum(axis=1).max()) if convex.any() else 0
    planes = prims.planes[:, :used]  # drop the padding planes
    slack = convex_slack(o_local, planes)
    beam0, beams, col0, cols = primitive_windows(prims, origin, elevations, azimuths, max_range)
    hit_ray, hit_t, hit_prim = [], [], []
    tested = 0
    for kind in Kind:
        idx = np.flatnonzero((prims.kind == kind) & (beams * cols > 0))
        if not len(idx):
            continue
        prim_all, ray_all = _pairs(idx, beam0, beams, col0, cols, n_cols)
        tested += len(prim_all)
        for s in range(0, len(prim_all), CHUNK):
            p, r = prim_all[s : s + CHUNK], ray_all[s : s + CHUNK]
            d = np.einsum("kji,kj->ki", rot[p], dirs[r])
            if kind == Kind.CONVEX:
                t_in, t_out = convex_interval(slack[p], d, planes[p])
            else:
                t_in, t_out = _INTERVAL[kind](o_local[p], d, prims.half[p])
            ok = (t_in > 1e-6) & (t_in <= max_range)
            path = prims.free_path[p]
            porous = ok & (path > 0)
            if porous.any():
                depth = t_in[porous] + rng.exponential(path[porous])
                t_in[porous] = depth
                ok[porous] = depth <= t_out[porous]
            hit_ray.append(r[ok])
            hit_t.append(t_in[ok])
            hit_prim.append(p[ok])
    primitive = np.full(n_rays, -1, dtype=np.int64)
    normal = ground_hits.normal * np.isfinite(best)[:, None]
    local = np.zeros((n_rays, 3))
    if hit_ray:
        ray_h, t_h, prim_h = np.concatenate(hit_ray), np.concatenate(hit_t), np.concatenate(hit_prim)
        np.minimum.at(best, ray_h, t_h)
        win = t_h <= best[ray_h]
        winner = np.full(n_rays, _NONE, dtype=np.int64)
        np.minimum.at(winner, ray_h[win], prim_h[win])  # ties: the lowest primitive index
        rays = np.flatnonzero(winner != _NONE)
        p = winner[rays]
        primitive[rays] = p
        d = np.einsum("kji,kj->ki", rot[p], dirs[rays])
        points = o_local[p] + best[rays, None] * d
        local[rays] = points
        n_local = np.zeros_like(points)
        for kind in Kind:
            sel = prims.kind[p] == kind
            if sel.any():
                n_local[sel] = local_normals(kind, points[sel], prims.half[p[sel]], prims.planes[p[sel]])
        normal[rays] = np.einsum("kij,kj->ki", rot[p], n_local)
    return RayHits(best, primitive, normal, local, ground_hits, tested)


__all__ = ["RayHits", "primitive_windows", "cast_rays", "CHUNK"]
