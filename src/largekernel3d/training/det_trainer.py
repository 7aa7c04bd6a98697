"""The detection trainer: the shared epoch loop (:mod:`.loop`) with a CenterPoint detector.

Per optimiser step on a batch of voxelised, augmented frames the detector returns its CenterPoint loss
(penalty-reduced focal loss on the class heatmaps + weighted L1 on the box regressions at object centres, see
:mod:`largekernel3d.models.detection.center_losses`); AdamW with the one-cycle schedule by default (OpenPCDet's
``adam_onecycle``), gradient-norm clipping at ``train.grad_clip``. Validation predicts the held-out frames and
scores them with the configured metric (:mod:`.det_evaluation`); ``best.pt`` keeps the best score.

Run folder: as segmentation's (``config.yaml``, ``metrics.csv``, ``log.txt``, ``checkpoints/``), plus
``val_ap.md`` / ``val_ap.csv`` (the last validation's per-class table).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, List, Mapping, Optional

import torch
from torch import Tensor, nn

from . import det_setup
from .checkpoint import check_architecture, load_checkpoint
from .det_evaluation import DetectionEvaluation, evaluate_detection
from .evaluation import autocast
from .loop import EpochTrainer, StepHook, Validation


class DetectionTrainer(EpochTrainer):
    """Train a detector described by a detection run configuration (:mod:`.det_config`).

    Args:
        config: a validated configuration (``build_config(..., schema=DET_SCHEMA)``).
        ctx: process placement; ``None`` reads the ``torchrun`` launcher (single process otherwise).
        resume: continue from ``<output_dir>/checkpoints/last.pt`` (a missing file raises).
        step_hook: called after every optimiser step (tests use it to interrupt a run).
    """

    score_key = "best_score"

    def __init__(
        self, config: Mapping[str, Any], ctx=None, resume: bool = False, step_hook: Optional[StepHook] = None
    ) -> None:
        super().__init__(config, ctx, resume, step_hook)

    def build(self) -> nn.Module:
        self.split = det_setup.build_frame_split(self.cfg)
        self.train_set = det_setup.voxelize(self.split.train, self.cfg, train=True)
        self.val_set = det_setup.voxelize(self.split.val, self.cfg, train=False) if self.split.val is not None else None
        self.class_names = list(self.split.class_names)
        return det_setup.build_network(self.cfg, self.class_names)

    def collate(self, samples: List[Any]):
        from ..data.detection.batch import collate_detection

        return collate_detection(samples)

    def batch_loss(self, batch) -> Tensor:
        with autocast(self.ctx.device, self.use_amp):
            loss, _ = self.model(batch.to(self.ctx.device))
        return loss.float()

    def validate(self, epoch: int) -> Validation:
        result = evaluate_detection(
            self.model,
            self.val_set,
            self.class_names,
            self.cfg,
            self.ctx,
            progress=bool(self.cfg["train"]["progress"]),
            desc=f"val {epoch + 1}",
        )
        return Validation(
            score=result.score,
            record={"val_score": result.score, "val_metric": result.score_name},
            log_values={"score": result.score, "metric": result.score_name},
            summary=result.summary(),
            result=result,
        )

    def write_tables(self, result: DetectionEvaluation) -> None:
        """``val_ap.md`` / ``val_ap.csv``: the per-class table of the last validation."""
        path = result.write(self.output_dir, "val_ap", title=f"validation frames (epoch {self.epoch})")
        self.log.info(f"per-class table written to {path}")


def load_trained_detector(
    path: Path, config: Optional[Mapping[str, Any]] = None, device: torch.device = torch.device("cpu")
) -> tuple:
    """``(model, payload)`` from a detection checkpoint: the detector is rebuilt from the checkpoint's own
    config (or ``config`` when given, which must describe the same architecture) and its weights loaded."""
    payload = load_checkpoint(path, map_location=device)
    cfg = config if config is not None else payload["config"]
    if cfg.get("task") != "det":
        raise ValueError(
            f"checkpoint {path} holds a {cfg.get('task', 'seg')!r} model, not a detector; use the "
            f"matching command (lk3d eval seg / predict seg)"
        )
    model = det_setup.build_network(cfg, payload["class_names"])
    check_architecture(payload, model, str(cfg["model"]["name"]), Path(path))
    model.load_state_dict(payload["model"])
    return model.to(device).eval(), payload


__all__ = ["DetectionTrainer", "load_trained_detector"]
