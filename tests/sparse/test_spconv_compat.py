"""Interoperability with spconv 2.x: zero-copy tensor conversion, weight-layout conversion, and the same
layers with the same (loaded) weights giving spconv's outputs on a real KITTI LiDAR frame.

spconv's CPU kernels race with more than one torch thread, so the comparisons run at one thread; spconv
has no CPU backward for submanifold convs, so only forward passes are compared."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from torch import nn

import largekernel3d.sparse as lsp
from largekernel3d.sparse import SparseConvTensor, convert_spconv21_weight, load_spconv_state_dict
from largekernel3d.sparse.spconv_compat import convert_spconv_state_dict
from helpers import dense_subm_conv, kitti_sparse_tensor, optional_spconv, random_sparse_tensor

spconv = optional_spconv()

needs_spconv = pytest.mark.skipif(spconv is None, reason="spconv is not importable")
# spconv's own deprecation noise (its dense()), not ours
pytestmark = pytest.mark.filterwarnings("ignore:Using a non-tuple sequence:UserWarning")


# -- without spconv --------------------------------------------------------------------------------
def test_importing_the_engine_does_not_import_spconv():
    code = "import sys, largekernel3d.sparse; print('spconv' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_missing_spconv_gives_an_import_error_with_a_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "spconv.pytorch", None)  # makes `import spconv.pytorch` fail
    x = random_sparse_tensor((4, 4, 4), 2, num_sites=5)
    with pytest.raises(ImportError, match=r"pip install spconv==2.3.8"):
        lsp.to_spconv(x)
    with pytest.raises(ImportError, match=r"spconv is not installed"):
        lsp.from_spconv(object())


def test_convert_spconv21_weight_layouts():
    w = torch.randn(6, 3, 5, 2, 4)  # ours: [C_out, *kernel, C_in]
    rskc = w.permute(1, 2, 3, 0, 4)  # [*kernel, C_out, C_in], spconv 2.1's default
    rsck = w.permute(1, 2, 3, 4, 0)  # [*kernel, C_in, C_out], spconv 1.x / FILTER_HWIO
    assert torch.equal(convert_spconv21_weight(rskc), w) and convert_spconv21_weight(rskc).is_contiguous()
    assert torch.equal(convert_spconv21_weight(rsck, "RSCK"), w)
    assert torch.equal(convert_spconv21_weight(w, "KRSC"), w)
    assert rsck[1, 4, 0, 3, 5] == w[5, 1, 4, 0, 3] and rskc[1, 4, 0, 5, 3] == w[5, 1, 4, 0, 3]
    with pytest.raises(ValueError, match="layout must be one of"):
        convert_spconv21_weight(rskc, "HWIO")
    with pytest.raises(ValueError, match="kernel axis and two channel axes"):
        convert_spconv21_weight(torch.randn(4, 6))


def test_spconv21_state_dicts_load_into_our_layers():
    """A spconv 2.1 checkpoint: KRSC or RSKC per layer (found by shape), or RSCK when named; 1x1 layers are
    read from their memory as spconv 2.1 did."""
    ours = lsp.SparseSequential(
        lsp.SubMConv3d(2, 6, 3, indice_key="a"),
        nn.BatchNorm1d(6),
        lsp.SparseConv3d(6, 5, 2, 2),
        lsp.SubMConv3d(5, 4, 1, bias=False),
    ).double()
    ref = {k: v.clone() for k, v in ours.state_dict().items()}
    m = ref["3.weight"].reshape(5, 4)  # our state dict holds the [C_in, C_out] matrix spconv multiplies by
    rskc = {**ref, "0.weight": ref["0.weight"].permute(1, 2, 3, 0, 4), "3.weight": m.reshape(1, 1, 1, 4, 5)}
    mixed = {**rskc, "0.weight": ref["0.weight"]}  # implicit-GEMM layers of spconv 2.1 were KRSC
    rsck = {
        **ref,
        "0.weight": ref["0.weight"].permute(1, 2, 3, 4, 0),
        "2.weight": ref["2.weight"].permute(1, 2, 3, 4, 0),
        "3.weight": m.t().reshape(1, 1, 1, 5, 4),
    }
    for sd, layout in ((rskc, "auto"), (mixed, "auto"), (rsck, "RSCK")):
        for p in ours.parameters():
            nn.init.zeros_(p)
        load_spconv_state_dict(ours, sd, spconv_version="2.1", layout=layout)
        for k, v in ours.state_dict().items():
            torch.testing.assert_close(v, ref[k], msg=f"{layout}: {k}")
    x = random_sparse_tensor((4, 4, 4), 5, num_sites=9)
    torch.testing.assert_close(ours[3](x).features, x.features @ m)


def test_state_dict_shape_errors_name_the_key():
    ours = lsp.SparseSequential(lsp.SubMConv3d(2, 3, 3))
    sd = ours.state_dict()
    with pytest.raises(ValueError, match=r"state_dict\['0.weight'\] has shape \(3, 3, 3, 2, 3\), which does not give"):
        convert_spconv_state_dict(ours, {**sd, "0.weight": torch.randn(3, 3, 3, 2, 3)})
    with pytest.raises(ValueError, match=r"neither KRSC .* nor RSKC .*layout='RSCK'"):
        convert_spconv_state_dict(ours, {**sd, "0.weight": torch.randn(3, 3, 3, 2, 3)}, spconv_version="2.1")
    with pytest.raises(ValueError, match="spconv_version"):
        convert_spconv_state_dict(ours, sd, spconv_version="1.2")
    with pytest.raises(ValueError, match="only applies to spconv_version='2.1'"):
        convert_spconv_state_dict(ours, sd, layout="RSKC")
    square = lsp.SubMConv3d(3, 3, 3)  # C_out == kernel size: KRSC and RSKC shapes coincide
    with pytest.raises(ValueError, match="fits both KRSC and RSKC; pass layout"):
        convert_spconv_state_dict(square, square.state_dict(), spconv_version="2.1")


def test_one_by_one_weights_are_read_as_c_in_by_c_out():
    """spconv >= 2.2 computes 1x1 layers as ``in @ W.reshape(C_in, C_out)``; the loaded layer must agree."""
    ours = lsp.SubMConv3d(3, 5, 1, bias=False).double()
    w_sp = torch.randn(5, 1, 1, 1, 3, dtype=torch.float64)
    load_spconv_state_dict(ours, {"weight": w_sp})
    x = random_sparse_tensor((4, 4, 4), 3, num_sites=9)
    torch.testing.assert_close(ours(x).features, x.features @ w_sp.reshape(3, 5))
    # plain load_state_dict reads spconv's checkpoint the same way, and state_dict gives it back unchanged
    plain = lsp.SubMConv3d(3, 5, 1, bias=False).double()
    plain.load_state_dict({"weight": w_sp})
    torch.testing.assert_close(plain(x).features, x.features @ w_sp.reshape(3, 5))
    assert torch.equal(plain.state_dict()["weight"], w_sp)
    # a strided 1x1 conv is not on spconv's matmul path: its weight loads unchanged
    strided = lsp.SparseConv3d(3, 5, 1, stride=2, bias=False).double()
    load_spconv_state_dict(strided, {"weight": w_sp})
    assert torch.equal(strided.weight.detach(), w_sp)


# -- against spconv --------------------------------------------------------------------------------
def _kitti_or_skip(channels: int = 4) -> SparseConvTensor:
    x = kitti_sparse_tensor(channels)
    if x is None:
        pytest.skip("KITTI sample absent (../shared/data/kitti)")
    return x


def _sorted_rows(indices: torch.Tensor, features: torch.Tensor, spatial_shape) -> torch.Tensor:
    """Features reordered by site key, to compare outputs whose site order differs."""
    key = indices[:, 0].long()
    for d, s in enumerate(spatial_shape):
        key = key * int(s) + indices[:, d + 1].long()
    order = torch.argsort(key)
    return indices[order], features[order]


def _assert_same_output(ours: SparseConvTensor, theirs) -> None:
    assert list(ours.spatial_shape) == list(theirs.spatial_shape)
    oi, of = _sorted_rows(ours.indices, ours.features, ours.spatial_shape)
    ti, tf = _sorted_rows(theirs.indices, theirs.features, theirs.spatial_shape)
    assert torch.equal(oi.long(), ti.long()), "active output sites differ from spconv's"
    torch.testing.assert_close(of, tf, rtol=1e-4, atol=1e-4)


def _seeded(module: nn.Module, seed: int) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    return module


@pytest.fixture(scope="module")
def kitti():
    if spconv is None:
        pytest.skip("spconv is not importable")
    return _kitti_or_skip()


LAYER_PAIRS = {
    "subm_k3": (lambda m: m.SubMConv3d(4, 16, 3, indice_key="s")),
    "subm_k5": (lambda m: m.SubMConv3d(4, 8, 5, bias=False)),
    "subm_1x1x1": (lambda m: m.SubMConv3d(4, 16, 1)),
    "regular_1x1x1": (lambda m: m.SparseConv3d(4, 6, 1)),
    "regular_k3_s2": (lambda m: m.SparseConv3d(4, 16, 3, stride=2, padding=1)),
    "regular_k2_s2": (lambda m: m.SparseConv3d(4, 8, 2, stride=2)),
    "subm_dilated_anisotropic": (lambda m: m.SubMConv3d(4, 8, (3, 1, 5), dilation=(1, 1, 2))),
    "regular_dilated": (lambda m: m.SparseConv3d(4, 8, 3, stride=2, padding=2, dilation=2)),
    "transposed_k2_s2": (lambda m: m.SparseConvTranspose3d(4, 4, 2, stride=2)),
    "transposed_1x1x1": (lambda m: m.SparseConvTranspose3d(4, 6, 1)),
    "maxpool_k3_s2": (lambda m: m.SparseMaxPool3d(3, 2, 1)),
    "maxpool_k2_s2": (lambda m: m.SparseMaxPool3d(2, 2)),
}
NON_NEGATIVE_INPUT = {"maxpool_k3_s2", "maxpool_k2_s2"}  # see test_spconv_max_pool_clamps_at_zero


@needs_spconv
@pytest.mark.parametrize("name", sorted(LAYER_PAIRS))
def test_layer_matches_spconv_on_kitti(name, kitti, one_thread):
    theirs = _seeded(LAYER_PAIRS[name](spconv), 3)
    ours = LAYER_PAIRS[name](lsp)
    load_spconv_state_dict(ours, theirs.state_dict())
    x = kitti.replace_feature(kitti.features.abs()) if name in NON_NEGATIVE_INPUT else kitti
    with torch.no_grad():
        _assert_same_output(ours(x), theirs(lsp.to_spconv(x)))


@needs_spconv
def test_spconv_max_pool_clamps_at_zero(kitti, one_thread):
    """A difference: spconv's max pool returns ``max(0, max_k in)`` (its output starts at zero); ours is
    the true maximum over the active inputs (the dense max over a ``-inf``-filled grid)."""
    assert (kitti.features < 0).any()
    with torch.no_grad():
        ours = lsp.SparseMaxPool3d(2, 2)(kitti)
        theirs = spconv.SparseMaxPool3d(2, 2)(lsp.to_spconv(kitti))
    assert (ours.features < 0).any()
    _assert_same_output(ours.replace_feature(ours.features.clamp(min=0)), theirs)


@needs_spconv
def test_unet_fragment_with_inverse_conv_matches_spconv(kitti, one_thread):
    """subm → BN → ReLU → down-sampling conv → subm → inverse conv: same sites and features as spconv."""

    def build(m):
        return m.SparseSequential(
            m.SubMConv3d(4, 8, 3, indice_key="subm1"),
            nn.BatchNorm1d(8),
            nn.ReLU(),
            m.SparseConv3d(8, 16, 3, stride=2, padding=1, indice_key="down1"),
            nn.BatchNorm1d(16),
            nn.ReLU(),
            m.SubMConv3d(16, 16, 3, indice_key="subm2"),
            m.SparseInverseConv3d(16, 8, 3, indice_key="down1"),
            m.SubMConv3d(8, 4, 1),
        )

    # train mode on both sides: spconv's CPU path asserts on bias in eval mode (it fuses the bias there)
    theirs = _seeded(build(spconv), 5).train()
    ours = build(lsp).train()
    load_spconv_state_dict(ours, theirs.state_dict())
    with torch.no_grad():
        out_sp = theirs(lsp.to_spconv(kitti))
        out = ours(kitti)
    assert torch.equal(out.indices, kitti.indices), "the inverse conv restores the input sites"
    _assert_same_output(out, out_sp)


@needs_spconv
def test_two_frame_batch_matches_spconv(one_thread):
    """Batch size 2 (KITTI frames 000000 and 000001): per-batch kernel maps agree with spconv's."""
    x = kitti_sparse_tensor(frames=("000000", "000001"))
    if x is None:
        pytest.skip("KITTI samples absent (../shared/data/kitti)")

    builders = [
        lambda m: m.SparseSequential(
            m.SubMConv3d(4, 8, 3), nn.ReLU(), m.SparseConv3d(8, 8, 3, 2, 1), nn.ReLU(), m.SparseMaxPool3d(2, 2)
        ),
        lambda m: m.SparseSequential(
            m.SparseConv3d(4, 8, 2, 2, indice_key="d"), m.SparseInverseConv3d(8, 4, 2, indice_key="d")
        ),
    ]
    for build in builders:
        theirs = _seeded(build(spconv), 8)
        ours = build(lsp)
        load_spconv_state_dict(ours, theirs.state_dict())
        with torch.no_grad():
            _assert_same_output(ours(x), theirs(lsp.to_spconv(x)))


