"""nuScenes boxes as plain arrays, the detection classes and attributes, and the LiDAR -> global transform.

Frames. Our networks and :class:`~largekernel3d.data.detection.LidarFrame` use the LiDAR (``LIDAR_TOP``)
frame, boxes ``[x, y, z, dx, dy, dz, yaw, vx, vy]`` (centre, length along the heading, width, height).
The nuScenes devkit evaluates in the *global* frame. A :class:`SensorPose` holds the two rigid transforms
of a sample (the ``calibrated_sensor`` record of ``LIDAR_TOP``: LiDAR -> ego, and the ``ego_pose``
record of that sweep: ego -> global). With ``R_c, t_c`` and ``R_e, t_e``:

    centre_g   = R_e (R_c c + t_c) + t_e
    q_g        = q(R_e R_c) * q_z(yaw)               (the box orientation, a full rotation, as a quaternion)
    yaw_g      = atan2(v_y, v_x),  v = R_e R_c (cos yaw, sin yaw, 0)   (the devkit's ``quaternion_yaw``)
    velocity_g = (R_e R_c (vx, vy, 0))_xy
    size (w, l, h) = (dy, dx, dz)                    (nuScenes' size order)

so that a LiDAR-frame box and its global record describe the same object.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Optional, Sequence, Tuple

import numpy as np

from largekernel3d.data.detection.poses import make_pose, quaternion_to_matrix, transform_points

from .matching import name_list


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
        self.names = name_list(self.names, n, "names")
        self.attributes = name_list(self.attributes, n, "attributes")
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

        return NuScenesBoxes(
            boxes=self.boxes[idx],
            names=pick(self.names),
            scores=None if self.scores is None else self.scores[idx],
            attributes=pick(self.attributes),
            num_points=None if self.num_points is None else self.num_points[idx],
        )


def quaternion_multiply(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product ``a * b`` of quaternions ``[..., 4]`` ``(w, x, y, z)`` (the rotation ``b`` then ``a``)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    aw, ax, ay, az = np.moveaxis(a, -1, 0)
    bw, bx, by, bz = np.moveaxis(b, -1, 0)
    return np.stack(
        [
            aw * bw - ax * bx - ay * by - az * bz,
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
        ],
        axis=-1,
    )


def yaw_quaternion(yaw: np.ndarray) -> np.ndarray:
    """``[N, 4]`` quaternions ``(cos(yaw/2), 0, 0, sin(yaw/2))`` of rotations by ``yaw [N]`` about +z."""
    yaw = np.asarray(yaw, dtype=np.float64).reshape(-1)
    zeros = np.zeros_like(yaw)
    return np.stack([np.cos(yaw / 2), zeros, zeros, np.sin(yaw / 2)], axis=-1)


def matrix_to_quaternion(rotation: np.ndarray) -> np.ndarray:
    """The unit quaternion ``(w, x, y, z)``, ``w >= 0``, of a rotation matrix ``[3, 3]`` (the inverse of
    :func:`~largekernel3d.data.detection.poses.quaternion_to_matrix`), from the largest of
    ``4w² = 1 + tr R``, ``4x² = 1 + R00 - R11 - R22``, ``4y² = 1 - R00 + R11 - R22``, ``4z² = 1 - R00 - R11 + R22``
    and the off-diagonal sums and differences, for accuracy near every rotation."""
    r = np.asarray(rotation, dtype=np.float64)
    squares = np.array(
        [
            1 + r[0, 0] + r[1, 1] + r[2, 2],
            1 + r[0, 0] - r[1, 1] - r[2, 2],
            1 - r[0, 0] + r[1, 1] - r[2, 2],
            1 - r[0, 0] - r[1, 1] + r[2, 2],
        ]
    )
    k = int(np.argmax(squares))
    f = 2.0 * np.sqrt(squares[k])  # 4 * |component k|
    if k == 0:
        q = [f / 4, (r[2, 1] - r[1, 2]) / f, (r[0, 2] - r[2, 0]) / f, (r[1, 0] - r[0, 1]) / f]
    elif k == 1:
        q = [(r[2, 1] - r[1, 2]) / f, f / 4, (r[0, 1] + r[1, 0]) / f, (r[0, 2] + r[2, 0]) / f]
    elif k == 2:
        q = [(r[0, 2] - r[2, 0]) / f, (r[0, 1] + r[1, 0]) / f, f / 4, (r[1, 2] + r[2, 1]) / f]
    else:
        q = [(r[1, 0] - r[0, 1]) / f, (r[0, 2] + r[2, 0]) / f, (r[1, 2] + r[2, 1]) / f, f / 4]
    q = np.asarray(q) / np.linalg.norm(q)
    return -q if q[0] < 0 else q


def _rigid(value: np.ndarray, what: str) -> np.ndarray:
    pose = np.asarray(value, dtype=np.float64)
    if pose.shape != (4, 4) or not np.isfinite(pose).all():
        raise ValueError(f"{what} must be a finite [4, 4] pose, got shape {pose.shape}")
    rot = pose[:3, :3]
    if np.abs(rot.T @ rot - np.eye(3)).max() > 1e-6 or np.linalg.det(rot) < 0:
        raise ValueError(f"{what} must hold a rotation (orthonormal, det +1) in its upper-left 3x3 block")
    return pose


@dataclass(frozen=True)
class SensorPose:
    """The LiDAR -> ego and ego -> global poses of one sample, ``[[R, t], [0, 1]]`` (``p_parent = R p + t``).

    Build it from the devkit's table records (:meth:`from_records`) or from a nuScenes ``LidarFrame``
    (:meth:`from_frame`: its ``metadata["lidar_to_ego"]`` and ``metadata["ego_to_global"]``).
    """

    lidar_to_ego: np.ndarray
    ego_to_global: np.ndarray

    def __post_init__(self) -> None:
        object.__setattr__(self, "lidar_to_ego", _rigid(self.lidar_to_ego, "lidar_to_ego"))
        object.__setattr__(self, "ego_to_global", _rigid(self.ego_to_global, "ego_to_global"))

    @classmethod
    def from_records(cls, calibrated_sensor: Mapping, ego_pose: Mapping) -> "SensorPose":
        """From a ``calibrated_sensor`` record (of ``LIDAR_TOP``) and the ``ego_pose`` record of that sweep,
        each a mapping with ``rotation`` (quaternion ``(w, x, y, z)``) and ``translation``."""
        return cls(
            make_pose(
                quaternion_to_matrix(calibrated_sensor["rotation"], "calibrated_sensor"),
                calibrated_sensor["translation"],
                "calibrated_sensor",
            ),
            make_pose(quaternion_to_matrix(ego_pose["rotation"], "ego_pose"), ego_pose["translation"], "ego_pose"),
        )

    @classmethod
    def from_frame(cls, frame: Any) -> "SensorPose":
        """From a ``LidarFrame`` of the nuScenes readers (``metadata["lidar_to_ego"]``, ``["ego_to_global"]``)."""
        missing = [k for k in ("lidar_to_ego", "ego_to_global") if k not in frame.metadata]
        if missing:
            raise ValueError(
                f"frame {frame.name!r} has no {missing} in its metadata; read it with a nuScenes "
                f"reader or build the SensorPose from the calibrated_sensor / ego_pose records"
            )
        return cls(frame.metadata["lidar_to_ego"], frame.metadata["ego_to_global"])

    @property
    def lidar_to_global(self) -> np.ndarray:
        """``T_ego T_cs`` ``[4, 4]``."""
        return self.ego_to_global @ self.lidar_to_ego

    @property
    def ego_translation(self) -> np.ndarray:
        """The ego position in the global frame ``[3]`` (the centre of the evaluation ranges)."""
        return self.ego_to_global[:3, 3].copy()


def lidar_to_global(boxes: np.ndarray, pose: SensorPose) -> Tuple[np.ndarray, np.ndarray]:
    """LiDAR-frame boxes ``[N, 7 | 9]`` to the global frame (formulas in the module docstring).

    Returns:
        ``(boxes_g [N, 9], rotation_g [N, 4])``: ``[x, y, z, dx, dy, dz, yaw_g, vx_g, vy_g]`` (NaN velocity
        when the input had none) and the full orientation quaternions ``(w, x, y, z)``.
    """
    boxes = np.asarray(boxes, dtype=np.float64)
    if boxes.ndim != 2 or boxes.shape[1] not in (7, 9):
        raise ValueError(f"boxes must have shape [N, 7] or [N, 9], got {boxes.shape}")
    transform = pose.lidar_to_global
    rot = transform[:3, :3]
    n = boxes.shape[0]
    heading = np.stack([np.cos(boxes[:, 6]), np.sin(boxes[:, 6]), np.zeros(n)], axis=1) @ rot.T
    out = np.empty((n, 9), dtype=np.float64)
    out[:, :3] = transform_points(transform, boxes[:, :3])
    out[:, 3:6] = boxes[:, 3:6]
    out[:, 6] = np.arctan2(heading[:, 1], heading[:, 0])
    if boxes.shape[1] == 9:
        out[:, 7:9] = (np.concatenate([boxes[:, 7:9], np.zeros((n, 1))], axis=1) @ rot.T)[:, :2]
    else:
        out[:, 7:9] = np.nan
    rotation = quaternion_multiply(matrix_to_quaternion(rot)[None, :], yaw_quaternion(boxes[:, 6]))
    return out, rotation


def boxes_to_global(boxes: NuScenesBoxes, pose: SensorPose) -> NuScenesBoxes:
    """A LiDAR-frame :class:`NuScenesBoxes` in the global frame (names, scores, attributes, points kept)."""
    global_boxes, _ = lidar_to_global(boxes.boxes, pose)
    return NuScenesBoxes(
        boxes=global_boxes,
        names=boxes.names,
        scores=boxes.scores,
        attributes=boxes.attributes,
        num_points=boxes.num_points,
    )


__all__ = [
    "NuScenesBoxes",
    "SensorPose",
    "matrix_to_quaternion",
    "quaternion_multiply",
    "yaw_quaternion",
    "lidar_to_global",
    "boxes_to_global",
]
