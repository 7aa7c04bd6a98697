"""Score-ordered greedy matching of detections to ground truth, shared by every detection metric.

One class at a time. Sample ``s`` has ``P_s`` predictions with scores and ``G_s`` ground-truth boxes,
and an affinity matrix ``A_s [P_s, G_s]`` (a centre distance, lower is better, or an IoU, higher is
better). Predictions are visited in one global order over all samples,

    descending score; equal scores: the prediction that comes later in the input first

(the nuScenes devkit's order: it sorts ``(score, index)`` pairs and reverses them). A visited
prediction ``i`` of sample ``s``

1. takes the untaken *counted* ground truth ``g`` with the best affinity that beats the threshold
   strictly (``A[i, g] < t`` for distances, ``A[i, g] > t`` for IoUs; on a tie the lower ``g``) and
   is a true positive (TP);
2. otherwise takes the best untaken *ignored* ground truth that beats the threshold and is ignored
   (neither TP nor FP: a KITTI neighbour class or too-hard object absorbs one detection);
3. otherwise is a false positive (FP).

Each ground-truth box is taken at most once. Matching inside a sample depends only on the order of
that sample's predictions, so the result is the one of the devkit's single loop over all samples.
The loop runs in a compiled numba kernel.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

import numba as nb
import numpy as np

TP, FP, IGNORED = 1, 0, -1
"""Prediction outcomes in :attr:`MatchResult.status`."""


def name_list(values: Optional[Sequence[str]], count: int, what: str) -> Optional[Tuple[str, ...]]:
    """``values`` as a tuple of ``count`` strings (``None`` stays ``None``); ``TypeError`` for a single string,
    ``ValueError`` naming ``what`` for another length."""
    if values is None:
        return None
    if isinstance(values, str):
        raise TypeError(f"{what} must be a sequence of strings, not one string")
    names = tuple(str(v) for v in values)
    if len(names) != count:
        raise ValueError(f"{what} must have {count} entries (one per box), got {len(names)}")
    return names


def score_order(scores: np.ndarray) -> np.ndarray:
    """Indices ``[P]`` of ``scores [P]`` by descending score, ties broken by the later index first."""
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    return np.lexsort((-np.arange(scores.shape[0]), -scores)).astype(np.int64)


@dataclass(frozen=True)
class MatchProblem:
    """Predictions and ground truth of one class over many samples, flattened sample after sample.

    Attributes:
        scores: float64 ``[P]`` prediction scores (the predictions of sample 0 first, then sample 1, ...).
        pred_sample: int64 ``[P]`` sample of each prediction.
        pred_local: int64 ``[P]`` row of each prediction in its sample's affinity matrix.
        gt_offset: int64 ``[S]`` index of the first ground truth of each sample in the flat GT arrays.
        gt_count: int64 ``[S]`` ground truths per sample ``G_s``.
        gt_ignored: bool ``[G]`` ground truths that absorb a detection without counting.
        affinity_offset: int64 ``[S]`` start of ``A_s`` (row-major ``[P_s, G_s]``) in ``affinity``.
        affinity: float64 ``[sum_s P_s G_s]`` all affinity matrices, flattened.
        higher_is_better: ``True`` for IoU-like affinities, ``False`` for distances.

    Build it with :func:`match_problem`.
    """

    scores: np.ndarray
    pred_sample: np.ndarray
    pred_local: np.ndarray
    gt_offset: np.ndarray
    gt_count: np.ndarray
    gt_ignored: np.ndarray
    affinity_offset: np.ndarray
    affinity: np.ndarray
    higher_is_better: bool

    @property
    def num_predictions(self) -> int:
        return int(self.scores.shape[0])

    @property
    def num_counted_gt(self) -> int:
        """Ground truths that count in the recall denominator (not ignored)."""
        return int((~self.gt_ignored).sum())


def match_problem(
    scores: Sequence[np.ndarray],
    affinities: Sequence[np.ndarray],
    higher_is_better: bool,
    gt_ignored: Optional[Sequence[Optional[np.ndarray]]] = None,
) -> MatchProblem:
    """A :class:`MatchProblem` from per-sample pieces.

    Args:
        scores: per sample ``s`` the scores ``[P_s]`` of its predictions of the class.
        affinities: per sample the affinity ``[P_s, G_s]`` between those predictions and its ground truth.
        higher_is_better: ``True`` when a larger affinity is a better match (IoU), ``False`` (distance).
        gt_ignored: optional per sample bool ``[G_s]`` (``None`` entries: nothing ignored).

    Raises:
        ValueError: when the lists differ in length or a matrix does not have the shape its sample needs.
    """
    num_samples = len(scores)
    if len(affinities) != num_samples:
        raise ValueError(f"scores has {num_samples} samples but affinities has {len(affinities)}")
    if gt_ignored is not None and len(gt_ignored) != num_samples:
        raise ValueError(f"gt_ignored has {len(gt_ignored)} samples, expected {num_samples}")
    flat_scores, sample_of, local_of, gt_count, gt_ign, aff_offset, aff = [], [], [], [], [], [], []
    offset = 0
    for s in range(num_samples):
        sc = np.asarray(scores[s], dtype=np.float64).reshape(-1)
        a = np.asarray(affinities[s], dtype=np.float64)
        p = sc.shape[0]
        if a.ndim != 2 or a.shape[0] != p:
            raise ValueError(f"sample {s}: affinity must have shape [{p}, G] for its {p} predictions, got {a.shape}")
        g = a.shape[1]
        gi = (
            np.zeros(g, dtype=bool)
            if gt_ignored is None or gt_ignored[s] is None
            else np.asarray(gt_ignored[s], dtype=bool).reshape(-1)
        )
        if gi.shape != (g,):
            raise ValueError(f"sample {s}: gt_ignored must have shape [{g}], got {gi.shape}")
        flat_scores.append(sc)
        sample_of.append(np.full(p, s, dtype=np.int64))
        local_of.append(np.arange(p, dtype=np.int64))
        gt_count.append(g)
        gt_ign.append(gi)
        aff_offset.append(offset)
        aff.append(a.reshape(-1))
        offset += p * g

    def cat(parts, dtype):
        return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype=dtype)

    counts = np.asarray(gt_count, dtype=np.int64)
    return MatchProblem(
        scores=cat(flat_scores, np.float64),
        pred_sample=cat(sample_of, np.int64),
        pred_local=cat(local_of, np.int64),
        gt_offset=(np.cumsum(counts) - counts).astype(np.int64),
        gt_count=counts,
        gt_ignored=cat(gt_ign, bool),
        affinity_offset=np.asarray(aff_offset, dtype=np.int64),
        affinity=cat(aff, np.float64),
        higher_is_better=bool(higher_is_better),
    )


@dataclass(frozen=True)
class MatchResult:
    """The outcome of :func:`greedy_match`.

    Attributes:
        order: int64 ``[P]`` prediction indices in visiting order (descending score).
        status: int8 ``[P]`` per prediction (input order): ``1`` TP, ``0`` FP, ``-1`` ignored.
        matched_gt: int64 ``[P]`` flat ground-truth index each prediction took (``-1``: none).
        num_gt: ground truths that count (the recall denominator).
    """

    order: np.ndarray
    status: np.ndarray
    matched_gt: np.ndarray
    num_gt: int


@nb.njit(cache=True, nogil=True)
def _greedy_kernel(
    order,
    pred_sample,
    pred_local,
    gt_offset,
    gt_count,
    gt_ignored,
    affinity_offset,
    affinity,
    threshold,
    higher_is_better,
    status,
    matched_gt,
):  # pragma: no cover
    taken = np.zeros(gt_ignored.shape[0], dtype=np.bool_)
    sign = 1.0 if higher_is_better else -1.0
    for i in order:
        s = pred_sample[i]
        g0 = gt_offset[s]
        n = gt_count[s]
        row = affinity_offset[s] + pred_local[i] * n
        best, best_value = -1, 0.0
        best_ignored, best_ignored_value = -1, 0.0
        for j in range(n):
            if taken[g0 + j]:
                continue
            v = sign * affinity[row + j]
            if not v > sign * threshold:  # NaN never passes
                continue
            if gt_ignored[g0 + j]:
                if best_ignored < 0 or v > best_ignored_value:
                    best_ignored, best_ignored_value = j, v
            elif best < 0 or v > best_value:
                best, best_value = j, v
        if best >= 0:
            taken[g0 + best] = True
            status[i] = 1
            matched_gt[i] = g0 + best
        elif best_ignored >= 0:
            taken[g0 + best_ignored] = True
            status[i] = -1
            matched_gt[i] = g0 + best_ignored
        else:
            status[i] = 0
            matched_gt[i] = -1


def greedy_match(problem: MatchProblem, threshold: float) -> MatchResult:
    """Match ``problem`` at ``threshold`` by the rule in the module docstring.

    Returns:
        A :class:`MatchResult` (status and matched ground truth per prediction, the visiting order).
    """
    threshold = float(threshold)
    if not np.isfinite(threshold):
        raise ValueError(f"threshold must be finite, got {threshold}")
    p = problem.num_predictions
    order = score_order(problem.scores)
    status = np.zeros(p, dtype=np.int8)
    matched = np.full(p, -1, dtype=np.int64)
    if p:
        _greedy_kernel(
            order,
            problem.pred_sample,
            problem.pred_local,
            problem.gt_offset,
            problem.gt_count,
            problem.gt_ignored,
            problem.affinity_offset,
            problem.affinity,
            threshold,
            problem.higher_is_better,
            status,
            matched,
        )
    return MatchResult(order=order, status=status, matched_gt=matched, num_gt=problem.num_counted_gt)


__all__ = [
    "TP",
    "FP",
    "IGNORED",
    "name_list",
    "score_order",
    "MatchProblem",
    "match_problem",
    "MatchResult",
    "greedy_match",
]
