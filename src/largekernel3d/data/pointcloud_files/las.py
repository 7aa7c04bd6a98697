"""LAS / LAZ files through ``laspy`` (an optional dependency: ``pip install largekernel3d[las]``; LAZ also
needs a decompression backend such as ``lazrs``, which that extra installs).

Coordinates are laspy's scaled ``x, y, z`` (``X * scale + offset``). Colours: ``red green blue`` when the
point format has them (16-bit fields; many writers store 8-bit values there, which ``colour_scale="auto"``
detects). ``intensity`` as stored (uint16). ``classification``, ``return_number``, ``number_of_returns``,
``gps_time`` and ``point_source_id`` go to ``extra`` when present.

Units: with ``units="auto"`` the linear unit of the file's WKT coordinate system (a ``UNIT[...]`` /
``LENGTHUNIT[...]`` entry, e.g. US survey feet) converts every axis to metres; the WKT rarely states a
vertical unit, so z is assumed to share it (said in the notes). Without a WKT the file is taken as metres.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Optional, Tuple

import numpy as np

from .cloud import LoadedCloud, PointCloudFileError, ReadOptions, finish, unit_factor

EXTRA_DIMENSIONS = ("classification", "return_number", "number_of_returns", "gps_time", "point_source_id")
_ANGULAR = ("degree", "radian", "grad", "arc")


def wkt_linear_unit(wkt: str) -> Optional[Tuple[str, float]]:
    """``(name, metres per unit)`` of the last linear ``UNIT["name", factor]`` / ``LENGTHUNIT[...]`` of a WKT
    string (the projected system's unit), or ``None``."""
    found = re.findall(r'(?:LENGTH)?UNIT\[\s*"([^"]+)"\s*,\s*([0-9.eE+-]+)', wkt)
    linear = [(name, float(factor)) for name, factor in found if not name.lower().startswith(_ANGULAR)]
    return linear[-1] if linear else None


def _import_laspy(path: Path):
    try:
        import laspy
    except ImportError:
        raise ImportError(
            f"reading {str(path)!r} needs laspy: pip install 'largekernel3d[las]' (or pip install 'laspy[lazrs]')"
        ) from None
    return laspy


def read_las(path: Path, options: ReadOptions = ReadOptions()) -> LoadedCloud:
    """Read a LAS / LAZ file as a :class:`LoadedCloud` (see the module docstring)."""
    path = Path(path)
    laspy = _import_laspy(path)
    with open(path, "rb") as fh:
        if fh.read(4) != b"LASF":
            raise PointCloudFileError(path, "not a LAS/LAZ file (no 'LASF' signature)")
    try:
        las = laspy.read(str(path))
    except laspy.errors.LaspyException as err:
        text = str(err)
        if "backend" in text.lower() or "laz" in text.lower() and "support" in text.lower():
            raise ImportError(
                f"{str(path)!r} is LAZ-compressed and no LAZ backend is installed: "
                f"pip install lazrs (or 'largekernel3d[las]')"
            ) from None
        raise PointCloudFileError(path, f"corrupt or truncated LAS data ({err})") from None
    except (ValueError, EOFError, OSError, RuntimeError) as err:
        raise PointCloudFileError(path, f"corrupt or truncated LAS data ({type(err).__name__}: {err})") from None
    header = las.header
    n = int(header.point_count)
    xyz = np.stack(
        [np.asarray(las.x, dtype=np.float64), np.asarray(las.y, dtype=np.float64), np.asarray(las.z, dtype=np.float64)],
        axis=1,
    )
    if xyz.shape[0] != n:
        raise PointCloudFileError(path, f"the header announces {n} points but {xyz.shape[0]} were read (truncated?)")
    dims = set(las.point_format.dimension_names)
    notes = [
        f"LAS {header.version}, point format {header.point_format.id}"
        f"{', LAZ-compressed' if path.suffix.lower() == '.laz' else ''}; dimensions: {' '.join(sorted(dims))}"
    ]
    factor = None
    if isinstance(options.units, str) and options.units.strip().lower() == "auto":
        unit = _file_unit(las)
        if unit is None:
            notes.append("no WKT coordinate system: coordinates taken as metres")
            factor = 1.0
        else:
            factor = unit[1]
            notes.append(f"WKT linear unit {unit[0]!r} = {unit[1]:g} m: applied to x, y and (assumed) z")
    else:
        factor = unit_factor(options.units, path)
    colors = None
    if {"red", "green", "blue"} <= dims:
        colors = np.stack([np.asarray(las.red), np.asarray(las.green), np.asarray(las.blue)], axis=1)
    intensity = np.asarray(las.intensity) if "intensity" in dims else None
    extra = {d: np.asarray(las[d]) for d in EXTRA_DIMENSIONS if d in dims}
    return finish(path, "las", xyz, options, colors, intensity, extra, notes, factor=factor)


def _file_unit(las) -> Optional[Tuple[str, float]]:
    for vlr in list(las.header.vlrs) + list(getattr(las, "evlrs", None) or []):
        text = getattr(vlr, "string", None)
        if text is None and int(getattr(vlr, "record_id", -1)) == 2112:
            text = bytes(getattr(vlr, "record_data", b"")).decode("ascii", errors="ignore")
        if text:
            unit = wkt_linear_unit(text)
            if unit is not None:
                return unit
    return None
