"""Run configuration: a nested mapping with a fixed schema, loaded from YAML and overridden from the
command line.

Every section except ``model`` has a fixed set of keys (a :class:`ConfigSchema`: :data:`SEG_SCHEMA` for
segmentation, whose defaults are :data:`DEFAULTS`; the detection schema lives in :mod:`.det_config`); a YAML
file or an override that names another key raises a :class:`ConfigError` naming the key and the keys that
exist. The ``model`` section is handed to the model builder (plus what the data decides, e.g. ``in_channels``
and ``num_classes``), which checks its own keys.

Overrides are ``dotted.key=value`` strings; the value is parsed as YAML (``3`` -> int, ``0.1`` ->
float, ``[7,7,7,7]`` -> list, ``null`` -> None, anything else a string).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, FrozenSet, Iterable, Mapping, Optional, Tuple

import yaml

OPEN_SECTIONS = ("model",)

DEFAULTS: Dict[str, Any] = {
    "name": "seg",
    "task": "seg",
    "seed": 0,
    "output_dir": "runs/seg",
    "data": {
        "dataset": "generated",  # generated | scannet | s3dis | semantickitti
        "root": None,  # data folder (not used by 'generated')
        "train_scenes": None,  # explicit scene names (None = automatic split)
        "val_scenes": None,
        "val_fraction": 0.25,  # automatic split: fraction of ROOMS held out for validation
        "label_map": None,  # scannet official layout: scannetv2-labels.combined.tsv (None = found next to scans/)
        "unknown_labels": "error",  # scannet official layout: raw ids missing from that table: error | ignore
        "num_train_scenes": 24,  # generated data only
        "num_val_scenes": 6,
        "points_per_scene": 40000,
        "generator_seed": 0,
        "voxel_size": 0.05,  # metres
        "augment": True,  # z-rotation, flips, scaling, jitter, colour jitter
        "elastic": False,  # elastic distortion (slow; paper-style training only)
        "num_workers": 0,
    },
    "model": {"name": "largekernel3d_seg"},
    "train": {
        "epochs": 10,
        "batch_size": 2,
        "optimizer": "sgd",  # sgd | adamw
        "lr": 0.1,
        "momentum": 0.9,
        "weight_decay": 1.0e-4,
        "scheduler": "cosine",  # cosine | poly | constant
        "warmup_steps": 0,
        "grad_clip": 0.0,  # 0 = off; otherwise max global grad norm
        "label_smoothing": 0.0,
        "device": "auto",  # auto | cpu | cuda | cuda:N
        "amp": True,  # mixed precision (GPU only)
        "sync_bn": True,  # SyncBatchNorm with several GPU processes
        "eval_every": 1,  # epochs between validations (0 = only at the end)
        "checkpoint_every_steps": 0,  # extra mid-epoch checkpoints (0 = once per epoch)
        "threads": 0,  # torch intra-op threads (0 = leave as is)
        "progress": True,  # tqdm progress bars
    },
    "eval": {
        "batch_size": 1,
    },
}


class ConfigError(ValueError):
    """A configuration key that does not exist, or a value of the wrong kind."""


def merge(base: Mapping[str, Any], update: Mapping[str, Any], where: str = "") -> Dict[str, Any]:
    """``base`` updated recursively by ``update``; keys of ``update`` must exist in ``base`` except inside
    the open sections (``model``)."""
    out = copy.deepcopy(dict(base))
    for key, value in update.items():
        dotted = f"{where}{key}"
        open_section = where.split(".")[0] in OPEN_SECTIONS if where else False
        if key not in out and not open_section:
            known = ", ".join(sorted(out))
            raise ConfigError(
                f"unknown config key '{dotted}' (known keys{' in ' + where[:-1] if where else ''}: {known})"
            )
        if isinstance(out.get(key), dict) and not isinstance(value, Mapping):
            raise ConfigError(f"config key '{dotted}' is a section; give it a mapping, not {value!r}")
        if isinstance(out.get(key), dict):
            if key in OPEN_SECTIONS and not where and "name" in value and value["name"] != out[key].get("name"):
                out[key] = {}  # a different model: its keys replace the old model's keys entirely
            out[key] = merge(out[key], value, f"{dotted}.")
        else:
            out[key] = copy.deepcopy(value)
    return out


def parse_override(text: str) -> Dict[str, Any]:
    """``"a.b.c=value"`` -> ``{"a": {"b": {"c": value}}}`` with ``value`` parsed as YAML."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like section.key=value")
    key, raw = text.split("=", 1)
    parts = [p for p in key.strip().split(".")]
    if not all(parts):
        raise ConfigError(f"override {text!r} has an empty key part")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as err:
        raise ConfigError(f"override {text!r}: value is not valid YAML ({err})") from None
    out: Dict[str, Any] = {parts[-1]: value}
    for p in reversed(parts[:-1]):
        out = {p: out}
    return out


