"""Run logs: a CSV file always, TensorBoard event files when the optional ``tensorboard`` package is
installed (``pip install largekernel3d[tensorboard]``), and human-readable lines in ``log.txt``.

The CSV has one row per logged event with a fixed header (:data:`CSV_FIELDS`); rows are appended and
flushed at once, so a run that is interrupted keeps every row written so far, and a resumed run appends.
"""

from __future__ import annotations

import csv
import time
from pathlib import Path
from typing import Any, Mapping, Optional

from tqdm import tqdm

CSV_FIELDS = (
    "time",
    "epoch",
    "step",
    "phase",
    "lr",
    "loss",
    "accuracy",
    "miou",
    "point_miou",
    "seconds",
    "cpu_seconds",
    "score",
    "metric",
    "miou_present",
    "point_miou_present",
)
"""``miou`` / ``point_miou``: mean IoU over classes with a non-empty union (voxels / points);
``miou_present`` / ``point_miou_present``: over the classes present in the ground truth
(:mod:`largekernel3d.training.metrics`)."""


class RunLogger:
    """Writes ``metrics.csv``, ``log.txt`` and (when available) TensorBoard events under ``folder``.

    Only the main process should own one (``enabled=False`` makes every method a no-op).
    """

    def __init__(self, folder: Path, enabled: bool = True, tensorboard: bool = True, echo: bool = True) -> None:
        self.enabled = enabled
        self.echo = echo
        self.folder = Path(folder)
        self._tb = None
        if not enabled:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        self.csv_path = self.folder / "metrics.csv"
        new = not self.csv_path.exists()
        fields = CSV_FIELDS
        if not new:  # a resumed run appends under the header the file already has (columns added later are dropped)
            with self.csv_path.open(newline="") as f:
                fields = tuple(next(csv.reader(f), ())) or CSV_FIELDS
        self._csv_file = self.csv_path.open("a", newline="")
        self._csv = csv.DictWriter(self._csv_file, fieldnames=fields, extrasaction="ignore")
        if new:
            self._csv.writeheader()
            self._csv_file.flush()
        self._text = (self.folder / "log.txt").open("a")
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter  # optional dependency
            except ImportError:
                self.info(
                    "tensorboard is not installed: logging to metrics.csv only "
                    "(pip install 'largekernel3d[tensorboard]' for event files)"
                )
            else:
                self._tb = SummaryWriter(log_dir=str(self.folder / "tensorboard"))
                self.info(f"tensorboard events in {self.folder / 'tensorboard'}")

    def info(self, message: str) -> None:
        """A line in ``log.txt`` (and on the console, above any progress bar)."""
        if not self.enabled:
            return
        self._text.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}\n")
        self._text.flush()
        if self.echo:
            tqdm.write(message)

    def row(self, phase: str, epoch: int, step: int, values: Mapping[str, Any]) -> None:
        """Append one CSV row (and TensorBoard scalars ``<phase>/<name>`` at ``step``)."""
        if not self.enabled:
            return
        unknown = set(values) - set(CSV_FIELDS)
        if unknown:
            raise ValueError(f"RunLogger.row got unknown fields {sorted(unknown)}; known: {CSV_FIELDS}")
        record = {"time": f"{time.time():.3f}", "epoch": epoch, "step": step, "phase": phase}
        record.update({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in values.items()})
        self._csv.writerow(record)
        self._csv_file.flush()
        if self._tb is not None:
            for k, v in values.items():
                if isinstance(v, (int, float)):
                    self._tb.add_scalar(f"{phase}/{k}", v, step)
            self._tb.flush()

    def close(self) -> None:
        """Close the files (idempotent)."""
        if not self.enabled or self._csv_file.closed:
            return
        self._csv_file.close()
        self._text.close()
        if self._tb is not None:
            self._tb.close()

    def __enter__(self) -> "RunLogger":
        return self

    def __exit__(self, *exc: Optional[BaseException]) -> None:
        self.close()
