"""CenterPoint end to end on crops of real KITTI frames: training loss and gradients, inference, a few
optimisation steps, the named builds, the config checks and the edge cases (empty frames, no boxes)."""

import math

import numpy as np
import pytest
import torch

from helpers import SHARED_DATA
from largekernel3d.data.detection.batch import DetectionBatch, collate_detection
from largekernel3d.data.detection.frame import LidarFrame
from largekernel3d.models.detection.backbone3d import LargeKernel3DBackbone, VoxelBackBone8x, VoxelResBackBone8x
from largekernel3d.models.detection.bev import BEVNeck, HeightCompression
from largekernel3d.models.detection.center_decode import Detections
from largekernel3d.models.detection.center_head import CenterHead
from largekernel3d.models.detection.centerpoint import (
    DETECTOR_NAMES,
    CenterPoint,
    build_detector,
    kitti_detector_config,
    nuscenes_detector_config,
)
from largekernel3d.models.detection.vfe import MeanVFE
from largekernel3d.sparse.point_to_voxel import VoxelGrid

SMALL_NECK = {
    "layer_nums": [1],
    "layer_strides": [1],
    "num_filters": [32],
    "upsample_strides": [1],
    "num_upsample_filters": [32],
}


def small_config(name="centerpoint_voxel", x_range=(8.0, 20.8), half_width=6.4):
    """KITTI's detector settings on a crop ``x_range x [-w, w]`` (by default 12.8 m around the car of 000003)
    with 0.2 m voxels and a slim neck and head."""
    config = kitti_detector_config(name)
    config.update(
        point_cloud_range=[x_range[0], -half_width, -3.0, x_range[1], half_width, 1.0],
        voxel_size=[0.2, 0.2, 0.1],
        neck=SMALL_NECK,
        max_voxels=20_000,
    )
    config["head"].update(shared_channels=16, head_channels=16)
    return config


@pytest.fixture(scope="module")
def kitti_frames():
    """KITTI 000003 (a car 13.5 m ahead) and 000002 (its car lies 34.7 m ahead: outside the crops)."""
    if not (SHARED_DATA / "kitti" / "training").is_dir():
        pytest.skip("../shared/data/kitti is not present")
    from largekernel3d.data.detection.kitti import KittiDetection

    dataset = KittiDetection(SHARED_DATA / "kitti", frame_ids=["000003", "000002"])
    return [dataset[0], dataset[1]]


def finite_grads(model):
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    bad = [n for n, p in model.named_parameters() if p.grad is not None and not bool(torch.isfinite(p.grad).all())]
    return missing, bad


def test_training_loss_and_gradients_are_finite(kitti_frames):
    torch.manual_seed(0)
    model = build_detector(small_config("centerpoint_voxelres")).train()
    batch = collate_detection([model.voxelize(f) for f in kitti_frames])
    assert [b.shape[0] for b in batch.gt_boxes] == [1, 0]  # the second frame keeps no box in the crop
    loss, parts = model(batch)
    assert loss.dim() == 0 and math.isfinite(loss.item()) and loss.item() > 0
    assert parts["loss"] == pytest.approx(loss.item()) and {"hm_loss", "loc_loss"} <= set(parts)
    loss.backward()
    missing, bad = finite_grads(model)
    assert not missing and not bad, (missing, bad)


def test_eval_returns_detections_and_predict_points_agrees(kitti_frames):
    torch.manual_seed(1)
    model = build_detector(small_config()).eval()
    batch = collate_detection([model.voxelize(f) for f in kitti_frames])
    dets = model(batch)
    assert len(dets) == 2 and all(isinstance(d, Detections) for d in dets)
    for d in dets:
        assert d.boxes.shape == (len(d), 7) and d.scores.shape == (len(d),) and d.labels.dtype == torch.int64
        assert bool(((d.scores > 0.1) & (d.scores < 1)).all()) and bool((d.labels < 3).all())
    from_points = model.predict_points([torch.from_numpy(f.points) for f in kitti_frames])
    for a, b in zip(dets, from_points):
        assert torch.equal(a.boxes, b.boxes) and torch.equal(a.scores, b.scores) and torch.equal(a.labels, b.labels)
    with pytest.raises(RuntimeError, match="model.eval"):
        model.train().predict_points([torch.from_numpy(kitti_frames[0].points)])


