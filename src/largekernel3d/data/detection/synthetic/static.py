"""The street's background: buildings, trees, bushes and hedges, lamp posts, signs and traffic lights.

Each maker returns :class:`Primitives` in its own frame (z up, the base on the ground at z = 0). Buildings
and poles reach ``BURY`` metres below the ground so that a sloped street never shows a gap under them
(the ground hides the buried part from the sensor). Building frame: the street facade lies in the plane
y = 0 facing -y, the building extends along +y; lamp arms and sign faces point along +x.
"""

from __future__ import annotations

import numpy as np

from .categories import BUILDING, POLE, TRAFFIC_SIGN, TRUNK, VEGETATION
from .materials import BARK, FACADE, FOLIAGE, GLASS, HEDGE, METAL, RETROREFLECTOR
from .primitives import PartsBuilder, Primitives

#: how far buildings, trunks and poles reach below the ground (m)
BURY = 2.5


def make_building(rng: np.random.Generator, width: float, depth: float, height: float) -> Primitives:
    """A building ``width`` along the street, ``depth`` away from it and ``height`` tall, with a facade
    style drawn at random: plain, a recessed shop front under the upper floors, balconies, pilasters or
    a set-back top; every style has a cornice. Facade faces carry a window grid (glass returns weakly
    and often not at all)."""
    if min(width, depth, height) <= 1.0:
        raise ValueError(f"make_building: width, depth and height must exceed 1 m, got {width}, {depth}, {height}")
    wall = FACADE.varied(rng, 0.5)
    floor_h = rng.uniform(2.8, 3.5)
    ground_floor = rng.uniform(3.0, 4.5)
    grid = (rng.uniform(1.8, 3.2), rng.uniform(0.35, 0.6), BURY + ground_floor + 0.9, floor_h, 0.5)
    upper = grid[:2] + (0.9,) + grid[3:]  # the same grid on a block that starts at a floor
    style = ("plain", "shop", "balconies", "pilasters", "stepped")[int(rng.integers(5))]
    hw = width / 2
    b = PartsBuilder()
    if style == "shop":
        recess = rng.uniform(0.8, 2.0)
        b.box(
            (-hw, recess, -BURY),
            (hw, depth, ground_floor),
            BUILDING,
            wall,
            windows=(rng.uniform(3.5, 6.0), 0.8, BURY + 0.3, 100.0, 0.025),
        )
        b.box((-hw, 0.0, ground_floor), (hw, depth, height), BUILDING, wall, windows=upper)
        for x in (-hw + 0.25, hw - 0.25):  # columns carrying the upper floors
            b.box((x - 0.25, 0.0, -BURY), (x + 0.25, 0.5, ground_floor), BUILDING, wall)
    elif style == "stepped" and height > 12.0:
        step = rng.uniform(0.55, 0.8) * height
        back = rng.uniform(2.0, 4.0)
        b.box((-hw, 0.0, -BURY), (hw, depth, step), BUILDING, wall, windows=grid)
        b.box((-hw + 0.5, back, step), (hw - 0.5, depth, height), BUILDING, wall, windows=upper)
    else:
        b.box((-hw, 0.0, -BURY), (hw, depth, height), BUILDING, wall, windows=grid)
    if style == "balconies":
        floors = int((height - ground_floor) // floor_h)
        span = min(rng.uniform(2.5, 5.0), width - 1.0)
        columns = [0.0] if width < 12 else [-width / 4, width / 4]
        out = rng.uniform(0.9, 1.4)
        for x in columns:
            for k in range(min(floors, 4 if len(columns) > 1 else 8)):
                z = ground_floor + k * floor_h
                b.box((x - span / 2, -out, z - 0.15), (x + span / 2, 0.0, z), BUILDING, wall)
                b.box((x - span / 2, -out, z), (x + span / 2, -out + 0.1, z + 1.0), BUILDING, GLASS)
    if style == "pilasters":
        count = int(np.clip(width // rng.uniform(3.0, 6.0), 2, 8))
        for x in np.linspace(-hw + 0.3, hw - 0.3, count):
            b.box((x - 0.3, -0.3, -BURY), (x + 0.3, 0.0, height - 0.6), BUILDING, wall)
    top = height if style != "stepped" or height <= 12.0 else step
    b.box((-hw, -0.35, top - 0.5), (hw, depth, top), BUILDING, wall)
    return b.build()


def make_tree(rng: np.random.Generator) -> Primitives:
    """A tree: a bark trunk and a porous foliage crown of one to three ellipsoids (broad-leaved), or a
    tall narrow crown (conifer)."""
    b = PartsBuilder()
    trunk_r = rng.uniform(0.1, 0.25)
    trunk_h = rng.uniform(2.2, 3.8)
    b.cylinder((0, 0, (trunk_h + 0.5 - BURY) / 2), trunk_r, trunk_h + 0.5 + BURY, (0, 0, 1), TRUNK, BARK)
    leaves = FOLIAGE.varied(rng, 0.3)
    if rng.random() < 0.2:
        r = rng.uniform(0.9, 1.6)
        b.ellipsoid((0, 0, trunk_h + 2.2 * r), (r, r, 2.5 * r), VEGETATION, leaves)
        return b.build()
    r, rv = rng.uniform(1.4, 3.0), rng.uniform(1.3, 2.6)
    centre_z = trunk_h + 0.8 * rv
    b.ellipsoid((0, 0, centre_z), (r, r * rng.uniform(0.85, 1.0), rv), VEGETATION, leaves)
    for _ in range(int(rng.integers(0, 3))):
        angle = rng.uniform(0, 2 * np.pi)
        off = rng.uniform(0.3, 0.6) * r
        sub = rng.uniform(0.5, 0.75)
        b.ellipsoid(
            (off * np.cos(angle), off * np.sin(angle), centre_z + rng.uniform(-0.2, 0.5) * rv),
            (sub * r, sub * r, sub * rv),
            VEGETATION,
            leaves,
        )
    return b.build()


def make_bush(rng: np.random.Generator) -> Primitives:
    """A bush: one to three porous ellipsoids, partly sunk into the ground."""
    b = PartsBuilder()
    leaves = HEDGE.varied(rng, 0.3)
    for _ in range(int(rng.integers(1, 4))):
        r, rv = rng.uniform(0.4, 0.9), rng.uniform(0.4, 0.8)
        b.ellipsoid((rng.uniform(-0.4, 0.4), rng.uniform(-0.4, 0.4), 0.6 * rv), (r, r, rv), VEGETATION, leaves)
    return b.build()


def make_hedge(rng: np.random.Generator, length: float) -> Primitives:
    """A clipped hedge: a porous box ``length`` along x."""
    b = PartsBuilder()
    width, height = rng.uniform(0.6, 1.1), rng.uniform(0.8, 1.6)
    b.box((-length / 2, -width / 2, -0.3), (length / 2, width / 2, height), VEGETATION, HEDGE.varied(rng, 0.3))
    return b.build()


def make_street_lamp(rng: np.random.Generator) -> Primitives:
    """A lamp post: a pole, an arm reaching along +x over the road and a lamp head."""
    b = PartsBuilder()
    height = rng.uniform(6.0, 9.0)
    arm = rng.uniform(1.2, 2.5)
    metal = METAL.varied(rng, 0.3)
    b.cylinder((0, 0, (height - BURY) / 2), rng.uniform(0.08, 0.12), height + BURY, (0, 0, 1), POLE, metal)
    b.segment((0, 0, height - 0.3), (arm, 0, height + 0.1), 0.045, POLE, metal)
    b.box((arm - 0.2, -0.16, height - 0.05), (arm + 0.45, 0.16, height + 0.12), POLE, metal)
    return b.build()


def make_sign(rng: np.random.Generator) -> Primitives:
    """A traffic sign: a thin pole with a retro-reflective plate (square or round) facing +x."""
    b = PartsBuilder()
    height = rng.uniform(2.0, 2.7)
    b.cylinder((0, 0, (height - BURY) / 2), 0.035, height + BURY, (0, 0, 1), POLE, METAL)
    size = rng.uniform(0.5, 0.8)
    centre = (0.05, 0, height + size / 2 - 0.1)
    if rng.random() < 0.5:
        b.oriented_box(centre, (0.03, size, size), np.eye(3), TRAFFIC_SIGN, RETROREFLECTOR)
    else:
        b.cylinder(centre, size / 2, 0.03, (1, 0, 0), TRAFFIC_SIGN, RETROREFLECTOR)
    return b.build()


def make_traffic_light(rng: np.random.Generator) -> Primitives:
    """A traffic light: a pole with a signal housing facing +x on top."""
    b = PartsBuilder()
    height = rng.uniform(3.2, 4.2)
    metal = METAL.varied(rng, 0.3)
    b.cylinder((0, 0, (height - BURY) / 2), 0.09, height + BURY, (0, 0, 1), POLE, metal)
    b.box((0.1, -0.18, height - 0.2), (0.42, 0.18, height + 0.85), TRAFFIC_SIGN, metal)
    return b.build()


__all__ = [
    "BURY",
    "make_building",
    "make_tree",
    "make_bush",
    "make_hedge",
    "make_street_lamp",
    "make_sign",
    "make_traffic_light",
]
