"""From a detection run configuration (:mod:`.det_config`) to the objects a run needs: the frame datasets with
their train/validation split, the voxelised views (augmentation and ground-truth sampling for training), the
voxel grid and the detector.

Splits: explicit ``data.train_frames`` / ``data.val_frames`` (frame names) win; otherwise the last
``data.val_fraction`` of the frames in the dataset's order is held out, after a gap of 2 frames
(:func:`largekernel3d.data.detection.pandaset.split_frames_temporal`), which for sequences (PandaSet, nuScenes)
is a temporal split; generated frames come from two different generator streams.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from torch import nn

from ..data.detection.frame import DetectionDataset, LidarFrame
from ..sparse.point_to_voxel import VoxelGrid
from .config import ConfigError

VAL_SEED_OFFSET = 1_000_003
"""Generated validation frames use ``seed + VAL_SEED_OFFSET``: a stream the training frames never see."""


@dataclass(frozen=True)
class FrameSplit:
    """The frame datasets of a run: ``train`` and ``val`` (``val`` may be ``None``)."""

    train: DetectionDataset
    val: Optional[DetectionDataset]
    class_names: Tuple[str, ...]


class FrameSubset(DetectionDataset):
    """Frames ``indices`` of ``dataset`` (in that order), as a dataset of the same classes."""

    def __init__(self, dataset: DetectionDataset, indices: Sequence[int]) -> None:
        self.dataset = dataset
        self.indices = [int(i) for i in indices]
        self.class_names = dataset.class_names
        self.frame_names = [dataset.frame_names[i] for i in self.indices]

    def _source(self, index: int) -> str:
        return self.dataset._source(self.indices[index])

    def _load(self, index: int) -> LidarFrame:
        return self.dataset[self.indices[index]]

    def __repr__(self) -> str:
        return f"FrameSubset({self.dataset!r}, {len(self)} frames)"


def _indices_of(dataset: DetectionDataset, names: Sequence[str], key: str) -> List[int]:
    position = {n: i for i, n in enumerate(dataset.frame_names)}
    missing = [n for n in names if str(n) not in position]
    if missing:
        raise ConfigError(f"config key '{key}' names frames not in {dataset!r}: {missing[:5]}")
    return [position[str(n)] for n in names]


def _split(everything: DetectionDataset, d: Mapping[str, Any]) -> Tuple[DetectionDataset, Optional[DetectionDataset]]:
    from ..data.detection.pandaset import split_frames_temporal

    train_names, val_names = d["train_frames"], d["val_frames"]
    if train_names is None and val_names is None:
        if len(everything) < 2:
            return everything, None
        train_idx, val_idx = split_frames_temporal(
            len(everything), float(d["val_fraction"]), gap=2 if len(everything) >= 10 else 0
        )
    else:
        val_idx = _indices_of(everything, val_names or [], "data.val_frames")
        if train_names is None:
            taken = set(val_idx)
            train_idx = [i for i in range(len(everything)) if i not in taken]
        else:
            train_idx = _indices_of(everything, train_names, "data.train_frames")
    train = FrameSubset(everything, train_idx)
    return train, (FrameSubset(everything, val_idx) if val_idx else None)


def _class_kwargs(d: Mapping[str, Any]) -> Dict[str, Any]:
    return {} if d["class_names"] is None else {"classes": tuple(d["class_names"])}


def build_frame_split(cfg: Mapping[str, Any]) -> FrameSplit:
    """The train/val frame datasets described by ``cfg["data"]`` (kept in memory with ``data.cache_frames``)."""
    split = _frame_split(cfg)
    if not cfg["data"]["cache_frames"]:
        return split
    from ..data.detection.frame import CachedFrames

    return FrameSplit(
        CachedFrames(split.train), CachedFrames(split.val) if split.val is not None else None, split.class_names
    )


def _frame_split(cfg: Mapping[str, Any]) -> FrameSplit:
    from ..data.detection import synthetic

    d = cfg["data"]
    kind = d["dataset"]
    if kind == "synthetic":
        names = {} if d["class_names"] is None else {"class_names": tuple(d["class_names"])}
        spec = synthetic.LidarSpec(beams=int(d["synthetic_beams"]))
        seed = int(cfg["seed"])
        train = synthetic.SyntheticLidarDataset(int(d["num_train_frames"]), seed=seed, spec=spec, **names)
        n_val = int(d["num_val_frames"])
        val = (
            synthetic.SyntheticLidarDataset(n_val, seed=seed + VAL_SEED_OFFSET, spec=spec, **names)
            if n_val > 0
            else None
        )
        return FrameSplit(train, val, tuple(train.class_names))
    root = Path(d["root"]).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"data.root: data folder {root} does not exist (dataset '{kind}')")
    everything: DetectionDataset
    if kind == "kitti":
        from ..data.detection.kitti import KittiDetection

        everything = KittiDetection(root, **_class_kwargs(d))
    elif kind == "pandaset":
        from ..data.detection.pandaset import PandaSetDetection

        everything = PandaSetDetection(root, **_class_kwargs(d))
    else:
        from ..data.detection.nuscenes import NuScenesDetection

        versions = sorted(p.name for p in root.glob("v1.0-*") if p.is_dir())
        if not versions:
            raise FileNotFoundError(f"data.root: {root} holds no v1.0-* table folder (nuScenes layout)")
        everything = NuScenesDetection(
            root, version=versions[-1], nsweeps=int(d["sweeps"]), missing_sweeps="skip", **_class_kwargs(d)
        )
    train, val = _split(everything, d)
    return FrameSplit(train, val, tuple(everything.class_names))


def voxel_grid(cfg: Mapping[str, Any]) -> VoxelGrid:
    """The :class:`VoxelGrid` of ``cfg["data"]`` (errors name the config keys)."""
    d = cfg["data"]
    try:
        return VoxelGrid(tuple(d["point_cloud_range"]), tuple(d["voxel_size"]))
    except (TypeError, ValueError) as err:
        raise ConfigError(f"config keys 'data.point_cloud_range' / 'data.voxel_size': {err}") from None


def augmentation_config(cfg: Mapping[str, Any]) -> Optional[Dict[str, Any]]:
    """The :class:`~largekernel3d.data.detection.augment.DetectionAugmentation` settings of ``cfg["data"]``
    (``None`` when augmentation is off)."""
    d = cfg["data"]
    if not d["augment"]:
        return None
    axes = [a for a, on in (("x", d["flip_x"]), ("y", d["flip_y"])) if on]
    return {
        "flip_axes": axes or None,
        "rotation_range": list(d["rotation"]),
        "scale_range": list(d["scaling"]),
        "translation_std": list(d["translation_std"]) if any(d["translation_std"]) else None,
        "point_cloud_range": list(d["point_cloud_range"]),
        "shuffle": True,
    }


def voxelize(dataset: DetectionDataset, cfg: Mapping[str, Any], train: bool):
    """The voxelised view of ``dataset``: for training with augmentation and ground-truth sampling as
    configured, boxes with fewer than ``data.min_points_in_box`` points and boxes centred outside the range
    dropped; for validation the frames as they are."""
    from ..data.detection.augment import DetectionAugmentation
    from ..data.detection.voxelized import VoxelizedDetection

    d = cfg["data"]
    augmentation = sampler = None
    if train:
        aug = augmentation_config(cfg)
        augmentation = DetectionAugmentation(aug) if aug is not None else None
        if d["gt_sampling"]:
            from ..data.detection.gt_sampling import GTSampler

            sampler = GTSampler(
                Path(d["gt_database"]).expanduser(), dict(d["gt_sample_groups"]), class_names=dataset.class_names
            )
    return VoxelizedDetection(
        dataset,
        voxel_grid(cfg),
        tuple(d["point_features"]),
        int(d["max_points_per_voxel"]),
        int(d["max_voxels_train" if train else "max_voxels_val"]),
        augmentation=augmentation,
        gt_sampler=sampler,
        min_points_in_box=int(d["min_points_in_box"]) if train else 0,
        remove_outside_boxes=train,
        seed=int(cfg["seed"]),
    )


def detector_config(cfg: Mapping[str, Any], class_names: Sequence[str]) -> Dict[str, Any]:
    """``cfg["model"]`` completed by the data section (classes, range, voxel size, point columns, budgets)."""
    d = cfg["data"]
    model = dict(cfg["model"])
    model.update(
        class_names=list(class_names),
        point_cloud_range=list(d["point_cloud_range"]),
        voxel_size=list(d["voxel_size"]),
        point_features=list(d["point_features"]),
        max_points_per_voxel=int(d["max_points_per_voxel"]),
        max_voxels=[int(d["max_voxels_train"]), int(d["max_voxels_val"])],
    )
    return model


def build_network(cfg: Mapping[str, Any], class_names: Sequence[str]) -> nn.Module:
    """:func:`largekernel3d.models.detection.build_detector` on :func:`detector_config`."""
    from ..models.detection import build_detector

    try:
        return build_detector(detector_config(cfg, class_names))
    except (KeyError, TypeError) as err:
        raise ConfigError(f"config section 'model': {err}") from None


__all__ = [
    "FrameSplit",
    "FrameSubset",
    "build_frame_split",
    "voxel_grid",
    "augmentation_config",
    "voxelize",
    "detector_config",
    "build_network",
    "VAL_SEED_OFFSET",
]
