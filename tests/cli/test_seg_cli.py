"""``lk3d train seg`` / ``eval seg`` / ``predict seg``: end to end on a tiny config, and the errors a user
meets (unknown key, corrupt checkpoint, missing data folder, unknown config name)."""

import csv
import math

import pytest
import torch
import yaml
from plyfile import PlyData

from largekernel3d.cli.main import main
from largekernel3d.cli.run_configs import load_run_config, shipped_configs
from largekernel3d.data import collate_segmentation, generate_indoor_scene, voxelize_scene


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One tiny training run through the CLI; returns its folder."""
    from cli_tiny import TINY

    folder = tmp_path_factory.mktemp("cli")
    cfg = folder / "tiny.yaml"
    cfg.write_text(yaml.safe_dump(dict(TINY, output_dir=str(folder / "run"))))
    assert main(["train", "seg", "--config", str(cfg), "--set", "train.epochs=1"]) == 0
    return folder / "run"


def test_train_writes_a_run_folder(trained, capsys):
    """One epoch of 2 scenes at batch 2: the last and best checkpoints hold epoch 1, step 1; metrics.csv
    has one train row with a finite loss and one val row whose point mIoU is the best score."""
    from largekernel3d.training.checkpoint import load_checkpoint

    last = load_checkpoint(trained / "checkpoints" / "last.pt")
    best = load_checkpoint(trained / "checkpoints" / "best.pt")
    assert (last["epoch"], last["step"], best["epoch"], best["best_epoch"]) == (1, 1, 1, 1)
    assert 0.0 <= last["best_miou"] <= 1.0 and best["best_miou"] == last["best_miou"]
    with (trained / "metrics.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["phase"], r["epoch"], r["step"]) for r in rows] == [("train", "1", "1"), ("val", "1", "1")]
    assert math.isfinite(float(rows[0]["loss"]))
    assert float(rows[1]["point_miou"]) == pytest.approx(last["best_miou"], rel=1e-5)
    assert yaml.safe_load((trained / "config.yaml").read_text())["name"] == "tiny_cli"


def test_eval_prints_and_saves_the_per_class_table(trained, capsys, tmp_path):
    assert (
        main(
            [
                "eval",
                "seg",
                "--checkpoint",
                str(trained / "checkpoints" / "last.pt"),
                "--device",
                "cpu",
                "--output",
                str(tmp_path),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "| class | IoU % | support |" in out and "| wall |" in out and "| mIoU |" in out
    assert "majority-class baseline" in out
    assert (tmp_path / "val_per_class.md").read_text().count("| mIoU |") == 2  # points and voxels
    assert (tmp_path / "val_per_class_points.csv").read_text().startswith("class,iou,support")


def test_predict_writes_ply_and_png(trained, tmp_path):
    assert (
        main(
            [
                "predict",
                "seg",
                "--checkpoint",
                str(trained / "checkpoints" / "best.pt"),
                "--device",
                "cpu",
                "--output",
                str(tmp_path),
                "--limit",
                "1",
            ]
        )
        == 0
    )
    plys, pngs = sorted(tmp_path.glob("*.ply")), sorted(tmp_path.glob("*.png"))
    assert len(plys) == 1 and len(pngs) == 1 and plys[0].stem == pngs[0].stem
    v = PlyData.read(str(plys[0]))["vertex"]
    assert v.count == 1500 and set(v.data.dtype.names) >= {"x", "y", "z", "red", "green", "blue", "pred", "label"}
    assert pngs[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_unknown_override_key_is_named(tiny_yaml, capsys):
    assert main(["train", "seg", "--config", str(tiny_yaml), "--set", "train.epohcs=3"]) == 2
    err = capsys.readouterr().err
    assert "unknown config key 'train.epohcs'" in err and "epochs" in err


def test_unknown_model_key_is_named(tiny_yaml, capsys):
    assert main(["train", "seg", "--config", str(tiny_yaml), "--set", "model.kernel_size=5"]) == 2
    assert "kernel_size" in capsys.readouterr().err


def test_missing_data_folder_is_named(tiny_yaml, tmp_path, capsys):
    missing = tmp_path / "no_scannet_here"
    assert (
        main(["train", "seg", "--config", str(tiny_yaml), "--set", "data.dataset=scannet", f"data.root={missing}"]) == 2
    )
    assert str(missing) in capsys.readouterr().err


def test_corrupt_checkpoint_is_named(tmp_path, capsys):
    bad = tmp_path / "broken.pt"
    bad.write_bytes(b"PK\x03\x04 this is not a checkpoint")
    assert main(["eval", "seg", "--checkpoint", str(bad), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "broken.pt" in err and "corrupt" in err


def test_checkpoint_of_another_architecture_is_named(trained, tmp_path, capsys):
    ckpt = trained / "checkpoints" / "last.pt"
    assert (
        main(
            [
                "eval",
                "seg",
                "--checkpoint",
                str(ckpt),
                "--device",
                "cpu",
                "--output",
                str(tmp_path),
                "--set",
                "model.planes=[16,8,8,8,8,8,8,8]",
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert "last.pt" in err and "architecture" in err


def test_unknown_config_name_lists_the_shipped_ones(capsys):
    assert main(["train", "seg", "--config", "no_such_config"]) == 2
    err = capsys.readouterr().err
    assert "no_such_config" in err and "demo" in err


def test_list_and_print_configs(capsys):
    assert main(["train", "seg", "--list-configs"]) == 0
    listed = capsys.readouterr().out.split()
    assert {"demo", "fast", "paper_scannet", "minkunet34c_scannet"} <= set(listed)
    assert main(["train", "seg", "--config", "demo", "--print-config", "--set", "train.epochs=3"]) == 0
    assert yaml.safe_load(capsys.readouterr().out)["train"]["epochs"] == 3


@pytest.mark.parametrize("name", shipped_configs())
def test_every_shipped_config_builds_its_network(name):
    """Each shipped config is valid and its model section builds (at width 8 to stay fast: the paper
    configs' full-size plain 7^3 network alone has hundreds of millions of weights)."""
    from largekernel3d.training.setup import build_network

    cfg = load_run_config(name)
    small = load_run_config(
        name,
        ["model.layers=[1,1,1,1,1,1,1,1]", "model.planes=[8,8,8,8,8,8,8,8]", "model.init_dim=8"]
        if cfg["model"]["name"] == "largekernel3d_seg"
        else [],
    )
    assert {k: v for k, v in small["model"].items() if k not in ("layers", "planes", "init_dim")} == {
        k: v for k, v in cfg["model"].items() if k not in ("layers", "planes", "init_dim")
    }
    net = build_network(small, 20).eval()
    batch = collate_segmentation([voxelize_scene(generate_indoor_scene(0, 0, 2000), 0.1, 20)])
    with torch.no_grad():
        logits = net(batch.to_sparse_tensor()).features
    assert logits.shape == (len(batch.labels), 20) and torch.isfinite(logits).all()
