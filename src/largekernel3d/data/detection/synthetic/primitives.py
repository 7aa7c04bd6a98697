"""Solid primitives a scene is made of, stored as flat arrays, and a builder that composes objects.

Every primitive is a solid in its own local frame, placed by ``x_world = centre + rotation @ x_local``:

====================  ==========================================================================
``Kind.BOX``          ``|x_i| <= half_i`` for i = 0, 1, 2
``Kind.CYLINDER``     ``x_0^2 + x_1^2 <= half_0^2`` and ``|x_2| <= half_2`` (axis = local z, radius
                      ``half_0 == half_1``)
``Kind.ELLIPSOID``    ``sum_i (x_i / half_i)^2 <= 1``
``Kind.CONVEX``       ``n_k . x <= d_k`` for the rows ``(n_k, d_k)`` of ``planes`` (a convex polytope:
                      an axis box clipped by up to ``MAX_PLANES - 6`` more half-spaces); ``half`` is
                      the half size of its local bounding box, which is centred on the origin
====================  ==========================================================================

Each primitive also carries its semantic class, the object instance it belongs to (-1 for the
background), and its material (reflectivity, extra dropout, porous free path) plus an optional facade
window grid. Objects are built in an object frame (x forward, y left, z up, the bottom at z = 0) with
:class:`PartsBuilder` and placed with :meth:`Primitives.transformed`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import IntEnum
from itertools import combinations
from typing import List, Optional, Sequence, Tuple

import numpy as np

from .materials import Material

#: the most half-spaces a CONVEX primitive has (6 of them are its bounding box)
MAX_PLANES = 12
#: values of a facade window grid (see :class:`Primitives`)
WINDOW_FIELDS = 5
_PAD_PLANE = np.array([0.0, 0.0, 0.0, 1.0])  # 0 . x <= 1: always true


class Kind(IntEnum):
    """Shape of a primitive (see the module docstring for the solid each one is)."""

    BOX = 0
    CYLINDER = 1
    ELLIPSOID = 2
    CONVEX = 3


def rot_x(angle: float) -> np.ndarray:
    """``[3, 3]`` rotation by ``angle`` radians about +x."""
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def rot_y(angle: float) -> np.ndarray:
    """``[3, 3]`` rotation by ``angle`` radians about +y."""
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def rot_z(angle: float) -> np.ndarray:
    """``[3, 3]`` rotation by ``angle`` radians about +z (x towards y)."""
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def frame_with_z_axis(axis: Sequence[float]) -> np.ndarray:
    """A ``[3, 3]`` rotation whose third column is the unit vector along ``axis`` (for cylinders)."""
    ax, ay, az = (float(a) for a in axis)
    norm = (ax * ax + ay * ay + az * az) ** 0.5
    ax, ay, az = ax / norm, ay / norm, az / norm
    # e0 = helper x a with helper = +x (or +y when a is close to x), then e1 = a x e0
    if abs(ax) < 0.9:
        e0 = (0.0, -az, ay)
    else:
        e0 = (az, 0.0, -ax)
    n0 = (e0[0] ** 2 + e0[1] ** 2 + e0[2] ** 2) ** 0.5
    e0 = (e0[0] / n0, e0[1] / n0, e0[2] / n0)
    e1 = (ay * e0[2] - az * e0[1], az * e0[0] - ax * e0[2], ax * e0[1] - ay * e0[0])
    return np.array([[e0[0], e1[0], ax], [e0[1], e1[1], ay], [e0[2], e1[2], az]])


@dataclass(frozen=True)
class Primitives:
    """``P`` primitives as arrays (see the module docstring).

    Attributes:
        kind: int64 ``[P]`` :class:`Kind` values.
        centre: float64 ``[P, 3]``; rotation: float64 ``[P, 3, 3]`` (local to world, columns are the
            local axes); half: float64 ``[P, 3]``; planes: float64 ``[P, MAX_PLANES, 4]`` rows
            ``(n, d)`` in the local frame (only CONVEX uses them; others hold always-true padding).
        semantic: int64 ``[P]`` semantic class id; instance: int64 ``[P]`` object index or -1.
        reflectivity, dropout, free_path: float64 ``[P]`` material (see :class:`Material`).
        windows: float64 ``[P, 5]`` facade window grid ``(spacing_h, width_fraction, z0, spacing_v,
            height_fraction)`` for buildings, zeros for everything else: a hit on a vertical face at
            height ``h`` above the primitive's bottom and ``a`` along the face is glass when
            ``frac(a / spacing_h) < width_fraction``, ``h >= z0`` and
            ``frac((h - z0) / spacing_v) < height_fraction``.
    """

    kind: np.ndarray
    centre: np.ndarray
    rotation: np.ndarray
    half: np.ndarray
    planes: np.ndarray
    semantic: np.ndarray
    instance: np.ndarray
    reflectivity: np.ndarray
    dropout: np.ndarray
    free_path: np.ndarray
    windows: np.ndarray

    def __len__(self) -> int:
        return int(self.kind.shape[0])

    @staticmethod
    def empty() -> "Primitives":
        """No primitives."""
        return Primitives(
            np.zeros(0, np.int64),
            np.zeros((0, 3)),
            np.zeros((0, 3, 3)),
            np.zeros((0, 3)),
            np.zeros((0, MAX_PLANES, 4)),
            np.zeros(0, np.int64),
            np.zeros(0, np.int64),
            np.zeros(0),
            np.zeros(0),
            np.zeros(0),
            np.zeros((0, WINDOW_FIELDS)),
        )

    @staticmethod
    def concat(parts: Sequence["Primitives"]) -> "Primitives":
        """All primitives of ``parts`` in order."""
        parts = [p for p in parts if len(p)]
        if not parts:
            return Primitives.empty()
        names = [f.name for f in Primitives.__dataclass_fields__.values()]
        return Primitives(**{n: np.concatenate([getattr(p, n) for p in parts]) for n in names})

    def transformed(self, yaw: float, translation: Sequence[float]) -> "Primitives":
        """The primitives moved by ``x -> R_z(yaw) x + translation`` (object frame to world)."""
        rz = rot_z(yaw)
        t = np.asarray(translation, dtype=np.float64).reshape(3)
        return replace(self, centre=self.centre @ rz.T + t, rotation=np.einsum("ij,pjk->pik", rz, self.rotation))

    def with_instance(self, instance: int) -> "Primitives":
        """The same primitives with every ``instance`` set to ``instance``."""
        return replace(self, instance=np.full(len(self), int(instance), dtype=np.int64))

    def extents(self) -> np.ndarray:
        """``[P, 3]`` half extents of each primitive's axis-aligned bounding box in the parent frame.

        Box / convex: ``sum_j |R_ij| h_j``; ellipsoid: ``sqrt(sum_j (R_ij h_j)^2)``; cylinder with unit
        axis ``a``: ``|a_i| h_2 + r sqrt(1 - a_i^2)``. All are exact (convex: exact for its local box).
        """
        r, h = self.rotation, self.half
        ext = np.einsum("pij,pj->pi", np.abs(r), h)
        ell = self.kind == Kind.ELLIPSOID
        ext[ell] = np.sqrt(np.einsum("pij,pj->pi", r[ell] ** 2, h[ell] ** 2))
        cyl = self.kind == Kind.CYLINDER
        axis = r[cyl][:, :, 2]
        ext[cyl] = np.abs(axis) * h[cyl][:, 2:3] + h[cyl][:, 0:1] * np.sqrt(np.clip(1.0 - axis**2, 0.0, None))
        return ext

    def bounds(self) -> Tuple[np.ndarray, np.ndarray]:
        """``(low, high)``, each ``[3]``: the axis-aligned bounding box of all primitives."""
        if not len(self):
            raise ValueError("bounds() of no primitives")
        ext = self.extents()
        return (self.centre - ext).min(axis=0), (self.centre + ext).max(axis=0)

    def bounding_radius(self) -> np.ndarray:
        """``[P]`` radius of a sphere about ``centre`` that holds each primitive (``|half|``, or the
        largest semi-axis for ellipsoids)."""
        radius = np.linalg.norm(self.half, axis=1)
        ell = self.kind == Kind.ELLIPSOID
        radius[ell] = self.half[ell].max(axis=1)
        return radius


#: index triples of up to MAX_PLANES planes (the candidate vertices of a convex primitive)
_TRIPLES = {n: np.array(list(combinations(range(n), 3))) for n in range(4, MAX_PLANES + 1)}


def _convex_vertices(planes: np.ndarray) -> np.ndarray:
    """Vertices ``[V, 3]`` of ``{x : n_k . x <= d_k}`` (every feasible intersection of three planes)."""
    triples = _TRIPLES[len(planes)]
    a = planes[triples, :3]
    b = planes[triples, 3]
    ok = np.abs(np.linalg.det(a)) > 1e-9
    x = np.linalg.solve(a[ok], b[ok][..., None])[..., 0]
    feasible = (x @ planes[:, :3].T <= planes[:, 3] + 1e-7).all(axis=1)
    return x[feasible]


@dataclass
class PartsBuilder:
    """Collects the parts of one object (or of the background) in its own frame.

    Every method takes the part's ``semantic`` class and ``material``; sizes are full sizes in metres.
    ``build()`` returns the :class:`Primitives` (instance -1).
    """

    rows: List[dict] = field(default_factory=list)

    def _add(
        self,
        kind: Kind,
        centre,
        rotation,
        half,
        semantic: int,
        material: Material,
        planes: Optional[np.ndarray] = None,
        windows: Optional[Sequence[float]] = None,
    ) -> None:
        half = np.asarray(half, dtype=np.float64)
        if (half <= 0).any():
            raise ValueError(f"PartsBuilder: a {kind.name.lower()} part has a non-positive size {2 * half}")
        padded = np.tile(_PAD_PLANE, (MAX_PLANES, 1))
        if planes is not None:
            padded[: len(planes)] = planes
        self.rows.append(
            dict(
                kind=int(kind),
                centre=np.asarray(centre, dtype=np.float64),
                rotation=rotation,
                half=half,
                planes=padded,
                semantic=int(semantic),
                reflectivity=material.reflectivity,
                dropout=material.dropout,
                free_path=material.free_path,
                windows=np.zeros(WINDOW_FIELDS) if windows is None else np.asarray(windows, dtype=np.float64),
            )
        )

    def box(self, lo, hi, semantic: int, material: Material, windows: Optional[Sequence[float]] = None) -> None:
        """The axis-aligned box ``[lo, hi]`` (``windows``: a facade window grid, buildings only)."""
        lo, hi = np.asarray(lo, dtype=np.float64), np.asarray(hi, dtype=np.float64)
        self._add(Kind.BOX, (lo + hi) / 2, np.eye(3), (hi - lo) / 2, semantic, material, windows=windows)

    def oriented_box(self, centre, size, rotation, semantic: int, material: Material) -> None:
        """A box of full ``size`` about ``centre`` with local axes the columns of ``rotation``."""
        self._add(Kind.BOX, centre, np.asarray(rotation, dtype=np.float64), np.asarray(size) / 2, semantic, material)

    def cylinder(self, centre, radius: float, length: float, axis, semantic: int, material: Material) -> None:
        """A solid cylinder of ``radius`` and ``length`` about ``centre`` along the direction ``axis``."""
        self._add(Kind.CYLINDER, centre, frame_with_z_axis(axis), (radius, radius, length / 2), semantic, material)

    def segment(self, start, end, radius: float, semantic: int, material: Material) -> None:
        """A cylinder of ``radius`` from point ``start`` to point ``end`` (limbs, tubes)."""
        start, end = np.asarray(start, dtype=np.float64), np.asarray(end, dtype=np.float64)
        axis = end - start
        self.cylinder((start + end) / 2, radius, float(np.linalg.norm(axis)), axis, semantic, material)

    def ellipsoid(self, centre, semi_axes, semantic: int, material: Material, rotation=None) -> None:
        """An ellipsoid with ``semi_axes`` about ``centre`` (axes the columns of ``rotation``)."""
        rot = np.eye(3) if rotation is None else np.asarray(rotation, dtype=np.float64)
        self._add(Kind.ELLIPSOID, centre, rot, semi_axes, semantic, material)

    def convex(
        self, lo, hi, cuts: Sequence[Tuple[Sequence[float], Sequence[float]]], semantic: int, material: Material
    ) -> None:
        """The box ``[lo, hi]`` clipped by half-spaces: each cut ``(normal, point)`` keeps
        ``{x : normal . (x - point) <= 0}`` (chamfers, slanted windscreens, tapered cabins)."""
        lo, hi = np.asarray(lo, dtype=np.float64), np.asarray(hi, dtype=np.float64)
        if len(cuts) > MAX_PLANES - 6:
            raise ValueError(f"PartsBuilder.convex: at most {MAX_PLANES - 6} cuts, got {len(cuts)}")
        rows = [np.r_[e, hi[i]] for i, e in enumerate(np.eye(3))] + [np.r_[-e, -lo[i]] for i, e in enumerate(np.eye(3))]
        for normal, point in cuts:
            n = np.asarray(normal, dtype=np.float64)
            n = n / np.linalg.norm(n)
            rows.append(np.r_[n, n @ np.asarray(point, dtype=np.float64)])
        planes = np.array(rows)
        vertices = _convex_vertices(planes)
        if len(vertices) < 4:
            raise ValueError("PartsBuilder.convex: the cuts leave an empty or flat solid")
        vlo, vhi = vertices.min(axis=0), vertices.max(axis=0)
        centre = (vlo + vhi) / 2
        planes[:, 3] -= planes[:, :3] @ centre
        self._add(Kind.CONVEX, centre, np.eye(3), (vhi - vlo) / 2, semantic, material, planes=planes)

    def build(self) -> Primitives:
        """The collected parts as :class:`Primitives` (instance -1)."""
        if not self.rows:
            return Primitives.empty()
        col = {k: np.array([r[k] for r in self.rows]) for k in self.rows[0]}
        return Primitives(
            kind=col["kind"].astype(np.int64),
            centre=col["centre"].reshape(-1, 3),
            rotation=col["rotation"].reshape(-1, 3, 3),
            half=col["half"].reshape(-1, 3),
            planes=col["planes"].reshape(-1, MAX_PLANES, 4),
            semantic=col["semantic"].astype(np.int64),
            instance=np.full(len(self.rows), -1, dtype=np.int64),
            reflectivity=col["reflectivity"].astype(np.float64),
            dropout=col["dropout"].astype(np.float64),
            free_path=col["free_path"].astype(np.float64),
            windows=col["windows"].reshape(-1, WINDOW_FIELDS),
        )


__all__ = [
    "Kind",
    "MAX_PLANES",
    "WINDOW_FIELDS",
    "Primitives",
    "PartsBuilder",
    "rot_x",
    "rot_y",
    "rot_z",
    "frame_with_z_axis",
]
