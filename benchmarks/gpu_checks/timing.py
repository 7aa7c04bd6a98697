"""Timing of layers and networks on one device under a wall-clock budget.

A *case* is one workload (a layer on an input, or a network on its scene / frame) in one *precision*:

* ``float32``: everything float32;
* ``autocast-float16`` / ``autocast-bfloat16``: the forward inside ``torch.autocast(device, dtype)``, the
  backward outside it (no loss scaling: timing only);
* ``float16`` / ``bfloat16``: parameters and input features cast to that dtype (no autocast).

Each case times ``forward`` (eval mode, ``torch.no_grad``) and ``forward+backward`` (train mode, loss,
backward); every call builds its kernel maps. A call that raises marks that combination *unsupported* with
the error's last line; the other cases go on. Times are medians of timed calls after one warm-up call, with
``torch.cuda.synchronize`` around each call on CUDA; peak memory is ``torch.cuda.max_memory_allocated`` of one
more call minus the memory allocated before it (CUDA only). The number of timed calls is what the case's share
of the remaining budget allows (at most ``max_reps``); a case that cannot start before the deadline is reported
as skipped, and one that runs past it is interrupted (``SIGALRM``) and reported as such.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import signal
import statistics
import time
import traceback
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import torch
from torch import nn

PRECISIONS: Tuple[str, ...] = ("float32", "autocast-float16", "autocast-bfloat16", "float16", "bfloat16")
FORWARD, TRAIN = "forward", "forward+backward"
_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16}


class BudgetExceeded(Exception):
    """Raised inside a call that runs past the deadline."""


@dataclass
class Timing:
    """One measured (or not) combination: ``status`` is ``"ok"``, ``"unsupported: ..."``, ``"failed: ..."`` or
    ``"skipped: ..."``; ``ms`` the median, ``reps`` the timed calls, ``peak_mib`` the peak device memory."""

    case: str
    group: str
    precision: str
    what: str
    status: str
    ms: Optional[float] = None
    reps: int = 0
    peak_mib: Optional[float] = None
    detail: str = ""


@dataclass
class Budget:
    """A deadline on ``time.perf_counter``."""

    deadline: float

    @classmethod
    def seconds(cls, s: float) -> "Budget":
        return cls(time.perf_counter() + s)

    def left(self) -> float:
        return self.deadline - time.perf_counter()


@contextlib.contextmanager
def alarm_at(budget: Budget) -> Iterator[None]:
    """Raise :class:`BudgetExceeded` in the block when the deadline passes (main thread on Unix; elsewhere
    the block just runs)."""

    def handler(signum, frame):
        raise BudgetExceeded("ran past the --budget-s deadline")

    try:
        old = signal.signal(signal.SIGALRM, handler)
    except (ValueError, AttributeError):  # not the main thread / no SIGALRM
        yield
        return
    signal.setitimer(signal.ITIMER_REAL, max(budget.left(), 1e-3))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def error_line(err: BaseException) -> str:
    """The exception's last line, without the traceback."""
    return traceback.format_exception_only(type(err), err)[-1].strip()


class DeviceTimer:
    """Synchronised wall-clock timing and peak-memory reading on ``device``."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.cuda = device.type == "cuda"

    def sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize(self.device)

    def call_ms(self, fn: Callable[[], Any]) -> float:
        self.sync()
        start = time.perf_counter()
        fn()
        self.sync()
        return (time.perf_counter() - start) * 1e3

    def peak_mib(self, fn: Callable[[], Any]) -> Optional[float]:
        """Peak allocated device memory of one call above what was allocated before it (``None`` on the CPU)."""
        if not self.cuda:
            return None
        self.sync()
        base = torch.cuda.memory_allocated(self.device)
        torch.cuda.reset_peak_memory_stats(self.device)
        fn()
        self.sync()
        return (torch.cuda.max_memory_allocated(self.device) - base) / 2**20

    def measure(
        self, fn: Callable[[], Any], allowance_s: float, max_reps: int, budget: Budget
    ) -> Tuple[float, int, Optional[float]]:
        """``(median ms, timed calls, peak MiB)``: one warm-up call, then as many timed calls as
        ``allowance_s`` allows (1 to ``max_reps``), then the peak-memory call; interrupted at the deadline."""
        with alarm_at(budget):
            first = self.call_ms(fn)
            reps = int(max(1, min(max_reps, allowance_s * 1e3 // max(first, 1e-3) - 2)))
            times = [self.call_ms(fn) for _ in range(reps)]
            peak = self.peak_mib(fn)
        return statistics.median(times), reps, peak


# ------------------------------------------------------------------------------------------------
# cases
# ------------------------------------------------------------------------------------------------


@dataclass
class Workload:
    """A layer or network: ``make(precision)`` returns ``{what: callable}`` for :data:`FORWARD` and
    :data:`TRAIN` (raising when the precision cannot be set up); ``group`` is ``"layer"`` or ``"network"``."""

    name: str
    group: str
    make: Callable[[str], Dict[str, Callable[[], Any]]]
    info: str = ""


def precision_context(precision: str, device: torch.device):
    """``torch.autocast`` for the autocast precisions, else a no-op context."""
    if precision.startswith("autocast-"):
        return torch.autocast(device_type=device.type, dtype=_DTYPES[precision.split("-", 1)[1]])
    return contextlib.nullcontext()


def cast_dtype(precision: str) -> torch.dtype:
    """The parameter / feature dtype of ``precision`` (float32 under autocast)."""
    return _DTYPES.get(precision, torch.float32)


def model_for(model: nn.Module, precision: str) -> nn.Module:
    """``model`` itself, or a copy cast to the precision's dtype."""
    dtype = cast_dtype(precision)
    return model if dtype == torch.float32 else copy.deepcopy(model).to(dtype)


