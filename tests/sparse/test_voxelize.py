"""voxelize / batch_sparse against a NumPy reference, property-based, plus bad input."""

import dataclasses

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from largekernel3d.sparse import SparseConvTensor, Voxelization, batch_sparse, voxelize


def reference_voxelize(points, voxel_size, features=None, origin=None):
    """Straightforward NumPy voxelisation: floor, unique rows (lexicographic), mean by np.add.at."""
    p = np.asarray(points, dtype=np.float64)
    size = np.broadcast_to(np.asarray(voxel_size, dtype=np.float64), (3,))
    o = p.min(axis=0) if origin is None else np.asarray(origin, dtype=np.float64)
    cells = np.floor((p - o) / size).astype(np.int64)
    uniq, inverse, counts = np.unique(cells, axis=0, return_inverse=True, return_counts=True)
    mean = None
    if features is not None:
        f = np.asarray(features, dtype=np.float64)
        acc = np.zeros((len(uniq), f.shape[1]))
        np.add.at(acc, inverse.reshape(-1), f)
        mean = acc / counts[:, None]
    return uniq, inverse.reshape(-1), counts, mean


def check_against_reference(points, voxel_size, features=None, origin=None):
    vox = voxelize(points, voxel_size, features=features, origin=origin)
    coords, inverse, counts, mean = reference_voxelize(
        points.numpy() if isinstance(points, torch.Tensor) else points,
        voxel_size,
        None if features is None else np.asarray(features),
        origin,
    )
    assert vox.coords.dtype == torch.int32 and vox.point_to_voxel.dtype == torch.int64
    assert vox.counts.dtype == torch.int64
    np.testing.assert_array_equal(vox.coords.numpy(), coords)
    np.testing.assert_array_equal(vox.point_to_voxel.numpy(), inverse)
    np.testing.assert_array_equal(vox.counts.numpy(), counts)
    if features is None:
        assert vox.features is None
    else:
        np.testing.assert_allclose(vox.features.double().numpy(), mean, rtol=1e-5, atol=1e-6)
    return vox


