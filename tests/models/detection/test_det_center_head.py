"""The CenterPoint head: shapes, OpenPCDet's state_dict keys, nuScenes' six tasks, the loss's weighting,
empty frames, bad inputs and a tiny overfit run."""

from __future__ import annotations

import math

import pytest
import torch

from largekernel3d.models.detection.center_decode import CenterDecodeConfig
from largekernel3d.models.detection.center_head import CenterHead, rot_channels_from_openpcdet
from largekernel3d.models.detection.center_losses import CenterLossConfig
from largekernel3d.sparse.point_to_voxel import VoxelGrid

# small tensors: one thread avoids contention on a shared machine
pytestmark = pytest.mark.usefixtures("one_thread")

NUSCENES_CLASSES = [
    "car",
    "truck",
    "construction_vehicle",
    "bus",
    "trailer",
    "barrier",
    "motorcycle",
    "bicycle",
    "pedestrian",
    "traffic_cone",
]
NUSCENES_TASKS = [
    ["car"],
    ["truck", "construction_vehicle"],
    ["bus", "trailer"],
    ["barrier"],
    ["motorcycle", "bicycle"],
    ["pedestrian", "traffic_cone"],
]

# 32 m (x) x 25.6 m (y) at 0.2 m voxels, stride 4 -> 0.8 m cells, H x W = 32 x 40
GRID = VoxelGrid((-16.0, -12.8, -3.0, 16.0, 12.8, 1.0), (0.2, 0.2, 0.2))
STRIDE = 4
H, W = 32, 40


def _head(**kw):
    args = dict(
        in_channels=16,
        class_names=NUSCENES_CLASSES,
        tasks=NUSCENES_TASKS,
        grid=GRID,
        out_stride=STRIDE,
        shared_channels=8,
        head_channels=8,
    )
    args.update(kw)
    return CenterHead(**args)


def _expected_keys(n_tasks, names, use_bias=True, num_convs=2):
    bn = ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]
    keys = ["shared_conv.0.weight"] + (["shared_conv.0.bias"] if use_bias else [])
    keys += [f"shared_conv.1.{k}" for k in bn]
    for t in range(n_tasks):
        for name in names:
            for i in range(num_convs - 1):
                keys.append(f"heads_list.{t}.{name}.{i}.0.weight")
                if use_bias:
                    keys.append(f"heads_list.{t}.{name}.{i}.0.bias")
                keys += [f"heads_list.{t}.{name}.{i}.1.{k}" for k in bn]
            keys += [f"heads_list.{t}.{name}.{num_convs - 1}.weight", f"heads_list.{t}.{name}.{num_convs - 1}.bias"]
    return keys


def test_forward_shapes_nuscenes_six_tasks_with_velocity():
    head = _head(with_velocity=True)
    x = torch.randn(2, 16, H, W, generator=torch.Generator().manual_seed(0))
    preds = head(x)
    assert len(preds) == 6
    for pred, task in zip(preds, NUSCENES_TASKS):
        assert set(pred) == {"hm", "center", "center_z", "dim", "rot", "vel"}
        assert pred["hm"].shape == (2, len(task), H, W)
        for name, ch in (("center", 2), ("center_z", 1), ("dim", 3), ("rot", 2), ("vel", 2)):
            assert pred[name].shape == (2, ch, H, W)
    assert head.task_class_ids == ((0,), (1, 2), (3, 4), (5,), (6, 7), (8, 9))
    no_vel = _head()(x)
    assert "vel" not in no_vel[0]


def test_state_dict_keys_follow_openpcdet():
    names = ["center", "center_z", "dim", "rot", "vel", "hm"]
    head = _head(with_velocity=True)
    assert list(head.state_dict().keys()) == _expected_keys(6, names)
    head3 = _head(use_bias_before_norm=False, num_head_convs=3, tasks=[NUSCENES_CLASSES])
    assert list(head3.state_dict().keys()) == _expected_keys(1, names[:4] + ["hm"], use_bias=False, num_convs=3)
    # a dict keyed and shaped as OpenPCDet's (shared 8, head dims as configured) loads strictly
    g = torch.Generator().manual_seed(1)
    foreign = {
        k: torch.randn(v.shape, generator=g) if v.is_floating_point() else v.clone()
        for k, v in head.state_dict().items()
    }
    fresh = _head(with_velocity=True)
    fresh.load_state_dict(foreign, strict=True)
    torch.testing.assert_close(fresh.heads_list[2].hm[1].weight, foreign["heads_list.2.hm.1.weight"])
    assert fresh.heads_list[2].hm[1].weight.shape == (2, 8, 3, 3)


