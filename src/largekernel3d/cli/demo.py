"""``lk3d demo`` (what ``make demo`` runs): the whole segmentation pipeline on built-in data.

1. generate labelled indoor scenes (train and held-out validation streams),
2. train a small LargeKernel3D-Seg (config ``demo``) on the CPU (or a GPU when present),
3. evaluate the best checkpoint on the held-out scenes: per-class IoU table on the original points,
   next to the chance level and the majority-class baseline,
4. write coloured PLYs and PNGs (top-down + oblique, ground truth vs prediction vs errors).
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

from .seg import load_run_config, write_predictions

# Files a previous demo run left in its folder (removed before a fresh run; nothing else is touched).
_RUN_ENTRIES = ("checkpoints", "metrics.csv", "log.txt", "config.yaml", "tensorboard", "predictions",
                "results.md", "val_per_class.md", "val_per_class_points.csv", "val_per_class_voxels.csv",
                "best_per_class_points.csv", "best_per_class_voxels.csv")


def _clear_previous_run(folder: Path) -> None:
    for name in _RUN_ENTRIES:
        path = folder / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def cmd_demo(args: argparse.Namespace) -> int:
    from ..data import IGNORE_INDEX
    from ..training import SegmentationTrainer, evaluate, load_trained_model
    from ..training import setup
    from ..training.distributed import DistContext

    t0 = time.perf_counter()
    cfg = load_run_config(args.config, args.overrides, args.output)
    out = Path(cfg["output_dir"])
    if not args.resume:
        _clear_previous_run(out)
    d, m, t = cfg["data"], cfg["model"], cfg["train"]
    print(f"lk3d demo: {d['num_train_scenes']} generated training scenes, {d['num_val_scenes']} held-out "
          f"scenes ({d['points_per_scene']} points each, {100 * d['voxel_size']:.0f} cm voxels); "
          f"model {m['name']}, {t['epochs']} epochs; output in {out.resolve()}")
    trainer = SegmentationTrainer(cfg, resume=args.resume)
    result = trainer.fit()
    train_s = time.perf_counter() - t0

    ckpt = result.best_checkpoint or result.last_checkpoint
    model, payload = load_trained_model(ckpt, device=trainer.ctx.device)
    split = trainer.split
    val_set = setup.voxelize(split.val, cfg, train=False)
    if result.final_eval is not None and result.best_epoch == len(result.history):
        scores = result.final_eval  # the best checkpoint is the last epoch: its validation is this table
    else:
        scores = evaluate(model, val_set, split.num_classes, split.class_names, IGNORE_INDEX,
                          DistContext(device=trainer.ctx.device), batch_size=int(cfg["eval"]["batch_size"]),
                          progress=False)
    point = scores.point
    present = int((point.support > 0).sum())
    table = point.markdown(title=f"held-out generated scenes, original points (checkpoint {ckpt.name}, "
                                 f"epoch {payload['epoch']})")
    baseline = (f"- this model: mIoU {100 * point.miou:.1f} %, accuracy {100 * point.accuracy:.1f} %\n"
                f"- majority class (always '{split.class_names[int(point.support.argmax())]}'): mIoU "
                f"{100 * point.majority_miou:.1f} %, accuracy {100 * point.majority_accuracy:.1f} %\n"
                f"- uniform random guess over {split.num_classes} classes: accuracy "
                f"{100 / split.num_classes:.1f} % (mIoU about the same or lower); {present} classes occur "
                f"in these scenes\n"
                f"- voxels: mIoU {100 * scores.voxel.miou:.1f} %, accuracy {100 * scores.voxel.accuracy:.1f} %\n")
    epochs = ", ".join(f"{s:.0f}" for s in result.epoch_seconds)
    timing = (f"- training: {len(result.history)} epochs, seconds per epoch: {epochs}; "
              f"train + validation wall time {train_s:.0f} s\n")
    pngs = write_predictions(model, val_set, split.class_names, out / "predictions", trainer.ctx.device,
                             limit=int(args.pictures), progress=False)
    total = time.perf_counter() - t0
    report = (f"{table}\n{baseline}{timing}- total wall time {total:.0f} s\n"
              f"- pictures (ground truth | prediction | errors; top-down and oblique): "
              f"{', '.join(str(p) for p in pngs)}\n- coloured PLYs beside them; checkpoints in "
              f"{result.last_checkpoint.parent}\n")
    print()
    print(report)
    (out / "results.md").write_text(report)
    point.write_csv(out / "best_per_class_points.csv")
    scores.voxel.write_csv(out / "best_per_class_voxels.csv")
    print(f"(this report is also in {out / 'results.md'})")
    return 0


def register(verbs, top) -> None:
    """Add ``lk3d demo``."""
    p = top.add_parser("demo", help="train + evaluate a small LargeKernel3D-Seg on generated scenes (make demo)")
    p.add_argument("--config", default="demo", help="shipped config name or YAML path (default: demo)")
    p.add_argument("--output", default=None, help="output folder (default: runs/demo)")
    p.add_argument("--pictures", type=int, default=3, help="number of held-out scenes to draw (default: 3)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted demo run")
    p.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE", dest="overrides",
                   help="override config entries, e.g. --set train.epochs=3")
    p.set_defaults(func=cmd_demo)
