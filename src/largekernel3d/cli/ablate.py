"""``lk3d ablate``: train a named set of configurations at the same budget and seeds, write one table.

Sets are YAML files shipped in ``largekernel3d/cli/configs/ablations`` (``lk3d ablate --list``) or any YAML path:
a base run configuration (a shipped config name or path) with set-wide ``set`` overrides, a ``baseline`` and
``variants`` (name -> overrides). Each ``(variant, seed)`` run goes to ``<output>/<variant>/seed<k>``; finished
runs are reused and interrupted ones resume, so rerunning the same command (e.g. with more ``--seeds``) only
trains what is missing. Outputs in ``<output>``: ``ablation.md`` / ``ablation.csv`` (one row per configuration:
mean and min–max over seeds, the verdict against the baseline, parameters, forward latency, training time per
step), ``ablation_runs.csv`` (one row per run) and ``ablation_curves.png`` (validation curves, mean over seeds
with a min–max band). See :mod:`largekernel3d.training.ablation` for the definitions.
"""

from __future__ import annotations

import argparse
from importlib import resources
from pathlib import Path
from typing import List

from .run_configs import CONFIG_PACKAGE, add_overrides, read_config_source, schema_of

DEFAULT_SET = "scannet_small"


def _sets_folder():
    return resources.files(CONFIG_PACKAGE) / "configs" / "ablations"


def shipped_sets() -> List[str]:
    """Names of the ablation sets shipped with the package."""
    return sorted(p.name[:-5] for p in _sets_folder().iterdir() if p.name.endswith(".yaml"))


def load_set(source: str):
    """The :class:`~largekernel3d.training.ablation.AblationSet` of a shipped set name or a YAML path; its
    ``base`` is resolved as ``--config`` is (shipped config name or path, relative to the set's file first)."""
    from ..training import config as C
    from ..training.ablation import parse_ablation_set

    path = Path(source).expanduser()
    if not path.is_file():
        name = source[:-5] if source.endswith(".yaml") else source
        res = _sets_folder() / f"{name}.yaml"
        if not res.is_file():
            raise FileNotFoundError(
                f"ablation set {source}: no such file, and no shipped ablation set of that name "
                f"(shipped: {', '.join(shipped_sets())})"
            )
        with resources.as_file(res) as p:
            data = C.read_yaml(p)
        here = None
    else:
        data = C.read_yaml(path)
        here = path.parent
    task = str(data.get("task", "seg"))
    base = data.get("base")
    if isinstance(base, dict):
        base_cfg = base
    elif isinstance(base, str):
        beside = here / base if here is not None else None
        base_cfg = read_config_source(str(beside) if beside is not None and beside.is_file() else base, task)
    else:
        raise C.ConfigError(f"ablation set {source}: 'base' must name a config (or hold a mapping), got {base!r}")
    return parse_ablation_set(data, base_cfg, source=f"ablation set {source}")


def cmd_ablate(args: argparse.Namespace) -> int:
    from ..analysis.ablation_plot import plot_ablation_curves
    from ..training import ablation as A

    if args.list:
        for name in shipped_sets():
            aset = load_set(name)
            print(f"{name}: {len(aset.variants)} configurations ({', '.join(v[0] for v in aset.variants)})")
        return 0
    aset = load_set(args.set_name).select(args.only)
    output = Path(args.output) if args.output else Path("runs") / "ablations" / aset.name
    overrides = list(args.overrides) + ([] if args.verbose else ["train.progress=false"])
    if args.print_configs:
        from ..training.config import dump

        for v in aset.variants:
            print(f"# {v[0]}\n{dump(aset.run_config(v[0], args.seeds[0], output, overrides, schema_of(aset.task)))}")
        return 0
    records = A.run_ablation(aset, args.seeds, output, overrides, progress=True, latency_repeats=args.latency_repeats)
    rows = A.aggregate(aset, records)
    output.mkdir(parents=True, exist_ok=True)
    seeds = " ".join(str(s) for s in args.seeds)
    title = f"## Ablation set `{aset.name}` (seeds {seeds})"
    text = f"{title}\n\n{aset.description}\n\n{A.markdown_table(aset, rows)}"
    (output / "ablation.md").write_text(text)
    A.write_csv(aset, rows, output / "ablation.csv")
    A.write_runs_csv(aset, records, output / "ablation_runs.csv")
    names = [r.variant for r in rows]
    panels = {A.METRIC_LABELS[m]: {n: A.curve_matrix(records, n, m) for n in names} for m in aset.metrics}
    png = plot_ablation_curves(
        output / "ablation_curves.png", panels, title=f"ablation {aset.name}", baseline=aset.baseline, order=names
    )
    print(text)
    print(f"tables and curves written to {output} ({png.name})")
    return 0


def register(verbs, top) -> None:
    """The top-level ``ablate`` command."""
    p = top.add_parser("ablate", help="run a named set of configurations at the same budget and seeds; one table")
    p.add_argument(
        "set_name",
        nargs="?",
        default=DEFAULT_SET,
        metavar="SET",
        help=f"shipped ablation set or YAML path (default: {DEFAULT_SET}; --list shows them)",
    )
    p.add_argument("--seeds", type=int, nargs="+", default=[0], help="seeds of every configuration (default: 0)")
    p.add_argument("--output", default=None, help="folder of the runs and the table (default: runs/ablations/SET)")
    p.add_argument(
        "--only", nargs="+", default=None, metavar="CONFIG", help="run only these configurations (and the baseline)"
    )
    add_overrides(p, "data.root=/data/scannet train.epochs=5", "entries of every run")
    p.add_argument("--latency-repeats", type=int, default=5, help="timed forward passes per run (default: 5)")
    p.add_argument("--list", action="store_true", help="list the shipped ablation sets and exit")
    p.add_argument("--print-configs", action="store_true", help="print every configuration's merged config and exit")
    p.add_argument("--verbose", action="store_true", help="show each run's own progress bars and log lines")
    p.set_defaults(func=cmd_ablate)
