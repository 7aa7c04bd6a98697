"""The street's ground: a road between raised sidewalks on a sloped profile, with painted markings.

Street coordinates ``(u, v)``: ``u`` along the street, ``v`` across it (the centre line is ``v = 0``).
With ``phi`` the street direction in the world frame and ``v0`` the lateral offset of the world origin,

    u = x cos(phi) + y sin(phi),        v = v0 - x sin(phi) + y cos(phi).

The ground height is a vertical profile along the street plus the curb on the sidewalks,

    z(u, v) = g u + k u^2 + (0 if road(u, v) else curb_height),

with ``road(u, v) = |v| <= road_half_width`` or, where there is a cross street, ``|u - u_c| <= w_c``.
Rays are intersected analytically: each surface gives a quadratic in the ray parameter, the curb faces
are vertical planes; the nearest valid crossing wins. Reflectivity comes from the material of the
surface hit, with painted lane lines (solid or dashed) and zebra crossings on the road.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, Optional, Tuple

import numpy as np

from .categories import ROAD, SIDEWALK
from .materials import ASPHALT, CONCRETE, PAINT, Material

LINE_WIDTH = 0.12  # painted line width (m)
DASH_LENGTH, DASH_PERIOD = 3.0, 9.0
ZEBRA_BAR, ZEBRA_PERIOD = 0.5, 1.0


class GroundHits(NamedTuple):
    """Ray hits on the ground, each array over the ``R`` rays: ``t`` ``[R]`` (``inf`` = no hit),
    ``normal`` ``[R, 3]`` unit, ``semantic`` int64 ``[R]``, ``reflectivity`` ``[R]``."""

    t: np.ndarray
    normal: np.ndarray
    semantic: np.ndarray
    reflectivity: np.ndarray


@dataclass(frozen=True)
class StreetGround:
    """Road, curbs and sidewalks of one street (see the module docstring for the geometry).

    Attributes:
        direction: street direction ``phi`` in radians from the world +x axis.
        lateral_offset: ``v0``, the street coordinate ``v`` of the world origin.
        road_half_width: half the curb-to-curb width (m).
        curb_height: sidewalk height above the road (m).
        grade, curvature: the profile ``g u + k u^2`` (``g`` as a fraction, 0.04 = 4 %).
        cross_street: ``(u_c, w_c)``: a perpendicular road of half width ``w_c`` at ``u = u_c``, or None.
        lane_lines: ``(v, dashed)`` painted lines along the road.
        crosswalks: ``(u0, u1)`` zebra crossings across the road.
        road_material, sidewalk_material, paint_material: reflectivities of the surfaces.
    """

    direction: float = 0.0
    lateral_offset: float = 0.0
    road_half_width: float = 7.0
    curb_height: float = 0.15
    grade: float = 0.0
    curvature: float = 0.0
    cross_street: Optional[Tuple[float, float]] = None
    lane_lines: Tuple[Tuple[float, bool], ...] = ()
    crosswalks: Tuple[Tuple[float, float], ...] = ()
    road_material: Material = ASPHALT
    sidewalk_material: Material = CONCRETE
    paint_material: Material = PAINT

    def __post_init__(self) -> None:
        if self.road_half_width <= 0:
            raise ValueError(f"StreetGround: road_half_width must be > 0, got {self.road_half_width}")
        if self.curb_height < 0:
            raise ValueError(f"StreetGround: curb_height must be >= 0, got {self.curb_height}")

    # --- frames ---------------------------------------------------------------------------------
    def to_street(self, x: np.ndarray, y: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """Street coordinates ``(u, v)`` of world points ``(x, y)`` (any matching shapes)."""
        c, s = np.cos(self.direction), np.sin(self.direction)
        return x * c + y * s, self.lateral_offset - x * s + y * c

    def to_world(self, u: np.ndarray, v: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """World ``(x, y)`` of street coordinates ``(u, v)``."""
        c, s = np.cos(self.direction), np.sin(self.direction)
        w = np.asarray(v) - self.lateral_offset
        return u * c - w * s, u * s + w * c

    # --- surface --------------------------------------------------------------------------------
    def profile(self, u: np.ndarray) -> np.ndarray:
        """Road height ``g u + k u^2`` at street coordinate ``u``."""
        return self.grade * u + self.curvature * u * u

    def is_road(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Whether ``(u, v)`` is road (between the curbs, or on the cross street)."""
        road = np.abs(v) <= self.road_half_width
        if self.cross_street is not None:
            road = road | (np.abs(u - self.cross_street[0]) <= self.cross_street[1])
        return road

    def height(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Ground height at world ``(x, y)`` (road profile, plus the curb on sidewalks)."""
        u, v = self.to_street(np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64))
        return self.profile(u) + np.where(self.is_road(u, v), 0.0, self.curb_height)

    def reflectivity(self, u: np.ndarray, v: np.ndarray, road: np.ndarray) -> np.ndarray:
        """Surface reflectivity at ``(u, v)``: asphalt with paint on the road, concrete elsewhere."""
        paint = np.zeros(u.shape, dtype=bool)
        for offset, dashed in self.lane_lines:
            line = np.abs(v - offset) <= LINE_WIDTH / 2
            if dashed:
                line &= np.mod(u, DASH_PERIOD) < DASH_LENGTH
            paint |= line
        for u0, u1 in self.crosswalks:
            paint |= (u >= u0) & (u <= u1) & (np.mod(v, ZEBRA_PERIOD) < ZEBRA_BAR)
        refl = np.where(paint, self.paint_material.reflectivity, self.road_material.reflectivity)
        return np.where(road, refl, self.sidewalk_material.reflectivity)

    # --- rays -----------------------------------------------------------------------------------
    def intersect(self, origin: np.ndarray, directions: np.ndarray) -> GroundHits:
        """Nearest ground crossing of the rays ``origin + t * directions[r]`` for ``t > 0``.

        ``origin`` ``[3]`` (world), ``directions`` ``[R, 3]``. Returns :class:`GroundHits`.
        """
        origin = np.asarray(origin, dtype=np.float64)
        d = np.asarray(directions, dtype=np.float64)
        u0, v0 = self.to_street(origin[0], origin[1])
        z0 = origin[2]
        c, s = np.cos(self.direction), np.sin(self.direction)
        du = d[:, 0] * c + d[:, 1] * s
        dv = -d[:, 0] * s + d[:, 1] * c
        dz = d[:, 2]
        g, k = self.grade, self.curvature
        n = len(d)
        best_t = np.full(n, np.inf)
        best_sem = np.full(n, ROAD, dtype=np.int64)
        best_n = np.zeros((n, 3))  # (n_u, n_v, n_z) in street axes, turned to world at the end

        def consider(t: np.ndarray, valid: np.ndarray, sem: int, normal_uvz: np.ndarray) -> None:
            """Keep the crossings ``t`` that are valid and nearer than the best so far."""
            better = valid & (t > 1e-9) & (t < best_t)
            best_t[better] = t[better]
            best_sem[better] = sem
            best_n[better] = normal_uvz[better]

        # the road and sidewalk surfaces z(t) = profile(u(t)) + offset: A t^2 + B t + C = 0
        a = k * du * du
        b = 2 * k * u0 * du + g * du - dz
        for offset, on_road, sem in ((0.0, True, ROAD), (self.curb_height, False, SIDEWALK)):
            cc = k * u0 * u0 + g * u0 + offset - z0
            for t in _roots(a, b, np.full(n, cc)):
                u, v = u0 + t * du, v0 + t * dv
                valid = self.is_road(u, v) == on_road
                slope = g + 2 * k * u
                consider(t, valid, sem, np.c_[-slope, np.zeros(n), np.ones(n)])
        # curb faces: vertical planes between the road and sidewalk heights
        if self.curb_height > 0:
            planes = [("v", self.road_half_width), ("v", -self.road_half_width)]
            if self.cross_street is not None:
                uc, wc = self.cross_street
                planes += [("u", uc - wc), ("u", uc + wc)]
            with np.errstate(divide="ignore", invalid="ignore"):
                for axis, value in planes:
                    t = (value - (v0 if axis == "v" else u0)) / (dv if axis == "v" else du)
                    t = np.where(np.isfinite(t), t, -1.0)
                    u, v = u0 + t * du, v0 + t * dv
                    z = z0 + t * dz
                    base = self.profile(u)
                    valid = (z >= base) & (z <= base + self.curb_height)
                    if axis == "v":
                        if self.cross_street is not None:
                            valid &= np.abs(u - self.cross_street[0]) > self.cross_street[1]
                        normal = np.c_[np.zeros(n), np.full(n, -np.sign(value)), np.zeros(n)]
                    else:
                        valid &= np.abs(v) > self.road_half_width
                        normal = np.c_[np.full(n, -np.sign(value - self.cross_street[0])), np.zeros(n), np.zeros(n)]
                    consider(t, valid, SIDEWALK, normal)
        hit = np.isfinite(best_t)
        t_safe = np.where(hit, best_t, 0.0)
        u, v = u0 + t_safe * du, v0 + t_safe * dv
        refl = np.where(hit, self.reflectivity(u, v, best_sem == ROAD), 0.0)
        # turn (n_u, n_v, n_z) into world axes and normalise
        normal = np.c_[best_n[:, 0] * c - best_n[:, 1] * s, best_n[:, 0] * s + best_n[:, 1] * c, best_n[:, 2]]
        norm = np.linalg.norm(normal, axis=1, keepdims=True)
        normal = normal / np.where(norm > 0, norm, 1.0)
        return GroundHits(best_t, normal, best_sem, refl)


def _roots(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Both real roots of ``a t^2 + b t + c = 0`` per element (``-1`` where there is none); the
    linear case ``a ~ 0`` gives ``-c / b`` and ``-1``."""
    with np.errstate(divide="ignore", invalid="ignore"):
        linear = np.abs(a) < 1e-12
        disc = b * b - 4 * a * c
        real = disc >= 0
        root = np.sqrt(np.where(real, disc, 0.0))
        q = -0.5 * (b + np.where(b >= 0, root, -root))
        r1 = np.where(linear, -c / b, q / a)
        r2 = np.where(linear, -1.0, c / q)
        ok = real | linear
        r1 = np.where(ok & np.isfinite(r1), r1, -1.0)
        r2 = np.where(ok & np.isfinite(r2), r2, -1.0)
    return r1, r2


__all__ = ["StreetGround", "GroundHits"]