def layer_workload(
    name: str,
    module: nn.Module,
    features: torch.Tensor,
    indices: torch.Tensor,
    spatial_shape: Sequence[int],
    info: str = "",
) -> Workload:
    """One sparse layer on fixed sites: forward in eval mode, forward+backward of ``sum(out * cot)``."""
    import largekernel3d.sparse as lsp

    device = features.device

    def make(precision: str) -> Dict[str, Callable[[], Any]]:
        m = model_for(module, precision)
        feats = features.to(cast_dtype(precision))
        g = torch.Generator().manual_seed(3)
        cot = torch.randn((features.shape[0], m.out_channels), generator=g).to(device)

        def tensor(x: torch.Tensor) -> Any:
            return lsp.SparseConvTensor(x, indices, list(spatial_shape), 1)

        def forward() -> Any:
            with torch.no_grad(), precision_context(precision, device):
                return m.eval()(tensor(feats)).features

        def train() -> None:
            x = feats.detach().requires_grad_(True)
            with precision_context(precision, device):
                out = m.train()(tensor(x)).features
            (out.float() * cot).sum().backward()

        return {FORWARD: forward, TRAIN: train}

    return Workload(name, "layer", make, info)


def seg_workload(name: str, model: nn.Module, batch: Any, info: str = "") -> Workload:
    """A segmentation network on a :class:`~largekernel3d.data.SegBatch` already on the device."""
    from largekernel3d.data import IGNORE_INDEX

    device = batch.features.device

    def make(precision: str) -> Dict[str, Callable[[], Any]]:
        m = model_for(model, precision)
        b = dataclasses.replace(batch, features=batch.features.to(cast_dtype(precision)))

        def forward() -> Any:
            with torch.no_grad(), precision_context(precision, device):
                return m.eval()(b.to_sparse_tensor()).features

        def train() -> None:
            m.train().zero_grad(set_to_none=True)
            with precision_context(precision, device):
                logits = m(b.to_sparse_tensor()).features
            nn.functional.cross_entropy(logits.float(), b.labels, ignore_index=IGNORE_INDEX).backward()

        return {FORWARD: forward, TRAIN: train}

    return Workload(name, "network", make, info)


def det_workload(name: str, model: nn.Module, batch: Any, info: str = "") -> Workload:
    """A CenterPoint detector on a training :class:`~largekernel3d.data.detection.DetectionBatch` already on the
    device: forward = the network up to the head outputs (no decoding), forward+backward = the training loss."""
    device = batch.voxels.device

    def make(precision: str) -> Dict[str, Callable[[], Any]]:
        m = model_for(model, precision)
        b = dataclasses.replace(batch, voxels=batch.voxels.to(cast_dtype(precision)))

        def forward() -> Any:
            with torch.no_grad(), precision_context(precision, device):
                return m.eval().head_outputs(b)

        def train() -> None:
            m.train().zero_grad(set_to_none=True)
            with precision_context(precision, device):
                loss, _ = m(b)
            loss.float().backward()

        return {FORWARD: forward, TRAIN: train}

    return Workload(name, "network", make, info)


def run_cases(
    workloads: Sequence[Workload],
    precisions: Sequence[str],
    timer: DeviceTimer,
    budget: Budget,
    max_reps: int,
    on_result: Optional[Callable[[Timing], None]] = None,
    progress: Optional[Callable[[str], None]] = None,
) -> List[Timing]:
    """Every workload × precision × (forward, forward+backward), precision-major (all float32 first, so a short
    budget keeps the float32 table complete); each gets an equal share of the remaining budget."""
    combos = [(p, w, what) for p in precisions for w in workloads for what in (FORWARD, TRAIN)]
    results: List[Timing] = []
    made: Dict[Tuple[str, str], Any] = {}
    for i, (precision, w, what) in enumerate(combos):
        if progress is not None:
            progress(f"{w.name} {precision} {what}")
        res = Timing(w.name, w.group, precision, what, "ok")
        left = budget.left()
        if left <= 0.5:
            res.status = "skipped: --budget-s spent"
        else:
            try:
                key = (w.name, precision)
                if key not in made:
                    made.clear()  # one cast copy alive at a time
                    with alarm_at(budget):
                        made[key] = w.make(precision)
                res.ms, res.reps, res.peak_mib = timer.measure(
                    made[key][what], left / (len(combos) - i), max_reps, budget
                )
            except BudgetExceeded:
                res.status = "skipped: ran past --budget-s (interrupted)"
            except Exception as err:  # report the combination as unsupported, go on with the others
                res.status = ("unsupported" if precision != "float32" else "failed") + f": {error_line(err)}"
        results.append(res)
        if on_result is not None:
            on_result(res)
    made.clear()
    if timer.cuda:
        torch.cuda.empty_cache()
    return results