@pytest.mark.parametrize("voxel_size", [0.05, 0.2, (0.1, 0.05, 0.3)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_matches_numpy_reference(voxel_size, dtype):
    gen = torch.Generator().manual_seed(0)
    points = (torch.rand(3000, 3, generator=gen, dtype=torch.float64) * torch.tensor([4.0, 3.0, 2.5]) - 1.0).to(dtype)
    feats = torch.randn(3000, 5, generator=gen, dtype=dtype)
    vox = check_against_reference(points, voxel_size, feats)
    assert vox.features.dtype == dtype
    assert int(vox.counts.sum()) == 3000
    assert bool((vox.coords >= 0).all())
    # every point lies in its voxel: o + c * s <= p < o + (c + 1) * s
    size = torch.tensor(np.broadcast_to(voxel_size, (3,)).copy(), dtype=torch.float64)
    c = vox.coords[vox.point_to_voxel].double()
    lo = vox.origin + c * size
    assert bool((points.double() >= lo - 1e-9).all()) and bool((points.double() < lo + size + 1e-9).all())
    centers = vox.voxel_centers()[vox.point_to_voxel]
    assert bool(((points.double() - centers).abs() <= size / 2 + 1e-9).all())


def test_numpy_input_and_explicit_origin():
    rng = np.random.default_rng(1)
    points = rng.uniform(0, 2, (500, 3)).astype(np.float32)
    feats = rng.normal(size=(500, 2)).astype(np.float32)
    vox = check_against_reference(points, 0.1, feats, origin=(-0.5, -0.25, 0.0))
    np.testing.assert_allclose(vox.origin.numpy(), [-0.5, -0.25, 0.0])
    assert int(vox.coords[:, 0].min()) >= 5  # points start at 0 m, origin at -0.5 m, 0.1 m voxels


def test_duplicate_points_share_a_voxel_and_average():
    points = torch.tensor([[0.01, 0.01, 0.01], [0.02, 0.03, 0.04], [0.5, 0.5, 0.5]])
    feats = torch.tensor([[1.0], [3.0], [7.0]])
    vox = voxelize(points, 0.1, feats)
    assert vox.num_voxels == 2
    assert vox.point_to_voxel.tolist() == [0, 0, 1]
    assert vox.counts.tolist() == [2, 1]
    assert vox.features[:, 0].tolist() == [2.0, 7.0]
    assert vox.spatial_shape == [5, 5, 5]


def test_empty_and_single_point():
    empty = voxelize(torch.zeros(0, 3), 0.1, features=torch.zeros(0, 4))
    assert empty.coords.shape == (0, 3) and empty.features.shape == (0, 4)
    assert empty.point_to_voxel.shape == (0,) and empty.counts.shape == (0,)
    assert empty.spatial_shape == [1, 1, 1]
    one = voxelize(torch.tensor([[1.0, -2.0, 3.0]]), 0.5)
    assert one.coords.tolist() == [[0, 0, 0]] and one.counts.tolist() == [1]


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(0, 60),
    scale=st.floats(0.01, 10.0),
    size=st.floats(0.01, 1.0),
    seed=st.integers(0, 2**16),
    channels=st.integers(1, 4),
)
def test_property_random_clouds(n, scale, size, seed, channels):
    rng = np.random.default_rng(seed)
    points = (rng.normal(size=(n, 3)) * scale).astype(np.float64)
    feats = rng.normal(size=(n, channels))
    if n == 0:
        vox = voxelize(points, size, feats)
        assert vox.num_voxels == 0
        return
    vox = check_against_reference(points, size, feats)
    # the inverse index reproduces each point's voxel and every voxel is used
    assert set(vox.point_to_voxel.tolist()) == set(range(vox.num_voxels))


def test_bad_input():
    good = torch.rand(10, 3)
    with pytest.raises(ValueError, match="NaN or inf"):
        voxelize(torch.tensor([[0.0, 0.0, float("nan")]]), 0.1)
    with pytest.raises(ValueError, match="NaN or inf"):
        voxelize(torch.tensor([[0.0, float("inf"), 0.0]]), 0.1)
    with pytest.raises(ValueError, match=r"\[N, 3\]"):
        voxelize(torch.rand(10, 2), 0.1)
    with pytest.raises(TypeError, match="floating point"):
        voxelize(torch.ones(10, 3, dtype=torch.int64), 0.1)
    for bad in (0.0, -0.1, float("nan"), float("inf"), (0.1, 0.0, 0.1)):
        with pytest.raises(ValueError, match="voxel_size"):
            voxelize(good, bad)
    with pytest.raises(ValueError, match="3 entries"):
        voxelize(good, (0.1, 0.1))
    with pytest.raises(ValueError, match="rows"):
        voxelize(good, 0.1, features=torch.rand(9, 3))
    with pytest.raises(TypeError, match="features must be floating"):
        voxelize(good, 0.1, features=torch.ones(10, 3, dtype=torch.int32))
    with pytest.raises(ValueError, match="below origin"):
        voxelize(good, 0.1, origin=(0.5, 0.5, 0.5))
    with pytest.raises(TypeError, match="torch.Tensor or numpy"):
        voxelize([[0.0, 0.0, 0.0]], 0.1)


def test_voxelization_is_frozen():
    vox = voxelize(torch.rand(5, 3), 0.5)
    assert isinstance(vox, Voxelization)
    with pytest.raises(dataclasses.FrozenInstanceError):
        vox.coords = None


def test_batch_sparse_concatenates_with_batch_index():
    rng = np.random.default_rng(3)
    clouds = [rng.uniform(0, s, (n, 3)) for s, n in ((1.0, 200), (2.0, 300), (0.5, 1))]
    voxs = [voxelize(torch.from_numpy(c), 0.1, torch.from_numpy(rng.normal(size=(len(c), 4))).float()) for c in clouds]
    t = batch_sparse([v.coords for v in voxs], [v.features for v in voxs])
    assert isinstance(t, SparseConvTensor)
    assert t.batch_size == 3 and t.indices.dtype == torch.int32
    expected_shape = np.max([v.coords.max(0).values.numpy() for v in voxs], axis=0) + 1
    assert t.spatial_shape == expected_shape.tolist()
    dense = t.dense(channels_first=False)
    for b, v in enumerate(voxs):
        idx = v.coords.long()
        torch.testing.assert_close(dense[b][idx[:, 0], idx[:, 1], idx[:, 2]], v.features)
        assert int((t.indices[:, 0] == b).sum()) == v.num_voxels
    assert float(dense.abs().sum()) == pytest.approx(float(torch.cat([v.features for v in voxs]).abs().sum()), rel=1e-5)
    t2 = batch_sparse([v.coords for v in voxs], [v.features for v in voxs], spatial_shape=[40, 40, 40])
    assert t2.spatial_shape == [40, 40, 40]


def test_batch_sparse_empty_element_and_errors():
    c = torch.tensor([[0, 1, 2]], dtype=torch.int32)
    f = torch.ones(1, 2)
    t = batch_sparse([c, torch.zeros(0, 3, dtype=torch.int32)], [f, torch.zeros(0, 2)])
    assert t.batch_size == 2 and t.indices.shape == (1, 4)
    with pytest.raises(ValueError, match="at least one"):
        batch_sparse([], [])
    with pytest.raises(ValueError, match="clouds"):
        batch_sparse([c], [f, f])
    with pytest.raises(ValueError, match="rows"):
        batch_sparse([c], [torch.ones(2, 2)])
    with pytest.raises(ValueError, match="channels"):
        batch_sparse([c, c], [f, torch.ones(1, 3)])
    with pytest.raises(TypeError, match="integer"):
        batch_sparse([c.float()], [f])
    with pytest.raises(ValueError, match="negative"):
        batch_sparse([-c], [f])
    with pytest.raises(ValueError, match="duplicate"):
        batch_sparse([torch.cat([c, c])], [torch.ones(2, 2)])
    with pytest.raises(ValueError, match="outside spatial_shape"):
        batch_sparse([c], [f], spatial_shape=[1, 1, 1])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu():
    gen = torch.Generator().manual_seed(5)
    points = torch.rand(20000, 3, generator=gen) * 5
    feats = torch.rand(20000, 3, generator=gen)
    cpu = voxelize(points, 0.05, feats)
    gpu = voxelize(points.cuda(), 0.05, feats.cuda())
    assert gpu.coords.is_cuda and gpu.point_to_voxel.is_cuda
    torch.testing.assert_close(gpu.coords.cpu(), cpu.coords)
    torch.testing.assert_close(gpu.point_to_voxel.cpu(), cpu.point_to_voxel)
    torch.testing.assert_close(gpu.features.cpu(), cpu.features)
    t = batch_sparse([gpu.coords, gpu.coords], [gpu.features, gpu.features])
    assert t.indices.is_cuda and t.batch_size == 2
