"""The paper's efficiency table: parameters and forward latency of a plain submanifold conv vs the
spatial-wise large-kernel (SW-LK) conv as the kernel grows.

For each odd ``k`` a plain ``SubMConv3d(C_in, C_out, k)`` has ``k^3 C_in C_out`` weights; a SW-LK conv has
``G C_in C_out`` (``G = 27``) plus its ``k^3 C_in`` position encoding. Latency is the median wall time of a
forward pass on a real frame, *including* building the ``k^3`` kernel map (the map is not cached between
runs), in inference mode (``torch.no_grad``). The map-building share of the SW-LK time is reported
separately. Plain convs are skipped once their predicted time (last measured time scaled by the number of
kernel-map pairs) exceeds a budget.

Input: KITTI velodyne 000001 voxelised at 0.05 x 0.05 x 0.1 m when the shared data folder holds it,
otherwise a generated indoor scene (:func:`largekernel3d.data.generator.generate_indoor_scene`) at 2 cm.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np
import torch
from tqdm import tqdm

from ..nn.swlk_conv import SWLKConv3d
from ..sparse.conv import SubMConv3d
from ..sparse.geometry import ConvGeometry
from ..sparse.kernel_map import build_submanifold_map
from ..sparse.tensor import SparseConvTensor
from ..sparse.voxelize import voxelize

KITTI_VOXEL = (0.05, 0.05, 0.1)
INDOOR_VOXEL = 0.02
DEFAULT_KERNELS = (3, 5, 7, 9, 11, 13, 15, 17)


@dataclass(frozen=True)
class EfficiencyRow:
    """One kernel size of the table (times in milliseconds; ``plain_ms`` is ``None`` when skipped)."""

    kernel_size: int
    plain_params: int
    swlk_params: int
    swlk_encoding_params: int
    pairs_per_site: float
    map_ms: float
    swlk_ms: float
    plain_ms: Optional[float]

    @property
    def speedup(self) -> Optional[float]:
        return None if self.plain_ms is None else self.plain_ms / self.swlk_ms


def load_frame(
    data_root: Optional[Path],
    channels: int,
    num_points: int = 100_000,
    seed: int = 0,
) -> Tuple[SparseConvTensor, str]:
    """The benchmark input (random ``channels`` features) and a one-line description of it."""
    frame = None if data_root is None else Path(data_root) / "kitti" / "training" / "velodyne" / "000001.bin"
    if frame is not None and frame.exists():
        points = torch.from_numpy(np.fromfile(frame, dtype=np.float32).reshape(-1, 4)[:, :3].copy())
        vox = voxelize(points, KITTI_VOXEL)
        what = f"KITTI 000001 ({points.shape[0]} points) at 0.05 x 0.05 x 0.1 m"
    else:
        from ..data.generator import generate_indoor_scene

        scene = generate_indoor_scene(seed, 0, num_points=num_points)
        vox = voxelize(torch.from_numpy(scene.points), INDOOR_VOXEL)
        what = f"generated indoor scene ({num_points} points) at {INDOOR_VOXEL * 100:.0f} cm (no shared KITTI data)"
    g = torch.Generator().manual_seed(seed)
    indices = torch.cat([torch.zeros(vox.num_voxels, 1, dtype=torch.int32), vox.coords.to(torch.int32)], dim=1)
    feats = torch.randn(vox.num_voxels, channels, generator=g)
    x = SparseConvTensor(feats, indices, vox.spatial_shape, 1)
    return x, f"{what}: {vox.num_voxels} voxels, grid {vox.spatial_shape}"


def _median_ms(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1000.0 * statistics.median(times)


def _fresh(x: SparseConvTensor) -> SparseConvTensor:
    """Same sites and features, empty kernel-map cache (every run builds its map)."""
    return SparseConvTensor(x.features, x.indices, x.spatial_shape, x.batch_size, validate=False)


def _params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def efficiency_table(
    x: SparseConvTensor,
    kernels: Sequence[int] = DEFAULT_KERNELS,
    out_channels: Optional[int] = None,
    repeats: int = 3,
    plain_budget_s: float = 30.0,
    progress: bool = True,
) -> List[EfficiencyRow]:
    """Measure params and forward latency of plain vs SW-LK convs for every ``k`` in ``kernels``.

    Args:
        x: input (``C_in`` = its feature width).
        kernels: odd kernel sizes (3..31).
        out_channels: ``C_out`` (default ``C_in``).
        repeats: timed runs per layer (median reported; one untimed warm-up run first).
        plain_budget_s: skip the plain conv when its predicted forward time exceeds this.
        progress: show a tqdm bar.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    c_in = x.features.shape[1]
    c_out = c_in if out_channels is None else out_channels
    rows: List[EfficiencyRow] = []
    last_plain: Optional[Tuple[float, int]] = None  # (ms, pairs)
    torch.manual_seed(0)
    with torch.no_grad():
        for k in tqdm(list(kernels), desc="efficiency (kernel sizes)", disable=not progress):
            swlk = SWLKConv3d(c_in, c_out, k)
            kmap = build_submanifold_map(x.indices, x.spatial_shape, x.batch_size, ConvGeometry.create(3, k))
            map_ms = _median_ms(
                lambda k=k: build_submanifold_map(x.indices, x.spatial_shape, x.batch_size, ConvGeometry.create(3, k)),
                repeats,
            )
            swlk(_fresh(x))
            swlk_ms = _median_ms(lambda swlk=swlk: swlk(_fresh(x)), repeats)
            plain = SubMConv3d(c_in, c_out, k, bias=False)
            plain_ms = None
            predicted_s = 0.0 if last_plain is None else last_plain[0] / 1000.0 * kmap.num_pairs / max(last_plain[1], 1)
            if predicted_s <= plain_budget_s:
                plain(_fresh(x))
                plain_ms = _median_ms(lambda plain=plain: plain(_fresh(x)), repeats)
                last_plain = (plain_ms, kmap.num_pairs)
            enc = swlk.position_encoding.numel() if swlk.position_encoding is not None else 0
            rows.append(
                EfficiencyRow(
                    k,
                    _params(plain),
                    _params(swlk),
                    enc,
                    kmap.num_pairs / max(kmap.num_in, 1),
                    map_ms,
                    swlk_ms,
                    plain_ms,
                )
            )
    return rows


