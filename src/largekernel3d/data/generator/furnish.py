"""Furnishing a room by type: groups placed with indoor context (chairs around tables and in front of
desks, night stands beside beds, coffee tables before sofas, upper cabinets over counters, radiators under
windows, clutter on tables) and wall items (pictures, TVs, whiteboards, mirrors)."""

from __future__ import annotations

import numpy as np

from .furniture import (
    Furniture,
    make_bathtub,
    make_bed,
    make_bookshelf,
    make_cabinet,
    make_chair,
    make_counter,
    make_desk,
    make_fridge,
    make_nightstand,
    make_other,
    make_sofa,
    make_table,
    make_toilet,
    make_vanity,
    make_wall_cabinet,
)
from .labels import IGN, OTHERFURN, PICTURE
from .materials import ANY_MATS, BLACK, FABRIC_MATS, LGREY, WHITE, WOOD_MATS, material
from .primitives import Parts, rotz
from .room import Room, add_wall_item, footprint, place, try_against_wall, wall_frame, wall_pose
from .shell import add_curtains


def _clutter_on(room: Room, rng, x0, x1, y0, y1, z, n) -> None:
    """Small props (ignored) standing on a surface [x0, x1] x [y0, y1] at height z."""
    for _ in range(n):
        s = rng.uniform(0.06, 0.3, size=2)
        if x1 - x0 < s[0] + 0.02 or y1 - y0 < s[1] + 0.02:
            continue
        cx = rng.uniform(x0 + s[0] / 2, x1 - s[0] / 2)
        cy = rng.uniform(y0 + s[1] / 2, y1 - s[1] / 2)
        h = rng.uniform(0.03, 0.3)
        if rng.random() < 0.3:
            room.parts.cylinder(cx, cy, z, z + h, min(s) / 2, IGN, material(rng, ANY_MATS))
        else:
            room.parts.box(
                [cx - s[0] / 2, cy - s[1] / 2, z],
                [cx + s[0] / 2, cy + s[1] / 2, z + h],
                IGN,
                material(rng, ANY_MATS),
                bottom=False,
            )


