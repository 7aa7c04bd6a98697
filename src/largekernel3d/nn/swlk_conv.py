"""Spatial-wise large-kernel convolution (SW-LK conv, LargeKernel3D, CVPR 2023).

A submanifold convolution with a ``k_0 x k_1 x k_2`` window whose offsets are split into groups by a
:class:`~largekernel3d.nn.partition.SpatialPartition`; all offsets of a group share one weight. With the
optional per-offset position encoding ``E [K, C_in]`` (``K = k_0 k_1 k_2``)::

    out[i] = bias + sum_g  W_g^T  sum_{k in g}  sum_{j = N(i, k) active} ( x[j] + E[k] )
           (+ dilated branch: sum_t D_t^T x[N_d(i, t)], a 3x3x3 submanifold conv with dilation d)

The dilated branch's dilation ``d`` is ``k // 2 - 1`` per axis by default (the official detection code's
``SpatialGroupConv``); the official segmentation code hard-codes ``d = 3`` (``dilated_dilation=3``).

``W`` has shape ``[G, C_in, C_out]`` (``G = 27`` for the default ``"center1"`` partition).

Computation (forward and backward cost proportional to the groups, not to ``k^3``), by
:func:`largekernel3d.sparse.group_conv.group_conv`: ``A = sum over each group of (x[j] + E[k])``
(additions only), then ``out = sum_g A_g W_g``; backward ``dW_g = A_g^T dOut``, ``dA_g = dOut W_g^T``
(GEMMs over groups) and the aggregation's adjoint scatters ``dA`` back to ``dx`` and ``dE``. On the CPU
only non-empty ``(site, group)`` rows of ``A`` are formed (one GEMM per group); elsewhere ``A`` is the
dense ``[N, G C_in]`` matrix and the product is ONE GEMM with ``W.reshape(G C_in, C_out)``.

Centre voxel: the official fast path (spconv-plus ``indice_conv_spatial_groups``) computes the centre
group as ``x[i] @ W_centre`` from the identity pairs, without adding any position encoding. We follow
it: the encoding of the centre offset is never added (``E[centre]`` stays in the parameter so the shape
``[k^3, C_in]`` matches the official checkpoints; its gradient is always zero). All other offsets,
including non-centre offsets of a larger centre group (``"center3"``), get their encoding.
"""

from __future__ import annotations

import math
from typing import Optional, Tuple

import torch
from torch import Tensor, nn

from ..sparse.compile_support import eager_under_compile
from ..sparse.conv import SubMConv3d, get_or_build_map
from ..sparse.cpu.tuning import DEFAULT_TUNING, CpuTuning
from ..sparse.dispatch import GROUP_CONV_DATAFLOWS, Dataflow, DataflowLike, as_dataflow, check_tuning
from ..sparse.geometry import ConvGeometry
from ..sparse.group_conv import group_conv
from ..sparse.kernel_map import SUBMANIFOLD, KernelMap
from ..sparse.modules import SparseModule, check_parameter_match, check_sparse_input
from ..sparse.tensor import SparseConvTensor
from .partition import IntOrSeq, SpatialPartition

ENCODING_STD = 0.02


def _check_channels(**channels: int) -> None:
    for name, value in channels.items():
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ValueError(f"{name} must be a positive int, got {value!r}")


