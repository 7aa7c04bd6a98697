"""ScanNet v2 semantic segmentation (20 benchmark classes) in its common on-disk layouts.

Label mapping (the ScanNet-20 benchmark): the NYU40 ids
``(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14, 16, 24, 28, 33, 34, 36, 39)`` become classes ``0..19``
(:data:`SCANNET20_CLASSES`, in that order); every other id (0 = unannotated, 13 blinds, 15 shelves,
17-23, 25-27, 29-32, 35, 37, 38, 40) becomes :data:`IGNORE_INDEX`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from .io import (
    check_shape,
    colors_to_unit,
    load_bin,
    load_label_npy,
    load_npy,
    load_pth,
    read_ply_vertices,
    require_dir,
    scannet_scene_name,
    select_scenes,
)
from .scene import IGNORE_INDEX, PointCloudScene, SegmentationDataset

SCANNET20_CLASSES: Tuple[str, ...] = (
    "wall",
    "floor",
    "cabinet",
    "bed",
    "chair",
    "sofa",
    "table",
    "door",
    "window",
    "bookshelf",
    "picture",
    "counter",
    "desk",
    "curtain",
    "refrigerator",
    "showercurtain",
    "toilet",
    "sink",
    "bathtub",
    "otherfurniture",
)
SCANNET20_NYU40_IDS: Tuple[int, ...] = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14, 16, 24, 28, 33, 34, 36, 39)

# RGB (0-255) colours per class, as in the ScanNet benchmark visualisations.
SCANNET20_COLORS: Tuple[Tuple[int, int, int], ...] = (
    (174, 199, 232),
    (152, 223, 138),
    (31, 119, 180),
    (255, 187, 120),
    (188, 189, 34),
    (140, 86, 75),
    (255, 152, 150),
    (214, 39, 40),
    (197, 176, 213),
    (148, 103, 189),
    (196, 156, 148),
    (23, 190, 207),
    (247, 182, 210),
    (219, 219, 141),
    (255, 127, 14),
    (158, 218, 229),
    (44, 160, 44),
    (112, 128, 144),
    (227, 119, 194),
    (82, 84, 163),
)


def _nyu40_table() -> np.ndarray:
    table = np.full(41, IGNORE_INDEX, dtype=np.int64)
    for train_id, nyu_id in enumerate(SCANNET20_NYU40_IDS):
        table[nyu_id] = train_id
    table.setflags(write=False)
    return table


NYU40_TO_SCANNET20: np.ndarray = _nyu40_table()
"""int64 ``[41]`` lookup table: ``NYU40_TO_SCANNET20[nyu40_id]`` = ScanNet-20 id or ``IGNORE_INDEX``."""


def nyu40_to_scannet20(nyu40_ids: np.ndarray, source: str = "labels") -> np.ndarray:
    """Map NYU40 ids (``0..40``) to ScanNet-20 training ids; ``ValueError`` naming ``source`` for ids
    outside ``0..40``."""
    ids = np.asarray(nyu40_ids)
    if ids.size == 0:
        return np.zeros(0, dtype=np.int64)
    if not np.issubdtype(ids.dtype, np.integer):
        if not np.all(np.isfinite(ids)) or not np.all(ids == np.round(ids)):
            raise ValueError(f"{source}: NYU40 ids must be integers")
    ids = ids.astype(np.int64)
    if ids.min() < 0 or ids.max() > 40:
        raise ValueError(f"{source}: NYU40 ids must lie in 0..40, found range [{int(ids.min())}, {int(ids.max())}]")
    return NYU40_TO_SCANNET20[ids]


def scannet20_from_train_ids(labels: np.ndarray, source: str) -> np.ndarray:
    """Already-mapped 20-class labels (preprocessed layouts): ``0..19`` kept, any negative value (the
    -1 of Pointcept, the -100 of PointGroup/SparseConvNet) → ``IGNORE_INDEX``; other values are an error."""
    lab = np.asarray(labels)
    if not np.issubdtype(lab.dtype, np.integer):
        if not np.all(np.isfinite(lab)) or not np.all(lab == np.round(lab)):
            raise ValueError(f"{source}: labels must be integers")
    lab = lab.astype(np.int64).reshape(-1)
    if lab.size and lab.max() >= len(SCANNET20_CLASSES):
        raise ValueError(f"{source}: 20-class labels must be < 20 (or negative for ignore), found {int(lab.max())}")
    lab = lab.copy()
    lab[lab < 0] = IGNORE_INDEX
    return lab


def room_id(scene_name: str) -> str:
    """The physical room of a ScanNet scan: ``scene0000`` for ``scene0000_02`` (the name otherwise)."""
    m = re.match(r"(scene\d{4})_\d{2}$", scene_name)
    return m.group(1) if m else scene_name


def split_scenes_by_room(
    scene_names: Sequence[str], val_fraction: float = 0.3, seed: int = 0
) -> Tuple[List[str], List[str]]:
    """Split scans into ``(train, val)`` so that all scans of one room fall on the same side.

    Rooms (:func:`room_id`) are shuffled with ``numpy.random.default_rng(seed)`` and assigned to val
    until it holds at least ``val_fraction`` of the scans; with two or more rooms both sides are
    non-empty. Both lists come back sorted.
    """
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must lie in (0, 1), got {val_fraction}")
    names = sorted(set(scene_names))
    if len(names) != len(list(scene_names)):
        raise ValueError("scene_names contains duplicates")
    rooms: Dict[str, List[str]] = {}
    for n in names:
        rooms.setdefault(room_id(n), []).append(n)
    if len(rooms) < 2:
        raise ValueError(f"need scans of at least two rooms to split by room, got rooms {sorted(rooms)}")
    order = sorted(rooms)
    perm = np.random.default_rng(seed).permutation(len(order))
    val: List[str] = []
    target = val_fraction * len(names)
    for k in perm[:-1]:  # the last room always stays in train
        if len(val) >= target:
            break
        val.extend(rooms[order[k]])
    val_set = set(val)
    return [n for n in names if n not in val_set], sorted(val)


# --- layouts ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Source:
    layout: str
    path: Path  # the main file or folder of the scene


def _find_official(root: Path) -> Dict[str, _Source]:
    found: Dict[str, _Source] = {}
    for base in (root / "scans", root):
        if not base.is_dir():
            continue
        for d in sorted(p for p in base.iterdir() if p.is_dir()):
            ply = d / f"{d.name}_vh_clean_2.ply"
            if ply.is_file():
                found[d.name] = _Source("official", d)
        if found:
            break
    return found


def _find_folders(root: Path) -> Dict[str, _Source]:
    found: Dict[str, _Source] = {}
    for coord in sorted(list(root.glob("*/coord.npy")) + list(root.glob("*/*/coord.npy"))):
        found.setdefault(coord.parent.name, _Source("folder", coord.parent))
    return found


def _find_pth(root: Path) -> Dict[str, _Source]:
    found: Dict[str, _Source] = {}
    for f in sorted(list(root.glob("*.pth")) + list(root.glob("*/*.pth"))):
        found.setdefault(scannet_scene_name(f.stem), _Source("pth", f))
    return found


def _find_votenet(root: Path) -> Dict[str, _Source]:
    return {f.name[: -len("_vert.npy")]: _Source("votenet", f) for f in sorted(root.glob("*_vert.npy"))}


def _find_mmdet3d(root: Path) -> Dict[str, _Source]:
    points = root / "points"
    if not points.is_dir():
        return {}
    return {f.stem: _Source("mmdet3d", f) for f in sorted(points.glob("*.bin"))}


_FINDERS: Dict[str, Callable[[Path], Dict[str, _Source]]] = {
    "official": _find_official,
    "folder": _find_folders,
    "pth": _find_pth,
    "votenet": _find_votenet,
    "mmdet3d": _find_mmdet3d,
}

_LAYOUT_HELP = (
    "expected one of: the official layout 'scans/<scene>/<scene>_vh_clean_2.ply' (+ '_vh_clean_2.labels.ply'); "
    "one folder per scene with 'coord.npy', 'color.npy', 'segment20.npy' (also under train/ and val/); "
    "'<scene>.pth' files (a dict with 'coord'/'color'/'semantic_gt20' or a (coords, colors, labels) tuple); "
    "the VoteNet layout '<scene>_vert.npy' + '<scene>_sem_label.npy'; "
    "or mmdet3d's 'points/<scene>.bin' + 'semantic_mask/<scene>.bin'"
)


def read_axis_alignment(meta_txt: Path) -> np.ndarray:
    """The 4 x 4 ``axisAlignment`` matrix of a ScanNet ``<scene>.txt`` meta file (row-major)."""
    meta_txt = Path(meta_txt)
    if not meta_txt.is_file():
        raise FileNotFoundError(f"axis alignment needs the meta file {str(meta_txt)!r}, it does not exist")
    for line in meta_txt.read_text().splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "axisAlignment":
            try:
                values = [float(v) for v in value.split()]
            except ValueError:
                values = []
            if len(values) != 16:
                raise ValueError(f"{str(meta_txt)!r}: 'axisAlignment' must hold 16 numbers, got {value.strip()!r}")
            return np.asarray(values, dtype=np.float64).reshape(4, 4)
    raise ValueError(f"{str(meta_txt)!r} has no 'axisAlignment = ...' line")


LABEL_MAP_FILE = "scannetv2-labels.combined.tsv"
"""ScanNet's label table (raw category, its ``id``, ``nyu40id``, ...), shipped next to ``scans/``."""


