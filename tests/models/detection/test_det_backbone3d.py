"""The sparse 3D detection backbones: OpenPCDet's module tree and state-dict keys, the same outputs as the
same network built from spconv on a real KITTI frame, the stride-8 geometry, the LargeKernel3D presets and
bad-input errors.

spconv's CPU kernels race with more than one torch thread, so comparisons run at one thread; spconv's CPU
submanifold conv asserts on a bias in eval mode (it fuses bias there), so its convs run in train mode (no
effect on their output) while every BatchNorm stays in eval mode with the loaded running statistics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import optional_spconv

import largekernel3d.sparse as lsp
from largekernel3d.models.detection.backbone3d import (
    LARGEKERNEL3D_BACKBONE_PRESETS,
    MULTI_SCALE_STRIDES,
    LargeKernel3DBackbone,
    VoxelBackBone8x,
    VoxelResBackBone8x,
    build_largekernel3d_backbone,
)
from largekernel3d.nn import SWLKConv3d

spconv = optional_spconv()

needs_spconv = pytest.mark.skipif(spconv is None, reason="spconv is not importable")
pytestmark = pytest.mark.filterwarnings("ignore:Using a non-tuple sequence:UserWarning")

SHARED_DATA = Path(__file__).resolve().parents[3] / ".." / "shared" / "data"
FRAME = SHARED_DATA / "kitti" / "training" / "velodyne" / "000001.bin"
KITTI_RANGE = (0.0, -40.0, -3.0, 70.4, 40.0, 1.0)  # OpenPCDet's KITTI point_cloud_range
KITTI_VOXEL = (0.05, 0.05, 0.1)
KITTI_SHAPE = [41, 1600, 1408]  # [n_z + 1, n_y, n_x]
BN_KEYS = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def kitti_voxels(x_range=(0.0, 70.4), y_range=(-40.0, 40.0)):
    """Frame 000001 cropped to OpenPCDet's KITTI range and to ``x_range`` x ``y_range`` (m), mean (x, y, z,
    intensity) per 0.05 x 0.05 x 0.1 m voxel on the full KITTI grid: ``(features [N, 4], indices [N, 4] =
    (0, z, y, x))``; skips without the shared data."""
    if not FRAME.exists():
        pytest.skip("../shared/data is not present")
    pts = torch.from_numpy(np.fromfile(FRAME, dtype=np.float32).reshape(-1, 4))
    lo, hi = torch.tensor(KITTI_RANGE[:3]), torch.tensor(KITTI_RANGE[3:])
    x, y = pts[:, 0], pts[:, 1]
    inside = (x >= x_range[0]) & (x < x_range[1]) & (y >= y_range[0]) & (y < y_range[1])
    pts = pts[((pts[:, :3] >= lo) & (pts[:, :3] < hi)).all(dim=1) & inside]
    vox = lsp.voxelize(pts[:, :3], KITTI_VOXEL, features=pts, origin=lo.tolist())
    zyx = vox.coords.flip(1).to(torch.int32)
    keep = (zyx < torch.tensor(KITTI_SHAPE, dtype=torch.int32)).all(dim=1)  # float rounding at the far edge
    idx = torch.cat([torch.zeros(int(keep.sum()), 1, dtype=torch.int32), zyx[keep]], dim=1)
    return vox.features[keep].contiguous(), idx.contiguous()


@pytest.fixture(scope="module")
def frame30():
    """The frame's points with x < 30 m (about 42 k voxels)."""
    return kitti_voxels(x_range=(0.0, 30.0))


@pytest.fixture(scope="module")
def patch():
    """A 10 m x 10 m patch of the frame (x in [10, 20), y in [-5, 5) m; about 3 k voxels) for the large
    kernels, whose 5³ down layers grow the site count."""
    return kitti_voxels(x_range=(10.0, 20.0), y_range=(-5.0, 5.0))


