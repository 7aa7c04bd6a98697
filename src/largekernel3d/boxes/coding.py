"""CenterPoint's box coding on a BEV grid.

A grid with origin ``(o_x, o_y)`` (the corner of cell ``(0, 0)``, e.g. the point-cloud range minimum) and
cell size ``(s_x, s_y)`` (voxel size times the head's stride). A box ``[x, y, z, dx, dy, dz, yaw, (vx, vy)]``
is assigned to the cell holding its centre and regressed relative to it:

    i_x = floor((x - o_x) / s_x),    i_y = floor((y - o_y) / s_y)
    targets = ((x - o_x) / s_x - i_x,  (y - o_y) / s_y - i_y,  z,  log dx,  log dy,  log dz,
               sin yaw,  cos yaw,  (vx,  vy))

The first two targets are the sub-cell offsets in ``[0, 1)``. Decoding inverts it:
``x = (i_x + t_0) s_x + o_x``, ``y = (i_y + t_1) s_y + o_y``, ``dims = exp(t_3..5)``,
``yaw = atan2(t_6, t_7)`` (in ``(-pi, pi]``), velocity copied. Sizes must be positive for the logarithm.
"""

from __future__ import annotations

from typing import Sequence, Tuple

import torch

from ._inputs import ArrayLike, back, check_geometry, check_pair, same_kind, to_tensor


def _grid(origin_xy: Sequence[float], cell_size_xy: Sequence[float]) -> Tuple[Tuple[float, float], Tuple[float, float]]:
    origin = check_pair(origin_xy, "origin_xy")
    cell = check_pair(cell_size_xy, "cell_size_xy")
    if cell[0] <= 0 or cell[1] <= 0:
        raise ValueError(f"cell_size_xy must be positive, got {cell}")
    return origin, cell


def encode_center_boxes(
    boxes: ArrayLike, origin_xy: Sequence[float], cell_size_xy: Sequence[float]
) -> Tuple[ArrayLike, ArrayLike]:
    """Cells and regression targets of boxes on a BEV grid (formulas in the module docstring).

    Args:
        boxes: ``[M, 7]`` or ``[M, 9]`` float32/float64 ``[x, y, z, dx, dy, dz, yaw, (vx, vy)]``
            (torch or numpy), sizes positive.
        origin_xy: ``(o_x, o_y)``, the grid corner in metres.
        cell_size_xy: ``(s_x, s_y)``, positive cell size in metres.

    Returns:
        ``cells`` int64 ``[M, 2]`` = ``(i_x, i_y)`` (not clipped to any grid size; a caller drops cells
        outside its map) and ``targets [M, 8]`` / ``[M, 10]`` in the input dtype:
        ``(off_x, off_y, z, log dx, log dy, log dz, sin yaw, cos yaw, (vx, vy))``.
    """
    tensor, was_numpy = to_tensor(boxes, "boxes")
    check_geometry(tensor, "boxes", 7, exact_cols=(7, 9))
    (origin_x, origin_y), (cell_x, cell_y) = _grid(origin_xy, cell_size_xy)
    grid_x = (tensor[:, 0] - origin_x) / cell_x
    grid_y = (tensor[:, 1] - origin_y) / cell_y
    cell_index = torch.stack((torch.floor(grid_x), torch.floor(grid_y)), dim=-1)
    offset = torch.stack((grid_x, grid_y), dim=-1) - cell_index
    parts = [
        offset,
        tensor[:, 2:3],
        torch.log(tensor[:, 3:6]),
        torch.sin(tensor[:, 6:7]),
        torch.cos(tensor[:, 6:7]),
        tensor[:, 7:9],
    ]
    targets = torch.cat(parts, dim=-1)
    return back(cell_index.long(), was_numpy), back(targets, was_numpy)


def decode_center_boxes(
    cells_xy: ArrayLike, targets: ArrayLike, origin_xy: Sequence[float], cell_size_xy: Sequence[float]
) -> ArrayLike:
    """Boxes from cells and regression targets (the inverse of :func:`encode_center_boxes`).

    Args:
        cells_xy: ``[..., 2]`` cell coordinates ``(i_x, i_y)`` (any real dtype; converted to the targets'
            dtype), e.g. the column / row of heatmap peaks.
        targets: ``[..., 8]`` or ``[..., 10]`` float32/float64 ``(off_x, off_y, z, log dx, log dy, log dz,
            sin yaw, cos yaw, (vx, vy))``, of the same kind and device; leading dimensions match ``cells_xy``.
        origin_xy, cell_size_xy: the grid, as for encoding.

    Returns:
        ``[..., 7]`` or ``[..., 9]`` boxes ``[x, y, z, dx, dy, dz, yaw, (vx, vy)]`` in the targets' dtype,
        ``yaw = atan2(sin, cos)``.
    """
    cell_tensor, cell_numpy = to_tensor(cells_xy, "cells_xy")
    target_tensor, target_numpy = to_tensor(targets, "targets")
    was_numpy = same_kind(targets=(target_tensor, target_numpy), cells_xy=(cell_tensor, cell_numpy))
    check_geometry(target_tensor, "targets", 8, exact_cols=(8, 10), batch_dims=-1)
    if cell_tensor.dtype == torch.bool or cell_tensor.is_complex():
        raise TypeError(f"cells_xy must hold real numbers, got {cell_tensor.dtype}")
    if cell_tensor.shape[:-1] != target_tensor.shape[:-1] or cell_tensor.shape[-1:] != (2,):
        raise ValueError(
            f"cells_xy must have shape {tuple(target_tensor.shape[:-1]) + (2,)} to match targets "
            f"{tuple(target_tensor.shape)}, got {tuple(cell_tensor.shape)}"
        )
    (origin_x, origin_y), (cell_x, cell_y) = _grid(origin_xy, cell_size_xy)
    cells = cell_tensor.to(target_tensor.dtype)
    x = (cells[..., 0:1] + target_tensor[..., 0:1]) * cell_x + origin_x
    y = (cells[..., 1:2] + target_tensor[..., 1:2]) * cell_y + origin_y
    yaw = torch.atan2(target_tensor[..., 6:7], target_tensor[..., 7:8])
    parts = [x, y, target_tensor[..., 2:3], torch.exp(target_tensor[..., 3:6]), yaw, target_tensor[..., 8:10]]
    return back(torch.cat(parts, dim=-1), was_numpy)
