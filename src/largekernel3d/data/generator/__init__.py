"""Procedural labelled indoor scenes with the ScanNet-20 classes (the built-in default data).

A scene is a rectangular room (random size, height, wall/floor materials) whose furniture depends on a
random room type (bedroom, living room, office, kitchen, bathroom, conference room) and is placed with
indoor context: beds, sofas, desks, cabinets, bookshelves, counters against walls, chairs around tables
and in front of desks, pillows on beds, clutter on tables, curtains beside windows, pictures above
sofas and beds, radiators under windows. Doors and windows are openings cut into the walls.

Points are sampled on *surfaces* (never in volumes) with a density per square metre, then

- surfaces hidden inside or against other solids (floor under a cabinet, the wall behind a bookshelf,
  the leg ends under a table top) are removed,
- random holes (missing scan regions) are cut,
- sensor-like noise is added along the normal and isotropically,
- colours are material colours shared by several classes (white walls, white cabinets, white toilets;
  wood floors, wood tables, wood doors), with Lambertian shading, a smooth illumination gradient and
  per-point noise, so colour alone does not determine the class,

and ``points_per_scene`` points are kept. The ceiling (NYU40 22) and props (pillows, books, monitors,
boxes, lamps, night stands, whiteboards) carry :data:`IGNORE_INDEX` as in ScanNet-20.
Scene ``i`` of a dataset with seed ``s`` is fully determined by ``(s, i)``.

Modules, one job each, in the order a scene is made: ``labels`` (class ids) and ``materials`` (colour
palettes); ``primitives`` (rectangles, cylinders, solids); ``furniture`` (object makers in a local frame);
``room`` (a room under construction and the placement rules); ``shell`` (floor, walls, ceiling, doors,
windows, curtains); ``furnish`` (furniture groups per room type); ``layout`` (a whole furnished room);
``sampling`` (surface points and occlusion); ``scanner`` (missing regions, shading, sensor noise);
``generate`` (one scene); ``dataset`` (:class:`GeneratedIndoorDataset`).
"""

from .dataset import GeneratedIndoorDataset
from .furniture import (
    make_bathtub,
    make_bed,
    make_bookshelf,
    make_cabinet,
    make_chair,
    make_counter,
    make_desk,
    make_fridge,
    make_nightstand,
    make_other,
    make_sofa,
    make_table,
    make_toilet,
    make_vanity,
    make_wall_cabinet,
)
from .generate import generate_indoor_scene
from .labels import (
    BATHTUB,
    BED,
    BOOKSHELF,
    CABINET,
    CHAIR,
    COUNTER,
    CURTAIN,
    DESK,
    DOOR,
    FLOOR,
    FRIDGE,
    IGN,
    OTHERFURN,
    PICTURE,
    SHOWERCURTAIN,
    SINK,
    SOFA,
    TABLE,
    TOILET,
    WALL,
    WINDOW,
)
from .layout import ROOM_TYPES
from .materials import ANY_MATS, CERAMIC_MATS, FABRIC_MATS, FLOOR_MATS, FURN_MATS, WALL_MATS, WOOD_MATS
from .room import FURNITURE_DENSITY

__all__ = [
    "GeneratedIndoorDataset",
    "generate_indoor_scene",
    "ROOM_TYPES",
    "FURNITURE_DENSITY",
    "make_bathtub",
    "make_bed",
    "make_bookshelf",
    "make_cabinet",
    "make_chair",
    "make_counter",
    "make_desk",
    "make_fridge",
    "make_nightstand",
    "make_other",
    "make_sofa",
    "make_table",
    "make_toilet",
    "make_vanity",
    "make_wall_cabinet",
    "WALL",
    "FLOOR",
    "CABINET",
    "BED",
    "CHAIR",
    "SOFA",
    "TABLE",
    "DOOR",
    "WINDOW",
    "BOOKSHELF",
    "PICTURE",
    "COUNTER",
    "DESK",
    "CURTAIN",
    "FRIDGE",
    "SHOWERCURTAIN",
    "TOILET",
    "SINK",
    "BATHTUB",
    "OTHERFURN",
    "IGN",
    "WALL_MATS",
    "FLOOR_MATS",
    "WOOD_MATS",
    "FURN_MATS",
    "FABRIC_MATS",
    "CERAMIC_MATS",
    "ANY_MATS",
]
