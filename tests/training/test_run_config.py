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
