"""The sparse tensor: active sites, their features, the grid and the cache of kernel maps."""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Union

import numpy as np
import torch
from torch import Tensor

from .coords import validate_indices
from .kernel_map import KernelMap, same_sites


def _shape_list(spatial_shape: Union[Sequence[int], Tensor, np.ndarray]) -> List[int]:
    if isinstance(spatial_shape, Tensor):
        spatial_shape = spatial_shape.tolist()
    try:
        out = [int(s) for s in spatial_shape]
    except TypeError:
        raise TypeError(f"spatial_shape must be a sequence of ints, got {spatial_shape!r}") from None
    if not out:
        raise ValueError("spatial_shape must have at least one axis")
    if any(s <= 0 for s in out):
        raise ValueError(f"spatial_shape entries must be positive, got {out}")
    return out


class SparseConvTensor:
    """A batch of sparse ``D``-dimensional feature grids (the spconv 2.x ``SparseConvTensor``).

    Args:
        features: ``[N, C]`` floating features, one row per active site.
        indices: ``[N, 1 + D]`` int32/int64 sites: batch index, then coordinates in the order of
            ``spatial_shape``.
        spatial_shape: grid size per axis ``[s_0, ..., s_{D-1}]``.
        batch_size: number of batch elements ``B``.
        grid: accepted for spconv compatibility (unused).
        voxel_num: accepted for spconv compatibility (unused).
        indice_dict: kernel-map cache shared along a network (``indice_key`` → :class:`KernelMap`).
        validate: check dtypes, ranges and duplicates (``True`` by default; layers create their outputs
            with ``validate=False``).

    The dense equivalent is ``dense[b, :, c_0, ..., c_{D-1}] = features[i]`` for site
    ``i = (b, c_0, ..., c_{D-1})`` and zero elsewhere.
    """

    def __init__(
        self,
        features: Tensor,
        indices: Tensor,
        spatial_shape: Union[Sequence[int], Tensor],
        batch_size: int,
        grid: Optional[Tensor] = None,
        voxel_num: Optional[Tensor] = None,
        indice_dict: Optional[Dict[str, KernelMap]] = None,
        benchmark: bool = False,
        *,
        validate: bool = True,
        **spconv_options,
    ) -> None:
        shape = _shape_list(spatial_shape)
        if validate:
            if not isinstance(features, Tensor):
                raise TypeError(f"features must be a torch.Tensor, got {type(features).__name__}")
            if not features.is_floating_point():
                raise TypeError(
                    f"features must be floating point (float16/32/64, bfloat16), got "
                    f"{features.dtype}; convert with .float()"
                )
            if features.dim() != 2:
                raise ValueError(f"features must have shape [N, C], got {tuple(features.shape)}")
            if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)):
                raise TypeError(f"batch_size must be an int, got {batch_size!r}")
            if isinstance(indices, Tensor) and features.device != indices.device:
                raise ValueError(
                    f"features are on {features.device} but indices on {indices.device}; move both to the same device"
                )
            validate_indices(indices, shape, int(batch_size))
            if features.shape[0] != indices.shape[0]:
                raise ValueError(
                    f"features has {features.shape[0]} rows but indices has {indices.shape[0]}; "
                    f"there must be one feature row per site"
                )
        self._features = features
        self.indices = indices
        self.spatial_shape = shape
        self.batch_size = int(batch_size)
        self.grid = grid
        self.voxel_num = voxel_num
        self.indice_dict: Dict[str, KernelMap] = {} if indice_dict is None else indice_dict
        self.benchmark = benchmark

    # -- features ---------------------------------------------------------------------------------
    @property
    def features(self) -> Tensor:
        return self._features

    @features.setter
    def features(self, value: Tensor) -> None:
        if not isinstance(value, Tensor) or value.dim() == 0:
            raise TypeError(
                f"features must be a [N, C] torch.Tensor, got "
                f"{tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__}"
            )
        if value.shape[0] != self.indices.shape[0]:
            raise ValueError(f"new features have {value.shape[0]} rows, the tensor has {self.indices.shape[0]} sites")
        self._features = value

    def replace_feature(self, feature: Tensor) -> "SparseConvTensor":
        """A tensor on the same sites (sharing the kernel-map cache) with ``feature [N, C']``."""
        if not isinstance(feature, Tensor) or feature.dim() == 0:
            raise TypeError(
                f"replace_feature needs a [N, C] torch.Tensor, got "
                f"{tuple(feature.shape) if isinstance(feature, Tensor) else type(feature).__name__}"
            )
        if feature.shape[0] != self.indices.shape[0]:
            raise ValueError(f"replace_feature got {feature.shape[0]} rows for {self.indices.shape[0]} sites")
        return SparseConvTensor(
            feature,
            self.indices,
            self.spatial_shape,
            self.batch_size,
            self.grid,
            self.voxel_num,
            self.indice_dict,
            self.benchmark,
            validate=False,
        )

    def shadow_copy(self) -> "SparseConvTensor":
        """A new tensor object sharing features, sites and the kernel-map cache."""
        return self.replace_feature(self.features)

    def minus(self) -> "SparseConvTensor":
        """The same sites with negated features."""
        return self.replace_feature(-self.features)

    def __add__(self, other: Union["SparseConvTensor", Tensor]) -> "SparseConvTensor":
        """Feature-wise sum with a tensor on the same sites (or a broadcastable dense tensor):
        ``out.features = self.features + other.features``. Tensors on other sites raise ``ValueError``
        (merge misaligned tensors with a conv first)."""
        if isinstance(other, SparseConvTensor):
            if not same_sites(self.indices, other.indices):
                raise ValueError(
                    f"cannot add SparseConvTensors on different sites ({self.indices.shape[0]} vs "
                    f"{other.indices.shape[0]} rows, or another order); both operands must share "
                    f"their indices"
                )
            other = other.features
        if not isinstance(other, Tensor):
            return NotImplemented
        return self.replace_feature(self.features + other)

    __radd__ = __add__

    def select_by_index(self, valid_indices: Tensor) -> "SparseConvTensor":
        """The sub-tensor of rows ``valid_indices`` (int row numbers or a boolean mask) with an empty
        kernel-map cache (cached maps refer to the old sites)."""
        return SparseConvTensor(
            self.features[valid_indices],
            self.indices[valid_indices],
            self.spatial_shape,
            self.batch_size,
            self.grid,
            self.voxel_num,
            None,
            self.benchmark,
            validate=False,
        )

    # -- geometry ---------------------------------------------------------------------------------
    @property
    def spatial_size(self) -> int:
        """Number of cells in one batch element's grid, ``prod(spatial_shape)``."""
        return int(np.prod(self.spatial_shape))

    @property
    def ndim(self) -> int:
        return len(self.spatial_shape)

    def find_indice_pair(self, key: Optional[str]) -> Optional[KernelMap]:
        """The cached kernel map stored under ``indice_key`` ``key``, or ``None``."""
        if key is None:
            return None
        return self.indice_dict.get(key)

    # -- dense conversions ------------------------------------------------------------------------
    def dense(self, channels_first: bool = True) -> Tensor:
        """Scatter to a dense ``[B, C, *spatial_shape]`` (or ``[B, *spatial_shape, C]``) tensor;
        differentiable w.r.t. the features."""
        c = self.features.shape[1]
        out = self.features.new_zeros((self.batch_size, *self.spatial_shape, c))
        idx = self.indices.to(torch.int64)
        out[tuple(idx[:, d] for d in range(idx.shape[1]))] = self.features
        if channels_first:
            return out.permute(0, self.ndim + 1, *range(1, self.ndim + 1)).contiguous()
        return out

    @classmethod
    def from_dense(cls, x: Tensor) -> "SparseConvTensor":
        """Sparse tensor of the non-zero sites of a channels-last dense ``[B, *spatial, C]`` tensor
        (a site is active when any channel is non-zero), as spconv's ``from_dense``."""
        if x.dim() < 3:
            raise ValueError(f"from_dense expects [B, *spatial, C] (channels last), got {tuple(x.shape)}")
        active = (x != 0).any(dim=-1)
        indices = torch.nonzero(active).to(torch.int32)
        features = x[active]
        return cls(features, indices, list(x.shape[1:-1]), int(x.shape[0]), validate=False)

    # -- spconv's quantisation accessors (features here are always floating point) ---------------------
    @property
    def is_quantized(self) -> bool:
        """``features.is_quantized``: always ``False`` here (the layers take floating-point features only)."""
        return bool(self.features.is_quantized)

    def q_scale(self) -> float:
        """The quantisation scale of quantised features; raises ``ValueError`` for floating-point ones."""
        if not self.is_quantized:
            raise ValueError("q_scale() needs quantized features; these are floating point")
        return float(self.features.q_scale())

    def dequantize(self) -> "SparseConvTensor":
        """The tensor with floating-point features (itself when they already are)."""
        return self.replace_feature(self.features.dequantize()) if self.is_quantized else self

    # -- conveniences -----------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return self.features.device

    def __repr__(self) -> str:
        return (
            f"SparseConvTensor(sites={self.indices.shape[0]}, channels={self.features.shape[1]}, "
            f"spatial_shape={self.spatial_shape}, batch_size={self.batch_size}, "
            f"cached_maps={sorted(self.indice_dict)})"
        )
