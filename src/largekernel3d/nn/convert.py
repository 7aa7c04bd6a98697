"""Weight conversions for SW-LK convolution: plain <-> grouped, BatchNorm / dilated-branch merging,
export to a plain (spconv) submanifold conv, and loading the official LargeKernel3D checkpoints.

Notation: a plain submanifold conv has the spconv weight ``P [C_out, *k, C_in]`` (``K = prod(k)``
offsets, row-major), a SW-LK layer has ``W [G, C_in, C_out]`` and the group map ``g(k)``.

* plain -> grouped (the official ``convert_weights.py``): ``W_g = mean_{k in g} P[:, k, :]^T``.
* grouped -> plain: ``P[:, k, :] = W_{g(k)}^T`` (exact; grouped -> plain -> grouped is the identity).
* The position encoding is not a weight of a plain conv. Its contribution is
  ``sum_{k, N(i, k) active} E[k] @ W_{g(k)} = sum_{k, N(i, k) active} b[k]`` with ``b[k] = E[k] W_{g(k)}``
  ``[C_out]``: a bias that depends on which neighbours exist. It equals a plain submanifold conv of a
  constant all-ones channel with weight ``b`` (``[C_out, *k, 1]``), so an export to spconv is ONE
  ``SubMConv3d(C_in + 1, C_out, k)`` on the features with a ones column appended (weight
  ``cat([P, b], -1)``), see :class:`PlainExport`.
* The dilated branch (3x3x3, dilation ``d``: ``k // 2 - 1`` in the official detection code, ``3`` in the
  official segmentation code) puts its tap ``t`` at kernel position ``k // 2 + d (t - 1)`` of the large
  window; merging adds it there (RepLKNet's re-parameterisation; only when the taps fit the window).
* BatchNorm ``y = gamma (z - mu) / sqrt(var + eps) + beta`` after a conv folds into it:
  ``W' = W s``, ``b' = (b - mu) s + beta`` with ``s = gamma / sqrt(var + eps)`` per output channel.

Official checkpoints (dvlab-research/LargeKernel3D, spconv-plus):

* V1 ``SpatialGroupConv`` (keys ``block.weight``, ``block.bias``, ``conv3x3_1.weight``,
  ``conv3x3_1.bias``): a full ``k^3`` ``SubMConv3d`` whose weight is overwritten by its group means at
  every training step, plus the dilated 3x3x3 branch. ``block.weight`` (k^3 > 32, ConvAlgo.Native in
  spconv 2.1) is stored ``[*k, C_out, C_in]`` (spconv 2.1 "RSKC", ``FILTER_HWIO = False``), spconv >= 2.2
  stores ``[C_out, *k, C_in]`` (KRSC); ``conv3x3_1.weight`` is KRSC when it ran the implicit-GEMM CUDA
  algorithm and RSKC on the native algorithm, so both layouts default to ``"auto"`` (by shape). The official code
  reshapes as ``permute(3, 4, 0, 1, 2)`` and labels the dims (out, in), which agrees with RSKC; the
  spconv 1.x / ``FILTER_HWIO`` layout ``[*k, C_in, C_out]`` ("RSCK") is accepted via ``block_layout``.
  Its blocks have ``C_in == C_out``, where RSKC and RSCK cannot be told apart from the shape.
* V2 ``SpatialGroupConv3d`` (spconv-plus; keys ``block.weight`` ``[3, 3, 3, C_out, C_in]`` RSKC,
  ``block.position_embedding [k^3, C_in]``, ``block.bias``): group ``g`` is the row-major index of the
  ``[3, 3, 3]`` weight, the same numbering as ours.
"""

from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass
from typing import Mapping, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor, nn

from ..sparse.conv import SubMConv3d
from ..sparse.functional import sparse_conv
from ..sparse.kernel_map import KernelMap
from ..sparse.spconv_compat import LAYOUTS, convert_spconv21_weight
from .partition import SpatialPartition
from .swlk_conv import SWLKConv3d
from .swlk_conv import branch_dilation as branch_dilation_of

