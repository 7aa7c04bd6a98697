"""Network speed: the paper-config LargeKernel3DSeg on one ScanNet scene at 0.02 m, against the same
architecture built from spconv 2.3.8 with plain 7³ convs (what the official V1 code runs), in one process.

* forward (eval mode, ``torch.no_grad``, kernel maps built in every pass): ours SW-LK 7³ (the paper
  config), spconv plain 7³, our plain 7³ (same weights as spconv's) and our MinkUNet34C (3³, the baseline);
  at 1 thread and at the default thread count.
* forward + backward (train mode): ours only (spconv has no CPU backward for submanifold convs), SW-LK 7³
  vs our plain 7³ and MinkUNet34C.
* agreement: spconv and our plain-7³ builds with the same weights, per-voxel logits compared.
* GEMM floor of the SW-LK forward: every ``torch.mm``/``addmm`` of one pass (shapes recorded by
  ``torch.profiler``), timed again at ``torch.mm``'s best in-cache rate (``common.gemm_floor_ms``). For an
  engine whose products run at ``torch.mm``'s speed, the 3× target minus this floor is what the kernel
  maps, gathers, bag sums, scatters, batch norms, ReLUs and residual adds may cost together. Our fused
  products run in SIMD register panels at about twice ``torch.mm``'s rate on these shapes, so ours can
  spend less than the floor.

Scene: ``../shared/data/scannet/votenet_50k/scene0000_00`` (50 k points); a generated indoor scene of as
many points when the shared data is absent. ``quick`` crops the scene to a 2 m × 2 m column and repeats
less. Times are medians after a warm-up round (numba compilation and first-touch costs excluded), with the
compared networks called alternately in every round so that the drift of a shared machine hits them alike.
Our plain-7³ build (the slow one) runs once per measurement, after every kernel it uses is compiled.

Run standalone: ``python benchmarks/bench_seg_network.py [--quick]``.
"""

from __future__ import annotations

import sys
import time
from collections import defaultdict
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import torch
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import SHARED_DATA, gemm_floor_ms, load_spconv, markdown_table, num_threads, time_alternating  # noqa: E402

from largekernel3d import data as D  # noqa: E402
from largekernel3d.models import build_model, count_parameters  # noqa: E402
from largekernel3d.sparse import keep_freed_memory  # noqa: E402
from largekernel3d.nn import SWLKConv3d  # noqa: E402
from largekernel3d.sparse import SparseConvolution  # noqa: E402
from largekernel3d.sparse.dispatch import Dataflow  # noqa: E402

SCANNET = SHARED_DATA / "scannet" / "votenet_50k"
SCENE = "scene0000_00"
VOXEL_SIZE = 0.02
NUM_CLASSES = 20
QUICK_CROP_M = 2.0

LK = "ours SW-LK 7³ (paper)"
PLAIN7 = "ours plain 7³"
BASELINE = "ours MinkUNet34C (3³)"
SPCONV_PLAIN7 = "spconv 2.3.8 plain 7³"
# our networks: label -> model config (without channels/classes); spconv builds the PLAIN7 config
NETWORKS = {
    LK: {"name": "largekernel3d_seg"},
    PLAIN7: {"name": "largekernel3d_seg", "stage_conv_types": "plain"},
    BASELINE: {"name": "minkunet34c"},
}


def load_scene(quick: bool) -> Tuple[D.SegBatch, str]:
    """The voxelised benchmark scene and a line describing it."""
    if SCANNET.is_dir():
        scene = D.ScanNetDataset(SCANNET, scenes=[SCENE])[0]
        source = f"ScanNet {SCENE} (votenet_50k, {scene.num_points:,} points)"
    else:
        scene = D.GeneratedIndoorDataset(1, seed=0, points_per_scene=50_000)[0]
        source = f"generated indoor scene ({scene.num_points:,} points; ../shared/data absent)"
    if quick:
        lo = scene.points[:, :2].min(axis=0)
        keep = ((scene.points[:, :2] - lo) < QUICK_CROP_M).all(axis=1)
        labels = None if scene.labels is None else scene.labels[keep]
        scene = D.PointCloudScene(scene.name, scene.points[keep], scene.colors[keep], labels)
        source += f", cropped to a {QUICK_CROP_M:g} m x {QUICK_CROP_M:g} m column ({scene.num_points:,} points)"
    batch = D.collate_segmentation([D.voxelize_scene(scene, VOXEL_SIZE, NUM_CLASSES)])
    return batch, source


def forward_fn(model: torch.nn.Module, make_input: Callable[[], object]) -> Callable[[], torch.Tensor]:
    """Inference: eval mode, no autograd; the logits."""

    def run() -> torch.Tensor:
        with torch.no_grad():
            return model(make_input()).features

    return run


def forward_backward_fn(model: torch.nn.Module, batch: D.SegBatch) -> Callable[[], None]:
    """One training step without the optimizer: cross-entropy on the voxel labels, backward."""

    def run() -> None:
        model.zero_grad(set_to_none=True)
        logits = model(batch.to_sparse_tensor()).features
        torch.nn.functional.cross_entropy(logits, batch.labels, ignore_index=D.IGNORE_INDEX).backward()

    return run


