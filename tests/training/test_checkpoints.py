"""Checkpoints: atomic writes, clear errors for missing / corrupt / foreign files."""

import pytest
import torch
from torch import nn

from largekernel3d.training import checkpoint as ck
from largekernel3d.training.checkpoint import (
    CheckpointError,
    architecture_signature,
    check_architecture,
    load_checkpoint,
    save_checkpoint,
)


def _payload(model, name="net"):
    return {"model": model.state_dict(), "architecture": architecture_signature(model, name), "epoch": 1}


def test_roundtrip_and_no_temporary_left(tmp_path):
    model = nn.Linear(3, 4)
    path = save_checkpoint(_payload(model), tmp_path / "c" / "last.pt")
    assert sorted(p.name for p in path.parent.iterdir()) == ["last.pt"]
    loaded = load_checkpoint(path)
    torch.testing.assert_close(loaded["model"]["weight"], model.weight.detach())
    assert loaded["epoch"] == 1


def test_a_crash_while_writing_keeps_the_old_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    old = nn.Linear(3, 4)
    save_checkpoint(_payload(old), path)

    def exploding_save(obj, f):
        f.write(b"half a checkpoint")
        raise RuntimeError("killed while writing")

    monkeypatch.setattr(ck.torch, "save", exploding_save)
    with pytest.raises(RuntimeError, match="killed"):
        save_checkpoint(_payload(nn.Linear(3, 4)), path)
    monkeypatch.undo()
    torch.testing.assert_close(load_checkpoint(path)["model"]["weight"], old.weight.detach())


def test_missing_corrupt_and_foreign_files_name_the_file(tmp_path):
    with pytest.raises(CheckpointError, match="nothere.pt does not exist"):
        load_checkpoint(tmp_path / "nothere.pt")
    path = save_checkpoint(_payload(nn.Linear(3, 4)), tmp_path / "good.pt")
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(path.read_bytes()[:200])
    with pytest.raises(CheckpointError, match="truncated.pt is corrupt"):
        load_checkpoint(truncated)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"\x00\x01not a checkpoint at all")
    with pytest.raises(CheckpointError, match="garbage.pt"):
        load_checkpoint(garbage)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": 1}, foreign)
    with pytest.raises(CheckpointError, match="foreign.pt is not a largekernel3d checkpoint"):
        load_checkpoint(foreign)


def test_other_architecture_is_refused_with_the_differing_tensor(tmp_path):
    path = save_checkpoint(_payload(nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2)), "small"), tmp_path / "a.pt")
    payload = load_checkpoint(path)
    check_architecture(payload, nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2)), "small", path)
    with pytest.raises(
        CheckpointError,
        match=r"a.pt was saved from architecture 'small'.*"
        r"'1.bias': checkpoint \[2\] vs model \[5\]",
    ):
        check_architecture(payload, nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 5)), "big", path)
