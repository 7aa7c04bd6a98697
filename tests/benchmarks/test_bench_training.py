"""benchmarks/bench_training.py: the 24 GiB extrapolation, the step table, one training step split into its
phases, and the memory worker's result on a tiny scene."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import bench_training as B  # noqa: E402
from gpu_checks import workloads as W  # noqa: E402


def test_fit_24gib_solves_the_line():
    a, b, v = B.fit_24gib([(10_000, 1_000.0), (20_000, 1_500.0), (30_000, 2_000.0)])
    assert a == pytest.approx(500.0) and b == pytest.approx(0.05)
    assert v == pytest.approx((24 * 1024 - 500.0) / 0.05)
    assert B.fit_24gib([(10_000, 1_000.0), (10_000, 1_100.0)]) is None  # one size only
    assert B.fit_24gib([(10_000, 2_000.0), (20_000, 1_000.0)]) is None  # memory falling with size


def test_step_table_ratios():
    med = {
        ("A", 1): {
            "data": 0.1,
            "forward": 1.0,
            "backward": 2.0,
            "optimizer": 0.1,
            "step": 3.2,
            "compute": 3.1,
            "fb": 3.0,
            "inference": 0.75,
        },
        ("B", 1): {
            "data": 0.1,
            "forward": 0.5,
            "backward": 1.0,
            "optimizer": 0.05,
            "step": 1.65,
            "compute": 1.55,
            "fb": 1.5,
            "inference": 0.5,
        },
    }
    table = B.step_table([], med, "B")
    row_a = next(line for line in table.splitlines() if line.startswith("| A |"))
    assert row_a == "| A | 1 | 100 | 1,000 | 2,000 | 100 | 3,200 | 750 | 3.00× | 4.00× | 2.00× | 1.94× |"


def _tiny_scene() -> W.SegScene:
    return W.load_seg_scene(None, points=3000, crop_m=0.6)


def test_seg_trainee_step_phases_and_update():
    torch.manual_seed(0)
    trainee = B.seg_trainee(W.MINKUNET, _tiny_scene())
    before = [p.detach().clone() for p in trainee.model.parameters()]
    phases = trainee.step()
    assert set(phases) == set(B.PHASES) and all(v > 0 for v in phases.values())
    changed = sum(not torch.equal(a, p) for a, p in zip(before, trainee.model.parameters()))
    assert changed > len(before) // 2
    assert trainee.infer() > 0 and trainee.voxels == 57


def test_memory_worker_in_process_reports_a_positive_peak():
    spec = {
        "kind": "seg",
        "label": W.MINKUNET,
        "data": None,
        "crop_m": 0.6,
        "fraction": None,
        "engine": "ours",
        "threads": 1,
        "overrides": [],
    }
    res = B._memory_worker(spec)
    unaugmented = W.seg_batch(W.load_seg_scene(None, crop_m=0.6)).indices.shape[0]  # the worker's 50k-point scene
    assert abs(res["voxels"] - unaugmented) <= 0.05 * unaugmented and res["note"] == ""  # measured step: augmented
    if res["peak_mib"] is None:
        pytest.skip("/proc/self/clear_refs is not writable here")
    assert res["peak_mib"] > 0 and res["baseline_mib"] > 100
