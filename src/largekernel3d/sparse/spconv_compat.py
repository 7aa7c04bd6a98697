"""Interoperability with spconv 2.x: tensors (zero-copy) and weights / state dicts.

spconv is optional and imported lazily, only by :func:`from_spconv` / :func:`to_spconv`.

Weight layouts (``k`` = kernel axes, names as spconv's)::

    KRSC  W[c_out, *k, c_in / groups]    ours; every spconv >= 2.2 weight; spconv 2.1 implicit-GEMM layers
    RSKC  [*k, c_out, c_in]              spconv 2.1 native-algorithm layers (its default layout)
    RSCK  [*k, c_in, c_out]              spconv 1.x, and spconv 2.1 with FILTER_HWIO

    W[o, *k, i] = RSKC[*k, o, i] = RSCK[*k, i, o]

spconv (2.1 and later) computes a layer whose kernel volume is 1 (submanifold, or all strides 1) as one
matrix product that ignores the declared layout and reads the weight memory ``m`` with a fixed shape::

    KRSC / RSKC:  out = in @ m.reshape(c_in, c_out)          (not in @ W.reshape(c_out, c_in)^T)
    RSCK:         out = in @ m.reshape(c_out, c_in)^T

Our layers store such a weight in their state dict as the memory spconv >= 2.2 reads
(:meth:`SparseConvolution._save_to_state_dict`), so plain ``load_state_dict`` / ``state_dict`` move
checkpoints between the libraries unchanged; :func:`load_spconv_state_dict` adds spconv 2.1's layouts.

Differences from spconv 2.3.8 (checked in tests/sparse/test_spconv_compat.py where spconv can run):

* Max pooling returns the maximum over the active inputs; spconv returns ``max(0, that)`` (negative
  maxima become 0). At ties our gradient is split evenly among the tied inputs; spconv gives each the
  full gradient.
* ``groups`` (incl. depth-wise) and even submanifold kernels (window ``-(k//2) .. k-1-k//2``) work here;
  spconv asserts ``groups == 1`` and odd submanifold kernels.
* int64 indices are accepted (layer outputs are int32); spconv requires int32.
* The kernel-map cache ``indice_dict`` is one dict shared along a network; spconv copies it per layer,
  so one key name can be reused in parallel branches for different geometries there (here it raises).
  Reusing a key on other sites, another grid or another kernel raises ``ValueError`` here.
* Regular / transposed conv outputs are sorted by (batch, axis 0, ...); spconv's order differs (same set).
* ``SparseSequential`` applies plain modules also to empty tensors (spconv skips them).
* ``output_padding`` and fused activations (``act_type``) are rejected; ``algo``, ``fp32_accum`` and the
  other tuning arguments are accepted and ignored.
* On the CPU spconv has no backward for convs, is wrong with more than one torch thread, asserts on a
  bias in eval mode and has no average pooling; none of this applies here.
"""

from __future__ import annotations

from typing import Any, Dict, Mapping, Tuple

import torch
from torch import Tensor, nn

from .conv import SparseConvolution
from .tensor import SparseConvTensor

_INSTALL_HINT = (
    "spconv is not installed (or failed to import); install the CPU build with "
    "`pip install spconv==2.3.8` (or the spconv-cuXXX wheel matching your CUDA)"
)


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


LAYOUTS = ("KRSC", "RSKC", "RSCK")


def convert_spconv21_weight(weight: Tensor, layout: str = "RSKC") -> Tensor:
    """A spconv 2.1 / 1.x weight in ``layout`` → ours ``[C_out, *kernel, C_in]`` (a contiguous copy).

    ``layout``: ``"RSKC"`` ``[*kernel, C_out, C_in]`` (spconv 2.1's default, native algorithm),
    ``"RSCK"`` ``[*kernel, C_in, C_out]`` (spconv 1.x / ``FILTER_HWIO``) or ``"KRSC"`` (already ours).
    The two ``[*kernel, ...]`` layouts have the same shape when ``C_in == C_out``, so the layout cannot
    be guessed from the shape; pass the one the checkpoint was written with. Not for 1×1 layers that
    spconv ran as a matrix product (see the module docstring and :func:`convert_spconv_state_dict`).
    """
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    if weight.dim() < 3:
        raise ValueError(f"weight must have a kernel axis and two channel axes, got shape {tuple(weight.shape)}")
    nd = weight.dim() - 2
    if layout == "KRSC":
        return weight.contiguous().clone()
    if layout == "RSKC":
        return weight.permute(nd, *range(nd), nd + 1).contiguous()
    return weight.permute(nd + 1, *range(nd), nd).contiguous()


def spconv_uses_matmul_path(module: SparseConvolution) -> bool:
    """True when spconv runs this layer as one matrix product on the raw weight memory (kernel volume 1,
    and a submanifold conv or all strides 1)."""
    return module.weight_read_as_matrix


def _parse_version(version: str) -> Tuple[int, int]:
    try:
        major, minor = (int(v) for v in str(version).split(".")[:2])
    except ValueError:
        raise ValueError(f"spconv_version must look like '2.3', got {version!r}") from None
    if major != 2:
        raise ValueError(f"only spconv 2.x state dicts are supported, got spconv_version={version!r}")
    return major, minor


