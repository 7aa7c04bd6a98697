"""Interoperability with spconv 2.x: tensors (zero-copy) and weights / state dicts.

spconv is optional and imported lazily, only by :func:`from_spconv` / :func:`to_spconv`.

Weight layouts (``K`` = kernel axes)::

    ours, spconv >= 2.2   W[c_out, *k, c_in / groups]
    spconv 2.1            W21[*k, c_in, c_out]            W[c_out, *k, c_in] = W21[*k, c_in, c_out]

spconv >= 2.2 computes layers whose kernel volume is 1 (submanifold, or stride 1) as a plain matrix
product that reads the weight memory as ``[c_in, c_out]`` although the parameter's shape is
``[c_out, 1, ..., 1, c_in]``::

    spconv:  out = in @ M,   M = W.reshape(c_in, c_out)        (not in @ W.reshape(c_out, c_in)^T)

:func:`load_spconv_state_dict` converts such weights so that our layers reproduce spconv's outputs.
"""

from __future__ import annotations

from typing import Any, Dict, Mapping, Tuple

import torch
from torch import Tensor, nn

from .conv import SparseConvolution
from .tensor import SparseConvTensor

_INSTALL_HINT = ("spconv is not installed (or failed to import); install the CPU build with "
                 "`pip install spconv==2.3.8` (or the spconv-cuXXX wheel matching your CUDA)")


def _spconv_pytorch():
    """Import ``spconv.pytorch`` on demand; raise ``ImportError`` with an install hint if absent."""
    try:
        import spconv.pytorch as spconv_pytorch
    except ImportError as err:  # also raised for a broken install
        raise ImportError(f"{_INSTALL_HINT}: {err}") from err
    return spconv_pytorch


def from_spconv(t: Any, validate: bool = True) -> SparseConvTensor:
    """A :class:`SparseConvTensor` sharing ``t``'s features and indices (zero-copy).

    Args:
        t: a ``spconv.pytorch.SparseConvTensor``.
        validate: check the sites (ranges, duplicates) as our constructor does.

    spconv's kernel-map cache (``indice_dict``) is not carried over: its rulebooks are not our
    :class:`~largekernel3d.sparse.KernelMap`; our layers rebuild maps on first use.
    """
    sp = _spconv_pytorch()
    if not isinstance(t, sp.SparseConvTensor):
        raise TypeError(f"from_spconv expects a spconv.pytorch.SparseConvTensor, got {type(t).__name__}")
    return SparseConvTensor(t.features, t.indices, list(t.spatial_shape), int(t.batch_size), validate=validate)


def to_spconv(t: SparseConvTensor) -> Any:
    """A ``spconv.pytorch.SparseConvTensor`` sharing ``t``'s features and indices.

    spconv requires int32 indices: int32 indices (what every layer here produces) are shared, int64
    ones are converted (a copy). Our kernel maps are not passed on.
    """
    sp = _spconv_pytorch()
    if not isinstance(t, SparseConvTensor):
        raise TypeError(f"to_spconv expects a largekernel3d SparseConvTensor, got {type(t).__name__}")
    indices = t.indices if t.indices.dtype == torch.int32 else t.indices.to(torch.int32)
    return sp.SparseConvTensor(t.features, indices, list(t.spatial_shape), t.batch_size)


def convert_spconv21_weight(weight: Tensor) -> Tensor:
    """spconv 2.1 weight ``[*kernel, C_in, C_out]`` → ours / spconv 2.2+ ``[C_out, *kernel, C_in]``.

    ``W[o, *k, i] = W21[*k, i, o]`` (returns a contiguous copy)."""
    if weight.dim() < 3:
        raise ValueError(f"weight must have shape [*kernel, C_in, C_out] (at least 3 axes), got {tuple(weight.shape)}")
    return weight.movedim(-1, 0).contiguous()


def spconv_uses_matmul_path(module: SparseConvolution) -> bool:
    """True when spconv >= 2.2 runs this layer as ``in @ W.reshape(C_in, C_out)`` (kernel volume 1 and a
    submanifold conv, or all strides 1)."""
    return module.geometry.kernel_volume == 1 and (module.subm or all(s == 1 for s in module.geometry.stride))


def _parse_version(version: str) -> Tuple[int, int]:
    try:
        major, minor = (int(v) for v in str(version).split(".")[:2])
    except ValueError:
        raise ValueError(f"spconv_version must look like '2.3', got {version!r}") from None
    if major != 2:
        raise ValueError(f"only spconv 2.x state dicts are supported, got spconv_version={version!r}")
    return major, minor


def convert_spconv_state_dict(module: nn.Module, state_dict: Mapping[str, Tensor], spconv_version: str = "2.3",
                              ) -> Dict[str, Tensor]:
    """The ``state_dict`` of a spconv 2.x network rewritten for the same module tree built from our layers.

    For every :class:`SparseConvolution` ``m`` under ``module`` (key prefix ``p``), ``p + "weight"`` is
    converted from the spconv 2.1 layout when ``spconv_version`` is ``"2.1"``; for spconv >= 2.2 the
    weights of layers spconv runs as a matrix product (see :func:`spconv_uses_matmul_path`) are rewritten
    ``W[o, 0.., i] = W_sp.reshape(C_in, C_out)[i, o]``. Other entries are passed through unchanged.
    """
    _, minor = _parse_version(spconv_version)
    out = dict(state_dict)
    for name, sub in module.named_modules():
        if not isinstance(sub, SparseConvolution):
            continue
        key = f"{name}.weight" if name else "weight"
        if key not in out:
            continue
        w = out[key]
        expected = tuple(sub.weight.shape)
        if minor <= 1:
            w = convert_spconv21_weight(w)
        elif spconv_uses_matmul_path(sub) and tuple(w.shape) == expected:
            w = w.reshape(sub.in_channels, sub.out_channels).t().reshape(expected).contiguous()
        if tuple(w.shape) != expected:
            raise ValueError(f"state_dict[{key!r}] has shape {tuple(out[key].shape)}, which does not give "
                             f"{expected} ([C_out, *kernel, C_in/groups]) for {type(sub).__name__} with "
                             f"spconv_version={spconv_version!r}; pass spconv_version='2.1' for "
                             f"[*kernel, C_in, C_out] weights")
        out[key] = w
    return out


def load_spconv_state_dict(module: nn.Module, state_dict: Mapping[str, Tensor], spconv_version: str = "2.3",
                           strict: bool = True):
    """Load a spconv 2.x ``state_dict`` into ``module`` (our layers, same names), reproducing spconv's
    outputs (including its 1×1 layer quirk, see the module docstring); returns what
    ``nn.Module.load_state_dict`` returns."""
    return module.load_state_dict(convert_spconv_state_dict(module, state_dict, spconv_version), strict=strict)


__all__ = ["from_spconv", "to_spconv", "convert_spconv21_weight", "convert_spconv_state_dict",
           "load_spconv_state_dict", "spconv_uses_matmul_path"]