def read_yaml(path: Path) -> Dict[str, Any]:
    """A YAML file as a dict, with errors naming the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"config file {path} is not valid YAML: {err}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping at top level, got {type(data).__name__}")
    return data


@dataclass(frozen=True)
class ConfigSchema:
    """The fixed shape of a task's run configuration.

    Attributes:
        defaults: every section and key with its default value (``model`` is open).
        choices: ``(section, key) -> allowed values``.
        positive: ``(section, key)`` entries that must be positive numbers.
        check: further checks of the whole configuration (raise :class:`ConfigError`).
    """

    defaults: Mapping[str, Any]
    choices: Mapping[Tuple[str, str], Tuple[Any, ...]]
    positive: FrozenSet[Tuple[str, str]]
    check: Optional[Callable[[Mapping[str, Any]], None]] = None


def build_config(
    file_data: Optional[Mapping[str, Any]] = None,
    overrides: Iterable[str] = (),
    source: str = "<config>",
    schema: Optional[ConfigSchema] = None,
) -> Dict[str, Any]:
    """``schema.defaults`` (default: segmentation's :data:`DEFAULTS`) merged with ``file_data`` and then
    with each override in order; validated against ``schema``."""
    schema = schema or SEG_SCHEMA
    try:
        cfg = merge(schema.defaults, file_data or {})
    except ConfigError as err:
        raise ConfigError(f"{source}: {err}") from None
    for text in overrides:
        try:
            cfg = merge(cfg, parse_override(text))
        except ConfigError as err:
            raise ConfigError(f"--set {text}: {err}") from None
    validate(cfg, schema)
    return cfg


def validate(cfg: Mapping[str, Any], schema: Optional[ConfigSchema] = None) -> None:
    """Check choices and ranges of ``schema`` (default: segmentation's); raise :class:`ConfigError` naming the
    key."""
    schema = schema or SEG_SCHEMA
    for (sec, key), choices in schema.choices.items():
        if cfg[sec][key] not in choices:
            raise ConfigError(
                f"config key '{sec}.{key}' = {cfg[sec][key]!r}; choose one of {', '.join(str(c) for c in choices)}"
            )
    for sec, key in sorted(schema.positive):
        value = cfg[sec][key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise ConfigError(f"config key '{sec}.{key}' must be a positive number, got {value!r}")
    if not isinstance(cfg["model"].get("name"), str):
        raise ConfigError(
            "config key 'model.name' must name a model (e.g. largekernel3d_seg, minkunet34c, centerpoint_largekernel3d)"
        )
    if schema.check is not None:
        schema.check(cfg)


def _check_segmentation(cfg: Mapping[str, Any]) -> None:
    if cfg["task"] != "seg":
        raise ConfigError(
            f"config key 'task' = {cfg['task']!r}: this is a segmentation configuration ('seg'); "
            f"detection runs use lk3d train det"
        )
    if cfg["data"]["dataset"] != "generated" and not cfg["data"]["root"]:
        raise ConfigError(f"config key 'data.root' must name the data folder for dataset '{cfg['data']['dataset']}'")
    if not 0 < float(cfg["data"]["val_fraction"]) < 1:
        raise ConfigError(f"config key 'data.val_fraction' must lie in (0, 1), got {cfg['data']['val_fraction']!r}")
    d = cfg["data"]
    if d["dataset"] != "scannet" and (d["label_map"] is not None or d["unknown_labels"] != "error"):
        raise ConfigError(
            "config keys 'data.label_map' / 'data.unknown_labels' apply to dataset 'scannet' (its official layout) "
            f"only; this run reads '{d['dataset']}'"
        )


SEG_SCHEMA = ConfigSchema(
    defaults=DEFAULTS,
    choices={
        ("data", "dataset"): ("generated", "scannet", "s3dis", "semantickitti"),
        ("data", "unknown_labels"): ("error", "ignore"),
        ("train", "optimizer"): ("sgd", "adamw"),
        ("train", "scheduler"): ("cosine", "poly", "constant"),
    },
    positive=frozenset(
        {
            ("data", "voxel_size"),
            ("train", "epochs"),
            ("train", "batch_size"),
            ("train", "lr"),
            ("eval", "batch_size"),
            ("data", "points_per_scene"),
        }
    ),
    check=_check_segmentation,
)
"""The segmentation run configuration."""


def dump(cfg: Mapping[str, Any]) -> str:
    """The configuration as YAML text."""
    return yaml.safe_dump(dict(cfg), sort_keys=False)
