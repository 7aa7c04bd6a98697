"""Procedural labelled indoor scenes with the ScanNet-20 classes (the built-in default data).

A scene is a rectangular room (random size, height, wall/floor materials) whose furniture depends on a
random room type (bedroom, living room, office, kitchen, bathroom, conference room) and is placed with
indoor context: beds, sofas, desks, cabinets, bookshelves, counters against walls, chairs around tables
and in front of desks, pillows on beds, clutter on tables, curtains beside windows, pictures above
sofas and beds, radiators under windows. Doors and windows are openings cut into the walls.

Points are sampled on *surfaces* (never in volumes) with a density per square metre, then

- surfaces hidden inside or against other solids (floor under a cabinet, the wall behind a bookshelf,
  the leg ends under a table top) are removed,
- random holes (missing scan regions) are cut,
- sensor-like noise is added along the normal and isotropically,
- colours are material colours shared by several classes (white walls, white cabinets, white toilets;
  wood floors, wood tables, wood doors), with Lambertian shading, a smooth illumination gradient and
  per-point noise, so colour alone does not determine the class,

and ``points_per_scene`` points are kept. The ceiling (NYU40 22) and props (pillows, books, monitors,
boxes, lamps, night stands, whiteboards) carry :data:`IGNORE_INDEX` as in ScanNet-20.
Scene ``i`` of a dataset with seed ``s`` is fully determined by ``(s, i)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional, Sequence, Tuple

import numpy as np

from .scannet import SCANNET20_CLASSES
from .scene import IGNORE_INDEX, PointCloudScene, SegmentationDataset

_C = {name: i for i, name in enumerate(SCANNET20_CLASSES)}
WALL, FLOOR, CABINET, BED, CHAIR, SOFA, TABLE, DOOR, WINDOW, BOOKSHELF = (
    _C[n] for n in ("wall", "floor", "cabinet", "bed", "chair", "sofa", "table", "door", "window", "bookshelf"))
PICTURE, COUNTER, DESK, CURTAIN, FRIDGE, SHOWERCURTAIN, TOILET, SINK, BATHTUB, OTHERFURN = (
    _C[n] for n in ("picture", "counter", "desk", "curtain", "refrigerator", "showercurtain", "toilet", "sink",
                    "bathtub", "otherfurniture"))
IGN = IGNORE_INDEX

# Materials (RGB in [0, 1]); several classes draw from the same ones.
_WHITE = (0.88, 0.88, 0.86)
_OFFWHITE = (0.82, 0.80, 0.74)
_BEIGE = (0.78, 0.71, 0.60)
_LGREY = (0.70, 0.70, 0.70)
_GREY = (0.50, 0.50, 0.52)
_DARK = (0.22, 0.22, 0.24)
_BLACK = (0.10, 0.10, 0.11)
_WOOD_L = (0.74, 0.58, 0.40)
_WOOD_M = (0.55, 0.38, 0.24)
_WOOD_D = (0.34, 0.22, 0.14)
_PALEBLUE = (0.68, 0.76, 0.84)
_PALEGREEN = (0.72, 0.80, 0.70)
_BLUE = (0.25, 0.34, 0.58)
_RED = (0.58, 0.20, 0.20)
_GREEN = (0.30, 0.48, 0.34)
_METAL = (0.68, 0.70, 0.73)

WALL_MATS = (_WHITE, _OFFWHITE, _BEIGE, _LGREY, _PALEBLUE, _PALEGREEN)
FLOOR_MATS = (_WOOD_L, _WOOD_M, _GREY, _LGREY, _BEIGE, (0.42, 0.45, 0.52))
WOOD_MATS = (_WOOD_L, _WOOD_M, _WOOD_D)
FURN_MATS = (_WOOD_L, _WOOD_M, _WOOD_D, _WHITE, _LGREY, _GREY, _DARK)
FABRIC_MATS = (_BLUE, _RED, _GREEN, _BEIGE, _GREY, _DARK, _OFFWHITE)
CERAMIC_MATS = (_WHITE, _OFFWHITE, _LGREY)
ANY_MATS = WALL_MATS + FURN_MATS + FABRIC_MATS


def _mat(rng: np.random.Generator, choices) -> np.ndarray:
    """A material colour with a small per-object variation."""
    base = np.asarray(choices[rng.integers(len(choices))], dtype=np.float64)
    return np.clip(base * rng.uniform(0.9, 1.1) + rng.normal(0, 0.02, 3), 0.0, 1.0)


# --- geometry primitives -------------------------------------------------------------------------

@dataclass
class _Parts:
    """Surface primitives of a scene (or of one object in its local frame before placement).

    rects: origin o, edges e1, e2 (the patch is o + u e1 + v e2, u, v in [0, 1]), unit normal, label,
    colour, density multiplier, wave amplitude (along the normal, sinusoidal in u) and wave count,
    part id (for occlusion), carve-able flag. cyls: vertical cylinder side (centre xy, z0, z1, r).
    solids: oriented boxes (centre, rotation about z as a 3 x 3 matrix, half sizes, part id) that hide
    other parts' surfaces inside them.
    """

    rect_o: List[np.ndarray] = field(default_factory=list)
    rect_e1: List[np.ndarray] = field(default_factory=list)
    rect_e2: List[np.ndarray] = field(default_factory=list)
    rect_n: List[np.ndarray] = field(default_factory=list)
    rect_attr: List[Tuple[int, np.ndarray, float, float, float, int, bool]] = field(default_factory=list)
    cyl: List[Tuple[float, float, float, float, float, int, np.ndarray, float, int]] = field(default_factory=list)
    solids: List[Tuple[np.ndarray, np.ndarray, np.ndarray, int]] = field(default_factory=list)
    next_id: int = 0

    def new_id(self) -> int:
        self.next_id += 1
        return self.next_id

    def rect(self, o, e1, e2, label, color, density=1.0, wave=0.0, waves=0.0, pid=0, carvable=False) -> None:
        o, e1, e2 = (np.asarray(v, dtype=np.float64) for v in (o, e1, e2))
        n = np.array([e1[1] * e2[2] - e1[2] * e2[1], e1[2] * e2[0] - e1[0] * e2[2], e1[0] * e2[1] - e1[1] * e2[0]])
        norm = float(np.sqrt(n @ n))
        if norm < 1e-9:
            return
        self.rect_o.append(o)
        self.rect_e1.append(e1)
        self.rect_e2.append(e2)
        self.rect_n.append(n / norm)
        self.rect_attr.append((label, np.asarray(color, dtype=np.float64), density, wave, waves, pid, carvable))

    def box(self, lo, hi, label, color, density=1.0, bottom=None, solid=True, skip=(), carvable=False) -> int:
        """Six faces of the axis-aligned box [lo, hi]; the bottom face is left out when the box
        rests on the floor (``bottom=None`` decides by ``lo_z``). Faces named in ``skip`` (``'-x'``,
        ``'+y'``, ...) are left out too. ``carvable`` faces are cut by door/window openings.
        Returns the part id."""
        lo, hi = np.asarray(lo, dtype=np.float64), np.asarray(hi, dtype=np.float64)
        if np.any(hi - lo <= 0):
            return 0
        pid = self.new_id()
        d = hi - lo
        ex, ey, ez = np.array([d[0], 0, 0]), np.array([0, d[1], 0]), np.array([0, 0, d[2]])
        if bottom is None:
            bottom = lo[2] > 0.02
        faces = {
            "+z": (np.array([lo[0], lo[1], hi[2]]), ex, ey, 1.0),
            "-z": (lo, ey, ex, 0.35),
            "-y": (lo, ex, ez, 1.0),
            "+y": (np.array([lo[0], hi[1], lo[2]]), ez, ex, 1.0),
            "-x": (lo, ez, ey, 1.0),
            "+x": (np.array([hi[0], lo[1], lo[2]]), ey, ez, 1.0),
        }
        for name, (o, e1, e2, dens) in faces.items():
            if name in skip or (name == "-z" and not bottom):
                continue
            self.rect(o, e1, e2, label, color, density * dens, pid=pid, carvable=carvable)
        if solid:
            self.solids.append(((lo + hi) / 2, np.eye(3), (hi - lo) / 2, pid))
        return pid

    def cylinder(self, cx, cy, z0, z1, r, label, color, density=1.0, top=True, solid=True) -> int:
        pid = self.new_id()
        self.cyl.append((cx, cy, z0, z1, r, label, np.asarray(color, dtype=np.float64), density, pid))
        if top:
            # a square cap approximates the disk closely enough for a scanner at 2 cm
            s = r * 0.886  # same area as the disk
            self.rect([cx - s, cy - s, z1], [2 * s, 0, 0], [0, 2 * s, 0], label, color, density, pid=pid)
        if solid:
            s = r * 0.7
            self.solids.append((np.array([cx, cy, (z0 + z1) / 2]), np.eye(3), np.array([s, s, (z1 - z0) / 2]), pid))
        return pid

    def extend(self, other: "_Parts", rot_k: int, offset: Sequence[float], density_scale: float = 1.0,
               yaw: float = 0.0) -> None:
        """Add ``other`` (local frame) rotated about z by ``rot_k`` x 90 degrees plus ``yaw`` radians,
        then translated by ``offset``, with its densities multiplied by ``density_scale``."""
        off = np.asarray(offset, dtype=np.float64)
        rot = _rotz(rot_k * np.pi / 2 + yaw)

        def rp(p):
            return rot @ p + off

        remap = {}
        for o, e1, e2, n, attr in zip(other.rect_o, other.rect_e1, other.rect_e2, other.rect_n, other.rect_attr):
            label, color, dens, wave, waves, pid, carv = attr
            pid = remap.setdefault(pid, self.new_id()) if pid else 0
            self.rect_o.append(rp(o))
            self.rect_e1.append(rot @ e1)
            self.rect_e2.append(rot @ e2)
            self.rect_n.append(rot @ n)
            self.rect_attr.append((label, color, dens * density_scale, wave, waves, pid, carv))
        for cx, cy, z0, z1, r, label, color, dens, pid in other.cyl:
            c = rp(np.array([cx, cy, 0.0]))
            pid = remap.setdefault(pid, self.new_id())
            self.cyl.append((c[0], c[1], z0, z1, r, label, color, dens * density_scale, pid))
        for center, axes, half, pid in other.solids:
            pid = remap.setdefault(pid, self.new_id())
            self.solids.append((rp(center), rot @ axes, half, pid))


def _rotz(angle: float) -> np.ndarray:
    """3 x 3 rotation by ``angle`` about z (``(1, 0, 0) -> (0, 1, 0)`` for ``pi / 2``)."""
    c, s = np.cos(angle), np.sin(angle)
    if abs(c) < 1e-12:
        c = 0.0
    if abs(s) < 1e-12:
        s = 0.0
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


# --- furniture (local frame: footprint [-w/2, w/2] x [-d/2, d/2], front faces +y, floor at z = 0) ----

@dataclass
class _Obj:
    parts: _Parts
    w: float
    d: float
    h: float
    kind: str


def _legs(p: _Parts, w, d, h, t, label, color, inset=0.03):
    for sx in (-1, 1):
        for sy in (-1, 1):
            cx = sx * (w / 2 - inset - t / 2)
            cy = sy * (d / 2 - inset - t / 2)
            p.box([cx - t / 2, cy - t / 2, 0], [cx + t / 2, cy + t / 2, h], label, color)


def make_table(rng, w=None, d=None, h=None) -> _Obj:
    w = w or rng.uniform(0.8, 1.8)
    d = d or rng.uniform(0.6, min(1.0, w))
    h = h or rng.uniform(0.70, 0.77)
    p = _Parts()
    col = _mat(rng, FURN_MATS)
    top_t = rng.uniform(0.025, 0.05)
    p.box([-w / 2, -d / 2, h - top_t], [w / 2, d / 2, h], TABLE, col)
    if rng.random() < 0.75:
        _legs(p, w, d, h - top_t, rng.uniform(0.035, 0.07), TABLE, _mat(rng, (tuple(col), _METAL, _BLACK)))
    else:  # two panel legs
        t = 0.04
        for sx in (-1, 1):
            x = sx * (w / 2 - 0.08)
            p.box([x - t / 2, -d / 2 + 0.08, 0], [x + t / 2, d / 2 - 0.08, h - top_t], TABLE, col)
    return _Obj(p, w, d, h, "table")


def make_chair(rng, color=None) -> _Obj:
    w = rng.uniform(0.42, 0.52)
    d = rng.uniform(0.42, 0.52)
    sh = rng.uniform(0.42, 0.48)
    bh = sh + rng.uniform(0.35, 0.5)
    p = _Parts()
    col = color if color is not None else _mat(rng, FABRIC_MATS + WOOD_MATS + (_BLACK,))
    st = rng.uniform(0.04, 0.08)
    p.box([-w / 2, -d / 2, sh - st], [w / 2, d / 2, sh], CHAIR, col)
    bt = 0.04
    p.box([-w / 2, -d / 2, sh], [w / 2, -d / 2 + bt, bh], CHAIR, col)  # back rest at -y, faces +y
    if rng.random() < 0.7:
        _legs(p, w, d, sh - st, 0.03, CHAIR, _mat(rng, (_METAL, _BLACK, _WOOD_M)), inset=0.01)
    else:  # office chair: post + base
        p.cylinder(0.0, 0.0, 0.08, sh - st, 0.03, CHAIR, _BLACK)
        p.box([-0.3, -0.03, 0.03], [0.3, 0.03, 0.08], CHAIR, _BLACK)
        p.box([-0.03, -0.3, 0.03], [0.03, 0.3, 0.08], CHAIR, _BLACK)
    return _Obj(p, w, d, bh, "chair")


def make_desk(rng) -> _Obj:
    w = rng.uniform(1.0, 1.7)
    d = rng.uniform(0.55, 0.8)
    h = rng.uniform(0.72, 0.77)
    p = _Parts()
    col = _mat(rng, FURN_MATS)
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
        p.box([-mw / 2, -0.05, h + 0.12], [mw / 2, -0.02, h + 0.12 + mw * 0.6], IGN, _BLACK, solid=True)
        p.box([-0.03, -0.06, h], [0.03, 0.0, h + 0.14], IGN, _BLACK)
    return _Obj(p, w, d, h, "desk")


def make_bed(rng) -> _Obj:
    w = rng.choice([rng.uniform(0.9, 1.1), rng.uniform(1.35, 1.9)])
    d = rng.uniform(1.95, 2.15)
    p = _Parts()
    frame = _mat(rng, FURN_MATS)
    sheet = _mat(rng, FABRIC_MATS + (_WHITE,))
    base_h = rng.uniform(0.2, 0.35)
    top = base_h + rng.uniform(0.2, 0.3)
    p.box([-w / 2, -d / 2, 0], [w / 2, d / 2, base_h], BED, frame)
    p.box([-w / 2 + 0.02, -d / 2 + 0.05, base_h], [w / 2 - 0.02, d / 2 - 0.02, top], BED, sheet)
    p.box([-w / 2, -d / 2, 0], [w / 2, -d / 2 + 0.06, top + rng.uniform(0.3, 0.6)], BED, frame)  # headboard
    npil = 1 if w < 1.2 else 2
    pw = (w - 0.2) / npil
    for k in range(npil):  # pillows (NYU40 18: ignored)
        x0 = -w / 2 + 0.1 + k * pw
        p.box([x0 + 0.03, -d / 2 + 0.1, top], [x0 + pw - 0.03, -d / 2 + 0.5, top + 0.12], IGN,
              _mat(rng, FABRIC_MATS + (_WHITE,)))
    return _Obj(p, w, d, top + 0.5, "bed")


def make_sofa(rng) -> _Obj:
    w = rng.uniform(1.5, 2.4)
    d = rng.uniform(0.8, 0.98)
    p = _Parts()
    col = _mat(rng, FABRIC_MATS + (_BLACK,))
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
        p.box([-w / 2 + arm + 0.1, -d / 2 + 0.2, seat], [-w / 2 + arm + 0.5, -d / 2 + 0.33, seat + 0.4], IGN,
              _mat(rng, FABRIC_MATS))
    return _Obj(p, w, d, back_h, "sofa")


def make_cabinet(rng, h=None, w=None, d=None) -> _Obj:
    w = w or rng.uniform(0.45, 1.4)
    d = d or rng.uniform(0.35, 0.6)
    h = h or rng.choice([rng.uniform(0.5, 0.9), rng.uniform(1.0, 2.1)])
    p = _Parts()
    col = _mat(rng, FURN_MATS)
    p.box([-w / 2, -d / 2, 0], [w / 2, d / 2, h], CABINET, col)
    ndoor = max(1, int(round(w / 0.45)))
    for k in range(ndoor):  # door fronts with handles
        x0 = -w / 2 + k * w / ndoor
        p.box([x0 + 0.01, d / 2, 0.03], [x0 + w / ndoor - 0.01, d / 2 + 0.015, h - 0.03], CABINET, col)
        hx = x0 + (w / ndoor) * (0.85 if k % 2 == 0 else 0.15)
        p.box([hx - 0.01, d / 2 + 0.015, h * 0.5], [hx + 0.01, d / 2 + 0.04, h * 0.5 + 0.12], CABINET, _METAL)
    return _Obj(p, w, d, h, "cabinet")


def make_bookshelf(rng) -> _Obj:
    w = rng.uniform(0.6, 1.3)
    d = rng.uniform(0.28, 0.4)
    h = rng.uniform(1.2, 2.1)
    p = _Parts()
    col = _mat(rng, FURN_MATS)
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
                    p.box([x, -d / 2 + t, z + t], [x1, -d / 2 + t + bd, z + t + bh], IGN, _mat(rng, ANY_MATS))
                x = x1 + rng.uniform(0.0, 0.08)
    return _Obj(p, w, d, h, "bookshelf")


def make_fridge(rng) -> _Obj:
    w, d, h = rng.uniform(0.6, 0.9), rng.uniform(0.62, 0.75), rng.uniform(1.6, 1.95)
    p = _Parts()
    col = _mat(rng, (_WHITE, _METAL, _LGREY, _DARK))
    p.box([-w / 2, -d / 2, 0], [w / 2, d / 2, h], FRIDGE, col)
    split = h * rng.uniform(0.55, 0.7)
    p.box([-w / 2 + 0.01, d / 2, 0.05], [w / 2 - 0.01, d / 2 + 0.03, split - 0.01], FRIDGE, col)
    p.box([-w / 2 + 0.01, d / 2, split + 0.01], [w / 2 - 0.01, d / 2 + 0.03, h - 0.02], FRIDGE, col)
    p.box([w / 2 - 0.08, d / 2 + 0.03, split - 0.4], [w / 2 - 0.06, d / 2 + 0.07, split + 0.35], FRIDGE, _METAL)
    return _Obj(p, w, d, h, "fridge")


def _basin(p: _Parts, x0, x1, y0, y1, ztop, depth, label, color):
    """An open-top basin (four inner walls + bottom) below ``ztop``."""
    zb = ztop - depth
    p.rect([x0, y0, zb], [x1 - x0, 0, 0], [0, y1 - y0, 0], label, color)
    p.rect([x0, y0, zb], [x1 - x0, 0, 0], [0, 0, depth], label, color)
    p.rect([x0, y1, zb], [0, 0, depth], [x1 - x0, 0, 0], label, color)
    p.rect([x0, y0, zb], [0, 0, depth], [0, y1 - y0, 0], label, color)
    p.rect([x1, y0, zb], [0, y1 - y0, 0], [0, 0, depth], label, color)


def make_counter(rng, with_sink=True) -> _Obj:
    w = rng.uniform(1.4, 3.2)
    d = rng.uniform(0.58, 0.66)
    h = rng.uniform(0.86, 0.94)
    p = _Parts()
    top_col = _mat(rng, (_WHITE, _LGREY, _DARK, _BLACK, _WOOD_L, _BEIGE))
    cab_col = _mat(rng, FURN_MATS)
    t = 0.035
    p.box([-w / 2, -d / 2, 0.1], [w / 2, d / 2 - 0.03, h - t], CABINET, cab_col)  # base cabinets
    p.box([-w / 2, -d / 2, 0], [w / 2, d / 2 - 0.08, 0.1], CABINET, _mat(rng, (_DARK, _BLACK, _GREY)))
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
        _basin(p, x0, x1, y0, y1, h, rng.uniform(0.15, 0.22), SINK, _mat(rng, (_METAL, _WHITE, _LGREY)))
        p.rect([x0 - 0.02, y0 - 0.02, h + 0.003], [sw + 0.04, 0, 0], [0, 0.02, 0], SINK, _METAL)  # rim
        p.cylinder(sx, -d / 2 + 0.06, h, h + 0.3, 0.015, IGN, _METAL)  # faucet
    else:
        p.box([-w / 2, -d / 2, h - t], [w / 2, d / 2, h], COUNTER, top_col)
    return _Obj(p, w, d, h, "counter")


def make_wall_cabinet(rng, w) -> Tuple[_Obj, float]:
    d = rng.uniform(0.3, 0.38)
    h = rng.uniform(0.55, 0.8)
    obj = make_cabinet(rng, h=h, w=w, d=d)
    return obj, rng.uniform(1.42, 1.55)  # lift above the counter


def make_toilet(rng) -> _Obj:
    p = _Parts()
    col = _mat(rng, CERAMIC_MATS)
    d = rng.uniform(0.62, 0.72)
    p.box([-0.2, -d / 2, 0.4], [0.2, -d / 2 + 0.2, 0.8], TOILET, col)  # tank
    p.box([-0.12, -d / 2 + 0.15, 0], [0.12, d / 2 - 0.15, 0.36], TOILET, col)  # pedestal
    cy = d / 2 - 0.22
    p.cylinder(0.0, cy, 0.3, 0.42, 0.19, TOILET, col, top=False)
    p.rect([-0.16, cy - 0.2, 0.42], [0.32, 0, 0], [0, 0.36, 0], TOILET, col, density=0.8)  # seat / lid
    return _Obj(p, 0.42, d, 0.8, "toilet")


def make_bathtub(rng) -> _Obj:
    w = rng.uniform(1.5, 1.75)
    d = rng.uniform(0.7, 0.8)
    h = rng.uniform(0.5, 0.6)
    p = _Parts()
    col = _mat(rng, CERAMIC_MATS)
    rim = 0.07
    p.box([-w / 2, -d / 2, 0], [w / 2, -d / 2 + rim, h], BATHTUB, col)
    p.box([-w / 2, d / 2 - rim, 0], [w / 2, d / 2, h], BATHTUB, col)
    p.box([-w / 2, -d / 2 + rim, 0], [-w / 2 + rim, d / 2 - rim, h], BATHTUB, col)
    p.box([w / 2 - rim, -d / 2 + rim, 0], [w / 2, d / 2 - rim, h], BATHTUB, col)
    _basin(p, -w / 2 + rim, w / 2 - rim, -d / 2 + rim, d / 2 - rim, h, h - 0.08, BATHTUB, col)
    if rng.random() < 0.7:  # shower curtain along the open (front) side
        top = rng.uniform(1.8, 2.0)
        p.rect([-w / 2, d / 2 - 0.03, h + 0.1], [w * rng.uniform(0.5, 1.0), 0, 0], [0, 0, top - h - 0.1],
               SHOWERCURTAIN, _mat(rng, (_WHITE, _PALEBLUE, _BEIGE, _GREEN)), wave=0.03,
               waves=rng.uniform(6, 12))
    return _Obj(p, w, d, h, "bathtub")


def make_vanity(rng) -> _Obj:
    w = rng.uniform(0.6, 1.1)
    d = rng.uniform(0.45, 0.55)
    h = rng.uniform(0.8, 0.88)
    p = _Parts()
    cab = _mat(rng, FURN_MATS)
    p.box([-w / 2, -d / 2, 0], [w / 2, d / 2, h - 0.04], CABINET, cab)
    col = _mat(rng, CERAMIC_MATS)
    bw = min(0.5, w - 0.15)
    x0, x1, y0, y1 = -bw / 2, bw / 2, -d / 2 + 0.1, d / 2 - 0.06
    for lo, hi in (([-w / 2, -d / 2], [x0, d / 2]), ([x1, -d / 2], [w / 2, d / 2]),
                   ([x0, -d / 2], [x1, y0]), ([x0, y1], [x1, d / 2])):
        p.box([lo[0], lo[1], h - 0.04], [hi[0], hi[1], h], SINK, col)
    _basin(p, x0, x1, y0, y1, h, 0.14, SINK, col)
    return _Obj(p, w, d, h, "vanity")


def make_other(rng) -> _Obj:
    """Other furniture: a waste bin, a stool, a side board or a rack."""
    p = _Parts()
    col = _mat(rng, FURN_MATS + (_METAL,))
    kind = rng.integers(4)
    if kind == 0:
        r = rng.uniform(0.13, 0.2)
        p.cylinder(0, 0, 0, rng.uniform(0.3, 0.5), r, OTHERFURN, col)
        return _Obj(p, 2 * r, 2 * r, 0.5, "bin")
    if kind == 1:
        h = rng.uniform(0.45, 0.7)
        p.box([-0.18, -0.18, h - 0.04], [0.18, 0.18, h], OTHERFURN, col)
        _legs(p, 0.36, 0.36, h - 0.04, 0.03, OTHERFURN, col, inset=0.01)
        return _Obj(p, 0.36, 0.36, h, "stool")
    if kind == 2:
        w, d, h = rng.uniform(0.5, 1.2), rng.uniform(0.3, 0.5), rng.uniform(0.5, 1.1)
        p.box([-w / 2, -d / 2, 0.08], [w / 2, d / 2, h], OTHERFURN, col)
        _legs(p, w, d, 0.08, 0.03, OTHERFURN, col, inset=0.01)
        return _Obj(p, w, d, h, "sideboard")
    w, d, h = rng.uniform(0.5, 1.0), rng.uniform(0.35, 0.5), rng.uniform(1.2, 1.8)
    for z in np.linspace(0.1, h, 4):
        p.box([-w / 2, -d / 2, z - 0.02], [w / 2, d / 2, z], OTHERFURN, col)
    _legs(p, w, d, h, 0.025, OTHERFURN, col, inset=0.0)
    return _Obj(p, w, d, h, "rack")


def make_nightstand(rng) -> _Obj:
    p = _Parts()
    w, d, h = rng.uniform(0.4, 0.55), rng.uniform(0.35, 0.45), rng.uniform(0.45, 0.65)
    p.box([-w / 2, -d / 2, 0], [w / 2, d / 2, h], IGN, _mat(rng, FURN_MATS))  # NYU40 32: ignored
    if rng.random() < 0.6:  # lamp (ignored)
        p.cylinder(0, 0, h, h + 0.25, 0.02, IGN, _METAL, top=False)
        p.cylinder(0, 0, h + 0.2, h + 0.4, 0.13, IGN, _mat(rng, (_WHITE, _BEIGE)), top=False)
    return _Obj(p, w, d, h, "nightstand")


# --- the room ------------------------------------------------------------------------------------

ROOM_TYPES = ("bedroom", "living", "office", "kitchen", "bathroom", "conference")


@dataclass
class _Room:
    W: float
    D: float
    H: float
    parts: _Parts
    footprints: List[Tuple[float, float, float, float]] = field(default_factory=list)
    wall_spans: List[Tuple[int, float, float, float, float]] = field(default_factory=list)  # wall,t0,t1,z0,z1
    carves: List[Tuple[np.ndarray, np.ndarray]] = field(default_factory=list)
    windows: List[Tuple[int, float, float, float, float]] = field(default_factory=list)  # wall,t0,t1,z0,z1

    def wall_len(self, wall: int) -> float:
        return self.W if wall % 2 == 0 else self.D

    def free(self, fp, clearance=0.05) -> bool:
        x0, x1, y0, y1 = fp
        if x0 < -1e-6 or y0 < -1e-6 or x1 > self.W + 1e-6 or y1 > self.D + 1e-6:
            return False
        for a0, a1, b0, b1 in self.footprints:
            if x0 < a1 + clearance and a0 < x1 + clearance and y0 < b1 + clearance and b0 < y1 + clearance:
                return False
        return True

    def span_free(self, wall, t0, t1, z0, z1) -> bool:
        """No door, window, furniture or wall item on ``wall`` overlaps [t0, t1] x [z0, z1]."""
        for w, s0, s1, a0, a1 in self.wall_spans:
            if w == wall and t0 < s1 and s0 < t1 and z0 < a1 and a0 < z1:
                return False
        return True


def _wall_pose(room: _Room, wall: int, t: float, depth: float, gap: float) -> Tuple[float, float]:
    """World (x, y) of an object's centre against ``wall`` at distance ``t`` along it."""
    if wall == 0:
        return t, gap + depth / 2
    if wall == 1:
        return room.W - gap - depth / 2, t
    if wall == 2:
        return room.W - t, room.D - gap - depth / 2
    return gap + depth / 2, room.D - t


