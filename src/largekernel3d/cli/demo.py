"""``lk3d demo`` (what ``make demo`` runs): the segmentation and the detection pipelines on built-in data.

Segmentation (``--task seg``, config ``demo``):

1. generate labelled indoor scenes (train and held-out validation streams),
2. train a small LargeKernel3D-Seg on the CPU (or a GPU when present),
3. evaluate the best checkpoint on the held-out scenes: per-class IoU table on the original points,
   next to the chance level and the majority-class baseline,
4. write coloured PLYs and PNGs (top-down + oblique, ground truth vs prediction vs errors).

Detection (``--task det``, config ``demo_det``):

1. generate LiDAR frames with the synthetic spinning LiDAR (train and held-out streams),
2. train a small LargeKernel3D CenterPoint,
3. evaluate the best checkpoint on the held-out frames: per-class AP next to a chance-level baseline
   (:mod:`largekernel3d.training.det_baselines`),
4. write bird's-eye-view PNGs, self-contained HTML 3D views and the boxes as JSON per held-out frame.

``--task all`` (the default) runs both.
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

from .run_configs import add_overrides, load_run_config
from .seg import write_predictions

# Files a previous demo run left in its folder (removed before a fresh run; nothing else is touched).
_RUN_ENTRIES = (
    "checkpoints",
    "metrics.csv",
    "log.txt",
    "config.yaml",
    "tensorboard",
    "predictions",
    "results.md",
    "val_per_class.md",
    "val_per_class_points.csv",
    "val_per_class_voxels.csv",
    "best_per_class_points.csv",
    "best_per_class_voxels.csv",
    "val_ap.md",
    "val_ap.csv",
    "best_ap.csv",
)


def _clear_previous_run(folder: Path) -> None:
    for name in _RUN_ENTRIES:
        path = folder / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def cmd_demo(args: argparse.Namespace) -> int:
    if args.task in ("seg", "all"):
        seg_demo(args)
    if args.task in ("det", "all"):
        det_demo(args)
    return 0


def seg_demo(args: argparse.Namespace) -> None:
    """The segmentation demo (module docstring)."""
    from ..data import IGNORE_INDEX
    from ..training import SegmentationTrainer, evaluate, load_trained_model, setup
    from ..training.distributed import DistContext

    t0 = time.perf_counter()
    cfg = load_run_config(args.config, args.overrides, args.output)
    print("== lk3d demo: semantic segmentation ==")
    out = Path(cfg["output_dir"])
    if not args.resume:
        _clear_previous_run(out)
    d, m, t = cfg["data"], cfg["model"], cfg["train"]
    print(
        f"lk3d demo: {d['num_train_scenes']} generated training scenes, {d['num_val_scenes']} held-out "
        f"scenes ({d['points_per_scene']} points each, {100 * d['voxel_size']:.0f} cm voxels); "
        f"model {m['name']}, {t['epochs']} epochs; output in {out.resolve()}"
    )
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
        scores = evaluate(
            model,
            val_set,
            split.num_classes,
            split.class_names,
            IGNORE_INDEX,
            DistContext(device=trainer.ctx.device),
            batch_size=int(cfg["eval"]["batch_size"]),
            progress=False,
        )
    point = scores.point
    present = int((point.support > 0).sum())
    table = point.markdown(
        title=f"held-out generated scenes, original points (checkpoint {ckpt.name}, epoch {payload['epoch']})"
    )
    baseline = (
        f"- this model: mIoU {100 * point.miou:.1f} %, accuracy {100 * point.accuracy:.1f} %\n"
        f"- majority class (always '{split.class_names[int(point.support.argmax())]}'): mIoU "
        f"{100 * point.majority_miou:.1f} %, accuracy {100 * point.majority_accuracy:.1f} %\n"
        f"- uniform random guess over {split.num_classes} classes: accuracy "
        f"{100 / split.num_classes:.1f} % (mIoU about the same or lower); {present} classes occur "
        f"in these scenes\n"
        f"- voxels: mIoU {100 * scores.voxel.miou:.1f} %, accuracy {100 * scores.voxel.accuracy:.1f} %\n"
    )
    epochs = ", ".join(f"{s:.0f}" for s in result.epoch_seconds)
    timing = (
        f"- training: {len(result.history)} epochs, seconds per epoch: {epochs}; "
        f"train + validation wall time {train_s:.0f} s\n"
    )
    pngs = write_predictions(
        model,
        val_set,
        split.class_names,
        out / "predictions",
        trainer.ctx.device,
        limit=int(args.pictures),
        progress=False,
    )
    total = time.perf_counter() - t0
    report = (
        f"{table}\n{baseline}{timing}- total wall time {total:.0f} s\n"
        f"- pictures (ground truth | prediction | errors; top-down and oblique): "
        f"{', '.join(str(p) for p in pngs)}\n- coloured PLYs beside them; checkpoints in "
        f"{result.last_checkpoint.parent}\n"
    )
    print()
    print(report)
    (out / "results.md").write_text(report)
    point.write_csv(out / "best_per_class_points.csv")
    scores.voxel.write_csv(out / "best_per_class_voxels.csv")
    print(f"(this report is also in {out / 'results.md'})")


def det_demo(args: argparse.Namespace) -> None:
    """The detection demo (module docstring)."""
    from ..training.det_baselines import class_box_statistics, random_box_predictions
    from ..training.det_evaluation import predict_frames, score_predictions
    from ..training.det_trainer import DetectionTrainer, load_trained_detector
    from .det import write_frame_outputs

    t0 = time.perf_counter()
    cfg = load_run_config(args.det_config, args.det_overrides, args.det_output, task="det")
    out = Path(cfg["output_dir"])
    if not args.resume:
        _clear_previous_run(out)
    d, m, t = cfg["data"], cfg["model"], cfg["train"]
    print("== lk3d demo: 3D object detection ==")
    print(
        f"lk3d demo: {d['num_train_frames']} generated training LiDAR frames and {d['num_val_frames']} held-out "
        f"frames ({d['synthetic_beams']}-beam spinning LiDAR on generated streets); model {m['name']}, "
        f"{t['epochs']} epochs; output in {out.resolve()}"
    )
    trainer = DetectionTrainer(cfg, resume=args.resume)
    result = trainer.fit()
    train_s = time.perf_counter() - t0

    ckpt = result.best_checkpoint or result.last_checkpoint
    model, payload = load_trained_detector(ckpt, device=trainer.ctx.device)
    class_names = list(payload["class_names"])
    predictions = predict_frames(model, trainer.val_set, trainer.ctx.device, progress=False)
    metric = "generic"
    scores = score_predictions(predictions, class_names, metric, cfg["eval"])
    stats = class_box_statistics((trainer.split.train[i] for i in range(len(trainer.split.train))), len(class_names))
    baseline = score_predictions(
        random_box_predictions(predictions, stats, d["point_cloud_range"], seed=0), class_names, metric, cfg["eval"]
    )
    rows = "\n".join(
        f"| {c} | {100 * scores.per_class_ap[c]:.1f} | {100 * baseline.per_class_ap[c]:.1f} |" for c in class_names
    )
    comparison = (
        f"| class | AP, this model | AP, chance-level boxes |\n| --- | ---: | ---: |\n{rows}\n"
        f"| **mAP** | **{100 * scores.score:.1f}** | {100 * baseline.score:.1f} |\n"
    )
    pictures = []
    for p in predictions[: int(args.pictures)]:
        index = trainer.val_set.frame_names.index(p.name)
        written = write_frame_outputs(
            p, trainer.val_set.frame(index), class_names, out / "predictions", d["point_cloud_range"]
        )
        pictures += [w for w in written if w.suffix in (".png", ".html")]
    total = time.perf_counter() - t0
    epochs = ", ".join(f"{s:.0f}" for s in result.epoch_seconds)
    title = f"held-out generated frames (checkpoint {ckpt.name}, epoch {payload['epoch']})"
    report = (
        f"{scores.markdown(title)}\n"
        f"{comparison}\n"
        f"- AP: centre-distance matching in the bird's-eye view, mean over 0.5 / 1 / 2 / 4 m, 40 recall "
        f"points; chance-level boxes: each class's mean training size and count per frame at uniform random "
        f"positions, yaws and scores\n"
        f"- training: {len(result.history)} epochs, seconds per epoch: {epochs}; train + validation wall time "
        f"{train_s:.0f} s; total {total:.0f} s\n"
        f"- pictures (bird's-eye view PNG, 3D view HTML): {', '.join(str(p) for p in pictures)}\n"
        f"- checkpoints in {result.last_checkpoint.parent}\n"
    )
    print()
    print(report)
    (out / "results.md").write_text(report)
    scores.result.to_csv(out / "best_ap.csv")
    print(f"(this report is also in {out / 'results.md'})")


def register(verbs, top) -> None:
    """Add ``lk3d demo``."""
    p = top.add_parser(
        "demo",
        help="train + evaluate a small LargeKernel3D-Seg on generated scenes and a small "
        "LargeKernel3D CenterPoint on generated LiDAR frames (make demo)",
    )
    p.add_argument("--task", choices=("all", "seg", "det"), default="all", help="which demo(s) to run (default: all)")
    p.add_argument("--config", default="demo", help="segmentation config name or YAML path (default: demo)")
    p.add_argument("--output", default=None, help="segmentation output folder (default: runs/demo)")
    p.add_argument("--det-config", default="demo_det", help="detection config name or YAML path (default: demo_det)")
    p.add_argument("--det-output", default=None, help="detection output folder (default: runs/demo_det)")
    p.add_argument("--pictures", type=int, default=3, help="number of held-out scenes / frames to draw (default: 3)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted demo run")
    add_overrides(p, "train.epochs=3", "segmentation config entries")
    p.add_argument(
        "--det-set",
        nargs="+",
        default=[],
        metavar="KEY=VALUE",
        dest="det_overrides",
        help="override detection config entries, e.g. --det-set train.epochs=3",
    )
    p.set_defaults(func=cmd_demo)
