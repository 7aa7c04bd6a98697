"""Training augmentations of a :class:`LidarFrame`: global rotation, scaling, flips and translation of the
whole scene, range filters and point shuffling, and the pipeline built from a configuration dict.

Every transform is a callable ``t(frame, rng) -> frame`` taking a :class:`LidarFrame` and a
``numpy.random.Generator`` and returning a new frame (the input is never modified). All randomness comes
from ``rng`` and the number of draws a transform makes never depends on the data it sees (except
:class:`ShufflePoints`, which draws one permutation of the points), so a pipeline is reproducible from its seed.

A global transform is a map ``p -> A p + t`` of the LiDAR frame with ``A`` a rotation about z, a
uniform scaling or a mirror. Boxes follow the points (see :mod:`largekernel3d.data.detection.frame` for the
box layout ``[x, y, z, dx, dy, dz, yaw (, vx, vy)]``):

- centre ``c -> A c + t``; velocity ``v -> A v`` (a velocity is a difference of positions, so the
  translation drops out);
- rotation by ``theta``: ``yaw -> yaw + theta``;
- scaling by ``s``: sizes ``-> s * (dx, dy, dz)``;
- mirror ``y -> -y`` (OpenPCDet's "flip along x"): ``yaw -> -yaw``;
- mirror ``x -> -x`` (OpenPCDet's "flip along y"): ``yaw -> pi - yaw``;

and yaw is wrapped into ``[-pi, pi)`` afterwards. A point inside a box stays inside the transformed box,
so the number of points per box is unchanged.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Union

import numpy as np

from ...boxes import wrap_angle
from .frame import LidarFrame

FrameTransform = Callable[[LidarFrame, np.random.Generator], LidarFrame]
IndexLike = Union[np.ndarray, Sequence[int]]


# ---------------------------------------------------------------------------------------------------------
# selecting points and boxes of a frame


def keep_points(frame: LidarFrame, index: IndexLike) -> LidarFrame:
    """A new frame with the points ``index`` (a bool mask ``[N]`` or integer indices) and the per-point
    labels that go with them; boxes are unchanged."""
    index = _as_index(index, frame.num_points, "index")
    point_labels = None if frame.point_labels is None else frame.point_labels[index]
    return dataclasses.replace(frame, points=frame.points[index], point_labels=point_labels)


def keep_boxes(frame: LidarFrame, index: IndexLike) -> LidarFrame:
    """A new frame with the boxes ``index`` (a bool mask ``[M]`` or integer indices) and every per-box field
    that goes with them (labels, difficulty, point counts, attributes); points are unchanged."""
    index = _as_index(index, frame.num_boxes, "index")

    def pick(value: Optional[np.ndarray]) -> Optional[np.ndarray]:
        return None if value is None else value[index]

    attributes = None if frame.attributes is None else [frame.attributes[int(i)] for i in index]
    return dataclasses.replace(
        frame,
        boxes=frame.boxes[index],
        labels=frame.labels[index],
        difficulty=pick(frame.difficulty),
        num_lidar_points=pick(frame.num_lidar_points),
        attributes=attributes,
    )


def _as_index(index: IndexLike, n: int, name: str) -> np.ndarray:
    index = np.asarray(index)
    if index.dtype == bool:
        if index.shape != (n,):
            raise ValueError(f"{name}: a boolean mask must have shape [{n}], got {index.shape}")
        return np.flatnonzero(index)
    if index.size == 0:
        return np.zeros(0, dtype=np.int64)
    if not np.issubdtype(index.dtype, np.integer) or index.ndim != 1:
        raise TypeError(f"{name} must be a boolean mask [{n}] or a 1-D integer array, got {index.dtype} {index.shape}")
    if index.min() < -n or index.max() >= n:
        raise ValueError(f"{name} has entries outside [-{n}, {n})")
    return index.astype(np.int64)


# ---------------------------------------------------------------------------------------------------------
# deterministic global transforms


def _transformed(
    frame: LidarFrame,
    matrix: np.ndarray,
    offset: np.ndarray,
    yaw_map: Callable[[np.ndarray], np.ndarray],
    size_factor: float = 1.0,
) -> LidarFrame:
    """Apply ``p -> matrix @ p + offset`` (``matrix`` a 3x3 similarity that keeps z vertical) to the points
    and boxes; ``yaw_map`` gives the new headings, ``size_factor`` multiplies the box sizes."""
    points = frame.points.copy()
    xyz = points[:, :3].astype(np.float64) @ matrix.T + offset
    points[:, :3] = xyz
    boxes = frame.boxes.astype(np.float64)
    boxes[:, 0:3] = boxes[:, 0:3] @ matrix.T + offset
    boxes[:, 3:6] *= size_factor
    boxes[:, 6] = wrap_angle(yaw_map(boxes[:, 6]))
    if frame.has_velocity:
        boxes[:, 7:9] = boxes[:, 7:9] @ matrix[:2, :2].T
    return dataclasses.replace(frame, points=points, boxes=boxes.astype(np.float32))


def rotate_frame(frame: LidarFrame, angle: float) -> LidarFrame:
    """Rotate the scene about the LiDAR's z axis by ``angle`` radians (counter-clockwise seen from above):
    ``p -> R_z(angle) p``, ``yaw -> yaw + angle``, ``v -> R_z(angle) v``."""
    c, s = np.cos(angle), np.sin(angle)
    matrix = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    return _transformed(frame, matrix, np.zeros(3), lambda yaw: yaw + angle)


def scale_frame(frame: LidarFrame, factor: float) -> LidarFrame:
    """Scale the scene about the LiDAR's origin: ``p -> s p``, sizes ``-> s * size``, ``v -> s v``."""
    if not factor > 0:
        raise ValueError(f"factor must be > 0, got {factor}")
    return _transformed(frame, np.eye(3) * factor, np.zeros(3), lambda yaw: yaw, size_factor=float(factor))