def _footprint(cx, cy, w, d, k) -> Tuple[float, float, float, float]:
    hw, hd = (w / 2, d / 2) if k % 2 == 0 else (d / 2, w / 2)
    return cx - hw, cx + hw, cy - hd, cy + hd


FURNITURE_DENSITY = 1.6
"""Furniture is scanned from closer and from more sides than walls: more points per square metre."""


def _place(room: _Room, obj: _Obj, cx, cy, k, z=0.0, register=True, yaw=0.0) -> None:
    room.parts.extend(obj.parts, k, (cx, cy, z), density_scale=FURNITURE_DENSITY, yaw=yaw)
    if register:
        room.footprints.append(_footprint(cx, cy, obj.w, obj.d, k))


def _try_against_wall(room: _Room, rng, obj: _Obj, walls=None, tries=40,
                      t_range: Optional[Tuple[float, float]] = None,
                      clearance: float = 0.05) -> Optional[Tuple[int, float, float, float]]:
    """Put ``obj`` with its back against a wall; returns (wall, t, cx, cy) or None."""
    for _ in range(tries):
        wall = int(rng.choice(walls if walls is not None else 4))
        L = room.wall_len(wall)
        if obj.w + 0.02 > L:
            continue
        lo, hi = (obj.w / 2 + 0.01, L - obj.w / 2 - 0.01) if t_range is None else t_range
        if hi < lo:
            continue
        t = rng.uniform(lo, hi)
        gap = rng.uniform(0.003, 0.012)
        cx, cy = _wall_pose(room, wall, t, obj.d, gap)
        fp = _footprint(cx, cy, obj.w, obj.d, wall)
        if not room.free(fp, clearance):
            continue
        if not room.span_free(wall, t - obj.w / 2 + 0.05 - clearance, t + obj.w / 2 - 0.05 + clearance, 0.0, obj.h):
            continue
        _place(room, obj, cx, cy, wall)
        room.wall_spans.append((wall, t - obj.w / 2, t + obj.w / 2, 0.0, obj.h))
        return wall, t, cx, cy
    return None


