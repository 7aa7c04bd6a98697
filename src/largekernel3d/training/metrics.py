"""Segmentation metrics from a confusion matrix.

For ``C`` classes the confusion matrix ``M`` is ``C x C`` with ``M[t, p]`` = number of elements of true
class ``t`` predicted as ``p`` (elements whose true label is the ignore index are not counted). Then

    TP_c = M[c, c],   FP_c = sum_t M[t, c] - TP_c,   FN_c = sum_p M[c, p] - TP_c
    IoU_c = TP_c / (TP_c + FP_c + FN_c)               (undefined -> NaN when the union is empty)
    accuracy = sum_c TP_c / sum M

and two mean IoUs that differ only in the set of classes they average over:

    miou                  = mean of IoU_c over U = {c : TP_c + FP_c + FN_c > 0}   (non-empty union)
    miou_present_classes  = mean of IoU_c over P = {c : sum_p M[c, p] > 0}        (present in the ground truth)

``P`` is a subset of ``U``; the classes of ``U`` outside ``P`` are those predicted somewhere but absent from
the ground truth of the evaluated elements, and each has IoU 0 (no TP). ``miou`` therefore counts every
spurious prediction of an absent class as a 0 in its mean, ``miou_present_classes`` does not (it is the
benchmark convention: the mean over the classes the evaluation set contains; on a large set where every class
occurs, ``P = U`` and the two agree). On a small evaluation set the gap ``miou_present_classes - miou`` shows
how much of the headline is pulled down by predictions of absent classes.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence

import numpy as np
import torch
from torch import Tensor


def confusion_matrix(pred: Tensor, target: Tensor, num_classes: int, ignore_index: int) -> Tensor:
    """``[C, C]`` int64 confusion matrix ``M[t, p]`` of ``pred`` vs ``target`` (both int ``[N]``);
    elements with ``target == ignore_index`` are skipped."""
    if pred.shape != target.shape:
        raise ValueError(f"pred has shape {tuple(pred.shape)} but target has {tuple(target.shape)}")
    keep = target != ignore_index
    t = target[keep].to(torch.int64)
    p = pred[keep].to(torch.int64)
    if t.numel() and (int(t.min()) < 0 or int(t.max()) >= num_classes):
        raise ValueError(
            f"target labels must lie in [0, {num_classes}) or equal ignore_index={ignore_index}; "
            f"got range [{int(t.min())}, {int(t.max())}]"
        )
    if p.numel() and (int(p.min()) < 0 or int(p.max()) >= num_classes):
        raise ValueError(f"predictions must lie in [0, {num_classes}); got range [{int(p.min())}, {int(p.max())}]")
    flat = torch.bincount(t * num_classes + p, minlength=num_classes * num_classes)
    return flat.reshape(num_classes, num_classes).cpu()


@dataclass(frozen=True)
class SegmentationScores:
    """Scores derived from one confusion matrix (see the module docstring for the formulas)."""

    confusion: np.ndarray  # [C, C] int64, rows = truth, columns = prediction
    class_names: Sequence[str]

    @property
    def num_classes(self) -> int:
        return int(self.confusion.shape[0])

    @property
    def support(self) -> np.ndarray:
        """Ground-truth count per class ``sum_p M[c, p]``."""
        return self.confusion.sum(axis=1)

    @property
    def iou(self) -> np.ndarray:
        """Per-class IoU, NaN where ``TP + FP + FN = 0``."""
        tp = np.diag(self.confusion).astype(np.float64)
        union = self.confusion.sum(axis=0) + self.confusion.sum(axis=1) - tp
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(union > 0, tp / np.maximum(union, 1), np.nan)

    @property
    def miou(self) -> float:
        """Mean IoU over classes with a non-empty union (NaN when there are none)."""
        iou = self.iou
        valid = ~np.isnan(iou)
        return float(iou[valid].mean()) if valid.any() else math.nan

    @property
    def miou_union(self) -> float:
        """The same number as :attr:`miou` under an explicit name (mean over the non-empty union ``U``)."""
        return self.miou

    @property
    def present_classes(self) -> np.ndarray:
        """Boolean ``[C]``: classes present in the ground truth (``sum_p M[c, p] > 0``)."""
        return self.support > 0

    @property
    def miou_present_classes(self) -> float:
        """Mean IoU over the classes present in the ground truth (NaN when none is)::

            P = {c : sum_p M[c, p] > 0},   miou_present_classes = (1 / |P|) sum_{c in P} IoU_c

        unlike :attr:`miou` (mean over ``U = {c : TP_c + FP_c + FN_c > 0}``), a class that is predicted but
        absent from the ground truth does not enter the mean. Every class of ``P`` has a non-empty union, so
        its IoU is defined."""
        present = self.present_classes
        return float(self.iou[present].mean()) if present.any() else math.nan

    @property
    def accuracy(self) -> float:
        """Overall accuracy ``sum TP / sum M``."""
        total = self.confusion.sum()
        return float(np.trace(self.confusion) / total) if total else math.nan

    @property
    def majority_accuracy(self) -> float:
        """Accuracy of always predicting the most frequent true class (a baseline)."""
        total = self.confusion.sum()
        return float(self.support.max() / total) if total else math.nan

    @property
    def majority_miou(self) -> float:
        """mIoU of always predicting the most frequent true class: ``support_max / total`` for that class
        and 0 for every other class present, averaged over the present classes."""
        support = self.support
        present = int((support > 0).sum())
        total = support.sum()
        return float(support.max() / total / present) if present else math.nan

    def table_rows(self) -> List[List[str]]:
        """Rows ``[class, IoU %, support]`` followed by the two mIoU rows and the accuracy row: ``mIoU`` (mean
        over classes with a non-empty union, :attr:`miou`) and ``mIoU (classes in ground truth)``
        (:attr:`miou_present_classes`)."""
        rows = []
        for name, iou, n in zip(self.class_names, self.iou, self.support):
            rows.append([str(name), "n/a" if np.isnan(iou) else f"{100 * iou:.1f}", str(int(n))])
        rows.append(["mIoU", f"{100 * self.miou:.1f}", str(int(self.support.sum()))])
        rows.append(
            ["mIoU (classes in ground truth)", f"{100 * self.miou_present_classes:.1f}", str(int(self.support.sum()))]
        )
        rows.append(["accuracy", f"{100 * self.accuracy:.1f}", str(int(self.support.sum()))])
        return rows

    def markdown(self, title: Optional[str] = None) -> str:
        """The per-class table as Markdown (IoU in percent, 'n/a' for classes with an empty union), with a
        note under it saying which mIoU is which."""
        lines = [f"### {title}", ""] if title else []
        lines += ["| class | IoU % | support |", "| --- | ---: | ---: |"]
        lines += [f"| {a} | {b} | {c} |" for a, b, c in self.table_rows()]
        absent = [str(n) for n, u, p in zip(self.class_names, ~np.isnan(self.iou), self.present_classes) if u and not p]
        lines += [
            "",
            "mIoU: mean over the classes with a non-empty union of prediction and ground truth (a class "
            "predicted but absent from the ground truth counts as 0); mIoU (classes in ground truth): mean over "
            "the classes present in the ground truth (the benchmark convention).",
        ]
        if absent:
            lines.append(f"Predicted but absent from the ground truth (IoU 0 in mIoU only): {', '.join(absent)}.")
        return "\n".join(lines) + "\n"

    def write_csv(self, path: Path) -> None:
        """Write ``class,iou,support`` (IoU as a fraction, empty for n/a) plus the rows ``mIoU`` (non-empty
        union), ``mIoU_present_classes`` (classes in the ground truth) and ``accuracy``."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["class", "iou", "support"])
            for name, iou, n in zip(self.class_names, self.iou, self.support):
                w.writerow([name, "" if np.isnan(iou) else f"{iou:.6f}", int(n)])
            w.writerow(["mIoU", f"{self.miou:.6f}", int(self.support.sum())])
            w.writerow(["mIoU_present_classes", f"{self.miou_present_classes:.6f}", int(self.support.sum())])
            w.writerow(["accuracy", f"{self.accuracy:.6f}", int(self.support.sum())])
