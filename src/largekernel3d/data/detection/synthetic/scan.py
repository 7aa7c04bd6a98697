"""Scanning a street scene with a :class:`.sensor.LidarSpec`: rays, noise, dropout and intensities.

For ray ``(b, j)`` with nearest hit at distance ``t`` (see :mod:`.raycast`) the sensor reports the
point ``r * d`` in the LiDAR frame (origin at the sensor, axes those of its car) with the noisy range
``r = t + N(0, range_noise_std)``, kept when ``min_range <= r <= max_range`` and it survives the dropout
``1 - (1 - dropout_probability) (1 - material dropout)``. Facade hits that fall on the window grid of
their building count as glass. Every return carries the semantic class and the object instance of the
primitive (or ground) hit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .materials import GLASS
from .primitives import Kind, Primitives
from .raycast import RayHits, cast_rays
from .scene import StreetScene
from .sensor import LidarSpec, ray_directions


@dataclass(frozen=True)
class LidarScan:
    """The returns of one revolution.

    Attributes:
        points: float32 ``[N, 4]`` ``(x, y, z, intensity)`` in the LiDAR frame, intensity in [0, 1].
        semantic: int64 ``[N]`` ids into :data:`.categories.SEMANTIC_CLASSES`.
        instance: int64 ``[N]`` index of the scene object hit, -1 for the background.
        beam: int64 ``[N]`` laser index (0 = lowest elevation); column: int64 ``[N]`` azimuth firing.
        rays: rays cast (``beams * columns``); pairs: ray-primitive pairs tested.
    """

    points: np.ndarray
    semantic: np.ndarray
    instance: np.ndarray
    beam: np.ndarray
    column: np.ndarray
    rays: int
    pairs: int


def facade_glass(prims: Primitives, hits: RayHits) -> np.ndarray:
    """bool ``[R]``: whether each ray hit a window of a building facade (see ``Primitives.windows``)."""
    glass = np.zeros(len(hits.t), dtype=bool)
    rays = np.flatnonzero(hits.primitive >= 0)
    p = hits.primitive[rays]
    grid = prims.windows[p]
    sel = (grid[:, 0] > 0) & (prims.kind[p] == Kind.BOX) & (np.abs(hits.normal[rays, 2]) < 0.5)
    rays, p, grid = rays[sel], p[sel], grid[sel]
    local, half = hits.local[rays], prims.half[p]
    face = np.argmax(np.abs(local[:, :2]) / half[:, :2], axis=1)  # 0: an x face, 1: a y face
    along = np.where(face == 0, local[:, 1] + half[:, 1], local[:, 0] + half[:, 0])
    height = local[:, 2] + half[:, 2]
    above = height - grid[:, 2]
    glass[rays] = (
        (np.mod(along / grid[:, 0], 1.0) < grid[:, 1]) & (above >= 0) & (np.mod(above / grid[:, 3], 1.0) < grid[:, 4])
    )
    return glass


def scan(scene: StreetScene, spec: LidarSpec, rng: np.random.Generator) -> LidarScan:
    """One revolution of ``spec`` mounted ``spec.mount_height`` above the world origin over ``scene``
    (see the module docstring); ``rng`` draws the azimuth phase, penetration depths, noise and dropout."""
    if not isinstance(spec, LidarSpec):
        raise TypeError(f"spec must be a LidarSpec, got {type(spec).__name__}")
    origin = np.array([0.0, 0.0, spec.mount_height])
    elevations = spec.elevations()
    azimuths = spec.azimuths(rng.uniform(0.0, 2.0 * np.pi / spec.columns))
    prims = scene.primitives()
    hits = cast_rays(origin, elevations, azimuths, prims, scene.ground, rng, spec.max_range)
    n_rays = len(hits.t)
    on_prim = hits.primitive >= 0
    p = np.where(on_prim, hits.primitive, 0)
    if len(prims):
        semantic = np.where(on_prim, prims.semantic[p], hits.ground.semantic)
        instance = np.where(on_prim, prims.instance[p], -1)
        reflectivity = np.where(on_prim, prims.reflectivity[p], hits.ground.reflectivity)
        material_drop = np.where(on_prim, prims.dropout[p], 0.0)
        glass = facade_glass(prims, hits)
        reflectivity = np.where(glass, GLASS.reflectivity, reflectivity)
        material_drop = np.where(glass, GLASS.dropout, material_drop)
    else:
        semantic, instance = hits.ground.semantic, np.full(n_rays, -1, dtype=np.int64)
        reflectivity, material_drop = hits.ground.reflectivity, np.zeros(n_rays)
    noise = rng.normal(0.0, spec.range_noise_std, n_rays) if spec.range_noise_std > 0 else np.zeros(n_rays)
    p_lost = 1.0 - (1.0 - spec.dropout_probability) * (1.0 - material_drop)
    lost = rng.random(n_rays) < p_lost
    with np.errstate(invalid="ignore"):
        distance = hits.t + noise
        keep = np.isfinite(hits.t) & (distance >= spec.min_range) & (distance <= spec.max_range) & ~lost
    rays = np.flatnonzero(keep)
    dirs = ray_directions(elevations, azimuths).reshape(-1, 3)[rays]
    distance = distance[rays]
    cos_incidence = np.einsum("kj,kj->k", dirs, hits.normal[rays])
    intensity = spec.intensity(reflectivity[rays], cos_incidence, distance, rng)
    points = np.c_[dirs * distance[:, None], intensity].astype(np.float32)
    return LidarScan(
        points,
        semantic[rays].astype(np.int64),
        instance[rays].astype(np.int64),
        rays // spec.columns,
        rays % spec.columns,
        n_rays,
        hits.pairs,
    )


__all__ = ["LidarScan", "scan", "facade_glass"]
