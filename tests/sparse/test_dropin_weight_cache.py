"""Derived weight layouts are built once per parameter version (:mod:`largekernel3d.sparse.weight_cache`) and
rebuilt after every kind of weight update (checked against a dense reference after each update)."""

from __future__ import annotations

import copy
import io

import pytest
import torch

import largekernel3d.sparse as lsp
from largekernel3d.sparse import weight_cache
from largekernel3d.sparse.cpu import conv_fused
from largekernel3d.sparse.cpu import group_fused
from largekernel3d.sparse.cpu import team
from helpers import dense_subm_conv, random_sparse_tensor

pytestmark = pytest.mark.skipif(not team.team_available(), reason="the fused kernels need torch on libgomp")


@pytest.fixture
def builds(monkeypatch):
    """Counts the layout builds of both fused engines."""
    count = {"n": 0}
    for module in (conv_fused, group_fused):
        original = module._padded

        def counted(w, original=original):
            count["n"] += 1
            return original(w)

        monkeypatch.setattr(module, "_padded", counted)
    return count


def _setup(k: int = 5, seed: int = 0):
    x = random_sparse_tensor([7, 7, 7], 4, dtype=torch.float32, seed=seed, density=0.3)
    torch.manual_seed(seed)
    conv = lsp.SubMConv3d(4, 6, k, indice_key="a").eval()
    return x, conv


def _check(conv, x):
    with torch.no_grad():
        out = conv(x).features
    assert torch.allclose(out, dense_subm_conv(x, conv.weight.detach(), conv.bias.detach()), atol=1e-4)


def test_inference_builds_the_layout_once(builds):
    x, conv = _setup()
    for _ in range(3):
        _check(conv, x)
    assert builds["n"] == 1


def test_no_grad_edit_rebuilds(builds):
    x, conv = _setup()
    _check(conv, x)
    with torch.no_grad():
        conv.weight.mul_(-2.0)
    _check(conv, x)
    assert builds["n"] == 2


def test_data_assignment_and_load_state_dict_rebuild(builds):
    x, conv = _setup()
    _check(conv, x)
    conv.weight.data = torch.randn_like(conv.weight)
    _check(conv, x)
    other = lsp.SubMConv3d(4, 6, 5)
    conv.load_state_dict(other.state_dict())
    _check(conv, x)
    assert builds["n"] == 3


def test_clear_after_an_edit_through_data(builds):
    x, conv = _setup()
    _check(conv, x)
    conv.weight.data.mul_(3.0)  # invisible to the version counter
    weight_cache.clear(conv)
    _check(conv, x)


def test_training_steps_use_the_updated_weight():
    x, conv = _setup(3)
    conv.train()
    opt = torch.optim.SGD(conv.parameters(), lr=1e-3)
    for _ in range(3):
        feats = x.features.clone().requires_grad_(True)
        out = conv(x.replace_feature(feats)).features
        ref_w = conv.weight.detach().clone().requires_grad_(True)
        ref = dense_subm_conv(x.replace_feature(x.features), ref_w, conv.bias.detach())
        assert torch.allclose(out, ref, atol=1e-4)
        opt.zero_grad()
        out.square().sum().backward()
        ref.square().sum().backward()
        assert torch.allclose(conv.weight.grad, ref_w.grad, rtol=1e-4, atol=1e-3 * float(ref_w.grad.abs().max()))
        opt.step()


def test_deepcopy_and_pickle_do_not_carry_layouts():
    x, conv = _setup()
    _check(conv, x)
    twin = copy.deepcopy(conv)
    with torch.no_grad():
        twin.weight.add_(1.0)
    _check(twin, x)
    _check(conv, x)
    buf, bare = io.BytesIO(), io.BytesIO()
    torch.save(conv, buf)
    torch.save(lsp.SubMConv3d(4, 6, 5), bare)
    assert abs(len(buf.getvalue()) - len(bare.getvalue())) < 2048


def test_swlk_group_weights_are_cached_and_refreshed(builds):
    from largekernel3d.nn.swlk_conv import SWLKConv3d

    x = random_sparse_tensor([7, 7, 7], 4, dtype=torch.float32, seed=3, density=0.3)
    layer = SWLKConv3d(4, 4, 7, indice_key="s").eval()
    with torch.no_grad():
        first = layer(x).features
        again = layer(x).features
        n = builds["n"]
        layer(x)
        assert builds["n"] == n
        layer.weight.mul_(2.0)
        doubled = layer(x).features
    assert torch.equal(first, again)
    assert torch.allclose(doubled, 2 * first, atol=1e-5)


def test_plain_tensors_are_not_memoised(builds):
    """gradcheck perturbs its (plain tensor) inputs in place through ``.data``: only parameters are memoised."""
    x, conv = _setup(3)
    w = conv.weight.detach().clone()
    kmap = conv.kernel_map(x)
    with torch.no_grad():
        first = lsp.sparse_conv(x.features, w, kmap)
        w.data[0, 1, 1, 1, 0] += 1.0  # invisible to the version counter
        second = lsp.sparse_conv(x.features, w, kmap)
    assert builds["n"] == 2
    assert torch.allclose(second, dense_subm_conv(x, w, None), atol=1e-4)
    assert not torch.allclose(first, second)
