"""benchmarks/gpu_check.py: argument parsing, the no-CUDA message, the reference checks (they pass on the
engine and fail on a wrong layer), the budget and unsupported-precision handling, the report from fake results,
and the CPU dry run end to end at tiny sizes."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import gpu_check  # noqa: E402
from gpu_checks import reference, report, timing  # noqa: E402


def test_parse_args_defaults_and_quick():
    args = gpu_check.parse_args([])
    assert args.device == "cuda" and args.budget_s == gpu_check.DEFAULT_BUDGET_S
    assert args.precisions == list(timing.PRECISIONS) and args.networks == list(gpu_check.NETWORK_NAMES)
    quick = gpu_check.parse_args(["--quick", "--out", "r.md", "--networks"])
    assert quick.budget_s == gpu_check.QUICK_BUDGET_S and quick.out == Path("r.md") and quick.networks == []
    assert gpu_check.parse_args(["--budget-s", "30", "--quick"]).budget_s == 30


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["--budget-s", "0"], "--budget-s"),
        (["--networks", "resnet"], "resnet"),
        (["--precisions", "float8"], "float8"),
        (["--device", "tpu"], "tpu"),
    ],
)
def test_parse_args_rejects_bad_values(argv, needle, capsys):
    with pytest.raises(SystemExit) as exc:
        gpu_check.parse_args(argv)
    assert exc.value.code == 2
    assert needle in capsys.readouterr().err


def test_no_cuda_exits_with_a_clear_message(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SystemExit) as exc:
        gpu_check.main(["--out", str(tmp_path / "r.md")])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "CUDA is not available" in err and "--device cpu" in err
    assert not (tmp_path / "r.md").exists()


@pytest.mark.parametrize(
    "check",
    [
        lambda: reference.check_subm(reference.TINY, torch.device("cpu"), torch.float32, 3, seed=1),
        lambda: reference.check_strided(reference.TINY, torch.device("cpu"), torch.float32, 3, 2, 1, seed=2),
        lambda: reference.check_inverse(reference.TINY, torch.device("cpu"), torch.float32, 3, 2, 1, seed=3),
        lambda: reference.check_swlk(reference.TINY, torch.device("cpu"), torch.float32, 5, seed=4),
    ],
)
def test_reference_checks_pass_on_the_engine(check):
    res = check()
    assert res.passed, res
    assert res.max_error < reference.TOLERANCE[torch.float32]
    assert {"forward", "d features"} <= set(res.errors)
    assert any(k.startswith("d ") and k.endswith("weight") for k in res.errors)


def test_reference_check_fails_on_a_wrong_layer(monkeypatch):
    import largekernel3d.sparse as lsp

    forward = lsp.SubMConv3d.forward

    def off_by_a_bit(self, x):
        y = forward(self, x)
        return y.replace_feature(y.features * 1.01)

    monkeypatch.setattr(lsp.SubMConv3d, "forward", off_by_a_bit)
    res = reference.check_subm(reference.TINY, torch.device("cpu"), torch.float32, 3, seed=1)
    assert not res.passed
    assert 5e-3 < res.errors["forward"] < 2e-2


def test_run_check_turns_an_exception_into_a_failed_result():
    def broken():
        raise RuntimeError("index_add_(): self (Float) and source (Half) must have the same scalar type")

    res = reference.run_check("broken", broken)
    assert not res.passed and res.max_error is None and "same scalar type" in res.message


def _workload(name, fn):
    return timing.Workload(
        name, "layer", lambda precision: {timing.FORWARD: fn(precision), timing.TRAIN: fn(precision)}
    )


def test_run_cases_reports_unsupported_and_skips_past_the_budget():
    def make(precision):
        if precision == "float16":

            def fail():
                raise TypeError("weight is torch.float16 but the features are torch.float32")

            return fail
        return lambda: torch.randn(64, 64) @ torch.randn(64, 64)

    timer = timing.DeviceTimer(torch.device("cpu"))
    res = timing.run_cases([_workload("mm", make)], ["float32", "float16"], timer, timing.Budget.seconds(30), 3)
    status = {(t.precision, t.what): t.status for t in res}
    assert status[("float32", timing.FORWARD)] == "ok"
    assert status[("float16", timing.TRAIN)].startswith("unsupported: TypeError: weight is torch.float16")
    ok = [t for t in res if t.status == "ok"]
    assert all(t.ms > 0 and 1 <= t.reps <= 3 and t.peak_mib is None for t in ok)
    spent = timing.run_cases([_workload("mm", make)], ["float32"], timer, timing.Budget.seconds(-1), 3)
    assert [t.status for t in spent] == ["skipped: --budget-s spent"] * 2


def test_a_call_running_past_the_deadline_is_interrupted():
    import time

    timer = timing.DeviceTimer(torch.device("cpu"))
    slow = _workload("slow", lambda precision: lambda: time.sleep(5))
    start = time.perf_counter()
    res = timing.run_cases([slow], ["float32"], timer, timing.Budget.seconds(1.0), 3)
    assert time.perf_counter() - start < 3
    assert res[0].status == "skipped: ran past --budget-s (interrupted)"


def test_report_from_fake_results():
    checks = [
        reference.CheckResult("SubMConv3d 3³", "float32", True, 2e-7, {"forward": 1e-7, "d weight": 2e-7}),
        reference.CheckResult("SWLKConv3d 7³", "float16", False, 0.5, {"forward": 0.5}),
        reference.CheckResult("SparseConv3d", "", False, None, message="RuntimeError: boom"),
    ]
    timings = [
        timing.Timing("LargeKernel3D-Seg", "network", "float32", timing.FORWARD, "ok", 12.345, 5, 812.0),
        timing.Timing("LargeKernel3D-Seg", "network", "float32", timing.TRAIN, "ok", 345.6, 4, 2048.0),
        timing.Timing(
            "LargeKernel3D-Seg",
            "network",
            "autocast-float16",
            timing.FORWARD,
            "unsupported: RuntimeError: index_add_(): self (Float) and source (Half)",
        ),
        timing.Timing("SW-LK 7³", "layer", "float32", timing.FORWARD, "skipped: --budget-s spent"),
    ]
    env = {"device": "NVIDIA H100 80GB HBM3", "torch": "2.13.0"}
    text = report.render(
        env,
        {"budget": "420 s"},
        checks,
        timings,
        ["float32", "autocast-float16"],
        ["indoor scene: generated"],
        finished=True,
    )
    for section in report.SECTIONS:
        assert section in text
    assert "**1 of 3 checks passed.**" in text
    assert "| SubMConv3d 3³ | float32 | PASS | 2.0e-07 | 1.0e-04 |" in text
    assert "| SWLKConv3d 7³ | float16 | FAIL | 5.0e-01 | 2.0e-02 |" in text
    assert "| LargeKernel3D-Seg | forward | 12.3 ms, 812 MiB (n=5) | unsupported |" in text
    assert "| LargeKernel3D-Seg | forward+backward | 346 ms, 2,048 MiB (n=4) | – |" in text
    assert "source (Half) — 1 combination(s): LargeKernel3D-Seg autocast-float16 forward" in text
    assert "NVIDIA H100 80GB HBM3" in text and "Partial report" not in text
    assert "Partial report" in report.render(env, {}, checks, timings, ["float32"], [], finished=False)


@pytest.mark.slow
def test_cpu_dry_run_end_to_end(tmp_path):
    out = tmp_path / "report.md"
    rc = gpu_check.main(
        [
            "--device",
            "cpu",
            "--out",
            str(out),
            "--precisions",
            "float32",
            "bfloat16",
            "--networks",
            "centerpoint_voxelres",
            "--budget-s",
            "240",
        ]
    )
    text = out.read_text()
    assert rc == 0, text
    for section in report.SECTIONS:
        assert section in text
    assert "**15 of 15 checks passed.**" in text
    assert "| SW-LK 7³ 8→8, LiDAR | forward+backward |" in text
    row = next(line for line in text.splitlines() if line.startswith("| centerpoint_voxelres | forward |"))
    assert " ms (n=1) |" in row
    assert "LargeKernel3D-Seg" not in text.split("## Timing")[1]
    assert "wall time" in text and "Partial report" not in text
