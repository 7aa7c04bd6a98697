"""Voxel feature encoders: the points of a voxel → one feature vector.

:class:`MeanVFE` is OpenPCDet's ``MeanVFE`` (SECOND, CenterPoint, LargeKernel3D): the mean of the stored
points::

    f_j = (1 / max(n_j, 1)) * sum_{i < n_j} voxels[j, i]        n_j = num_points[j]

Only the first ``n_j`` slots are summed, so zero-padded and mean-filled (``empty_mean``) voxels give the
same result; a voxel with ``n_j = 0`` gets zeros. It has no parameters.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class MeanVFE(nn.Module):
    """Mean of each voxel's points (see the module docstring).

    Args:
        num_point_features: ``C``, the point columns (4 for KITTI x, y, z, intensity; 5 for nuScenes with Δt).

    Shapes: ``voxels [M, P, C]``, ``num_points [M]`` (any integer dtype) → ``[M, C]``.
    """

    def __init__(self, num_point_features: int) -> None:
        super().__init__()
        if isinstance(num_point_features, bool) or not isinstance(num_point_features, int) or num_point_features < 1:
            raise ValueError(f"num_point_features must be a positive int, got {num_point_features!r}")
        self.num_point_features = num_point_features

    @property
    def out_channels(self) -> int:
        """``C``: the encoder keeps the point columns."""
        return self.num_point_features

    def get_output_feature_dim(self) -> int:
        """OpenPCDet's name for :attr:`out_channels`."""
        return self.num_point_features

    def forward(self, voxels: Tensor, num_points: Tensor) -> Tensor:
        if not isinstance(voxels, Tensor) or voxels.dim() != 3 or not voxels.is_floating_point():
            raise ValueError(
                f"voxels must be a floating [M, P, C] tensor, got "
                f"{tuple(voxels.shape) if isinstance(voxels, Tensor) else type(voxels).__name__}"
            )
        if voxels.shape[2] != self.num_point_features:
            raise ValueError(
                f"voxels have {voxels.shape[2]} point features but MeanVFE was built with "
                f"num_point_features={self.num_point_features}"
            )
        if not isinstance(num_points, Tensor) or num_points.shape != voxels.shape[:1]:
            raise ValueError(
                f"num_points must be a tensor [M] = [{voxels.shape[0]}], got "
                f"{tuple(num_points.shape) if isinstance(num_points, Tensor) else num_points!r}"
            )
        counts = num_points.to(device=voxels.device, dtype=torch.long).unsqueeze(1)  # [M, 1]
        stored = torch.arange(voxels.shape[1], device=voxels.device).unsqueeze(0) < counts  # [M, P]
        total = (voxels * stored.unsqueeze(2).to(voxels.dtype)).sum(dim=1)
        return total / counts.clamp(min=1).to(voxels.dtype)


__all__ = ["MeanVFE"]
