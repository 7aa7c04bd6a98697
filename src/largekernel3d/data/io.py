"""Checked file readers shared by the dataset loaders (errors name the file and what was expected)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Collection, List, Optional, Sequence, Tuple

import numpy as np


def require_dir(path: Path, what: str) -> Path:
    """``path`` as a ``Path``; ``FileNotFoundError``/``NotADirectoryError`` naming ``what`` otherwise."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{what} {str(path)!r} does not exist")
    if not path.is_dir():
        raise NotADirectoryError(f"{what} {str(path)!r} is not a directory")
    return path


def load_npy(path: Path, ncols: Optional[int] = None, min_cols: Optional[int] = None) -> np.ndarray:
    """Load a ``.npy`` array, checking it is 2-D with ``ncols`` (or at least ``min_cols``) columns,
    or 1-D when both are ``None``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"expected the file {str(path)!r}, it does not exist")
    try:
        arr = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise ValueError(f"{str(path)!r} is not a readable .npy array ({exc})") from exc
    check_shape(arr, path, ncols, min_cols)
    return arr


def load_label_npy(path: Path) -> np.ndarray:
    """Load per-point labels stored as ``[N]`` or ``[N, 1]``; returns ``[N]``."""
    arr = load_npy(path, min_cols=1) if _npy_ndim(path) == 2 else load_npy(path)
    if arr.ndim == 2 and arr.shape[1] != 1:
        raise ValueError(f"{str(path)!r}: expected labels of shape [N] or [N, 1], got {arr.shape}")
    return arr.reshape(-1)


def _npy_ndim(path: Path) -> int:
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False).ndim
    except (ValueError, OSError, EOFError):
        return -1


def check_shape(arr: np.ndarray, source: Any, ncols: Optional[int] = None, min_cols: Optional[int] = None) -> None:
    """Raise ``ValueError`` naming ``source`` unless ``arr`` is ``[N]`` (no column spec) or ``[N, C]``."""
    if ncols is None and min_cols is None:
        if arr.ndim != 1:
            raise ValueError(f"{str(source)!r}: expected a 1-D array [N], got shape {arr.shape}")
        return
    if arr.ndim != 2:
        raise ValueError(f"{str(source)!r}: expected a 2-D array [N, C], got shape {arr.shape}")
    if ncols is not None and arr.shape[1] != ncols:
        raise ValueError(f"{str(source)!r}: expected {ncols} columns, got shape {arr.shape}")
    if min_cols is not None and arr.shape[1] < min_cols:
        raise ValueError(f"{str(source)!r}: expected at least {min_cols} columns, got shape {arr.shape}")


def load_bin(path: Path, dtype: Any, ncols: Optional[int] = None) -> np.ndarray:
    """Read a raw binary array of ``dtype`` (``[N, ncols]`` or ``[N]``) and check its size."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"expected the file {str(path)!r}, it does not exist")
    raw = np.fromfile(path, dtype=np.uint8)
    item = np.dtype(dtype).itemsize * (ncols or 1)
    if raw.size % item:
        raise ValueError(
            f"{str(path)!r} has {raw.size} bytes, not a multiple of {item} "
            f"({np.dtype(dtype).name} x {ncols or 1} per point)"
        )
    arr = raw.view(dtype)
    return arr.reshape(-1, ncols) if ncols else arr


def colors_to_unit(colors: np.ndarray, source: Any) -> np.ndarray:
    """RGB in 0-255 (any numeric dtype) → float32 in ``[0, 1]``."""
    c = np.asarray(colors, dtype=np.float32)
    if c.size and (not np.isfinite(c).all() or c.min() < 0 or c.max() > 255.0 + 1e-3):
        raise ValueError(
            f"{str(source)!r}: colours must lie in [0, 255], found range [{float(np.nanmin(c))}, {float(np.nanmax(c))}]"
        )
    return np.clip(c / 255.0, 0.0, 1.0)


def read_ply_vertices(path: Path, fields: Tuple[str, ...]) -> np.ndarray:
    """Vertex properties ``fields`` of a PLY file as a float64 ``[N, len(fields)]`` array (plyfile)."""
    from plyfile import PlyData  # imported here: plyfile is only needed for the official layout

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"expected the PLY file {str(path)!r}, it does not exist")
    try:
        ply = PlyData.read(str(path))
    except Exception as exc:  # plyfile raises several unrelated types on malformed input
        raise ValueError(f"{str(path)!r} is not a readable PLY file ({exc})") from exc
    if "vertex" not in ply:
        raise ValueError(f"{str(path)!r} has no 'vertex' element")
    vertex = ply["vertex"]
    names = vertex.data.dtype.names or ()
    missing = [f for f in fields if f not in names]
    if missing:
        raise ValueError(f"{str(path)!r}: vertex properties {missing} are missing (found {list(names)})")
    return np.stack([np.asarray(vertex[f], dtype=np.float64) for f in fields], axis=1)


def _numpy_safe_globals() -> list:
    core = getattr(np, "_core", None) or np.core
    entries: list = [
        np.ndarray,
        np.dtype,
        (core.multiarray._reconstruct, "numpy.core.multiarray._reconstruct"),
        core.multiarray._reconstruct,
        (core.multiarray.scalar, "numpy.core.multiarray.scalar"),
        core.multiarray.scalar,
    ]
    dtypes = getattr(np, "dtypes", None)
    if dtypes is not None:
        entries += [getattr(dtypes, n) for n in dir(dtypes) if n.endswith("DType")]
    return entries


def load_pth(path: Path) -> Any:
    """Load a ``.pth`` file of plain containers and numpy arrays / tensors with ``torch.load``'s
    ``weights_only`` unpickler (no arbitrary code runs)."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"expected the file {str(path)!r}, it does not exist")
    try:
        with torch.serialization.safe_globals(_numpy_safe_globals()):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ValueError(
            f"{str(path)!r} could not be read as a .pth of arrays ({exc}); save it as a dict or "
            f"tuple of numpy arrays / tensors, or convert it to the coord.npy folder layout"
        ) from exc


_SCENE_RE = re.compile(r"scene\d{4}_\d{2}")


def scannet_scene_name(stem: str) -> str:
    """``scene0000_00`` out of a file stem such as ``scene0000_00_inst_nostuff``; the stem otherwise."""
    m = _SCENE_RE.search(stem)
    return m.group(0) if m else stem


def select_scenes(available: Collection[str], scenes: Optional[Sequence[str]], where: str) -> List[str]:
    """The scenes a dataset serves: ``scenes`` in the given order (repeats dropped) when given, each of
    them checked against ``available``; otherwise all of ``available``, sorted. ``where`` describes the
    folder in the error (e.g. ``"'/data/scannet' (votenet layout; 15 scenes found, e.g. [...])"``)."""
    if scenes is None:
        return sorted(available)
    if isinstance(scenes, str):
        raise TypeError("scenes must be a sequence of scene names, not one string")
    missing = [s for s in scenes if s not in available]
    if missing:
        raise ValueError(f"scenes {missing[:5]} are not in {where}")
    return list(dict.fromkeys(scenes))
