"""The Markdown report of ``benchmarks/gpu_check.py``: the environment, the dense-reference checks (pass/fail
with the largest relative error) and the timing tables (one per group, precisions as columns), followed by the
unsupported, failed and skipped combinations with their reasons."""

from __future__ import annotations

import importlib.util
import platform
from typing import Dict, List, Optional, Sequence, Tuple

import torch

from .reference import TOLERANCE, CheckResult
from .timing import FORWARD, TRAIN, Timing

SECTIONS = ("## Environment", "## Dense-reference checks", "## Timing", "## Unsupported, failed and skipped")


def environment(device: torch.device) -> Dict[str, str]:
    """Device name, torch / CUDA / cuDNN versions, TF32 switches, Python, pytest availability."""
    env: Dict[str, str] = {"device": str(device)}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        env["device"] = (
            f"{props.name} (compute capability {props.major}.{props.minor}, {props.total_memory / 2**30:.1f} GiB)"
        )
        env["CUDA (torch build)"] = str(torch.version.cuda)
        env["cuDNN"] = str(torch.backends.cudnn.version())
        env["TF32"] = (
            f"matmul {torch.backends.cuda.matmul.allow_tf32}, cuDNN conv {torch.backends.cudnn.allow_tf32} "
            "(the engine multiplies with torch.mm; the float64 references use no TF32)"
        )
    else:
        env["device"] = f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
    env["torch"] = torch.__version__
    env["Python"] = platform.python_version()
    env["pytest"] = (
        "installed" if importlib.util.find_spec("pytest") else "not installed"
    ) + " (the test suite has no device option; the checks below are this script's own)"
    return env


def _fmt_err(v: Optional[float]) -> str:
    return "–" if v is None else f"{v:.1e}"


def checks_table(checks: Sequence[CheckResult]) -> str:
    rows = ["| check | dtype | result | max rel. error | tolerance | per tensor |", "|---|---|---|---|---|---|"]
    for c in checks:
        tol = {str(k).replace("torch.", ""): v for k, v in TOLERANCE.items()}.get(c.dtype)
        detail = ", ".join(f"{k} {v:.1e}" for k, v in c.errors.items()) or c.message
        rows.append(
            f"| {c.name} | {c.dtype or '–'} | {'PASS' if c.passed else 'FAIL'} | {_fmt_err(c.max_error)} | "
            f"{_fmt_err(tol)} | {detail.replace('|', '/')} |"
        )
    return "\n".join(rows)


def _cell(t: Optional[Timing]) -> str:
    if t is None:
        return "–"
    if t.status != "ok":
        return t.status.split(":", 1)[0]
    text = f"{t.ms:,.1f} ms" if t.ms < 100 else f"{t.ms:,.0f} ms"
    if t.peak_mib is not None:
        text += f", {t.peak_mib:,.0f} MiB"
    return text + f" (n={t.reps})"


def timing_tables(timings: Sequence[Timing], precisions: Sequence[str]) -> str:
    """One table per group (layers, networks): rows case × forward / forward+backward, columns precisions."""
    by_key: Dict[Tuple[str, str, str], Timing] = {(t.case, t.what, t.precision): t for t in timings}
    parts: List[str] = []
    for group, title in (("layer", "Layers"), ("network", "Networks")):
        cases = list(dict.fromkeys(t.case for t in timings if t.group == group))
        if not cases:
            continue
        lines = [
            f"### {title}",
            "",
            "| case | measured | " + " | ".join(precisions) + " |",
            "|---|---|" + "---|" * len(precisions),
        ]
        for case in cases:
            for what in (FORWARD, TRAIN):
                lines.append(
                    f"| {case} | {what} | " + " | ".join(_cell(by_key.get((case, what, p))) for p in precisions) + " |"
                )
        parts.append("\n".join(lines))
    return "\n\n".join(parts)


def problems(checks: Sequence[CheckResult], timings: Sequence[Timing]) -> str:
    """Failed checks, and the unsupported / failed / skipped timing combinations grouped by reason."""
    lines = [
        f"- check **{c.name}** ({c.dtype or 'did not run'}): FAILED — "
        + (c.message or ", ".join(f"{k} {v:.1e}" for k, v in c.errors.items()))
        for c in checks
        if not c.passed
    ]
    reasons: Dict[str, List[str]] = {}
    for t in timings:
        if t.status != "ok":
            reasons.setdefault(t.status, []).append(f"{t.case} {t.precision} {t.what}")
    for status, where in reasons.items():
        lines.append(f"- {status} — {len(where)} combination(s): " + "; ".join(where))
    return "\n".join(lines) if lines else "None."


def render(
    env: Dict[str, str],
    run: Dict[str, str],
    checks: Sequence[CheckResult],
    timings: Sequence[Timing],
    precisions: Sequence[str],
    inputs: Sequence[str],
    finished: bool,
) -> str:
    """The whole report (``finished=False``: a partial report written while the run goes on)."""
    passed = sum(c.passed for c in checks)
    lines = ["# GPU check report", ""]
    if not finished:
        lines += ["**Partial report: the run had not finished when this was written.**", ""]
    lines += [SECTIONS[0], ""] + [f"- {k}: {v}" for k, v in {**env, **run}.items()] + [""]
    lines += [
        SECTIONS[1],
        "",
        "Each layer of the engine in the listed dtype on the device vs `torch.nn.functional.conv3d` / "
        "`conv_transpose3d` on the densified grid in float64, read at the active sites; random sites, "
        "features and parameters; forward and the gradients of a random cotangent w.r.t. the features and "
        "every parameter. Error = max |engine − reference| / max |reference|.",
        "",
        f"**{passed} of {len(checks)} checks passed.**" if checks else "No checks ran.",
        "",
    ]
    if checks:
        lines += [checks_table(checks), ""]
    lines += [
        SECTIONS[2],
        "",
        "Medians of n timed calls after a warm-up call (synchronised); every call builds its kernel maps. "
        "forward: eval mode, `torch.no_grad`; forward+backward: train mode, loss and backward (no optimiser). "
        "MiB: peak allocated device memory of one call above what was allocated before it (CUDA only). "
        "Precisions: `float32`; `autocast-*`: the forward under `torch.autocast`, backward outside it, no "
        "loss scaling; `float16` / `bfloat16`: parameters and input features cast.",
        "",
    ]
    lines += [f"- {line}" for line in inputs] + [""]
    lines += [timing_tables(timings, precisions) if timings else "No timings.", ""]
    lines += [SECTIONS[3], "", problems(checks, timings), ""]
    return "\n".join(lines)
