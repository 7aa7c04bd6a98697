"""Models: every registered network maps a sparse scene to per-site logits on the input sites, trains
(gradients reach every parameter), has the parameter count its architecture implies, matches the same
network built from spconv, and rejects bad configs with errors that name the key."""

from __future__ import annotations

import pytest
import torch
from helpers import random_sparse_tensor

import largekernel3d.sparse as spconv
from largekernel3d.models import MINKUNET_VARIANTS, SEGMENTATION_NAMES, build_model, count_parameters
from largekernel3d.models.minkunet import MINKUNET34C_LAYERS, MINKUNET34C_PLANES

IN_CHANNELS, NUM_CLASSES = 3, 5
GRID = (20, 20, 20)


def tiny_scene(seed: int = 0, num_sites: int = 300, batch_size: int = 1):
    """A random scene with enough sites that the stride-16 level still has several (BatchNorm needs > 1)."""
    return random_sparse_tensor(
        GRID, IN_CHANNELS, num_sites=num_sites, batch_size=batch_size, dtype=torch.float32, seed=seed
    )


def config(name: str, **options) -> dict:
    return {"name": name, "in_channels": IN_CHANNELS, "num_classes": NUM_CLASSES, **options}


def parameters_of(cfg: dict) -> int:
    """``count_parameters`` of the network, built on the meta device (no memory, no initialisation)."""
    with torch.device("meta"):
        return count_parameters(build_model(cfg))


# ---- independent parameter count, from the architecture's layer shapes -------------------------------------
def conv_params(conv_type: str, k: int, cin: int, cout: int, position_encoding: bool = True) -> int:
    if conv_type == "plain":
        return k**3 * cin * cout
    if conv_type == "depthwise":  # k³ depth-wise + 1³ point-wise
        return k**3 * cin + cin * cout
    if conv_type == "dilated":  # one dilated 3³ kernel
        return 27 * cin * cout
    # SW-LK "center1": 27 shared weights (3 parts per axis), plus a k³ × C_in position encoding
    return 27 * cin * cout + (k**3 * cin if position_encoding else 0)


def block_params(conv_type: str, k: int, cin: int, cout: int, **kw) -> int:
    shortcut = cin * cout + 2 * cout if cin != cout else 0
    return (
        conv_params(conv_type, k, cin, cout, **kw) + conv_params(conv_type, k, cout, cout, **kw) + 4 * cout + shortcut
    )


def expected_params(layers, planes, kernels=(3, 3, 3, 3), types=("plain",) * 4, init=32, **kw) -> int:
    total = 5**3 * IN_CHANNELS * init + 2 * init  # stem 5³ + BN
    width, skips = init, [init]
    for s in range(4):  # down 2³/s2 + BN, stage s+1
        total += 8 * width * width + 2 * width
        cin = width
        for _ in range(layers[s]):
            total += block_params(types[s], kernels[s], cin, planes[s], **kw)
            cin = planes[s]
        width = planes[s]
        skips.append(width)
    for j in range(4):  # inverse 2³ + BN, cat, stage 5+j
        out = planes[4 + j]
        total += 8 * width * out + 2 * out
        cin = out + skips[3 - j]
        for _ in range(layers[4 + j]):
            total += block_params("plain", 3, cin, out)
            cin = out
        width = out
    return total + width * NUM_CLASSES + NUM_CLASSES  # final 1³ classifier with bias


@pytest.mark.parametrize("name", sorted(MINKUNET_VARIANTS))
def test_minkunet_parameter_count_matches_architecture(name):
    layers, planes = MINKUNET_VARIANTS[name]
    assert parameters_of(config(name)) == expected_params(layers, planes)


@pytest.mark.parametrize(
    "kernels, types",
    [
        ((7, 7, 7, 7), ("swlk",) * 4),
        ((3, 3, 3, 3), ("plain",) * 4),
        ((5, 7, 3, 9), ("depthwise", "swlk", "plain", "dilated")),
    ],
)
def test_largekernel3d_parameter_count_matches_architecture(kernels, types):
    cfg = config("largekernel3d_seg", stage_kernel_sizes=list(kernels), stage_conv_types=list(types))
    assert parameters_of(cfg) == expected_params(MINKUNET34C_LAYERS, MINKUNET34C_PLANES, kernels, types)


