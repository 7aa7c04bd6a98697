"""The room's fabric: floor, walls with skirting boards, ceiling, a corner column or notch, doors and
windows cut into the walls, curtains beside windows."""

from __future__ import annotations

import numpy as np

from .labels import CURTAIN, DOOR, FLOOR, IGN, WALL, WINDOW
from .materials import (
    FABRIC_MATS,
    FLOOR_MATS,
    GREY,
    METAL,
    OFFWHITE,
    WALL_MATS,
    WHITE,
    WOOD_M,
    WOOD_MATS,
    BEIGE,
    material,
)
from .room import Room, wall_frame


def build_shell(room: Room, rng) -> None:
    """Floor, four walls (some with skirting boards), usually a sparsely scanned ceiling, and sometimes
    a corner column or notch whose wall stretches are marked taken."""
    W, D, H = room.W, room.D, room.H
    wall_col = material(rng, WALL_MATS)
    p = room.parts
    p.rect([0, 0, 0], [W, 0, 0], [0, D, 0], FLOOR, material(rng, FLOOR_MATS), density=1.0)
    for wall in range(4):
        o, tan, nrm = wall_frame(room, wall)
        L = room.wall_len(wall)
        p.rect(
            o,
            np.array([0, 0, H]),
            tan * L,
            WALL,
            wall_col if rng.random() < 0.85 else material(rng, WALL_MATS),
            density=0.8,
            carvable=True,
        )
        if rng.random() < 0.7:  # skirting board (wall)
            a = o
            b = o + tan * L + nrm * 0.012 + np.array([0, 0, rng.uniform(0.06, 0.1)])
            p.box(
                np.minimum(a, b),
                np.maximum(a, b),
                WALL,
                material(rng, (WHITE, WOOD_M, GREY)),
                solid=False,
                carvable=True,
            )
    if rng.random() < 0.75:  # ceiling (ignored), sparsely scanned
        p.rect([0, 0, H], [0, D, 0], [W, 0, 0], IGN, material(rng, (WHITE, OFFWHITE)), density=rng.uniform(0.15, 0.5))
    if rng.random() < 0.4:  # a column in a corner, or a large notch that makes the room L-shaped (wall)
        cx_, cy_ = (rng.uniform(0.25, 0.5),) * 2 if rng.random() < 0.6 else rng.uniform(0.6, 1.4, 2)
        corner = rng.integers(4)
        x0 = 0.0 if corner in (0, 3) else W - cx_
        y0 = 0.0 if corner in (0, 1) else D - cy_
        p.box([x0, y0, 0], [x0 + cx_, y0 + cy_, H], WALL, wall_col)
        room.footprints.append((x0, x0 + cx_, y0, y0 + cy_))
        # the stretches of wall hidden behind the block carry no door, window or wall furniture
        corners = np.array([[x, y, 0.0] for x in (x0, x0 + cx_) for y in (y0, y0 + cy_)])
        for wall in range(4):
            o, tan, nrm = wall_frame(room, wall)
            if ((corners - o) @ nrm).min() < 1e-6:  # the block touches this wall
                ts = (corners - o) @ tan
                room.wall_spans.append((wall, ts.min() - 0.05, ts.max() + 0.05, 0.0, H))


def _add_opening(room: Room, wall: int, t0: float, t1: float, z0: float, z1: float) -> None:
    o, tan, nrm = wall_frame(room, wall)
    a = o + tan * t0 + np.array([0, 0, z0]) - nrm * 0.05
    b = o + tan * t1 + np.array([0, 0, z1]) + nrm * 0.05
    room.carves.append((np.minimum(a, b), np.maximum(a, b)))


def add_door(room: Room, rng) -> bool:
    """Cut a door (0.8-1 m wide, 2-2.15 m high) into a free wall span, with a frame and a closed or open
    panel; its swing area is kept free of furniture. True when placed."""
    for _ in range(20):
        wall = int(rng.integers(4))
        L = room.wall_len(wall)
        w = rng.uniform(0.8, 1.0)
        if L < w + 0.4:
            continue
        t0 = rng.uniform(0.1, L - w - 0.1)
        h = rng.uniform(2.0, 2.15)
        if not room.span_free(wall, t0 - 0.1, t0 + w + 0.1, 0.0, h):
            continue
        o, tan, nrm = wall_frame(room, wall)
        col = material(rng, WOOD_MATS + (WHITE, OFFWHITE, GREY))
        _add_opening(room, wall, t0, t0 + w, 0.0, h)
        base = o + tan * t0
        ft = 0.05  # frame (door)
        frame_col = material(rng, (tuple(col), WHITE))
        for a, b in ((base - tan * ft, base), (base + tan * w, base + tan * (w + ft))):
            lo, hi = np.minimum(a, b), np.maximum(a, b)
            p0 = np.minimum(lo, lo + nrm * 0.015)
            p1 = np.maximum(hi, hi + nrm * 0.015) + np.array([0, 0, h + ft])
            room.parts.box(np.minimum(p0, p1), np.maximum(p0, p1), DOOR, frame_col, solid=False)
        top0 = base - tan * ft + np.array([0, 0, h])
        top1 = base + tan * (w + ft) + np.array([0, 0, h + ft]) + nrm * 0.015
        room.parts.box(np.minimum(top0, top1), np.maximum(top0, top1), DOOR, frame_col, solid=False)
        if rng.random() < 0.65:  # closed: panel recessed in the opening
            a = base - nrm * 0.03
            b = base + tan * w - nrm * 0.07 + np.array([0, 0, h])
            room.parts.box(np.minimum(a, b), np.maximum(a, b), DOOR, col, solid=False)
        else:  # open into the room, hinged at t0
            a = base
            b = base + tan * 0.04 + nrm * w + np.array([0, 0, h - 0.01])
            room.parts.box(np.minimum(a, b), np.maximum(a, b), DOOR, col)
        room.wall_spans.append((wall, t0 - 0.1, t0 + w + 0.1, 0.0, h + 0.05))
        # keep the swing area free of furniture
        c0 = base - tan * 0.1
        c1 = base + tan * (w + 0.1) + nrm * (w + 0.1)
        room.footprints.append((min(c0[0], c1[0]), max(c0[0], c1[0]), min(c0[1], c1[1]), max(c0[1], c1[1])))
        return True
    return False


