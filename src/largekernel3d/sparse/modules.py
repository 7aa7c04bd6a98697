"""Containers: ``SparseModule``, ``SparseSequential`` and ``ToDense`` (spconv names and behaviour)."""

from __future__ import annotations

from collections import OrderedDict
from typing import List, Sequence, Union

import torch
from torch import Tensor, nn

from .compile_support import refuse_script
from .coords import decode, encode
from .kernel_map import same_sites
from .tensor import SparseConvTensor


class SparseModule(nn.Module):
    """Base class of modules that take and return a :class:`SparseConvTensor` (``name`` is accepted for
    spconv compatibility)."""

    def __init__(self, name: Union[str, None] = None) -> None:
        super().__init__()
        self.name = name

    def __prepare_scriptable__(self):
        refuse_script(type(self).__name__)


def _is_sparse_module(module: nn.Module) -> bool:
    return isinstance(module, SparseModule)


class SparseSequential(SparseModule):
    """Like ``nn.Sequential``; sparse modules get the whole tensor, plain ``torch.nn`` modules
    (BatchNorm1d, ReLU, Dropout, Linear, ...) are applied to ``features`` only.

    Accepts modules positionally, as an ``OrderedDict``, or as keyword arguments (like spconv).
    """

    def __init__(self, *args: nn.Module, **kwargs: nn.Module) -> None:
        super().__init__()
        if len(args) == 1 and isinstance(args[0], OrderedDict):
            for key, module in args[0].items():
                self.add_module(key, module)
        else:
            for idx, module in enumerate(args):
                self.add_module(str(idx), module)
        for name, module in kwargs.items():
            if name in self._modules:
                raise ValueError(f"SparseSequential got the module name {name!r} twice")
            self.add_module(name, module)

    def __len__(self) -> int:
        return len(self._modules)

    def __getitem__(self, idx: int) -> nn.Module:
        modules = [m for m in self._modules.values() if m is not None]
        if not -len(modules) <= idx < len(modules):
            raise IndexError(f"index {idx} is out of range for SparseSequential of length {len(modules)}")
        return modules[idx]

    def add(self, module: nn.Module, name: Union[str, None] = None) -> None:
        """Append ``module`` (named ``name`` or by position)."""
        name = str(len(self._modules)) if name is None else name
        if name in self._modules:
            raise KeyError(f"name {name!r} already exists in this SparseSequential")
        self.add_module(name, module)

    def forward(self, input):
        for module in self._modules.values():
            if _is_sparse_module(module) or not isinstance(input, SparseConvTensor):
                input = module(input)
            else:
                input = input.replace_feature(module(input.features))
        return input


class ToDense(SparseModule):
    """``SparseConvTensor`` → dense ``[B, C, *spatial_shape]`` (``channels_first=True``)."""

    def __init__(self, name: Union[str, None] = None, channels_first: bool = True) -> None:
        super().__init__(name)
        self.channels_first = channels_first

    def forward(self, x: SparseConvTensor) -> Tensor:
        return x.dense(channels_first=self.channels_first)


class RemoveGrid(SparseModule):
    """Drop the ``grid`` buffer of a tensor (kept for spconv compatibility)."""

    def forward(self, x: SparseConvTensor) -> SparseConvTensor:
        x.grid = None
        return x


def _on_features(forward, input):
    """Apply a ``Tensor -> Tensor`` forward to a dense tensor, or to the features of a sparse one."""
    if isinstance(input, SparseConvTensor):
        return input.replace_feature(forward(input.features))
    return forward(input)


class SparseBatchNorm(nn.BatchNorm1d):
    """``BatchNorm1d`` over the features ``[N, C]`` of a :class:`SparseConvTensor` (or a plain tensor)."""

    def forward(self, input):
        return _on_features(super().forward, input)


class SparseReLU(nn.ReLU):
    """``ReLU`` of the features of a :class:`SparseConvTensor` (or a plain tensor)."""

    def forward(self, input):
        return _on_features(super().forward, input)


class SparseSyncBatchNorm(nn.SyncBatchNorm):
    """``SyncBatchNorm`` over the features of a :class:`SparseConvTensor` (or a plain tensor); as in torch, its
    training mode needs an initialised distributed process group."""

    def forward(self, input):
        return _on_features(super().forward, input)


