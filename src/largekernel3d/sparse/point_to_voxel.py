"""Voxelising a bounded point-cloud range (the LiDAR detectors' input step).

A :class:`VoxelGrid` is a box ``[x_min, y_min, z_min, x_max, y_max, z_max]`` cut into voxels of size
``(v_x, v_y, v_z)``::

    grid_size   = round((max - min) / v)                      (n_x, n_y, n_z)
    voxel of p  = floor((p - min) / v)                        (i_x, i_y, i_z), kept when 0 <= i < grid_size
    sparse_shape = [n_z + 1, n_y, n_x]                        (z, y, x: OpenPCDet's shape, one spare z layer)

Sparse tensors of detection networks carry indices ``(batch, z, y, x)`` in the order of ``sparse_shape``.
A BEV feature map after a total stride ``s`` has ``(H, W) = (n_y // s, n_x // s)`` cells of
``(v_x s, v_y s)`` metres.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Sequence, Tuple


def _floats(values: Sequence[float], count: int, name: str) -> Tuple[float, ...]:
    try:
        out = tuple(float(v) for v in values)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a sequence of {count} numbers, got {values!r}") from None
    if len(out) != count:
        raise ValueError(f"{name} must have {count} numbers, got {len(out)}: {values!r}")
    return out


@dataclass(frozen=True)
class VoxelGrid:
    """A point-cloud range cut into voxels (see the module docstring).

    Attributes:
        point_cloud_range: ``(x_min, y_min, z_min, x_max, y_max, z_max)`` in metres.
        voxel_size: ``(v_x, v_y, v_z)`` in metres; each extent must be a whole number of voxels (to 1e-3).
    """

    point_cloud_range: Tuple[float, float, float, float, float, float]
    voxel_size: Tuple[float, float, float]

    def __post_init__(self) -> None:
        pcr = _floats(self.point_cloud_range, 6, "point_cloud_range")
        vs = _floats(self.voxel_size, 3, "voxel_size")
        object.__setattr__(self, "point_cloud_range", pcr)
        object.__setattr__(self, "voxel_size", vs)
        for axis, v in zip("xyz", vs):
            if not v > 0:
                raise ValueError(f"voxel_size along {axis} must be > 0, got {v}")
        for axis in range(3):
            extent = pcr[axis + 3] - pcr[axis]
            if not extent > 0:
                raise ValueError(f"point_cloud_range must have max > min along {'xyz'[axis]}, got {pcr}")
            cells = extent / vs[axis]
            if abs(cells - round(cells)) > 1e-3:
                raise ValueError(f"point_cloud_range extent {extent:g} m along {'xyz'[axis]} is not a whole number "
                                 f"of voxels of {vs[axis]:g} m ({cells:.4f}); adjust the range or the voxel size")

    @property
    def grid_size(self) -> Tuple[int, int, int]:
        """``(n_x, n_y, n_z)`` voxels along x, y, z."""
        pcr, vs = self.point_cloud_range, self.voxel_size
        return tuple(int(round((pcr[a + 3] - pcr[a]) / vs[a])) for a in range(3))  # type: ignore[return-value]

    @property
    def sparse_shape(self) -> List[int]:
        """``[n_z + 1, n_y, n_x]``: the spatial shape of the input sparse tensor (indices ``b, z, y, x``)."""
        nx, ny, nz = self.grid_size
        return [nz + 1, ny, nx]

    def bev_shape(self, stride: int) -> Tuple[int, int]:
        """``(H, W) = (n_y // stride, n_x // stride)``: the BEV map after a total downsampling ``stride``."""
        nx, ny, _ = self.grid_size
        return ny // stride, nx // stride

    def cell_size(self, stride: int) -> Tuple[float, float]:
        """``(v_x stride, v_y stride)``: metres per BEV cell along x and y."""
        return self.voxel_size[0] * stride, self.voxel_size[1] * stride


__all__ = ["VoxelGrid"]
