"""An official-structured LargeKernel3D segmentation network on spconv, written for the tests from the facts
of dvlab-research/LargeKernel3D ``semantic-segmentation/model.py`` (not copied): module names, shapes and the
evaluation forward.

* ``conv0p1s1`` SubM 5³ (no bias) + ``bn0`` + ReLU; ``conv{1..4}p{1,2,4,8}s2`` SparseConv3d(2, stride 2,
  **padding 1**) + ``bn{1..4}`` + ReLU; ``convtr{4..7}p{16,8,4,2}s2`` SparseInverseConv3d(2) of the down conv
  + ``bntr{4..7}`` + ReLU, then concatenation with the skip; ``final`` SubM 1³ with bias.
* ``block{1..8}`` = residual blocks ``conv1, norm1, conv2, norm2`` (+ ``downsample`` = (SubM 1³, BN) when the
  width changes): ``relu(norm2(conv2(relu(norm1(conv1 x)))) + shortcut)``.
* V1 ``SpatialGroupConv`` (``"spatialgroupconv"``) at evaluation: ``block`` (SubM k³) + ``conv3x3_1``
  (SubM 3³, **dilation 3**), summed; training keeps ``block.weight`` constant over the 27 groups whose
  per-axis edges are ``[0, k // 2, k // 2 + 1, k]``.
* V2 ``SpatialGroupConvV2`` (``"spatialgroupconvv2"``): ``block.weight [3, 3, 3, C_out, C_in]`` (27 group
  weights) and ``block.position_embedding [k³, C_in]``. spconv 2.3.8 has no such layer, so the reference
  evaluates it as one plain SubM k³ conv over ``[x, 1]``: offset ``o`` in group ``g`` gets weight
  ``W_g`` on ``x`` and ``PE[o] W_g`` on the ones column, except the centre offset (no embedding, as the
  spconv-plus kernel).
"""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest
import torch
from torch import nn

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    spconv = pytest.importorskip("spconv.pytorch")

DOWN = ("conv1p1s2", "conv2p2s2", "conv3p4s2", "conv4p8s2")
UP = ("convtr4p16s2", "convtr5p8s2", "convtr6p4s2", "convtr7p2s2")


