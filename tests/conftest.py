"""Shared pytest fixtures. Reusable helpers (random sparse tensors, dense references) live in
``tests/helpers.py`` (importable as ``helpers`` because pytest puts this folder on ``sys.path``)."""

from __future__ import annotations

import pytest

from helpers import random_sparse_tensor, torch_threads


@pytest.fixture
def make_sparse():
    """Factory of random sparse tensors: ``make_sparse(spatial_shape, channels, num_sites=..., ...)``."""
    return random_sparse_tensor


@pytest.fixture
def one_thread():
    """Run the test with ``torch.set_num_threads(1)`` (spconv's CPU kernels race with more threads);
    restores the previous setting afterwards."""
    with torch_threads(1):
        yield