@needs_spconv
def test_zero_copy_round_trip(kitti):
    t = lsp.to_spconv(kitti)
    assert isinstance(t, spconv.SparseConvTensor)
    assert t.features.data_ptr() == kitti.features.data_ptr()
    assert t.indices.data_ptr() == kitti.indices.data_ptr()
    back = lsp.from_spconv(t)
    assert back.features.data_ptr() == kitti.features.data_ptr()
    assert back.indices.data_ptr() == kitti.indices.data_ptr()
    assert back.spatial_shape == kitti.spatial_shape and back.batch_size == kitti.batch_size
    torch.testing.assert_close(t.dense(), kitti.dense())


@needs_spconv
def test_to_spconv_converts_int64_indices():
    x = random_sparse_tensor((4, 4, 4), 2, num_sites=6, dtype=torch.float32)
    x64 = SparseConvTensor(x.features, x.indices.long(), x.spatial_shape, 1)
    t = lsp.to_spconv(x64)
    assert t.indices.dtype == torch.int32 and torch.equal(t.indices, x.indices)
    with pytest.raises(TypeError, match="to_spconv expects"):
        lsp.to_spconv(t)
    with pytest.raises(TypeError, match="from_spconv expects"):
        lsp.from_spconv(x)


@needs_spconv
def test_even_submanifold_kernels_are_ours_only():
    """spconv rejects even submanifold kernels; ours follow the documented centre ``kernel_size // 2``
    (checked against the dense reference in test_conv_reference.py)."""
    x = random_sparse_tensor((5, 5, 5), 2, num_sites=10, dtype=torch.float32)
    with pytest.raises(Exception, match="odd"):
        spconv.SubMConv3d(2, 3, 2)(lsp.to_spconv(x))
    conv = lsp.SubMConv3d(2, 3, 2)
    torch.testing.assert_close(conv(x).features, dense_subm_conv(x, conv.weight, conv.bias))


