"""``lk3d models``: one row per shipped config and per registered name, with the real parameter counts."""

from __future__ import annotations

import re

from largekernel3d.cli.main import main
from largekernel3d.cli.models import describe
from largekernel3d.cli.run_configs import load_run_config, shipped_configs
from largekernel3d.data import IN_CHANNELS
from largekernel3d.models import MODEL_NAMES, build_model, count_parameters


def table_rows(text: str) -> dict:
    rows = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 3 and re.fullmatch(r"[\d,]+", cells[-1]):
            rows.setdefault(cells[0], cells)
    return rows


def test_lk3d_models_lists_configs_and_names_with_parameter_counts(capsys):
    assert main(["models", "--num-classes", "13"]) == 0
    rows = table_rows(capsys.readouterr().out)
    assert set(shipped_configs()) | set(MODEL_NAMES) <= set(rows)
    # a small shipped config, built for real on the CPU, has the printed count
    cfg = load_run_config("fast")
    model = build_model(dict(cfg["model"], in_channels=IN_CHANNELS, num_classes=int(rows["fast"][3])))
    assert rows["fast"][-1] == f"{count_parameters(model):,}"
    # registered names use --num-classes
    net = build_model({"name": "minkunet14a", "in_channels": IN_CHANNELS, "num_classes": 13})
    assert rows["minkunet14a"][-1] == f"{count_parameters(net):,}"


def test_describe_names_the_encoder_choice():
    assert describe({"name": "minkunet34c"}) == "plain 3,3,3,3"
    assert describe({"name": "largekernel3d_seg"}) == "swlk 7,7,7,7"
    assert (
        describe(
            {
                "name": "largekernel3d_seg",
                "stage_conv_types": ["plain", "swlk", "swlk", "swlk"],
                "stage_kernel_sizes": [3, 7, 7, 7],
                "position_encoding": False,
            }
        )
        == "plain/swlk/swlk/swlk 3,7,7,7, no position encoding"
    )