def _wall_frame(room: _Room, wall: int):
    """(origin at floor of the wall start, unit tangent, inward normal) of a wall (counter-clockwise)."""
    W, D = room.W, room.D
    return {0: (np.array([0.0, 0, 0]), np.array([1.0, 0, 0]), np.array([0.0, 1, 0])),
            1: (np.array([W, 0.0, 0]), np.array([0.0, 1, 0]), np.array([-1.0, 0, 0])),
            2: (np.array([W, D, 0.0]), np.array([-1.0, 0, 0]), np.array([0.0, -1, 0])),
            3: (np.array([0.0, D, 0]), np.array([0.0, -1, 0]), np.array([1.0, 0, 0]))}[wall]


def _add_opening(room: _Room, wall: int, t0: float, t1: float, z0: float, z1: float) -> None:
    o, tan, nrm = _wall_frame(room, wall)
    a = o + tan * t0 + np.array([0, 0, z0]) - nrm * 0.05
    b = o + tan * t1 + np.array([0, 0, z1]) + nrm * 0.05
    room.carves.append((np.minimum(a, b), np.maximum(a, b)))


def _add_door(room: _Room, rng) -> bool:
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
        o, tan, nrm = _wall_frame(room, wall)
        col = _mat(rng, WOOD_MATS + (_WHITE, _OFFWHITE, _GREY))
        _add_opening(room, wall, t0, t0 + w, 0.0, h)
        base = o + tan * t0
        ft = 0.05  # frame (door)
        frame_col = _mat(rng, (tuple(col), _WHITE))
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


