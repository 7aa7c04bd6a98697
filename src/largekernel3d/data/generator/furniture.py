"""Furniture makers. Each ``make_*`` draws one object in its local frame: footprint [-w/2, w/2] x
[-d/2, d/2], front facing +y, floor at z = 0; :func:`.room.place` turns and moves it into a room."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

import numpy as np

from .labels import (
    BATHTUB,
    BED,
    BOOKSHELF,
    CABINET,
    CHAIR,
    COUNTER,
    DESK,
    FRIDGE,
    IGN,
    OTHERFURN,
    SHOWERCURTAIN,
    SINK,
    SOFA,
    TABLE,
    TOILET,
)
from .materials import (
    ANY_MATS,
    BEIGE,
    BLACK,
    CERAMIC_MATS,
    DARK,
    FABRIC_MATS,
    FURN_MATS,
    GREEN,
    GREY,
    LGREY,
    METAL,
    PALEBLUE,
    WHITE,
    WOOD_L,
    WOOD_M,
    WOOD_MATS,
    material,
)
from .primitives import Parts


@dataclass
class Furniture:
    """An object in its local frame and its footprint width ``w``, depth ``d`` and height ``h`` (metres)."""

    parts: Parts
    w: float
    d: float
    h: float


def _legs(p: Parts, w, d, h, t, label, color, inset=0.03):
    for sx in (-1, 1):
        for sy in (-1, 1):
            cx = sx * (w / 2 - inset - t / 2)
            cy = sy * (d / 2 - inset - t / 2)
            p.box([cx - t / 2, cy - t / 2, 0], [cx + t / 2, cy + t / 2, h], label, color)


def make_table(rng, w=None, d=None, h=None) -> Furniture:
    w = w or rng.uniform(0.8, 1.8)
    d = d or rng.uniform(0.6, min(1.0, w))
    h = h or rng.uniform(0.70, 0.77)
    p = Parts()
    col = material(rng, FURN_MATS)
    top_t = rng.uniform(0.025, 0.05)
    p.box([-w / 2, -d / 2, h - top_t], [w / 2, d / 2, h], TABLE, col)
    if rng.random() < 0.75:
        _legs(p, w, d, h - top_t, rng.uniform(0.035, 0.07), TABLE, material(rng, (tuple(col), METAL, BLACK)))
    else:  # two panel legs
        t = 0.04
        for sx in (-1, 1):
            x = sx * (w / 2 - 0.08)
            p.box([x - t / 2, -d / 2 + 0.08, 0], [x + t / 2, d / 2 - 0.08, h - top_t], TABLE, col)
    return Furniture(p, w, d, h)


def make_chair(rng, color=None) -> Furniture:
    w = rng.uniform(0.42, 0.52)
    d = rng.uniform(0.42, 0.52)
    sh = rng.uniform(0.42, 0.48)
    bh = sh + rng.uniform(0.35, 0.5)
    p = Parts()
    col = color if color is not None else material(rng, FABRIC_MATS + WOOD_MATS + (BLACK,))
    st = rng.uniform(0.04, 0.08)
    p.box([-w / 2, -d / 2, sh - st], [w / 2, d / 2, sh], CHAIR, col)
    bt = 0.04
    p.box([-w / 2, -d / 2, sh], [w / 2, -d / 2 + bt, bh], CHAIR, col)  # back rest at -y, faces +y
    if rng.random() < 0.7:
        _legs(p, w, d, sh - st, 0.03, CHAIR, material(rng, (METAL, BLACK, WOOD_M)), inset=0.01)
    else:  # office chair: post + base
        p.cylinder(0.0, 0.0, 0.08, sh - st, 0.03, CHAIR, BLACK)
        p.box([-0.3, -0.03, 0.03], [0.3, 0.03, 0.08], CHAIR, BLACK)
        p.box([-0.03, -0.3, 0.03], [0.03, 0.3, 0.08], CHAIR, BLACK)
    return Furniture(p, w, d, bh)


def make_desk(rng) -> Furniture:
    w = rng.uniform(1.0, 1.7)
    d = rng.uniform(0.55, 0.8)
    h = rng.uniform(0.72, 0.77)
    p = Parts()
    col = material(rng, FURN_MATS)
    t = 0.03
    p.box([-w / 2, -d / 2, h - t], [w / 2, d / 2, h], DESK, col)
    p.box([-w / 2, -d / 2, 0], [-w / 2 + 0.025, d / 2, h - t], DESK, col)
    if rng.random() < 0.5:  # drawer pedestal
        p.box([w / 2 - 0.42, -d / 2 + 0.02, 0], [w / 2, d / 2, h - t], DESK, col)
    else:
        p.box([w / 2 - 0.025, -d / 2, 0], [w / 2, d / 2, h - t], DESK, col)
    p.box([-w / 2 + 0.025, -d / 2, 0.3], [w / 2 - 0.025, -d / 2 + 0.02, h - t], DESK, col)  # modesty panel
    if rng.random() < 0.6:  # monitor (television/otherprop: ignored)
        mw = rng.uniform(0.45, 0.65)
        p.box([-mw / 2, -0.05, h + 0.12], [mw / 2, -0.02, h + 0.12 + mw * 0.6], IGN, BLACK, solid=True)
        p.box([-0.03, -0.06, h], [0.03, 0.0, h + 0.14], IGN, BLACK)
    return Furniture(p, w, d, h)


def make_bed(rng) -> Furniture:
    w = rng.choice([rng.uniform(0.9, 1.1), rng.uniform(1.35, 1.9)])
    d = rng.uniform(1.95, 2.15)
    p = Parts()
    frame = material(rng, FURN_MATS)
    sheet = material(rng, FABRIC_MATS + (WHITE,))
    base_h = rng.uniform(0.2, 0.35)
    top = base_h + rng.uniform(0.2, 0.3)
    p.box([-w / 2, -d / 2, 0], [w / 2, d / 2, base_h], BED, frame)
    p.box([-w / 2 + 0.02, -d / 2 + 0.05, base_h], [w / 2 - 0.02, d / 2 - 0.02, top], BED, sheet)
    p.box([-w / 2, -d / 2, 0], [w / 2, -d / 2 + 0.06, top + rng.uniform(0.3, 0.6)], BED, frame)  # headboard
    npil = 1 if w < 1.2 else 2
    pw = (w - 0.2) / npil
    for k in range(npil):  # pillows (NYU40 18: ignored)
        x0 = -w / 2 + 0.1 + k * pw
        p.box(
            [x0 + 0.03, -d / 2 + 0.1, top],
            [x0 + pw - 0.03, -d / 2 + 0.5, top + 0.12],
            IGN,
            material(rng, FABRIC_MATS + (WHITE,)),
        )
    return Furniture(p, w, d, top + 0.5)


def make_sofa(rng) -> Furniture:
    w = rng.uniform(1.5, 2.4)
    d = rng.uniform(0.8, 0.98)
    p = Parts()
    col = material(rng, FABRIC_MATS + (BLACK,))
    seat = rng.uniform(0.38, 0.46)
    back_h = rng.uniform(0.75, 0.9)
    arm = rng.uniform(0.12, 0.22)
    arm_h = rng.uniform(0.55, 0.68)
    p.box([-w / 2 + arm, -d / 2 + 0.2, 0], [w / 2 - arm, d / 2, seat], SOFA, col)
    p.box([-w / 2, -d / 2, 0], [w / 2, -d / 2 + 0.2, back_h], SOFA, col)
    for sx in (-1, 1):
        x0 = -w / 2 if sx < 0 else w / 2 - arm
        p.box([x0, -d / 2, 0], [x0 + arm, d / 2, arm_h], SOFA, col)
    if rng.random() < 0.5:  # cushions (pillows: ignored)
        p.box(
            [-w / 2 + arm + 0.1, -d / 2 + 0.2, seat],
            [-w / 2 + arm + 0.5, -d / 2 + 0.33, seat + 0.4],
            IGN,
            material(rng, FABRIC_MATS),
        )
    return Furniture(p, w, d, back_h)


def make_cabinet(rng, h=None, w=None, d=None) -> Furniture:
    w = w or rng.uniform(0.45, 1.4)
    d = d or rng.uniform(0.35, 0.6)
    h = h or rng.choice([rng.uniform(0.5, 0.9), rng.uniform(1.0, 2.1)])
    p = Parts()
    col = material(rng, FURN_MATS)
    p.box([-w / 2, -d / 2, 0], [w / 2, d / 2, h], CABINET, col)
    ndoor = max(1, int(round(w / 0.45)))
    for k in range(ndoor):  # door fronts with handles
        x0 = -w / 2 + k * w / ndoor
        p.box([x0 + 0.01, d / 2, 0.03], [x0 + w / ndoor - 0.01, d / 2 + 0.015, h - 0.03], CABINET, col)
        hx = x0 + (w / ndoor) * (0.85 if k % 2 == 0 else 0.15)
        p.box([hx - 0.01, d / 2 + 0.015, h * 0.5], [hx + 0.01, d / 2 + 0.04, h * 0.5 + 0.12], CABINET, METAL)
    return Furniture(p, w, d, h)


def make_bookshelf(rng) -> Furniture:
    w = rng.uniform(0.6, 1.3)
    d = rng.uniform(0.28, 0.4)
    h = rng.uniform(1.2, 2.1)
    p = Parts()
    col = material(rng, FURN_MATS)
    t = 0.02
    p.box([-w / 2, -d / 2, 0], [-w / 2 + t, d / 2, h], BOOKSHELF, col)
    p.box([w / 2 - t, -d / 2, 0], [w / 2, d / 2, h], BOOKSHELF, col)
    p.box([-w / 2, -d / 2, 0], [w / 2, -d / 2 + t, h], BOOKSHELF, col)  # back
    nshelf = max(2, int(h / rng.uniform(0.3, 0.4)))
    for k in range(nshelf + 1):
        z = min(k * h / nshelf, h - t)
        p.box([-w / 2 + t, -d / 2 + t, z], [w / 2 - t, d / 2, z + t], BOOKSHELF, col)
        if k < nshelf and rng.random() < 0.8:  # books (NYU40 23: ignored)
            x = -w / 2 + t
            gap = h / nshelf - t
            while x < w / 2 - t - 0.05:
                bw = rng.uniform(0.1, 0.35)
                bh = gap * rng.uniform(0.55, 0.85)
                bd = d * rng.uniform(0.6, 0.9)
                x1 = min(x + bw, w / 2 - t)
                if rng.random() < 0.75:
                    p.box([x, -d / 2 + t, z + t], [x1, -d / 2 + t + bd, z + t + bh], IGN, material(rng, ANY_MATS))
                x = x1 + rng.uniform(0.0, 0.08)
    return Furniture(p, w, d, h)


def make_fridge(rng) -> Furniture:
    w, d, h = rng.uniform(0.6, 0.9), rng.uniform(0.62, 0.75), rng.uniform(1.6, 1.95)
    p = Parts()
    col = material(rng, (WHITE, METAL, LGREY, DARK))
    p.box([-w / 2, -d / 2, 0], [w / 2, d / 2, h], FRIDGE, col)
    split = h * rng.uniform(0.55, 0.7)
    p.box([-w / 2 + 0.01, d / 2, 0.05], [w / 2 - 0.01, d / 2 + 0.03, split - 0.01], FRIDGE, col)
    p.box([-w / 2 + 0.01, d / 2, split + 0.01], [w / 2 - 0.01, d / 2 + 0.03, h - 0.02], FRIDGE, col)
    p.box([w / 2 - 0.08, d / 2 + 0.03, split - 0.4], [w / 2 - 0.06, d / 2 + 0.07, split + 0.35], FRIDGE, METAL)
    return Furniture(p, w, d, h)


def _basin(p: Parts, x0, x1, y0, y1, ztop, depth, label, color):
    """An open-top basin (four inner walls + bottom) below ``ztop``."""
    zb = ztop - depth
    p.rect([x0, y0, zb], [x1 - x0, 0, 0], [0, y1 - y0, 0], label, color)
    p.rect([x0, y0, zb], [x1 - x0, 0, 0], [0, 0, depth], label, color)
    p.rect([x0, y1, zb], [0, 0, depth], [x1 - x0, 0, 0], label, color)
    p.rect([x0, y0, zb], [0, 0, depth], [0, y1 - y0, 0], label, color)
    p.rect([x1, y0, zb], [0, y1 - y0, 0], [0, 0, depth], label, color)


def make_counter(rng, with_sink=True) -> Furniture:
    w = rng.uniform(1.4, 3.2)
    d = rng.uniform(0.58, 0.66)
    h = rng.uniform(0.86, 0.94)
    p = Parts()
    top_col = material(rng, (WHITE, LGREY, DARK, BLACK, WOOD_L, BEIGE))
    cab_col = material(rng, FURN_MATS)
    t = 0.035
    p.box([-w / 2, -d / 2, 0.1], [w / 2, d / 2 - 0.03, h - t], CABINET, cab_col)  # base cabinets
    p.box([-w / 2, -d / 2, 0], [w / 2, d / 2 - 0.08, 0.1], CABINET, material(rng, (DARK, BLACK, GREY)))
    ndoor = max(1, int(w / 0.5))
    for k in range(ndoor):
        x0 = -w / 2 + k * w / ndoor
        p.box([x0 + 0.01, d / 2 - 0.03, 0.12], [x0 + w / ndoor - 0.01, d / 2 - 0.012, h - t - 0.02], CABINET, cab_col)
    if with_sink:
        sw = rng.uniform(0.45, 0.75)
        sx = rng.uniform(-w / 2 + sw / 2 + 0.1, w / 2 - sw / 2 - 0.1)
        x0, x1, y0, y1 = sx - sw / 2, sx + sw / 2, -d / 2 + 0.12, d / 2 - 0.1
        # counter top split around the sink opening
        p.box([-w / 2, -d / 2, h - t], [x0, d / 2, h], COUNTER, top_col)
        p.box([x1, -d / 2, h - t], [w / 2, d / 2, h], COUNTER, top_col)
        p.box([x0, -d / 2, h - t], [x1, y0, h], COUNTER, top_col)
        p.box([x0, y1, h - t], [x1, d / 2, h], COUNTER, top_col)
        _basin(p, x0, x1, y0, y1, h, rng.uniform(0.15, 0.22), SINK, material(rng, (METAL, WHITE, LGREY)))
        p.rect([x0 - 0.02, y0 - 0.02, h + 0.003], [sw + 0.04, 0, 0], [0, 0.02, 0], SINK, METAL)  # rim
        p.cylinder(sx, -d / 2 + 0.06, h, h + 0.3, 0.015, IGN, METAL)  # faucet
    else:
        p.box([-w / 2, -d / 2, h - t], [w / 2, d / 2, h], COUNTER, top_col)
    return Furniture(p, w, d, h)


def make_wall_cabinet(rng, w) -> Tuple[Furniture, float]:
    d = rng.uniform(0.3, 0.38)
    h = rng.uniform(0.55, 0.8)
    obj = make_cabinet(rng, h=h, w=w, d=d)
    return obj, rng.uniform(1.42, 1.55)  # lift above the counter


def make_toilet(rng) -> Furniture:
    p = Parts()
    col = material(rng, CERAMIC_MATS)
    d = rng.uniform(0.62, 0.72)
    p.box([-0.2, -d / 2, 0.4], [0.2, -d / 2 + 0.2, 0.8], TOILET, col)  # tank
    p.box([-0.12, -d / 2 + 0.15, 0], [0.12, d / 2 - 0.15, 0.36], TOILET, col)  # pedestal
    cy = d / 2 - 0.22
    p.cylinder(0.0, cy, 0.3, 0.42, 0.19, TOILET, col, top=False)
    p.rect([-0.16, cy - 0.2, 0.42], [0.32, 0, 0], [0, 0.36, 0], TOILET, col, density=0.8)  # seat / lid
    return Furniture(p, 0.42, d, 0.8)


def make_bathtub(rng) -> Furniture:
    w = rng.uniform(1.5, 1.75)
    d = rng.uniform(0.7, 0.8)
    h = rng.uniform(0.5, 0.6)
    p = Parts()
    col = material(rng, CERAMIC_MATS)
    rim = 0.07
    p.box([-w / 2, -d / 2, 0], [w / 2, -d / 2 + rim, h], BATHTUB, col)
    p.box([-w / 2, d / 2 - rim, 0], [w / 2, d / 2, h], BATHTUB, col)
    p.box([-w / 2, -d / 2 + rim, 0], [-w / 2 + rim, d / 2 - rim, h], BATHTUB, col)
    p.box([w / 2 - rim, -d / 2 + rim, 0], [w / 2, d / 2 - rim, h], BATHTUB, col)
    _basin(p, -w / 2 + rim, w / 2 - rim, -d / 2 + rim, d / 2 - rim, h, h - 0.08, BATHTUB, col)
    if rng.random() < 0.7:  # shower curtain along the open (front) side
        top = rng.uniform(1.8, 2.0)
        p.rect(
            [-w / 2, d / 2 - 0.03, h + 0.1],
            [w * rng.uniform(0.5, 1.0), 0, 0],
            [0, 0, top - h - 0.1],
            SHOWERCURTAIN,
            material(rng, (WHITE, PALEBLUE, BEIGE, GREEN)),
            wave=0.03,
            waves=rng.uniform(6, 12),
        )
    return Furniture(p, w, d, h)


def make_vanity(rng) -> Furniture:
    w = rng.uniform(0.6, 1.1)
    d = rng.uniform(0.45, 0.55)
    h = rng.uniform(0.8, 0.88)
    p = Parts()
    cab = material(rng, FURN_MATS)
    p.box([-w / 2, -d / 2, 0], [w / 2, d / 2, h - 0.04], CABINET, cab)
    col = material(rng, CERAMIC_MATS)
    bw = min(0.5, w - 0.15)
    x0, x1, y0, y1 = -bw / 2, bw / 2, -d / 2 + 0.1, d / 2 - 0.06
    for lo, hi in (
        ([-w / 2, -d / 2], [x0, d / 2]),
        ([x1, -d / 2], [w / 2, d / 2]),
        ([x0, -d / 2], [x1, y0]),
        ([x0, y1], [x1, d / 2]),
    ):
        p.box([lo[0], lo[1], h - 0.04], [hi[0], hi[1], h], SINK, col)
    _basin(p, x0, x1, y0, y1, h, 0.14, SINK, col)
    return Furniture(p, w, d, h)


def make_other(rng) -> Furniture:
    """Other furniture: a waste bin, a stool, a side board or a rack."""
    p = Parts()
    col = material(rng, FURN_MATS + (METAL,))
    kind = rng.integers(4)
    if kind == 0:
        r = rng.uniform(0.13, 0.2)
        p.cylinder(0, 0, 0, rng.uniform(0.3, 0.5), r, OTHERFURN, col)
        return Furniture(p, 2 * r, 2 * r, 0.5)
    if kind == 1:
        h = rng.uniform(0.45, 0.7)
        p.box([-0.18, -0.18, h - 0.04], [0.18, 0.18, h], OTHERFURN, col)
        _legs(p, 0.36, 0.36, h - 0.04, 0.03, OTHERFURN, col, inset=0.01)
        return Furniture(p, 0.36, 0.36, h)
    if kind == 2:
        w, d, h = rng.uniform(0.5, 1.2), rng.uniform(0.3, 0.5), rng.uniform(0.5, 1.1)
        p.box([-w / 2, -d / 2, 0.08], [w / 2, d / 2, h], OTHERFURN, col)
        _legs(p, w, d, 0.08, 0.03, OTHERFURN, col, inset=0.01)
        return Furniture(p, w, d, h)
    w, d, h = rng.uniform(0.5, 1.0), rng.uniform(0.35, 0.5), rng.uniform(1.2, 1.8)
    for z in np.linspace(0.1, h, 4):
        p.box([-w / 2, -d / 2, z - 0.02], [w / 2, d / 2, z], OTHERFURN, col)
    _legs(p, w, d, h, 0.025, OTHERFURN, col, inset=0.0)
    return Furniture(p, w, d, h)


def make_nightstand(rng) -> Furniture:
    p = Parts()
    w, d, h = rng.uniform(0.4, 0.55), rng.uniform(0.35, 0.45), rng.uniform(0.45, 0.65)
    p.box([-w / 2, -d / 2, 0], [w / 2, d / 2, h], IGN, material(rng, FURN_MATS))  # NYU40 32: ignored
    if rng.random() < 0.6:  # lamp (ignored)
        p.cylinder(0, 0, h, h + 0.25, 0.02, IGN, METAL, top=False)
        p.cylinder(0, 0, h + 0.2, h + 0.4, 0.13, IGN, material(rng, (WHITE, BEIGE)), top=False)
    return Furniture(p, w, d, h)