def add_window(room: Room, rng) -> bool:
    """Cut a window into a free wall span: recessed glass, reveals, frame bars, mullions and a sill.
    True when placed."""
    for _ in range(20):
        wall = int(rng.integers(4))
        L = room.wall_len(wall)
        w = rng.uniform(0.7, min(2.2, L - 0.6)) if L > 1.4 else 0.0
        if w <= 0:
            continue
        t0 = rng.uniform(0.25, L - w - 0.25)
        z0 = rng.uniform(0.75, 1.05)
        z1 = min(room.H - 0.2, rng.uniform(1.9, 2.35))
        if not room.span_free(wall, t0 - 0.05, t0 + w + 0.05, z0 - 0.03, z1):
            continue
        o, tan, nrm = wall_frame(room, wall)
        _add_opening(room, wall, t0, t0 + w, z0, z1)
        frame = material(rng, (WHITE, METAL, WOOD_M, GREY))
        rec = rng.uniform(0.06, 0.14)  # glass recessed behind the wall plane
        base = o + tan * t0 - nrm * rec
        glass = material(rng, ((0.55, 0.62, 0.68), (0.3, 0.33, 0.36), (0.8, 0.82, 0.84)))
        room.parts.rect(base + np.array([0, 0, z0]), tan * w, np.array([0, 0, z1 - z0]), WINDOW, glass, density=0.25)
        # reveals (window jambs) between the wall plane and the glass
        for t in (t0, t0 + w):
            p = o + tan * t + np.array([0, 0, z0])
            room.parts.rect(p - nrm * rec, nrm * rec, np.array([0, 0, z1 - z0]), WINDOW, frame)
        room.parts.rect(o + tan * t0 + np.array([0, 0, z1]) - nrm * rec, tan * w, nrm * rec, WINDOW, frame)
        # frame bars and a mullion
        bar = 0.05
        nmull = int(w // 0.8)
        ts = [t0, t0 + w - bar] + [t0 + (k + 1) * w / (nmull + 1) - bar / 2 for k in range(nmull)]
        for t in ts:
            a = o + tan * t - nrm * rec + np.array([0, 0, z0])
            b = a + tan * bar + nrm * 0.04 + np.array([0, 0, z1 - z0])
            room.parts.box(np.minimum(a, b), np.maximum(a, b), WINDOW, frame, solid=False)
        for z in (z0, z1 - bar):
            a = o + tan * t0 - nrm * rec + np.array([0, 0, z])
            b = a + tan * w + nrm * 0.04 + np.array([0, 0, bar])
            room.parts.box(np.minimum(a, b), np.maximum(a, b), WINDOW, frame, solid=False)
        # sill (window)
        a = o + tan * (t0 - 0.04) - nrm * rec + np.array([0, 0, z0 - 0.03])
        b = o + tan * (t0 + w + 0.04) + nrm * 0.05 + np.array([0, 0, z0])
        room.parts.box(np.minimum(a, b), np.maximum(a, b), WINDOW, frame, solid=False)
        room.wall_spans.append((wall, t0 - 0.05, t0 + w + 0.05, z0 - 0.03, z1))
        room.windows.append((wall, t0, t0 + w, z0, z1))
        return True
    return False


def add_curtains(room: Room, rng) -> None:
    """Wavy curtains beside some of the room's windows."""
    for wall, t0, t1, z0, z1 in room.windows:
        if rng.random() > 0.45:
            continue
        o, tan, nrm = wall_frame(room, wall)
        top = min(room.H - 0.05, z1 + rng.uniform(0.05, 0.3))
        bottom = rng.choice([0.02, z0 - 0.1])
        col = material(rng, FABRIC_MATS + (WHITE, BEIGE))
        off = rng.uniform(0.08, 0.15)
        cw = rng.uniform(0.3, 0.6)
        for ta in (t0 - cw * 0.6, t1 - cw * 0.4):
            ta = float(np.clip(ta, 0.02, room.wall_len(wall) - cw - 0.02))
            a = o + tan * ta + nrm * off + np.array([0, 0, bottom])
            room.parts.rect(
                a, tan * cw, np.array([0, 0, top - bottom]), CURTAIN, col, density=1.2, wave=0.035, waves=cw / 0.12
            )
