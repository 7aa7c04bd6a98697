"""MeanVFE against a per-voxel loop; HeightCompression against a per-site scatter; BEVNeck keys, shapes and
a functional reference forward."""

import pytest
import torch
import torch.nn.functional as F

from helpers import random_sparse_tensor
from largekernel3d.models.detection.bev import BEVNeck, HeightCompression
from largekernel3d.models.detection.vfe import MeanVFE


def test_mean_vfe_is_the_mean_of_the_stored_points():
    g = torch.Generator().manual_seed(0)
    voxels = torch.randn(50, 6, 5, generator=g, dtype=torch.float64)
    num = torch.randint(0, 7, (50,), generator=g, dtype=torch.int32)
    num[0] = 0
    out = MeanVFE(5)(voxels, num)
    for j in range(50):
        n = int(num[j])
        expected = voxels[j, :n].sum(dim=0) / max(n, 1)
        torch.testing.assert_close(out[j], expected)
    assert not out[0].any()
    # zero padding (OpenPCDet's input) gives OpenPCDet's formula, sum over all slots / clamp(n, 1)
    padded = voxels * (torch.arange(6).unsqueeze(0) < num.unsqueeze(1)).unsqueeze(2)
    torch.testing.assert_close(MeanVFE(5)(padded, num), padded.sum(dim=1) / num.clamp(min=1).unsqueeze(1))
    assert MeanVFE(5).out_channels == 5 and MeanVFE(5).get_output_feature_dim() == 5
    assert len(list(MeanVFE(5).parameters())) == 0


def test_mean_vfe_bad_input():
    vfe = MeanVFE(4)
    with pytest.raises(ValueError, match="num_point_features=4"):
        vfe(torch.rand(3, 2, 5), torch.ones(3, dtype=torch.int32))
    with pytest.raises(ValueError, match=r"num_points must be a tensor \[M\]"):
        vfe(torch.rand(3, 2, 4), torch.ones(2, dtype=torch.int32))
    with pytest.raises(ValueError, match="num_point_features must be a positive int"):
        MeanVFE(0)


@pytest.mark.filterwarnings("ignore:Using a non-tuple sequence:UserWarning")  # inside spconv's dense()
@pytest.mark.parametrize("backend", ["ours", "spconv"])
def test_height_compression_puts_each_channels_heights_together(backend):
    x = random_sparse_tensor([3, 5, 7], 4, num_sites=40, batch_size=2, seed=3)
    if backend == "spconv":
        spconv = pytest.importorskip("spconv.pytorch")
        x = spconv.SparseConvTensor(x.features, x.indices, x.spatial_shape, x.batch_size)
    bev = HeightCompression(12)(x)
    expected = torch.zeros(2, 12, 5, 7, dtype=x.features.dtype)
    for (b, z, y, xx), f in zip(x.indices.tolist(), x.features):
        for c in range(4):
            expected[b, c * 3 + z, y, xx] = f[c]
    assert torch.equal(bev, expected)
    with pytest.raises(ValueError, match="C=4 channels and D=3 heights"):
        HeightCompression(8)(x)
    with pytest.raises(TypeError, match="takes a SparseConvTensor"):
        HeightCompression(12)(torch.zeros(2, 4, 3, 5, 7))


def openpcdet_keys(layer_nums, deblock_count):
    """The state-dict keys of OpenPCDet's BaseBEVBackbone, written from its layer layout."""
    bn = ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]
    keys = []
    for level, n in enumerate(layer_nums):
        convs = [1] + [4 + 3 * k for k in range(n)]  # ZeroPad2d at 0, then conv, BN, ReLU triples
        for c in convs:
            keys.append(f"blocks.{level}.{c}.weight")
            keys += [f"blocks.{level}.{c + 1}.{p}" for p in bn]
    for d in range(deblock_count):
        keys.append(f"deblocks.{d}.0.weight")
        keys += [f"deblocks.{d}.1.{p}" for p in bn]
    return sorted(keys)


