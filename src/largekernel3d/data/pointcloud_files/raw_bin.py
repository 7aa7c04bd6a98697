"""Raw float32 point files without a header: KITTI / SemanticKITTI ``.bin`` (``x y z intensity``, 4 columns)
and nuScenes ``.pcd.bin`` (``x y z intensity ring``, 5 columns), or any ``columns`` layout.

The file must hold a whole number of ``4 * C``-byte rows; anything else is an error naming the remainder.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .cloud import LoadedCloud, PointCloudFileError, ReadOptions, finish
from .columns import parse_columns, split_columns


def read_float32_table(path: Path, options: ReadOptions, default_columns: str, fmt: str) -> LoadedCloud:
    """Read a headerless little-endian float32 table with ``options.columns`` (default ``default_columns``)."""
    path = Path(path)
    names = parse_columns(options.columns if options.columns is not None else default_columns)
    raw = np.fromfile(path, dtype=np.uint8)
    row = 4 * len(names)
    if raw.size % row:
        raise PointCloudFileError(
            path,
            f"{raw.size} bytes is not a whole number of {len(names)}-column float32 rows "
            f"({row} bytes each; {raw.size % row} bytes left over): truncated, or "
            f"the columns ({' '.join(names)}) are wrong",
        )
    table = raw.view("<f4").reshape(-1, len(names))
    xyz, colors, intensity, extra, note = split_columns(table, names, path)
    notes = [f"float32 x {len(names)} rows, {note}"]
    at_origin = int(np.all(xyz == 0, axis=1).sum())
    if at_origin:
        notes.append(f"{at_origin:,} points lie exactly at (0, 0, 0) (kept)")
    return finish(path, fmt, xyz, options, colors, intensity, extra, notes)


def read_kitti_bin(path: Path, options: ReadOptions = ReadOptions()) -> LoadedCloud:
    """KITTI-style ``.bin``: float32 ``x y z intensity`` (unless ``options.columns`` says otherwise)."""
    return read_float32_table(path, options, "x y z intensity", "kitti_bin")


def read_nuscenes_bin(path: Path, options: ReadOptions = ReadOptions()) -> LoadedCloud:
    """nuScenes ``.pcd.bin``: float32 ``x y z intensity ring`` (unless ``options.columns`` says otherwise)."""
    return read_float32_table(path, options, "x y z intensity ring", "nuscenes_bin")
