"""Shipped run configurations and ``--config`` / ``--set`` handling shared by the ``lk3d`` tasks.

Segmentation configurations are the YAML files in ``largekernel3d/cli/configs``, detection ones those in
``largekernel3d/cli/configs/det``; ``--config`` takes such a name or any YAML path, and ``--set section.key=value``
overrides entries (validated against the task's :class:`~largekernel3d.training.config.ConfigSchema`).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

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
        raise FileNotFoundError(f"--config {source}: no such file, and no shipped {task} config of that name "
                                f"(shipped: {', '.join(shipped_configs(task))})")
    with resources.as_file(res) as p:
        return C.read_yaml(p)


def load_run_config(source: str, overrides: Sequence[str] = (), output: Optional[str] = None,
                    task: str = "seg") -> Dict[str, Any]:
    """Shipped/file config of ``task`` + ``--set`` overrides (+ ``--output``), validated."""
    sets = list(overrides) + ([f"output_dir={output}"] if output else [])
    return C.build_config(read_config_source(source, task), sets, source=f"config {source}", schema=schema_of(task))


__all__ = ["CONFIG_PACKAGE", "schema_of", "shipped_configs", "read_config_source", "load_run_config"]
