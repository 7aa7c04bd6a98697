"""The effective receptive field (largekernel3d.analysis.erf): exact supports of known layers, gradients against
a dense PyTorch reference, positions of strided outputs, and the radius / share numbers on hand-built masses."""

import itertools

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from helpers import gather_sites, random_sparse_tensor, site_mask, torch_weight
from largekernel3d.analysis.erf import ERFResult, centre_gradients, effective_receptive_field, erf_planes, mass_radius
from largekernel3d.nn import SWLKConv3d
from largekernel3d.sparse import SparseConv3d, SparseSequential, SubMConv3d


def _support(result: ERFResult) -> set:
    return {tuple(int(v) for v in row) for row in result.offsets[result.mass > 0].round().tolist()}


def _cube(r: int) -> set:
    return set(itertools.product(range(-r, r + 1), repeat=3))


def _dense_input(seed: int = 0, shape=(11, 11, 11), channels: int = 3):
    # every cell active: each centre away from the border sees its whole window
    return random_sparse_tensor(shape, channels, density=1.0, dtype=torch.float32, seed=seed)


def _erf(net, x, centres=40, **kw):
    return effective_receptive_field(net, [x], centres_per_scene=centres, progress=False, **kw)


def test_one_3x3x3_submanifold_layer_is_exactly_its_window():
    torch.manual_seed(0)
    res = _erf(SubMConv3d(3, 4, 3, indice_key="a"), _dense_input())
    assert _support(res) == _cube(1)
    assert float(res.mass.sum()) == pytest.approx(1.0)


def test_two_3x3x3_layers_reach_5x5x5():
    torch.manual_seed(1)
    net = SparseSequential(SubMConv3d(3, 4, 3, indice_key="a"), SubMConv3d(4, 4, 3, indice_key="a"))
    assert _support(_erf(net, _dense_input(1))) == _cube(2)


def test_one_swlk_7x7x7_layer_is_exactly_7x7x7():
    torch.manual_seed(2)
    net = SWLKConv3d(3, 4, kernel_size=7, indice_key="lk")
    assert _support(_erf(net, _dense_input(2, shape=(15, 15, 15)), centres=60)) == _cube(3)


def _dense_two_layer(x, w1, w2, mask):
    """Submanifold 3³ conv, ReLU, submanifold 3³ conv on the densified grid: outputs only at active cells."""
    d = x.dense().requires_grad_(True)
    h = F.conv3d(d, torch_weight(w1), padding=1) * mask
    out = F.conv3d(torch.relu(h), torch_weight(w2), padding=1) * mask
    return d, out


def test_gradients_equal_the_dense_reference():
    torch.manual_seed(3)
    x = random_sparse_tensor((6, 5, 7), 2, density=0.6, dtype=torch.float64, seed=3)
    c1, c2 = SubMConv3d(2, 3, 3, bias=False, indice_key="a"), SubMConv3d(3, 4, 3, bias=False, indice_key="a")
    net = SparseSequential(c1, nn.ReLU(), c2).double()
    mask = site_mask(x.indices, 1, x.spatial_shape).unsqueeze(1).double()
    centres = [0, 5, 11]
    g, pos, stride = centre_gradients(net, x, centres)
    assert stride.tolist() == [1.0, 1.0, 1.0]
    assert torch.equal(pos, x.indices[centres, 1:].double())
    for row, c in zip(g, centres):
        d, out = _dense_two_layer(x, c1.weight.detach(), c2.weight.detach(), mask)
        b, i, j, k = x.indices[c].long().tolist()
        (grad,) = torch.autograd.grad(out[b, :, i, j, k].sum(), d)
        ref = gather_sites(grad.abs().sum(1, keepdim=True), x.indices)[:, 0]
        assert bool((ref > 0).any())
        torch.testing.assert_close(row, ref, rtol=1e-10, atol=1e-12)


def test_accumulated_map_is_the_mean_of_normalised_centre_maps():
    torch.manual_seed(4)
    x = random_sparse_tensor((6, 6, 6), 2, density=0.7, dtype=torch.float64, seed=4)
    net = SparseSequential(SubMConv3d(2, 3, 3, indice_key="a"), nn.ReLU(), SubMConv3d(3, 2, 3, indice_key="a"))
    net = net.double()
    n_out = x.indices.shape[0]
    res = effective_receptive_field(net, [x], centres_per_scene=n_out, progress=False, voxel_size=(0.1,) * 3)
    g, pos, _ = centre_gradients(net, x, list(range(n_out)))
    expected = {}
    for row, p in zip(g, pos):
        if row.sum() == 0:
            continue
        for j in torch.nonzero(row).squeeze(1).tolist():
            key = tuple((x.indices[j, 1:].double() - p).tolist())
            expected[key] = expected.get(key, 0.0) + float(row[j] / row.sum())
    got = {tuple(o): float(m) for o, m in zip(res.offsets.tolist(), res.mass.tolist())}
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        assert got[key] == pytest.approx(value / res.centres, rel=1e-9)