# GEMM operators of a forward pass -> positions of their ``[M, K]`` and ``[K, N]`` operands
_GEMM_OPERANDS = {"aten::mm": (0, 1), "aten::addmm": (1, 2), "aten::addmm_": (1, 2)}
_FLOOR_REPS, _FLOOR_MAX_CALLS = 3, 4


@contextmanager
def unfused(model: torch.nn.Module):
    """Every conv of ``model`` on ``CPU_TILED`` and every SW-LK layer on ``CPU_CHUNKED`` while inside."""
    flows = {SparseConvolution: Dataflow.CPU_TILED, SWLKConv3d: Dataflow.CPU_CHUNKED}
    layers = [(m, m.dataflow) for m in model.modules() if isinstance(m, tuple(flows))]
    try:
        for m, _ in layers:
            m.dataflow = next(flow for cls, flow in flows.items() if isinstance(m, cls))
        yield model
    finally:
        for m, flow in layers:
            m.dataflow = flow


def gemm_rows(model: torch.nn.Module, fn: Callable[[], object]) -> Dict[Tuple[int, int], int]:
    """Rows multiplied per weight shape ``(K, N)`` in one call of ``fn``: every ``torch.mm`` / ``addmm``
    that ``torch.profiler`` records (conv GEMMs, SW-LK group products, 1³ convs, the classifier). The
    fused dataflows multiply in numba's SIMD kernels, out of the profiler's sight, so this pass runs on the
    tiled / chunked ones (:func:`unfused`); both multiply the same rows by the same weights."""
    activities = [torch.profiler.ProfilerActivity.CPU]
    with unfused(model), torch.profiler.profile(activities=activities, record_shapes=True) as prof:
        fn()
    rows: Dict[Tuple[int, int], int] = defaultdict(int)
    for event in prof.events():
        operands = _GEMM_OPERANDS.get(event.name)
        if operands is None:
            continue
        (m, k), (_, n) = event.input_shapes[operands[0]][:2], event.input_shapes[operands[1]][:2]
        rows[(k, n)] += m
    return dict(rows)


def network_gemm_floor_ms(rows: Dict[Tuple[int, int], int]) -> float:
    """The GEMMs of :func:`gemm_rows` at ``torch.mm``'s best in-cache rate (current thread count), in ms."""
    return sum(gemm_floor_ms(m, k, n, _FLOOR_REPS, _FLOOR_MAX_CALLS) for (k, n), m in rows.items())


def timed_once(fn: Callable[[], object]) -> Tuple[float, object]:
    """``(ms, result)`` of one call."""
    start = time.perf_counter()
    result = fn()
    return (time.perf_counter() - start) * 1e3, result


def _ms(ms: Optional[float]) -> str:
    return "–" if ms is None else f"{ms:,.0f}"


def _ratio(num: Optional[float], den: Optional[float]) -> str:
    return "–" if num is None or den is None else f"{num / den:.2f}×"


