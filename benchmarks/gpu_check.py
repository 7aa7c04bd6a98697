"""One command for a CUDA machine: the engine's dense-reference checks on the GPU, then the timing of its layers
and of the segmentation and detection networks in float32 and half precisions, written to a Markdown report.

Needs only torch and the project's pure-Python dependencies (no spconv, no pytest, no downloads: the inputs are a
generated indoor scene and a synthetic LiDAR frame unless ``--data`` points at the shared data folder, whose
``scannet/votenet_50k`` scene and ``pandaset`` sample are then used).

1. Checks (:mod:`gpu_checks.reference`): ``SubMConv3d`` (3³, 5³ dilated, 7³), strided ``SparseConv3d``,
   ``SparseInverseConv3d`` and ``SWLKConv3d`` (7³ with position encoding and dilated branch, 5³), forward and
   backward, against ``torch.nn.functional.conv3d`` / ``conv_transpose3d`` in float64 on the densified grid;
   float32, plus float16 / bfloat16 for the 3³, strided and SW-LK layers.
2. Timing (:mod:`gpu_checks.timing`): ``SubMConv3d`` 3³ / 7³ and SW-LK 7³ (32 → 32 channels) on the indoor
   scene's and the LiDAR frame's sites; LargeKernel3D-Seg and MinkUNet34C on the indoor scene at 2 cm; the shipped
   PandaSet CenterPoint configs (VoxelResBackBone8x, LargeKernel3D); forward and forward+backward in each of
   :data:`gpu_checks.timing.PRECISIONS` (unsupported combinations are reported as such).
3. The report (:mod:`gpu_checks.report`), rewritten after every measurement, so an interrupted run leaves the
   results it has.

``--budget-s`` bounds the whole run (default 420 s: under 8 minutes with start-up); repetitions are sized to it
and the cases it cannot reach are listed as skipped. ``--quick`` crops the scene and repeats less.
``--device cpu`` runs everything on the CPU at tiny sizes (a dry run of the script itself). Without CUDA and
without ``--device cpu`` the script exits with status 2 and says so; with a failed check, status 1.

Usage: ``python benchmarks/gpu_check.py --out gpu_report.md [--data ../shared/data] [--quick] [--budget-s 420]``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gpu_checks import reference, report, timing, workloads  # noqa: E402

DEFAULT_BUDGET_S = 420.0
QUICK_BUDGET_S = 150.0
CHECK_SHARE = 0.25
"""At most this share of the budget goes to the reference checks (they take seconds on a GPU)."""
LAYER_CHANNELS = {"full": 32, "tiny": 8}
TINY_POINTS, TINY_CROP_M = 3000, 0.6
"""The CPU dry run's indoor scene: a 0.6 m column of a 3,000-point generated scene."""
NO_CUDA = (
    "CUDA is not available to this torch ({version}, CUDA build: {cuda}): gpu_check.py needs a CUDA GPU. "
    "Run it on a CUDA machine, or pass --device cpu for a dry run of the script on the CPU at tiny sizes."
)


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("gpu_report.md"), help="Markdown report to write")
    parser.add_argument(
        "--device",
        choices=("cuda", "cpu"),
        default="cuda",
        help="cuda (default), or cpu: a dry run of the whole script at tiny sizes",
    )
    parser.add_argument(
        "--budget-s",
        type=float,
        default=None,
        help=f"wall-clock budget of the run in seconds (default {DEFAULT_BUDGET_S:g}, {QUICK_BUDGET_S:g} with --quick)",
    )
    parser.add_argument("--quick", action="store_true", help="a 2 m crop of the scene, at most 3 timed calls")
    parser.add_argument(
        "--data",
        type=Path,
        default=None,
        help="the shared data folder (with scannet/votenet_50k and pandaset); default: generated "
        "scene and synthetic LiDAR frame",
    )
    parser.add_argument(
        "--precisions",
        nargs="+",
        choices=timing.PRECISIONS,
        default=list(timing.PRECISIONS),
        help="precisions to time (default all)",
    )
    parser.add_argument(
        "--networks",
        nargs="*",
        default=None,
        help="networks to time, among " + ", ".join(NETWORK_NAMES) + " (default all; none: `--networks` alone)",
    )
    parser.add_argument("--no-layers", action="store_true", help="skip the layer timings")
    parser.add_argument("--no-checks", action="store_true", help="skip the dense-reference checks")
    args = parser.parse_args(argv)
    if args.budget_s is None:
        args.budget_s = QUICK_BUDGET_S if args.quick else DEFAULT_BUDGET_S
    if args.budget_s <= 0:
        parser.error(f"--budget-s must be positive, got {args.budget_s:g}")
    if args.networks is None:
        args.networks = list(NETWORK_NAMES)
    unknown = [n for n in args.networks if n not in NETWORK_NAMES]
    if unknown:
        parser.error(f"--networks: unknown {unknown}; choose among {list(NETWORK_NAMES)}")
    return args