def test_a_few_steps_on_one_frame_reduce_the_loss(kitti_frames):
    torch.manual_seed(0)
    model = build_detector(small_config()).train()
    batch = collate_detection([model.voxelize(kitti_frames[0])])
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(10):
        loss, _ = model(batch)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert np.mean(losses[-3:]) < 0.5 * losses[0], losses


def test_largekernel3d_detector_trains_on_a_crop(kitti_frames):
    torch.manual_seed(2)
    model = build_detector(small_config("centerpoint_largekernel3d")).train()
    assert isinstance(model.backbone_3d, LargeKernel3DBackbone)
    assert model.backbone_3d.kernel_sizes == (7, 5, 5, 3)  # KITTI takes the OpenPCDet port's preset
    batch = collate_detection([model.voxelize(kitti_frames[0])])
    assert batch.gt_boxes[0].shape[0] == 1
    loss, _ = model(batch)
    loss.backward()
    missing, bad = finite_grads(model)
    assert math.isfinite(loss.item()) and not missing and not bad, (missing, bad)


def empty_frame(name="empty", boxes=np.zeros((0, 7))):
    points = np.array([[-5.0, 0.0, 0.0, 0.5], [100.0, 0.0, 0.0, 0.5]], dtype=np.float32)  # both out of range
    return LidarFrame(
        name=name,
        points=points,
        point_features=("x", "y", "z", "intensity"),
        boxes=boxes,
        labels=np.zeros(len(boxes), dtype=np.int64),
    )


def test_frames_without_points_in_range(kitti_frames):
    torch.manual_seed(3)
    model = build_detector(small_config()).train()
    box = np.array([[10.0, 1.0, -1.0, 4.0, 1.8, 1.5, 0.3]], dtype=np.float32)
    only_empty = collate_detection([model.voxelize(empty_frame(boxes=box)), model.voxelize(empty_frame())])
    assert only_empty.voxels.shape[0] == 0
    loss, _ = model(only_empty)  # no voxel at all: the BEV map is zero, the loss still defined
    loss.backward()
    assert math.isfinite(loss.item())
    mixed = collate_detection([model.voxelize(empty_frame()), model.voxelize(kitti_frames[0])])
    loss, _ = model(mixed)
    assert math.isfinite(loss.item())
    model.eval()
    dets = model(only_empty)
    assert len(dets) == 2 and all(isinstance(d, Detections) for d in dets)
    # both frames are an all-zero BEV map: the same detections, and the same again for no points at all
    assert torch.equal(dets[0].boxes, dets[1].boxes) and torch.equal(dets[0].scores, dets[1].scores)
    from_points = model.predict_points([torch.zeros((0, 4)), torch.from_numpy(kitti_frames[0].points)])
    assert len(from_points) == 2
    assert torch.equal(from_points[0].boxes, dets[0].boxes) and torch.equal(from_points[0].scores, dets[0].scores)


def test_every_name_builds_with_the_official_settings():
    expected_backbone = {
        "centerpoint_voxel": VoxelBackBone8x,
        "centerpoint_voxelres": VoxelResBackBone8x,
        "centerpoint_largekernel3d": LargeKernel3DBackbone,
    }
    for name in DETECTOR_NAMES:
        nus = build_detector(nuscenes_detector_config(name))
        assert type(nus.backbone_3d) is expected_backbone[name]
        assert isinstance(nus.vfe, MeanVFE) and isinstance(nus.map_to_bev_module, HeightCompression)
        assert isinstance(nus.backbone_2d, BEVNeck) and isinstance(nus.dense_head, CenterHead)
        assert nus.grid.sparse_shape == [41, 1440, 1440] and nus.point_features[-1] == "time_lag"
        assert nus.map_to_bev_module.num_bev_features == 256 and nus.backbone_2d.out_channels == 512
        assert nus.dense_head.out_stride == 8 and nus.dense_head.bev_shape == (180, 180)
        assert len(nus.dense_head.tasks) == 6 and nus.dense_head.with_velocity
        assert nus.max_voxels == {"train": 120_000, "test": 160_000} and nus.max_points_per_voxel == 10
        keys = set(nus.state_dict())
        for key in (
            "global_step",
            "backbone_3d.conv_input.0.weight",
            "backbone_2d.blocks.0.1.weight",
            "backbone_2d.blocks.1.16.weight",
            "backbone_2d.deblocks.1.0.weight",
            "dense_head.shared_conv.0.weight",
            "dense_head.heads_list.5.vel.1.weight",
        ):
            assert key in keys, key
        assert {k.split(".")[0] for k in keys} == {"global_step", "backbone_3d", "backbone_2d", "dense_head"}
        kitti = build_detector(kitti_detector_config(name))
        assert kitti.grid.sparse_shape == [41, 1600, 1408] and kitti.dense_head.out_stride == 4
        assert kitti.dense_head.bev_shape == (400, 352) and kitti.backbone_2d.out_channels == 256
        assert kitti.dense_head.class_names == ("Car", "Pedestrian", "Cyclist") and not kitti.dense_head.with_velocity
        assert kitti.config["name"] == name


