"""CenterPoint losses against per-element formulas in float64, and their gradients (gradcheck)."""

from __future__ import annotations

import math

import pytest
import torch

from largekernel3d.models.detection.center_losses import (
    CenterLossConfig,
    clamped_sigmoid,
    masked_l1_loss,
    penalty_reduced_focal_loss,
)

# small tensors: one thread avoids contention on a shared machine
pytestmark = pytest.mark.usefixtures("one_thread")


def _heat_target(g, shape, n_peaks):
    """Random Gaussian-like targets in [0, 1) with ``n_peaks`` entries exactly 1."""
    t = torch.rand(shape, generator=g, dtype=torch.float64) ** 3 * 0.99
    flat = t.view(-1)
    flat[torch.randperm(flat.numel(), generator=g)[:n_peaks]] = 1.0
    return t


def _focal_reference(logits, target, alpha=2.0, beta=4.0, eps=1e-4):
    pos_sum, neg_sum, n_pos = 0.0, 0.0, 0
    for x, t in zip(logits.reshape(-1).tolist(), target.reshape(-1).tolist()):
        p = min(max(1.0 / (1.0 + math.exp(-x)), eps), 1.0 - eps)
        if t == 1.0:
            n_pos += 1
            pos_sum += math.log(p) * (1.0 - p) ** alpha
        else:
            neg_sum += math.log(1.0 - p) * p**alpha * (1.0 - t) ** beta
    return -(pos_sum + neg_sum) / max(n_pos, 1)


@pytest.mark.parametrize("n_peaks", [0, 1, 7])
def test_focal_loss_matches_per_element_formula(n_peaks):
    g = torch.Generator().manual_seed(n_peaks)
    logits = torch.randn(2, 3, 6, 5, generator=g, dtype=torch.float64) * 4
    logits.view(-1)[:3] = torch.tensor([20.0, -20.0, 0.0], dtype=torch.float64)  # clamp active at both ends
    target = _heat_target(g, (2, 3, 6, 5), n_peaks)
    got = penalty_reduced_focal_loss(logits, target)
    assert got.dtype == torch.float64 and got.dim() == 0
    assert float(got) == pytest.approx(_focal_reference(logits, target), rel=1e-12)
    got_ab = penalty_reduced_focal_loss(logits, target, alpha=1.5, beta=3.0)
    assert float(got_ab) == pytest.approx(_focal_reference(logits, target, 1.5, 3.0), rel=1e-12)


def test_focal_loss_gradcheck():
    g = torch.Generator().manual_seed(11)
    logits = (torch.randn(2, 2, 5, 4, generator=g, dtype=torch.float64) * 2).requires_grad_()
    target = _heat_target(g, (2, 2, 5, 4), 4)
    assert torch.autograd.gradcheck(lambda x: penalty_reduced_focal_loss(x, target), (logits,))


def test_focal_loss_float32_close_to_float64():
    g = torch.Generator().manual_seed(12)
    logits = torch.randn(1, 2, 8, 8, generator=g, dtype=torch.float64) * 3
    target = _heat_target(g, (1, 2, 8, 8), 3)
    lo = penalty_reduced_focal_loss(logits.float(), target.float())
    assert float(lo) == pytest.approx(float(penalty_reduced_focal_loss(logits, target)), rel=1e-5)
    with pytest.raises(ValueError, match="same shape"):
        penalty_reduced_focal_loss(logits, target[:, :1])


def test_clamped_sigmoid():
    x = torch.tensor([-50.0, -1.0, 0.0, 2.0, 50.0], dtype=torch.float64)
    want = [1e-4, 1 / (1 + math.e), 0.5, 1 / (1 + math.exp(-2)), 1 - 1e-4]
    assert clamped_sigmoid(x).tolist() == pytest.approx(want, rel=1e-12)


def _l1_reference(pred, target, mask):
    b, k, c = pred.shape
    out = [0.0] * c
    m = 0
    for i in range(b):
        for j in range(k):
            if bool(mask[i, j]):
                m += 1
                for ch in range(c):
                    out[ch] += abs(float(pred[i, j, ch]) - float(target[i, j, ch]))
    return [v / max(m, 1) for v in out]


@pytest.mark.parametrize("n_valid", [0, 1, 9])
def test_masked_l1_matches_loop(n_valid):
    g = torch.Generator().manual_seed(20 + n_valid)
    pred = torch.randn(2, 6, 10, generator=g, dtype=torch.float64)
    target = torch.randn(2, 6, 10, generator=g, dtype=torch.float64)
    mask = torch.zeros(2, 6, dtype=torch.bool)
    mask.view(-1)[torch.randperm(12, generator=g)[:n_valid]] = True
    pred[~mask] = float("nan") if n_valid else 0.0  # values in unused slots must not leak in (NaN included)
    got = masked_l1_loss(pred, target, mask)
    assert got.shape == (10,)
    assert got.tolist() == pytest.approx(
        _l1_reference(pred.nan_to_num(0.0), target, mask) if n_valid else [0.0] * 10, rel=1e-12, abs=1e-15
    )


def test_masked_l1_gradcheck():
    g = torch.Generator().manual_seed(30)
    pred = torch.randn(2, 5, 8, generator=g, dtype=torch.float64)
    target = pred + (torch.rand(2, 5, 8, generator=g, dtype=torch.float64) + 0.1) * torch.sign(
        torch.randn(2, 5, 8, generator=g, dtype=torch.float64)
    )  # away from the kink of |.|
    mask = torch.rand(2, 5, generator=g) > 0.4
    pred.requires_grad_()
    assert torch.autograd.gradcheck(lambda p: masked_l1_loss(p, target, mask), (pred,))
    with pytest.raises(ValueError, match="mask"):
        masked_l1_loss(pred, target, mask[:, :2])


def test_loss_config_defaults_and_validation():
    cfg = CenterLossConfig()
    assert cfg.weights_for(8) == (1.0,) * 6 + (0.2, 0.2)
    assert cfg.weights_for(10) == (1.0,) * 6 + (0.2, 0.2, 1.0, 1.0)
    assert cfg.loc_weight == 0.25 and cfg.hm_weight == 1.0
    custom = CenterLossConfig(code_weights=[1, 1, 1, 1, 1, 1, 1, 1, 0.2, 0.2])
    assert custom.weights_for(10)[-2:] == (0.2, 0.2)
    with pytest.raises(ValueError, match="velocity"):
        custom.weights_for(8)
    with pytest.raises(ValueError, match="code_weights"):
        CenterLossConfig(code_weights=(1.0,) * 7)
    with pytest.raises(ValueError, match="code_weights"):
        CenterLossConfig(code_weights=(1.0,) * 7 + (float("nan"),))
    with pytest.raises(ValueError, match="loc_weight"):
        CenterLossConfig(loc_weight=-1.0)


def test_focal_loss_half_precision_stays_finite():
    g = torch.Generator().manual_seed(13)
    logits = torch.randn(1, 2, 8, 8, generator=g) * 6
    logits.view(-1)[:2] = torch.tensor([30.0, -30.0])
    target = _heat_target(g, (1, 2, 8, 8), 3).float()
    want = float(penalty_reduced_focal_loss(logits.half().float(), target.half().float()))
    for dtype in (torch.float16, torch.bfloat16):
        got = penalty_reduced_focal_loss(logits.to(dtype).float().to(dtype), target.to(dtype))
        assert math.isfinite(float(got))
        if dtype == torch.float16:
            assert float(got) == pytest.approx(want, rel=1e-5)
