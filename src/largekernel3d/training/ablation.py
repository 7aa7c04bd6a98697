"""Ablation runs: a named set of configurations trained at the same budget and seeds, aggregated into one table.

A set (:class:`AblationSet`) is one base run configuration plus named variants, each a list of ``--set``-style
overrides of that base (``model.stage_conv_types=depthwise``); one variant is the baseline. Every
``(variant, seed)`` pair is one ordinary training run in its own folder ``<output>/<variant>/seed<k>``; a run that
finished earlier (its ``ablation_run.json`` holds the same configuration) is reused, an interrupted one resumes
from its last checkpoint.

Per run we keep, for every validated epoch, the validation score(s), and at the end the parameter count, the
forward latency (median wall time of ``latency_repeats`` inference passes on the first validation sample, after one
warm-up pass, at the run's thread setting) and the training time per optimiser step: the median over epochs of
the epoch's wall time / its steps, and its CPU time (``time.process_time``, all threads of the process) / its
steps. Data loading is included in both; the CPU time hardly moves when other jobs share the machine, the wall
time and the latency do.

Aggregation over the seeds ``s = 1..n`` of a variant, for a final-epoch score ``x_s``::

    mean = (1/n) sum_s x_s,   std = sqrt(sum_s (x_s - mean)^2 / (n - 1))  (0 for n = 1),
    range = max_s x_s - min_s x_s

and against the baseline ``b``: ``delta = mean_v - mean_b``; the difference is *within noise* when
``|delta| <= max(range_v, range_b)`` (no bigger than the seed-to-seed spread of either), otherwise *better* or
*worse* by its sign; with one seed there is no spread and the verdict is ``n/a (1 seed)``.

Segmentation scores are point mIoU in both conventions of :mod:`.metrics` (``miou_present``: classes present in
the ground truth, the headline; ``miou_union``: classes with a non-empty union); detection scores are the
configured validation metric (mAP).
"""

from __future__ import annotations

import csv
import json
import math
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch
from tqdm import tqdm

from . import config as C

RUN_FILE = "ablation_run.json"
SEG_METRICS = ("miou_present", "miou_union")
DET_METRICS = ("map",)
METRIC_LABELS = {"miou_present": "mIoU % (classes in GT)", "miou_union": "mIoU % (non-empty union)", "map": "mAP %"}


@dataclass(frozen=True)
class AblationSet:
    """A named set of configurations: ``base`` (a full run configuration mapping, before validation) with
    ``variants`` (name -> overrides) and the name of the ``baseline`` variant.

    Attributes:
        name: the set's name (folder and table titles).
        task: ``"seg"`` or ``"det"``.
        base: the base run configuration (a mapping as read from YAML).
        base_overrides: ``key=value`` overrides applied to every variant before its own.
        variants: ``(name, overrides, description)`` in table order.
        baseline: the variant the others are compared with.
        description: one paragraph for the report.
    """

    name: str
    task: str
    base: Mapping[str, Any]
    variants: Tuple[Tuple[str, Tuple[str, ...], str], ...]
    baseline: str
    base_overrides: Tuple[str, ...] = ()
    description: str = ""

    def __post_init__(self) -> None:
        if self.task not in ("seg", "det"):
            raise ValueError(f"ablation set {self.name!r}: task must be 'seg' or 'det', got {self.task!r}")
        names = [v[0] for v in self.variants]
        if not names:
            raise ValueError(f"ablation set {self.name!r}: 'variants' is empty; list at least one configuration")
        if len(set(names)) != len(names):
            raise ValueError(f"ablation set {self.name!r}: variant names repeat: {names}")
        if self.baseline not in names:
            raise ValueError(
                f"ablation set {self.name!r}: baseline {self.baseline!r} is not one of the variants "
                f"({', '.join(names)})"
            )

    @property
    def metrics(self) -> Tuple[str, ...]:
        """The score names of the set's task (the first one is the headline)."""
        return SEG_METRICS if self.task == "seg" else DET_METRICS

    def select(self, names: Optional[Sequence[str]]) -> "AblationSet":
        """The same set restricted to ``names`` (the baseline is always kept)."""
        if not names:
            return self
        known = [v[0] for v in self.variants]
        unknown = [n for n in names if n not in known]
        if unknown:
            raise ValueError(
                f"--only: unknown configuration(s) {unknown} in set {self.name!r} (known: {', '.join(known)})"
            )
        keep = set(names) | {self.baseline}
        return AblationSet(
            self.name,
            self.task,
            self.base,
            tuple(v for v in self.variants if v[0] in keep),
            self.baseline,
            self.base_overrides,
            self.description,
        )

    def run_config(
        self,
        variant: str,
        seed: int,
        output: Path,
        overrides: Sequence[str] = (),
        schema: Optional[C.ConfigSchema] = None,
    ) -> Dict[str, Any]:
        """The validated configuration of one run: base, set-wide overrides, the variant's overrides, the
        caller's ``overrides``, then seed, run name and output folder."""
        entry = {v[0]: v for v in self.variants}.get(variant)
        if entry is None:
            raise ValueError(f"ablation set {self.name!r} has no configuration {variant!r}")
        sets = [
            *self.base_overrides,
            *entry[1],
            *overrides,
            f"seed={int(seed)}",
            f"name={self.name}_{variant}_seed{int(seed)}",
            f"output_dir={run_folder(output, variant, seed)}",
        ]
        return C.build_config(self.base, sets, source=f"ablation set {self.name} ({variant})", schema=schema)