NETWORK_NAMES = (workloads.LK_SEG, workloads.MINKUNET, workloads.DET_VOXELRES, workloads.DET_LK)


def resolve_device(name: str) -> torch.device:
    """``torch.device(name)``; ``SystemExit(2)`` with :data:`NO_CUDA` when CUDA is asked for and absent."""
    if name == "cuda" and not torch.cuda.is_available():
        print(NO_CUDA.format(version=torch.__version__, cuda=torch.version.cuda), file=sys.stderr)
        raise SystemExit(2)
    return torch.device(name)


# ------------------------------------------------------------------------------------------------
# workloads
# ------------------------------------------------------------------------------------------------


def layer_workloads(
    name: str, indices: torch.Tensor, shape: Sequence[int], channels: int, device: torch.device
) -> List[timing.Workload]:
    """SubMConv3d 3³ / 7³ and SW-LK 7³ (position encoding) on ``indices`` with random features."""
    import largekernel3d.sparse as lsp
    from largekernel3d.nn import SWLKConv3d

    g = torch.Generator().manual_seed(0)
    feats = torch.randn(indices.shape[0], channels, generator=g).to(device)
    idx = indices.to(device=device, dtype=torch.int32).contiguous()
    c = channels
    layers = {
        f"SubMConv3d 3³ {c}→{c}": lsp.SubMConv3d(c, c, 3, bias=False),
        f"SubMConv3d 7³ {c}→{c}": lsp.SubMConv3d(c, c, 7, bias=False),
        f"SW-LK 7³ {c}→{c}": SWLKConv3d(c, c, 7),
    }
    return [
        timing.layer_workload(f"{label}, {name}", reference.randomize_(m, i).to(device), feats, idx, shape)
        for i, (label, m) in enumerate(layers.items())
    ]


def build_workloads(
    args: argparse.Namespace, device: torch.device, tiny: bool
) -> Tuple[List[timing.Workload], List[str]]:
    """``(workloads, input lines)`` for the timing part."""
    lines: List[str] = []
    out: List[timing.Workload] = []
    seg_needed = not args.no_layers or any(n in args.networks for n in (workloads.LK_SEG, workloads.MINKUNET))
    det_needed = not args.no_layers or any(n in args.networks for n in (workloads.DET_VOXELRES, workloads.DET_LK))
    seg_batch = det = None
    if seg_needed:
        scene = workloads.load_seg_scene(
            args.data,
            points=TINY_POINTS if tiny else workloads.SEG_POINTS,
            crop_m=TINY_CROP_M if tiny else (2.0 if args.quick else None),
        )
        seg_batch = workloads.seg_batch(scene)
        lines.append(
            f"indoor scene: {scene.source} → {seg_batch.indices.shape[0]:,} voxels at "
            f"{workloads.SEG_VOXEL} m, grid {list(seg_batch.spatial_shape)}"
        )
    dets: Dict[str, workloads.DetSetup] = {}
    if det_needed:
        root = None if args.data is None else args.data / "pandaset"
        sets, source = workloads.det_overrides(root, tiny=tiny)
        for name in (workloads.DET_VOXELRES, workloads.DET_LK):
            if name in args.networks or (name == workloads.DET_VOXELRES and not args.no_layers):
                dets[name] = workloads.build_det(name, sets)
        det = next(iter(dets.values()))
        batch = det.batch()
        lines.append(
            f"LiDAR frame: {source} → {batch.coords.shape[0]:,} voxels, grid "
            f"{list(det.model.grid.sparse_shape)} (z, y, x)"
        )
    channels = LAYER_CHANNELS["tiny" if tiny else "full"]
    if not args.no_layers:
        out += layer_workloads("indoor 2 cm", seg_batch.indices, seg_batch.spatial_shape, channels, device)
        coords = det.batch().coords
        out += layer_workloads("LiDAR", coords, list(det.model.grid.sparse_shape), channels, device)
    for label in (workloads.LK_SEG, workloads.MINKUNET):
        if label in args.networks:
            torch.manual_seed(0)
            model = workloads.build_seg_network(label).to(device)
            out.append(timing.seg_workload(label, model, seg_batch.to(device)))
    for name, setup in dets.items():
        if name in args.networks:
            out.append(timing.det_workload(name, setup.model.to(device), setup.batch().to(device)))
            lines.append(f"{name}: {setup.describe()}")
    return out, lines