def test_neck_defaults_are_nuscenes_centerpoint():
    neck = BEVNeck(256)
    assert neck.out_channels == 512 and neck.stride == 1.0
    assert sorted(neck.state_dict()) == openpcdet_keys([5, 5], 2)
    assert neck.blocks[1][1].stride == (2, 2) and neck.blocks[0][1].in_channels == 256
    assert isinstance(neck.deblocks[1][0], torch.nn.ConvTranspose2d) and neck.deblocks[1][0].stride == (2, 2)
    for m in neck.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            assert m.eps == 1e-3 and m.momentum == 0.01
        if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)):
            assert m.bias is None
    out = neck(torch.randn(2, 256, 16, 12))
    assert out.shape == (2, 512, 16, 12)


def reference_neck_forward(neck, x, layer_nums, layer_strides, ups):
    """Eval-mode forward from the weights with torch.nn.functional (pad, conv, BN with running stats, ReLU)."""

    def bn_relu(y, bn):
        return F.relu(F.batch_norm(y, bn.running_mean, bn.running_var, bn.weight, bn.bias, False, 0.0, 1e-3))

    outs = []
    for level, n in enumerate(layer_nums):
        block = neck.blocks[level]
        x = bn_relu(F.conv2d(F.pad(x, (1, 1, 1, 1)), block[1].weight, stride=layer_strides[level]), block[2])
        for k in range(n):
            x = bn_relu(F.conv2d(x, block[4 + 3 * k].weight, padding=1), block[5 + 3 * k])
        de = neck.deblocks[level]
        u = ups[level]
        if u >= 1:
            y = F.conv_transpose2d(x, de[0].weight, stride=int(u))
        else:
            y = F.conv2d(x, de[0].weight, stride=round(1 / u))
        outs.append(bn_relu(y, de[1]))
    y = torch.cat(outs, dim=1)
    if len(ups) > len(layer_nums):
        y = bn_relu(F.conv_transpose2d(y, neck.deblocks[-1][0].weight, stride=int(ups[-1])), neck.deblocks[-1][1])
    return y


@pytest.mark.parametrize(
    "layer_nums,layer_strides,filters,ups,up_filters,stride",
    [
        ([5, 5], [1, 2], [8, 16], [1, 2], [12, 12], 1.0),
        ([1, 2, 1], [2, 2, 2], [8, 8, 16], [0.5, 1, 2], [4, 4, 4], 4.0),  # PointPillars-like, 1/2 = strided conv
        ([1, 1], [1, 2], [8, 16], [1, 2, 2], [6, 6], 0.5),  # an extra up-sampling of the concat
    ],
)
def test_neck_matches_a_functional_forward(layer_nums, layer_strides, filters, ups, up_filters, stride):
    torch.manual_seed(0)
    neck = BEVNeck(6, layer_nums, layer_strides, filters, ups, up_filters).double()
    with torch.no_grad():  # non-trivial BN statistics
        for m in neck.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    neck.eval()
    x = torch.randn(2, 6, 16, 24, dtype=torch.float64)
    out = neck(x)
    assert neck.stride == stride
    assert out.shape == (2, neck.out_channels, int(16 / stride), int(24 / stride))
    assert neck.out_channels == sum(up_filters)
    torch.testing.assert_close(out, reference_neck_forward(neck, x, layer_nums, layer_strides, ups))
    assert sorted(neck.state_dict()) == openpcdet_keys(layer_nums, len(ups))


def test_neck_bad_configurations_are_named():
    with pytest.raises(ValueError, match="different resolutions"):
        BEVNeck(8, [1, 1], [1, 2], [8, 8], [1, 1], [8, 8])
    with pytest.raises(ValueError, match="1/k for an integer k"):
        BEVNeck(8, [1], [1], [8], [0.3], [8])
    with pytest.raises(ValueError, match="one entry per level"):
        BEVNeck(8, [1, 1], [1], [8, 8], [1, 2], [8, 8])
    with pytest.raises(ValueError, match="several levels need upsample_strides"):
        BEVNeck(8, [1, 1], [1, 1], [8, 8], [], [])
    with pytest.raises(ValueError, match="divisible"):
        BEVNeck(8, [1, 1], [1, 2], [8, 8], [1, 2], [8, 8])(torch.randn(1, 8, 5, 5))
    single = BEVNeck(8, [1], [2], [8], [], [])
    assert single.out_channels == 8 and single.stride == 2.0 and len(single.deblocks) == 0
    assert single(torch.randn(1, 8, 6, 6)).shape == (1, 8, 3, 3)
