"""nuScenes LiDAR detection frames, from the official tables or from mmdet3d info files, as :class:`LidarFrame`.

Two readers:

- :class:`NuScenesDetection` reads the official folder (``<root>/<version>/*.json`` tables, ``samples/``,
  ``sweeps/``). Its tables come from :class:`NuScenesTables`, a devkit-free reader of the JSON tables, or
  through ``nuscenes-devkit``'s ``NuScenes`` class (``backend="devkit"``; optional, ``pip install
  nuscenes-devkit``). ``backend="auto"`` takes the devkit when it is installed and the folder holds all
  13 tables it loads, and the JSON reader otherwise; both give the same frames.
- :class:`NuScenesInfoDetection` reads an mmdet3d v1.x info file (``{"metainfo", "data_list"}``; ``.pkl``
  or a plain-JSON transcription of it), whose boxes are already in the LiDAR frame.

Frames (official tables). A key frame's LiDAR ``sample_data`` record gives the sensor pose in the ego frame
(``calibrated_sensor``: ``T_cs``) and the ego pose in the global frame (``ego_pose``: ``T_ego``), each a
translation and a quaternion ``(w, x, y, z)``: ``p_global = T_ego T_cs p_lidar``. An annotation
(``sample_annotation``) is a box in the global frame: centre ``translation``, ``size = (w, l, h)``, a
quaternion ``rotation`` whose local x axis is the box length. In the key frame's LiDAR frame::

    centre = (T_ego T_cs)⁻¹ c,   R_box = (R_ego R_cs)ᵀ R(q),   yaw = atan2(R_box[1, 0], R_box[0, 0]),
    box = [centre, l, w, h, yaw, vx, vy],   (vx, vy, ·) = (R_ego R_cs)ᵀ v_global

(the box keeps only its heading: the sensor's small tilt is dropped, as in the devkit's
``Box.orientation.yaw_pitch_roll[0]``). The LIDAR_TOP frame has +x to the vehicle's right and +y forward.

Velocity (not stored in the tables) is the devkit's ``box_velocity``: with ``prev`` / ``next`` the
neighbouring annotations of the same instance (the current one standing in for a missing neighbour),
``v = (c_next - c_prev) / (t_next - t_prev)``, NaN when the annotation has no neighbour or the gap exceeds
1.5 s (3 s with both neighbours). NaN velocities become 0 in the boxes and
``metadata["velocity_valid"]`` marks them.

Sweeps (``nsweeps > 1``): the ``nsweeps - 1`` LiDAR ``sample_data`` records before the key frame (following
``prev``; fewer at the start of a scene, no padding). Each sweep's points, minus those within
``sweep_min_distance`` of the sensor in x and y (the vehicle's roof), are moved into the key frame's LiDAR
frame by ``(T_ego,key T_cs,key)⁻¹ T_ego,sweep T_cs,sweep`` and get ``time_lag = t_key - t_sweep`` (seconds,
>= 0); the key frame's own points come first, unchanged, with ``time_lag = 0``. Point features are
``(x, y, z, intensity, time_lag)`` (the ring index is dropped).

Classes: the annotation's category maps to the 10 detection classes through
:data:`~.classes.NUSCENES_CATEGORY_TO_CLASS` (the devkit's mapping); other categories are skipped.
Attributes: the first attribute name of each box (``""`` none) when ``attribute.json`` exists; the raw
tokens are always in ``metadata["attribute_tokens"]``.
"""

from __future__ import annotations

import importlib.util
import json
import pickle
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from ..io import load_bin, require_dir
from .classes import NUSCENES_CATEGORY_TO_CLASS, NUSCENES_CLASSES, check_classes
from .frame import DetectionDataset, LidarFrame, check_min_points
from .poses import invert_pose, make_pose, quaternion_to_matrix, transform_points, yaw_of_rotation

PathLike = Union[str, Path]

NUSCENES_POINT_FEATURES: Tuple[str, ...] = ("x", "y", "z", "intensity", "time_lag")

REQUIRED_TABLES: Tuple[str, ...] = (
    "scene",
    "sample",
    "sample_data",
    "ego_pose",
    "calibrated_sensor",
    "sensor",
    "sample_annotation",
    "instance",
    "category",
)
"""Tables :class:`NuScenesTables` needs."""

OPTIONAL_TABLES: Tuple[str, ...] = ("attribute", "visibility", "log", "map")
"""Tables read when present (the devkit needs them all)."""

MAX_VELOCITY_GAP_S = 1.5


