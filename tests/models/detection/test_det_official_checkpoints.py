"""Loading official LargeKernel3D detection checkpoints (OpenPCDet port and det3d) into LargeKernel3DBackbone.

No official file is available offline, so the checkpoints are written here from the official module trees
(dvlab-research/LargeKernel3D ``object-detection/``): key names and shapes as the official code creates them,
random values, weights stored in spconv 2.1's ``[*k, C_out, C_in]`` layout or spconv >= 2.2's
``[C_out, *k, C_in]``. The reference is the official network's evaluation forward built from spconv modules
(a V1 ``SpatialGroupConv`` = ``block`` k³ SubM conv + ``conv3x3_1`` 3³ SubM conv with dilation ``k // 2 - 1``,
summed) with the checkpoint loaded under its own key names, run on a real KITTI patch at one thread.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from helpers import optional_spconv

import largekernel3d.sparse as lsp
from largekernel3d.models.detection.backbone3d import (
    LargeKernel3DBackbone,
    VoxelResBackBone8x,
    build_largekernel3d_backbone,
)
from largekernel3d.models.detection.official_det import (
    load_det3d_largekernel3d,
    load_official_backbone,
    load_openpcdet_largekernel3d,
)

spconv = optional_spconv()

needs_spconv = pytest.mark.skipif(spconv is None, reason="spconv is not importable")
pytestmark = pytest.mark.filterwarnings("ignore:Using a non-tuple sequence:UserWarning")

SHARED_DATA = Path(__file__).resolve().parents[3] / ".." / "shared" / "data"
FRAME = SHARED_DATA / "kitti" / "training" / "velodyne" / "000001.bin"
SHAPE = [41, 1600, 1408]  # OpenPCDet's KITTI grid, 0.05 x 0.05 x 0.1 m voxels
CHANNELS = (16, 32, 64, 128)
# the official SpatialGroupConv splits each axis of a k-window at these positions (3 parts: before, centre, after)
GROUP_EDGES = {5: (0, 2, 3, 5), 7: (0, 3, 4, 7)}
BN = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


# -- official-structured checkpoints, written from the official module trees ----------------------------------
class Writer:
    """Random tensors for official keys (seeded)."""

    def __init__(self, seed: int) -> None:
        self.g = torch.Generator().manual_seed(seed)

    def randn(self, *shape, scale=1.0):
        return torch.randn(shape, generator=self.g) * scale

    def conv(self, c_out, kernel, c_in):
        fan_in = c_in * int(np.prod(kernel))
        return self.randn(c_out, *kernel, c_in, scale=(2.0 / fan_in) ** 0.5)

    def group_constant(self, c, k):
        """A full k³ weight [C_out, k, k, k, C_in] constant over each of the 27 official groups."""
        e = GROUP_EDGES[k]
        w = torch.empty(c, k, k, k, c)
        for a, b, d in itertools.product(range(3), repeat=3):
            part = self.randn(c, 1, 1, 1, c, scale=(2.0 / (27 * c)) ** 0.5)
            w[:, e[a] : e[a + 1], e[b] : e[b + 1], e[d] : e[d + 1], :] = part
        return w

    def bn(self, prefix, c):
        return {
            f"{prefix}.weight": 1.0 + self.randn(c, scale=0.1),
            f"{prefix}.bias": self.randn(c, scale=0.1),
            f"{prefix}.running_mean": self.randn(c, scale=0.1),
            f"{prefix}.running_var": 0.5 + torch.rand(c, generator=self.g),
            f"{prefix}.num_batches_tracked": torch.tensor(1000),
        }


def official_conv(w: Writer, prefix: str, conv_type: str, c: int, k: int) -> dict:
    """One conv of an official SparseBasicBlock (bias=True): 'common' SubMConv3d or V1 SpatialGroupConv."""
    if conv_type == "common":
        return {f"{prefix}.weight": w.conv(c, (k, k, k), c), f"{prefix}.bias": w.randn(c, scale=0.1)}
    return {
        f"{prefix}.block.weight": w.group_constant(c, k),
        f"{prefix}.block.bias": w.randn(c, scale=0.1),
        f"{prefix}.conv3x3_1.weight": w.conv(c, (3, 3, 3), c),
        f"{prefix}.conv3x3_1.bias": w.randn(c, scale=0.1),
    }


def openpcdet_port_state(seed, c_in, kernel_sizes, conv_types, down) -> dict:
    """VoxelResBackBone8xLargeKernel3D's state dict (KRSC): conv_input = (SubM 3³, BN, ReLU); conv1 = 2 blocks;
    conv{2,3,4} = (post_act_block(down conv, BN, ReLU), 2 blocks); conv_out = (SparseConv3d (3,1,1), BN, ReLU)."""
    w = Writer(seed)
    sd = {"conv_input.0.weight": w.conv(16, (3, 3, 3), c_in), **w.bn("conv_input.1", 16)}
    for s, c in enumerate(CHANNELS, start=1):
        first = 0
        if s > 1:
            kd = down if s < 4 else 3
            sd.update({f"conv{s}.0.0.weight": w.conv(c, (kd,) * 3, CHANNELS[s - 2]), **w.bn(f"conv{s}.0.1", c)})
            first = 1
        for j in (first, first + 1):
            for n in (1, 2):
                sd.update(official_conv(w, f"conv{s}.{j}.conv{n}", conv_types[s - 1], c, kernel_sizes[s - 1]))
                sd.update(w.bn(f"conv{s}.{j}.bn{n}", c))
    sd.update({"conv_out.0.weight": w.conv(128, (3, 1, 1), 128), **w.bn("conv_out.1", 128)})
    return sd


def det3d_names(openpcdet_state: dict) -> dict:
    """The same tensors under SpMiddleResNetFHDLargeKernel's names: its conv{2,3,4} are flat
    (0 SparseConv3d, 1 BN, 2 ReLU, 3 and 4 blocks) and conv_out is extra_conv."""
    out = {}
    for key, v in openpcdet_state.items():
        head, *rest = key.split(".")
        if head == "conv_out":
            head = "extra_conv"
        elif head in ("conv2", "conv3", "conv4"):
            rest = ([rest[1]] + rest[2:]) if rest[0] == "0" else ([{"1": "3", "2": "4"}[rest[0]]] + rest[1:])
        out[".".join([head, *rest])] = v
    return out


def to_rskc(state: dict) -> dict:
    """spconv 2.1's native layout [*k, C_out, C_in] for every conv weight."""
    return {k: v.permute(1, 2, 3, 0, 4).contiguous() if v.dim() == 5 else v for k, v in state.items()}


