"""Semantic segmentation of raw points with a trained network: voxelise as in training, run (whole, or in
exact overlapping tiles), optionally average test-time augmentations, carry voxel labels back to points.

Voxelisation (the training pipeline's, :mod:`largekernel3d.data.voxelized`)::

    c_i       = floor((p_i - min_j p_j) / voxel_size)          # voxel of point i
    f[v]      = mean_{i in v} rgb_i - 0.5                      # [M, 3]; rgb in [0, 1], grey 0.5 without colours
    z[v]      = net(f, c)[v]                                   # [M, C] logits (tiled / TTA-averaged)
    label_i   = argmax_c z[c_i, c]

Coordinates are recentred in float64 before anything is cast, so geo-referenced scans keep their precision.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence, Union

import numpy as np
import torch
from torch import nn

from ..sparse.tensor import SparseConvTensor
from ..sparse.voxelize import voxelize
from .receptive_field import receptive_field_radius
from .tiling import plan_tiles, round_up
from .tta import transform_coords, tta_transforms

ALIGN = 16
"""The UNet's coarsest cell in voxels (``2^L``, ``L = 4`` down-sampling steps)."""


@dataclass
class SegPrediction:
    """The result of :meth:`SegmentationPredictor.predict` for ``N`` points and ``M`` voxels.

    Attributes:
        labels: int64 ``[N]`` predicted class per point.
        voxel_labels: int64 ``[M]``; ``labels = voxel_labels[point_to_voxel]``.
        voxel_logits: float32 ``[M, C]`` (averaged over the augmentations with TTA).
        point_to_voxel: int64 ``[N]``.
        class_names: the ``C`` class names.
        num_tiles: network passes per augmentation (1 without tiling).
        num_passes: augmentations run (1 without TTA).
        seconds: wall time of :meth:`~SegmentationPredictor.predict`.
    """

    labels: np.ndarray
    voxel_labels: np.ndarray
    voxel_logits: np.ndarray
    point_to_voxel: np.ndarray
    class_names: List[str]
    num_tiles: int = 1
    num_passes: int = 1
    seconds: float = 0.0

    @property
    def num_voxels(self) -> int:
        return int(self.voxel_labels.shape[0])

    def histogram(self) -> dict:
        """``{class name: points}`` for the classes predicted at least once, most frequent first."""
        counts = np.bincount(self.labels, minlength=len(self.class_names))
        order = np.argsort(-counts, kind="stable")
        return {self.class_names[k]: int(counts[k]) for k in order if counts[k]}


