"""Training steps and their memory: LargeKernel3D-Seg vs MinkUNet34C on a ScanNet scene at 2 cm, and the shipped
PandaSet CenterPoint configs (VoxelResBackBone8x vs LargeKernel3D), on the CPU.

1. **Segmentation step**: the shipped ``paper_scannet`` / ``minkunet34c_scannet`` run configs (augmentation with
   elastic distortion, SGD + poly schedule) on ``../shared/data/scannet/votenet_50k/scene0000_00`` at 2 cm (a
   generated indoor scene of as many points when the sample is absent), batch of one, phase by phase as the
   trainer runs a step: data (augmentation + voxelisation + collate), forward (cross-entropy), backward
   (``zero_grad`` + ``backward``), optimiser (step + scheduler step); plus an inference forward (eval mode,
   ``torch.no_grad``) for the ``fwd+bwd / forward`` ratio. The two networks alternate in every round.
2. **Detection step**: the same split for ``pandaset_centerpoint_voxelres`` / ``pandaset_centerpoint_largekernel3d``
   on the first PandaSet training frame (a synthetic LiDAR frame with the same settings when the sample is
   absent; optimiser AdamW + one-cycle, gradient clipping).
3. **Peak memory** of one training step (forward, backward, optimiser) of each network, each in a fresh
   process (``common.run_memory_worker``): the peak RSS during the step minus the RSS before it, where "before"
   is after the imports, the network, the data and a warm-up step on a small crop (kernels compiled or loaded).
   The peak is the kernel's high-water mark ``VmHWM``, reset before the step (``common.peak_rss_mib``), not
   ``ru_maxrss``: a worker inherits its parent's ``ru_maxrss`` through fork and exec, so with a parent larger
   than the step's peak it does not move. Ours, and the same network built from spconv 2.3.8 modules where
   spconv runs it (LargeKernel3D-Seg as plain 7³ convs, MinkUNet34C, VoxelRes, ``to_plain`` of the LargeKernel3D
   backbone); spconv has no CPU backward for submanifold convs, so its rows say so and give the peak of the
   forward with its autograd graph instead.
4. **Largest scene in 24 GiB**: LargeKernel3D-Seg and MinkUNet34C whole-process peaks (RSS before the step +
   the step's peak increase) on 1/3, 2/3 and all of the scene
   (the points with the smallest x: same density, fewer voxels), a least-squares line in voxels, solved for
   24 GiB. An extrapolation far beyond the measured sizes.

Timing at 1 and 2 threads (medians of alternating rounds after a warm-up round), memory at 1 and 2 threads
(spconv at 1: its CPU kernels race with more). ``quick``: a 2 m crop of the scene, 1 thread, one round, ours
only, two scene sizes. Run standalone: ``python benchmarks/bench_training.py [--quick]``.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402
from common import SHARED_DATA, markdown_table, num_threads, timed_training_step  # noqa: E402
from gpu_checks import workloads as W  # noqa: E402

from largekernel3d import data as D  # noqa: E402
from largekernel3d.sparse import keep_freed_memory  # noqa: E402

PANDASET = SHARED_DATA / "pandaset"
QUICK_CROP_M = 2.0
GIB24_MIB = 24 * 1024
PHASES = ("data", "forward", "backward", "optimizer")
SCALING_FRACTIONS = (1 / 3, 2 / 3, 1.0)
QUICK_SCALING_FRACTIONS = (0.5, 1.0)
WARMUP_CROP_M = 0.6
WARMUP_DET_VOXELS = 2000


class OneScene(D.SegmentationDataset):
    """A one-scene segmentation dataset (the 20 ScanNet classes) for ``VoxelizedSegmentation``."""

    class_names = D.SCANNET20_CLASSES

    def __init__(self, scene: D.PointCloudScene) -> None:
        self.scene_names = [scene.name]
        self._scene = scene

    def _load(self, index: int) -> D.PointCloudScene:
        return self._scene


# ------------------------------------------------------------------------------------------------
# steps
# ------------------------------------------------------------------------------------------------


class Trainee:
    """A network with its optimiser, scheduler and data as the trainers build them; :meth:`step` runs one
    training step (phase times in seconds), :meth:`infer` one inference forward."""

    def __init__(
        self,
        label: str,
        model: nn.Module,
        cfg: Dict[str, Any],
        make_batch: Callable[[], Any],
        loss_fn: Callable[[Any], torch.Tensor],
        infer_fn: Callable[[Any], Any],
        voxels: int,
        info: str,
        infer_batch: Any = None,
    ) -> None:
        from largekernel3d.training import setup

        self.label, self.model, self.cfg, self.voxels, self.info = label, model, cfg, voxels, info
        self.make_batch, self.loss_fn, self.infer_fn = make_batch, loss_fn, infer_fn
        self.optimizer = setup.build_optimizer(model, cfg)
        self.scheduler = setup.build_scheduler(self.optimizer, cfg, total_steps=1000)
        self.clip = float(cfg["train"].get("grad_clip", 0.0))
        self._infer_batch = make_batch() if infer_batch is None else infer_batch

    def step(self) -> Dict[str, float]:
        return timed_training_step(
            self.make_batch, self.loss_fn, self.model, self.optimizer, self.scheduler, self.clip
        )[0]

    def infer(self) -> float:
        self.model.eval()
        start = time.perf_counter()
        with torch.no_grad():
            self.infer_fn(self._infer_batch)
        return time.perf_counter() - start


def seg_trainee(label: str, scene: W.SegScene, backend=None) -> Trainee:
    """``label`` (LargeKernel3D-Seg / MinkUNet34C) with its shipped run config on ``scene`` (``backend``:
    spconv for the plain twin, see :func:`gpu_checks.workloads.build_seg_network`)."""
    from largekernel3d.training import setup

    cfg = W.seg_run_config(label)
    data = setup.voxelize(OneScene(scene.scene), cfg, train=True)
    torch.manual_seed(int(cfg["seed"]))
    model = W.build_seg_network(label, backend=backend, plain=backend is not None and label == W.LK_SEG)
    if backend is None:
        tensor = D.SegBatch.to_sparse_tensor
    else:

        def tensor(b: D.SegBatch):
            return backend.SparseConvTensor(b.features, b.indices, b.spatial_shape, b.batch_size)

    plain_batch = W.seg_batch(scene)
    voxels = int(plain_batch.indices.shape[0])
    return Trainee(
        label,
        model,
        cfg,
        lambda: D.collate_segmentation([data[0]]),
        lambda b: W.seg_loss(model, b, tensor),
        lambda b: model(tensor(b)),
        voxels,
        f"`{W.SEG_NETWORKS[label][0]}`: {sum(p.numel() for p in model.parameters()):,} parameters, "
        f"optimizer {cfg['train']['optimizer']} + {cfg['train']['scheduler']}, augment "
        f"{cfg['data']['augment']} (elastic {cfg['data']['elastic']})",
        plain_batch,
    )


def det_trainee(name: str, overrides: Sequence[str], backend=None) -> Trainee:
    """The shipped PandaSet config ``name`` with ``overrides``; ``backend`` = spconv: the VoxelRes detector built
    from spconv modules, or the LargeKernel3D one with its backbone's ``to_plain(spconv)`` copy."""
    from largekernel3d.models import build_model
    from largekernel3d.training import det_setup

    setup_ = W.build_det(name, overrides)
    model = setup_.model
    if backend is not None:
        if name == W.DET_VOXELRES:
            torch.manual_seed(int(setup_.cfg["seed"]))
            model = build_model(det_setup.detector_config(setup_.cfg, list(setup_.class_names)), backend=backend)
        else:
            model.backbone_3d = model.backbone_3d.to_plain(backend)
    model.train()
    first = setup_.batch()
    return Trainee(
        name,
        model,
        setup_.cfg,
        setup_.batch,
        lambda b: model(b)[0].float(),
        lambda b: model.head_outputs(b),
        int(first.coords.shape[0]),
        setup_.describe(),
        first,
    )