def parse_ablation_set(data: Mapping[str, Any], base: Mapping[str, Any], source: str = "<set>") -> AblationSet:
    """An :class:`AblationSet` from its YAML mapping (``name``, ``task``, ``base``, ``set``, ``baseline``,
    ``variants``: name -> list of overrides or ``{set: [...], description: ...}``) and the resolved base
    configuration mapping."""
    allowed = {"name", "task", "base", "set", "baseline", "variants", "description"}
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise C.ConfigError(f"{source}: unknown key(s) {unknown} (known: {', '.join(sorted(allowed))})")
    for key in ("name", "base", "variants", "baseline"):
        if key not in data:
            raise C.ConfigError(f"{source}: missing key '{key}'")
    if not isinstance(data["variants"], Mapping):
        raise C.ConfigError(f"{source}: 'variants' must map a name to a list of key=value overrides")
    variants = []
    for name, spec in data["variants"].items():
        desc = ""
        if isinstance(spec, Mapping):
            desc, spec = str(spec.get("description", "")), spec.get("set", [])
        spec = spec or []
        if not isinstance(spec, (list, tuple)) or not all(isinstance(s, str) for s in spec):
            raise C.ConfigError(f"{source}: variant {name!r} must list key=value strings, got {spec!r}")
        variants.append((str(name), tuple(spec), desc))
    base_sets = data.get("set") or []
    if not isinstance(base_sets, (list, tuple)):
        raise C.ConfigError(f"{source}: 'set' must be a list of key=value strings")
    return AblationSet(
        name=str(data["name"]),
        task=str(data.get("task", "seg")),
        base=base,
        variants=tuple(variants),
        baseline=str(data["baseline"]),
        base_overrides=tuple(base_sets),
        description=str(data.get("description", "")).strip(),
    )


def run_folder(output: Path, variant: str, seed: int) -> Path:
    """The folder of one run: ``<output>/<variant>/seed<seed>``."""
    return Path(output) / variant / f"seed{int(seed)}"


# -- one run ---------------------------------------------------------------------------------------------------
@dataclass
class RunRecord:
    """What one finished run contributes to the table (saved as ``ablation_run.json`` in its folder).

    Attributes:
        variant, seed: which run.
        final: final-epoch validation scores (fractions), by metric name.
        curves: metric name -> ``[(epoch, value), ...]`` of every validated epoch.
        params: trainable + frozen parameter count.
        latency_ms: forward latency on the first validation sample (milliseconds).
        step_seconds: training wall time per optimiser step (seconds).
        step_cpu_seconds: training CPU time per optimiser step (seconds).
        epochs, steps: the run's length.
        config: the run's configuration (reuse is allowed only for an equal one).
    """

    variant: str
    seed: int
    final: Dict[str, float]
    curves: Dict[str, List[Tuple[int, float]]]
    params: int
    latency_ms: float
    step_seconds: float
    epochs: int
    steps: int
    config: Dict[str, Any] = field(default_factory=dict)
    step_cpu_seconds: float = math.nan
    reused: bool = False

    def to_json(self) -> Dict[str, Any]:
        d = {
            k: getattr(self, k)
            for k in (
                "variant",
                "seed",
                "final",
                "params",
                "latency_ms",
                "step_seconds",
                "step_cpu_seconds",
                "epochs",
                "steps",
                "config",
            )
        }
        d["curves"] = {k: [list(p) for p in v] for k, v in self.curves.items()}
        return d

    @staticmethod
    def from_json(d: Mapping[str, Any]) -> "RunRecord":
        return RunRecord(
            variant=d["variant"],
            seed=int(d["seed"]),
            final=dict(d["final"]),
            curves={k: [(int(e), float(v)) for e, v in pts] for k, pts in d["curves"].items()},
            params=int(d["params"]),
            latency_ms=float(d["latency_ms"]),
            step_seconds=float(d["step_seconds"]),
            epochs=int(d["epochs"]),
            steps=int(d["steps"]),
            config=dict(d["config"]),
            step_cpu_seconds=float(d.get("step_cpu_seconds", math.nan)),
            reused=True,
        )


