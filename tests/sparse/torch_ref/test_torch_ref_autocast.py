"""The pure-PyTorch path (the CUDA path) under autocast: products in half precision, sums in the features' dtype."""

from __future__ import annotations

import pytest
import torch

from largekernel3d.sparse.kernel_map import build_submanifold_map
from largekernel3d.sparse.geometry import ConvGeometry
from largekernel3d.sparse.torch_ref.conv import gather_gemm_scatter


def _inputs(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    coords = torch.unique(torch.randint(0, 12, (600, 3), generator=g), dim=0)
    indices = torch.cat([torch.zeros(len(coords), 1, dtype=torch.int64), coords], 1).int()
    x = torch.randn(len(coords), 16, generator=g)
    weight = torch.randn(27, 1, 16, 24, generator=g) * 0.2
    return indices, x, weight


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_gather_gemm_scatter_under_cpu_autocast_matches_float32(dtype):
    indices, x, weight = _inputs()
    geometry = ConvGeometry.create(3, 3, 1, 1, 1)
    kmap = build_submanifold_map(indices, [12, 12, 12], 1, geometry, dataflow="torch_ref")
    exact = gather_gemm_scatter(x, weight, kmap, len(x))
    with torch.autocast("cpu", dtype=dtype):
        got = gather_gemm_scatter(x, weight, kmap, len(x))
    assert got.dtype == torch.float32 and got.shape == exact.shape
    rel = (got - exact).abs().max() / exact.abs().max()
    assert 1e-6 < rel < 2e-2  # half-precision products (not exact), float32 sums (close)


@pytest.mark.parametrize("layer", ["subm", "strided", "swlk"])
def test_layers_on_the_torch_path_run_under_cpu_autocast(layer):
    import largekernel3d.sparse as spconv
    from largekernel3d.nn import SWLKConv3d

    indices, x, _ = _inputs(1)
    torch.manual_seed(0)
    if layer == "subm":
        net = spconv.SubMConv3d(16, 24, 3, dataflow="torch_ref")
    elif layer == "strided":
        net = spconv.SparseConv3d(16, 24, 3, stride=2, padding=1, dataflow="torch_ref")
    else:
        net = SWLKConv3d(16, 24, kernel_size=5, dataflow="torch_ref")
    st = spconv.SparseConvTensor(x.requires_grad_(), indices, [12, 12, 12], 1)
    exact = net(st).features
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = net(spconv.SparseConvTensor(x, indices, [12, 12, 12], 1)).features
    out.float().square().sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    rel = (out.float() - exact).abs().max() / exact.abs().max()
    assert rel < 3e-2
