"""SemanticKITTI LiDAR scans (19 classes) in the original ``sequences/<seq>/{velodyne,labels}`` format.

``velodyne/<frame>.bin`` is float32 ``[N, 4]`` (x, y, z, remission); ``labels/<frame>.label`` is
uint32 ``[N]`` whose low 16 bits are the raw semantic id (the high 16 bits the instance id). Raw ids
map to training ids 1..19 with the official ``learning_map`` (0 = unlabelled); we return
``learning_map[raw] - 1`` (classes 0..18 in the order of :data:`SEMANTICKITTI_CLASSES`) and
``IGNORE_INDEX`` for 0.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from .io import load_bin, require_dir
from .scene import IGNORE_INDEX, PointCloudScene, SegmentationDataset

SEMANTICKITTI_CLASSES: Tuple[str, ...] = (
    "car",
    "bicycle",
    "motorcycle",
    "truck",
    "other-vehicle",
    "person",
    "bicyclist",
    "motorcyclist",
    "road",
    "parking",
    "sidewalk",
    "other-ground",
    "building",
    "fence",
    "vegetation",
    "trunk",
    "terrain",
    "pole",
    "traffic-sign",
)

SEMANTICKITTI_LEARNING_MAP: Dict[int, int] = {
    0: 0,
    1: 0,
    10: 1,
    11: 2,
    13: 5,
    15: 3,
    16: 5,
    18: 4,
    20: 5,
    30: 6,
    31: 7,
    32: 8,
    40: 9,
    44: 10,
    48: 11,
    49: 12,
    50: 13,
    51: 14,
    52: 0,
    60: 9,
    70: 15,
    71: 16,
    72: 17,
    80: 18,
    81: 19,
    99: 0,
    252: 1,
    253: 7,
    254: 6,
    255: 8,
    256: 5,
    257: 5,
    258: 4,
    259: 5,
}
"""The official ``learning_map`` of ``semantic-kitti.yaml`` (raw id → 0..19, 0 = unlabelled)."""


def read_learning_map(config_yaml: Union[str, Path]) -> Dict[int, int]:
    """``learning_map`` from a SemanticKITTI yaml config (needs PyYAML)."""
    import yaml

    path = Path(config_yaml)
    if not path.is_file():
        raise FileNotFoundError(f"SemanticKITTI config {str(path)!r} does not exist")
    with open(path) as fh:
        cfg = yaml.safe_load(fh)
    if not isinstance(cfg, dict) or not isinstance(cfg.get("learning_map"), dict):
        raise ValueError(f"{str(path)!r} has no 'learning_map' mapping (raw id -> training id)")
    lm = {int(k): int(v) for k, v in cfg["learning_map"].items()}
    bad = {k: v for k, v in lm.items() if not 0 <= v <= len(SEMANTICKITTI_CLASSES)}
    if bad:
        raise ValueError(f"{str(path)!r}: learning_map targets must lie in 0..{len(SEMANTICKITTI_CLASSES)}, got {bad}")
    return lm


def _lookup(learning_map: Dict[int, int]) -> np.ndarray:
    table = np.full(max(learning_map) + 1, -1, dtype=np.int64)
    for raw, train in learning_map.items():
        table[raw] = train - 1 if train > 0 else IGNORE_INDEX
    return table


class SemanticKITTIDataset(SegmentationDataset):
    """SemanticKITTI scans as :class:`PointCloudScene` (``colors`` are zeros: the format has no
    colour; :meth:`remission` reads a frame's remission).

    Args:
        root: folder holding ``sequences/<seq>/velodyne`` (and ``labels``), or one sequence folder that
            directly holds ``velodyne/`` (and ``labels/``).
        sequences: sequence ids to use (``"08"`` or ``8``); all found when ``None``. Ignored for a
            single-sequence folder.
        config_yaml: read ``learning_map`` from this official yaml instead of the built-in copy.

    Frames without a ``labels/<frame>.label`` are unlabelled (``labels=None``, e.g. the test set).
    """

    class_names = SEMANTICKITTI_CLASSES

    def __init__(
        self,
        root: Union[str, Path],
        sequences: Optional[Sequence[Union[int, str]]] = None,
        config_yaml: Optional[Union[str, Path]] = None,
    ) -> None:
        self.root = require_dir(Path(root), "SemanticKITTI root")
        self.learning_map = (
            read_learning_map(config_yaml) if config_yaml is not None else dict(SEMANTICKITTI_LEARNING_MAP)
        )
        self._table = _lookup(self.learning_map)
        seq_dirs: List[Tuple[str, Path]] = []
        if (self.root / "velodyne").is_dir():
            seq_dirs.append((self.root.name, self.root))
        else:
            base = self.root / "sequences"
            if not base.is_dir():
                raise ValueError(
                    f"no SemanticKITTI data under {str(self.root)!r}: expected "
                    f"'sequences/<seq>/velodyne/*.bin' (+ 'labels/*.label') or a folder with 'velodyne/'"
                )
            available = sorted(p.name for p in base.iterdir() if (p / "velodyne").is_dir())
            if sequences is None:
                wanted = available
            else:
                if isinstance(sequences, (str, int)):
                    sequences = [sequences]
                wanted = [f"{int(s):02d}" if str(s).isdigit() else str(s) for s in sequences]
                missing = [s for s in wanted if s not in available]
                if missing:
                    raise ValueError(f"sequences {missing} not found under {str(base)!r} (available: {available})")
            seq_dirs = [(s, base / s) for s in wanted]
        self._frames: List[Tuple[Path, Path]] = []
        self.scene_names = []
        for seq, d in seq_dirs:
            for f in sorted((d / "velodyne").glob("*.bin")):
                self._frames.append((f, d / "labels" / f"{f.stem}.label"))
                self.scene_names.append(f"{seq}_{f.stem}")
        if not self._frames:
            raise ValueError(f"no '*.bin' scans in the velodyne folders of {[str(d) for _, d in seq_dirs]}")

    def _source(self, index: int) -> str:
        return str(self._frames[index][0])

    def remission(self, index: int) -> np.ndarray:
        """float32 ``[N]`` remission (the 4th column of the scan) of frame ``index``."""
        return load_bin(self._frames[index][0], np.float32, 4)[:, 3].copy()

    def map_labels(self, raw: np.ndarray, source: str = "labels") -> np.ndarray:
        """uint32 ``.label`` values → class ids 0..18 / ``IGNORE_INDEX`` (``ValueError`` on unknown raw ids)."""
        sem = (np.asarray(raw).astype(np.int64)) & 0xFFFF
        if sem.size == 0:
            return np.zeros(0, dtype=np.int64)
        unknown = (sem >= len(self._table)) | (self._table[np.minimum(sem, len(self._table) - 1)] == -1)
        if unknown.any():
            raise ValueError(
                f"{source}: raw semantic ids {np.unique(sem[unknown])[:10].tolist()} are not in the learning_map"
            )
        return self._table[sem]

    def _load(self, index: int) -> PointCloudScene:
        scan_path, label_path = self._frames[index]
        scan = load_bin(scan_path, np.float32, 4)
        labels = None
        if label_path.is_file():
            raw = load_bin(label_path, np.uint32)
            if raw.shape[0] != scan.shape[0]:
                raise ValueError(
                    f"{str(label_path)!r} has {raw.shape[0]} labels but {str(scan_path)!r} has {scan.shape[0]} points"
                )
            labels = self.map_labels(raw, str(label_path))
        return PointCloudScene(self.scene_names[index], scan[:, :3], np.zeros((len(scan), 3), np.float32), labels)

    def __repr__(self) -> str:
        return f"SemanticKITTIDataset(root={str(self.root)!r}, scans={len(self)})"
