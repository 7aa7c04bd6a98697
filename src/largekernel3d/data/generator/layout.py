"""A furnished room: its type and size, its shell, doors and windows, then its furniture."""

from __future__ import annotations

import numpy as np

from .furnish import furnish
from .primitives import Parts
from .room import Room
from .shell import add_door, add_window, build_shell

ROOM_TYPES = ("bedroom", "living", "office", "kitchen", "bathroom", "conference")
ROOM_TYPE_PROBS = (0.18, 0.17, 0.17, 0.18, 0.15, 0.15)


def build_room(rng: np.random.Generator) -> Room:
    """Draw a room type (:data:`ROOM_TYPES`, with :data:`ROOM_TYPE_PROBS`), a size (metres: bathrooms
    2-3.5 x 2-3.2, conference rooms 4.5-8 x 4-7, others 3-7 x 3-6.5; height 2.4-3.1), build its shell, one
    or two doors, zero to three windows (at most one in a bathroom), and furnish it."""
    rtype = ROOM_TYPES[int(rng.choice(len(ROOM_TYPES), p=list(ROOM_TYPE_PROBS)))]
    if rtype == "bathroom":
        W, D = rng.uniform(2.0, 3.5), rng.uniform(2.0, 3.2)
    elif rtype == "conference":
        W, D = rng.uniform(4.5, 8.0), rng.uniform(4.0, 7.0)
    else:
        W, D = rng.uniform(3.0, 7.0), rng.uniform(3.0, 6.5)
    H = rng.uniform(2.4, 3.1)
    room = Room(W, D, H, Parts())
    build_shell(room, rng)
    for _ in range(1 + int(rng.random() < 0.3)):
        add_door(room, rng)
    for _ in range(int(rng.choice([0, 1, 1, 2, 2, 3])) if rtype != "bathroom" else int(rng.random() < 0.5)):
        add_window(room, rng)
    furnish(room, rng, rtype)
    return room