# -- the official evaluation forward from spconv modules -------------------------------------------------------
class OfficialSpatialGroupConv(nn.Module):
    """Official V1 SpatialGroupConv at evaluation: ``block(x) + conv3x3_1(x)`` with the stored weights."""

    def __init__(self, c, k, key):
        super().__init__()
        self.block = spconv.SubMConv3d(c, c, k, padding=k // 2, bias=True, indice_key=key)
        self.conv3x3_1 = spconv.SubMConv3d(
            c, c, 3, padding=k // 2 - 1, dilation=k // 2 - 1, bias=True, indice_key=key + "conv_3x3_1"
        )

    def forward(self, x):
        a = self.block(x)
        return a.replace_feature(a.features + self.conv3x3_1(x).features)


def official_reference(c_in, kernel_sizes, conv_types, down, state):
    """The official network from spconv modules with ``state`` loaded under the OpenPCDet-port names."""
    net = LargeKernel3DBackbone(c_in, SHAPE, kernel_sizes, ("plain",) * 4, down, backend=spconv)
    for s, stage in enumerate((net.conv1, net.conv2, net.conv3, net.conv4)):
        if conv_types[s] == "spatialgroupconv":
            for block in list(stage)[-2:]:
                block.conv1 = OfficialSpatialGroupConv(CHANNELS[s], kernel_sizes[s], f"res{s + 1}")
                block.conv2 = OfficialSpatialGroupConv(CHANNELS[s], kernel_sizes[s], f"res{s + 1}")
    net.load_state_dict(state)  # strict: the official key names are exactly this tree's
    net.eval()
    for m in net.modules():  # spconv's CPU conv asserts on a bias in eval mode; BN stays in eval mode
        if isinstance(m, spconv.conv.SparseConvolution):
            m.train()
    return net


@pytest.fixture(scope="module")
def patch():
    """Frame 000001, x in [10, 20), y in [-5, 5) m, mean (x, y, z, intensity) per voxel on the KITTI grid."""
    if not FRAME.exists():
        pytest.skip("../shared/data is not present")
    pts = torch.from_numpy(np.fromfile(FRAME, dtype=np.float32).reshape(-1, 4))
    keep = (
        (pts[:, 0] >= 10) & (pts[:, 0] < 20) & (pts[:, 1] >= -5) & (pts[:, 1] < 5) & (pts[:, 2] >= -3) & (pts[:, 2] < 1)
    )
    pts = pts[keep]
    vox = lsp.voxelize(pts[:, :3], (0.05, 0.05, 0.1), features=pts, origin=(0.0, -40.0, -3.0))
    idx = torch.cat([torch.zeros(vox.num_voxels, 1, dtype=torch.int32), vox.coords.flip(1).to(torch.int32)], dim=1)
    return vox.features, idx


def sorted_by_site(t):
    s = [int(v) for v in t.spatial_shape]
    i = t.indices.long()
    key = ((i[:, 0] * s[0] + i[:, 1]) * s[1] + i[:, 2]) * s[2] + i[:, 3]
    order = key.argsort()
    return key[order], t.features[order]


def assert_same_output(ours, reference, patch):
    feats, idx = patch
    with torch.no_grad():
        a = ours.eval()(lsp.SparseConvTensor(feats, idx, SHAPE, 1))
        b = reference(spconv.SparseConvTensor(feats, idx, SHAPE, 1))
    ka, fa = sorted_by_site(a)
    kb, fb = sorted_by_site(b)
    assert torch.equal(ka, kb) and fb.abs().max() > 0.1
    rel = float((fa - fb).norm() / fb.norm())
    assert rel < 1e-5, rel
    return rel


OPENPCDET_PORT = ((7, 5, 5, 3), ("spatialgroupconv", "common", "common", "common"), 5)  # its defaults
DET3D_NUSCENES = ((7, 5, 5, 5), ("spatialgroupconv", "common", "common", "common"), 5)  # the nuScenes config


# -- tests ------------------------------------------------------------------------------------------------------
@needs_spconv
def test_openpcdet_port_checkpoint_gives_the_official_output(patch, one_thread):
    kernels, types, down = OPENPCDET_PORT
    state = openpcdet_port_state(1, 4, kernels, types, down)
    checkpoint = {
        "model_state": {
            **{f"backbone_3d.{k}": v for k, v in to_rskc(state).items()},
            "dense_head.conv.weight": torch.zeros(3),
        },
        "epoch": 80,
    }
    net = build_largekernel3d_backbone(4, SHAPE, "openpcdet")
    report = load_openpcdet_largekernel3d(net, checkpoint)
    assert (report.source, report.prefix, report.other_parts) == ("openpcdet", "backbone_3d.", 1)
    assert report.unused == () and report.missing == () and set(report.converted) == set(net.state_dict())
    assert len(report.grouping_deviation) == 4 and report.max_grouping_deviation < 1e-6  # group-constant weights
    assert_same_output(net, official_reference(4, kernels, types, down, state), patch)


@needs_spconv
def test_det3d_nuscenes_checkpoint_gives_the_official_output(patch, one_thread):
    kernels, types, down = DET3D_NUSCENES
    state = openpcdet_port_state(2, 5, kernels, types, down)
    det3d = {f"backbone.{k}": v for k, v in det3d_names(state).items()}
    fusion = {"backbone.conv.weight": torch.randn(16, 3, 3, 3, 16), "backbone.bn.weight": torch.ones(16)}
    feats, idx = patch
    patch5 = (torch.cat([feats, feats[:, 3:] ** 2], dim=1), idx)  # 5 input channels like nuScenes' (x, y, z, i, dt)
    net = build_largekernel3d_backbone(5, SHAPE, "nuscenes")
    before = {k: v.clone() for k, v in net.state_dict().items()}
    with pytest.raises(ValueError, match=r"2 unused keys \['bn.weight', 'conv.weight'\].*strict=False"):
        load_official_backbone(net, {"state_dict": {**det3d, **fusion, "neck.x": torch.zeros(1)}})
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())  # nothing written
    report = load_det3d_largekernel3d(net, {"state_dict": {**det3d, **fusion}}, strict=False)
    assert report.unused == ("bn.weight", "conv.weight") and report.missing == () and report.prefix == "backbone."
    assert_same_output(net, official_reference(5, kernels, types, down, state), patch5)


