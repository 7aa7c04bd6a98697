"""The steps lk3d eval / predict / bench share: split choice, --limit, output folder, --threads."""

import argparse
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from largekernel3d.cli.command_steps import item_count, output_folder, set_threads, split_items


def test_split_items_picks_the_named_split_or_names_the_missing_one():
    split = SimpleNamespace(val=["v0"], train=None)
    assert split_items(split, "val", "scenes") == ["v0"]
    with pytest.raises(ValueError, match="--split train: the configuration defines no train frames"):
        split_items(split, "train", "frames")


@pytest.mark.parametrize("total, limit, expected", [(5, None, 5), (5, 3, 3), (5, 9, 5), (0, 2, 0)])
def test_item_count(total, limit, expected):
    assert item_count(total, limit) == expected


def test_output_folder_defaults_beside_the_run_checkpoints(tmp_path):
    checkpoint = tmp_path / "run" / "checkpoints" / "best.pt"
    args = argparse.Namespace(output=None, checkpoint=str(checkpoint))
    assert output_folder(args, "eval") == (tmp_path / "run" / "eval").resolve()
    args.output = str(tmp_path / "elsewhere")
    assert output_folder(args, "eval") == Path(tmp_path / "elsewhere")


def test_set_threads_sets_torch_threads_and_refuses_zero():
    before = torch.get_num_threads()
    try:
        set_threads(None)
        assert torch.get_num_threads() == before
        set_threads(1)
        assert torch.get_num_threads() == 1
        with pytest.raises(ValueError, match="--threads must be >= 1, got 0"):
            set_threads(0)
    finally:
        torch.set_num_threads(before)


class _Trainer:
    """A stand-in trainer: ``fit`` returns a result with (or without) a final validation."""

    final_eval = "table"

    def __init__(self, cfg, resume):
        self.cfg, self.resume = cfg, resume
        self.ctx = SimpleNamespace(distributed=False, is_main=True)

    def fit(self):
        return SimpleNamespace(final_eval=type(self).final_eval, best_epoch=2)


def test_train_prints_the_task_summary_after_a_run_with_a_final_validation(capsys):
    from largekernel3d.cli.run_configs import train

    args = argparse.Namespace(
        list_configs=False, print_config=False, config="demo", overrides=[], output=None, resume=False
    )
    trainer, result = train(args, "seg", _Trainer, lambda r: f"{r.final_eval}: best at epoch {r.best_epoch}")
    assert isinstance(trainer, _Trainer) and result.best_epoch == 2
    assert capsys.readouterr().out == "table: best at epoch 2\n"

    class NoValidation(_Trainer):
        final_eval = None

    train(args, "seg", NoValidation, lambda r: "never printed")
    train(args, "seg", _Trainer)
    assert capsys.readouterr().out == ""