def flip_frame(frame: LidarFrame, axis: str) -> LidarFrame:
    """Mirror the scene. ``axis="x"`` flips along the x axis, i.e. ``y -> -y``, ``yaw -> -yaw``,
    ``vy -> -vy``; ``axis="y"`` flips along the y axis, i.e. ``x -> -x``, ``yaw -> pi - yaw``, ``vx -> -vx``
    (OpenPCDet's ``random_world_flip`` naming)."""
    if axis == "x":
        return _transformed(frame, np.diag([1.0, -1.0, 1.0]), np.zeros(3), lambda yaw: -yaw)
    if axis == "y":
        return _transformed(frame, np.diag([-1.0, 1.0, 1.0]), np.zeros(3), lambda yaw: np.pi - yaw)
    raise ValueError(f"axis must be 'x' or 'y', got {axis!r}")


def translate_frame(frame: LidarFrame, offset: Sequence[float]) -> LidarFrame:
    """Shift the scene: ``p -> p + offset``, box centres likewise; sizes, yaw and velocity are unchanged."""
    offset = np.asarray(offset, dtype=np.float64)
    if offset.shape != (3,):
        raise ValueError(f"offset must have 3 entries (x, y, z), got shape {offset.shape}")
    return _transformed(frame, np.eye(3), offset, lambda yaw: yaw)


def _check_range(point_cloud_range: Sequence[float], name: str = "point_cloud_range") -> np.ndarray:
    r = np.asarray(point_cloud_range, dtype=np.float64)
    if r.shape != (6,) or not (r[3:] > r[:3]).all():
        raise ValueError(
            f"{name} must be [x_min, y_min, z_min, x_max, y_max, z_max] with max > min, got {list(point_cloud_range)}"
        )
    return r


