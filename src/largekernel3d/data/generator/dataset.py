"""A dataset of generated indoor scenes."""

from __future__ import annotations

from typing import Optional

import numpy as np

from ..scannet import SCANNET20_CLASSES
from ..scene import PointCloudScene, SegmentationDataset
from .generate import generate_indoor_scene


class GeneratedIndoorDataset(SegmentationDataset):
    """``num_scenes`` procedural indoor scenes with ScanNet-20 classes (see the module docstring).

    Scene ``i`` depends only on ``(seed, i)``; two datasets with different seeds are disjoint streams
    (use different seeds for train and validation). Scenes are generated on access; with ``cache=True``
    each scene is generated once and kept in memory (32 bytes per point, about 1.3 MB per 40k-point
    scene; every access returns fresh copies of the arrays).
    """

    class_names = SCANNET20_CLASSES

    def __init__(self, num_scenes: int, seed: int = 0, points_per_scene: int = 40000, cache: bool = False) -> None:
        if isinstance(num_scenes, bool) or not isinstance(num_scenes, (int, np.integer)) or num_scenes <= 0:
            raise ValueError(f"num_scenes must be a positive int, got {num_scenes!r}")
        if (
            isinstance(points_per_scene, bool)
            or not isinstance(points_per_scene, (int, np.integer))
            or points_per_scene < 100
        ):
            raise ValueError(f"points_per_scene must be an int >= 100, got {points_per_scene!r}")
        self.seed = int(seed)
        self.points_per_scene = int(points_per_scene)
        self.scene_names = [f"gen_s{self.seed}_{i:05d}" for i in range(int(num_scenes))]
        self._cache: Optional[dict] = {} if cache else None

    def _load(self, index: int) -> PointCloudScene:
        if self._cache is None:
            return generate_indoor_scene(self.seed, index, self.points_per_scene, name=self.scene_names[index])
        if index not in self._cache:
            self._cache[index] = generate_indoor_scene(
                self.seed, index, self.points_per_scene, name=self.scene_names[index]
            )
        s = self._cache[index]
        return PointCloudScene(s.name, s.points.copy(), s.colors.copy(), s.labels.copy())

    def __repr__(self) -> str:
        return (
            f"GeneratedIndoorDataset(num_scenes={len(self)}, seed={self.seed}, "
            f"points_per_scene={self.points_per_scene})"
        )