def _add_window(room: _Room, rng) -> bool:
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
        o, tan, nrm = _wall_frame(room, wall)
        _add_opening(room, wall, t0, t0 + w, z0, z1)
        frame = _mat(rng, (_WHITE, _METAL, _WOOD_M, _GREY))
        rec = rng.uniform(0.06, 0.14)  # glass recessed behind the wall plane
        base = o + tan * t0 - nrm * rec
        glass = _mat(rng, ((0.55, 0.62, 0.68), (0.3, 0.33, 0.36), (0.8, 0.82, 0.84)))
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


def _add_curtains(room: _Room, rng) -> None:
    for wall, t0, t1, z0, z1 in room.windows:
        if rng.random() > 0.45:
            continue
        o, tan, nrm = _wall_frame(room, wall)
        top = min(room.H - 0.05, z1 + rng.uniform(0.05, 0.3))
        bottom = rng.choice([0.02, z0 - 0.1])
        col = _mat(rng, FABRIC_MATS + (_WHITE, _BEIGE))
        off = rng.uniform(0.08, 0.15)
        cw = rng.uniform(0.3, 0.6)
        for ta in (t0 - cw * 0.6, t1 - cw * 0.4):
            ta = float(np.clip(ta, 0.02, room.wall_len(wall) - cw - 0.02))
            a = o + tan * ta + nrm * off + np.array([0, 0, bottom])
            room.parts.rect(a, tan * cw, np.array([0, 0, top - bottom]), CURTAIN, col, density=1.2,
                            wave=0.035, waves=cw / 0.12)


