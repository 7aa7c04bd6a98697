"""S3DIS (Stanford Large-Scale 3D Indoor Spaces): 13 classes, one scene per room."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Callable, Dict, Optional, Sequence, Tuple, Union

import numpy as np

from .io import colors_to_unit, load_bin, load_label_npy, load_npy, require_dir, select_scenes
from .scene import IGNORE_INDEX, PointCloudScene, SegmentationDataset

S3DIS_CLASSES: Tuple[str, ...] = (
    "ceiling",
    "floor",
    "wall",
    "beam",
    "column",
    "window",
    "door",
    "table",
    "chair",
    "sofa",
    "bookcase",
    "board",
    "clutter",
)
# annotation file prefixes outside the 13 classes (as in the usual PointNet preprocessing)
_ALIASES = {"stairs": "clutter"}

_LAYOUT_HELP = (
    "expected one of: the original 'Area_<k>/<room>/Annotations/<class>_<i>.txt' files (x y z r g b per line); "
    "one folder per room 'Area_<k>/<room>/coord.npy' + 'color.npy' + 'segment.npy'; "
    "'Area_<k>_<room>.npy' arrays of x y z r g b label (N x 7); "
    "or mmdet3d's 'points/Area_<k>_<room>.bin' + 'semantic_mask/Area_<k>_<room>.bin'"
)

_NUMERIC = bytes(range(256)).translate(None, b"0123456789.-+eE \t\r\n")


def _read_txt_xyzrgb(path: Path) -> np.ndarray:
    """An S3DIS annotation file (lines of ``x y z r g b``) as float64 ``[N, 6]``; stray non-numeric
    bytes (a few official files contain some) are treated as separators."""
    raw = path.read_bytes().translate(bytes.maketrans(_NUMERIC, b" " * len(_NUMERIC)))
    values = np.array(raw.split(), dtype=np.float64)
    if values.size % 6:
        raise ValueError(f"{str(path)!r}: expected 6 numbers per line (x y z r g b), got {values.size} numbers")
    return values.reshape(-1, 6)


def _load_original(name: str, room: Path) -> PointCloudScene:
    ann = room / "Annotations"
    files = sorted(ann.glob("*.txt"))
    if not files:
        raise ValueError(f"{str(ann)!r} holds no '<class>_<i>.txt' annotation files")
    pts, labels = [], []
    for f in files:
        cls = _ALIASES.get(f.stem.rsplit("_", 1)[0], f.stem.rsplit("_", 1)[0])
        if cls not in S3DIS_CLASSES:
            raise ValueError(f"{str(f)!r}: unknown S3DIS class {cls!r} (expected one of {S3DIS_CLASSES})")
        arr = _read_txt_xyzrgb(f)
        pts.append(arr)
        labels.append(np.full(len(arr), S3DIS_CLASSES.index(cls), dtype=np.int64))
    data = np.concatenate(pts)
    return PointCloudScene(name, data[:, :3], colors_to_unit(data[:, 3:6], ann), np.concatenate(labels))


def _train_ids(labels: np.ndarray, source: str) -> np.ndarray:
    lab = np.asarray(labels)
    if not np.issubdtype(lab.dtype, np.integer):
        if not np.all(np.isfinite(lab)) or not np.all(lab == np.round(lab)):
            raise ValueError(f"{source}: labels must be integers")
    lab = lab.astype(np.int64).reshape(-1).copy()
    if lab.size and lab.max() >= len(S3DIS_CLASSES):
        raise ValueError(
            f"{source}: S3DIS labels must be < {len(S3DIS_CLASSES)} (or negative for ignore), found {int(lab.max())}"
        )
    lab[lab < 0] = IGNORE_INDEX
    return lab


def _load_folder(name: str, folder: Path) -> PointCloudScene:
    coord = load_npy(folder / "coord.npy", ncols=3)
    colors = (
        colors_to_unit(load_npy(folder / "color.npy", ncols=3), folder / "color.npy")
        if (folder / "color.npy").is_file()
        else np.zeros((len(coord), 3), np.float32)
    )
    labels = None
    if (folder / "segment.npy").is_file():
        labels = _train_ids(load_label_npy(folder / "segment.npy"), str(folder / "segment.npy"))
    _check_rows(name, folder, len(coord), colors, labels)
    return PointCloudScene(name, coord, colors, labels)


def _load_npy7(name: str, path: Path) -> PointCloudScene:
    arr = load_npy(path, min_cols=6)
    labels = _train_ids(arr[:, 6], str(path)) if arr.shape[1] >= 7 else None
    return PointCloudScene(name, arr[:, :3], colors_to_unit(arr[:, 3:6], path), labels)


def _load_mmdet3d(name: str, path: Path) -> PointCloudScene:
    pts = load_bin(path, np.float32, 6)
    mask = path.parent.parent / "semantic_mask" / path.name
    labels = _train_ids(load_bin(mask, np.int64), str(mask)) if mask.is_file() else None
    colors = colors_to_unit(pts[:, 3:6], path)
    _check_rows(name, path, len(pts), colors, labels)
    return PointCloudScene(name, pts[:, :3], colors, labels)


def _check_rows(name, source, n, colors, labels) -> None:
    if len(colors) != n or (labels is not None and len(labels) != n):
        raise ValueError(
            f"scene {name!r} ({source}): {n} points, {len(colors)} colours, "
            f"{None if labels is None else len(labels)} labels; they must match"
        )


def _find(root: Path) -> Dict[str, Tuple[str, Path]]:
    found: Dict[str, Tuple[str, Path]] = {}
    for ann in sorted(root.glob("Area_*/*/Annotations")):
        found[f"{ann.parent.parent.name}_{ann.parent.name}"] = ("original", ann.parent)
    if found:
        return found
    for coord in sorted(root.glob("Area_*/*/coord.npy")):
        found[f"{coord.parent.parent.name}_{coord.parent.name}"] = ("folder", coord.parent)
    if found:
        return found
    for f in sorted(root.glob("Area_*.npy")):
        found[f.stem] = ("npy7", f)
    if found:
        return found
    for f in sorted((root / "points").glob("*.bin")) if (root / "points").is_dir() else []:
        found[f.stem] = ("mmdet3d", f)
    return found


_LOADERS: Dict[str, Callable[[str, Path], PointCloudScene]] = {
    "original": _load_original,
    "folder": _load_folder,
    "npy7": _load_npy7,
    "mmdet3d": _load_mmdet3d,
}


def area_of(scene_name: str) -> Optional[int]:
    """The area number of ``Area_5_office_1`` (5), or ``None``."""
    m = re.match(r"Area_(\d+)_", scene_name)
    return int(m.group(1)) if m else None


class S3DISDataset(SegmentationDataset):
    """S3DIS rooms with the 13 classes :data:`S3DIS_CLASSES` (labels are 0..12 in every layout).

    Layouts (auto-detected): the original ``Area_<k>/<room>/Annotations/<class>_<i>.txt`` files
    (class from the file name, ``stairs`` counted as clutter, colours 0-255); Pointcept-style
    ``Area_<k>/<room>/{coord,color,segment}.npy``; ``Area_<k>_<room>.npy`` arrays of
    ``x y z r g b label``; mmdet3d's ``points/*.bin`` (float32 x,y,z,r,g,b) + ``semantic_mask/*.bin``.

    Args:
        root: dataset folder.
        areas: keep only rooms of these areas (e.g. ``[1, 2, 3, 4, 6]`` for training, ``[5]`` for the
            standard test area); all when ``None``.
        scenes: keep only these scene names (``Area_<k>_<room>``).
    """

    class_names = S3DIS_CLASSES

    def __init__(
        self, root: Union[str, Path], areas: Optional[Sequence[int]] = None, scenes: Optional[Sequence[str]] = None
    ) -> None:
        self.root = require_dir(Path(root), "S3DIS root")
        found = _find(self.root)
        if not found:
            raise ValueError(f"no S3DIS rooms found under {str(self.root)!r}: {_LAYOUT_HELP}")
        self.layout = next(iter(found.values()))[0]
        names = sorted(found)
        if areas is not None:
            areas = {int(a) for a in areas}
            names = [n for n in names if area_of(n) in areas]
            if not names:
                raise ValueError(
                    f"no rooms of areas {sorted(areas)} under {str(self.root)!r} "
                    f"(found areas {sorted({area_of(n) for n in found})})"
                )
        self.scene_names = names = select_scenes(names, scenes, f"{str(self.root)!r} (available e.g. {names[:3]})")
        self._sources = {n: found[n] for n in names}

    def _source(self, index: int) -> str:
        return str(self._sources[self.scene_names[index]][1])

    def _load(self, index: int) -> PointCloudScene:
        name = self.scene_names[index]
        kind, path = self._sources[name]
        return _LOADERS[kind](name, path)

    def __repr__(self) -> str:
        return f"S3DISDataset(root={str(self.root)!r}, layout={self.layout!r}, scenes={len(self)})"