# ------------------------------------------------------------------------------------------------
# timing
# ------------------------------------------------------------------------------------------------


def time_steps(
    trainees: Sequence[Trainee], threads: Sequence[int], reps: int
) -> Dict[Tuple[str, int], Dict[str, float]]:
    """Per (network, threads): median seconds of each phase, of the step, of fwd+bwd and of the inference
    forward, over ``reps`` alternating rounds after a warm-up round."""
    out: Dict[Tuple[str, int], Dict[str, float]] = {}
    for t in threads:
        records: Dict[str, List[Dict[str, float]]] = defaultdict(list)
        with num_threads(t):
            for rnd in range(1 + reps):
                for tr in trainees:
                    rec = tr.step()
                    rec["inference"] = tr.infer()
                    if rnd:
                        records[tr.label].append(rec)
                print(
                    f"bench_training: {t} thread(s) round {rnd}: "
                    + ", ".join(
                        f"{tr.label} {sum(records[tr.label][-1][p] for p in PHASES) if rnd else 0:.1f} s"
                        for tr in trainees
                    ),
                    file=sys.stderr,
                )
        for tr in trainees:
            recs = records[tr.label]
            med = {k: float(np.median([r[k] for r in recs])) for k in recs[0]}
            med["step"] = float(np.median([sum(r[p] for p in PHASES) for r in recs]))
            med["compute"] = float(np.median([r["forward"] + r["backward"] + r["optimizer"] for r in recs]))
            med["fb"] = float(np.median([r["forward"] + r["backward"] for r in recs]))
            out[(tr.label, t)] = med
    return out


