"""MinkUNet (Choy et al., CVPR 2019) on sparse tensors, and LargeKernel3DSeg (Chen et al., CVPR 2023).

The UNet has five resolution levels ``0..4`` (voxel stride ``2^level``)::

    level 0: stem SubM 5³ (C_in → init)  ─────────────────────────────────── cat ─ stage 8 ─ final 1³
    level 1:   down 2³/s2 ─ stage 1 (planes[0]) ──────────────────── cat ─ stage 7 ─ up ┘
    level 2:     down ─ stage 2 (planes[1]) ─────────────── cat ─ stage 6 ─ up ┘
    level 3:       down ─ stage 3 (planes[2]) ───── cat ─ stage 5 ─ up ┘
    level 4:         down ─ stage 4 (planes[3]) ─ up ┘

Every ``down`` is ``SparseConv3d(k=2, stride=2, padding=down_padding)`` + BN + ReLU keeping the width (padding 0:
site ``p`` has parent ``p // 2``; padding 1, the official LargeKernel3D segmentation network: ``(p + 1) // 2``, so
other voxels share a parent); every ``up`` is the
``SparseInverseConv3d`` of the down conv at the same level (same ``indice_key``), so it restores exactly the
finer sites, followed by BN + ReLU; ``cat`` concatenates the skip features (decoder stage ``j`` gets
``planes[j-1] + skip`` channels). Stage ``s`` is ``layers[s-1]`` residual :class:`BasicBlock` s of width
``planes[s-1]``. The output lives on the input sites: ``logits [N, num_classes]``. The grid is widened to a
multiple of 16 inside the network, so that no site loses its parent at a coarser level.

Encoder stages 1–4 take a :class:`ConvSpec` each (plain / SW-LK / depth-wise / dilated, odd kernels); decoder
stages are plain ``3³``. Everything is built from a ``backend`` module (our :mod:`largekernel3d.sparse`, or
``spconv.pytorch`` for the plain kinds), so the same architecture and state dict exist in both.
"""

from __future__ import annotations

from types import ModuleType
from typing import Optional, Sequence, Union

import torch
from torch import nn

from largekernel3d.nn.reparam import RepLargeKernelConv3d, is_large_kernel

from .backend import is_ours, resolve_backend
from .blocks import CONV_TYPES, BasicBlock, ConvBNReLU, ConvSpec, SiteLinear, subm_key

NUM_LEVELS = 4  # down-sampling steps
MINKUNET34C_LAYERS = (2, 3, 4, 6, 2, 2, 2, 2)
MINKUNET34C_PLANES = (32, 64, 128, 256, 256, 128, 96, 96)


def _positive_ints(name: str, values: Sequence[int], length: int) -> tuple:
    values = tuple(values)
    if len(values) != length or any(isinstance(v, bool) or not isinstance(v, int) or v <= 0 for v in values):
        raise ValueError(f"{name} must be {length} positive ints, got {values!r}")
    return values


def _on_grid(x, spatial_shape: Sequence[int], indice_dict: Optional[dict] = None):
    """``x``'s sites and features on a grid of ``spatial_shape`` (at least ``x``'s), with the kernel-map cache
    ``indice_dict`` (default: a new empty one); works for our tensors and spconv's."""
    out = x.replace_feature(x.features)
    out.spatial_shape = list(spatial_shape)
    out.indice_dict = {} if indice_dict is None else indice_dict
    return out


