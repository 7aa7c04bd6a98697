"""Column names for the table-like formats (text / CSV, ``.npy``, raw ``.bin``): which column is what.

Names (case-insensitive): ``x y z`` coordinates (required), ``r g b`` or ``red green blue`` colours (all
three or none), ``i`` / ``intensity`` / ``reflectance`` / ``remission`` intensity, ``_`` (or ``skip``) an
ignored column, anything else an extra per-point property.

Default layouts by column count ``C`` (when no ``columns`` option is given):
``3``: x y z; ``4``: x y z intensity; ``5``: x y z intensity ring (nuScenes); ``6``: x y z r g b;
``7``: x y z r g b intensity; more: x y z r g b intensity, then ``c7, c8, ...`` as extras.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from .cloud import PointCloudFileError

_COLOUR = {"r": 0, "red": 0, "g": 1, "green": 1, "b": 2, "blue": 2}
_INTENSITY = {"i", "intensity", "reflectance", "remission", "scalar_intensity"}
_SKIP = {"_", "skip"}


def parse_columns(columns: Union[str, Sequence[str]]) -> List[str]:
    """A column spec (``"x y z r g b"``, ``"x,y,z,i"`` or a list) as lower-case names."""
    names = re.split(r"[\s,;]+", columns.strip()) if isinstance(columns, str) else [str(c) for c in columns]
    names = [n.strip().lower() for n in names if n.strip()]
    if not names:
        raise ValueError("columns must name at least the columns x, y, z")
    return names


def default_columns(count: int) -> List[str]:
    """The default names for ``count`` columns (see the module docstring)."""
    table = {3: "x y z", 4: "x y z intensity", 5: "x y z intensity ring", 6: "x y z r g b", 7: "x y z r g b intensity"}
    if count < 3:
        raise ValueError(f"a point table needs at least 3 columns (x y z), got {count}")
    if count in table:
        return table[count].split()
    return table[7].split() + [f"c{k}" for k in range(7, count)]


def split_columns(
    table: np.ndarray, names: Optional[Sequence[str]], path: Path
) -> Tuple[np.ndarray, Optional[np.ndarray], Optional[np.ndarray], Dict[str, np.ndarray], str]:
    """``(xyz [N, 3], colours [N, 3] | None, intensity [N] | None, extra, note)`` of a ``[N, C]`` table."""
    if table.ndim != 2:
        raise PointCloudFileError(path, f"expected a 2-D point table [N, C], found shape {table.shape}")
    names = default_columns(table.shape[1]) if names is None else parse_columns(names)
    if len(names) != table.shape[1]:
        raise PointCloudFileError(
            path, f"the file has {table.shape[1]} columns but columns names {len(names)}: {' '.join(names)}"
        )
    real = [n for n in names if n not in _SKIP]
    if len(set(real)) != len(real):
        raise ValueError(f"columns for {str(path)!r} repeat a name: {' '.join(names)}")
    missing = [a for a in "xyz" if a not in names]
    if missing:
        raise ValueError(f"columns for {str(path)!r} must include x, y and z, missing {missing}: {' '.join(names)}")
    xyz = np.stack([table[:, names.index(a)] for a in "xyz"], axis=1)
    colour_cols = [(k, _COLOUR[n]) for k, n in enumerate(names) if n in _COLOUR]
    colors = None
    if colour_cols:
        if sorted(c for _, c in colour_cols) != [0, 1, 2]:
            raise ValueError(
                f"columns for {str(path)!r} must name all of r g b (or red green blue) or none: {' '.join(names)}"
            )
        colors = np.stack([table[:, k] for k, _ in sorted(colour_cols, key=lambda t: t[1])], axis=1)
    found_i = [k for k, n in enumerate(names) if n in _INTENSITY]
    if len(found_i) > 1:
        raise ValueError(f"columns for {str(path)!r} name more than one intensity column: {' '.join(names)}")
    intensity = table[:, found_i[0]] if found_i else None
    extra = {
        n: table[:, k]
        for k, n in enumerate(names)
        if n not in _SKIP and n not in _COLOUR and n not in _INTENSITY and n not in ("x", "y", "z")
    }
    return xyz, colors, intensity, extra, f"columns: {' '.join(names)}"