def read_label_map(tsv: Union[str, Path]) -> np.ndarray:
    """int64 lookup ``table[raw_id] = nyu40 id`` from ScanNet's ``scannetv2-labels.combined.tsv`` (columns ``id``
    and ``nyu40id``): the ``label`` of an official ``*_vh_clean_2.labels.ply`` is the raw-category ``id``, not the
    NYU40 id. Ids the table does not list are -1; ``0`` (unannotated) is ``0``. The ``id`` column repeats for
    singular and plural categories; where two rows of one id disagree the later row wins, as in ScanNet's own
    ``read_label_mapping``."""
    tsv = Path(tsv)
    if not tsv.is_file():
        raise FileNotFoundError(f"ScanNet label table {str(tsv)!r} does not exist")
    lines = tsv.read_text().splitlines()
    header = lines[0].split("\t") if lines else []
    if "id" not in header or "nyu40id" not in header:
        raise ValueError(f"{str(tsv)!r}: expected the tab-separated columns 'id' and 'nyu40id' in its header row")
    col_id, col_nyu = header.index("id"), header.index("nyu40id")
    pairs = []
    for number, line in enumerate(lines[1:], start=2):
        cells = line.split("\t")
        if not line.strip():
            continue
        try:
            pairs.append((int(cells[col_id]), int(cells[col_nyu])))
        except (IndexError, ValueError):
            raise ValueError(f"{str(tsv)!r} line {number}: 'id' and 'nyu40id' must be integers") from None
    if not pairs:
        raise ValueError(f"{str(tsv)!r} has no rows")
    table = np.full(max(max(i for i, _ in pairs), 0) + 1, -1, np.int64)
    table[0] = 0
    for raw, nyu in pairs:
        if not 0 <= nyu <= 40:
            raise ValueError(f"{str(tsv)!r}: nyu40id {nyu} of id {raw} is outside 0..40")
        table[raw] = nyu
    return table


