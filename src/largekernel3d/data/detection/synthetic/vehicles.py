"""Cars and trucks composed of primitives, sized around the real class statistics.

A car is a chamfered lower body (a box clipped at the nose, tail, bottom edges and shoulders), a glass
cabin whose windscreen, rear window and sides lean inwards (a convex polytope), a painted roof slab,
four wheels (cylinders across the car) and licence plates. Sedans, hatchbacks and SUVs differ in their
hood length, window angles and cabin length. A truck is a cab (body, glazing, roof) ahead of a cargo box
on a chassis, with one front and one or two rear axles.

The object frame has x forward, y left, z up, the bottom (wheels on the ground) at z = 0; the parts
span exactly ``[-L/2, L/2] x [-W/2, W/2] x [0, H]`` for the drawn size ``(L, W, H)``.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from .categories import CAR, TRUCK, draw_size
from .materials import CAR_GLASS, CAR_PAINT, METAL, PLATE, RUBBER
from .objects import ObjectModel
from .primitives import PartsBuilder

_ACROSS = (0.0, 1.0, 0.0)

#: per car style: windscreen and rear window angles from the horizontal (degrees), hood and tail
#: (the body ahead of and behind the cabin) as fractions of the length
_CAR_STYLES = {
    "sedan": dict(windscreen=(24, 32), rear_window=(25, 35), hood=(0.22, 0.27), tail=(0.14, 0.19)),
    "hatchback": dict(windscreen=(27, 35), rear_window=(50, 65), hood=(0.18, 0.23), tail=(0.03, 0.06)),
    "suv": dict(windscreen=(32, 42), rear_window=(65, 80), hood=(0.17, 0.21), tail=(0.02, 0.05)),
}


def _unit(*v: float) -> np.ndarray:
    a = np.asarray(v, dtype=np.float64)
    return a / np.linalg.norm(a)


def _wheels(b: PartsBuilder, xs: Sequence[float], y: float, radius: float, width: float, semantic: int) -> None:
    for x in xs:
        for side in (-1.0, 1.0):
            b.cylinder((x, side * y, radius), radius, width, _ACROSS, semantic, RUBBER)


def make_car(rng: np.random.Generator, size: Optional[Sequence[float]] = None) -> ObjectModel:
    """A car of ``size`` (length, width, height) in metres, drawn from the class statistics when None."""
    length, width, height = draw_size(rng, "Car") if size is None else np.asarray(size, dtype=np.float64)
    style = ("sedan", "hatchback", "suv")[int(rng.choice(3, p=[0.45, 0.3, 0.25]))]
    paint = CAR_PAINT.varied(rng, 0.6)
    half_l, half_w = length / 2, width / 2
    clearance = rng.uniform(0.14, 0.2) + (0.05 if style == "suv" else 0.0)
    belt = float(np.clip(rng.uniform(0.56, 0.63) * height, clearance + 0.5, height - 0.35))
    b = PartsBuilder()
    # lower body: chamfered nose, tail, bottom edges and shoulders
    b.convex(
        (-half_l + 0.02, -half_w, clearance),
        (half_l - 0.02, half_w, belt),
        [
            (_unit(1, 0, 1.3), (half_l, 0, belt - 0.16)),
            (_unit(1, 0, -1), (half_l, 0, clearance + 0.1)),
            (_unit(-1, 0, 1.1), (-half_l, 0, belt - 0.1)),
            (_unit(-1, 0, -1), (-half_l, 0, clearance + 0.12)),
            (_unit(0, 1, 1.2), (0, half_w, belt - 0.08)),
            (_unit(0, -1, 1.2), (0, -half_w, belt - 0.08)),
        ],
        CAR,
        paint,
    )
    # cabin: windscreen angle alpha and rear angle beta from the horizontal, sides leaning in by gamma
    cabin_h = height - belt
    shape = _CAR_STYLES[style]
    alpha = np.radians(rng.uniform(*shape["windscreen"]))
    beta = np.radians(rng.uniform(*shape["rear_window"]))
    gamma = np.radians(rng.uniform(8, 16))
    hood = length * rng.uniform(*shape["hood"])
    tail = length * rng.uniform(*shape["tail"])
    x_front, x_rear = half_l - hood, -half_l + tail
    # keep a roof of at least 0.6 m: steepen the windows where the cabin is short
    run = x_front - x_rear - 0.6
    if cabin_h / np.tan(alpha) + cabin_h / np.tan(beta) > run:
        scale = (cabin_h / np.tan(alpha) + cabin_h / np.tan(beta)) / run
        alpha, beta = np.arctan(np.tan(alpha) * scale), np.arctan(np.tan(beta) * scale)
    cabin_w = half_w - 0.05
    cuts = [
        (_unit(np.sin(alpha), 0, np.cos(alpha)), (x_front, 0, belt)),
        (_unit(-np.sin(beta), 0, np.cos(beta)), (x_rear, 0, belt)),
        (_unit(0, np.cos(gamma), np.sin(gamma)), (0, cabin_w, belt)),
        (_unit(0, -np.cos(gamma), np.sin(gamma)), (0, -cabin_w, belt)),
    ]
    roof = 0.06
    b.convex((x_rear, -cabin_w, belt), (x_front, cabin_w, height - roof), cuts, CAR, CAR_GLASS)
    b.convex((x_rear, -cabin_w, height - roof), (x_front, cabin_w, height), cuts, CAR, paint)
    # wheels and plates
    radius = float(np.clip(0.31 + 0.12 * (height - 1.5), 0.29, 0.38))
    front_axle = half_l - length * rng.uniform(0.17, 0.21)
    rear_axle = -half_l + length * rng.uniform(0.19, 0.24)
    _wheels(b, (front_axle, rear_axle), half_w - 0.13, radius, 0.21, CAR)
    plate_z = clearance + 0.25
    for x0, x1 in ((half_l - 0.03, half_l), (-half_l, -half_l + 0.03)):
        b.box((x0, -0.26, plate_z - 0.055), (x1, 0.26, plate_z + 0.055), CAR, PLATE)
    return ObjectModel.from_builder("Car", b)


def make_truck(rng: np.random.Generator, size: Optional[Sequence[float]] = None) -> ObjectModel:
    """A box truck of ``size`` (length, width, height), drawn from the class statistics when None."""
    length, width, height = draw_size(rng, "Truck") if size is None else np.asarray(size, dtype=np.float64)
    half_l, half_w = length / 2, width / 2
    paint = CAR_PAINT.varied(rng, 0.6)
    cargo_paint = METAL.varied(rng, 0.4)
    cab_len = rng.uniform(1.9, 2.4)
    cab_top = min(height, rng.uniform(2.5, 3.0))
    gap = rng.uniform(0.15, 0.4)
    clearance = rng.uniform(0.3, 0.4)
    glass_z = rng.uniform(1.5, 1.7)
    deck = rng.uniform(1.0, 1.25)
    rake = np.radians(rng.uniform(6, 18))  # windscreen lean from the vertical
    cab_back = half_l - cab_len
    b = PartsBuilder()
    rake_cut = (_unit(np.cos(rake), 0, np.sin(rake)), (half_l - 0.02, 0, glass_z))
    b.convex(
        (cab_back, -half_w, clearance),
        (half_l - 0.02, half_w, glass_z),
        [(_unit(1, 0, -1), (half_l, 0, clearance + 0.15))],
        TRUCK,
        paint,
    )
    b.convex(
        (cab_back, -half_w + 0.03, glass_z), (half_l - 0.02, half_w - 0.03, cab_top - 0.3), [rake_cut], TRUCK, CAR_GLASS
    )
    b.convex(
        (cab_back, -half_w + 0.03, cab_top - 0.3),
        (half_l - 0.02, half_w - 0.03, cab_top),
        [rake_cut, (_unit(1, 0, 1), (half_l - 0.1, 0, cab_top))],
        TRUCK,
        paint,
    )
    b.box((-half_l + 0.02, -half_w, deck), (cab_back - gap, half_w, height), TRUCK, cargo_paint)
    b.box((-half_l + 0.3, -half_w + 0.35, clearance + 0.1), (cab_back + 0.01, half_w - 0.35, deck), TRUCK, METAL)
    radius = rng.uniform(0.45, 0.52)
    front_axle = half_l - rng.uniform(0.5, 0.8)
    rear = -half_l + max(0.25 * length, radius + 0.5)
    axles = [front_axle, rear] + ([rear + 2 * radius + 0.15] if length > 7.5 else [])
    _wheels(b, axles, half_w - 0.17, radius, 0.32, TRUCK)
    b.box((half_l - 0.03, -0.26, clearance + 0.2), (half_l, 0.26, clearance + 0.31), TRUCK, PLATE)
    b.box((-half_l, -0.26, deck + 0.1), (-half_l + 0.03, 0.26, deck + 0.21), TRUCK, PLATE)
    b.box((-half_l + 0.02, -half_w + 0.15, deck - 0.45), (-half_l + 0.2, half_w - 0.15, deck - 0.3), TRUCK, METAL)
    return ObjectModel.from_builder("Truck", b)


__all__ = ["make_car", "make_truck"]