_REQUIRED = {
    "ndim": 3,
    "in_channels": 4,
    "out_channels": 4,
    "kernel_size": 3,
    "indice_key": "k",
    "num_features": 4,
    "features": torch.zeros(1, 2),
    "indices": torch.zeros(1, 4, dtype=torch.int32),
    "spatial_shape": [2, 2, 2],
    "batch_size": 1,
}


def _explicit_params(cls):
    import inspect

    params = list(inspect.signature(cls.__init__).parameters.values())[1:]
    return params, [p.name for p in params if p.kind is p.POSITIONAL_OR_KEYWORD]


@needs_spconv
@pytest.mark.parametrize("name", sorted(set(lsp.__all__) & set(dir(spconv))))
def test_constructor_signatures_accept_spconvs(name):
    """Every class both libraries have accepts spconv's arguments: the same positional order (as far as ours
    names them) and every spconv keyword with spconv's default value (enums: the same members)."""
    import enum
    import inspect

    theirs, ours = getattr(spconv, name), getattr(lsp, name)
    if not inspect.isclass(theirs):
        pytest.skip(f"{name} is not a class")
    if issubclass(theirs, enum.Enum):  # ConvAlgo: members, no constructor arguments
        assert [m.name for m in ours] == [m.name for m in theirs]
        return
    sp_params, sp_positional = _explicit_params(theirs)
    _, our_positional = _explicit_params(ours)
    shared = min(len(sp_positional), len(our_positional))
    assert our_positional[:shared] == sp_positional[:shared], f"positional order differs from spconv's {name}"
    kwargs = {}
    for p in sp_params:
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        kwargs[p.name] = _REQUIRED[p.name] if p.default is p.empty else p.default
    ours(**kwargs)  # must not raise


