"""Precision / recall curves of a matched class and the three ways the benchmarks read AP off them.

A curve has one operating point per counted prediction (ignored ones dropped), in visiting order
(descending score). After the ``k``-th point

    TP_k = #TP among the first k,   FP_k = #FP among the first k,
    precision_k = TP_k / (TP_k + FP_k),   recall_k = TP_k / G          (G = counted ground truth)

Interpolations (each used by one benchmark, all reading the same curve):

* **envelope** (PASCAL VOC / COCO / KITTI's definition of R40):
  ``p(r) = max {precision_k : recall_k >= r}`` (0 when the curve never reaches ``r``), sampled at
  ``r_j = j / 40, j = 1..40`` (R40), ``j / 100, j = 0..100`` (101 points) or ``j / 10, j = 0..10`` (R11);
  ``AP = mean_j p(r_j)``.
* **linear** (nuScenes): precision linearly interpolated in recall over *all* operating points,
  ``p(r) = interp(r; recall_k, precision_k)``, 0 right of the largest recall (``numpy.interp`` with
  ``right=0``, at the devkit's ``linspace(0, 1, 101)``).
* **score-sampled** (the KITTI devkit's code): score thresholds are picked among the TPs. With
  ``N = 41`` sample points and a target recall that starts at 0, the TPs are scanned by descending score
  (TP ``i`` has recall ``l_i = (i + 1) / G``); TP ``i`` is kept when it is the last TP, or when the next
  TP's recall ``l_{i+1}`` is not strictly nearer the target than ``l_i`` (``l_{i+1} - target >= target -
  l_i``); each kept TP raises the target by ``1 / (N - 1)`` (by repeated addition, as the devkit does).
  The precision at a kept score ``t`` uses every counted prediction scoring ``>= t``; then
  ``p_m = max_{m' >= m} precision(t_{m'})``, zero-padded to ``N`` entries, and
  ``AP_R40 = sum_{m=1..40} p_m / 40``, ``AP_R11 = sum_{m=0,4,..,40} p_m / 11``. With at least 40 counted
  ground truths and a dense curve this agrees with the envelope R40; with fewer, the devkit keeps fewer
  than 41 thresholds and the AP drops (10 perfectly found objects give ``9 / 40``), which this reproduces.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .matching import FP, TP, MatchResult


@dataclass(frozen=True)
class PrecisionRecallCurve:
    """Cumulative TP / FP counts of one class (see the module docstring).

    Attributes:
        scores: float64 ``[K]`` scores of the counted predictions, descending (visiting order).
        tp: float64 ``[K]`` cumulative true positives ``TP_k``.
        fp: float64 ``[K]`` cumulative false positives ``FP_k``.
        num_gt: counted ground truth ``G``.
    """

    scores: np.ndarray
    tp: np.ndarray
    fp: np.ndarray
    num_gt: int

    @classmethod
    def from_match(cls, scores: np.ndarray, match: MatchResult) -> "PrecisionRecallCurve":
        """The curve of ``match`` for predictions scored ``scores [P]`` (ignored predictions dropped)."""
        scores = np.asarray(scores, dtype=np.float64).reshape(-1)
        status = match.status[match.order]
        counted = status != -1
        is_tp = (status[counted] == TP).astype(np.float64)
        is_fp = (status[counted] == FP).astype(np.float64)
        return cls(
            scores=scores[match.order][counted], tp=np.cumsum(is_tp), fp=np.cumsum(is_fp), num_gt=int(match.num_gt)
        )

    @property
    def precision(self) -> np.ndarray:
        """``[K]`` ``TP_k / (TP_k + FP_k)``."""
        return self.tp / np.maximum(self.tp + self.fp, 1.0)

    @property
    def recall(self) -> np.ndarray:
        """``[K]`` ``TP_k / G`` (zeros when ``G = 0``)."""
        return self.tp / self.num_gt if self.num_gt else np.zeros_like(self.tp)

    @property
    def tp_scores(self) -> np.ndarray:
        """Scores of the true positives, descending."""
        step = np.diff(self.tp, prepend=0.0)
        return self.scores[step > 0]


def recall_points(num_points: int) -> np.ndarray:
    """The recall levels of an interpolated AP: ``j / 40, j = 1..40`` (``num_points=40``),
    ``j / 100, j = 0..100`` (101) or ``j / 10, j = 0..10`` (11)."""
    if num_points == 40:
        return np.arange(1, 41, dtype=np.float64) / 40.0
    if num_points == 101:
        return np.arange(0, 101, dtype=np.float64) / 100.0
    if num_points == 11:
        return np.arange(0, 11, dtype=np.float64) / 10.0
    raise ValueError(f"num_recall_points must be 40, 101 or 11, got {num_points!r}")


def envelope_precision(curve: PrecisionRecallCurve, points: np.ndarray) -> np.ndarray:
    """``[R]`` ``p(r) = max {precision_k : recall_k >= r}`` at each ``r`` of ``points [R]`` (0 if none)."""
    points = np.asarray(points, dtype=np.float64).reshape(-1)
    if curve.scores.shape[0] == 0 or curve.num_gt == 0:
        return np.zeros_like(points)
    suffix_max = np.maximum.accumulate(curve.precision[::-1])[::-1]
    first = np.searchsorted(curve.recall, points, side="left")
    out = np.zeros_like(points)
    inside = first < suffix_max.shape[0]
    out[inside] = suffix_max[first[inside]]
    return out


def envelope_ap(curve: PrecisionRecallCurve, num_points: int) -> float:
    """``mean_j p(r_j)`` over :func:`recall_points` (``num_points`` = 40, 101 or 11); NaN when ``G = 0``."""
    if curve.num_gt == 0:
        return float("nan")
    return float(envelope_precision(curve, recall_points(num_points)).mean())


def linear_precision(curve: PrecisionRecallCurve, points: np.ndarray) -> np.ndarray:
    """``[R]`` precision linearly interpolated in recall at ``points``, 0 beyond the largest recall
    (nuScenes)."""
    points = np.asarray(points, dtype=np.float64).reshape(-1)
    if curve.scores.shape[0] == 0 or curve.num_gt == 0:
        return np.zeros_like(points)
    return np.interp(points, curve.recall, curve.precision, right=0)


def sampled_thresholds(curve: PrecisionRecallCurve, num_sample_points: int = 41) -> np.ndarray:
    """The KITTI devkit's score thresholds: kept TP scores, descending (at most ``num_sample_points``
    when ``G >= num_sample_points - 1``; see the module docstring)."""
    scores = curve.tp_scores
    g = curve.num_gt
    kept = []
    target = 0.0
    last = scores.shape[0] - 1
    for i in range(scores.shape[0]):
        here = (i + 1) / g
        if i < last and ((i + 2) / g - target) < (target - here):
            continue  # the next TP is nearer the target recall
        kept.append(scores[i])
        target += 1.0 / (num_sample_points - 1.0)
    return np.asarray(kept, dtype=np.float64)


def sampled_precision(curve: PrecisionRecallCurve, num_sample_points: int = 41) -> np.ndarray:
    """``[num_sample_points]`` the devkit's interpolated precisions ``p_m`` (zeros past the kept thresholds)."""
    out = np.zeros(num_sample_points, dtype=np.float64)
    if curve.num_gt == 0:
        return out
    thresholds = sampled_thresholds(curve, num_sample_points)[:num_sample_points]
    if thresholds.shape[0] == 0:
        return out
    last = np.searchsorted(-curve.scores, -thresholds, side="right") - 1  # predictions scoring >= t
    precision = curve.precision[last]
    out[: precision.shape[0]] = np.maximum.accumulate(precision[::-1])[::-1]
    return out


def sampled_ap(curve: PrecisionRecallCurve, num_points: int = 40) -> float:
    """KITTI devkit AP: ``sum_{m=1..40} p_m / 40`` (``num_points=40``) or ``sum_{m=0,4,..,40} p_m / 11``
    (11); NaN when ``G = 0``."""
    if curve.num_gt == 0:
        return float("nan")
    p = sampled_precision(curve, 41)
    if num_points == 40:
        return float(p[1:].sum() / 40.0)
    if num_points == 11:
        return float(p[::4].sum() / 11.0)
    raise ValueError(f"num_recall_points must be 40 or 11 for the KITTI AP, got {num_points!r}")


__all__ = [
    "PrecisionRecallCurve",
    "recall_points",
    "envelope_precision",
    "envelope_ap",
    "linear_precision",
    "sampled_thresholds",
    "sampled_precision",
    "sampled_ap",
]
