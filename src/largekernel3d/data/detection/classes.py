"""Class sets of the LiDAR detection datasets and the maps from each dataset's own labels to them.

- KITTI: the label file's ``type`` names (:data:`KITTI_TYPES`); the usual detection set is
  :data:`KITTI_CLASSES`. ``Van``, ``Truck``, ``Person_sitting``, ``Tram`` and ``Misc`` are ignored unless
  the reader is given them as classes or a ``class_map`` folds them into one (e.g. ``{"Van": "Car"}``).
- nuScenes: the 23 annotation categories map to the 10 detection classes exactly as the devkit's
  ``category_to_detection_name`` does (:data:`NUSCENES_CATEGORY_TO_CLASS`); categories that map to no
  class (``vehicle.emergency.*``, ``movable_object.debris``, ``movable_object.pushable_pullable``,
  ``static_object.bicycle_rack``, ``animal``, ``human.pedestrian.personal_mobility``,
  ``human.pedestrian.stroller``, ``human.pedestrian.wheelchair``) are ignored. The class order of
  :data:`NUSCENES_CLASSES` is CenterPoint's / OpenPCDet's, so the six CenterPoint heads are consecutive
  slices ([car], [truck, construction_vehicle], [bus, trailer], [barrier], [motorcycle, bicycle],
  [pedestrian, traffic_cone]).
- PandaSet: its 28 cuboid labels (:data:`PANDASET_LABELS`) fold into :data:`PANDASET_CLASSES` through
  :data:`PANDASET_LABEL_TO_CLASS`; our choice, following the nuScenes grouping: pick-up trucks are cars
  (nuScenes files them under ``vehicle.car``), medium and semi trucks and construction vehicles are
  trucks, every two-wheeler / small personal vehicle is a ``Cyclist`` (with or without its rider),
  pedestrians with or without an object are pedestrians, cones and pylons are ``Cone``. Emergency
  vehicles, towed objects, trains / trams / trolleys, uncommon vehicles, animals, signs, barriers and
  rolling containers map to no class (ignored), as in nuScenes.
"""

from __future__ import annotations

from typing import Dict, Mapping, Optional, Sequence, Tuple

KITTI_TYPES: Tuple[str, ...] = (
    "Car",
    "Van",
    "Truck",
    "Pedestrian",
    "Person_sitting",
    "Cyclist",
    "Tram",
    "Misc",
    "DontCare",
)
"""Every ``type`` a KITTI object label line may carry."""

KITTI_CLASSES: Tuple[str, ...] = ("Car", "Pedestrian", "Cyclist")
"""The three classes of the KITTI 3D detection benchmark."""

NUSCENES_CLASSES: Tuple[str, ...] = (
    "car",
    "truck",
    "construction_vehicle",
    "bus",
    "trailer",
    "barrier",
    "motorcycle",
    "bicycle",
    "pedestrian",
    "traffic_cone",
)
"""The 10 nuScenes detection classes, in CenterPoint's order."""

NUSCENES_CATEGORY_TO_CLASS: Dict[str, str] = {
    "movable_object.barrier": "barrier",
    "vehicle.bicycle": "bicycle",
    "vehicle.bus.bendy": "bus",
    "vehicle.bus.rigid": "bus",
    "vehicle.car": "car",
    "vehicle.construction": "construction_vehicle",
    "vehicle.motorcycle": "motorcycle",
    "human.pedestrian.adult": "pedestrian",
    "human.pedestrian.child": "pedestrian",
    "human.pedestrian.construction_worker": "pedestrian",
    "human.pedestrian.police_officer": "pedestrian",
    "movable_object.trafficcone": "traffic_cone",
    "vehicle.trailer": "trailer",
    "vehicle.truck": "truck",
}
"""nuScenes category name → detection class (the devkit's ``category_to_detection_name``); a category
absent here maps to no class."""

NUSCENES_ATTRIBUTES: Tuple[str, ...] = (
    "cycle.with_rider",
    "cycle.without_rider",
    "pedestrian.moving",
    "pedestrian.sitting_lying_down",
    "pedestrian.standing",
    "vehicle.moving",
    "vehicle.parked",
    "vehicle.stopped",
)
"""The eight nuScenes attribute names (the names only; their tokens are in ``attribute.json``)."""

