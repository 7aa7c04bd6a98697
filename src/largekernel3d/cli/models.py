"""``lk3d models``: the networks this package builds and their parameter counts.

Two Markdown tables: every shipped YAML config's model (with the input channels and classes its data
implies), and every registered model name at its defaults. Networks are built on the ``meta`` device, so
even the 323 M-parameter plain-7³ ablation costs no memory.
"""

from __future__ import annotations

import argparse
from typing import Any, List, Mapping, Sequence, Tuple

import torch

from ..models import LARGEKERNEL3D_SEG, MODEL_NAMES, build_model, count_parameters


def classes_of(dataset: str) -> int:
    """Number of classes of a config's ``data.dataset``."""
    from .. import data as D

    names = {"scannet": D.SCANNET20_CLASSES, "generated": D.GeneratedIndoorDataset.class_names,
             "s3dis": D.S3DIS_CLASSES, "semantickitti": D.SEMANTICKITTI_CLASSES}
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
    from .seg import load_run_config

    rows = []
    for name in config_names:
        cfg = load_run_config(name)
        model_cfg = dict(cfg["model"], in_channels=in_channels, num_classes=classes_of(cfg["data"]["dataset"]))
        rows.append((name, model_cfg["name"], describe(model_cfg), model_cfg["num_classes"],
                     f"{parameter_count(model_cfg):,}"))
    return rows


def registry_rows(in_channels: int, num_classes: int) -> List[Tuple[Any, ...]]:
    """``(model, encoder, parameters)`` for each registered model name at its defaults."""
    rows = []
    for name in MODEL_NAMES:
        model_cfg = {"name": name, "in_channels": in_channels, "num_classes": num_classes}
        rows.append((name, describe(model_cfg), f"{parameter_count(model_cfg):,}"))
    return rows


def cmd_models(args: argparse.Namespace) -> int:
    from .. import data as D
    from .seg import shipped_configs

    in_channels = D.IN_CHANNELS
    print(f"## Shipped configs (in_channels={in_channels}, classes from each config's data)\n")
    print(markdown_table(("config", "model", "encoder stages 1-4", "classes", "parameters"),
                         config_rows(shipped_configs(), in_channels)))
    print(f"\n## Registered models (in_channels={in_channels}, num_classes={args.num_classes})\n")
    print(markdown_table(("model", "encoder stages 1-4", "parameters"), registry_rows(in_channels, args.num_classes)))
    return 0


def register(verbs, top) -> None:
    """Add the top-level ``models`` command."""
    p = top.add_parser("models", help="list the models (shipped configs and registered names) with parameter counts")
    p.add_argument("--num-classes", type=int, default=20, help="classes of the registered-model table (default: 20)")
    p.set_defaults(func=cmd_models)


__all__ = ["classes_of", "describe", "parameter_count", "markdown_table", "config_rows", "registry_rows",
           "cmd_models", "register"]
