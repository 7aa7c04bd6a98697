"""The nuScenes detection results file (what the benchmark server and the devkit's ``DetectionEval`` read).

Layout::

    {"meta": {"use_camera": false, "use_lidar": true, "use_radar": false, "use_map": false,
              "use_external": false},
     "results": {sample_token: [{"sample_token": ..., "translation": [x, y, z], "size": [w, l, h],
                                 "rotation": [w, x, y, z], "velocity": [vx, vy], "detection_name": ...,
                                 "detection_score": ..., "attribute_name": ...}, ...]}}

everything in the global frame (:func:`~.nuscenes_boxes.lidar_to_global`): ``size`` is width, length,
height = ``(dy, dx, dz)`` of our boxes; ``rotation`` the full orientation quaternion.

Attributes, when the network predicts none, follow CenterPoint's rule: moving (speed ``> 0.2`` m/s)
vehicles are ``vehicle.moving``, moving bicycles / motorcycles ``cycle.with_rider``; a standing pedestrian
is ``pedestrian.standing``, a standing bus ``vehicle.stopped``; otherwise the class's most frequent
attribute in the nuScenes training set (``vehicle.parked``, ``cycle.without_rider``,
``pedestrian.moving``); barrier and traffic cone have none (``""``).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Dict, Mapping, Optional, Union

import numpy as np

from largekernel3d.data.detection.classes import NUSCENES_ATTRIBUTES, NUSCENES_CLASSES

from .matching import score_order
from .nuscenes_boxes import NuScenesBoxes, SensorPose, lidar_to_global

DEFAULT_META: Dict[str, bool] = {
    "use_camera": False,
    "use_lidar": True,
    "use_radar": False,
    "use_map": False,
    "use_external": False,
}
"""The ``meta`` block of a LiDAR-only submission."""

MOVING_SPEED = 0.2
_VEHICLES = ("car", "construction_vehicle", "bus", "truck", "trailer")
_CYCLES = ("bicycle", "motorcycle")
_MOST_FREQUENT = {
    "car": "vehicle.parked",
    "truck": "vehicle.parked",
    "trailer": "vehicle.parked",
    "construction_vehicle": "vehicle.parked",
    "bus": "vehicle.moving",
    "pedestrian": "pedestrian.moving",
    "bicycle": "cycle.without_rider",
    "motorcycle": "cycle.without_rider",
    "barrier": "",
    "traffic_cone": "",
}


def default_attribute(name: str, speed: float) -> str:
    """The attribute of a ``name`` detection moving at ``speed`` m/s (rule in the module docstring;
    a NaN speed counts as standing)."""
    if name not in _MOST_FREQUENT:
        raise ValueError(f"unknown detection name {name!r}; expected one of {NUSCENES_CLASSES}")
    moving = not math.isnan(speed) and speed > MOVING_SPEED
    if moving and name in _VEHICLES:
        return "vehicle.moving"
    if moving and name in _CYCLES:
        return "cycle.with_rider"
    if not moving and name == "pedestrian":
        return "pedestrian.standing"
    if not moving and name == "bus":
        return "vehicle.stopped"
    return _MOST_FREQUENT[name]


def to_nuscenes_submission(
    detections: Mapping[str, NuScenesBoxes],
    poses: Mapping[str, SensorPose],
    meta: Optional[Mapping[str, bool]] = None,
    path: Optional[Union[str, Path]] = None,
    max_boxes_per_sample: int = 500,
) -> Dict[str, object]:
    """The results dictionary of LiDAR-frame detections (also written as JSON to ``path`` when given).

    Args:
        detections: sample token -> detections in the LiDAR frame with scores and velocities (``[N, 9]``);
            ``attributes`` ``None`` -> :func:`default_attribute`.
        poses: sample token -> :class:`SensorPose` of that sample's ``LIDAR_TOP`` sweep.
        meta: the ``meta`` block (default :data:`DEFAULT_META`).
        path: where to write the JSON.
        max_boxes_per_sample: the benchmark's limit; a sample with more keeps its highest-scored boxes.

    Returns:
        ``{"meta": ..., "results": {token: [box dict, ...]}}`` (layout in the module docstring).
    """
    results: Dict[str, list] = {}
    for token, dets in detections.items():
        if token not in poses:
            raise ValueError(f"poses lacks sample {token!r}")
        if dets.scores is None:
            raise ValueError(f"sample {token!r}: detections need scores")
        if len(dets) and np.isnan(dets.boxes[:, 7:9]).any():
            raise ValueError(f"sample {token!r}: detections need velocities (boxes [N, 9] without NaN)")
        unknown = sorted({n for n in dets.names if n not in NUSCENES_CLASSES})
        if unknown:
            raise ValueError(f"sample {token!r}: unknown detection names {unknown[:5]}; expected {NUSCENES_CLASSES}")
        if dets.attributes is not None:
            bad = sorted({a for a in dets.attributes if a and a not in NUSCENES_ATTRIBUTES})
            if bad:
                raise ValueError(f"sample {token!r}: unknown attributes {bad[:5]}; expected {NUSCENES_ATTRIBUTES}")
        keep = score_order(dets.scores)[:max_boxes_per_sample]
        boxes_g, rotation = lidar_to_global(dets.boxes, poses[token])
        rows = []
        for i in keep:
            b = boxes_g[i]
            attribute = (
                dets.attributes[i]
                if dets.attributes is not None
                else default_attribute(dets.names[i], float(np.hypot(b[7], b[8])))
            )
            rows.append(
                {
                    "sample_token": token,
                    "translation": [float(v) for v in b[:3]],
                    "size": [float(b[4]), float(b[3]), float(b[5])],
                    "rotation": [float(v) for v in rotation[i]],
                    "velocity": [float(b[7]), float(b[8])],
                    "detection_name": dets.names[i],
                    "detection_score": float(dets.scores[i]),
                    "attribute_name": attribute,
                }
            )
        results[token] = rows
    submission = {"meta": dict(meta if meta is not None else DEFAULT_META), "results": results}
    if path is not None:
        Path(path).write_text(json.dumps(submission))
    return submission


__all__ = ["DEFAULT_META", "MOVING_SPEED", "default_attribute", "to_nuscenes_submission"]
