"""NumPy files: ``.npy`` holding one ``[N, C]`` table (columns as :mod:`.columns`), and ``.npz`` archives.

``.npz``: either named arrays (coordinates under ``points`` / ``xyz`` / ``coord`` / ``coords`` / ``pos``,
colours under ``colors`` / ``colours`` / ``rgb`` / ``color``, intensity under ``intensity`` / ``reflectance``;
other ``[N]`` arrays go to ``extra``), or a single ``[N, C]`` array read like a ``.npy`` table. A ``points``
array with more than 3 columns is split with the column rules. Pickled object arrays are refused.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from .cloud import LoadedCloud, PointCloudFileError, ReadOptions, finish
from .columns import split_columns

_XYZ_KEYS = ("points", "xyz", "coord", "coords", "pos", "positions", "vertices")
_COLOUR_KEYS = ("colors", "colours", "rgb", "color", "colour")
_INTENSITY_KEYS = ("intensity", "reflectance", "remission")


def _check_table(arr: np.ndarray, path: Path, what: str) -> np.ndarray:
    if arr.dtype.kind not in "iuf":
        raise PointCloudFileError(path, f"{what} has dtype {arr.dtype}; a numeric [N, C] table is needed")
    return arr


def read_npy(path: Path, options: ReadOptions = ReadOptions()) -> LoadedCloud:
    """Read a ``.npy`` ``[N, C]`` table (see :mod:`.columns` for the default column names)."""
    path = Path(path)
    try:
        arr = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise PointCloudFileError(path, f"not a readable .npy array ({err})") from None
    if arr.ndim != 2:
        raise PointCloudFileError(path, f"expected an [N, C] point table, found shape {arr.shape}")
    _check_table(arr, path, "the array")
    xyz, colors, intensity, extra, note = split_columns(arr, options.columns, path)
    return finish(path, "npy", xyz, options, colors, intensity, extra, [f".npy {arr.dtype} {arr.shape}, {note}"])


def read_npz(path: Path, options: ReadOptions = ReadOptions()) -> LoadedCloud:
    """Read an ``.npz`` archive (see the module docstring)."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {k: archive[k] for k in archive.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as err:
        raise PointCloudFileError(path, f"not a readable .npz archive ({type(err).__name__}: {err})") from None
    if not arrays:
        raise PointCloudFileError(path, "the .npz archive is empty")
    lower = {k.lower(): k for k in arrays}
    key = next((lower[k] for k in _XYZ_KEYS if k in lower), None)
    if key is None:
        if len(arrays) == 1:
            (key,) = arrays
        else:
            raise PointCloudFileError(
                path, f"no coordinate array: expected one of {list(_XYZ_KEYS)} (arrays: {sorted(arrays)})"
            )
    table = _check_table(arrays[key], path, f"array {key!r}")
    if table.ndim != 2 or table.shape[1] < 3:
        raise PointCloudFileError(path, f"array {key!r} must be [N, >=3], found shape {table.shape}")
    n = table.shape[0]
    if table.shape[1] == 3 and options.columns is None:
        xyz, colors, intensity, extra, note = table, None, None, {}, "columns: x y z"
    else:
        xyz, colors, intensity, extra, note = split_columns(table, options.columns, path)
    notes = [f".npz arrays: {', '.join(f'{k} {arrays[k].shape}' for k in sorted(arrays))}; {key!r}: {note}"]
    ckey = next((lower[k] for k in _COLOUR_KEYS if k in lower), None)
    if ckey is not None:
        colors = _check_table(arrays[ckey], path, f"array {ckey!r}")
        if colors.shape != (n, 3):
            raise PointCloudFileError(path, f"array {ckey!r} must be [{n}, 3], found shape {colors.shape}")
    ikey = next((lower[k] for k in _INTENSITY_KEYS if k in lower), None)
    if ikey is not None:
        intensity = arrays[ikey].reshape(-1)
        if intensity.shape != (n,):
            raise PointCloudFileError(path, f"array {ikey!r} must have {n} values, found shape {arrays[ikey].shape}")
    for name, value in arrays.items():
        if name not in (key, ckey, ikey) and value.shape[:1] == (n,) and value.ndim == 1:
            extra[name] = value
    return finish(path, "npz", xyz, options, colors, intensity, extra, notes)
