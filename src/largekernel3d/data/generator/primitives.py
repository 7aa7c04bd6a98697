"""Surface primitives a scene is built from: rectangles, vertical cylinders, and the solids that hide
other parts' surfaces inside them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Sequence, Tuple

import numpy as np


@dataclass
class Parts:
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
        """A fresh part id (ids start at 1; 0 means 'no part')."""
        self.next_id += 1
        return self.next_id

    def rect(self, o, e1, e2, label, color, density=1.0, wave=0.0, waves=0.0, pid=0, carvable=False) -> None:
        """Add the patch ``o + u e1 + v e2`` (u, v in [0, 1]) with normal ``e1 x e2 / |e1 x e2|``; a
        degenerate patch is skipped."""
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
        """Add the side of a vertical cylinder (centre (cx, cy), z in [z0, z1], radius ``r``), a square cap
        of the same area when ``top``, and an inner solid when ``solid``. Returns the part id."""
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

    def extend(
        self, other: "Parts", rot_k: int, offset: Sequence[float], density_scale: float = 1.0, yaw: float = 0.0
    ) -> None:
        """Add ``other`` (local frame) rotated about z by ``rot_k`` x 90 degrees plus ``yaw`` radians,
        then translated by ``offset``, with its densities multiplied by ``density_scale``."""
        off = np.asarray(offset, dtype=np.float64)
        rot = rotz(rot_k * np.pi / 2 + yaw)

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


def rotz(angle: float) -> np.ndarray:
    """3 x 3 rotation by ``angle`` about z (``(1, 0, 0) -> (0, 1, 0)`` for ``pi / 2``)."""
    c, s = np.cos(angle), np.sin(angle)
    if abs(c) < 1e-12:
        c = 0.0
    if abs(s) < 1e-12:
        s = 0.0
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
