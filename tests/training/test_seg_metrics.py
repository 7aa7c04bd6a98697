"""Confusion matrix, IoU, mIoU and accuracy against brute-force numpy counts."""

import math

import numpy as np
import pytest
import torch

from largekernel3d.training.metrics import SegmentationScores, confusion_matrix

IGNORE = -100


def brute_confusion(pred, target, c):
    m = np.zeros((c, c), np.int64)
    for p, t in zip(pred, target):
        if t != IGNORE:
            m[t, p] += 1
    return m


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_confusion_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    c = 7
    target = rng.integers(0, c, 500)
    target[rng.random(500) < 0.2] = IGNORE
    pred = rng.integers(0, c, 500)
    cm = confusion_matrix(torch.from_numpy(pred), torch.from_numpy(target), c, IGNORE).numpy()
    np.testing.assert_array_equal(cm, brute_confusion(pred, target, c))
    assert cm.sum() == int((target != IGNORE).sum())


def test_iou_miou_accuracy_by_hand():
    # truth:     0 0 0 1 1 2 ;  pred: 0 0 1 1 2 2  ; class 3 never appears anywhere
    t = torch.tensor([0, 0, 0, 1, 1, 2])
    p = torch.tensor([0, 0, 1, 1, 2, 2])
    s = SegmentationScores(confusion_matrix(p, t, 4, IGNORE).numpy(), ["a", "b", "c", "d"])
    # class 0: TP 2, FP 0, FN 1 -> 2/3; class 1: TP 1, FP 1, FN 1 -> 1/3; class 2: TP 1, FP 1, FN 0 -> 1/2
    np.testing.assert_allclose(s.iou[:3], [2 / 3, 1 / 3, 1 / 2])
    assert math.isnan(s.iou[3])
    assert s.miou == pytest.approx((2 / 3 + 1 / 3 + 1 / 2) / 3)
    assert s.accuracy == pytest.approx(4 / 6)
    assert s.majority_accuracy == pytest.approx(3 / 6)
    # always predicting class 0: IoU_0 = 3/6, classes 1 and 2 get 0 -> mean over 3 present classes
    assert s.majority_miou == pytest.approx(0.5 / 3)


def test_class_predicted_but_absent_counts_as_zero():
    t = torch.tensor([0, 0, 1, 1])
    p = torch.tensor([0, 2, 1, 1])
    s = SegmentationScores(confusion_matrix(p, t, 3, IGNORE).numpy(), ["a", "b", "c"])
    assert s.iou[2] == 0.0
    assert s.miou == pytest.approx((0.5 + 1.0 + 0.0) / 3)


def test_bad_labels_raise():
    with pytest.raises(ValueError, match="target labels"):
        confusion_matrix(torch.tensor([0, 1]), torch.tensor([0, 5]), 3, IGNORE)
    with pytest.raises(ValueError, match="predictions"):
        confusion_matrix(torch.tensor([0, -1]), torch.tensor([0, 1]), 3, IGNORE)
    with pytest.raises(ValueError, match="shape"):
        confusion_matrix(torch.tensor([0]), torch.tensor([0, 1]), 3, IGNORE)


def test_tables(tmp_path):
    t = torch.tensor([0, 0, 1, 1, IGNORE])
    p = torch.tensor([0, 1, 1, 1, 0])
    s = SegmentationScores(confusion_matrix(p, t, 3, IGNORE).numpy(), ["wall", "floor", "sofa"])
    md = s.markdown("x")
    assert "| wall | 50.0 | 2 |" in md and "| floor | 66.7 | 2 |" in md and "| sofa | n/a | 0 |" in md
    assert "| mIoU | 58.3 |" in md
    s.write_csv(tmp_path / "t.csv")
    lines = (tmp_path / "t.csv").read_text().splitlines()
    assert lines[0] == "class,iou,support" and lines[1].startswith("wall,0.5") and lines[3] == "sofa,,0"
