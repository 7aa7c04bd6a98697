"""The trainer: logs and checkpoints, exact resume after an interruption, learning, bad input."""

import csv

import pytest
import torch

from largekernel3d.training import SegmentationTrainer, load_trained_model
from largekernel3d.training.checkpoint import CheckpointError, load_checkpoint
from largekernel3d.training.config import ConfigError


class Interrupt(Exception):
    pass


def _stop_at(step_to_stop):
    def hook(epoch, step, loss):
        if step == step_to_stop:
            raise Interrupt(f"killed after step {step}")

    return hook


def _weights(path):
    return load_checkpoint(path)["model"]


def _assert_same_weights(a, b):
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=f"tensor {k} differs")


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory):
    """An uninterrupted 2-epoch run (2 steps per epoch) with mid-epoch checkpoints."""
    from seg_tiny import tiny_run_config

    out = tmp_path_factory.mktemp("ref")
    cfg = tiny_run_config(out, ["train.checkpoint_every_steps=1"])
    result = SegmentationTrainer(cfg).fit()
    return cfg, result


def test_run_writes_logs_checkpoints_and_config(reference_run):
    cfg, result = reference_run
    out = result.output_dir
    assert (out / "config.yaml").exists() and (out / "log.txt").exists()
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert [r["phase"] for r in rows] == ["train", "val", "train", "val"]
    val = [r for r in rows if r["phase"] == "val"]
    # the CSV holds the same validation scores as the run's history (written with 6 significant digits)
    for r, h in zip(val, result.history):
        assert float(r["point_miou"]) == pytest.approx(h["val_miou"], rel=1e-5)
        assert float(r["point_miou_present"]) == pytest.approx(h["val_miou_present"], rel=1e-5)
        assert float(r["miou"]) == pytest.approx(h["val_voxel_miou"], rel=1e-5)
        # mean over the non-empty union <= mean over the classes in the ground truth (the extra classes are 0s)
        assert 0 < float(r["point_miou"]) <= float(r["point_miou_present"]) <= 1
    assert result.best_miou == pytest.approx(max(h["val_miou"] for h in result.history))
    log = (out / "log.txt").read_text()
    try:
        import torch.utils.tensorboard  # noqa: F401
    except ImportError:
        assert "tensorboard is not installed: logging to metrics.csv only" in log
        assert not (out / "tensorboard").exists()
    else:
        assert f"tensorboard events in {out / 'tensorboard'}" in log
        assert any((out / "tensorboard").iterdir())
    last = load_checkpoint(result.last_checkpoint)
    assert last["epoch"] == 2 and last["batch_in_epoch"] == 0 and last["step"] == 4
    assert {"model", "optimizer", "scheduler", "rng", "config", "architecture", "history"} <= set(last)
    assert result.best_checkpoint is not None
    assert load_checkpoint(result.best_checkpoint)["best_miou"] == pytest.approx(result.best_miou)
    assert len(result.history) == 2 and all(h["train_seconds"] > 0 for h in result.history)
    assert not list((out / "checkpoints").glob("*.tmp"))
    assert (out / "val_per_class.md").read_text().count("| mIoU |") == 2
    assert (out / "val_per_class_points.csv").read_text().startswith("class,iou,support")


@pytest.mark.parametrize("stop_after, every, saved_step", [(1, 1, 1), (3, 0, 2)])
def test_interrupted_run_resumes_to_identical_weights(
    reference_run, tiny_config, tmp_path, stop_after, every, saved_step
):
    """Killed after step 1 (a mid-epoch checkpoint exists) or after step 3 (only the end-of-epoch-1
    checkpoint exists): resuming ends with bit-identical weights, optimizer state and scores."""
    cfg_ref, ref = reference_run
    cfg = tiny_config(tmp_path, [f"train.checkpoint_every_steps={every}"])
    with pytest.raises(Interrupt):
        SegmentationTrainer(cfg, step_hook=_stop_at(stop_after)).fit()
    saved = load_checkpoint(tmp_path / "checkpoints" / "last.pt")
    assert saved["step"] == saved_step
    resumed = SegmentationTrainer(cfg, resume=True).fit()
    _assert_same_weights(_weights(resumed.last_checkpoint), _weights(ref.last_checkpoint))
    a, b = load_checkpoint(resumed.last_checkpoint), load_checkpoint(ref.last_checkpoint)
    assert a["optimizer"]["state"].keys() == b["optimizer"]["state"].keys()
    for k in a["optimizer"]["state"]:
        torch.testing.assert_close(
            a["optimizer"]["state"][k]["momentum_buffer"], b["optimizer"]["state"][k]["momentum_buffer"], rtol=0, atol=0
        )
    assert resumed.best_miou == pytest.approx(ref.best_miou)
    assert "resumed from" in (tmp_path / "log.txt").read_text()
    # resuming a finished run trains nothing and says so
    again = SegmentationTrainer(cfg, resume=True).fit()
    _assert_same_weights(_weights(again.last_checkpoint), _weights(ref.last_checkpoint))
    assert "nothing to train" in (tmp_path / "log.txt").read_text().splitlines()[-1]


def test_resume_without_checkpoint_names_the_file(tiny_config, tmp_path):
    with pytest.raises(CheckpointError, match="last.pt does not exist"):
        SegmentationTrainer(tiny_config(tmp_path), resume=True).fit()


def test_resume_from_another_architecture_is_refused(reference_run, tiny_config, tmp_path):
    import shutil

    _, ref = reference_run
    (tmp_path / "checkpoints").mkdir()
    shutil.copy(ref.last_checkpoint, tmp_path / "checkpoints" / "last.pt")
    cfg = tiny_config(tmp_path, ["model.planes=[8,8,8,16,8,8,8,8]"])
    with pytest.raises(CheckpointError, match="was saved from architecture"):
        SegmentationTrainer(cfg, resume=True).fit()


def test_load_trained_model_reproduces_the_network(reference_run):
    _, ref = reference_run
    model, payload = load_trained_model(ref.last_checkpoint)
    _assert_same_weights(model.state_dict(), payload["model"])
    assert not model.training


def test_missing_data_folder_and_bad_model_key_are_named(tiny_config, tmp_path):
    cfg = tiny_config(tmp_path, ["data.dataset=scannet", f"data.root={tmp_path / 'no_such_scannet'}"])
    with pytest.raises(FileNotFoundError, match="no_such_scannet"):
        SegmentationTrainer(cfg)
    cfg = tiny_config(tmp_path, ["model.kernel=5"])
    with pytest.raises((ConfigError, ValueError), match="kernel"):
        SegmentationTrainer(cfg)


def test_training_reduces_the_loss(tiny_config, tmp_path):
    """Six epochs on the same 2 scenes without augmentation: the training loss must fall clearly."""
    cfg = tiny_config(
        tmp_path,
        [
            "train.epochs=6",
            "data.num_train_scenes=2",
            "data.num_val_scenes=1",
            "data.augment=false",
            "train.optimizer=adamw",
            "train.lr=0.02",
            "train.eval_every=0",
        ],
    )
    result = SegmentationTrainer(cfg).fit()
    losses = [h["train_loss"] for h in result.history]
    assert losses[-1] < 0.6 * losses[0], losses
