"""Large kernels against our own 3³ layer, per input class (issue #25's ratios), in one process.

For every input of ``common.load_inputs`` plus the first PandaSet frame (0.075 × 0.075 × 0.2 m, axes z, y, x),
32 → 32 and 64 → 64 channels, at 1 and 2 threads, the forward (``torch.no_grad``, random features) of:

* our ``SWLKConv3d`` 7³ (27 groups, position encoding), our ``SubMConv3d`` 3³ and our ``SubMConv3d`` 7³, each call
  **building its kernel map** (the issue's definition: what one layer costs on new sites);
* the same SW-LK 7³ and 3³ layers on a tensor whose map (and SW-LK slot layout) is **cached** under an
  ``indice_key``, as the layers of one network stage run (the map is built once per stage and shared).

Ratios: SW-LK 7³ / 3³ (target ≤ 2.5 on every input class) and plain 7³ / 3³ (target ≤ 3 on the dense indoor
inputs), each from the fresh-map medians of alternating rounds after a warm-up round (numba compilation excluded);
the difference between a fresh and a cached call is the map (and for SW-LK the layout) of that call. The work per
site says where a ratio comes from: pairs of the 3³ and 7³ maps and SW-LK's slots (non-empty (site, group)
rows, one GEMM row each) per site; ``slots / 3³ pairs`` is the ratio of the two layers' multiply-adds, the floor of
SW-LK / 3³ with both maps cached and both products at one FLOP rate.
``quick``: the small generated scene, 32 channels, 1 thread, one round.
Run standalone: ``python benchmarks/bench_lk_ratios.py [--quick]``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    SHARED_DATA,
    SparseInput,
    load_inputs,
    machine_line,
    markdown_table,
    num_threads,
    time_alternating,
    voxel_sites,
)

from largekernel3d.nn import SWLKConv3d  # noqa: E402
from largekernel3d.sparse import (  # noqa: E402
    ConvGeometry,
    SparseConvTensor,
    SubMConv3d,
    build_submanifold_map,
    keep_freed_memory,
)
from largekernel3d.sparse.cpu.group_layout import GroupLayout  # noqa: E402

SWLK_TARGET = 2.5  # SW-LK 7³ / our 3³, every input class
PLAIN_TARGET = 3.0  # plain 7³ / our 3³, dense indoor inputs
DENSE_INDOOR = ("ScanNet", "generated")
CASES = ("sw7", "c3", "c7", "sw7 cached", "c3 cached")


def pandaset_input() -> List[SparseInput]:
    """The first frame of the PandaSet sample as benchmark sites (none without the sample or pandas)."""
    try:
        from largekernel3d.data.detection import PandaSetDetection

        frame = PandaSetDetection(SHARED_DATA / "pandaset", frames=[0])[0]
    except (ImportError, OSError, IndexError):
        return []
    idx, shape = voxel_sites(np.asarray(frame.points)[:, :3], (0.075, 0.075, 0.2), (2, 1, 0))
    return [SparseInput("PandaSet 002/00 0.075×0.075×0.2 m", idx, shape, "PandaSet sample, first frame, (z, y, x)")]


def work_per_site(inp: SparseInput) -> Dict[str, float]:
    """Pairs per site of the 3³ and 7³ submanifold maps of ``inp`` and SW-LK 7³'s slots per site."""
    maps = {k: build_submanifold_map(inp.indices, inp.spatial_shape, 1, ConvGeometry.create(3, k)) for k in (3, 7)}
    group = SWLKConv3d(1, 1, 7).group_index.numpy()
    slots = GroupLayout.for_map(maps[7], group, int(group.max()) + 1, True).num_slots
    n = max(inp.num_sites, 1)
    return {"pairs3": maps[3].num_pairs / n, "pairs7": maps[7].num_pairs / n, "slots": slots / n}


def measure(inp: SparseInput, channels: int, threads: int, reps: int) -> Dict[str, float]:
    """Median ms of every case of :data:`CASES` on ``inp`` (alternating rounds)."""
    torch.manual_seed(0)
    feats = torch.randn(inp.num_sites, channels)
    shape = list(inp.spatial_shape)

    def fresh() -> SparseConvTensor:
        return SparseConvTensor(feats, inp.indices, shape, 1, validate=False)

    cached = fresh()
    sw, c3 = SWLKConv3d(channels, channels, 7), SubMConv3d(channels, channels, 3, bias=False)
    c7 = SubMConv3d(channels, channels, 7, bias=False)
    sw_key = SWLKConv3d(channels, channels, 7, indice_key="sw7")
    c3_key = SubMConv3d(channels, channels, 3, bias=False, indice_key="c3")
    sw_key.load_state_dict(sw.state_dict())
    c3_key.load_state_dict(c3.state_dict())
    with num_threads(threads), torch.no_grad():
        return time_alternating(
            {
                "sw7": lambda: sw(fresh()),
                "c3": lambda: c3(fresh()),
                "c7": lambda: c7(fresh()),
                "sw7 cached": lambda: sw_key(cached),
                "c3 cached": lambda: c3_key(cached),
            },
            reps,
        )


