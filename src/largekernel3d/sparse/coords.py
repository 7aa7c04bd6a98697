"""Coordinates of active sites: validation and packing into sortable int64 keys.

A site is ``(b, c_0, ..., c_{D-1})`` with ``0 <= b < batch_size`` and ``0 <= c_d < spatial_shape[d]``.
Its key is the row-major linear index ``((b * s_0 + c_0) * s_1 + c_1) ... * s_{D-1} + c_{D-1}``, so
sorting keys sorts sites by batch, then axis 0, ..., then the last axis.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

_MAX_KEY = 2**62
# spconv 2.x does not check its inputs: the same call there runs and returns wrong numbers
_SILENT = (
    "spconv does not check this and would have run with silently wrong results (sites outside the grid "
    "alias other cells or are dropped, repeated sites are computed twice)"
)


def check_key_range(spatial_shape: Sequence[int], batch_size: int) -> None:
    """Raise ``ValueError`` when ``batch_size * prod(spatial_shape)`` does not fit an int64 key."""
    total = int(batch_size)
    for s in spatial_shape:
        total *= int(s)
    if total >= _MAX_KEY:
        raise ValueError(
            f"spatial_shape={tuple(spatial_shape)} with batch_size={batch_size} has more than 2**62 cells; "
            f"use a coarser voxel size or crop the scene"
        )


def encode(batch: Tensor, coords: Tensor, spatial_shape: Sequence[int]) -> Tensor:
    """Pack ``batch [N]`` and ``coords [N, D]`` (int64, in range) into int64 keys ``[N]``."""
    key = batch.to(torch.int64)
    for d, s in enumerate(spatial_shape):
        key = key * int(s) + coords[:, d]
    return key


def decode(keys: Tensor, spatial_shape: Sequence[int]) -> Tensor:
    """Inverse of :func:`encode`: keys ``[N]`` to int32 indices ``[N, 1 + D]`` (batch first)."""
    cols = []
    rest = keys
    for s in reversed(list(spatial_shape)):
        cols.append(torch.remainder(rest, int(s)))
        rest = torch.div(rest, int(s), rounding_mode="floor")
    cols.append(rest)
    return torch.stack(cols[::-1], dim=1).to(torch.int32)


def validate_indices(
    indices: Tensor, spatial_shape: Sequence[int], batch_size: int, check_duplicates: bool = True, name: str = "indices"
) -> None:
    """Check a site list; raise ``TypeError``/``ValueError`` naming ``name`` and the fix.

    Checks: integer dtype (int32/int64), shape ``[N, 1 + D]``, batch index in ``[0, batch_size)``,
    coordinates in ``[0, spatial_shape)``, and (optionally) no duplicate sites.
    """
    ndim = len(spatial_shape)
    if not isinstance(indices, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(indices).__name__}")
    if indices.dtype not in (torch.int32, torch.int64):
        raise TypeError(
            f"{name} must be int32 or int64 (batch index first, then coordinates), "
            f"got {indices.dtype}; convert with .int()"
        )
    if indices.dim() != 2 or indices.shape[1] != 1 + ndim:
        raise ValueError(
            f"{name} must have shape [N, {1 + ndim}] (batch index + {ndim} coordinates for "
            f"spatial_shape={tuple(spatial_shape)}), got {tuple(indices.shape)}"
        )
    if any(int(s) <= 0 for s in spatial_shape):
        raise ValueError(f"spatial_shape entries must be positive, got {tuple(spatial_shape)}")
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    check_key_range(spatial_shape, batch_size)
    if indices.shape[0] == 0:
        return
    lo = indices.amin(dim=0).tolist()
    hi = indices.amax(dim=0).tolist()
    if lo[0] < 0 or hi[0] >= batch_size:
        raise ValueError(
            f"{name}[:, 0] (batch index) must lie in [0, batch_size={batch_size}), "
            f"found range [{lo[0]}, {hi[0]}]; raise batch_size or fix the batch column. {_SILENT}"
        )
    for d in range(ndim):
        if lo[d + 1] < 0:
            raise ValueError(
                f"{name}[:, {d + 1}] has negative coordinates (min {lo[d + 1]}); shift the "
                f"coordinates so they start at 0 (or crop the points to the grid). {_SILENT}"
            )
        if hi[d + 1] >= int(spatial_shape[d]):
            fix = (
                f"spatial_shape[{d}] must be at least {hi[d + 1] + 1}: use spatial_shape[{d}]="
                f"{hi[d + 1] + 1} (e.g. OpenPCDet-style grid_size[::-1] + [1, 0, 0] for the z axis) or crop the "
                f"points to the grid"
                if hi[d + 1] == int(spatial_shape[d])
                else "enlarge spatial_shape or crop the points to the grid"
            )
            raise ValueError(
                f"{name}[:, {d + 1}] has coordinates outside spatial_shape[{d}]="
                f"{spatial_shape[d]} (max {hi[d + 1]}); {fix}. {_SILENT}"
            )
    if check_duplicates:
        idx = indices.to(torch.int64)
        keys = encode(idx[:, 0], idx[:, 1:], spatial_shape)
        if torch.unique(keys).numel() != keys.numel():
            raise ValueError(
                f"{name} contains duplicate sites ({keys.numel() - torch.unique(keys).numel()} "
                f"repeated); merge them first, e.g. with largekernel3d.sparse.voxelize or "
                f"torch.unique(indices, dim=0, return_inverse=True) and a scatter-mean of features. "
                f"{_SILENT}"
            )
