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
