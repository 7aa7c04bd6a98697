"""Steps the ``lk3d`` commands share, whatever the task: above all those of ``lk3d eval <task>`` and ``lk3d predict
<task>``.

A checkpoint command (options from :func:`~.run_configs.add_checkpoint_parser`) runs::

    run    = open_checkpoint(args, task, loader)          # config (+ --set), device, trained network, payload
    items  = split_items(split, args.split, "scenes")     # --split val | train of the configured data
    n      = item_count(len(view), args.limit)            # --limit
    out    = output_folder(args, "eval")                  # --output, or <run>/eval beside the checkpoints

``lk3d predict <task> --input ...`` is :func:`cmd_predict_files` for either task, and ``--threads`` is
:func:`set_threads`. Progress bars are those of the evaluation / prediction loops in
:mod:`largekernel3d.training`; what a task computes and writes stays in its own module (:mod:`.seg`, :mod:`.det`).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Optional

from .run_configs import checkpoint_config

ModelLoader = Callable[[Path, Dict[str, Any], Any], tuple]
"""``(checkpoint path, config, device) -> (model, payload)``: ``training.load_trained_model`` (seg) or
``training.load_trained_detector`` (det)."""


@dataclass(frozen=True)
class TrainedRun:
    """A checkpoint opened for ``eval`` / ``predict``.

    Attributes:
        cfg: the checkpoint's configuration with the ``--set`` overrides applied (validated).
        device: the ``torch.device`` that ``--device`` resolves to.
        model: the trained network on ``device``, in eval mode.
        payload: the checkpoint's payload (``epoch``, ``class_names`` for detectors, ...).
    """

    cfg: Dict[str, Any]
    device: Any
    model: Any
    payload: Dict[str, Any]


def open_checkpoint(args: argparse.Namespace, task: str, loader: ModelLoader) -> TrainedRun:
    """Load ``args.checkpoint`` of ``task`` with its config (+ ``args.overrides``) on ``args.device``."""
    from ..training.distributed import resolve_device

    cfg, _ = checkpoint_config(args.checkpoint, args.overrides, task)
    device = resolve_device(args.device, argument="--device")
    model, payload = loader(Path(args.checkpoint), cfg, device)
    return TrainedRun(cfg=cfg, device=device, model=model, payload=payload)


def split_items(split: Any, name: str, items: str):
    """``split.val`` or ``split.train`` (``name``: the ``--split`` value); ``ValueError`` when it is not defined."""
    chosen = split.val if name == "val" else split.train
    if chosen is None:
        raise ValueError(f"--split {name}: the configuration defines no {name} {items}")
    return chosen


def item_count(total: int, limit: Optional[int]) -> int:
    """How many of ``total`` items ``--limit`` keeps (all when it is ``None``)."""
    return total if limit is None else min(limit, total)


def output_folder(args: argparse.Namespace, default: str) -> Path:
    """``--output``, or ``<run folder>/<default>`` (the run folder holds the checkpoint's ``checkpoints/``)."""
    return Path(args.output) if args.output else Path(args.checkpoint).resolve().parent.parent / default


def set_threads(threads: Optional[int]) -> None:
    """``--threads N``: ``torch.set_num_threads(N)`` (``None`` leaves torch's default); ``N < 1`` is refused."""
    if threads is None:
        return
    if threads < 1:
        raise ValueError(f"--threads must be >= 1, got {threads}")
    import torch

    torch.set_num_threads(threads)


def add_file_input_options(q: argparse.ArgumentParser) -> None:
    """``--input PATH...`` and the reader options shared by ``lk3d predict seg`` and ``lk3d predict det``."""
    q.add_argument(
        "--input",
        nargs="+",
        default=None,
        metavar="PATH",
        help="point-cloud files, folders or globs (.ply .pcd .las .laz .bin .pcd.bin .npy .npz .txt .csv .xyz .pts "
        ".asc); without it the configured dataset's --split is used",
    )
    q.add_argument(
        "--format",
        default=None,
        help="reader to use for every input instead of the extension's "
        "(ply, pcd, las, kitti_bin, nuscenes_bin, npy, npz, text)",
    )
    q.add_argument(
        "--units",
        default="auto",
        help="metres per file unit: m, cm, mm, km, in, ft, us-ft or a number (default auto: metres; LAS/LAZ from their "
        "CRS)",
    )
    q.add_argument("--axes", default="xyz", help="file axes giving our x y z (z up), e.g. 'x -z y' for a y-up file")
    q.add_argument("--columns", default=None, help="column names for .txt/.csv/.npy/.bin, e.g. 'x y z r g b i'")
    q.add_argument("--recursive", action="store_true", help="also read point-cloud files in sub-folders")
    q.add_argument("--verbose", action="store_true", help="print what each reader found")


def read_options(args: argparse.Namespace) -> Dict[str, Any]:
    """The ``read_point_cloud`` keyword options of ``args``."""
    return {"format": args.format, "units": args.units, "axes": args.axes, "columns": args.columns}


def cmd_predict_files(args: argparse.Namespace, task: str, **predictor_options) -> int:
    """``lk3d predict seg|det --input ...``: a thin wrapper over :mod:`largekernel3d.inference`."""
    from ..data.pointcloud_files import expand_inputs
    from ..inference import Predictor, predict_files, summary_table

    paths = expand_inputs(args.input, recursive=args.recursive)
    predictor = Predictor.from_checkpoint(args.checkpoint, device=args.device, **predictor_options)
    if predictor.task != task:
        raise ValueError(
            f"checkpoint {args.checkpoint} holds a {predictor.task!r} model; use lk3d predict {predictor.task}"
        )
    out = Path(args.output) if args.output else Path("predictions")
    rows = predict_files(
        predictor,
        paths,
        out,
        views=not args.no_views,
        score_threshold=getattr(args, "score_threshold", 0.3),
        intensity_scale=getattr(args, "intensity_scale", 1.0),
        verbose=args.verbose,
        read_options=read_options(args),
    )
    print(summary_table(rows, task))
    failed = [r for r in rows if r.error is not None]
    tail = f"; {len(failed)} failed (rows above)" if failed else ""
    print(f"wrote {len(rows) - len(failed)} file(s) to {out}{tail}")
    return 1 if failed else 0


__all__ = [
    "TrainedRun",
    "open_checkpoint",
    "split_items",
    "item_count",
    "output_folder",
    "set_threads",
    "add_file_input_options",
    "read_options",
    "cmd_predict_files",
]
