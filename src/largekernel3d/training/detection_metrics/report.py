"""Plain tables for the detection metrics: one header, rows of cells, rendered as Markdown or CSV.

Numbers are written by :func:`format_cell`: floats with a fixed number of decimals, NaN as ``n/a``
(a metric that does not apply, e.g. a class without ground truth). CSV keeps full precision.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Optional, Sequence, Union

Cell = Union[str, int, float]


def format_cell(value: Cell, decimals: int = 2) -> str:
    """``value`` as table text: floats to ``decimals`` places, NaN as ``n/a``, anything else ``str``."""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return "n/a" if math.isnan(value) else f"{value:.{decimals}f}"
    return str(value)


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Cell]], decimals: int = 2) -> str:
    """A GitHub Markdown table (first column left-aligned, the others right-aligned)."""
    width = len(header)
    for r, row in enumerate(rows):
        if len(row) != width:
            raise ValueError(f"row {r} has {len(row)} cells but the header has {width}")
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join([":---"] + ["---:"] * (width - 1)) + " |"]
    lines += ["| " + " | ".join(format_cell(c, decimals) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def csv_table(header: Sequence[str], rows: Sequence[Sequence[Cell]], path: Optional[Union[str, Path]] = None) -> str:
    """The table as CSV text (floats in full precision, NaN as ``nan``); also written to ``path`` if given."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(list(header))
    for row in rows:
        writer.writerow([repr(c) if isinstance(c, float) else c for c in row])
    text = buffer.getvalue()
    if path is not None:
        Path(path).write_text(text)
    return text


__all__ = ["format_cell", "markdown_table", "csv_table"]
