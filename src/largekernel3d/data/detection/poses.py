"""Rigid poses shared by the detection readers: quaternions, 4×4 transforms and their action on boxes.

A pose ``T = [[R, t], [0, 1]]`` maps a point from a child frame to its parent: ``p_parent = R p_child + t``.
A unit quaternion ``q = (w, x, y, z)`` (real part first, the nuScenes and PandaSet order) has the matrix

    R(q) = [[1 - 2(y² + z²), 2(xy - wz),     2(xz + wy)],
            [2(xy + wz),     1 - 2(x² + z²), 2(yz - wx)],
            [2(xz - wy),     2(yz + wx),     1 - 2(x² + y²)]]

(``q`` is normalised first, so a slightly denormalised record is accepted).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np


def quaternion_to_matrix(q: Sequence[float], source: Any = "quaternion") -> np.ndarray:
    """The rotation matrix ``R(q)`` of a quaternion ``(w, x, y, z)``: float64 ``[3, 3]``.

    ``ValueError`` naming ``source`` when ``q`` does not have 4 finite entries or has norm ~0.
    """
    arr = np.asarray(q, dtype=np.float64).reshape(-1)
    if arr.shape != (4,) or not np.isfinite(arr).all():
        raise ValueError(f"{source}: a rotation quaternion needs 4 finite numbers (w, x, y, z), got {list(q)!r}")
    norm = float(np.linalg.norm(arr))
    if norm < 1e-6:
        raise ValueError(f"{source}: the rotation quaternion {list(q)!r} has norm ~0")
    w, x, y, z = arr / norm
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
            [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
            [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
        ]
    )


def make_pose(rotation: np.ndarray, translation: Sequence[float], source: Any = "pose") -> np.ndarray:
    """``[[R, t], [0, 1]]`` (float64 ``[4, 4]``) from ``R [3, 3]`` and ``t [3]`` (checked finite)."""
    rot = np.asarray(rotation, dtype=np.float64)
    trans = np.asarray(translation, dtype=np.float64).reshape(-1)
    if rot.shape != (3, 3) or trans.shape != (3,) or not (np.isfinite(rot).all() and np.isfinite(trans).all()):
        raise ValueError(
            f"{source}: a pose needs a finite 3x3 rotation and a finite 3-vector translation, "
            f"got shapes {rot.shape} and {trans.shape}"
        )
    pose = np.eye(4)
    pose[:3, :3] = rot
    pose[:3, 3] = trans
    return pose


def invert_pose(pose: np.ndarray) -> np.ndarray:
    """``T⁻¹ = [[Rᵀ, -Rᵀ t], [0, 1]]`` of a rigid ``[4, 4]`` pose."""
    inv = np.eye(4)
    inv[:3, :3] = pose[:3, :3].T
    inv[:3, 3] = -pose[:3, :3].T @ pose[:3, 3]
    return inv


def transform_points(pose: np.ndarray, xyz: np.ndarray) -> np.ndarray:
    """``R p + t`` for every row of ``xyz [N, 3]`` (float64 arithmetic, float64 ``[N, 3]`` out)."""
    xyz = np.asarray(xyz, dtype=np.float64)
    return xyz @ pose[:3, :3].T + pose[:3, 3]


def yaw_of_rotation(rotation: np.ndarray) -> np.ndarray:
    """Heading of the rotated x axis projected on the ground plane: ``atan2(R[1, 0], R[0, 0])``.

    ``rotation`` is ``[3, 3]`` or ``[M, 3, 3]``; returns a float64 scalar array or ``[M]``. This is the
    first Tait-Bryan angle (z-y'-x'') of the devkit's ``Quaternion.yaw_pitch_roll``.
    """
    rotation = np.asarray(rotation, dtype=np.float64)
    return np.arctan2(rotation[..., 1, 0], rotation[..., 0, 0])


def rotation_z(angle: float) -> np.ndarray:
    """``[[cos a, -sin a, 0], [sin a, cos a, 0], [0, 0, 1]]`` (float64 ``[3, 3]``)."""
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


__all__ = ["quaternion_to_matrix", "make_pose", "invert_pose", "transform_points", "yaw_of_rotation", "rotation_z"]
