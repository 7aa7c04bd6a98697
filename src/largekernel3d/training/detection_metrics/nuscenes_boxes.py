"""nuScenes boxes as plain arrays, the detection classes and attributes, and the LiDAR -> global transform.

Frames. Our networks and :class:`~largekernel3d.data.detection.LidarFrame` use the LiDAR (``LIDAR_TOP``)
frame, boxes ``[x, y, z, dx, dy, dz, yaw, vx, vy]`` (centre, length along the heading, width, height).
The nuScenes devkit evaluates in the *global* frame. A :class:`SensorPose` holds the two rigid transforms
of a sample (the ``calibrated_sensor`` record of ``LIDAR_TOP``: LiDAR -> ego, and the ``ego_pose``
record of that sweep: ego -> global), quaternions ``(w, x, y, z)``. With ``R_c, t_c`` and ``R_e, t_e``:

    centre_g   = R_e (R_c c + t_c) + t_e
    q_g        = q_e * q_c * q_z(yaw)                (the box orientation, a full rotation)
    yaw_g      = atan2(v_y, v_x),  v = R_e R_c (cos yaw, sin yaw, 0)   (the devkit's ``quaternion_yaw``)
    velocity_g = (R_e R_c (vx, vy, 0))_xy
    size (w, l, h) = (dy, dx, dz)                    (nuScenes' size order)

so that a LiDAR-frame box and its global record describe the same object.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Optional, Sequence, Tuple

import numpy as np

NUSCENES_CLASSES: Tuple[str, ...] = ("car", "truck", "bus", "trailer", "construction_vehicle", "pedestrian",
                                     "motorcycle", "bicycle", "traffic_cone", "barrier")
"""The ten detection classes of the nuScenes detection benchmark, in the devkit's order."""

NUSCENES_ATTRIBUTES: Tuple[str, ...] = ("pedestrian.moving", "pedestrian.sitting_lying_down", "pedestrian.standing",
                                        "cycle.with_rider", "cycle.without_rider", "vehicle.moving", "vehicle.parked",
                                        "vehicle.stopped")
"""The eight attribute names (``""`` is "no attribute")."""


def _as_names(values: Optional[Sequence[str]], count: int, what: str) -> Optional[Tuple[str, ...]]:
    if values is None:
        return None
    if isinstance(values, str):
        raise TypeError(f"{what} must be a sequence of strings, not one string")
    names = tuple(str(v) for v in values)
    if len(names) != count:
        raise ValueError(f"{what} must have {count} entries (one per box), got {len(names)}")
    return names


@dataclass
class NuScenesBoxes:
    """The boxes of one sample (ground truth or predictions), in a frame the function taking them names.

    Attributes:
        boxes: float64 ``[N, 9]`` ``[x, y, z, dx, dy, dz, yaw, vx, vy]``; ``[N, 7]`` is accepted and gets
            NaN velocities (the devkit skips NaN velocity errors; all-NaN gives AVE 1). Velocities may be NaN.
        names: ``N`` detection class names (e.g. ``"car"``).
        scores: float64 ``[N]`` detection scores (predictions only).
        attributes: ``N`` attribute names, ``""`` for none (ground truth: the annotated attribute).
        num_points: int64 ``[N]`` LiDAR + radar points in each ground-truth box; ``-1`` unknown.
    """

    boxes: np.ndarray
    names: Sequence[str]
    scores: Optional[np.ndarray] = None
    attributes: Optional[Sequence[str]] = None
    num_points: Optional[np.ndarray] = None

    def __post_init__(self) -> None:
        boxes = np.asarray(self.boxes, dtype=np.float64)
        if boxes.size == 0:
            boxes = boxes.reshape(0, 9)
        if boxes.ndim != 2 or boxes.shape[1] not in (7, 9):
            raise ValueError(f"boxes must have shape [N, 9] (or [N, 7] without velocity), got {boxes.shape}")
        if boxes.shape[1] == 7:
            boxes = np.concatenate([boxes, np.full((boxes.shape[0], 2), np.nan)], axis=1)
        if not np.isfinite(boxes[:, :7]).all():
            raise ValueError("boxes must have finite x, y, z, dx, dy, dz, yaw (only velocities may be NaN)")
        if (boxes[:, 3:6] <= 0).any():
            raise ValueError("box sizes dx, dy, dz must be positive")
        self.boxes = boxes
        n = boxes.shape[0]
        self.names = _as_names(self.names, n, "names")
        self.attributes = _as_names(self.attributes, n, "attributes")
        if self.scores is not None:
            scores = np.asarray(self.scores, dtype=np.float64).reshape(-1)
            if scores.shape != (n,):
                raise ValueError(f"scores must have shape [{n}], got {scores.shape}")
            if not np.isfinite(scores).all():
                raise ValueError("scores must be finite")
            self.scores = scores
        if self.num_points is not None:
            points = np.asarray(self.num_points).reshape(-1)
            if points.size and not np.issubdtype(points.dtype, np.integer):
                raise TypeError(f"num_points must be integers, got {points.dtype}")
            if points.shape != (n,):
                raise ValueError(f"num_points must have shape [{n}], got {points.shape}")
            self.num_points = points.astype(np.int64)

    def __len__(self) -> int:
        return int(self.boxes.shape[0])

    def subset(self, keep: np.ndarray) -> "NuScenesBoxes":
        """The boxes selected by the bool mask or index array ``keep``."""
        idx = np.arange(len(self))[keep]

        def pick(seq):
            return None if seq is None else tuple(seq[i] for i in idx)

        return NuScenesBoxes(boxes=self.boxes[idx], names=pick(self.names),
                             scores=None if self.scores is None else self.scores[idx],
                             attributes=pick(self.attributes),
                             num_points=None if self.num_points is None else self.num_points[idx])