def _add_wall_item(room: _Room, rng, label, w, h, zc, depth=0.025, color=None, wall=None, t=None) -> bool:
    for _ in range(15):
        wl = int(rng.integers(4)) if wall is None else wall
        L = room.wall_len(wl)
        if w + 0.2 > L:
            continue
        tc = rng.uniform(w / 2 + 0.1, L - w / 2 - 0.1) if t is None else t
        z0, z1 = zc - h / 2, zc + h / 2
        if not room.span_free(wl, tc - w / 2, tc + w / 2, z0, z1):
            if wall is not None:
                return False
            continue
        o, tan, nrm = _wall_frame(room, wl)
        a = o + tan * (tc - w / 2) + nrm * 0.008 + np.array([0, 0, z0])
        b = o + tan * (tc + w / 2) + nrm * (0.008 + depth) + np.array([0, 0, z1])
        col = color if color is not None else _mat(rng, ANY_MATS)
        room.parts.box(np.minimum(a, b), np.maximum(a, b), label, col)
        room.wall_spans.append((wl, tc - w / 2, tc + w / 2, z0, z1))
        return True
    return False


def _clutter_on(room: _Room, rng, x0, x1, y0, y1, z, n) -> None:
    """Small props (ignored) standing on a surface [x0, x1] x [y0, y1] at height z."""
    for _ in range(n):
        s = rng.uniform(0.06, 0.3, size=2)
        if x1 - x0 < s[0] + 0.02 or y1 - y0 < s[1] + 0.02:
            continue
        cx = rng.uniform(x0 + s[0] / 2, x1 - s[0] / 2)
        cy = rng.uniform(y0 + s[1] / 2, y1 - s[1] / 2)
        h = rng.uniform(0.03, 0.3)
        if rng.random() < 0.3:
            room.parts.cylinder(cx, cy, z, z + h, min(s) / 2, IGN, _mat(rng, ANY_MATS))
        else:
            room.parts.box([cx - s[0] / 2, cy - s[1] / 2, z], [cx + s[0] / 2, cy + s[1] / 2, z + h], IGN,
                           _mat(rng, ANY_MATS), bottom=False)


def _table_with_chairs(room: _Room, rng, big=False, tries=30) -> bool:
    tbl = make_table(rng, w=rng.uniform(1.8, 3.2) if big else None, d=rng.uniform(0.9, 1.3) if big else None)
    chair_col = _mat(rng, FABRIC_MATS + WOOD_MATS + (_BLACK,))
    for _ in range(tries):
        k = int(rng.integers(2))
        yaw = rng.normal(0, 0.08) if rng.random() < 0.4 else 0.0  # not every table is square to the walls
        margin = 0.85
        hw, hd = (tbl.w / 2, tbl.d / 2) if k == 0 else (tbl.d / 2, tbl.w / 2)
        if room.W < 2 * (hw + margin) or room.D < 2 * (hd + margin):
            return False
        cx = rng.uniform(hw + margin, room.W - hw - margin)
        cy = rng.uniform(hd + margin, room.D - hd - margin)
        fp = _footprint(cx, cy, tbl.w + 0.9, tbl.d + 0.9, k)
        if not room.free(fp, clearance=0.0):
            continue
        _place(room, tbl, cx, cy, k, register=False, yaw=yaw)
        room.footprints.append(fp)
        _clutter_on(room, rng, *(np.array(_footprint(cx, cy, tbl.w - 0.1, tbl.d - 0.1, k))), tbl.h,
                    int(rng.integers(0, 5)))
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
            off = _rotz(k * np.pi / 2 + yaw) @ np.array([lx, ly, 0.0])
            jitter = rng.normal(0, 0.04, 2)
            _place(room, chair, cx + off[0] + jitter[0], cy + off[1] + jitter[1], (ck + k) % 4, register=False,
                   yaw=yaw + rng.normal(0, 0.15))
        return True
    return False