def find_label_map(scene_folder: Path) -> Optional[Path]:
    """:data:`LABEL_MAP_FILE` in the scene folder or up to two folders above it (``root/scans/<scene>``: the
    download keeps it in ``root``), or ``None``."""
    for folder in (scene_folder, scene_folder.parent, scene_folder.parent.parent):
        if (folder / LABEL_MAP_FILE).is_file():
            return folder / LABEL_MAP_FILE
    return None


def _check_unknown_labels(unknown: str) -> str:
    if unknown not in ("error", "ignore"):
        raise ValueError(f"unknown_labels must be 'error' or 'ignore', got {unknown!r}")
    return unknown


def raw_to_scannet20(raw_ids: np.ndarray, table: np.ndarray, source: str, unknown: str = "error") -> np.ndarray:
    """ScanNet-20 training ids of official raw-category ids through ``table`` (:func:`read_label_map`). An id the
    table does not list is a ``ValueError`` naming ``source`` (``unknown="error"``) or ignored (``"ignore"``:
    ``IGNORE_INDEX``, as an unannotated vertex)."""
    _check_unknown_labels(unknown)
    raw = np.asarray(raw_ids).astype(np.int64)
    known = (raw >= 0) & (raw < table.shape[0])
    nyu = np.where(known, table[np.clip(raw, 0, table.shape[0] - 1)], -1)
    if unknown == "error" and np.any(nyu < 0):
        missing = sorted(set(raw[nyu < 0].tolist()))
        raise ValueError(
            f"{source}: raw-category ids {missing[:10]} ({int(np.count_nonzero(nyu < 0))} vertices) are not in the "
            f"label table; pass the {LABEL_MAP_FILE} of the ScanNet release these files come from (label_map=..., "
            f"data.label_map in a run config), or unknown_labels='ignore' (data.unknown_labels) to ignore those "
            f"vertices"
        )
    return np.where(nyu < 0, IGNORE_INDEX, NYU40_TO_SCANNET20[np.maximum(nyu, 0)])


