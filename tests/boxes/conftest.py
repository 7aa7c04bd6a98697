"""Fixtures of the box tests."""

import numpy as np
import pytest

from boxes_reference import SHARED_DATA
from helpers import torch_threads


@pytest.fixture(autouse=True, scope="module")
def single_thread():
    """One torch thread (the box operations are many small kernels; shared 2-core machines); restored after."""
    with torch_threads(1):
        yield


@pytest.fixture
def rng():
    """A seeded generator (each test gets the same fresh stream)."""
    return np.random.default_rng(20240611)


@pytest.fixture
def shared_data():
    """``../shared/data`` beside the repository (the test is skipped when it is absent)."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not present")
    return SHARED_DATA.resolve()