def _ms(v: Optional[float]) -> str:
    return "–" if v is None else f"{1e3 * v:,.0f}"


def _x(a: Optional[float], b: Optional[float]) -> str:
    return "–" if a is None or b is None or b <= 0 else f"{a / b:.2f}×"


def step_table(trainees: Sequence[Trainee], med: Dict[Tuple[str, int], Dict[str, float]], base: str) -> str:
    """Phases in ms per network and thread count, ratios to ``base`` and to the network's own forwards."""
    rows = []
    for (label, t), m in med.items():
        b = med.get((base, t))
        rows.append(
            [label, t]
            + [_ms(m[p]) for p in PHASES]
            + [
                _ms(m["step"]),
                _ms(m["inference"]),
                _x(m["fb"], m["forward"]),
                _x(m["fb"], m["inference"]),
                _x(m["compute"], b["compute"]) if b else "–",
                _x(m["step"], b["step"]) if b else "–",
            ]
        )
    return markdown_table(
        [
            "network",
            "threads",
            "data ms",
            "forward ms",
            "backward ms",
            "optimizer ms",
            "step ms",
            "inference fwd ms",
            "fwd+bwd / train fwd",
            "fwd+bwd / inference fwd",
            f"fwd+bwd+opt / {base}",
            f"step / {base}",
        ],
        rows,
    )


# ------------------------------------------------------------------------------------------------
# memory, one process per measurement
# ------------------------------------------------------------------------------------------------


def _maxrss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # kB on Linux