def _load_official(
    name: str,
    folder: Path,
    axis_align: bool = False,
    label_table: Callable[[Path], np.ndarray] = read_label_map,
    label_map: Optional[Path] = None,
    unknown: str = "error",
) -> PointCloudScene:
    """One official scan; ``label_table`` reads the label table (:func:`read_label_map`, or a dataset's memo of
    it), ``label_map`` is the table's path (default: :func:`find_label_map`)."""
    ply = folder / f"{name}_vh_clean_2.ply"
    verts = read_ply_vertices(ply, ("x", "y", "z", "red", "green", "blue"))
    if axis_align:
        m = read_axis_alignment(folder / f"{name}.txt")
        verts[:, :3] = verts[:, :3] @ m[:3, :3].T + m[:3, 3]
    labels_ply = folder / f"{name}_vh_clean_2.labels.ply"
    labels = None
    if labels_ply.is_file():
        raw = read_ply_vertices(labels_ply, ("label",))[:, 0]
        if raw.shape[0] != verts.shape[0]:
            raise ValueError(
                f"{str(labels_ply)!r} has {raw.shape[0]} vertices but {str(ply)!r} has "
                f"{verts.shape[0]}; they must describe the same mesh"
            )
        table_file = label_map if label_map is not None else find_label_map(folder)
        if table_file is None:
            raise FileNotFoundError(
                f"{str(labels_ply)!r}: its vertex 'label' is ScanNet's raw-category id, which maps to NYU40 through "
                f"{LABEL_MAP_FILE}; put that file (from the ScanNet release) next to 'scans/' or pass "
                f"label_map=<path to it> (data.label_map in a run config)"
            )
        labels = raw_to_scannet20(raw, label_table(table_file), str(labels_ply), unknown)
    return PointCloudScene(name, verts[:, :3], colors_to_unit(verts[:, 3:6], ply), labels)


def _load_folder(name: str, folder: Path) -> PointCloudScene:
    coord = load_npy(folder / "coord.npy", ncols=3)
    color_path = folder / "color.npy"
    colors = (
        colors_to_unit(load_npy(color_path, ncols=3), color_path)
        if color_path.is_file()
        else np.zeros_like(coord, dtype=np.float32)
    )
    labels = None
    for label_file in ("segment20.npy", "segment.npy"):
        path = folder / label_file
        if path.is_file():
            labels = scannet20_from_train_ids(load_label_npy(path), str(path))
            break
    _check_rows(name, folder, coord, colors, labels)
    return PointCloudScene(name, coord, colors, labels)


