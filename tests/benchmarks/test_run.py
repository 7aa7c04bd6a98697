"""benchmarks/run.py: the hand-run history part of BENCHMARKS.md survives a new run."""

from __future__ import annotations

import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import run as R  # noqa: E402


def test_kept_history_takes_everything_from_the_heading_on(tmp_path):
    out = tmp_path / "BENCHMARKS.md"
    assert R.kept_history(out) == ""  # no file yet
    out.write_text("# Benchmarks\n\n## Engine\n\nold table\n")
    assert R.kept_history(out) == ""  # nothing kept without the heading
    out.write_text("# Benchmarks\n\n## Engine\n\nold table\n\n## History\n\n### 2026-12-06\n\n| a |\n")
    assert R.kept_history(out) == "## History\n\n### 2026-12-06\n\n| a |\n"


def test_main_writes_new_sections_and_carries_the_history(tmp_path, monkeypatch):
    out = tmp_path / "BENCHMARKS.md"
    out.write_text("# Benchmarks\n\n## stale section\n\n## History\n\nkept line\n")
    monkeypatch.setattr(R, "discover", lambda only: ["fake"])
    monkeypatch.setattr(R, "run_module", lambda path, quick: "## fresh section")
    assert R.main(["--output", str(out)]) == 0
    text = out.read_text()
    assert "## fresh section" in text and "stale section" not in text
    assert text.endswith("## History\n\nkept line\n")