def branch_dilation(kernel_size: Tuple[int, ...], dilation: Optional[IntOrSeq] = None) -> Tuple[int, ...]:
    """The dilated branch's per-axis dilation: ``dilation`` (int or one per axis, each >= 1) or, for ``None``,
    ``k // 2 - 1`` per axis of ``kernel_size`` (the official detection code; needs every ``k >= 5``)."""
    if dilation is None:
        dil = tuple(k // 2 - 1 for k in kernel_size)
        if min(dil) < 1:
            raise ValueError(
                f"dilated_branch needs kernel_size >= 5 on every axis (dilation k // 2 - 1 >= 1), "
                f"got kernel_size={tuple(kernel_size)}; or pass dilated_dilation"
            )
        return dil
    dil = (
        (dilation,) * len(kernel_size)
        if isinstance(dilation, int) and not isinstance(dilation, bool)
        else tuple(dilation)
        if isinstance(dilation, (tuple, list))
        else ()
    )
    if len(dil) != len(kernel_size) or any(isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in dil):
        raise ValueError(f"dilated_dilation must be a positive int or {len(kernel_size)} of them, got {dilation!r}")
    return dil


class SWLKConv3d(SparseModule):
    """Spatial-wise large-kernel submanifold convolution (see the module docstring for the math).

    Args:
        in_channels, out_channels: ``C_in``, ``C_out``.
        kernel_size: odd window size in ``[3, 31]``, int or per-axis tuple (axes in the order of the
            tensor's ``spatial_shape``).
        partition: ``"center1"`` (default), ``"center3"`` or ``"thirds"``
            (see :mod:`largekernel3d.nn.partition`).
        position_encoding: learn the per-offset encoding ``E [K, C_in]`` (trunc-normal, std 0.02).
        dilated_branch: add the official code's parallel 3x3x3 submanifold conv (outputs summed).
        dilated_dilation: the branch's dilation, int or per-axis tuple; ``None`` (default) is ``k // 2 - 1``
            per axis as in the official detection code (needs every ``k >= 5``); the official segmentation
            network uses ``3``. Only with ``dilated_branch=True``.
        bias: learnable ``[C_out]`` bias.
        indice_key: kernel-map cache key; layers (SW-LK or ``SubMConv3d``) with the same key and kernel
            size on the same sites share the map. The dilated branch uses ``indice_key + "_dilated"``.
        dataflow: the SW-LK products' :class:`~largekernel3d.sparse.dispatch.Dataflow` (``AUTO``: the rule of
            :func:`~largekernel3d.sparse.dispatch.plan_group_conv`; ``CPU_FUSED``, ``CPU_CHUNKED`` or ``TORCH_REF``
            by name; the dilated branch keeps its own rule). Not saved in the state dict.
        tuning: the :class:`~largekernel3d.sparse.cpu.tuning.CpuTuning` the map builder and kernels read (the
            dilated branch's too). Not saved either.

    Parameters: ``weight [G, C_in, C_out]``, ``position_encoding [K, C_in]`` (optional), ``bias [C_out]``
    (optional), ``dilated.weight`` (optional, spconv layout ``[C_out, 3, 3, 3, C_in]``).
    """

    group_index: Tensor  # [K] group of each kernel offset (a non-persistent buffer)
    position_encoding: Optional[nn.Parameter]
    bias: Optional[nn.Parameter]

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: IntOrSeq = 7,
        partition: str = "center1",
        position_encoding: bool = True,
        dilated_branch: bool = False,
        bias: bool = False,
        indice_key: Optional[str] = None,
        dilated_dilation: Optional[IntOrSeq] = None,
        dataflow: DataflowLike = Dataflow.AUTO,
        tuning: CpuTuning = DEFAULT_TUNING,
    ) -> None:
        super().__init__()
        self.dataflow = as_dataflow(dataflow, "group convolution", GROUP_CONV_DATAFLOWS)
        self.tuning = check_tuning(tuning)
        _check_channels(in_channels=in_channels, out_channels=out_channels)
        self.partition = SpatialPartition.create(kernel_size, partition)
        self.geometry = ConvGeometry.create(3, self.partition.kernel_size)
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.indice_key = indice_key
        g, k = self.partition.num_groups, self.partition.kernel_volume
        self.register_buffer("group_index", self.partition.group_index(), persistent=False)
        self.weight = nn.Parameter(torch.empty(g, in_channels, out_channels))
        self.position_encoding = nn.Parameter(torch.empty(k, in_channels)) if position_encoding else None
        self.bias = nn.Parameter(torch.empty(out_channels)) if bias else None
        self.dilated: Optional[SubMConv3d] = None
        if dilated_dilation is not None and not dilated_branch:
            raise ValueError(f"dilated_dilation={dilated_dilation!r} needs dilated_branch=True")
        if dilated_branch:
            dil = branch_dilation(self.partition.kernel_size, dilated_dilation)
            key = None if indice_key is None else f"{indice_key}_dilated"
            self.dilated = SubMConv3d(
                in_channels, out_channels, 3, dilation=dil, bias=False, indice_key=key, tuning=tuning
            )
        self.reset_parameters()

    @property
    def kernel_size(self):
        return self.partition.kernel_size

    @property
    def num_groups(self) -> int:
        return self.partition.num_groups

    def reset_parameters(self) -> None:
        """Weight uniform in ``±1/sqrt(G C_in)`` (spconv's init of the official ``[3, 3, 3]`` grouped weight);
        encoding trunc-normal std 0.02 (the official ``trunc_normal_(std=0.02)``, bounds ±2); bias uniform
        in the weight's bound."""
        bound = 1.0 / math.sqrt(self.num_groups * self.in_channels)
        nn.init.uniform_(self.weight, -bound, bound)
        if self.position_encoding is not None:
            nn.init.trunc_normal_(self.position_encoding, std=ENCODING_STD, a=-2.0, b=2.0)
        if self.bias is not None:
            nn.init.uniform_(self.bias, -bound, bound)

    def extra_repr(self) -> str:
        s = (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"partition={self.partition.name!r}, groups={self.num_groups}, "
            f"position_encoding={self.position_encoding is not None}"
        )
        if self.dilated is not None:
            s += f", dilated_dilation={tuple(self.dilated.dilation)}"
        if self.bias is None:
            s += ", bias=False"
        if self.indice_key is not None:
            s += f", indice_key={self.indice_key!r}"
        return s

    def effective_encoding(self) -> Optional[Tensor]:
        """``E`` with the centre offset's row zeroed (the official centre fast path), or ``None``."""
        if self.position_encoding is None:
            return None
        centre = torch.tensor([self.partition.centre_offset], device=self.position_encoding.device)
        return self.position_encoding.index_fill(0, centre, 0.0)

    def kernel_map(self, x: SparseConvTensor) -> KernelMap:
        """The (cached or new) ``k``-window submanifold kernel map on ``x``'s sites."""
        return get_or_build_map(x, SUBMANIFOLD, self.geometry, self.indice_key, self.tuning)

    def _check_parameters(self) -> None:
        """Raise ``ValueError`` naming the parameter when one was replaced by a tensor of another shape (e.g. a
        full ``k^3`` official weight written into ``.weight.data``: load it with ``load_official_v1`` / ``v2``)."""
        expected = {
            "weight": (self.partition.num_groups, self.in_channels, self.out_channels),
            "position_encoding": (self.partition.kernel_volume, self.in_channels),
            "bias": (self.out_channels,),
        }
        for name, shape in expected.items():
            value = getattr(self, name)
            if value is not None and tuple(value.shape) != shape:
                raise ValueError(
                    f"{type(self).__name__}.{name} has shape {tuple(value.shape)} but this layer needs "
                    f"{shape} ([groups, C_in, C_out] weight, [k^3, C_in] encoding); convert full-kernel "
                    f"weights with swlk_from_plain / load_official_v1 / load_official_v2"
                )

    @eager_under_compile
    def forward(self, x: SparseConvTensor) -> SparseConvTensor:
        name = type(self).__name__
        check_sparse_input(x, name, self.in_channels, 3)
        check_parameter_match(x, self.weight, name)
        self._check_parameters()
        out = group_conv(
            x.features,
            self.effective_encoding(),
            self.weight,
            self.kernel_map(x),
            self.group_index,
            self.dataflow,
            self.tuning,
        )
        if self.dilated is not None:
            out = out + self.dilated(x).features
        if self.bias is not None:
            out = out + self.bias
        return x.replace_feature(out)


__all__ = ["SWLKConv3d", "ENCODING_STD", "branch_dilation"]
