"""Layers above the engine: spatial-wise large-kernel (SW-LK) convolution, its partitions, baselines,
residual blocks and weight conversions (re-parameterisation, export, official checkpoints)."""

from .baselines import (CONV_KINDS, DepthwiseLargeKernelConv3d, DilatedConv3d, PlainLargeKernelConv3d,
                        make_large_kernel_conv)
from .blocks import SWLKBasicBlock
from .convert import (PlainExport, export_plain, fuse_bn, fuse_dilated, grouped_from_plain, load_official_v1,
                      load_official_v2, plain_from_grouped, swlk_from_plain, to_submconv)
from .partition import PARTITIONS, SpatialPartition
from .swlk_conv import SWLKConv3d

__all__ = [
    "SWLKConv3d", "SpatialPartition", "PARTITIONS", "SWLKBasicBlock", "CONV_KINDS", "PlainLargeKernelConv3d",
    "DepthwiseLargeKernelConv3d", "DilatedConv3d", "make_large_kernel_conv", "PlainExport", "export_plain",
    "to_submconv", "swlk_from_plain", "fuse_bn", "fuse_dilated", "grouped_from_plain", "plain_from_grouped",
    "load_official_v1", "load_official_v2",
]
