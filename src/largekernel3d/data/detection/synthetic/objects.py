"""Objects with ground-truth boxes: a model in its own frame, and the model placed in the world.

An :class:`ObjectModel` is built in the object frame (x forward along the heading, y left, z up); its
box is the tight axis-aligned bounding box ``[low, high]`` of its primitives in that frame, and the
frame origin is moved to the bottom centre of that box. :func:`place_object` moves it by
``x -> R_z(yaw) x + (x0, y0, z0)``; the box becomes
OpenPCDet's ``[x, y, z, dx, dy, dz, yaw, vx, vy]`` with centre ``R_z(yaw) (low + high) / 2 + (x0, y0, z0)``,
size ``high - low`` and velocity ``speed * (cos yaw, sin yaw)`` (objects move along their heading).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .categories import OBJECT_CLASSES
from .placement import rectangle
from .primitives import PartsBuilder, Primitives, rot_z


@dataclass(frozen=True)
class ObjectModel:
    """One object in its own frame: ``category`` (one of ``OBJECT_CLASSES``), ``parts`` and the tight
    bounds ``low``, ``high`` (``[3]`` each) of the parts."""

    category: str
    parts: Primitives
    low: np.ndarray
    high: np.ndarray

    @staticmethod
    def from_builder(category: str, builder: PartsBuilder) -> "ObjectModel":
        """The model of the parts collected in ``builder`` with their tight bounds."""
        if category not in OBJECT_CLASSES:
            raise ValueError(f"ObjectModel: unknown category {category!r}; expected one of {OBJECT_CLASSES}")
        parts = builder.build()
        low, high = parts.bounds()
        shift = -np.array([(low[0] + high[0]) / 2, (low[1] + high[1]) / 2, low[2]])
        return ObjectModel(category, parts.transformed(0.0, shift), low + shift, high + shift)

    @property
    def size(self) -> np.ndarray:
        """``[3]`` (length, width, height) of the tight box."""
        return self.high - self.low


@dataclass(frozen=True)
class SceneObject:
    """An object placed in the world: ``category``, world ``parts``, ``box`` float64 ``[9]``
    (``x, y, z, dx, dy, dz, yaw, vx, vy``, centre z) and a nuScenes-style ``attribute``
    (``vehicle.parked``, ``vehicle.moving``, ``vehicle.stopped``, ``pedestrian.standing``,
    ``pedestrian.moving``, ``cycle.with_rider``)."""

    category: str
    parts: Primitives
    box: np.ndarray
    attribute: str = ""

    def footprint(self) -> np.ndarray:
        """``[4, 2]`` corners of the box seen from above."""
        b = self.box
        return rectangle(b[0], b[1], b[3], b[4], b[6])

    @property
    def speed(self) -> float:
        """``|(vx, vy)|`` in m/s."""
        return float(np.hypot(self.box[7], self.box[8]))


def place_object(
    model: ObjectModel, x: float, y: float, z: float, yaw: float, speed: float = 0.0, attribute: str = ""
) -> SceneObject:
    """``model`` with its frame origin (bottom centre) at world ``(x, y, z)`` heading ``yaw`` and moving
    forward at ``speed`` m/s (see the module docstring for the box)."""
    if speed < 0:
        raise ValueError(f"place_object: speed must be >= 0 (objects move along their heading), got {speed}")
    yaw = float(np.arctan2(np.sin(yaw), np.cos(yaw)))
    origin = np.array([x, y, z], dtype=np.float64)
    centre = rot_z(yaw) @ ((model.low + model.high) / 2) + origin
    box = np.r_[centre, model.size, yaw, speed * np.cos(yaw), speed * np.sin(yaw)]
    return SceneObject(model.category, model.parts.transformed(yaw, origin), box, attribute)


__all__ = ["ObjectModel", "SceneObject", "place_object"]
