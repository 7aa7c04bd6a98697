"""PandaSet sequences in the raw devkit layout as :class:`LidarFrame` (needs pandas: ``pip install pandas``).

Layout of a sequence folder ``<root>/<seq>/``: ``lidar/NN.pkl.gz`` (a pandas DataFrame, one row per point:
``x, y, z`` world frame, ``i`` intensity 0-255, ``t`` time, ``d`` sensor 0 = 360° Pandar64, 1 = forward
PandarGT), ``lidar/poses.json`` (one LiDAR pose per frame: ``position`` and the quaternion ``heading``
``(w, x, y, z)``), ``lidar/timestamps.json``, ``annotations/cuboids/NN.pkl.gz`` (one row per cuboid) and
optionally ``annotations/semseg/NN.pkl.gz`` (a ``class`` column, one row per point) with
``annotations/semseg/classes.json``. The files are pickles: read only data you trust.

Frames. Points and cuboids are in one world frame per sequence (z up). Frame ``k``'s pose ``(R, t)`` puts a
world point in the LiDAR frame as ``Rᵀ (p - t)``; that frame has +y forward, +x right. We return

    p_out = M Aᵀ (p - t),      M = [[0, 1, 0], [-1, 0, 0], [0, 0, 1]]     (x forward, y left, z up)

with ``A = R`` (``gravity_aligned=False``: the sensor frame) or ``A = R_z(psi)``, ``psi`` the heading of
``R`` (``gravity_aligned=True``, the default: the sensor frame with its ~2° tilt removed, so the upright
world boxes stay upright and contain exactly the points they contain in the world frame). ``M`` is
dropped with ``x_forward=False``.

Cuboids: ``position`` is the centre, ``dimensions.x`` the width, ``dimensions.y`` the length,
``dimensions.z`` the height, and ``yaw`` turns the box's front, ``(-sin yaw, cos yaw, 0)`` in the world
frame (length along world +y at yaw 0). Our box is ``[M Aᵀ (c - t), dimensions.y, dimensions.x,
dimensions.z, atan2(f_y, f_x)]`` with ``f = M Aᵀ (-sin yaw, cos yaw, 0)`` (``= yaw - psi`` when gravity
aligned with x forward). Checked on sequence 002: boxes read this way hold ~2.8× more Car points than with
width and length swapped, and moving cars advance along their front.

Two LiDARs (``sensor``): ``0`` keeps the Pandar64 points (the default, as OpenPCDet), ``1`` the PandarGT
points, ``None`` both. A moving object seen by both sensors is boxed twice (``cuboids.sensor_id`` 0 and 1,
each twin fitted to one sensor's sweep; ``-1`` for the other cuboids); with ``dedupe_twins`` we keep
sensor_id ``-1`` and ``0`` for ``sensor`` 0 / ``None`` and ``-1`` and ``1`` for ``sensor`` 1 (the twin
links themselves are unreliable, so we go by ``sensor_id``).

Classes: :data:`~.classes.PANDASET_LABEL_TO_CLASS` (override per label with ``class_map``); cuboids whose
class is not among ``classes`` are ignored (kept in ``metadata["ignored_labels"]``); a label outside
:data:`~.classes.PANDASET_LABELS` raises ``ValueError``. Attributes: the first of ``attributes.object_motion``
(vehicles), ``attributes.rider_status`` (two-wheelers) and ``attributes.pedestrian_behavior``
(pedestrians) that the cuboid has, ``""`` where none applies. ``point_labels`` are the semseg class ids
(1-42) when present.

Consecutive frames are near-duplicates: split a sequence in time (:func:`split_frames_temporal`), never
by alternating frames.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from ..io import require_dir
from .classes import PANDASET_CLASSES, PANDASET_LABEL_TO_CLASS, PANDASET_LABELS, check_class_map, check_classes
from .frame import DetectionDataset, LidarFrame
from .poses import make_pose, quaternion_to_matrix, rotation_z, yaw_of_rotation

PathLike = Union[str, Path]

PANDASET_POINT_FEATURES: Tuple[str, ...] = ("x", "y", "z", "intensity")

LIDAR_COLUMNS: Tuple[str, ...] = ("x", "y", "z", "i", "d")
CUBOID_COLUMNS: Tuple[str, ...] = (
    "uuid",
    "label",
    "yaw",
    "position.x",
    "position.y",
    "position.z",
    "dimensions.x",
    "dimensions.y",
    "dimensions.z",
    "cuboids.sensor_id",
)

#: y-forward LiDAR axes → x forward, y left: (x, y, z) -> (y, -x, z).
TO_X_FORWARD = np.array([[0.0, 1.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])

#: attribute columns, in the order looked up (each applies to one kind of object, NaN elsewhere).
ATTRIBUTE_COLUMNS: Tuple[str, ...] = (
    "attributes.object_motion",
    "attributes.rider_status",
    "attributes.pedestrian_behavior",
)


def _pandas() -> Any:
    try:
        import pandas
    except ImportError as exc:
        raise ImportError("PandaSet files are pandas DataFrames: pip install pandas") from exc
    return pandas


def read_pickle_frame(path: Path, columns: Sequence[str]) -> Any:
    """``pandas.read_pickle(path)`` checked to be a DataFrame with ``columns`` (errors name the file)."""
    pd = _pandas()
    if not path.is_file():
        raise FileNotFoundError(f"PandaSet file {str(path)!r} does not exist")
    try:
        frame = pd.read_pickle(path)
    except Exception as exc:  # gzip, pickle and pandas raise many types for a damaged file
        raise ValueError(
            f"PandaSet file {str(path)!r} is not a readable pickled DataFrame ({type(exc).__name__}: {exc})"
        ) from exc
    if not isinstance(frame, pd.DataFrame):
        raise ValueError(f"PandaSet file {str(path)!r} holds a {type(frame).__name__}, expected a DataFrame")
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"PandaSet file {str(path)!r} lacks the columns {missing} (has {list(frame.columns)})")
    return frame


def _read_json(path: Path) -> Any:
    if not path.is_file():
        raise FileNotFoundError(f"PandaSet file {str(path)!r} does not exist")
    try:
        with open(path) as fh:
            return json.load(fh)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"PandaSet file {str(path)!r} is not valid JSON ({exc})") from exc


def pose_matrix(pose: Mapping[str, Any], source: str) -> np.ndarray:
    """``[4, 4]`` LiDAR → world pose from a ``poses.json`` entry (``position``, ``heading`` w-x-y-z)."""
    try:
        pos, head = pose["position"], pose["heading"]
        translation = [pos["x"], pos["y"], pos["z"]]
        quaternion = [head["w"], head["x"], head["y"], head["z"]]
    except (KeyError, TypeError) as exc:
        raise ValueError(f"{source}: a pose needs position {{x, y, z}} and heading {{w, x, y, z}} ({exc!r})") from None
    return make_pose(quaternion_to_matrix(quaternion, source), translation, source)


def world_to_frame(pose: np.ndarray, gravity_aligned: bool = True, x_forward: bool = True) -> np.ndarray:
    """``[4, 4]`` world → output frame: ``p -> M Aᵀ (p - t)`` (module docstring)."""
    rot = rotation_z(float(yaw_of_rotation(pose[:3, :3]))) if gravity_aligned else pose[:3, :3]
    lin = (TO_X_FORWARD if x_forward else np.eye(3)) @ rot.T
    out = np.eye(4)
    out[:3, :3] = lin
    out[:3, 3] = -lin @ pose[:3, 3]
    return out


def split_frames_temporal(n: int, val_fraction: float = 0.25, gap: int = 2) -> Tuple[List[int], List[int]]:
    """A temporal split of ``n`` consecutive frames: ``(train, val)`` index lists.

    The last ``round(n * val_fraction)`` frames (at least one) are for validation, the ``gap`` frames
    before them are left out (neighbouring frames are near-duplicates), and the rest, from frame 0, are for
    training. ``n = 30`` gives train 0-19 and val 22-29.
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be a positive number of frames, got {n!r}")
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must lie in (0, 1), got {val_fraction!r}")
    if isinstance(gap, bool) or not isinstance(gap, (int, np.integer)) or gap < 0:
        raise ValueError(f"gap must be an int >= 0, got {gap!r}")
    n_val = max(1, int(round(n * val_fraction)))
    n_train = n - n_val - gap
    if n_train < 1:
        raise ValueError(f"{n} frames leave no training frame with val_fraction={val_fraction} and gap={gap}")
    return list(range(n_train)), list(range(n - n_val, n))


