"""The sparse-convolution engine, a drop-in for ``spconv.pytorch``::

    import largekernel3d.sparse as spconv

    x = spconv.SparseConvTensor(features, indices, spatial_shape, batch_size)
    net = spconv.SparseSequential(spconv.SubMConv3d(4, 32, 3, indice_key="subm1"), torch.nn.ReLU())
"""

from . import utils
from .conv import (ConvAlgo, SparseConv1d, SparseConv2d, SparseConv3d, SparseConv4d, SparseConvolution,
                   SparseConvTranspose1d, SparseConvTranspose2d, SparseConvTranspose3d, SparseConvTranspose4d,
                   SparseInverseConv1d, SparseInverseConv2d, SparseInverseConv3d, SparseInverseConv4d, SubMConv1d,
                   SubMConv2d, SubMConv3d, SubMConv4d)
from .functional import sparse_conv
from .geometry import ConvGeometry
from .cpu.host_memory import keep_freed_memory
from .kernel_map import KernelMap, build_regular_map, build_submanifold_map, build_transposed_map
from .modules import (AddTable, AddTableMisaligned, ConcatTable, Identity, JoinTable, RemoveGrid, SparseBatchNorm,
                      SparseIdentity, SparseModule, SparseReLU, SparseSequential, SparseSyncBatchNorm, ToDense,
                      assign_name_for_sparse_modules, is_sparse_conv, is_spconv_module)
from .point_to_voxel import PointToVoxel, VoxelGrid, VoxelizedPoints, points_to_voxels
from .pool import (SparseAvgPool, SparseAvgPool1d, SparseAvgPool2d, SparseAvgPool3d, SparseGlobalAvgPool,
                   SparseGlobalMaxPool, SparseMaxPool, SparseMaxPool1d, SparseMaxPool2d, SparseMaxPool3d,
                   SparseMaxPool4d)
from .spconv_compat import (convert_spconv21_weight, convert_spconv_state_dict, from_spconv, load_spconv_state_dict,
                            to_spconv, to_spconv_state_dict)
from .tensor import SparseConvTensor
from .voxelize import Voxelization, batch_sparse, voxelize

__all__ = [
    "SparseConvTensor", "SparseModule", "SparseSequential", "ToDense", "RemoveGrid", "SparseConvolution",
    "SubMConv1d", "SubMConv2d", "SubMConv3d", "SparseConv1d", "SparseConv2d", "SparseConv3d",
    "SparseConvTranspose2d", "SparseConvTranspose3d", "SparseInverseConv2d", "SparseInverseConv3d",
    "SparseMaxPool", "SparseMaxPool1d", "SparseMaxPool2d", "SparseMaxPool3d", "SparseAvgPool",
    "SparseAvgPool1d", "SparseAvgPool2d", "SparseAvgPool3d", "SparseGlobalMaxPool", "SparseGlobalAvgPool",
    "KernelMap", "ConvGeometry", "build_submanifold_map", "build_regular_map", "build_transposed_map",
    "sparse_conv", "voxelize", "Voxelization", "batch_sparse",
    "SparseConvTranspose1d", "SparseInverseConv1d", "SparseBatchNorm", "SparseReLU", "SparseIdentity",
    "JoinTable", "AddTable", "ConcatTable",
    "from_spconv", "to_spconv", "convert_spconv21_weight", "convert_spconv_state_dict", "load_spconv_state_dict",
    "to_spconv_state_dict", "keep_freed_memory", "PointToVoxel", "VoxelGrid", "VoxelizedPoints", "points_to_voxels",
    "SubMConv4d", "SparseConv4d", "SparseConvTranspose4d", "SparseInverseConv4d", "SparseMaxPool4d",
    "ConvAlgo", "Identity", "SparseSyncBatchNorm", "AddTableMisaligned",
    "assign_name_for_sparse_modules", "is_spconv_module", "is_sparse_conv", "utils",
]