def test_initialisation():
    head = _head()
    for branch in head.heads_list:
        torch.testing.assert_close(branch.hm[-1].bias, torch.full_like(branch.hm[-1].bias, -2.19))
        assert float(branch.center[-1].bias.detach().abs().sum()) == 0.0


def test_rot_channels_from_openpcdet_swaps_cos_sin():
    torch.manual_seed(2)
    ours = _head().eval()
    x = torch.randn(1, 16, H, W)
    # an OpenPCDet checkpoint of the same network orders rot as (cos, sin)
    openpcdet = {k: v.clone() for k, v in ours.state_dict().items()}
    for t in range(6):
        for suffix in ("weight", "bias"):
            openpcdet[f"heads_list.{t}.rot.1.{suffix}"] = openpcdet[f"heads_list.{t}.rot.1.{suffix}"].flip(0)
    loaded = _head().eval()
    loaded.load_state_dict(rot_channels_from_openpcdet(openpcdet))
    raw = _head().eval()
    raw.load_state_dict(openpcdet)
    with torch.no_grad():
        a, b, c = ours(x), loaded(x), raw(x)
    for t in range(6):
        torch.testing.assert_close(b[t]["rot"], a[t]["rot"])
        torch.testing.assert_close(c[t]["rot"], a[t]["rot"].flip(1))
        torch.testing.assert_close(b[t]["dim"], a[t]["dim"])
    with pytest.raises(ValueError, match="prefix"):
        rot_channels_from_openpcdet({"dense_head." + k: v for k, v in openpcdet.items()})


def _cell_box(ix, iy, dims=(4.0, 1.8, 1.6), yaw=0.4, vel=None):
    x = GRID.point_cloud_range[0] + (ix + 0.3) * 0.8
    y = GRID.point_cloud_range[1] + (iy + 0.6) * 0.8
    box = [x, y, -0.5, *dims, yaw] + (list(vel) if vel is not None else [])
    return box