class PandaSetDetection(DetectionDataset):
    """PandaSet frames as :class:`LidarFrame` (boxes ``[M, 7]``; conventions in the module docstring).

    Args:
        root: a sequence folder (holding ``lidar/``) or a folder of sequence folders.
        sequences: sequence folder names to read (``None``: all under ``root``).
        frames: frame indices (positions in each sequence's sorted ``lidar/NN.pkl.gz`` list) to keep, e.g.
            one side of :func:`split_frames_temporal`; ``None``: all.
        sensor: ``0`` (Pandar64), ``1`` (PandarGT) or ``None`` (both).
        classes: detection classes (a subset of :data:`~.classes.PANDASET_CLASSES` or of the class names
            ``class_map`` produces).
        class_map: ``{PandaSet label: class or None}`` overriding :data:`~.classes.PANDASET_LABEL_TO_CLASS`.
        gravity_aligned, x_forward: the output frame (module docstring).
        dedupe_twins: drop the twin boxes fitted to the other sensor.
        with_semseg: attach the semseg ids as ``point_labels`` when the file exists.

    Frame ``metadata``: ``sequence``, ``frame``, ``timestamp`` (when ``timestamps.json`` exists),
    ``pose`` (LiDAR → world ``[4, 4]``), ``world_to_frame`` ``[4, 4]``, ``track_ids`` (uuids),
    ``pandaset_labels``, ``cuboid_sensor_id``, ``stationary``, ``ignored_labels``, ``point_sensor`` (with
    ``sensor=None``) and ``semseg_classes`` (id → name, with semseg).
    """

    def __init__(
        self,
        root: PathLike,
        sequences: Optional[Sequence[str]] = None,
        frames: Optional[Sequence[int]] = None,
        sensor: Optional[int] = 0,
        classes: Sequence[str] = PANDASET_CLASSES,
        class_map: Optional[Mapping[str, Optional[str]]] = None,
        gravity_aligned: bool = True,
        x_forward: bool = True,
        dedupe_twins: bool = True,
        with_semseg: bool = True,
    ) -> None:
        _pandas()
        root = require_dir(Path(root), "PandaSet root")
        if sensor not in (0, 1, None) or isinstance(sensor, bool):
            raise ValueError(f"sensor must be 0 (Pandar64), 1 (PandarGT) or None (both), got {sensor!r}")
        self.sensor = sensor
        self.label_map: Dict[str, Optional[str]] = dict(PANDASET_LABEL_TO_CLASS)
        allowed = list(PANDASET_CLASSES)
        if isinstance(class_map, Mapping):  # class_map may name new classes; they must then be in `classes`
            allowed += sorted({v for v in class_map.values() if isinstance(v, str)} - set(allowed))
        self.class_names = check_classes(classes, allowed, "PandaSetDetection")
        self.label_map.update(check_class_map(class_map, PANDASET_LABELS, self.class_names, "PandaSetDetection"))
        self.gravity_aligned, self.x_forward = bool(gravity_aligned), bool(x_forward)
        self.dedupe_twins, self.with_semseg = bool(dedupe_twins), bool(with_semseg)
        if (root / "lidar").is_dir():
            seq_dirs = [root]
            if sequences is not None and list(sequences) != [root.name]:
                raise ValueError(f"root {str(root)!r} is a single sequence; sequences must be None or [{root.name!r}]")
        else:
            names = (
                sorted(p.name for p in root.iterdir() if (p / "lidar").is_dir())
                if sequences is None
                else [str(s) for s in sequences]
            )
            seq_dirs = [require_dir(root / n / "lidar", "PandaSet sequence lidar folder").parent for n in names]
            if not seq_dirs:
                raise FileNotFoundError(f"no PandaSet sequence (a folder with lidar/) under {str(root)!r}")
        self._items: List[Tuple[Path, str]] = []
        for seq_dir in seq_dirs:
            stems = sorted(
                (p.name[: -len(".pkl.gz")] for p in (seq_dir / "lidar").glob("*.pkl.gz")), key=lambda s: (len(s), s)
            )
            stems = [s for s in stems if re.fullmatch(r"\d+", s)]
            if frames is not None:
                bad = [f for f in frames if not 0 <= int(f) < len(stems)]
                if bad:
                    raise ValueError(f"frames {bad[:5]} out of range for the {len(stems)} frames of {str(seq_dir)!r}")
                stems = [stems[int(f)] for f in frames]
            self._items += [(seq_dir, s) for s in stems]
        if not self._items:
            raise FileNotFoundError(f"no lidar/NN.pkl.gz frames found under {str(root)!r}")
        self.frame_names = [f"{seq.name}/{stem}" for seq, stem in self._items]
        self._poses: Dict[Path, list] = {}
        self._times: Dict[Path, Optional[list]] = {}

    def _source(self, index: int) -> str:
        seq, stem = self._items[index]
        return str(seq / "lidar" / f"{stem}.pkl.gz")

    def _sequence_poses(self, seq: Path) -> list:
        if seq not in self._poses:
            poses = _read_json(seq / "lidar" / "poses.json")
            if not isinstance(poses, list):
                raise ValueError(f"{str(seq / 'lidar' / 'poses.json')!r} must be a JSON list of poses")
            self._poses[seq] = poses
            times_path = seq / "lidar" / "timestamps.json"
            self._times[seq] = _read_json(times_path) if times_path.is_file() else None
        return self._poses[seq]

    def _load(self, index: int) -> LidarFrame:
        seq, stem = self._items[index]
        k = int(stem)
        poses = self._sequence_poses(seq)
        poses_path = seq / "lidar" / "poses.json"
        if k >= len(poses):
            raise ValueError(f"{str(poses_path)!r} has {len(poses)} poses, none for frame {stem}")
        pose = pose_matrix(poses[k], f"{str(poses_path)!r} entry {k}")
        to_frame = world_to_frame(pose, self.gravity_aligned, self.x_forward)

        lidar_path = seq / "lidar" / f"{stem}.pkl.gz"
        lidar = read_pickle_frame(lidar_path, LIDAR_COLUMNS)
        xyzi = lidar[["x", "y", "z", "i"]].to_numpy(dtype=np.float64)
        sensor_ids = lidar["d"].to_numpy()
        if not np.isfinite(xyzi).all():
            raise ValueError(f"{str(lidar_path)!r} contains NaN or inf point values")
        keep_points = np.ones(len(lidar), dtype=bool) if self.sensor is None else sensor_ids == self.sensor
        xyz = xyzi[keep_points, :3] @ to_frame[:3, :3].T + to_frame[:3, 3]
        points = np.concatenate([xyz, xyzi[keep_points, 3:4]], axis=1)

        metadata: Dict[str, Any] = {"sequence": seq.name, "frame": stem, "pose": pose, "world_to_frame": to_frame}
        times = self._times.get(seq)
        if times is not None and k < len(times):
            metadata["timestamp"] = float(times[k])
        if self.sensor is None:
            metadata["point_sensor"] = sensor_ids.astype(np.int64)
        point_labels = None
        semseg_path = seq / "annotations" / "semseg" / f"{stem}.pkl.gz"
        if self.with_semseg and semseg_path.is_file():
            semseg = read_pickle_frame(semseg_path, ("class",))
            if len(semseg) != len(lidar):
                raise ValueError(
                    f"{str(semseg_path)!r} has {len(semseg)} rows but {str(lidar_path)!r} has "
                    f"{len(lidar)} points (one semseg row per point expected)"
                )
            point_labels = semseg["class"].to_numpy().astype(np.int64)[keep_points]
            classes_path = seq / "annotations" / "semseg" / "classes.json"
            if classes_path.is_file():
                metadata["semseg_classes"] = {int(k_): v for k_, v in _read_json(classes_path).items()}

        boxes, labels, attributes = self._cuboids(
            seq / "annotations" / "cuboids" / f"{stem}.pkl.gz", to_frame, metadata
        )
        return LidarFrame(
            name=f"{seq.name}/{stem}",
            points=points,
            point_features=PANDASET_POINT_FEATURES,
            boxes=boxes,
            labels=labels,
            attributes=attributes,
            point_labels=point_labels,
            metadata=metadata,
        )

    def _cuboids(
        self, path: Path, to_frame: np.ndarray, metadata: Dict[str, Any]
    ) -> Tuple[np.ndarray, np.ndarray, List[str]]:
        cub = read_pickle_frame(path, CUBOID_COLUMNS)
        names = [str(v) for v in cub["label"].tolist()]
        unknown = sorted({n for n in names if n not in self.label_map})
        if unknown:
            raise ValueError(f"{str(path)!r}: unknown cuboid labels {unknown}; PandaSet labels are {PANDASET_LABELS}")
        sid = cub["cuboids.sensor_id"].to_numpy().astype(np.int64)
        keep = np.ones(len(cub), dtype=bool)
        if self.dedupe_twins:
            keep = (sid == -1) | (sid == (1 if self.sensor == 1 else 0))
        targets = [self.label_map[n] if self.label_map[n] in self.class_names else None for n in names]
        metadata["ignored_labels"] = [n for n, t, k in zip(names, targets, keep, strict=False) if k and t is None]
        keep &= np.array([t is not None for t in targets], dtype=bool)
        rows = np.nonzero(keep)[0]
        geo = cub[
            ["position.x", "position.y", "position.z", "dimensions.x", "dimensions.y", "dimensions.z", "yaw"]
        ].to_numpy(dtype=np.float64)[rows]
        if not np.isfinite(geo).all():
            bad = rows[np.unique(np.nonzero(~np.isfinite(geo))[0])][:5].tolist()
            raise ValueError(f"{str(path)!r}: cuboid rows {bad} have non-finite position / dimensions / yaw")
        if (geo[:, 3:6] <= 0).any():
            bad = rows[np.unique(np.nonzero(geo[:, 3:6] <= 0)[0])][:5].tolist()
            raise ValueError(f"{str(path)!r}: cuboid rows {bad} have dimensions <= 0")
        centre = geo[:, :3] @ to_frame[:3, :3].T + to_frame[:3, 3]
        front = np.stack([-np.sin(geo[:, 6]), np.cos(geo[:, 6]), np.zeros(len(geo))], axis=1) @ to_frame[:3, :3].T
        yaw = np.arctan2(front[:, 1], front[:, 0])
        boxes = np.concatenate([centre, geo[:, [4, 3, 5]], yaw[:, None]], axis=1)
        classes = [targets[r] for r in rows]
        columns = [cub[c].to_numpy() for c in ATTRIBUTE_COLUMNS if c in cub.columns]
        attributes = [next((col[r] for col in columns if isinstance(col[r], str)), "") for r in rows]
        metadata.update(
            {
                "track_ids": [str(cub["uuid"].iloc[r]) for r in rows],
                "pandaset_labels": [names[r] for r in rows],
                "cuboid_sensor_id": sid[rows],
                "stationary": cub["stationary"].to_numpy()[rows].astype(bool)
                if "stationary" in cub.columns
                else np.zeros(len(rows), dtype=bool),
            }
        )
        labels = np.array([self.class_names.index(c) for c in classes], dtype=np.int64)
        return boxes, labels, attributes


__all__ = [
    "PANDASET_POINT_FEATURES",
    "TO_X_FORWARD",
    "read_pickle_frame",
    "pose_matrix",
    "world_to_frame",
    "split_frames_temporal",
    "PandaSetDetection",
]
