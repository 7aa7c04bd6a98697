"""PLY files (ASCII and binary, either endianness) through ``plyfile``: the ``vertex`` element.

Found properties: ``x y z`` (required); colours ``red green blue`` (also ``r g b``, ``diffuse_red ...``);
intensity ``intensity`` / ``scalar_intensity`` / ``reflectance`` / ``remission`` (any case); every other
scalar vertex property goes to ``extra`` (``alpha``, ``label``, normals, ...). Faces and other elements are
ignored (a mesh is read as its vertices).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .cloud import LoadedCloud, PointCloudFileError, ReadOptions, finish

_COLOUR_NAMES = (("red", "green", "blue"), ("r", "g", "b"), ("diffuse_red", "diffuse_green", "diffuse_blue"))
_INTENSITY_NAMES = ("intensity", "scalar_intensity", "reflectance", "remission")


def read_ply(path: Path, options: ReadOptions = ReadOptions()) -> LoadedCloud:
    """Read the vertices of a PLY file as a :class:`LoadedCloud` (see the module docstring)."""
    from plyfile import PlyData, PlyElementParseError, PlyHeaderParseError

    path = Path(path)
    with open(path, "rb") as fh:
        if fh.read(4) not in (b"ply\n", b"ply\r"):
            raise PointCloudFileError(path, "not a PLY file (it does not start with the line 'ply')")
    try:
        ply = PlyData.read(str(path))
    except PlyHeaderParseError as err:
        raise PointCloudFileError(path, f"bad PLY header ({err})") from None
    except PlyElementParseError as err:
        raise PointCloudFileError(path, f"truncated or corrupt PLY data ({err})") from None
    except (ValueError, EOFError, IndexError, MemoryError) as err:
        raise PointCloudFileError(path, f"truncated or corrupt PLY data ({type(err).__name__}: {err})") from None
    names = [e.name for e in ply.elements]
    if "vertex" not in names:
        raise PointCloudFileError(path, f"no 'vertex' element (elements: {names})")
    data = ply["vertex"].data
    props = {p.name: p for p in ply["vertex"].properties}
    lower = {n.lower(): n for n in props}
    missing = [a for a in "xyz" if a not in props]
    if missing:
        raise PointCloudFileError(path, f"the vertex element lacks {missing} (properties: {list(props)})")
    xyz = np.stack([np.asarray(data[a]) for a in "xyz"], axis=1)
    notes = [f"PLY {_format_name(ply)}, vertex properties: {' '.join(props)}"]
    colors, used = None, {"x", "y", "z"}
    for triple in _COLOUR_NAMES:
        if all(t in lower for t in triple):
            keys = [lower[t] for t in triple]
            colors = np.stack([np.asarray(data[k]) for k in keys], axis=1)
            used.update(keys)
            break
    intensity = None
    for name in _INTENSITY_NAMES:
        if name in lower:
            intensity = np.asarray(data[lower[name]])
            used.add(lower[name])
            break
    extra = {}
    for name, prop in props.items():
        if name in used:
            continue
        if hasattr(prop, "len_dtype"):  # list property: not a per-point scalar
            notes.append(f"list property {name!r} ignored")
            continue
        extra[name] = np.asarray(data[name])
    others = [n for n in names if n != "vertex"]
    if others:
        notes.append(f"other elements ignored: {', '.join(f'{n} ({len(ply[n].data)})' for n in others)}")
    return finish(path, "ply", xyz, options, colors, intensity, extra, notes)


def _format_name(ply) -> str:
    if ply.text:
        return "ascii"
    return f"binary {'little' if ply.byte_order == '<' else 'big'}-endian"