def _scene(velocity=True):
    """One box per nuScenes class (labels 0..9) at separated cells, and an empty second frame."""
    boxes, labels = [], []
    for k in range(10):
        ix, iy = 3 + 7 * (k % 5), 4 + 12 * (k // 5)
        boxes.append(
            _cell_box(
                ix,
                iy,
                dims=(1.0 + 0.2 * k, 0.8 + 0.1 * k, 1.5),
                yaw=-1.0 + 0.3 * k,
                vel=(0.5 * k, -0.2 * k) if velocity else None,
            )
        )
        labels.append(k)
    return (
        [torch.tensor(boxes), torch.zeros(0, 9 if velocity else 7)],
        [torch.tensor(labels), torch.zeros(0, dtype=torch.int64)],
    )


def _perfect(head, gt_boxes, gt_labels):
    """Predictions equal to the targets: logits +/-8 where the heatmap target is 1 / below 1, regression maps
    holding the targets at the object cells."""
    targets = head.build_targets(gt_boxes, gt_labels)
    preds = []
    for t, tt in enumerate(targets):
        b = tt.heatmap.shape[0]
        hm = torch.where(tt.heatmap == 1.0, torch.tensor(8.0), torch.tensor(-8.0))
        regs = torch.randn(b, head.code_size, H * W, generator=torch.Generator().manual_seed(t))
        for i in range(b):
            n = int(tt.mask[i].sum())
            regs[i, :, tt.indices[i, :n]] = tt.boxes[i, :n].T
        regs = regs.view(b, head.code_size, H, W)
        pred = {"hm": hm, "center": regs[:, 0:2], "center_z": regs[:, 2:3], "dim": regs[:, 3:6], "rot": regs[:, 6:8]}
        if head.with_velocity:
            pred["vel"] = regs[:, 8:10]
        preds.append(pred)
    return preds, targets


def test_multitask_targets_and_decoding_map_classes_back():
    # class_names in an order unlike the tasks', so channel ids and global ids differ
    names = list(reversed(NUSCENES_CLASSES))
    head = _head(
        class_names=names,
        with_velocity=True,
        decode_config=CenterDecodeConfig(nms_type="circle", circle_min_distances=(2.0, 3.4, 3.1, 1.0, 0.9, 0.4)),
    )
    gt_boxes, labels_nusc = _scene()
    gt_labels = [
        torch.tensor([names.index(NUSCENES_CLASSES[int(k)]) for k in lab], dtype=torch.int64) for lab in labels_nusc
    ]
    preds, targets = _perfect(head, gt_boxes, gt_labels)
    for t, task in enumerate(NUSCENES_TASKS):
        assert int(targets[t].mask[0].sum()) == len(task) and not bool(targets[t].mask[1].any())
        for c, name in enumerate(task):
            k = NUSCENES_CLASSES.index(name)
            ix, iy = 3 + 7 * (k % 5), 4 + 12 * (k // 5)
            assert float(targets[t].heatmap[0, c, iy, ix]) == 1.0
    dets = head.predict(preds)
    assert len(dets) == 2 and len(dets[1]) == 0
    det = dets[0]
    order = torch.argsort(det.labels)
    want_order = torch.argsort(gt_labels[0])
    assert det.labels[order].tolist() == gt_labels[0][want_order].tolist()
    torch.testing.assert_close(det.boxes[order], gt_boxes[0][want_order], atol=1e-4, rtol=0)


def test_loss_is_zero_on_perfect_regressions_and_weights_each_channel():
    head = _head(with_velocity=True)
    gt_boxes, gt_labels = _scene()
    preds, targets = _perfect(head, gt_boxes, gt_labels)
    _, parts = head.loss(preds, gt_boxes, gt_labels)
    assert parts["loc_loss"] == pytest.approx(0.0, abs=1e-6)
    weights = (1, 1, 1, 1, 1, 1, 0.2, 0.2, 1, 1)
    for ch, name, off in ((0, "center", 0), (4, "dim", 1), (7, "rot", 1), (8, "vel", 0)):
        delta = 0.37
        shifted = [dict(p) for p in preds]
        for t, tt in enumerate(targets):
            m = shifted[t][name].clone()
            for i in range(2):
                for idx in tt.indices[i][tt.mask[i]].tolist():
                    m[i, off, idx // W, idx % W] += delta
            shifted[t][name] = m
        _, parts = head.loss(shifted, gt_boxes, gt_labels)
        for t in range(6):  # mean over the task's objects of |delta| w_c, times loc_weight 0.25
            assert parts[f"loc_loss_task_{t}"] == pytest.approx(0.25 * weights[ch] * delta, rel=1e-5), (name, t)
    custom = _head(
        with_velocity=True, loss_config=CenterLossConfig(code_weights=(2.0,) * 10, loc_weight=1.0, hm_weight=0.5)
    )
    total, parts = custom.loss(preds, gt_boxes, gt_labels)
    assert parts["loc_loss"] == pytest.approx(0.0, abs=1e-6)
    assert float(total) == pytest.approx(parts["hm_loss"], rel=1e-6)
    assert parts["hm_loss"] == pytest.approx(0.5 * head.loss(preds, gt_boxes, gt_labels)[1]["hm_loss"], rel=1e-6)


def test_empty_frames_give_zero_loc_loss_and_a_gradient():
    head = _head()
    x = torch.randn(2, 16, H, W, generator=torch.Generator().manual_seed(3))
    preds = head(x)
    empty = [torch.zeros(0, 7), torch.zeros(0, 7)]
    labels = [torch.zeros(0, dtype=torch.int64)] * 2
    total, parts = head.loss(preds, empty, labels)
    assert parts["loc_loss"] == 0.0 and math.isfinite(parts["hm_loss"]) and parts["hm_loss"] > 0
    # no positives: the focal loss is the sum of the negative terms (normaliser 1)
    p = torch.sigmoid(preds[0]["hm"].detach()).clamp(1e-4, 1 - 1e-4)
    assert parts["hm_loss_task_0"] == pytest.approx(float(-(torch.log(1 - p) * p**2).sum()), rel=1e-5)
    total.backward()
    assert head.shared_conv[0].weight.grad.abs().sum() > 0  # the negatives alone train the shared conv


def test_boxes_outside_the_map_are_skipped():
    head = _head()
    inside = _cell_box(5, 5)
    outside = list(inside)
    outside[0] = GRID.point_cloud_range[3] + 1.0
    targets = head.build_targets([torch.tensor([outside, inside])], [torch.tensor([0, 0])])
    assert int(targets[0].mask.sum()) == 1 and int(targets[0].indices[0, 0]) == 5 * W + 5


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="not in class_names"):
        _head(tasks=[["car", "truck"], ["bus", "lorry"]])
    with pytest.raises(ValueError, match="in no task"):
        _head(tasks=NUSCENES_TASKS[:-1])
    with pytest.raises(ValueError, match="exactly one task"):
        _head(tasks=NUSCENES_TASKS + [["car"]])
    with pytest.raises(TypeError, match="VoxelGrid"):
        _head(grid=(0, 0, 0, 1, 1, 1))
    with pytest.raises(ValueError, match="one per task"):
        _head(decode_config=CenterDecodeConfig(nms_type="circle", circle_min_distances=(1.0,)))
    with pytest.raises(ValueError, match="velocity"):
        _head(loss_config=CenterLossConfig(code_weights=(1.0,) * 10))
    head = _head()
    with pytest.raises(ValueError, match="in_channels=16"):
        head(torch.randn(1, 12, H, W))
    with pytest.raises(ValueError, match="bev_shape"):
        head(torch.randn(1, 16, H // 2, W // 2))
    preds = head(torch.randn(1, 16, H, W))
    box = torch.tensor([_cell_box(4, 4)])
    with pytest.raises(ValueError, match="outside"):
        head.loss(preds, [box], [torch.tensor([10])])
    with pytest.raises(ValueError, match="int64"):
        head.loss(preds, [box], [torch.tensor([0], dtype=torch.int32)])
    bad = box.clone()
    bad[0, 6] = float("nan")
    with pytest.raises(ValueError, match="non-finite"):
        head.loss(preds, [bad], [torch.tensor([0])])
    bad = box.clone()
    bad[0, 5] = 0.0
    with pytest.raises(ValueError, match="sizes"):
        head.loss(preds, [bad], [torch.tensor([0])])
    with pytest.raises(ValueError, match="one entry per sample"):
        head.loss(preds, [box, box], [torch.tensor([0]), torch.tensor([0])])
    with pytest.raises(ValueError, match=r"\[M, 9\]"):
        _head(with_velocity=True).loss(_head(with_velocity=True)(torch.randn(1, 16, H, W)), [box], [torch.tensor([0])])
    with pytest.raises(ValueError, match="lacks"):
        head.predict([{"hm": p["hm"]} for p in preds])


def test_tiny_overfit_drops_the_loss():
    torch.manual_seed(4)
    head = CenterHead(
        8,
        ["car", "pedestrian"],
        [["car"], ["pedestrian"]],
        GRID,
        out_stride=STRIDE,
        shared_channels=16,
        head_channels=16,
        with_velocity=True,
    )
    x = torch.randn(1, 8, H, W)
    boxes = torch.tensor(
        [
            _cell_box(6, 7, vel=(1.0, 0.5)),
            _cell_box(25, 20, vel=(-2.0, 0.0)),
            _cell_box(30, 9, dims=(0.7, 0.6, 1.7), vel=(0.3, 0.3)),
        ]
    )
    labels = torch.tensor([0, 0, 1])
    opt = torch.optim.Adam(head.parameters(), lr=3e-3)
    losses = []
    for _ in range(40):
        opt.zero_grad()
        total, _ = head.loss(head(x), [boxes], [labels])
        total.backward()
        opt.step()
        losses.append(float(total.detach()))
    assert losses[-1] < 0.2 * losses[0], losses[::8]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_loss_and_predict_match_cpu():
    torch.manual_seed(5)
    head = _head(with_velocity=True).eval()
    x = torch.randn(2, 16, H, W)
    gt_boxes, gt_labels = _scene()
    with torch.no_grad():
        cpu_preds = head(x)
        cpu_loss, _ = head.loss(cpu_preds, gt_boxes, gt_labels)
        cpu_dets = head.predict(cpu_preds)
        head.cuda()
        gpu_preds = head(x.cuda())
        gpu_loss, _ = head.loss(gpu_preds, [b.cuda() for b in gt_boxes], [lab.cuda() for lab in gt_labels])
        gpu_dets = head.predict(gpu_preds)
    assert gpu_loss.device.type == "cuda"
    assert float(gpu_loss) == pytest.approx(float(cpu_loss), rel=1e-4)
    for c, g in zip(cpu_dets, gpu_dets):
        assert g.boxes.device.type == "cuda" and len(c) == len(g)
        torch.testing.assert_close(g.boxes.cpu(), c.boxes, atol=1e-3, rtol=1e-4)
