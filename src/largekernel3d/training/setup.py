"""From a run configuration to the objects a run needs: datasets (with the train/val split), the
voxelised views, the network, the optimiser and the learning-rate schedule.

Learning rate at optimiser step ``t`` of ``T`` (``W`` warm-up steps, base rate ``lr``)::

    warm-up   lr * (t + 1) / W                     for t < W
    cosine    lr * 0.5 * (1 + cos(pi * t / T))
    poly      lr * (1 - t / T) ** 0.9
    constant  lr
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, List, Mapping, Optional, Sequence, Tuple

import torch
from torch import nn

from .config import ConfigError


@dataclass(frozen=True)
class SceneSplit:
    """The point-cloud datasets of a run: ``train`` and ``val`` (``val`` may be ``None``)."""

    train: Any
    val: Any
    class_names: Sequence[str]
    num_classes: int


def room_of(scene_name: str) -> str:
    """The room id of a ScanNet scan name: ``scene0003_01`` -> ``scene0003`` (scans of one room share it)."""
    return scene_name.rsplit("_", 1)[0] if "_" in scene_name else scene_name


def split_by_room(names: Sequence[str], val_fraction: float) -> Tuple[List[str], List[str]]:
    """Deterministic train/val split that keeps all scans of a room on one side: the sorted rooms are
    taken and every ``round(1 / val_fraction)``-th room (starting with the last) goes to validation."""
    rooms = sorted({room_of(n) for n in names})
    if len(rooms) < 2:
        raise ValueError(f"need scans of at least two rooms to split by room, got rooms {rooms}")
    n_val = max(1, min(len(rooms) - 1, round(len(rooms) * val_fraction)))
    stride = len(rooms) / n_val
    val_rooms = {rooms[len(rooms) - 1 - int(i * stride)] for i in range(n_val)}
    train = [n for n in names if room_of(n) not in val_rooms]
    val = [n for n in names if room_of(n) in val_rooms]
    return train, val


def build_scene_split(cfg: Mapping[str, Any]) -> SceneSplit:
    """The train/val point-cloud datasets described by ``cfg["data"]``."""
    from .. import data as D

    d = cfg["data"]
    kind = d["dataset"]
    if kind == "generated":
        n_tr, n_va = int(d["num_train_scenes"]), int(d["num_val_scenes"])
        seed, pts = int(d["generator_seed"]), int(d["points_per_scene"])
        train = D.GeneratedIndoorDataset(n_tr, seed=seed, points_per_scene=pts)
        # held-out scenes come from a different generator stream, never seen in training
        val = D.GeneratedIndoorDataset(n_va, seed=seed + 1_000_003, points_per_scene=pts) if n_va > 0 else None
        return SceneSplit(train, val, list(train.class_names), int(train.num_classes))
    root = Path(d["root"]).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"data.root: data folder {root} does not exist (dataset '{kind}')")
    cls = {"scannet": D.ScanNetDataset, "s3dis": D.S3DISDataset, "semantickitti": D.SemanticKITTIDataset}[kind]
    everything = cls(root)
    names = list(everything.scene_names)
    train_names, val_names = d["train_scenes"], d["val_scenes"]
    if train_names is None and val_names is None:
        train_names, val_names = split_by_room(names, float(d["val_fraction"]))
    elif train_names is None:
        train_names = [n for n in names if n not in set(val_names)]
    elif val_names is None:
        val_names = [n for n in names if n not in set(train_names)]
    for key, chosen in (("data.train_scenes", train_names), ("data.val_scenes", val_names)):
        missing = sorted(set(chosen) - set(names))
        if missing:
            raise ConfigError(f"config key '{key}' names scenes not found in {root}: {missing[:5]}")
    train = cls(root, scenes=list(train_names))
    val = cls(root, scenes=list(val_names)) if val_names else None
    return SceneSplit(train, val, list(train.class_names), int(train.num_classes))


def build_transforms(cfg: Mapping[str, Any]):
    """The training augmentations of ``cfg["data"]`` (``None`` when ``augment`` is off)."""
    from .. import data as D

    d = cfg["data"]
    if not d["augment"]:
        return None
    steps = [D.RandomRotateZ(), D.RandomFlip(), D.RandomScale(), D.RandomJitter(), D.ColorJitter()]
    if d["elastic"]:
        steps.append(D.ElasticDistortion())
    return D.Compose(steps)


def voxelize(dataset, cfg: Mapping[str, Any], train: bool):
    """The voxelised view of a point-cloud dataset (augmented when ``train``)."""
    from .. import data as D

    return D.VoxelizedSegmentation(dataset, float(cfg["data"]["voxel_size"]),
                                   transforms=build_transforms(cfg) if train else None, seed=int(cfg["seed"]))


def build_network(cfg: Mapping[str, Any], num_classes: int) -> nn.Module:
    """``largekernel3d.models.build_model`` on ``cfg["model"]`` with the data's channels and classes."""
    from .. import data as D
    from ..models import build_model

    model_cfg = dict(cfg["model"])
    for key in ("in_channels", "num_classes"):
        if key in model_cfg:
            raise ConfigError(f"config key 'model.{key}' is set by the data; remove it from the config")
    model_cfg.update(in_channels=D.IN_CHANNELS, num_classes=num_classes)
    try:
        return build_model(model_cfg)
    except (KeyError, TypeError) as err:
        raise ConfigError(f"config section 'model': {err}") from None


def build_optimizer(model: nn.Module, cfg: Mapping[str, Any]) -> torch.optim.Optimizer:
    """SGD (momentum, Nesterov off) or AdamW from ``cfg["train"]``; no weight decay on norms and biases."""
    t = cfg["train"]
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (no_decay if p.ndim <= 1 else decay).append(p)
    groups = [{"params": decay, "weight_decay": float(t["weight_decay"])},
              {"params": no_decay, "weight_decay": 0.0}]
    if t["optimizer"] == "sgd":
        return torch.optim.SGD(groups, lr=float(t["lr"]), momentum=float(t["momentum"]))
    return torch.optim.AdamW(groups, lr=float(t["lr"]))


def lr_factor(step: int, total: int, kind: str, warmup: int) -> float:
    """The multiplier of the base learning rate at step ``step`` of ``total`` (module docstring)."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    frac = min(max(step / max(total, 1), 0.0), 1.0)
    if kind == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * frac))
    if kind == "poly":
        return (1.0 - frac) ** 0.9
    return 1.0


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: Mapping[str, Any], total_steps: int):
    """A per-step ``LambdaLR`` following :func:`lr_factor`."""
    t = cfg["train"]
    kind, warmup = str(t["scheduler"]), int(t["warmup_steps"])
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, total_steps, kind, warmup))
