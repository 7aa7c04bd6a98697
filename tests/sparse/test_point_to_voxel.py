"""Hard voxelisation (PointToVoxel, points_to_voxels) against a per-point loop and spconv's PointToVoxel."""

from pathlib import Path

import numpy as np
import pytest
import torch

from largekernel3d.sparse.point_to_voxel import PointToVoxel, VoxelGrid, VoxelizedPoints, points_to_voxels

SHARED_DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
KITTI_RANGE = [0.0, -40.0, -3.0, 70.4, 40.0, 1.0]
KITTI_VOXEL = [0.05, 0.05, 0.1]


@pytest.fixture
def kitti_points() -> torch.Tensor:
    """The full KITTI training frame 000001 (float32 x, y, z, reflectance)."""
    path = SHARED_DATA / "kitti" / "training" / "velodyne" / "000001.bin"
    if not path.is_file():
        pytest.skip("../shared/data/kitti is not present")
    return torch.from_numpy(np.fromfile(path, dtype=np.float32).reshape(-1, 4))


def reference_hard_voxelize(points, lower, vsize, grid_size, max_points, max_voxels, empty_mean=False):
    """One point at a time with a dict of voxels: the definition written out (axes given as x, y, z...)."""
    pts = np.asarray(points)
    ndim = len(vsize)
    lo = np.asarray(lower, dtype=np.float32).astype(pts.dtype)
    vs = np.asarray(vsize, dtype=np.float32).astype(pts.dtype)
    table, stored, coords = {}, [], []
    occupied = set()
    point_to_voxel = np.full(len(pts), -1, dtype=np.int64)
    for i, p in enumerate(pts):
        cell = np.floor((p[:ndim] - lo) / vs)
        if not all(0 <= cell[a] < grid_size[a] for a in range(ndim)):
            continue
        key = tuple(int(v) for v in cell[::-1])
        occupied.add(key)
        if key not in table:
            if len(table) >= max_voxels:
                continue
            table[key] = len(table)
            stored.append([])
            coords.append(key)
        j = table[key]
        point_to_voxel[i] = j
        if len(stored[j]) < max_points:
            stored[j].append(p)
    voxels = np.zeros((len(stored), max_points, pts.shape[1]), dtype=pts.dtype)
    for j, rows in enumerate(stored):
        voxels[j, : len(rows)] = rows
        if empty_mean:
            voxels[j, len(rows) :] = np.mean(np.asarray(rows, dtype=np.float64), axis=0)
    num = np.array([len(r) for r in stored], dtype=np.int32)
    return voxels, np.array(coords, dtype=np.int32).reshape(-1, ndim), num, point_to_voxel, len(occupied)


def random_cloud(generator, n, low, high, channels, dtype=torch.float32):
    """``n`` points uniform in a box slightly larger than ``[low, high)``, with extra feature columns."""
    low, high = torch.tensor(low, dtype=torch.float64), torch.tensor(high, dtype=torch.float64)
    span = high - low
    xyz = low - 0.1 * span + 1.2 * span * torch.rand(n, len(low), generator=generator, dtype=torch.float64)
    extra = torch.rand(n, channels - len(low), generator=generator, dtype=torch.float64)
    return torch.cat([xyz, extra], dim=1).to(dtype)


def assert_matches_reference(out, ref, empty_mean=False):
    voxels, coords, num, p2v, occupied = ref
    np.testing.assert_array_equal(out.coords.numpy(), coords)
    np.testing.assert_array_equal(out.num_points.numpy(), num)
    np.testing.assert_array_equal(out.point_to_voxel.numpy(), p2v)
    if empty_mean:
        np.testing.assert_allclose(out.voxels.numpy(), voxels, rtol=1e-6, atol=1e-6)
    else:
        np.testing.assert_array_equal(out.voxels.numpy(), voxels)
    assert out.num_occupied == occupied
    assert out.num_dropped_voxels == occupied - len(coords)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("max_points,max_voxels", [(3, 10_000), (1, 10_000), (4, 37)])
def test_matches_per_point_loop_on_random_clouds(dtype, max_points, max_voxels):
    gen = torch.Generator().manual_seed(7 + max_points + max_voxels)
    # a coarse grid so that voxels hold many points and the per-voxel cap matters
    pcr, vsize = [-2.0, -1.0, 0.0, 2.0, 1.0, 1.0], [0.5, 0.25, 0.2]
    grid = VoxelGrid(pcr, vsize)
    pts = random_cloud(gen, 3000, pcr[:3], pcr[3:], 5, dtype)
    out = points_to_voxels(pts, grid, max_points, max_voxels)
    assert out.voxels.dtype == dtype and out.coords.dtype == torch.int32 and out.num_points.dtype == torch.int32
    ref = reference_hard_voxelize(pts.numpy(), pcr[:3], vsize, grid.grid_size, max_points, max_voxels)
    assert_matches_reference(out, ref)
    assert out.num_voxels == min(max_voxels, out.num_occupied)
    if max_voxels == 37:
        assert out.num_dropped_voxels > 0
    # the coordinates fit the detection sparse shape (z, y, x)
    assert (out.coords.amax(dim=0) < torch.tensor(grid.sparse_shape, dtype=torch.int32)).all()


