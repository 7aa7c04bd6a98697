"""From a run configuration to the objects a run needs: datasets (with the train/val split), the
voxelised views, the network, the optimiser and the learning-rate schedule.

Learning rate at optimiser step ``t`` of ``T`` (``W`` warm-up steps, base rate ``lr``)::

    warm-up   lr * (t + 1) / W                     for t < W
    cosine    lr * 0.5 * (1 + cos(pi * t / T))
    poly      lr * (1 - t / T) ** 0.9
    constant  lr
    onecycle  one-cycle (Smith): cosine rise from lr / 10 to lr over the first 40 % of the steps, then cosine
              decay to lr / 1e5; Adam's beta1 (or SGD's momentum) cycles 0.95 -> 0.85 -> 0.95 (OpenPCDet's
              ``adam_onecycle``; warm-up steps are ignored)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

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


class SceneSubset:
    """The scenes of ``dataset`` named ``names`` (in that order), as a dataset of the same classes."""

    def __init__(self, dataset, names: Sequence[str]) -> None:
        position = {n: i for i, n in enumerate(dataset.scene_names)}
        missing = [n for n in names if n not in position]
        if missing:
            raise ConfigError(f"scenes {missing[:5]} are not in {dataset!r}")
        self.dataset = dataset
        self.scene_names = list(names)
        self.class_names = dataset.class_names
        self._index = [position[n] for n in names]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def __len__(self) -> int:
        return len(self._index)

    def __getitem__(self, index: int):
        return self.dataset[self._index[index]]

    def __repr__(self) -> str:
        return f"SceneSubset({self.dataset!r}, {len(self)} scenes)"


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
    if kind == "scannet":
        everything = D.ScanNetDataset(root, label_map=d["label_map"], unknown_labels=d["unknown_labels"])
    else:
        everything = {"s3dis": D.S3DISDataset, "semantickitti": D.SemanticKITTIDataset}[kind](root)
    names = list(everything.scene_names)
    train_names, val_names = d["train_scenes"], d["val_scenes"]
    if train_names is None and val_names is None:
        train_names, val_names = D.split_scenes_by_room(names, float(d["val_fraction"]), seed=int(cfg["seed"]))
    elif train_names is None:
        train_names = [n for n in names if n not in set(val_names)]
    elif val_names is None:
        val_names = [n for n in names if n not in set(train_names)]
    for key, chosen in (("data.train_scenes", train_names), ("data.val_scenes", val_names)):
        missing = sorted(set(chosen) - set(names))
        if missing:
            raise ConfigError(f"config key '{key}' names scenes not found in {root}: {missing[:5]}")
    train = SceneSubset(everything, list(train_names))
    val = SceneSubset(everything, list(val_names)) if val_names else None
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

    return D.VoxelizedSegmentation(
        dataset,
        float(cfg["data"]["voxel_size"]),
        transforms=build_transforms(cfg) if train else None,
        seed=int(cfg["seed"]),
    )


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
    for _name, p in model.named_parameters():
        if p.requires_grad:
            (no_decay if p.ndim <= 1 else decay).append(p)
    groups = [{"params": decay, "weight_decay": float(t["weight_decay"])}, {"params": no_decay, "weight_decay": 0.0}]
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
    """A per-step ``LambdaLR`` following :func:`lr_factor`, or torch's ``OneCycleLR`` for ``onecycle``."""
    t = cfg["train"]
    kind, warmup = str(t["scheduler"]), int(t["warmup_steps"])
    if kind == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer,
            max_lr=float(t["lr"]),
            total_steps=max(total_steps, 1),
            pct_start=0.4,
            div_factor=10.0,
            final_div_factor=1e4,
            base_momentum=0.85,
            max_momentum=0.95,
        )
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, total_steps, kind, warmup))