# ------------------------------------------------------------------------------------------------- tables
class NuScenesTables:
    """The official JSON tables of ``<root>/<version>/`` indexed by token, without the devkit.

    ``get(table, token)`` returns a record; :meth:`scene_samples`, :meth:`key_lidar_token`,
    :meth:`annotation_tokens`, :meth:`category_name`, :meth:`attribute_names` and :meth:`box_velocity`
    answer what the readers need. Missing required tables raise ``FileNotFoundError``; unreadable ones
    and dangling tokens ``ValueError`` naming the table.
    """

    def __init__(self, root: PathLike, version: str) -> None:
        self.root = require_dir(Path(root), "nuScenes root")
        self.table_dir = require_dir(self.root / version, f"nuScenes table folder (version {version!r})")
        self.version = version
        self.tables: Dict[str, List[Dict[str, Any]]] = {}
        for name in REQUIRED_TABLES + OPTIONAL_TABLES:
            path = self.table_dir / f"{name}.json"
            if not path.is_file():
                if name in REQUIRED_TABLES:
                    raise FileNotFoundError(
                        f"nuScenes table {str(path)!r} does not exist (needed: {', '.join(REQUIRED_TABLES)})"
                    )
                continue
            self.tables[name] = _read_json_records(path)
        self._index = {name: {rec["token"]: rec for rec in records} for name, records in self.tables.items()}
        self._channel = {
            cs["token"]: self.get("sensor", cs["sensor_token"])["channel"] for cs in self.tables["calibrated_sensor"]
        }
        self._key_data: Dict[Tuple[str, str], str] = {}
        for sd in self.tables["sample_data"]:
            if sd["is_key_frame"]:
                self._key_data[(sd["sample_token"], self._channel[sd["calibrated_sensor_token"]])] = sd["token"]
        self._annotations: Dict[str, List[str]] = {}
        for ann in self.tables["sample_annotation"]:
            self._annotations.setdefault(ann["sample_token"], []).append(ann["token"])

    @property
    def scenes(self) -> List[Dict[str, Any]]:
        """The ``scene`` records in table order."""
        return self.tables["scene"]

    def has_table(self, name: str) -> bool:
        """Whether ``<name>.json`` was read (the optional tables may be absent)."""
        return name in self.tables

    def get(self, table: str, token: str) -> Dict[str, Any]:
        """The record of ``table`` with ``token`` (``ValueError`` naming both when absent)."""
        if table not in self._index:
            raise ValueError(f"nuScenes table {table!r} is not loaded from {str(self.table_dir)!r}")
        try:
            return self._index[table][token]
        except KeyError:
            raise ValueError(
                f"nuScenes table {str(self.table_dir / (table + '.json'))!r} has no record with token {token!r}"
            ) from None

    def scene_samples(self, scene: Dict[str, Any]) -> List[str]:
        """Sample tokens of ``scene`` in time order (``first_sample_token`` then ``next``)."""
        tokens, token = [], scene["first_sample_token"]
        while token:
            tokens.append(token)
            token = self.get("sample", token)["next"]
            if len(tokens) > len(self.tables["sample"]):
                raise ValueError(f"the sample chain of scene {scene.get('name')!r} loops")
        return tokens

    def key_lidar_token(self, sample_token: str, channel: str) -> str:
        """The key-frame ``sample_data`` token of ``channel`` in sample ``sample_token``."""
        try:
            return self._key_data[(sample_token, channel)]
        except KeyError:
            raise ValueError(
                f"sample {sample_token!r} has no key-frame {channel} record in "
                f"{str(self.table_dir / 'sample_data.json')!r}"
            ) from None

    def annotation_tokens(self, sample_token: str) -> List[str]:
        """Tokens of the sample's annotations, in table order."""
        return self._annotations.get(sample_token, [])

    def category_name(self, annotation: Dict[str, Any]) -> str:
        """``annotation → instance → category`` name."""
        instance = self.get("instance", annotation["instance_token"])
        return self.get("category", instance["category_token"])["name"]

    def attribute_names(self, annotation: Dict[str, Any]) -> Optional[List[str]]:
        """The annotation's attribute names, or ``None`` without an ``attribute`` table."""
        if "attribute" not in self.tables:
            return None
        return [self.get("attribute", t)["name"] for t in annotation["attribute_tokens"]]

    def box_velocity(self, annotation_token: str, max_time_diff: float = MAX_VELOCITY_GAP_S) -> np.ndarray:
        """Global velocity ``[3]`` (m/s) of an annotation, the devkit's rule (module docstring); NaN when unknown."""
        current = self.get("sample_annotation", annotation_token)
        has_prev, has_next = bool(current["prev"]), bool(current["next"])
        if not (has_prev or has_next):
            return np.full(3, np.nan)
        first = self.get("sample_annotation", current["prev"]) if has_prev else current
        last = self.get("sample_annotation", current["next"]) if has_next else current
        dt = 1e-6 * (
            self.get("sample", last["sample_token"])["timestamp"]
            - self.get("sample", first["sample_token"])["timestamp"]
        )
        if dt > (2 * max_time_diff if has_prev and has_next else max_time_diff) or dt <= 0:
            return np.full(3, np.nan)
        return (np.asarray(last["translation"], dtype=np.float64) - np.asarray(first["translation"])) / dt


