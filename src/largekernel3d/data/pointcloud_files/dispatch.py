"""Pick a reader by file extension (or by name), and expand ``PATH...`` arguments (files, folders, globs).

=====================  ==================  =============================================
extension              format name         reader
=====================  ==================  =============================================
``.ply``               ``ply``             :func:`.ply.read_ply`
``.pcd``               ``pcd``             :func:`.pcd.read_pcd`
``.las`` ``.laz``      ``las``             :func:`.las.read_las` (needs laspy)
``.pcd.bin``           ``nuscenes_bin``    :func:`.raw_bin.read_nuscenes_bin` (float32 x 5)
``.bin``               ``kitti_bin``       :func:`.raw_bin.read_kitti_bin` (float32 x 4)
``.npy``               ``npy``             :func:`.numpy_files.read_npy`
``.npz``               ``npz``             :func:`.numpy_files.read_npz`
``.txt`` ``.csv`` ...  ``text``            :func:`.text.read_text`
=====================  ==================  =============================================
"""

from __future__ import annotations

import glob
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Union

from .cloud import LoadedCloud, ReadOptions, UnitsLike
from .las import read_las
from .numpy_files import read_npy, read_npz
from .pcd import read_pcd
from .ply import read_ply
from .raw_bin import read_kitti_bin, read_nuscenes_bin
from .text import read_text

Reader = Callable[[Path, ReadOptions], LoadedCloud]

READERS: Dict[str, Reader] = {
    "ply": read_ply,
    "pcd": read_pcd,
    "las": read_las,
    "kitti_bin": read_kitti_bin,
    "nuscenes_bin": read_nuscenes_bin,
    "npy": read_npy,
    "npz": read_npz,
    "text": read_text,
}
"""Format name -> reader ``(path, options) -> LoadedCloud``."""

EXTENSIONS: Dict[str, str] = {
    ".pcd.bin": "nuscenes_bin",
    ".ply": "ply",
    ".pcd": "pcd",
    ".las": "las",
    ".laz": "las",
    ".bin": "kitti_bin",
    ".npy": "npy",
    ".npz": "npz",
    ".txt": "text",
    ".csv": "text",
    ".xyz": "text",
    ".pts": "text",
    ".asc": "text",
}
"""File extension (longest match first) -> format name."""


def detect_format(path: Union[str, Path]) -> str:
    """The format name for ``path``'s extension; ``ValueError`` listing the known ones otherwise."""
    name = Path(path).name.lower()
    for ext, fmt in EXTENSIONS.items():
        if name.endswith(ext):
            return fmt
    raise ValueError(
        f"{str(path)!r}: unknown point-cloud extension; known: {' '.join(EXTENSIONS)} "
        f"(or pass format= / --format, one of {sorted(READERS)})"
    )


SELF_DESCRIBING = frozenset({"ply", "pcd", "las"})
"""Formats whose files name their fields (``columns`` does not apply to them)."""


def read_point_cloud(
    path: Union[str, Path],
    format: Optional[str] = None,
    *,
    units: UnitsLike = "auto",
    axes: str = "xyz",
    columns: Optional[Union[str, Sequence[str]]] = None,
    colour_scale: Union[str, float] = "auto",
) -> LoadedCloud:
    """Read one point-cloud file into a :class:`LoadedCloud` (points in metres, z up; see :class:`ReadOptions`
    for ``units``, ``axes``, ``columns`` and ``colour_scale``).

    Args:
        path: the file.
        format: a name of :data:`READERS` to override the extension's choice.

    Raises:
        FileNotFoundError: no such file.
        ValueError: unknown extension / format or bad options; :class:`PointCloudFileError` (a ``ValueError``)
            for a corrupt or truncated file, naming it and what was wrong.
        ImportError: LAS / LAZ without laspy (or LAZ without a backend).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"point-cloud file {str(path)!r} does not exist")
    fmt = detect_format(path) if format is None else str(format).lower()
    if fmt not in READERS:
        raise ValueError(f"format must be one of {sorted(READERS)}, got {format!r}")
    options = ReadOptions(units=units, axes=axes, columns=columns, colour_scale=colour_scale)
    cloud = READERS[fmt](path, options)
    if columns is not None and fmt in SELF_DESCRIBING:
        cloud.notes.append(f"columns= (--columns) ignored: {fmt} files name their own fields")
    return cloud


def is_point_cloud_file(path: Path) -> bool:
    """Whether ``path``'s extension is one :func:`detect_format` knows."""
    try:
        detect_format(path)
    except ValueError:
        return False
    return True


def expand_inputs(inputs: Iterable[Union[str, Path]], recursive: bool = False) -> List[Path]:
    """Files named by ``inputs``: a file as it is (any extension), a folder's point-cloud files (sorted; with
    ``recursive`` also its sub-folders'), a glob pattern's matches. Duplicates are dropped, order kept.

    Raises ``FileNotFoundError`` naming an input that matches nothing."""
    out: List[Path] = []
    for item in inputs:
        text = str(item)
        path = Path(text).expanduser()
        if path.is_file():
            found = [path]
        elif path.is_dir():
            pattern = "**/*" if recursive else "*"
            found = sorted(p for p in path.glob(pattern) if p.is_file() and is_point_cloud_file(p))
            if not found:
                raise FileNotFoundError(f"folder {text!r} holds no point-cloud files ({' '.join(EXTENSIONS)})")
        elif glob.has_magic(text):
            found = sorted(Path(p) for p in glob.glob(text, recursive=True) if Path(p).is_file())
            if not found:
                raise FileNotFoundError(f"pattern {text!r} matches no file")
        else:
            raise FileNotFoundError(f"input {text!r} is neither a file, a folder nor a matching pattern")
        out.extend(found)
    seen, unique = set(), []
    for p in out:
        key = p.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(p)
    return unique