def ratio_rows(
    results: Sequence[Tuple[SparseInput, int, int, Dict[str, float]]],
) -> Tuple[List[List[object]], List[str], List[str]]:
    """Table rows, and the cases that miss the SW-LK and the plain-7³ targets."""
    rows, sw_miss, plain_miss = [], [], []
    for inp, c, t, r in results:
        sw_ratio, plain_ratio, cached_ratio = r["sw7"] / r["c3"], r["c7"] / r["c3"], r["sw7 cached"] / r["c3 cached"]
        case = f"{inp.name}, {c} ch, {t} thr"
        if sw_ratio > SWLK_TARGET:
            sw_miss.append(f"{case} ({sw_ratio:.2f}×)")
        dense = any(inp.name.startswith(d) for d in DENSE_INDOOR)
        if dense and plain_ratio > PLAIN_TARGET:
            plain_miss.append(f"{case} ({plain_ratio:.2f}×)")
        rows.append(
            [
                inp.name,
                f"{inp.num_sites:,}",
                c,
                t,
                f"{r['sw7']:.1f}",
                f"{r['c3']:.1f}",
                f"{r['c7']:.1f}",
                f"**{sw_ratio:.2f}**",
                f"{plain_ratio:.2f}" + ("" if dense else " (LiDAR)"),
                f"{r['sw7'] - r['sw7 cached']:.1f} / {r['c3'] - r['c3 cached']:.1f}",
                f"{r['sw7 cached']:.1f} / {r['c3 cached']:.1f} = {cached_ratio:.2f}",
            ]
        )
    return rows, sw_miss, plain_miss


def run(quick: bool) -> str:
    keep_freed_memory()
    inputs = load_inputs(True)[:1] if quick else load_inputs(False) + pandaset_input()
    chans, threads, reps = ((32,), (1,), 1) if quick else ((32, 64), (1, 2), 7)
    results = []
    for inp in inputs:
        for c in chans:
            for t in threads:
                results.append((inp, c, t, measure(inp, c, t, reps)))
                print(f"lk_ratios: {inp.name} C={c} thr={t} done", file=sys.stderr, flush=True)
    rows, sw_miss, plain_miss = ratio_rows(results)
    work = [(inp, work_per_site(inp)) for inp in inputs]
    work_table = markdown_table(
        ["input", "3³ pairs / site", "7³ pairs / site", "SW-LK slots / site", "slots / 3³ pairs", "7³ / 3³ pairs"],
        [
            [
                inp.name,
                f"{w['pairs3']:.2f}",
                f"{w['pairs7']:.2f}",
                f"{w['slots']:.2f}",
                f"**{w['slots'] / w['pairs3']:.2f}**",
                f"{w['pairs7'] / w['pairs3']:.2f}",
            ]
            for inp, w in work
        ],
    )
    table = markdown_table(
        [
            "input",
            "sites",
            "C",
            "threads",
            "SW-LK 7³ ms",
            "ours 3³ ms",
            "ours 7³ ms",
            f"SW-LK / 3³ (≤ {SWLK_TARGET})",
            f"7³ / 3³ (≤ {PLAIN_TARGET} indoor)",
            "map (+ layout) of the call: SW-LK / 3³ ms",
            "map cached: SW-LK / 3³ ms",
        ],
        rows,
    )
    total = len(results)
    verdict = [
        f"- SW-LK 7³ ≤ {SWLK_TARGET}× our 3³ (fresh maps): met on {total - len(sw_miss)} of {total} cases"
        + (f"; missed on {'; '.join(sw_miss)}." if sw_miss else "."),
        f"- plain 7³ ≤ {PLAIN_TARGET}× our 3³ on dense indoor input: "
        + (f"missed on {'; '.join(plain_miss)}." if plain_miss else "met on every dense indoor case."),
    ]
    return (
        "## Large kernels vs our 3³ layer per input class (`benchmarks/bench_lk_ratios.py`)\n\n"
        f"{machine_line()}\n\n"
        "Forward, `torch.no_grad`, random features; medians of alternating rounds. The first ratio columns build "
        "the kernel map in every call (one layer on new sites); the last column reuses the map (and SW-LK's slot "
        "layout) cached under an `indice_key`, as the layers of a network stage do.\n\n"
        f"{table}\n\n" + "\n".join(verdict) + "\n\n### Work per site\n\n" + work_table
    )


if __name__ == "__main__":
    print(run("--quick" in sys.argv))