@needs_spconv
def test_our_state_dict_exported_to_spconv_gives_the_same_outputs(kitti, one_thread):
    def build(m):
        return m.SparseSequential(
            m.SubMConv3d(4, 8, 3, indice_key="s"),
            nn.ReLU(),
            m.SubMConv3d(8, 6, 1),
            m.SparseConv3d(6, 5, 1),
            m.SparseConv3d(5, 4, 3, 2, 1),
        )

    ours = _seeded(build(lsp), 12)
    theirs = build(spconv)
    theirs.load_state_dict(lsp.to_spconv_state_dict(ours))
    with torch.no_grad():
        _assert_same_output(ours(kitti), theirs(lsp.to_spconv(kitti)))
    # and back: the round trip is the identity
    again = build(lsp)
    load_spconv_state_dict(again, theirs.state_dict())
    for k, v in again.state_dict().items():
        assert torch.equal(v, ours.state_dict()[k]), k
    # plain PyTorch state dicts move both ways too (what drop-in users do)
    plain_theirs = build(spconv)
    plain_theirs.load_state_dict(ours.state_dict())
    plain_ours = build(lsp)
    plain_ours.load_state_dict(theirs.state_dict())
    with torch.no_grad():
        _assert_same_output(ours(kitti), plain_theirs(lsp.to_spconv(kitti)))
        _assert_same_output(plain_ours(kitti), theirs(lsp.to_spconv(kitti)))