_HISTORY_KEYS = {"miou_present": "val_miou_present", "miou_union": "val_miou", "map": "val_score"}


def curves_from_history(history: Sequence[Mapping[str, Any]], metrics: Sequence[str]) -> Dict[str, List]:
    """``metric -> [(epoch, value)]`` over the validated epochs of a trainer's history."""
    out: Dict[str, List[Tuple[int, float]]] = {}
    for m in metrics:
        key = _HISTORY_KEYS[m]
        out[m] = [(int(h["epoch"]), float(h[key])) for h in history if key in h]
    return out


def _jsonable(cfg: Mapping[str, Any]) -> Dict[str, Any]:
    """``cfg`` as plain JSON values, without the entries that do not change results (``train.progress``)."""
    out = json.loads(json.dumps(cfg, default=str))
    out.get("train", {}).pop("progress", None)
    return out


def measure_forward_latency(trainer, repeats: int = 5) -> float:
    """Median forward wall time (ms) of ``trainer``'s network on its first validation sample (or first training
    sample without a validation set), inference mode, after one warm-up pass."""
    from .loop import unwrap

    dataset = trainer.val_set if trainer.val_set is not None else trainer.train_set
    model = unwrap(trainer.model)
    device = trainer.ctx.device
    if trainer.cfg["task"] == "det":
        from ..data.detection.batch import collate_detection

        batch = collate_detection([dataset[0]])

        def forward():
            return model(batch.to(device))
    else:
        from ..data import collate_segmentation

        batch = collate_segmentation([dataset[0]])

        def forward():
            return model(batch.to_sparse_tensor(device))

    was_training = model.training
    model.eval()
    times = []
    try:
        with torch.inference_mode():
            for i in range(repeats + 1):
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                start = time.perf_counter()
                forward()
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                if i:  # the first pass is a warm-up (allocations, kernel compilation)
                    times.append(time.perf_counter() - start)
    finally:
        model.train(was_training)
    return 1000.0 * statistics.median(times)


def _median_per_step(history: Sequence[Mapping[str, Any]], key: str, steps_per_epoch: int) -> float:
    values = [float(h[key]) / steps_per_epoch for h in history if key in h]
    return statistics.median(values) if values else math.nan


def _trainer_class(task: str):
    from .det_trainer import DetectionTrainer
    from .trainer import SegmentationTrainer

    return DetectionTrainer if task == "det" else SegmentationTrainer


def _schema(task: str) -> C.ConfigSchema:
    if task == "det":
        from .det_config import DET_SCHEMA

        return DET_SCHEMA
    return C.SEG_SCHEMA