def _desk_with_chair(room: _Room, rng) -> bool:
    desk = make_desk(rng)
    res = _try_against_wall(room, rng, desk)
    if res is None:
        return False
    wall, t, cx, cy = res
    _clutter_on(room, rng, *_footprint(cx, cy, desk.w - 0.1, desk.d - 0.1, wall), desk.h, int(rng.integers(0, 4)))
    if rng.random() < 0.85:
        chair = make_chair(rng)
        _, _, nrm = _wall_frame(room, wall)
        dist = desk.d / 2 + rng.uniform(0.05, 0.35)
        pos = np.array([cx, cy, 0.0]) + nrm * dist + _wall_frame(room, wall)[1] * rng.normal(0, 0.1)
        # chair faces the wall (its +y towards -nrm): rotation wall + 2, turned a little
        _place(room, chair, pos[0], pos[1], (wall + 2) % 4, yaw=rng.normal(0, 0.3))
    if rng.random() < 0.5:
        _add_wall_item(room, rng, PICTURE, rng.uniform(0.3, 0.8), rng.uniform(0.3, 0.6), rng.uniform(1.3, 1.7),
                       wall=wall, t=t)
    return True


def _bed_group(room: _Room, rng) -> bool:
    bed = make_bed(rng)
    res = _try_against_wall(room, rng, bed)
    if res is None:
        return False
    wall, t, cx, cy = res
    L = room.wall_len(wall)
    for side in (-1, 1):
        if rng.random() < 0.6:
            ns = make_nightstand(rng)
            tn = t + side * (bed.w / 2 + ns.w / 2 + 0.03)
            if ns.w / 2 < tn < L - ns.w / 2:
                _try_against_wall(room, rng, ns, walls=[wall], tries=1, t_range=(tn, tn), clearance=0.0)
    if rng.random() < 0.6:
        _add_wall_item(room, rng, PICTURE, rng.uniform(0.4, 1.2), rng.uniform(0.3, 0.7), rng.uniform(1.45, 1.8),
                       wall=wall, t=t)
    return True


def _sofa_group(room: _Room, rng) -> bool:
    sofa = make_sofa(rng)
    res = _try_against_wall(room, rng, sofa)
    if res is None:
        return False
    wall, t, cx, cy = res
    _, tan, nrm = _wall_frame(room, wall)
    if rng.random() < 0.8:  # coffee table in front
        ct = make_table(rng, w=rng.uniform(0.8, 1.3), d=rng.uniform(0.45, 0.7), h=rng.uniform(0.38, 0.48))
        pos = np.array([cx, cy, 0.0]) + nrm * (sofa.d / 2 + rng.uniform(0.3, 0.5) + ct.d / 2)
        fp = _footprint(pos[0], pos[1], ct.w, ct.d, wall)
        if room.free(fp):
            _place(room, ct, pos[0], pos[1], wall)
            _clutter_on(room, rng, *fp, ct.h, int(rng.integers(0, 3)))
    if rng.random() < 0.7:
        _add_wall_item(room, rng, PICTURE, rng.uniform(0.5, 1.3), rng.uniform(0.4, 0.8), rng.uniform(1.45, 1.75),
                       wall=wall, t=t)
    return True


def _kitchen_row(room: _Room, rng) -> bool:
    counter = make_counter(rng, with_sink=rng.random() < 0.8)
    res = _try_against_wall(room, rng, counter)
    if res is None:
        return False
    wall, t, cx, cy = res
    if rng.random() < 0.7:  # upper cabinets over the counter
        uc, z = make_wall_cabinet(rng, min(counter.w, rng.uniform(0.8, 2.4)))
        pos = np.array([cx, cy, 0.0]) - _wall_frame(room, wall)[2] * (counter.d - uc.d) / 2
        if z + uc.h < room.H - 0.05 and room.span_free(wall, t - uc.w / 2, t + uc.w / 2, z, z + uc.h):
            _place(room, uc, pos[0], pos[1], wall, z=z, register=False)
            room.wall_spans.append((wall, t - uc.w / 2, t + uc.w / 2, z, z + uc.h))
    _clutter_on(room, rng, *_footprint(cx, cy, counter.w * 0.5, counter.d - 0.1, wall), counter.h,
                int(rng.integers(0, 3)))
    fridge = make_fridge(rng)
    L = room.wall_len(wall)
    if rng.random() < 0.85:  # a fridge, beside the counter when there is room, else elsewhere
        placed = None
        for tn in (t + counter.w / 2 + fridge.w / 2 + 0.02, t - counter.w / 2 - fridge.w / 2 - 0.02):
            if fridge.w / 2 < tn < L - fridge.w / 2:
                placed = _try_against_wall(room, rng, fridge, walls=[wall], tries=1, t_range=(tn, tn), clearance=0.0)
                if placed:
                    break
        if not placed:
            _try_against_wall(room, rng, fridge)
    return True


def _radiators(room: _Room, rng) -> None:
    for wall, t0, t1, z0, _z1 in room.windows:
        if rng.random() < 0.35 and z0 > 0.7:
            w = min(t1 - t0, rng.uniform(0.6, 1.4))
            obj = _Obj(_Parts(), w, 0.1, z0 - 0.15, "radiator")
            obj.parts.box([-w / 2, -0.05, 0.12], [w / 2, 0.05, z0 - 0.15], OTHERFURN, _mat(rng, (_WHITE, _LGREY)))
            tc = (t0 + t1) / 2
            cx, cy = _wall_pose(room, wall, tc, 0.1, 0.04)
            fp = _footprint(cx, cy, w, 0.1, wall)
            if room.free(fp, clearance=0.0):
                _place(room, obj, cx, cy, wall)


def _place_many(makers, counts) -> None:
    """Call each ``makers[i]`` ``counts[i]`` times (each call tries to place one object)."""
    for maker, n in zip(makers, counts):
        for _ in range(n):
            maker()


