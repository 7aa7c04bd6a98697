"""``lk3d train seg``, ``lk3d eval seg``, ``lk3d predict seg``: semantic segmentation from the command line.

Several processes: ``torchrun --nproc_per_node N -m largekernel3d.cli.main train seg ...`` (one per GPU;
gloo on CPUs), DistributedDataParallel with a DistributedSampler; only rank 0 writes the run folder.

Configurations are YAML files shipped in ``largekernel3d/cli/configs`` (``--config demo``; ``lk3d train
seg --list-configs`` lists them) or any YAML path, with overrides ``--set train.epochs=3
model.name=minkunet14a``. ``eval`` and ``predict`` rebuild the network from the checkpoint's own
configuration; ``--set`` there changes the data side (e.g. ``data.root=...``).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from . import command_steps as steps
from .run_configs import add_checkpoint_parser, add_train_parser, train


def _train_summary(result) -> str:
    return (
        result.final_eval.point.markdown(title=f"validation (points), epoch {len(result.history)}")
        + "\n"
        + f"best val point mIoU {100 * result.best_miou:.1f} at epoch {result.best_epoch}; "
        f"checkpoints in {result.last_checkpoint.parent}"
    )


def cmd_train(args: argparse.Namespace) -> int:
    from ..training import SegmentationTrainer

    train(args, "seg", SegmentationTrainer, _train_summary)
    return 0


def _dataset_for(cfg: Dict[str, Any], split: str):
    from ..training import setup

    scenes = setup.build_scene_split(cfg)
    return setup.voxelize(steps.split_items(scenes, split, "scenes"), cfg, train=False), scenes


def _open(args: argparse.Namespace) -> steps.TrainedRun:
    from ..training import load_trained_model

    return steps.open_checkpoint(args, "seg", load_trained_model)


def cmd_eval(args: argparse.Namespace) -> int:
    from ..data import IGNORE_INDEX
    from ..training import evaluate
    from ..training.distributed import DistContext

    run = _open(args)
    dataset, scenes = _dataset_for(run.cfg, args.split)
    result = evaluate(
        run.model,
        dataset,
        scenes.num_classes,
        scenes.class_names,
        IGNORE_INDEX,
        DistContext(device=run.device),
        batch_size=int(run.cfg["eval"]["batch_size"]),
    )
    out = steps.output_folder(args, "eval")
    out.mkdir(parents=True, exist_ok=True)
    text = (
        result.point.markdown(f"{args.split} scenes, original points (epoch {run.payload['epoch']})")
        + "\n"
        + result.voxel.markdown(f"{args.split} scenes, voxels")
    )
    print(text)
    print(
        f"majority-class baseline: accuracy {100 * result.point.majority_accuracy:.1f} %, "
        f"mIoU {100 * result.point.majority_miou:.1f} %"
    )
    (out / f"{args.split}_per_class.md").write_text(text)
    result.point.write_csv(out / f"{args.split}_per_class_points.csv")
    result.voxel.write_csv(out / f"{args.split}_per_class_voxels.csv")
    print(f"tables written to {out}")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    if args.input:
        return steps.cmd_predict_files(args, "seg", tile_size=args.tile_size, overlap=args.overlap, tta=args.tta)
    run = _open(args)
    dataset, scenes = _dataset_for(run.cfg, args.split)
    out = steps.output_folder(args, "predictions")
    written = write_predictions(run.model, dataset, scenes.class_names, out, run.device, args.limit)
    print(f"wrote {len(written)} scene(s) (PLY + PNG) to {out}")
    return 0


def write_predictions(
    model, dataset, class_names: Sequence[str], out: Path, device, limit: Optional[int] = None, progress: bool = True
) -> List[Path]:
    """Predict the first ``limit`` scenes of ``dataset``; write ``<scene>.ply`` and ``<scene>.png`` to ``out``."""
    from torch.utils.data import Subset

    from ..analysis.segmentation_views import plot_segmentation, write_labelled_ply
    from ..training import predict_scenes

    n = steps.item_count(len(dataset), limit)
    pngs = []
    for pred in predict_scenes(model, Subset(dataset, range(n)), device, progress=progress):
        write_labelled_ply(out / f"{pred.name}.ply", pred.points, pred.pred, pred.labels, len(class_names))
        pngs.append(
            plot_segmentation(
                out / f"{pred.name}.png", pred.points, pred.pred, pred.labels, class_names, title=pred.name
            )
        )
    return pngs


_EXAMPLE = "train.epochs=3 model.name=minkunet14a"


def register(verbs, top) -> None:
    """Add the ``seg`` task to ``train``, ``eval`` and ``predict``."""
    add_train_parser(verbs, "seg", "demo", "train a semantic-segmentation network", cmd_train, _EXAMPLE)
    add_checkpoint_parser(
        verbs, "eval", "seg", "evaluate a segmentation checkpoint (per-class table)", cmd_eval, "scenes", _EXAMPLE
    )
    q = add_checkpoint_parser(
        verbs,
        "predict",
        "seg",
        "write coloured PLY + PNG per scene (or per --input file)",
        cmd_predict,
        "scenes",
        _EXAMPLE,
    )
    q.add_argument("--limit", type=int, default=None, help="at most this many scenes")
    steps.add_file_input_options(q)
    q.add_argument(
        "--tile-size",
        type=float,
        default=None,
        help="with --input: x-y tile edge in metres for large scans (default: one pass, tiles only above 1.5 M voxels)",
    )
    q.add_argument(
        "--overlap",
        type=float,
        default=None,
        help="with --input: tile halo in metres (default: the network's receptive field, which makes tiling exact)",
    )
    q.add_argument("--tta", action="store_true", help="with --input: average 4 rotations x 2 mirrors")
    q.add_argument("--no-views", action="store_true", help="with --input: skip the PNG and HTML views")
