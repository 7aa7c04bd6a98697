"""Sparse 3D backbones of the LiDAR detectors: OpenPCDet's ``VoxelBackBone8x`` / ``VoxelResBackBone8x`` and
the LargeKernel3D backbone (per-stage kernel sizes and conv types).

All three map voxels on a grid ``sparse_shape = [D, H, W]`` (z, y, x; ``D = 41`` for the KITTI / nuScenes
grids) to a stride-8 tensor of 128 channels, through five named parts (the state-dict prefixes of
OpenPCDet, so its checkpoints load with ``load_state_dict``)::

    conv_input  SubM 3³ (C_in -> 16) + BN + ReLU                             sites of the input
    conv1       stage 1, 16 ch                                               x_conv1, stride 1
    conv2       down (16 -> 32, stride 2) + stage 2                          x_conv2, stride 2
    conv3       down (32 -> 64, stride 2) + stage 3                          x_conv3, stride 4
    conv4       down (64 -> C4, 3³, stride 2, padding (0, 1, 1)) + stage 4   x_conv4, stride 8
    conv_out    SparseConv3d (C4 -> 128, (3, 1, 1), stride (2, 1, 1)) + BN + ReLU

A down layer is a regular ``SparseConv3d(k, stride 2, padding k // 2)`` + BN + ReLU (``k = 3``; ``k = 5``
in the large-kernel configs); every BatchNorm is ``BatchNorm1d(eps=1e-3, momentum=0.01)``. Per axis a
down layer maps ``n -> floor((n + 2 p - k) / 2) + 1``, so z goes 41 -> 21 -> 11 -> 5 -> 2 and y, x are
divided by 8 (rounded up at each step).

* ``VoxelBackBone8x``: each stage is ``conv-BN-ReLU`` with bias-free SubM 3³ convs (stage 1: one, stages
  2-4: two after the down layer); ``C4 = 64``.
* ``VoxelResBackBone8x``: each stage is two residual blocks
  ``y = relu(bn2(conv2(relu(bn1(conv1(x))))) + x)`` with SubM 3³ convs that have a bias; ``C4 = 128``.
* ``LargeKernel3DBackbone``: the residual backbone with per-stage kernel size ``k_s`` and conv type:
  ``"plain"`` (SubM ``k_s³``), ``"swlk"`` (:class:`largekernel3d.nn.SWLKConv3d`, 27 shared group
  weights) or ``"swlk_dilated"`` (SW-LK plus the official parallel 3³ conv with dilation ``k_s // 2 - 1``,
  the official ``SpatialGroupConv``).

Submanifold convs that share an ``indice_key`` are built with the same padding (``k // 2``): spconv
ignores a submanifold conv's padding, our engine checks that layers sharing a kernel map agree on it.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, fields
from types import MappingProxyType, ModuleType
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from torch import nn

from largekernel3d.nn import SWLKConv3d, export_plain
from largekernel3d.nn.partition import MAX_KERNEL, MIN_KERNEL, PARTITIONS

from ..backend import is_ours, resolve_backend

BN_EPS = 1e-3
BN_MOMENTUM = 0.01
STAGE_CHANNELS = (16, 32, 64, 128)
OUT_CHANNELS = 128
STRIDE = 8
CONV_TYPES = ("plain", "swlk", "swlk_dilated")
FEATURE_NAMES = ("x_conv1", "x_conv2", "x_conv3", "x_conv4", "out")
# voxel stride (along y and x) of each output of ``forward_features``
MULTI_SCALE_STRIDES = MappingProxyType({"x_conv1": 1, "x_conv2": 2, "x_conv3": 4, "x_conv4": 8, "out": 8})


def batch_norm(channels: int) -> nn.BatchNorm1d:
    """``BatchNorm1d(channels, eps=1e-3, momentum=0.01)``, the detectors' normalisation."""
    return nn.BatchNorm1d(channels, eps=BN_EPS, momentum=BN_MOMENTUM)