# ------------------------------------------------------------------------------------------------
# main
# ------------------------------------------------------------------------------------------------


def run_checks(
    size: reference.CheckSize,
    device: torch.device,
    budget: timing.Budget,
    on_result: Callable[[reference.CheckResult], None],
) -> List[reference.CheckResult]:
    """The reference checks in order, until ``budget`` (their share) is spent."""
    from tqdm import tqdm

    results = []
    checks = reference.all_checks(size, device)
    for name, thunk in tqdm(checks, desc="checks", leave=False):
        if budget.left() <= 0:
            res = reference.CheckResult(
                name, "", False, None, message="skipped: the checks' share of --budget-s was spent"
            )
        else:
            try:
                with timing.alarm_at(budget):
                    res = reference.run_check(name, thunk)
            except timing.BudgetExceeded:
                res = reference.CheckResult(name, "", False, None, message="interrupted at --budget-s")
        results.append(res)
        on_result(res)
    return results


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    device = resolve_device(args.device)
    tiny = device.type == "cpu"
    start = time.perf_counter()
    budget = timing.Budget.seconds(args.budget_s)
    env = report.environment(device)
    command = "python benchmarks/gpu_check.py " + " ".join(sys.argv[1:] if argv is None else argv)
    run_info = {
        "command": f"`{command.strip()}`",
        "budget": f"{args.budget_s:g} s",
        "sizes": "tiny (CPU dry run)" if tiny else ("quick" if args.quick else "full"),
    }
    checks: List[reference.CheckResult] = []
    timings: List[timing.Timing] = []
    inputs: List[str] = []

    def write(finished: bool) -> None:
        info = dict(run_info, **({"wall time": f"{time.perf_counter() - start:.0f} s"} if finished else {}))
        args.out.write_text(report.render(env, info, checks, timings, args.precisions, inputs, finished))

    if not args.no_checks:
        check_budget = timing.Budget(min(budget.deadline, time.perf_counter() + CHECK_SHARE * args.budget_s))
        size = reference.TINY if tiny else reference.FULL
        run_checks(size, device, check_budget, lambda r: (checks.append(r), write(False)))
    from tqdm import tqdm

    try:
        with timing.alarm_at(budget):
            cases, inputs[:] = build_workloads(args, device, tiny)
    except timing.BudgetExceeded:
        cases, inputs[:] = [], ["building the inputs and networks ran past --budget-s: no timings"]
    total = len(cases) * len(args.precisions) * 2
    with tqdm(total=total, desc="timing", leave=False) as bar:

        def on_result(t: timing.Timing) -> None:
            timings.append(t)
            bar.update()
            write(False)

        timing.run_cases(
            cases,
            args.precisions,
            timing.DeviceTimer(device),
            budget,
            1 if tiny else (3 if args.quick else 20),
            on_result,
            bar.set_description,
        )
    write(True)
    failed = [c.name for c in checks if not c.passed]
    print(
        f"wrote {args.out}: {len(checks) - len(failed)} of {len(checks)} checks passed, "
        f"{sum(t.status == 'ok' for t in timings)} of {len(timings)} timings",
        file=sys.stderr,
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