class _DevkitTables:
    """The same questions as :class:`NuScenesTables`, answered by ``nuscenes.NuScenes``."""

    def __init__(self, root: PathLike, version: str) -> None:
        try:
            from nuscenes.nuscenes import NuScenes
        except ImportError as exc:
            raise ImportError(
                f"backend='devkit' needs the nuScenes devkit: pip install nuscenes-devkit ({exc})"
            ) from exc
        self.root = require_dir(Path(root), "nuScenes root")
        self.table_dir = self.root / version
        self.nusc = NuScenes(version=version, dataroot=str(self.root), verbose=False)

    @property
    def scenes(self) -> List[Dict[str, Any]]:
        return self.nusc.scene

    def has_table(self, name: str) -> bool:
        return hasattr(self.nusc, name)

    def get(self, table: str, token: str) -> Dict[str, Any]:
        try:
            return self.nusc.get(table, token)
        except KeyError:
            raise ValueError(f"nuScenes table {table!r} has no record with token {token!r}") from None

    def scene_samples(self, scene: Dict[str, Any]) -> List[str]:
        tokens, token = [], scene["first_sample_token"]
        while token:
            tokens.append(token)
            token = self.get("sample", token)["next"]
        return tokens

    def key_lidar_token(self, sample_token: str, channel: str) -> str:
        data = self.get("sample", sample_token)["data"]
        if channel not in data:
            raise ValueError(f"sample {sample_token!r} has no {channel} record")
        return data[channel]

    def annotation_tokens(self, sample_token: str) -> List[str]:
        return list(self.get("sample", sample_token)["anns"])

    def category_name(self, annotation: Dict[str, Any]) -> str:
        return annotation["category_name"]

    def attribute_names(self, annotation: Dict[str, Any]) -> Optional[List[str]]:
        return [self.get("attribute", t)["name"] for t in annotation["attribute_tokens"]]

    def box_velocity(self, annotation_token: str, max_time_diff: float = MAX_VELOCITY_GAP_S) -> np.ndarray:
        return np.asarray(self.nusc.box_velocity(annotation_token, max_time_diff), dtype=np.float64)


def choose_backend(root: PathLike, version: str, backend: str = "auto") -> str:
    """``"json"`` or ``"devkit"``: ``auto`` picks the devkit when ``<root>/<version>/`` holds every table it
    loads (:data:`REQUIRED_TABLES` + :data:`OPTIONAL_TABLES`) and ``nuscenes.nuscenes`` imports."""
    if backend not in ("auto", "json", "devkit"):
        raise ValueError(f"backend must be 'auto', 'json' or 'devkit', got {backend!r}")
    if backend != "auto":
        return backend
    table_dir = Path(root) / version
    if not all((table_dir / f"{t}.json").is_file() for t in REQUIRED_TABLES + OPTIONAL_TABLES):
        return "json"
    if importlib.util.find_spec("nuscenes") is None:
        return "json"
    try:  # installed but unusable (e.g. installed with --no-deps and a dependency missing): the JSON reader
        importlib.import_module("nuscenes.nuscenes")
    except ImportError:
        return "json"
    return "devkit"


def _read_json_records(path: Path) -> List[Dict[str, Any]]:
    try:
        with open(path) as fh:
            records = json.load(fh)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"nuScenes table {str(path)!r} is not valid JSON ({exc})") from exc
    if not isinstance(records, list) or not all(isinstance(r, dict) and "token" in r for r in records):
        raise ValueError(f"nuScenes table {str(path)!r} must be a JSON list of records with a 'token' field")
    return records


