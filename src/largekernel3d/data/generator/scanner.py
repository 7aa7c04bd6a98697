"""What a hand-held scanner does to the surface samples: occluded and cut-away surfaces vanish, some regions
are missed, high surfaces are seen less, colours are shaded, depths are noisy."""

from __future__ import annotations

import numpy as np

from .labels import WALL
from .room import Room, wall_frame
from .sampling import hidden_mask


def visible_mask(
    room: Room, pts: np.ndarray, lab: np.ndarray, pid: np.ndarray, carv: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Boolean (N,) mask of the samples a scan keeps.

    Dropped: samples inside another part's solid (:func:`.sampling.hidden_mask`); carvable samples inside a
    door or window opening; holes of radius 8-40 cm around 4-13 random samples; with probability 1/2 a
    vertical gap in one wall above 1.2 m or more; and, to thin out high surfaces, each sample at height z
    with probability ``0.5 * clip((z - 1.8) / (H - 1.8), 0, 1)``.
    """
    H = room.H
    keep = ~hidden_mask(pts, pid, room.parts.solids)
    for lo, hi in room.carves:
        keep &= ~(carv & np.all((pts >= lo) & (pts <= hi), axis=1))
    # missing scan regions: holes around random surface points, and one larger gap on a wall
    n_holes = int(rng.integers(4, 14))
    centers = pts[rng.integers(0, len(pts), n_holes)]
    radii = rng.uniform(0.08, 0.4, n_holes)
    for c, r in zip(centers, radii):
        keep &= np.sum((pts - c) ** 2, axis=1) > r * r
    if rng.random() < 0.5:
        wall = int(rng.integers(4))
        o, tan, _ = wall_frame(room, wall)
        t0 = rng.uniform(0, room.wall_len(wall))
        t = (pts - o) @ tan
        z_gap = rng.uniform(1.2, H)
        gap = (lab == WALL) & (np.abs(t - t0) < rng.uniform(0.3, 1.2)) & (pts[:, 2] > z_gap)
        keep &= ~gap
    # a hand-held scanner sees high surfaces less: thin out linearly from 1.8 m to half at the ceiling
    keep_prob = 1.0 - 0.5 * np.clip((pts[:, 2] - 1.8) / max(H - 1.8, 0.1), 0.0, 1.0)
    keep &= rng.random(len(pts)) < keep_prob
    return keep


def shade_colors(pts: np.ndarray, nrm: np.ndarray, col: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Observed colours (N, 3) in [0, 1]: material x (ambient + Lambert) x smooth illumination x tint + noise,

    ``clip(col * (0.72 + 0.28 |n . l|) * (1 + 0.08 sin(kx x + px) cos(ky y + py)) * tint + N(0, 0.035^2), 0, 1)``
    with a random light direction ``l`` (from above), ``kx, ky`` in [0.2, 0.8] / m and ``tint`` in [0.93, 1.07]^3.
    """
    light = rng.normal(size=3)
    light[2] = abs(light[2]) + 1.0
    light /= np.linalg.norm(light)
    shade = 0.72 + 0.28 * np.abs(nrm @ light)
    kx, ky = rng.uniform(0.2, 0.8, 2)
    phase = rng.uniform(0, 2 * np.pi, 2)
    illum = 1.0 + 0.08 * np.sin(kx * pts[:, 0] + phase[0]) * np.cos(ky * pts[:, 1] + phase[1])
    tint = rng.uniform(0.93, 1.07, 3)
    colors = col * (shade * illum)[:, None] * tint + rng.normal(0, 0.035, col.shape)
    return np.clip(colors, 0.0, 1.0)


def add_sensor_noise(pts: np.ndarray, nrm: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Points (N, 3) moved by depth noise along the normal plus a small isotropic part:
    ``p + n N(0, s^2) + N(0, (0.4 s)^2 I)`` with one ``s`` in [3, 9] mm per scene."""
    sigma = rng.uniform(0.003, 0.009)
    return pts + nrm * rng.normal(0, sigma, (len(pts), 1)) + rng.normal(0, sigma * 0.4, pts.shape)