def test_config_errors_name_the_key():
    base = small_config()
    with pytest.raises(ValueError, match=r"unknown detector config key\(s\) \['voxels'\]"):
        build_detector({**base, "voxels": 3})
    with pytest.raises(ValueError, match=r"'neck.strides'"):
        build_detector({**base, "neck": {**SMALL_NECK, "strides": [1]}})
    with pytest.raises(ValueError, match=r"'head.loss.cls_weight'"):
        build_detector({**base, "head": {"loss": {"cls_weight": 1.0}}})
    with pytest.raises(ValueError, match=r"\['backbone_preset'\] for 'centerpoint_voxel'"):
        build_detector({**base, "backbone_preset": "nuscenes"})
    with pytest.raises(ValueError, match="'name' must be one of"):
        build_detector({**base, "name": "centerpoint"})
    without_range = {k: v for k, v in base.items() if k != "point_cloud_range"}
    with pytest.raises(ValueError, match=r"lacks the key\(s\) \['point_cloud_range'\]"):
        build_detector(without_range)
    with pytest.raises(ValueError, match="in_channels=5 disagrees"):
        build_detector({**base, "in_channels": 5})
    with pytest.raises(ValueError, match="'backbone_preset' must be one of"):
        build_detector({**small_config("centerpoint_largekernel3d"), "backbone_preset": "huge"})
    with pytest.raises(ValueError, match=r"'backbone.kernel'"):
        build_detector({**small_config("centerpoint_largekernel3d"), "backbone": {"kernel": 3}})
    with pytest.raises(ValueError, match="max_voxels as a mapping"):
        build_detector({**base, "max_voxels": {"training": 5}})
    with pytest.raises(TypeError, match="expects a mapping"):
        build_detector([("name", "centerpoint_voxel")])
    assert build_detector({**base, "point_features": None, "in_channels": 4}).point_features == (
        "x",
        "y",
        "z",
        "intensity",
    )


def test_parts_that_do_not_fit_are_named():
    model = build_detector(small_config())
    with pytest.raises(ValueError, match=r"build BEVNeck\(256"):
        CenterPoint(model.grid, model.point_features, model.backbone_3d, BEVNeck(128, **SMALL_NECK), model.dense_head)
    with pytest.raises(ValueError, match="point_features has 5"):
        CenterPoint(
            model.grid, ("x", "y", "z", "intensity", "time_lag"), model.backbone_3d, model.backbone_2d, model.dense_head
        )
    shifted = VoxelGrid([8.2, -6.4, -3.0, 21.0, 6.4, 1.0], [0.2, 0.2, 0.1])
    head = CenterHead(32, model.class_names, [model.class_names], shifted)
    with pytest.raises(ValueError, match="the head expects"):
        CenterPoint(model.grid, model.point_features, model.backbone_3d, model.backbone_2d, head)
    with pytest.raises(ValueError, match="multiples of 8"):  # 60 cells along y: the backbone gives 8, the head 7
        build_detector({**small_config(), "point_cloud_range": [8.0, -6.0, -3.0, 20.8, 6.0, 1.0]})


def test_bad_batches_are_named(kitti_frames):
    model = build_detector(small_config()).train()
    sample = model.voxelize(kitti_frames[0])
    batch = collate_detection([sample])
    wrong = DetectionBatch(
        voxels=batch.voxels[..., :3],
        num_points=batch.num_points,
        coords=batch.coords,
        gt_boxes=batch.gt_boxes,
        gt_labels=batch.gt_labels,
        batch_size=1,
        names=batch.names,
        point_features=("x", "y", "z"),
    )
    with pytest.raises(ValueError, match="model.voxelize"):
        model(wrong)
    with pytest.raises(TypeError, match="DetectionBatch"):
        model(sample)
    with pytest.raises(ValueError, match=r"points_list\[0\] must be \[N, 4\]"):
        model.eval().predict_points([torch.zeros(5, 3)])
