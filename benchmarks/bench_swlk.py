"""SW-LK convolution speed against the issue's targets, measured in one process.

Input: KITTI 000001 at 0.05 x 0.05 x 0.1 m (axes z, y, x), random features; a generated indoor scene when
the shared data is absent. Every timed pass builds its kernel map (no cache between passes); medians of
alternating rounds after a warm-up (numba compilation excluded).

* forward (``torch.no_grad``), 32 -> 32: our SW-LK 7^3 vs spconv 2.3.8 plain ``SubMConv3d`` 7^3 (what the
  official V1 code runs) and vs our ``SubMConv3d`` 3^3; the SW-LK time split into kernel map and
  aggregation + GEMMs. Targets: spconv 7^3 / SW-LK >= 8, SW-LK / ours 3^3 <= 3.
* forward + backward (input and weight gradients), 32 -> 32: SW-LK 7^3 / ours 3^3 <= 3.5.
* SW-LK 17^3, 16 -> 16: forward time (< 2 s) and peak memory.
* agreement: SW-LK 7^3 vs spconv running its exported plain weight (a ones channel carries the encoding).

At 1 thread (stable on a shared machine) and at the default thread count.
Run standalone: ``python benchmarks/bench_swlk.py [--quick]``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (
    SHARED_DATA,
    SparseInput,
    fmt,
    generated_indoor_scene,
    load_spconv,
    machine_line,  # noqa: E402
    markdown_table,
    num_threads,
    peak_rss_mib,
    run_memory_worker,
    time_alternating,
    voxel_sites,
)

from largekernel3d.nn import SWLKConv3d  # noqa: E402
from largekernel3d.nn.convert import export_plain  # noqa: E402
from largekernel3d.sparse import (
    ConvGeometry,
    SparseConvTensor,
    SubMConv3d,
    build_submanifold_map,  # noqa: E402
    keep_freed_memory,
)


def load_input() -> SparseInput:
    kitti = SHARED_DATA / "kitti" / "training" / "velodyne" / "000001.bin"
    if kitti.is_file():
        pts = np.fromfile(kitti, dtype=np.float32).reshape(-1, 4)
        idx, shape = voxel_sites(pts, (0.05, 0.05, 0.1), (2, 1, 0))
        return SparseInput(
            "KITTI 000001 0.05×0.05×0.1 m",
            idx,
            shape,
            f"KITTI training/velodyne/000001.bin, {len(pts):,} points, axes (z, y, x)",
        )
    return generated_indoor_scene(100_000)


def _features(inp: SparseInput, channels: int, seed: int = 0) -> torch.Tensor:
    """Random ``[N, channels]`` features, drawn once per benchmark (never inside a timed call)."""
    return torch.randn(inp.num_sites, channels, generator=torch.Generator().manual_seed(seed))


def _tensor(inp: SparseInput, feats: torch.Tensor, requires_grad: bool = False) -> SparseConvTensor:
    """A fresh tensor (no cached kernel maps) on ``feats``; a new autograd leaf when ``requires_grad``."""
    if requires_grad:
        feats = feats.detach().requires_grad_()
    return SparseConvTensor(feats, inp.indices, list(inp.spatial_shape), 1, validate=False)


def _forward_times(inp: SparseInput, reps: int, spconv) -> Dict[str, float]:
    torch.manual_seed(0)
    swlk, conv3 = SWLKConv3d(32, 32, 7), SubMConv3d(32, 32, 3, bias=False)
    keyed = SWLKConv3d(32, 32, 7, indice_key="k7")  # same layer reading a cached map
    keyed.load_state_dict(swlk.state_dict())
    feats = _features(inp, 32)
    x = _tensor(inp, feats)
    geo7 = ConvGeometry.create(3, 7)
    kmap = build_submanifold_map(inp.indices, inp.spatial_shape, 1, geo7)
    fns = {
        "SW-LK 7³ (incl. map)": lambda: swlk(_tensor(inp, feats)),
        "  kernel map 7³": lambda: build_submanifold_map(inp.indices, inp.spatial_shape, 1, geo7),
        "  aggregation + GEMMs (map cached)": lambda: keyed(_cached(x, kmap)),
        "ours SubMConv3d 3³ (incl. map)": lambda: conv3(_tensor(inp, feats)),
    }
    if spconv is not None:
        sp7 = spconv.SubMConv3d(32, 32, 7, bias=False)
        fns["spconv SubMConv3d 7³ (incl. map)"] = lambda: sp7(
            spconv.SparseConvTensor(feats, inp.indices, list(inp.spatial_shape), 1)
        )
    with torch.no_grad():
        return time_alternating(fns, reps)


def _cached(x: SparseConvTensor, kmap) -> SparseConvTensor:
    y = SparseConvTensor(x.features, x.indices, x.spatial_shape, x.batch_size, validate=False)
    y.indice_dict["k7"] = kmap
    return y


def _train_times(inp: SparseInput, reps: int) -> Dict[str, float]:
    torch.manual_seed(0)
    swlk, conv3 = SWLKConv3d(32, 32, 7), SubMConv3d(32, 32, 3, bias=False)
    feats = _features(inp, 32)

    def step(layer):
        def run():
            x = _tensor(inp, feats, requires_grad=True)
            layer(x).features.square().mean().backward()

        return run

    return time_alternating({"SW-LK 7³ fwd+bwd": step(swlk), "ours SubMConv3d 3³ fwd+bwd": step(conv3)}, reps)


def _large_kernel(inp: SparseInput, reps: int) -> Dict[str, float]:
    torch.manual_seed(0)
    layer = SWLKConv3d(16, 16, 17)
    geo = ConvGeometry.create(3, 17)
    feats = _features(inp, 16)
    with torch.no_grad():
        layer(_tensor(inp, feats))
        t = time_alternating(
            {
                "fwd": lambda: layer(_tensor(inp, feats)),
                "map": lambda: build_submanifold_map(inp.indices, inp.spatial_shape, 1, geo),
            },
            reps,
        )
    t["mem"] = _peak_memory_17(inp)
    kmap = build_submanifold_map(inp.indices, inp.spatial_shape, 1, geo)
    t["pairs"] = kmap.num_pairs / kmap.num_in
    return t


def _memory_worker_17(path: str) -> None:
    """Subprocess body: peak RSS increase (MiB) of one SW-LK 17³ 16 -> 16 forward on the saved sites,
    after a first call (compilation, warm-up); printed."""
    data = np.load(path)
    inp = SparseInput("worker", torch.from_numpy(data["indices"]), tuple(int(s) for s in data["shape"]), "")
    torch.manual_seed(0)
    layer = SWLKConv3d(16, 16, 17)
    feats = _features(inp, 16)
    with torch.no_grad():
        layer(_tensor(inp, feats))
        print(peak_rss_mib(lambda: layer(_tensor(inp, feats))))


def _peak_memory_17(inp: SparseInput) -> Optional[float]:
    """:func:`_memory_worker_17` in a fresh process (see ``common.run_memory_worker``)."""
    import os
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "sites.npz")
        np.savez(path, indices=inp.indices.numpy(), shape=np.array(inp.spatial_shape))
        lines = run_memory_worker(__file__, ["--memory-worker-17", path]).split()
    return float(lines[-1]) if lines and lines[-1] != "None" else None


def _agreement(inp: SparseInput, spconv) -> float:
    """Largest |SW-LK - spconv(export)| relative to the largest |output|."""
    torch.manual_seed(1)
    layer = SWLKConv3d(32, 32, 7, bias=True)
    with torch.no_grad():
        layer.position_encoding.normal_()
        x = _tensor(inp, _features(inp, 32))
        ours = layer(x).features
        exp = export_plain(layer)
        conv = spconv.SubMConv3d(33, 32, 7, bias=True)
        conv.weight.copy_(exp.with_ones_channel())
        conv.bias.copy_(exp.bias)
        feats = torch.cat([x.features, torch.ones(x.features.shape[0], 1)], dim=1)
        ref = conv(spconv.SparseConvTensor(feats, inp.indices, list(inp.spatial_shape), 1)).features
    return float((ours - ref).abs().max() / ref.abs().max())


def _verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def run(quick: bool) -> str:
    """The Markdown section ``## SW-LK convolution``."""
    inp = load_input()
    spconv = load_spconv()
    reps = 3 if quick else 7
    out: List[str] = [
        "## SW-LK convolution (`benchmarks/bench_swlk.py`)",
        "",
        f"Machine: {machine_line()}. Input: {inp.name} ({inp.source}; {inp.num_sites:,} voxels, "
        f"grid {inp.spatial_shape}). Medians of {reps} alternating rounds; every pass builds its "
        f"kernel map.",
        "",
    ]
    thread_counts = [1] if quick else [1, torch.get_num_threads()]
    for threads in dict.fromkeys(thread_counts):
        with num_threads(threads):
            fwd = _forward_times(inp, reps, spconv)
            trn = _train_times(inp, max(2, reps // 2))
        sw, c3 = fwd["SW-LK 7³ (incl. map)"], fwd["ours SubMConv3d 3³ (incl. map)"]
        sp = fwd.get("spconv SubMConv3d 7³ (incl. map)")
        tb_sw, tb_c3 = trn["SW-LK 7³ fwd+bwd"], trn["ours SubMConv3d 3³ fwd+bwd"]
        rows = [[name, fmt(ms, 0)] for name, ms in fwd.items()] + [[name, fmt(ms, 0)] for name, ms in trn.items()]
        out += [
            f"### {threads} thread(s), 32 → 32 channels",
            "",
            markdown_table(["pass", "ms"], rows),
            "",
            markdown_table(
                ["target", "measured", "verdict"],
                [
                    [
                        "spconv 7³ / SW-LK 7³ forward ≥ 8×",
                        "–" if sp is None else f"{sp / sw:.1f}×",
                        "no spconv" if sp is None else _verdict(sp / sw >= 8),
                    ],
                    ["SW-LK 7³ / ours 3³ forward ≤ 3×", f"{sw / c3:.2f}×", _verdict(sw / c3 <= 3)],
                    [
                        "SW-LK 7³ / ours 3³ forward+backward ≤ 3.5×",
                        f"{tb_sw / tb_c3:.2f}×",
                        _verdict(tb_sw / tb_c3 <= 3.5),
                    ],
                ],
            ),
            "",
        ]
    with num_threads(torch.get_num_threads()):
        big = _large_kernel(inp, 2 if quick else 3)
    out += [
        f"### SW-LK 17³, 16 → 16 channels ({torch.get_num_threads()} threads)",
        "",
        markdown_table(
            ["forward ms (incl. map)", "of which kernel map ms", "pairs / site", "peak memory MiB", "target < 2 s"],
            [
                [
                    fmt(big["fwd"], 0),
                    fmt(big["map"], 0),
                    fmt(big["pairs"], 1),
                    fmt(big["mem"], 0),
                    _verdict(big["fwd"] < 2000),
                ]
            ],
        ),
        "",
    ]
    if spconv is not None:
        with num_threads(1):
            err = _agreement(inp, spconv)
        out += [
            f"Agreement: SW-LK 7³ (with encoding, bias) vs spconv running the exported plain 7³ weight "
            f"(+ ones channel): max relative difference {err:.1e}.",
            "",
        ]
    return "\n".join(out)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--memory-worker-17"]:
        _memory_worker_17(sys.argv[2])
    else:
        keep_freed_memory()
        print(run("--quick" in sys.argv[1:]))
