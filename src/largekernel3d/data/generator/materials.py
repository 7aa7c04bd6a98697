"""Material colours (RGB in [0, 1]). Several classes draw from the same palettes (white walls, white
cabinets, white toilets; wood floors, tables, doors), so colour alone does not tell the class."""

from typing import Sequence, Tuple

import numpy as np

WHITE = (0.88, 0.88, 0.86)
OFFWHITE = (0.82, 0.80, 0.74)
BEIGE = (0.78, 0.71, 0.60)
LGREY = (0.70, 0.70, 0.70)
GREY = (0.50, 0.50, 0.52)
DARK = (0.22, 0.22, 0.24)
BLACK = (0.10, 0.10, 0.11)
WOOD_L = (0.74, 0.58, 0.40)
WOOD_M = (0.55, 0.38, 0.24)
WOOD_D = (0.34, 0.22, 0.14)
PALEBLUE = (0.68, 0.76, 0.84)
PALEGREEN = (0.72, 0.80, 0.70)
BLUE = (0.25, 0.34, 0.58)
RED = (0.58, 0.20, 0.20)
GREEN = (0.30, 0.48, 0.34)
METAL = (0.68, 0.70, 0.73)

WALL_MATS = (WHITE, OFFWHITE, BEIGE, LGREY, PALEBLUE, PALEGREEN)
FLOOR_MATS = (WOOD_L, WOOD_M, GREY, LGREY, BEIGE, (0.42, 0.45, 0.52))
WOOD_MATS = (WOOD_L, WOOD_M, WOOD_D)
FURN_MATS = (WOOD_L, WOOD_M, WOOD_D, WHITE, LGREY, GREY, DARK)
FABRIC_MATS = (BLUE, RED, GREEN, BEIGE, GREY, DARK, OFFWHITE)
CERAMIC_MATS = (WHITE, OFFWHITE, LGREY)
ANY_MATS = WALL_MATS + FURN_MATS + FABRIC_MATS


def material(rng: np.random.Generator, choices: Sequence[Tuple[float, float, float]]) -> np.ndarray:
    """One of ``choices`` (RGB in [0, 1]) with a small per-object variation:
    ``clip(base * U(0.9, 1.1) + N(0, 0.02^2 I), 0, 1)``, shape (3,)."""
    base = np.asarray(choices[rng.integers(len(choices))], dtype=np.float64)
    return np.clip(base * rng.uniform(0.9, 1.1) + rng.normal(0, 0.02, 3), 0.0, 1.0)
