"""The run configuration of detection training (``lk3d train det``): sections, keys and defaults.

Same rules as segmentation (:mod:`.config`): every section except ``model`` has a fixed set of keys, YAML files
and ``--set section.key=value`` overrides that name another key are errors. The ``model`` section is handed to
:func:`largekernel3d.models.detection.build_detector`, completed by the data section (class names, point-cloud
range, voxel size, point features), which the model section must not repeat.
"""

from __future__ import annotations

from typing import Any, Dict, Mapping

from .config import ConfigError, ConfigSchema

DATASETS = ("synthetic", "kitti", "nuscenes", "pandaset")
METRICS = ("auto", "generic", "kitti", "nuscenes")

DET_DEFAULTS: Dict[str, Any] = {
    "name": "det",
    "task": "det",
    "seed": 0,
    "output_dir": "runs/det",
    "data": {
        "dataset": "synthetic",  # synthetic | kitti | nuscenes | pandaset
        "root": None,  # data folder (not used by 'synthetic')
        "class_names": None,  # None = the dataset's detection classes
        "train_frames": None,  # explicit frame names (None = automatic split)
        "val_frames": None,
        "val_fraction": 0.2,  # automatic split: the LAST fraction of the frames (temporal)
        "num_train_frames": 64,  # synthetic only
        "num_val_frames": 16,
        "synthetic_beams": 32,  # synthetic LiDAR: beams of the spinning sensor
        "cache_frames": False,  # keep loaded frames in memory (small or generated datasets)
        "sweeps": 1,  # nuScenes: LiDAR sweeps merged per key frame
        "point_cloud_range": [-40.0, -40.0, -3.0, 40.0, 40.0, 1.0],  # x_min y_min z_min x_max y_max z_max (m)
        "voxel_size": [0.1, 0.1, 0.1],  # metres (x, y, z): 800 x 800 x 40 voxels, z 41 -> 2 in the backbone
        "point_features": ["x", "y", "z", "intensity"],
        "max_points_per_voxel": 10,
        "max_voxels_train": 60000,
        "max_voxels_val": 60000,
        "min_points_in_box": 1,  # training boxes with fewer points are dropped
        "augment": True,  # global rotation / scaling / flips / translation
        "rotation": [-0.785398, 0.785398],  # radians
        "scaling": [0.95, 1.05],
        "flip_x": True,  # mirror y -> -y (flip along the x axis)
        "flip_y": True,  # mirror x -> -x (front-facing data such as KITTI: false)
        "translation_std": [0.0, 0.0, 0.0],
        "gt_sampling": False,  # paste objects from the ground-truth database
        "gt_database": None,  # folder written by `lk3d data gt-database`
        "gt_sample_groups": None,  # {class: objects per frame}, e.g. {Car: 15, Pedestrian: 10}
        "num_workers": 0,
    },
    "model": {"name": "centerpoint_largekernel3d"},
    "train": {
        "epochs": 20,
        "batch_size": 2,
        "optimizer": "adamw",  # sgd | adamw
        "lr": 0.003,
        "momentum": 0.9,
        "weight_decay": 0.01,
        "scheduler": "onecycle",  # onecycle | cosine | poly | constant
        "warmup_steps": 0,
        "grad_clip": 35.0,
        "device": "auto",
        "amp": False,
        "sync_bn": True,
        "eval_every": 1,
        "checkpoint_every_steps": 0,
        "threads": 0,
        "progress": True,
    },
    "eval": {
        "batch_size": 1,
        "metric": "auto",  # auto (by dataset) | generic | kitti | nuscenes
        "iou_threshold": None,  # generic AP: BEV IoU threshold per class (None: centre distance)
        "distance_thresholds": [0.5, 1.0, 2.0, 4.0],  # generic AP by centre distance (m)
        "max_frames": None,  # evaluate at most this many validation frames
    },
}


def _check_detection(cfg: Mapping[str, Any]) -> None:
    d = cfg["data"]
    if cfg["task"] != "det":
        raise ConfigError(
            f"config key 'task' = {cfg['task']!r}: this is a detection configuration ('det'); "
            f"segmentation runs use lk3d train seg"
        )
    if d["dataset"] != "synthetic" and not d["root"]:
        raise ConfigError(f"config key 'data.root' must name the data folder for dataset '{d['dataset']}'")
    if not 0 < float(d["val_fraction"]) < 1:
        raise ConfigError(f"config key 'data.val_fraction' must lie in (0, 1), got {d['val_fraction']!r}")
    for key, length in (
        ("point_cloud_range", 6),
        ("voxel_size", 3),
        ("translation_std", 3),
        ("rotation", 2),
        ("scaling", 2),
    ):
        value = d[key]
        if not isinstance(value, (list, tuple)) or len(value) != length:
            raise ConfigError(f"config key 'data.{key}' must be a list of {length} numbers, got {value!r}")
    feats = d["point_features"]
    if not isinstance(feats, (list, tuple)) or list(feats[:3]) != ["x", "y", "z"]:
        raise ConfigError(f"config key 'data.point_features' must start with x, y, z, got {feats!r}")
    for key in ("class_names", "train_frames", "val_frames"):
        if d[key] is not None and not isinstance(d[key], (list, tuple)):
            raise ConfigError(f"config key 'data.{key}' must be a list or null, got {d[key]!r}")
    if d["gt_sampling"] and not d["gt_database"]:
        raise ConfigError(
            "config key 'data.gt_sampling' is on but 'data.gt_database' names no folder; build one "
            "with `lk3d data gt-database --config ...` and set data.gt_database=FOLDER"
        )
    groups = d["gt_sample_groups"]
    if d["gt_sampling"] and not (isinstance(groups, Mapping) and groups):
        raise ConfigError(
            f"config key 'data.gt_sample_groups' must map class names to the objects to paste per "
            f"frame (e.g. {{Car: 15}}) when data.gt_sampling is on, got {groups!r}"
        )
    from_data = {
        "class_names": "class_names",
        "point_cloud_range": "point_cloud_range",
        "voxel_size": "voxel_size",
        "point_features": "point_features",
        "in_channels": "point_features",
        "max_points_per_voxel": "max_points_per_voxel",
        "max_voxels": "max_voxels_train / max_voxels_val",
    }
    for key, data_key in from_data.items():
        if key in cfg["model"]:
            raise ConfigError(
                f"config key 'model.{key}' is set by the data section; remove it from 'model' "
                f"(set data.{data_key} instead)"
            )


DET_SCHEMA = ConfigSchema(
    defaults=DET_DEFAULTS,
    choices={
        ("data", "dataset"): DATASETS,
        ("eval", "metric"): METRICS,
        ("train", "optimizer"): ("sgd", "adamw"),
        ("train", "scheduler"): ("onecycle", "cosine", "poly", "constant"),
    },
    positive=frozenset(
        {
            ("train", "epochs"),
            ("train", "batch_size"),
            ("train", "lr"),
            ("eval", "batch_size"),
            ("data", "max_points_per_voxel"),
            ("data", "max_voxels_train"),
            ("data", "max_voxels_val"),
            ("data", "num_train_frames"),
            ("data", "sweeps"),
            ("data", "synthetic_beams"),
        }
    ),
    check=_check_detection,
)
"""The detection run configuration."""

__all__ = ["DET_DEFAULTS", "DET_SCHEMA", "DATASETS", "METRICS"]
