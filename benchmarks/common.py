"""Shared helpers of the benchmark modules: inputs, timing, memory, thread control, Markdown tables.

Benchmark contract (see ``run.py``): every ``benchmarks/bench_*.py`` defines ``run(quick: bool) -> str``
returning one Markdown section and runs standalone (``python benchmarks/bench_x.py [--quick]``).
"""

from __future__ import annotations

import contextlib
import os
import platform
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch

SHARED_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"


# ------------------------------------------------------------------------------------------------
# inputs
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SparseInput:
    """One voxelised benchmark scene: ``indices [N, 4]`` int32 (batch 0, then the axes of
    ``spatial_shape``), a name, and a line saying where it comes from."""

    name: str
    indices: torch.Tensor
    spatial_shape: Tuple[int, int, int]
    source: str

    @property
    def num_sites(self) -> int:
        return int(self.indices.shape[0])


def voxel_sites(
    points: np.ndarray, voxel_size: Sequence[float], axis_order: Sequence[int]
) -> Tuple[torch.Tensor, Tuple[int, ...]]:
    """Unique voxels of ``points [N, 3]`` (origin at the per-axis minimum, no range crop) as int32
    ``[M, 4]`` indices with batch 0 and the axes in ``axis_order`` (e.g. ``(2, 1, 0)`` = z, y, x as in
    OpenPCDet), plus the spatial shape (``max + 1`` per axis)."""
    from largekernel3d.sparse import voxelize

    vox = voxelize(np.ascontiguousarray(points[:, :3], dtype=np.float64), tuple(voxel_size))
    coords = vox.coords[:, list(axis_order)].to(torch.int64)
    shape = tuple(int(s) + 1 for s in coords.amax(dim=0).tolist())
    key = (coords[:, 0] * shape[1] + coords[:, 1]) * shape[2] + coords[:, 2]
    coords = coords[torch.argsort(key)]
    idx = torch.cat([torch.zeros((coords.shape[0], 1), dtype=torch.int64), coords], dim=1).to(torch.int32)
    return idx.contiguous(), shape