def points_in_range_mask(points: np.ndarray, point_cloud_range: Sequence[float]) -> np.ndarray:
    """``[N]`` bool: ``min <= p < max`` on x, y and z (half-open, so every kept point has a voxel)."""
    r = _check_range(point_cloud_range)
    xyz = np.asarray(points)[:, :3]
    return ((xyz >= r[:3]) & (xyz < r[3:])).all(axis=1)


def boxes_in_range_mask(boxes: np.ndarray, point_cloud_range: Sequence[float], use_z: bool = False) -> np.ndarray:
    """``[M]`` bool: the box centre lies in the range, ``min <= c < max`` on x and y (and z when ``use_z``),
    so that the centre falls on the BEV grid a centre-based head predicts on."""
    r = _check_range(point_cloud_range)
    axes = 3 if use_z else 2
    c = np.asarray(boxes)[:, :axes]
    return ((c >= r[:axes]) & (c < r[3 : 3 + axes])).all(axis=1)


# ---------------------------------------------------------------------------------------------------------
# random transforms: callables (frame, rng) -> frame


class GlobalRotation:
    """Rotate about z by ``theta ~ U(low, high)`` (see :func:`rotate_frame`); OpenPCDet's
    ``random_world_rotation`` with ``WORLD_ROT_ANGLE: [low, high]``."""

    def __init__(self, angle_range: Sequence[float] = (-np.pi / 4, np.pi / 4)) -> None:
        low, high = _pair(angle_range, "angle_range")
        self.angle_range = (low, high)

    def __call__(self, frame: LidarFrame, rng: np.random.Generator) -> LidarFrame:
        return rotate_frame(frame, float(rng.uniform(*self.angle_range)))

    def __repr__(self) -> str:
        return f"GlobalRotation(angle_range={self.angle_range})"


class GlobalScaling:
    """Scale about the origin by ``s ~ U(low, high)`` (see :func:`scale_frame`); OpenPCDet's
    ``random_world_scaling`` with ``WORLD_SCALE_RANGE: [low, high]``."""

    def __init__(self, scale_range: Sequence[float] = (0.95, 1.05)) -> None:
        low, high = _pair(scale_range, "scale_range")
        if not low > 0:
            raise ValueError(f"scale_range must be positive, got {scale_range}")
        self.scale_range = (low, high)

    def __call__(self, frame: LidarFrame, rng: np.random.Generator) -> LidarFrame:
        return scale_frame(frame, float(rng.uniform(*self.scale_range)))

    def __repr__(self) -> str:
        return f"GlobalScaling(scale_range={self.scale_range})"


class RandomFlip:
    """For each axis in ``axes`` (``"x"``, ``"y"``), flip along it with probability ``p`` (see
    :func:`flip_frame`); one draw per axis whatever the outcome. OpenPCDet's ``random_world_flip`` with
    ``ALONG_AXIS_LIST``."""

    def __init__(self, axes: Sequence[str] = ("x", "y"), p: float = 0.5) -> None:
        axes = tuple(axes)
        if not all(a in ("x", "y") for a in axes) or len(set(axes)) != len(axes):
            raise ValueError(f"axes must be distinct entries of ('x', 'y'), got {axes}")
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"p must be in [0, 1], got {p}")
        self.axes, self.p = axes, float(p)

    def __call__(self, frame: LidarFrame, rng: np.random.Generator) -> LidarFrame:
        for axis in self.axes:
            if rng.random() < self.p:
                frame = flip_frame(frame, axis)
        return frame

    def __repr__(self) -> str:
        return f"RandomFlip(axes={self.axes}, p={self.p})"


