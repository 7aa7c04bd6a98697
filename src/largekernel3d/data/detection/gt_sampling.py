"""Ground-truth sampling ("copy-paste" of objects between LiDAR frames, as in SECOND and OpenPCDet).

:func:`build_gt_database` cuts the points inside every ground-truth box of a :class:`DetectionDataset`
out of the training frames and stores them, one ``.npy`` per object, with an index:

    out_dir/gt_database.json          the index (format, point features, class names, one record per object)
    out_dir/objects/<frame>_<class>_<box>.npy   float32 [n, C]: the object's points, x, y, z relative to
                                               the box centre (the other columns as in the frame)

The index is written last (and every file through a temporary name that is then renamed), so an
interrupted build leaves no index, and :class:`GTSampler` refuses a folder without one.

:class:`GTSampler` pastes stored objects into a training frame. For each class ``c`` with a group size
``n_c`` it draws ``max(0, n_c - #boxes of class c in the frame)`` objects (``n_c`` when
``limit_whole_scene`` is off) without replacement from the objects of that class (after the
``min_points_per_class`` and difficulty filters), then accepts them one by one in the drawn order: a
candidate is kept when its BEV IoU with every box of the frame and with every candidate accepted before it
is zero. Objects are pasted where they were recorded (their points are
``stored points + box centre``). The frame's own points inside a pasted box (grown by ``remove_margin``)
are removed, so a pasted object does not intersect the scene, and since pasted boxes do not overlap the
frame's boxes in BEV, the frame's boxes keep all their points.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

import numpy as np

from ...boxes import bev_iou, enlarge_boxes, points_in_boxes
from .frame import DetectionDataset, LidarFrame

INDEX_NAME = "gt_database.json"
OBJECTS_DIR = "objects"
DATABASE_FORMAT = "largekernel3d.gt_database"
DATABASE_VERSION = 1
_RECORD_KEYS = ("file", "class", "label", "frame", "frame_index", "box_index", "box", "num_points", "difficulty")


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "frame"


def _atomic_save_npy(path: Path, array: np.ndarray) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        np.save(f, array)
    os.replace(tmp, path)


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def build_gt_database(
    dataset: DetectionDataset,
    out_dir: Union[str, Path],
    classes: Optional[Sequence[str]] = None,
    min_points: int = 5,
    overwrite: bool = False,
    progress: bool = True,
) -> Path:
    """Cut every ground-truth object of ``dataset`` out of its frame and store it (layout in the module
    docstring).

    For frame ``f`` with points ``P [N, C]`` and boxes ``B [M, 7|9]``, object ``j`` holds
    ``{p in P : p inside B_j}`` (:func:`largekernel3d.boxes.points_in_boxes`) with ``x, y, z`` replaced by
    ``p_xyz - centre_j``. Objects of a class outside ``classes`` or with fewer than ``min_points`` points
    are not stored.

    Args:
        dataset: the training frames.
        out_dir: the database folder (created).
        classes: the class names to store (default: all of ``dataset.class_names``).
        min_points: the fewest points an object needs to be stored (>= 1).
        overwrite: replace an existing database in ``out_dir`` (else ``FileExistsError``).
        progress: show a tqdm progress bar over the frames.

    Returns:
        The path of the index file.
    """
    from tqdm import tqdm

    if not isinstance(dataset, DetectionDataset):
        raise TypeError(f"dataset must be a DetectionDataset, got {type(dataset).__name__}")
    if isinstance(min_points, bool) or not isinstance(min_points, (int, np.integer)) or min_points < 1:
        raise ValueError(f"min_points must be an int >= 1, got {min_points!r}")
    names = list(dataset.class_names)
    wanted = list(names if classes is None else classes)
    unknown = [c for c in wanted if c not in names]
    if unknown:
        raise ValueError(f"classes {unknown} are not classes of {type(dataset).__name__} ({', '.join(names)})")
    out_dir = Path(out_dir)
    index_path = out_dir / INDEX_NAME
    if index_path.exists() and not overwrite:
        raise FileExistsError(f"{index_path} exists; pass overwrite=True to rebuild the database")
    objects_dir = out_dir / OBJECTS_DIR
    objects_dir.mkdir(parents=True, exist_ok=True)
    if overwrite:
        for old in objects_dir.glob("*.npy"):
            old.unlink()
    wanted_ids = {names.index(c) for c in wanted}

    records: List[Dict[str, Any]] = []
    point_features: Optional[tuple] = None
    box_dims: Optional[int] = None
    for i in tqdm(range(len(dataset)), desc="gt database", unit="frame", disable=not progress):
        frame = dataset[i]
        if point_features is None:
            point_features, box_dims = frame.point_features, frame.boxes.shape[1]
        elif frame.point_features != point_features or frame.boxes.shape[1] != box_dims:
            raise ValueError(
                f"frame {frame.name!r} has point features {frame.point_features} and boxes of "
                f"{frame.boxes.shape[1]} columns, the first frame {point_features} and {box_dims}; "
                "one database holds one point layout"
            )
        chosen = [j for j in range(frame.num_boxes) if int(frame.labels[j]) in wanted_ids]
        if not chosen:
            continue
        inside = points_in_boxes(frame.xyz(), frame.boxes[chosen, :7])  # [N, len(chosen)]
        for col, j in enumerate(chosen):
            pts = frame.points[inside[:, col]].astype(np.float64)
            if pts.shape[0] < min_points:
                continue
            pts[:, :3] -= frame.boxes[j, :3]
            label = int(frame.labels[j])
            file = f"{OBJECTS_DIR}/{i:06d}_{_safe_name(frame.name)}_{_safe_name(names[label])}_{j}.npy"
            _atomic_save_npy(out_dir / file, pts.astype(np.float32))
            records.append(
                {
                    "file": file,
                    "class": names[label],
                    "label": label,
                    "frame": frame.name,
                    "frame_index": i,
                    "box_index": j,
                    "box": frame.boxes[j].astype(float).tolist(),
                    "num_points": int(pts.shape[0]),
                    "difficulty": -1 if frame.difficulty is None else int(frame.difficulty[j]),
                }
            )
    index = {
        "format": DATABASE_FORMAT,
        "version": DATABASE_VERSION,
        "point_features": list(point_features or ("x", "y", "z")),
        "box_dims": int(box_dims or 7),
        "class_names": names,
        "classes": wanted,
        "min_points": int(min_points),
        "num_frames": len(dataset),
        "objects": records,
    }
    _atomic_write_text(index_path, json.dumps(index, indent=1))
    return index_path


@dataclasses.dataclass(frozen=True)
class GTDatabase:
    """A database written by :func:`build_gt_database`, read and checked.

    Attributes:
        root: the database folder.
        point_features: the names of the ``C`` point columns of every object.
        box_dims: 7 or 9 (with velocity).
        class_names: the class names the labels index (the source dataset's).
        objects: one dict per object (keys ``file, class, label, frame, frame_index, box_index, box,
            num_points, difficulty``).
    """

    root: Path
    point_features: tuple
    box_dims: int
    class_names: tuple
    objects: tuple

    @classmethod
    def load(cls, root: Union[str, Path]) -> "GTDatabase":
        """Read ``root/gt_database.json``; ``FileNotFoundError`` when it is missing, ``ValueError`` when it is
        not a database index of this format."""
        root = Path(root)
        path = root / INDEX_NAME
        if not path.is_file():
            raise FileNotFoundError(
                f"no ground-truth database index at {path}; build one with "
                "largekernel3d.data.detection.gt_sampling.build_gt_database(dataset, out_dir)"
            )
        try:
            index = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ValueError(
                f"{path} is corrupt (not valid JSON: {err}); rebuild it with build_gt_database (overwrite=True)"
            ) from err
        if not isinstance(index, dict) or index.get("format") != DATABASE_FORMAT:
            raise ValueError(f"{path} is not a {DATABASE_FORMAT} index; rebuild it with build_gt_database")
        if index.get("version") != DATABASE_VERSION:
            raise ValueError(
                f"{path} has database version {index.get('version')}, this code reads version "
                f"{DATABASE_VERSION}; rebuild it with build_gt_database (overwrite=True)"
            )
        missing = [k for k in ("point_features", "box_dims", "class_names", "objects") if k not in index]
        if missing:
            raise ValueError(f"{path} is corrupt: the keys {missing} are missing; rebuild it with build_gt_database")
        objects = index["objects"]
        for k, rec in enumerate(objects):
            if not isinstance(rec, dict) or any(key not in rec for key in _RECORD_KEYS):
                raise ValueError(f"{path} is corrupt: object record {k} lacks some of the keys {_RECORD_KEYS}")
            if len(rec["box"]) != index["box_dims"] or rec["class"] not in index["class_names"]:
                raise ValueError(
                    f"{path} is corrupt: object record {k} has a box of {len(rec['box'])} values "
                    f"or an unknown class {rec['class']!r}"
                )
        return cls(
            root=root,
            point_features=tuple(index["point_features"]),
            box_dims=int(index["box_dims"]),
            class_names=tuple(index["class_names"]),
            objects=tuple(objects),
        )

    def load_points(self, record: Mapping[str, Any]) -> np.ndarray:
        """The stored points of one object, ``[num_points, C]`` float32 relative to its box centre; a
        missing or malformed file raises ``FileNotFoundError`` / ``ValueError`` naming it."""
        path = self.root / record["file"]
        if not path.is_file():
            raise FileNotFoundError(
                f"ground-truth database object {path} is missing (index {self.root / INDEX_NAME} "
                "names it); rebuild the database with build_gt_database (overwrite=True)"
            )
        try:
            pts = np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError) as err:
            raise ValueError(f"ground-truth database object {path} is corrupt ({err}); rebuild the database") from err
        if pts.shape != (record["num_points"], len(self.point_features)) or pts.dtype != np.float32:
            raise ValueError(
                f"ground-truth database object {path} holds {pts.dtype} {pts.shape}, the index says "
                f"float32 [{record['num_points']}, {len(self.point_features)}]; rebuild the database"
            )
        return pts


class GTSampler:
    """Paste objects of a ground-truth database into frames (rules in the module docstring).

    Args:
        database_dir: a folder written by :func:`build_gt_database`.
        sample_groups: ``{class name: n}``; each frame is filled up to ``n`` boxes of that class (OpenPCDet's
            ``SAMPLE_GROUPS``, e.g. ``{"Car": 15, "Pedestrian": 10}``).
        min_points_per_class: ``{class name: k}``: only objects with at least ``k`` points are pasted.
        exclude_difficulty: difficulty values never pasted (e.g. ``[-1]`` for KITTI objects outside the
            easy / moderate / hard bands).
        class_names: the class names of the frames the sampler pastes into (their label ids); default the
            database's own.
        remove_margin: growth of the pasted boxes' sizes (metres, see
            :func:`largekernel3d.boxes.enlarge_boxes`) when removing the frame's points inside them.
        limit_whole_scene: ``True`` fills each frame up to ``n`` boxes of a class (draws ``n`` minus the
            frame's own boxes of that class); ``False`` draws ``n`` candidates whatever the frame holds
            (OpenPCDet's ``LIMIT_WHOLE_SCENE``).

    ``sampler(frame, rng)`` returns a new frame (a :data:`FrameTransform`, so it can lead a pipeline of
    :mod:`largekernel3d.data.detection.augment`). Pasted points come first, then the frame's remaining points;
    pasted boxes follow the frame's boxes. Pasted boxes get the database's difficulty and point count where the
    frame has those fields, attribute ``""``, and point label ``-1`` where the frame has point labels.
    """

    def __init__(
        self,
        database_dir: Union[str, Path],
        sample_groups: Mapping[str, int],
        min_points_per_class: Optional[Mapping[str, int]] = None,
        exclude_difficulty: Sequence[int] = (),
        class_names: Optional[Sequence[str]] = None,
        remove_margin: float = 0.0,
        limit_whole_scene: bool = True,
    ) -> None:
        self.database = GTDatabase.load(database_dir)
        self.class_names = tuple(class_names) if class_names is not None else self.database.class_names
        if not isinstance(sample_groups, Mapping) or not sample_groups:
            raise ValueError(f"sample_groups must be a non-empty dict {{class name: count}}, got {sample_groups!r}")
        min_points_per_class = dict(min_points_per_class or {})
        for name in list(sample_groups) + list(min_points_per_class):
            if name not in self.class_names:
                raise ValueError(
                    f"class {name!r} (sample_groups / min_points_per_class) is not one of the frames' "
                    f"classes {self.class_names}"
                )
        for name, n in sample_groups.items():
            if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
                raise ValueError(f"sample_groups[{name!r}] must be an int >= 0, got {n!r}")
        if not np.isfinite(remove_margin) or remove_margin < 0:
            raise ValueError(f"remove_margin must be >= 0 metres, got {remove_margin}")
        excluded = {int(d) for d in exclude_difficulty}
        self.sample_groups = {name: int(n) for name, n in sample_groups.items()}
        self.remove_margin = float(remove_margin)
        self.limit_whole_scene = bool(limit_whole_scene)
        self.pools: Dict[str, List[Mapping[str, Any]]] = {}
        for name in self.sample_groups:
            least = int(min_points_per_class.get(name, 0))
            self.pools[name] = [
                rec
                for rec in self.database.objects
                if rec["class"] == name and rec["num_points"] >= least and rec["difficulty"] not in excluded
            ]
            if self.sample_groups[name] and not self.pools[name]:
                raise ValueError(
                    f"the database {self.database.root} holds no {name!r} objects passing the filters "
                    f"(min points {least}, excluded difficulties {sorted(excluded)})"
                )

    def __call__(self, frame: LidarFrame, rng: np.random.Generator) -> LidarFrame:
        if not isinstance(frame, LidarFrame):
            raise TypeError(f"frame must be a LidarFrame, got {type(frame).__name__}")
        if not isinstance(rng, np.random.Generator):
            raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
        db = self.database
        if frame.point_features != db.point_features:
            raise ValueError(
                f"frame {frame.name!r} has point features {frame.point_features}, the database "
                f"{db.root} {db.point_features}"
            )
        dims = frame.boxes.shape[1]
        if dims > db.box_dims:
            raise ValueError(
                f"frame {frame.name!r} has boxes with velocity (9 columns), the database {db.root} has none (7)"
            )
        existing = frame.boxes[:, :7].astype(np.float64)
        chosen: List[Mapping[str, Any]] = []
        for name, target in self.sample_groups.items():
            label = self.class_names.index(name)
            want = target - int((frame.labels == label).sum()) if self.limit_whole_scene else target
            pool = self.pools[name]
            if want <= 0 or not pool:
                continue
            picks = rng.choice(len(pool), size=min(want, len(pool)), replace=False)
            candidates = [pool[int(k)] for k in picks]
            boxes = np.array([rec["box"][:7] for rec in candidates], dtype=np.float64)
            with_frame = bev_iou(boxes, existing) if existing.shape[0] else np.zeros((len(candidates), 0))
            among = bev_iou(boxes, boxes)
            accepted: List[int] = []
            for k in range(len(candidates)):
                if (with_frame[k] > 0).any() or any(among[k, a] > 0 for a in accepted):
                    continue
                accepted.append(k)
            chosen += [candidates[k] for k in accepted]
            existing = np.concatenate([existing, boxes[accepted]])
        if not chosen:
            return frame
        return self._paste(frame, chosen)

    def _paste(self, frame: LidarFrame, chosen: List[Mapping[str, Any]]) -> LidarFrame:
        dims = frame.boxes.shape[1]
        boxes = np.array([rec["box"][:dims] for rec in chosen], dtype=np.float64)
        clouds = []
        for rec, box in zip(chosen, boxes):
            pts = self.database.load_points(rec).astype(np.float64)
            pts[:, :3] += box[:3]
            clouds.append(pts.astype(np.float32))
        pasted_points = np.concatenate(clouds)
        remover = boxes[:, :7] if self.remove_margin == 0 else enlarge_boxes(boxes[:, :7], self.remove_margin)
        keep = ~points_in_boxes(frame.xyz(), np.ascontiguousarray(remover, dtype=np.float32)).any(axis=1)
        labels = np.array([self.class_names.index(rec["class"]) for rec in chosen], dtype=np.int64)

        def extend(value: Optional[np.ndarray], new: np.ndarray) -> Optional[np.ndarray]:
            return None if value is None else np.concatenate([value, new])

        point_labels = (
            None
            if frame.point_labels is None
            else np.concatenate([np.full(pasted_points.shape[0], -1, dtype=np.int64), frame.point_labels[keep]])
        )
        return dataclasses.replace(
            frame,
            points=np.concatenate([pasted_points, frame.points[keep]]),
            boxes=np.concatenate([frame.boxes, boxes.astype(np.float32)]),
            labels=np.concatenate([frame.labels, labels]),
            difficulty=extend(frame.difficulty, np.array([rec["difficulty"] for rec in chosen], dtype=np.int64)),
            num_lidar_points=extend(
                frame.num_lidar_points, np.array([rec["num_points"] for rec in chosen], dtype=np.int64)
            ),
            attributes=None if frame.attributes is None else list(frame.attributes) + [""] * len(chosen),
            point_labels=point_labels,
        )

    def __repr__(self) -> str:
        return f"GTSampler(database={str(self.database.root)!r}, sample_groups={self.sample_groups})"


__all__ = ["INDEX_NAME", "build_gt_database", "GTDatabase", "GTSampler"]