def execute_run(
    cfg: Mapping[str, Any], metrics: Sequence[str], variant: str, seed: int, latency_repeats: int = 5
) -> RunRecord:
    """Train (or resume, or reuse) the run of ``cfg`` and return its record; writes ``ablation_run.json``."""
    folder = Path(cfg["output_dir"])
    record_path = folder / RUN_FILE
    wanted = _jsonable(cfg)
    if record_path.is_file():
        record = RunRecord.from_json(json.loads(record_path.read_text()))
        if record.config != wanted:
            diff = sorted(k for k in set(wanted) | set(record.config) if wanted.get(k) != record.config.get(k))
            raise ValueError(
                f"run folder {folder} holds a finished run of another configuration (differs in "
                f"{', '.join(diff)}); delete the folder or choose another --output"
            )
        if math.isnan(record.step_cpu_seconds) and (folder / "checkpoints" / "last.pt").is_file():
            from .checkpoint import load_checkpoint  # a record written before CPU time was kept

            record.step_cpu_seconds = _median_per_step(
                load_checkpoint(folder / "checkpoints" / "last.pt")["history"],
                "train_cpu_seconds",
                record.steps // max(record.epochs, 1),
            )
        return record
    last = folder / "checkpoints" / "last.pt"
    resume = last.is_file()
    if resume:
        from .checkpoint import load_checkpoint

        saved = _jsonable(load_checkpoint(last)["config"])
        if saved != wanted:
            diff = sorted(k for k in set(wanted) | set(saved) if wanted.get(k) != saved.get(k))
            raise ValueError(
                f"run folder {folder} holds an unfinished run of another configuration (differs in "
                f"{', '.join(diff)}); delete the folder or choose another --output"
            )
    trainer = _trainer_class(str(cfg["task"]))(cfg, resume=resume)
    result = trainer.fit()
    if trainer.val_set is None:
        raise ValueError(
            f"ablation run {variant} (seed {seed}) has no validation data: the set's base "
            f"configuration must define validation scenes/frames"
        )
    curves = curves_from_history(result.history, metrics)
    final = {m: pts[-1][1] if pts else math.nan for m, pts in curves.items()}
    record = RunRecord(
        variant=variant,
        seed=int(seed),
        final=final,
        curves=curves,
        params=sum(p.numel() for p in trainer.model.parameters()),
        latency_ms=measure_forward_latency(trainer, latency_repeats),
        step_seconds=_median_per_step(result.history, "train_seconds", trainer.steps_per_epoch),
        step_cpu_seconds=_median_per_step(result.history, "train_cpu_seconds", trainer.steps_per_epoch),
        epochs=int(cfg["train"]["epochs"]),
        steps=int(trainer.global_step),
        config=wanted,
    )
    tmp = record_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record.to_json(), indent=1))
    tmp.replace(record_path)
    return record


def run_ablation(
    aset: AblationSet,
    seeds: Sequence[int],
    output: Path,
    overrides: Sequence[str] = (),
    progress: bool = True,
    latency_repeats: int = 5,
    runner: Optional[Callable[..., RunRecord]] = None,
) -> List[RunRecord]:
    """Every ``(variant, seed)`` run of ``aset`` under ``output``, all variants of the first seed first (tqdm
    progress over runs); finished runs are reused. ``overrides`` apply to every run (after the set's own).
    ``runner`` replaces :func:`execute_run` (tests)."""
    if not seeds:
        raise ValueError("seeds: give at least one seed, e.g. --seeds 0 1 2")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds repeat: {list(seeds)}")
    schema = _schema(aset.task)
    # every configuration is built (and validated) before the first run starts; seed-major order, so that an
    # interrupted ablation already holds every configuration of its first seed(s)
    jobs = [(v[0], s, aset.run_config(v[0], s, output, overrides, schema)) for s in seeds for v in aset.variants]
    runner = runner or execute_run
    records = []
    bar = tqdm(jobs, desc=f"ablation {aset.name}", unit="run", disable=not progress)
    for variant, seed, cfg in bar:
        bar.set_postfix_str(f"{variant} seed {seed}")
        rec = runner(cfg, aset.metrics, variant, seed, latency_repeats=latency_repeats)
        records.append(rec)
        first = aset.metrics[0]
        bar.write(
            f"{variant} seed {seed}: {METRIC_LABELS[first]} {100 * rec.final[first]:.1f}"
            f"{' (reused)' if rec.reused else ''}"
        )
    bar.close()
    return records


# -- aggregation -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Spread:
    """Mean and spread of one score over seeds."""

    mean: float
    std: float
    min: float
    max: float
    n: int

    @property
    def range(self) -> float:
        return self.max - self.min

    @staticmethod
    def of(values: Sequence[float]) -> "Spread":
        """``mean``, sample ``std`` (``n - 1`` in the denominator; 0 for one value), ``min``, ``max``."""
        x = np.asarray(list(values), dtype=np.float64)
        if x.size == 0:
            return Spread(math.nan, math.nan, math.nan, math.nan, 0)
        std = float(x.std(ddof=1)) if x.size > 1 else 0.0
        return Spread(float(x.mean()), std, float(x.min()), float(x.max()), int(x.size))