class GlobalTranslation:
    """Shift the scene by ``t ~ N(0, diag(std)^2)`` (see :func:`translate_frame`); OpenPCDet's
    ``random_world_translation`` with ``NOISE_TRANSLATE_STD``."""

    def __init__(self, std: Union[float, Sequence[float]] = (0.2, 0.2, 0.2)) -> None:
        std = np.asarray(std, dtype=np.float64)
        std = np.full(3, float(std)) if std.ndim == 0 else std
        if std.shape != (3,) or (std < 0).any():
            raise ValueError(f"std must be a non-negative number or 3 of them (x, y, z), got {std.tolist()}")
        self.std = std

    def __call__(self, frame: LidarFrame, rng: np.random.Generator) -> LidarFrame:
        return translate_frame(frame, rng.normal(0.0, 1.0, 3) * self.std)

    def __repr__(self) -> str:
        return f"GlobalTranslation(std={self.std.tolist()})"


class PointRangeFilter:
    """Keep the points inside ``point_cloud_range`` (see :func:`points_in_range_mask`)."""

    def __init__(self, point_cloud_range: Sequence[float]) -> None:
        self.point_cloud_range = tuple(_check_range(point_cloud_range).tolist())

    def __call__(self, frame: LidarFrame, rng: Optional[np.random.Generator] = None) -> LidarFrame:
        return keep_points(frame, points_in_range_mask(frame.points, self.point_cloud_range))

    def __repr__(self) -> str:
        return f"PointRangeFilter(point_cloud_range={list(self.point_cloud_range)})"


class BoxRangeFilter:
    """Keep the boxes whose centre lies inside ``point_cloud_range`` (see :func:`boxes_in_range_mask`)."""

    def __init__(self, point_cloud_range: Sequence[float], use_z: bool = False) -> None:
        self.point_cloud_range = tuple(_check_range(point_cloud_range).tolist())
        self.use_z = bool(use_z)

    def __call__(self, frame: LidarFrame, rng: Optional[np.random.Generator] = None) -> LidarFrame:
        return keep_boxes(frame, boxes_in_range_mask(frame.boxes, self.point_cloud_range, self.use_z))

    def __repr__(self) -> str:
        return f"BoxRangeFilter(point_cloud_range={list(self.point_cloud_range)}, use_z={self.use_z})"


class ShufflePoints:
    """Permute the points (and their labels) by ``rng.permutation(N)``."""

    def __call__(self, frame: LidarFrame, rng: np.random.Generator) -> LidarFrame:
        return keep_points(frame, rng.permutation(frame.num_points))

    def __repr__(self) -> str:
        return "ShufflePoints()"


def _pair(value: Sequence[float], name: str) -> tuple:
    v = np.asarray(value, dtype=np.float64).reshape(-1)
    if v.shape != (2,) or not np.isfinite(v).all() or v[0] > v[1]:
        raise ValueError(f"{name} must be [low, high] with low <= high, got {value}")
    return float(v[0]), float(v[1])


# ---------------------------------------------------------------------------------------------------------
# the pipeline


AUGMENTATION_KEYS = ("flip_axes", "rotation_range", "scale_range", "translation_std", "point_cloud_range", "shuffle")

# OpenPCDet's DATA_AUGMENTOR / DATA_PROCESSOR names for the same settings
_OPENPCDET_KEYS = {
    "ALONG_AXIS_LIST": "flip_axes",
    "WORLD_ROT_ANGLE": "rotation_range",
    "WORLD_SCALE_RANGE": "scale_range",
    "NOISE_TRANSLATE_STD": "translation_std",
    "POINT_CLOUD_RANGE": "point_cloud_range",
    "SHUFFLE_ENABLED": "shuffle",
}