class Identity(nn.Module):
    """spconv's ``Identity``: returns its input (a :class:`SparseConvTensor` or anything else) unchanged."""

    def forward(self, input):
        return input

    def input_spatial_size(self, out_size):
        """The input grid that gives ``out_size``: the same."""
        return out_size


def is_spconv_module(module: nn.Module) -> bool:
    """True for the modules spconv counts as its own: ``SparseModule`` subclasses, ``SparseBatchNorm`` and
    ``SparseReLU`` (as spconv 2.3.8; not ``SparseSyncBatchNorm`` or the identities)."""
    return isinstance(module, (SparseModule, SparseBatchNorm, SparseReLU))


def is_sparse_conv(module: nn.Module) -> bool:
    """True for sparse convolutions (``SparseConvolution`` and its named subclasses)."""
    from .conv import SparseConvolution

    return isinstance(module, SparseConvolution)


def assign_name_for_sparse_modules(module: nn.Module) -> None:
    """Set ``_sparse_unique_name`` of every :class:`SparseModule` under ``module`` to its dotted name in
    ``module.named_modules()`` (spconv uses it for debugging and quantisation; nothing here reads it)."""
    for name, sub in module.named_modules():
        if isinstance(sub, SparseModule):
            sub._sparse_unique_name = name


class SparseIdentity(nn.Identity):
    """Returns its input (a :class:`SparseConvTensor` or a plain tensor) unchanged."""

    def forward(self, input):
        return input


def _check_aligned(inputs: Sequence[SparseConvTensor], module_name: str) -> None:
    if len(inputs) == 0:
        raise ValueError(f"{module_name} needs at least one SparseConvTensor")
    first = inputs[0]
    for i, t in enumerate(inputs):
        check_sparse_input(t, module_name)
        if (
            t.spatial_shape != first.spatial_shape
            or t.batch_size != first.batch_size
            or not same_sites(t.indices, first.indices)
        ):
            raise ValueError(
                f"{module_name} input {i} has other sites (or grid / batch size) than input 0; "
                f"all inputs must share their indices"
            )


class JoinTable(SparseModule):
    """Concatenate the features of tensors on the same sites: ``[N, C_1 + C_2 + ...]``."""

    def forward(self, inputs: Sequence[SparseConvTensor]) -> SparseConvTensor:
        _check_aligned(inputs, "JoinTable")
        return inputs[0].replace_feature(torch.cat([t.features for t in inputs], dim=1))


class AddTable(SparseModule):
    """Sum the features of tensors on the same sites (same channel count)."""

    def forward(self, inputs: Sequence[SparseConvTensor]) -> SparseConvTensor:
        _check_aligned(inputs, "AddTable")
        if any(t.features.shape[1] != inputs[0].features.shape[1] for t in inputs):
            raise ValueError(f"AddTable inputs have different channel counts {[t.features.shape[1] for t in inputs]}")
        total = inputs[0].features
        for t in inputs[1:]:
            total = total + t.features
        return inputs[0].replace_feature(total)


class AddTableMisaligned(SparseModule):
    """Sum the features of tensors on possibly different sites (same grid, batch size and channels): the output
    holds every site of any input, ``out[p] = sum_t in_t[p]`` (absent sites count as zero).

    When the largest input already holds every site, the output keeps its rows, their order and its kernel-map
    cache (as spconv does); otherwise the sites are sorted by (batch, axis 0, ...) and the cache starts empty, so
    a ``SparseInverseConv`` after this module cannot find the keys of earlier layers (spconv's warning too)."""

    def forward(self, inputs: Sequence[SparseConvTensor]) -> SparseConvTensor:
        if len(inputs) == 0:
            raise ValueError("AddTableMisaligned needs at least one SparseConvTensor")
        for i, t in enumerate(inputs):
            check_sparse_input(t, "AddTableMisaligned")
            if (
                t.spatial_shape != inputs[0].spatial_shape
                or t.batch_size != inputs[0].batch_size
                or t.features.shape[1] != inputs[0].features.shape[1]
            ):
                raise ValueError(
                    f"AddTableMisaligned input {i} has another grid, batch size or channel count than "
                    f"input 0 ({t.spatial_shape}, {t.batch_size}, {t.features.shape[1]} vs "
                    f"{inputs[0].spatial_shape}, {inputs[0].batch_size}, {inputs[0].features.shape[1]})"
                )
        shape = inputs[0].spatial_shape
        keys = [encode(t.indices[:, 0].long(), t.indices[:, 1:].long(), shape) for t in inputs]
        base = max(range(len(inputs)), key=lambda i: inputs[i].indices.shape[0])
        base_sorted, perm = torch.sort(keys[base])
        rows: List[Tensor] = []
        for k in keys:
            pos = torch.searchsorted(base_sorted, k).clamp_(max=max(base_sorted.numel() - 1, 0))
            if base_sorted.numel() == 0 or not bool((base_sorted[pos] == k).all()):
                break
            rows.append(perm[pos])
        if len(rows) == len(keys):  # every site is one of the largest input's: keep its rows and cache
            total = inputs[base].features
            for i, t in enumerate(inputs):
                if i != base:
                    total = total.index_add(0, rows[i], t.features)
            return inputs[base].replace_feature(total)
        union, inverse = torch.unique(torch.cat(keys), sorted=True, return_inverse=True)
        feats = torch.cat([t.features for t in inputs])
        total = feats.new_zeros((union.numel(), feats.shape[1])).index_add(0, inverse, feats)
        indices = decode(union, shape).to(inputs[0].indices.device)
        return SparseConvTensor(total, indices, shape, inputs[0].batch_size, validate=False)