def generated_indoor_scene(target_sites: int = 250_000) -> SparseInput:
    """A deterministic dense indoor surface scene at 0.02 m: floor, four walls and box-shaped furniture
    as 1-voxel-thick surfaces, about ``target_sites`` voxels (~9 neighbours per site for a 3³
    kernel, as on scanned surfaces). Axes (x, y, z)."""
    side = int(round(np.sqrt(target_sites / 3.0)))  # floor side² + walls 1.6 side² + furniture ~0.4 side²
    height = int(0.4 * side)
    rng = np.random.default_rng(0)
    cells = []

    def plate(x0, x1, y0, y1, z0, z1):
        g = np.stack(np.meshgrid(np.arange(x0, x1), np.arange(y0, y1), np.arange(z0, z1), indexing="ij"), -1)
        cells.append(g.reshape(-1, 3))

    plate(0, side, 0, side, 0, 1)  # floor
    plate(0, 1, 0, side, 1, height)  # walls
    plate(side - 1, side, 0, side, 1, height)
    plate(1, side - 1, 0, 1, 1, height)
    plate(1, side - 1, side - 1, side, 1, height)
    lo, hi = max(2, side // 12), max(3, side // 5)
    for _ in range(8):  # furniture: box tops and two sides
        w, d, h = rng.integers(lo, hi, size=3)
        x0, y0 = rng.integers(2, side - hi - 2, size=2)
        plate(x0, x0 + w, y0, y0 + d, h, h + 1)
        plate(x0, x0 + 1, y0, y0 + d, 1, h)
        plate(x0 + w - 1, x0 + w, y0, y0 + d, 1, h)
    coords = np.unique(np.concatenate(cells), axis=0)
    shape = tuple(int(s) + 1 for s in coords.max(axis=0))
    idx = np.concatenate([np.zeros((len(coords), 1), np.int64), coords], axis=1).astype(np.int32)
    return SparseInput(
        "generated indoor 0.02 m",
        torch.from_numpy(idx),
        shape,
        f"generated floor/walls/furniture surfaces, {len(coords):,} voxels, axes (x, y, z)",
    )


def load_inputs(quick: bool) -> List[SparseInput]:
    """The engine benchmark inputs; real ones only when ``../shared/data`` exists. ``quick``: the
    generated scene (smaller) and KITTI only."""
    out: List[SparseInput] = []
    kitti = SHARED_DATA / "kitti" / "training" / "velodyne" / "000001.bin"
    if kitti.is_file():
        pts = np.fromfile(kitti, dtype=np.float32).reshape(-1, 4)
        idx, shape = voxel_sites(pts, (0.05, 0.05, 0.1), (2, 1, 0))
        out.append(
            SparseInput(
                "KITTI 000001 0.05×0.05×0.1 m",
                idx,
                shape,
                f"KITTI training/velodyne/000001.bin, {len(pts):,} points, axes (z, y, x)",
            )
        )
    if quick:
        return [generated_indoor_scene(60_000)] + out
    semkitti = SHARED_DATA / "semantickitti" / "spvnas_sample" / "velodyne" / "000000.bin"
    if semkitti.is_file():
        pts = np.fromfile(semkitti, dtype=np.float32).reshape(-1, 4)
        idx, shape = voxel_sites(pts, (0.05,) * 3, (0, 1, 2))
        out.append(
            SparseInput(
                "SemanticKITTI 0.05 m",
                idx,
                shape,
                f"SemanticKITTI spvnas_sample 000000.bin, {len(pts):,} points, axes (x, y, z)",
            )
        )
    scannet = SHARED_DATA / "scannet" / "votenet_50k" / "scene0000_00_vert.npy"
    if scannet.is_file():
        pts = np.load(scannet)
        for size in (0.02, 0.05):
            idx, shape = voxel_sites(pts, (size,) * 3, (0, 1, 2))
            out.append(
                SparseInput(
                    f"ScanNet scene0000_00 {size} m",
                    idx,
                    shape,
                    f"ScanNet votenet_50k scene0000_00, {len(pts):,} points, axes (x, y, z)",
                )
            )
    out.append(generated_indoor_scene())
    return out


# ------------------------------------------------------------------------------------------------
# timing, threads, memory
# ------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def num_threads(n: int) -> Iterator[None]:
    """Run the block with ``torch.set_num_threads(n)`` and restore the previous count."""
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def time_alternating(fns: Dict[str, Callable[[], object]], reps: int, warmup: int = 1) -> Dict[str, float]:
    """Median wall time (ms) of each callable; calls alternate between the callables in each round
    (so slow drifts of a shared machine hit all of them alike), after ``warmup`` untimed rounds."""
    times: Dict[str, List[float]] = {k: [] for k in fns}
    for rnd in range(warmup + reps):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            dt = time.perf_counter() - t0
            if rnd >= warmup:
                times[name].append(dt * 1e3)
    return {k: statistics.median(v) for k, v in times.items()}


def mm_ms(rows: int, c_in: int, c_out: int, reps: int) -> float:
    """Median ms of ``torch.mm`` of ``[rows, c_in] @ [c_in, c_out]`` into a preallocated output
    (the dense-GEMM reference for the same FLOPs as a sparse conv with ``rows`` pairs)."""
    a = torch.randn(rows, c_in)
    b = torch.randn(c_in, c_out)
    out = torch.empty(rows, c_out)
    return time_alternating({"mm": lambda: torch.mm(a, b, out=out)}, reps)["mm"]


# Row blocks of the GEMM floor: A + Y of the largest fit in the L2 caches of a small machine at 32 channels.
_FLOOR_BLOCK_ROWS = (4096, 16384)


def gemm_floor_ms(rows: int, c_in: int, c_out: int, reps: int, max_calls: int = 64) -> float:
    """The time ``[rows, c_in] @ [c_in, c_out]`` takes at ``torch.mm``'s best in-cache rate: ``torch.mm``
    on a block of ``_FLOOR_BLOCK_ROWS`` rows (the faster per row), called repeatedly (at most ``max_calls``
    times per timing) on the same cached operands, scaled to ``rows``. A sparse conv with ``rows`` pairs needs
    these FLOPs; no engine whose GEMMs run at ``torch.mm``'s speed finishes faster, whatever its kernel map,
    gathers and scatters cost."""
    best = float("inf")
    for block in _FLOOR_BLOCK_ROWS:
        block = max(1, min(block, rows))
        a, b, out = torch.randn(block, c_in), torch.randn(c_in, c_out), torch.empty(block, c_out)
        calls = max(1, min(max_calls, rows // block))

        def repeated() -> None:
            for _ in range(calls):
                torch.mm(a, b, out=out)

        best = min(best, time_alternating({"mm": repeated}, reps)["mm"] / (calls * block))
        if block == rows:
            break
    return best * rows


def _proc_status(field: str) -> Optional[int]:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])  # kB
    except OSError:
        return None
    return None


def peak_rss_mib(fn: Callable[[], object]) -> Optional[float]:
    """Peak resident memory added while ``fn()`` runs, in MiB: the kernel's high-water mark
    ``VmHWM`` is reset (``/proc/self/clear_refs`` ← 5), then ``VmHWM - VmRSS(before)``. Sees every
    allocation (torch, numpy, numba, spconv's C++), unlike ``tracemalloc``. ``None`` where /proc is
    unavailable. Memory the allocator kept from earlier calls is reused and not counted, so call
    each engine once before measuring."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return None
    before = _proc_status("VmRSS")
    result = fn()
    peak = _proc_status("VmHWM")
    del result
    if before is None or peak is None:
        return None
    return max(0.0, (peak - before) / 1024.0)


def run_memory_worker(script: str, args: Sequence[str], timeout_s: int = 1800) -> str:
    """stdout of ``python script *args`` in a fresh process with glibc's mmap threshold pinned at 64 KiB
    (``MALLOC_MMAP_THRESHOLD_``/``MALLOC_TRIM_THRESHOLD_``): every large buffer is a fresh mapping
    returned on free, so :func:`peak_rss_mib` in that process sees each call's own peak rather than
    memory the allocator kept from earlier calls."""
    import os
    import subprocess
    import sys

    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536", MALLOC_TRIM_THRESHOLD_="65536")
    proc = subprocess.run([sys.executable, script, *args], env=env, capture_output=True, text=True, timeout=timeout_s)
    return proc.stdout


def load_spconv():
    """``spconv.pytorch`` or ``None`` when spconv is not installed."""
    try:
        import spconv.pytorch as spconv
    except ImportError:
        return None
    return spconv


def machine_line() -> str:
    """One line describing the machine: CPU model, cores, torch threads, versions."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return (
        f"{cpu}, {os.cpu_count()} logical cores, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads by default), Python {platform.python_version()}"
    )


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub Markdown table."""
    lines = ["| " + " | ".join(str(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def fmt(x: Optional[float], digits: int = 1) -> str:
    """A number for a table, ``–`` for missing."""
    return "–" if x is None else f"{x:.{digits}f}"


def timed_training_step(
    make_batch: Callable[[], Any],
    loss_fn: Callable[[Any], Any],
    model: Any,
    optimizer: Any,
    scheduler: Any,
    clip: float,
) -> Tuple[Dict[str, float], Any]:
    """One training step, ``({"data", "forward", "backward", "optimizer"}: seconds, the batch)``: the batch is
    built, the loss computed in train mode, gradients (clipped to ``clip`` when > 0) applied, the schedule
    stepped."""
    import torch

    t0 = time.perf_counter()
    batch = make_batch()
    t1 = time.perf_counter()
    model.train()
    loss = loss_fn(batch)
    t2 = time.perf_counter()
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    t3 = time.perf_counter()
    if clip > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
    optimizer.step()
    scheduler.step()
    t4 = time.perf_counter()
    return {"data": t1 - t0, "forward": t2 - t1, "backward": t3 - t2, "optimizer": t4 - t3}, batch