def _status_mib(field: str) -> float:
    """``field`` (``VmRSS`` / ``VmHWM``) of ``/proc/self/status`` in MiB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024.0
    raise RuntimeError(f"/proc/self/status has no {field}")


def _memory_worker(spec: Dict[str, Any]) -> Dict[str, Any]:
    """Subprocess body: one warm-up step on a crop, then one measured step: its peak RSS above the RSS before it
    (MiB; ``common.peak_rss_mib``: the kernel's high-water mark reset before the step). ``ru_maxrss`` is not
    used: a child inherits its parent's ``ru_maxrss`` through fork and exec, so in a worker started by a
    process larger than the step's peak it never moves (``maxrss_inherited`` says whether that was so here)."""
    torch.set_num_threads(int(spec["threads"]))
    backend = common.load_spconv() if spec["engine"] == "spconv" else None
    if spec["engine"] == "spconv" and backend is None:
        return {"error": "spconv not installed"}
    data_root = None if spec["data"] is None else Path(spec["data"])
    if spec["kind"] == "seg":
        scene = W.load_seg_scene(data_root, crop_m=spec.get("crop_m"), keep_fraction=spec.get("fraction"))
        warm = W.load_seg_scene(data_root, crop_m=WARMUP_CROP_M)
        trainee = seg_trainee(spec["label"], scene, backend)
        warm_batch = W.seg_batch(warm)
        loss_of = trainee.loss_fn
    else:
        trainee = det_trainee(spec["label"], spec["overrides"], backend)
        full = trainee.make_batch()
        n = WARMUP_DET_VOXELS
        import dataclasses

        warm_batch = dataclasses.replace(
            full, voxels=full.voxels[:n], num_points=full.num_points[:n], coords=full.coords[:n]
        )
        loss_of = trainee.loss_fn
    note = ""

    def one_step(batch) -> None:
        nonlocal note
        trainee.model.train()
        trainee.optimizer.zero_grad(set_to_none=True)
        loss = loss_of(batch)
        try:
            loss.backward()
        except Exception as err:  # spconv: no CPU backward for submanifold convs
            note = f"backward raised {type(err).__name__}: forward with its autograd graph only"
            return
        trainee.optimizer.step()

    one_step(warm_batch)
    batch = trainee.make_batch()
    before = _status_mib("VmRSS")
    maxrss_before, hwm_before = _maxrss_mib(), _status_mib("VmHWM")
    peak = common.peak_rss_mib(lambda: one_step(batch))  # resets VmHWM, then VmHWM - VmRSS(before)
    voxels = int(batch.indices.shape[0]) if spec["kind"] == "seg" else int(batch.coords.shape[0])
    return {
        "peak_mib": peak,
        "baseline_mib": before,
        "voxels": voxels,
        "note": note,
        "maxrss_inherited": maxrss_before > hwm_before + 1.0,
    }


def measure(spec: Dict[str, Any]) -> Dict[str, Any]:
    """:func:`_memory_worker` in a fresh process; ``{"error": ...}`` when it printed no result."""
    out = common.run_memory_worker(__file__, ["--memory-worker", json.dumps(spec)])
    for line in reversed(out.splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    return {"error": "the worker printed no result (crashed or out of memory)"}


def memory_section(specs: Sequence[Dict[str, Any]]) -> Tuple[str, List[Dict[str, Any]]]:
    results = []
    for spec in specs:
        res = measure(spec)
        results.append({**spec, **res})
        print(f"bench_training: memory {spec['label']} {spec['engine']} {spec['threads']} thr: {res}", file=sys.stderr)
    rows = [
        [
            r["label"],
            r["engine"],
            r["threads"],
            f"{r['voxels']:,}" if "voxels" in r else "–",
            f"{r['baseline_mib']:,.0f}" if "baseline_mib" in r else "–",
            f"{r['peak_mib']:,.0f}" if "peak_mib" in r else "–",
            r.get("error") or r.get("note") or "",
        ]
        for r in results
    ]
    table = markdown_table(
        [
            "network",
            "engine",
            "threads",
            "voxels",
            "RSS before the step MiB",
            "peak RSS increase of one step MiB",
            "note",
        ],
        rows,
    )
    return table, results


def fit_24gib(points: Sequence[Tuple[int, float]]) -> Optional[Tuple[float, float, float]]:
    """Least-squares ``peak = a + b · voxels`` over ``points`` and the voxels at which it reaches 24 GiB:
    ``(a MiB, b MiB per voxel, voxels)``; ``None`` with fewer than two distinct sizes or a non-positive slope."""
    if len({v for v, _ in points}) < 2:
        return None
    v = np.array([p[0] for p in points], dtype=float)
    m = np.array([p[1] for p in points], dtype=float)
    b, a = np.polyfit(v, m, 1)
    if b <= 0:
        return None
    return float(a), float(b), float((GIB24_MIB - a) / b)


# ------------------------------------------------------------------------------------------------
# section
# ------------------------------------------------------------------------------------------------


def run(quick: bool) -> str:
    """Measure and return the Markdown section (see the module docstring)."""
    start, load0 = time.perf_counter(), open("/proc/loadavg").read().split()[:3]
    threads = (1,) if quick else (1, 2)
    reps = 1 if quick else 3
    data_root = SHARED_DATA if SHARED_DATA.is_dir() else None
    crop = QUICK_CROP_M if quick else None
    scene = W.load_seg_scene(data_root, crop_m=crop)
    seg = [seg_trainee(label, scene) for label in (W.LK_SEG, W.MINKUNET)]
    seg_med = time_steps(seg, threads, reps)
    overrides, det_source = W.det_overrides(PANDASET if PANDASET.is_dir() else None)
    det = [det_trainee(name, overrides) for name in (W.DET_VOXELRES, W.DET_LK)]
    det_med = time_steps(det, threads, reps)

    sp = common.load_spconv()
    specs: List[Dict[str, Any]] = []
    data = None if data_root is None else str(data_root)
    mem_threads = (1,) if quick else (1, 2)
    for kind, labels in (("seg", (W.LK_SEG, W.MINKUNET)), ("det", (W.DET_VOXELRES, W.DET_LK))):
        for label in labels:
            base = {"kind": kind, "label": label, "data": data, "crop_m": crop, "overrides": overrides}
            specs += [dict(base, engine="ours", threads=t) for t in mem_threads]
            if sp is not None and not quick:
                specs.append(dict(base, engine="spconv", threads=1))
    mem_table, mem = memory_section(specs)
    fractions = QUICK_SCALING_FRACTIONS if quick else SCALING_FRACTIONS
    scale_specs = [
        {
            "kind": "seg",
            "label": label,
            "data": data,
            "crop_m": crop,
            "fraction": f,
            "engine": "ours",
            "threads": 1,
            "overrides": [],
        }
        for label in (W.LK_SEG, W.MINKUNET)
        for f in fractions
        if f < 1.0
    ]
    _, scaled = memory_section(scale_specs)
    fits = {}
    for label in (W.LK_SEG, W.MINKUNET):
        pts = [
            (r["voxels"], r["baseline_mib"] + r["peak_mib"])
            for r in scaled + mem
            if r["label"] == label
            and r["kind"] == "seg"
            and r["engine"] == "ours"
            and r["threads"] == 1
            and r.get("peak_mib") is not None
        ]
        fits[label] = (pts, fit_24gib(pts))

    lk, mk = W.LK_SEG, W.MINKUNET
    lines = [
        "## Training step and memory: LargeKernel3D-Seg vs MinkUNet34C, CenterPoint VoxelRes vs LargeKernel3D (CPU)",
        "",
        f"Load average at start {' '.join(load0)} on {os.cpu_count()} cores (shared machine); torch "
        f"{torch.__version__}; {'spconv installed' if sp is not None else 'spconv not installed'}. Medians of "
        f"{reps} alternating round(s) after a warm-up round; the phases as the trainers run them (data = "
        "augmentation + voxelisation + collate; forward = loss; backward = zero_grad + backward; optimizer = "
        "clipping + step + scheduler step); inference fwd = eval mode, `torch.no_grad`, on the unaugmented "
        "scene (seg) / the first augmented batch (det). Batch of one.",
        "",
        "### Segmentation, one scene at 2 cm",
        "",
        f"Scene: {scene.source} → {seg[0].voxels:,} voxels (before augmentation).",
        "",
    ]
    lines += [f"- {tr.info}" for tr in seg] + ["", step_table(seg, seg_med, mk), ""]
    for t in threads:
        a, b = seg_med[(lk, t)], seg_med[(mk, t)]
        lines.append(
            f"- {t} thread(s): LargeKernel3D-Seg training step (fwd+bwd+optimizer) "
            f"**{_x(a['compute'], b['compute'])}** MinkUNet34C's (target ≤ 1.15×; whole step with data "
            f"{_x(a['step'], b['step'])}); LargeKernel3D-Seg fwd+bwd **{_x(a['fb'], a['inference'])}** its "
            f"inference forward and {_x(a['fb'], a['forward'])} its training forward (target ≤ 2.5×)."
        )
    lines += ["", "### Detection, shipped PandaSet configs", "", f"Data: {det_source}.", ""]
    lines += [f"- {tr.info}" for tr in det] + ["", step_table(det, det_med, W.DET_VOXELRES), ""]
    lines += [
        "### Peak memory of one training step",
        "",
        "Each row in a fresh process (glibc's mmap threshold pinned at 64 KiB so freed buffers return to the "
        "system): the peak RSS of one training step (`VmHWM`, reset before the step; `ru_maxrss` cannot be "
        "used, a worker inherits its parent's) minus the RSS before it, which already holds the "
        "imports, the network, its gradients and optimiser state, the data and a warm-up step on a small crop "
        f"({WARMUP_CROP_M} m column / {WARMUP_DET_VOXELS:,} voxels). Same inputs as the timings (seg step "
        "augmented). spconv: the same networks built from spconv modules (LargeKernel3D-Seg with plain 7³ "
        "convs; the LargeKernel3D detector's backbone via `to_plain`).",
        "",
        mem_table,
        "",
        "### Largest ScanNet-sized scene trainable at 2 cm in 24 GiB (extrapolation)",
        "",
    ]
    for label, (pts, fit) in fits.items():
        measured = ", ".join(f"{v:,} voxels → {m:,.0f} MiB" for v, m in sorted(pts))
        if fit is None:
            lines.append(f"- {label}: not enough sizes measured ({measured or 'none'}).")
            continue
        a, b, v24 = fit
        lines.append(
            f"- {label} (1 thread): measured {measured}; fit {a:,.0f} MiB + {1024 * b:,.2f} MiB per 1,000 "
            f"voxels → 24 GiB at about **{v24:,.0f} voxels** ({v24 / seg[0].voxels:.0f}× this scene). "
            "A linear extrapolation far beyond the measured sizes, of the process's whole peak RSS "
            "(RSS before the step, which holds the imports, parameters, gradients and optimiser state, plus "
            "the step's peak increase)."
        )
    lines += [
        "",
        f"Load average at the end: {' '.join(open('/proc/loadavg').read().split()[:3])}; module wall "
        f"time {time.perf_counter() - start:.0f} s.",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--memory-worker"]:
        print(json.dumps(_memory_worker(json.loads(sys.argv[2]))), flush=True)
    else:
        keep_freed_memory()
        print(run(quick="--quick" in sys.argv[1:]))
