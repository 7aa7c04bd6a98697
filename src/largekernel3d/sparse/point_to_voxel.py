"""Voxelising a bounded point-cloud range (the LiDAR detectors' input step).

A :class:`VoxelGrid` is a box ``[x_min, y_min, z_min, x_max, y_max, z_max]`` cut into voxels of size
``(v_x, v_y, v_z)``::

    grid_size   = round((max - min) / v)                      (n_x, n_y, n_z)
    voxel of p  = floor((p - min) / v)                        (i_x, i_y, i_z), kept when 0 <= i < grid_size
    sparse_shape = [n_z + 1, n_y, n_x]                        (z, y, x: OpenPCDet's shape, one spare z layer)

Sparse tensors of detection networks carry indices ``(batch, z, y, x)`` in the order of ``sparse_shape``.
A BEV feature map after a total stride ``s`` has ``(H, W) = (n_y // s, n_x // s)`` cells of
``(v_x s, v_y s)`` metres.

Hard voxelisation (:func:`points_to_voxels`, and :class:`PointToVoxel` with spconv 2.x's interface) keeps
at most ``P`` points per voxel and at most ``M_max`` voxels, deterministically::

    voxels are numbered in the order of their first point (input order);
    voxel j holds its first P points in input order, zero-padded:   voxels[j, :num_points[j]]
    num_points[j] = min(P, points in voxel j)
    voxels whose first point comes after M_max other voxels' first points are dropped, with their points;
    points outside the range (or with a NaN coordinate) are dropped.

These are the semantics of spconv's CPU ``PointToVoxel`` (same voxels, same order, same points); the
work is a stable sort of the voxel keys in torch, so it runs on the points' device (CPU or CUDA) and
needs no dense hash table of the grid.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import List, Sequence, Tuple, Union

import numpy as np
import torch
from torch import Tensor


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
        for name, v in zip("xyz", vs):
            if not v > 0:
                raise ValueError(f"voxel_size along {name} must be > 0, got {v}")
        for axis in range(3):
            extent = pcr[axis + 3] - pcr[axis]
            if not extent > 0:
                raise ValueError(f"point_cloud_range must have max > min along {'xyz'[axis]}, got {pcr}")
            cells = extent / vs[axis]
            if abs(cells - round(cells)) > 1e-3:
                raise ValueError(
                    f"point_cloud_range extent {extent:g} m along {'xyz'[axis]} is not a whole number "
                    f"of voxels of {vs[axis]:g} m ({cells:.4f}); adjust the range or the voxel size"
                )

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


@dataclass(frozen=True)
class VoxelizedPoints:
    """The voxels of one point cloud, as a hard (capped) voxeliser returns them.

    Attributes:
        voxels: ``[M, P, C]`` the first ``P`` points of each voxel in input order; slots past
            ``num_points`` hold zeros (or the voxel's mean point with ``empty_mean=True``).
        coords: int32 ``[M, D]`` voxel indices in reversed axis order (``(z, y, x)`` for 3-D).
        num_points: int32 ``[M]`` points stored per voxel, ``1 <= num_points <= P``.
        point_to_voxel: int64 ``[N]`` the voxel row of every input point, ``-1`` for a point outside the
            range or in a voxel dropped by the ``max_voxels`` cap. A point of a full voxel keeps its voxel's
            row although it is not stored in ``voxels``.
        num_occupied: distinct in-range voxels before the cap (``> M`` exactly when voxels were dropped).
    """

    voxels: Tensor
    coords: Tensor
    num_points: Tensor
    point_to_voxel: Tensor
    num_occupied: int

    @property
    def num_voxels(self) -> int:
        """``M``, the number of voxels kept."""
        return int(self.coords.shape[0])

    @property
    def num_dropped_voxels(self) -> int:
        """Occupied voxels that the ``max_voxels`` cap left out."""
        return self.num_occupied - self.num_voxels


def positive_int(value: object, name: str) -> int:
    """``value`` as an int after checking it is an integer ``>= 1`` (``TypeError`` / ``ValueError`` naming ``name``)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be a positive int, got {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")
    return int(value)


def _check_points(points: Union[Tensor, np.ndarray], min_columns: int, name: str = "points") -> Tensor:
    if isinstance(points, np.ndarray):
        points = torch.from_numpy(np.ascontiguousarray(points))
    if not isinstance(points, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor [N, C] (or a numpy array), got {type(points).__name__}")
    if not points.is_floating_point():
        raise TypeError(f"{name} must be floating point, got {points.dtype}; convert with .float()")
    if points.dim() != 2 or points.shape[1] < min_columns:
        raise ValueError(
            f"{name} must have shape [N, C] with C >= {min_columns} (coordinates first), got {tuple(points.shape)}"
        )
    return points


def _hard_voxelize(
    points: Tensor,
    lower: Sequence[float],
    vsize: Sequence[float],
    grid_size: Sequence[int],
    max_points: int,
    max_voxels: int,
    empty_mean: bool,
) -> VoxelizedPoints:
    """The voxeliser behind :class:`PointToVoxel` and :func:`points_to_voxels` (checked arguments).

    ``lower``, ``vsize`` and ``grid_size`` are given per axis in the points' column order (x, y, z, ...);
    the output coordinates come out reversed. The arithmetic is spconv's: bounds and sizes rounded to
    float32, the voxel index ``floor((p - lower) / vsize)`` computed in the points' dtype.
    """
    device, dtype = points.device, points.dtype
    n, channels = points.shape
    ndim = len(vsize)
    lower_t = torch.tensor(lower, dtype=torch.float32).to(device=device, dtype=dtype)
    vsize_t = torch.tensor(vsize, dtype=torch.float32).to(device=device, dtype=dtype)
    grid_t = torch.tensor(grid_size, dtype=dtype, device=device)
    cell_f = torch.floor((points[:, :ndim] - lower_t) / vsize_t)
    inside = ((cell_f >= 0) & (cell_f < grid_t)).all(dim=1)  # NaN coordinates fail both tests
    num_inside = int(inside.sum())
    # row-major key over the reversed axes (z, y, x); points outside the range get the largest key
    cell = torch.where(inside.unsqueeze(1), cell_f, torch.zeros_like(cell_f)).to(torch.int64)
    key = cell[:, ndim - 1]
    for axis in range(ndim - 2, -1, -1):
        key = key * int(grid_size[axis]) + cell[:, axis]
    outside_key = math.prod(int(g) for g in grid_size)
    key = torch.where(inside, key, torch.full_like(key, outside_key))
    # group equal keys; the stable sort keeps each voxel's points in input order, outside points last
    sorted_key, perm = torch.sort(key, stable=True)
    sorted_key, perm = sorted_key[:num_inside], perm[:num_inside]
    is_start = torch.ones_like(sorted_key, dtype=torch.bool)
    is_start[1:] = sorted_key[1:] != sorted_key[:-1]
    starts = torch.nonzero(is_start).squeeze(1)
    num_occupied = int(starts.numel())
    group = torch.cumsum(is_start, dim=0) - 1  # voxel group of each sorted point
    # voxels numbered by their first point: the rank of each group's first input row
    first_row = perm[starts]
    rank = torch.empty_like(first_row)
    rank[torch.argsort(first_row)] = torch.arange(num_occupied, device=device)
    num_kept = min(num_occupied, max_voxels)
    counts = torch.diff(starts, append=torch.tensor([num_inside], device=device))
    slot = torch.arange(num_inside, device=device) - starts[group]
    vid = rank[group]
    store = torch.nonzero((vid < max_voxels) & (slot < max_points)).squeeze(1)

    voxels = points.new_zeros((num_kept * max_points, channels))
    voxels[vid[store] * max_points + slot[store]] = points[perm[store]]
    voxels = voxels.view(num_kept, max_points, channels)
    kept = torch.nonzero(rank < max_voxels).squeeze(1)
    coords = torch.empty((num_kept, ndim), dtype=torch.int32, device=device)
    coords[rank[kept]] = cell[first_row[kept]].flip(1).to(torch.int32)
    num_points = torch.empty(num_kept, dtype=torch.int32, device=device)
    num_points[rank[kept]] = counts[kept].clamp(max=max_points).to(torch.int32)
    point_to_voxel = torch.full((n,), -1, dtype=torch.int64, device=device)
    point_to_voxel[perm] = torch.where(vid < max_voxels, vid, torch.full_like(vid, -1))
    if empty_mean and num_kept > 0:
        mean = voxels.sum(dim=1) / num_points.unsqueeze(1).to(dtype)
        empty = torch.arange(max_points, device=device).unsqueeze(0) >= num_points.unsqueeze(1).long()
        voxels = torch.where(empty.unsqueeze(2), mean.unsqueeze(1), voxels)
    return VoxelizedPoints(
        voxels=voxels, coords=coords, num_points=num_points, point_to_voxel=point_to_voxel, num_occupied=num_occupied
    )


def points_to_voxels(
    points: Union[Tensor, np.ndarray],
    grid: VoxelGrid,
    max_points_per_voxel: int,
    max_voxels: int,
    empty_mean: bool = False,
) -> VoxelizedPoints:
    """Hard-voxelise one point cloud on ``grid`` (see the module docstring for the rules).

    ``(i_x, i_y, i_z) = floor((p_xyz - min) / v)``, the point kept when ``0 <= i < grid.grid_size``;
    voxels numbered by first point, each holding its first ``max_points_per_voxel`` points, at most
    ``max_voxels`` voxels (the later ones dropped; :attr:`VoxelizedPoints.num_dropped_voxels` counts them).

    Args:
        points: ``[N, C]`` floating points, columns ``x, y, z, ...`` (torch tensor on any device, or numpy).
        grid: the range and voxel size.
        max_points_per_voxel: ``P >= 1``.
        max_voxels: ``M_max >= 1``.
        empty_mean: fill each voxel's empty slots with the mean of its stored points instead of zeros.

    Returns:
        :class:`VoxelizedPoints` with ``voxels [M, P, C]`` (the points' dtype), ``coords`` int32 ``[M, 3]``
        as ``(z, y, x)`` (within ``grid.sparse_shape``), ``num_points`` int32 ``[M]``, ``point_to_voxel``
        int64 ``[N]``, on the points' device.
    """
    if not isinstance(grid, VoxelGrid):
        raise TypeError(f"grid must be a VoxelGrid, got {type(grid).__name__}")
    pts = _check_points(points, 3)
    max_points = positive_int(max_points_per_voxel, "max_points_per_voxel")
    max_vox = positive_int(max_voxels, "max_voxels")
    return _hard_voxelize(
        pts, grid.point_cloud_range[:3], grid.voxel_size, grid.grid_size, max_points, max_vox, bool(empty_mean)
    )


class PointToVoxel:
    """spconv 2.x's ``spconv.pytorch.utils.PointToVoxel``, in torch (same arguments, outputs and order).

    ``D = len(vsize_xyz)`` axes (1 to 4); points carry their ``D`` coordinates in their first columns. The
    grid has ``round((max - min) / v)`` voxels per axis (any extent is accepted, as in spconv; use
    :class:`VoxelGrid` for a checked one). Outputs follow the module docstring's rules. With
    ``empty_mean=True`` each voxel's free slots hold that voxel's own mean (spconv 2.3's CPU kernel carries
    its running sum over from one voxel to the next there; the stored points agree).

    Attributes (as spconv names them, in reversed axis order ``z, y, x``): ``vsize``, ``grid_size``,
    ``grid_stride`` (row-major strides of ``grid_size``), ``coors_range`` (``[min..., max...]``); and
    ``ndim``, ``num_point_features``, ``max_num_voxels``, ``max_num_points_per_voxel``, ``device``.

    Args:
        vsize_xyz: voxel size per axis (x, y, z).
        coors_range_xyz: ``[x_min, y_min, z_min, x_max, y_max, z_max]`` (``2 D`` numbers).
        num_point_features: ``C``, the columns every point cloud must have.
        max_num_voxels: ``M_max``; voxels after the first ``M_max`` (by first point) are dropped.
        max_num_points_per_voxel: ``P``; a voxel keeps its first ``P`` points.
        device: kept for spconv compatibility; the work runs on the device of the points given.
    """

    def __init__(
        self,
        vsize_xyz: Sequence[float],
        coors_range_xyz: Sequence[float],
        num_point_features: int,
        max_num_voxels: int,
        max_num_points_per_voxel: int,
        device: Union[torch.device, str] = "cpu",
    ) -> None:
        try:
            vsize = [float(v) for v in vsize_xyz]
            bounds = [float(v) for v in coors_range_xyz]
        except (TypeError, ValueError):
            raise TypeError(
                f"vsize_xyz and coors_range_xyz must be sequences of numbers, got {vsize_xyz!r} and {coors_range_xyz!r}"
            ) from None
        ndim = len(vsize)
        if not 1 <= ndim <= 4:
            raise ValueError(f"vsize_xyz must have 1 to 4 entries, got {ndim}: {vsize_xyz!r}")
        if len(bounds) != 2 * ndim:
            raise ValueError(
                f"coors_range_xyz must have {2 * ndim} numbers (min then max per axis) for {ndim}-D "
                f"voxels, got {len(bounds)}: {coors_range_xyz!r}"
            )
        if not all(math.isfinite(v) and v > 0 for v in vsize):
            raise ValueError(f"vsize_xyz must be finite and positive, got {vsize}")
        # spconv keeps these as float32 and rounds the voxel count in float32
        v32 = np.asarray(vsize, dtype=np.float32)
        lo32, hi32 = np.asarray(bounds[:ndim], dtype=np.float32), np.asarray(bounds[ndim:], dtype=np.float32)
        cells = [int(math.floor(float((hi32[a] - lo32[a]) / v32[a]) + 0.5)) for a in range(ndim)]
        if any(c < 1 for c in cells):
            raise ValueError(
                f"coors_range_xyz {bounds} with vsize_xyz {vsize} gives {cells} voxels per axis; "
                f"every axis needs max > min by at least one voxel"
            )
        if math.prod(cells) >= 2**62:
            raise ValueError(f"the grid of {cells} voxels is too large for int64 voxel keys; use larger voxels")
        self.ndim = ndim
        self.device = torch.device(device)
        self.num_point_features = positive_int(num_point_features, "num_point_features")
        if self.num_point_features < ndim:
            raise ValueError(f"num_point_features ({num_point_features}) must cover the {ndim} coordinates")
        self.max_num_voxels = positive_int(max_num_voxels, "max_num_voxels")
        self.max_num_points_per_voxel = positive_int(max_num_points_per_voxel, "max_num_points_per_voxel")
        self._lower = [float(v) for v in lo32]
        self._vsize = [float(v) for v in v32]
        self._cells = cells
        self.vsize = self._vsize[::-1]
        self.grid_size = cells[::-1]
        self.grid_stride = [math.prod(self.grid_size[a + 1 :]) for a in range(ndim)]
        self.coors_range = self._lower[::-1] + [float(v) for v in hi32][::-1]

    def voxelize(self, pc: Tensor, empty_mean: bool = False) -> VoxelizedPoints:
        """The full result (:class:`VoxelizedPoints`) for points ``pc`` ``[N, num_point_features]``."""
        pts = _check_points(pc, self.ndim, "pc")
        if pts.shape[1] != self.num_point_features:
            raise ValueError(
                f"pc has {pts.shape[1]} columns but this PointToVoxel was built with "
                f"num_point_features={self.num_point_features}"
            )
        return _hard_voxelize(
            pts,
            self._lower,
            self._vsize,
            self._cells,
            self.max_num_points_per_voxel,
            self.max_num_voxels,
            bool(empty_mean),
        )

    def generate_voxel_with_id(
        self, pc: Tensor, clear_voxels: bool = True, empty_mean: bool = False
    ) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        """``(voxels [M, P, C], indices int32 [M, D] (z, y, x), num_per_voxel int32 [M], pc_voxel_id int64 [N])``.

        ``pc_voxel_id[i]`` is the voxel row of point ``i`` or ``-1`` (out of range, or its voxel dropped).
        ``clear_voxels`` is accepted for spconv compatibility: the voxels are always freshly zeroed.
        """
        del clear_voxels
        out = self.voxelize(pc, empty_mean)
        return out.voxels, out.coords, out.num_points, out.point_to_voxel

    def __call__(
        self, pc: Tensor, clear_voxels: bool = True, empty_mean: bool = False
    ) -> Tuple[Tensor, Tensor, Tensor]:
        """``(voxels [M, P, C], indices int32 [M, D] (z, y, x), num_per_voxel int32 [M])`` of points ``pc``."""
        return self.generate_voxel_with_id(pc, clear_voxels, empty_mean)[:3]

    def __repr__(self) -> str:
        return (
            f"PointToVoxel(vsize_xyz={self._vsize}, grid_size_xyz={self._cells}, "
            f"max_num_voxels={self.max_num_voxels}, max_num_points_per_voxel={self.max_num_points_per_voxel})"
        )


__all__ = ["positive_int", "VoxelGrid", "VoxelizedPoints", "points_to_voxels", "PointToVoxel"]