def group_slices(k):
    """The official per-axis group edges of a k-window: before the centre, the centre, after."""
    e = (0, k // 2, k // 2 + 1, k)
    return [slice(e[i], e[i + 1]) for i in range(3)]


class V1SpatialGroupConv(nn.Module):
    def __init__(self, c_in, c_out, k, key):
        super().__init__()
        self.block = spconv.SubMConv3d(c_in, c_out, k, padding=k // 2, bias=False, indice_key=key)
        self.conv3x3_1 = spconv.SubMConv3d(
            c_in, c_out, 3, padding=1, dilation=3, bias=False, indice_key=key + "conv_3x3_1"
        )

    def forward(self, x):
        a = self.block(x)
        return a.replace_feature(a.features + self.conv3x3_1(x).features)


class V2SpatialGroupConv(nn.Module):
    """Parameters under the official names; the forward expands them into a plain conv over ``[x, 1]``."""

    def __init__(self, c_in, c_out, k, key):
        super().__init__()
        self.k, self.c_in, self.c_out = k, c_in, c_out
        self.block = nn.Module()
        self.block.weight = nn.Parameter(torch.zeros(3, 3, 3, c_out, c_in))
        self.block.position_embedding = nn.Parameter(torch.zeros(k**3, c_in))
        self.plain = spconv.SubMConv3d(c_in + 1, c_out, k, padding=k // 2, bias=False, indice_key=key + "v2")

    def expanded(self):
        k, c = self.k, self.c_in
        w = torch.zeros(self.c_out, k, k, k, c + 1)
        pe = self.block.position_embedding.detach().reshape(k, k, k, c)
        sl = group_slices(k)
        for a, b, d in itertools.product(range(3), repeat=3):
            wg = self.block.weight.detach()[a, b, d]  # [C_out, C_in]
            w[:, sl[a], sl[b], sl[d], :c] = wg[:, None, None, None, :]
            for i, j, m in itertools.product(range(k)[sl[a]], range(k)[sl[b]], range(k)[sl[d]]):
                if (i, j, m) != (k // 2, k // 2, k // 2):
                    w[:, i, j, m, c] = wg @ pe[i, j, m]
        return w

    def forward(self, x):
        with torch.no_grad():
            self.plain.weight.copy_(self.expanded())
        ones = x.features.new_ones((x.features.shape[0], 1))
        return self.plain(x.replace_feature(torch.cat([x.features, ones], 1)))


class Block(nn.Module):
    def __init__(self, c_in, c_out, kind, k, key):
        super().__init__()
        conv = {
            "common": lambda a, b, kk: spconv.SubMConv3d(a, b, k, padding=k // 2, bias=False, indice_key=kk),
            "spatialgroupconv": lambda a, b, kk: V1SpatialGroupConv(a, b, k, kk),
            "spatialgroupconvv2": lambda a, b, kk: V2SpatialGroupConv(a, b, k, kk),
        }[kind]
        self.conv1 = conv(c_in, c_out, key + "conv1")
        self.norm1 = nn.BatchNorm1d(c_out)
        self.conv2 = conv(c_out, c_out, key + "conv2")
        self.norm2 = nn.BatchNorm1d(c_out)
        self.downsample = None
        if c_in != c_out:
            self.downsample = spconv.SparseSequential(
                spconv.SubMConv3d(c_in, c_out, 1, bias=False, indice_key=key + "downsample"), nn.BatchNorm1d(c_out)
            )

    def forward(self, x):
        out = self.conv1(x)
        out = out.replace_feature(torch.relu(self.norm1(out.features)))
        out = self.conv2(out)
        out = out.replace_feature(self.norm2(out.features))
        res = x.features if self.downsample is None else self.downsample(x).features
        return out.replace_feature(torch.relu(out.features + res))


class OfficialSegNet(nn.Module):
    """The official network's module tree (``semantic-segmentation/model.py``'s names) and eval forward."""

    def __init__(self, c_in, classes, layers, planes, init_dim, kernels, kinds):
        super().__init__()
        self.conv0p1s1 = spconv.SubMConv3d(c_in, init_dim, 5, padding=2, bias=False, indice_key="conv0p1s1")
        self.bn0 = nn.BatchNorm1d(init_dim)
        width = init_dim
        skips = [init_dim]
        for s in range(4):
            setattr(
                self, DOWN[s], spconv.SparseConv3d(width, width, 2, stride=2, padding=1, bias=False, indice_key=DOWN[s])
            )
            setattr(self, f"bn{s + 1}", nn.BatchNorm1d(width))
            setattr(self, f"block{s + 1}", self._stage(width, planes[s], layers[s], kinds[s], kernels[s], f"e{s}"))
            width = planes[s]
            skips.append(width)
        for j in range(4):
            s = 4 + j
            setattr(self, UP[j], spconv.SparseInverseConv3d(width, planes[s], 2, indice_key=DOWN[3 - j], bias=False))
            setattr(self, f"bntr{4 + j}", nn.BatchNorm1d(planes[s]))
            setattr(
                self, f"block{s + 1}", self._stage(planes[s] + skips[3 - j], planes[s], layers[s], "common", 3, f"d{j}")
            )
            width = planes[s]
        self.final = spconv.SubMConv3d(width, classes, 1, bias=True, indice_key="final")

    @staticmethod
    def _stage(c_in, planes, blocks, kind, k, key):
        widths = [c_in] + [planes] * blocks
        return nn.Sequential(*(Block(widths[b], planes, kind, k, f"{key}b{b}") for b in range(blocks)))

    def forward(self, x):
        def cbr(conv, bn, t):
            t = conv(t)
            return t.replace_feature(torch.relu(bn(t.features)))

        out = cbr(self.conv0p1s1, self.bn0, x)
        skips = [out]
        for s in range(4):
            out = getattr(self, f"block{s + 1}")(cbr(getattr(self, DOWN[s]), getattr(self, f"bn{s + 1}"), out))
            skips.append(out)
        for j in range(4):
            out = cbr(getattr(self, UP[j]), getattr(self, f"bntr{4 + j}"), out)
            out = out.replace_feature(torch.cat([out.features, skips[3 - j].features], 1))
            out = getattr(self, f"block{5 + j}")(out)
        return self.final(out)


def randomise(net: OfficialSegNet, seed: int, grouped: bool = True) -> None:
    """Random weights (He-scaled), V1 ``block.weight`` constant over the 27 groups (as training leaves it)
    unless ``grouped=False``, random BatchNorm statistics and affine parameters."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, m in net.named_modules():
            if isinstance(m, nn.BatchNorm1d):
                c = m.num_features
                m.weight.copy_(1 + 0.1 * torch.randn(c, generator=g))
                m.bias.copy_(0.1 * torch.randn(c, generator=g))
                m.running_mean.copy_(0.1 * torch.randn(c, generator=g))
                m.running_var.copy_(0.5 + torch.rand(c, generator=g))
                m.num_batches_tracked.fill_(1000)
            elif isinstance(m, V2SpatialGroupConv):
                m.block.weight.copy_(torch.randn(m.block.weight.shape, generator=g) * (2 / (27 * m.c_in)) ** 0.5)
                m.block.position_embedding.copy_(torch.randn(m.block.position_embedding.shape, generator=g) * 0.3)
            elif isinstance(m, spconv.conv.SparseConvolution) and not name.endswith(".plain"):
                w = m.weight
                fan_in = w.shape[-1] * int(np.prod(w.shape[1:-1]))
                w.copy_(torch.randn(w.shape, generator=g) * (2.0 / fan_in) ** 0.5)
                if m.bias is not None:
                    m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=g))
        if grouped:
            for m in net.modules():
                if isinstance(m, V1SpatialGroupConv):
                    w = m.block.weight  # [C_out, k, k, k, C_in] (spconv 2.3)
                    sl = group_slices(w.shape[1])
                    for a, b, d in itertools.product(range(3), repeat=3):
                        part = w[:, sl[a], sl[b], sl[d], :]
                        part.copy_(part.mean(dim=(1, 2, 3), keepdim=True).expand_as(part))


def official_state(net: OfficialSegNet) -> dict:
    """The state dict under the official key names (the V2 reference's expansion buffer left out)."""
    return {k: v.detach().clone() for k, v in net.state_dict().items() if ".plain." not in k}


def eval_mode(net: nn.Module) -> nn.Module:
    """BatchNorm in eval mode; spconv's CPU convs stay in train mode (its eval path asserts on a bias)."""
    net.eval()
    for m in net.modules():
        if isinstance(m, spconv.conv.SparseConvolution):
            m.train()
    return net


# ---- the reference itself ------------------------------------------------------------------------------------
def test_full_size_reference_has_the_official_404_keys_and_names():
    with torch.device("meta"):
        net = OfficialSegNet(
            3,
            20,
            (2, 3, 4, 6, 2, 2, 2, 2),
            (32, 64, 128, 256, 256, 128, 96, 96),
            32,
            (7,) * 4,
            ("spatialgroupconv",) * 4,
        )
    keys = official_state(net)
    assert len(keys) == 404
    for key in (
        "conv0p1s1.weight",
        "bn0.running_var",
        "conv4p8s2.weight",
        "block1.0.conv1.block.weight",
        "block1.0.conv1.conv3x3_1.weight",
        "block2.0.downsample.0.weight",
        "block4.5.norm2.bias",
        "convtr7p2s2.weight",
        "bntr7.weight",
        "block8.1.conv2.weight",
        "final.bias",
    ):
        assert key in keys, key
    assert tuple(keys["block1.0.conv1.block.weight"].shape) == (32, 7, 7, 7, 32)


def test_reference_v2_expansion_matches_its_definition():
    """The V2 reference's expanded conv against the definition: per site, sum over active neighbours of
    (x_j + PE[o]) W_g(o), centre without PE, computed by brute force on a few sites."""
    torch.manual_seed(0)
    layer = V2SpatialGroupConv(2, 3, 5, "t")
    with torch.no_grad():
        layer.block.weight.normal_()
        layer.block.position_embedding.normal_()
    idx = torch.tensor([[0, 2, 2, 2], [0, 3, 2, 2], [0, 0, 4, 1], [0, 4, 4, 4], [0, 2, 1, 3]], dtype=torch.int32)
    feats = torch.randn(5, 2)
    out = layer(spconv.SparseConvTensor(feats, idx, [6, 6, 6], 1))
    site = {tuple(r[1:].tolist()): i for i, r in enumerate(out.indices)}
    got = out.features
    part = [0] * 2 + [1] + [2] * 2  # group of each of the 5 positions along an axis (edges 0, 2, 3, 5)
    for p, i in site.items():
        want = torch.zeros(3)
        for j, q in enumerate(idx[:, 1:].tolist()):
            o = [q[a] - p[a] + 2 for a in range(3)]
            if all(0 <= v < 5 for v in o):
                w = layer.block.weight[part[o[0]], part[o[1]], part[o[2]]]
                x = feats[j] + (0 if o == [2, 2, 2] else layer.block.position_embedding[(o[0] * 5 + o[1]) * 5 + o[2]])
                want += w @ x
        torch.testing.assert_close(got[i], want.detach(), rtol=1e-5, atol=1e-5)
