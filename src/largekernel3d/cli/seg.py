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

from .run_configs import add_checkpoint_parser, add_train_parser, checkpoint_config, train


def cmd_train(args: argparse.Namespace) -> int:
    from ..training import SegmentationTrainer
    ran = train(args, "seg", SegmentationTrainer)
    if ran is None:
        return 0
    trainer, result = ran
    if result.final_eval is not None and trainer.ctx.is_main:
        print(result.final_eval.point.markdown(title=f"validation (points), epoch {len(result.history)}"))
        print(f"best val point mIoU {100 * result.best_miou:.1f} at epoch {result.best_epoch}; "
              f"checkpoints in {result.last_checkpoint.parent}")
    return 0


def _dataset_for(cfg: Dict[str, Any], split: str):
    from ..training import setup
    scenes = setup.build_scene_split(cfg)
    chosen = scenes.val if split == "val" else scenes.train
    if chosen is None:
        raise ValueError(f"--split {split}: the configuration defines no {split} scenes")
    return setup.voxelize(chosen, cfg, train=False), scenes


def cmd_eval(args: argparse.Namespace) -> int:
    from ..data import IGNORE_INDEX
    from ..training import evaluate, load_trained_model
    from ..training.distributed import DistContext, resolve_device
    cfg, _ = checkpoint_config(args.checkpoint, args.overrides, "seg")
    device = resolve_device(args.device)
    model, payload = load_trained_model(Path(args.checkpoint), cfg, device)
    dataset, scenes = _dataset_for(cfg, args.split)
    result = evaluate(model, dataset, scenes.num_classes, scenes.class_names, IGNORE_INDEX,
                      DistContext(device=device), batch_size=int(cfg["eval"]["batch_size"]))
    out = Path(args.output) if args.output else Path(args.checkpoint).resolve().parent.parent / "eval"
    out.mkdir(parents=True, exist_ok=True)
    text = (result.point.markdown(f"{args.split} scenes, original points (epoch {payload['epoch']})") + "\n" +
            result.voxel.markdown(f"{args.split} scenes, voxels"))
    print(text)
    print(f"majority-class baseline: accuracy {100 * result.point.majority_accuracy:.1f} %, "
          f"mIoU {100 * result.point.majority_miou:.1f} %")
    (out / f"{args.split}_per_class.md").write_text(text)
    result.point.write_csv(out / f"{args.split}_per_class_points.csv")
    result.voxel.write_csv(out / f"{args.split}_per_class_voxels.csv")
    print(f"tables written to {out}")
    return 0


def add_file_input_options(q: argparse.ArgumentParser) -> None:
    """``--input PATH...`` and the reader options shared by ``lk3d predict seg`` and ``lk3d predict det``."""
    q.add_argument("--input", nargs="+", default=None, metavar="PATH",
                   help="point-cloud files, folders or globs (.ply .pcd .las .laz .bin .pcd.bin .npy .npz .txt "
                        ".csv); without it the configured dataset's --split is used")
    q.add_argument("--format", default=None, help="reader to use for every input instead of the extension's "
                                                  "(ply, pcd, las, kitti_bin, nuscenes_bin, npy, npz, text)")
    q.add_argument("--units", default="auto", help="metres per file unit: m, cm, mm, ft, us-ft or a number "
                                                   "(default auto: metres; LAS/LAZ from their CRS)")
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
        raise ValueError(f"checkpoint {args.checkpoint} holds a {predictor.task!r} model; use lk3d predict "
                         f"{predictor.task}")
    out = Path(args.output) if args.output else Path("predictions")
    rows = predict_files(predictor, paths, out, views=not args.no_views,
                         score_threshold=getattr(args, "score_threshold", 0.3),
                         intensity_scale=getattr(args, "intensity_scale", 1.0), verbose=args.verbose,
                         read_options=read_options(args))
    print(summary_table(rows, task))
    print(f"wrote {len(rows)} file(s) to {out}")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from ..training import load_trained_model
    if args.input:
        return cmd_predict_files(args, "seg", tile_size=args.tile_size, overlap=args.overlap, tta=args.tta)
    from ..training.distributed import resolve_device
    cfg, _ = checkpoint_config(args.checkpoint, args.overrides, "seg")
    device = resolve_device(args.device)
    model, payload = load_trained_model(Path(args.checkpoint), cfg, device)
    dataset, scenes = _dataset_for(cfg, args.split)
    out = Path(args.output) if args.output else Path(args.checkpoint).resolve().parent.parent / "predictions"
    written = write_predictions(model, dataset, scenes.class_names, out, device, args.limit)
    print(f"wrote {len(written)} scene(s) (PLY + PNG) to {out}")
    return 0


def write_predictions(model, dataset, class_names: Sequence[str], out: Path, device, limit: Optional[int] = None,
                      progress: bool = True) -> List[Path]:
    """Predict the first ``limit`` scenes of ``dataset``; write ``<scene>.ply`` and ``<scene>.png`` to ``out``."""
    from torch.utils.data import Subset

    from ..analysis.segmentation_views import plot_segmentation, write_labelled_ply
    from ..training import predict_scenes
    n = len(dataset) if limit is None else min(limit, len(dataset))
    pngs = []
    for pred in predict_scenes(model, Subset(dataset, range(n)), device, progress=progress):
        write_labelled_ply(out / f"{pred.name}.ply", pred.points, pred.pred, pred.labels, len(class_names))
        pngs.append(plot_segmentation(out / f"{pred.name}.png", pred.points, pred.pred, pred.labels, class_names,
                                      title=pred.name))
    return pngs


_EXAMPLE = "train.epochs=3 model.name=minkunet14a"


def register(verbs, top) -> None:
    """Add the ``seg`` task to ``train``, ``eval`` and ``predict``."""
    add_train_parser(verbs, "seg", "demo", "train a semantic-segmentation network", cmd_train, _EXAMPLE)
    add_checkpoint_parser(verbs, "eval", "seg", "evaluate a segmentation checkpoint (per-class table)", cmd_eval,
                          "scenes", _EXAMPLE)
    q = add_checkpoint_parser(verbs, "predict", "seg", "write coloured PLY + PNG per scene (or per --input file)",
                              cmd_predict, "scenes", _EXAMPLE)
    q.add_argument("--limit", type=int, default=None, help="at most this many scenes")
    add_file_input_options(q)
    q.add_argument("--tile-size", type=float, default=None, help="with --input: x-y tile edge in metres "
                   "for large scans (default: one pass, tiles only above 1.5 M voxels)")
    q.add_argument("--overlap", type=float, default=None, help="with --input: tile halo in metres "
                   "(default: the network's receptive field, which makes tiling exact)")
    q.add_argument("--tta", action="store_true", help="with --input: average 4 rotations x 2 mirrors")
    q.add_argument("--no-views", action="store_true", help="with --input: skip the PNG and HTML views")
