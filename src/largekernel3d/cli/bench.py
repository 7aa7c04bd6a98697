"""``lk3d bench <task>``: benchmarks and the paper's analyses.

* ``lk3d bench efficiency``: parameters and forward latency of plain submanifold convs vs SW-LK convs for
  growing kernels on a real frame (KITTI 000001 when the shared data is present), written as
  ``efficiency.md`` and ``efficiency.png`` (see :mod:`largekernel3d.analysis.efficiency`).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import List

DEFAULT_DATA_ROOT = Path("..") / "shared" / "data"


def _kernel_list(text: str) -> List[int]:
    try:
        ks = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--kernels must be comma-separated odd ints, got {text!r}") from None
    if not ks:
        raise argparse.ArgumentTypeError("--kernels is empty")
    return ks


def cmd_efficiency(args: argparse.Namespace) -> int:
    from ..analysis.efficiency import run_efficiency
    from .command_steps import set_threads

    set_threads(args.threads)
    md, png, rows = run_efficiency(
        Path(args.out_dir),
        args.kernels,
        args.channels,
        args.repeats,
        args.plain_budget_s,
        Path(args.data_root),
        num_points=args.num_points,
    )
    print(md.read_text())
    print(f"wrote {md} and {png}")
    return 0


def register(verbs, top) -> None:
    """Add ``lk3d bench efficiency``."""
    from ..analysis.efficiency import DEFAULT_KERNELS

    p = verbs["bench"].add_parser("efficiency", help="params and latency: plain SubMConv3d vs SW-LK per kernel size")
    p.add_argument("--out-dir", default="outputs/efficiency", help="folder for efficiency.md / .png")
    p.add_argument(
        "--kernels",
        type=_kernel_list,
        default=list(DEFAULT_KERNELS),
        help="comma-separated odd kernel sizes (default: 3,5,...,17)",
    )
    p.add_argument("--channels", type=int, default=32, help="input = output channels (default: 32)")
    p.add_argument("--repeats", type=int, default=3, help="timed runs per layer, median reported (default: 3)")
    p.add_argument(
        "--plain-budget-s",
        type=float,
        default=30.0,
        help="skip the plain conv once its predicted forward time exceeds this (default: 30)",
    )
    p.add_argument(
        "--data-root",
        default=str(DEFAULT_DATA_ROOT),
        help="shared data folder with kitti/training/velodyne/000001.bin (default: ../shared/data); "
        "a generated scene is used when it is missing",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch (and numba) threads; 1 gives stable timings on a shared machine (default: torch's)",
    )
    p.add_argument("--num-points", type=int, default=100_000, help="points of the generated fallback scene")
    p.set_defaults(func=cmd_efficiency)


__all__ = ["register", "cmd_efficiency"]
