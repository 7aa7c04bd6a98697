"""Overlapping tiles of a voxelised scene, so that a large scene runs in pieces with the same result.

The scene is voxelised once on one grid (origin = the per-axis minimum of all points). Tiles are squares
of ``tile`` voxels in x and y (the whole height in z). Each tile runs the network on its *crop*: its core
plus a halo of ``halo`` voxels on every side, and keeps the predictions of its core voxels only; every
voxel lies in exactly one core.

Exactness: with ``halo >= R`` (:func:`~.receptive_field.receptive_field_radius`) a core voxel sees the
same neighbourhood in the crop as in the whole scene. The UNet's strided convs group voxels in blocks of
``2^L`` (``L`` = down-sampling levels, ``2^L = 16`` here), so crop corners lie on multiples of ``align =
2^L`` and crops are shifted by multiples of ``align``: the coarse cells of a crop are those of the whole
scene. ``tile`` and ``halo`` are rounded up to multiples of ``align`` for that reason. Then every core voxel
gets the prediction of a single pass (up to floating-point summation order).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List

import numpy as np


@dataclass(frozen=True)
class Tile:
    """One tile: ``crop`` rows of the scene's voxels it runs on, ``core`` (a boolean mask over ``crop``) the
    rows whose predictions it keeps, ``shift`` the integer ``[3]`` offset subtracted from the crop's coords."""

    crop: np.ndarray
    core: np.ndarray
    shift: np.ndarray


def round_up(value: int, align: int) -> int:
    """The smallest multiple of ``align`` that is ``>= value``."""
    return -(-int(value) // int(align)) * int(align)


def plan_tiles(coords: np.ndarray, tile: int, halo: int, align: int = 16) -> List[Tile]:
    """Tiles covering the voxels ``coords`` (int ``[M, 3]``, x y z ``>= 0``); empty tiles are skipped.

    Args:
        coords: voxel coordinates of the whole scene.
        tile: core edge in voxels (rounded up to a multiple of ``align``).
        halo: context on each side in voxels (rounded up to a multiple of ``align``).
        align: the network's coarsest cell (``2^L``).
    """
    coords = np.asarray(coords)
    if coords.ndim != 2 or coords.shape[1] != 3:
        raise ValueError(f"coords must be [M, 3], got {coords.shape}")
    for name, value in (("tile", tile), ("align", align)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a positive int of voxels, got {value!r}")
    if isinstance(halo, bool) or not isinstance(halo, (int, np.integer)) or halo < 0:
        raise ValueError(f"halo must be a non-negative int of voxels, got {halo!r}")
    tile, halo = round_up(tile, align), round_up(halo, align)
    if coords.shape[0] == 0:
        return []
    ext = coords[:, :2].max(axis=0)
    tiles = []
    ix = coords[:, 0] // tile
    iy = coords[:, 1] // tile
    for tx in range(int(ext[0]) // tile + 1):
        for ty in range(int(ext[1]) // tile + 1):
            x0, y0 = tx * tile, ty * tile
            in_crop = (
                (coords[:, 0] >= x0 - halo)
                & (coords[:, 0] < x0 + tile + halo)
                & (coords[:, 1] >= y0 - halo)
                & (coords[:, 1] < y0 + tile + halo)
            )
            crop = np.flatnonzero(in_crop)
            core = (ix[crop] == tx) & (iy[crop] == ty)
            if not core.any():
                continue
            shift = np.array([max(x0 - halo, 0), max(y0 - halo, 0), 0], dtype=np.int64)
            tiles.append(Tile(crop=crop, core=core, shift=shift))
    return tiles


__all__ = ["Tile", "plan_tiles", "round_up"]