def test_plain_3x3_largekernel3d_is_minkunet34c_and_swlk_adds_only_encodings():
    base = parameters_of(config("minkunet34c"))
    assert parameters_of(config("largekernel3d_seg", stage_kernel_sizes=[3] * 4, stage_conv_types="plain")) == base
    # 27 shared weights per 7³ SW-LK conv: exactly a 3³ kernel's worth
    assert parameters_of(config("largekernel3d_seg", position_encoding=False)) == base
    # one 7³ × C_in encoding per conv: a stage of n blocks has 2n convs, the first reads the previous width
    stage_inputs = (32, 32, 64, 128)
    encodings = sum(
        7**3 * (cin + (2 * n - 1) * c)
        for n, c, cin in zip(MINKUNET34C_LAYERS[:4], MINKUNET34C_PLANES[:4], stage_inputs)
    )
    assert parameters_of(config("largekernel3d_seg")) == base + encodings


# ---- forward: logits on the input sites ----------------------------------------------------------------------
@pytest.mark.parametrize("name", SEGMENTATION_NAMES)
def test_every_model_gives_logits_on_the_input_sites(name):
    torch.manual_seed(0)
    x = tiny_scene(batch_size=2, num_sites=400)
    model = build_model(config(name))
    y = model(x)
    assert y.features.shape == (x.indices.shape[0], NUM_CLASSES)
    assert torch.equal(y.indices, x.indices)
    assert list(y.spatial_shape) == list(x.spatial_shape) and y.batch_size == 2
    assert torch.isfinite(y.features).all()


def test_batch_elements_do_not_interact():
    torch.manual_seed(0)
    model = build_model(config("minkunet14a")).eval()
    both = tiny_scene(batch_size=2, num_sites=600)
    first = both.indices[:, 0] == 0
    alone = type(both)(both.features[first], both.indices[first], both.spatial_shape, 1)
    with torch.no_grad():
        torch.testing.assert_close(model(both).features[first], model(alone).features, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    "cfg",
    [
        config("minkunet14a"),
        config("largekernel3d_seg"),
        config("largekernel3d_seg", stage_conv_types="depthwise", stage_kernel_sizes=[5, 5, 3, 3]),
    ],
)
def test_forward_backward_reaches_every_parameter(cfg):
    torch.manual_seed(0)
    model = build_model(cfg).train()
    x = tiny_scene(seed=1)
    labels = torch.randint(0, NUM_CLASSES, (x.indices.shape[0],))
    loss = torch.nn.functional.cross_entropy(model(x).features, labels)
    loss.backward()
    missing = [
        n
        for n, p in model.named_parameters()
        if p.grad is None or not torch.isfinite(p.grad).all() or p.grad.abs().sum() == 0
    ]
    assert not missing, f"no gradient for {missing}"


# ---- same network from spconv -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "cfg",
    [
        config("minkunet14a"),
        config("largekernel3d_seg", stage_conv_types="plain", stage_kernel_sizes=[5, 3, 5, 3]),
    ],
)
def test_spconv_built_network_agrees_with_ours(cfg, one_thread):
    spconv = pytest.importorskip("spconv.pytorch")
    torch.manual_seed(0)
    ours = build_model(cfg).eval()
    theirs = build_model(cfg, backend=spconv).eval()
    theirs.load_state_dict(ours.state_dict())
    x = tiny_scene(seed=2, batch_size=2, num_sites=600)
    with torch.no_grad():
        y = ours(x)
        y_sp = theirs(spconv.SparseConvTensor(x.features, x.indices, x.spatial_shape, x.batch_size))
    assert torch.equal(y_sp.indices, y.indices)
    torch.testing.assert_close(y_sp.features, y.features, rtol=1e-4, atol=1e-5)


def test_spconv_backend_rejects_kinds_it_lacks():
    spconv = pytest.importorskip("spconv.pytorch")
    with pytest.raises(ValueError, match="conv_type='swlk'.*plain"):
        build_model(config("largekernel3d_seg"), backend=spconv)


