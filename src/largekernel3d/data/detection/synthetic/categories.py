"""The classes of the synthetic street scenes: detection classes, per-point semantic classes, and the
size ranges the object makers draw from.

Detection classes (``OBJECT_CLASSES``) are the objects that get ground-truth boxes; semantic classes
(``SEMANTIC_CLASSES``) label every LiDAR return by the primitive it hit. Each detection class has a
semantic class of its own, so the points of a box can be told from the road under it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Tuple

import numpy as np

OBJECT_CLASSES: Tuple[str, ...] = ("Car", "Truck", "Pedestrian", "Cyclist")

SEMANTIC_CLASSES: Tuple[str, ...] = (
    "road",
    "sidewalk",
    "building",
    "vegetation",
    "trunk",
    "pole",
    "traffic_sign",
    "car",
    "truck",
    "pedestrian",
    "cyclist",
)
_SEM = {name: i for i, name in enumerate(SEMANTIC_CLASSES)}
ROAD, SIDEWALK, BUILDING, VEGETATION, TRUNK, POLE, TRAFFIC_SIGN = (
    _SEM[n] for n in ("road", "sidewalk", "building", "vegetation", "trunk", "pole", "traffic_sign")
)
CAR, TRUCK, PEDESTRIAN, CYCLIST = (_SEM[n] for n in ("car", "truck", "pedestrian", "cyclist"))

#: semantic id of the points of each detection class
OBJECT_SEMANTIC: Dict[str, int] = {"Car": CAR, "Truck": TRUCK, "Pedestrian": PEDESTRIAN, "Cyclist": CYCLIST}


@dataclass(frozen=True)
class SizeRange:
    """Size statistics of a class: ``mean`` and ``std`` of (length, width, height) in metres, and the
    ``low`` / ``high`` bounds every drawn size is clipped to (tight boxes stay within them)."""

    mean: Tuple[float, float, float]
    std: Tuple[float, float, float]
    low: Tuple[float, float, float]
    high: Tuple[float, float, float]


#: sizes around the real class statistics (KITTI / nuScenes averages: car 4.5 x 1.8 x 1.6 m, truck
#: 8 x 2.5 x 3 m, pedestrian 0.7 x 0.7 x 1.75 m, cyclist 1.8 x 0.6 x 1.7 m). Pedestrian length and width
#: are those of the tight box around the body: walking people reach the drawn length with their stride,
#: standing people are shorter (down to the 0.2 m bound).
CLASS_SIZES: Dict[str, SizeRange] = {
    "Car": SizeRange((4.5, 1.82, 1.58), (0.35, 0.08, 0.12), (3.6, 1.6, 1.35), (5.4, 2.05, 1.95)),
    "Truck": SizeRange((8.0, 2.5, 3.1), (1.3, 0.08, 0.3), (5.8, 2.25, 2.5), (11.5, 2.6, 3.9)),
    "Pedestrian": SizeRange((0.7, 0.62, 1.74), (0.12, 0.08, 0.09), (0.2, 0.4, 1.45), (1.1, 0.9, 2.0)),
    "Cyclist": SizeRange((1.78, 0.62, 1.72), (0.08, 0.05, 0.08), (1.55, 0.45, 1.45), (2.0, 0.85, 2.0)),
}


def draw_size(rng: np.random.Generator, category: str) -> np.ndarray:
    """A (length, width, height) ``[3]`` for ``category``: ``mean + std * N(0, 1)`` clipped to the bounds."""
    stats = CLASS_SIZES[category]
    size = np.asarray(stats.mean) + np.asarray(stats.std) * rng.standard_normal(3)
    return np.clip(size, stats.low, stats.high)


def check_class_names(class_names) -> Tuple[str, ...]:
    """``class_names`` as a tuple after checking it is a non-empty sequence of distinct names taken from
    :data:`OBJECT_CLASSES` (``TypeError`` / ``ValueError`` naming the offending entry otherwise)."""
    if isinstance(class_names, str) or not hasattr(class_names, "__iter__"):
        raise TypeError(f"class_names must be a sequence of class names such as {OBJECT_CLASSES}, got {class_names!r}")
    names = tuple(class_names)
    if not names:
        raise ValueError(f"class_names must not be empty; choose from {OBJECT_CLASSES}")
    for name in names:
        if name not in OBJECT_CLASSES:
            raise ValueError(f"class_names: unknown class {name!r}; the synthetic street scenes have {OBJECT_CLASSES}")
    if len(set(names)) != len(names):
        raise ValueError(f"class_names has duplicates: {names}")
    return names


__all__ = [
    "OBJECT_CLASSES",
    "SEMANTIC_CLASSES",
    "OBJECT_SEMANTIC",
    "SizeRange",
    "CLASS_SIZES",
    "check_class_names",
    "draw_size",
    "ROAD",
    "SIDEWALK",
    "BUILDING",
    "VEGETATION",
    "TRUNK",
    "POLE",
    "TRAFFIC_SIGN",
    "CAR",
    "TRUCK",
    "PEDESTRIAN",
    "CYCLIST",
]
