"""Filling a street layout: buildings and street furniture (the background), then parked and moving
vehicles, pedestrians and cyclists (the objects with boxes), none overlapping another.

Everything is placed in street coordinates ``(u, v)`` (see :mod:`.ground`) at the ground height under
it, and kept only where its footprint is free (:class:`.placement.Occupancy`). The sensor's own car
occupies the origin, so nothing is placed on or around the sensor.
"""

from __future__ import annotations

from typing import Callable, List, Optional

import numpy as np

from .config import StreetSceneConfig
from .layout import Lane, StreetLayout
from .objects import ObjectModel, SceneObject, place_object
from .people import make_cyclist, make_pedestrian
from .placement import Occupancy, rectangle
from .primitives import Primitives, rot_z
from .static import make_building, make_bush, make_hedge, make_sign, make_street_lamp, make_traffic_light, make_tree
from .vehicles import make_car, make_truck

EGO_SIZE = (4.7, 1.9, 3.0)  # the sensor's car, as kept clear (length, width, height)


class StreetPopulator:
    """Places background parts and objects on one layout (see the module docstring).

    Attributes after :meth:`populate`: ``background`` (list of world :class:`Primitives`) and
    ``objects`` (list of :class:`SceneObject`).
    """

    def __init__(self, rng: np.random.Generator, layout: StreetLayout, config: StreetSceneConfig) -> None:
        self.rng, self.layout, self.config = rng, layout, config
        self.ground = layout.ground
        self.occupancy = Occupancy()
        self.background: List[Primitives] = []
        self.objects: List[SceneObject] = []
        clear = 2 * config.ego_clearance
        self.occupancy.add(
            rectangle(0.0, 0.0, EGO_SIZE[0] + clear, EGO_SIZE[1] + clear, self.ground.direction), -1.0, EGO_SIZE[2]
        )

    # --- placing ----------------------------------------------------------------------------------
    def _world(self, u: float, v: float, heading: float):
        x, y = self.ground.to_world(u, v)
        return float(x), float(y), float(self.ground.height(x, y)), self.ground.direction + heading

    def place_static(self, parts: Primitives, u: float, v: float, heading: float, margin: float = 0.2) -> bool:
        """Add background ``parts`` (own frame) at ``(u, v)`` turned by ``heading`` from the street
        direction, if every part's footprint is free; returns whether they were added."""
        x, y, z, yaw = self._world(u, v, heading)
        ext = parts.extents()
        centres = parts.centre[:, :2] @ rot_z(yaw)[:2, :2].T + [x, y]
        feet = np.stack([rectangle(cx, cy, 2 * e[0], 2 * e[1], yaw) for (cx, cy), e in zip(centres, ext, strict=True)])
        heights = np.c_[z + parts.centre[:, 2] - ext[:, 2], z + parts.centre[:, 2] + ext[:, 2]]
        if self.occupancy.collides_any(feet, heights, margin):
            return False
        for f, (z0, z1) in zip(feet, heights, strict=True):
            self.occupancy.add(f, z0, z1)
        self.background.append(parts.transformed(yaw, (x, y, z)))
        return True

    def place_model(
        self, model: ObjectModel, u: float, v: float, heading: float, speed: float, attribute: str, margin: float
    ) -> Optional[SceneObject]:
        """Add ``model`` with its bottom centre at ``(u, v)``, heading ``heading`` from the street
        direction and ``speed`` m/s, if its box footprint is free."""
        x, y, z, yaw = self._world(u, v, heading)
        obj = place_object(model, x, y, z, yaw, speed, attribute)
        bottom, top = obj.box[2] - obj.box[5] / 2, obj.box[2] + obj.box[5] / 2
        if not self.occupancy.try_add(obj.footprint(), bottom, top, margin):
            return None
        self.objects.append(obj)
        return obj

    def _jitter(self, degrees: float) -> float:
        return float(np.radians(self.rng.normal(0.0, degrees)))

    def _count(self, per_100m: float, length: float) -> int:
        return int(self.rng.poisson(per_100m * length / 100.0))

    # --- background -----------------------------------------------------------------------------
    def add_buildings(self) -> None:
        """Rows of buildings behind both sidewalks, leaving the cross street and random alleys open."""
        cfg, rng, lay = self.config, self.rng, self.layout
        for side in (-1.0, 1.0):
            u = -lay.half_length - 20.0 + rng.uniform(0, 10)
            while u < lay.half_length + 20.0:
                width = rng.uniform(*cfg.building_width)
                if lay.ground.cross_street is not None:
                    uc, wc = lay.ground.cross_street
                    lo, hi = uc - wc - lay.sidewalk_width - 1.0, uc + wc + lay.sidewalk_width + 1.0
                    if u < hi and u + width > lo:  # end the row at the corner of the cross street
                        if u >= lo or lo - u < cfg.building_width[0]:
                            u = hi
                            continue
                        width = lo - u
                parts = make_building(rng, width, rng.uniform(*cfg.building_depth), rng.uniform(*cfg.building_height))
                v = side * (lay.building_line + rng.uniform(*cfg.building_setback))
                # a small negative margin lets neighbouring buildings touch
                self.place_static(parts, u + width / 2, v, 0.0 if side > 0 else np.pi, margin=-0.05)
                u += width + (rng.uniform(2.0, 8.0) if rng.random() < cfg.alley_probability else 0.0)

    def add_street_furniture(self) -> None:
        """Trees and lamp posts along the curbs, signs facing the traffic, traffic lights at the cross
        street, bushes and hedges along the building line."""
        cfg, rng, lay = self.config, self.rng, self.layout
        w, length = lay.road_half_width, lay.half_length
        for side in (-1.0, 1.0):
            toward_road = -side * np.pi / 2  # local +x of a lamp arm pointing across the road
            facing = 0.0 if side > 0 else np.pi  # a sign facing the traffic on this side
            if lay.ground.cross_street is not None:
                uc, wc = lay.ground.cross_street
                for u in (uc - wc - 1.0, uc + wc + 1.0):
                    self.place_static(make_traffic_light(rng), u, side * (w + 0.6), facing)
            u = -length + rng.uniform(0, 10)
            while u < length:
                self.place_static(make_street_lamp(rng), u, side * (w + 0.45), toward_road)
                u += rng.uniform(*cfg.lamp_spacing)
            if rng.random() < cfg.tree_probability:
                u = -length + rng.uniform(0, 6)
                while u < length:
                    if not lay.near_junction(u, 2.0):
                        self.place_static(
                            make_tree(rng), u, side * (w + rng.uniform(0.8, 1.3)), rng.uniform(0, 2 * np.pi)
                        )
                    u += rng.uniform(*cfg.tree_spacing)
            for _ in range(self._count(cfg.signs_per_100m, 2 * length)):
                self.place_static(make_sign(rng), rng.uniform(-length, length), side * (w + 0.35), facing)
            for _ in range(self._count(cfg.bushes_per_100m, 2 * length)):
                u = rng.uniform(-length, length)
                if rng.random() < 0.4:
                    hedge = rng.uniform(2.0, 8.0)
                    self.place_static(make_hedge(rng, hedge), u, side * (lay.building_line + 0.6), 0.0)
                else:
                    self.place_static(make_bush(rng), u, side * (lay.building_line + rng.uniform(0.3, 1.5)), 0.0)

    # --- objects --------------------------------------------------------------------------------
    def _vehicle(self, truck_fraction: float) -> ObjectModel:
        return make_truck(self.rng) if self.rng.random() < truck_fraction else make_car(self.rng)

    @staticmethod
    def _heading(direction: int) -> float:
        return 0.0 if direction >= 0 else np.pi

    def add_parked(self) -> None:
        """Vehicles parked nose to tail along the parking lanes, against the curb."""
        cfg, rng, lay = self.config, self.rng, self.layout
        oneway = all(lane.direction >= 0 for lane in lay.lanes)
        for lane in lay.lanes:
            if not lane.parking:
                continue
            side = np.sign(lane.centre)
            direction = 1 if (side < 0 or oneway) else -1
            occupancy = rng.uniform(*cfg.parked_occupancy)
            u = -lay.half_length + rng.uniform(0, 5)
            while u < lay.half_length:
                length = 4.5  # an empty slot
                if rng.random() < occupancy and not lay.near_junction(u + 2.5, 3.5):
                    model = self._vehicle(cfg.truck_fraction / 2)
                    length, width = model.size[0], model.size[1]
                    v = side * (lay.road_half_width - rng.uniform(0.2, 0.4) - width / 2)
                    self.place_model(
                        model,
                        u + length / 2,
                        v,
                        self._heading(direction) + self._jitter(1.5),
                        0.0,
                        "vehicle.parked",
                        margin=0.3,
                    )
                u += length + rng.uniform(0.6, 3.0)

    def add_traffic(self) -> None:
        """Moving vehicles in the driving lanes (a few stopped near the cross street)."""
        cfg, rng, lay = self.config, self.rng, self.layout
        rate = rng.uniform(*cfg.vehicles_per_100m)
        for lane in lay.lanes:
            if lane.parking:
                continue
            for _ in range(self._count(rate, 2 * lay.half_length)):
                model = self._vehicle(cfg.truck_fraction)
                u = rng.uniform(-lay.half_length, lay.half_length)
                speed = rng.uniform(3.0, 11.0 if model.category == "Truck" else 14.0)
                attribute = "vehicle.moving"
                if lay.near_junction(u, 12.0) and rng.random() < 0.3:
                    speed, attribute = 0.0, "vehicle.stopped"
                v = lane.centre + rng.normal(0, 0.15)
                self.place_model(
                    model, u, v, self._heading(lane.direction) + self._jitter(1.0), speed, attribute, margin=1.0
                )

    def _outer_lanes(self) -> List[Lane]:
        driving = [lane for lane in self.layout.lanes if not lane.parking]
        return [min(driving, key=lambda lane: lane.centre), max(driving, key=lambda lane: lane.centre)]

    def add_cyclists(self) -> None:
        """Cyclists riding at the right edge of the outermost driving lanes."""
        cfg, rng, lay = self.config, self.rng, self.layout
        for _ in range(self._count(rng.uniform(*cfg.cyclists_per_100m), 2 * lay.half_length)):
            lane = self._outer_lanes()[int(rng.integers(2))]
            right = -1.0 if lane.direction >= 0 else 1.0  # the right edge in the lane's direction of travel
            v = lane.centre + right * (lane.width / 2 - rng.uniform(0.5, 0.9))
            self.place_model(
                make_cyclist(rng),
                rng.uniform(-lay.half_length, lay.half_length),
                v,
                self._heading(lane.direction) + self._jitter(3.0),
                rng.uniform(2.5, 7.0),
                "cycle.with_rider",
                margin=0.5,
            )

    def add_pedestrians(self) -> None:
        """People walking along or standing on the sidewalks, and crossing at the zebra crossings."""
        cfg, rng, lay = self.config, self.rng, self.layout
        rate = rng.uniform(*cfg.pedestrians_per_100m)
        w = lay.road_half_width
        for side in (-1.0, 1.0):
            for _ in range(self._count(rate, 2 * lay.half_length)):
                walking = rng.random() < cfg.walking_fraction
                if walking:
                    heading = float(rng.choice([0.0, np.pi])) + self._jitter(15.0)
                else:
                    heading = rng.uniform(-np.pi, np.pi)
                v = side * rng.uniform(w + 0.5, lay.building_line - 0.3)
                self.place_model(
                    make_pedestrian(rng, walking=walking),
                    rng.uniform(-lay.half_length, lay.half_length),
                    v,
                    heading,
                    rng.uniform(0.8, 1.8) if walking else 0.0,
                    "pedestrian.moving" if walking else "pedestrian.standing",
                    margin=0.15,
                )
        for u0, u1 in lay.ground.crosswalks:
            for _ in range(int(rng.integers(cfg.crossing_pedestrians[0], cfg.crossing_pedestrians[1] + 1))):
                heading = float(rng.choice([-np.pi / 2, np.pi / 2])) + self._jitter(8.0)
                self.place_model(
                    make_pedestrian(rng),
                    rng.uniform(u0 + 0.5, u1 - 0.5),
                    rng.uniform(-w + 0.5, w - 0.5),
                    heading,
                    rng.uniform(1.0, 1.8),
                    "pedestrian.moving",
                    margin=0.15,
                )

    def populate(self) -> "StreetPopulator":
        """Run every step in a fixed order (background first, then large objects before small ones)."""
        steps: List[Callable[[], None]] = [
            self.add_buildings,
            self.add_street_furniture,
            self.add_parked,
            self.add_traffic,
            self.add_cyclists,
            self.add_pedestrians,
        ]
        for step in steps:
            step()
        return self


__all__ = ["StreetPopulator", "EGO_SIZE"]
