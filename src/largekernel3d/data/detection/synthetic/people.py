"""Pedestrians and cyclists composed of primitives.

A pedestrian is two legs and two arms (cylinders between joints; walking people stride and swing their
arms opposite to their legs), an ellipsoid torso, a neck and an ellipsoid head, sometimes a backpack.
A cyclist is a bicycle (spoked wheels as porous discs the laser partly passes through, a tube frame,
fork, handlebar and saddle) with a rider leaning forward: torso, head, arms to the grips and legs
bent from the hip to the pedals.

The object frame has x forward, y left, z up, the feet or tyres on the ground at z = 0.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from .categories import CYCLIST, PEDESTRIAN, draw_size
from .materials import CLOTH, METAL, SKIN, SPOKES
from .objects import ObjectModel
from .primitives import PartsBuilder, rot_y


def make_pedestrian(
    rng: np.random.Generator, size: Optional[Sequence[float]] = None, walking: bool = True
) -> ObjectModel:
    """A person of ``size`` (length, width, height) drawn from the class statistics when None; the
    length is reached by the stride of a walking person (a standing one is shorter)."""
    length, width, height = draw_size(rng, "Pedestrian") if size is None else np.asarray(size, dtype=np.float64)
    s = height / 1.75
    top, bottom = CLOTH.varied(rng, 0.5), CLOTH.varied(rng, 0.5)
    b = PartsBuilder()
    hip, shoulder = 0.53 * height, 0.815 * height
    leg_r, arm_r = 0.065 * s, 0.042 * s
    # torso width follows the drawn width: the arms hang just outside the torso
    torso_half_w = float(np.clip(width / 2 - 2 * arm_r - 0.02, 0.14 * s, 0.26 * s))
    torso_half_d = torso_half_w * rng.uniform(0.55, 0.7)
    b.ellipsoid(
        (0, 0, (hip + shoulder) / 2), (torso_half_d, torso_half_w, (shoulder - hip) / 2 + 0.05 * s), PEDESTRIAN, top
    )
    head_c = height - 0.115 * s
    b.segment((0, 0, shoulder), (0, 0, head_c), 0.05 * s, PEDESTRIAN, SKIN)
    b.ellipsoid((0.01 * s, 0, head_c), (0.1 * s, 0.085 * s, 0.115 * s), PEDESTRIAN, SKIN)
    toe, heel, ankle = 0.17 * s, 0.07 * s, 0.09 * s
    if walking:  # the feet reach the drawn length: front toe at +length / 2, back heel at -length / 2
        reach = max(length / 2 - toe, 0.1)
        swing = rng.uniform(0.4, 0.9) * reach
    else:
        reach, swing = rng.uniform(0.0, 0.06), rng.uniform(0.0, 0.04)
    lead = rng.choice([-1.0, 1.0])  # which leg is forward
    shoes = CLOTH.varied(rng, 0.5)
    for side in (-1.0, 1.0):
        foot_x = lead * side * reach
        foot_y = side * 0.1 * s
        b.box((foot_x - heel, foot_y - 0.05 * s, 0.0), (foot_x + toe, foot_y + 0.05 * s, ankle), PEDESTRIAN, shoes)
        b.segment((0, side * 0.085 * s, hip), (foot_x, foot_y, ankle), leg_r, PEDESTRIAN, bottom)
        arm_y = side * (torso_half_w + arm_r + 0.01)
        hand_x = -lead * side * swing
        b.segment((0, arm_y, shoulder - 0.03 * s), (hand_x, arm_y, hip), arm_r, PEDESTRIAN, top)
    if rng.random() < 0.25:
        b.box(
            (-torso_half_d - 0.18, -0.15 * s, hip + 0.12 * s),
            (-torso_half_d + 0.03, 0.15 * s, shoulder - 0.02),
            PEDESTRIAN,
            CLOTH.varied(rng, 0.5),
        )
    return ObjectModel.from_builder("Pedestrian", b)


def make_cyclist(rng: np.random.Generator, size: Optional[Sequence[float]] = None) -> ObjectModel:
    """A rider on a bicycle of ``size`` (length, width, height) drawn from the class statistics when
    None: the length is the wheelbase plus a wheel diameter, the width the handlebar, the height the
    top of the rider's head."""
    length, width, height = draw_size(rng, "Cyclist") if size is None else np.asarray(size, dtype=np.float64)
    wheel_r = rng.uniform(0.33, 0.36)
    base = length - 2 * wheel_r
    rear, front = np.array([-base / 2, 0, wheel_r]), np.array([base / 2, 0, wheel_r])
    b = PartsBuilder()
    for hub in (rear, front):
        b.cylinder(hub, wheel_r, 0.05, (0, 1, 0), CYCLIST, SPOKES)
    tube = 0.022
    frame = METAL.varied(rng, 0.5)
    bb = rear + [0.42, 0, 0.28 - wheel_r]
    saddle_h = rng.uniform(0.86, 0.95)
    seat = np.array([bb[0] - 0.16, 0, saddle_h - 0.05])
    head_top = np.array([front[0] - 0.2, 0, rng.uniform(0.95, 1.02)])
    head_low = head_top + [0.05, 0, -0.18]
    for a, c in (
        (rear, bb),
        (rear, seat),
        (bb, seat),
        (seat, head_top),
        (bb, head_low),
        (head_low, front),
        (head_top, head_top + [0, 0, 0.06]),
    ):
        b.segment(a, c, tube, CYCLIST, frame)
    bar = head_top + [0.0, 0, 0.06]
    b.segment(bar + [0, -width / 2, 0], bar + [0, width / 2, 0], tube, CYCLIST, frame)
    b.box(seat + [-0.12, -0.08, 0.0], seat + [0.14, 0.08, 0.06], CYCLIST, CLOTH)
    # rider: torso leaning forward by lean, head on top at the drawn height
    r = (height - saddle_h) / 0.8
    hip = np.array([seat[0] - 0.02, 0, saddle_h + 0.08])
    lean = np.radians(rng.uniform(30, 48))
    torso_len = float(np.clip((height - hip[2] - 0.28 * r) / np.cos(lean), 0.4, 0.68))
    direction = np.array([np.sin(lean), 0, np.cos(lean)])
    shoulder = hip + torso_len * direction
    clothes = CLOTH.varied(rng, 0.5)
    b.ellipsoid((hip + shoulder) / 2, (0.11, 0.17, torso_len / 2 + 0.05), CYCLIST, clothes, rotation=rot_y(lean))
    head = shoulder + [0.07, 0, 0.16 * r]
    b.segment(shoulder, head, 0.05, CYCLIST, SKIN)
    b.ellipsoid(head, (0.11, 0.09, height - head[2]), CYCLIST, SKIN)
    crank = rng.uniform(0, 2 * np.pi)
    for side in (-1.0, 1.0):
        b.segment(shoulder + [0, side * 0.17, -0.02], bar + [0, side * (width / 2 - 0.07), 0], 0.04, CYCLIST, clothes)
        pedal = bb + 0.17 * np.array([np.cos(crank + (side > 0) * np.pi), 0, np.sin(crank + (side > 0) * np.pi)])
        pedal[1] = side * 0.12
        joint = hip + [0, side * 0.09, 0]
        mid = (joint + pedal) / 2
        reach = np.linalg.norm(pedal - joint)
        bend = np.sqrt(max(0.46**2 - (reach / 2) ** 2, 0.0))
        across = np.cross(pedal - joint, [0, 1, 0])
        knee = mid + bend * across / np.linalg.norm(across) * np.sign(across[0] + 1e-9)
        b.segment(joint, knee, 0.07, CYCLIST, clothes)
        b.segment(knee, pedal, 0.055, CYCLIST, clothes)
    return ObjectModel.from_builder("Cyclist", b)


__all__ = ["make_pedestrian", "make_cyclist"]
