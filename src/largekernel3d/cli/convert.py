"""``lk3d convert official --task seg|det CKPT OUT``: an official LargeKernel3D checkpoint -> ours.

``seg``: the official segmentation network (V1 / V2) becomes a ``largekernel3d_seg`` checkpoint in this
library's format (the ``official_scannet`` run configuration with the detected model options), which
``lk3d eval seg --checkpoint OUT`` and ``lk3d predict seg`` read. ``det``: a det3d / OpenPCDet
large-kernel backbone becomes ``{"model": backbone state dict, "backbone_config": ...}`` (``--sparse-shape``
is required: the grid is not in the checkpoint). The conversion report (keys, per-layer grouping deviation,
unused / missing keys) is printed and stored in the output under ``"official_conversion"``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Dict, List, Optional

from ..models.official_seg import OfficialConversion, convert_official_checkpoint

SEG_BASE_CONFIG = "official_scannet"


def conversion_summary(conv: OfficialConversion) -> Dict[str, Any]:
    """A plain-data summary of the conversion report (stored in the output file)."""
    r = conv.report
    return {
        "task": conv.task,
        "source": r.source,
        "prefix": r.prefix,
        "converted": len(r.converted),
        "grouping_deviation": dict(r.grouping_deviation),
        "unused": list(r.unused),
        "missing": list(r.missing),
        "other_parts": r.other_parts,
    }


def seg_payload(conv: OfficialConversion, class_names: Optional[List[str]] = None) -> Dict[str, Any]:
    """A ``largekernel3d`` checkpoint payload for a converted segmentation network: the
    :data:`SEG_BASE_CONFIG` run config with the detected model options, the weights and class names
    (ScanNet-20's for 20 classes, else ``class0..``)."""
    from .. import data as D
    from ..training import config as C
    from ..training.checkpoint import architecture_signature
    from .run_configs import read_config_source

    model_cfg = {k: v for k, v in conv.config.items() if k not in ("in_channels", "num_classes")}
    num_classes = conv.config["num_classes"]
    raw = read_config_source(SEG_BASE_CONFIG)
    raw["model"] = model_cfg
    cfg = C.build_config(raw, [], source=f"config {SEG_BASE_CONFIG}")
    if class_names is None:
        class_names = (
            list(D.SCANNET20_CLASSES)
            if num_classes == len(D.SCANNET20_CLASSES)
            else [f"class{i}" for i in range(num_classes)]
        )
    return {
        "epoch": 0,
        "step": 0,
        "model": conv.model.state_dict(),
        "config": cfg,
        "class_names": class_names,
        "architecture": architecture_signature(conv.model, model_cfg["name"]),
        "official_conversion": conversion_summary(conv),
    }


def cmd_convert_official(args: argparse.Namespace) -> int:
    from ..training.checkpoint import save_checkpoint

    shape = None if args.sparse_shape is None else [int(s) for s in args.sparse_shape]
    conv = convert_official_checkpoint(
        args.checkpoint,
        args.model_task,
        strict=not args.allow_mismatch,
        layout=args.layout,
        sparse_shape=shape,
        weights_only=not args.trust_pickle,
    )
    if conv.task == "seg":
        payload = seg_payload(conv)
    else:
        payload = {
            "epoch": 0,
            "step": 0,
            "model": conv.model.state_dict(),
            "backbone_config": conv.config,
            "official_conversion": conversion_summary(conv),
        }
    out = save_checkpoint(payload, Path(args.output))
    r = conv.report
    dev = f", max grouping deviation {r.max_grouping_deviation:.3g}" if r.grouping_deviation else ""
    print(
        f"converted {len(r.converted)} tensors ({r.source}{dev}); unused {len(r.unused)}, missing {len(r.missing)}"
        f" -> {out}"
    )
    return 0


def register(verbs, top) -> None:
    """Add ``lk3d convert official``."""
    q = verbs["convert"].add_parser(
        "official", help="an official LargeKernel3D checkpoint (segmentation network or detection backbone)"
    )
    q.add_argument(
        "--task",
        dest="model_task",
        choices=("seg", "det"),
        default="seg",
        help="segmentation network or detection backbone",
    )
    q.add_argument("checkpoint", help="the official .pth file")
    q.add_argument("output", help="where to write the converted checkpoint")
    q.add_argument(
        "--layout",
        default="auto",
        choices=("auto", "KRSC", "RSKC", "RSCK"),
        help="conv weight layout (auto: by shape; KRSC spconv >= 2.2, RSKC spconv 2.1)",
    )
    q.add_argument(
        "--sparse-shape",
        nargs=3,
        default=None,
        metavar=("D", "H", "W"),
        help="det only: the voxel grid the backbone was trained on",
    )
    q.add_argument(
        "--allow-mismatch",
        action="store_true",
        help="load what matches and warn about unused / missing keys instead of failing",
    )
    q.add_argument(
        "--trust-pickle",
        action="store_true",
        help="the file pickles non-tensor objects: load it with weights_only=False (trusted files only)",
    )
    q.set_defaults(func=cmd_convert_official)


__all__ = ["register", "cmd_convert_official", "seg_payload", "conversion_summary", "SEG_BASE_CONFIG"]