class ConcatTable(SparseModule):
    """Apply every child module to the same input; returns the list of their outputs."""

    def forward(self, input) -> List:
        return [module(input) for module in self._modules.values() if module is not None]

    def add(self, module: nn.Module) -> "ConcatTable":
        """Append ``module`` (named by position)."""
        self.add_module(str(len(self._modules)), module)
        return self


def check_sparse_input(
    x, module_name: str, in_channels: Union[int, None] = None, ndim: Union[int, None] = None
) -> None:
    """Raise a clear ``TypeError``/``ValueError`` when ``x`` cannot feed ``module_name``."""
    if not isinstance(x, SparseConvTensor):
        raise TypeError(f"{module_name} expects a SparseConvTensor, got {type(x).__name__}")
    features = x.features
    if not isinstance(features, Tensor) or features.dim() != 2:
        raise ValueError(
            f"{module_name} needs features of shape [N, C], got "
            f"{tuple(features.shape) if isinstance(features, Tensor) else type(features).__name__}"
        )
    if not isinstance(x.indices, Tensor) or x.indices.dim() != 2 or x.indices.shape[0] != features.shape[0]:
        raise ValueError(
            f"{module_name} needs one feature row per site: features {tuple(features.shape)}, indices "
            f"{tuple(x.indices.shape) if isinstance(x.indices, Tensor) else type(x.indices).__name__}"
        )
    if ndim is not None and x.ndim != ndim:
        raise ValueError(f"{module_name} is {ndim}-D but the input has spatial_shape {x.spatial_shape} ({x.ndim}-D)")
    if in_channels is not None and x.features.shape[1] != in_channels:
        raise ValueError(
            f"{module_name} expects in_channels={in_channels} but the input features have "
            f"{x.features.shape[1]} channels"
        )
    if not x.features.is_floating_point():
        raise TypeError(f"{module_name} needs floating-point features, got {x.features.dtype}")


def check_parameter_match(x: SparseConvTensor, weight: Tensor, module_name: str) -> None:
    """Raise when the features and the layer's weight differ in device or dtype."""
    if x.features.device != weight.device:
        raise ValueError(
            f"{module_name} weight is on {weight.device} but the input is on "
            f"{x.features.device}; move the module or the tensor (.to(device))"
        )
    if x.features.dtype != weight.dtype:
        raise TypeError(
            f"{module_name} weight is {weight.dtype} but the input features are "
            f"{x.features.dtype}; convert one of them (module.to(dtype) or features.to(dtype))"
        )


__all__ = [
    "SparseModule",
    "SparseSequential",
    "ToDense",
    "RemoveGrid",
    "SparseBatchNorm",
    "SparseReLU",
    "SparseIdentity",
    "SparseSyncBatchNorm",
    "Identity",
    "is_spconv_module",
    "is_sparse_conv",
    "assign_name_for_sparse_modules",
    "JoinTable",
    "AddTable",
    "AddTableMisaligned",
    "ConcatTable",
    "check_sparse_input",
    "check_parameter_match",
]
