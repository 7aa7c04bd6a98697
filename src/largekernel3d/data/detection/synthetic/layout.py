"""The cross-section and plan of a street: lanes, curbs, sidewalks, the profile, a cross street and
the painted markings (:class:`StreetLayout`, drawn by :func:`draw_layout`).

Traffic keeps to the right: lanes with ``v < 0`` run along +u, lanes with ``v > 0`` against it (a
one-way street runs along +u only). Parking lanes lie along the curbs. The sensor's car drives in a
+u lane, so the street runs roughly along the sensor's +x axis.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Tuple

import numpy as np

from .config import StreetSceneConfig
from .ground import StreetGround


@dataclass(frozen=True)
class Lane:
    """One lane: centre ``v`` and ``width`` (m); ``direction`` +1 along +u, -1 against it, 0 parking."""

    centre: float
    width: float
    direction: int

    @property
    def parking(self) -> bool:
        """Whether this is a parking lane."""
        return self.direction == 0


@dataclass(frozen=True)
class StreetLayout:
    """A street: its ``ground``, ``lanes`` from the -v curb to the +v curb, the ``sidewalk_width``,
    the populated ``half_length`` and the zebra crossings (in ``ground.crosswalks``)."""

    ground: StreetGround
    lanes: Tuple[Lane, ...]
    sidewalk_width: float
    half_length: float

    @property
    def road_half_width(self) -> float:
        """``|v|`` of the curbs."""
        return self.ground.road_half_width

    @property
    def building_line(self) -> float:
        """``|v|`` of the outer edge of the sidewalks."""
        return self.ground.road_half_width + self.sidewalk_width

    def near_junction(self, u: np.ndarray, margin: float) -> np.ndarray:
        """Whether street coordinate ``u`` is within ``margin`` of the cross street or a crosswalk."""
        u = np.asarray(u, dtype=np.float64)
        near = np.zeros(u.shape, dtype=bool)
        cross = self.ground.cross_street
        if cross is not None:
            near |= np.abs(u - cross[0]) <= cross[1] + margin
        for u0, u1 in self.ground.crosswalks:
            near |= (u >= u0 - margin) & (u <= u1 + margin)
        return near


def draw_layout(rng: np.random.Generator, config: StreetSceneConfig) -> StreetLayout:
    """A random street layout within ``config`` (see the module docstring)."""
    n = int(rng.integers(config.lanes_per_direction[0], config.lanes_per_direction[1] + 1))
    lane_w = rng.uniform(*config.lane_width)
    one_way = rng.random() < config.one_way_probability
    park_w = rng.uniform(2.1, 2.5)
    kinds: List[Tuple[int, float]] = []
    if rng.random() < config.parking_probability:
        kinds.append((0, park_w))
    kinds += [(1, lane_w)] * (n + (1 if one_way else 0))
    if not one_way:
        kinds += [(-1, lane_w)] * n
    if rng.random() < config.parking_probability:
        kinds.append((0, park_w))
    half_w = sum(w for _, w in kinds) / 2
    lanes, v = [], -half_w
    for direction, width in kinds:
        lanes.append(Lane(v + width / 2, width, direction))
        v += width
    # painted lines between lanes: solid between opposite directions and along parking, dashed otherwise
    lines = []
    for a, b in zip(lanes[:-1], lanes[1:], strict=True):
        edge = a.centre + a.width / 2
        if a.direction == b.direction:
            lines.append((edge, True))
        elif a.parking or b.parking:
            lines.append((edge, False))
        else:
            lines += [(edge - 0.1, False), (edge + 0.1, False)]
    ego_lane = lanes[int(rng.choice([i for i, lane in enumerate(lanes) if lane.direction == 1]))]
    half_length = config.half_length
    cross: Optional[Tuple[float, float]] = None
    crosswalks: List[Tuple[float, float]] = []
    if rng.random() < config.intersection_probability:
        uc = float(rng.choice([-1.0, 1.0]) * rng.uniform(12.0, 0.6 * half_length))
        wc = rng.uniform(4.5, 8.0)
        cross = (uc, wc)
        crosswalks = [(uc - wc - 4.0, uc - wc - 1.0), (uc + wc + 1.0, uc + wc + 4.0)]
    elif rng.random() < 0.3:
        u0 = float(rng.choice([-1.0, 1.0]) * rng.uniform(10.0, 0.5 * half_length))
        crosswalks = [(u0, u0 + rng.uniform(3.0, 4.0))]
    ground = StreetGround(
        direction=float(np.radians(rng.uniform(-config.max_street_yaw_deg, config.max_street_yaw_deg))),
        lateral_offset=float(ego_lane.centre + rng.uniform(-0.25, 0.25)),
        road_half_width=float(half_w),
        curb_height=float(rng.uniform(*config.curb_height)),
        grade=float(rng.uniform(-config.max_grade, config.max_grade)),
        curvature=float(rng.uniform(-config.max_curvature, config.max_curvature)),
        cross_street=cross,
        lane_lines=tuple(lines),
        crosswalks=tuple(crosswalks),
    )
    return StreetLayout(ground, tuple(lanes), float(rng.uniform(*config.sidewalk_width)), float(half_length))


__all__ = ["Lane", "StreetLayout", "draw_layout"]
