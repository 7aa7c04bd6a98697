"""The ``lk3d`` command: ``lk3d <verb> [<task>] ...``.

Verbs with tasks (``train``, ``eval``, ``predict``, ``bench``) get one sub-parser each; every command
module adds its own tasks through ``register(verbs, top)`` so that each module owns one job. Before running
a command, the process's ``malloc`` is told to keep freed memory for reuse
(:func:`largekernel3d.sparse.keep_freed_memory`).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Dict, List, Optional

from ..sparse import keep_freed_memory

# Modules that contribute commands; each defines ``register(verbs, top)``.
COMMAND_MODULES = (
    "largekernel3d.cli.demo",
    "largekernel3d.cli.seg",
    "largekernel3d.cli.det",
    "largekernel3d.cli.models",
    "largekernel3d.cli.bench",
    "largekernel3d.cli.convert",
    "largekernel3d.cli.ablate",
    "largekernel3d.cli.analyze",
)
VERBS = {
    "train": "train a model",
    "eval": "evaluate a checkpoint",
    "predict": "run a checkpoint on scenes and write predictions",
    "bench": "benchmarks and the paper's analyses",
    "data": "prepare data (ground-truth database for detection)",
    "convert": "convert official LargeKernel3D checkpoints",
    "analyze": "analyses of networks (effective receptive field)",
}


def build_parser() -> argparse.ArgumentParser:
    """The full ``lk3d`` argument parser."""
    parser = argparse.ArgumentParser(prog="lk3d", description="LargeKernel3D: sparse 3D CNNs with large kernels")
    top = parser.add_subparsers(dest="verb", metavar="<command>")
    top.required = True
    verbs: Dict[str, argparse._SubParsersAction] = {}
    for verb, help_text in VERBS.items():
        p = top.add_parser(verb, help=help_text)
        sub = p.add_subparsers(dest="task", metavar="<task>")
        sub.required = True
        verbs[verb] = sub
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(verbs, top)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point of the ``lk3d`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    keep_freed_memory()  # repeated passes reuse freed buffers instead of faulting them in again
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError, KeyError) as err:
        print(f"lk3d: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