class MinkUNet(nn.Module):
    """A MinkUNet with per-stage encoder convs.

    Args:
        in_channels: input feature channels ``C_in``.
        num_classes: output logits per site.
        layers: 8 block counts (encoder stages 1–4, decoder stages 5–8).
        planes: 8 stage widths.
        init_dim: stem width (also the level-0 skip width).
        encoder_specs: 4 :class:`ConvSpec` (default: plain ``3³``, i.e. MinkowskiEngine's MinkUNet).
        stem_kernel_size: odd width of the stem submanifold conv (5 in MinkowskiEngine).
        backend: the sparse-conv module to build from (``None``: :mod:`largekernel3d.sparse`).
        bn_momentum: momentum of every BatchNorm1d.
        down_padding: padding of the ``2³``/s2 down convs, 0 (MinkowskiEngine's sites) or 1 (the official
            LargeKernel3D segmentation network's spconv convs).

    ``forward(x: SparseConvTensor [N, C_in]) -> SparseConvTensor [N, num_classes]`` on ``x``'s sites.
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        layers: Sequence[int],
        planes: Sequence[int],
        init_dim: int = 32,
        encoder_specs: Optional[Sequence[ConvSpec]] = None,
        stem_kernel_size: int = 5,
        backend: Optional[ModuleType] = None,
        bn_momentum: float = 0.1,
        down_padding: int = 0,
    ) -> None:
        super().__init__()
        if down_padding not in (0, 1) or isinstance(down_padding, bool):
            raise ValueError(
                f"down_padding must be 0 (MinkowskiEngine) or 1 (the official LargeKernel3D "
                f"segmentation network), got {down_padding!r}"
            )
        self.down_padding = down_padding
        (in_channels, num_classes, init_dim, stem_kernel_size) = _positive_ints(
            "in_channels, num_classes, init_dim, stem_kernel_size",
            (in_channels, num_classes, init_dim, stem_kernel_size),
            4,
        )
        if stem_kernel_size % 2 == 0:
            raise ValueError(f"stem_kernel_size must be odd, got {stem_kernel_size}")
        self.layers = _positive_ints("layers", layers, 2 * NUM_LEVELS)
        self.planes = _positive_ints("planes", planes, 2 * NUM_LEVELS)
        specs = tuple(encoder_specs) if encoder_specs is not None else (ConvSpec(),) * NUM_LEVELS
        if len(specs) != NUM_LEVELS or not all(isinstance(s, ConvSpec) for s in specs):
            raise ValueError(f"encoder_specs must be {NUM_LEVELS} ConvSpec, got {encoder_specs!r}")
        self.encoder_specs = specs
        self.in_channels = in_channels
        self.num_classes = num_classes
        sp = resolve_backend(backend)
        decoder_spec = ConvSpec()

        self.stem = ConvBNReLU(
            sp.SubMConv3d(
                in_channels, init_dim, stem_kernel_size, bias=False, indice_key=subm_key(0, stem_kernel_size)
            ),
            init_dim,
            bn_momentum,
        )
        self.down = nn.ModuleList()
        self.encoder = nn.ModuleList()
        width = init_dim
        skip_widths = [init_dim]
        for s in range(NUM_LEVELS):
            level = s + 1
            self.down.append(
                ConvBNReLU(
                    sp.SparseConv3d(
                        width, width, 2, stride=2, padding=down_padding, bias=False, indice_key=f"down{level}"
                    ),
                    width,
                    bn_momentum,
                )
            )
            self.encoder.append(self._stage(width, self.planes[s], self.layers[s], specs[s], level, sp, bn_momentum))
            width = self.planes[s]
            skip_widths.append(width)
        self.up = nn.ModuleList()
        self.decoder = nn.ModuleList()
        for j in range(NUM_LEVELS):
            s = NUM_LEVELS + j  # stage index 4..7 (stages 5..8)
            level = NUM_LEVELS - 1 - j  # output level of the up conv: 3..0
            self.up.append(
                ConvBNReLU(
                    sp.SparseInverseConv3d(width, self.planes[s], 2, indice_key=f"down{level + 1}", bias=False),
                    self.planes[s],
                    bn_momentum,
                )
            )
            self.decoder.append(
                self._stage(
                    self.planes[s] + skip_widths[level],
                    self.planes[s],
                    self.layers[s],
                    decoder_spec,
                    level,
                    sp,
                    bn_momentum,
                )
            )
            width = self.planes[s]
        self.final = SiteLinear(width, num_classes, bias=True)

    @staticmethod
    def _stage(
        in_channels: int, planes: int, blocks: int, spec: ConvSpec, level: int, sp: ModuleType, bn_momentum: float
    ) -> nn.Sequential:
        widths = [in_channels] + [planes] * blocks
        return nn.Sequential(*(BasicBlock(widths[b], planes, spec, level, sp, bn_momentum) for b in range(blocks)))

    def forward(self, x):
        # Widen the grid to a multiple of 2^NUM_LEVELS so that every site has a parent at every level (a
        # 2³/s2 conv on an odd-sized axis would drop the last plane); sites and features are unchanged. The
        # kernel maps of this pass go to a fresh cache, so nothing is left in or taken from x.indice_dict.
        out = self.stem(_on_grid(x, [-(-s // 2**NUM_LEVELS) * 2**NUM_LEVELS for s in x.spatial_shape]))
        skips = [out]
        for down, stage in zip(self.down, self.encoder):
            out = stage(down(out))
            skips.append(out)
        for j, (up, stage) in enumerate(zip(self.up, self.decoder)):
            out = up(out)
            skip = skips[NUM_LEVELS - 1 - j]
            out = stage(out.replace_feature(torch.cat([out.features, skip.features], dim=1)))
        return _on_grid(self.final(out), x.spatial_shape, x.indice_dict)

    def extra_repr(self) -> str:
        stages = ", ".join(f"{s.conv_type}{s.kernel_size}" for s in self.encoder_specs)
        pad = f", down_padding={self.down_padding}" if self.down_padding else ""
        return f"layers={self.layers}, planes={self.planes}, encoder=[{stages}]{pad}"


class LargeKernel3DSeg(MinkUNet):
    """LargeKernel3D for semantic segmentation: MinkUNet34C whose encoder stages 1–4 use large kernels.

    Args:
        in_channels, num_classes: as :class:`MinkUNet`.
        stage_kernel_sizes: 4 odd kernel widths of encoder stages 1–4 (paper: ``7, 7, 7, 7``).
        stage_conv_types: one of ``"plain" | "swlk" | "depthwise" | "dilated"`` for all 4 stages, or 4 of
            them (paper: ``"swlk"``). ``"plain"`` with ``3, 3, 3, 3`` is exactly MinkUNet34C.
        position_encoding, partition, dilated_branch, dilated_dilation: options of the SW-LK stages (see
            :class:`largekernel3d.nn.SWLKConv3d`; ``dilated_dilation=None`` is ``k // 2 - 1``).
        down_padding: as :class:`MinkUNet` (0; 1 reproduces the official segmentation network).
        backend: as :class:`MinkUNet` (spconv only has the ``"plain"`` kind).
        layers, planes, init_dim: depth/widths as :class:`MinkUNet` (default MinkUNet34C's); smaller
            values give small LargeKernel3D networks (e.g. for CPU demos).
        small_kernel_branch: train every encoder conv whose window is at least 5 wide with a parallel
            ``3³`` conv, each with its BatchNorm (RepLKNet; :class:`largekernel3d.nn.RepLargeKernelConv3d`, the
            ``3³`` map shared under the level's ``3³`` key); :func:`largekernel3d.nn.merge_small_kernels` merges
            them into single layers for inference. Our engine only.
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        stage_kernel_sizes: Sequence[int] = (7, 7, 7, 7),
        stage_conv_types: Union[str, Sequence[str]] = "swlk",
        position_encoding: bool = True,
        partition: str = "center1",
        dilated_branch: bool = False,
        backend: Optional[ModuleType] = None,
        bn_momentum: float = 0.1,
        layers: Sequence[int] = MINKUNET34C_LAYERS,
        planes: Sequence[int] = MINKUNET34C_PLANES,
        init_dim: int = 32,
        down_padding: int = 0,
        dilated_dilation: Optional[int] = None,
        small_kernel_branch: bool = False,
    ) -> None:
        if not isinstance(small_kernel_branch, bool):
            raise ValueError(f"small_kernel_branch must be a bool, got {small_kernel_branch!r}")
        if small_kernel_branch and not is_ours(resolve_backend(backend)):
            raise ValueError(
                "small_kernel_branch=True needs our engine (largekernel3d.sparse): the parallel 3³ "
                "branch wraps its layers; build without it for spconv"
            )
        kernels = tuple(stage_kernel_sizes) if not isinstance(stage_kernel_sizes, (str, int)) else ()
        if len(kernels) != NUM_LEVELS:
            raise ValueError(
                f"stage_kernel_sizes must be {NUM_LEVELS} odd ints (encoder stages 1-4), got {stage_kernel_sizes!r}"
            )
        types = (stage_conv_types,) * NUM_LEVELS if isinstance(stage_conv_types, str) else tuple(stage_conv_types)
        if len(types) != NUM_LEVELS:
            raise ValueError(
                f"stage_conv_types must be one of {list(CONV_TYPES)} or {NUM_LEVELS} of them, got {stage_conv_types!r}"
            )
        specs = []
        for i, (k, t) in enumerate(zip(kernels, types)):
            try:
                specs.append(
                    ConvSpec(
                        t, k, partition, position_encoding, dilated_branch, dilated_dilation if t == "swlk" else None
                    )
                )
            except ValueError as err:
                raise ValueError(
                    f"encoder stage {i + 1} (stage_kernel_sizes[{i}]={k!r}, stage_conv_types[{i}]={t!r}): {err}"
                ) from None
        super().__init__(
            in_channels,
            num_classes,
            layers,
            planes,
            init_dim=init_dim,
            encoder_specs=specs,
            backend=backend,
            bn_momentum=bn_momentum,
            down_padding=down_padding,
        )
        self.small_kernel_branch = small_kernel_branch
        if small_kernel_branch:
            for s, stage in enumerate(self.encoder):
                for block in stage.children():
                    for name in ("conv1", "conv2"):
                        conv = getattr(block, name)
                        if is_large_kernel(conv, min_window=5):
                            setattr(
                                block,
                                name,
                                RepLargeKernelConv3d(
                                    conv, small_indice_key=subm_key(s + 1, 3), bn_momentum=bn_momentum
                                ),
                            )


__all__ = ["MinkUNet", "LargeKernel3DSeg", "MINKUNET34C_LAYERS", "MINKUNET34C_PLANES", "NUM_LEVELS"]
