"""Run configuration: YAML + overrides, unknown keys named in the error, shipped configs valid."""

import pytest
import yaml

from largekernel3d.training.config import DEFAULTS, ConfigError, build_config, parse_override, read_yaml


def test_overrides_are_parsed_as_yaml():
    assert parse_override("train.epochs=3") == {"train": {"epochs": 3}}
    assert parse_override("train.lr=0.5") == {"train": {"lr": 0.5}}
    assert parse_override("model.stage_kernel_sizes=[5,5,3,3]") == {"model": {"stage_kernel_sizes": [5, 5, 3, 3]}}
    assert parse_override("data.root=null") == {"data": {"root": None}}
    assert parse_override("name=abc") == {"name": "abc"}
    with pytest.raises(ConfigError, match="section.key=value"):
        parse_override("train.epochs")


def test_build_config_merges_file_then_overrides():
    cfg = build_config({"train": {"epochs": 5, "lr": 0.2}}, ["train.epochs=7", "data.voxel_size=0.1"])
    assert cfg["train"]["epochs"] == 7 and cfg["train"]["lr"] == 0.2 and cfg["data"]["voxel_size"] == 0.1
    assert cfg["train"]["batch_size"] == DEFAULTS["train"]["batch_size"]
    assert DEFAULTS["train"]["epochs"] == 10  # defaults untouched


def test_unknown_keys_are_named():
    with pytest.raises(ConfigError, match="unknown config key 'train.epoch'"):
        build_config({}, ["train.epoch=3"])
    with pytest.raises(ConfigError, match="unknown config key 'trian'"):
        build_config({"trian": {"epochs": 1}}, source="my.yaml")
    with pytest.raises(ConfigError, match="my.yaml: unknown config key 'data.voxelsize'"):
        build_config({"data": {"voxelsize": 0.1}}, source="my.yaml")


def test_bad_values_are_named():
    with pytest.raises(ConfigError, match="'train.optimizer'"):
        build_config({}, ["train.optimizer=adam"])
    with pytest.raises(ConfigError, match="'data.voxel_size'"):
        build_config({}, ["data.voxel_size=-1"])
    with pytest.raises(ConfigError, match="'data.root'"):
        build_config({"data": {"dataset": "scannet"}})
    with pytest.raises(ConfigError, match="is a section"):
        build_config({}, ["train=3"])


def test_changing_the_model_name_drops_the_old_models_keys():
    cfg = build_config(
        {"model": {"name": "largekernel3d_seg", "stage_kernel_sizes": [7, 7, 7, 7]}}, ["model.name=minkunet14a"]
    )
    assert cfg["model"] == {"name": "minkunet14a"}
    cfg = build_config({"model": {"name": "largekernel3d_seg"}}, ["model.position_encoding=false"])
    assert cfg["model"] == {"name": "largekernel3d_seg", "position_encoding": False}


def test_read_yaml_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        read_yaml(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [1, 2\n")
    with pytest.raises(ConfigError, match="bad.yaml"):
        read_yaml(bad)
    listy = tmp_path / "list.yaml"
    listy.write_text(yaml.safe_dump([1, 2]))
    with pytest.raises(ConfigError, match="list.yaml"):
        read_yaml(listy)


def test_scannet_label_table_keys_reach_the_official_reader(tmp_path):
    """data.label_map / data.unknown_labels: ScanNet's official layout only, passed to its reader (a raw id the
    table lacks is an error by default, ignored when asked)."""
    import sys
    from pathlib import Path

    from largekernel3d.data import IGNORE_INDEX
    from largekernel3d.training.setup import build_scene_split

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data"))
    from test_scannet import make_scene, write_label_table, write_official

    with pytest.raises(ConfigError, match="'data.label_map' / 'data.unknown_labels' apply to dataset 'scannet'"):
        build_config({"data": {"dataset": "s3dis", "root": str(tmp_path), "unknown_labels": "ignore"}})
    with pytest.raises(ConfigError, match="'data.unknown_labels'"):
        build_config({}, ["data.unknown_labels=skip"])
    xyz, rgb, nyu = make_scene(40, seed=4)
    nyu[:2] = [1, 2]
    for name in ("scene0400_00", "scene0401_00"):
        write_official(tmp_path, name, xyz, rgb, nyu, table=False)
    table = tmp_path / "short.tsv"
    write_label_table(table, [(n + 100, n) for n in range(2, 41)])  # no raw id of NYU40 1 (wall)
    scenes = {"train_scenes": ["scene0400_00"], "val_scenes": ["scene0401_00"]}
    base = {"dataset": "scannet", "root": str(tmp_path), **scenes}
    split = build_scene_split(build_config({"data": dict(base, label_map=str(table), unknown_labels="ignore")}))
    labels = split.train[0].labels
    assert labels[0] == IGNORE_INDEX and labels[1] == 1  # wall ignored, floor kept
    with pytest.raises(ValueError, match=r"raw-category ids \[101\].*data.unknown_labels"):
        build_scene_split(build_config({"data": dict(base, label_map=str(table))})).train[0]
