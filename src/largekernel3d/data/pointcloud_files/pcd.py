"""PCD files (Point Cloud Library), ``DATA ascii``, ``binary`` and ``binary_compressed``, versions 0.6 / 0.7.

Header keys: ``FIELDS``, ``SIZE``, ``TYPE`` (``I`` signed, ``U`` unsigned, ``F`` float), ``COUNT`` (default 1),
``WIDTH``, ``HEIGHT``, ``POINTS`` (``WIDTH * HEIGHT``), ``DATA``. Layouts:

* ``binary``: ``POINTS`` records of ``sum(SIZE * COUNT)`` bytes (array of structures, little-endian);
* ``binary_compressed``: ``uint32 compressed size``, ``uint32 raw size`` and an LZF stream whose raw bytes hold
  each field for all points in turn (structure of arrays);
* ``ascii``: one point per line.

Fields: ``x y z`` (required); colour ``rgb`` / ``rgba`` (PCL packs ``0x00RRGGBB`` into 4 bytes, stored as a float
or an unsigned int) or separate ``r g b``; ``intensity`` (also ``reflectance``); the padding field ``_`` is
skipped; other fields go to ``extra`` (multi-count fields as ``name_0, name_1, ...``). Organised clouds mark
missing points with NaN: those rows are dropped (and counted in the notes).
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np

from .cloud import LoadedCloud, PointCloudFileError, ReadOptions, finish
from .lzf import lzf_decompress

_TYPES = {
    ("F", 4): "<f4",
    ("F", 8): "<f8",
    ("I", 1): "<i1",
    ("I", 2): "<i2",
    ("I", 4): "<i4",
    ("I", 8): "<i8",
    ("U", 1): "<u1",
    ("U", 2): "<u2",
    ("U", 4): "<u4",
    ("U", 8): "<u8",
}
_KEYS = ("VERSION", "FIELDS", "SIZE", "TYPE", "COUNT", "WIDTH", "HEIGHT", "VIEWPOINT", "POINTS", "DATA")


def _parse_header(raw: bytes, path: Path) -> Tuple[Dict[str, List[str]], int]:
    """``(header key -> tokens, offset of the first data byte)``."""
    header: Dict[str, List[str]] = {}
    pos = 0
    for _ in range(64):
        nl = raw.find(b"\n", pos)
        if nl < 0:
            raise PointCloudFileError(path, "the PCD header ends before its DATA line (truncated file?)")
        line = raw[pos:nl].decode("ascii", errors="replace").strip()
        pos = nl + 1
        if not line or line.startswith("#"):
            continue
        key, *values = line.split()
        if key.upper() not in _KEYS:
            raise PointCloudFileError(path, f"unknown PCD header line {line[:60]!r} (not a PCD file?)")
        header[key.upper()] = values
        if key.upper() == "DATA":
            return header, pos
    raise PointCloudFileError(path, "no DATA line in the first 64 header lines: not a PCD file")


def _layout(header: Dict[str, List[str]], path: Path):
    for key in ("FIELDS", "SIZE", "TYPE", "DATA"):
        if key not in header:
            raise PointCloudFileError(path, f"the PCD header has no {key} line")
    fields = header["FIELDS"]
    sizes, types = header["SIZE"], header["TYPE"]
    counts = header.get("COUNT", ["1"] * len(fields))
    if not (len(fields) == len(sizes) == len(types) == len(counts)):
        raise PointCloudFileError(
            path,
            f"FIELDS ({len(fields)}), SIZE ({len(sizes)}), TYPE ({len(types)}) and COUNT "
            f"({len(counts)}) disagree in length",
        )
    try:
        dtypes = [np.dtype(_TYPES[(t.upper(), int(s))]) for t, s in zip(types, sizes)]
        counts_i = [int(c) for c in counts]
        width = int(header.get("WIDTH", ["0"])[0])
        height = int(header.get("HEIGHT", ["1"])[0])
        points = int(header.get("POINTS", [str(width * height)])[0])
    except (KeyError, ValueError) as err:
        raise PointCloudFileError(path, f"bad PCD header value ({err}); TYPE must be I/U/F with SIZE 1/2/4/8") from None
    if points < 0 or points != width * height:
        raise PointCloudFileError(path, f"POINTS {points} disagrees with WIDTH x HEIGHT = {width} x {height}")
    return fields, dtypes, counts_i, points


def read_pcd(path: Path, options: ReadOptions = ReadOptions()) -> LoadedCloud:
    """Read a PCD file as a :class:`LoadedCloud` (see the module docstring)."""
    path = Path(path)
    raw = path.read_bytes()
    header, start = _parse_header(raw, path)
    fields, dtypes, counts, n = _layout(header, path)
    kind = header["DATA"][0].lower() if header["DATA"] else ""
    names = [f if f != "_" else f"_pad{k}" for k, f in enumerate(fields)]
    record = np.dtype([(nm, dt, (c,)) if c > 1 else (nm, dt) for nm, dt, c in zip(names, dtypes, counts)])
    if kind == "binary":
        need = n * record.itemsize
        if len(raw) - start < need:
            raise PointCloudFileError(
                path,
                f"truncated binary data: {n} points x {record.itemsize} bytes = {need} "
                f"bytes expected, {len(raw) - start} present",
            )
        table = np.frombuffer(raw, dtype=record, count=n, offset=start)
    elif kind == "binary_compressed":
        if len(raw) - start < 8:
            raise PointCloudFileError(path, "truncated binary_compressed data: no size words after the header")
        packed, unpacked = struct.unpack("<II", raw[start : start + 8])
        if len(raw) - start - 8 < packed:
            raise PointCloudFileError(
                path,
                f"truncated binary_compressed data: {packed} compressed bytes announced, "
                f"{len(raw) - start - 8} present",
            )
        if unpacked != n * record.itemsize:
            raise PointCloudFileError(
                path, f"binary_compressed raw size {unpacked} is not {n} points x {record.itemsize} bytes"
            )
        try:
            body = lzf_decompress(raw[start + 8 : start + 8 + packed], unpacked)
        except ValueError as err:
            raise PointCloudFileError(path, f"corrupt binary_compressed data: {err}") from None
        table = np.empty(n, dtype=record)
        offset = 0
        for nm, dt, c in zip(names, dtypes, counts):
            size = n * dt.itemsize * c
            column = np.frombuffer(body, dtype=dt, count=n * c, offset=offset)
            table[nm] = column.reshape(n, c) if c > 1 else column
            offset += size
    elif kind == "ascii":
        table = _read_ascii(raw[start:], names, dtypes, counts, n, path)
    else:
        raise PointCloudFileError(path, f"unsupported DATA {kind!r} (ascii, binary or binary_compressed)")
    return _to_cloud(path, table, names, kind, n, options)


def _read_ascii(body: bytes, names, dtypes, counts, n: int, path: Path) -> np.ndarray:
    lines = [ln for ln in body.decode("ascii", errors="replace").splitlines() if ln.strip()]
    width = sum(counts)
    if len(lines) < n:
        raise PointCloudFileError(path, f"truncated ascii data: {n} points announced, {len(lines)} lines present")
    try:
        values = np.array([ln.split() for ln in lines[:n]], dtype=object)
        if values.ndim != 2 or values.shape[1] != width:
            raise ValueError(f"expected {width} values per line")
        numbers = values.astype(np.float64)
    except ValueError as err:
        raise PointCloudFileError(path, f"bad ascii data ({err})") from None
    record = np.dtype([(nm, dt, (c,)) if c > 1 else (nm, dt) for nm, dt, c in zip(names, dtypes, counts)])
    table = np.empty(n, dtype=record)
    col = 0
    for nm, dt, c in zip(names, dtypes, counts):
        block = numbers[:, col : col + c]
        if nm in ("rgb", "rgba") and dt.kind == "f":  # a packed colour written as the float's value
            table[nm] = block[:, 0].astype(np.float32)
        else:
            table[nm] = block.astype(dt).reshape(n, c) if c > 1 else block[:, 0].astype(dt)
        col += c
    return table


def _to_cloud(path: Path, table: np.ndarray, names: List[str], kind: str, n: int, options: ReadOptions) -> LoadedCloud:
    lower = {nm.lower(): nm for nm in names}
    missing = [a for a in "xyz" if a not in lower]
    if missing:
        raise PointCloudFileError(path, f"no {missing} field (FIELDS: {' '.join(names)})")
    xyz = np.stack([table[lower[a]].astype(np.float64) for a in "xyz"], axis=1)
    notes = [f"PCD DATA {kind}, fields: {' '.join(names)}"]
    used = {lower[a] for a in "xyz"}
    colors = None
    for key in ("rgb", "rgba"):
        if key in lower:
            packed = np.ascontiguousarray(table[lower[key]]).view(np.uint32).astype(np.int64)
            colors = np.stack([(packed >> 16) & 255, (packed >> 8) & 255, packed & 255], axis=1).astype(np.uint8)
            used.add(lower[key])
            notes.append(f"colours unpacked from the packed field {lower[key]!r}")
            break
    if colors is None and all(c in lower for c in "rgb"):
        colors = np.stack([table[lower[c]] for c in "rgb"], axis=1)
        used.update(lower[c] for c in "rgb")
    intensity = None
    for key in ("intensity", "reflectance", "remission"):
        if key in lower:
            intensity = np.asarray(table[lower[key]], dtype=np.float32).reshape(n, -1)[:, 0]
            used.add(lower[key])
            break
    extra = {}
    for nm in names:
        if nm in used or nm.startswith("_pad"):
            continue
        value = np.asarray(table[nm])
        if value.ndim == 2:
            extra.update({f"{nm}_{k}": value[:, k] for k in range(value.shape[1])})
        else:
            extra[nm] = value
    at_origin = int(np.all(xyz == 0, axis=1).sum())
    if at_origin:
        notes.append(f"{at_origin:,} points lie exactly at (0, 0, 0) (often invalid returns; kept)")
    return finish(path, "pcd", xyz, options, colors, intensity, extra, notes)
