"""Surface materials: how strongly a surface returns the laser, and how often it does not.

A :class:`Material` carries the diffuse ``reflectivity`` in [0, 1] (the intensity a return has at normal
incidence before range falloff), an extra ``dropout`` probability (glass and dark rubber often give no
return) and, for foliage-like volumes, a ``free_path``: the mean distance in metres a ray travels inside
the volume before it is returned (0 = an opaque surface). Porous volumes turn a smooth ellipsoid into a
crown the laser partly enters and partly passes through.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np


@dataclass(frozen=True)
class Material:
    """One surface material (see the module docstring)."""

    name: str
    reflectivity: float
    dropout: float = 0.0
    free_path: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.reflectivity <= 1.0:
            raise ValueError(f"Material {self.name!r}: reflectivity must be in [0, 1], got {self.reflectivity}")
        if not 0.0 <= self.dropout <= 1.0:
            raise ValueError(f"Material {self.name!r}: dropout must be in [0, 1], got {self.dropout}")
        if self.free_path < 0.0:
            raise ValueError(f"Material {self.name!r}: free_path must be >= 0, got {self.free_path}")

    def varied(self, rng: np.random.Generator, spread: float = 0.15) -> "Material":
        """A per-object variant: reflectivity times ``U(1 - spread, 1 + spread)``, clipped to [0, 1]."""
        factor = rng.uniform(1.0 - spread, 1.0 + spread)
        return replace(self, reflectivity=float(np.clip(self.reflectivity * factor, 0.0, 1.0)))


ASPHALT = Material("asphalt", 0.12)
CONCRETE = Material("concrete", 0.30)
PAINT = Material("road_paint", 0.70)
FACADE = Material("facade", 0.35)
GLASS = Material("glass", 0.06, dropout=0.6)
CAR_PAINT = Material("car_paint", 0.30)
CAR_GLASS = Material("car_glass", 0.08, dropout=0.45)
RUBBER = Material("rubber", 0.05, dropout=0.15)
PLATE = Material("licence_plate", 0.90)
METAL = Material("metal", 0.40)
BARK = Material("bark", 0.20)
FOLIAGE = Material("foliage", 0.28, free_path=0.8)
HEDGE = Material("hedge", 0.26, free_path=0.2)
RETROREFLECTOR = Material("retroreflector", 0.95)
CLOTH = Material("cloth", 0.25)
SKIN = Material("skin", 0.35)
SPOKES = Material("spoked_wheel", 0.30, free_path=0.12)

__all__ = [
    "Material",
    "ASPHALT",
    "CONCRETE",
    "PAINT",
    "FACADE",
    "GLASS",
    "CAR_PAINT",
    "CAR_GLASS",
    "RUBBER",
    "PLATE",
    "METAL",
    "BARK",
    "FOLIAGE",
    "HEDGE",
    "RETROREFLECTOR",
    "CLOTH",
    "SKIN",
    "SPOKES",
]
