"""Inference and evaluation of a segmentation network on voxelised scenes.

For a batch, the network gives logits ``z [M, C]`` on the voxels; the voxel prediction is
``argmax_c z[v, c]`` and a point ``i`` of a scene inherits the prediction of its voxel,
``pred_point[i] = pred_voxel[point_to_voxel[i]]``. Scores are computed twice: on voxels against the
voxel labels, and on the original points against the point labels (what benchmarks report).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Optional, Sequence

import numpy as np
import torch
from torch import Tensor, nn
from tqdm import tqdm

from .distributed import DistContext, all_reduce_sum
from .metrics import SegmentationScores, confusion_matrix


@dataclass(frozen=True)
class EvalResult:
    """Scores of one evaluation pass on voxels and on the original points."""

    voxel: SegmentationScores
    point: SegmentationScores

    def summary(self) -> str:
        """One log line: ``mIoU`` is the mean over classes with a non-empty union, ``in GT`` the mean over
        the classes present in the ground truth (:mod:`.metrics`)."""
        return (
            f"voxel mIoU {100 * self.voxel.miou:.1f} (in GT {100 * self.voxel.miou_present_classes:.1f}) "
            f"acc {100 * self.voxel.accuracy:.1f} | point mIoU {100 * self.point.miou:.1f} "
            f"(in GT {100 * self.point.miou_present_classes:.1f}) acc {100 * self.point.accuracy:.1f}"
        )


@dataclass(frozen=True)
class ScenePrediction:
    """Per-point prediction of one scene (``labels`` are the ground truth, may be all ignore)."""

    name: str
    points: np.ndarray  # [N, 3] float32
    pred: np.ndarray  # [N] int64
    labels: np.ndarray  # [N] int64


def autocast(device: torch.device, enabled: bool):
    """Mixed-precision context: float16 autocast on CUDA when ``enabled``, a no-op elsewhere."""
    return torch.autocast(device_type="cuda", dtype=torch.float16, enabled=enabled and device.type == "cuda")


def forward_logits(model: nn.Module, batch, device: torch.device, amp: bool = False) -> Tensor:
    """Voxel logits ``[sum M, C]`` (float32) of ``model`` on a collated batch."""
    x = batch.to_sparse_tensor(device)
    with autocast(device, amp):
        out = model(x)
    return out.features.float()


def _loader(dataset, indices: Sequence[int], batch_size: int):
    from torch.utils.data import DataLoader

    from ..data import collate_segmentation

    batches = [list(indices[i : i + batch_size]) for i in range(0, len(indices), batch_size)]
    return DataLoader(dataset, batch_sampler=batches, collate_fn=collate_segmentation, num_workers=0)


@torch.no_grad()
def evaluate(
    model: nn.Module,
    dataset,
    num_classes: int,
    class_names: Sequence[str],
    ignore_index: int,
    ctx: Optional[DistContext] = None,
    batch_size: int = 1,
    amp: bool = False,
    progress: bool = True,
    desc: str = "eval",
) -> EvalResult:
    """Scores of ``model`` on every scene of the voxelised ``dataset``; with several processes each rank
    takes scenes ``rank, rank + R, ...`` and the confusion matrices are summed over ranks."""
    ctx = ctx or DistContext()
    was_training = model.training
    model.eval()
    cm_vox = torch.zeros(num_classes, num_classes, dtype=torch.int64)
    cm_pt = torch.zeros_like(cm_vox)
    mine = list(range(ctx.rank, len(dataset), ctx.world_size))
    try:
        for batch in tqdm(
            _loader(dataset, mine, batch_size), desc=desc, leave=False, disable=not (progress and ctx.is_main)
        ):
            logits = forward_logits(model, batch, ctx.device, amp)
            pred = logits.argmax(dim=1)
            cm_vox += confusion_matrix(pred.cpu(), batch.labels.cpu(), num_classes, ignore_index)
            for p, t in zip(batch.point_predictions(pred.cpu()), batch.point_labels):
                cm_pt += confusion_matrix(p, torch.as_tensor(t), num_classes, ignore_index)
    finally:
        model.train(was_training)
    cm_vox = all_reduce_sum(cm_vox, ctx)
    cm_pt = all_reduce_sum(cm_pt, ctx)
    return EvalResult(
        voxel=SegmentationScores(cm_vox.numpy(), list(class_names)),
        point=SegmentationScores(cm_pt.numpy(), list(class_names)),
    )


@torch.no_grad()
def predict_scenes(
    model: nn.Module, dataset, device: torch.device, amp: bool = False, progress: bool = True
) -> Iterator[ScenePrediction]:
    """Yield the per-point prediction of each scene of the voxelised ``dataset`` in order."""
    from ..data import collate_segmentation

    model.eval()
    for index in tqdm(range(len(dataset)), desc="predict", disable=not progress):
        sample = dataset[index]
        batch = collate_segmentation([sample])
        logits = forward_logits(model, batch, device, amp)
        (pred,) = batch.point_predictions(logits.argmax(dim=1).cpu())
        yield ScenePrediction(
            name=sample.name,
            points=np.asarray(sample.points),
            pred=pred.numpy(),
            labels=np.asarray(sample.point_labels),
        )
