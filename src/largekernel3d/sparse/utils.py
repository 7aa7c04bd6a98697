"""The names of ``spconv.pytorch.utils``: ``PointToVoxel`` and ``gather_features_by_pc_voxel_id``, so that
``from spconv.pytorch.utils import ...`` ports as ``from largekernel3d.sparse.utils import ...``."""

from __future__ import annotations

from typing import Union

import torch
from torch import Tensor

from .point_to_voxel import PointToVoxel


def gather_features_by_pc_voxel_id(
    seg_res_features: Tensor, pc_voxel_id: Tensor, invalid_value: Union[int, float] = 0
) -> Tensor:
    """Per-point rows of per-voxel features: ``out[i] = seg_res_features[pc_voxel_id[i]]``, or ``invalid_value``
    in every channel where ``pc_voxel_id[i] == -1`` (a point outside the grid or in a dropped voxel, as
    :meth:`PointToVoxel.generate_voxel_with_id` marks it).

    Args:
        seg_res_features: ``[M, C]`` features of the ``M`` voxels.
        pc_voxel_id: ``[N]`` integer voxel row of every point, ``-1`` for none.
        invalid_value: fill value of the points without a voxel.

    Returns:
        ``[N, C]`` (dtype and device of ``seg_res_features``).
    """
    if not isinstance(seg_res_features, Tensor) or seg_res_features.dim() != 2:
        raise ValueError(
            f"seg_res_features must be a [M, C] tensor, got "
            f"{getattr(seg_res_features, 'shape', type(seg_res_features).__name__)}"
        )
    if not isinstance(pc_voxel_id, Tensor) or pc_voxel_id.dim() != 1 or pc_voxel_id.is_floating_point():
        raise ValueError(
            f"pc_voxel_id must be a 1-D integer tensor, got {getattr(pc_voxel_id, 'shape', type(pc_voxel_id).__name__)}"
        )
    ids = pc_voxel_id.to(device=seg_res_features.device, dtype=torch.int64)
    m = seg_res_features.shape[0]
    if ids.numel() and (int(ids.min()) < -1 or int(ids.max()) >= m):
        raise ValueError(
            f"pc_voxel_id values must lie in [-1, {m}) for {m} voxel rows, found {int(ids.min())} .. {int(ids.max())}"
        )
    valid = ids >= 0
    out = seg_res_features.new_full((ids.shape[0], seg_res_features.shape[1]), invalid_value)
    out[valid] = seg_res_features[ids[valid]]
    return out


__all__ = ["PointToVoxel", "gather_features_by_pc_voxel_id"]