def random_state(module: torch.nn.Module, seed: int) -> dict:
    """A random state dict for ``module``: weights ~ N(0, 1/fan_in), biases / BN affine / means random,
    variances in [0.5, 1.5] (eval-mode BN that is not the identity)."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for key, v in module.state_dict().items():
        if key.endswith("num_batches_tracked"):
            out[key] = v.clone()
        elif key.endswith("running_var"):
            out[key] = torch.rand(v.shape, generator=g) + 0.5
        elif key.endswith("position_encoding"):
            out[key] = torch.randn(v.shape, generator=g) * 0.05
        elif v.dim() >= 2:  # SW-LK [G, C_in, C_out], else [C_out, *k, C_in]
            fan_in = v.shape[0] * v.shape[1] if v.dim() == 3 else v[0].numel()
            out[key] = torch.randn(v.shape, generator=g) * (2.0 / fan_in) ** 0.5
        else:  # BN weight around 1; biases, BN bias and mean around 0
            out[key] = torch.randn(v.shape, generator=g) * 0.1 + (1.0 if key.endswith("weight") else 0.0)
    return out


def sorted_by_site(t):
    """``(keys, features)`` of a sparse tensor sorted by its (b, z, y, x) sites."""
    s = [int(v) for v in t.spatial_shape]
    i = t.indices.long()
    key = ((i[:, 0] * s[0] + i[:, 1]) * s[1] + i[:, 2]) * s[2] + i[:, 3]
    order = key.argsort()
    return key[order], t.features[order]


def spconv_eval(net):
    """Eval mode with spconv's convs in train mode (see the module docstring)."""
    net.eval()
    for m in net.modules():
        if isinstance(m, spconv.conv.SparseConvolution):
            m.train()
    return net


# -- OpenPCDet's module tree -----------------------------------------------------------------------
def _conv_bn(prefix: str) -> list:
    return [f"{prefix}.0.weight"] + [f"{prefix}.1.{k}" for k in BN_KEYS]


def _res_block(prefix: str) -> list:
    return [
        f"{prefix}.conv1.weight",
        f"{prefix}.conv1.bias",
        *(f"{prefix}.bn1.{k}" for k in BN_KEYS),
        f"{prefix}.conv2.weight",
        f"{prefix}.conv2.bias",
        *(f"{prefix}.bn2.{k}" for k in BN_KEYS),
    ]


def openpcdet_keys(residual: bool) -> list:
    """The state-dict keys of OpenPCDet's VoxelBackBone8x / VoxelResBackBone8x, written from its module
    tree: conv_input = SparseSequential(SubM, BN, ReLU); post_act_block = SparseSequential(conv, BN, ReLU);
    conv1 = [block] (plain) or [SparseBasicBlock] x 2; conv2..4 = [down block, 2 x (block | SparseBasicBlock)]."""
    keys = _conv_bn("conv_input")
    keys += _res_block("conv1.0") + _res_block("conv1.1") if residual else _conv_bn("conv1.0")
    for s in (2, 3, 4):
        keys += _conv_bn(f"conv{s}.0")
        for j in (1, 2):
            keys += _res_block(f"conv{s}.{j}") if residual else _conv_bn(f"conv{s}.{j}")
    return keys + _conv_bn("conv_out")


@pytest.mark.parametrize("cls, residual", [(VoxelBackBone8x, False), (VoxelResBackBone8x, True)])
def test_state_dict_keys_are_openpcdets(cls, residual):
    net = cls(4, KITTI_SHAPE)
    assert sorted(net.state_dict()) == sorted(openpcdet_keys(residual))
    if spconv is not None:
        assert list(cls(4, KITTI_SHAPE, backend=spconv).state_dict()) == list(net.state_dict())