def run(quick: bool) -> str:
    """Measure and return the Markdown section (see the module docstring)."""
    torch.manual_seed(0)
    default_threads = torch.get_num_threads()
    thread_counts = sorted({1, default_threads})
    reps = 2 if quick else 5  # forward rounds: the 2-thread ratio is the noisiest figure of the suite
    train_reps = 2 if quick else 3
    batch, source = load_scene(quick)
    spconv = load_spconv()

    def config(label: str) -> dict:
        return {**NETWORKS[label], "in_channels": batch.features.shape[1], "num_classes": NUM_CLASSES}

    models: Dict[str, torch.nn.Module] = {label: build_model(config(label)).eval() for label in NETWORKS}
    inputs: Dict[str, Callable[[], object]] = {label: batch.to_sparse_tensor for label in NETWORKS}
    if spconv is not None:
        models[SPCONV_PLAIN7] = build_model(config(PLAIN7), backend=spconv).eval()
        models[SPCONV_PLAIN7].load_state_dict(models[PLAIN7].state_dict())
        inputs[SPCONV_PLAIN7] = lambda: spconv.SparseConvTensor(
            batch.features, batch.indices, batch.spatial_shape, batch.batch_size
        )
    compared = [label for label in models if label != PLAIN7]
    forward_fn(models[LK], inputs[LK])()  # compiles (or loads) the numba kernels outside the timings

    forward: Dict[Tuple[str, int], float] = {}
    floor: Dict[int, float] = {}
    shapes = gemm_rows(models[LK], forward_fn(models[LK], inputs[LK]))
    spconv_out: Dict[int, torch.Tensor] = {}
    train_ms: Dict[str, float] = {}
    progress = tqdm(total=len(thread_counts) + 3, desc="bench_seg_network", leave=False)
    try:
        for threads in thread_counts:
            with num_threads(threads):
                fns = {label: forward_fn(models[label], inputs[label]) for label in compared}
                forward.update({(label, threads): ms for label, ms in time_alternating(fns, reps).items()})
                if spconv is not None:
                    spconv_out[threads] = fns[SPCONV_PLAIN7]()
                floor[threads] = network_gemm_floor_ms(shapes)
            progress.update()
        forward[(PLAIN7, default_threads)], reference = timed_once(forward_fn(models[PLAIN7], inputs[PLAIN7]))
        progress.update()
        steps = {label: forward_backward_fn(models[label].train(), batch) for label in NETWORKS}
        train_ms.update(time_alternating({label: steps[label] for label in (LK, BASELINE)}, train_reps))
        progress.update()
        train_ms[PLAIN7], _ = timed_once(steps[PLAIN7])
        progress.update()
    finally:
        progress.close()
    agreement = {t: float((out - reference).abs().max() / reference.abs().max()) for t, out in spconv_out.items()}

    header = (
        ["network", "parameters"]
        + [f"forward ms, {t} thread{'s' if t > 1 else ''}" for t in thread_counts]
        + [f"fwd+bwd ms, {default_threads} threads"]
    )
    rows = []
    for label, model in models.items():
        rows.append(
            [label, f"{count_parameters(model):,}"]
            + [_ms(forward.get((label, t))) for t in thread_counts]
            + [_ms(train_ms[label]) if label in train_ms else "n/a (no CPU backward)"]
        )
    lines: List[str] = [
        "## Segmentation network speed: LargeKernel3DSeg vs the same network with plain 7³ convs",
        "",
        f"Scene: {source}, voxel {VOXEL_SIZE} m → {batch.indices.shape[0]:,} voxels, grid {batch.spatial_shape}. "
        f"Networks: MinkUNet34C layout (blocks 2,3,4,6,2,2,2,2), encoder stages 1–4 with 7³ kernels, decoder 3³, "
        f"{NUM_CLASSES} classes; every pass builds its kernel maps. Forward in eval mode without autograd; medians "
        f"of {reps} alternating rounds after a warm-up round; our plain 7³ once. Forward+backward: cross-entropy "
        f"step (no optimizer), medians of {train_reps} (our plain 7³ once). Default threads here: {default_threads}.",
        "",
        markdown_table(header, rows),
        "",
    ]
    if spconv is not None:
        for t in thread_counts:
            lines.append(
                f"- SW-LK forward speed-up over spconv plain 7³ at {t} thread(s): "
                f"**{_ratio(forward[(SPCONV_PLAIN7, t)], forward[(LK, t)])}** (target ≥ 3×)."
            )
        for t, err in agreement.items():
            note = (
                ""
                if err < 1e-4
                else " — spconv's CPU kernels race with more than one thread, so this "
                "output is wrong and its timing is no valid reference"
            )
            lines.append(
                f"- spconv at {t} thread(s) vs our plain 7³ with the same weights: max |Δ| / max |y| = {err:.1e}{note}."
            )
    else:
        lines.append("- spconv is not installed: its rows are skipped.")
    gflop = 2e-9 * sum(m * k * n for (k, n), m in shapes.items())
    lines.append(
        f"- GEMM floor of the SW-LK forward: {gflop:.1f} GFLOP in {len(shapes)} weight shapes (every "
        f"torch.mm/addmm of one pass), at torch.mm's best in-cache rate "
        + ", ".join(f"{_ms(floor[t])} ms at {t} thread(s)" for t in thread_counts)
        + "."
    )
    for t in thread_counts:
        spent = forward[(LK, t)] - floor[t]
        if spconv is None:
            lines.append(f"  - {t} thread(s): ours spends {_ms(spent)} ms beyond the floor.")
            continue
        bar = forward[(SPCONV_PLAIN7, t)] / 3
        budget = bar - floor[t]  # what 3x spconv leaves for everything but the GEMMs
        lines.append(
            f"  - {t} thread(s): 3× spconv means ≤ {_ms(bar)} ms, which leaves {_ms(budget)} ms "
            f"({budget / floor[t]:.0%} of the floor) for everything outside the GEMMs (maps, "
            f"gathers, bag sums, scatters, norms, activations, adds) at torch.mm's speed; ours spends "
            f"{_ms(spent)} ms beyond the floor (forward − floor; our products run faster than torch.mm)."
        )
    lines.append(
        f"- Forward+backward: SW-LK is {_ratio(train_ms[PLAIN7], train_ms[LK])} faster than our plain 7³ "
        f"and costs {_ratio(train_ms[LK], train_ms[BASELINE])} the time of MinkUNet34C (3³)."
    )
    lines.append(
        f"- Forward at {default_threads} thread(s): SW-LK costs "
        f"{_ratio(forward[(LK, default_threads)], forward[(BASELINE, default_threads)])} the time of "
        f"MinkUNet34C (3³); our plain 7³ is "
        f"{_ratio(forward[(PLAIN7, default_threads)], forward[(LK, default_threads)])} slower than SW-LK."
    )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    keep_freed_memory()
    print(run(quick="--quick" in sys.argv[1:]))
