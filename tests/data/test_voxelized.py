"""Voxelised samples and batches: majority labels against a brute-force loop, features, epochs, collate."""

import numpy as np
import pytest
import torch

from largekernel3d.data import (
    IGNORE_INDEX,
    IN_CHANNELS,
    Compose,
    GeneratedIndoorDataset,
    PointCloudScene,
    RandomJitter,
    RandomRotateZ,
    ScanNetDataset,
    SegBatch,
    SegmentationDataset,
    VoxelizedSegmentation,
    collate_segmentation,
    majority_labels,
    voxelize_scene,
)
from largekernel3d.sparse import SparseConvTensor


class ListDataset(SegmentationDataset):
    class_names = tuple(f"c{i}" for i in range(5))

    def __init__(self, scenes):
        self.scenes = scenes
        self.scene_names = [s.name for s in scenes]

    def _load(self, index):
        return self.scenes[index]


def random_scene(name, n, seed, num_classes=5):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, num_classes, n)
    labels[rng.random(n) < 0.2] = IGNORE_INDEX
    return PointCloudScene(name, rng.uniform(0, 1, (n, 3)), rng.uniform(0, 1, (n, 3)), labels)


def brute_force_majority(p2v, labels, m, c):
    out = []
    for j in range(m):
        lab = labels[(p2v == j) & (labels != IGNORE_INDEX)]
        if lab.size == 0:
            out.append(IGNORE_INDEX)
        else:
            counts = np.bincount(lab, minlength=c)
            out.append(int(np.argmax(counts)))  # first maximum = lowest class id
    return np.array(out)


def test_majority_labels_match_brute_force():
    for seed in range(5):
        s = random_scene("a", 600, seed)
        sample = voxelize_scene(s, 0.2, 5)
        want = brute_force_majority(sample.point_to_voxel.numpy(), s.labels, sample.num_voxels, 5)
        np.testing.assert_array_equal(sample.labels.numpy(), want)


def test_majority_ties_and_ignore():
    p2v = torch.tensor([0, 0, 1, 1, 1, 2])
    lab = torch.tensor([3, 1, IGNORE_INDEX, 2, 2, IGNORE_INDEX])
    assert majority_labels(p2v, lab, 3, 4).tolist() == [1, 2, IGNORE_INDEX]
    with pytest.raises(ValueError, match=r"\[0, 4\)"):
        majority_labels(p2v, torch.tensor([0, 0, 0, 0, 0, 4]), 3, 4)


def test_sample_features_and_inverse_index():
    s = random_scene("a", 500, 0)
    sample = voxelize_scene(s, 0.25, 5)
    assert sample.features.shape == (sample.num_voxels, IN_CHANNELS) and sample.features.dtype == torch.float32
    assert sample.coords.dtype == torch.int32 and sample.labels.dtype == torch.int64
    for j in range(sample.num_voxels):
        members = (sample.point_to_voxel == j).numpy()
        np.testing.assert_allclose(sample.features[j].numpy(), s.colors[members].mean(0) - 0.5, atol=1e-6)
    np.testing.assert_array_equal(sample.point_labels.numpy(), s.labels)
    np.testing.assert_array_equal(sample.points.numpy(), s.points)


def test_epochs_change_augmentation_reproducibly():
    ds = ListDataset([random_scene("a", 300, 0), random_scene("b", 200, 1)])
    vd = VoxelizedSegmentation(ds, 0.1, transforms=Compose([RandomRotateZ(), RandomJitter()]), seed=3)
    a0 = vd[0]
    assert torch.equal(vd[0].points, a0.points)  # same (seed, index, epoch)
    assert not torch.equal(vd[1].points[:10], a0.points[:10])
    vd.set_epoch(1)
    a1 = vd[0]
    assert not torch.equal(a1.points, a0.points)
    vd.set_epoch(0)
    assert torch.equal(vd[0].points, a0.points)
    other = VoxelizedSegmentation(ds, 0.1, transforms=Compose([RandomRotateZ(), RandomJitter()]), seed=4)
    assert not torch.equal(other[0].points, a0.points)
    plain = VoxelizedSegmentation(ds, 0.1)
    assert torch.equal(plain[0].points, torch.from_numpy(ds[0].points))


def test_collate_and_point_predictions():
    ds = ListDataset([random_scene("a", 300, 0), random_scene("b", 200, 1), random_scene("c", 50, 2)])
    vd = VoxelizedSegmentation(ds, 0.1)
    samples = [vd[i] for i in range(3)]
    batch = collate_segmentation(samples)
    assert isinstance(batch, SegBatch) and batch.batch_size == 3
    assert batch.voxel_offsets == [0] + np.cumsum([s.num_voxels for s in samples]).tolist()
    assert batch.indices.shape == (batch.voxel_offsets[-1], 4) and batch.indices.dtype == torch.int32
    assert batch.names == ["a", "b", "c"]
    for b, s in enumerate(samples):
        rows = slice(batch.voxel_offsets[b], batch.voxel_offsets[b + 1])
        assert (batch.indices[rows, 0] == b).all()
        assert torch.equal(batch.indices[rows, 1:], s.coords)
        assert torch.equal(batch.labels[rows], s.labels)
    # voxel labels carried back to points equal the voxel label of every point
    back = batch.point_predictions(batch.labels)
    for b, s in enumerate(samples):
        assert torch.equal(back[b], s.labels[s.point_to_voxel])
    st = batch.to_sparse_tensor()
    assert isinstance(st, SparseConvTensor) and st.batch_size == 3 and st.features.shape[1] == IN_CHANNELS
    moved = batch.to("cpu")
    assert torch.equal(moved.indices, batch.indices) and moved.names == batch.names
    with pytest.raises(ValueError, match="at least one"):
        collate_segmentation([])


def test_dataloader_and_generated_data():
    vd = VoxelizedSegmentation(GeneratedIndoorDataset(2, seed=0, points_per_scene=4000), 0.05)
    loader = torch.utils.data.DataLoader(vd, batch_size=2, collate_fn=collate_segmentation)
    batch = next(iter(loader))
    assert batch.batch_size == 2 and (batch.labels != IGNORE_INDEX).any()
    assert vd.num_classes == 20


def test_bad_input():
    ds = ListDataset([random_scene("a", 10, 0)])
    with pytest.raises(ValueError, match="voxel_size"):
        VoxelizedSegmentation(ds, 0.0)
    with pytest.raises(TypeError, match="transforms"):
        VoxelizedSegmentation(ds, 0.1, transforms=3)
    with pytest.raises(ValueError, match="has no points"):
        voxelize_scene(PointCloudScene("e", np.zeros((0, 3)), np.zeros((0, 3)), np.zeros(0, np.int64)), 0.1, 5)
    bad = ListDataset([PointCloudScene("x", np.zeros((2, 3)), np.zeros((2, 3)), np.array([0, 7]))])
    with pytest.raises(ValueError, match="labels up to 7.*5 classes"):
        VoxelizedSegmentation(bad, 0.1)[0]
    vd = VoxelizedSegmentation(ds, 0.1)
    with pytest.raises(ValueError, match="epoch"):
        vd.set_epoch(-1)


def test_real_scene_at_2cm(shared_data):
    ds = ScanNetDataset(shared_data / "scannet" / "votenet_50k", scenes=["scene0001_00"])
    sample = VoxelizedSegmentation(ds, 0.02)[0]
    assert 20000 < sample.num_voxels <= 50000
    assert (sample.labels[sample.point_to_voxel] == sample.point_labels).float().mean() > 0.95
