"""CenterPoint losses: the penalty-reduced focal loss on heatmaps and the masked L1 loss on regressions.

Heatmap (CornerNet / CenterNet), with ``p = clamp(sigmoid(logit), eps, 1 - eps)``, target ``t`` and
``N = max(1, #{t == 1})``::

    L_hm = -1/N [ sum_{t = 1} (1 - p)^alpha log p  +  sum_{t < 1} (1 - t)^beta p^alpha log(1 - p) ]

(``alpha = 2``, ``beta = 4``, ``eps = 1e-4``): cells near a centre are penalised less for a high score
the closer they are, and the clamp keeps ``log`` finite (its gradient is zero outside the clamp).

Regression, at the object slots of :class:`~largekernel3d.models.detection.center_targets.TaskTargets`
(``m`` the mask, ``M = max(1, sum m)``), per attribute ``c``::

    L_c = 1/M sum_{b, k} m[b, k] |pred[b, k, c] - target[b, k, c]|

which the head weighs as ``L_loc = loc_weight sum_c w_c L_c`` with the code weights ``w``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

import torch
from torch import Tensor

FOCAL_EPS = 1e-4


@dataclass(frozen=True)
class CenterLossConfig:
    """Weights of the CenterPoint loss ``L = sum_tasks hm_weight L_hm + loc_weight sum_c w_c L_c``.

    Attributes:
        code_weights: ``w``, one per regression channel (8 without velocity, 10 with) in the order
            offset x, y; z; log dx, dy, dz; sin, cos yaw; vx, vy. ``None`` (default) takes the official
            configs' weights: 1 everywhere except 0.2 on the two rotation channels (CenterPoint's det3d
            and OpenPCDet both put their 0.2 there, whatever their channel order).
        hm_weight: weight of the heatmap loss (OpenPCDet's ``cls_weight``).
        loc_weight: weight of the regression loss.
    """

    code_weights: Optional[Tuple[float, ...]] = None
    hm_weight: float = 1.0
    loc_weight: float = 0.25

    def __post_init__(self) -> None:
        if self.code_weights is not None:
            weights = tuple(float(w) for w in self.code_weights)
            if len(weights) not in (8, 10) or not all(w >= 0.0 and w < float("inf") for w in weights):
                raise ValueError(
                    f"code_weights must be 8 (no velocity) or 10 (velocity) finite weights >= 0, "
                    f"got {self.code_weights!r}"
                )
            object.__setattr__(self, "code_weights", weights)
        for name in ("hm_weight", "loc_weight"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and 0.0 <= float(value) < float("inf")):
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")

    def weights_for(self, code_size: int) -> Tuple[float, ...]:
        """The code weights for ``code_size`` channels (8 or 10); raises if the given ones do not fit."""
        if self.code_weights is None:
            return (1.0,) * 6 + (0.2, 0.2) + (1.0,) * (code_size - 8)
        if len(self.code_weights) != code_size:
            raise ValueError(
                f"code_weights has {len(self.code_weights)} entries but the head regresses "
                f"{code_size} channels ({'with' if code_size == 10 else 'without'} velocity)"
            )
        return self.code_weights


def clamped_sigmoid(logits: Tensor, eps: float = FOCAL_EPS) -> Tensor:
    """``clamp(sigmoid(logits), eps, 1 - eps)``, elementwise."""
    return torch.clamp(torch.sigmoid(logits), min=eps, max=1.0 - eps)


def penalty_reduced_focal_loss(
    logits: Tensor, target: Tensor, alpha: float = 2.0, beta: float = 4.0, eps: float = FOCAL_EPS
) -> Tensor:
    """The heatmap loss ``L_hm`` of the module docstring (a scalar).

    Args:
        logits: ``[...]`` heatmap logits (float16 / bfloat16 are computed in float32: ``1 - eps`` would round
            to 1 there and ``log(1 - p)`` become infinite).
        target: ``[...]`` Gaussian targets in ``[0, 1]``; positives are the entries equal to 1.
    """
    if logits.shape != target.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and target {tuple(target.shape)} must have the same shape")
    if logits.dtype in (torch.float16, torch.bfloat16):
        logits = logits.float()
    p = clamped_sigmoid(logits, eps)
    target = target.to(p.dtype)
    pos = target.eq(1.0)
    pos_term = torch.where(pos, torch.log(p) * (1.0 - p) ** alpha, torch.zeros_like(p))
    neg_term = torch.where(pos, torch.zeros_like(p), torch.log(1.0 - p) * p**alpha * (1.0 - target) ** beta)
    num_pos = pos.sum().clamp_min(1).to(p.dtype)
    return -(pos_term.sum() + neg_term.sum()) / num_pos


def masked_l1_loss(pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """Per-attribute L1 at the object slots, ``L_c`` of the module docstring.

    Args:
        pred: ``[B, K, C]`` predictions gathered at the slots' cells.
        target: ``[B, K, C]`` regression targets.
        mask: ``[B, K]`` bool, True where a slot holds an object.
    Returns:
        ``[C]``: summed absolute errors over the valid slots, divided by ``max(1, #valid)``.
    """
    if pred.shape != target.shape or pred.dim() != 3 or mask.shape != pred.shape[:2]:
        raise ValueError(
            f"pred {tuple(pred.shape)} and target {tuple(target.shape)} must be [B, K, C] and "
            f"mask {tuple(mask.shape)} [B, K]"
        )
    m = mask.to(torch.bool)
    diff = torch.where(m[..., None], (pred - target.to(pred.dtype)).abs(), torch.zeros_like(pred))
    return diff.sum(dim=(0, 1)) / m.sum().clamp_min(1).to(pred.dtype)


__all__ = ["CenterLossConfig", "FOCAL_EPS", "clamped_sigmoid", "masked_l1_loss", "penalty_reduced_focal_loss"]
