"""nuScenes ground truth for :func:`~.nuscenes_metric.evaluate_nuscenes`, in the global frame.

Two sources:

* :func:`tables_ground_truth` reads the annotation records themselves, as the devkit's ``load_gt`` and
  ``add_center_dist`` do: every annotation whose category maps to a detection class
  (:data:`~largekernel3d.data.detection.classes.NUSCENES_CATEGORY_TO_CLASS`), centre ``translation``, size
  ``(w, l, h) -> (l, w, h)``, heading of the rotated x axis, the devkit's ``box_velocity``, ``num_lidar_pts +
  num_radar_pts``, the (single) attribute; the ego position of the sample's key LiDAR sweep; the
  ``static_object.bicycle_rack`` boxes. This is the benchmark's ground truth exactly.
* :func:`frame_ground_truth` takes a ``LidarFrame`` of the nuScenes reader back to the global frame. The
  reader keeps only the heading and the horizontal velocity in the (tilted) LiDAR frame and stores float32,
  so headings differ from the records by up to ~1e-3 rad and velocities by the tilt times the vertical speed
  (a few cm/s): AP is unchanged, AOE / AVE move in the third decimal.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from largekernel3d.data.detection.classes import NUSCENES_CATEGORY_TO_CLASS
from largekernel3d.data.detection.poses import quaternion_to_matrix, yaw_of_rotation

from .nuscenes_boxes import NuScenesBoxes, SensorPose, boxes_to_global

BIKE_RACK = "static_object.bicycle_rack"


@dataclass(frozen=True)
class SampleGroundTruth:
    """One sample's ground truth: ``boxes`` (global :class:`NuScenesBoxes`), ``ego_translation [3]`` and the
    bike racks ``[K, 7]`` (global ``[x, y, z, l, w, h, yaw]``)."""

    boxes: NuScenesBoxes
    ego_translation: np.ndarray
    bike_racks: np.ndarray


def _record_box(annotation: dict) -> list:
    width, length, height = annotation["size"]
    yaw = float(yaw_of_rotation(quaternion_to_matrix(annotation["rotation"], f"annotation {annotation['token']}")))
    return [*annotation["translation"], length, width, height, yaw]


def tables_ground_truth(tables: Any, sample_token: str, channel: str = "LIDAR_TOP") -> SampleGroundTruth:
    """The ground truth of ``sample_token`` from the tables (module docstring).

    Args:
        tables: a :class:`~largekernel3d.data.detection.nuscenes.NuScenesTables` (or the reader's devkit
            wrapper; ``NuScenesDetection(...).tables``).
        sample_token: the sample.
        channel: the LiDAR channel whose ego pose centres the evaluation ranges.
    """
    boxes, names, attributes, points, racks = [], [], [], [], []
    for token in tables.annotation_tokens(sample_token):
        annotation = tables.get("sample_annotation", token)
        category = tables.category_name(annotation)
        if category == BIKE_RACK:
            racks.append(_record_box(annotation))
        name = NUSCENES_CATEGORY_TO_CLASS.get(category)
        if name is None:
            continue
        attr = tables.attribute_names(annotation) or []
        if len(attr) > 1:
            raise ValueError(f"annotation {token} has {len(attr)} attributes; the benchmark allows at most one")
        velocity = np.asarray(tables.box_velocity(token), dtype=np.float64)[:2]
        boxes.append(_record_box(annotation) + velocity.tolist())
        names.append(name)
        attributes.append(attr[0] if attr else "")
        points.append(int(annotation["num_lidar_pts"]) + int(annotation.get("num_radar_pts", 0)))
    sample_data = tables.get("sample_data", tables.key_lidar_token(sample_token, channel))
    ego = np.asarray(tables.get("ego_pose", sample_data["ego_pose_token"])["translation"], dtype=np.float64)
    return SampleGroundTruth(
        boxes=NuScenesBoxes(
            np.asarray(boxes, dtype=np.float64).reshape(-1, 9),
            names,
            attributes=attributes,
            num_points=np.asarray(points, dtype=np.int64),
        ),
        ego_translation=ego,
        bike_racks=np.asarray(racks, dtype=np.float64).reshape(-1, 7),
    )


def frame_ground_truth(frame: Any, class_names: Sequence[str]) -> NuScenesBoxes:
    """The ground truth of a nuScenes ``LidarFrame`` (from :mod:`largekernel3d.data.detection.nuscenes`) in the
    global frame (module docstring for how it differs from :func:`tables_ground_truth`).

    ``names = class_names[labels]``; ``num_points`` = ``num_lidar_points`` + ``metadata["num_radar_points"]``;
    velocities NaN where ``metadata["velocity_valid"]`` is False (the devkit skips them); attributes as read.
    """
    labels = np.asarray(frame.labels)
    if labels.size and labels.max() >= len(class_names):
        raise ValueError(
            f"frame {frame.name!r} has labels up to {int(labels.max())} but {len(class_names)} class names were given"
        )
    boxes = np.asarray(frame.boxes, dtype=np.float64)
    if boxes.shape[1] == 9 and "velocity_valid" in frame.metadata:
        boxes = boxes.copy()
        boxes[~np.asarray(frame.metadata["velocity_valid"], dtype=bool), 7:9] = np.nan
    points = None
    if frame.num_lidar_points is not None:
        points = np.asarray(frame.num_lidar_points, dtype=np.int64) + np.asarray(
            frame.metadata.get("num_radar_points", 0), dtype=np.int64
        )
    local = NuScenesBoxes(
        boxes=boxes, names=[class_names[i] for i in labels], attributes=frame.attributes, num_points=points
    )
    return boxes_to_global(local, SensorPose.from_frame(frame))


__all__ = ["SampleGroundTruth", "tables_ground_truth", "frame_ground_truth"]