def _quaternion(q: Sequence[float], what: str) -> np.ndarray:
    q = np.asarray(q, dtype=np.float64).reshape(-1)
    if q.shape != (4,) or not np.isfinite(q).all():
        raise ValueError(f"{what} must be a finite quaternion (w, x, y, z), got {q}")
    norm = float(np.linalg.norm(q))
    if abs(norm - 1.0) > 1e-3:
        raise ValueError(f"{what} must be a unit quaternion (w, x, y, z), its norm is {norm:.6f}")
    return q / norm


def quaternion_to_matrix(q: np.ndarray) -> np.ndarray:
    """The rotation matrix ``[..., 3, 3]`` of unit quaternions ``q [..., 4]`` ``(w, x, y, z)``."""
    q = np.asarray(q, dtype=np.float64)
    w, x, y, z = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    rows = [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
            2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
            2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)]
    return np.stack(rows, axis=-1).reshape(q.shape[:-1] + (3, 3))


def quaternion_multiply(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product ``a * b`` of quaternions ``[..., 4]`` ``(w, x, y, z)`` (the rotation ``b`` then ``a``)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    aw, ax, ay, az = np.moveaxis(a, -1, 0)
    bw, bx, by, bz = np.moveaxis(b, -1, 0)
    return np.stack([aw * bw - ax * bx - ay * by - az * bz,
                     aw * bx + ax * bw + ay * bz - az * by,
                     aw * by - ax * bz + ay * bw + az * bx,
                     aw * bz + ax * by - ay * bx + az * bw], axis=-1)


def yaw_quaternion(yaw: np.ndarray) -> np.ndarray:
    """``[N, 4]`` quaternions ``(cos(yaw/2), 0, 0, sin(yaw/2))`` of rotations by ``yaw [N]`` about +z."""
    yaw = np.asarray(yaw, dtype=np.float64).reshape(-1)
    zeros = np.zeros_like(yaw)
    return np.stack([np.cos(yaw / 2), zeros, zeros, np.sin(yaw / 2)], axis=-1)


@dataclass(frozen=True)
class SensorPose:
    """The LiDAR -> ego and ego -> global transforms of one sample (quaternions ``(w, x, y, z)``, metres).

    Build it from the devkit's table records with :meth:`from_records`.
    """

    lidar_to_ego_rotation: Tuple[float, float, float, float]
    lidar_to_ego_translation: Tuple[float, float, float]
    ego_to_global_rotation: Tuple[float, float, float, float]
    ego_to_global_translation: Tuple[float, float, float]

    def __post_init__(self) -> None:
        for name in ("lidar_to_ego_rotation", "ego_to_global_rotation"):
            object.__setattr__(self, name, tuple(_quaternion(getattr(self, name), name).tolist()))
        for name in ("lidar_to_ego_translation", "ego_to_global_translation"):
            t = np.asarray(getattr(self, name), dtype=np.float64).reshape(-1)
            if t.shape != (3,) or not np.isfinite(t).all():
                raise ValueError(f"{name} must be 3 finite numbers, got {getattr(self, name)}")
            object.__setattr__(self, name, tuple(t.tolist()))

    @classmethod
    def from_records(cls, calibrated_sensor: Mapping, ego_pose: Mapping) -> "SensorPose":
        """From a ``calibrated_sensor`` record (of ``LIDAR_TOP``) and the ``ego_pose`` record of that sweep,
        each a mapping with ``rotation`` and ``translation``."""
        return cls(calibrated_sensor["rotation"], calibrated_sensor["translation"],
                   ego_pose["rotation"], ego_pose["translation"])

    @property
    def lidar_to_global_rotation(self) -> np.ndarray:
        """``q_e * q_c`` ``[4]``."""
        return quaternion_multiply(np.asarray(self.ego_to_global_rotation), np.asarray(self.lidar_to_ego_rotation))

    @property
    def ego_translation(self) -> np.ndarray:
        """The ego position in the global frame ``[3]`` (the centre of the evaluation ranges)."""
        return np.asarray(self.ego_to_global_translation, dtype=np.float64)


def lidar_to_global(boxes: np.ndarray, pose: SensorPose) -> Tuple[np.ndarray, np.ndarray]:
    """LiDAR-frame boxes ``[N, 7 | 9]`` to the global frame (formulas in the module docstring).

    Returns:
        ``(boxes_g [N, 9], rotation_g [N, 4])``: ``[x, y, z, dx, dy, dz, yaw_g, vx_g, vy_g]`` (NaN velocity
        when the input had none) and the full orientation quaternions ``(w, x, y, z)``.
    """
    boxes = np.asarray(boxes, dtype=np.float64)
    if boxes.ndim != 2 or boxes.shape[1] not in (7, 9):
        raise ValueError(f"boxes must have shape [N, 7] or [N, 9], got {boxes.shape}")
    r_c = quaternion_to_matrix(np.asarray(pose.lidar_to_ego_rotation))
    r_e = quaternion_to_matrix(np.asarray(pose.ego_to_global_rotation))
    rot = r_e @ r_c
    centre = (boxes[:, :3] @ r_c.T + np.asarray(pose.lidar_to_ego_translation)) @ r_e.T \
        + np.asarray(pose.ego_to_global_translation)
    heading = np.stack([np.cos(boxes[:, 6]), np.sin(boxes[:, 6]), np.zeros(boxes.shape[0])], axis=1) @ rot.T
    out = np.empty((boxes.shape[0], 9), dtype=np.float64)
    out[:, :3] = centre
    out[:, 3:6] = boxes[:, 3:6]
    out[:, 6] = np.arctan2(heading[:, 1], heading[:, 0])
    if boxes.shape[1] == 9:
        vel = np.concatenate([boxes[:, 7:9], np.zeros((boxes.shape[0], 1))], axis=1) @ rot.T
        out[:, 7:9] = vel[:, :2]
    else:
        out[:, 7:9] = np.nan
    rotation = quaternion_multiply(pose.lidar_to_global_rotation[None, :], yaw_quaternion(boxes[:, 6]))
    return out, rotation


def boxes_to_global(boxes: NuScenesBoxes, pose: SensorPose) -> NuScenesBoxes:
    """A LiDAR-frame :class:`NuScenesBoxes` in the global frame (names, scores, attributes, points kept)."""
    global_boxes, _ = lidar_to_global(boxes.boxes, pose)
    return NuScenesBoxes(boxes=global_boxes, names=boxes.names, scores=boxes.scores, attributes=boxes.attributes,
                         num_points=boxes.num_points)


__all__ = ["NUSCENES_CLASSES", "NUSCENES_ATTRIBUTES", "NuScenesBoxes", "SensorPose", "quaternion_to_matrix",
           "quaternion_multiply", "yaw_quaternion", "lidar_to_global", "boxes_to_global"]
