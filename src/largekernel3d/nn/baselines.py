"""Baseline large-kernel layers the paper compares SW-LK convolution with (for ablations).

* :class:`PlainLargeKernelConv3d`: ``SubMConv3d(k)`` with ``k^3`` independent weights,
  ``out[i] = sum_k W[k]^T x[N(i, k)]`` (``k^3 C_in C_out`` parameters).
* :class:`DepthwiseLargeKernelConv3d`: RepLKNet's 2D habit, a depth-wise ``k^3`` submanifold conv
  (``groups = C_in``: ``z[i, c] = sum_k w[k, c] x[N(i, k), c]``) followed by a point-wise
  ``1x1x1`` conv ``out[i] = P^T z[i]`` (``k^3 C_in + C_in C_out`` parameters).
* :class:`DilatedConv3d`: a ``3^3`` submanifold conv with dilation ``d`` covering a ``2d + 1`` window,
  ``out[i] = sum_t W[t]^T x[i + d (t - 1)]``.
* :func:`make_large_kernel_conv`: build any of them (or :class:`SWLKConv3d`) by name.
"""

from __future__ import annotations

from typing import Optional

from ..sparse.conv import SubMConv3d
from ..sparse.modules import SparseModule
from ..sparse.tensor import SparseConvTensor
from .partition import IntOrSeq, check_kernel_size
from .swlk_conv import SWLKConv3d

CONV_KINDS = ("swlk", "plain", "depthwise", "dilated")


class PlainLargeKernelConv3d(SubMConv3d):
    """A plain ``k^3`` submanifold conv (``SubMConv3d``) with the SW-LK argument names and checks."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: IntOrSeq = 7,
        bias: bool = False,
        indice_key: Optional[str] = None,
    ) -> None:
        super().__init__(in_channels, out_channels, check_kernel_size(kernel_size), bias=bias, indice_key=indice_key)


class DepthwiseLargeKernelConv3d(SparseModule):
    """Depth-wise ``k^3`` submanifold conv (``groups = C_in``) then a point-wise ``1x1x1`` conv."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: IntOrSeq = 7,
        bias: bool = False,
        indice_key: Optional[str] = None,
    ) -> None:
        super().__init__()
        self.depthwise = SubMConv3d(
            in_channels,
            in_channels,
            check_kernel_size(kernel_size),
            groups=in_channels,
            bias=False,
            indice_key=indice_key,
        )
        self.pointwise = SubMConv3d(in_channels, out_channels, 1, bias=bias)
        self.in_channels, self.out_channels = in_channels, out_channels

    def forward(self, x: SparseConvTensor) -> SparseConvTensor:
        return self.pointwise(self.depthwise(x))


class DilatedConv3d(SubMConv3d):
    """A ``3^3`` submanifold conv with dilation (default ``kernel_size // 2`` of the window it stands for)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: IntOrSeq = 7,
        dilation: Optional[IntOrSeq] = None,
        bias: bool = False,
        indice_key: Optional[str] = None,
    ) -> None:
        window = check_kernel_size(kernel_size)
        dil = tuple(k // 2 for k in window) if dilation is None else dilation
        super().__init__(in_channels, out_channels, 3, dilation=dil, bias=bias, indice_key=indice_key)


def make_large_kernel_conv(
    kind: str,
    in_channels: int,
    out_channels: int,
    kernel_size: IntOrSeq = 7,
    bias: bool = False,
    indice_key: Optional[str] = None,
    **kwargs,
) -> SparseModule:
    """``kind`` in ``("swlk", "plain", "depthwise", "dilated")``; ``kwargs`` go to the layer
    (``partition``/``position_encoding``/``dilated_branch`` for SW-LK, ``dilation`` for dilated)."""
    classes = {
        "swlk": SWLKConv3d,
        "plain": PlainLargeKernelConv3d,
        "depthwise": DepthwiseLargeKernelConv3d,
        "dilated": DilatedConv3d,
    }
    if kind not in classes:
        raise ValueError(f"kind must be one of {CONV_KINDS}, got {kind!r}")
    return classes[kind](in_channels, out_channels, kernel_size, bias=bias, indice_key=indice_key, **kwargs)


__all__ = [
    "CONV_KINDS",
    "PlainLargeKernelConv3d",
    "DepthwiseLargeKernelConv3d",
    "DilatedConv3d",
    "make_large_kernel_conv",
]
