"""Waymo Open Dataset frames as mmdet3d v1.x converts them (``kitti_format``): an info file and LiDAR ``.bin`` files.

mmdet3d's Waymo converter writes the points of every LiDAR of a frame in the vehicle frame (x forward, y left, z up)
as float32 ``[N, 6]``: ``x, y, z, intensity, elongation, timestamp`` (µs), to ``kitti_format/training/velodyne/
<sample_idx>.bin`` (validation frames too), and an info entry per frame whose ``instances`` hold::

    bbox_3d = [x, y, z_bottom, length, width, height, heading]      (vehicle frame, metres, radians)

with ``z_bottom = center_z - height / 2`` (the converter stores the bottom centre), ``bbox_label_3d`` an index of
its classes ``(Car, Pedestrian, Cyclist)`` (Waymo's vehicle, pedestrian and cyclist; -1 none of them) and
``num_lidar_pts`` counted on the full frame; ``cam_sync_instances`` are the boxes visible in the cameras. This
reader returns them in our box convention (:mod:`.frame`: gravity centre, ``[x, y, z, dx, dy, dz, yaw]``), so ``z =
z_bottom + height / 2``. Points keep ``x, y, z, intensity, elongation``; Waymo's raw intensity is unbounded, and as
mmdet3d's (``norm_intensity``) and OpenPCDet's Waymo pipelines do, ``tanh_intensity`` maps it to ``tanh(i)``.

``pickle`` runs code from the file: read only ``.pkl`` info files you trust (or their JSON transcriptions).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from .classes import check_classes
from .frame import DetectionDataset, LidarFrame, check_min_points
from .nuscenes import find_point_file, info_lidar_points, load_info_file

PathLike = Union[str, Path]

WAYMO_CLASSES: Tuple[str, ...] = ("Car", "Pedestrian", "Cyclist")
"""The classes of mmdet3d's Waymo infos, in the order of their ``bbox_label_3d``."""

WAYMO_POINT_FEATURES: Tuple[str, ...] = ("x", "y", "z", "intensity", "elongation")

_INSTANCE_KEYS = ("instances", "cam_sync_instances")