def official_group_means(weight, k):
    """[C_out, k, k, k, C_in] -> the same with every official group replaced by its mean (loop over groups)."""
    e = GROUP_EDGES[k]
    out = weight.clone()
    for a, b, d in itertools.product(range(3), repeat=3):
        sl = (slice(None), slice(e[a], e[a + 1]), slice(e[b], e[b + 1]), slice(e[d], e[d + 1]), slice(None))
        out[sl] = weight[sl].mean(dim=(1, 2, 3), keepdim=True)
    return out


def test_ungrouped_weights_warn_and_report_their_deviation():
    kernels, types, down = OPENPCDET_PORT
    state = openpcdet_port_state(3, 4, kernels, types, down)
    key = "conv1.1.conv2.block.weight"
    full = state[key] + torch.randn(state[key].shape, generator=torch.Generator().manual_seed(0)) * 1e-3
    state[key] = full
    means = official_group_means(full, 7)
    expected = float((full - means).abs().max() / full.abs().max())
    net = build_largekernel3d_backbone(4, SHAPE, "openpcdet")
    with pytest.warns(UserWarning, match=r"conv1\.1\.conv2: .* deviates from its group means"):
        report = load_official_backbone(net, to_rskc(state))
    assert report.source == "openpcdet" and report.prefix == ""
    assert report.grouping_deviation["conv1.1.conv2"] == pytest.approx(expected, rel=1e-5) and expected > 1e-4
    assert max(v for k, v in report.grouping_deviation.items() if k != "conv1.1.conv2") < 1e-6
    layer = net.conv1[1].conv2  # group g = 9 a + 3 b + d holds the mean of the official group (a, b, d)
    e = GROUP_EDGES[7]
    for g, (a, b, d) in enumerate(itertools.product(range(3), repeat=3)):
        torch.testing.assert_close(layer.weight[g], means[:, e[a], e[b], e[d], :].t())
    torch.testing.assert_close(layer.dilated.weight, state["conv1.1.conv2.conv3x3_1.weight"])
    torch.testing.assert_close(layer.bias, state["conv1.1.conv2.block.bias"] + state["conv1.1.conv2.conv3x3_1.bias"])


