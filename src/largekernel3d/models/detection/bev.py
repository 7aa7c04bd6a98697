"""From the sparse 3D backbone to a bird's-eye-view feature map, and the 2D neck on it.

:class:`HeightCompression` (OpenPCDet's ``HeightCompression``) densifies the stride-8 sparse tensor and
folds its height into the channels::

    dense  = x.dense()                                  [B, C, D, H, W]
    bev[b, c * D + d, h, w] = dense[b, c, d, h, w]      [B, C * D, H, W]   (channel c's D heights are adjacent)

:class:`BEVNeck` is the SECOND / RPN neck (OpenPCDet's ``BaseBEVBackbone``, same state-dict keys). Level ``i``
is a block ``ZeroPad2d(1) - Conv3x3(stride s_i) - BN - ReLU`` followed by ``n_i`` ``Conv3x3 - BN - ReLU``
(``blocks.<i>``), then an up-sampling ``deblocks.<i>`` to a common resolution::

    u_i >= 1:  ConvTranspose2d(kernel u_i, stride u_i) - BN - ReLU
    u_i <  1:  Conv2d(kernel 1/u_i, stride 1/u_i) - BN - ReLU          (a fractional stride down-samples)
    out = concat_i deblocks_i(blocks_i(... blocks_0(x)))               sum_i F_i channels

(an optional extra up-sampling entry after the last level is applied to the concatenation). Convs have no
bias; every BatchNorm has ``eps = 1e-3``, ``momentum = 0.01``.
"""

from __future__ import annotations

from fractions import Fraction
from typing import List, Sequence, Tuple

import torch
from torch import Tensor, nn

BN_EPS = 1e-3
BN_MOMENTUM = 0.01


class HeightCompression(nn.Module):
    """Sparse ``[B, C, D, H, W]`` → dense BEV ``[B, C * D, H, W]`` (see the module docstring).

    Args:
        num_bev_features: ``C * D`` (256 = 128 × 2 for the 41-high KITTI / nuScenes grids); checked at run time.
    """

    def __init__(self, num_bev_features: int) -> None:
        super().__init__()
        if isinstance(num_bev_features, bool) or not isinstance(num_bev_features, int) or num_bev_features < 1:
            raise ValueError(f"num_bev_features must be a positive int, got {num_bev_features!r}")
        self.num_bev_features = num_bev_features

    @property
    def out_channels(self) -> int:
        return self.num_bev_features

    def forward(self, x) -> Tensor:
        """``x``: a sparse tensor (ours or spconv's) with spatial shape ``[D, H, W]``; returns ``[B, C * D, H, W]``."""
        if not hasattr(x, "dense") or not hasattr(x, "spatial_shape"):
            raise TypeError(f"HeightCompression takes a SparseConvTensor, got {type(x).__name__}")
        dense = x.dense()
        if dense.dim() != 5:
            raise ValueError(
                f"HeightCompression needs a 3-D sparse tensor (dense [B, C, D, H, W]), got dense shape "
                f"{tuple(dense.shape)}"
            )
        b, c, d, h, w = dense.shape
        if c * d != self.num_bev_features:
            raise ValueError(
                f"the sparse tensor has C={c} channels and D={d} heights, C*D={c * d}, but "
                f"HeightCompression was built with num_bev_features={self.num_bev_features}; build it "
                f"with backbone.out_channels * backbone.output_spatial_shape()[0]"
            )
        return dense.reshape(b, c * d, h, w)


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS, momentum=BN_MOMENTUM)


def _ints(values: Sequence[int], name: str) -> Tuple[int, ...]:
    if isinstance(values, (str, bytes)) or not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        raise TypeError(f"{name} must be a sequence of ints, got {values!r}")
    return tuple(values)