class WaymoInfoDetection(DetectionDataset):
    """Frames of an mmdet3d v1.x Waymo info file (``waymo_infos_{train,val}.pkl`` or its JSON) as
    :class:`LidarFrame` (boxes ``[M, 7]``, no velocity).

    Point files (``lidar_points.lidar_path``, a file name) are looked up as the path itself (if absolute),
    ``data_root/training/velodyne/<name>``, ``data_root/testing/velodyne/<name>``, ``data_root/<path>`` and
    ``<info folder>/<name>`` (:func:`.nuscenes.find_point_file`; ``data_root`` defaults to the info file's folder,
    i.e. ``kitti_format``).

    Args:
        info_path: the ``.pkl`` or ``.json`` info file.
        data_root: folder the point files are under.
        classes: detection classes (a subset of :data:`WAYMO_CLASSES`; boxes of the others are skipped).
        min_points: keep boxes with at least this many LiDAR points (``num_lidar_pts``; 0 keeps all).
        tanh_intensity: return ``tanh(intensity)`` (default, as mmdet3d and OpenPCDet train on Waymo) or the raw
            value.
        instances: ``"instances"`` (every labelled box) or ``"cam_sync_instances"`` (those seen by a camera).
    """

    def __init__(
        self,
        info_path: PathLike,
        data_root: Optional[PathLike] = None,
        classes: Sequence[str] = WAYMO_CLASSES,
        min_points: int = 0,
        tanh_intensity: bool = True,
        instances: str = "instances",
    ) -> None:
        self.class_names = check_classes(classes, WAYMO_CLASSES, "WaymoInfoDetection")
        check_min_points(min_points)
        if instances not in _INSTANCE_KEYS:
            raise ValueError(f"instances must be one of {_INSTANCE_KEYS}, got {instances!r}")
        self.info_path = Path(info_path)
        data = load_info_file(self.info_path, require_categories=False)
        self.infos: List[Dict[str, Any]] = data["data_list"]
        categories = data["metainfo"].get("categories")
        if isinstance(categories, Mapping):  # an info file that names its ids (-1: ignored classes)
            self.id_to_name: Dict[int, str] = {int(v): str(k) for k, v in categories.items() if int(v) >= 0}
        else:  # mmdet3d's Waymo converter: ids index (Car, Pedestrian, Cyclist)
            self.id_to_name = dict(enumerate(WAYMO_CLASSES))
        self.data_root = Path(data_root) if data_root is not None else self.info_path.parent
        self.min_points, self.tanh_intensity, self.instances = int(min_points), bool(tanh_intensity), instances
        self.frame_names = [
            f"{info.get('context_name', 'frame')}/{info.get('sample_idx', i)}" for i, info in enumerate(self.infos)
        ]

    def _source(self, index: int) -> str:
        return f"data_list[{index}] of {str(self.info_path)!r}"

    def _resolve(self, lidar_path: str) -> Path:
        name = Path(lidar_path).name
        layout = [
            self.data_root / "training" / "velodyne" / name,
            self.data_root / "testing" / "velodyne" / name,
            self.data_root / lidar_path,
        ]
        found = find_point_file(lidar_path, layout, self.info_path)
        assert found is not None  # must_exist: a missing file raised
        return found

    def _points(self, path: Path, ncols: int, where: str) -> np.ndarray:
        raw = np.fromfile(path, dtype="<f4")
        if ncols < 5 or raw.size % ncols:
            raise ValueError(
                f"{where}: {str(path)!r} holds {raw.size} float32 values, not rows of num_pts_feats={ncols} "
                "(mmdet3d's Waymo points have 6: x, y, z, intensity, elongation, timestamp)"
            )
        points = raw.reshape(-1, ncols)[:, :5].astype(np.float32)
        if self.tanh_intensity:
            points[:, 3] = np.tanh(points[:, 3])
        return points

    def _load(self, index: int) -> LidarFrame:
        info = self.infos[index]
        where = self._source(index)
        lidar = info_lidar_points(info, where)
        point_file = self._resolve(str(lidar["lidar_path"]))
        points = self._points(point_file, int(lidar.get("num_pts_feats", 6)), where)
        kept, names = [], []
        for inst in info.get(self.instances, []) or []:
            name = self.id_to_name.get(int(inst.get("bbox_label_3d", -1)))
            if name not in self.class_names or int(inst.get("num_lidar_pts", 0)) < self.min_points:
                continue
            kept.append(inst)
            names.append(name)
        boxes = np.asarray([list(inst["bbox_3d"])[:7] for inst in kept], dtype=np.float64).reshape(-1, 7)
        if not np.isfinite(boxes).all():
            raise ValueError(f"{where}: kept {self.instances} have non-finite bbox_3d values")
        if np.any(boxes[:, 3:6] <= 0):
            raise ValueError(f"{where}: a kept box has a non-positive length, width or height")
        boxes[:, 2] += boxes[:, 5] / 2  # bottom centre -> gravity centre
        metadata: Dict[str, Any] = {
            "timestamp": info.get("timestamp"),
            "context_name": info.get("context_name"),
            "sample_idx": info.get("sample_idx"),
            "ego_to_global": np.asarray(info.get("ego2global", np.eye(4)), dtype=np.float64),
            "point_file": str(point_file),
        }
        return LidarFrame(
            name=self.frame_names[index],
            points=points,
            point_features=WAYMO_POINT_FEATURES,
            boxes=boxes,
            labels=np.array([self.class_names.index(n) for n in names], dtype=np.int64),
            num_lidar_points=np.array([int(inst.get("num_lidar_pts", -1)) for inst in kept], dtype=np.int64),
            metadata=metadata,
        )


__all__ = ["WAYMO_CLASSES", "WAYMO_POINT_FEATURES", "WaymoInfoDetection"]