DEVIATION_TOLERANCE = 1e-4  # relative grouping deviation of a V1 weight above which loading warns


# ---------------------------------------------------------------------------------------------------------
# weights
def grouped_from_plain(weight: Tensor, partition: SpatialPartition) -> Tensor:
    """Plain ``[C_out, *k, C_in]`` -> grouped ``[G, C_in, C_out]`` by the mean over each group."""
    if tuple(weight.shape[1:-1]) != partition.kernel_size:
        raise ValueError(f"weight has kernel {tuple(weight.shape[1:-1])}, the partition {partition.kernel_size}")
    c_out, c_in = weight.shape[0], weight.shape[-1]
    per_offset = weight.reshape(c_out, -1, c_in).permute(1, 2, 0)  # [K, C_in, C_out]
    group = partition.group_index(weight.device)
    sums = per_offset.new_zeros((partition.num_groups, c_in, c_out)).index_add_(0, group, per_offset)
    return sums / partition.group_sizes().to(weight.device, weight.dtype).view(-1, 1, 1)


def plain_from_grouped(weight: Tensor, partition: SpatialPartition) -> Tensor:
    """Grouped ``[G, C_in, C_out]`` -> plain ``[C_out, *k, C_in]`` (every offset gets its group's slice)."""
    if weight.dim() != 3 or weight.shape[0] != partition.num_groups:
        raise ValueError(f"grouped weight must be [G={partition.num_groups}, C_in, C_out], got {tuple(weight.shape)}")
    per_offset = weight.index_select(0, partition.group_index(weight.device))  # [K, C_in, C_out]
    return per_offset.permute(2, 0, 1).reshape(weight.shape[2], *partition.kernel_size, weight.shape[1])


def encoding_weight(layer: SWLKConv3d) -> Optional[Tensor]:
    """``b [C_out, *k, 1]`` with ``b[:, k] = E_eff[k] @ W_{g(k)}`` (the encoding as a conv of a ones
    channel), or ``None`` when the layer has no encoding."""
    enc = layer.effective_encoding()
    if enc is None:
        return None
    per_offset = torch.einsum("kc,kco->ko", enc, layer.weight.index_select(0, layer.group_index))
    return per_offset.t().reshape(layer.out_channels, *layer.kernel_size, 1)


