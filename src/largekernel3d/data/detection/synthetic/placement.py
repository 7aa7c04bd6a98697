"""Keeping placed things apart: oriented footprints with height ranges and a separating-axis test.

A footprint is a rectangle in the ground plane (``[4, 2]`` corners) with a height range ``[z0, z1]``.
Two footprints collide when their height ranges overlap and the rectangles overlap after growing by
``margin``: by the separating-axis theorem two convex polygons are disjoint iff their projections onto
one of their edge normals are disjoint, so they collide iff for every edge normal ``a`` of either one
``max(A.a) + margin >= min(B.a)`` and ``max(B.a) + margin >= min(A.a)``. A negative margin lets
footprints touch or overlap by up to ``-margin``.
"""

from __future__ import annotations

import numpy as np


def rectangle(cx: float, cy: float, length: float, width: float, yaw: float) -> np.ndarray:
    """Corners ``[4, 2]`` (counter-clockwise) of a ``length`` x ``width`` rectangle about ``(cx, cy)``
    with its length along the heading ``yaw``."""
    c, s = np.cos(yaw), np.sin(yaw)
    local = np.array([[1, 1], [-1, 1], [-1, -1], [1, -1]], dtype=np.float64) * [length / 2, width / 2]
    return local @ np.array([[c, s], [-s, c]]) + [cx, cy]


def _edge_normals(corners: np.ndarray) -> np.ndarray:
    """``[..., 2, 2]`` unit normals of two adjacent edges of rectangles ``[..., 4, 2]``."""
    edges = np.stack([corners[..., 1, :] - corners[..., 0, :], corners[..., 2, :] - corners[..., 1, :]], axis=-2)
    normals = np.stack([-edges[..., 1], edges[..., 0]], axis=-1)
    return normals / np.linalg.norm(normals, axis=-1, keepdims=True)


class Occupancy:
    """The footprints placed so far in one scene (see the module docstring)."""

    def __init__(self) -> None:
        self._corners = np.zeros((0, 4, 2))
        self._axes = np.zeros((0, 2, 2))
        self._centre = np.zeros((0, 2))
        self._radius = np.zeros(0)
        self._z = np.zeros((0, 2))

    def __len__(self) -> int:
        return int(self._corners.shape[0])

    def collides(self, corners: np.ndarray, z0: float, z1: float, margin: float = 0.0) -> bool:
        """Whether the footprint ``corners`` ``[4, 2]`` with heights ``[z0, z1]`` hits a placed one."""
        return self.collides_any(np.asarray(corners, dtype=np.float64)[None], np.array([[z0, z1]]), margin)

    def collides_any(self, corners: np.ndarray, z: np.ndarray, margin: float = 0.0) -> bool:
        """Whether any of the footprints ``corners`` ``[F, 4, 2]`` with heights ``z`` ``[F, 2]`` hits a
        placed one (bounding circles first, then the separating-axis test on the close pairs)."""
        if not len(self):
            return False
        centre = corners.mean(axis=1)
        radius = np.linalg.norm(corners - centre[:, None], axis=2).max(axis=1)
        near = np.linalg.norm(centre[:, None] - self._centre[None], axis=2) <= radius[:, None] + self._radius + margin
        near &= (self._z[None, :, 0] <= z[:, None, 1]) & (self._z[None, :, 1] >= z[:, None, 0])
        new, old = np.nonzero(near)
        if not len(new):
            return False
        axes = np.concatenate([_edge_normals(corners[new]), self._axes[old]], axis=1)  # [K, 4, 2]
        proj_new = np.einsum("kcj,kaj->kac", corners[new], axes)
        proj_old = np.einsum("kcj,kaj->kac", self._corners[old], axes)
        overlap = (proj_new.max(-1) + margin >= proj_old.min(-1)) & (proj_old.max(-1) + margin >= proj_new.min(-1))
        return bool(overlap.all(axis=1).any())

    def add(self, corners: np.ndarray, z0: float, z1: float) -> None:
        """Register a footprint."""
        corners = np.asarray(corners, dtype=np.float64).reshape(1, 4, 2)
        centre = corners.mean(axis=1)
        self._corners = np.concatenate([self._corners, corners])
        self._axes = np.concatenate([self._axes, _edge_normals(corners)])
        self._centre = np.concatenate([self._centre, centre])
        self._radius = np.r_[self._radius, np.linalg.norm(corners[0] - centre, axis=1).max()]
        self._z = np.concatenate([self._z, [[float(z0), float(z1)]]])

    def try_add(self, corners: np.ndarray, z0: float, z1: float, margin: float = 0.0) -> bool:
        """Register the footprint if it is free (see :meth:`collides`); returns whether it was added."""
        if self.collides(corners, z0, z1, margin):
            return False
        self.add(corners, z0, z1)
        return True


__all__ = ["rectangle", "Occupancy"]