def test_weight_shapes_and_bn_settings():
    net = VoxelResBackBone8x(5, [41, 1440, 1440])
    sd = net.state_dict()
    assert sd["conv_input.0.weight"].shape == (16, 3, 3, 3, 5)
    assert sd["conv1.0.conv1.weight"].shape == (16, 3, 3, 3, 16) and sd["conv1.0.conv1.bias"].shape == (16,)
    assert sd["conv2.0.0.weight"].shape == (32, 3, 3, 3, 16)
    assert sd["conv4.0.0.weight"].shape == (128, 3, 3, 3, 64)
    assert sd["conv4.2.conv2.weight"].shape == (128, 3, 3, 3, 128)
    assert sd["conv_out.0.weight"].shape == (128, 3, 1, 1, 128)
    plain = VoxelBackBone8x(4, KITTI_SHAPE).state_dict()
    assert plain["conv4.0.0.weight"].shape == (64, 3, 3, 3, 64)
    assert plain["conv_out.0.weight"].shape == (128, 3, 1, 1, 64)
    assert "conv1.0.0.bias" not in plain
    bns = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm1d)]
    assert len(bns) == 1 + 4 + 3 * 5 + 1 and all(b.eps == 1e-3 and b.momentum == 0.01 for b in bns)
    conv4 = net.conv4[0][0]
    assert (conv4.stride, conv4.padding, conv4.indice_key) == ((2, 2, 2), (0, 1, 1), "spconv4")
    assert net.conv_out[0].kernel_size == (3, 1, 1) and net.conv_out[0].stride == (2, 1, 1)


def expected_parameters(c_in: int, kernels, types, down: int, encoding: bool, plain: bool = False) -> int:
    """Trainable parameters written from the structure (BN: 2 per channel)."""
    k3 = lambda k: k**3  # noqa: E731
    n = 27 * c_in * 16 + 2 * 16
    if plain:  # VoxelBackBone8x
        n += 27 * 16 * 16 + 32
        for c0, c1 in ((16, 32), (32, 64), (64, 64)):
            n += 27 * c0 * c1 + 2 * c1 + 2 * (27 * c1 * c1 + 2 * c1)
        return n + 3 * 64 * 128 + 256
    chans = (16, 32, 64, 128)
    for s, (c, k, t) in enumerate(zip(chans, kernels, types)):
        if s > 0:
            kd = down if s < 3 else 3
            n += k3(kd) * chans[s - 1] * c + 2 * c
        conv = (
            k3(k) * c * c + c
            if t == "plain"
            else 27 * c * c + c + (k3(k) * c if encoding else 0) + (27 * c * c if t == "swlk_dilated" else 0)
        )
        n += 4 * (conv + 2 * c)
    return n + 3 * 128 * 128 + 256


def test_parameter_counts():
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    counts = {
        "VoxelBackBone8x": count(VoxelBackBone8x(4, KITTI_SHAPE)),
        "VoxelResBackBone8x": count(VoxelResBackBone8x(4, KITTI_SHAPE)),
    }
    assert counts["VoxelBackBone8x"] == expected_parameters(4, None, None, 3, False, plain=True)
    assert counts["VoxelResBackBone8x"] == expected_parameters(4, (3,) * 4, ("plain",) * 4, 3, False)
    for name, p in LARGEKERNEL3D_BACKBONE_PRESETS.items():
        counts[name] = count(build_largekernel3d_backbone(5, [41, 1440, 1440], name))
        assert counts[name] == expected_parameters(
            5, p.kernel_sizes, p.conv_types, p.down_kernel_size, p.position_encoding
        )
    print("parameters:", counts)


# -- the same features as spconv ---------------------------------------------------------------------
@needs_spconv
@pytest.mark.parametrize("cls", [VoxelBackBone8x, VoxelResBackBone8x])
def test_matches_spconv_on_a_kitti_frame(cls, frame30, one_thread):
    feats, idx = frame30
    ours = cls(4, KITTI_SHAPE)
    state = random_state(ours, seed=7)
    ours.load_state_dict(state)
    theirs = cls(4, KITTI_SHAPE, backend=spconv)
    theirs.load_state_dict(state)
    with torch.no_grad():
        a = ours.eval().forward_features(lsp.SparseConvTensor(feats, idx, KITTI_SHAPE, 1))
        b = spconv_eval(theirs).forward_features(spconv.SparseConvTensor(feats, idx, KITTI_SHAPE, 1))
    for name in ("x_conv2", "x_conv4", "out"):
        assert list(a[name].spatial_shape) == list(b[name].spatial_shape)
        ka, fa = sorted_by_site(a[name])
        kb, fb = sorted_by_site(b[name])
        assert torch.equal(ka, kb), name
        rel = float((fa - fb).norm() / fb.norm())
        assert fb.abs().max() > 0.1 and rel < 1e-5, (name, rel)
    assert a["out"].features.shape[0] > 1000


