"""Synthetic LiDAR frames of procedurally generated streets: :func:`generate_frame` and the
:class:`SyntheticLidarDataset` (the built-in detection data that needs no download).

Frame ``i`` of a dataset with seed ``s`` is a function of ``(s, i)`` only: the scene is drawn from the
stream ``(s, i, 0)`` and the sensor's randomness (azimuth phase, noise, dropout, foliage penetration)
from ``(s, i, 1)``, so the same scene is seen by every sensor spec. Boxes are OpenPCDet's
``[x, y, z, dx, dy, dz, yaw, vx, vy]`` in the LiDAR frame (ground under the sensor at
``z = -mount_height``); ``num_lidar_points`` counts the returns on each object itself.
"""

from __future__ import annotations

from typing import Optional, Sequence, Tuple, Union

import numpy as np

from ..frame import DetectionDataset, LidarFrame, check_min_points
from .categories import OBJECT_CLASSES, SEMANTIC_CLASSES, check_class_names
from .config import StreetSceneConfig
from .scan import scan
from .scene import generate_street_scene
from .sensor import LidarSpec

POINT_FEATURES: Tuple[str, ...] = ("x", "y", "z", "intensity")
_SCENE_STREAM, _SENSOR_STREAM = 0, 1

Seed = Union[int, Sequence[int]]


def _seed_words(seed: Seed) -> Tuple[int, ...]:
    words = (seed,) if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool) else tuple(seed)
    for w in words:
        if isinstance(w, bool) or not isinstance(w, (int, np.integer)) or w < 0:
            raise ValueError(f"seed must be a non-negative int or a sequence of them, got {seed!r}")
    return tuple(int(w) for w in words)


def generate_frame(
    seed: Seed,
    spec: Optional[LidarSpec] = None,
    scene_config: Optional[StreetSceneConfig] = None,
    class_names: Sequence[str] = OBJECT_CLASSES,
    min_points: int = 1,
    keep_sparse: bool = False,
    name: Optional[str] = None,
) -> LidarFrame:
    """One labelled frame of a random street scanned by ``spec`` (a function of ``seed`` only).

    Args:
        seed: a non-negative int or a sequence of them (a dataset passes ``(seed, index)``).
        spec, scene_config: the sensor and what the street may look like (None: ``LidarSpec()`` and
            ``StreetSceneConfig()``).
        class_names: the detection classes to box (a subset of ``OBJECT_CLASSES``, any order);
            labels index this tuple. Objects of other classes stay in the scene without a box.
        min_points: objects with fewer returns are dropped, or kept when ``keep_sparse`` (their
            ``num_lidar_points`` shows it).
        name: the frame name (default ``synthetic_<seed words>``).

    Returns:
        a :class:`LidarFrame` with points ``[N, 4]`` (x, y, z, intensity), boxes float32 ``[M, 9]``,
        labels, ``num_lidar_points``, nuScenes-style ``attributes``, ``point_labels`` (ids into
        ``SEMANTIC_CLASSES``) and ``metadata``: ``point_box_index`` int64 ``[N]`` (the box each point
        lies on, -1 for the background and for objects without a box), ``ring`` int64 ``[N]`` (laser
        index), ``semantic_classes``, ``seed``, ``mount_height``.
    """
    words = _seed_words(seed)
    spec = LidarSpec() if spec is None else spec
    scene_config = StreetSceneConfig() if scene_config is None else scene_config
    class_names = check_class_names(class_names)
    min_points = check_min_points(min_points)
    if not isinstance(spec, LidarSpec):
        raise TypeError(f"spec must be a LidarSpec, got {type(spec).__name__}")
    if not isinstance(scene_config, StreetSceneConfig):
        raise TypeError(f"scene_config must be a StreetSceneConfig, got {type(scene_config).__name__}")
    scene = generate_street_scene(np.random.default_rng(words + (_SCENE_STREAM,)), scene_config)
    result = scan(scene, spec, np.random.default_rng(words + (_SENSOR_STREAM,)))
    counts = np.bincount(result.instance[result.instance >= 0], minlength=len(scene.objects))
    kept = [
        i
        for i, obj in enumerate(scene.objects)
        if obj.category in class_names and (counts[i] >= min_points or keep_sparse)
    ]
    box_index = np.full(len(scene.objects) + 1, -1, dtype=np.int64)  # the last entry maps instance -1
    box_index[kept] = np.arange(len(kept))
    boxes = scene.boxes()[kept].reshape(-1, 9)
    boxes[:, 2] -= spec.mount_height  # world -> LiDAR frame
    return LidarFrame(
        name=name or "synthetic_" + "_".join(str(w) for w in words),
        points=result.points,
        point_features=POINT_FEATURES,
        boxes=boxes.astype(np.float32),
        labels=np.array([class_names.index(scene.objects[i].category) for i in kept], dtype=np.int64),
        num_lidar_points=counts[kept].astype(np.int64),
        attributes=[scene.objects[i].attribute for i in kept],
        point_labels=result.semantic,
        metadata={
            "point_box_index": box_index[result.instance],
            "ring": result.beam,
            "semantic_classes": SEMANTIC_CLASSES,
            "seed": words,
            "mount_height": spec.mount_height,
        },
    )


class SyntheticLidarDataset(DetectionDataset):
    """``num_frames`` synthetic street frames (see :func:`generate_frame`; ``spec`` and ``scene_config``
    default to ``LidarSpec()`` and ``StreetSceneConfig()``); frame ``i`` depends only on ``(seed, i)``, so
    datasets with different seeds are disjoint streams (use one per split)."""

    def __init__(
        self,
        num_frames: int,
        seed: int = 0,
        spec: Optional[LidarSpec] = None,
        scene_config: Optional[StreetSceneConfig] = None,
        class_names: Sequence[str] = OBJECT_CLASSES,
        min_points: int = 1,
        keep_sparse: bool = False,
    ) -> None:
        if isinstance(num_frames, bool) or not isinstance(num_frames, (int, np.integer)) or num_frames <= 0:
            raise ValueError(f"num_frames must be a positive int, got {num_frames!r}")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed must be a non-negative int, got {seed!r}")
        self.seed = int(seed)
        spec = LidarSpec() if spec is None else spec
        scene_config = StreetSceneConfig() if scene_config is None else scene_config
        if not isinstance(spec, LidarSpec):
            raise TypeError(f"spec must be a LidarSpec, got {type(spec).__name__}")
        if not isinstance(scene_config, StreetSceneConfig):
            raise TypeError(f"scene_config must be a StreetSceneConfig, got {type(scene_config).__name__}")
        self.spec, self.scene_config = spec, scene_config
        self.class_names = check_class_names(class_names)
        self.min_points = check_min_points(min_points)
        self.keep_sparse = bool(keep_sparse)
        self.frame_names = [f"synthetic_s{self.seed}_{i:06d}" for i in range(int(num_frames))]

    def _load(self, index: int) -> LidarFrame:
        return generate_frame(
            (self.seed, index),
            self.spec,
            self.scene_config,
            self.class_names,
            self.min_points,
            self.keep_sparse,
            name=self.frame_names[index],
        )

    def _source(self, index: int) -> str:
        return f"synthetic street (seed {self.seed}, frame {index})"

    def __repr__(self) -> str:
        return (
            f"SyntheticLidarDataset(frames={len(self)}, seed={self.seed}, beams={self.spec.beams}, "
            f"classes={self.class_names})"
        )


__all__ = ["POINT_FEATURES", "generate_frame", "SyntheticLidarDataset"]