class SegmentationPredictor:
    """Run a segmentation network on point clouds.

    Args:
        model: a :class:`~largekernel3d.models.minkunet.MinkUNet` / LargeKernel3DSeg taking 3 colour features.
        class_names: the ``C`` output classes.
        voxel_size: the training voxel size (metres).
        device: where the network runs (``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"auto"`` or a device).
        tile_size: core edge of the x-y tiles in metres; ``None`` runs the whole scene in one pass unless it
            has more than ``max_voxels`` voxels, then tiles are chosen to stay under that.
        overlap: halo around each tile in metres; ``None`` = the network's receptive-field radius (exact:
            tiled labels equal a single pass). A smaller halo is faster but approximate at tile borders.
        max_voxels: voxel budget of one pass used when ``tile_size`` is ``None``.
        tta: average the logits of the augmentations of :func:`~.tta.tta_transforms` (``tta_rotations``
            quarter-turns about z, each also mirrored when ``tta_mirror``).
        amp: float16 autocast on CUDA.
    """

    task = "seg"

    def __init__(
        self,
        model: nn.Module,
        class_names: Sequence[str],
        voxel_size: float,
        device: Union[str, torch.device] = "cpu",
        tile_size: Optional[float] = None,
        overlap: Optional[float] = None,
        max_voxels: int = 1_500_000,
        tta: bool = False,
        tta_rotations: int = 4,
        tta_mirror: bool = True,
        amp: bool = False,
    ) -> None:
        from ..training.distributed import resolve_device

        if not (isinstance(voxel_size, (int, float)) and np.isfinite(voxel_size) and voxel_size > 0):
            raise ValueError(f"voxel_size must be a positive number of metres, got {voxel_size!r}")
        for name, value in (("tile_size", tile_size), ("overlap", overlap)):
            if value is not None and not (isinstance(value, (int, float)) and np.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be None or a non-negative number of metres, got {value!r}")
        if tile_size is not None and tile_size <= 0:
            raise ValueError(f"tile_size must be positive metres (or None), got {tile_size!r}")
        if isinstance(max_voxels, bool) or not isinstance(max_voxels, int) or max_voxels < 1:
            raise ValueError(f"max_voxels must be a positive int, got {max_voxels!r}")
        self.device = device if isinstance(device, torch.device) else resolve_device(str(device), argument="device")
        self.model = model.to(self.device).eval()
        self.class_names = [str(c) for c in class_names]
        self.voxel_size = float(voxel_size)
        self.receptive_radius = receptive_field_radius(model)
        self.tile_size, self.overlap, self.max_voxels = tile_size, overlap, max_voxels
        self.transforms = tta_transforms(tta_rotations, tta_mirror) if tta else tta_transforms(1, False)
        self.amp = bool(amp)
        self.checkpoint: Optional[Path] = None

    @classmethod
    def from_checkpoint(
        cls, path: Union[str, Path], device: Union[str, torch.device] = "auto", **options
    ) -> "SegmentationPredictor":
        """Rebuild the network of a ``lk3d train seg`` checkpoint; ``options`` as the constructor's."""
        from ..training.checkpoint import load_checkpoint
        from ..training.distributed import resolve_device
        from ..training.trainer import load_trained_model

        dev = device if isinstance(device, torch.device) else resolve_device(str(device), argument="device")
        payload = load_checkpoint(Path(path))
        task = payload["config"].get("task", "seg")
        if task != "seg":
            raise ValueError(f"checkpoint {path} holds a {task!r} model; use DetectionPredictor / Predictor")
        model, payload = load_trained_model(Path(path), payload["config"], dev)
        out = cls(model, payload["class_names"], float(payload["config"]["data"]["voxel_size"]), dev, **options)
        out.checkpoint = Path(path)
        return out

    # -- the network on voxels ---------------------------------------------------------------------------
    def halo_voxels(self) -> int:
        """Tile halo in voxels: the ``overlap`` option, or the receptive-field radius (rounded up to 16)."""
        if self.overlap is None:
            return round_up(self.receptive_radius, ALIGN)
        return round_up(int(np.ceil(self.overlap / self.voxel_size - 1e-9)), ALIGN)

    def tile_voxels(self, coords: np.ndarray) -> Optional[int]:
        """Core edge in voxels for a scene of voxels ``coords``; ``None`` for a single pass."""
        if self.tile_size is not None:
            return round_up(max(1, int(np.ceil(self.tile_size / self.voxel_size - 1e-9))), ALIGN)
        m = coords.shape[0]
        if m <= self.max_voxels:
            return None
        ext = coords[:, :2].max(axis=0).astype(np.float64) + 1
        density = m / float(ext[0] * ext[1])  # voxels per x-y cell (uniform guess)
        crop = np.sqrt(self.max_voxels / density)  # crop edge meeting the budget
        edge = int(crop) - 2 * self.halo_voxels()
        return max(ALIGN, (edge // ALIGN) * ALIGN)

    @torch.no_grad()
    def _forward(self, coords: np.ndarray, features: torch.Tensor) -> torch.Tensor:
        """Logits ``[M, C]`` (float32, CPU) of one pass on int coords ``[M, 3] >= 0``."""
        c = torch.from_numpy(np.ascontiguousarray(coords, dtype=np.int32))
        indices = torch.cat([torch.zeros((c.shape[0], 1), dtype=torch.int32), c], dim=1).to(self.device)
        shape = (c.max(dim=0).values + 1).tolist()
        x = SparseConvTensor(features.to(self.device), indices, shape, 1)
        with torch.autocast(device_type="cuda", dtype=torch.float16, enabled=self.amp and self.device.type == "cuda"):
            out = self.model(x)
        return out.features.float().cpu()

    def voxel_logits(self, coords: np.ndarray, features: torch.Tensor) -> "tuple[torch.Tensor, int]":
        """``(logits [M, C], tiles)`` for voxels ``coords`` (int ``[M, 3] >= 0``) with ``features [M, 3]``:
        one pass, or the tiles of :func:`~.tiling.plan_tiles` keeping each tile's core."""
        tile = self.tile_voxels(coords)
        if tile is None:
            return self._forward(coords, features), 1
        tiles = plan_tiles(coords, tile, self.halo_voxels(), ALIGN)
        logits = torch.empty((coords.shape[0], len(self.class_names)), dtype=torch.float32)
        for t in tiles:
            crop_logits = self._forward(coords[t.crop] - t.shift, features[torch.from_numpy(t.crop)])
            logits[torch.from_numpy(t.crop[t.core])] = crop_logits[torch.from_numpy(t.core)]
        return logits, len(tiles)

    # -- points ------------------------------------------------------------------------------------------
    def voxelize(self, points: np.ndarray, colors: Optional[np.ndarray] = None):
        """``(coords int64 [M, 3], features float32 [M, 3], point_to_voxel [N])`` as in training."""
        pts = np.asarray(points)
        if pts.ndim != 2 or pts.shape[1] < 3 or pts.dtype.kind not in "iuf":
            raise ValueError(f"points must be a real array [N, 3], got {pts.dtype} {pts.shape}")
        if pts.shape[0] == 0:
            raise ValueError("points is empty: nothing to segment")
        pts = pts[:, :3].astype(np.float64)
        if not np.isfinite(pts).all():
            raise ValueError("points contain NaN or inf; drop those rows first")
        if colors is None:
            rgb = np.full((pts.shape[0], 3), 0.5, dtype=np.float32)
        else:
            rgb = np.asarray(colors, dtype=np.float32)
            if rgb.shape != (pts.shape[0], 3):
                raise ValueError(f"features must be [N, 3] colours in [0, 1] (N = {pts.shape[0]}), got {rgb.shape}")
            if rgb.size and (rgb.min() < 0 or rgb.max() > 1):
                raise ValueError(
                    f"features must be colours in [0, 1], found range [{rgb.min():g}, {rgb.max():g}]; "
                    f"divide 8-bit colours by 255"
                )
        local = pts - pts.min(axis=0)
        vox = voxelize(torch.from_numpy(local), self.voxel_size, features=torch.from_numpy(rgb))
        assert vox.features is not None  # voxelize was given features
        feats = (vox.features - 0.5).to(torch.float32)
        return vox.coords.numpy().astype(np.int64), feats, vox.point_to_voxel.numpy()

    def predict(self, points: np.ndarray, features: Optional[np.ndarray] = None) -> SegPrediction:
        """Per-point labels of one cloud.

        Args:
            points: ``[N, >=3]`` coordinates in metres (extra columns ignored), any float dtype.
            features: ``[N, 3]`` RGB colours in ``[0, 1]``; ``None``: mid grey (the network then sees no
                colour, which it was not trained for; predictions rest on geometry alone).

        Returns:
            :class:`SegPrediction`.
        """
        start = time.perf_counter()
        coords, feats, p2v = self.voxelize(points, features)
        if not self.transforms:
            raise ValueError("the predictor has no transforms; pass at least the identity")
        total: Optional[torch.Tensor] = None
        tiles = 1
        for matrix in self.transforms:
            logits, tiles = self.voxel_logits(transform_coords(coords, matrix), feats)
            total = logits if total is None else total + logits
        assert total is not None
        total = total / len(self.transforms)
        voxel_labels = total.argmax(dim=1).numpy().astype(np.int64)
        return SegPrediction(
            labels=voxel_labels[p2v],
            voxel_labels=voxel_labels,
            voxel_logits=total.numpy(),
            point_to_voxel=p2v.astype(np.int64),
            class_names=list(self.class_names),
            num_tiles=tiles,
            num_passes=len(self.transforms),
            seconds=time.perf_counter() - start,
        )


__all__ = ["SegPrediction", "SegmentationPredictor", "ALIGN"]
