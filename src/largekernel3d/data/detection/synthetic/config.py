"""What a synthetic street scene may look like: the ranges every scene draws its layout and its
population from (:class:`StreetSceneConfig`)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Tuple

Range = Tuple[float, float]


@dataclass(frozen=True)
class StreetSceneConfig:
    """Ranges ``(low, high)`` are drawn uniformly per scene; densities are means of Poisson counts.

    Attributes:
        half_length: the street is populated for ``|u| <= half_length`` metres around the sensor.
        lanes_per_direction: number of driving lanes each way (integers, inclusive).
        lane_width: driving lane width (m).
        one_way_probability: chance that all lanes run in the sensor's direction.
        parking_probability: chance of a parking lane along each curb.
        sidewalk_width, curb_height: (m).
        max_grade: the street rises by ``grade`` m per m, ``|grade| <= max_grade``.
        max_curvature: vertical profile ``grade u + curvature u^2``, ``|curvature| <= max_curvature``.
        max_street_yaw_deg: the street's direction relative to the sensor's heading.
        intersection_probability: chance of a cross street (with zebra crossings and traffic lights).
        building_width, building_depth, building_height, building_setback: building sizes (m) and their
            distance behind the sidewalk; ``alley_probability``: chance of a gap after each building.
        tree_probability: chance of a row of trees along each curb, ``tree_spacing`` apart (m).
        lamp_spacing: distance between lamp posts (m); ``signs_per_100m``, ``bushes_per_100m``: per side.
        parked_occupancy: fraction of each parking lane taken by parked vehicles.
        vehicles_per_100m: moving vehicles per 100 m of driving lane; ``truck_fraction`` of them trucks
            (also of parked vehicles, halved).
        pedestrians_per_100m: per sidewalk; ``walking_fraction`` of them walk, the others stand.
        crossing_pedestrians: pedestrians on each zebra crossing (integers, inclusive).
        cyclists_per_100m: cyclists per 100 m of street, riding along the outer driving lanes.
        ego_clearance: no object closer than this to the sensor's own car (m, in the ground plane).
    """

    half_length: float = 75.0
    lanes_per_direction: Tuple[int, int] = (1, 2)
    lane_width: Range = (3.0, 3.6)
    one_way_probability: float = 0.15
    parking_probability: float = 0.75
    sidewalk_width: Range = (2.5, 5.0)
    curb_height: Range = (0.1, 0.18)
    max_grade: float = 0.04
    max_curvature: float = 3e-4
    max_street_yaw_deg: float = 8.0
    intersection_probability: float = 0.4
    building_width: Range = (8.0, 30.0)
    building_depth: Range = (8.0, 18.0)
    building_height: Range = (5.0, 28.0)
    building_setback: Range = (0.0, 4.0)
    alley_probability: float = 0.25
    tree_probability: float = 0.7
    tree_spacing: Range = (7.0, 14.0)
    lamp_spacing: Range = (20.0, 35.0)
    signs_per_100m: float = 2.0
    bushes_per_100m: float = 4.0
    parked_occupancy: Range = (0.3, 0.9)
    vehicles_per_100m: Range = (0.5, 3.5)
    truck_fraction: float = 0.15
    pedestrians_per_100m: Range = (2.0, 12.0)
    walking_fraction: float = 0.7
    crossing_pedestrians: Tuple[int, int] = (0, 4)
    cyclists_per_100m: Range = (0.5, 3.0)
    ego_clearance: float = 1.0

    def __post_init__(self) -> None:
        probabilities = (
            "one_way_probability",
            "parking_probability",
            "intersection_probability",
            "alley_probability",
            "tree_probability",
            "truck_fraction",
            "walking_fraction",
        )
        non_negative = (
            "max_grade",
            "max_curvature",
            "max_street_yaw_deg",
            "signs_per_100m",
            "bushes_per_100m",
            "ego_clearance",
        )
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in probabilities and not 0.0 <= value <= 1.0:
                raise ValueError(f"StreetSceneConfig.{f.name} must be a probability in [0, 1], got {value}")
            if f.name in non_negative and value < 0:
                raise ValueError(f"StreetSceneConfig.{f.name} must be >= 0, got {value}")
            if isinstance(value, tuple):
                if len(value) != 2 or value[0] > value[1] or value[0] < 0:
                    raise ValueError(
                        f"StreetSceneConfig.{f.name} must be a range (low, high) with 0 <= low <= high, got {value}"
                    )
        if self.half_length <= 10.0:
            raise ValueError(f"StreetSceneConfig.half_length must exceed 10 m, got {self.half_length}")
        for name in ("lanes_per_direction", "crossing_pedestrians"):
            low, high = getattr(self, name)
            if int(low) != low or int(high) != high:
                raise ValueError(f"StreetSceneConfig.{name} must hold integers, got {(low, high)}")
        if self.lanes_per_direction[0] < 1:
            raise ValueError(
                f"StreetSceneConfig.lanes_per_direction must start at >= 1, got {self.lanes_per_direction}"
            )
        for name in (
            "lane_width",
            "sidewalk_width",
            "building_width",
            "building_depth",
            "building_height",
            "tree_spacing",
            "lamp_spacing",
        ):
            if getattr(self, name)[0] <= 1.0:
                raise ValueError(f"StreetSceneConfig.{name} must be above 1 m, got {getattr(self, name)}")


__all__ = ["StreetSceneConfig"]