def _load_pth(name: str, path: Path) -> PointCloudScene:
    data = load_pth(path)
    if isinstance(data, dict):
        if "coord" not in data:
            raise ValueError(f"{str(path)!r}: a dict .pth needs the key 'coord' (found {sorted(data)})")
        coord = _np(data["coord"])
        colors = (
            colors_to_unit(_np(data["color"]), path) if "color" in data else np.zeros((coord.shape[0], 3), np.float32)
        )
        labels = None
        for key in ("semantic_gt20", "segment20", "segment"):
            if key in data:
                labels = scannet20_from_train_ids(_np(data[key]), f"{path}[{key!r}]")
                break
    elif isinstance(data, (tuple, list)) and len(data) >= 2:
        # SparseConvNet / PointGroup: (coords, colors in [-1, 1], labels with -100 ignore, ...)
        coord, rgb = _np(data[0]), _np(data[1]).astype(np.float32)
        if rgb.size and (rgb.min() < -1.0 - 1e-3 or rgb.max() > 1.0 + 1e-3):
            raise ValueError(f"{str(path)!r}: tuple .pth colours must lie in [-1, 1] (SparseConvNet convention)")
        colors = np.clip((rgb + 1.0) / 2.0, 0.0, 1.0)
        labels = scannet20_from_train_ids(_np(data[2]), f"{path}[2]") if len(data) >= 3 else None
    else:
        raise ValueError(
            f"{str(path)!r}: expected a dict or a (coords, colors[, labels, ...]) tuple, got {type(data).__name__}"
        )
    check_shape(coord, f"{path} coords", ncols=3)
    check_shape(colors, f"{path} colors", ncols=3)
    _check_rows(name, path, coord, colors, labels)
    return PointCloudScene(name, coord, colors, labels)


def _load_votenet(name: str, vert_path: Path) -> PointCloudScene:
    vert = load_npy(vert_path, min_cols=6)
    label_path = vert_path.with_name(f"{name}_sem_label.npy")
    labels = nyu40_to_scannet20(load_npy(label_path), str(label_path)) if label_path.is_file() else None
    colors = colors_to_unit(vert[:, 3:6], vert_path)
    _check_rows(name, vert_path, vert, colors, labels)
    return PointCloudScene(name, vert[:, :3], colors, labels)


def _load_mmdet3d(name: str, bin_path: Path) -> PointCloudScene:
    pts = load_bin(bin_path, np.float32, 6)
    mask_path = bin_path.parent.parent / "semantic_mask" / bin_path.name
    labels = nyu40_to_scannet20(load_bin(mask_path, np.int64), str(mask_path)) if mask_path.is_file() else None
    colors = colors_to_unit(pts[:, 3:6], bin_path)
    _check_rows(name, bin_path, pts, colors, labels)
    return PointCloudScene(name, pts[:, :3], colors, labels)


_LOADERS: Dict[str, Callable[[str, Path], PointCloudScene]] = {
    "official": _load_official,
    "folder": _load_folder,
    "pth": _load_pth,
    "votenet": _load_votenet,
    "mmdet3d": _load_mmdet3d,
}


def _np(x) -> np.ndarray:
    if hasattr(x, "detach"):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def _check_rows(name: str, source: Path, points: np.ndarray, colors: np.ndarray, labels: Optional[np.ndarray]) -> None:
    if colors.shape[0] != points.shape[0]:
        raise ValueError(f"scene {name!r} ({source}): {colors.shape[0]} colours for {points.shape[0]} points")
    if labels is not None and labels.shape[0] != points.shape[0]:
        raise ValueError(f"scene {name!r} ({source}): {labels.shape[0]} labels for {points.shape[0]} points")


