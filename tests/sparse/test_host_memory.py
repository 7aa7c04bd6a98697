"""``largekernel3d.sparse.host_memory``: numpy-backed CPU buffers."""

from __future__ import annotations

import pytest
import torch

from largekernel3d.sparse import host_memory


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.int32, torch.int64])
def test_buffers_have_the_shape_and_dtype_asked_for(dtype):
    a = host_memory.empty((5, 3), dtype)
    z = host_memory.zeros((4, 2), dtype)
    assert a.shape == (5, 3) and a.dtype == dtype and a.device.type == "cpu" and a.is_contiguous()
    assert z.shape == (4, 2) and z.dtype == dtype and not bool(z.any())
    a.fill_(7)  # writable, and usable as an ``out=`` of torch ops
    torch.mm(torch.ones(5, 2, dtype=torch.float64), torch.ones(2, 2, dtype=torch.float64),
             out=host_memory.empty((5, 2), torch.float64))
    assert bool((a == 7).all())


def test_unsupported_dtype_is_named():
    with pytest.raises(TypeError, match="float16"):
        host_memory.empty((2,), torch.float16)
