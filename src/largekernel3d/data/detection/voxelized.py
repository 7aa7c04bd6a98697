"""Frames → augmented, voxelised training samples (the input side of the voxel detectors).

Per frame ``i`` in epoch ``e`` (``rng = numpy.random.default_rng([seed, i, e])``)::

    frame = dataset[i]                                   boxes with fewer than min_points_in_box points dropped
    frame = gt_sampler(frame, rng)                        optional: objects pasted from the ground-truth database
    frame = augmentation(frame, rng)                      optional: flips, rotation, scaling, translation, range
    sample = voxelize_frame(frame, grid, point_features, P, M_max)

so every training sample is a function of ``(seed, i, e)`` (exact resume) and validation samples (no sampler,
no augmentation) are a function of ``i`` alone.
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence

import numpy as np

from ...sparse.point_to_voxel import VoxelGrid
from ..epoch_stream import EpochStream, check_step
from .batch import DetectionSample, voxelize_frame
from .frame import DetectionDataset, LidarFrame

FrameStep = Callable[[LidarFrame, np.random.Generator], LidarFrame]


def drop_sparse_boxes(frame: LidarFrame, min_points: int) -> LidarFrame:
    """``frame`` without the boxes that hold fewer than ``min_points`` of its points (boxes no sensor saw
    cannot be learnt; OpenPCDet's ``filter_by_min_points``). A frame without boxes is returned as it is."""
    if min_points <= 0 or frame.num_boxes == 0:
        return frame
    from ...boxes import points_in_boxes
    from .augment import keep_boxes

    counts = points_in_boxes(frame.xyz(), frame.boxes).sum(axis=0)
    return keep_boxes(frame, np.nonzero(counts >= min_points)[0])


class VoxelizedDetection(EpochStream):
    """A dataset of voxelised (and, for training, augmented) frames: ``self[i]`` is a :class:`DetectionSample`.

    Args:
        dataset: the frames.
        grid: the point-cloud range and voxel size.
        point_features: the point columns fed to the network, by name (``x, y, z`` first).
        max_points_per_voxel, max_voxels: the hard-voxelisation budget.
        augmentation: ``(frame, rng) -> frame`` (e.g. :class:`.augment.DetectionAugmentation`), or ``None``.
        gt_sampler: ``(frame, rng) -> frame`` pasting database objects (:class:`.gt_sampling.GTSampler`), or
            ``None``.
        min_points_in_box: boxes with fewer points are dropped before anything else (0 keeps every box).
        remove_outside_boxes: drop boxes whose centre lies outside the range (training).
        seed: the augmentation stream's seed (module docstring).
    """

    def __init__(
        self,
        dataset: DetectionDataset,
        grid: VoxelGrid,
        point_features: Sequence[str],
        max_points_per_voxel: int,
        max_voxels: int,
        augmentation: Optional[FrameStep] = None,
        gt_sampler: Optional[FrameStep] = None,
        min_points_in_box: int = 0,
        remove_outside_boxes: bool = False,
        seed: int = 0,
    ) -> None:
        check_step(augmentation, "augmentation", "frame")
        check_step(gt_sampler, "gt_sampler", "frame")
        if not isinstance(grid, VoxelGrid):
            raise TypeError(f"grid must be a VoxelGrid, got {type(grid).__name__}")
        super().__init__(dataset, seed)
        self.grid = grid
        self.point_features = tuple(point_features)
        self.max_points_per_voxel = int(max_points_per_voxel)
        self.max_voxels = int(max_voxels)
        self.augmentation = augmentation
        self.gt_sampler = gt_sampler
        self.min_points_in_box = int(min_points_in_box)
        self.remove_outside_boxes = bool(remove_outside_boxes)

    @property
    def frame_names(self):
        return self.dataset.frame_names

    def frame(self, index: int) -> LidarFrame:
        """Frame ``index`` after box filtering, sampling and augmentation (what :meth:`__getitem__` voxelises)."""
        frame = drop_sparse_boxes(self.dataset[index], self.min_points_in_box)
        if self.gt_sampler is None and self.augmentation is None:
            return frame
        rng = self.rng(index)
        if self.gt_sampler is not None:
            frame = self.gt_sampler(frame, rng)
        if self.augmentation is not None:
            frame = self.augmentation(frame, rng)
        return frame

    def __getitem__(self, index: int) -> DetectionSample:
        """Frame ``index`` voxelised. When no box is removed (validation views), the sample's metadata also
        holds the frame's per-box ``difficulty``, ``num_lidar_points`` and ``attributes`` (for the metrics)."""
        frame = self.frame(index)
        sample = voxelize_frame(
            frame,
            self.grid,
            self.point_features,
            self.max_points_per_voxel,
            self.max_voxels,
            remove_outside_boxes=self.remove_outside_boxes,
        )
        if not self.remove_outside_boxes:
            sample.metadata.update(
                difficulty=frame.difficulty, num_lidar_points=frame.num_lidar_points, attributes=frame.attributes
            )
        return sample

    def __repr__(self) -> str:
        return f"VoxelizedDetection({self.dataset!r}, {len(self)} frames, augmented={self.augmentation is not None})"


__all__ = ["VoxelizedDetection", "drop_sparse_boxes", "FrameStep"]
