"""Training augmentations for point-cloud scenes.

Every transform is a callable ``t(scene, rng) -> scene`` taking a :class:`PointCloudScene` and a
``numpy.random.Generator`` and returning a new scene (the input is never modified). All randomness
comes from ``rng``, so a pipeline is reproducible from its seed. Labels are never changed.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Sequence, Tuple

import numpy as np

from .scene import PointCloudScene

Transform = Callable[[PointCloudScene, np.random.Generator], PointCloudScene]


def _with(scene: PointCloudScene, **fields) -> PointCloudScene:
    return dataclasses.replace(scene, **fields)


def _center_xy(points: np.ndarray) -> np.ndarray:
    """Centre of the axis-aligned bounding box in x, y (z = 0)."""
    c = np.zeros(3, dtype=np.float64)
    if points.shape[0]:
        c[:2] = 0.5 * (points[:, :2].min(axis=0) + points[:, :2].max(axis=0))
    return c


class Compose:
    """Apply transforms in order: ``t_n(... t_2(t_1(scene, rng), rng) ..., rng)``."""

    def __init__(self, transforms: Sequence[Transform]) -> None:
        self.transforms = list(transforms)
        for t in self.transforms:
            if not callable(t):
                raise TypeError(f"Compose expects callables (scene, rng) -> scene, got {t!r}")

    def __call__(self, scene: PointCloudScene, rng: np.random.Generator) -> PointCloudScene:
        for t in self.transforms:
            scene = t(scene, rng)
        return scene

    def __repr__(self) -> str:
        return f"Compose({self.transforms!r})"


class RandomRotateZ:
    """Rotate about the vertical axis through the bounding-box centre ``c`` (x, y):

    ``p' = R_z(theta) (p - c) + c``, ``theta ~ U(-max_angle, max_angle)``,
    ``R_z = [[cos, -sin, 0], [sin, cos, 0], [0, 0, 1]]``.
    """

    def __init__(self, max_angle: float = np.pi) -> None:
        if not max_angle >= 0:
            raise ValueError(f"max_angle must be >= 0 (radians), got {max_angle}")
        self.max_angle = float(max_angle)

    def __call__(self, scene: PointCloudScene, rng: np.random.Generator) -> PointCloudScene:
        theta = rng.uniform(-self.max_angle, self.max_angle)
        c, s = np.cos(theta), np.sin(theta)
        rot = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
        center = _center_xy(scene.points)
        pts = (scene.points.astype(np.float64) - center) @ rot.T + center
        return _with(scene, points=pts.astype(np.float32))

    def __repr__(self) -> str:
        return f"RandomRotateZ(max_angle={self.max_angle})"


class RandomFlip:
    """Mirror each horizontal axis ``a`` in ``axes`` independently with probability ``p`` about the
    bounding-box centre: ``p'_a = 2 c_a - p_a``."""

    def __init__(self, axes: Tuple[int, ...] = (0, 1), p: float = 0.5) -> None:
        if not all(a in (0, 1, 2) for a in axes):
            raise ValueError(f"axes must be a subset of (0, 1, 2), got {axes}")
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"p must be a probability in [0, 1], got {p}")
        self.axes = tuple(axes)
        self.p = float(p)

    def __call__(self, scene: PointCloudScene, rng: np.random.Generator) -> PointCloudScene:
        pts = scene.points.copy()
        flips = rng.random(len(self.axes)) < self.p
        for axis, flip in zip(self.axes, flips):
            if flip and pts.shape[0]:
                lo, hi = pts[:, axis].min(), pts[:, axis].max()
                pts[:, axis] = (lo + hi) - pts[:, axis]
        return _with(scene, points=pts)

    def __repr__(self) -> str:
        return f"RandomFlip(axes={self.axes}, p={self.p})"


class RandomScale:
    """Scale about the origin: ``p' = s * p`` with ``s ~ U(low, high)`` (one factor, or one per axis
    when ``anisotropic``)."""

    def __init__(self, low: float = 0.9, high: float = 1.1, anisotropic: bool = False) -> None:
        if not 0 < low <= high:
            raise ValueError(f"need 0 < low <= high, got low={low}, high={high}")
        self.low, self.high, self.anisotropic = float(low), float(high), bool(anisotropic)

    def __call__(self, scene: PointCloudScene, rng: np.random.Generator) -> PointCloudScene:
        s = rng.uniform(self.low, self.high, size=3 if self.anisotropic else 1)
        return _with(scene, points=(scene.points * s).astype(np.float32))

    def __repr__(self) -> str:
        return f"RandomScale(low={self.low}, high={self.high}, anisotropic={self.anisotropic})"


class RandomJitter:
    """Per-point Gaussian noise: ``p' = p + clip(e, -clip, clip)``, ``e ~ N(0, sigma^2 I)``."""

    def __init__(self, sigma: float = 0.005, clip: float = 0.02) -> None:
        if not (sigma >= 0 and clip >= 0):
            raise ValueError(f"sigma and clip must be >= 0, got sigma={sigma}, clip={clip}")
        self.sigma, self.clip = float(sigma), float(clip)

    def __call__(self, scene: PointCloudScene, rng: np.random.Generator) -> PointCloudScene:
        noise = np.clip(rng.normal(0.0, self.sigma, size=scene.points.shape), -self.clip, self.clip)
        return _with(scene, points=(scene.points + noise).astype(np.float32))

    def __repr__(self) -> str:
        return f"RandomJitter(sigma={self.sigma}, clip={self.clip})"


