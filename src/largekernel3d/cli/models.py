"""``lk3d models``: the networks this package builds and their parameter counts.

Markdown tables: every shipped segmentation config's model (with the input channels and classes its data
implies), every registered segmentation model at its defaults, every shipped detection config's detector, and
every registered detector with each dataset preset (nuScenes, KITTI). Networks are built on the ``meta``
device, so even the 323 M-parameter plain-7³ ablation costs no memory.
"""

from __future__ import annotations

import argparse
from typing import Any, List, Mapping, Sequence, Tuple

import torch

from ..models import LARGEKERNEL3D_SEG, SEGMENTATION_NAMES, build_model, count_parameters
from ..models.detection import DETECTOR_NAMES, DETECTOR_PRESETS, build_detector


def classes_of(dataset: str) -> int:
    """Number of classes of a config's ``data.dataset``."""
    from .. import data as D

    names = {
        "scannet": D.SCANNET20_CLASSES,
        "generated": D.GeneratedIndoorDataset.class_names,
        "s3dis": D.S3DIS_CLASSES,
        "semantickitti": D.SEMANTICKITTI_CLASSES,
    }
    if dataset not in names:
        raise ValueError(f"data.dataset {dataset!r} is not one of {sorted(names)}")
    return len(names[dataset])


def describe(model_cfg: Mapping[str, Any]) -> str:
    """A short description of a model config's encoder (e.g. ``swlk 7,7,7,7`` for LargeKernel3DSeg)."""
    if model_cfg["name"] != LARGEKERNEL3D_SEG:
        return "plain 3,3,3,3"
    conv_types = model_cfg.get("stage_conv_types", "swlk")
    types = [conv_types] * 4 if isinstance(conv_types, str) else list(conv_types)
    kernels = ",".join(str(k) for k in model_cfg.get("stage_kernel_sizes", (7, 7, 7, 7)))
    parts = [f"{types[0] if len(set(types)) == 1 else '/'.join(types)} {kernels}"]
    if "swlk" in types:
        if not model_cfg.get("position_encoding", True):
            parts.append("no position encoding")
        if model_cfg.get("dilated_branch", False):
            parts.append("dilated branch")
        if model_cfg.get("partition", "center1") != "center1":
            parts.append(f"partition {model_cfg['partition']}")
    if any(key in model_cfg for key in ("layers", "planes", "init_dim")):
        parts.append("small widths")
    return ", ".join(parts)


def parameter_count(model_cfg: Mapping[str, Any]) -> int:
    """Parameters of the network ``build_model(model_cfg)`` (built on the meta device)."""
    with torch.device("meta"):
        return count_parameters(build_model(model_cfg))


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def config_rows(config_names: Sequence[str], in_channels: int) -> List[Tuple[Any, ...]]:
    """``(config, model, encoder, classes, parameters)`` for each shipped config."""
    from .run_configs import load_run_config

    rows = []
    for name in config_names:
        cfg = load_run_config(name)
        model_cfg = dict(cfg["model"], in_channels=in_channels, num_classes=classes_of(cfg["data"]["dataset"]))
        rows.append(
            (name, model_cfg["name"], describe(model_cfg), model_cfg["num_classes"], f"{parameter_count(model_cfg):,}")
        )
    return rows


def registry_rows(in_channels: int, num_classes: int) -> List[Tuple[Any, ...]]:
    """``(model, encoder, parameters)`` for each registered segmentation model at its defaults."""
    rows = []
    for name in SEGMENTATION_NAMES:
        model_cfg = {"name": name, "in_channels": in_channels, "num_classes": num_classes}
        rows.append((name, describe(model_cfg), f"{parameter_count(model_cfg):,}"))
    return rows


def describe_detector(model_cfg: Mapping[str, Any]) -> str:
    """The 3D backbone of a detector config (e.g. ``LargeKernel3D nuscenes``)."""
    if model_cfg["name"] == "centerpoint_voxel":
        return "VoxelBackBone8x"
    if model_cfg["name"] == "centerpoint_voxelres":
        return "VoxelResBackBone8x"
    overrides = model_cfg.get("backbone") or {}
    extra = ", " + ", ".join(f"{k}={v}" for k, v in overrides.items()) if overrides else ""
    return f"LargeKernel3D {model_cfg.get('backbone_preset', 'nuscenes')}{extra}"


def _detector_parameters(model_cfg: Mapping[str, Any]) -> int:
    with torch.device("meta"):
        return count_parameters(build_detector(model_cfg))


def detector_config_rows(config_names: Sequence[str]) -> List[Tuple[Any, ...]]:
    """``(config, model, 3D backbone, classes, parameters)`` for each shipped detection config."""
    from ..training.det_setup import detector_config
    from .run_configs import load_run_config

    rows = []
    for name in config_names:
        cfg = load_run_config(name, task="det")
        class_names = cfg["data"]["class_names"] or _default_classes(cfg)
        model_cfg = detector_config(cfg, class_names)
        rows.append(
            (
                name,
                model_cfg["name"],
                describe_detector(model_cfg),
                len(class_names),
                f"{_detector_parameters(model_cfg):,}",
            )
        )
    return rows


def _default_classes(cfg: Mapping[str, Any]) -> Sequence[str]:
    from ..data.detection import classes as K
    from ..data.detection.synthetic import OBJECT_CLASSES

    return {
        "synthetic": OBJECT_CLASSES,
        "kitti": K.KITTI_CLASSES,
        "nuscenes": K.NUSCENES_CLASSES,
        "pandaset": K.PANDASET_CLASSES,
    }[cfg["data"]["dataset"]]


def detector_rows() -> List[Tuple[Any, ...]]:
    """``(model, preset, 3D backbone, parameters)`` for each registered detector and dataset preset."""
    rows = []
    for preset, make in DETECTOR_PRESETS.items():
        for name in DETECTOR_NAMES:
            model_cfg = make(name)
            rows.append((name, preset, describe_detector(model_cfg), f"{_detector_parameters(model_cfg):,}"))
    return rows


def cmd_models(args: argparse.Namespace) -> int:
    from .. import data as D
    from .run_configs import shipped_configs

    in_channels = D.IN_CHANNELS
    print(f"## Shipped configs (in_channels={in_channels}, classes from each config's data)\n")
    print(
        markdown_table(
            ("config", "model", "encoder stages 1-4", "classes", "parameters"),
            config_rows(shipped_configs(), in_channels),
        )
    )
    print(f"\n## Registered models (in_channels={in_channels}, num_classes={args.num_classes})\n")
    print(markdown_table(("model", "encoder stages 1-4", "parameters"), registry_rows(in_channels, args.num_classes)))
    print("\n## Shipped detection configs\n")
    print(
        markdown_table(
            ("config", "model", "3D backbone", "classes", "parameters"), detector_config_rows(shipped_configs("det"))
        )
    )
    print("\n## Registered detectors (dataset presets)\n")
    print(markdown_table(("model", "preset", "3D backbone", "parameters"), detector_rows()))
    return 0


def register(verbs, top) -> None:
    """Add the top-level ``models`` command."""
    p = top.add_parser("models", help="list the models (shipped configs and registered names) with parameter counts")
    p.add_argument("--num-classes", type=int, default=20, help="classes of the registered-model table (default: 20)")
    p.set_defaults(func=cmd_models)


__all__ = [
    "classes_of",
    "describe",
    "parameter_count",
    "markdown_table",
    "config_rows",
    "registry_rows",
    "describe_detector",
    "detector_config_rows",
    "detector_rows",
    "cmd_models",
    "register",
]
