"""The detection trainer: run folder, exact resume after an interruption, learning, bad configurations."""

import csv

import numpy as np
import pytest
import torch

from largekernel3d.training.checkpoint import load_checkpoint
from largekernel3d.training.config import ConfigError
from largekernel3d.training.det_trainer import DetectionTrainer, load_trained_detector


class Interrupt(Exception):
    pass


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory):
    """An uninterrupted 2-epoch run (2 steps per epoch) with mid-epoch checkpoints."""
    from det_tiny import tiny_det_config

    out = tmp_path_factory.mktemp("det_ref")
    cfg = tiny_det_config(out, ["train.checkpoint_every_steps=1"])
    return cfg, DetectionTrainer(cfg).fit()


def test_run_writes_logs_checkpoints_and_the_ap_table(reference_run):
    cfg, result = reference_run
    out = result.output_dir
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert [r["phase"] for r in rows] == ["train", "val", "train", "val"]
    assert [r["metric"] for r in rows if r["phase"] == "val"] == ["mAP", "mAP"]
    last = load_checkpoint(result.last_checkpoint)
    assert last["epoch"] == 2 and last["step"] == 4 and last["config"]["task"] == "det"
    assert last["class_names"] == ["Car", "Truck", "Pedestrian", "Cyclist"]
    assert load_checkpoint(result.best_checkpoint)["best_score"] == pytest.approx(result.best_score)
    table = (out / "val_ap.md").read_text()
    assert "| Car |" in table and "| mean |" in table
    assert result.history[0]["train_loss"] > result.history[1]["train_loss"]


def test_interrupted_run_resumes_to_the_same_weights(reference_run, tmp_path):
    from det_tiny import tiny_det_config

    cfg, ref = reference_run

    def stop_at_3(epoch, step, loss):
        if step == 3:
            raise Interrupt

    broken = tiny_det_config(tmp_path, ["train.checkpoint_every_steps=1"])
    with pytest.raises(Interrupt):
        DetectionTrainer(broken, step_hook=stop_at_3).fit()
    resumed = DetectionTrainer(broken, resume=True).fit()
    a, b = load_checkpoint(ref.last_checkpoint)["model"], load_checkpoint(resumed.last_checkpoint)["model"]
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=f"tensor {k} differs")


def test_trained_detector_reloads_and_predicts_the_same(reference_run):
    from largekernel3d.data.detection.batch import collate_detection
    from largekernel3d.training import det_setup

    cfg, result = reference_run
    model, payload = load_trained_detector(result.last_checkpoint)
    view = det_setup.voxelize(det_setup.build_frame_split(cfg).val, cfg, train=False)
    batch = collate_detection([view[0]])
    again, _ = load_trained_detector(result.last_checkpoint)
    with torch.no_grad():
        first, second = model(batch)[0], again(batch)[0]
    assert torch.equal(first.boxes, second.boxes) and torch.equal(first.scores, second.scores)


def test_a_segmentation_checkpoint_is_refused(tmp_path):
    from seg_tiny import tiny_run_config

    from largekernel3d.training import SegmentationTrainer

    seg = SegmentationTrainer(tiny_run_config(tmp_path, ["train.epochs=1"])).fit()
    with pytest.raises(ValueError, match="not a detector"):
        load_trained_detector(seg.last_checkpoint)


@pytest.mark.parametrize(
    "override, message",
    [
        ("model.class_names=[Car]", "set by the data section"),
        ("model.max_voxels=100", "max_voxels_train"),
        ("data.point_cloud_range=[0,0,0]", "list of 6 numbers"),
        ("data.point_features=[intensity]", "must start with x, y, z"),
        ("data.dataset=kitti", "data.root"),
        ("data.gt_sampling=true", "gt_database"),
        ("task=seg", "detection configuration"),
        ("eval.metric=coco", "choose one of"),
    ],
)
def test_bad_configurations_name_the_key(tmp_path, override, message):
    from det_tiny import tiny_det_config

    with pytest.raises(ConfigError, match=message):
        tiny_det_config(tmp_path, [override])


def test_the_grid_must_fit_the_backbone(tmp_path):
    from det_tiny import tiny_det_config

    from largekernel3d.training import det_setup

    cfg = tiny_det_config(tmp_path, ["data.voxel_size=[0.2,0.2,0.4]"])  # 10 z layers: too few
    with pytest.raises(ValueError, match="too small for this backbone"):
        det_setup.build_network(cfg, ["Car", "Truck", "Pedestrian", "Cyclist"])


def test_frame_split_explicit_and_temporal(tmp_path):
    from det_tiny import tiny_det_config

    from largekernel3d.training import det_setup
    from largekernel3d.training.det_setup import FrameSubset, _split

    cfg = tiny_det_config(tmp_path, ["data.num_train_frames=12"])
    frames = det_setup.build_frame_split(cfg).train
    train, val = _split(frames, dict(cfg["data"], val_fraction=0.25))
    assert [len(train), len(val)] == [7, 3]  # 12 frames: 7 train, gap 2, last 3 held out
    assert val.frame_names == frames.frame_names[-3:] and train.frame_names == frames.frame_names[:7]
    names = frames.frame_names
    train, val = _split(frames, dict(cfg["data"], val_frames=[names[0], names[5]]))
    assert val.frame_names == [names[0], names[5]] and len(train) == 10 and names[5] not in train.frame_names
    with pytest.raises(ConfigError, match="names frames not in"):
        _split(frames, dict(cfg["data"], val_frames=["nope"]))
    sub = FrameSubset(frames, [3, 1])
    assert sub[0].name == names[3] and np.array_equal(sub[1].points, frames[1].points)


def test_the_default_configuration_builds_a_detector(tmp_path):
    from largekernel3d.training import det_setup
    from largekernel3d.training.config import build_config
    from largekernel3d.training.det_config import DET_SCHEMA

    cfg = build_config({"output_dir": str(tmp_path)}, schema=DET_SCHEMA)
    with torch.device("meta"):
        model = det_setup.build_network(cfg, ["Car", "Truck", "Pedestrian", "Cyclist"])
    assert model.class_names == ("Car", "Truck", "Pedestrian", "Cyclist")
