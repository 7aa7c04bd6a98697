"""Raw float32 point files without a header: KITTI / SemanticKITTI ``.bin`` (``x y z intensity``, 4 columns)
and nuScenes ``.pcd.bin`` (``x y z intensity ring``, 5 columns), or any ``columns`` layout.

The file must hold a whole number of ``4 * C``-byte rows; anything else is an error naming the remainder. A file
has no header to say how many values a point has, so without ``columns`` the reader also checks that the default
width fits: non-zero values that are whole numbers (colours 0-255, ring indices, timestamps) sit in columns of
their own under the right width, and fall into every column under a wrong one (a 6-column ``x y z r g b`` file read
as 4 columns, a nuScenes file read as KITTI). A default reading whose columns mix whole and fractional numbers,
where another width of 3 to 8 separates them, is an error naming that width.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

from .cloud import LoadedCloud, PointCloudFileError, ReadOptions, finish
from .columns import parse_columns, split_columns


_SAMPLE_VALUES = 1 << 18  # float32 values looked at by the width check
_CLEAN = 0.1  # a column is clean when at most this share of its values are whole numbers, or at least 1 - this


def _whole_number_shares(values: np.ndarray, width: int) -> np.ndarray:
    """Per column of ``values`` read ``width`` to a row: the share of whole numbers among its finite non-zero values
    (zeros say nothing: intensities, flags and parked points are often exactly 0)."""
    rows = values[: (values.size // width) * width].reshape(-1, width)
    counted = np.isfinite(rows) & (rows != 0)
    whole = counted & (rows == np.round(rows))
    return whole.sum(axis=0) / np.maximum(counted.sum(axis=0), 1)


def _is_clean(shares: np.ndarray) -> bool:
    return bool(np.all((shares <= _CLEAN) | (shares >= 1 - _CLEAN)))


def better_width(values: np.ndarray, width: int) -> Optional[int]:
    """Another row width (3 to 8, dividing the number of values) under which every column holds whole numbers only or
    fractional numbers only, when under ``width`` some column mixes them; else ``None`` (see the module docstring)."""
    sample = values[: _SAMPLE_VALUES - _SAMPLE_VALUES % 840]  # 840 = lcm(3, ..., 8): whole rows for every width
    if _is_clean(_whole_number_shares(sample, width)):
        return None
    for other in range(3, 9):
        if other != width and values.size % other == 0 and _is_clean(_whole_number_shares(sample, other)):
            return other
    return None


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
    values = raw.view("<f4")
    if options.columns is None:
        width = better_width(values, len(names))
        if width is not None:
            raise PointCloudFileError(
                path,
                f"read as {len(names)} float32 values per point ({' '.join(names)}), its columns mix whole and "
                f"fractional numbers, while {width} values per point separate them: the file looks like {width} "
                f"columns; pass columns= (--columns) with {width} names (e.g. 'x y z r g b' for the 6-column ScanNet / "
                f"S3DIS points of mmdet3d, 'x y z intensity ring' for nuScenes)",
            )
    table = values.reshape(-1, len(names))
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
