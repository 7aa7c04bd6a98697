"""Readers for point-cloud files a user brings (PLY, PCD, LAS/LAZ, KITTI / nuScenes ``.bin``, NumPy, text),
chosen by extension: ``read_point_cloud(path, units=..., axes=..., columns=...) -> LoadedCloud``."""

from .cloud import UNIT_FACTORS, LoadedCloud, PointCloudFileError, ReadOptions, parse_axes, unit_factor
from .columns import default_columns, parse_columns
from .dispatch import EXTENSIONS, READERS, detect_format, expand_inputs, is_point_cloud_file, read_point_cloud
from .las import read_las, wkt_linear_unit
from .lzf import lzf_decompress
from .numpy_files import read_npy, read_npz
from .pcd import read_pcd
from .ply import read_ply
from .raw_bin import read_kitti_bin, read_nuscenes_bin
from .text import read_text

__all__ = [
    "UNIT_FACTORS",
    "LoadedCloud",
    "PointCloudFileError",
    "ReadOptions",
    "parse_axes",
    "unit_factor",
    "default_columns",
    "parse_columns",
    "EXTENSIONS",
    "READERS",
    "detect_format",
    "expand_inputs",
    "is_point_cloud_file",
    "read_point_cloud",
    "read_las",
    "wkt_linear_unit",
    "lzf_decompress",
    "read_npy",
    "read_npz",
    "read_pcd",
    "read_ply",
    "read_kitti_bin",
    "read_nuscenes_bin",
    "read_text",
]
