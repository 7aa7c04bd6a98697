"""The labelled point-cloud scene every dataset returns, and the dataset base class."""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Tuple

import numpy as np

IGNORE_INDEX = -100
"""Label of points that take no part in the loss or the metrics (unannotated / classes left out)."""


@dataclass
class PointCloudScene:
    """One scan: ``N`` points with colours and (optionally) per-point training labels.

    Attributes:
        name: scene identifier (e.g. ``scene0000_00``).
        points: float32 ``[N, 3]`` coordinates in metres (+Z up for indoor data).
        colors: float32 ``[N, 3]`` RGB in ``[0, 1]`` (zeros when the format has no colour).
        labels: int64 ``[N]`` training ids ``0 .. C-1`` or :data:`IGNORE_INDEX`; ``None`` when unlabelled.

    The constructor converts dtypes and checks shapes and finiteness (``ValueError`` naming the field).
    """

    name: str
    points: np.ndarray
    colors: np.ndarray
    labels: Optional[np.ndarray] = None

    def __post_init__(self) -> None:
        self.points = np.ascontiguousarray(self.points, dtype=np.float32)
        if self.points.ndim != 2 or self.points.shape[1] != 3:
            raise ValueError(f"scene {self.name!r}: points must have shape [N, 3], got {self.points.shape}")
        n = self.points.shape[0]
        if not np.isfinite(self.points).all():
            raise ValueError(f"scene {self.name!r}: points contain NaN or inf")
        self.colors = np.ascontiguousarray(self.colors, dtype=np.float32)
        if self.colors.shape != (n, 3):
            raise ValueError(f"scene {self.name!r}: colors must have shape [{n}, 3], got {self.colors.shape}")
        if n and (not np.isfinite(self.colors).all() or self.colors.min() < 0.0 or self.colors.max() > 1.0):
            raise ValueError(
                f"scene {self.name!r}: colors must be finite and lie in [0, 1] (divide 0-255 colours by 255)"
            )
        if self.labels is not None:
            labels = np.asarray(self.labels)
            if not np.issubdtype(labels.dtype, np.integer):
                raise TypeError(f"scene {self.name!r}: labels must be integers, got {labels.dtype}")
            self.labels = np.ascontiguousarray(labels, dtype=np.int64)
            if self.labels.shape != (n,):
                raise ValueError(f"scene {self.name!r}: labels must have shape [{n}], got {self.labels.shape}")
            bad = (self.labels < 0) & (self.labels != IGNORE_INDEX)
            if bad.any():
                raise ValueError(
                    f"scene {self.name!r}: labels must be >= 0 or IGNORE_INDEX={IGNORE_INDEX}, "
                    f"found {np.unique(self.labels[bad])[:5].tolist()}"
                )

    @property
    def num_points(self) -> int:
        return int(self.points.shape[0])


class SegmentationDataset:
    """Base class of the segmentation datasets: indexable list of :class:`PointCloudScene`.

    Subclasses set ``class_names`` and ``scene_names`` and implement ``_load(i)``; ``__getitem__``
    adds the checks every dataset shares (index range, at least one point, labels < ``num_classes``).
    """

    class_names: Tuple[str, ...] = ()
    scene_names: List[str]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def __len__(self) -> int:
        return len(self.scene_names)

    def _load(self, index: int) -> PointCloudScene:
        raise NotImplementedError

    def _source(self, index: int) -> str:
        """Where scene ``index`` comes from (a path, or a description), for error messages."""
        return self.scene_names[index]

    def __getitem__(self, index: int) -> PointCloudScene:
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
            raise TypeError(f"{type(self).__name__} index must be an int, got {type(index).__name__}")
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"{type(self).__name__} index {index} is out of range for {n} scenes")
        index = int(index) % n
        scene = self._load(index)
        if scene.num_points == 0:
            raise ValueError(f"scene {scene.name!r} ({self._source(index)}) has no points")
        if scene.labels is not None and scene.labels.size and scene.labels.max() >= self.num_classes:
            raise ValueError(
                f"scene {scene.name!r} ({self._source(index)}) has labels up to "
                f"{int(scene.labels.max())}, but {type(self).__name__} has {self.num_classes} "
                f"classes (ids 0..{self.num_classes - 1}, or IGNORE_INDEX={IGNORE_INDEX})"
            )
        return scene

    def __repr__(self) -> str:
        return f"{type(self).__name__}(scenes={len(self)}, classes={self.num_classes})"