def _furnish(room: _Room, rng, rtype: str) -> None:
    r = rng.random

    def wall_obj(make):
        return lambda: _try_against_wall(room, rng, make(rng))

    if rtype == "bedroom":
        _bed_group(room, rng)
        if r() < 0.3:
            _bed_group(room, rng)
        if r() < 0.15:
            _sofa_group(room, rng)
        _place_many([lambda: _desk_with_chair(room, rng), wall_obj(make_cabinet), wall_obj(make_bookshelf),
                                wall_obj(make_other)],
                    [int(r() < 0.7), int(rng.integers(1, 3)), int(r() < 0.4), int(rng.integers(0, 2))])
    elif rtype == "living":
        _sofa_group(room, rng)
        if r() < 0.4:
            _sofa_group(room, rng)
        if r() < 0.7:  # tv bench
            res = _try_against_wall(room, rng, make_cabinet(rng, h=rng.uniform(0.4, 0.6), w=rng.uniform(1.0, 1.8)))
            if res is not None:
                wall, t, cx, cy = res
                _add_wall_item(room, rng, IGN, rng.uniform(0.8, 1.3), rng.uniform(0.5, 0.75), rng.uniform(0.95, 1.2),
                               depth=0.06, color=_BLACK, wall=wall, t=t)
        _place_many([wall_obj(make_bookshelf), wall_obj(make_cabinet), wall_obj(make_other),
                                lambda: _table_with_chairs(room, rng)],
                    [int(rng.integers(0, 3)), int(rng.integers(0, 2)), int(rng.integers(0, 3)), int(r() < 0.4)])
        if r() < 0.3:  # open-plan kitchen
            _kitchen_row(room, rng)
        for _ in range(int(rng.integers(0, 3))):  # armchairs
            _try_against_wall(room, rng, make_chair(rng), tries=10)
    elif rtype == "office":
        for _ in range(int(rng.integers(2, 5))):
            _desk_with_chair(room, rng)
        if r() < 0.2:  # lounge corner
            _sofa_group(room, rng)
        _place_many([wall_obj(make_cabinet), wall_obj(make_bookshelf), wall_obj(make_other),
                                lambda: _table_with_chairs(room, rng)],
                    [int(rng.integers(1, 3)), int(rng.integers(0, 3)), int(rng.integers(1, 3)), int(r() < 0.4)])
        if r() < 0.5:  # whiteboard (NYU40 30: ignored)
            _add_wall_item(room, rng, IGN, rng.uniform(1.2, 2.0), rng.uniform(0.9, 1.2), 1.45, depth=0.02,
                           color=_WHITE)
    elif rtype == "kitchen":
        _kitchen_row(room, rng)
        if r() < 0.3:
            _kitchen_row(room, rng)
        _place_many([lambda: _table_with_chairs(room, rng), wall_obj(make_cabinet), wall_obj(make_other)],
                    [int(r() < 0.8), int(rng.integers(0, 3)), int(rng.integers(0, 3))])
    elif rtype == "bathroom":
        _place_many([wall_obj(make_toilet), wall_obj(make_bathtub), wall_obj(make_vanity),
                                wall_obj(make_cabinet), wall_obj(make_other)],
                    [1, int(r() < 0.75), 1, int(r() < 0.5), int(r() < 0.6)])
        if r() < 0.6:  # mirror (NYU40 19: ignored)
            _add_wall_item(room, rng, IGN, rng.uniform(0.5, 0.9), rng.uniform(0.6, 0.9), 1.5, depth=0.01,
                           color=_LGREY)
    else:  # conference
        _table_with_chairs(room, rng, big=True)
        if r() < 0.15:
            _sofa_group(room, rng)
        _place_many([wall_obj(make_cabinet), wall_obj(make_other), wall_obj(make_bookshelf)],
                    [int(rng.integers(0, 3)), int(rng.integers(0, 3)), int(r() < 0.4)])
        if r() < 0.7:
            _add_wall_item(room, rng, IGN, rng.uniform(1.5, 2.4), rng.uniform(1.0, 1.2), 1.45, depth=0.02,
                           color=_WHITE)
    _radiators(room, rng)
    _add_curtains(room, rng)
    for _ in range(int(rng.integers(0, 4))):
        _add_wall_item(room, rng, PICTURE, rng.uniform(0.25, 1.0), rng.uniform(0.25, 0.8), rng.uniform(1.4, 1.8))
    for _ in range(int(rng.integers(0, 6))):  # boxes, bags on the floor (ignored)
        s = rng.uniform(0.15, 0.5, size=3)
        cx, cy = rng.uniform(s[0], room.W - s[0]), rng.uniform(s[1], room.D - s[1])
        fp = (cx - s[0] / 2, cx + s[0] / 2, cy - s[1] / 2, cy + s[1] / 2)
        if room.free(fp):
            room.parts.box([fp[0], fp[2], 0], [fp[1], fp[3], s[2] * 0.8], IGN, _mat(rng, ANY_MATS))
            room.footprints.append(fp)


def _room_shell(room: _Room, rng) -> None:
    W, D, H = room.W, room.D, room.H
    wall_col = _mat(rng, WALL_MATS)
    p = room.parts
    p.rect([0, 0, 0], [W, 0, 0], [0, D, 0], FLOOR, _mat(rng, FLOOR_MATS), density=1.0)
    for wall in range(4):
        o, tan, nrm = _wall_frame(room, wall)
        L = room.wall_len(wall)
        p.rect(o, np.array([0, 0, H]), tan * L, WALL, wall_col if rng.random() < 0.85 else _mat(rng, WALL_MATS),
               density=0.8, carvable=True)
        if rng.random() < 0.7:  # skirting board (wall)
            a = o
            b = o + tan * L + nrm * 0.012 + np.array([0, 0, rng.uniform(0.06, 0.1)])
            p.box(np.minimum(a, b), np.maximum(a, b), WALL, _mat(rng, (_WHITE, _WOOD_M, _GREY)), solid=False,
                  carvable=True)
    if rng.random() < 0.75:  # ceiling (ignored), sparsely scanned
        p.rect([0, 0, H], [0, D, 0], [W, 0, 0], IGN, _mat(rng, (_WHITE, _OFFWHITE)), density=rng.uniform(0.15, 0.5))
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
            o, tan, nrm = _wall_frame(room, wall)
            if ((corners - o) @ nrm).min() < 1e-6:  # the block touches this wall
                ts = (corners - o) @ tan
                room.wall_spans.append((wall, ts.min() - 0.05, ts.max() + 0.05, 0.0, H))


# --- sampling ------------------------------------------------------------------------------------

def _sample_surfaces(parts: _Parts, n: int, rng) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray,
                                                          np.ndarray, np.ndarray]:
    """``n`` points on the primitives, proportional to area x density.

    Returns points, normals, labels, base colours, part ids, carvable flags.
    """
    o = np.array(parts.rect_o)
    e1 = np.array(parts.rect_e1)
    e2 = np.array(parts.rect_e2)
    nr = np.array(parts.rect_n)
    lab_r = np.array([a[0] for a in parts.rect_attr], dtype=np.int64)
    col_r = np.array([a[1] for a in parts.rect_attr])
    dens_r = np.array([a[2] for a in parts.rect_attr])
    wave_r = np.array([a[3] for a in parts.rect_attr])
    waves_r = np.array([a[4] for a in parts.rect_attr])
    pid_r = np.array([a[5] for a in parts.rect_attr], dtype=np.int64)
    carv_r = np.array([a[6] for a in parts.rect_attr], dtype=bool)
    area_r = np.linalg.norm(np.cross(e1, e2), axis=1) * dens_r
    cyl = parts.cyl
    area_c = np.array([2 * np.pi * c[4] * (c[3] - c[2]) * c[7] for c in cyl]) if cyl else np.zeros(0)
    weights = np.concatenate([area_r, area_c])
    counts = rng.multinomial(n, weights / weights.sum())
    cr, cc = counts[: len(area_r)], counts[len(area_r):]

    idx = np.repeat(np.arange(len(area_r)), cr)
    u = rng.random(idx.size)
    v = rng.random(idx.size)
    wave = wave_r[idx] * np.sin(2 * np.pi * waves_r[idx] * u)
    pts_r = o[idx] + u[:, None] * e1[idx] + v[:, None] * e2[idx] + wave[:, None] * nr[idx]
    # normal of the wavy surface: tilt by the derivative along e1
    slope = wave_r[idx] * 2 * np.pi * waves_r[idx] * np.cos(2 * np.pi * waves_r[idx] * u)
    len1 = np.linalg.norm(e1[idx], axis=1)
    n_r = nr[idx] - (slope / np.maximum(len1, 1e-9))[:, None] * (e1[idx] / np.maximum(len1, 1e-9)[:, None])
    n_r /= np.linalg.norm(n_r, axis=1, keepdims=True)

    if cyl:
        cyl_arr = np.array([[c[0], c[1], c[2], c[3], c[4]] for c in cyl])
        jdx = np.repeat(np.arange(len(cyl)), cc)
        th = rng.uniform(0, 2 * np.pi, jdx.size)
        zz = cyl_arr[jdx, 2] + rng.random(jdx.size) * (cyl_arr[jdx, 3] - cyl_arr[jdx, 2])
        nc = np.stack([np.cos(th), np.sin(th), np.zeros_like(th)], axis=1)
        pts_c = np.stack([cyl_arr[jdx, 0], cyl_arr[jdx, 1], zz], axis=1) + nc * cyl_arr[jdx, 4:5]
        lab_c = np.array([c[5] for c in cyl], dtype=np.int64)[jdx]
        col_c = np.array([c[6] for c in cyl])[jdx]
        pid_c = np.array([c[8] for c in cyl], dtype=np.int64)[jdx]
    else:
        pts_c, nc, lab_c, col_c, pid_c = (np.zeros((0, 3)), np.zeros((0, 3)), np.zeros(0, np.int64),
                                          np.zeros((0, 3)), np.zeros(0, np.int64))
    return (np.concatenate([pts_r, pts_c]), np.concatenate([n_r, nc]), np.concatenate([lab_r[idx], lab_c]),
            np.concatenate([col_r[idx], col_c]), np.concatenate([pid_r[idx], pid_c]),
            np.concatenate([carv_r[idx], np.zeros(len(pts_c), dtype=bool)]))


