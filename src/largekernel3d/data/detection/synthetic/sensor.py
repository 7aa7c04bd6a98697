"""The spinning multi-beam LiDAR: its geometry, noise and intensity model (:class:`LidarSpec`).

The sensor spins about its vertical axis at height ``mount_height`` above the ground under its car. Each
of the ``beams`` lasers fires at a fixed elevation (evenly spread over ``vertical_fov``, or the explicit
``beam_angles``) once every ``azimuth_resolution_deg`` of azimuth, so ray ``(b, j)`` points along

    d = (cos e_b cos a_j, cos e_b sin a_j, sin e_b),    a_j = a_0 + j * azimuth_resolution,

with a random phase ``a_0`` per frame. A return is kept when its range lies in ``[min_range, max_range]``
and survives the dropout; its intensity (:class:`IntensityModel`) depends on the material, the angle of
incidence and the range.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Tuple

import numpy as np


@dataclass(frozen=True)
class IntensityModel:
    """Return intensity of a surface of reflectivity ``rho`` hit at incidence ``theta`` at range ``r``:

        I = clip(rho * (ambient + (1 - ambient) * |cos theta|) * exp(-r / range_decay) + N(0, noise_std), 0, 1)

    (a Lambertian term with an ambient floor, an atmospheric / beam-spread falloff, additive noise).
    Intensities lie in [0, 1].
    """

    ambient: float = 0.25
    range_decay: float = 150.0
    noise_std: float = 0.02

    def __post_init__(self) -> None:
        if not 0.0 <= self.ambient <= 1.0:
            raise ValueError(f"IntensityModel.ambient must be in [0, 1], got {self.ambient}")
        if self.range_decay <= 0:
            raise ValueError(f"IntensityModel.range_decay must be > 0 (metres), got {self.range_decay}")
        if self.noise_std < 0:
            raise ValueError(f"IntensityModel.noise_std must be >= 0, got {self.noise_std}")

    def __call__(
        self, reflectivity: np.ndarray, cos_incidence: np.ndarray, distance: np.ndarray, rng: np.random.Generator
    ) -> np.ndarray:
        """Intensities ``[N]`` for ``[N]`` reflectivities, incidence cosines and ranges (see the class)."""
        lambert = self.ambient + (1.0 - self.ambient) * np.abs(cos_incidence)
        value = reflectivity * lambert * np.exp(-distance / self.range_decay)
        if self.noise_std > 0:
            value = value + rng.normal(0.0, self.noise_std, value.shape)
        return np.clip(value, 0.0, 1.0)


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


@dataclass(frozen=True)
class LidarSpec:
    """A spinning LiDAR (see the module docstring).

    Attributes:
        beams: number of lasers (> 0).
        vertical_fov: ``(lowest, highest)`` beam elevation in degrees, the beams evenly spread between.
        beam_angles: explicit beam elevations in degrees (``beams`` of them, any order); overrides
            ``vertical_fov``. :meth:`from_beam_angles` builds a spec from them.
        azimuth_resolution_deg: azimuth step between two firings of a laser (degrees).
        max_range, min_range: returns outside ``[min_range, max_range]`` metres are lost.
        mount_height: sensor height above the ground under its car (m); the ground there is at
            ``z = -mount_height`` in the LiDAR frame.
        range_noise_std: Gaussian range noise (m) along the ray.
        dropout_probability: chance that any return is lost (materials such as glass add their own).
        intensity: the :class:`IntensityModel`.
    """

    beams: int = 32
    vertical_fov: Tuple[float, float] = (-25.0, 3.0)
    beam_angles: Optional[Tuple[float, ...]] = None
    azimuth_resolution_deg: float = 0.3
    max_range: float = 70.0
    min_range: float = 1.0
    mount_height: float = 1.8
    range_noise_std: float = 0.02
    dropout_probability: float = 0.02
    intensity: IntensityModel = field(default_factory=IntensityModel)

    def __post_init__(self) -> None:
        if not _is_int(self.beams) or self.beams <= 0:
            raise ValueError(f"LidarSpec.beams must be a positive int, got {self.beams!r}")
        if self.beam_angles is not None:
            angles = tuple(float(a) for a in self.beam_angles)
            object.__setattr__(self, "beam_angles", angles)
            if len(angles) != self.beams:
                raise ValueError(
                    f"LidarSpec: beam_angles has {len(angles)} angles but beams={self.beams}; pass "
                    f"beams=len(beam_angles) or use LidarSpec.from_beam_angles(angles)"
                )
            if not all(-90.0 < a < 90.0 for a in angles):
                raise ValueError(f"LidarSpec.beam_angles must lie in (-90, 90) degrees, got {angles}")
        else:
            fov = tuple(float(a) for a in self.vertical_fov)
            object.__setattr__(self, "vertical_fov", fov)
            if len(fov) != 2 or not -90.0 < fov[0] <= fov[1] < 90.0:
                raise ValueError(
                    f"LidarSpec.vertical_fov must be (lowest, highest) degrees with "
                    f"-90 < lowest <= highest < 90, got {self.vertical_fov}; pass an explicit list of "
                    f"elevations as beam_angles"
                )
            if fov[0] == fov[1] and self.beams > 1:
                raise ValueError(f"LidarSpec.vertical_fov {fov} is a single angle but beams={self.beams}")
        if not 0.0 < self.azimuth_resolution_deg <= 10.0:
            raise ValueError(f"LidarSpec.azimuth_resolution_deg must be in (0, 10], got {self.azimuth_resolution_deg}")
        if self.min_range < 0:
            raise ValueError(f"LidarSpec.min_range must be >= 0, got {self.min_range}")
        if not self.max_range > self.min_range:
            raise ValueError(
                f"LidarSpec.max_range ({self.max_range}) must be greater than min_range ({self.min_range})"
            )
        if self.mount_height <= 0:
            raise ValueError(f"LidarSpec.mount_height must be > 0 (m above the ground), got {self.mount_height}")
        if self.range_noise_std < 0:
            raise ValueError(f"LidarSpec.range_noise_std must be >= 0, got {self.range_noise_std}")
        if not 0.0 <= self.dropout_probability < 1.0:
            raise ValueError(f"LidarSpec.dropout_probability must be in [0, 1), got {self.dropout_probability}")
        if not isinstance(self.intensity, IntensityModel):
            raise TypeError(f"LidarSpec.intensity must be an IntensityModel, got {type(self.intensity).__name__}")

    @staticmethod
    def from_beam_angles(angles, **kwargs) -> "LidarSpec":
        """A spec with the explicit beam elevations ``angles`` (degrees); other fields from ``kwargs``."""
        angles = tuple(float(a) for a in angles)
        return LidarSpec(beams=len(angles), beam_angles=angles, **kwargs)

    def elevations(self) -> np.ndarray:
        """float64 ``[beams]`` beam elevations in radians, ascending."""
        if self.beam_angles is not None:
            return np.sort(np.radians(np.asarray(self.beam_angles)))
        return np.radians(np.linspace(self.vertical_fov[0], self.vertical_fov[1], self.beams))

    @property
    def columns(self) -> int:
        """Firings per revolution: ``round(360 / azimuth_resolution_deg)``."""
        return int(round(360.0 / self.azimuth_resolution_deg))

    def azimuths(self, phase: float = 0.0) -> np.ndarray:
        """float64 ``[columns]`` firing azimuths in radians, ``phase + j * 2 pi / columns``."""
        return phase + np.arange(self.columns) * (2.0 * np.pi / self.columns)


def ray_directions(elevations: np.ndarray, azimuths: np.ndarray) -> np.ndarray:
    """Unit ray directions ``[B, A, 3]`` for ``[B]`` elevations and ``[A]`` azimuths (radians)."""
    ce, se = np.cos(elevations)[:, None], np.sin(elevations)[:, None]
    ca, sa = np.cos(azimuths)[None], np.sin(azimuths)[None]
    return np.stack([ce * ca, ce * sa, np.broadcast_to(se, (len(elevations), len(azimuths)))], axis=-1)


__all__ = ["IntensityModel", "LidarSpec", "ray_directions"]