class ScanNetDataset(SegmentationDataset):
    """ScanNet v2 scenes with ScanNet-20 labels, from whichever supported layout ``root`` holds.

    Layouts (auto-detected in this order, or forced with ``layout``):

    - ``official``: ``root/scans/<scene>/<scene>_vh_clean_2.ply`` (+ ``_vh_clean_2.labels.ply`` whose
      vertex ``label`` is ScanNet's raw-category id, mapped to NYU40 through ``scannetv2-labels.combined.tsv``
      found next to ``scans/`` or given as ``label_map``; scenes without it are unlabelled). ``root`` may also be
      the ``scans`` folder itself.
    - ``folder``: ``root[/<split>]/<scene>/coord.npy`` (float [N,3]), ``color.npy`` (0-255 [N,3]),
      ``segment20.npy`` (0..19, negative = ignore), as written by Pointcept.
    - ``pth``: ``root[/<split>]/<scene>*.pth``: a dict (``coord``, ``color`` 0-255, ``semantic_gt20``) or a
      SparseConvNet/PointGroup tuple ``(coords, colors in [-1, 1], labels 0..19 / -100, ...)``.
    - ``votenet``: ``root/<scene>_vert.npy`` (x, y, z, r, g, b 0-255) + ``<scene>_sem_label.npy`` (NYU40).
    - ``mmdet3d``: ``root/points/<scene>.bin`` (float32 x,y,z,r,g,b) + ``root/semantic_mask/<scene>.bin``
      (int64 NYU40).

    Args:
        root: dataset folder.
        scenes: scene names to keep (all found scenes when ``None``); unknown names are an error.
        layout: force one of the layouts above instead of auto-detection.
        axis_align: official layout only: apply the ``axisAlignment`` matrix of ``<scene>/<scene>.txt``
            (``p' = R p + t``) so that walls are axis-aligned, as in the VoteNet/mmdet3d exports.
        label_map: official layout only: ScanNet's ``scannetv2-labels.combined.tsv`` (default: found in the scene
            folder or up to two folders above it).
        unknown_labels: official layout only: ``"error"`` (default) when a vertex's raw-category id is not in the
            label table (files of another release than the table), ``"ignore"`` to ignore those vertices.
    """

    class_names = SCANNET20_CLASSES
    LAYOUTS = tuple(_FINDERS)

    def __init__(
        self,
        root: Union[str, Path],
        scenes: Optional[Sequence[str]] = None,
        layout: Optional[str] = None,
        axis_align: bool = False,
        label_map: Optional[Union[str, Path]] = None,
        unknown_labels: str = "error",
    ) -> None:
        self.root = require_dir(Path(root), "ScanNet root")
        self.axis_align = bool(axis_align)
        self.label_map = None if label_map is None else Path(label_map)
        self.unknown_labels = _check_unknown_labels(unknown_labels)
        self._label_tables: Dict[Path, np.ndarray] = {}  # read once per table file, not per scene
        if self.label_map is not None and not self.label_map.is_file():
            raise FileNotFoundError(
                f"label_map {str(self.label_map)!r} does not exist; pass the path of ScanNet's {LABEL_MAP_FILE}"
            )
        if layout is not None and layout not in _FINDERS:
            raise ValueError(f"layout must be one of {self.LAYOUTS} or None, got {layout!r}")
        found: Dict[str, _Source] = {}
        for kind in [layout] if layout else list(_FINDERS):
            found = _FINDERS[kind](self.root)
            if found:
                break
        if not found:
            raise ValueError(f"no ScanNet scenes found under {str(self.root)!r}: {_LAYOUT_HELP}")
        self.layout = next(iter(found.values())).layout
        if self.axis_align and self.layout != "official":
            raise ValueError(
                f"axis_align=True applies to the official layout only; {str(self.root)!r} holds the "
                f"{self.layout!r} layout (the preprocessed layouts are exported aligned already)"
            )
        if self.label_map is not None and self.layout != "official":
            raise ValueError(
                f"label_map applies to the official layout only; {str(self.root)!r} holds the {self.layout!r} "
                f"layout (its labels are NYU40 or 20-class ids already)"
            )
        self.scene_names = names = select_scenes(
            found,
            scenes,
            f"{str(self.root)!r} ({self.layout} layout; {len(found)} scenes found, e.g. {sorted(found)[:3]})",
        )
        self._sources = {n: found[n] for n in names}

    def _source(self, index: int) -> str:
        return str(self._sources[self.scene_names[index]].path)

    def _load(self, index: int) -> PointCloudScene:
        name = self.scene_names[index]
        src = self._sources[name]
        if src.layout == "official":
            return _load_official(
                name, src.path, self.axis_align, self._label_table, self.label_map, self.unknown_labels
            )
        return _LOADERS[src.layout](name, src.path)

    def _label_table(self, path: Path) -> np.ndarray:
        if path not in self._label_tables:
            self._label_tables[path] = read_label_map(path)
        return self._label_tables[path]

    def __repr__(self) -> str:
        return f"ScanNetDataset(root={str(self.root)!r}, layout={self.layout!r}, scenes={len(self)})"
