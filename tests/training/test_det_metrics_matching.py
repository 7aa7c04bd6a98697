"""The shared core: score-ordered greedy matching and precision / recall curves, on hand-made cases."""

from __future__ import annotations

import numpy as np
import pytest

from largekernel3d.training.detection_metrics.curves import (
    PrecisionRecallCurve,
    envelope_ap,
    envelope_precision,
    sampled_ap,
    sampled_thresholds,
)
from largekernel3d.training.detection_metrics.matching import FP, IGNORED, TP, greedy_match, match_problem, score_order


def test_score_order_breaks_ties_by_the_later_index():
    np.testing.assert_array_equal(score_order(np.array([0.5, 0.9, 0.5, 0.1, 0.9])), [4, 1, 2, 0, 3])


def test_greedy_iou_matching_by_hand():
    """Sample 0: objects A (counted), B (ignored); detections d0 (0.9; IoU 0.6 with A, 0.8 with B),
    d1 (0.8; IoU 0.7 with A), d2 (0.7; IoU 0.55 with B). At 0.5: d0 takes A (counted first, although B
    overlaps more), d1 finds nothing free -> FP, d2 takes B -> ignored. Sample 1: object C, d3 (0.95; IoU
    exactly 0.5 -> not above the threshold -> FP), d4 (0.2; NaN IoU -> FP)."""
    problem = match_problem(
        scores=[np.array([0.9, 0.8, 0.7]), np.array([0.95, 0.2])],
        affinities=[np.array([[0.6, 0.8], [0.7, 0.0], [0.0, 0.55]]), np.array([[0.5], [np.nan]])],
        higher_is_better=True,
        gt_ignored=[np.array([False, True]), None],
    )
    match = greedy_match(problem, 0.5)
    np.testing.assert_array_equal(match.status, [TP, FP, IGNORED, FP, FP])
    np.testing.assert_array_equal(match.matched_gt, [0, -1, 1, -1, -1])
    np.testing.assert_array_equal(match.order, [3, 0, 1, 2, 4])
    assert match.num_gt == 2
    curve = PrecisionRecallCurve.from_match(problem.scores, match)
    np.testing.assert_array_equal(curve.scores, [0.95, 0.9, 0.8, 0.2])
    np.testing.assert_array_equal(curve.tp, [0, 1, 1, 1])
    np.testing.assert_array_equal(curve.fp, [1, 1, 2, 3])
    # scores decide who comes first: with d1 at 0.99 it takes A, d0 falls back to B (ignored), d2 finds nothing
    problem = match_problem(
        [np.array([0.9, 0.99, 0.7])],
        [np.array([[0.6, 0.8], [0.7, 0.0], [0.0, 0.55]])],
        higher_is_better=True,
        gt_ignored=[np.array([False, True])],
    )
    np.testing.assert_array_equal(greedy_match(problem, 0.5).status, [IGNORED, TP, FP])


def test_greedy_distance_matching_takes_the_nearest_and_is_strict():
    """Distances: d0 is 1.0 from A and 0.4 from B: takes B; d1 is 1.0 from A: a match at 2 m, not at 1 m."""
    problem = match_problem([np.array([0.9, 0.5])], [np.array([[1.0, 0.4], [1.0, 3.0]])], higher_is_better=False)
    np.testing.assert_array_equal(greedy_match(problem, 2.0).matched_gt, [1, 0])
    np.testing.assert_array_equal(greedy_match(problem, 1.0).status, [TP, FP])


def test_match_problem_checks_shapes():
    with pytest.raises(ValueError, match="affinity must have shape"):
        match_problem([np.zeros(2)], [np.zeros((3, 1))], higher_is_better=True)
    with pytest.raises(ValueError, match="gt_ignored"):
        match_problem([np.zeros(2)], [np.zeros((2, 1))], higher_is_better=True, gt_ignored=[np.zeros(3, bool)])
    with pytest.raises(ValueError, match="finite"):
        greedy_match(match_problem([np.zeros(1)], [np.zeros((1, 1))], higher_is_better=True), float("nan"))


def test_envelope_and_sampled_interpolations_by_hand():
    """4 objects; detections TP, FP, TP, TP: precision 1, 1/2, 2/3, 3/4 at recall 1/4, 1/4, 1/2, 3/4.
    Envelope: p(r) = 1 for r <= 1/4, 3/4 for 1/4 < r <= 3/4, 0 above. R40: 10 levels at 1, 20 at 3/4 ->
    (10 + 15) / 40 = 62.5 %. KITTI sampling with 4 objects keeps one threshold per TP (recall steps of 1/4
    are coarser than 1/40): precisions 1, 2/3, 3/4 -> interpolated 1, 3/4, 3/4 -> sum of p_1..p_40 = 1.5,
    AP = 1.5 / 40."""
    curve = PrecisionRecallCurve(
        scores=np.array([0.9, 0.8, 0.7, 0.6]), tp=np.array([1.0, 1, 2, 3]), fp=np.array([0.0, 1, 1, 1]), num_gt=4
    )
    np.testing.assert_allclose(
        envelope_precision(curve, np.array([0.0, 0.25, 0.26, 0.75, 0.76])), [1, 1, 0.75, 0.75, 0]
    )
    assert envelope_ap(curve, 40) == pytest.approx(0.625)
    np.testing.assert_array_equal(sampled_thresholds(curve), [0.9, 0.7, 0.6])
    assert sampled_ap(curve, 40) == pytest.approx(1.5 / 40)
    empty = PrecisionRecallCurve(scores=np.zeros(0), tp=np.zeros(0), fp=np.zeros(0), num_gt=0)
    assert np.isnan(envelope_ap(empty, 40)) and np.isnan(sampled_ap(empty, 40))
