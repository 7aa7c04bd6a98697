"""Scenes → voxelised training samples → batches (the input side of the segmentation networks).

Per scene (after augmentation)::

    vox = voxelize(points, voxel_size, features=colors)          # origin = per-axis minimum
    features[j] = mean_{i in voxel j} colors[i] - 0.5             # IN_CHANNELS = 3, centred on 0
    labels[j]   = argmax_c |{i in voxel j : label_i = c}|          # ignore excluded; ties -> lowest c;
                                                                  # IGNORE_INDEX when no labelled point
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional, Sequence, Union

import numpy as np
import torch
from torch import Tensor

from ..sparse.tensor import SparseConvTensor
from ..sparse.voxelize import batch_sparse, voxelize
from .epoch_stream import EpochStream, check_step
from .scene import IGNORE_INDEX, PointCloudScene, SegmentationDataset
from .transforms import Transform

IN_CHANNELS = 3
"""Number of input feature channels of a :class:`SegSample` (RGB colour minus 0.5)."""


@dataclass
class SegSample:
    """One voxelised scene.

    Attributes:
        name: scene name.
        coords: int32 ``[M, 3]`` voxel coordinates (x, y, z), ``>= 0``.
        features: float32 ``[M, 3]`` mean voxel colour minus 0.5.
        labels: int64 ``[M]`` majority label per voxel (``IGNORE_INDEX`` where no labelled point).
        point_to_voxel: int64 ``[N]`` voxel row of each (augmented) point.
        point_labels: int64 ``[N]`` per-point labels (all ``IGNORE_INDEX`` for unlabelled scenes).
        points: float32 ``[N, 3]`` the augmented points.
    """

    name: str
    coords: Tensor
    features: Tensor
    labels: Tensor
    point_to_voxel: Tensor
    point_labels: Tensor
    points: Tensor

    @property
    def num_voxels(self) -> int:
        return int(self.coords.shape[0])


def majority_labels(point_to_voxel: Tensor, point_labels: Tensor, num_voxels: int, num_classes: int) -> Tensor:
    """Per-voxel majority label: ``argmax_c count[j, c]`` over labelled points (ties → lowest ``c``),
    ``IGNORE_INDEX`` for voxels without a labelled point. Returns int64 ``[num_voxels]``."""
    valid = point_labels != IGNORE_INDEX
    if bool(valid.any()) and (int(point_labels[valid].min()) < 0 or int(point_labels[valid].max()) >= num_classes):
        raise ValueError(
            f"point labels must lie in [0, {num_classes}) or be IGNORE_INDEX={IGNORE_INDEX}, found "
            f"range [{int(point_labels[valid].min())}, {int(point_labels[valid].max())}]"
        )
    flat = point_to_voxel[valid] * num_classes + point_labels[valid]
    counts = torch.bincount(flat, minlength=num_voxels * num_classes).view(num_voxels, num_classes)
    labels = counts.argmax(dim=1)
    labels[counts.sum(dim=1) == 0] = IGNORE_INDEX
    return labels


def voxelize_scene(scene: PointCloudScene, voxel_size: float, num_classes: int) -> SegSample:
    """Voxelise one scene into a :class:`SegSample` (see the module docstring for the definitions)."""
    if scene.num_points == 0:
        raise ValueError(f"scene {scene.name!r} has no points; it cannot be voxelised")
    points = torch.from_numpy(scene.points)
    vox = voxelize(points, voxel_size, features=torch.from_numpy(scene.colors))
    if scene.labels is None:
        point_labels = torch.full((scene.num_points,), IGNORE_INDEX, dtype=torch.int64)
    else:
        point_labels = torch.from_numpy(scene.labels)
    labels = majority_labels(vox.point_to_voxel, point_labels, vox.num_voxels, num_classes)
    return SegSample(
        name=scene.name,
        coords=vox.coords,
        features=(vox.features - 0.5).to(torch.float32),
        labels=labels,
        point_to_voxel=vox.point_to_voxel,
        point_labels=point_labels,
        points=points,
    )


class VoxelizedSegmentation(EpochStream):
    """A dataset of voxelised, augmented scenes: ``self[i]`` is a :class:`SegSample`.

    The augmentation of scene ``i`` in epoch ``e`` uses ``numpy.random.default_rng([seed, i, e])``:
    reproducible, different per scene and per epoch (call :meth:`set_epoch` at each epoch start).
    Works with ``torch.utils.data.DataLoader`` (use ``collate_fn=collate_segmentation``).
    """

    def __init__(
        self, dataset: SegmentationDataset, voxel_size: float, transforms: Optional[Transform] = None, seed: int = 0
    ) -> None:
        if not (isinstance(voxel_size, (int, float)) and np.isfinite(voxel_size) and voxel_size > 0):
            raise ValueError(f"voxel_size must be a positive number of metres, got {voxel_size!r}")
        check_step(transforms, "transforms", "scene")
        if dataset.num_classes <= 0:
            raise ValueError(f"dataset {dataset!r} declares no classes")
        super().__init__(dataset, seed)
        self.voxel_size = float(voxel_size)
        self.transforms = transforms

    @property
    def num_classes(self) -> int:
        return self.dataset.num_classes

    def __getitem__(self, index: int) -> SegSample:
        scene = self.dataset[index]
        if self.transforms is not None:
            scene = self.transforms(scene, self.rng(int(index) % len(self)))
        return voxelize_scene(scene, self.voxel_size, self.num_classes)


@dataclass
class SegBatch:
    """A batch of voxelised scenes.

    Attributes:
        indices: int32 ``[sum M_b, 4]`` rows ``(b, x, y, z)``.
        features: float32 ``[sum M_b, 3]``.
        labels: int64 ``[sum M_b]``.
        spatial_shape: grid size ``[S_x, S_y, S_z]`` covering every sample.
        batch_size: ``B``.
        point_to_voxel: per sample, int64 ``[N_b]`` voxel row *within that sample*.
        point_labels: per sample, int64 ``[N_b]``.
        names: per sample, the scene name.
        voxel_offsets: ``B + 1`` cumulative offsets; sample ``b`` owns rows
            ``voxel_offsets[b]:voxel_offsets[b + 1]``, so its point predictions are
            ``voxel_pred[voxel_offsets[b] + point_to_voxel[b]]``.
    """

    indices: Tensor
    features: Tensor
    labels: Tensor
    spatial_shape: List[int]
    batch_size: int
    point_to_voxel: List[Tensor] = field(default_factory=list)
    point_labels: List[Tensor] = field(default_factory=list)
    names: List[str] = field(default_factory=list)
    voxel_offsets: List[int] = field(default_factory=list)

    def to(self, device: Union[str, torch.device], non_blocking: bool = False) -> "SegBatch":
        """A copy with every tensor on ``device``."""

        def mv(t: Tensor) -> Tensor:
            return t.to(device, non_blocking=non_blocking)

        return SegBatch(
            indices=mv(self.indices),
            features=mv(self.features),
            labels=mv(self.labels),
            spatial_shape=list(self.spatial_shape),
            batch_size=self.batch_size,
            point_to_voxel=[mv(t) for t in self.point_to_voxel],
            point_labels=[mv(t) for t in self.point_labels],
            names=list(self.names),
            voxel_offsets=list(self.voxel_offsets),
        )

    def to_sparse_tensor(self, device: Optional[Union[str, torch.device]] = None) -> SparseConvTensor:
        """``SparseConvTensor(features, indices, spatial_shape, batch_size)`` (on ``device`` if given)."""
        feats, idx = self.features, self.indices
        if device is not None:
            feats, idx = feats.to(device), idx.to(device)
        return SparseConvTensor(feats, idx, self.spatial_shape, self.batch_size)

    def point_predictions(self, voxel_values: Tensor) -> List[Tensor]:
        """Carry per-voxel values ``[sum M_b, ...]`` back to the points of each sample."""
        return [
            voxel_values[self.voxel_offsets[b] + p2v.to(voxel_values.device)]
            for b, p2v in enumerate(self.point_to_voxel)
        ]


def collate_segmentation(samples: Sequence[SegSample]) -> SegBatch:
    """Concatenate samples into a :class:`SegBatch` (batch index first in ``indices``)."""
    samples = list(samples)
    if not samples:
        raise ValueError("collate_segmentation needs at least one sample")
    for s in samples:
        if not isinstance(s, SegSample):
            raise TypeError(f"collate_segmentation expects SegSample items, got {type(s).__name__}")
    st = batch_sparse([s.coords for s in samples], [s.features for s in samples])
    offsets = np.concatenate([[0], np.cumsum([s.num_voxels for s in samples])]).tolist()
    return SegBatch(
        indices=st.indices,
        features=st.features,
        labels=torch.cat([s.labels for s in samples]),
        spatial_shape=list(st.spatial_shape),
        batch_size=len(samples),
        point_to_voxel=[s.point_to_voxel for s in samples],
        point_labels=[s.point_labels for s in samples],
        names=[s.name for s in samples],
        voxel_offsets=[int(o) for o in offsets],
    )