def _hidden_mask(points: np.ndarray, pids: np.ndarray, solids, margin: float = 0.02) -> np.ndarray:
    """Points inside another part's solid box grown by ``margin`` (not visible to a scanner)."""
    hidden = np.zeros(len(points), dtype=bool)
    if not solids:
        return hidden
    order = np.argsort(points[:, 0], kind="stable")
    xs = points[order, 0]
    for center, axes, half, pid in solids:
        reach = np.abs(axes) @ half + margin  # half size of the axis-aligned bounding box
        a, b = np.searchsorted(xs, [center[0] - reach[0], center[0] + reach[0]])
        if a >= b:
            continue
        sel = order[a:b]
        local = (points[sel] - center) @ axes  # coordinates along the box axes
        inside = np.all(np.abs(local) <= half + margin, axis=1) & (pids[sel] != pid)
        hidden[sel[inside]] = True
    return hidden


def generate_indoor_scene(seed: int, index: int, num_points: int = 40000,
                          name: Optional[str] = None) -> PointCloudScene:
    """Generate scene ``index`` of the stream ``seed`` (deterministic in ``(seed, index)``).

    Returns a :class:`PointCloudScene` with ``num_points`` points (metres, room corner at the origin,
    +Z up), colours in [0, 1] and ScanNet-20 labels (``IGNORE_INDEX`` for ceiling and props).
    """
    if num_points < 100:
        raise ValueError(f"points_per_scene must be at least 100, got {num_points}")
    rng = np.random.default_rng([int(seed), int(index), 0x5CA7])
    rtype = ROOM_TYPES[int(rng.choice(len(ROOM_TYPES), p=[0.18, 0.17, 0.17, 0.18, 0.15, 0.15]))]
    if rtype == "bathroom":
        W, D = rng.uniform(2.0, 3.5), rng.uniform(2.0, 3.2)
    elif rtype == "conference":
        W, D = rng.uniform(4.5, 8.0), rng.uniform(4.0, 7.0)
    else:
        W, D = rng.uniform(3.0, 7.0), rng.uniform(3.0, 6.5)
    H = rng.uniform(2.4, 3.1)
    room = _Room(W, D, H, _Parts())
    _room_shell(room, rng)
    for _ in range(1 + int(rng.random() < 0.3)):
        _add_door(room, rng)
    for _ in range(int(rng.choice([0, 1, 1, 2, 2, 3])) if rtype != "bathroom" else int(rng.random() < 0.5)):
        _add_window(room, rng)
    _furnish(room, rng, rtype)

    pts, nrm, lab, col, pid, carv = _sample_surfaces(room.parts, int(num_points * 1.8), rng)
    keep = ~_hidden_mask(pts, pid, room.parts.solids)
    for lo, hi in room.carves:
        keep &= ~(carv & np.all((pts >= lo) & (pts <= hi), axis=1))
    # missing scan regions: holes around random surface points, and one larger gap on a wall
    n_holes = int(rng.integers(4, 14))
    centers = pts[rng.integers(0, len(pts), n_holes)]
    radii = rng.uniform(0.08, 0.4, n_holes)
    for c, r in zip(centers, radii):
        keep &= np.sum((pts - c) ** 2, axis=1) > r * r
    if rng.random() < 0.5:
        wall = int(rng.integers(4))
        o, tan, _ = _wall_frame(room, wall)
        t0 = rng.uniform(0, room.wall_len(wall))
        t = (pts - o) @ tan
        z_gap = rng.uniform(1.2, H)
        gap = (lab == WALL) & (np.abs(t - t0) < rng.uniform(0.3, 1.2)) & (pts[:, 2] > z_gap)
        keep &= ~gap
    # a hand-held scanner sees high surfaces less: thin out linearly from 1.8 m to half at the ceiling
    keep_prob = 1.0 - 0.5 * np.clip((pts[:, 2] - 1.8) / max(H - 1.8, 0.1), 0.0, 1.0)
    keep &= rng.random(len(pts)) < keep_prob
    pts, nrm, lab, col = pts[keep], nrm[keep], lab[keep], col[keep]
    if len(pts) > num_points:
        sel = np.sort(rng.choice(len(pts), num_points, replace=False))
        pts, nrm, lab, col = pts[sel], nrm[sel], lab[sel], col[sel]

    # colour: material x (ambient + Lambert) x smooth illumination field + noise
    light = rng.normal(size=3)
    light[2] = abs(light[2]) + 1.0
    light /= np.linalg.norm(light)
    shade = 0.72 + 0.28 * np.abs(nrm @ light)
    kx, ky = rng.uniform(0.2, 0.8, 2)
    phase = rng.uniform(0, 2 * np.pi, 2)
    illum = 1.0 + 0.08 * np.sin(kx * pts[:, 0] + phase[0]) * np.cos(ky * pts[:, 1] + phase[1])
    tint = rng.uniform(0.93, 1.07, 3)
    colors = col * (shade * illum)[:, None] * tint + rng.normal(0, 0.035, col.shape)
    colors = np.clip(colors, 0.0, 1.0)

    # sensor noise: along the normal (depth error) plus a small isotropic part
    sigma = rng.uniform(0.003, 0.009)
    pts = pts + nrm * rng.normal(0, sigma, (len(pts), 1)) + rng.normal(0, sigma * 0.4, pts.shape)
    return PointCloudScene(name or f"gen_s{int(seed)}_{int(index):05d}", pts.astype(np.float32),
                           colors.astype(np.float32), lab.astype(np.int64))


class GeneratedIndoorDataset(SegmentationDataset):
    """``num_scenes`` procedural indoor scenes with ScanNet-20 classes (see the module docstring).

    Scene ``i`` depends only on ``(seed, i)``; two datasets with different seeds are disjoint streams
    (use different seeds for train and validation). Generating one 40k-point scene takes 0.1-0.3 s on
    one CPU core; with ``cache=True`` each scene is generated once and kept in memory (about 1.3 MB per
    40k-point scene; every access returns fresh copies of the arrays).
    """

    class_names = SCANNET20_CLASSES

    def __init__(self, num_scenes: int, seed: int = 0, points_per_scene: int = 40000, cache: bool = False) -> None:
        if isinstance(num_scenes, bool) or not isinstance(num_scenes, (int, np.integer)) or num_scenes <= 0:
            raise ValueError(f"num_scenes must be a positive int, got {num_scenes!r}")
        if isinstance(points_per_scene, bool) or not isinstance(points_per_scene, (int, np.integer)) \
                or points_per_scene < 100:
            raise ValueError(f"points_per_scene must be an int >= 100, got {points_per_scene!r}")
        self.seed = int(seed)
        self.points_per_scene = int(points_per_scene)
        self.scene_names = [f"gen_s{self.seed}_{i:05d}" for i in range(int(num_scenes))]
        self._cache: Optional[dict] = {} if cache else None

    def _load(self, index: int) -> PointCloudScene:
        if self._cache is None:
            return generate_indoor_scene(self.seed, index, self.points_per_scene, name=self.scene_names[index])
        if index not in self._cache:
            self._cache[index] = generate_indoor_scene(self.seed, index, self.points_per_scene,
                                                       name=self.scene_names[index])
        s = self._cache[index]
        return PointCloudScene(s.name, s.points.copy(), s.colors.copy(), s.labels.copy())

    def __repr__(self) -> str:
        return (f"GeneratedIndoorDataset(num_scenes={len(self)}, seed={self.seed}, "
                f"points_per_scene={self.points_per_scene})")
