"""The epoch loop every trainer shares: one process or many (DDP), CPU or GPU, exact resume.

A task (segmentation, detection) subclasses :class:`EpochTrainer` and supplies its data, its network, the loss
of one batch and a validation pass; the loop owns everything else:

* the order of samples in epoch ``e`` is ``DistributedSampler(seed, epoch=e)`` split into batches, and the
  training set is told the epoch (``set_epoch``) so that its augmentation of sample ``i`` is a function of
  ``(seed, i, e)``; every batch is a function of ``(seed, epoch, position)``;
* per optimiser step: ``loss.backward()`` (through an AMP scaler on GPUs), optional global gradient-norm
  clipping, the optimiser and the per-step schedule;
* checkpoints (``checkpoints/last.pt`` every epoch and every ``train.checkpoint_every_steps`` steps,
  ``checkpoints/best.pt`` at the best validation score) hold model, optimiser, scheduler, scaler, RNG states,
  epoch and position in it, so ``resume=True`` continues with exactly the batches that were left and an
  interrupted run ends with the same weights as an uninterrupted one;
* logs: ``config.yaml``, ``metrics.csv``, ``log.txt``, optional TensorBoard (:class:`.run_log.RunLogger`).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, DistributedSampler
from tqdm import tqdm

from .checkpoint import (
    architecture_signature,
    check_architecture,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from .config import dump
from .distributed import DistContext, barrier, context_from_launcher, wrap_model
from .run_log import RunLogger

StepHook = Callable[[int, int, float], None]  # (epoch, global_step, loss) after each optimiser step


@dataclass
class Validation:
    """What a validation pass reports to the loop.

    Attributes:
        score: the number that selects ``best.pt`` (higher is better; e.g. point mIoU, mAP).
        record: entries added to the epoch's history record (e.g. ``val_miou``).
        log_values: the ``val`` row of ``metrics.csv``.
        summary: one line for the log.
        result: the task's full result object (handed to :meth:`EpochTrainer.write_tables`).
    """

    score: float
    record: Dict[str, Any]
    log_values: Dict[str, Any]
    summary: str
    result: Any


@dataclass
class FitResult:
    """What a finished run leaves: the best validation score and where the checkpoints are."""

    output_dir: Path
    last_checkpoint: Path
    best_checkpoint: Optional[Path]
    best_score: float
    best_epoch: int
    history: List[Dict[str, Any]] = field(default_factory=list)
    final_eval: Optional[Any] = None

    @property
    def best_miou(self) -> float:
        """The best score of a segmentation run (its score is the validation point mIoU)."""
        return self.best_score

    @property
    def epoch_seconds(self) -> List[float]:
        return [h["train_seconds"] for h in self.history]


def unwrap(model: nn.Module) -> nn.Module:
    """The network inside a ``DistributedDataParallel`` wrapper (or ``model`` itself)."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


