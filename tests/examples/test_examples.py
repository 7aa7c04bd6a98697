"""Every script of ``examples/`` runs in a child process on small inputs and reports ``OK`` (each script checks
its own result: against spconv when installed, or an exact conversion identity)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
ARGS = {
    "port_openpcdet_backbone.py": ["--voxel-size", "0.4"],
    "load_spconv_checkpoint.py": ["--sites", "300"],
    "convert_plain_to_swlk.py": ["--sites", "400", "--channels", "8"],
}


def test_every_example_is_listed():
    assert sorted(p.name for p in EXAMPLES.glob("*.py")) == sorted(ARGS)


@pytest.mark.parametrize("script", sorted(ARGS))
def test_example_runs(script):
    proc = subprocess.run(
        [sys.executable, "-W", "ignore", str(EXAMPLES / script), *ARGS[script]],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, f"{script} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
    assert proc.stdout.strip().splitlines()[-1] == "OK", proc.stdout
