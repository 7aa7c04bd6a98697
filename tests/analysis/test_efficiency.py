"""The efficiency table (tiny): parameter formulas, timings present, plain skipped over budget, files
written, and the ``lk3d bench efficiency`` command on the generated fallback scene."""

from __future__ import annotations

import pytest
import torch

from helpers import random_sparse_tensor
from largekernel3d.analysis.efficiency import efficiency_table, markdown_table, plot_table
from largekernel3d.cli.main import main

pytestmark = pytest.mark.usefixtures("one_thread")


def test_table_parameters_and_timings(tmp_path):
    x = random_sparse_tensor((12, 12, 12), 4, density=0.1, dtype=torch.float32)
    rows = efficiency_table(x, (3, 5), out_channels=6, repeats=1, progress=False)
    assert [r.kernel_size for r in rows] == [3, 5]
    for r in rows:
        k = r.kernel_size
        assert r.plain_params == k**3 * 4 * 6
        assert r.swlk_params == 27 * 4 * 6 + k**3 * 4 and r.swlk_encoding_params == k**3 * 4
        assert r.swlk_ms > 0 and r.plain_ms > 0 and r.map_ms > 0 and r.pairs_per_site >= 1
    assert rows[1].pairs_per_site > rows[0].pairs_per_site
    skipped = efficiency_table(x, (3, 5), repeats=1, plain_budget_s=0.0, progress=False)
    assert skipped[0].plain_ms is not None and skipped[1].plain_ms is None  # predicted over a zero budget
    md = markdown_table(skipped, "tiny", 4, 4)
    assert "| 5 |" in md and "skipped" in md
    plot_table(rows, tmp_path / "e.png", "tiny")
    assert (tmp_path / "e.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="kernel_size"):
        efficiency_table(x, (4,), repeats=1, progress=False)


def test_cli_writes_markdown_and_png_on_the_generated_scene(tmp_path, capsys):
    out = tmp_path / "eff"
    rc = main(
        [
            "bench",
            "efficiency",
            "--kernels",
            "3,5",
            "--channels",
            "4",
            "--repeats",
            "1",
            "--out-dir",
            str(out),
            "--data-root",
            str(tmp_path / "missing"),
            "--num-points",
            "3000",
            "--threads",
            "1",
        ]
    )
    assert rc == 0
    text = (out / "efficiency.md").read_text()
    assert "generated indoor scene" in text and "| 3 |" in text and "| 5 |" in text
    png = (out / "efficiency.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10000
    assert "efficiency.png" in capsys.readouterr().out