def test_missing_and_unused_keys_raise_unless_not_strict():
    kernels, types, down = OPENPCDET_PORT
    state = openpcdet_port_state(4, 4, kernels, types, down)
    del state["conv3.1.bn2.running_var"]
    state["conv3.9.weight"] = torch.zeros(2)
    net = build_largekernel3d_backbone(4, SHAPE, "openpcdet")
    old_var = net.conv3[1].bn2.running_var.clone()
    with pytest.raises(
        ValueError,
        match=r"1 unused keys \['conv3.9.weight'\], 1 missing keys "
        r"\['conv3.1.bn2.running_var'\]",
    ):
        load_official_backbone(net, state)
    report = load_official_backbone(net, state, strict=False)
    assert report.unused == ("conv3.9.weight",) and report.missing == ("conv3.1.bn2.running_var",)
    assert torch.equal(net.conv3[1].bn2.running_var, old_var)
    torch.testing.assert_close(net.conv3[1].bn2.running_mean, state["conv3.1.bn2.running_mean"])


def test_shape_errors_are_found_before_anything_is_written():
    kernels, types, down = OPENPCDET_PORT
    state = openpcdet_port_state(5, 4, kernels, types, down)
    state["conv_out.1.running_mean"] = torch.zeros(64)  # the last key read
    net = build_largekernel3d_backbone(4, SHAPE, "openpcdet")
    before = {k: v.clone() for k, v in net.state_dict().items()}
    with pytest.raises(ValueError, match=r"'conv_out.1.running_mean' has shape \(64,\) .* needs \(128,\)"):
        load_official_backbone(net, state, strict=False)
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())


