"""Point-cloud helpers: points → unique voxels (with the inverse index), and batching of clouds.

Voxelisation of points ``p_i`` (``N × 3``) with voxel size ``s`` (per axis) and origin ``o``::

    c_i = floor((p_i - o) / s)                        integer voxel of point i (x, y, z order)
    V   = unique({c_i})                               M active voxels, sorted by (x, y, z)
    point_to_voxel[i] = j   such that V[j] = c_i      (inverse index, gathers voxel results to points)
    counts[j]   = |{i : point_to_voxel[i] = j}|
    features[j] = (1 / counts[j]) * sum_{i : point_to_voxel[i] = j} f_i    (mean feature)

Everything runs in torch on the points' device (CPU or CUDA); the uniqueness test is a single
``torch.unique`` on int64 keys ``(c_x * S_y + c_y) * S_z + c_z`` with ``S = max(c) + 1``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import Tensor

from .coords import check_key_range
from .tensor import SparseConvTensor

ArrayLike = Union[Tensor, np.ndarray]


@dataclass(frozen=True)
class Voxelization:
    """Result of :func:`voxelize`.

    Attributes:
        coords: int32 ``[M, 3]`` voxel grid coordinates ``>= 0`` (x, y, z), sorted lexicographically.
        features: ``[M, C]`` mean of the features of the points in each voxel (``None`` when no
            features were given); same dtype as the input features.
        point_to_voxel: int64 ``[N]``, the voxel row of each point (``coords[point_to_voxel[i]]`` is
            the voxel of point ``i``), to carry voxel predictions back to the points.
        counts: int64 ``[M]`` number of points per voxel (all ``>= 1``; they sum to ``N``).
        origin: float64 ``[3]`` the world position of the corner of voxel ``(0, 0, 0)``.
        voxel_size: the voxel edge length per axis ``(s_x, s_y, s_z)`` in the points' unit.
    """

    coords: Tensor
    features: Optional[Tensor]
    point_to_voxel: Tensor
    counts: Tensor
    origin: Tensor
    voxel_size: Tuple[float, float, float]

    @property
    def num_voxels(self) -> int:
        return int(self.coords.shape[0])

    @property
    def spatial_shape(self) -> list:
        """``max(coords) + 1`` per axis (``[1, 1, 1]`` for an empty cloud)."""
        if self.coords.shape[0] == 0:
            return [1, 1, 1]
        return [int(v) + 1 for v in self.coords.amax(dim=0).tolist()]

    def voxel_centers(self) -> Tensor:
        """World coordinates ``o + (c + 0.5) * s`` of the voxel centres, float64 ``[M, 3]``."""
        size = torch.tensor(self.voxel_size, dtype=torch.float64, device=self.coords.device)
        return self.origin.to(self.coords.device) + (self.coords.to(torch.float64) + 0.5) * size


def _as_tensor(x: ArrayLike, name: str) -> Tensor:
    if isinstance(x, Tensor):
        return x
    if isinstance(x, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(x))
    raise TypeError(f"{name} must be a torch.Tensor or numpy.ndarray, got {type(x).__name__}")


def _voxel_size3(voxel_size: Union[float, Sequence[float], Tensor, np.ndarray]) -> Tuple[float, float, float]:
    if isinstance(voxel_size, (Tensor, np.ndarray)):
        voxel_size = voxel_size.tolist()
    if isinstance(voxel_size, bool):
        raise TypeError("voxel_size must be a positive float or a sequence of 3 positive floats, got a bool")
    size: Tuple[float, ...]
    if isinstance(voxel_size, (int, float, np.integer, np.floating)):
        size = (float(voxel_size),) * 3
    else:
        try:
            size = tuple(float(v) for v in voxel_size)
        except TypeError:
            raise TypeError(
                f"voxel_size must be a positive float or a sequence of 3 positive floats, got {voxel_size!r}"
            ) from None
        if len(size) != 3:
            raise ValueError(f"voxel_size must have 3 entries (x, y, z), got {len(size)}: {voxel_size!r}")
    if not all(np.isfinite(v) and v > 0 for v in size):
        raise ValueError(f"voxel_size must be finite and positive on every axis, got {size}")
    return size[0], size[1], size[2]


def voxelize(
    points: ArrayLike,
    voxel_size: Union[float, Sequence[float]],
    features: Optional[ArrayLike] = None,
    origin: Optional[Sequence[float]] = None,
) -> Voxelization:
    """Quantise a point cloud into unique voxels with mean features and the point → voxel index.

    ``c_i = floor((p_i - o) / s)``; voxels are the unique ``c_i`` sorted by (x, y, z); voxel features
    are the means of their points' features (see the module docstring for the full definition).

    Args:
        points: ``[N, 3]`` floating coordinates (torch tensor on any device, or numpy array).
        voxel_size: edge length ``s`` (one float, or one per axis), ``> 0``.
        features: optional ``[N, C]`` floating per-point features, averaged per voxel.
        origin: corner ``o`` of voxel ``(0, 0, 0)``; defaults to the per-axis minimum of the points,
            so that coordinates start at 0. Points below a given origin are an error.

    Returns:
        :class:`Voxelization` on the device of ``points``.

    Raises:
        TypeError: non-floating points/features, wrong container types.
        ValueError: wrong shapes, non-finite values, non-positive voxel size, mismatched rows, points
            below ``origin``, or a grid too large for int64 keys.
    """
    pts = _as_tensor(points, "points")
    if not pts.is_floating_point():
        raise TypeError(f"points must be floating point, got {pts.dtype}; convert with .float()")
    if pts.dim() != 2 or pts.shape[1] != 3:
        raise ValueError(f"points must have shape [N, 3], got {tuple(pts.shape)}")
    size = _voxel_size3(voxel_size)
    device = pts.device
    feats: Optional[Tensor] = None
    if features is not None:
        feats = _as_tensor(features, "features")
        if not feats.is_floating_point():
            raise TypeError(f"features must be floating point, got {feats.dtype}; convert with .float()")
        if feats.dim() != 2:
            raise ValueError(f"features must have shape [N, C], got {tuple(feats.shape)}")
        if feats.shape[0] != pts.shape[0]:
            raise ValueError(
                f"features has {feats.shape[0]} rows but points has {pts.shape[0]}; give one feature row per point"
            )
        if feats.device != device:
            raise ValueError(f"features are on {feats.device} but points on {device}; move both to one device")
        if not bool(torch.isfinite(feats).all()):
            raise ValueError("features contain NaN or inf values; clean them before voxelising")
    if not bool(torch.isfinite(pts).all()):
        bad = int((~torch.isfinite(pts)).any(dim=1).sum())
        raise ValueError(f"points contain {bad} rows with NaN or inf coordinates; drop them before voxelising")

    pts64 = pts.to(torch.float64)
    if origin is None:
        org = pts64.amin(dim=0) if pts.shape[0] > 0 else torch.zeros(3, dtype=torch.float64, device=device)
    else:
        org = torch.as_tensor(origin, dtype=torch.float64).to(device)
        if org.shape != (3,):
            raise ValueError(f"origin must have 3 entries (x, y, z), got shape {tuple(org.shape)}")
        if not bool(torch.isfinite(org).all()):
            raise ValueError(f"origin must be finite, got {org.tolist()}")
    size_t = torch.tensor(size, dtype=torch.float64, device=device)
    num_channels = 0 if feats is None else feats.shape[1]

    if pts.shape[0] == 0:
        empty_feats = None if feats is None else feats.new_zeros((0, num_channels))
        return Voxelization(
            coords=torch.zeros((0, 3), dtype=torch.int32, device=device),
            features=empty_feats,
            point_to_voxel=torch.zeros(0, dtype=torch.int64, device=device),
            counts=torch.zeros(0, dtype=torch.int64, device=device),
            origin=org,
            voxel_size=size,
        )

    cell = torch.floor((pts64 - org) / size_t)
    lo = cell.amin(dim=0)
    if bool((lo < 0).any()):
        raise ValueError(
            f"points lie below origin={org.tolist()} (minimum voxel coordinate "
            f"{lo.tolist()}); pass origin=None or an origin <= points.min(axis=0)"
        )
    hi = cell.amax(dim=0)
    if bool((hi >= 2**31 - 1).any()):
        raise ValueError(
            f"voxel coordinates up to {hi.tolist()} do not fit int32; use a larger voxel_size or crop the cloud"
        )
    shape = [int(v) + 1 for v in hi.tolist()]
    check_key_range(shape, 1)
    cell = cell.to(torch.int64)
    keys = (cell[:, 0] * shape[1] + cell[:, 1]) * shape[2] + cell[:, 2]
    ukeys, inverse, counts = torch.unique(keys, sorted=True, return_inverse=True, return_counts=True)
    z = torch.remainder(ukeys, shape[2])
    rest = torch.div(ukeys, shape[2], rounding_mode="floor")
    y = torch.remainder(rest, shape[1])
    x = torch.div(rest, shape[1], rounding_mode="floor")
    coords = torch.stack([x, y, z], dim=1).to(torch.int32)

    mean = None
    if feats is not None:
        acc_dtype = torch.float64 if feats.dtype == torch.float64 else torch.float32
        acc = torch.zeros((ukeys.shape[0], num_channels), dtype=acc_dtype, device=device)
        acc.index_add_(0, inverse, feats.to(acc_dtype))
        mean = (acc / counts.unsqueeze(1).to(acc_dtype)).to(feats.dtype)
    return Voxelization(
        coords=coords, features=mean, point_to_voxel=inverse, counts=counts, origin=org, voxel_size=size
    )


def batch_sparse(
    coords_list: Sequence[ArrayLike], features_list: Sequence[ArrayLike], spatial_shape: Optional[Sequence[int]] = None
) -> SparseConvTensor:
    """Concatenate several voxelised clouds into one :class:`SparseConvTensor`.

    Element ``b`` contributes rows ``[b, c_0, ..., c_{D-1}]`` (batch index first) with its features::

        indices  = concat_b [ b * 1 | coords_b ]           int32 [sum M_b, 1 + D]
        features = concat_b features_b                      [sum M_b, C]
        spatial_shape = max_b max(coords_b) + 1 per axis    (when not given)

    Args:
        coords_list: ``B`` integer arrays ``[M_b, D]`` with coordinates ``>= 0`` and no duplicates
            within one element (e.g. :attr:`Voxelization.coords`).
        features_list: ``B`` floating arrays ``[M_b, C]`` (same ``C``, dtype and device).
        spatial_shape: grid size per axis; defaults to the per-axis maximum plus one.

    Returns:
        ``SparseConvTensor(features, indices, spatial_shape, batch_size=B)`` (validated: in range,
        no duplicate sites).
    """
    if isinstance(coords_list, (Tensor, np.ndarray)) or isinstance(features_list, (Tensor, np.ndarray)):
        raise TypeError("coords_list and features_list must be lists of per-cloud arrays, not one array")
    coords_list = list(coords_list)
    features_list = list(features_list)
    if len(coords_list) == 0:
        raise ValueError("batch_sparse needs at least one cloud; coords_list is empty")
    if len(coords_list) != len(features_list):
        raise ValueError(f"coords_list has {len(coords_list)} clouds but features_list has {len(features_list)}")
    coords_t = [_as_tensor(c, f"coords_list[{b}]") for b, c in enumerate(coords_list)]
    feats_t = [_as_tensor(f, f"features_list[{b}]") for b, f in enumerate(features_list)]
    ndim = coords_t[0].shape[1] if coords_t[0].dim() == 2 else -1
    for b, (c, f) in enumerate(zip(coords_t, feats_t)):
        if c.dtype not in (torch.int32, torch.int64, torch.int16, torch.uint8, torch.int8):
            raise TypeError(f"coords_list[{b}] must be an integer array, got {c.dtype}")
        if c.dim() != 2 or c.shape[1] != ndim or ndim < 1:
            raise ValueError(
                f"coords_list[{b}] must have shape [M, D] with the same D for every cloud, "
                f"got {tuple(c.shape)} (first cloud has D={ndim})"
            )
        if not f.is_floating_point():
            raise TypeError(f"features_list[{b}] must be floating point, got {f.dtype}; convert with .float()")
        if f.dim() != 2 or f.shape[0] != c.shape[0]:
            raise ValueError(
                f"features_list[{b}] must have shape [M, C] with M = {c.shape[0]} rows "
                f"(one per coordinate row), got {tuple(f.shape)}"
            )
        if f.shape[1] != feats_t[0].shape[1] or f.dtype != feats_t[0].dtype:
            raise ValueError(
                f"features_list[{b}] is {f.dtype} with {f.shape[1]} channels but "
                f"features_list[0] is {feats_t[0].dtype} with {feats_t[0].shape[1]}; they must agree"
            )
        if c.device != feats_t[0].device or f.device != feats_t[0].device:
            raise ValueError(
                f"cloud {b} is on {c.device}/{f.device} but features_list[0] on {feats_t[0].device}; "
                f"move all clouds to one device"
            )
        if c.shape[0] > 0 and int(c.min()) < 0:
            raise ValueError(
                f"coords_list[{b}] has negative coordinates (min {int(c.min())}); shift them to start at 0"
            )
    device = feats_t[0].device
    batch_cols = [torch.full((c.shape[0], 1), b, dtype=torch.int64, device=device) for b, c in enumerate(coords_t)]
    coords_cat = torch.cat([c.to(device=device, dtype=torch.int64) for c in coords_t], dim=0)
    indices = torch.cat([torch.cat(batch_cols, dim=0), coords_cat], dim=1)
    features = torch.cat(feats_t, dim=0)
    if spatial_shape is None:
        if coords_cat.shape[0] == 0:
            shape = [1] * ndim
        else:
            shape = [int(v) + 1 for v in coords_cat.amax(dim=0).tolist()]
    else:
        shape = [int(s) for s in spatial_shape]
        if len(shape) != ndim:
            raise ValueError(f"spatial_shape has {len(shape)} axes but the coordinates have {ndim}")
    if any(s >= 2**31 for s in shape):
        raise ValueError(f"spatial_shape {shape} does not fit int32 indices; use a larger voxel size")
    return SparseConvTensor(features, indices.to(torch.int32), shape, len(coords_t))
