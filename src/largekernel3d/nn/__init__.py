"""Layers above the engine: spatial-wise large-kernel (SW-LK) convolution, its partitions, baselines and
weight conversions (re-parameterisation, export, official checkpoints). The residual blocks built from
them are :class:`largekernel3d.models.blocks.BasicBlock` (a per-stage :class:`~largekernel3d.models.blocks.ConvSpec`).

Which version to use, and how the large kernel becomes a small one:

* Train and infer with :class:`SWLKConv3d` (``kernel_size=7``, ``partition="center1"``): it stores only
  ``27 x C_in x C_out`` shared weights (+ the ``k^3 x C_in`` encoding) and computes with them directly --
  neighbour features are summed per group, then multiplied once per group -- in training AND inference.
  There is no full ``k^3`` weight to overwrite with group means (the official V1) and no custom CUDA
  build (the official V2, k = 7 only); any odd ``k`` in 3..31 and per-axis sizes work.
* Official checkpoints: :func:`load_official_v1` (V1 ``SpatialGroupConv``, 7^3 weight -> group means,
  plus the dilated branch) and :func:`load_official_v2` (spconv-plus ``SpatialGroupConv3d``).
* Export to engines without weight sharing (spconv): :func:`export_plain` expands the 27 groups into a
  plain ``k^3`` weight, merges the dilated branch, and turns the encoding into the weight of an extra
  all-ones input channel; :func:`to_submconv` gives a ``SubMConv3d`` when there is no encoding.
* Re-parameterise for inference: :func:`fuse_bn` (BatchNorm into the conv), :func:`fuse_dilated`
  (dilated branch into one plain kernel).
* RepLKNet: :class:`RepLargeKernelConv3d` trains a parallel 3³ branch next to any large kernel;
  :func:`merge_small_kernel` / :func:`merge_small_kernels` merge it exactly into one layer for inference.
"""

from .baselines import (
    CONV_KINDS,
    DepthwiseLargeKernelConv3d,
    DilatedConv3d,
    PlainLargeKernelConv3d,
    make_large_kernel_conv,
)
from .convert import (
    PlainExport,
    export_plain,
    fuse_bn,
    fuse_dilated,
    grouped_from_plain,
    load_official_v1,
    load_official_v2,
    plain_from_grouped,
    swlk_from_plain,
    to_submconv,
)
from .partition import PARTITIONS, SpatialPartition
from .swlk_conv import SWLKConv3d

__all__ = [
    "SWLKConv3d",
    "SpatialPartition",
    "PARTITIONS",
    "CONV_KINDS",
    "PlainLargeKernelConv3d",
    "DepthwiseLargeKernelConv3d",
    "DilatedConv3d",
    "make_large_kernel_conv",
    "PlainExport",
    "export_plain",
    "to_submconv",
    "swlk_from_plain",
    "fuse_bn",
    "fuse_dilated",
    "grouped_from_plain",
    "plain_from_grouped",
    "load_official_v1",
    "load_official_v2",
]

from .reparam import (
    RepLargeKernelConv3d,
    add_small_kernels,
    merge_small_kernel,
    merge_small_kernel_export,
    merge_small_kernels,
)

__all__ += [
    "RepLargeKernelConv3d",
    "merge_small_kernel",
    "merge_small_kernels",
    "merge_small_kernel_export",
    "add_small_kernels",
]
