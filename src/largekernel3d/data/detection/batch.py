"""From a :class:`LidarFrame` to the voxel batch a voxel detector eats.

One frame → :class:`DetectionSample` (:func:`voxelize_frame`): the chosen point columns, hard-voxelised on a
:class:`~largekernel3d.sparse.point_to_voxel.VoxelGrid` (at most ``P`` points per voxel, at most ``M_max``
voxels; see :func:`~largekernel3d.sparse.point_to_voxel.points_to_voxels`), plus the frame's boxes and labels.

Several samples → :class:`DetectionBatch` (:func:`collate_detection`)::

    voxels     = concat_b voxels_b                         [sum M_b, P, C]
    num_points = concat_b num_points_b                     int32 [sum M_b]
    coords     = concat_b [ b | coords_b ]                 int32 [sum M_b, 4]   (batch, z, y, x)
    gt_boxes[b], gt_labels[b]                              per-frame lists ([K_b, 7|9] float32, [K_b] int64)
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Dict, List, Sequence, Tuple, Union

import numpy as np
import torch
from torch import Tensor

from ...sparse.point_to_voxel import VoxelGrid, points_to_voxels, positive_int
from .augment import boxes_in_range_mask
from .frame import LidarFrame


@dataclass
class DetectionSample:
    """One voxelised frame with its ground truth.

    Attributes:
        name: the frame's name.
        voxels: float32 ``[M, P, C]`` the first ``P`` points of each voxel (zero-padded), columns
            ``point_features``.
        coords: int32 ``[M, 3]`` voxel indices ``(z, y, x)`` on the grid (within ``grid.sparse_shape``).
        num_points: int32 ``[M]`` points stored per voxel (``1..P``).
        gt_boxes: float32 ``[K, 7]`` or ``[K, 9]`` boxes (OpenPCDet's LiDAR convention, see ``frame.py``).
        gt_labels: int64 ``[K]`` class ids.
        point_features: names of the ``C`` voxel point columns.
        num_dropped_voxels: occupied voxels the ``max_voxels`` cap left out.
        metadata: the frame's metadata (a shallow copy).
    """

    name: str
    voxels: Tensor
    coords: Tensor
    num_points: Tensor
    gt_boxes: Tensor
    gt_labels: Tensor
    point_features: Tuple[str, ...]
    num_dropped_voxels: int = 0
    metadata: Dict[str, Any] = field(default_factory=dict)

    @property
    def num_voxels(self) -> int:
        return int(self.coords.shape[0])


def select_point_columns(frame: LidarFrame, point_features: Sequence[str]) -> np.ndarray:
    """The columns ``point_features`` (by name, in that order) of ``frame.points``: float32 ``[N, len]``.

    The first three names must be ``x, y, z`` (the voxeliser reads the coordinates from there).
    """
    names = tuple(point_features) if not isinstance(point_features, str) else (point_features,)
    if names[:3] != ("x", "y", "z"):
        raise ValueError(f"point_features must start with 'x', 'y', 'z', got {list(names)}")
    if len(set(names)) != len(names):
        raise ValueError(f"point_features has repeated names: {list(names)}")
    missing = [n for n in names if n not in frame.point_features]
    if missing:
        raise ValueError(
            f"frame {frame.name!r} has no point column(s) {missing}; its columns are {list(frame.point_features)}"
        )
    columns = [frame.point_features.index(n) for n in names]
    if columns == list(range(frame.points.shape[1])):
        return frame.points
    return np.ascontiguousarray(frame.points[:, columns])


def voxelize_frame(
    frame: LidarFrame,
    grid: VoxelGrid,
    point_features: Sequence[str],
    max_points_per_voxel: int,
    max_voxels: int,
    remove_outside_boxes: bool = False,
) -> DetectionSample:
    """Voxelise one frame's points (columns chosen by name) and attach its boxes and labels.

    Args:
        frame: the frame.
        grid: the range and voxel size; points outside the range are dropped.
        point_features: the columns to keep, by name, starting with ``x, y, z`` (e.g.
            ``("x", "y", "z", "intensity")``).
        max_points_per_voxel: ``P``, points kept per voxel (the first ones in the frame's order).
        max_voxels: ``M_max``, voxels kept (in order of their first point; later ones dropped).
        remove_outside_boxes: drop the boxes whose centre lies outside ``grid.point_cloud_range`` (``min <= c <
            max`` on x, y, z; :func:`.augment.boxes_in_range_mask`). OpenPCDet does this for training; keep
            them for evaluation.

    Returns:
        :class:`DetectionSample` (CPU tensors).
    """
    if not isinstance(frame, LidarFrame):
        raise TypeError(f"frame must be a LidarFrame, got {type(frame).__name__}")
    if not isinstance(grid, VoxelGrid):
        raise TypeError(f"grid must be a VoxelGrid, got {type(grid).__name__}")
    names = tuple(point_features) if not isinstance(point_features, str) else (point_features,)
    points = select_point_columns(frame, names)
    vox = points_to_voxels(
        torch.from_numpy(points),
        grid,
        positive_int(max_points_per_voxel, "max_points_per_voxel"),
        positive_int(max_voxels, "max_voxels"),
    )
    boxes, labels = frame.boxes, frame.labels
    if remove_outside_boxes and len(boxes):
        keep = boxes_in_range_mask(boxes, grid.point_cloud_range, use_z=True)
        boxes, labels = boxes[keep], labels[keep]
    return DetectionSample(
        name=frame.name,
        voxels=vox.voxels,
        coords=vox.coords,
        num_points=vox.num_points,
        gt_boxes=torch.from_numpy(np.ascontiguousarray(boxes, dtype=np.float32)),
        gt_labels=torch.from_numpy(np.ascontiguousarray(labels, dtype=np.int64)),
        point_features=names,
        num_dropped_voxels=vox.num_dropped_voxels,
        metadata=dict(frame.metadata),
    )


@dataclass
class DetectionBatch:
    """Voxelised frames batched for a voxel detector (see the module docstring).

    Attributes:
        voxels: ``[sum M_b, P, C]`` points per voxel (zero-padded).
        num_points: int32 ``[sum M_b]``.
        coords: int32 ``[sum M_b, 4]`` ``(batch, z, y, x)``.
        gt_boxes: ``B`` float32 tensors ``[K_b, 7|9]``.
        gt_labels: ``B`` int64 tensors ``[K_b]``.
        batch_size: ``B``.
        names: the ``B`` frame names.
        point_features: names of the ``C`` point columns.
        metadata: the ``B`` frames' metadata.
    """

    voxels: Tensor
    num_points: Tensor
    coords: Tensor
    gt_boxes: List[Tensor]
    gt_labels: List[Tensor]
    batch_size: int
    names: List[str]
    point_features: Tuple[str, ...]
    metadata: List[Dict[str, Any]] = field(default_factory=list)

    @property
    def device(self) -> torch.device:
        return self.voxels.device

    def to(self, device: Union[torch.device, str], non_blocking: bool = False) -> "DetectionBatch":
        """A copy with every tensor on ``device`` (metadata untouched)."""

        def move(t: Tensor) -> Tensor:
            return t.to(device, non_blocking=non_blocking)

        return replace(
            self,
            voxels=move(self.voxels),
            num_points=move(self.num_points),
            coords=move(self.coords),
            gt_boxes=[move(b) for b in self.gt_boxes],
            gt_labels=[move(lb) for lb in self.gt_labels],
        )

    def pin_memory(self) -> "DetectionBatch":
        """A copy in page-locked memory (``DataLoader(pin_memory=True)`` calls this)."""
        return replace(
            self,
            voxels=self.voxels.pin_memory(),
            num_points=self.num_points.pin_memory(),
            coords=self.coords.pin_memory(),
            gt_boxes=[b.pin_memory() for b in self.gt_boxes],
            gt_labels=[lb.pin_memory() for lb in self.gt_labels],
        )


def collate_detection(samples: Sequence[DetectionSample]) -> DetectionBatch:
    """Batch voxelised frames (``DataLoader``'s ``collate_fn``): voxels concatenated, the batch index
    prepended to the coordinates, boxes and labels kept per frame.

    Every sample must have the same point columns and ``P``.
    """
    if isinstance(samples, DetectionSample):
        raise TypeError("collate_detection expects a sequence of DetectionSample, got one sample; wrap it in a list")
    samples = list(samples)
    if not samples:
        raise ValueError("collate_detection needs at least one sample")
    first = samples[0]
    for b, s in enumerate(samples):
        if not isinstance(s, DetectionSample):
            raise TypeError(f"samples[{b}] must be a DetectionSample, got {type(s).__name__}")
        if s.point_features != first.point_features or s.voxels.shape[1:] != first.voxels.shape[1:]:
            raise ValueError(
                f"samples[{b}] ({s.name!r}) has voxels {tuple(s.voxels.shape[1:])} with columns "
                f"{list(s.point_features)} but samples[0] ({first.name!r}) has "
                f"{tuple(first.voxels.shape[1:])} with {list(first.point_features)}; voxelise every "
                f"frame with the same settings"
            )
    device = first.voxels.device
    batch_column = torch.cat(
        [torch.full((s.num_voxels, 1), b, dtype=torch.int32, device=device) for b, s in enumerate(samples)]
    )
    coords = torch.cat([s.coords.to(device=device, dtype=torch.int32) for s in samples], dim=0)
    return DetectionBatch(
        voxels=torch.cat([s.voxels.to(device) for s in samples], dim=0),
        num_points=torch.cat([s.num_points.to(device) for s in samples], dim=0),
        coords=torch.cat([batch_column, coords], dim=1),
        gt_boxes=[s.gt_boxes for s in samples],
        gt_labels=[s.gt_labels for s in samples],
        batch_size=len(samples),
        names=[s.name for s in samples],
        point_features=first.point_features,
        metadata=[s.metadata for s in samples],
    )


__all__ = ["DetectionSample", "DetectionBatch", "select_point_columns", "voxelize_frame", "collate_detection"]
