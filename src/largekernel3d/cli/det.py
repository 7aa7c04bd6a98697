"""``lk3d train det``, ``lk3d eval det``, ``lk3d predict det`` and ``lk3d data gt-database``: LiDAR 3D object
detection from the command line.

Configurations are YAML files shipped in ``largekernel3d/cli/configs/det`` (``--config demo_det``; ``lk3d train
det --list-configs`` lists them) or any YAML path, with overrides ``--set train.epochs=3 data.root=/data/kitti``.
``eval`` and ``predict`` rebuild the detector from the checkpoint's own configuration; ``--set`` there changes
the data side. Several processes: ``torchrun --nproc_per_node N -m largekernel3d.cli.main train det ...``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Dict, List, Sequence

from . import command_steps as steps
from .run_configs import add_checkpoint_parser, add_overrides, add_train_parser, load_run_config, train


def _train_summary(result) -> str:
    return (
        result.final_eval.markdown(title=f"validation frames, epoch {len(result.history)}")
        + "\n"
        + f"best {result.final_eval.score_name} {100 * result.best_score:.1f} at epoch {result.best_epoch}; "
        f"checkpoints in {result.last_checkpoint.parent}"
    )


def cmd_train(args: argparse.Namespace) -> int:
    from ..training.det_trainer import DetectionTrainer

    train(args, "det", DetectionTrainer, _train_summary)
    return 0


def _view_for(cfg: Dict[str, Any], split: str):
    from ..training import det_setup

    return det_setup.voxelize(steps.split_items(det_setup.build_frame_split(cfg), split, "frames"), cfg, train=False)


def _open(args: argparse.Namespace) -> steps.TrainedRun:
    from ..training.det_trainer import load_trained_detector

    return steps.open_checkpoint(args, "det", load_trained_detector)


def cmd_eval(args: argparse.Namespace) -> int:
    from ..training.det_evaluation import evaluate_detection
    from ..training.distributed import DistContext

    run = _open(args)
    view = _view_for(run.cfg, args.split)
    result = evaluate_detection(run.model, view, run.payload["class_names"], run.cfg, DistContext(device=run.device))
    title = f"{args.split} frames (epoch {run.payload['epoch']})"
    path = result.write(steps.output_folder(args, "eval"), f"{args.split}_ap", title=title)
    print(result.markdown(title=title))
    print(f"tables written to {path} (+ .csv)")
    return 0


def write_frame_outputs(
    prediction,
    frame,
    class_names: Sequence[str],
    out: Path,
    point_cloud_range=None,
    score_threshold: float = 0.3,
    views: bool = True,
) -> List[Path]:
    """Per frame: ``<name>.json`` (boxes, scores, classes), a KITTI label file when the frame has KITTI
    calibration, and unless ``views`` is off a bird's-eye-view PNG and a self-contained HTML 3D view."""
    stem = prediction.name.replace("/", "_")
    out.mkdir(parents=True, exist_ok=True)
    written = []
    keep = prediction.scores >= score_threshold
    record = {
        "frame": prediction.name,
        "box_format": "x y z dx dy dz yaw (vx vy), LiDAR frame, centre",
        "boxes": prediction.boxes[keep].round(4).tolist(),
        "scores": prediction.scores[keep].round(4).tolist(),
        "classes": [class_names[int(i)] for i in prediction.labels[keep]],
    }
    path = out / f"{stem}.json"
    path.write_text(json.dumps(record, indent=1))
    written.append(path)
    calib = frame.metadata.get("calib")
    if calib is not None and hasattr(calib, "P2"):
        from ..data.detection.kitti import write_kitti_labels

        path = out / f"{stem}.txt"
        write_kitti_labels(
            path,
            prediction.boxes[keep][:, :7],
            prediction.scores[keep],
            [class_names[int(i)] for i in prediction.labels[keep]],
            calib,
        )
        written.append(path)
    if views:
        from ..analysis.bev_view import render_bev
        from ..analysis.html_view import write_html_view

        path = out / f"{stem}.png"
        render_bev(
            frame.points,
            prediction.gt_boxes,
            prediction.gt_labels,
            prediction.boxes,
            prediction.labels,
            prediction.scores,
            class_names=class_names,
            point_cloud_range=point_cloud_range,
            path=path,
            title=f"{prediction.name}: ground truth (solid) and detections (dashed)",
            score_threshold=score_threshold,
        )
        written.append(path)
        path = out / f"{stem}.html"
        write_html_view(
            path,
            frame.points,
            boxes=prediction.boxes[keep],
            box_labels=prediction.labels[keep],
            box_scores=prediction.scores[keep],
            class_names=class_names,
            title=f"{prediction.name}: detections with score >= {score_threshold}",
        )
        written.append(path)
    return written