# ------------------------------------------------------------------------------------------------ geometry
def record_pose(record: Dict[str, Any], source: str) -> np.ndarray:
    """``[4, 4]`` pose of a ``calibrated_sensor`` / ``ego_pose`` record (``translation``, ``rotation`` w-x-y-z)."""
    try:
        rotation, translation = record["rotation"], record["translation"]
    except KeyError as exc:
        raise ValueError(f"{source} record {record.get('token')!r} has no {exc} field") from None
    return make_pose(quaternion_to_matrix(rotation, source), translation, source)


def global_boxes_to_lidar(
    translation: np.ndarray, size_wlh: np.ndarray, rotation: np.ndarray, global_to_lidar: np.ndarray
) -> np.ndarray:
    """Global nuScenes boxes → LiDAR boxes ``[M, 7]`` (formula in the module docstring).

    Args: ``translation [M, 3]``, ``size_wlh [M, 3]`` (w, l, h), ``rotation [M, 4]`` quaternions (w, x, y, z),
    ``global_to_lidar [4, 4]``.
    """
    translation = np.asarray(translation, dtype=np.float64).reshape(-1, 3)
    size = np.asarray(size_wlh, dtype=np.float64).reshape(-1, 3)
    rotation = np.asarray(rotation, dtype=np.float64).reshape(-1, 4)
    centre = transform_points(global_to_lidar, translation)
    mats = (
        np.stack([global_to_lidar[:3, :3] @ quaternion_to_matrix(q) for q in rotation])
        if len(rotation)
        else np.zeros((0, 3, 3))
    )
    yaw = yaw_of_rotation(mats)
    return np.concatenate([centre, size[:, [1, 0, 2]], yaw[:, None]], axis=1)


def remove_close(points: np.ndarray, radius: float) -> np.ndarray:
    """Drop the rows with ``|x| < radius`` and ``|y| < radius`` (points on the ego vehicle)."""
    if radius <= 0:
        return points
    close = (np.abs(points[:, 0]) < radius) & (np.abs(points[:, 1]) < radius)
    return points[~close]


def _check_sweep_args(nsweeps: int, missing_sweeps: str, sweep_min_distance: float, min_points: int) -> None:
    if isinstance(nsweeps, bool) or not isinstance(nsweeps, (int, np.integer)) or nsweeps < 1:
        raise ValueError(f"nsweeps must be an int >= 1 (1 = the key frame alone), got {nsweeps!r}")
    if missing_sweeps not in ("error", "skip"):
        raise ValueError(f"missing_sweeps must be 'error' or 'skip', got {missing_sweeps!r}")
    if not np.isfinite(sweep_min_distance) or sweep_min_distance < 0:
        raise ValueError(f"sweep_min_distance must be a finite distance >= 0 (m), got {sweep_min_distance!r}")
    check_min_points(min_points)


def _load_points(path: Path, ncols: int = 5) -> np.ndarray:
    points = load_bin(path, np.float32, ncols)
    if not np.isfinite(points).all():
        raise ValueError(f"{str(path)!r} contains NaN or inf point values")
    return points


def _merge(
    key_points: np.ndarray, sweeps: Iterable[Tuple[np.ndarray, np.ndarray, float]], min_distance: float
) -> np.ndarray:
    """``[N, 5]`` float32 (x, y, z, intensity, time_lag): the key points, then each sweep's ``(points [K, >=4],
    sweep_to_key [4, 4], time_lag)`` with close points removed and moved into the key frame."""
    parts = [np.concatenate([key_points[:, :4], np.zeros((len(key_points), 1), np.float32)], axis=1)]
    for points, sweep_to_key, lag in sweeps:
        points = remove_close(points, min_distance)
        xyz = transform_points(sweep_to_key, points[:, :3])
        parts.append(np.concatenate([xyz, points[:, 3:4], np.full((len(points), 1), lag)], axis=1).astype(np.float32))
    return np.concatenate(parts, axis=0)


