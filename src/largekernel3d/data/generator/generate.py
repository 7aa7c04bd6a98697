"""One generated scene: build a furnished room, sample its surfaces, scan them, label and colour the points."""

from __future__ import annotations

from typing import Optional

import numpy as np

from ..scene import PointCloudScene
from .layout import build_room
from .sampling import sample_surfaces
from .scanner import add_sensor_noise, shade_colors, visible_mask

OVERSAMPLE = 1.8
"""Surface samples drawn per requested point: occlusion, openings, holes and thinning drop some of them."""


def generate_indoor_scene(
    seed: int, index: int, num_points: int = 40000, name: Optional[str] = None
) -> PointCloudScene:
    """Generate scene ``index`` of the stream ``seed`` (deterministic in ``(seed, index)``).

    Returns a :class:`PointCloudScene` with ``num_points`` points (metres, room corner at the origin,
    +Z up), colours in [0, 1] and ScanNet-20 labels (``IGNORE_INDEX`` for ceiling and props).
    """
    if num_points < 100:
        raise ValueError(f"points_per_scene must be at least 100, got {num_points}")
    rng = np.random.default_rng([int(seed), int(index), 0x5CA7])
    room = build_room(rng)
    pts, nrm, lab, col, pid, carv = sample_surfaces(room.parts, int(num_points * OVERSAMPLE), rng)
    keep = visible_mask(room, pts, lab, pid, carv, rng)
    pts, nrm, lab, col = pts[keep], nrm[keep], lab[keep], col[keep]
    if len(pts) > num_points:
        sel = np.sort(rng.choice(len(pts), num_points, replace=False))
        pts, nrm, lab, col = pts[sel], nrm[sel], lab[sel], col[sel]
    colors = shade_colors(pts, nrm, col, rng)
    pts = add_sensor_noise(pts, nrm, rng)
    return PointCloudScene(
        name or f"gen_s{int(seed)}_{int(index):05d}",
        pts.astype(np.float32),
        colors.astype(np.float32),
        lab.astype(np.int64),
    )