class ColorJitter:
    """Colour augmentation: contrast about the scene mean, brightness shift and per-point noise::

        c' = clip((c - mu) * alpha + mu + beta + e, 0, 1)
        alpha ~ U(1 - contrast, 1 + contrast),  beta ~ U(-brightness, brightness),  e ~ N(0, std^2)

    ``mu`` is the mean colour of the scene (per channel); ``beta`` is shared by the three channels.
    """

    def __init__(self, brightness: float = 0.1, contrast: float = 0.1, std: float = 0.02) -> None:
        if min(brightness, contrast, std) < 0:
            raise ValueError(f"brightness, contrast and std must be >= 0, got {brightness}, {contrast}, {std}")
        self.brightness, self.contrast, self.std = float(brightness), float(contrast), float(std)

    def __call__(self, scene: PointCloudScene, rng: np.random.Generator) -> PointCloudScene:
        c = scene.colors.astype(np.float64)
        mu = c.mean(axis=0) if c.shape[0] else np.zeros(3)
        alpha = rng.uniform(1 - self.contrast, 1 + self.contrast)
        beta = rng.uniform(-self.brightness, self.brightness)
        noise = rng.normal(0.0, self.std, size=c.shape)
        out = np.clip((c - mu) * alpha + mu + beta + noise, 0.0, 1.0)
        return _with(scene, colors=out.astype(np.float32))

    def __repr__(self) -> str:
        return f"ColorJitter(brightness={self.brightness}, contrast={self.contrast}, std={self.std})"


def _smooth_axis(x: np.ndarray, axis: int, width: int) -> np.ndarray:
    """Moving average of odd ``width`` along ``axis`` (edges padded by repetition)."""
    pad = width // 2
    pad_spec = [(0, 0)] * x.ndim
    pad_spec[axis] = (pad, pad)
    xp = np.pad(x, pad_spec, mode="edge")
    csum = np.cumsum(xp, axis=axis)
    zero_shape = list(csum.shape)
    zero_shape[axis] = 1
    csum = np.concatenate([np.zeros(zero_shape), csum], axis=axis)
    n = x.shape[axis]
    hi = np.take(csum, np.arange(width, width + n), axis=axis)
    lo = np.take(csum, np.arange(0, n), axis=axis)
    return (hi - lo) / width


class ElasticDistortion:
    """Smooth random warping (the MinkowskiEngine / Pointcept "elastic distortion").

    For each ``(granularity g, magnitude m)`` pair: draw i.i.d. ``N(0, 1)`` 3-vectors on a lattice of
    spacing ``g`` covering the scene (plus a margin), smooth them with three passes of a 3-wide box
    filter along each axis, and displace every point by ``m`` times the trilinear interpolation ``D``
    of the smoothed field at its position: ``p' = p + m * D(p)``.
    """

    def __init__(self, params: Sequence[Tuple[float, float]] = ((0.2, 0.4), (0.8, 1.6)), p: float = 0.95) -> None:
        params = [tuple(map(float, gm)) for gm in params]
        if any(len(gm) != 2 or gm[0] <= 0 or gm[1] < 0 for gm in params):
            raise ValueError(f"params must be (granularity > 0, magnitude >= 0) pairs, got {params}")
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"p must be a probability in [0, 1], got {p}")
        self.params, self.p = params, float(p)

    @staticmethod
    def _distort(points: np.ndarray, granularity: float, magnitude: float, rng: np.random.Generator) -> np.ndarray:
        lo = points.min(axis=0)
        span = points.max(axis=0) - lo
        dims = (span // granularity).astype(int) + 3
        noise = rng.standard_normal((*dims, 3))
        for _ in range(2):
            for axis in range(3):
                noise = _smooth_axis(noise, axis, 3)
        # lattice node k sits at lo + (k - 1) * g
        t = (points - lo) / granularity + 1.0
        i0 = np.clip(np.floor(t).astype(int), 0, dims - 2)
        f = np.clip(t - i0, 0.0, 1.0)
        disp = np.zeros_like(points)
        for dx in (0, 1):
            wx = f[:, 0] if dx else 1 - f[:, 0]
            for dy in (0, 1):
                wy = f[:, 1] if dy else 1 - f[:, 1]
                for dz in (0, 1):
                    wz = f[:, 2] if dz else 1 - f[:, 2]
                    disp += (wx * wy * wz)[:, None] * noise[i0[:, 0] + dx, i0[:, 1] + dy, i0[:, 2] + dz]
        return points + magnitude * disp

    def __call__(self, scene: PointCloudScene, rng: np.random.Generator) -> PointCloudScene:
        if scene.points.shape[0] == 0 or rng.random() >= self.p:
            return scene
        pts = scene.points.astype(np.float64)
        for g, m in self.params:
            pts = self._distort(pts, g, m, rng)
        return _with(scene, points=pts.astype(np.float32))

    def __repr__(self) -> str:
        return f"ElasticDistortion(params={self.params}, p={self.p})"
