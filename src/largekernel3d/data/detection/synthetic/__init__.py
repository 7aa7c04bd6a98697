"""A synthetic spinning LiDAR on procedurally generated street scenes: the built-in detection data
that needs no download.

A scene (:func:`generate_street_scene`) is a street with sloped ground, curbs and sidewalks, buildings,
trees, bushes, poles and signs, parked and moving cars and trucks, pedestrians and cyclists, all built
from analytic primitives (boxes, cylinders, ellipsoids, convex polytopes). A :class:`LidarSpec` sensor
casts its rays against them (:func:`scan`), nearest hit per ray, so occlusion and range-dependent density
come out as a real sensor's. :func:`generate_frame` and :class:`SyntheticLidarDataset` turn scans into
:class:`~largekernel3d.data.detection.frame.LidarFrame` objects with boxes, point counts and per-point
semantic labels.

Modules, one job each: ``categories`` (class lists and sizes), ``materials``, ``primitives`` (the
solids and a builder), ``intersect`` (ray/solid kernels), ``ground`` (road, curbs, markings),
``vehicles`` / ``people`` / ``static`` (object and background makers), ``objects`` (boxes),
``placement`` (non-overlap), ``config`` / ``layout`` / ``populate`` / ``scene`` (scene generation),
``sensor`` / ``raycast`` / ``scan`` (the LiDAR), ``dataset`` (frames).
"""

from .categories import CLASS_SIZES, OBJECT_CLASSES, SEMANTIC_CLASSES, SizeRange
from .config import StreetSceneConfig
from .dataset import POINT_FEATURES, SyntheticLidarDataset, generate_frame
from .ground import StreetGround
from .materials import Material
from .objects import ObjectModel, SceneObject, place_object
from .people import make_cyclist, make_pedestrian
from .primitives import Kind, PartsBuilder, Primitives
from .scan import LidarScan, scan
from .scene import StreetScene, generate_street_scene
from .sensor import IntensityModel, LidarSpec
from .vehicles import make_car, make_truck

__all__ = [
    "OBJECT_CLASSES",
    "SEMANTIC_CLASSES",
    "CLASS_SIZES",
    "SizeRange",
    "StreetSceneConfig",
    "POINT_FEATURES",
    "SyntheticLidarDataset",
    "generate_frame",
    "StreetGround",
    "Material",
    "ObjectModel",
    "SceneObject",
    "place_object",
    "make_car",
    "make_truck",
    "make_pedestrian",
    "make_cyclist",
    "Kind",
    "PartsBuilder",
    "Primitives",
    "LidarScan",
    "scan",
    "StreetScene",
    "generate_street_scene",
    "IntensityModel",
    "LidarSpec",
]