# -- geometry ----------------------------------------------------------------------------------------
def test_stride_8_geometry_on_a_real_crop(frame30):
    feats, idx = frame30
    net = VoxelResBackBone8x(4, KITTI_SHAPE).eval()
    assert (net.out_channels, net.stride) == (128, 8)
    assert net.output_spatial_shape() == [2, 200, 176]
    with torch.no_grad():
        outs = net.forward_features(lsp.SparseConvTensor(feats, idx, KITTI_SHAPE, 1))
    expected = {
        "x_conv1": [41, 1600, 1408],
        "x_conv2": [21, 800, 704],
        "x_conv3": [11, 400, 352],
        "x_conv4": [5, 200, 176],
        "out": [2, 200, 176],
    }
    for name, shape in expected.items():
        t = outs[name]
        assert list(t.spatial_shape) == shape, name
        s = MULTI_SCALE_STRIDES[name]
        # every output site is the image of an input voxel under the stride (y, x within the kernel reach)
        assert int(t.indices[:, 2].max()) <= int(idx[:, 2].max()) // s + 1
    assert outs["out"].features.shape[1] == 128 and int(outs["out"].indices[:, 1].max()) <= 1
    assert outs["x_conv1"].features.shape[0] == feats.shape[0]  # submanifold stage keeps the sites
    assert VoxelResBackBone8x(5, [41, 1440, 1440]).output_spatial_shape() == [2, 180, 180]
    assert LargeKernel3DBackbone(5, [41, 1440, 1440]).output_spatial_shape() == [2, 180, 180]


# -- LargeKernel3D -------------------------------------------------------------------------------------
def test_presets_are_the_documented_configurations():
    p = LARGEKERNEL3D_BACKBONE_PRESETS
    assert p["nuscenes"].kernel_sizes == (7, 5, 5, 5)
    assert p["nuscenes"].conv_types == ("swlk_dilated", "plain", "plain", "plain")
    assert p["v1_7773"].kernel_sizes == (7, 7, 7, 3) and p["v1_7773"].conv_types[:3] == ("swlk_dilated",) * 3
    assert p["openpcdet"].kernel_sizes == (7, 5, 5, 3) and p["openpcdet"].down_kernel_size == 5
    assert p["waymo17"].kernel_sizes[0] == 17
    net = build_largekernel3d_backbone(5, [41, 1440, 1440], "nuscenes")
    layer = net.conv1[0].conv1
    assert isinstance(layer, SWLKConv3d) and layer.kernel_size == (7, 7, 7) and layer.dilated is not None
    assert layer.dilated.dilation == (2, 2, 2) and layer.position_encoding is None
    assert isinstance(net.conv2[1].conv1, lsp.SubMConv3d) and net.conv2[1].conv1.kernel_size == (5, 5, 5)
    assert net.conv2[0][0].kernel_size == (5, 5, 5) and net.conv2[0][0].padding == (2, 2, 2)
    assert net.conv4[0][0].kernel_size == (3, 3, 3)
    over = build_largekernel3d_backbone(5, [41, 1440, 1440], "nuscenes", position_encoding=True)
    assert over.conv1[0].conv1.position_encoding.shape == (343, 16)


@pytest.mark.parametrize("preset", sorted(LARGEKERNEL3D_BACKBONE_PRESETS))
def test_preset_forward_backward_on_a_real_crop(preset, patch):
    feats, idx = patch
    torch.manual_seed(3)
    net = build_largekernel3d_backbone(4, KITTI_SHAPE, preset).train()
    x = lsp.SparseConvTensor(feats.clone().requires_grad_(True), idx, KITTI_SHAPE, 1)
    out = net(x)
    assert list(out.spatial_shape) == [2, 200, 176] and out.features.shape[1] == 128
    out.features.square().mean().backward()
    grads = {n: p.grad for n, p in net.named_parameters()}
    assert all(g is not None and torch.isfinite(g).all() for g in grads.values())
    assert grads["conv1.0.conv1.weight"].abs().sum() > 0 and x.features.grad.abs().sum() > 0


