"""Fixtures of the training tests: a tiny run configuration on generated scenes (seconds per run)."""

import pytest

from helpers import torch_threads
from seg_tiny import tiny_run_config


@pytest.fixture(scope="session")
def tiny_config():
    """``tiny_config(output_dir, overrides=())`` -> a validated tiny run configuration."""
    return tiny_run_config


@pytest.fixture(autouse=True, scope="module")
def single_thread():
    """One torch (and hence numba) thread: on a shared 2-core CI machine, 2 spinning threads per
    process make tiny sparse convs many times slower. Restored afterwards."""
    with torch_threads(1):
        yield
