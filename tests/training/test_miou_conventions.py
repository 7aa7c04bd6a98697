"""The two mIoU conventions of training.metrics on hand-computed confusion matrices where they differ, and where
they must agree."""

import math

import numpy as np
import pytest

from largekernel3d.training.metrics import SegmentationScores


def _scores(m):
    m = np.asarray(m, dtype=np.int64)
    return SegmentationScores(m, [f"c{i}" for i in range(m.shape[0])])


def test_absent_class_predicted_counts_only_in_the_union_mean():
    # rows = truth, columns = prediction; class 2 never occurs in the truth but is predicted 3 times,
    # class 3 neither occurs nor is predicted
    m = [[4, 1, 3, 0], [2, 6, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]
    s = _scores(m)
    # IoU_0 = 4 / (4 + 2 + 4) = 0.4;  IoU_1 = 6 / (6 + 1 + 2) = 2/3;  IoU_2 = 0 / (0 + 3 + 0) = 0;  IoU_3 = NaN
    np.testing.assert_allclose(s.iou[:3], [0.4, 2 / 3, 0.0])
    assert math.isnan(s.iou[3])
    assert s.miou == pytest.approx((0.4 + 2 / 3 + 0.0) / 3)  # U = {0, 1, 2}
    assert s.miou_union == s.miou
    assert s.miou_present_classes == pytest.approx((0.4 + 2 / 3) / 2)  # P = {0, 1}
    np.testing.assert_array_equal(s.present_classes, [True, True, False, False])


def test_present_class_never_predicted_is_zero_in_both():
    # class 1 occurs (3 elements) but is never predicted: IoU 0 in both means; class 2 predicted, absent
    m = [[5, 0, 1], [3, 0, 0], [0, 0, 0]]
    s = _scores(m)
    # IoU_0 = 5 / (5 + 3 + 1) = 5/9; IoU_1 = 0 / 3 = 0; IoU_2 = 0 / 1 = 0
    assert s.miou == pytest.approx((5 / 9 + 0 + 0) / 3)
    assert s.miou_present_classes == pytest.approx((5 / 9 + 0) / 2)


def test_conventions_agree_when_every_predicted_class_occurs():
    m = [[7, 2, 0], [1, 3, 1], [0, 2, 4]]
    s = _scores(m)
    assert s.miou_present_classes == pytest.approx(s.miou)
    # IoU_0 = 7 / (7 + 1 + 2) = 7/10, IoU_1 = 3 / (3 + 4 + 2) = 1/3, IoU_2 = 4 / (4 + 1 + 2) = 4/7
    assert s.miou == pytest.approx((0.7 + 1 / 3 + 4 / 7) / 3)


def test_empty_matrix_gives_nan():
    s = _scores(np.zeros((3, 3)))
    assert math.isnan(s.miou) and math.isnan(s.miou_present_classes)


def test_union_mean_never_exceeds_the_present_mean_on_random_matrices():
    rng = np.random.default_rng(0)
    for _ in range(50):
        m = rng.integers(0, 5, size=(6, 6))
        m[rng.random(6) < 0.4] = 0  # some classes absent from the truth
        if m.sum() == 0:
            continue
        s = _scores(m)
        assert s.miou <= s.miou_present_classes + 1e-12


def test_tables_show_both_and_say_which_is_which(tmp_path):
    s = _scores([[4, 1, 3, 0], [2, 6, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]])
    md = s.markdown("t")
    assert "| mIoU | 35.6 | 16 |" in md  # (0.4 + 0.667 + 0) / 3
    assert "| mIoU (classes in ground truth) | 53.3 | 16 |" in md  # (0.4 + 0.667) / 2
    assert "non-empty union" in md and "present in the ground truth" in md
    assert "Predicted but absent from the ground truth (IoU 0 in mIoU only): c2." in md
    s.write_csv(tmp_path / "t.csv")
    rows = dict(line.split(",")[:2] for line in (tmp_path / "t.csv").read_text().splitlines()[1:])
    assert float(rows["mIoU"]) == pytest.approx(s.miou, abs=1e-6)
    assert float(rows["mIoU_present_classes"]) == pytest.approx(s.miou_present_classes, abs=1e-6)