def dilated_positions(kernel_size: Sequence[int], dilation: Sequence[int]) -> Tuple[Tuple[int, ...], ...]:
    """Per axis, the large-window positions ``k // 2 + d (t - 1)`` of the 3 taps of a dilated 3-conv."""
    pos = []
    for k, d in zip(kernel_size, dilation):
        p = tuple(k // 2 + d * (t - 1) for t in range(3))
        if p[0] < 0 or p[-1] >= k:
            raise ValueError(f"a 3-tap conv with dilation {d} does not fit a {k}-wide window")
        pos.append(p)
    return tuple(pos)


def merge_dilated(plain_weight: Tensor, dilated_weight: Tensor, dilation: Sequence[int]) -> Tensor:
    """``plain [C_out, *k, C_in]`` + a dilated ``[C_out, 3, 3, 3, C_in]`` conv placed at its taps."""
    if (
        dilated_weight.shape[1:-1] != (3, 3, 3)
        or dilated_weight.shape[0] != plain_weight.shape[0]
        or dilated_weight.shape[-1] != plain_weight.shape[-1]
    ):
        raise ValueError(
            f"dilated weight must be [C_out, 3, 3, 3, C_in] matching the plain weight "
            f"{tuple(plain_weight.shape)}, got {tuple(dilated_weight.shape)}"
        )
    px, py, pz = dilated_positions(plain_weight.shape[1:-1], dilation)
    out = plain_weight.clone()
    ix = torch.tensor(px, device=out.device).view(3, 1, 1)
    iy = torch.tensor(py, device=out.device).view(1, 3, 1)
    iz = torch.tensor(pz, device=out.device).view(1, 1, 3)
    out[:, ix, iy, iz, :] += dilated_weight
    return out


# ---------------------------------------------------------------------------------------------------------
# layers
@dataclass(frozen=True)
class PlainExport:
    """A SW-LK layer as plain submanifold convs (for spconv / any engine without weight sharing).

    ``out = conv(x, weight) + conv(ones, encoding_weight) + bias``; equivalently one conv of
    ``[x, 1]`` with ``with_ones_channel()``.

    Attributes:
        weight: ``[C_out, *k, C_in]``, the expanded groups plus the merged dilated branch.
        encoding_weight: ``[C_out, *k, 1]`` or ``None`` (see :func:`encoding_weight`).
        bias: ``[C_out]`` or ``None``.
    """

    weight: Tensor
    encoding_weight: Optional[Tensor]
    bias: Optional[Tensor]

    def with_ones_channel(self) -> Tensor:
        """``[C_out, *k, C_in + 1]``: the weight for features with a constant-1 column appended."""
        enc = (
            self.encoding_weight
            if self.encoding_weight is not None
            else self.weight.new_zeros((*self.weight.shape[:-1], 1))
        )
        return torch.cat([self.weight, enc], dim=-1)

    def apply(self, features: Tensor, kmap: KernelMap) -> Tensor:
        """Evaluate the export on ``features [N, C_in]`` over a submanifold ``k`` map (reference use)."""
        ones = features.new_ones((features.shape[0], 1))
        return sparse_conv(torch.cat([features, ones], dim=1), self.with_ones_channel(), kmap, bias=self.bias)


def export_plain(layer: SWLKConv3d) -> PlainExport:
    """Expand a SW-LK layer to plain ``k^3`` weights (dilated branch merged, encoding as a ones-channel)."""
    with torch.no_grad():
        weight = plain_from_grouped(layer.weight, layer.partition)
        if layer.dilated is not None:
            weight = merge_dilated(weight, layer.dilated.weight, layer.dilated.dilation)
        enc = encoding_weight(layer)
        bias = None if layer.bias is None else layer.bias.detach().clone()
    return PlainExport(weight.detach().clone(), None if enc is None else enc.detach().clone(), bias)


def to_submconv(layer: SWLKConv3d, indice_key: Optional[str] = None) -> SubMConv3d:
    """An equivalent plain ``SubMConv3d(C_in, C_out, k)`` (groups expanded, dilated branch merged).

    Raises ``ValueError`` for a layer with position encoding (not expressible without the extra ones
    channel; use :func:`export_plain`).
    """
    if layer.position_encoding is not None:
        raise ValueError(
            "layer has a position encoding, which a plain SubMConv3d cannot express; use "
            "export_plain(layer) (encoding as a conv of an all-ones channel) instead"
        )
    exp = export_plain(layer)
    conv = SubMConv3d(
        layer.in_channels, layer.out_channels, layer.kernel_size, bias=exp.bias is not None, indice_key=indice_key
    ).to(device=exp.weight.device, dtype=exp.weight.dtype)
    with torch.no_grad():
        conv.weight.copy_(exp.weight)
        if exp.bias is not None:
            conv.bias.copy_(exp.bias)
    return conv


def swlk_from_plain(conv: SubMConv3d, partition: str = "center1", indice_key: Optional[str] = None) -> SWLKConv3d:
    """A SW-LK layer (no encoding, no branch) whose group weights are the group means of ``conv``'s
    weight (the official ``convert_weights.py``); exact when the weight is constant over groups."""
    if not getattr(conv, "subm", False) or conv.groups != 1 or conv.ndim != 3 or any(d != 1 for d in conv.dilation):
        raise ValueError("conv must be a SubMConv3d with groups=1 and dilation=1")
    layer = SWLKConv3d(
        conv.in_channels,
        conv.out_channels,
        conv.kernel_size,
        partition=partition,
        position_encoding=False,
        bias=conv.bias is not None,
        indice_key=indice_key,
    ).to(device=conv.weight.device, dtype=conv.weight.dtype)
    with torch.no_grad():
        layer.weight.copy_(grouped_from_plain(conv.weight, layer.partition))
        if conv.bias is not None and layer.bias is not None:
            layer.bias.copy_(conv.bias)
    return layer


ConvWithBN = Union[SWLKConv3d, SubMConv3d]


def fuse_bn(conv: ConvWithBN, bn: nn.BatchNorm1d) -> ConvWithBN:
    """A copy of ``conv`` (SW-LK or any sparse conv with spconv weight layout) with the eval-mode
    ``bn`` that follows it folded in: ``W' = W s``, ``b' = (b - mu) s + beta``, ``s = gamma / sqrt(var + eps)``."""
    if not isinstance(bn, nn.modules.batchnorm._BatchNorm) or bn.running_mean is None or bn.running_var is None:
        raise TypeError(f"bn must be a BatchNorm with running statistics, got {type(bn).__name__}")
    c_out = conv.out_channels
    if bn.num_features != c_out:
        raise ValueError(f"bn has {bn.num_features} features but the conv has out_channels={c_out}")
    fused = copy.deepcopy(conv)
    with torch.no_grad():
        scale = bn.running_var.add(bn.eps).rsqrt()
        if bn.weight is not None:
            scale = scale * bn.weight
        shift = -bn.running_mean * scale
        if bn.bias is not None:
            shift = shift + bn.bias
        if isinstance(fused, SWLKConv3d):
            fused.weight.mul_(scale.view(1, 1, -1))
            if fused.dilated is not None:
                fused.dilated.weight.mul_(scale.view(-1, 1, 1, 1, 1))
        else:
            fused.weight.mul_(scale.view(-1, *([1] * (fused.weight.dim() - 1))))
        bias = shift if fused.bias is None else fused.bias * scale + shift
        fused.bias = nn.Parameter(bias.to(fused.weight.dtype).clone())
    return fused


def fuse_dilated(layer: SWLKConv3d, indice_key: Optional[str] = None) -> SubMConv3d:
    """Merge the dilated branch (and the groups) into one expanded plain ``SubMConv3d`` (inference)."""
    if layer.dilated is None:
        raise ValueError("layer has no dilated branch to merge (dilated_branch=False)")
    return to_submconv(layer, indice_key)


# ---------------------------------------------------------------------------------------------------------
# official checkpoints
_LAYOUT_MEANING = {
    "KRSC": "[C_out, *k, C_in], written by spconv >= 2.2 and by spconv 2.1's implicit-GEMM algorithm",
    "RSKC": "[*k, C_out, C_in], written by spconv 2.1's native algorithm (spconv-plus)",
    "RSCK": "[*k, C_in, C_out], spconv 1.x / FILTER_HWIO",
}


def to_krsc(weight: Tensor, layout: str, kernel_size: Sequence[int], c_in: int, c_out: int, name: str) -> Tensor:
    """Bring a stored weight to our ``[C_out, *k, C_in]`` (KRSC) layout.

    ``layout``: ``"KRSC"`` ``[C_out, *k, C_in]`` (spconv >= 2.2), ``"RSKC"`` ``[*k, C_out, C_in]`` (spconv
    2.1 native), ``"RSCK"`` ``[*k, C_in, C_out]`` (spconv 1.x / FILTER_HWIO) or ``"auto"`` (by shape: the one
    layout whose shape matches; RSKC when only RSKC and RSCK match, i.e. ``C_in == C_out``; still ambiguous
    shapes raise). ``name`` names the checkpoint key in errors, which say which layouts the shape fits.
    """
    k = tuple(kernel_size)
    expected = {"KRSC": (c_out, *k, c_in), "RSKC": (*k, c_out, c_in), "RSCK": (*k, c_in, c_out)}
    shape = tuple(weight.shape)
    fits = [lay for lay, shp in expected.items() if shape == shp]
    meaning = "; ".join(f"{lay} {text} -> {expected[lay]}" for lay, text in _LAYOUT_MEANING.items())
    if layout == "auto":
        if not fits:
            raise ValueError(
                f"{name} has shape {shape}, which matches no weight layout for kernel {k}, C_in={c_in}, "
                f"C_out={c_out} ({meaning}); the checkpoint was trained with another architecture"
            )
        if set(fits) == {"RSKC", "RSCK"}:
            fits = ["RSKC"]  # C_in == C_out: both read the same shape; spconv 2.1 wrote RSKC
        if len(fits) > 1:
            raise ValueError(
                f"{name} shape {shape} is ambiguous between layouts {fits} ({meaning}); pass the "
                f"layout of the spconv version that wrote the checkpoint explicitly"
            )
        layout = fits[0]
    if layout not in expected:
        raise ValueError(f"layout for {name} must be one of {LAYOUTS} or 'auto', got {layout!r}")
    if shape != expected[layout]:
        hint = (
            f"the shape fits layout {fits} instead: pass layout='auto' (detected by shape) or {fits[0]!r}"
            if fits
            else "it fits no layout: the checkpoint was trained with another architecture"
        )
        raise ValueError(
            f"{name} has shape {shape} but layout {layout} with kernel {k}, C_in={c_in}, C_out={c_out} "
            f"needs {expected[layout]}; {hint} ({meaning})"
        )
    return convert_spconv21_weight(weight, layout)


def conv_weight_to_krsc(weight: Tensor, layout: str, conv: nn.Module, name: str) -> Tensor:
    """:func:`to_krsc` for the weight of ``conv``, a sparse conv of ours or of spconv (its ``kernel_size``,
    ``in_channels`` and ``out_channels`` give the expected shape)."""
    kernel_size = tuple(int(v) for v in conv.kernel_size)  # type: ignore[union-attr]
    c_in, c_out = int(conv.in_channels), int(conv.out_channels)  # type: ignore[arg-type]
    return to_krsc(weight, layout, kernel_size, c_in, c_out, name)


def linear_from_pointwise(weight: Tensor, c_in: int, c_out: int, name: str) -> Tensor:
    """``[C_out, C_in]`` (an ``nn.Linear`` weight) from a stored spconv ``1³`` conv weight.

    spconv 2.x computes a kernel-volume-1 conv as ``x @ m.view(C_in, C_out)`` on the weight's memory ``m``,
    whatever shape label it has (``[C_out, 1, 1, 1, C_in]`` or ``[1, 1, 1, C_out, C_in]``), so the linear map
    is ``m.reshape(C_in, C_out)^T``. Accepted shapes: ``[C_out, 1, 1, 1, C_in]``, ``[1, 1, 1, C_out, C_in]``,
    ``[1, 1, 1, C_in, C_out]``.
    """
    s = tuple(weight.shape)
    fits = s in ((c_out, 1, 1, 1, c_in), (1, 1, 1, c_out, c_in), (1, 1, 1, c_in, c_out))
    if not fits:
        raise ValueError(
            f"{name} has shape {s}; a 1x1x1 conv {c_in} -> {c_out} needs [{c_out}, 1, 1, 1, {c_in}] "
            f"(or [1, 1, 1, {c_out}, {c_in}])"
        )
    return weight.reshape(c_in, c_out).t().contiguous()


def _get(state_dict: Mapping[str, Tensor], key: str) -> Tensor:
    if key not in state_dict:
        near = sorted(k for k in state_dict if k.rsplit(".", 2)[0] == key.rsplit(".", 2)[0])[:8]
        raise ValueError(f"state_dict has no key {key!r} (keys with the same prefix: {near}); check prefix")
    return state_dict[key]


def _summed_bias(layer: SWLKConv3d, biases: Sequence[Tensor], prefix: str) -> Optional[Tensor]:
    """The layer's new bias (sum of the checkpoint's biases), validated; ``None``: no bias in the checkpoint."""
    if not biases:
        return None
    total = biases[0].to(layer.weight.dtype)
    for b in biases[1:]:
        total = total + b.to(layer.weight.dtype)
    if total.shape != (layer.out_channels,):
        raise ValueError(
            f"bias under prefix {prefix!r} has shape {tuple(total.shape)}, the layer out_channels={layer.out_channels}"
        )
    if layer.bias is None:
        raise ValueError(
            f"the checkpoint under prefix {prefix!r} has a bias but the layer was built with "
            f"bias=False; build it with bias=True"
        )
    return total


def _write_bias(layer: SWLKConv3d, bias: Optional[Tensor]) -> None:
    if layer.bias is None:
        return
    if bias is None:
        layer.bias.zero_()
    else:
        layer.bias.copy_(bias)


def relative_grouping_deviation(plain: Tensor, partition: SpatialPartition) -> float:
    """``max |P - expand(group means of P)| / max |P|`` for a plain ``[C_out, *k, C_in]`` weight (0 for a
    group-constant or all-zero weight): how far a V1 weight is from what the SW-LK layer computes with."""
    grouped = grouped_from_plain(plain, partition)
    scale = float(plain.abs().max())
    return float((plain - plain_from_grouped(grouped, partition)).abs().max()) / scale if scale > 0 else 0.0


def warn_grouping_deviation(name: str, relative: float, tolerance: Optional[float], stacklevel: int = 3) -> None:
    """``UserWarning`` when a V1 layer's relative grouping deviation exceeds ``tolerance`` (``None``: never)."""
    if tolerance is not None and relative > tolerance:
        warnings.warn(
            f"{name}: the checkpoint's full k^3 weight is not constant over the spatial groups (relative "
            f"deviation {relative:.3g} > {tolerance:g}): it was saved before being averaged. The official "
            f"evaluation used this ungrouped weight; the SW-LK layer uses its group means (the official "
            f"convert_weights.py), so outputs differ from the official ones",
            UserWarning,
            stacklevel=stacklevel,
        )


def load_official_v1(
    layer: SWLKConv3d,
    state_dict: Mapping[str, Tensor],
    prefix: str = "",
    block_layout: str = "auto",
    branch_layout: str = "auto",
    branch_dilation: Optional[Union[int, Sequence[int]]] = None,
    deviation_tolerance: Optional[float] = DEVIATION_TOLERANCE,
) -> float:
    """Load an official V1 ``SpatialGroupConv`` (``{prefix}block.weight``, ``{prefix}conv3x3_1.weight``
    and their optional biases) into ``layer`` (built with ``position_encoding=False,
    dilated_branch=True``; ``bias=True`` when the checkpoint has biases -- the two are summed).

    The group weights are the group means of ``block.weight`` (as the official ``convert_weights.py``).
    Layouts default to ``"auto"`` (by shape, see :func:`to_krsc`): spconv >= 2.2 writes KRSC, spconv 2.1's
    native algorithm RSKC.

    The dilation of ``conv3x3_1`` is not in the checkpoint: the official detection code uses
    ``k // 2 - 1``, the official segmentation code ``3``. Pass the checkpoint's as ``branch_dilation`` to
    have it checked against the layer's (``layer.dilated.dilation``; build the layer with
    ``dilated_dilation``); ``None`` trusts the layer.

    Everything is validated before anything is written. Warns (``UserWarning``) when the relative
    deviation ``max |P - expand(W)| / max |P|`` exceeds ``deviation_tolerance`` (``None``: never): such a
    weight was saved before its last averaging, and the official evaluation used it ungrouped.

    Returns the largest absolute deviation of ``block.weight`` from its group means (0 for a weight
    that was exactly group-constant).
    """
    if layer.position_encoding is not None or layer.dilated is None:
        raise ValueError(
            "a V1 SpatialGroupConv has no position encoding and has the dilated branch: build the "
            "layer with position_encoding=False, dilated_branch=True"
        )
    if branch_dilation is not None:
        want = branch_dilation_of(layer.kernel_size, branch_dilation)
        if tuple(layer.dilated.dilation) != want:
            raise ValueError(
                f"the checkpoint's dilated branch {prefix}conv3x3_1 has dilation {want} but the layer's "
                f"has {tuple(layer.dilated.dilation)}; build the layer with dilated_dilation={want[0]} "
                f"(the official segmentation code uses 3, the detection code k // 2 - 1)"
            )
    w_key, d_key = f"{prefix}block.weight", f"{prefix}conv3x3_1.weight"
    plain = to_krsc(
        _get(state_dict, w_key), block_layout, layer.kernel_size, layer.in_channels, layer.out_channels, w_key
    ).to(layer.weight)
    branch = to_krsc(
        _get(state_dict, d_key), branch_layout, (3, 3, 3), layer.in_channels, layer.out_channels, d_key
    ).to(layer.weight)
    biases = [state_dict[k] for k in (f"{prefix}block.bias", f"{prefix}conv3x3_1.bias") if k in state_dict]
    bias = _summed_bias(layer, biases, prefix)
    with torch.no_grad():
        grouped = grouped_from_plain(plain, layer.partition)
        deviation = float((plain - plain_from_grouped(grouped, layer.partition)).abs().max())
        scale = float(plain.abs().max())
        layer.weight.copy_(grouped)
        layer.dilated.weight.copy_(branch)
        _write_bias(layer, bias)
    warn_grouping_deviation(w_key, deviation / scale if scale > 0 else 0.0, deviation_tolerance)
    return deviation


def load_official_v2(
    layer: SWLKConv3d, state_dict: Mapping[str, Tensor], prefix: str = "", layout: str = "auto"
) -> None:
    """Load a spconv-plus V2 ``SpatialGroupConv3d`` (``{prefix}block.weight [3, 3, 3, C_out, C_in]``,
    ``{prefix}block.position_embedding [k^3, C_in]``, optional ``{prefix}block.bias``) into ``layer``
    (``"center1"`` partition with 27 groups; ``position_encoding`` as in the checkpoint). ``layout``:
    as :func:`to_krsc` (default ``"auto"``). Everything is validated before anything is written."""
    if layer.partition.name != "center1" or layer.partition.group_shape != (3, 3, 3):
        raise ValueError(f"V2 checkpoints use the 'center1' partition with 27 groups, the layer has {layer.partition}")
    if layer.dilated is not None:
        raise ValueError("a V2 SpatialGroupConv3d has no dilated branch: build the layer with dilated_branch=False")
    w_key, e_key = f"{prefix}block.weight", f"{prefix}block.position_embedding"
    grouped = to_krsc(_get(state_dict, w_key), layout, (3, 3, 3), layer.in_channels, layer.out_channels, w_key)
    has_enc = e_key in state_dict and state_dict[e_key] is not None
    if has_enc != (layer.position_encoding is not None):
        raise ValueError(
            f"checkpoint {'has' if has_enc else 'has no'} {e_key!r} but the layer was built with "
            f"position_encoding={layer.position_encoding is not None}"
        )
    enc = state_dict[e_key] if has_enc else None
    target = layer.position_encoding
    if enc is not None and target is not None and tuple(enc.shape) != tuple(target.shape):
        raise ValueError(
            f"{e_key} has shape {tuple(enc.shape)} but the layer needs "
            f"{tuple(target.shape)} (k^3 x C_in for kernel_size="
            f"{layer.kernel_size}, in_channels={layer.in_channels})"
        )
    bias_key = f"{prefix}block.bias"
    bias = _summed_bias(layer, [state_dict[bias_key]] if bias_key in state_dict else [], prefix)
    with torch.no_grad():
        layer.weight.copy_(grouped.reshape(layer.out_channels, 27, layer.in_channels).permute(1, 2, 0))
        if enc is not None and target is not None:
            target.copy_(enc)
        _write_bias(layer, bias)


__all__ = [
    "LAYOUTS",
    "PlainExport",
    "grouped_from_plain",
    "plain_from_grouped",
    "encoding_weight",
    "merge_dilated",
    "dilated_positions",
    "export_plain",
    "to_submconv",
    "swlk_from_plain",
    "fuse_bn",
    "fuse_dilated",
    "to_krsc",
    "linear_from_pointwise",
    "relative_grouping_deviation",
    "warn_grouping_deviation",
    "load_official_v1",
    "load_official_v2",
    "DEVIATION_TOLERANCE",
]
