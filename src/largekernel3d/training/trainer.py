"""The segmentation trainer: the shared epoch loop (:mod:`.loop`) with a segmentation network.

Per optimiser step on a batch with voxel logits ``z [M, C]`` and voxel labels ``y [M]``::

    loss = (1 / |V|) sum_{v in V} CE(z_v, y_v),      V = {v : y_v != IGNORE_INDEX}

then ``SGD``/``AdamW`` with the per-step schedule of :mod:`.setup`. Ordering, exact resume, checkpoints and
logs are the loop's (:class:`.loop.EpochTrainer`); validation scores voxels and original points and keeps the
checkpoint of the best point mIoU.

Output folder layout: ``config.yaml``, ``metrics.csv``, ``log.txt``, ``tensorboard/`` (optional),
``val_per_class.md`` / ``val_per_class_{points,voxels}.csv`` (the last validation),
``checkpoints/last.pt`` (every epoch, and every ``train.checkpoint_every_steps`` steps),
``checkpoints/best.pt`` (best validation point mIoU).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, List, Mapping, Optional

import torch
from torch import Tensor, nn

from . import setup
from .checkpoint import check_architecture, load_checkpoint
from .evaluation import EvalResult, autocast, evaluate
from .loop import EpochTrainer, FitResult, StepHook, Validation


class SegmentationTrainer(EpochTrainer):
    """Train a segmentation network described by a run configuration (:mod:`.config`).

    Args:
        config: a validated configuration (:func:`largekernel3d.training.config.build_config`).
        ctx: process placement; ``None`` reads the ``torchrun`` launcher (single process otherwise).
        resume: continue from ``<output_dir>/checkpoints/last.pt`` (a missing file raises).
        step_hook: called after every optimiser step (tests use it to interrupt a run).
    """

    score_key = "best_miou"

    def __init__(
        self, config: Mapping[str, Any], ctx=None, resume: bool = False, step_hook: Optional[StepHook] = None
    ) -> None:
        super().__init__(config, ctx, resume, step_hook)
        t = config["train"]
        self.criterion = nn.CrossEntropyLoss(ignore_index=_ignore_index(), label_smoothing=float(t["label_smoothing"]))

    def build(self) -> nn.Module:
        self.split = setup.build_scene_split(self.cfg)
        self.train_set = setup.voxelize(self.split.train, self.cfg, train=True)
        self.val_set = setup.voxelize(self.split.val, self.cfg, train=False) if self.split.val is not None else None
        self.class_names = list(self.split.class_names)
        return setup.build_network(self.cfg, self.split.num_classes)

    def collate(self, samples: List[Any]):
        from ..data import collate_segmentation

        return collate_segmentation(samples)

    def batch_loss(self, batch) -> Tensor:
        x = batch.to_sparse_tensor(self.ctx.device)
        labels = batch.labels.to(self.ctx.device)
        with autocast(self.ctx.device, self.use_amp):
            logits = self.model(x).features
        if bool((labels != _ignore_index()).any()):
            return self.criterion(logits.float(), labels)
        # nothing labelled: a zero loss that still touches every parameter (keeps DDP in step)
        return logits.float().sum() * 0.0

    def validate(self, epoch: int) -> Validation:
        t = self.cfg["train"]
        result = evaluate(
            self.model,
            self.val_set,
            self.split.num_classes,
            self.split.class_names,
            _ignore_index(),
            self.ctx,
            int(self.cfg["eval"]["batch_size"]),
            self.use_amp,
            progress=bool(t["progress"]),
            desc=f"val {epoch + 1}",
        )
        return Validation(
            score=result.point.miou,
            record={
                "val_miou": result.point.miou,
                "val_accuracy": result.point.accuracy,
                "val_voxel_miou": result.voxel.miou,
                "val_miou_present": result.point.miou_present_classes,
                "val_voxel_miou_present": result.voxel.miou_present_classes,
            },
            log_values={
                "miou": result.voxel.miou,
                "accuracy": result.voxel.accuracy,
                "point_miou": result.point.miou,
                "miou_present": result.voxel.miou_present_classes,
                "point_miou_present": result.point.miou_present_classes,
            },
            summary=result.summary(),
            result=result,
        )

    def write_tables(self, result: EvalResult) -> None:
        """``val_per_class.md`` (points and voxels) and ``val_per_class_{points,voxels}.csv`` of the last
        validation in the run folder."""
        text = (
            result.point.markdown(f"validation scenes, original points (epoch {self.epoch})")
            + "\n"
            + result.voxel.markdown(f"validation scenes, voxels (epoch {self.epoch})")
        )
        (self.output_dir / "val_per_class.md").write_text(text)
        result.point.write_csv(self.output_dir / "val_per_class_points.csv")
        result.voxel.write_csv(self.output_dir / "val_per_class_voxels.csv")
        self.log.info(f"per-class tables written to {self.output_dir / 'val_per_class.md'}")


def _ignore_index() -> int:
    from ..data import IGNORE_INDEX

    return int(IGNORE_INDEX)


def load_trained_model(
    path: Path, config: Optional[Mapping[str, Any]] = None, device: torch.device = torch.device("cpu")
) -> tuple:
    """``(model, payload)`` from a checkpoint: the network is rebuilt from the checkpoint's own config
    (or ``config`` when given, which must describe the same architecture) and its weights loaded."""
    payload = load_checkpoint(path, map_location=device)
    cfg = config if config is not None else payload["config"]
    num_classes = len(payload["class_names"])
    model = setup.build_network(cfg, num_classes)
    check_architecture(payload, model, str(cfg["model"]["name"]), Path(path))
    model.load_state_dict(payload["model"])
    return model.to(device).eval(), payload


__all__ = ["SegmentationTrainer", "FitResult", "load_trained_model"]
