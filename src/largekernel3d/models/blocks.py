"""Building blocks of the segmentation UNets: a per-stage conv choice and the residual block.

A :class:`ConvSpec` says which submanifold conv a stage uses; :func:`make_subm_conv` builds it:

* ``"plain"``: ``SubMConv3d(k)``, ``k³ C_in C_out`` weights: ``out[p] = sum_k W[k] in[p + k - k//2]``.
* ``"swlk"``: :class:`largekernel3d.nn.SWLKConv3d`, the spatial-wise large kernel: offsets are split in 27
  groups sharing one weight each (plus a ``k³ × C_in`` position encoding), ``27 C_in C_out`` weights.
* ``"depthwise"``: depth-wise large kernel ``SubMConv3d(k, groups=C_in)`` then point-wise ``1³``
  (``k³ C_in + C_in C_out`` weights), the RepLKNet habit the paper ablates.
* ``"dilated"``: a ``3³`` conv with dilation ``k // 2`` spanning the ``k``-window (``27 C_in C_out``).

The non-plain kinds are the layers of :mod:`largekernel3d.nn` and exist only in our engine; ``"plain"`` is
taken from the network's backend (ours or ``spconv.pytorch``).

Kernel maps are cached by ``indice_key``: one key per resolution level and kernel size
(``subm{level}_k{k}``), so every conv on the same sites with the same window reuses one map.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType
from typing import Optional

import torch.nn.functional as F
from torch import nn

from largekernel3d.nn import PARTITIONS, make_large_kernel_conv
from largekernel3d.nn.partition import MAX_KERNEL, MIN_KERNEL

from .backend import is_ours

CONV_TYPES = ("plain", "swlk", "depthwise", "dilated")


@dataclass(frozen=True)
class ConvSpec:
    """The submanifold conv of one stage.

    Attributes:
        conv_type: ``"plain"``, ``"swlk"``, ``"depthwise"`` or ``"dilated"`` (see the module docstring).
        kernel_size: odd window width ``k`` in ``[3, 31]`` (cubic window ``k³``).
        partition: SW-LK split of each axis (``"center1"``: ``[-(k//2)..-1], {0}, [1..k//2]``; also
            ``"center3"``, ``"thirds"``).
        position_encoding: SW-LK adds a learned ``E[k] ∈ R^{C_in}`` to each neighbour feature.
        dilated_branch: SW-LK adds a parallel dilated ``3³`` submanifold conv (the official ``SpatialGroupConv``).
        dilated_dilation: that branch's dilation; ``None``: ``k // 2 - 1`` (official detection code), the
            official segmentation network uses ``3``. Only with ``dilated_branch``.
    """

    conv_type: str = "plain"
    kernel_size: int = 3
    partition: str = "center1"
    position_encoding: bool = True
    dilated_branch: bool = False
    dilated_dilation: Optional[int] = None

    def __post_init__(self) -> None:
        if self.conv_type not in CONV_TYPES:
            raise ValueError(f"conv_type must be one of {list(CONV_TYPES)}, got {self.conv_type!r}")
        k = self.kernel_size
        if isinstance(k, bool) or not isinstance(k, int) or not MIN_KERNEL <= k <= MAX_KERNEL or k % 2 == 0:
            raise ValueError(f"kernel_size must be an odd int in [{MIN_KERNEL}, {MAX_KERNEL}], got {k!r}")
        if self.partition not in PARTITIONS:
            raise ValueError(f"partition must be one of {list(PARTITIONS)}, got {self.partition!r}")
        for name in ("position_encoding", "dilated_branch"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be a bool, got {getattr(self, name)!r}")
        d = self.dilated_dilation
        if d is not None:
            if isinstance(d, bool) or not isinstance(d, int) or d < 1:
                raise ValueError(f"dilated_dilation must be a positive int or None, got {d!r}")
            if not (self.conv_type == "swlk" and self.dilated_branch):
                raise ValueError(f"dilated_dilation={d} needs conv_type='swlk' with dilated_branch=True")

    def layer_options(self) -> dict:
        """Keyword options of the :mod:`largekernel3d.nn` layer of this kind."""
        if self.conv_type == "swlk":
            options = {
                "partition": self.partition,
                "position_encoding": self.position_encoding,
                "dilated_branch": self.dilated_branch,
            }
            if self.dilated_dilation is not None:
                options["dilated_dilation"] = self.dilated_dilation
            return options
        return {}


def subm_key(level: int, kernel_size: int) -> str:
    """The ``indice_key`` of submanifold convs with a ``kernel_size`` window at resolution ``level``."""
    return f"subm{level}_k{kernel_size}"


class SiteLinear(nn.Module):
    """A ``1³`` convolution, i.e. the same linear map at every site: ``out[i] = W in[i] (+ b)``,
    ``W: [C_out, C_in]``; sites unchanged.

    Used for every ``1³`` conv (shortcuts, point-wise, classifier): it needs no kernel map, and it sidesteps
    spconv 2.3.8's ``1³`` fast path, which reads its ``[C_out, 1, 1, 1, C_in]`` weight as ``[C_in, C_out]``.
    """

    def __init__(self, in_channels: int, out_channels: int, bias: bool = True) -> None:
        super().__init__()
        self.linear = nn.Linear(in_channels, out_channels, bias=bias)

    def forward(self, x):
        return x.replace_feature(self.linear(x.features))


def make_subm_conv(spec: ConvSpec, in_channels: int, out_channels: int, level: int, backend: ModuleType) -> nn.Module:
    """A bias-free submanifold conv ``in_channels → out_channels`` as ``spec`` says: ``"plain"`` from
    ``backend``, the other kinds from :mod:`largekernel3d.nn` (our engine only)."""
    k = spec.kernel_size
    key = subm_key(level, k)
    if spec.conv_type == "plain":
        return backend.SubMConv3d(in_channels, out_channels, k, bias=False, indice_key=key)
    if not is_ours(backend):
        raise ValueError(
            f"conv_type={spec.conv_type!r} exists only in largekernel3d.sparse; build the "
            f"{getattr(backend, '__name__', backend)} network with conv_type='plain'"
        )
    if spec.conv_type == "dilated":  # a 3³ window with its own map
        key = f"subm{level}_dil{k // 2}"
    return make_large_kernel_conv(
        spec.conv_type, in_channels, out_channels, k, bias=False, indice_key=key, **spec.layer_options()
    )


class BasicBlock(nn.Module):
    """The ResNet basic block on sparse tensors (MinkowskiEngine's ``BasicBlock``)::

        y = relu( bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x) )

    ``conv1: C_in → C_out`` and ``conv2: C_out → C_out`` are the stage's submanifold convs (``spec``);
    ``shortcut`` is the identity when ``C_in == C_out``, else a ``1³`` conv (:class:`SiteLinear`) + BN.
    Sites are unchanged.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        spec: ConvSpec,
        level: int,
        backend: ModuleType,
        bn_momentum: float = 0.1,
    ) -> None:
        super().__init__()
        self.conv1 = make_subm_conv(spec, in_channels, out_channels, level, backend)
        self.bn1 = nn.BatchNorm1d(out_channels, momentum=bn_momentum)
        self.conv2 = make_subm_conv(spec, out_channels, out_channels, level, backend)
        self.bn2 = nn.BatchNorm1d(out_channels, momentum=bn_momentum)
        self.downsample: Optional[nn.Module] = None
        self.downsample_bn: Optional[nn.Module] = None
        if in_channels != out_channels:
            self.downsample = SiteLinear(in_channels, out_channels, bias=False)
            self.downsample_bn = nn.BatchNorm1d(out_channels, momentum=bn_momentum)

    def forward(self, x):
        out = self.conv1(x)
        out = out.replace_feature(F.relu(self.bn1(out.features), inplace=True))
        out = self.conv2(out)
        residual = x.features
        if self.downsample is not None:
            residual = self.downsample_bn(self.downsample(x).features)
        return out.replace_feature(F.relu(self.bn2(out.features) + residual, inplace=True))


class ConvBNReLU(nn.Module):
    """``relu(bn(conv(x)))``: the stem, the strided down convs and the inverse up convs."""

    def __init__(self, conv: nn.Module, channels: int, bn_momentum: float = 0.1) -> None:
        super().__init__()
        self.conv = conv
        self.bn = nn.BatchNorm1d(channels, momentum=bn_momentum)

    def forward(self, x):
        out = self.conv(x)
        return out.replace_feature(F.relu(self.bn(out.features), inplace=True))


__all__ = ["CONV_TYPES", "ConvSpec", "subm_key", "make_subm_conv", "SiteLinear", "BasicBlock", "ConvBNReLU"]