def verdict(variant: Spread, baseline: Spread) -> str:
    """``"within noise"`` when ``|mean_v - mean_b| <= max(range_v, range_b)``, else ``"better"``/``"worse"`` by
    the sign of the difference; ``"n/a (1 seed)"`` without a spread (module docstring)."""
    if min(variant.n, baseline.n) < 2:
        return "n/a (1 seed)"
    delta = variant.mean - baseline.mean
    if abs(delta) <= max(variant.range, baseline.range):
        return "within noise"
    return "better" if delta > 0 else "worse"


@dataclass(frozen=True)
class VariantSummary:
    """One row of the table: a variant aggregated over its seeds."""

    variant: str
    description: str
    seeds: Tuple[int, ...]
    scores: Dict[str, Spread]
    delta: float  # headline mean minus the baseline's
    verdict: str
    params: int
    latency_ms: Spread
    step_seconds: Spread
    step_cpu_seconds: Spread
    is_baseline: bool


def aggregate(aset: AblationSet, records: Sequence[RunRecord]) -> List[VariantSummary]:
    """Rows in the set's order (variants without records are left out)."""
    by_variant: Dict[str, List[RunRecord]] = {}
    for r in records:
        by_variant.setdefault(r.variant, []).append(r)
    if aset.baseline not in by_variant:
        raise ValueError(f"no runs of the baseline {aset.baseline!r}: it is needed for the comparison column")
    head = aset.metrics[0]
    spreads = {v: {m: Spread.of([r.final[m] for r in rs]) for m in aset.metrics} for v, rs in by_variant.items()}
    base = spreads[aset.baseline][head]
    rows = []
    for name, _, desc in aset.variants:
        rs = by_variant.get(name)
        if not rs:
            continue
        sc = spreads[name]
        is_base = name == aset.baseline
        rows.append(
            VariantSummary(
                variant=name,
                description=desc,
                seeds=tuple(sorted(r.seed for r in rs)),
                scores=sc,
                delta=0.0 if is_base else sc[head].mean - base.mean,
                verdict="baseline" if is_base else verdict(sc[head], base),
                params=int(rs[0].params),
                latency_ms=Spread.of([r.latency_ms for r in rs]),
                step_seconds=Spread.of([r.step_seconds for r in rs]),
                step_cpu_seconds=Spread.of([r.step_cpu_seconds for r in rs]),
                is_baseline=is_base,
            )
        )
    return rows


def curve_matrix(records: Sequence[RunRecord], variant: str, metric: str) -> Tuple[np.ndarray, np.ndarray]:
    """``(epochs [E], values [n_seeds, E])`` of one variant's validation curve (epochs every seed validated)."""
    rs = sorted((r for r in records if r.variant == variant), key=lambda r: r.seed)
    if not rs:
        raise ValueError(f"no runs of {variant!r}")
    common = sorted(set.intersection(*(set(e for e, _ in r.curves[metric]) for r in rs)))
    values = np.array([[dict(r.curves[metric])[e] for e in common] for r in rs], dtype=np.float64)
    return np.asarray(common, dtype=np.int64), values


# -- tables ------------------------------------------------------------------------------------------------
def _pct(s: Spread) -> str:
    if s.n == 0 or math.isnan(s.mean):
        return "n/a"
    if s.n == 1:
        return f"{100 * s.mean:.1f}"
    return f"{100 * s.mean:.1f} ({100 * s.min:.1f}–{100 * s.max:.1f})"


