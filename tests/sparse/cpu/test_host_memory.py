"""``largekernel3d.sparse.cpu.host_memory``: numpy-backed CPU buffers."""

from __future__ import annotations

import pytest
import torch

from largekernel3d.sparse.cpu import host_memory


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.int32, torch.int64])
def test_buffers_have_the_shape_and_dtype_asked_for(dtype):
    a = host_memory.empty((5, 3), dtype)
    z = host_memory.zeros((4, 2), dtype)
    assert a.shape == (5, 3) and a.dtype == dtype and a.device.type == "cpu" and a.is_contiguous()
    assert z.shape == (4, 2) and z.dtype == dtype and not bool(z.any())
    a.fill_(7)  # writable, and usable as an ``out=`` of torch ops
    torch.mm(
        torch.ones(5, 2, dtype=torch.float64),
        torch.ones(2, 2, dtype=torch.float64),
        out=host_memory.empty((5, 2), torch.float64),
    )
    assert bool((a == 7).all())


def test_unsupported_dtype_is_named():
    with pytest.raises(TypeError, match="float16"):
        host_memory.empty((2,), torch.float16)


def test_touched_empty_is_zero():
    t = host_memory.touched_empty((300, 7), torch.float32)
    assert t.shape == (300, 7) and not bool(t.any())


@pytest.mark.parametrize("make", [host_memory.empty, host_memory.zeros])
def test_buffers_above_the_fresh_mapping_size_are_touched_here(make, monkeypatch):
    """Blocks above ``touch_above`` bytes (glibc's fresh mappings by default) are touched by ``empty``/``zeros``
    (zeros, one thread) before parallel kernels write them; smaller ones are left alone."""
    touched = []
    real = host_memory.touched_empty
    monkeypatch.setattr(host_memory, "touched_empty", lambda shape, dtype: touched.append(shape) or real(shape, dtype))
    small = make((25, 10), torch.float32, touch_above=1000)  # exactly 1000 bytes
    big = make((25, 5), torch.float64, touch_above=1000)  # 1000 bytes
    bigger = make((3, 42), torch.float64, touch_above=1000)  # 1008 bytes
    default = make((3, 42), torch.float64)  # far below glibc's fresh-mapping size
    assert touched == [(3, 42)]
    assert default.shape == (3, 42)
    assert small.shape == (25, 10) and big.dtype == torch.float64 and bigger.shape == (3, 42)
    assert not bool(bigger.any())


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"trim_threshold": 0}, "trim_threshold"),
        ({"trim_threshold": -5}, "trim_threshold"),
        ({"trim_threshold": True}, "trim_threshold"),
        ({"mmap_threshold": 1.5e6}, "mmap_threshold"),
        ({"mmap_threshold": (32 << 20) + 1}, "mmap_threshold"),
    ],
)
def test_keep_freed_memory_rejects_bad_thresholds(kwargs, name):
    with pytest.raises(ValueError, match=name):
        host_memory.keep_freed_memory(**kwargs)


# Allocates, fills and frees 3 x 12 MB of numpy arrays per round; prints the page faults of rounds 2-6.
_FAULTS_SCRIPT = """
import resource, sys
import numpy as np
from largekernel3d.sparse import keep_freed_memory
applied = keep_freed_memory() if sys.argv[1] == "keep" else None
def round_():
    arrays = [np.ones(3_000_000, np.float32) for _ in range(3)]
    return sum(float(a[-1]) for a in arrays)
round_()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    round_()
print(applied, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.perf  # a page-fault count: depends on the kernel, the C library and the machine's memory state
def test_keep_freed_memory_reuses_freed_pages():
    """After ``keep_freed_memory()`` a process that allocates and frees the same buffers again takes (almost)
    no new page faults. Without it, glibc returns the freed memory and every round faults it in again
    (measured: about 4,500 faults over 5 rounds of 36 MB; at least 90 even if every page were a 2 MiB huge page)."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", _FAULTS_SCRIPT, "keep"], capture_output=True, text=True, check=True)
    applied, faults = out.stdout.split()
    if applied != "True":
        pytest.skip("the C library is not glibc: keep_freed_memory changes nothing")
    assert int(faults) < 50, f"{faults} page faults in 5 rounds of reused buffers"
