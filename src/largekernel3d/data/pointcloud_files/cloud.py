"""The in-memory result of reading a point-cloud file, and the options every reader shares.

A reader turns a file into a :class:`LoadedCloud`::

    points[i]    = units * A @ p_file[i]            # float64 [N, 3], metres, z up (A: the ``axes`` signed permutation)
    colors[i]    = rgb_file[i] / colour_scale        # float32 [N, 3] in [0, 1], or None when the file has none
    intensity[i] = the file's intensity / reflectance as stored (float32 [N]), or None

Rows with a non-finite coordinate are dropped (and counted in ``notes``). Coordinates stay float64 so that
geo-referenced scans (UTM / state-plane, 1e5..1e7 m) keep their centimetres; consumers recentre before
casting to float32.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

UNIT_FACTORS: Dict[str, float] = {
    "m": 1.0,
    "cm": 0.01,
    "mm": 0.001,
    "km": 1000.0,
    "ft": 0.3048,
    "us-ft": 1200.0 / 3937.0,
    "in": 0.0254,
}
"""Metres per unit of the names accepted by ``units``."""

UnitsLike = Union[str, float, int]


class PointCloudFileError(ValueError):
    """A point-cloud file that cannot be read: corrupt, truncated or not what its extension says.
    The message names the file and what was wrong."""

    def __init__(self, path: Union[str, Path], problem: str) -> None:
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{str(path)!r}: {problem}")


@dataclass(frozen=True)
class ReadOptions:
    """How to interpret a file (every reader takes these).

    Attributes:
        units: metres per file unit: a name of :data:`UNIT_FACTORS` (``"m"``, ``"cm"``, ``"mm"``, ``"ft"``,
            ``"us-ft"``, ...), a positive number, or ``"auto"`` (metres, except a LAS/LAZ file whose
            coordinate system names its linear unit).
        axes: which file axis, with an optional sign, becomes our x, y and z (z up): ``"xyz"`` (as stored),
            ``"x -z y"`` (a y-up file such as many meshes), ``"yxz"``, ... Three distinct axes.
        columns: for column formats (text / CSV, ``.npy``, ``.bin``): one name per column, e.g.
            ``"x y z r g b intensity"``; ``x y z`` required; ``r g b`` (or ``red green blue``) colours,
            ``i`` / ``intensity`` / ``reflectance`` / ``remission`` intensity, ``_`` skips a column, any other
            name is kept in ``extra``. ``None``: the format's default (see each reader).
        colour_scale: divisor that brings the stored colours to ``[0, 1]``; ``"auto"`` picks 1, 255 or 65535
            from the largest stored value (and says which in ``notes``).
    """

    units: UnitsLike = "auto"
    axes: str = "xyz"
    columns: Optional[Union[str, Sequence[str]]] = None
    colour_scale: Union[str, float] = "auto"


@dataclass
class LoadedCloud:
    """One point cloud read from a file.

    Attributes:
        path: the file it came from.
        format: the reader's name (``"ply"``, ``"pcd"``, ``"las"``, ``"kitti_bin"``, ...).
        points: float64 ``[N, 3]`` metres (after ``units`` and ``axes``).
        colors: float32 ``[N, 3]`` in ``[0, 1]`` or ``None``.
        intensity: float32 ``[N]`` as stored, or ``None``.
        extra: any other per-point property ``name -> [N]`` array (classification, ring, normals, ...).
        notes: what the reader found and decided, one line each (fields, encodings, scalings, dropped rows).
        kept_rows: bool ``[rows of the file]``, which file rows became points (``N`` of them; the others had
            non-finite coordinates), or ``None`` when every row did (point ``i`` is file row ``i``).
    """

    path: Path
    format: str
    points: np.ndarray
    colors: Optional[np.ndarray] = None
    intensity: Optional[np.ndarray] = None
    extra: Dict[str, np.ndarray] = field(default_factory=dict)
    notes: List[str] = field(default_factory=list)
    kept_rows: Optional[np.ndarray] = None

    @property
    def num_points(self) -> int:
        return int(self.points.shape[0])

    def describe(self) -> str:
        """A few lines for a person: file, format, points, extent, which attributes were found, notes."""
        lo = self.points.min(axis=0) if self.num_points else np.zeros(3)
        hi = self.points.max(axis=0) if self.num_points else np.zeros(3)
        found = [n for n, v in (("colours", self.colors), ("intensity", self.intensity)) if v is not None]
        found += sorted(self.extra)
        lines = [
            f"{self.path} [{self.format}]: {self.num_points:,} points, extent "
            f"({lo[0]:.2f}, {lo[1]:.2f}, {lo[2]:.2f}) -> ({hi[0]:.2f}, {hi[1]:.2f}, {hi[2]:.2f}) m",
            f"  attributes: {', '.join(found) if found else 'xyz only'}",
        ]
        lines += [f"  {n}" for n in self.notes]
        return "\n".join(lines)


def unit_factor(units: UnitsLike, source: object = "units") -> float:
    """Metres per unit for ``units`` (a :data:`UNIT_FACTORS` name or a positive number; ``"auto"`` = 1)."""
    if isinstance(units, str):
        key = units.strip().lower()
        if key == "auto":
            return 1.0
        if key in UNIT_FACTORS:
            return UNIT_FACTORS[key]
        try:
            units = float(key)
        except ValueError:
            raise ValueError(
                f"{source}: units must be one of {['auto', *UNIT_FACTORS]} or a positive number of "
                f"metres per unit, got {units!r}"
            ) from None
    if isinstance(units, bool) or not isinstance(units, (int, float)) or not np.isfinite(units) or units <= 0:
        raise ValueError(f"{source}: units must be a positive number of metres per unit, got {units!r}")
    return float(units)


def parse_axes(axes: str) -> Tuple[Tuple[int, float], ...]:
    """``((file_axis, sign), ...)`` for our x, y, z from a spec such as ``"xyz"``, ``"x -z y"``, ``"x,-z,y"``."""
    if not isinstance(axes, str):
        raise TypeError(f"axes must be a string such as 'xyz' or 'x -z y', got {type(axes).__name__}")
    tokens = re.findall(r"[+-]?[xyzXYZ]", axes)
    if (
        "".join(tokens).replace("+", "").replace("-", "").lower() != re.sub(r"[\s,+-]", "", axes).lower()
        or len(tokens) != 3
    ):
        raise ValueError(f"axes must name three file axes with optional signs, e.g. 'xyz' or 'x -z y', got {axes!r}")
    out = tuple(("xyz".index(t[-1].lower()), -1.0 if t.startswith("-") else 1.0) for t in tokens)
    if len({a for a, _ in out}) != 3:
        raise ValueError(f"axes must use each of x, y, z once, got {axes!r}")
    return out


def orient(points: np.ndarray, axes: str, factor: float) -> np.ndarray:
    """``factor * A @ p`` per row: our axis ``k`` = sign_k * file axis ``a_k`` (float64 ``[N, 3]``)."""
    spec = parse_axes(axes)
    out = np.empty((points.shape[0], 3), dtype=np.float64)
    for k, (a, s) in enumerate(spec):
        out[:, k] = points[:, a] * (s * factor)
    return out


def colour_divisor(colors: np.ndarray, colour_scale: Union[str, float]) -> Tuple[float, str]:
    """``(divisor, note)`` bringing stored colours to ``[0, 1]``: ``"auto"`` gives 1 when every value is
    ``<= 1`` (and the type is floating), 255 when ``<= 255``, else 65535."""
    if isinstance(colour_scale, str):
        if colour_scale != "auto":
            raise ValueError(f"colour_scale must be 'auto' or a positive number, got {colour_scale!r}")
        top = float(np.max(colors)) if colors.size else 0.0
        if colors.dtype.kind == "f" and top <= 1.0:
            return 1.0, "colours look like [0, 1] values (kept)"
        if top <= 255.0:
            return 255.0, f"colours look 8-bit (max {top:g}): divided by 255"
        return 65535.0, f"colours look 16-bit (max {top:g}): divided by 65535"
    if isinstance(colour_scale, bool) or not isinstance(colour_scale, (int, float)) or colour_scale <= 0:
        raise ValueError(f"colour_scale must be 'auto' or a positive number, got {colour_scale!r}")
    return float(colour_scale), f"colours divided by {colour_scale:g} (colour_scale)"


def finish(
    path: Path,
    fmt: str,
    xyz: np.ndarray,
    options: ReadOptions,
    colors: Optional[np.ndarray] = None,
    intensity: Optional[np.ndarray] = None,
    extra: Optional[Dict[str, np.ndarray]] = None,
    notes: Optional[List[str]] = None,
    factor: Optional[float] = None,
) -> LoadedCloud:
    """Apply units / axes / colour scaling, drop non-finite rows and build the :class:`LoadedCloud`."""
    notes = list(notes or [])
    extra = dict(extra or {})
    xyz = np.asarray(xyz)
    if xyz.ndim != 2 or xyz.shape[1] != 3:
        raise PointCloudFileError(path, f"expected [N, 3] coordinates, found shape {xyz.shape}")
    factor = unit_factor(options.units, f"{path}") if factor is None else factor
    if factor != 1.0:
        notes.append(f"coordinates multiplied by {factor:g} (to metres)")
    if parse_axes(options.axes) != ((0, 1.0), (1, 1.0), (2, 1.0)):
        notes.append(f"axes reordered: ours = file {options.axes!r}")
    points = orient(xyz.astype(np.float64, copy=False), options.axes, factor)
    keep = np.isfinite(points).all(axis=1)
    if not keep.all():
        notes.append(f"dropped {int((~keep).sum()):,} rows with NaN / inf coordinates")
    if colors is not None:
        colors = np.asarray(colors)
        divisor, note = colour_divisor(
            colors[keep] if colors.shape[0] == keep.shape[0] else colors, options.colour_scale
        )
        notes.append(note)
        scaled = colors.astype(np.float64) / divisor
        outside = int(np.count_nonzero((scaled < 0.0) | (scaled > 1.0)))
        if outside:
            notes.append(
                f"{outside:,} colour values fall outside [0, 1] after the division (max {float(scaled.max()):g}): "
                "clipped; check colour_scale"
            )
        colors = np.clip(scaled, 0.0, 1.0).astype(np.float32)
    for name, value in (("colors", colors), ("intensity", intensity), *extra.items()):
        if value is not None and np.asarray(value).shape[0] != keep.shape[0]:
            raise PointCloudFileError(path, f"{name} has {np.asarray(value).shape[0]} rows for {keep.shape[0]} points")
    kept_rows = None
    if not keep.all():
        kept_rows = keep
        points = points[keep]
        colors = None if colors is None else colors[keep]
        intensity = None if intensity is None else np.asarray(intensity)[keep]
        extra = {k: np.asarray(v)[keep] for k, v in extra.items()}
    if intensity is not None:
        intensity = np.asarray(intensity, dtype=np.float32)
    return LoadedCloud(
        path=Path(path),
        format=fmt,
        points=points,
        colors=colors,
        intensity=intensity,
        extra=extra,
        notes=notes,
        kept_rows=kept_rows,
    )
