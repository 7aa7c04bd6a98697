"""The per-epoch augmentation stream shared by the voxelised views of the segmentation and detection datasets.

Item ``i`` of epoch ``e`` is augmented with ``numpy.random.default_rng([seed, i, e])``: every sample is a
function of ``(seed, i, e)`` (so a resumed run sees the same samples), different per item and per epoch.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np


def check_step(step: Optional[Any], name: str, item: str) -> None:
    """``step`` is ``None`` or a callable ``(item, rng) -> item``; anything else is a ``TypeError`` naming ``name``."""
    if step is not None and not callable(step):
        raise TypeError(f"{name} must be a callable ({item}, rng) -> {item}, got {step!r}")


class EpochStream:
    """Base of a dataset view ``self[i]`` built from ``dataset[i]`` with a per-epoch random stream.

    Holds ``dataset``, ``seed`` and ``epoch`` (0 until :meth:`set_epoch`); ``len(self) == len(dataset)`` and
    ``class_names`` is the dataset's.
    """

    def __init__(self, dataset: Any, seed: int = 0) -> None:
        self.dataset = dataset
        self.seed = int(seed)
        self.epoch = 0

    @property
    def class_names(self):
        return self.dataset.class_names

    def set_epoch(self, epoch: int) -> None:
        """Select the augmentation stream of ``epoch``."""
        if epoch < 0:
            raise ValueError(f"epoch must be >= 0, got {epoch}")
        self.epoch = int(epoch)

    def rng(self, index: int) -> np.random.Generator:
        """``numpy.random.default_rng([seed, index, epoch])``: the stream of item ``index`` in this epoch."""
        return np.random.default_rng([self.seed, int(index), self.epoch])

    def __len__(self) -> int:
        return len(self.dataset)


__all__ = ["EpochStream", "check_step"]