def _table_with_chairs(room: Room, rng, big=False, tries=30) -> bool:
    tbl = make_table(rng, w=rng.uniform(1.8, 3.2) if big else None, d=rng.uniform(0.9, 1.3) if big else None)
    chair_col = material(rng, FABRIC_MATS + WOOD_MATS + (BLACK,))
    for _ in range(tries):
        k = int(rng.integers(2))
        yaw = rng.normal(0, 0.08) if rng.random() < 0.4 else 0.0  # not every table is square to the walls
        margin = 0.85
        hw, hd = (tbl.w / 2, tbl.d / 2) if k == 0 else (tbl.d / 2, tbl.w / 2)
        if room.W < 2 * (hw + margin) or room.D < 2 * (hd + margin):
            return False
        cx = rng.uniform(hw + margin, room.W - hw - margin)
        cy = rng.uniform(hd + margin, room.D - hd - margin)
        fp = footprint(cx, cy, tbl.w + 0.9, tbl.d + 0.9, k)
        if not room.free(fp, clearance=0.0):
            continue
        place(room, tbl, cx, cy, k, register=False, yaw=yaw)
        room.footprints.append(fp)
        _clutter_on(
            room, rng, *(np.array(footprint(cx, cy, tbl.w - 0.1, tbl.d - 0.1, k))), tbl.h, int(rng.integers(0, 5))
        )
        # chairs along the long sides (and the ends of long tables), facing the table
        nside = max(1, int(tbl.w // 0.65))
        slots = []
        for side in (-1, 1):
            for j in range(nside):
                u = (j + 0.5) / nside - 0.5
                slots.append((u * tbl.w, side * (tbl.d / 2 + rng.uniform(0.05, 0.3)), 0 if side < 0 else 2))
        if tbl.w > 1.4:
            for side in (-1, 1):
                slots.append((side * (tbl.w / 2 + rng.uniform(0.05, 0.25)), 0.0, 3 if side < 0 else 1))
        for lx, ly, ck in slots:
            if rng.random() < (0.25 if not big else 0.1):
                continue
            chair = make_chair(rng, color=chair_col)
            # local chair faces +y; ck rotates it to face the table centre; chairs are never quite aligned
            off = rotz(k * np.pi / 2 + yaw) @ np.array([lx, ly, 0.0])
            jitter = rng.normal(0, 0.04, 2)
            place(
                room,
                chair,
                cx + off[0] + jitter[0],
                cy + off[1] + jitter[1],
                (ck + k) % 4,
                register=False,
                yaw=yaw + rng.normal(0, 0.15),
            )
        return True
    return False


def _desk_with_chair(room: Room, rng) -> bool:
    desk = make_desk(rng)
    res = try_against_wall(room, rng, desk)
    if res is None:
        return False
    wall, t, cx, cy = res
    _clutter_on(room, rng, *footprint(cx, cy, desk.w - 0.1, desk.d - 0.1, wall), desk.h, int(rng.integers(0, 4)))
    if rng.random() < 0.85:
        chair = make_chair(rng)
        _, _, nrm = wall_frame(room, wall)
        dist = desk.d / 2 + rng.uniform(0.05, 0.35)
        pos = np.array([cx, cy, 0.0]) + nrm * dist + wall_frame(room, wall)[1] * rng.normal(0, 0.1)
        # chair faces the wall (its +y towards -nrm): rotation wall + 2, turned a little
        place(room, chair, pos[0], pos[1], (wall + 2) % 4, yaw=rng.normal(0, 0.3))
    if rng.random() < 0.5:
        add_wall_item(
            room, rng, PICTURE, rng.uniform(0.3, 0.8), rng.uniform(0.3, 0.6), rng.uniform(1.3, 1.7), wall=wall, t=t
        )
    return True


def _bed_group(room: Room, rng) -> bool:
    bed = make_bed(rng)
    res = try_against_wall(room, rng, bed)
    if res is None:
        return False
    wall, t, cx, cy = res
    L = room.wall_len(wall)
    for side in (-1, 1):
        if rng.random() < 0.6:
            ns = make_nightstand(rng)
            tn = t + side * (bed.w / 2 + ns.w / 2 + 0.03)
            if ns.w / 2 < tn < L - ns.w / 2:
                try_against_wall(room, rng, ns, walls=[wall], tries=1, t_range=(tn, tn), clearance=0.0)
    if rng.random() < 0.6:
        add_wall_item(
            room, rng, PICTURE, rng.uniform(0.4, 1.2), rng.uniform(0.3, 0.7), rng.uniform(1.45, 1.8), wall=wall, t=t
        )
    return True


def _sofa_group(room: Room, rng) -> bool:
    sofa = make_sofa(rng)
    res = try_against_wall(room, rng, sofa)
    if res is None:
        return False
    wall, t, cx, cy = res
    _, tan, nrm = wall_frame(room, wall)
    if rng.random() < 0.8:  # coffee table in front
        ct = make_table(rng, w=rng.uniform(0.8, 1.3), d=rng.uniform(0.45, 0.7), h=rng.uniform(0.38, 0.48))
        pos = np.array([cx, cy, 0.0]) + nrm * (sofa.d / 2 + rng.uniform(0.3, 0.5) + ct.d / 2)
        fp = footprint(pos[0], pos[1], ct.w, ct.d, wall)
        if room.free(fp):
            place(room, ct, pos[0], pos[1], wall)
            _clutter_on(room, rng, *fp, ct.h, int(rng.integers(0, 3)))
    if rng.random() < 0.7:
        add_wall_item(
            room, rng, PICTURE, rng.uniform(0.5, 1.3), rng.uniform(0.4, 0.8), rng.uniform(1.45, 1.75), wall=wall, t=t
        )
    return True


def _kitchen_row(room: Room, rng) -> bool:
    counter = make_counter(rng, with_sink=rng.random() < 0.8)
    res = try_against_wall(room, rng, counter)
    if res is None:
        return False
    wall, t, cx, cy = res
    if rng.random() < 0.7:  # upper cabinets over the counter
        uc, z = make_wall_cabinet(rng, min(counter.w, rng.uniform(0.8, 2.4)))
        pos = np.array([cx, cy, 0.0]) - wall_frame(room, wall)[2] * (counter.d - uc.d) / 2
        if z + uc.h < room.H - 0.05 and room.span_free(wall, t - uc.w / 2, t + uc.w / 2, z, z + uc.h):
            place(room, uc, pos[0], pos[1], wall, z=z, register=False)
            room.wall_spans.append((wall, t - uc.w / 2, t + uc.w / 2, z, z + uc.h))
    _clutter_on(
        room, rng, *footprint(cx, cy, counter.w * 0.5, counter.d - 0.1, wall), counter.h, int(rng.integers(0, 3))
    )
    fridge = make_fridge(rng)
    L = room.wall_len(wall)
    if rng.random() < 0.85:  # a fridge, beside the counter when there is room, else elsewhere
        placed = None
        for tn in (t + counter.w / 2 + fridge.w / 2 + 0.02, t - counter.w / 2 - fridge.w / 2 - 0.02):
            if fridge.w / 2 < tn < L - fridge.w / 2:
                placed = try_against_wall(room, rng, fridge, walls=[wall], tries=1, t_range=(tn, tn), clearance=0.0)
                if placed:
                    break
        if not placed:
            try_against_wall(room, rng, fridge)
    return True


def _radiators(room: Room, rng) -> None:
    for wall, t0, t1, z0, _z1 in room.windows:
        if rng.random() < 0.35 and z0 > 0.7:
            w = min(t1 - t0, rng.uniform(0.6, 1.4))
            obj = Furniture(Parts(), w, 0.1, z0 - 0.15)
            obj.parts.box([-w / 2, -0.05, 0.12], [w / 2, 0.05, z0 - 0.15], OTHERFURN, material(rng, (WHITE, LGREY)))
            tc = (t0 + t1) / 2
            cx, cy = wall_pose(room, wall, tc, 0.1, 0.04)
            fp = footprint(cx, cy, w, 0.1, wall)
            if room.free(fp, clearance=0.0):
                place(room, obj, cx, cy, wall)


def _place_many(makers, counts) -> None:
    """Call each ``makers[i]`` ``counts[i]`` times (each call tries to place one object)."""
    for maker, n in zip(makers, counts):
        for _ in range(n):
            maker()


def furnish(room: Room, rng, rtype: str) -> None:
    """Furnish ``room`` for its type ``rtype`` (one of :data:`.layout.ROOM_TYPES`), then add radiators,
    curtains, pictures and boxes on the floor."""
    r = rng.random

    def wall_obj(make):
        return lambda: try_against_wall(room, rng, make(rng))

    if rtype == "bedroom":
        _bed_group(room, rng)
        if r() < 0.3:
            _bed_group(room, rng)
        if r() < 0.15:
            _sofa_group(room, rng)
        _place_many(
            [
                lambda: _desk_with_chair(room, rng),
                wall_obj(make_cabinet),
                wall_obj(make_bookshelf),
                wall_obj(make_other),
            ],
            [int(r() < 0.7), int(rng.integers(1, 3)), int(r() < 0.4), int(rng.integers(0, 2))],
        )
    elif rtype == "living":
        _sofa_group(room, rng)
        if r() < 0.4:
            _sofa_group(room, rng)
        if r() < 0.7:  # tv bench
            res = try_against_wall(room, rng, make_cabinet(rng, h=rng.uniform(0.4, 0.6), w=rng.uniform(1.0, 1.8)))
            if res is not None:
                wall, t, cx, cy = res
                add_wall_item(
                    room,
                    rng,
                    IGN,
                    rng.uniform(0.8, 1.3),
                    rng.uniform(0.5, 0.75),
                    rng.uniform(0.95, 1.2),
                    depth=0.06,
                    color=BLACK,
                    wall=wall,
                    t=t,
                )
        _place_many(
            [
                wall_obj(make_bookshelf),
                wall_obj(make_cabinet),
                wall_obj(make_other),
                lambda: _table_with_chairs(room, rng),
            ],
            [int(rng.integers(0, 3)), int(rng.integers(0, 2)), int(rng.integers(0, 3)), int(r() < 0.4)],
        )
        if r() < 0.3:  # open-plan kitchen
            _kitchen_row(room, rng)
        for _ in range(int(rng.integers(0, 3))):  # armchairs
            try_against_wall(room, rng, make_chair(rng), tries=10)
    elif rtype == "office":
        for _ in range(int(rng.integers(2, 5))):
            _desk_with_chair(room, rng)
        if r() < 0.2:  # lounge corner
            _sofa_group(room, rng)
        _place_many(
            [
                wall_obj(make_cabinet),
                wall_obj(make_bookshelf),
                wall_obj(make_other),
                lambda: _table_with_chairs(room, rng),
            ],
            [int(rng.integers(1, 3)), int(rng.integers(0, 3)), int(rng.integers(1, 3)), int(r() < 0.4)],
        )
        if r() < 0.5:  # whiteboard (NYU40 30: ignored)
            add_wall_item(room, rng, IGN, rng.uniform(1.2, 2.0), rng.uniform(0.9, 1.2), 1.45, depth=0.02, color=WHITE)
    elif rtype == "kitchen":
        _kitchen_row(room, rng)
        if r() < 0.3:
            _kitchen_row(room, rng)
        _place_many(
            [lambda: _table_with_chairs(room, rng), wall_obj(make_cabinet), wall_obj(make_other)],
            [int(r() < 0.8), int(rng.integers(0, 3)), int(rng.integers(0, 3))],
        )
    elif rtype == "bathroom":
        _place_many(
            [
                wall_obj(make_toilet),
                wall_obj(make_bathtub),
                wall_obj(make_vanity),
                wall_obj(make_cabinet),
                wall_obj(make_other),
            ],
            [1, int(r() < 0.75), 1, int(r() < 0.5), int(r() < 0.6)],
        )
        if r() < 0.6:  # mirror (NYU40 19: ignored)
            add_wall_item(room, rng, IGN, rng.uniform(0.5, 0.9), rng.uniform(0.6, 0.9), 1.5, depth=0.01, color=LGREY)
    else:  # conference
        _table_with_chairs(room, rng, big=True)
        if r() < 0.15:
            _sofa_group(room, rng)
        _place_many(
            [wall_obj(make_cabinet), wall_obj(make_other), wall_obj(make_bookshelf)],
            [int(rng.integers(0, 3)), int(rng.integers(0, 3)), int(r() < 0.4)],
        )
        if r() < 0.7:
            add_wall_item(room, rng, IGN, rng.uniform(1.5, 2.4), rng.uniform(1.0, 1.2), 1.45, depth=0.02, color=WHITE)
    _radiators(room, rng)
    add_curtains(room, rng)
    for _ in range(int(rng.integers(0, 4))):
        add_wall_item(room, rng, PICTURE, rng.uniform(0.25, 1.0), rng.uniform(0.25, 0.8), rng.uniform(1.4, 1.8))
    for _ in range(int(rng.integers(0, 6))):  # boxes, bags on the floor (ignored)
        s = rng.uniform(0.15, 0.5, size=3)
        cx, cy = rng.uniform(s[0], room.W - s[0]), rng.uniform(s[1], room.D - s[1])
        fp = (cx - s[0] / 2, cx + s[0] / 2, cy - s[1] / 2, cy + s[1] / 2)
        if room.free(fp):
            room.parts.box([fp[0], fp[2], 0], [fp[1], fp[3], s[2] * 0.8], IGN, material(rng, ANY_MATS))
            room.footprints.append(fp)
