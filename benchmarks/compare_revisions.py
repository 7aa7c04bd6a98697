"""Engine speed of two source trees, side by side: did a change make any engine case slower?

Runs a fixed set of engine cases on KITTI-like (KITTI 000001 when ``../shared/data`` holds it, else a generated
outdoor-density scene) and indoor-like (the generated floor/walls/furniture scene of ``common.py``) inputs, 32 -> 32
channels, each timed pass building its own kernel map:

* ``SubMConv3d`` 3³ and 7³, forward (``torch.no_grad``) and forward + backward (input and weight gradients);
* SW-LK 7³ (``SWLKConv3d``), forward and forward + backward;
* a strided ``SparseConv3d`` 3³ stride 2, forward;
* kernel maps alone: submanifold 3³ and 7³, strided 3³ stride 2.

Every measurement is a *fresh subprocess* with ``PYTHONPATH`` set to one tree's ``src`` (so numba's disk cache,
imports and allocator state start alike), at 1 and at 2 threads; processes alternate old, new, old, new, ... for
``--rounds`` rounds, so slow drifts of a shared machine hit both trees alike. Each process times every case
``--reps`` times after a warm-up call and reports the median; the table shows the median over rounds and the
ratio new / old (above ~1.05 on a case that repeats is a regression).

The cases use only the public API (``largekernel3d.sparse``, ``largekernel3d.nn.SWLKConv3d``), so any two revisions
that have it compare.

Usage::

    python benchmarks/compare_revisions.py                       # a throwaway worktree of main vs this tree
    python benchmarks/compare_revisions.py --rev 83c5a25          # another revision vs this tree
    python benchmarks/compare_revisions.py --old /a/src --new /b/src --rounds 5 --out compare.md
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

HERE = Path(__file__).resolve().parent
REPO = HERE.parent

# (case name, what it times), in table order
CASES: Tuple[Tuple[str, str], ...] = (
    ("subm3 fwd", "SubMConv3d 3³ forward (map built)"),
    ("subm3 fwd+bwd", "SubMConv3d 3³ forward + backward"),
    ("subm7 fwd", "SubMConv3d 7³ forward (map built)"),
    ("subm7 fwd+bwd", "SubMConv3d 7³ forward + backward"),
    ("swlk7 fwd", "SWLKConv3d 7³ forward (map built)"),
    ("swlk7 fwd+bwd", "SWLKConv3d 7³ forward + backward"),
    ("strided3 fwd", "SparseConv3d 3³ stride 2 forward (map built)"),
    ("map subm3", "submanifold map 3³"),
    ("map subm7", "submanifold map 7³"),
    ("map strided3", "regular map 3³ stride 2"),
)
INPUTS = ("kitti", "indoor")


# ------------------------------------------------------------------------------------------------
# worker: one process, one tree, one thread count, every case
# ------------------------------------------------------------------------------------------------


def _load_input(name: str, quick: bool):
    sys.path.insert(0, str(HERE))
    import numpy as np
    import torch
    from common import SHARED_DATA, generated_indoor_scene, voxel_sites

    if name == "indoor":
        inp = generated_indoor_scene(40_000 if quick else 150_000)
        return inp.indices, inp.spatial_shape
    kitti = SHARED_DATA / "kitti" / "training" / "velodyne" / "000001.bin"
    if kitti.is_file():
        pts = np.fromfile(kitti, dtype=np.float32).reshape(-1, 4)
        if quick:
            pts = pts[::4]
        return voxel_sites(pts, (0.05, 0.05, 0.1), (2, 1, 0))
    # no shared data: a scan-like stand-in, points on a few noisy planes over a large grid
    rng = np.random.default_rng(1)
    n = 30_000 if quick else 120_000
    pts = rng.uniform([-40, -40, -2], [40, 40, 1], size=(n, 3))
    pts[: n // 2, 2] = -1.7 + rng.normal(0, 0.02, n // 2)
    idx, shape = voxel_sites(pts.astype(np.float64), (0.05, 0.05, 0.1), (2, 1, 0))
    return torch.as_tensor(idx), shape


def _case_fns(indices, shape) -> Dict[str, Callable[[], object]]:
    import torch

    import largekernel3d.sparse as sp
    from largekernel3d.nn import SWLKConv3d

    torch.manual_seed(0)
    n = int(indices.shape[0])
    feats = torch.randn(n, 32, generator=torch.Generator().manual_seed(0))
    shape = list(shape)
    subm3, subm7 = sp.SubMConv3d(32, 32, 3, bias=False), sp.SubMConv3d(32, 32, 7, bias=False)
    swlk = SWLKConv3d(32, 32, 7)
    strided = sp.SparseConv3d(32, 32, 3, stride=2, padding=1, bias=False)
    geo3, geo7 = sp.ConvGeometry.create(3, 3), sp.ConvGeometry.create(3, 7)
    geo_s = sp.ConvGeometry.create(3, 3, stride=2, padding=1)

    def tensor(requires_grad: bool = False):
        f = feats.detach().requires_grad_() if requires_grad else feats
        return sp.SparseConvTensor(f, indices, shape, 1)

    def forward(layer):
        def run():
            with torch.no_grad():
                return layer(tensor())

        return run

    def train(layer):
        def run():
            layer(tensor(True)).features.square().mean().backward()

        return run

    return {
        "subm3 fwd": forward(subm3),
        "subm3 fwd+bwd": train(subm3),
        "subm7 fwd": forward(subm7),
        "subm7 fwd+bwd": train(subm7),
        "swlk7 fwd": forward(swlk),
        "swlk7 fwd+bwd": train(swlk),
        "strided3 fwd": forward(strided),
        "map subm3": lambda: sp.build_submanifold_map(indices, shape, 1, geo3),
        "map subm7": lambda: sp.build_submanifold_map(indices, shape, 1, geo7),
        "map strided3": lambda: sp.build_regular_map(indices, shape, 1, geo_s),
    }


def worker(threads: int, reps: int, quick: bool, cases: Sequence[str]) -> None:
    """Print one JSON object ``{"input/case": median ms}`` for the tree on ``PYTHONPATH``."""
    import torch

    import largekernel3d.sparse as sp

    torch.set_num_threads(threads)
    sp.keep_freed_memory()
    result: Dict[str, float] = {}
    for name in INPUTS:
        indices, shape = _load_input(name, quick)
        fns = _case_fns(indices, shape)
        for case in cases:
            fn = fns[case]
            fn()  # warm-up: numba compilation or disk-cache load, first-touch of the allocator
            times = []
            for _ in range(reps):
                t0 = time.perf_counter()
                fn()
                times.append((time.perf_counter() - t0) * 1e3)
            result[f"{name}/{case}"] = statistics.median(times)
    print("RESULT " + json.dumps(result))


# ------------------------------------------------------------------------------------------------
# driver
# ------------------------------------------------------------------------------------------------


def _run_worker(src: Path, threads: int, reps: int, quick: bool, cases: Sequence[str]) -> Dict[str, float]:
    env = dict(os.environ, PYTHONPATH=str(src), OMP_NUM_THREADS=str(threads))
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--worker",
        "--threads",
        str(threads),
        "--reps",
        str(reps),
        "--cases",
        ",".join(cases),
    ] + (["--quick"] if quick else [])
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=str(HERE))
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT ") :])
    raise RuntimeError(f"worker on {src} failed (rc {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")


def _check_tree(src: Path, label: str) -> Path:
    src = src.resolve()
    if not (src / "largekernel3d" / "sparse" / "__init__.py").is_file():
        raise SystemExit(f"--{label} must be a source tree holding largekernel3d/ (a repo's src/), got {src}")
    return src


def _throwaway_worktree(rev: str) -> Tuple[Path, Callable[[], None]]:
    """A detached ``git worktree`` of ``rev`` in a temporary folder, and the function that removes it."""
    folder = Path(tempfile.mkdtemp(prefix="lk3d_compare_")) / "tree"
    subprocess.run(
        ["git", "-C", str(REPO), "worktree", "add", "--detach", str(folder), rev], check=True, capture_output=True
    )

    def remove() -> None:
        subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(folder)], capture_output=True)

    return folder / "src", remove


def compare(
    old: Path,
    new: Path,
    rounds: int,
    reps: int,
    threads: Sequence[int],
    quick: bool,
    cases: Sequence[str],
    progress: bool = True,
) -> Dict[Tuple[int, str], Tuple[List[float], List[float]]]:
    """``{(threads, "input/case"): (old medians per round, new medians per round)}``."""
    samples: Dict[Tuple[int, str], Tuple[List[float], List[float]]] = {}
    for t in threads:  # a first process per tree fills numba's disk cache (not timed)
        for src in (old, new):
            _run_worker(src, t, 1, True, cases[:1])
    total, done = rounds * len(threads) * 2, 0
    for rnd in range(rounds):
        for t in threads:
            order = (0, 1) if rnd % 2 == 0 else (1, 0)
            for which in order:
                res = _run_worker((old, new)[which], t, reps, quick, cases)
                for key, ms in res.items():
                    samples.setdefault((t, key), ([], []))[which].append(ms)
                done += 1
                if progress:
                    print(
                        f"  [{done}/{total}] round {rnd + 1} threads {t} {('old', 'new')[which]}",
                        file=sys.stderr,
                        flush=True,
                    )
    return samples


def table(samples: Dict[Tuple[int, str], Tuple[List[float], List[float]]]) -> str:
    lines = [
        "| threads | input | case | old ms | new ms | new/old | old range | new range |",
        "|---|---|---|---|---|---|---|---|",
    ]
    order = {c: i for i, (c, _) in enumerate(CASES)}

    def rank(item) -> Tuple[int, int, int]:
        (t, key), _ = item
        name, case = key.split("/", 1)
        return t, INPUTS.index(name), order[case]

    for (t, key), (a, b) in sorted(samples.items(), key=rank):
        name, case = key.split("/", 1)
        ma, mb = statistics.median(a), statistics.median(b)
        flag = " **" if mb / ma > 1.05 else ""
        lines.append(
            f"| {t} | {name} | {case} | {ma:.1f} | {mb:.1f} | {mb / ma:.3f}{flag} | "
            f"{min(a):.1f}-{max(a):.1f} | {min(b):.1f}-{max(b):.1f} |"
        )
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--old", type=Path, help="source tree (a repo's src/) of the baseline")
    ap.add_argument("--new", type=Path, default=REPO / "src", help="source tree of the candidate (default: this)")
    ap.add_argument("--rev", default="main", help="revision checked out as --old when --old is not given")
    ap.add_argument("--rounds", type=int, default=4, help="alternating old/new processes per thread count")
    ap.add_argument("--reps", type=int, default=5, help="timed calls per case in a process (median)")
    ap.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    ap.add_argument("--cases", default=",".join(c for c, _ in CASES), help="comma-separated case names")
    ap.add_argument("--quick", action="store_true", help="small inputs (a smoke test of the harness)")
    ap.add_argument("--out", type=Path, help="also write the Markdown report here")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    cases = [c for c in args.cases.split(",") if c]
    unknown = sorted(set(cases) - {c for c, _ in CASES})
    if unknown:
        raise SystemExit(f"unknown --cases {unknown}; choose from {[c for c, _ in CASES]}")
    if args.worker:
        worker(int(args.threads), args.reps, args.quick, cases)
        return
    threads = [int(t) for t in args.threads.split(",")]
    cleanup = None
    if args.old is None:
        old, cleanup = _throwaway_worktree(args.rev)
        old_label = f"{args.rev} (throwaway worktree)"
    else:
        old, old_label = _check_tree(args.old, "old"), str(args.old)
    new = _check_tree(args.new, "new")
    try:
        load_before = Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").exists() else []
        samples = compare(old, new, args.rounds, args.reps, threads, args.quick, cases)
        load_after = Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").exists() else []
    finally:
        if cleanup is not None:
            cleanup()
    report = "\n".join(
        [
            "## Engine speed: new vs old",
            "",
            f"old: `{old_label}`; new: `{new}`; {args.rounds} alternating rounds of fresh processes per thread count, "
            f"{args.reps} timed calls per case per process (median of process medians); 32 -> 32 channels"
            f"{'; QUICK inputs' if args.quick else ''}. Load average before {' '.join(load_before)}, "
            f"after {' '.join(load_after)}. `**`: new/old above 1.05.",
            "",
            table(samples),
            "",
        ]
    )
    print(report)
    if args.out:
        args.out.write_text(report)


if __name__ == "__main__":
    main()