def _resolve_layout(weight: Tensor, module: SparseConvolution, layout: str, key: str) -> str:
    """``layout``, or for ``"auto"`` the one of KRSC / RSKC that the shape matches."""
    if layout != "auto":
        return layout
    k, c_out, c_in = module.geometry.kernel_size, module.out_channels, module.in_channels // module.groups
    shapes = {"KRSC": (c_out, *k, c_in), "RSKC": (*k, c_out, c_in)}
    matches = [lay for lay, shp in shapes.items() if tuple(weight.shape) == shp]
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise ValueError(f"state_dict[{key!r}] shape {tuple(weight.shape)} fits both KRSC and RSKC; pass layout")
    raise ValueError(
        f"state_dict[{key!r}] has shape {tuple(weight.shape)}, neither KRSC {shapes['KRSC']} nor RSKC "
        f"{shapes['RSKC']} for {type(module).__name__}; pass layout='RSCK' for [*kernel, C_in, C_out]"
    )


def convert_spconv_state_dict(
    module: nn.Module, state_dict: Mapping[str, Tensor], spconv_version: str = "2.3", layout: str = "auto"
) -> Dict[str, Tensor]:
    """The ``state_dict`` of a spconv 2.x network rewritten for the same module tree built from our layers.

    For every :class:`SparseConvolution` under ``module`` (key prefix ``p``), ``p + "weight"`` is brought to
    our layout: spconv >= 2.2 weights are KRSC (our state-dict format: they pass unchanged); spconv 2.1 weights
    are in ``layout`` (``"auto"``: KRSC or RSKC by shape, which spconv 2.1 mixed by algorithm; ``"RSCK"`` must
    be named). Layers spconv ran as a matrix product (:func:`spconv_uses_matmul_path`) keep the memory spconv
    read as ``m.reshape(C_in, C_out)``, which is what our state dict holds for them (an RSCK ``m`` was read as
    ``m.reshape(C_out, C_in)^T`` and is transposed into that form). Other entries (BatchNorm, ...) pass
    through unchanged.
    """
    _, minor = _parse_version(spconv_version)
    if layout != "auto" and layout not in LAYOUTS:
        raise ValueError(f"layout must be 'auto' or one of {LAYOUTS}, got {layout!r}")
    if minor >= 2 and layout not in ("auto", "KRSC"):
        raise ValueError(
            f"spconv {spconv_version} stores every weight as KRSC; layout={layout!r} only applies "
            f"to spconv_version='2.1'"
        )
    out = dict(state_dict)
    for name, sub in module.named_modules():
        if not isinstance(sub, SparseConvolution):
            continue
        key = f"{name}.weight" if name else "weight"
        if key not in out:
            continue
        w = out[key]
        expected = tuple(sub.weight.shape)
        if spconv_uses_matmul_path(sub) and w.numel() == sub.in_channels * sub.out_channels and sub.groups == 1:
            if minor <= 1 and layout == "RSCK":
                converted = w.reshape(sub.out_channels, sub.in_channels).t().contiguous().reshape(expected)
            else:
                converted = w.reshape(expected).contiguous()
        else:
            lay = "KRSC" if minor >= 2 else _resolve_layout(w, sub, layout, key)
            converted = convert_spconv21_weight(w, lay) if w.dim() >= 3 else w
        if tuple(converted.shape) != expected:
            raise ValueError(
                f"state_dict[{key!r}] has shape {tuple(w.shape)}, which does not give {expected} "
                f"([C_out, *kernel, C_in/groups]) for {type(sub).__name__} with "
                f"spconv_version={spconv_version!r}, layout={layout!r}"
            )
        out[key] = converted
    return out


def to_spconv_state_dict(module: nn.Module) -> Dict[str, Tensor]:
    """``module.state_dict()`` for the same network built from spconv >= 2.2 layers. Our state dicts are
    already in spconv's format (kernel-volume-1 layers included, see the module docstring), so this is
    ``dict(module.state_dict())``, after checking that spconv can build every layer."""
    for name, sub in module.named_modules():
        if isinstance(sub, SparseConvolution) and sub.groups != 1:
            raise ValueError(f"{name or type(sub).__name__} has groups={sub.groups}; spconv has no grouped convs")
    return dict(module.state_dict())


def load_spconv_state_dict(
    module: nn.Module,
    state_dict: Mapping[str, Tensor],
    spconv_version: str = "2.3",
    layout: str = "auto",
    strict: bool = True,
):
    """Load a spconv 2.x ``state_dict`` into ``module`` (our layers, same names), reproducing spconv's
    outputs (including its 1×1 layer quirk, see the module docstring and
    :func:`convert_spconv_state_dict`); returns what ``nn.Module.load_state_dict`` returns."""
    return module.load_state_dict(convert_spconv_state_dict(module, state_dict, spconv_version, layout), strict=strict)


__all__ = [
    "from_spconv",
    "to_spconv",
    "convert_spconv21_weight",
    "convert_spconv_state_dict",
    "load_spconv_state_dict",
    "to_spconv_state_dict",
    "spconv_uses_matmul_path",
    "LAYOUTS",
]