def _fmt_params(n: int) -> str:
    return f"{n / 1e6:.2f} M" if n >= 1e6 else f"{n / 1e3:.1f} K"


def markdown_table(rows: Sequence[EfficiencyRow], description: str, c_in: int, c_out: int) -> str:
    """The table as Markdown (with a header line naming the input and the channel widths)."""
    lines = [
        f"Input: {description}; {c_in} -> {c_out} channels; forward latency incl. kernel map, median, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads.",
        "",
        "| k | pairs/site | plain params | SW-LK params (of which encoding) | kernel map ms | plain ms | "
        "SW-LK ms | plain / SW-LK |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        plain = "skipped (over budget)" if r.plain_ms is None else f"{r.plain_ms:.0f}"
        speed = "-" if r.speedup is None else f"{r.speedup:.1f}x"
        lines.append(
            f"| {r.kernel_size} | {r.pairs_per_site:.1f} | {_fmt_params(r.plain_params)} | "
            f"{_fmt_params(r.swlk_params)} ({_fmt_params(r.swlk_encoding_params)}) | {r.map_ms:.0f} | "
            f"{plain} | {r.swlk_ms:.0f} | {speed} |"
        )
    return "\n".join(lines) + "\n"


def plot_table(rows: Sequence[EfficiencyRow], path: Path, description: str) -> None:
    """Two panels (parameters, latency) against the kernel size, log scale, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ks = [r.kernel_size for r in rows]
    fig, (ax_p, ax_t) = plt.subplots(1, 2, figsize=(11, 4.2))
    ax_p.plot(ks, [r.plain_params for r in rows], "o-", label="plain SubMConv3d (k^3 weights)")
    ax_p.plot(ks, [r.swlk_params for r in rows], "s-", label="SW-LK (27 groups + encoding)")
    ax_p.set_ylabel("parameters")
    ax_p.set_title("Parameters")
    pk = [r.kernel_size for r in rows if r.plain_ms is not None]
    ax_t.plot(pk, [r.plain_ms for r in rows if r.plain_ms is not None], "o-", label="plain SubMConv3d")
    ax_t.plot(ks, [r.swlk_ms for r in rows], "s-", label="SW-LK")
    ax_t.plot(ks, [r.map_ms for r in rows], "^--", label="kernel map (part of both)")
    ax_t.set_ylabel("forward latency [ms]")
    ax_t.set_title("Forward latency (incl. kernel map)")
    for ax in (ax_p, ax_t):
        ax.set_yscale("log")
        ax.set_xlabel("kernel size k")
        ax.legend()
        ax.set_xticks(ks)
        ax.grid(True, which="both", alpha=0.3)
    fig.suptitle(description, fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run_efficiency(
    out_dir: Path,
    kernels: Sequence[int] = DEFAULT_KERNELS,
    channels: int = 32,
    repeats: int = 3,
    plain_budget_s: float = 30.0,
    data_root: Optional[Path] = None,
    num_points: int = 100_000,
    progress: bool = True,
) -> Tuple[Path, Path, List[EfficiencyRow]]:
    """Measure, write ``efficiency.md`` and ``efficiency.png`` under ``out_dir``; return both paths and rows."""
    if isinstance(channels, bool) or not isinstance(channels, int) or channels <= 0:
        raise ValueError(f"channels must be a positive int, got {channels!r}")
    x, description = load_frame(data_root, channels, num_points=num_points)
    rows = efficiency_table(x, kernels, channels, repeats, plain_budget_s, progress)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    md = out_dir / "efficiency.md"
    md.write_text(
        "# Efficiency: plain submanifold conv vs SW-LK conv\n\n" + markdown_table(rows, description, channels, channels)
    )
    png = out_dir / "efficiency.png"
    plot_table(rows, png, description)
    return md, png, rows


__all__ = [
    "EfficiencyRow",
    "DEFAULT_KERNELS",
    "load_frame",
    "efficiency_table",
    "markdown_table",
    "plot_table",
    "run_efficiency",
]