def test_architecture_mismatches_name_the_fix():
    kernels, types, down = OPENPCDET_PORT
    state = openpcdet_port_state(6, 4, kernels, types, down)
    with pytest.raises(ValueError, match=r"V1 SpatialGroupConv .* position_encoding=False"):
        load_official_backbone(build_largekernel3d_backbone(4, SHAPE, "openpcdet", position_encoding=True), state)
    with pytest.raises(ValueError, match=r"spatial-group conv at 'conv1.0.conv1' .* conv_types"):
        load_official_backbone(VoxelResBackBone8x(4, SHAPE), state)
    plain1 = LargeKernel3DBackbone(4, SHAPE, (7, 5, 5, 3), ("plain",) * 4, 5, position_encoding=False)
    with pytest.raises(ValueError, match="spatial-group conv"):
        load_official_backbone(plain1, state)
    with pytest.raises(ValueError, match="cannot tell the checkpoint's source"):
        load_official_backbone(plain1, {"foo.weight": torch.zeros(1)})
    with pytest.raises(TypeError, match="backbone must be"):
        load_official_backbone(nn.Linear(2, 2), state)


def test_v2_spatial_group_conv_layers():
    """spconv-plus SpatialGroupConv3d: block.weight [3, 3, 3, C_out, C_in] is the 27 group weights, row-major."""
    w = Writer(7)
    net = LargeKernel3DBackbone(4, SHAPE, (7, 5, 5, 3), ("swlk", "plain", "plain", "plain"), 5, position_encoding=True)
    state = {
        k: v
        for k, v in openpcdet_port_state(7, 4, (7, 5, 5, 3), ("common",) * 4, 5).items()
        if not k.startswith("conv1.")
    }
    for j, n in itertools.product((0, 1), (1, 2)):
        p = f"conv1.{j}.conv{n}"
        state.update(
            {
                f"{p}.block.weight": w.randn(3, 3, 3, 16, 16),
                f"{p}.block.position_embedding": w.randn(343, 16),
                f"{p}.block.bias": w.randn(16),
                **w.bn(f"conv1.{j}.bn{n}", 16),
            }
        )
    report = load_official_backbone(net, {f"backbone_3d.{k}": v for k, v in state.items()})
    assert report.unused == () and report.missing == () and report.grouping_deviation == {}
    layer, block = net.conv1[1].conv2, state["conv1.1.conv2.block.weight"]
    for g, (a, b, d) in enumerate(itertools.product(range(3), repeat=3)):
        torch.testing.assert_close(layer.weight[g], block[a, b, d].t())
    torch.testing.assert_close(layer.position_encoding, state["conv1.1.conv2.block.position_embedding"])


def test_openpcdet_voxelresbackbone8x_checkpoints_load_directly():
    """An OpenPCDet VoxelResBackBone8x state dict (spconv >= 2.2) loads with load_state_dict; the spconv 2.1
    layout loads through the loader to the same weights."""
    state = openpcdet_port_state(8, 4, (3, 3, 3, 3), ("common",) * 4, 3)
    direct = VoxelResBackBone8x(4, SHAPE)
    direct.load_state_dict(state)
    loaded = VoxelResBackBone8x(4, SHAPE)
    report = load_official_backbone(loaded, {"model_state": {f"backbone_3d.{k}": v for k, v in to_rskc(state).items()}})
    assert report.missing == () and report.unused == ()
    for k, v in direct.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v), k
