"""The segmentation trainer: one loop for one process or many (DDP), CPU or GPU.

Per optimiser step on a batch with voxel logits ``z [M, C]`` and voxel labels ``y [M]``::

    loss = (1 / |V|) sum_{v in V} CE(z_v, y_v),      V = {v : y_v != IGNORE_INDEX}

then ``SGD``/``AdamW`` with the per-step schedule of :mod:`.setup`. The order of scenes in epoch ``e`` is
``DistributedSampler(seed, epoch=e)`` and the augmentation of scene ``i`` is seeded by ``(seed, i, e)``,
so every batch is a function of ``(seed, epoch, position)``. A checkpoint records the epoch and the
number of batches already done in it; resuming skips exactly those, which makes an interrupted run end
with the same weights as an uninterrupted one.

Output folder layout: ``config.yaml``, ``metrics.csv``, ``log.txt``, ``tensorboard/`` (optional),
``val_per_class.md`` / ``val_per_class_{points,voxels}.csv`` (the last validation),
``checkpoints/last.pt`` (every epoch, and every ``train.checkpoint_every_steps`` steps),
``checkpoints/best.pt`` (best validation point mIoU).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional

import torch
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler
from tqdm import tqdm

from . import setup
from .checkpoint import (architecture_signature, check_architecture, load_checkpoint, rng_state, save_checkpoint,
                         set_rng_state)
from .config import dump
from .distributed import DistContext, barrier, context_from_launcher, wrap_model
from .evaluation import EvalResult, autocast, evaluate
from .run_log import RunLogger

StepHook = Callable[[int, int, float], None]   # (epoch, global_step, loss) after each optimiser step


@dataclass
class FitResult:
    """What a finished run leaves: best validation scores and where the checkpoints are."""

    output_dir: Path
    last_checkpoint: Path
    best_checkpoint: Optional[Path]
    best_miou: float
    best_epoch: int
    history: List[Dict[str, Any]] = field(default_factory=list)
    final_eval: Optional[EvalResult] = None

    @property
    def epoch_seconds(self) -> List[float]:
        return [h["train_seconds"] for h in self.history]


def _unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


class SegmentationTrainer:
    """Train a segmentation network described by a run configuration (:mod:`.config`).

    Args:
        config: a validated configuration (:func:`largekernel3d.training.config.build_config`).
        ctx: process placement; ``None`` reads the ``torchrun`` launcher (single process otherwise).
        resume: continue from ``<output_dir>/checkpoints/last.pt`` (a missing file raises).
        step_hook: called after every optimiser step (tests use it to interrupt a run).
    """

    def __init__(self, config: Mapping[str, Any], ctx: Optional[DistContext] = None, resume: bool = False,
                 step_hook: Optional[StepHook] = None) -> None:
        self.cfg = config
        t = config["train"]
        self.ctx = ctx or context_from_launcher(str(t["device"]))
        self.output_dir = Path(config["output_dir"])
        self.ckpt_dir = self.output_dir / "checkpoints"
        self.resume = resume
        self.step_hook = step_hook
        if int(t["threads"]) > 0:
            torch.set_num_threads(int(t["threads"]))

        self.split = setup.build_scene_split(config)
        self.train_set = setup.voxelize(self.split.train, config, train=True)
        self.val_set = setup.voxelize(self.split.val, config, train=False) if self.split.val is not None else None
        torch.manual_seed(int(config["seed"]))   # identical initial weights on every rank
        net = setup.build_network(config, self.split.num_classes)
        self.model_name = str(config["model"]["name"])
        self.signature = architecture_signature(net, self.model_name)
        self.model = wrap_model(net, self.ctx, bool(t["sync_bn"]))
        self.optimizer = setup.build_optimizer(self.model, config)
        self.steps_per_epoch = math.ceil(math.ceil(len(self.train_set) / self.ctx.world_size) / int(t["batch_size"]))
        self.total_steps = self.steps_per_epoch * int(t["epochs"])
        self.scheduler = setup.build_scheduler(self.optimizer, config, self.total_steps)
        self.use_amp = bool(t["amp"]) and self.ctx.device.type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.use_amp)
        self.criterion = nn.CrossEntropyLoss(ignore_index=_ignore_index(),
                                             label_smoothing=float(t["label_smoothing"]))
        self.epoch, self.batch_in_epoch, self.global_step = 0, 0, 0
        self.best_miou, self.best_epoch = -math.inf, -1
        self.history: List[Dict[str, Any]] = []
        self.log = RunLogger(self.output_dir, enabled=self.ctx.is_main, echo=bool(t["progress"]))

    # -- checkpoints ------------------------------------------------------------------------------
    @property
    def last_path(self) -> Path:
        return self.ckpt_dir / "last.pt"

    @property
    def best_path(self) -> Path:
        return self.ckpt_dir / "best.pt"

    def _payload(self) -> Dict[str, Any]:
        return {"epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch, "step": self.global_step,
                "model": _unwrap(self.model).state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "scaler": self.scaler.state_dict(),
                "rng": rng_state(), "config": dict(self.cfg), "architecture": self.signature,
                "class_names": list(self.split.class_names), "best_miou": self.best_miou,
                "best_epoch": self.best_epoch, "history": list(self.history)}

    def _save_last(self) -> None:
        if self.ctx.is_main:
            save_checkpoint(self._payload(), self.last_path)

    def _restore(self) -> None:
        payload = load_checkpoint(self.last_path, map_location=self.ctx.device)
        check_architecture(payload, self.model, self.model_name, self.last_path)
        _unwrap(self.model).load_state_dict(payload["model"])
        self.optimizer.load_state_dict(payload["optimizer"])
        self.scheduler.load_state_dict(payload["scheduler"])
        self.scaler.load_state_dict(payload["scaler"])
        set_rng_state(payload["rng"])
        self.epoch, self.batch_in_epoch = int(payload["epoch"]), int(payload["batch_in_epoch"])
        self.global_step = int(payload["step"])
        self.best_miou, self.best_epoch = float(payload["best_miou"]), int(payload["best_epoch"])
        self.history = list(payload["history"])
        self.log.info(f"resumed from {self.last_path}: epoch {self.epoch}, {self.batch_in_epoch} batches done "
                      f"in it, step {self.global_step}")

    # -- data -------------------------------------------------------------------------------------
    def _epoch_batches(self, epoch: int) -> List[List[int]]:
        sampler = DistributedSampler(self.train_set, num_replicas=self.ctx.world_size, rank=self.ctx.rank,
                                     shuffle=True, seed=int(self.cfg["seed"]), drop_last=False)
        sampler.set_epoch(epoch)
        order = list(sampler)
        bs = int(self.cfg["train"]["batch_size"])
        return [order[i:i + bs] for i in range(0, len(order), bs)]

    def _loader(self, batches: List[List[int]]) -> DataLoader:
        from ..data import collate_segmentation
        workers = int(self.cfg["data"]["num_workers"])
        return DataLoader(self.train_set, batch_sampler=batches, collate_fn=collate_segmentation,
                          num_workers=workers, persistent_workers=False)

    # -- loop -------------------------------------------------------------------------------------
    def _train_step(self, batch) -> float:
        x = batch.to_sparse_tensor(self.ctx.device)
        labels = batch.labels.to(self.ctx.device)
        with autocast(self.ctx.device, self.use_amp):
            logits = self.model(x).features
        if bool((labels != _ignore_index()).any()):
            loss = self.criterion(logits.float(), labels)
        else:  # nothing labelled: a zero loss that still touches every parameter (keeps DDP in step)
            loss = logits.float().sum() * 0.0
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

    def _validate(self, epoch: int) -> Optional[EvalResult]:
        if self.val_set is None:
            return None
        t = self.cfg["train"]
        result = evaluate(self.model, self.val_set, self.split.num_classes, self.split.class_names,
                          _ignore_index(), self.ctx, int(self.cfg["eval"]["batch_size"]), self.use_amp,
                          progress=bool(t["progress"]), desc=f"val {epoch + 1}")
        return result

    def _write_tables(self, result: EvalResult) -> None:
        """``val_per_class.md`` (points and voxels) and ``val_per_class_{points,voxels}.csv`` of the last
        validation in the run folder."""
        text = (result.point.markdown(f"validation scenes, original points (epoch {self.epoch})") + "\n" +
                result.voxel.markdown(f"validation scenes, voxels (epoch {self.epoch})"))
        (self.output_dir / "val_per_class.md").write_text(text)
        result.point.write_csv(self.output_dir / "val_per_class_points.csv")
        result.voxel.write_csv(self.output_dir / "val_per_class_voxels.csv")
        self.log.info(f"per-class tables written to {self.output_dir / 'val_per_class.md'}")

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
        else:
            self.log.info(f"run '{self.cfg['name']}': {self.model_name}, "
                          f"{sum(p.numel() for p in self.model.parameters()):,} parameters, "
                          f"{len(self.train_set)} train / {len(self.val_set or [])} val scenes, "
                          f"{self.ctx.world_size} process(es) on {self.ctx.device}, "
                          f"AMP {'on' if self.use_amp else 'off (GPU only)'}")
            if self.ctx.is_main:
                (self.output_dir / "config.yaml").write_text(dump(self.cfg))
        eval_every = int(t["eval_every"])
        ckpt_every = int(t["checkpoint_every_steps"])
        final_eval: Optional[EvalResult] = None
        self.model.train()
        while self.epoch < epochs:
            epoch = self.epoch
            self.train_set.set_epoch(epoch)
            batches = self._epoch_batches(epoch)[self.batch_in_epoch:]
            start, cpu_start, loss_sum, n = time.perf_counter(), time.process_time(), 0.0, 0
            bar = tqdm(self._loader(batches), total=len(batches), desc=f"epoch {epoch + 1}/{epochs}",
                       leave=False, disable=not (t["progress"] and self.ctx.is_main))
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
            record: Dict[str, Any] = {"epoch": epoch + 1, "train_loss": loss_sum / max(n, 1),
                                      "train_seconds": seconds, "train_cpu_seconds": cpu_seconds, "lr": lr}
            self.log.row("train", epoch + 1, self.global_step,
                         {"lr": lr, "loss": record["train_loss"], "seconds": seconds, "cpu_seconds": cpu_seconds})
            last_epoch = epoch + 1 == epochs
            if self.val_set is not None and ((eval_every > 0 and (epoch + 1) % eval_every == 0) or last_epoch):
                result = self._validate(epoch)
                final_eval = result
                record.update(val_miou=result.point.miou, val_accuracy=result.point.accuracy,
                              val_voxel_miou=result.voxel.miou)
                self.log.row("val", epoch + 1, self.global_step,
                             {"miou": result.voxel.miou, "accuracy": result.voxel.accuracy,
                              "point_miou": result.point.miou})
                improved = result.point.miou > self.best_miou
                if improved:
                    self.best_miou, self.best_epoch = result.point.miou, epoch + 1
                self.log.info(f"epoch {epoch + 1}/{epochs}: loss {record['train_loss']:.4f}, {seconds:.1f} s "
                              f"({cpu_seconds:.0f} CPU s); "
                              f"val {result.summary()}{' (best)' if improved else ''}")
            else:
                improved = False
                self.log.info(f"epoch {epoch + 1}/{epochs}: loss {record['train_loss']:.4f}, {seconds:.1f} s "
                              f"({cpu_seconds:.0f} CPU s)")
            self.history.append(record)
            self.epoch, self.batch_in_epoch = epoch + 1, 0
            self._save_last()
            if improved and self.ctx.is_main:
                save_checkpoint(self._payload(), self.best_path)
            barrier(self.ctx)
        if final_eval is not None and self.ctx.is_main:
            self._write_tables(final_eval)
        return FitResult(output_dir=self.output_dir, last_checkpoint=self.last_path,
                         best_checkpoint=self.best_path if self.best_path.exists() else None,
                         best_miou=self.best_miou, best_epoch=self.best_epoch, history=list(self.history),
                         final_eval=final_eval)


def _ignore_index() -> int:
    from ..data import IGNORE_INDEX
    return int(IGNORE_INDEX)


def load_trained_model(path: Path, config: Optional[Mapping[str, Any]] = None,
                       device: torch.device = torch.device("cpu")) -> tuple:
    """``(model, payload)`` from a checkpoint: the network is rebuilt from the checkpoint's own config
    (or ``config`` when given, which must describe the same architecture) and its weights loaded."""
    payload = load_checkpoint(path, map_location=device)
    cfg = config if config is not None else payload["config"]
    num_classes = len(payload["class_names"])
    model = setup.build_network(cfg, num_classes)
    check_architecture(payload, model, str(cfg["model"]["name"]), Path(path))
    model.load_state_dict(payload["model"])
    return model.to(device).eval(), payload