def markdown_table(aset: AblationSet, rows: Sequence[VariantSummary]) -> str:
    """The Markdown table: scores as ``mean (min–max)`` over seeds in percent, the headline difference to the
    baseline with its verdict, parameters, forward latency and training time per step (means over seeds)."""
    metric_cols = [METRIC_LABELS[m] for m in aset.metrics]
    head = [
        "config",
        *metric_cols,
        "Δ vs baseline",
        "vs baseline",
        "parameters",
        "forward ms",
        "train s/step",
        "train CPU s/step",
        "seeds",
    ]
    lines = ["| " + " | ".join(head) + " |", "| --- | " + " | ".join(["---:"] * (len(head) - 2)) + " | --- |"]
    for r in rows:
        name = f"**{r.variant}**" if r.is_baseline else r.variant
        delta = "—" if r.is_baseline else f"{100 * r.delta:+.1f}"
        cells = [
            name,
            *[_pct(r.scores[m]) for m in aset.metrics],
            delta,
            r.verdict,
            f"{r.params / 1e6:.2f} M",
            f"{r.latency_ms.mean:.0f}",
            f"{r.step_seconds.mean:.2f}",
            f"{r.step_cpu_seconds.mean:.3f}",
            " ".join(str(s) for s in r.seeds),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    n = max((len(r.seeds) for r in rows), default=0)
    notes = [
        f"Scores: final-epoch validation, mean over {n} seed(s) with the min–max range over seeds in brackets. "
        f"'vs baseline' compares the headline ({metric_cols[0]}): within noise when the difference of the means "
        "is no bigger than the larger of the two seed ranges. Forward ms / train s/step / train CPU s/step: "
        "means over seeds (forward: median wall time of repeated inference passes on the first validation "
        "sample; train: wall and CPU time per optimiser step, data loading included; the wall times move "
        "with the load of the machine, the CPU time hardly)."
    ]
    descs = [f"- `{r.variant}`: {r.description}" for r in rows if r.description]
    return "\n".join(lines) + "\n\n" + notes[0] + "\n" + ("\n" + "\n".join(descs) + "\n" if descs else "")


def write_csv(aset: AblationSet, rows: Sequence[VariantSummary], path: Path) -> None:
    """One row per variant: every score's mean/std/min/max (fractions), the difference to the baseline and its
    verdict, parameters, latency and step time (mean/std), the seeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    header = ["set", "config", "is_baseline", "n_seeds", "seeds"]
    for m in aset.metrics:
        header += [f"{m}_mean", f"{m}_std", f"{m}_min", f"{m}_max"]
    header += [
        "delta_vs_baseline",
        "vs_baseline",
        "params",
        "latency_ms_mean",
        "latency_ms_std",
        "step_seconds_mean",
        "step_seconds_std",
        "step_cpu_seconds_mean",
        "step_cpu_seconds_std",
        "description",
    ]
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        for r in rows:
            row: List[Any] = [aset.name, r.variant, int(r.is_baseline), len(r.seeds), " ".join(map(str, r.seeds))]
            for m in aset.metrics:
                s = r.scores[m]
                row += [f"{s.mean:.6f}", f"{s.std:.6f}", f"{s.min:.6f}", f"{s.max:.6f}"]
            row += [
                f"{r.delta:.6f}",
                r.verdict,
                r.params,
                f"{r.latency_ms.mean:.3f}",
                f"{r.latency_ms.std:.3f}",
                f"{r.step_seconds.mean:.5f}",
                f"{r.step_seconds.std:.5f}",
                f"{r.step_cpu_seconds.mean:.5f}",
                f"{r.step_cpu_seconds.std:.5f}",
                r.description,
            ]
            w.writerow(row)


def write_runs_csv(aset: AblationSet, records: Sequence[RunRecord], path: Path) -> None:
    """One row per run: variant, seed, final scores, parameters, latency, step time, epochs, steps."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(
            [
                "config",
                "seed",
                *aset.metrics,
                "params",
                "latency_ms",
                "step_seconds",
                "step_cpu_seconds",
                "epochs",
                "steps",
            ]
        )
        for r in records:
            w.writerow(
                [
                    r.variant,
                    r.seed,
                    *[f"{r.final[m]:.6f}" for m in aset.metrics],
                    r.params,
                    f"{r.latency_ms:.3f}",
                    f"{r.step_seconds:.5f}",
                    f"{r.step_cpu_seconds:.5f}",
                    r.epochs,
                    r.steps,
                ]
            )


__all__ = [
    "AblationSet",
    "parse_ablation_set",
    "run_folder",
    "RunRecord",
    "curves_from_history",
    "measure_forward_latency",
    "execute_run",
    "run_ablation",
    "Spread",
    "verdict",
    "VariantSummary",
    "aggregate",
    "curve_matrix",
    "markdown_table",
    "write_csv",
    "write_runs_csv",
    "RUN_FILE",
    "METRIC_LABELS",
]
