"""Checkpoints: written atomically, loaded with clear errors.

A checkpoint is a ``torch.save`` dict::

    {"format": 1, "epoch": e, "step": s, "model": state_dict, "optimizer": ..., "scheduler": ...,
     "scaler": ..., "rng": {...}, "config": {...}, "architecture": {"name": ..., "digest": ...,
     "shapes": {param: shape}}, "best_miou": ..., "history": [...]}

Writes go to ``<name>.tmp`` in the same folder, are flushed to disk and then moved over the target with
``os.replace`` (atomic on POSIX), so a crash leaves either the old or the new checkpoint, never half of one.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import random
import zipfile
from pathlib import Path
from typing import Any, Dict, Mapping

import numpy as np
import torch
from torch import nn

CHECKPOINT_FORMAT = 1


class CheckpointError(ValueError):
    """A checkpoint file is missing, corrupt, or belongs to another architecture."""


def architecture_signature(model: nn.Module, name: str) -> Dict[str, Any]:
    """``{"name", "digest", "shapes"}``: the model name and the shape of every state-dict entry; the
    digest is the SHA-1 of the sorted ``name:shape`` list."""
    shapes = {k: list(v.shape) for k, v in _unwrap(model).state_dict().items()}
    text = "\n".join(f"{k}:{shapes[k]}" for k in sorted(shapes))
    return {"name": str(name), "digest": hashlib.sha1(text.encode()).hexdigest(), "shapes": shapes}


def rng_state() -> Dict[str, Any]:
    """The state of Python's, NumPy's and torch's global generators (and CUDA's when present)."""
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Mapping[str, Any]) -> None:
    """Restore the generators saved by :func:`rng_state`."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(payload: Mapping[str, Any], path: Path) -> Path:
    """Write ``payload`` to ``path`` atomically (temporary file, fsync, ``os.replace``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        torch.save(dict(payload, format=CHECKPOINT_FORMAT), f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


def load_checkpoint(path: Path, map_location: Any = "cpu") -> Dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`; a missing, truncated or foreign file raises
    :class:`CheckpointError` naming the file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        # weights_only=False: the payload holds RNG states (numpy arrays, tuples) written by this library.
        payload = torch.load(path, map_location=map_location, weights_only=False)
    except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, OSError, ValueError) as err:
        raise CheckpointError(f"checkpoint {path} is corrupt or not a torch checkpoint ({err})") from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT or "model" not in payload:
        raise CheckpointError(
            f"checkpoint {path} is not a largekernel3d checkpoint (format "
            f"{CHECKPOINT_FORMAT} with a 'model' entry expected)"
        )
    return payload


def check_architecture(payload: Mapping[str, Any], model: nn.Module, name: str, path: Path) -> None:
    """Raise :class:`CheckpointError` when ``payload`` was saved from a different architecture than
    ``model``, naming the file and the first differing parameter."""
    saved = payload.get("architecture", {})
    mine = architecture_signature(model, name)
    if saved.get("digest") == mine["digest"]:
        return
    a, b = saved.get("shapes", {}), mine["shapes"]
    detail = ""
    for key in sorted(set(a) | set(b)):
        if a.get(key) != b.get(key):
            detail = f"; first difference at '{key}': checkpoint {a.get(key, 'absent')} vs model {b.get(key, 'absent')}"
            break
    raise CheckpointError(
        f"checkpoint {path} was saved from architecture '{saved.get('name', '?')}' "
        f"({len(a)} tensors) but the model is '{name}' ({len(b)} tensors){detail}; "
        f"use the config the checkpoint was trained with"
    )


def _unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model