@needs_spconv
def test_max_pool_backward_matches_spconv(kitti, one_thread):
    """spconv's CPU backward exists for max pooling only (its convs assert CUDA). Without ties the
    gradients agree; at ties spconv gives the full gradient to every tied input while ours splits it
    evenly (a valid subgradient of max)."""
    g = torch.Generator().manual_seed(0)
    feats = torch.rand(kitti.features.shape, generator=g) + 0.1  # positive (spconv clamps at 0), no ties
    grads = []
    for lib, tensor_cls in ((spconv, spconv.SparseConvTensor), (lsp, SparseConvTensor)):
        f = feats.clone().requires_grad_(True)
        out = lib.SparseMaxPool3d(3, 2, 1)(tensor_cls(f, kitti.indices, kitti.spatial_shape, 1))
        key = out.indices.long() @ torch.tensor([10**9, 10**6, 10**3, 1])
        cot = torch.sin(key.double()).float().unsqueeze(1).expand_as(out.features)  # same per site in both
        (out.features * cot).sum().backward()
        grads.append(f.grad)
    torch.testing.assert_close(grads[1], grads[0])
    # ties
    idx = torch.tensor([[0, 0, 0, 0], [0, 0, 0, 1], [0, 1, 1, 1]], dtype=torch.int32)
    tie_grads = []
    for lib, tensor_cls in ((spconv, spconv.SparseConvTensor), (lsp, SparseConvTensor)):
        f = torch.full((3, 1), 2.0, requires_grad=True)
        lib.SparseMaxPool3d(2, 2)(tensor_cls(f, idx, [4, 4, 4], 1)).features.sum().backward()
        tie_grads.append(f.grad.flatten())
    assert torch.equal(tie_grads[0], torch.ones(3))
    torch.testing.assert_close(tie_grads[1], torch.full((3,), 1 / 3))
