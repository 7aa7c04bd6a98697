"""ScanNet-20 class ids of the generated scenes; ``IGN`` marks what ScanNet-20 ignores (ceiling, props)."""

from ..scannet import SCANNET20_CLASSES
from ..scene import IGNORE_INDEX

_C = {name: i for i, name in enumerate(SCANNET20_CLASSES)}
WALL, FLOOR, CABINET, BED, CHAIR, SOFA, TABLE, DOOR, WINDOW, BOOKSHELF = (
    _C[n] for n in ("wall", "floor", "cabinet", "bed", "chair", "sofa", "table", "door", "window", "bookshelf")
)
PICTURE, COUNTER, DESK, CURTAIN, FRIDGE, SHOWERCURTAIN, TOILET, SINK, BATHTUB, OTHERFURN = (
    _C[n]
    for n in (
        "picture",
        "counter",
        "desk",
        "curtain",
        "refrigerator",
        "showercurtain",
        "toilet",
        "sink",
        "bathtub",
        "otherfurniture",
    )
)
IGN = IGNORE_INDEX