def test_empty_mean_fills_free_slots_with_the_mean():
    gen = torch.Generator().manual_seed(3)
    pcr, vsize = [0.0, 0.0, 0.0, 1.0, 1.0, 1.0], [0.25, 0.25, 0.5]
    grid = VoxelGrid(pcr, vsize)
    pts = random_cloud(gen, 400, pcr[:3], pcr[3:], 4)
    out = points_to_voxels(pts, grid, 6, 1000, empty_mean=True)
    ref = reference_hard_voxelize(pts.numpy(), pcr[:3], vsize, grid.grid_size, 6, 1000, empty_mean=True)
    assert_matches_reference(out, ref, empty_mean=True)
    assert (out.num_points < 6).any()


@pytest.mark.parametrize("ndim", [1, 2, 4])
def test_other_dimensions_match_the_loop(ndim):
    gen = torch.Generator().manual_seed(11 + ndim)
    lows, highs, sizes = [-1.0, 0.0, 2.0, -3.0][:ndim], [1.0, 0.6, 3.0, 1.0][:ndim], [0.25, 0.2, 0.5, 1.0][:ndim]
    gen_p2v = PointToVoxel(sizes, lows + highs, ndim + 1, 50, 3)
    pts = random_cloud(gen, 500, lows, highs, ndim + 1)
    out = gen_p2v.voxelize(pts)
    ref = reference_hard_voxelize(pts.numpy(), lows, sizes, gen_p2v.grid_size[::-1], 3, 50)
    assert_matches_reference(out, ref)


def test_equal_to_spconv_on_a_kitti_frame(kitti_points, one_thread):
    spconv_utils = pytest.importorskip("spconv.pytorch.utils")
    # 16000 is OpenPCDet's KITTI training cap (the frame has more voxels: the cap drops some); 10**5 keeps all
    for max_voxels in (16_000, 100_000):
        ours = PointToVoxel(KITTI_VOXEL, KITTI_RANGE, 4, max_voxels, 5)
        theirs = spconv_utils.PointToVoxel(KITTI_VOXEL, KITTI_RANGE, 4, max_voxels, 5)
        assert ours.vsize == pytest.approx(theirs.vsize) and list(ours.grid_size) == list(theirs.grid_size)
        assert list(ours.grid_stride) == list(theirs.grid_stride)
        assert ours.coors_range == pytest.approx(theirs.coors_range)
        got = ours.generate_voxel_with_id(kitti_points)
        expected = theirs.generate_voxel_with_id(kitti_points)
        for name, a, b in zip(("voxels", "indices", "num_per_voxel", "pc_voxel_id"), got, expected):
            assert a.dtype == b.dtype and torch.equal(a, b), name
        voxels, indices, num = ours(kitti_points)
        assert torch.equal(voxels, got[0]) and torch.equal(indices, got[1]) and torch.equal(num, got[2])
        full = ours.voxelize(kitti_points)
        assert (full.num_dropped_voxels > 0) == (max_voxels == 16_000)
    # empty_mean: spconv's CPU kernel reuses its accumulator across voxels (means drift), so compare the stored
    # points with spconv and the filled slots with the plain mean
    ours = PointToVoxel(KITTI_VOXEL, KITTI_RANGE, 4, 100_000, 5)
    theirs = spconv_utils.PointToVoxel(KITTI_VOXEL, KITTI_RANGE, 4, 100_000, 5)
    v, i, n = ours(kitti_points, empty_mean=True)
    sv, si, sn = theirs(kitti_points, empty_mean=True)
    assert torch.equal(i, si) and torch.equal(n, sn)
    stored = torch.arange(5).unsqueeze(0) < n.unsqueeze(1).long()
    assert torch.equal(v[stored], sv[stored])
    mean = (v * stored.unsqueeze(2)).sum(dim=1) / n.unsqueeze(1)
    torch.testing.assert_close(v[~stored], mean.unsqueeze(1).expand_as(v)[~stored])


def test_kitti_crop_matches_the_loop(kitti_points):
    pts = kitti_points[::12]  # ~10k points: the loop stays fast
    grid = VoxelGrid(KITTI_RANGE, KITTI_VOXEL)
    out = points_to_voxels(pts, grid, 5, 2000)
    ref = reference_hard_voxelize(pts.numpy(), KITTI_RANGE[:3], KITTI_VOXEL, grid.grid_size, 5, 2000)
    assert_matches_reference(out, ref)
    # the functional form and the class agree
    cls = PointToVoxel(KITTI_VOXEL, KITTI_RANGE, 4, 2000, 5)(pts)
    assert all(torch.equal(a, b) for a, b in zip(cls, (out.voxels, out.coords, out.num_points)))


