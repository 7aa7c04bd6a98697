"""Residual blocks built on SW-LK convolution (the LargeKernel3D encoder blocks).

:class:`SWLKBasicBlock` is MinkUNet's / spconv's ``BasicBlock`` with both ``3^3`` convs replaced by
SW-LK convs (or any kind of :func:`~largekernel3d.nn.baselines.make_large_kernel_conv`)::

    y = ReLU( BN2(conv2( ReLU(BN1(conv1(x))) )) + shortcut(x) )

``shortcut`` is the identity, or a ``1x1x1`` conv + BN when ``inplanes != planes``.
"""

from __future__ import annotations

from typing import Optional

from torch import nn

from ..sparse.conv import SubMConv3d
from ..sparse.modules import SparseModule, SparseSequential
from ..sparse.tensor import SparseConvTensor
from .baselines import make_large_kernel_conv
from .partition import IntOrSeq


class SWLKBasicBlock(SparseModule):
    """Residual basic block with two large-kernel convs (submanifold; sites are kept).

    Args:
        inplanes, planes: input / output channels.
        kernel_size: the large kernel (default 7).
        conv: ``"swlk"`` (default), ``"plain"``, ``"depthwise"`` or ``"dilated"``.
        indice_key: kernel-map key shared by both convs (and by later blocks on the same sites).
        bn_eps, bn_momentum: BatchNorm1d settings (MinkUNet: 1e-5 / 0.1; OpenPCDet: 1e-3 / 0.01).
        conv_kwargs: passed to the convs (e.g. ``partition``, ``position_encoding``, ``dilated_branch``).
    """

    expansion = 1

    def __init__(self, inplanes: int, planes: int, kernel_size: IntOrSeq = 7, conv: str = "swlk",
                 indice_key: Optional[str] = None, bn_eps: float = 1e-5, bn_momentum: float = 0.1,
                 **conv_kwargs) -> None:
        super().__init__()
        self.conv1 = make_large_kernel_conv(conv, inplanes, planes, kernel_size, indice_key=indice_key, **conv_kwargs)
        self.bn1 = nn.BatchNorm1d(planes, eps=bn_eps, momentum=bn_momentum)
        self.conv2 = make_large_kernel_conv(conv, planes, planes, kernel_size, indice_key=indice_key, **conv_kwargs)
        self.bn2 = nn.BatchNorm1d(planes, eps=bn_eps, momentum=bn_momentum)
        self.relu = nn.ReLU()
        self.downsample: Optional[SparseSequential] = None
        if inplanes != planes:
            self.downsample = SparseSequential(SubMConv3d(inplanes, planes, 1, bias=False),
                                               nn.BatchNorm1d(planes, eps=bn_eps, momentum=bn_momentum))

    def forward(self, x: SparseConvTensor) -> SparseConvTensor:
        out = self.conv1(x)
        out = out.replace_feature(self.relu(self.bn1(out.features)))
        out = self.conv2(out)
        out = self.bn2(out.features)
        identity = x.features if self.downsample is None else self.downsample(x).features
        return x.replace_feature(self.relu(out + identity))


__all__ = ["SWLKBasicBlock"]
