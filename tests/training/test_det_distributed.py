"""Detection training with 2 CPU processes (gloo, what torchrun launches): bit-identical weights on both ranks,
disjoint frames per rank, and one validation score from the predictions gathered over the ranks."""

import csv
import math

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from helpers import free_port


def _worker(rank, world, port, out_dir, results_dir):
    import torch

    from det_tiny import tiny_det_config
    from largekernel3d.training import context_from_group
    from largekernel3d.training.det_trainer import DetectionTrainer

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        cfg = tiny_det_config(out_dir, ["train.epochs=1", "data.num_val_frames=3"])
        trainer = DetectionTrainer(cfg, ctx=context_from_group(torch.device("cpu")))
        seen = trainer._epoch_batches(0)
        result = trainer.fit()
        state = {k: v.detach().clone() for k, v in trainer.model.module.state_dict().items()}
        torch.save(
            {
                "state": state,
                "seen": seen,
                "score": result.best_score,
                "steps": trainer.global_step,
                "frames": result.final_eval.num_frames,
            },
            f"{results_dir}/rank{rank}.pt",
        )
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_two_gloo_processes_train_a_detector_to_identical_weights(tmp_path):
    out, res = tmp_path / "run", tmp_path / "res"
    res.mkdir()
    mp.spawn(_worker, args=(2, free_port(), str(out), str(res)), nprocs=2, join=True)
    r0 = torch.load(res / "rank0.pt", weights_only=False)
    r1 = torch.load(res / "rank1.pt", weights_only=False)
    for k in r0["state"]:
        torch.testing.assert_close(r0["state"][k], r1["state"][k], rtol=0, atol=0, msg=f"{k} differs between ranks")
    s0 = {i for b in r0["seen"] for i in b}
    s1 = {i for b in r1["seen"] for i in b}
    assert s0.isdisjoint(s1) and s0 | s1 == {0, 1, 2, 3}
    # 3 validation frames split 2 + 1 over the ranks, gathered: both score all 3 and agree
    assert r0["frames"] == r1["frames"] == 3 and r0["score"] == r1["score"]
    # rank 0 alone writes the run folder: its weights after one epoch, one train and one val row, the AP table
    from largekernel3d.training.checkpoint import load_checkpoint

    payload = load_checkpoint(out / "checkpoints" / "last.pt")
    assert (payload["epoch"], payload["batch_in_epoch"]) == (1, 0)
    assert payload["step"] == r0["steps"] == r1["steps"] == len(r0["seen"])
    assert payload["best_score"] == r0["score"]
    for k in payload["model"]:
        torch.testing.assert_close(payload["model"][k], r0["state"][k], rtol=0, atol=0)
    with (out / "metrics.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["phase"], r["epoch"]) for r in rows] == [("train", "1"), ("val", "1")]
    assert math.isfinite(float(rows[0]["loss"])) and float(rows[1]["score"]) == pytest.approx(r0["score"], rel=1e-5)
    table = (out / "val_ap.md").read_text()
    assert "epoch 1" in table and all(name in table for name in payload["class_names"])
