"""The networks and inputs the GPU check and the training benchmark run: a ScanNet scene at 2 cm (or a
generated indoor scene of as many points) for LargeKernel3D-Seg and MinkUNet34C, and the shipped PandaSet
CenterPoint configs (on a PandaSet frame, or on a synthetic LiDAR frame with the same settings) for the
VoxelResBackBone8x and LargeKernel3D detectors. Everything is built through the library's public API and its
training setup (``largekernel3d.training.setup`` / ``det_setup``), as the trainers build it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import nn

from largekernel3d import data as D
from largekernel3d.models import build_model

SEG_VOXEL = 0.02
SEG_CLASSES = 20
SCANNET_SUBDIR = "scannet/votenet_50k"
SCANNET_SCENE = "scene0000_00"
SEG_POINTS = 50_000
"""Points of the generated indoor scene used when the ScanNet sample is absent (the sample's count)."""

LK_SEG, MINKUNET = "LargeKernel3D-Seg", "MinkUNet34C"
SEG_NETWORKS: Mapping[str, Tuple[str, Dict[str, Any]]] = {
    LK_SEG: ("paper_scannet", {"name": "largekernel3d_seg"}),
    MINKUNET: ("minkunet34c_scannet", {"name": "minkunet34c"}),
}
"""label -> (shipped run config, model config without channels / classes)."""

DET_VOXELRES, DET_LK = "centerpoint_voxelres", "centerpoint_largekernel3d"
DET_CONFIGS: Mapping[str, str] = {
    DET_VOXELRES: "pandaset_centerpoint_voxelres",
    DET_LK: "pandaset_centerpoint_largekernel3d",
}
SYNTHETIC_TASKS = "[[Car], [Truck], [Pedestrian, Cyclist]]"
TINY_RANGE = "[-6.4, -6.4, -2.0, 6.4, 6.4, 6.0]"


# ------------------------------------------------------------------------------------------------
# segmentation
# ------------------------------------------------------------------------------------------------


@dataclass
class SegScene:
    """One point-cloud scene and a line saying where it comes from."""

    scene: D.PointCloudScene
    source: str


def load_seg_scene(
    data_root: Optional[Path],
    points: int = SEG_POINTS,
    crop_m: Optional[float] = None,
    keep_fraction: Optional[float] = None,
) -> SegScene:
    """``data_root/scannet/votenet_50k/scene0000_00`` when it exists, else a generated indoor scene of
    ``points`` points; optionally cropped to a ``crop_m`` × ``crop_m`` column from the scene's x/y minimum, then
    to the ``keep_fraction`` of its points with the smallest x (a scene of the same density, fewer voxels)."""
    folder = None if data_root is None else Path(data_root) / SCANNET_SUBDIR
    if folder is not None and folder.is_dir():
        scene = D.ScanNetDataset(folder, scenes=[SCANNET_SCENE])[0]
        source = f"ScanNet {SCANNET_SCENE} (votenet_50k, {scene.num_points:,} points)"
    else:
        scene = D.GeneratedIndoorDataset(1, seed=0, points_per_scene=points)[0]
        source = f"generated indoor scene ({scene.num_points:,} points; no ScanNet sample under {data_root})"
    if crop_m is not None:
        lo = scene.points[:, :2].min(axis=0)
        scene = _subset(scene, ((scene.points[:, :2] - lo) < crop_m).all(axis=1))
        source += f", cropped to a {crop_m:g} m × {crop_m:g} m column ({scene.num_points:,} points)"
    if keep_fraction is not None and keep_fraction < 1.0:
        scene = _subset(scene, scene.points[:, 0] <= np.quantile(scene.points[:, 0], keep_fraction))
        source += f", the {keep_fraction:.0%} of its points with the smallest x ({scene.num_points:,} points)"
    return SegScene(scene, source)


def _subset(scene: D.PointCloudScene, keep: np.ndarray) -> D.PointCloudScene:
    labels = None if scene.labels is None else scene.labels[keep]
    return D.PointCloudScene(scene.name, scene.points[keep], scene.colors[keep], labels)


def seg_batch(scene: SegScene, voxel_size: float = SEG_VOXEL) -> D.SegBatch:
    """The scene voxelised (no augmentation) as a batch of one."""
    return D.collate_segmentation([D.voxelize_scene(scene.scene, voxel_size, SEG_CLASSES)])


def build_seg_network(label: str, backend=None, plain: bool = False) -> nn.Module:
    """``label`` of :data:`SEG_NETWORKS` (``plain``: LargeKernel3D-Seg with plain 7³ convs, what an engine
    without SW-LK runs), for the scene's channels and 20 classes; ``backend``: ``spconv.pytorch`` or ``None``."""
    config = dict(SEG_NETWORKS[label][1], in_channels=D.IN_CHANNELS, num_classes=SEG_CLASSES)
    if plain:
        config["stage_conv_types"] = "plain"
    return build_model(config, backend=backend)


def seg_run_config(label: str) -> Dict[str, Any]:
    """The shipped run config of ``label`` (its optimiser, scheduler and augmentation)."""
    from largekernel3d.cli.run_configs import load_run_config

    return load_run_config(SEG_NETWORKS[label][0], task="seg")


def seg_loss(model: nn.Module, batch: D.SegBatch, tensor: Callable[[D.SegBatch], Any]) -> torch.Tensor:
    """Cross-entropy of the voxel logits on the voxel labels (``tensor`` builds the network's input)."""
    logits = model(tensor(batch)).features
    return nn.functional.cross_entropy(logits.float(), batch.labels, ignore_index=D.IGNORE_INDEX)


# ------------------------------------------------------------------------------------------------
# detection
# ------------------------------------------------------------------------------------------------


def det_overrides(pandaset_root: Optional[Path], tiny: bool = False) -> Tuple[List[str], str]:
    """``--set`` overrides of the shipped PandaSet configs and a line naming the data: the PandaSet sample
    when ``pandaset_root`` is a folder, else one synthetic LiDAR frame (64 beams, the synthetic classes in
    three tasks) with the same grid and network; ``tiny`` shrinks the range to ±6.4 m and the LiDAR to 16
    beams (the CPU dry run)."""
    if pandaset_root is not None and Path(pandaset_root).is_dir() and not tiny:
        return [f"data.root={pandaset_root}"], f"PandaSet sample ({pandaset_root}), first training frame"
    sets = [
        "data.dataset=synthetic",
        "data.num_train_frames=1",
        "data.num_val_frames=1",
        f"data.synthetic_beams={16 if tiny else 64}",
        f"model.tasks={SYNTHETIC_TASKS}",
    ]
    if tiny:
        sets.append(f"data.point_cloud_range={TINY_RANGE}")
    return sets, f"one synthetic LiDAR frame ({16 if tiny else 64} beams{', ±6.4 m' if tiny else ''})"


@dataclass
class DetSetup:
    """A detector built by the training setup, its voxelised training frames, optimiser pieces and config."""

    name: str
    cfg: Dict[str, Any]
    model: nn.Module
    data: Any
    class_names: Tuple[str, ...]

    def batch(self, index: int = 0):
        """The training batch of frame ``index`` (augmentation + voxelisation + collate)."""
        from largekernel3d.data.detection import collate_detection

        return collate_detection([self.data[index]])

    def describe(self) -> str:
        m = self.cfg["model"]
        extra = "".join(f", {k} {m[k]}" for k in ("backbone_preset",) if m.get(k))
        return (
            f"`{DET_CONFIGS[self.name]}` ({m['name']}{extra}, {sum(p.numel() for p in self.model.parameters()):,} "
            f"parameters, voxel {self.cfg['data']['voxel_size']} m, range {self.cfg['data']['point_cloud_range']})"
        )


def build_det(name: str, overrides: Sequence[str], seed_offset: int = 0) -> DetSetup:
    """The detector ``name`` (a key of :data:`DET_CONFIGS`) as ``lk3d train det`` builds it from its shipped
    config plus ``overrides``, in train mode."""
    from largekernel3d.cli.run_configs import load_run_config
    from largekernel3d.training import det_setup

    cfg = load_run_config(DET_CONFIGS[name], list(overrides), task="det")
    split = det_setup.build_frame_split(cfg)
    data = det_setup.voxelize(split.train, cfg, train=True)
    torch.manual_seed(int(cfg["seed"]) + seed_offset)
    model = det_setup.build_network(cfg, list(split.class_names)).train()
    return DetSetup(name, cfg, model, data, tuple(split.class_names))


def timed(fn: Callable[[], Any]) -> Tuple[float, Any]:
    """``(seconds, result)`` of one call."""
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result