def test_points_outside_the_range_or_nan_are_dropped():
    grid = VoxelGrid([0, 0, 0, 1, 1, 1], [0.5, 0.5, 0.5])
    pts = torch.tensor(
        [
            [0.1, 0.1, 0.1, 1.0],
            [1.0, 0.2, 0.2, 2.0],
            [-1e-6, 0.3, 0.3, 3.0],
            [float("nan"), 0.1, 0.1, 4.0],
            [0.9, 0.9, 0.9, 5.0],
            [0.2, 0.2, 0.2, 6.0],
        ]
    )
    out = points_to_voxels(pts, grid, 4, 10)
    assert out.point_to_voxel.tolist() == [0, -1, -1, -1, 1, 0]
    assert out.coords.tolist() == [[0, 0, 0], [1, 1, 1]]
    assert out.num_points.tolist() == [2, 1]
    assert out.voxels[0, :2, 3].tolist() == [1.0, 6.0]


@pytest.mark.parametrize("points", [torch.zeros(0, 4), torch.full((5, 4), 50.0)])
def test_no_point_in_range_gives_empty_outputs(points):
    out = points_to_voxels(points, VoxelGrid([0, 0, 0, 1, 1, 1], [0.5, 0.5, 0.5]), 4, 10)
    assert isinstance(out, VoxelizedPoints)
    assert out.voxels.shape == (0, 4, 4) and out.coords.shape == (0, 3) and out.num_points.shape == (0,)
    assert out.point_to_voxel.tolist() == [-1] * points.shape[0]
    assert out.num_voxels == 0 and out.num_occupied == 0


def test_numpy_points_are_accepted():
    gen = torch.Generator().manual_seed(5)
    grid = VoxelGrid([0, 0, 0, 1, 1, 1], [0.25, 0.25, 0.25])
    pts = random_cloud(gen, 200, [0, 0, 0], [1, 1, 1], 4)
    a, b = points_to_voxels(pts.numpy(), grid, 3, 100), points_to_voxels(pts, grid, 3, 100)
    assert torch.equal(a.voxels, b.voxels) and torch.equal(a.coords, b.coords)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_equals_cpu(kitti_points):
    grid = VoxelGrid(KITTI_RANGE, KITTI_VOXEL)
    cpu = points_to_voxels(kitti_points, grid, 5, 16_000)
    gpu = points_to_voxels(kitti_points.cuda(), grid, 5, 16_000)
    for name in ("voxels", "coords", "num_points", "point_to_voxel"):
        assert torch.equal(getattr(cpu, name), getattr(gpu, name).cpu()), name


def test_bad_input_names_the_argument():
    grid = VoxelGrid([0, 0, 0, 1, 1, 1], [0.5, 0.5, 0.5])
    pts = torch.rand(10, 4)
    with pytest.raises(TypeError, match="points must be floating"):
        points_to_voxels(pts.to(torch.int32), grid, 3, 10)
    with pytest.raises(ValueError, match=r"points must have shape \[N, C\]"):
        points_to_voxels(pts[:, :2], grid, 3, 10)
    with pytest.raises(TypeError, match="points must be a torch.Tensor"):
        points_to_voxels(pts.tolist(), grid, 3, 10)
    with pytest.raises(TypeError, match="grid must be a VoxelGrid"):
        points_to_voxels(pts, [0, 0, 0, 1, 1, 1], 3, 10)
    with pytest.raises(ValueError, match="max_voxels must be >= 1"):
        points_to_voxels(pts, grid, 3, 0)
    with pytest.raises(TypeError, match="max_points_per_voxel must be a positive int"):
        points_to_voxels(pts, grid, True, 10)
    with pytest.raises(ValueError, match="num_point_features=5"):
        PointToVoxel([0.5] * 3, [0, 0, 0, 1, 1, 1], 5, 10, 3)(pts)
    with pytest.raises(ValueError, match="coors_range_xyz must have 6 numbers"):
        PointToVoxel([0.5] * 3, [0, 0, 1, 1], 4, 10, 3)
    with pytest.raises(ValueError, match="vsize_xyz must be finite and positive"):
        PointToVoxel([0.5, 0.0, 0.5], [0, 0, 0, 1, 1, 1], 4, 10, 3)
    with pytest.raises(ValueError, match="every axis needs max > min"):
        PointToVoxel([0.5] * 3, [0, 0, 0, 1, -1, 1], 4, 10, 3)
