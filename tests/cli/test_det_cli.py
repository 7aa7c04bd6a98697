"""``lk3d train det`` / ``eval det`` / ``predict det`` / ``data gt-database`` / ``demo --task det`` on a tiny
generated configuration, and the shipped detection configs."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from largekernel3d.cli.main import main
from largekernel3d.cli.run_configs import load_run_config, shipped_configs

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "training"))
from det_tiny import TINY_DET  # noqa: E402


@pytest.fixture(scope="module")
def det_yaml(tmp_path_factory):
    folder = tmp_path_factory.mktemp("det_cli")
    path = folder / "tiny_det.yaml"
    path.write_text(
        yaml.safe_dump(dict(TINY_DET, output_dir=str(folder / "run"), train=dict(TINY_DET["train"], epochs=1)))
    )
    return path


@pytest.fixture(scope="module")
def trained(det_yaml):
    assert main(["train", "det", "--config", str(det_yaml)]) == 0
    return det_yaml.parent / "run"


def test_train_writes_a_run_folder_and_prints_the_table(trained):
    from largekernel3d.training.checkpoint import load_checkpoint

    payload = load_checkpoint(trained / "checkpoints" / "last.pt")
    assert payload["epoch"] == 1 and payload["step"] > 0 and len(payload["history"]) == 1
    table = (trained / "val_ap.md").read_text()
    assert "| mean |" in table and all(f"| {name} |" in table for name in payload["class_names"])
    assert (trained / "val_ap.csv").read_text().splitlines()[-1].startswith("mean,")


def test_eval_writes_the_per_class_ap_table(trained, tmp_path, capsys):
    assert (
        main(["eval", "det", "--checkpoint", str(trained / "checkpoints" / "last.pt"), "--output", str(tmp_path)]) == 0
    )
    out = capsys.readouterr().out
    assert "| Pedestrian |" in out and "mAP" in out
    assert "| Pedestrian |" in (tmp_path / "val_ap.md").read_text()
    # the same checkpoint on the same validation frames: the training run's final table
    assert (tmp_path / "val_ap.csv").read_text() == (trained / "val_ap.csv").read_text()


def test_predict_writes_boxes_and_views(trained, tmp_path, capsys):
    assert (
        main(
            [
                "predict",
                "det",
                "--checkpoint",
                str(trained / "checkpoints" / "last.pt"),
                "--output",
                str(tmp_path),
                "--limit",
                "1",
                "--score-threshold",
                "0.0",
            ]
        )
        == 0
    )
    jsons = sorted(tmp_path.glob("*.json"))
    assert len(jsons) == 1 and len(list(tmp_path.glob("*.png"))) == 1 and len(list(tmp_path.glob("*.html"))) == 1
    record = json.loads(jsons[0].read_text())
    assert len(record["boxes"]) == len(record["scores"]) == len(record["classes"])
    assert all(len(b) == 7 for b in record["boxes"])
    assert set(record["classes"]) <= set(TINY_DET["model"]["tasks"][0] + TINY_DET["model"]["tasks"][1])
    assert "wrote 1 frame(s)" in capsys.readouterr().out


def test_gt_database_command_and_sampling_run(det_yaml, tmp_path):
    db = tmp_path / "db"
    assert main(["data", "gt-database", "--config", str(det_yaml), "--output", str(db), "--min-points", "3"]) == 0
    index = json.loads((db / "gt_database.json").read_text())
    assert index["objects"] and all(o["num_points"] >= 3 for o in index["objects"])
    for o in index["objects"][:5]:
        assert np.load(db / o["file"]).shape == (o["num_points"], len(index["point_features"]))
    run = tmp_path / "sampled"
    assert (
        main(
            [
                "train",
                "det",
                "--config",
                str(det_yaml),
                "--output",
                str(run),
                "--set",
                "train.epochs=1",
                "data.gt_sampling=true",
                f"data.gt_database={db}",
                "data.gt_sample_groups={Car: 6}",
                "data.num_val_frames=0",
            ]
        )
        == 0
    )
    from largekernel3d.training.checkpoint import load_checkpoint

    payload = load_checkpoint(run / "checkpoints" / "last.pt")
    assert payload["epoch"] == 1 and payload["config"]["data"]["gt_sampling"] is True
    assert payload["config"]["data"]["gt_database"] == str(db)


def test_a_seg_checkpoint_is_refused_by_eval_det(tmp_path, capsys):
    from seg_tiny import tiny_run_config

    from largekernel3d.training import SegmentationTrainer

    result = SegmentationTrainer(tiny_run_config(tmp_path, ["train.epochs=1"])).fit()
    assert main(["eval", "det", "--checkpoint", str(result.last_checkpoint)]) == 2
    assert "error" in capsys.readouterr().err


def test_unknown_detection_key_and_missing_root_are_named(det_yaml, capsys):
    assert main(["train", "det", "--config", str(det_yaml), "--set", "data.voxel_sise=[1,1,1]"]) == 2
    assert "data.voxel_sise" in capsys.readouterr().err
    assert (
        main(["train", "det", "--config", str(det_yaml), "--set", "data.dataset=kitti", "data.root=/nonexistent/kitti"])
        == 2
    )
    assert "/nonexistent/kitti" in capsys.readouterr().err


def test_demo_det_runs_and_reports_the_baseline(det_yaml, tmp_path, capsys):
    assert (
        main(["demo", "--task", "det", "--det-config", str(det_yaml), "--det-output", str(tmp_path), "--pictures", "1"])
        == 0
    )
    out = capsys.readouterr().out
    assert "AP, chance-level boxes" in out and "**mAP**" in out
    assert (tmp_path / "results.md").exists() and len(list((tmp_path / "predictions").glob("*.html"))) == 1


@pytest.mark.parametrize("name", shipped_configs("det"))
def test_every_shipped_detection_config_builds_its_detector(name):
    import torch

    from largekernel3d.cli.models import _default_classes
    from largekernel3d.models.detection import build_detector
    from largekernel3d.training.det_setup import detector_config

    cfg = load_run_config(name, task="det")
    classes = cfg["data"]["class_names"] or _default_classes(cfg)
    with torch.device("meta"):
        model = build_detector(detector_config(cfg, classes))
    assert model.class_names == tuple(classes)


def test_list_configs_names_the_detection_configs(capsys):
    assert main(["train", "det", "--list-configs"]) == 0
    names = capsys.readouterr().out.split()
    assert {"demo_det", "pandaset_centerpoint_largekernel3d", "pandaset_centerpoint_voxelres"} <= set(names)