@pytest.mark.parametrize("kernel, padding, support", [(2, 0, {-0.5, 0.5}), (3, 1, {-1.0, 0.0, 1.0})])
def test_strided_stage_output_sits_at_its_window_centre(kernel, padding, support):
    torch.manual_seed(5)
    net = SparseSequential(
        SubMConv3d(2, 2, 1, indice_key="s"), SparseConv3d(2, 3, kernel, stride=2, padding=padding, indice_key="down")
    )
    x = random_sparse_tensor((12, 12, 12), 2, density=1.0, dtype=torch.float32, seed=5)
    res = _erf(net, x, centres=30)
    assert res.stride == (2.0, 2.0, 2.0)
    axes_values = {v for row in res.offsets[res.mass > 0].tolist() for v in row}
    assert axes_values == support


def test_stage_hook_selects_a_named_module_and_rejects_unknown_names():
    torch.manual_seed(6)
    net = SparseSequential(SubMConv3d(3, 4, 3, indice_key="a"), SubMConv3d(4, 4, 3, indice_key="a"))
    x = _dense_input(6)
    assert _support(_erf(net, x, stage="0")) == _cube(1)
    with pytest.raises(ValueError, match="not a module"):
        _erf(net, x, stage="encoder.9")


def test_radii_and_share_on_a_hand_built_distribution():
    offsets = torch.tensor([[1, 0, 0], [0, 2, 0], [0, 0, 3], [4, 0, 0]], dtype=torch.float64)
    res = ERFResult("hand", "output", ("x", "y", "z"), (0.2, 0.2, 0.2), offsets, torch.full((4,), 0.25), 4, 0, 1)
    assert [res.radius(t) for t in (0.2, 0.25, 0.5, 0.51, 0.9, 1.0)] == [1.0, 1.0, 2.0, 3.0, 4.0, 4.0]
    assert res.radius(0.5, "m") == pytest.approx(0.4)
    assert res.share_beyond(0.5) == pytest.approx(0.5)  # 0.6 m and 0.8 m
    assert res.share_beyond(0.6) == pytest.approx(0.25)  # 0.6 m itself is not beyond
    # anisotropic voxels: metres use the voxel size of each axis
    aniso = ERFResult("a", "output", ("z", "y", "x"), (0.5, 0.1, 0.1), offsets, torch.full((4,), 0.25), 4, 0, 1)
    assert sorted(aniso.distances("m").tolist()) == pytest.approx([0.2, 0.3, 0.5, 2.0])  # z: 0.5 m per voxel
    assert mass_radius(torch.tensor([3.0, 1.0, 2.0]), torch.tensor([0.1, 0.6, 0.3]), 0.8) == 2.0


def test_planes_hold_the_mass_of_the_window(tmp_path):
    offsets = torch.tensor([[0.5, 0.5, 0.5], [-0.5, 0.5, -0.5], [0.5, -1.5, 2.5]], dtype=torch.float64)
    res = ERFResult("p", "s", ("x", "y", "z"), (0.1, 0.1, 0.1), offsets, torch.tensor([0.5, 0.3, 0.2]), 1, 0, 1)
    planes = erf_planes(res, 0.3)
    assert planes.projection.sum() == pytest.approx(1.0)
    assert planes.slice.sum() == pytest.approx(0.4)  # the two planes at z = +-0.5, averaged
    assert planes.extent == pytest.approx((-0.3, 0.4, -0.3, 0.4))
    res.save(tmp_path / "r.npz")
    back = ERFResult.load(tmp_path / "r.npz")
    assert back.label == "p" and torch.equal(back.offsets, res.offsets) and back.axes == res.axes


def test_one_input_serves_networks_whose_layers_share_key_names():
    torch.manual_seed(7)
    x = _dense_input(7)
    small = _erf(SubMConv3d(3, 4, 3, indice_key="k"), x, centres=10)
    large = _erf(SubMConv3d(3, 4, 5, indice_key="k"), x, centres=10)
    assert _support(small) == _cube(1) and _support(large) == _cube(2)
