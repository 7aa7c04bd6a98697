"""Multi-process training: 2 CPU processes with gloo (what torchrun launches), DDP + DistributedSampler.

Both ranks must end with bit-identical weights (DDP averages the gradients), see different scenes, and
agree on the validation score (confusion matrices are summed over ranks)."""

import csv
import math

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from helpers import free_port


def _worker(rank, world, port, out_dir, results_dir):
    import torch

    from seg_tiny import tiny_run_config
    from largekernel3d.training import SegmentationTrainer, context_from_group

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        cfg = tiny_run_config(out_dir, ["train.epochs=2", "train.eval_every=1"])
        trainer = SegmentationTrainer(cfg, ctx=context_from_group(torch.device("cpu")))
        seen = [trainer._epoch_batches(e) for e in range(2)]
        result = trainer.fit()
        state = {k: v.detach().clone() for k, v in trainer.model.module.state_dict().items()}
        torch.save(
            {"state": state, "seen": seen, "best_miou": result.best_miou, "steps": trainer.global_step},
            f"{results_dir}/rank{rank}.pt",
        )
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_two_gloo_processes_end_with_identical_weights(tmp_path):
    out, res = tmp_path / "run", tmp_path / "res"
    res.mkdir()
    mp.spawn(_worker, args=(2, free_port(), str(out), str(res)), nprocs=2, join=True)
    r0 = torch.load(res / "rank0.pt", weights_only=False)
    r1 = torch.load(res / "rank1.pt", weights_only=False)
    assert r0["state"].keys() == r1["state"].keys()
    for k in r0["state"]:
        torch.testing.assert_close(r0["state"][k], r1["state"][k], rtol=0, atol=0, msg=f"{k} differs between ranks")
    # 4 training scenes over 2 ranks, batch 2: one step per epoch each, on disjoint scenes
    assert r0["steps"] == r1["steps"] == 2
    for e in range(2):
        s0 = {i for b in r0["seen"][e] for i in b}
        s1 = {i for b in r1["seen"][e] for i in b}
        assert s0.isdisjoint(s1) and s0 | s1 == {0, 1, 2, 3}
    assert r0["best_miou"] == r1["best_miou"]
    # only rank 0 writes the run folder: the last checkpoint holds rank 0's weights after 2 epochs of 1 step,
    # and metrics.csv has one train and one val row per epoch (not one per rank)
    from largekernel3d.training.checkpoint import load_checkpoint

    payload = load_checkpoint(out / "checkpoints" / "last.pt")
    assert (payload["epoch"], payload["batch_in_epoch"], payload["step"]) == (2, 0, 2)
    assert [h["epoch"] for h in payload["history"]] == [1, 2] and payload["best_miou"] == r0["best_miou"]
    assert payload["model"].keys() == r0["state"].keys()
    for k in payload["model"]:
        torch.testing.assert_close(payload["model"][k], r0["state"][k], rtol=0, atol=0)
    with (out / "metrics.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["phase"], r["epoch"], r["step"]) for r in rows] == [
        ("train", "1", "1"),
        ("val", "1", "1"),
        ("train", "2", "2"),
        ("val", "2", "2"),
    ]
    assert all(math.isfinite(float(r["loss"])) for r in rows if r["phase"] == "train")
    assert all(0.0 <= float(r["miou"]) <= 1.0 for r in rows if r["phase"] == "val")