class ConvChain(nn.Sequential):
    """``nn.Sequential`` over a sparse tensor (ours or spconv's): ``BatchNorm1d`` and ``ReLU`` act on
    ``x.features`` (``[N, C] -> [N, C]``), every other module gets and returns the sparse tensor. State-dict
    keys are the positions, as in spconv's ``SparseSequential``."""

    def forward(self, x):
        for module in self:
            if isinstance(module, (nn.BatchNorm1d, nn.ReLU)):
                x = x.replace_feature(module(x.features))
            else:
                x = module(x)
        return x


class SparseBasicBlock(nn.Module):
    """The residual block of the detection backbones (OpenPCDet's ``SparseBasicBlock``)::

        y = relu( bn2(conv2(relu(bn1(conv1(x))))) + x )

    ``conv1``, ``conv2``: submanifold convs ``C -> C`` (sites unchanged, ``[N, C] -> [N, C]``).
    """

    def __init__(self, conv1: nn.Module, conv2: nn.Module, channels: int) -> None:
        super().__init__()
        self.conv1 = conv1
        self.bn1 = batch_norm(channels)
        self.relu = nn.ReLU()
        self.conv2 = conv2
        self.bn2 = batch_norm(channels)

    def forward(self, x):
        out = self.conv1(x)
        out = out.replace_feature(self.relu(self.bn1(out.features)))
        out = self.conv2(out)
        return out.replace_feature(self.relu(self.bn2(out.features) + x.features))


def _conv_bn_relu(conv: nn.Module, channels: int) -> ConvChain:
    return ConvChain(conv, batch_norm(channels), nn.ReLU())


def _down(backend: ModuleType, c_in: int, c_out: int, kernel_size, stride, padding, key: str) -> ConvChain:
    conv = backend.SparseConv3d(c_in, c_out, kernel_size, stride=stride, padding=padding, bias=False, indice_key=key)
    return _conv_bn_relu(conv, c_out)


def _down_output(n: int, kernel_size: int, stride: int, padding: int) -> int:
    return (n + 2 * padding - kernel_size) // stride + 1


def _check_in_channels(in_channels: int) -> int:
    if isinstance(in_channels, bool) or not isinstance(in_channels, int) or in_channels <= 0:
        raise ValueError(f"in_channels must be a positive int (voxel feature channels), got {in_channels!r}")
    return in_channels


def _check_sparse_shape(sparse_shape: Sequence[int]) -> Tuple[int, int, int]:
    try:
        shape = tuple(operator.index(v) for v in sparse_shape)
        ok = len(shape) == 3 and min(shape) > 0
    except TypeError:
        ok = False
    if not ok:
        raise ValueError(
            f"sparse_shape must be 3 positive ints [D, H, W] (z, y, x; VoxelGrid.sparse_shape, e.g. "
            f"[41, 1600, 1408] for KITTI), got {sparse_shape!r}"
        )
    return shape  # type: ignore[return-value]