# ------------------------------------------------------------------------------------------------- dataset
class NuScenesDetection(DetectionDataset):
    """nuScenes key frames from the official folder as :class:`LidarFrame` (boxes ``[M, 9]`` with velocity).

    Args:
        root: the dataset folder (holding ``<version>/``, ``samples/``, ``sweeps/``).
        version: the table folder name, e.g. ``"v1.0-trainval"`` or ``"v1.0-mini"``.
        scenes: scene names or tokens to read (``None``: every scene of the tables, in table order); the
            official train / val lists are in the devkit's ``nuscenes.utils.splits``.
        classes: detection classes (a subset of :data:`~.classes.NUSCENES_CLASSES`, in label order).
        nsweeps: key frame + ``nsweeps - 1`` earlier sweeps (module docstring).
        channel: the LiDAR channel.
        backend: ``"auto"``, ``"json"`` or ``"devkit"`` (:func:`choose_backend`).
        missing_sweeps: ``"error"`` (``FileNotFoundError``) or ``"skip"`` for sweep files that are absent
            (the sweep window is not extended to make up for them).
        sweep_min_distance: points of a sweep within this distance (m) in x and y are dropped.
        min_points: keep boxes whose annotation has at least this many LiDAR points (0 keeps all).

    Frame ``metadata``: ``sample_token``, ``scene_token``, ``timestamp`` (µs), ``lidar_token``,
    ``lidar_to_ego`` and ``ego_to_global`` (``[4, 4]``), ``annotation_tokens``, ``instance_tokens``,
    ``categories``, ``velocity_valid`` (bool ``[M]``), ``num_radar_points``, ``visibility_tokens``,
    ``attribute_tokens``, ``sweeps`` (the ``sample_data`` tokens merged) and ``missing_sweeps`` (skipped ones).
    """

    def __init__(
        self,
        root: PathLike,
        version: str = "v1.0-trainval",
        scenes: Optional[Sequence[str]] = None,
        classes: Sequence[str] = NUSCENES_CLASSES,
        nsweeps: int = 1,
        channel: str = "LIDAR_TOP",
        backend: str = "auto",
        missing_sweeps: str = "error",
        sweep_min_distance: float = 1.0,
        min_points: int = 0,
    ) -> None:
        self.class_names = check_classes(classes, NUSCENES_CLASSES, "NuScenesDetection")
        _check_sweep_args(nsweeps, missing_sweeps, sweep_min_distance, min_points)
        self.backend = choose_backend(root, version, backend)
        self.tables = NuScenesTables(root, version) if self.backend == "json" else _DevkitTables(root, version)
        self.root = Path(root)
        self.nsweeps, self.channel = int(nsweeps), channel
        self.missing_sweeps, self.sweep_min_distance = missing_sweeps, float(sweep_min_distance)
        self.min_points = int(min_points)
        chosen = self.tables.scenes
        if scenes is not None:
            if isinstance(scenes, str):
                raise TypeError(f"scenes must be a sequence of scene names or tokens, got {scenes!r}")
            by_key = {s["name"]: s for s in chosen}
            by_key.update({s["token"]: s for s in chosen})
            unknown = [s for s in scenes if s not in by_key]
            if unknown:
                raise ValueError(
                    f"scenes {unknown[:5]} are not in {str(Path(root) / version)!r} (it has "
                    f"{len(chosen)} scenes, e.g. {[s['name'] for s in chosen[:3]]})"
                )
            chosen = [by_key[s] for s in scenes]
        self.frame_names = [tok for scene in chosen for tok in self.tables.scene_samples(scene)]

    def _source(self, index: int) -> str:
        return f"sample {self.frame_names[index]} of {str(self.root / self.tables.table_dir.name)!r}"

    def _sweeps(self, key_sd: Dict[str, Any], key_to_global: np.ndarray) -> Tuple[list, List[str], List[str]]:
        global_to_key = invert_pose(key_to_global)
        sweeps, used, missing = [], [], []
        token = key_sd["prev"]
        for _ in range(self.nsweeps - 1):
            if not token:
                break
            sd = self.tables.get("sample_data", token)
            path = self.root / sd["filename"]
            if not path.is_file():
                if self.missing_sweeps == "error":
                    raise FileNotFoundError(
                        f"sweep file {str(path)!r} (sample_data {token}) does not exist; pass "
                        f"missing_sweeps='skip' to leave absent sweeps out"
                    )
                missing.append(token)
            else:
                sweep_to_global = record_pose(
                    self.tables.get("ego_pose", sd["ego_pose_token"]), "ego_pose"
                ) @ record_pose(
                    self.tables.get("calibrated_sensor", sd["calibrated_sensor_token"]), "calibrated_sensor"
                )
                lag = 1e-6 * (key_sd["timestamp"] - sd["timestamp"])
                sweeps.append((_load_points(path), global_to_key @ sweep_to_global, lag))
                used.append(token)
            token = sd["prev"]
        return sweeps, used, missing

    def _load(self, index: int) -> LidarFrame:
        tables = self.tables
        sample = tables.get("sample", self.frame_names[index])
        key_sd = tables.get("sample_data", tables.key_lidar_token(sample["token"], self.channel))
        lidar_to_ego = record_pose(
            tables.get("calibrated_sensor", key_sd["calibrated_sensor_token"]), "calibrated_sensor"
        )
        ego_to_global = record_pose(tables.get("ego_pose", key_sd["ego_pose_token"]), "ego_pose")
        key_to_global = ego_to_global @ lidar_to_ego
        global_to_key = invert_pose(key_to_global)
        key_points = _load_points(self.root / key_sd["filename"])
        sweeps, used, missing = self._sweeps(key_sd, key_to_global)
        points = _merge(key_points, sweeps, self.sweep_min_distance)

        anns, names = [], []
        for token in tables.annotation_tokens(sample["token"]):
            ann = tables.get("sample_annotation", token)
            name = NUSCENES_CATEGORY_TO_CLASS.get(tables.category_name(ann))
            if name in self.class_names and ann["num_lidar_pts"] >= self.min_points:
                anns.append(ann)
                names.append(name)
        where = f"{str(tables.table_dir / 'sample_annotation.json')!r}"
        raw = [a["translation"] + a["size"] + a["rotation"] for a in anns]
        raw_arr = np.asarray(raw, dtype=np.float64).reshape(-1, 10)
        if not np.isfinite(raw_arr).all():
            bad = [anns[i]["token"] for i in np.unique(np.nonzero(~np.isfinite(raw_arr))[0])[:5]]
            raise ValueError(f"{where}: annotations {bad} have non-finite translation / size / rotation")
        if len(raw_arr) and (raw_arr[:, 3:6] <= 0).any():
            bad = [anns[i]["token"] for i in np.unique(np.nonzero(raw_arr[:, 3:6] <= 0)[0])[:5]]
            raise ValueError(f"{where}: annotations {bad} have a size <= 0")
        boxes = global_boxes_to_lidar(raw_arr[:, 0:3], raw_arr[:, 3:6], raw_arr[:, 6:10], global_to_key)
        velocity = np.stack([tables.box_velocity(a["token"]) for a in anns]) if anns else np.zeros((0, 3))
        valid = np.isfinite(velocity).all(axis=1)
        velocity = np.where(valid[:, None], velocity, 0.0) @ global_to_key[:3, :3].T
        attr_names = [tables.attribute_names(a) for a in anns]
        attributes = None if any(n is None for n in attr_names) else [n[0] if n else "" for n in attr_names]
        metadata: Dict[str, Any] = {
            "sample_token": sample["token"],
            "scene_token": sample["scene_token"],
            "timestamp": sample["timestamp"],
            "lidar_token": key_sd["token"],
            "lidar_to_ego": lidar_to_ego,
            "ego_to_global": ego_to_global,
            "annotation_tokens": [a["token"] for a in anns],
            "instance_tokens": [a["instance_token"] for a in anns],
            "categories": [tables.category_name(a) for a in anns],
            "velocity_valid": valid,
            "num_radar_points": np.array([a.get("num_radar_pts", 0) for a in anns], dtype=np.int64),
            "visibility_tokens": [a.get("visibility_token", "") for a in anns],
            "attribute_tokens": [list(a.get("attribute_tokens", [])) for a in anns],
            "sweeps": used,
            "missing_sweeps": missing,
        }
        return LidarFrame(
            name=sample["token"],
            points=points,
            point_features=NUSCENES_POINT_FEATURES,
            boxes=np.concatenate([boxes, velocity[:, :2]], axis=1),
            labels=np.array([self.class_names.index(n) for n in names], dtype=np.int64),
            num_lidar_points=np.array([a["num_lidar_pts"] for a in anns], dtype=np.int64),
            attributes=attributes,
            metadata=metadata,
        )


