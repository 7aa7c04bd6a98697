"""A room under construction (size, parts, occupied floor and wall spans) and the placement rules:
objects stand inside the room, apart from each other, with their backs against walls and clear of doors,
windows and wall items."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional, Tuple

import numpy as np

from .furniture import Furniture
from .materials import ANY_MATS, material
from .primitives import Parts


@dataclass
class Room:
    """A room [0, W] x [0, D] x [0, H] (metres) being built: its parts, the floor footprints taken
    (x0, x1, y0, y1), the wall spans taken (wall, t0, t1, z0, z1), the openings carved out of carvable faces
    (lo, hi corners) and its windows. Walls 0-3 run counter-clockwise from the origin."""

    W: float
    D: float
    H: float
    parts: Parts
    footprints: List[Tuple[float, float, float, float]] = field(default_factory=list)
    wall_spans: List[Tuple[int, float, float, float, float]] = field(default_factory=list)  # wall,t0,t1,z0,z1
    carves: List[Tuple[np.ndarray, np.ndarray]] = field(default_factory=list)
    windows: List[Tuple[int, float, float, float, float]] = field(default_factory=list)  # wall,t0,t1,z0,z1

    def wall_len(self, wall: int) -> float:
        return self.W if wall % 2 == 0 else self.D

    def free(self, fp, clearance=0.05) -> bool:
        x0, x1, y0, y1 = fp
        if x0 < -1e-6 or y0 < -1e-6 or x1 > self.W + 1e-6 or y1 > self.D + 1e-6:
            return False
        for a0, a1, b0, b1 in self.footprints:
            if x0 < a1 + clearance and a0 < x1 + clearance and y0 < b1 + clearance and b0 < y1 + clearance:
                return False
        return True

    def span_free(self, wall, t0, t1, z0, z1) -> bool:
        """No door, window, furniture or wall item on ``wall`` overlaps [t0, t1] x [z0, z1]."""
        for w, s0, s1, a0, a1 in self.wall_spans:
            if w == wall and t0 < s1 and s0 < t1 and z0 < a1 and a0 < z1:
                return False
        return True


def wall_pose(room: Room, wall: int, t: float, depth: float, gap: float) -> Tuple[float, float]:
    """World (x, y) of an object's centre against ``wall`` at distance ``t`` along it."""
    if wall == 0:
        return t, gap + depth / 2
    if wall == 1:
        return room.W - gap - depth / 2, t
    if wall == 2:
        return room.W - t, room.D - gap - depth / 2
    return gap + depth / 2, room.D - t


def footprint(cx, cy, w, d, k) -> Tuple[float, float, float, float]:
    """Axis-aligned (x0, x1, y0, y1) of a ``w`` x ``d`` object centred at (cx, cy), turned by ``k`` x 90 degrees."""
    hw, hd = (w / 2, d / 2) if k % 2 == 0 else (d / 2, w / 2)
    return cx - hw, cx + hw, cy - hd, cy + hd


FURNITURE_DENSITY = 1.6
"""Furniture is scanned from closer and from more sides than walls: more points per square metre."""


def place(room: Room, obj: Furniture, cx, cy, k, z=0.0, register=True, yaw=0.0) -> None:
    """Add ``obj`` turned by ``k`` x 90 degrees plus ``yaw`` and moved to (cx, cy, z), at
    :data:`FURNITURE_DENSITY`; ``register`` marks its footprint as taken."""
    room.parts.extend(obj.parts, k, (cx, cy, z), density_scale=FURNITURE_DENSITY, yaw=yaw)
    if register:
        room.footprints.append(footprint(cx, cy, obj.w, obj.d, k))


def try_against_wall(
    room: Room,
    rng,
    obj: Furniture,
    walls=None,
    tries=40,
    t_range: Optional[Tuple[float, float]] = None,
    clearance: float = 0.05,
) -> Optional[Tuple[int, float, float, float]]:
    """Put ``obj`` with its back against a wall; returns (wall, t, cx, cy) or None."""
    for _ in range(tries):
        wall = int(rng.choice(walls if walls is not None else 4))
        L = room.wall_len(wall)
        if obj.w + 0.02 > L:
            continue
        lo, hi = (obj.w / 2 + 0.01, L - obj.w / 2 - 0.01) if t_range is None else t_range
        if hi < lo:
            continue
        t = rng.uniform(lo, hi)
        gap = rng.uniform(0.003, 0.012)
        cx, cy = wall_pose(room, wall, t, obj.d, gap)
        fp = footprint(cx, cy, obj.w, obj.d, wall)
        if not room.free(fp, clearance):
            continue
        if not room.span_free(wall, t - obj.w / 2 + 0.05 - clearance, t + obj.w / 2 - 0.05 + clearance, 0.0, obj.h):
            continue
        place(room, obj, cx, cy, wall)
        room.wall_spans.append((wall, t - obj.w / 2, t + obj.w / 2, 0.0, obj.h))
        return wall, t, cx, cy
    return None


def wall_frame(room: Room, wall: int):
    """(origin at floor of the wall start, unit tangent, inward normal) of a wall (counter-clockwise)."""
    W, D = room.W, room.D
    return {
        0: (np.array([0.0, 0, 0]), np.array([1.0, 0, 0]), np.array([0.0, 1, 0])),
        1: (np.array([W, 0.0, 0]), np.array([0.0, 1, 0]), np.array([-1.0, 0, 0])),
        2: (np.array([W, D, 0.0]), np.array([-1.0, 0, 0]), np.array([0.0, -1, 0])),
        3: (np.array([0.0, D, 0]), np.array([0.0, -1, 0]), np.array([1.0, 0, 0])),
    }[wall]


def add_wall_item(room: Room, rng, label, w, h, zc, depth=0.025, color=None, wall=None, t=None) -> bool:
    """Hang a ``w`` x ``h`` box ``depth`` thick, centred at height ``zc``, on a free span of ``wall``
    (random when None) at ``t`` (random when None); True when placed."""
    for _ in range(15):
        wl = int(rng.integers(4)) if wall is None else wall
        L = room.wall_len(wl)
        if w + 0.2 > L:
            continue
        tc = rng.uniform(w / 2 + 0.1, L - w / 2 - 0.1) if t is None else t
        z0, z1 = zc - h / 2, zc + h / 2
        if not room.span_free(wl, tc - w / 2, tc + w / 2, z0, z1):
            if wall is not None:
                return False
            continue
        o, tan, nrm = wall_frame(room, wl)
        a = o + tan * (tc - w / 2) + nrm * 0.008 + np.array([0, 0, z0])
        b = o + tan * (tc + w / 2) + nrm * (0.008 + depth) + np.array([0, 0, z1])
        col = color if color is not None else material(rng, ANY_MATS)
        room.parts.box(np.minimum(a, b), np.maximum(a, b), label, col)
        room.wall_spans.append((wl, tc - w / 2, tc + w / 2, z0, z1))
        return True
    return False