class BEVNeck(nn.Module):
    """The SECOND / RPN 2D neck, OpenPCDet's ``BaseBEVBackbone`` (see the module docstring).

    Args:
        in_channels: channels of the BEV map (``HeightCompression.out_channels``).
        layer_nums: ``n_i``, the extra 3×3 convs of each level (nuScenes CenterPoint: ``[5, 5]``).
        layer_strides: ``s_i``, the stride of each level's first conv (``[1, 2]``).
        num_filters: ``F'_i``, each level's channels (``[128, 256]``).
        upsample_strides: ``u_i`` per level (``[1, 2]``), ints or fractions ``1/k``; optionally one more
            entry for an up-sampling of the concatenation; empty for a single level without up-sampling.
        num_upsample_filters: ``F_i``, channels after each up-sampling (``[256, 256]``).

    Attributes:
        in_channels: as given.
        out_channels: ``sum_i F_i`` (512 by default).
        stride: output cell size over input cell size (``prod_{j <= i} s_j / u_i``, equal for all levels;
            1.0 by default), a float.

    Shapes: ``[B, in_channels, H, W]`` → ``[B, out_channels, H / stride, W / stride]``.
    """

    def __init__(
        self,
        in_channels: int,
        layer_nums: Sequence[int] = (5, 5),
        layer_strides: Sequence[int] = (1, 2),
        num_filters: Sequence[int] = (128, 256),
        upsample_strides: Sequence[float] = (1, 2),
        num_upsample_filters: Sequence[int] = (256, 256),
    ) -> None:
        super().__init__()
        if isinstance(in_channels, bool) or not isinstance(in_channels, int) or in_channels < 1:
            raise ValueError(f"in_channels must be a positive int, got {in_channels!r}")
        layer_nums = _ints(layer_nums, "layer_nums")
        layer_strides = _ints(layer_strides, "layer_strides")
        num_filters = _ints(num_filters, "num_filters")
        num_upsample_filters = _ints(num_upsample_filters, "num_upsample_filters")
        levels = len(layer_nums)
        if levels == 0 or len(layer_strides) != levels or len(num_filters) != levels:
            raise ValueError(
                f"layer_nums, layer_strides and num_filters need one entry per level (at least one), "
                f"got {len(layer_nums)}, {len(layer_strides)} and {len(num_filters)}"
            )
        if min(layer_nums) < 0 or min(layer_strides) < 1 or min(num_filters) < 1:
            raise ValueError(
                f"layer_nums must be >= 0, layer_strides and num_filters >= 1; got {list(layer_nums)}, "
                f"{list(layer_strides)}, {list(num_filters)}"
            )
        ups = [self._up_stride(u) for u in upsample_strides]
        if len(ups) != len(num_upsample_filters) and not (
            len(ups) == levels + 1 and len(num_upsample_filters) == levels
        ):
            raise ValueError(
                f"upsample_strides ({len(ups)}) and num_upsample_filters ({len(num_upsample_filters)}) "
                f"need one entry per level (upsample_strides may have one more, for the concatenation)"
            )
        if len(ups) not in (0, levels, levels + 1):
            raise ValueError(f"upsample_strides must have 0, {levels} or {levels + 1} entries, got {len(ups)}")
        if not ups and levels > 1:
            raise ValueError("several levels need upsample_strides to bring them to one resolution")
        if num_upsample_filters and min(num_upsample_filters) < 1:
            raise ValueError(f"num_upsample_filters must be >= 1, got {list(num_upsample_filters)}")

        self.blocks = nn.ModuleList()
        self.deblocks = nn.ModuleList()
        c_in, cumulative, level_strides = in_channels, Fraction(1), []
        for i in range(levels):
            c = num_filters[i]
            layers: List[nn.Module] = [
                nn.ZeroPad2d(1),
                nn.Conv2d(c_in, c, 3, stride=layer_strides[i], bias=False),
                _bn(c),
                nn.ReLU(),
            ]
            for _ in range(layer_nums[i]):
                layers += [nn.Conv2d(c, c, 3, padding=1, bias=False), _bn(c), nn.ReLU()]
            self.blocks.append(nn.Sequential(*layers))
            cumulative *= layer_strides[i]
            if ups:
                self.deblocks.append(self._resample(c, num_upsample_filters[i], ups[i]))
                level_strides.append(cumulative / ups[i])
            else:
                level_strides.append(cumulative)
            c_in = c
        if len(set(level_strides)) > 1:
            raise ValueError(
                f"the levels end at different resolutions (strides {[str(s) for s in level_strides]}); "
                f"choose upsample_strides u_i = prod(layer_strides[:i+1]) / common stride"
            )
        out_channels = sum(num_upsample_filters[:levels]) if ups else num_filters[-1]
        stride = level_strides[0]
        if len(ups) == levels + 1:
            self.deblocks.append(self._resample(out_channels, out_channels, ups[-1]))
            stride = stride / ups[-1]
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.stride = float(stride)
        self.layer_nums, self.layer_strides, self.num_filters = layer_nums, layer_strides, num_filters
        self.upsample_strides = tuple(float(u) for u in ups)
        self.num_upsample_filters = num_upsample_filters

    @staticmethod
    def _up_stride(value: float) -> Fraction:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise ValueError(f"upsample_strides must be positive numbers, got {value!r}")
        if value >= 1:
            if value != int(value):
                raise ValueError(f"an upsample stride >= 1 must be an integer, got {value}")
            return Fraction(int(value))
        k = round(1 / value)
        if abs(1 / value - k) > 1e-6:
            raise ValueError(f"an upsample stride < 1 must be 1/k for an integer k (a strided conv), got {value}")
        return Fraction(1, k)

    @staticmethod
    def _resample(c_in: int, c_out: int, factor: Fraction) -> nn.Sequential:
        if factor >= 1:
            k = int(factor)
            conv: nn.Module = nn.ConvTranspose2d(c_in, c_out, k, stride=k, bias=False)
        else:
            k = factor.denominator
            conv = nn.Conv2d(c_in, c_out, k, stride=k, bias=False)
        return nn.Sequential(conv, _bn(c_out), nn.ReLU())

    def forward(self, x: Tensor) -> Tensor:
        """``x``: ``[B, in_channels, H, W]`` → ``[B, out_channels, H / stride, W / stride]``."""
        if not isinstance(x, Tensor) or x.dim() != 4:
            raise ValueError(
                f"BEVNeck takes a [B, C, H, W] tensor, got "
                f"{tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__}"
            )
        outs = []
        for i, block in enumerate(self.blocks):
            x = block(x)
            outs.append(self.deblocks[i](x) if len(self.deblocks) else x)
        x = outs[0] if len(outs) == 1 else _cat_levels(outs)
        if len(self.deblocks) > len(self.blocks):
            x = self.deblocks[-1](x)
        return x


def _cat_levels(tensors: List[Tensor]) -> Tensor:
    """Concatenate along channels, naming the mismatch when the levels' maps differ in size (an input whose
    H or W is not divisible by the levels' strides)."""
    sizes = {tuple(t.shape[2:]) for t in tensors}
    if len(sizes) > 1:
        raise ValueError(
            f"the neck levels produced maps of sizes {sorted(sizes)}; give the neck an input whose H and "
            f"W are divisible by the product of layer_strides"
        )
    return torch.cat(tensors, dim=1)


__all__ = ["BN_EPS", "BN_MOMENTUM", "HeightCompression", "BEVNeck"]
