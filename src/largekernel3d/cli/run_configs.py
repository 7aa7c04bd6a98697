"""Shipped run configurations and ``--config`` / ``--set`` handling shared by the ``lk3d`` tasks.

Segmentation configurations are the YAML files in ``largekernel3d/cli/configs``, detection ones those in
``largekernel3d/cli/configs/det``; ``--config`` takes such a name or any YAML path, and ``--set section.key=value``
overrides entries (validated against the task's :class:`~largekernel3d.training.config.ConfigSchema`).
"""

from __future__ import annotations

import argparse
from importlib import resources
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

from ..training import config as C

CONFIG_PACKAGE = "largekernel3d.cli"
TASK_FOLDERS = {"seg": "configs", "det": "configs/det"}


def _folder(task: str):
    if task not in TASK_FOLDERS:
        raise ValueError(f"task must be one of {sorted(TASK_FOLDERS)}, got {task!r}")
    folder = resources.files(CONFIG_PACKAGE)
    for part in TASK_FOLDERS[task].split("/"):
        folder = folder / part
    return folder


def schema_of(task: str) -> C.ConfigSchema:
    """The configuration schema of ``task`` (``seg`` or ``det``)."""
    if task == "det":
        from ..training.det_config import DET_SCHEMA

        return DET_SCHEMA
    return C.SEG_SCHEMA


def shipped_configs(task: str = "seg") -> List[str]:
    """Names of the YAML configurations shipped with the package for ``task``."""
    return sorted(p.name[:-5] for p in _folder(task).iterdir() if p.name.endswith(".yaml"))


def read_config_source(source: str, task: str = "seg") -> Dict[str, Any]:
    """The YAML mapping of ``source``: an existing file path, or the name of a shipped config of ``task``."""
    path = Path(source).expanduser()
    if path.is_file():
        return C.read_yaml(path)
    name = source[:-5] if source.endswith(".yaml") else source
    res = _folder(task) / f"{name}.yaml"
    if not res.is_file():
        raise FileNotFoundError(
            f"--config {source}: no such file, and no shipped {task} config of that name "
            f"(shipped: {', '.join(shipped_configs(task))})"
        )
    with resources.as_file(res) as p:
        return C.read_yaml(p)


def load_run_config(
    source: str, overrides: Sequence[str] = (), output: Optional[str] = None, task: str = "seg"
) -> Dict[str, Any]:
    """Shipped/file config of ``task`` + ``--set`` overrides (+ ``--output``), validated."""
    sets = list(overrides) + ([f"output_dir={output}"] if output else [])
    return C.build_config(read_config_source(source, task), sets, source=f"config {source}", schema=schema_of(task))


def checkpoint_config(checkpoint: str, overrides: Sequence[str], task: str):
    """``(config of the checkpoint with the --set overrides applied, payload)`` of a ``task`` checkpoint."""
    from ..training.checkpoint import load_checkpoint

    payload = load_checkpoint(Path(checkpoint))
    cfg = C.build_config(payload["config"], overrides, source=f"checkpoint {checkpoint}", schema=schema_of(task))
    return cfg, payload


def add_overrides(p: argparse.ArgumentParser, example: str, what: str = "config entries") -> None:
    """The ``--set KEY=VALUE ...`` option (``args.overrides``), overriding ``what``."""
    p.add_argument(
        "--set",
        nargs="+",
        default=[],
        metavar="KEY=VALUE",
        dest="overrides",
        help=f"override {what}, e.g. --set {example}",
    )


def add_train_parser(verbs, task: str, default_config: str, help_text: str, func, example: str) -> None:
    """``lk3d train <task>`` with ``--config --output --resume --list-configs --print-config --set``."""
    p = verbs["train"].add_parser(task, help=help_text)
    p.add_argument(
        "--config", default=default_config, help=f"shipped config name or YAML path (default: {default_config})"
    )
    p.add_argument("--output", default=None, help="run folder (overrides output_dir)")
    p.add_argument("--resume", action="store_true", help="continue from <output>/checkpoints/last.pt")
    p.add_argument("--list-configs", action="store_true", help="list the shipped configs and exit")
    p.add_argument("--print-config", action="store_true", help="print the merged config and exit")
    add_overrides(p, example)
    p.set_defaults(func=func)


def add_checkpoint_parser(verbs, verb: str, task: str, help_text: str, func, items: str, example: str):
    """``lk3d <verb> <task>`` with ``--checkpoint --split --output --device --set``; returns the parser for
    the command's own options."""
    q = verbs[verb].add_parser(task, help=help_text)
    q.add_argument("--checkpoint", required=True, help=f"a checkpoint written by lk3d train {task}")
    q.add_argument("--split", choices=("val", "train"), default="val", help=f"{items} to use (default: val)")
    q.add_argument("--output", default=None, help="output folder (default: beside the run's checkpoints)")
    q.add_argument("--device", default="auto", help="auto | cpu | cuda[:N]")
    add_overrides(q, example)
    q.set_defaults(func=func)
    return q


def train(args: argparse.Namespace, task: str, trainer_class, summary: Optional[Callable[[Any], str]] = None):
    """The body of ``lk3d train <task>``: list or print configs, or train; returns ``(trainer, result)`` after
    a run (``None`` when only configs were listed or printed). After a run with a final validation, the main
    process prints ``summary(result)`` (the task's table and best score) when it is given. The process group of
    a ``torchrun`` launch is closed however the run ends."""
    if args.list_configs:
        for name in shipped_configs(task):
            print(name)
        return None
    cfg = load_run_config(args.config, args.overrides, args.output, task=task)
    if args.print_config:
        print(C.dump(cfg))
        return None
    trainer = trainer_class(cfg, resume=args.resume)
    try:
        result = trainer.fit()
    finally:
        if trainer.ctx.distributed:
            import torch.distributed as dist

            dist.destroy_process_group()
    if summary is not None and result.final_eval is not None and trainer.ctx.is_main:
        print(summary(result))
    return trainer, result


__all__ = [
    "CONFIG_PACKAGE",
    "schema_of",
    "shipped_configs",
    "read_config_source",
    "load_run_config",
    "checkpoint_config",
    "add_overrides",
    "add_train_parser",
    "add_checkpoint_parser",
    "train",
]
