"""The labelled LiDAR frame every detection dataset returns, and the detection dataset base class.

Box convention (OpenPCDet's, in the LiDAR frame, metres and radians)::

    box = [x, y, z, dx, dy, dz, yaw (, vx, vy)]

``(x, y, z)`` is the centre of the box (its gravity centre, not the bottom), ``dx`` the length along the
heading, ``dy`` the width, ``dz`` the height, ``yaw`` the heading measured from +x towards +y around +z,
``(vx, vy)`` the velocity in m/s in the same frame (only where the dataset has it). A point ``p`` lies
in the box when ``|R(-yaw) (p - c)| <= (dx, dy, dz) / 2`` per axis.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

BOX_FIELDS: Tuple[str, ...] = ("x", "y", "z", "dx", "dy", "dz", "yaw")
VELOCITY_FIELDS: Tuple[str, ...] = ("vx", "vy")


@dataclass
class LidarFrame:
    """One LiDAR frame with its ground-truth boxes.

    Attributes:
        name: frame identifier (e.g. ``000001``, a nuScenes sample token, ``002/07``).
        points: float32 ``[N, C]``; columns named by ``point_features`` (the first three are always
            ``x, y, z`` in the LiDAR frame).
        point_features: names of the ``C`` point columns, e.g. ``("x", "y", "z", "intensity")`` or
            ``("x", "y", "z", "intensity", "time_lag")`` for merged sweeps.
        boxes: float32 ``[M, 7]`` or ``[M, 9]`` (with velocity), see the module docstring.
        labels: int64 ``[M]`` class ids into the dataset's ``class_names``.
        difficulty: optional int64 ``[M]`` (KITTI: 0 easy, 1 moderate, 2 hard, -1 none of them).
        num_lidar_points: optional int64 ``[M]`` points inside each box as the dataset records it.
        attributes: optional list of ``M`` attribute names (nuScenes, e.g. ``vehicle.moving``; ``""`` none).
        point_labels: optional int64 ``[N]`` per-point semantic labels where the dataset has them.
        metadata: anything else a reader knows (timestamps, tokens, calibration, poses).

    The constructor converts dtypes and checks shapes and finiteness (``ValueError`` naming the frame and
    the field).
    """

    name: str
    points: np.ndarray
    point_features: Tuple[str, ...]
    boxes: np.ndarray
    labels: np.ndarray
    difficulty: Optional[np.ndarray] = None
    num_lidar_points: Optional[np.ndarray] = None
    attributes: Optional[List[str]] = None
    point_labels: Optional[np.ndarray] = None
    metadata: Dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        where = f"frame {self.name!r}"
        self.point_features = tuple(self.point_features)
        self.points = np.ascontiguousarray(self.points, dtype=np.float32)
        if self.points.ndim != 2 or self.points.shape[1] != len(self.point_features):
            raise ValueError(
                f"{where}: points must have shape [N, {len(self.point_features)}] "
                f"({', '.join(self.point_features)}), got {self.points.shape}"
            )
        if self.point_features[:3] != ("x", "y", "z"):
            raise ValueError(f"{where}: the first three point features must be x, y, z, got {self.point_features}")
        if not np.isfinite(self.points).all():
            raise ValueError(f"{where}: points contain NaN or inf")
        boxes = np.asarray(self.boxes, dtype=np.float32)
        if boxes.size == 0 and boxes.ndim != 2:
            boxes = boxes.reshape(0, 7)  # a frame without objects
        self.boxes = np.ascontiguousarray(boxes)
        if self.boxes.ndim != 2 or self.boxes.shape[1] not in (7, 9):
            raise ValueError(f"{where}: boxes must have shape [M, 7] or [M, 9], got {self.boxes.shape}")
        m = self.boxes.shape[0]
        if not np.isfinite(self.boxes).all():
            bad = np.unique(np.nonzero(~np.isfinite(self.boxes))[0])[:5].tolist()
            raise ValueError(f"{where}: boxes {bad} have non-finite values")
        if m and (self.boxes[:, 3:6] <= 0).any():
            bad = np.unique(np.nonzero(self.boxes[:, 3:6] <= 0)[0])[:5].tolist()
            raise ValueError(f"{where}: boxes {bad} have a size <= 0 (dx, dy, dz must be positive)")
        labels = np.asarray(self.labels)
        if labels.size and not np.issubdtype(labels.dtype, np.integer):
            raise TypeError(f"{where}: labels must be integers, got {labels.dtype}")
        self.labels = np.ascontiguousarray(labels, dtype=np.int64).reshape(-1)
        if self.labels.shape != (m,):
            raise ValueError(f"{where}: labels must have shape [{m}], got {self.labels.shape}")
        if m and self.labels.min() < 0:
            raise ValueError(f"{where}: labels must be >= 0, got {int(self.labels.min())}")
        for name in ("difficulty", "num_lidar_points"):
            value = getattr(self, name)
            if value is not None:
                value = np.ascontiguousarray(value, dtype=np.int64).reshape(-1)
                if value.shape != (m,):
                    raise ValueError(f"{where}: {name} must have shape [{m}], got {value.shape}")
                setattr(self, name, value)
        if self.attributes is not None and len(self.attributes) != m:
            raise ValueError(f"{where}: attributes must have {m} entries, got {len(self.attributes)}")
        if self.point_labels is not None:
            self.point_labels = np.ascontiguousarray(self.point_labels, dtype=np.int64).reshape(-1)
            if self.point_labels.shape != (self.points.shape[0],):
                raise ValueError(
                    f"{where}: point_labels must have shape [{self.points.shape[0]}], got {self.point_labels.shape}"
                )

    @property
    def num_points(self) -> int:
        return int(self.points.shape[0])

    @property
    def num_boxes(self) -> int:
        return int(self.boxes.shape[0])

    @property
    def has_velocity(self) -> bool:
        return self.boxes.shape[1] == 9

    def xyz(self) -> np.ndarray:
        """The ``[N, 3]`` point coordinates (a view)."""
        return self.points[:, :3]


def check_min_points(min_points: int) -> int:
    """``min_points`` (a reader's "keep boxes with at least this many LiDAR points") as an int, ``ValueError`` unless
    it is an int >= 0."""
    if isinstance(min_points, bool) or not isinstance(min_points, (int, np.integer)) or min_points < 0:
        raise ValueError(f"min_points must be an int >= 0, got {min_points!r}")
    return int(min_points)


class DetectionDataset:
    """Base class of the detection datasets: an indexable list of :class:`LidarFrame`.

    Subclasses set ``class_names`` and ``frame_names`` and implement ``_load(i)``; ``__getitem__`` adds
    the checks every dataset shares (index type and range, labels < ``num_classes``).
    """

    class_names: Tuple[str, ...] = ()
    frame_names: List[str]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def __len__(self) -> int:
        return len(self.frame_names)

    def _load(self, index: int) -> LidarFrame:
        raise NotImplementedError

    def _source(self, index: int) -> str:
        """Where frame ``index`` comes from (a path, or a description), for error messages."""
        return self.frame_names[index]

    def __getitem__(self, index: int) -> LidarFrame:
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
            raise TypeError(f"{type(self).__name__} index must be an int, got {type(index).__name__}")
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"{type(self).__name__} index {index} is out of range for {n} frames")
        index = int(index) % n
        frame = self._load(index)
        if frame.num_boxes and frame.labels.max() >= self.num_classes:
            raise ValueError(
                f"frame {frame.name!r} ({self._source(index)}) has labels up to "
                f"{int(frame.labels.max())}, but {type(self).__name__} has {self.num_classes} "
                f"classes (ids 0..{self.num_classes - 1})"
            )
        return frame

    def __repr__(self) -> str:
        return f"{type(self).__name__}(frames={len(self)}, classes={self.num_classes})"


class CachedFrames(DetectionDataset):
    """``dataset`` with every frame kept in memory after its first load (generated frames cost a ray cast per
    load; a training run reads each frame once per epoch). Frames are returned as loaded: transforms must not
    modify them in place (the augmentations of :mod:`.augment` return new frames)."""

    def __init__(self, dataset: DetectionDataset) -> None:
        self.dataset = dataset
        self.class_names = dataset.class_names
        self.frame_names = list(dataset.frame_names)
        self._frames: Dict[int, LidarFrame] = {}

    def _source(self, index: int) -> str:
        return self.dataset._source(index)

    def _load(self, index: int) -> LidarFrame:
        if index not in self._frames:
            self._frames[index] = self.dataset[index]
        return self._frames[index]

    def __repr__(self) -> str:
        return f"CachedFrames({self.dataset!r})"


__all__ = ["BOX_FIELDS", "VELOCITY_FIELDS", "LidarFrame", "DetectionDataset", "CachedFrames"]