class EpochTrainer:
    """The shared training loop (module docstring). Subclasses implement :meth:`build`, :meth:`batch_loss`
    and :meth:`validate`, and may override :meth:`build_optimizer`, :meth:`build_scheduler`,
    :meth:`write_tables` and :meth:`describe`.

    Args:
        config: a validated run configuration with sections ``data``, ``model``, ``train``, ``eval`` and the
            keys ``name``, ``seed``, ``output_dir``.
        ctx: process placement; ``None`` reads the ``torchrun`` launcher (single process otherwise).
        resume: continue from ``<output_dir>/checkpoints/last.pt`` (a missing file raises).
        step_hook: called after every optimiser step (tests use it to interrupt a run).
    """

    #: the checkpoint key of the best validation score (``best_miou``, ``best_map``, ...)
    score_key: str = "best_score"

    def __init__(
        self,
        config: Mapping[str, Any],
        ctx: Optional[DistContext] = None,
        resume: bool = False,
        step_hook: Optional[StepHook] = None,
    ) -> None:
        self.cfg = config
        t = config["train"]
        self.ctx = ctx or context_from_launcher(str(t["device"]))
        self.output_dir = Path(config["output_dir"])
        self.ckpt_dir = self.output_dir / "checkpoints"
        self.resume = resume
        self.step_hook = step_hook
        if int(t["threads"]) > 0:
            torch.set_num_threads(int(t["threads"]))
        self.class_names: Sequence[str] = ()
        self.train_set: Any = None
        self.val_set: Any = None
        torch.manual_seed(int(config["seed"]))  # identical initial weights on every rank
        net = self.build()
        self.model_name = str(config["model"]["name"])
        self.signature = architecture_signature(net, self.model_name)
        self.model = wrap_model(net, self.ctx, bool(t["sync_bn"]))
        self.optimizer = self.build_optimizer(self.model)
        self.steps_per_epoch = math.ceil(math.ceil(len(self.train_set) / self.ctx.world_size) / int(t["batch_size"]))
        self.total_steps = self.steps_per_epoch * int(t["epochs"])
        self.scheduler = self.build_scheduler(self.optimizer, self.total_steps)
        self.use_amp = bool(t["amp"]) and self.ctx.device.type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.use_amp)
        self.epoch, self.batch_in_epoch, self.global_step = 0, 0, 0
        self.best_score, self.best_epoch = -math.inf, -1
        self.history: List[Dict[str, Any]] = []
        self.log = RunLogger(self.output_dir, enabled=self.ctx.is_main, echo=bool(t["progress"]))

    # -- what a task supplies ----------------------------------------------------------------------
    def build(self) -> nn.Module:
        """Set ``self.train_set``, ``self.val_set`` (or ``None``), ``self.class_names`` and return the network."""
        raise NotImplementedError

    def collate(self, samples: List[Any]) -> Any:
        """Batch the samples of the training set."""
        raise NotImplementedError

    def batch_loss(self, batch: Any) -> Tensor:
        """The scalar training loss of one collated batch (forward pass inside)."""
        raise NotImplementedError

    def validate(self, epoch: int) -> Validation:
        """Score the model on ``self.val_set`` (called only when it is not ``None``)."""
        raise NotImplementedError

    def write_tables(self, result: Any) -> None:
        """Write the per-class tables of the last validation into the run folder (default: nothing)."""

    def describe(self) -> str:
        """The first log line of a fresh run."""
        return (
            f"run '{self.cfg['name']}': {self.model_name}, "
            f"{sum(p.numel() for p in self.model.parameters()):,} parameters, "
            f"{len(self.train_set)} train / {len(self.val_set or [])} val samples, "
            f"{self.ctx.world_size} process(es) on {self.ctx.device}, "
            f"AMP {'on' if self.use_amp else 'off (GPU only)'}"
        )

    def build_optimizer(self, model: nn.Module) -> torch.optim.Optimizer:
        from . import setup

        return setup.build_optimizer(model, self.cfg)

    def build_scheduler(self, optimizer: torch.optim.Optimizer, total_steps: int):
        from . import setup

        return setup.build_scheduler(optimizer, self.cfg, total_steps)

    # -- checkpoints -------------------------------------------------------------------------------
    @property
    def last_path(self) -> Path:
        return self.ckpt_dir / "last.pt"

    @property
    def best_path(self) -> Path:
        return self.ckpt_dir / "best.pt"

    def _payload(self) -> Dict[str, Any]:
        return {
            "epoch": self.epoch,
            "batch_in_epoch": self.batch_in_epoch,
            "step": self.global_step,
            "model": unwrap(self.model).state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": rng_state(),
            "config": dict(self.cfg),
            "architecture": self.signature,
            "class_names": list(self.class_names),
            self.score_key: self.best_score,
            "best_epoch": self.best_epoch,
            "history": list(self.history),
        }

    def _save_last(self) -> None:
        if self.ctx.is_main:
            save_checkpoint(self._payload(), self.last_path)

    def _restore(self) -> None:
        payload = load_checkpoint(self.last_path, map_location=self.ctx.device)
        check_architecture(payload, self.model, self.model_name, self.last_path)
        unwrap(self.model).load_state_dict(payload["model"])
        self.optimizer.load_state_dict(payload["optimizer"])
        self.scheduler.load_state_dict(payload["scheduler"])
        self.scaler.load_state_dict(payload["scaler"])
        set_rng_state(payload["rng"])
        self.epoch, self.batch_in_epoch = int(payload["epoch"]), int(payload["batch_in_epoch"])
        self.global_step = int(payload["step"])
        self.best_score, self.best_epoch = float(payload[self.score_key]), int(payload["best_epoch"])
        self.history = list(payload["history"])
        self.log.info(
            f"resumed from {self.last_path}: {self.epoch} epoch(s) done, {self.batch_in_epoch} batches into epoch "
            f"{self.epoch + 1}, step {self.global_step}"
        )

    # -- data --------------------------------------------------------------------------------------
    def _epoch_batches(self, epoch: int) -> List[List[int]]:
        sampler = DistributedSampler(
            self.train_set,
            num_replicas=self.ctx.world_size,
            rank=self.ctx.rank,
            shuffle=True,
            seed=int(self.cfg["seed"]),
            drop_last=False,
        )
        sampler.set_epoch(epoch)
        order = list(sampler)
        bs = int(self.cfg["train"]["batch_size"])
        return [order[i : i + bs] for i in range(0, len(order), bs)]

    def _loader(self, batches: List[List[int]]) -> DataLoader:
        workers = int(self.cfg["data"]["num_workers"])
        return DataLoader(
            self.train_set,
            batch_sampler=batches,
            collate_fn=self.collate,
            num_workers=workers,
            persistent_workers=False,
        )

    # -- loop --------------------------------------------------------------------------------------
    def _train_step(self, batch: Any) -> float:
        loss = self.batch_loss(batch)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        clip = float(self.cfg["train"]["grad_clip"])
        if clip > 0:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.model.parameters(), clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        return float(loss.detach())

    def fit(self) -> FitResult:
        """Run (or continue) training to ``train.epochs``; returns the best validation score. The log
        files are closed however the run ends (an interrupted run can be resumed with ``resume=True``)."""
        try:
            return self._fit()
        finally:
            self.log.close()

    def _fit(self) -> FitResult:
        t = self.cfg["train"]
        epochs = int(t["epochs"])
        if self.resume:
            self._restore()
            if self.epoch >= epochs:
                self.log.info(
                    f"nothing to train: the run in {self.output_dir} already did {self.epoch} of train.epochs="
                    f"{epochs} epochs (raise train.epochs to continue it)"
                )
        else:
            self.log.info(self.describe())
            if self.ctx.is_main:
                (self.output_dir / "config.yaml").write_text(dump(self.cfg))
        eval_every = int(t["eval_every"])
        ckpt_every = int(t["checkpoint_every_steps"])
        final_eval: Optional[Any] = None
        self.model.train()
        while self.epoch < epochs:
            epoch = self.epoch
            self.train_set.set_epoch(epoch)
            batches = self._epoch_batches(epoch)[self.batch_in_epoch :]
            start, cpu_start, loss_sum, n = time.perf_counter(), time.process_time(), 0.0, 0
            bar = tqdm(
                self._loader(batches),
                total=len(batches),
                desc=f"epoch {epoch + 1}/{epochs}",
                leave=False,
                disable=not (t["progress"] and self.ctx.is_main),
            )
            for batch in bar:
                loss = self._train_step(batch)
                self.global_step += 1
                self.batch_in_epoch += 1
                loss_sum, n = loss_sum + loss, n + 1
                bar.set_postfix(loss=f"{loss:.3f}")
                if ckpt_every > 0 and self.global_step % ckpt_every == 0 and self.batch_in_epoch < self.steps_per_epoch:
                    self._save_last()
                if self.step_hook is not None:
                    self.step_hook(epoch, self.global_step, loss)
            bar.close()
            seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
            lr = self.optimizer.param_groups[0]["lr"]
            record: Dict[str, Any] = {
                "epoch": epoch + 1,
                "train_loss": loss_sum / max(n, 1),
                "train_seconds": seconds,
                "train_cpu_seconds": cpu_seconds,
                "lr": lr,
            }
            self.log.row(
                "train",
                epoch + 1,
                self.global_step,
                {"lr": lr, "loss": record["train_loss"], "seconds": seconds, "cpu_seconds": cpu_seconds},
            )
            last_epoch = epoch + 1 == epochs
            head = (
                f"epoch {epoch + 1}/{epochs}: loss {record['train_loss']:.4f}, {seconds:.1f} s "
                f"({cpu_seconds:.0f} CPU s)"
            )
            improved = False
            if self.val_set is not None and ((eval_every > 0 and (epoch + 1) % eval_every == 0) or last_epoch):
                val = self.validate(epoch)
                final_eval = val.result
                record.update(val.record)
                self.log.row("val", epoch + 1, self.global_step, val.log_values)
                improved = val.score > self.best_score
                if improved:
                    self.best_score, self.best_epoch = val.score, epoch + 1
                self.log.info(f"{head}; val {val.summary}{' (best)' if improved else ''}")
            else:
                self.log.info(head)
            self.history.append(record)
            self.epoch, self.batch_in_epoch = epoch + 1, 0
            self._save_last()
            if improved and self.ctx.is_main:
                save_checkpoint(self._payload(), self.best_path)
            barrier(self.ctx)
        if final_eval is not None and self.ctx.is_main:
            self.write_tables(final_eval)
        return FitResult(
            output_dir=self.output_dir,
            last_checkpoint=self.last_path,
            best_checkpoint=self.best_path if self.best_path.exists() else None,
            best_score=self.best_score,
            best_epoch=self.best_epoch,
            history=list(self.history),
            final_eval=final_eval,
        )


__all__ = ["EpochTrainer", "FitResult", "Validation", "StepHook", "unwrap"]