@needs_spconv
def test_swlk_backbone_equals_its_plain_spconv_copy(patch, one_thread):
    feats, idx = patch
    net = build_largekernel3d_backbone(4, KITTI_SHAPE, "nuscenes")
    net.load_state_dict(random_state(net, seed=11))
    net.eval()
    plain = net.to_plain(backend=spconv)
    assert not any(isinstance(m, SWLKConv3d) for m in plain.modules())
    assert plain.conv1[0].conv1.weight.shape == (16, 7, 7, 7, 16)
    with torch.no_grad():
        a = net(lsp.SparseConvTensor(feats, idx, KITTI_SHAPE, 1))
        b = spconv_eval(plain)(spconv.SparseConvTensor(feats, idx, KITTI_SHAPE, 1))
    ka, fa = sorted_by_site(a)
    kb, fb = sorted_by_site(b)
    assert torch.equal(ka, kb)
    assert float((fa - fb).norm() / fb.norm()) < 1e-5


def test_plain_stages_equal_voxelresbackbone8x():
    lk = LargeKernel3DBackbone(4, KITTI_SHAPE, kernel_sizes=(3,) * 4, conv_types=("plain",) * 4, down_kernel_size=3)
    assert {k: v.shape for k, v in lk.state_dict().items()} == {
        k: v.shape for k, v in VoxelResBackBone8x(4, KITTI_SHAPE).state_dict().items()
    }


# -- bad input -----------------------------------------------------------------------------------------
def test_bad_inputs_raise_clear_errors(patch):
    feats, idx = patch
    net = VoxelResBackBone8x(4, KITTI_SHAPE)
    with pytest.raises(ValueError, match=r"in_channels=4 .* build it with in_channels=3"):
        net(lsp.SparseConvTensor(feats[:, :3].contiguous(), idx, KITTI_SHAPE, 1))
    with pytest.raises(ValueError, match=r"sparse_shape=\[41, 1600, 1408\] but the input has spatial_shape"):
        net(lsp.SparseConvTensor(feats, idx, [41, 1601, 1408], 1))
    with pytest.raises(TypeError, match="SparseConvTensor"):
        net(feats)
    if spconv is not None:
        with pytest.raises(TypeError, match="the backend it was built with"):
            net(spconv.SparseConvTensor(feats, idx, KITTI_SHAPE, 1))
    for shape in ([41, 1600], [41, 0, 1408], [41.5, 1600, 1408], "41x1600x1408"):
        with pytest.raises(ValueError, match="sparse_shape must be 3 positive ints"):
            VoxelBackBone8x(4, shape)
    with pytest.raises(ValueError, match="too small"):
        VoxelResBackBone8x(4, [3, 1600, 1408])
    with pytest.raises(ValueError, match="in_channels must be a positive int"):
        VoxelResBackBone8x(0, KITTI_SHAPE)
    with pytest.raises(ValueError, match="conv_types must be 4 of"):
        LargeKernel3DBackbone(4, KITTI_SHAPE, conv_types=("swlk", "plain", "plain", "dense"))
    with pytest.raises(ValueError, match="kernel_sizes must be 4 odd ints"):
        LargeKernel3DBackbone(4, KITTI_SHAPE, kernel_sizes=(7, 6, 5, 3))
    with pytest.raises(ValueError, match="'swlk_dilated' needs kernel_size >= 5"):
        LargeKernel3DBackbone(4, KITTI_SHAPE, kernel_sizes=(3, 5, 5, 3))
    with pytest.raises(ValueError, match="preset must be one of"):
        build_largekernel3d_backbone(4, KITTI_SHAPE, "kitti")
    with pytest.raises(TypeError, match="unknown LargeKernel3DBackbone options"):
        build_largekernel3d_backbone(4, KITTI_SHAPE, "nuscenes", kernel=7)
    with pytest.raises(ValueError, match="position encoding"):
        build_largekernel3d_backbone(4, KITTI_SHAPE, "waymo17").to_plain()
    if spconv is not None:
        with pytest.raises(ValueError, match=r"exist only in largekernel3d.sparse.*to_plain"):
            build_largekernel3d_backbone(4, KITTI_SHAPE, "nuscenes", backend=spconv)