# ---- config validation ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "cfg, message",
    [
        (config("minkunet99z"), "'name' must be one of"),
        ({"in_channels": 3, "num_classes": 2}, "'name' must be one of"),
        (
            config("minkunet14a", stage_kernel_sizes=[7] * 4),
            r"unknown model config key\(s\) \['stage_kernel_sizes'\].*allowed",
        ),
        (
            config("largekernel3d_seg", kernel=7),
            r"\['kernel'\].*allowed keys: \['name', 'in_channels', 'num_classes', 'stage_kernel_sizes'",
        ),
        ({"name": "minkunet14a", "in_channels": 3}, r"lacks the key\(s\) \['num_classes'\]"),
        (config("largekernel3d_seg", stage_kernel_sizes=[7, 7, 7]), "stage_kernel_sizes must be 4"),
        (config("largekernel3d_seg", stage_kernel_sizes=7), "stage_kernel_sizes must be 4"),
        (config("largekernel3d_seg", stage_kernel_sizes=[7, 6, 7, 7]), r"stage 2 \(stage_kernel_sizes\[1\]=6.*odd"),
        (config("largekernel3d_seg", stage_conv_types="dense"), r"stage 1 .*conv_type must be one of"),
        (config("largekernel3d_seg", stage_conv_types=["swlk", "plain"]), "stage_conv_types must be one of"),
        (
            config(
                "largekernel3d_seg",
                stage_conv_types=["plain", "plain", "swlk", "plain"],
                stage_kernel_sizes=[3, 3, 1, 3],
            ),
            r"stage 3 .*kernel_size must be an odd int in \[3, 31\]",
        ),
        (config("largekernel3d_seg", position_encoding="yes"), "position_encoding must be a bool"),
        (config("minkunet14a", num_classes=0), "positive ints"),
    ],
)
def test_bad_configs_raise_naming_the_key(cfg, message):
    with pytest.raises(ValueError, match=message):
        build_model(cfg)


def test_unknown_partition_is_rejected():
    with pytest.raises(ValueError, match=r"partition must be one of \['center1'"):
        build_model(config("largekernel3d_seg", partition="quarters"))


def test_build_model_needs_a_mapping():
    with pytest.raises(TypeError, match="mapping"):
        build_model(["minkunet14a"])


def test_meta_device_count_equals_cpu_count():
    cfg = config(
        "largekernel3d_seg",
        stage_conv_types=["swlk", "depthwise", "plain", "dilated"],
        layers=[1] * 8,
        planes=[8] * 8,
        init_dim=8,
    )
    assert parameters_of(cfg) == count_parameters(build_model(cfg)) > 0


def test_small_kernel_branch_config_key_builds_rep_blocks_that_merge_exactly():
    from largekernel3d.nn import RepLargeKernelConv3d, merge_small_kernels

    cfg = {
        "name": "largekernel3d_seg",
        "in_channels": 3,
        "num_classes": 5,
        "small_kernel_branch": True,
        "planes": [8] * 8,
        "init_dim": 8,
        "layers": [1] * 8,
    }
    net = build_model(cfg)
    assert sum(isinstance(m, RepLargeKernelConv3d) for m in net.modules()) == 8  # two per encoder stage
    assert not any(
        isinstance(m, RepLargeKernelConv3d) for m in build_model({**cfg, "small_kernel_branch": False}).modules()
    )
    torch.manual_seed(0)
    for m in net.modules():  # non-trivial BatchNorm statistics, so that the merge has something to fold
        if isinstance(m, torch.nn.BatchNorm1d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    net.eval()
    coords = torch.unique(torch.randint(0, 24, (1500, 3)), dim=0)
    feats = torch.randn(len(coords), 3)
    x = spconv.SparseConvTensor(
        feats, torch.cat([torch.zeros(len(coords), 1, dtype=torch.int64), coords], 1).int(), [24, 24, 24], 1
    )
    merged = merge_small_kernels(net)
    assert not any(isinstance(m, RepLargeKernelConv3d) for m in merged.modules())
    with torch.no_grad():
        a, b = net(x).features, merged(x).features
    assert torch.allclose(a, b, atol=1e-4, rtol=1e-4), (a - b).abs().max()