class DetectionAugmentation:
    """The training pipeline of a detection frame, built from a configuration dict.

    Keys (all optional; a missing or ``None`` key leaves its step out):

    - ``flip_axes``: e.g. ``["x", "y"]`` -> :class:`RandomFlip` (each axis with probability 0.5)
    - ``rotation_range``: ``[low, high]`` radians -> :class:`GlobalRotation`
    - ``scale_range``: ``[low, high]`` -> :class:`GlobalScaling`
    - ``translation_std``: a number or ``[sx, sy, sz]`` metres -> :class:`GlobalTranslation`
    - ``point_cloud_range``: ``[x0, y0, z0, x1, y1, z1]`` -> :class:`PointRangeFilter` then
      :class:`BoxRangeFilter`
    - ``shuffle``: ``True`` -> :class:`ShufflePoints`

    OpenPCDet's upper-case names (``ALONG_AXIS_LIST``, ``WORLD_ROT_ANGLE``, ``WORLD_SCALE_RANGE``,
    ``NOISE_TRANSLATE_STD``, ``POINT_CLOUD_RANGE``, ``SHUFFLE_ENABLED``) are accepted for the same settings.
    The steps run in OpenPCDet's order: ground-truth sampling (``gt_sampler``, e.g. a
    :class:`largekernel3d.data.detection.gt_sampling.GTSampler`, when given), flip, rotation, scaling,
    translation, range filters, shuffle. ``DetectionAugmentation(config)(frame, rng)`` returns the augmented
    frame; ``transforms`` lists the steps.
    """

    def __init__(self, config: Optional[Mapping[str, Any]] = None, gt_sampler: Optional[FrameTransform] = None) -> None:
        if config is not None and not isinstance(config, Mapping):
            raise TypeError(f"config must be a dict, got {type(config).__name__}")
        cfg: Dict[str, Any] = {}
        for key, value in (config or {}).items():
            name = _OPENPCDET_KEYS.get(key, key)
            if name not in AUGMENTATION_KEYS:
                raise ValueError(
                    f"config has an unknown key {key!r}; known keys: {', '.join(AUGMENTATION_KEYS)} "
                    f"(or OpenPCDet's {', '.join(_OPENPCDET_KEYS)})"
                )
            if name in cfg:
                raise ValueError(f"config sets {name!r} twice (as {key!r} and under its other name)")
            cfg[name] = value
        steps: List[FrameTransform] = []
        if gt_sampler is not None:
            if not callable(gt_sampler):
                raise TypeError(f"gt_sampler must be a callable (frame, rng) -> frame, got {gt_sampler!r}")
            steps.append(gt_sampler)
        if cfg.get("flip_axes"):
            steps.append(RandomFlip(cfg["flip_axes"]))
        if cfg.get("rotation_range") is not None:
            steps.append(GlobalRotation(cfg["rotation_range"]))
        if cfg.get("scale_range") is not None:
            steps.append(GlobalScaling(cfg["scale_range"]))
        if cfg.get("translation_std") is not None:
            steps.append(GlobalTranslation(cfg["translation_std"]))
        if cfg.get("point_cloud_range") is not None:
            steps += [PointRangeFilter(cfg["point_cloud_range"]), BoxRangeFilter(cfg["point_cloud_range"])]
        if cfg.get("shuffle"):
            steps.append(ShufflePoints())
        self.config = cfg
        self.transforms: List[FrameTransform] = steps

    def __call__(self, frame: LidarFrame, rng: np.random.Generator) -> LidarFrame:
        if not isinstance(frame, LidarFrame):
            raise TypeError(f"frame must be a LidarFrame, got {type(frame).__name__}")
        if not isinstance(rng, np.random.Generator):
            raise TypeError(
                f"rng must be a numpy.random.Generator (numpy.random.default_rng(seed)), got {type(rng).__name__}"
            )
        for t in self.transforms:
            frame = t(frame, rng)
        return frame

    def __repr__(self) -> str:
        return f"DetectionAugmentation({self.transforms!r})"


__all__ = [
    "FrameTransform",
    "keep_points",
    "keep_boxes",
    "rotate_frame",
    "scale_frame",
    "flip_frame",
    "translate_frame",
    "points_in_range_mask",
    "boxes_in_range_mask",
    "GlobalRotation",
    "GlobalScaling",
    "RandomFlip",
    "GlobalTranslation",
    "PointRangeFilter",
    "BoxRangeFilter",
    "ShufflePoints",
    "AUGMENTATION_KEYS",
    "DetectionAugmentation",
]
