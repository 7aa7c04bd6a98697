"""Baseline large-kernel layers (plain, depth-wise + point-wise, dilated) against dense F.conv3d, and the
residual block of the model zoo with SW-LK / plain convs."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from helpers import dense_subm_conv, random_sparse_tensor
import largekernel3d.sparse as ours
from largekernel3d.models.blocks import BasicBlock, ConvSpec
from largekernel3d.nn import (
    DepthwiseLargeKernelConv3d,
    DilatedConv3d,
    PlainLargeKernelConv3d,
    SWLKConv3d,
    make_large_kernel_conv,
)
from largekernel3d.nn.convert import fuse_bn

pytestmark = pytest.mark.usefixtures("one_thread")


def _x(c=3, seed=0):
    return random_sparse_tensor((9, 10, 8), c, density=0.2, batch_size=2, dtype=torch.float64, seed=seed)


def test_plain_large_kernel_is_a_dense_subm_conv():
    x = _x()
    conv = PlainLargeKernelConv3d(3, 4, 5, bias=True).double()
    assert sum(p.numel() for p in conv.parameters()) == 125 * 3 * 4 + 4
    torch.testing.assert_close(conv(x).features, dense_subm_conv(x, conv.weight, conv.bias))


def test_depthwise_large_kernel_is_grouped_then_pointwise():
    x = _x()
    conv = DepthwiseLargeKernelConv3d(3, 4, 5).double()
    assert sum(p.numel() for p in conv.parameters()) == 125 * 3 + 3 * 4
    depth = dense_subm_conv(x, conv.depthwise.weight, None, groups=3)
    ref = depth @ conv.pointwise.weight.reshape(4, 3).t()
    torch.testing.assert_close(conv(x).features, ref)


def test_dilated_conv_covers_the_window_with_3_taps():
    x = _x()
    conv = DilatedConv3d(3, 4, 7).double()
    assert conv.dilation == (3, 3, 3) and conv.kernel_size == (3, 3, 3)
    torch.testing.assert_close(conv(x).features, dense_subm_conv(x, conv.weight, None, dilation=3))
    assert DilatedConv3d(3, 4, 7, dilation=2).dilation == (2, 2, 2)


def test_factory_kinds_and_bad_kind():
    assert isinstance(make_large_kernel_conv("swlk", 2, 2, 5, partition="thirds"), SWLKConv3d)
    assert isinstance(make_large_kernel_conv("plain", 2, 2, 5), PlainLargeKernelConv3d)
    with pytest.raises(ValueError, match="kind must be one of"):
        make_large_kernel_conv("grouped", 2, 2)
    with pytest.raises(ValueError, match="kernel_size"):
        make_large_kernel_conv("depthwise", 2, 2, 4)


@pytest.mark.parametrize("inplanes, conv", [(4, "swlk"), (3, "swlk"), (3, "plain")])
def test_basic_block_is_conv_bn_relu_conv_bn_plus_shortcut(inplanes, conv):
    x = _x(c=inplanes)
    torch.manual_seed(0)
    block = BasicBlock(inplanes, 4, ConvSpec(conv, 5), level=0, backend=ours).double()
    y = block(x)  # training mode: BN batch statistics
    assert y.features.shape == (x.features.shape[0], 4) and torch.equal(y.indices, x.indices)
    y.features.sum().backward()
    assert block.conv1.weight.grad.abs().sum() > 0  # the gradient reaches the first conv
    block.eval()
    h = F.relu(block.bn1(block.conv1(x).features))
    h = block.bn2(block.conv2(x.replace_feature(h)).features)
    short = x.features if block.downsample is None else block.downsample_bn(block.downsample(x).features)
    torch.testing.assert_close(block(x).features, F.relu(h + short))
    assert (block.downsample is None) == (inplanes == 4)
    # an inference block with the BNs folded into the convs gives the same eval output
    c1, c2 = fuse_bn(block.conv1, block.bn1), fuse_bn(block.conv2, block.bn2)
    h2 = c2(x.replace_feature(F.relu(c1(x).features))).features
    torch.testing.assert_close(F.relu(h2 + short), block(x).features)