class DetectionBackbone3d(nn.Module):
    """Common interface of the stride-8 sparse detection backbones (see the module docstring).

    Attributes:
        in_channels: voxel feature channels ``C_in``.
        sparse_shape: ``[D, H, W]`` input grid (z, y, x).
        out_channels: 128, the channels of :meth:`forward`'s output.
        stride: 8, its voxel stride along y and x.
        down_kernel_size: kernel of the ``conv2`` / ``conv3`` down layers.
    """

    out_channels: int = OUT_CHANNELS
    stride: int = STRIDE
    # built by each subclass
    conv_input: nn.Module
    conv1: nn.Module
    conv2: nn.Module
    conv3: nn.Module
    conv4: nn.Module
    conv_out: nn.Module

    def __init__(
        self, in_channels: int, sparse_shape: Sequence[int], backend: Optional[ModuleType], down_kernel_size: int = 3
    ) -> None:
        super().__init__()
        self.in_channels = _check_in_channels(in_channels)
        self.sparse_shape: List[int] = list(_check_sparse_shape(sparse_shape))
        self.tensor_type = resolve_backend(backend).SparseConvTensor
        self.down_kernel_size = down_kernel_size
        self.output_spatial_shape()  # raises for a grid too small for three stride-2 layers

    def output_spatial_shape(self) -> List[int]:
        """``[D_out, H_out, W_out]`` of :meth:`forward`'s output (``[2, 200, 176]`` for ``[41, 1600, 1408]``)."""
        k = self.down_kernel_size
        shape = list(self.sparse_shape)
        steps = [((k, k, k), (k // 2,) * 3)] * 2 + [((3, 3, 3), (0, 1, 1)), ((3, 1, 1), (0, 0, 0))]
        strides = [(2, 2, 2)] * 3 + [(2, 1, 1)]
        for (kernel, pad), stride in zip(steps, strides):
            shape = [_down_output(n, kk, s, p) for n, kk, s, p in zip(shape, kernel, stride, pad)]
            if min(shape) < 1:
                raise ValueError(
                    f"sparse_shape={self.sparse_shape} is too small for this backbone (three stride-2 "
                    f"layers and a (3, 1, 1) z-reduction leave nothing); it needs D >= 9 (z: 41 for "
                    f"the KITTI / nuScenes grids) and H, W >= 1"
                )
        return shape

    def check_input(self, x) -> None:
        """Raise ``TypeError`` / ``ValueError`` naming the fix when ``x`` is not a sparse tensor of this
        backbone's backend with ``[N, C_in]`` features, ``[N, 4]`` (b, z, y, x) indices and grid ``sparse_shape``."""
        name = type(self).__name__
        if not isinstance(x, self.tensor_type):
            raise TypeError(
                f"{name} takes a {self.tensor_type.__module__}.SparseConvTensor (the backend it was "
                f"built with), got {type(x).__module__}.{type(x).__name__}"
            )
        feats, idx = x.features, x.indices
        if feats.dim() != 2 or feats.shape[1] != self.in_channels:
            raise ValueError(
                f"{name} was built with in_channels={self.in_channels} but the input features have "
                f"shape {tuple(feats.shape)}; build it with in_channels={feats.shape[-1]} or fix the "
                f"voxel feature encoder"
            )
        if idx.dim() != 2 or idx.shape[1] != 4:
            raise ValueError(f"{name} needs indices [N, 4] = (batch, z, y, x), got shape {tuple(idx.shape)}")
        if [int(v) for v in x.spatial_shape] != self.sparse_shape:
            raise ValueError(
                f"{name} was built for sparse_shape={self.sparse_shape} but the input has "
                f"spatial_shape={list(x.spatial_shape)}; build the backbone with the grid's "
                f"sparse_shape (VoxelGrid.sparse_shape, z first)"
            )

    def forward_features(self, x) -> Dict[str, object]:
        """All scales: ``{"x_conv1": stride 1 (16 ch), "x_conv2": 2 (32), "x_conv3": 4 (64), "x_conv4": 8
        (64 or 128), "out": 8 (128, z reduced)}`` (OpenPCDet's ``multi_scale_3d_features`` plus the output)."""
        self.check_input(x)
        x = self.conv_input(x)
        x_conv1 = self.conv1(x)
        x_conv2 = self.conv2(x_conv1)
        x_conv3 = self.conv3(x_conv2)
        x_conv4 = self.conv4(x_conv3)
        out = self.conv_out(x_conv4)
        return {"x_conv1": x_conv1, "x_conv2": x_conv2, "x_conv3": x_conv3, "x_conv4": x_conv4, "out": out}

    def forward(self, x):
        """``x``: sparse tensor, features ``[N, C_in]``, indices ``[N, 4]`` (b, z, y, x) on ``sparse_shape``.
        Returns the stride-8 tensor (features ``[M, 128]``, spatial shape :meth:`output_spatial_shape`)."""
        return self.forward_features(x)["out"]


class VoxelBackBone8x(DetectionBackbone3d):
    """OpenPCDet's ``VoxelBackBone8x`` (SECOND's sparse middle encoder): plain ``conv-BN-ReLU`` stages of
    SubM 3³ convs (16, 32, 64, 64 channels; 1, 2, 2, 2 convs after the input/down layers), 3³ down layers,
    ``conv_out`` 64 -> 128. Same module tree, ``indice_key`` s and state-dict keys as OpenPCDet.

    Args:
        in_channels: voxel feature channels (4 for KITTI x, y, z, intensity; 5 for nuScenes with Δt).
        sparse_shape: ``[D, H, W]`` (z, y, x), e.g. ``VoxelGrid.sparse_shape``.
        backend: ``None`` (:mod:`largekernel3d.sparse`) or ``spconv.pytorch``.
    """

    def __init__(self, in_channels: int, sparse_shape: Sequence[int], backend: Optional[ModuleType] = None) -> None:
        super().__init__(in_channels, sparse_shape, backend, down_kernel_size=3)
        sp = resolve_backend(backend)

        def subm(c_in: int, c_out: int, key: str) -> ConvChain:
            return _conv_bn_relu(sp.SubMConv3d(c_in, c_out, 3, padding=1, bias=False, indice_key=key), c_out)

        self.conv_input = subm(self.in_channels, 16, "subm1")
        self.conv1 = ConvChain(subm(16, 16, "subm1"))
        self.conv2 = ConvChain(_down(sp, 16, 32, 3, 2, 1, "spconv2"), subm(32, 32, "subm2"), subm(32, 32, "subm2"))
        self.conv3 = ConvChain(_down(sp, 32, 64, 3, 2, 1, "spconv3"), subm(64, 64, "subm3"), subm(64, 64, "subm3"))
        self.conv4 = ConvChain(
            _down(sp, 64, 64, 3, 2, (0, 1, 1), "spconv4"), subm(64, 64, "subm4"), subm(64, 64, "subm4")
        )
        self.conv_out = _down(sp, 64, OUT_CHANNELS, (3, 1, 1), (2, 1, 1), 0, "spconv_down2")


def _stage_conv(
    conv_type: str,
    channels: int,
    kernel_size: int,
    key: str,
    backend: ModuleType,
    position_encoding: bool,
    partition: str,
) -> nn.Module:
    """One submanifold conv ``C -> C`` (with bias) of a residual stage."""
    if conv_type == "plain":
        return backend.SubMConv3d(channels, channels, kernel_size, padding=kernel_size // 2, bias=True, indice_key=key)
    return SWLKConv3d(
        channels,
        channels,
        kernel_size,
        partition=partition,
        position_encoding=position_encoding,
        dilated_branch=conv_type == "swlk_dilated",
        bias=True,
        indice_key=key,
    )


def _check_stage_options(
    kernel_sizes: Sequence[int],
    conv_types: Sequence[str],
    down_kernel_size: int,
    partition: str,
    position_encoding: bool,
    backend: ModuleType,
) -> Tuple[tuple, tuple]:
    kernel_sizes, conv_types = tuple(kernel_sizes), tuple(conv_types)
    if len(kernel_sizes) != 4 or any(
        isinstance(k, bool) or not isinstance(k, int) or k % 2 == 0 or not MIN_KERNEL <= k <= MAX_KERNEL
        for k in kernel_sizes
    ):
        raise ValueError(
            f"kernel_sizes must be 4 odd ints in [{MIN_KERNEL}, {MAX_KERNEL}] (one per stage), got {kernel_sizes!r}"
        )
    if len(conv_types) != 4 or any(t not in CONV_TYPES for t in conv_types):
        raise ValueError(f"conv_types must be 4 of {list(CONV_TYPES)} (one per stage), got {conv_types!r}")
    for stage, (k, t) in enumerate(zip(kernel_sizes, conv_types), start=1):
        if t == "swlk_dilated" and k < 5:
            raise ValueError(
                f"stage {stage}: 'swlk_dilated' needs kernel_size >= 5 (its 3³ branch has dilation "
                f"k // 2 - 1), got {k}; use 'swlk' or 'plain'"
            )
    if (
        isinstance(down_kernel_size, bool)
        or not isinstance(down_kernel_size, int)
        or down_kernel_size < 3
        or down_kernel_size % 2 == 0
    ):
        raise ValueError(
            f"down_kernel_size must be an odd int >= 3 (3 in OpenPCDet, 5 in the LargeKernel3D "
            f"configs), got {down_kernel_size!r}"
        )
    if partition not in PARTITIONS:
        raise ValueError(f"partition must be one of {list(PARTITIONS)}, got {partition!r}")
    if not isinstance(position_encoding, bool):
        raise ValueError(f"position_encoding must be a bool, got {position_encoding!r}")
    swlk = [s for s, t in enumerate(conv_types, start=1) if t != "plain"]
    if swlk and not is_ours(backend):
        raise ValueError(
            f"stages {swlk} are SW-LK convs, which exist only in largekernel3d.sparse; build with "
            f"backend=None and call .to_plain(backend={getattr(backend, '__name__', backend)}) for a copy "
            f"with the SW-LK layers expanded to plain k³ convs"
        )
    return kernel_sizes, conv_types


class LargeKernel3DBackbone(DetectionBackbone3d):
    """``VoxelResBackBone8x`` with a kernel size and conv type per stage (the LargeKernel3D detection
    backbone: the official ``SpMiddleResNetFHDLargeKernel`` / ``VoxelResBackBone8xLargeKernel3D``).

    Stage ``s`` (channels 16, 32, 64, 128) is two residual blocks whose convs are ``conv_types[s]`` with a
    ``kernel_sizes[s]³`` window (all with a bias): ``"plain"`` SubM conv (``k³ C²`` weights), ``"swlk"``
    SW-LK conv (``27 C²`` weights + ``k³ C`` position encoding), ``"swlk_dilated"`` SW-LK + a parallel 3³
    conv with dilation ``k // 2 - 1`` (outputs summed). The ``conv2`` / ``conv3`` down layers have kernel
    ``down_kernel_size`` (padding ``// 2``); ``conv4``'s is 3³ with padding (0, 1, 1). With all stages
    ``("plain", 3)`` and ``down_kernel_size=3`` it is exactly :class:`VoxelResBackBone8x`.

    Args:
        in_channels, sparse_shape, backend: as :class:`VoxelBackBone8x` (``spconv.pytorch`` only for
            all-``"plain"`` stages; see :meth:`to_plain`).
        kernel_sizes: 4 odd kernel widths.
        conv_types: 4 of ``"plain"``, ``"swlk"``, ``"swlk_dilated"``.
        down_kernel_size: odd kernel of the first two down layers.
        position_encoding: SW-LK layers learn the per-offset encoding (the official V1 layer has none).
        partition: SW-LK partition (``"center1"``, the official one).

    Named configurations: :data:`LARGEKERNEL3D_BACKBONE_PRESETS`, :func:`build_largekernel3d_backbone`.
    """

    def __init__(
        self,
        in_channels: int,
        sparse_shape: Sequence[int],
        kernel_sizes: Sequence[int] = (7, 5, 5, 5),
        conv_types: Sequence[str] = ("swlk_dilated", "plain", "plain", "plain"),
        down_kernel_size: int = 5,
        position_encoding: bool = True,
        partition: str = "center1",
        backend: Optional[ModuleType] = None,
    ) -> None:
        kernel_sizes, conv_types = _check_stage_options(
            kernel_sizes, conv_types, down_kernel_size, partition, position_encoding, resolve_backend(backend)
        )
        super().__init__(in_channels, sparse_shape, backend, down_kernel_size=down_kernel_size)
        self.kernel_sizes, self.conv_types = kernel_sizes, conv_types
        self.position_encoding, self.partition = position_encoding, partition
        sp, kd = resolve_backend(backend), down_kernel_size

        def stage(s: int) -> List[nn.Module]:
            c, key = STAGE_CHANNELS[s], f"res{s + 1}"

            def conv() -> nn.Module:
                return _stage_conv(conv_types[s], c, kernel_sizes[s], key, sp, position_encoding, partition)

            return [SparseBasicBlock(conv(), conv(), c) for _ in range(2)]

        self.conv_input = _conv_bn_relu(
            sp.SubMConv3d(self.in_channels, 16, 3, padding=1, bias=False, indice_key="subm1"), 16
        )
        self.conv1 = ConvChain(*stage(0))
        self.conv2 = ConvChain(_down(sp, 16, 32, kd, 2, kd // 2, "spconv2"), *stage(1))
        self.conv3 = ConvChain(_down(sp, 32, 64, kd, 2, kd // 2, "spconv3"), *stage(2))
        self.conv4 = ConvChain(_down(sp, 64, 128, 3, 2, (0, 1, 1), "spconv4"), *stage(3))
        self.conv_out = _down(sp, 128, OUT_CHANNELS, (3, 1, 1), (2, 1, 1), 0, "spconv_down2")

    def config(self) -> Dict[str, Any]:
        """The constructor arguments besides ``backend`` (to rebuild the same architecture)."""
        return {
            "in_channels": self.in_channels,
            "sparse_shape": list(self.sparse_shape),
            "kernel_sizes": self.kernel_sizes,
            "conv_types": self.conv_types,
            "down_kernel_size": self.down_kernel_size,
            "position_encoding": self.position_encoding,
            "partition": self.partition,
        }

    def to_plain(self, backend: Optional[ModuleType] = None) -> "LargeKernel3DBackbone":
        """A copy whose SW-LK layers are plain ``k³`` SubM convs from ``backend`` (e.g. ``spconv.pytorch``)
        computing the same function: ``P[:, k] = W_{g(k)}^T`` plus the dilated branch merged at its taps,
        biases summed (:func:`largekernel3d.nn.export_plain`); every other weight and buffer is copied.

        Raises ``ValueError`` when a SW-LK layer has a position encoding (no plain-conv equivalent; build
        with ``position_encoding=False`` or evaluate :func:`largekernel3d.nn.export_plain` yourself).
        """
        cfg = self.config()
        cfg["conv_types"] = ("plain",) * 4
        plain = LargeKernel3DBackbone(**cfg, backend=backend).to(next(self.parameters()))
        state = {}
        swlk = {name: m for name, m in self.named_modules() if isinstance(m, SWLKConv3d)}
        for name, layer in swlk.items():
            exp = export_plain(layer)
            if exp.encoding_weight is not None:
                raise ValueError(
                    f"{name} has a position encoding, which a plain SubMConv3d cannot express; build "
                    f"the backbone with position_encoding=False to compare with plain convs"
                )
            state[f"{name}.weight"] = exp.weight
            state[f"{name}.bias"] = exp.bias if exp.bias is not None else exp.weight.new_zeros(layer.out_channels)
        for key, value in self.state_dict().items():
            if not any(key.startswith(f"{name}.") for name in swlk):
                state[key] = value
        plain.load_state_dict(state)
        return plain.train(self.training)


class VoxelResBackBone8x(LargeKernel3DBackbone):
    """OpenPCDet's ``VoxelResBackBone8x`` (CenterPoint's sparse backbone): two residual blocks of SubM 3³
    convs (with bias) per stage of 16, 32, 64, 128 channels, 3³ down layers, ``conv_out`` 128 -> 128.
    Same module tree, ``indice_key`` s and state-dict keys as OpenPCDet.

    Args: as :class:`VoxelBackBone8x`.
    """

    def __init__(self, in_channels: int, sparse_shape: Sequence[int], backend: Optional[ModuleType] = None) -> None:
        super().__init__(
            in_channels,
            sparse_shape,
            kernel_sizes=(3, 3, 3, 3),
            conv_types=("plain",) * 4,
            down_kernel_size=3,
            backend=backend,
        )


@dataclass(frozen=True)
class BackbonePreset:
    """A named :class:`LargeKernel3DBackbone` configuration and where it comes from.

    Attributes:
        kernel_sizes, conv_types, down_kernel_size, position_encoding: constructor arguments.
        source: the evidence for it (official file or note).
    """

    kernel_sizes: Tuple[int, int, int, int]
    conv_types: Tuple[str, str, str, str]
    down_kernel_size: int
    position_encoding: bool
    source: str

    def options(self) -> Dict[str, object]:
        """The constructor keyword arguments."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "source"}


_PLAIN3 = ("plain", "plain", "plain")
LARGEKERNEL3D_BACKBONE_PRESETS: Mapping[str, BackbonePreset] = MappingProxyType(
    {
        "nuscenes": BackbonePreset(
            (7, 5, 5, 5),
            ("swlk_dilated",) + _PLAIN3,
            5,
            False,
            "official det3d nuScenes config (SpMiddleResNetFHDLargeKernel: kernel_sizes=[7, 5, 5, 5], conv_types="
            "['spatialgroupconv', 'common', 'common', 'common'], kernel_sizes_downsample=[5, 5]); the V1 "
            "SpatialGroupConv has the dilated branch and no position encoding",
        ),
        "v1_7773": BackbonePreset(
            (7, 7, 7, 3),
            ("swlk_dilated",) * 3 + ("plain",),
            5,
            False,
            "the earlier LargeKernel3D version (SW-LK 7³ in stages 1-3, design notes); down kernel 5 as the other "
            "large-kernel configs (not confirmed by a released config)",
        ),
        "openpcdet": BackbonePreset(
            (7, 5, 5, 3),
            ("swlk_dilated",) + _PLAIN3,
            5,
            False,
            "defaults of the official OpenPCDet port VoxelResBackBone8xLargeKernel3D (KERNEL_SIZES=[7, 5, 5, 3], "
            "CONV_TYPES=['spatialgroupconv', 'common', 'common', 'common'], SPCONV_KERNEL_SIZES=[5, 5])",
        ),
        "waymo17": BackbonePreset(
            (17, 5, 5, 3),
            ("swlk",) + _PLAIN3,
            5,
            True,
            "the paper's Waymo model with stage 1 scaled to 17³ on the OpenPCDet port's layout (no released "
            "config: the released SpatialGroupConv handles only k = 5, 7); SW-LK with position encoding, as the paper",
        ),
    }
)


def build_largekernel3d_backbone(
    in_channels: int, sparse_shape: Sequence[int], preset: str = "nuscenes", **overrides
) -> LargeKernel3DBackbone:
    """``LargeKernel3DBackbone(in_channels, sparse_shape, **preset options, **overrides)`` for a name of
    :data:`LARGEKERNEL3D_BACKBONE_PRESETS` (overrides: ``kernel_sizes``, ``conv_types``,
    ``down_kernel_size``, ``position_encoding``, ``partition``, ``backend``)."""
    if preset not in LARGEKERNEL3D_BACKBONE_PRESETS:
        raise ValueError(f"preset must be one of {sorted(LARGEKERNEL3D_BACKBONE_PRESETS)}, got {preset!r}")
    allowed = {"kernel_sizes", "conv_types", "down_kernel_size", "position_encoding", "partition", "backend"}
    unknown = sorted(set(overrides) - allowed)
    if unknown:
        raise TypeError(f"unknown LargeKernel3DBackbone options {unknown}; allowed: {sorted(allowed)}")
    options = {**LARGEKERNEL3D_BACKBONE_PRESETS[preset].options(), **overrides}
    return LargeKernel3DBackbone(in_channels, sparse_shape, **options)


__all__ = [
    "BN_EPS",
    "BN_MOMENTUM",
    "STAGE_CHANNELS",
    "CONV_TYPES",
    "FEATURE_NAMES",
    "MULTI_SCALE_STRIDES",
    "batch_norm",
    "ConvChain",
    "SparseBasicBlock",
    "DetectionBackbone3d",
    "VoxelBackBone8x",
    "VoxelResBackBone8x",
    "LargeKernel3DBackbone",
    "BackbonePreset",
    "LARGEKERNEL3D_BACKBONE_PRESETS",
    "build_largekernel3d_backbone",
]
