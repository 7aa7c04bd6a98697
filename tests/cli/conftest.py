"""Fixtures of the CLI tests: a tiny YAML run configuration written to a temporary folder."""

import pytest
import yaml

from cli_tiny import TINY
from helpers import torch_threads


@pytest.fixture
def tiny_yaml(tmp_path):
    """Path of a YAML config for a one-epoch run of a width-8 network on two 1500-point scenes."""
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(dict(TINY, output_dir=str(tmp_path / "run"))))
    return path


@pytest.fixture(autouse=True, scope="module")
def single_thread():
    """One torch/numba thread (shared 2-core CI machines); restored afterwards."""
    with torch_threads(1):
        yield
