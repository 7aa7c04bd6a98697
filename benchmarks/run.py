"""Run every benchmark module and write ``BENCHMARKS.md``.

Contract: each ``benchmarks/bench_*.py`` defines ``run(quick: bool) -> str`` returning a Markdown
section (and runs standalone). This script imports them in name order, runs each (a failing module
reports its error in its section instead of stopping the others), and writes the machine, the date,
the command and the sections to ``BENCHMARKS.md`` at the repository root. Everything from the output's
``## History`` heading on (comparisons run by hand, e.g. ``compare_revisions.py``) is carried over below the new
sections.

Usage: ``python benchmarks/run.py [--quick] [--only NAME ...] [--output PATH]`` (``make bench``).
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import sys
import time
import traceback
from pathlib import Path
from typing import List

HERE = Path(__file__).resolve().parent
HISTORY_HEADING = "## History"
sys.path.insert(0, str(HERE))

import common  # noqa: E402

from largekernel3d.sparse import keep_freed_memory  # noqa: E402


def discover(only: List[str]) -> List[Path]:
    """``bench_*.py`` modules beside this file, in name order, filtered by ``only`` (names with or
    without the ``bench_`` prefix)."""
    mods = sorted(HERE.glob("bench_*.py"))
    if only:
        wanted = {n if n.startswith("bench_") else f"bench_{n}" for n in only}
        unknown = wanted - {m.stem for m in mods}
        if unknown:
            raise SystemExit(f"--only: unknown benchmark(s) {sorted(unknown)}; have {[m.stem for m in mods]}")
        mods = [m for m in mods if m.stem in wanted]
    return mods


def run_module(path: Path, quick: bool) -> str:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    t0 = time.perf_counter()
    try:
        sys.modules[path.stem] = module  # dataclasses and pickling look modules up here
        spec.loader.exec_module(module)
        section = module.run(quick)
    except Exception:  # a broken module must not hide the others' results
        section = f"## {path.stem}\n\nFAILED:\n\n```\n{traceback.format_exc()}```"
    print(f"{path.stem}: {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    return section + f"\n\n_{path.name}: {time.perf_counter() - t0:.0f} s_"


def kept_history(path: Path) -> str:
    """The part of ``path`` from its :data:`HISTORY_HEADING` line on ("" when there is none)."""
    if not path.is_file():
        return ""
    lines = path.read_text().splitlines()
    for i, line in enumerate(lines):
        if line.strip() == HISTORY_HEADING:
            return "\n".join(lines[i:]) + "\n"
    return ""


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few inputs and repetitions (smoke run)")
    parser.add_argument("--only", nargs="*", default=[], help="run only these modules (e.g. engine swlk)")
    parser.add_argument("--output", type=Path, default=HERE.parent / "BENCHMARKS.md")
    args = parser.parse_args(argv)
    keep_freed_memory()
    start = datetime.datetime.now(datetime.timezone.utc)
    sections = [run_module(m, args.quick) for m in discover(args.only)]
    command = (
        "python benchmarks/run.py"
        + (" --quick" if args.quick else "")
        + (" --only " + " ".join(args.only) if args.only else "")
    )
    header = [
        "# Benchmarks",
        "",
        f"- Machine: {common.machine_line()}",
        f"- Date: {start:%Y-%m-%d %H:%M} UTC",
        f"- Command: `{command}` (`make bench` runs it without options)",
        "",
    ]
    text = "\n".join(header) + "\n" + "\n\n".join(sections) + "\n"
    history = kept_history(args.output)
    args.output.write_text(text + ("\n" + history if history else ""))
    print(f"wrote {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