def cmd_predict(args: argparse.Namespace) -> int:
    if args.input:
        return steps.cmd_predict_files(args, "det", windows=args.windows, overlap=args.window_overlap)
    from ..training.det_evaluation import predict_frames

    run = _open(args)
    view = _view_for(run.cfg, args.split)
    out = steps.output_folder(args, "predictions")
    predictions = predict_frames(run.model, view, run.device, range(steps.item_count(len(view), args.limit)))
    position = {name: i for i, name in enumerate(view.frame_names)}
    for p in predictions:
        write_frame_outputs(
            p,
            view.frame(position[p.name]),
            run.payload["class_names"],
            out,
            run.cfg["data"]["point_cloud_range"],
            args.score_threshold,
            views=not args.no_views,
        )
    counts = [int((p.scores >= args.score_threshold).sum()) for p in predictions]
    print(
        f"wrote {len(predictions)} frame(s) to {out}: {sum(counts)} boxes with score >= {args.score_threshold} "
        f"({', '.join(f'{p.name}: {c}' for p, c in zip(predictions, counts))})"
    )
    return 0


def cmd_gt_database(args: argparse.Namespace) -> int:
    from ..data.detection.gt_sampling import build_gt_database
    from ..training import det_setup

    cfg = load_run_config(args.config, args.overrides, None, task="det")
    frames = det_setup.build_frame_split(cfg)
    out = Path(args.output)
    index = build_gt_database(frames.train, out, min_points=args.min_points)
    print(f"ground-truth database of {len(frames.train)} training frames written to {out} ({index})")
    return 0


_EXAMPLE = "train.epochs=3 data.root=/data/kitti"


def register(verbs, top) -> None:
    """Add the ``det`` task to ``train``, ``eval``, ``predict`` and ``data``."""
    add_train_parser(verbs, "det", "demo_det", "train a 3D object detector (CenterPoint)", cmd_train, _EXAMPLE)
    add_checkpoint_parser(
        verbs, "eval", "det", "evaluate a detection checkpoint (per-class AP table)", cmd_eval, "frames", _EXAMPLE
    )
    q = add_checkpoint_parser(
        verbs,
        "predict",
        "det",
        "write boxes (JSON, KITTI labels), BEV PNG and 3D HTML per frame (or per --input file)",
        cmd_predict,
        "frames",
        _EXAMPLE,
    )
    q.add_argument("--limit", type=int, default=None, help="at most this many frames")
    q.add_argument("--score-threshold", type=float, default=0.3, help="boxes drawn / written (default 0.3)")
    q.add_argument("--no-views", action="store_true", help="skip the PNG and HTML views")
    steps.add_file_input_options(q)
    q.add_argument(
        "--intensity-scale",
        type=float,
        default=1.0,
        help="with --input: multiply the files' intensity by this to match the training data (e.g. 1/255 for 8-bit)",
    )
    q.add_argument(
        "--windows",
        action="store_true",
        help="with --input: cover scans larger than the model's range with overlapping windows",
    )
    q.add_argument("--window-overlap", type=float, default=10.0, help="window overlap in metres (10)")

    g = verbs["data"].add_parser(
        "gt-database",
        help="cut the ground-truth objects of the training frames into a database for ground-truth sampling",
    )
    g.add_argument("--config", default="demo_det", help="detection config naming the dataset (default: demo_det)")
    g.add_argument("--output", required=True, help="database folder to write")
    g.add_argument("--min-points", type=int, default=5, help="objects with fewer points are left out (default 5)")
    add_overrides(g, _EXAMPLE)
    g.set_defaults(func=cmd_gt_database)