# -------------------------------------------------------------------------------------------- info files
def load_info_file(path: PathLike, require_categories: bool = True) -> Dict[str, Any]:
    """Read an mmdet3d v1.x info file (``.pkl`` via ``pickle``, anything else as JSON) and check its layout
    (``metainfo.categories`` may be absent without ``require_categories``: mmdet3d's Waymo infos leave it out).

    ``pickle`` runs code from the file: read only info files you trust (or their JSON transcriptions).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"info file {str(path)!r} does not exist")
    try:
        if path.suffix == ".pkl":
            with open(path, "rb") as fh:
                data = pickle.load(fh)
        else:
            with open(path) as fh:
                data = json.load(fh)
    except (
        pickle.UnpicklingError,
        EOFError,
        json.JSONDecodeError,
        UnicodeDecodeError,
        ModuleNotFoundError,
        AttributeError,
    ) as exc:
        raise ValueError(f"info file {str(path)!r} cannot be read ({type(exc).__name__}: {exc})") from exc
    metainfo = data.get("metainfo") if isinstance(data, dict) else None
    if not (
        isinstance(data, dict)
        and isinstance(data.get("data_list"), list)
        and isinstance(metainfo, dict)
        and (isinstance(metainfo.get("categories"), dict) or not require_categories)
    ):
        raise ValueError(
            f"info file {str(path)!r} is not an mmdet3d v1.x info dict "
            "{'metainfo': {'categories': {...}}, 'data_list': [...]}"
        )
    return data


def info_lidar_points(info: Mapping[str, Any], where: str) -> Mapping[str, Any]:
    """The ``lidar_points`` record of an mmdet3d v1.x info entry (``ValueError`` naming ``where`` without one)."""
    lidar = info.get("lidar_points")
    if not isinstance(lidar, Mapping) or "lidar_path" not in lidar:
        raise ValueError(f"{where} has no lidar_points.lidar_path")
    return lidar


def find_point_file(
    lidar_path: str, candidates: Sequence[Path], info_path: Path, must_exist: bool = True
) -> Optional[Path]:
    """An info entry's point file: the first that exists of ``lidar_path`` (when absolute), ``candidates`` (the
    caller's layout) and ``<info folder>/<name>``; else ``None``, or with ``must_exist`` a ``FileNotFoundError``
    listing the places looked at."""
    path = Path(lidar_path)
    tried = ([path] if path.is_absolute() else []) + list(candidates) + [info_path.parent / path.name]
    for candidate in tried:
        if candidate.is_file():
            return candidate
    if must_exist:
        raise FileNotFoundError(
            f"point file {lidar_path!r} of {str(info_path)!r} not found; looked at {[str(c) for c in tried]}"
        )
    return None


class NuScenesInfoDetection(DetectionDataset):
    """Frames of an mmdet3d v1.x nuScenes info file as :class:`LidarFrame` (boxes ``[M, 9]``).

    Each ``data_list`` entry has ``lidar_points`` (``lidar_path``, ``num_pts_feats``), ``timestamp``
    (seconds), optional ``lidar_sweeps`` (each with ``lidar_points.lidar_path``, ``lidar_points.lidar2sensor``
    = key LiDAR → sweep sensor ``[4, 4]``, ``timestamp``; newest first) and ``instances`` with ``bbox_3d``
    = ``[x, y, z, l, w, h, yaw]`` in the LiDAR frame (``z`` the box centre; the same convention as ours),
    ``bbox_label_3d`` (an id of ``metainfo.categories``, -1 = none of them), ``velocity`` (LiDAR frame),
    ``num_lidar_pts`` and ``bbox_3d_isvalid``.

    Point files are looked up, in order, as the path itself (if absolute), ``data_root/path``,
    ``data_root/samples/<channel>/<name>``, ``data_root/sweeps/<channel>/<name>`` and
    ``<info folder>/<name>`` (``data_root`` defaults to the info file's folder).

    Args:
        info_path: the ``.pkl`` or ``.json`` info file.
        data_root: folder the point paths are relative to.
        classes: detection classes (instances of other categories are skipped).
        nsweeps, missing_sweeps, sweep_min_distance, min_points: as in :class:`NuScenesDetection`.
        valid_only: keep only instances with ``bbox_3d_isvalid``.
        channel: the LiDAR channel folder name used in the look-up.
    """

    def __init__(
        self,
        info_path: PathLike,
        data_root: Optional[PathLike] = None,
        classes: Sequence[str] = NUSCENES_CLASSES,
        nsweeps: int = 1,
        missing_sweeps: str = "error",
        sweep_min_distance: float = 1.0,
        min_points: int = 0,
        valid_only: bool = False,
        channel: str = "LIDAR_TOP",
    ) -> None:
        self.class_names = check_classes(classes, NUSCENES_CLASSES, "NuScenesInfoDetection")
        _check_sweep_args(nsweeps, missing_sweeps, sweep_min_distance, min_points)
        self.info_path = Path(info_path)
        data = load_info_file(self.info_path)
        self.infos: List[Dict[str, Any]] = data["data_list"]
        self.id_to_name: Dict[int, str] = {int(v): k for k, v in data["metainfo"]["categories"].items() if int(v) >= 0}
        self.data_root = Path(data_root) if data_root is not None else self.info_path.parent
        self.nsweeps, self.missing_sweeps = int(nsweeps), missing_sweeps
        self.sweep_min_distance, self.min_points = float(sweep_min_distance), int(min_points)
        self.valid_only, self.channel = bool(valid_only), channel
        self.frame_names = [str(info.get("token", info.get("sample_idx", i))) for i, info in enumerate(self.infos)]

    def _source(self, index: int) -> str:
        return f"data_list[{index}] of {str(self.info_path)!r}"

    def _resolve(self, lidar_path: str, must_exist: bool = True) -> Optional[Path]:
        path = Path(lidar_path)
        layout = [
            self.data_root / path,
            self.data_root / "samples" / self.channel / path.name,
            self.data_root / "sweeps" / self.channel / path.name,
        ]
        return find_point_file(lidar_path, layout, self.info_path, must_exist)

    def _load(self, index: int) -> LidarFrame:
        info = self.infos[index]
        where = self._source(index)
        lidar = info_lidar_points(info, where)
        ncols = int(lidar.get("num_pts_feats", 5))
        key_points = _load_points(self._resolve(lidar["lidar_path"]), ncols)
        sweeps, used, missing = [], [], []
        for sweep in info.get("lidar_sweeps", [])[: self.nsweeps - 1]:
            path = self._resolve(sweep["lidar_points"]["lidar_path"], must_exist=self.missing_sweeps == "error")
            if path is None:
                missing.append(sweep["lidar_points"]["lidar_path"])
                continue
            key_to_sweep = np.asarray(sweep["lidar_points"]["lidar2sensor"], dtype=np.float64)
            if key_to_sweep.shape != (4, 4) or not np.isfinite(key_to_sweep).all():
                raise ValueError(f"{where}: a sweep's lidar_points.lidar2sensor must be a finite 4x4 matrix")
            lag = float(info["timestamp"]) - float(sweep["timestamp"])
            sweeps.append((_load_points(path, ncols), invert_pose(key_to_sweep), lag))
            used.append(str(path))
        points = _merge(key_points, sweeps, self.sweep_min_distance)

        kept, names = [], []
        for inst in info.get("instances", []):
            name = self.id_to_name.get(int(inst.get("bbox_label_3d", -1)))
            if name not in self.class_names:
                continue
            if self.valid_only and not inst.get("bbox_3d_isvalid", True):
                continue
            if int(inst.get("num_lidar_pts", 0)) < self.min_points:
                continue
            kept.append(inst)
            names.append(name)
        raw = np.asarray(
            [list(inst["bbox_3d"])[:7] + list(inst.get("velocity", [np.nan, np.nan]))[:2] for inst in kept],
            dtype=np.float64,
        ).reshape(-1, 9)
        if not np.isfinite(raw[:, :7]).all():
            bad = np.unique(np.nonzero(~np.isfinite(raw[:, :7]))[0])[:5].tolist()
            raise ValueError(f"{where}: kept instances {bad} have non-finite bbox_3d values")
        valid = np.isfinite(raw[:, 7:9]).all(axis=1)
        raw[~valid, 7:9] = 0.0
        metadata: Dict[str, Any] = {
            "token": info.get("token"),
            "timestamp": info.get("timestamp"),
            "velocity_valid": valid,
            "lidar_to_ego": np.asarray(lidar.get("lidar2ego", np.eye(4)), dtype=np.float64),
            "ego_to_global": np.asarray(info.get("ego2global", np.eye(4)), dtype=np.float64),
            "bbox_3d_isvalid": np.array([bool(inst.get("bbox_3d_isvalid", True)) for inst in kept]),
            "sweeps": used,
            "missing_sweeps": missing,
        }
        return LidarFrame(
            name=self.frame_names[index],
            points=points,
            point_features=NUSCENES_POINT_FEATURES,
            boxes=raw,
            labels=np.array([self.class_names.index(n) for n in names], dtype=np.int64),
            num_lidar_points=np.array([int(inst.get("num_lidar_pts", -1)) for inst in kept], dtype=np.int64),
            metadata=metadata,
        )


__all__ = [
    "NUSCENES_POINT_FEATURES",
    "REQUIRED_TABLES",
    "OPTIONAL_TABLES",
    "NuScenesTables",
    "choose_backend",
    "record_pose",
    "global_boxes_to_lidar",
    "remove_close",
    "NuScenesDetection",
    "load_info_file",
    "info_lidar_points",
    "find_point_file",
    "NuScenesInfoDetection",
]
