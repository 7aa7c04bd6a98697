"""SegmentationPredictor: the receptive-field radius against brute-force perturbation, exact tiling (a scene
split in two vs whole), TTA against a hand-made average, and agreement with the training evaluation path."""

import numpy as np
import pytest
import torch

from largekernel3d.inference import Predictor, SegmentationPredictor, plan_tiles, receptive_field_radius, tta_transforms
from largekernel3d.models import build_model
from largekernel3d.sparse import SparseConvTensor


def random_net(seed=0):
    """A tiny LargeKernel3D-Seg with random weights and random BatchNorm statistics, in eval mode."""
    torch.manual_seed(seed)
    net = build_model(
        {
            "name": "largekernel3d_seg",
            "in_channels": 3,
            "num_classes": 5,
            "layers": [1] * 8,
            "planes": [8] * 8,
            "init_dim": 8,
            "stage_kernel_sizes": [3, 3, 3, 3],
            "stage_conv_types": "plain",
        }
    )
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm1d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
    return net.eval()


def run(net, coords, feats):
    idx = torch.cat([torch.zeros(len(coords), 1, dtype=torch.int32), torch.as_tensor(coords, dtype=torch.int32)], 1)
    with torch.no_grad():
        return net(SparseConvTensor(feats, idx, (np.asarray(coords).max(0) + 1).tolist(), 1)).features


def test_receptive_field_radius_is_exact_by_perturbation():
    """On a row of voxels, with positive weights (no cancellation, every ReLU passes) in float64, the output
    voxels that change when one input voxel changes reach exactly R away, over one 16-voxel period."""
    net = random_net()
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm1d):
            m.bias.data.zero_()
            m.weight.data.fill_(1.0)
            m.running_mean.zero_()
            m.running_var.fill_(1.0)
    for p in net.parameters():
        if p.dim() > 1:
            p.data.abs_().add_(0.1)
    net = net.double()
    radius = receptive_field_radius(net)
    length = 2 * radius + 64
    coords = np.stack([np.arange(length), np.zeros(length, int), np.zeros(length, int)], 1)
    feats = torch.rand(length, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    base = run(net, coords, feats)
    reach = []
    for source in range(radius + 32, radius + 48):
        moved = feats.clone()
        moved[source] += 1.0
        changed = np.flatnonzero((run(net, coords, moved) - base).abs().amax(dim=1).numpy() > 0)
        reach.append(np.abs(changed - source).max())
    assert max(reach) == radius  # never farther than R, and R is reached
    assert radius == 107  # stem 2 + sum over levels of 2 * 2^l (encoder 1-4, decoder 3-0) + 15


def test_tiles_partition_voxels_and_round_to_alignment():
    rng = np.random.default_rng(0)
    coords = np.unique(rng.integers(0, 200, (3000, 3)), axis=0)
    tiles = plan_tiles(coords, tile=50, halo=20)
    owner = np.concatenate([t.crop[t.core] for t in tiles])
    assert np.array_equal(np.sort(owner), np.arange(len(coords)))  # every voxel in exactly one core
    assert all((t.shift % 16 == 0).all() for t in tiles)
    for t in tiles:  # crop = core's square +- 32 (halo 20 -> 32)
        core = coords[t.crop[t.core]]
        lo = (core[:, :2] // 64).min(0) * 64
        inside = np.all((coords[:, :2] >= lo - 32) & (coords[:, :2] < lo + 64 + 32), axis=1)
        assert np.array_equal(np.sort(t.crop), np.flatnonzero(inside))


def scene(n=12000, seed=0):
    rng = np.random.default_rng(seed)
    pts = np.c_[rng.uniform(0, 56, n), rng.uniform(0, 8, n), rng.uniform(0, 3, n)] + [1e5, 2e5, 10]  # far origin
    return pts, rng.uniform(0, 1, (n, 3)).astype(np.float32)


def test_scene_split_in_two_equals_the_whole_pass(seg_checkpoint):
    whole = SegmentationPredictor.from_checkpoint(seg_checkpoint, device="cpu")
    pts, rgb = scene()
    ref = whole.predict(pts, rgb)
    # 56 m at 25 cm = 224 voxels: tiles of 28 m -> 112 -> 112 voxels (two tiles), halo R = 107 -> 112 voxels
    split = SegmentationPredictor.from_checkpoint(seg_checkpoint, device="cpu", tile_size=28.0)
    got = split.predict(pts, rgb)
    assert got.num_tiles == 2 and ref.num_tiles == 1
    np.testing.assert_array_equal(got.labels, ref.labels)
    np.testing.assert_allclose(got.voxel_logits, ref.voxel_logits, atol=1e-5)
    # without a halo the border voxels see less context: the logits differ (the test above can fail)
    blind = SegmentationPredictor.from_checkpoint(seg_checkpoint, device="cpu", tile_size=28.0, overlap=0.0)
    assert np.abs(blind.predict(pts, rgb).voxel_logits - ref.voxel_logits).max() > 1e-3


def test_tta_averages_rotated_and_mirrored_passes():
    net = random_net(3)
    pred = SegmentationPredictor(net, list("abcde"), 0.25, tta=True)
    pts, rgb = scene(4000, seed=1)
    got = pred.predict(pts, rgb)
    assert got.num_passes == 8
    coords, feats, p2v = pred.voxelize(pts, rgb)
    x, y, z = coords.T
    total = 0
    for cx, cy in ((x, y), (-y, x), (-x, -y), (y, -x), (-x, y), (-y, -x), (x, -y), (y, x)):  # 4 turns, mirrored
        c = np.stack([cx - cx.min(), cy - cy.min(), z], 1)
        total = total + run(net, c, feats).numpy()
    np.testing.assert_allclose(got.voxel_logits, total / 8, atol=1e-5)
    assert len(tta_transforms(2, False)) == 2


def test_predictions_match_the_training_evaluation_path(seg_checkpoint):
    from largekernel3d.training import load_trained_model, predict_scenes, setup
    from largekernel3d.training.checkpoint import load_checkpoint

    cfg = load_checkpoint(seg_checkpoint)["config"]
    model, _ = load_trained_model(seg_checkpoint, cfg, torch.device("cpu"))
    scenes = setup.build_scene_split(cfg)
    dataset = setup.voxelize(scenes.val, cfg, train=False)
    (ref,) = list(predict_scenes(model, dataset, torch.device("cpu"), progress=False))
    predictor = Predictor.from_checkpoint(seg_checkpoint, device="cpu")
    assert isinstance(predictor, SegmentationPredictor)
    raw = scenes.val[0]
    got = predictor.predict(raw.points, raw.colors)
    assert (got.labels == ref.pred).mean() > 0.999  # float32 vs float64 voxel boundaries may move a point
    assert sum(got.histogram().values()) == raw.num_points


def test_bad_inputs_are_named(seg_checkpoint):
    pred = SegmentationPredictor.from_checkpoint(seg_checkpoint, device="cpu")
    pts, rgb = scene(200)
    with pytest.raises(ValueError, match=r"colours in \[0, 1\].*255"):
        pred.predict(pts, rgb * 255)
    with pytest.raises(ValueError, match="NaN"):
        pred.predict(np.r_[pts, [[np.nan, 0, 0]]])
    with pytest.raises(ValueError, match="tile_size"):
        SegmentationPredictor(pred.model, pred.class_names, 0.25, tile_size=-1.0)
