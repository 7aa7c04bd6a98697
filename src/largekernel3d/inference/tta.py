"""Test-time augmentation on the voxel grid: rotations about z by multiples of 90 degrees and a mirror.

Each transform maps the integer voxel coordinates ``c`` to ``T c`` (``T`` a signed permutation of x and y,
z unchanged) and shifts the result back to ``>= 0``; the network runs on the transformed scene and its
logits, which stay on the same voxel rows, are averaged: ``z_tta[v] = mean_t z_t[v]``. Transforming the
voxels rather than the points keeps the voxel set (and the point -> voxel map) of the plain pass, so the
averaged logits belong to exactly the voxels the points fall in.
"""

from __future__ import annotations

from typing import List

import numpy as np

_ROTATIONS = [
    np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1]]),
    np.array([[0, -1, 0], [1, 0, 0], [0, 0, 1]]),
    np.array([[-1, 0, 0], [0, -1, 0], [0, 0, 1]]),
    np.array([[0, 1, 0], [-1, 0, 0], [0, 0, 1]]),
]
_MIRROR_X = np.array([[-1, 0, 0], [0, 1, 0], [0, 0, 1]])


def tta_transforms(rotations: int = 4, mirror: bool = True) -> List[np.ndarray]:
    """Integer ``[3, 3]`` matrices: ``rotations`` (1, 2 or 4) turns about z (by ``360 / rotations`` degrees),
    each also mirrored in x when ``mirror`` (so up to 8); the identity comes first."""
    if rotations not in (1, 2, 4):
        raise ValueError(f"rotations must be 1, 2 or 4 (quarter turns about z), got {rotations!r}")
    if not isinstance(mirror, bool):
        raise TypeError(f"mirror must be a bool, got {mirror!r}")
    turns = [_ROTATIONS[k * (4 // rotations)] for k in range(rotations)]
    out = list(turns)
    if mirror:
        out += [r @ _MIRROR_X for r in turns]
    return out


def transform_coords(coords: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """``T c`` for int ``[M, 3]`` voxel coordinates, shifted so that each axis starts at 0 (int64)."""
    out = np.asarray(coords, dtype=np.int64) @ np.asarray(matrix, dtype=np.int64).T
    return out - out.min(axis=0, keepdims=True) if out.shape[0] else out


__all__ = ["tta_transforms", "transform_coords"]
