"""A street scene: its ground, background primitives and objects (:class:`StreetScene`), and the
generator that draws one from a random stream (:func:`generate_street_scene`).

World frame: x, y horizontal with the sensor's car at the origin heading along +x, z up with the
ground under the sensor at z = 0 (the sensor itself is mounted above it, see :mod:`.sensor`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np

from .config import StreetSceneConfig
from .ground import StreetGround
from .layout import StreetLayout, draw_layout
from .objects import SceneObject
from .populate import StreetPopulator
from .primitives import Primitives


@dataclass(frozen=True)
class StreetScene:
    """A scene to scan: ``ground``, ``background`` primitives (instance -1), ``objects`` (each with its
    box) and, for generated scenes, the ``layout`` they were placed on."""

    ground: StreetGround
    background: Primitives
    objects: Tuple[SceneObject, ...]
    layout: Optional[StreetLayout] = None

    def primitives(self) -> Primitives:
        """Background and object primitives together; object ``i``'s parts carry instance ``i``."""
        return Primitives.concat([self.background] + [o.parts.with_instance(i) for i, o in enumerate(self.objects)])

    def boxes(self) -> np.ndarray:
        """float64 ``[M, 9]`` boxes of the objects in the world frame (centre z)."""
        if not self.objects:
            return np.zeros((0, 9))
        return np.stack([o.box for o in self.objects])


def generate_street_scene(rng: np.random.Generator, config: Optional[StreetSceneConfig] = None) -> StreetScene:
    """A random street scene drawn from ``rng`` within ``config`` (default ``StreetSceneConfig()``); a
    function of the stream only."""
    config = StreetSceneConfig() if config is None else config
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    if not isinstance(config, StreetSceneConfig):
        raise TypeError(f"config must be a StreetSceneConfig, got {type(config).__name__}")
    layout = draw_layout(rng, config)
    filled = StreetPopulator(rng, layout, config).populate()
    return StreetScene(layout.ground, Primitives.concat(filled.background), tuple(filled.objects), layout)


__all__ = ["StreetScene", "generate_street_scene"]
