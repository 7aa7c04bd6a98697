"""Plain-text point tables: ``.txt``, ``.csv``, ``.xyz``, ``.pts``, ``.asc`` (one point per line).

Separators: commas, semicolons, tabs or spaces (detected from the first data line). A first line that is not
all numbers is a header naming the columns (``x,y,z,red,green,blue,intensity``; ``//X Y Z`` as CloudCompare
writes is accepted); otherwise the columns follow ``options.columns`` or the defaults of :mod:`.columns`.
A ``.pts`` file whose first line is a single integer (the point count) has that line skipped.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import List, Optional

import numpy as np

from .cloud import LoadedCloud, PointCloudFileError, ReadOptions, finish
from .columns import split_columns


def _tokens(line: str) -> List[str]:
    return [t for t in re.split(r"[,;\s]+", line.strip()) if t]


def _is_number(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def read_text(path: Path, options: ReadOptions = ReadOptions()) -> LoadedCloud:
    """Read a text / CSV point table as a :class:`LoadedCloud` (see the module docstring)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8", errors="strict")
    except UnicodeDecodeError as err:
        raise PointCloudFileError(path, f"not a text file (byte {err.start} is not UTF-8 text)") from None
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    if not lines:
        raise PointCloudFileError(path, "no data lines")
    header: Optional[List[str]] = None
    first = _tokens(lines[0].lstrip("/"))
    if not all(_is_number(t) for t in first):
        header = [t.lower() for t in first]
        lines = lines[1:]
    elif len(first) == 1 and len(lines) > 1 and len(_tokens(lines[1])) > 1:
        lines = lines[1:]  # .pts: a point-count line
    if not lines:
        raise PointCloudFileError(path, "a header but no data lines")
    width = len(_tokens(lines[0]))
    rows = [_tokens(ln) for ln in lines]
    bad = next((k for k, r in enumerate(rows) if len(r) != width), None)
    if bad is not None:
        raise PointCloudFileError(
            path,
            f"data line {bad + 1 + (header is not None)} has {len(rows[bad])} values, "
            f"the first has {width} (truncated or ragged file)",
        )
    try:
        table = np.array(rows, dtype=np.float64)
    except ValueError as err:
        raise PointCloudFileError(path, f"a value is not a number ({err})") from None
    names = options.columns if options.columns is not None else header
    xyz, colors, intensity, extra, note = split_columns(table, names, path)
    source = "header" if options.columns is None and header is not None else "option/default"
    return finish(path, "text", xyz, options, colors, intensity, extra, [f"{len(rows):,} rows, {note} ({source})"])
