"""Sparse max / average pooling (over active inputs only) and global pooling per batch element."""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from .compile_support import eager_under_compile
from .conv import get_or_build_map
from .geometry import ConvGeometry, IntOrSeq
from .kernel_map import REGULAR, SUBMANIFOLD, KernelMap
from .modules import SparseModule, check_sparse_input
from .tensor import SparseConvTensor


def pool_features(x: Tensor, kmap: KernelMap, reduce: str) -> Tensor:
    """``out[j] = max`` (or mean) of ``x[i]`` over all pairs ``(i, j)`` of the map; inactive inputs are
    not counted (spconv semantics, unlike dense pooling over zero padding)."""
    c = x.shape[1]
    values = x.index_select(0, kmap.pair_in)
    index = kmap.pair_out.unsqueeze(1).expand(-1, c)
    out = x.new_zeros((kmap.num_out, c))
    if reduce == "max":
        return out.scatter_reduce(0, index, values, reduce="amax", include_self=False)
    summed = out.index_add(0, kmap.pair_out, values)
    counts = torch.bincount(kmap.pair_out, minlength=kmap.num_out).clamp_(min=1).to(x.dtype)
    return summed / counts.unsqueeze(1)


class _SparsePool(SparseModule):
    reduce = "max"

    def __init__(
        self,
        ndim: int,
        kernel_size: IntOrSeq = 3,
        stride: Optional[IntOrSeq] = 1,
        padding: IntOrSeq = 0,
        dilation: IntOrSeq = 1,
        indice_key: Optional[str] = None,
        subm: bool = False,
        algo=None,
        record_voxel_count: bool = False,
        name=None,
    ) -> None:
        super().__init__(name)
        if stride is None:  # spconv: the window's own size (1 for submanifold pooling)
            stride = 1 if subm else kernel_size
        self.geometry = ConvGeometry.create(ndim, kernel_size, stride, padding, dilation)
        if subm and any(s != 1 for s in self.geometry.stride):
            raise ValueError(f"submanifold pooling keeps its sites, so stride must be 1, got {stride!r}")
        self.ndim = ndim
        self.subm = subm
        self.indice_key = indice_key

    def extra_repr(self) -> str:
        g = self.geometry
        return f"kernel_size={g.kernel_size}, stride={g.stride}, padding={g.padding}, dilation={g.dilation}"

    @eager_under_compile
    def forward(self, x: SparseConvTensor) -> SparseConvTensor:
        check_sparse_input(x, type(self).__name__, ndim=self.ndim)
        kmap = get_or_build_map(x, SUBMANIFOLD if self.subm else REGULAR, self.geometry, self.indice_key)
        out = pool_features(x.features, kmap, self.reduce)
        return SparseConvTensor(
            out, kmap.out_indices, list(kmap.out_spatial_shape), x.batch_size, indice_dict=x.indice_dict, validate=False
        )


class SparseMaxPool(_SparsePool):
    """Max over the active inputs under the window: ``out[q] = max_k in[stride q - padding + dilation k]``."""

    reduce = "max"


class SparseAvgPool(_SparsePool):
    """Mean over the active inputs under the window (inactive sites are not counted)."""

    reduce = "mean"


def _fixed(base, ndim: int):
    # spconv's SparseMaxPool{1,2,3}d / SparseAvgPool{1,2,3}d: stride defaults to kernel_size (stride=None)
    def init(
        self,
        kernel_size: IntOrSeq = 3,
        stride: Optional[IntOrSeq] = None,
        padding: IntOrSeq = 0,
        dilation: IntOrSeq = 1,
        indice_key: Optional[str] = None,
        algo=None,
        record_voxel_count: bool = False,
        name=None,
        *,
        subm: bool = False,
    ) -> None:
        base.__init__(
            self, ndim, kernel_size, stride, padding, dilation, indice_key, subm, algo, record_voxel_count, name
        )

    return init


class SparseMaxPool1d(SparseMaxPool):
    __init__ = _fixed(SparseMaxPool, 1)


class SparseMaxPool2d(SparseMaxPool):
    __init__ = _fixed(SparseMaxPool, 2)


class SparseMaxPool3d(SparseMaxPool):
    __init__ = _fixed(SparseMaxPool, 3)


class SparseMaxPool4d(SparseMaxPool):
    __init__ = _fixed(SparseMaxPool, 4)


class SparseAvgPool1d(SparseAvgPool):
    __init__ = _fixed(SparseAvgPool, 1)


class SparseAvgPool2d(SparseAvgPool):
    __init__ = _fixed(SparseAvgPool, 2)


class SparseAvgPool3d(SparseAvgPool):
    __init__ = _fixed(SparseAvgPool, 3)


def global_pool(x: SparseConvTensor, reduce: str) -> Tensor:
    """``[B, C]``: max or mean of the features of each batch element (zeros for an empty element)."""
    feats = x.features
    batch = x.indices[:, 0].to(torch.int64)
    c = feats.shape[1]
    out = feats.new_zeros((x.batch_size, c))
    if reduce == "max":
        return out.scatter_reduce(0, batch.unsqueeze(1).expand(-1, c), feats, reduce="amax", include_self=False)
    counts = torch.bincount(batch, minlength=x.batch_size).clamp_(min=1).to(feats.dtype)
    return out.index_add(0, batch, feats) / counts.unsqueeze(1)


class SparseGlobalMaxPool(SparseModule):
    """Per batch element max over all sites: ``[B, C]`` dense output."""

    @eager_under_compile
    def forward(self, x: SparseConvTensor) -> Tensor:
        check_sparse_input(x, type(self).__name__)
        return global_pool(x, "max")


class SparseGlobalAvgPool(SparseModule):
    """Per batch element mean over all sites: ``[B, C]`` dense output."""

    @eager_under_compile
    def forward(self, x: SparseConvTensor) -> Tensor:
        check_sparse_input(x, type(self).__name__)
        return global_pool(x, "mean")