PANDASET_LABELS: Tuple[str, ...] = (
    "Car",
    "Pickup Truck",
    "Medium-sized Truck",
    "Semi-truck",
    "Towed Object",
    "Motorcycle",
    "Other Vehicle - Construction Vehicle",
    "Other Vehicle - Uncommon",
    "Other Vehicle - Pedicab",
    "Emergency Vehicle",
    "Bus",
    "Personal Mobility Device",
    "Motorized Scooter",
    "Bicycle",
    "Train",
    "Trolley",
    "Tram / Subway",
    "Pedestrian",
    "Pedestrian with Object",
    "Animals - Bird",
    "Animals - Other",
    "Pylons",
    "Road Barriers",
    "Signs",
    "Cones",
    "Construction Signs",
    "Temporary Construction Barriers",
    "Rolling Containers",
)
"""Every PandaSet cuboid ``label``."""

PANDASET_CLASSES: Tuple[str, ...] = ("Car", "Truck", "Bus", "Pedestrian", "Cyclist", "Cone")
"""Our PandaSet detection classes (see the module docstring for the grouping)."""

PANDASET_LABEL_TO_CLASS: Dict[str, Optional[str]] = {
    "Car": "Car",
    "Pickup Truck": "Car",
    "Medium-sized Truck": "Truck",
    "Semi-truck": "Truck",
    "Other Vehicle - Construction Vehicle": "Truck",
    "Bus": "Bus",
    "Pedestrian": "Pedestrian",
    "Pedestrian with Object": "Pedestrian",
    "Bicycle": "Cyclist",
    "Motorcycle": "Cyclist",
    "Motorized Scooter": "Cyclist",
    "Personal Mobility Device": "Cyclist",
    "Other Vehicle - Pedicab": "Cyclist",
    "Cones": "Cone",
    "Pylons": "Cone",
    "Towed Object": None,
    "Other Vehicle - Uncommon": None,
    "Emergency Vehicle": None,
    "Train": None,
    "Trolley": None,
    "Tram / Subway": None,
    "Animals - Bird": None,
    "Animals - Other": None,
    "Road Barriers": None,
    "Signs": None,
    "Construction Signs": None,
    "Temporary Construction Barriers": None,
    "Rolling Containers": None,
}
"""PandaSet cuboid label → class of :data:`PANDASET_CLASSES` (``None``: ignored)."""


def check_classes(classes: Sequence[str], allowed: Sequence[str], what: str) -> Tuple[str, ...]:
    """``classes`` as a tuple after checking it is a non-empty sequence of distinct names from ``allowed``.

    Raises ``TypeError`` for a bare string or non-string entries and ``ValueError`` for an empty,
    repeated or unknown name (the message lists the allowed names).
    """
    if isinstance(classes, str) or not isinstance(classes, Sequence):
        raise TypeError(f"{what} classes must be a sequence of class names, got {classes!r}")
    names = tuple(classes)
    if not names:
        raise ValueError(f"{what} classes must not be empty")
    if not all(isinstance(n, str) for n in names):
        raise TypeError(f"{what} classes must be strings, got {names!r}")
    if len(set(names)) != len(names):
        raise ValueError(f"{what} classes must be distinct, got {names!r}")
    unknown = [n for n in names if n not in allowed]
    if unknown:
        raise ValueError(f"{what} classes {unknown} are unknown; choose from {tuple(allowed)}")
    return names


def check_class_map(
    class_map: Optional[Mapping[str, Optional[str]]], sources: Sequence[str], classes: Sequence[str], what: str
) -> Dict[str, Optional[str]]:
    """Check a ``{source label: class name or None}`` override and return it as a dict.

    Every key must be one of ``sources`` and every value ``None`` (ignore that label) or one of ``classes``.
    """
    if class_map is None:
        return {}
    if not isinstance(class_map, Mapping):
        raise TypeError(f"{what} class_map must be a mapping {{label: class or None}}, got {type(class_map).__name__}")
    out: Dict[str, Optional[str]] = {}
    for key, value in class_map.items():
        if key not in sources:
            raise ValueError(
                f"{what} class_map key {key!r} is not a label of the dataset; choose from {tuple(sources)}"
            )
        if value is not None and value not in classes:
            raise ValueError(
                f"{what} class_map maps {key!r} to {value!r}, which is not one of the classes "
                f"{tuple(classes)} (use None to ignore the label)"
            )
        out[key] = value
    return out


__all__ = [
    "KITTI_TYPES",
    "KITTI_CLASSES",
    "NUSCENES_CLASSES",
    "NUSCENES_CATEGORY_TO_CLASS",
    "NUSCENES_ATTRIBUTES",
    "PANDASET_LABELS",
    "PANDASET_CLASSES",
    "PANDASET_LABEL_TO_CLASS",
    "check_classes",
    "check_class_map",
]
