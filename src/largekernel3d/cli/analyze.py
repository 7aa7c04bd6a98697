"""``lk3d analyze <task>``: analyses of trained or freshly initialised networks.

* ``lk3d analyze erf``: the effective receptive field (:mod:`largekernel3d.analysis.erf`) of a network and a
  second one to compare with (default: MinkUNet34C vs LargeKernel3D-Seg on generated indoor scenes), at a chosen
  stage, with random weights and, given checkpoints, trained ones. Writes ``erf.png`` (heatmaps), ``erf.md`` and
  ``erf.json`` (radii holding 20 / 50 / 90 % of the gradient mass, share beyond 0.5 m) and one ``.npz`` per
  network (the accumulated distribution, :meth:`~largekernel3d.analysis.erf.ERFResult.load`).

Examples::

    lk3d analyze erf                                             # built-in generated scenes, random init
    lk3d analyze erf --model minkunet34c --compare largekernel3d_seg --checkpoint A/best.pt \\
        --compare-checkpoint B/best.pt --dataset scannet --data-root ../shared/data/scannet --centres 32
    lk3d analyze erf --model centerpoint_voxelres --compare centerpoint_largekernel3d --dataset pandaset \\
        --data-root ../shared/data/pandaset --stage conv3
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Dict, List, Optional

from .command_steps import set_threads
from .run_configs import add_overrides

SEG_DEFAULTS = ("minkunet34c", "largekernel3d_seg")
DET_DEFAULTS = ("centerpoint_voxelres", "centerpoint_largekernel3d")
# detection configs shipped per dataset (their data sections: range, voxel size, point columns)
DET_BASE_CONFIGS = {
    "synthetic": "demo_det",
    "pandaset": "pandaset_centerpoint_largekernel3d",
    "kitti": "kitti_centerpoint_largekernel3d",
    "nuscenes": "nuscenes_centerpoint_largekernel3d",
}
DEFAULT_SEG_VOXEL = 0.1


def _checkpoint_config(path: Optional[str]) -> Optional[Dict[str, Any]]:
    if path is None:
        return None
    from ..training.checkpoint import load_checkpoint

    return dict(load_checkpoint(Path(path))["config"])


def _base_config(task: str, dataset: Optional[str], source: Optional[str]) -> Dict[str, Any]:
    from ..training import config as C
    from .run_configs import read_config_source, schema_of

    if task == "det" and source is None:
        dataset = dataset or "synthetic"
        if dataset not in DET_BASE_CONFIGS:
            raise ValueError(
                f"--dataset {dataset!r} is not a detection dataset; choose one of {sorted(DET_BASE_CONFIGS)}"
            )
        source = DET_BASE_CONFIGS[dataset]
    data = read_config_source(source, task) if source is not None else {}
    return C.build_config(data, (), source=f"config {source}", schema=schema_of(task))


def _names(args: argparse.Namespace, cfg_a: Optional[Dict], cfg_b: Optional[Dict]):
    from ..analysis.erf_inputs import task_of

    first = args.model or (cfg_a["model"]["name"] if cfg_a else SEG_DEFAULTS[0])
    task = task_of(first)
    if cfg_a and args.model and args.model != cfg_a["model"]["name"]:
        raise ValueError(
            f"--model {args.model} but --checkpoint holds a {cfg_a['model']['name']}; drop --model or "
            f"give a checkpoint of that network"
        )
    if cfg_b and args.compare and args.compare != cfg_b["model"]["name"]:
        raise ValueError(f"--compare {args.compare} but --compare-checkpoint holds a {cfg_b['model']['name']}")
    second = args.compare or (cfg_b["model"]["name"] if cfg_b else (SEG_DEFAULTS if task == "seg" else DET_DEFAULTS)[1])
    if task_of(second) != task:
        raise ValueError(
            f"--model {first} and --compare {second} are not of one task (segmentation network vs "
            f"detector); compare two of the same kind"
        )
    return task, first, second


def _overrides(args: argparse.Namespace, task: str, ckpt: Optional[Dict]) -> List[str]:
    sets = []
    if args.dataset:
        sets.append(f"data.dataset={args.dataset}")
    if args.data_root:
        sets.append(f"data.root={args.data_root}")
    if task == "seg":
        voxel = args.voxel_size or (None if ckpt or args.config else DEFAULT_SEG_VOXEL)
        if voxel:
            sets.append(f"data.voxel_size={voxel}")
        if args.points:
            sets.append(f"data.points_per_scene={args.points}")
    elif args.voxel_size or args.points:
        raise ValueError(
            "--voxel-size and --points are segmentation options; a detector's grid comes from its "
            "config (--set data.voxel_size=[x,y,z] data.point_cloud_range=[...])"
        )
    return sets + list(args.overrides)


def _table(results, settings: Dict[str, Any]) -> str:
    lines = [
        f"# Effective receptive field ({settings['stage']})",
        "",
        f"Scenes: {', '.join(settings['scenes'])} ({settings['dataset']}), voxel size "
        f"{settings['voxel_size_m']} m ({'/'.join(settings['axes'])}), {settings['centres_per_scene']} centres "
        f"per scene, seed {settings['seed']}. Radii hold 20 / 50 / 90 % of the gradient mass (Euclidean, "
        f"input voxels and metres); the last column is the share of the mass farther than 0.5 m.",
        "",
        "| network | centres | r20 vox / m | r50 vox / m | r90 vox / m | mass > 0.5 m |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for res in results:
        s = res.summary()
        cells = [f"{s['radius_voxels'][k]:.1f} / {s['radius_m'][k]:.2f}" for k in ("20%", "50%", "90%")]
        skipped = f" ({s['skipped_centres']} zero)" if s["skipped_centres"] else ""
        lines.append(
            f"| {res.label} | {s['centres']}{skipped} | "
            + " | ".join(cells)
            + f" | {100 * s['share_beyond_0.5m']:.1f} % |"
        )
    return "\n".join(lines) + "\n"


def cmd_erf(args: argparse.Namespace) -> int:

    from ..analysis.erf import effective_receptive_field
    from ..analysis.erf_inputs import build_subject, check_same_inputs, load_split, model_section, scene_inputs
    from ..analysis.erf_plot import plot_erf_grid
    from ..training import config as C
    from .run_configs import schema_of

    for key in ("centres", "scenes"):
        if getattr(args, key) < 1:
            raise ValueError(f"--{key} must be >= 1, got {getattr(args, key)}")
    set_threads(args.threads)
    ckpt_a, ckpt_b = _checkpoint_config(args.checkpoint), _checkpoint_config(args.compare_checkpoint)
    task, first, second = _names(args, ckpt_a, ckpt_b)
    cfg = dict(ckpt_a) if ckpt_a else _base_config(task, args.dataset, args.config)
    cfg["model"] = model_section(cfg["model"], first)
    cfg = C.build_config(cfg, _overrides(args, task, ckpt_a), source="lk3d analyze erf", schema=schema_of(task))
    if ckpt_a and ckpt_b:
        try:
            check_same_inputs(ckpt_a, ckpt_b, task)
        except ValueError as err:
            print(f"warning: {err}")
    cfg_b = dict(cfg, model=dict(ckpt_b["model"]) if ckpt_b else model_section(cfg["model"], second))
    split, class_names = load_split(cfg, task)
    inputs, voxel, axes, scene_names = scene_inputs(cfg, task, split, args.scenes)
    rows = [
        [
            build_subject(cfg, task, None, args.seed, class_names),
            build_subject(cfg_b, task, None, args.seed, class_names),
        ]
    ]
    if args.checkpoint or args.compare_checkpoint:
        if not (args.checkpoint and args.compare_checkpoint):
            raise ValueError("give both --checkpoint and --compare-checkpoint for the trained row (or neither)")
        rows.append(
            [
                build_subject(cfg, task, args.checkpoint, args.seed, class_names),
                build_subject(cfg_b, task, args.compare_checkpoint, args.seed, class_names),
            ]
        )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = []
    for r, row in enumerate(rows):
        results.append([])
        for n, subject in enumerate(row):
            res = effective_receptive_field(
                subject.network,
                inputs,
                stage=args.stage,
                centres_per_scene=args.centres,
                voxel_size=voxel,
                axes=axes,
                label=subject.label,
                seed=args.seed,
            )
            res.save(out / f"erf_{r}_{n}.npz")
            results[-1].append(res)
    flat = [res for row in results for res in row]
    settings = {
        "stage": args.stage,
        "dataset": cfg["data"]["dataset"],
        "scenes": scene_names,
        "voxel_size_m": list(voxel),
        "axes": list(axes),
        "centres_per_scene": args.centres,
        "seed": args.seed,
        "checkpoints": [args.checkpoint, args.compare_checkpoint],
    }
    md = out / "erf.md"
    md.write_text(_table(flat, settings))
    (out / "erf.json").write_text(
        json.dumps({"settings": settings, "results": [r.summary() for r in flat]}, indent=2) + "\n"
    )
    png = plot_erf_grid(
        results,
        out / "erf.png",
        half_width_m=args.half_width,
        title=f"effective receptive field at stage '{args.stage}' ({cfg['data']['dataset']}, "
        f"{len(inputs)} scenes x {args.centres} centres); log10(E / max E), x / y offsets in m",
    )
    print(md.read_text())
    print(f"wrote {png}, {md}, {out / 'erf.json'}")
    return 0


def register(verbs, top) -> None:
    """Add ``lk3d analyze erf``."""
    from ..analysis.erf import OUTPUT_STAGE

    p = verbs["analyze"].add_parser("erf", help="effective receptive field: plain 3^3 vs large-kernel network")
    p.add_argument(
        "--model", default=None, help=f"a build_model name (default: the checkpoint's, else {SEG_DEFAULTS[0]})"
    )
    p.add_argument(
        "--compare",
        default=None,
        help=f"the network to compare with (default: the compare checkpoint's, else {SEG_DEFAULTS[1]} / "
        f"{DET_DEFAULTS[1]} for detectors)",
    )
    p.add_argument("--checkpoint", default=None, help="trained weights of --model (adds the 'trained' row)")
    p.add_argument("--compare-checkpoint", default=None, help="trained weights of --compare")
    p.add_argument(
        "--config",
        default=None,
        help="run config (shipped name or YAML) for the data side; default: the checkpoint's, else the "
        "segmentation defaults / the shipped detection config of --dataset",
    )
    p.add_argument(
        "--dataset",
        default=None,
        help="generated | scannet | s3dis | semantickitti (segmentation), synthetic | pandaset | kitti | "
        "nuscenes (detection); default: the config's (generated / synthetic)",
    )
    p.add_argument("--data-root", default=None, help="data folder (not needed for generated / synthetic)")
    p.add_argument(
        "--voxel-size",
        type=float,
        default=None,
        help=f"segmentation voxel size in m (default: the checkpoint's or --config's, else {DEFAULT_SEG_VOXEL})",
    )
    p.add_argument("--points", type=int, default=None, help="points per generated scene (default: the config's)")
    p.add_argument(
        "--stage",
        default=OUTPUT_STAGE,
        help="'output' (the network's output; for detectors the backbone's encoded tensor) or a module "
        "name: encoder.0 .. encoder.3, decoder.0 .. decoder.3, stem (segmentation), conv_input, "
        "conv1 .. conv4, conv_out (detection backbone)",
    )
    p.add_argument("--centres", type=int, default=16, help="centre sites per scene (default: 16)")
    p.add_argument("--scenes", type=int, default=2, help="held-out scenes / frames (default: 2)")
    p.add_argument("--seed", type=int, default=0, help="random init and centre choice (default: 0)")
    p.add_argument(
        "--half-width",
        type=float,
        default=None,
        help="half side of the plotted window in m (default: 1.1 x the largest 90 %% radius)",
    )
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--out", default="runs/erf", help="output folder (default: runs/erf)")
    add_overrides(p, "data.val_fraction=0.3", "config entries of the data side")
    p.set_defaults(func=cmd_erf)


__all__ = ["register", "cmd_erf"]
