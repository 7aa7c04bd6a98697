"""RepLKNet's structural re-parameterisation for sparse 3-D large kernels: train a large-kernel layer with a
parallel ``3^3`` submanifold conv, each branch followed by its own BatchNorm, outputs summed; for inference,
merge the two branches into one layer.

Training block (:class:`RepLargeKernelConv3d`, ``L`` the large layer, ``S`` the ``3^3`` conv)::

    y = BN_L(L(x)) + BN_S(S(x))

Merge (eval mode, BatchNorm with running statistics ``mu``, ``var``, affine ``gamma``, ``beta``, ``eps``):

1. BN folding, per output channel ``o``: ``BN(W * x + b) = W' * x + b'`` with ``s = gamma / sqrt(var + eps)``,
   ``W'[o] = s[o] W[o]`` and ``b' = s (b - mu) + beta`` (:func:`largekernel3d.nn.fuse_bn`).
2. Zero-padding: the ``3^3`` kernel ``S'`` (taps at offsets ``-1, 0, 1`` per axis) is placed at the centre
   of the large window, kernel position ``k // 2 + t`` for offset ``t``; a large kernel of dilation ``d``
   (taps at ``d (j - K // 2)``) is placed at ``k // 2 + d (j - K // 2)`` of the plain window it spans.
3. Adding: ``W_merged = L' + pad(S')``, ``b_merged = b'_L + b'_S``. A submanifold conv is linear in its
   kernel on a fixed kernel map (both branches see the same active neighbours), so this is exact.

Merge target per large layer (``target="auto"``):

* plain ``k^3`` (:class:`~largekernel3d.nn.PlainLargeKernelConv3d` / ``SubMConv3d``, any ``groups``,
  dilation 1) -> the same class, same ``groups`` (depth-wise stays depth-wise), weight ``L' + pad(S')``.
* :class:`~largekernel3d.nn.DepthwiseLargeKernelConv3d` (depth-wise ``k^3`` then point-wise ``1^3``): the
  small branch is a depth-wise ``3^3`` conv parallel to the depth-wise part (RepLKNet's block; the BNs act
  on the ``C_in`` depth-wise channels) -> the same class, depth-wise weight ``L' + pad(S')`` with the summed
  BN shift as the depth-wise bias, point-wise unchanged.
* dilated (:class:`~largekernel3d.nn.DilatedConv3d` / ``SubMConv3d`` with dilation ``d > 1``) -> a plain
  dilation-1 ``SubMConv3d`` over the window the taps span (``2 d + 1`` for a ``3^3`` conv), what
  :func:`~largekernel3d.nn.fuse_dilated` / :func:`~largekernel3d.nn.convert.merge_dilated` produce: the
  dilated taps at ``k // 2 + d (t - 1)``, the small kernel in the centre. A dilated ``3^3`` conv itself cannot
  hold the small kernel (its taps are ``d`` voxels apart).
* :class:`~largekernel3d.nn.SWLKConv3d`. A ``3^3`` kernel has 27 independent weights on the offsets within
  one voxel, while a SW-LK group shares ONE weight over all its offsets, e.g. with ``"center1"`` and ``k = 7``
  the group of offset ``(1, 0, -1)`` also holds ``(3, 0, -2)``; ``"center3"`` makes the whole inner ``3^3``
  ONE group. So the sum is generally not a SW-LK layer of the same partition. Exact targets:

  - ``"grouped"``: the same SW-LK layer, ``W'_g(t) += S'_t``. Exact only when every group that meets the
    inner ``3^3`` is a single offset (``k = 3`` on every axis with ``"center1"`` / ``"thirds"``) and the
    layer has no position encoding (the encoding enters as ``E[k] W_g(k)``: changing ``W_g`` changes it).
  - ``"branch"``: the same SW-LK layer (partition, encoding, shared weights and their fast path) with the
    small kernel as its parallel ``3^3`` branch of dilation 1 (``SWLKConv3d(dilated_branch=True,
    dilated_dilation=1)``); the BN scale folds into the group weights, so the encoding term stays exact.
    Exact whenever the layer has no dilated branch or one of dilation 1 (then the kernels add).
  - ``"plain"``: a plain ``k^3`` ``SubMConv3d`` (the groups expanded as :func:`~largekernel3d.nn.export_plain`,
    the dilated branch merged, the small kernel padded in). Exact when the layer has no position encoding;
    with one, :func:`merge_small_kernel_export` gives the exact :class:`~largekernel3d.nn.PlainExport`
    (the encoding as a conv of an extra all-ones channel).

  ``"auto"`` takes the first exact one of ``"grouped"``, ``"branch"``, ``"plain"``. A target that cannot
  represent the sum exactly raises ``ValueError`` naming the ones that can; nothing is approximated.

Kernel maps: the large layer keeps its ``indice_key``; the small conv uses ``small_indice_key`` (default
``indice_key + "_small"``, ``None`` without a key), so blocks on the same sites share one ``3^3`` map. The
merged layer keeps the large layer's key when its window is the large layer's (plain, depth-wise, SW-LK
targets; a SW-LK ``"branch"`` uses the small conv's key for its branch) and gets ``indice_key + "_merged"``
when the window changes (dilated -> plain): layers sharing a key must share kernel size and dilation.

Network level: :func:`add_small_kernels` wraps every large-kernel layer of a network for training,
:func:`merge_small_kernels` replaces every block by its merged layer for inference.
"""

from __future__ import annotations

import copy
from typing import Optional, Sequence, Tuple, Union

import torch
from torch import Tensor, nn

from ..sparse import SparseBatchNorm, SparseConvTensor, SparseModule, SubMConv3d
from .baselines import DepthwiseLargeKernelConv3d
from .convert import PlainExport, export_plain, fuse_bn, to_submconv
from .swlk_conv import SWLKConv3d

TARGETS = ("auto", "grouped", "branch", "plain")
SWLK_TARGETS = ("grouped", "branch", "plain")
SMALL_KERNEL = 3

LargeKernelLayer = Union[SubMConv3d, DepthwiseLargeKernelConv3d, SWLKConv3d]
MergedLayer = Union[SubMConv3d, DepthwiseLargeKernelConv3d, SWLKConv3d]


# ---------------------------------------------------------------------------------------------------------
# kernels
def place_kernel(weight: Tensor, window: Sequence[int], dilation: Sequence[int] = (1, 1, 1)) -> Tensor:
    """A spconv-layout kernel ``[C_out, *K, C]`` with dilation ``d`` as a dilation-1 kernel over ``window``
    (odd, per axis): tap ``j`` goes to position ``window // 2 + d (j - K // 2)``, all other taps are zero."""
    kernel = tuple(weight.shape[1:-1])
    out = weight.new_zeros((weight.shape[0], *window, weight.shape[-1]))
    index = []
    for axis, (k, w, d) in enumerate(zip(kernel, window, dilation)):
        pos = w // 2 + d * (torch.arange(k, device=weight.device) - k // 2)
        if int(pos[0]) < 0 or int(pos[-1]) >= w:
            raise ValueError(f"a {k}-tap kernel of dilation {d} does not fit a {w}-wide window (axis {axis})")
        shape = [1] * len(kernel)
        shape[axis] = k
        index.append(pos.view(shape))
    where: Tuple[Union[slice, Tensor], ...] = (slice(None), *index, slice(None))
    out[where] = weight
    return out


def spanned_window(kernel_size: Sequence[int], dilation: Sequence[int]) -> Tuple[int, ...]:
    """Per axis, the dilation-1 window covering a dilated kernel and a centred ``3^3``: ``2 max(d (K // 2), 1) + 1``."""
    return tuple(2 * max(d * (k // 2), 1) + 1 for k, d in zip(kernel_size, dilation))


def inner_offsets(kernel_size: Sequence[int]) -> Tensor:
    """int64 ``[27]``: flat (row-major) indices, in a ``kernel_size`` window, of the offsets within one voxel of
    the centre, in the row-major order of a ``3^3`` kernel."""
    idx = torch.zeros((), dtype=torch.int64)
    for k in kernel_size:
        idx = idx.unsqueeze(-1) * k + (k // 2 + torch.arange(-1, 2))
    return idx.reshape(-1)


def _relative(flat: int, kernel_size: Sequence[int]) -> Tuple[int, ...]:
    pos = []
    for k in reversed(tuple(kernel_size)):
        pos.append(flat % k - k // 2)
        flat //= k
    return tuple(reversed(pos))


def grouped_merge_obstacle(layer: SWLKConv3d) -> Optional[str]:
    """Why a ``3^3`` kernel cannot be added into ``layer``'s own group weights exactly (``None``: it can)."""
    part = layer.partition
    group = part.group_index()
    sizes = part.group_sizes()
    for t in inner_offsets(part.kernel_size).tolist():
        g = int(group[t])
        if int(sizes[g]) > 1:
            other = next(k for k in torch.nonzero(group == g).flatten().tolist() if k != t)
            return (
                f"the {part.name!r} partition of {part.kernel_size} shares one weight between offset "
                f"{_relative(t, part.kernel_size)} of the 3^3 kernel and offset "
                f"{_relative(other, part.kernel_size)} ({int(sizes[g])} offsets in that group), but the 3^3 "
                f"kernel has its own weight on each of its 27 offsets"
            )
    if layer.position_encoding is not None:
        return (
            "the layer has a position encoding, which enters as E[k] W_g(k): adding the 3^3 kernel to W_g "
            "would change the encoding's contribution"
        )
    return None


def branch_merge_obstacle(layer: SWLKConv3d) -> Optional[str]:
    """Why the small kernel cannot become ``layer``'s parallel ``3^3`` branch (``None``: it can)."""
    if layer.dilated is not None and tuple(layer.dilated.dilation) != (1,) * 3:
        return (
            f"the layer already has a dilated 3^3 branch of dilation {tuple(layer.dilated.dilation)}, and a "
            f"SW-LK layer holds one branch"
        )
    return None


def plain_merge_obstacle(layer: SWLKConv3d) -> Optional[str]:
    """Why the merge cannot be a plain ``k^3`` ``SubMConv3d`` (``None``: it can)."""
    if layer.position_encoding is not None:
        return (
            "the layer has a position encoding, which a plain SubMConv3d cannot express (it is a conv of an "
            "extra all-ones channel: merge_small_kernel_export(block) gives that exact PlainExport)"
        )
    return None


_OBSTACLES = {"grouped": grouped_merge_obstacle, "branch": branch_merge_obstacle, "plain": plain_merge_obstacle}


def swlk_targets(layer: SWLKConv3d) -> Tuple[str, ...]:
    """The targets (of ``"grouped"``, ``"branch"``, ``"plain"``) that merge a small kernel into ``layer`` exactly."""
    return tuple(t for t in SWLK_TARGETS if _OBSTACLES[t](layer) is None)


# ---------------------------------------------------------------------------------------------------------
# the training block
def _kind(large: nn.Module) -> str:
    if isinstance(large, SWLKConv3d):
        return "swlk"
    if isinstance(large, DepthwiseLargeKernelConv3d):
        return "depthwise"
    if isinstance(large, SubMConv3d) and getattr(large, "subm", False):
        return "dilated" if any(d != 1 for d in large.dilation) else "plain"
    raise TypeError(
        f"large must be a large-kernel layer of largekernel3d (SWLKConv3d, PlainLargeKernelConv3d, "
        f"DepthwiseLargeKernelConv3d, DilatedConv3d or a submanifold SubMConv3d), got "
        f"{type(large).__name__}"
    )


def _large_conv(large: nn.Module) -> Union[SubMConv3d, SWLKConv3d]:
    """The layer the small branch runs parallel to (the depth-wise part of a depth-wise + point-wise layer)."""
    conv = large.depthwise if isinstance(large, DepthwiseLargeKernelConv3d) else large
    if not isinstance(conv, (SubMConv3d, SWLKConv3d)):
        raise TypeError(f"expected a SubMConv3d or SWLKConv3d, got {type(conv).__name__}")
    return conv


class RepLargeKernelConv3d(SparseModule):
    """A large-kernel layer with a parallel ``3^3`` submanifold conv, each followed by its BatchNorm, summed
    (RepLKNet): ``y = BN_L(large(x)) + BN_S(small(x))``; :meth:`merge` gives the one equivalent layer for
    inference (math and targets in the module docstring).

    Usable in place of ``large`` (same input and output channels, same sites). For a
    :class:`~largekernel3d.nn.DepthwiseLargeKernelConv3d` the small conv is depth-wise and parallel to the
    depth-wise part: ``y = pointwise(BN_L(depthwise(x)) + BN_S(small(x)))``.

    Args:
        large: the large-kernel layer (kept as ``self.large``, trained as is).
        small_indice_key: kernel-map key of the small conv; ``None`` (default) is ``large``'s key +
            ``"_small"`` (no key when ``large`` has none).
        bn_eps, bn_momentum: of the two :class:`~largekernel3d.sparse.SparseBatchNorm`.

    Attributes: ``large``, ``large_bn``, ``small`` (``SubMConv3d(C, C', 3)`` with ``large``'s groups, no
    bias), ``small_bn``.
    """

    def __init__(
        self,
        large: LargeKernelLayer,
        small_indice_key: Optional[str] = None,
        bn_eps: float = 1e-5,
        bn_momentum: float = 0.1,
    ) -> None:
        super().__init__()
        self.kind = _kind(large)
        conv = _large_conv(large)
        if any(k < SMALL_KERNEL or k % 2 == 0 for k in conv.kernel_size):
            raise ValueError(
                f"large must have an odd kernel of at least {SMALL_KERNEL} on every axis to hold the "
                f"{SMALL_KERNEL}^3 kernel in its centre, got kernel_size={tuple(conv.kernel_size)}"
            )
        key = conv.indice_key
        if small_indice_key is None and key is not None:
            small_indice_key = f"{key}_small"
        groups = getattr(conv, "groups", 1)
        device, dtype = conv.weight.device, conv.weight.dtype
        self.large = large
        self.large_bn = SparseBatchNorm(conv.out_channels, eps=bn_eps, momentum=bn_momentum, device=device, dtype=dtype)
        self.small = SubMConv3d(
            conv.in_channels,
            conv.out_channels,
            SMALL_KERNEL,
            groups=groups,
            bias=False,
            indice_key=small_indice_key,
            device=device,
            dtype=dtype,
        )
        self.small_bn = SparseBatchNorm(conv.out_channels, eps=bn_eps, momentum=bn_momentum, device=device, dtype=dtype)

    @property
    def in_channels(self) -> int:
        return self.large.in_channels

    @property
    def out_channels(self) -> int:
        return self.large.out_channels

    def extra_repr(self) -> str:
        return f"kind={self.kind!r}"

    def validate(self) -> None:
        """Raise ``ValueError`` when ``small`` / the BatchNorms no longer fit ``large`` (e.g. replaced by hand)."""
        conv = _large_conv(self.large)
        small = self.small
        if not isinstance(small, SubMConv3d) or not getattr(small, "subm", False):
            raise ValueError(f"small must be a submanifold SubMConv3d, got {type(small).__name__}")
        groups = getattr(conv, "groups", 1)
        want = (conv.in_channels, conv.out_channels, groups, (SMALL_KERNEL,) * 3, (1,) * 3)
        have = (small.in_channels, small.out_channels, small.groups, tuple(small.kernel_size), tuple(small.dilation))
        if have != want:
            raise ValueError(
                f"small (in_channels, out_channels, groups, kernel_size, dilation) = {have} but the large "
                f"layer needs {want}: the {SMALL_KERNEL}^3 branch must have the large kernel's channels "
                f"and groups (build a new RepLargeKernelConv3d instead of replacing .small)"
            )
        for name in ("large_bn", "small_bn"):
            bn = getattr(self, name)
            if not isinstance(bn, nn.modules.batchnorm._BatchNorm) or bn.num_features != conv.out_channels:
                got = bn.num_features if isinstance(bn, nn.modules.batchnorm._BatchNorm) else type(bn).__name__
                raise ValueError(
                    f"{name} must be a BatchNorm over the {conv.out_channels} channels of the large "
                    f"kernel's output, got {got}"
                )

    def forward(self, x: SparseConvTensor) -> SparseConvTensor:
        conv = _large_conv(self.large)
        y = conv(x)
        features = self.large_bn(y.features) + self.small_bn(self.small(x).features)
        y = y.replace_feature(features)
        if isinstance(self.large, DepthwiseLargeKernelConv3d):
            return self.large.pointwise(y)
        return y

    def merge(self, target: str = "auto") -> MergedLayer:
        """The single layer equivalent to this block in eval mode (see :func:`merge_small_kernel`)."""
        return merge_small_kernel(self, target)


# ---------------------------------------------------------------------------------------------------------
# merging
def _folded(block: RepLargeKernelConv3d, target: str) -> Tuple[Union[SubMConv3d, SWLKConv3d], SubMConv3d]:
    """Checks, then (large conv with ``large_bn`` folded, small conv with ``small_bn`` folded)."""
    if not isinstance(block, RepLargeKernelConv3d):
        raise TypeError(f"merge_small_kernel needs a RepLargeKernelConv3d, got {type(block).__name__}")
    if target not in TARGETS:
        raise ValueError(f"target must be one of {TARGETS}, got {target!r}")
    if block.kind != "swlk" and target in ("grouped", "branch"):
        raise ValueError(
            f"target={target!r} is for SWLKConv3d layers; a {block.kind} large kernel merges into "
            f"one fixed layer: use target='auto'"
        )
    if block.training or block.large_bn.training or block.small_bn.training:
        raise RuntimeError(
            "merge_small_kernel folds the BatchNorms' running statistics, which only eval mode "
            "uses: call block.eval() (or network.eval()) before merging"
        )
    block.validate()
    small = fuse_bn(block.small, block.small_bn)
    assert isinstance(small, SubMConv3d)
    return fuse_bn(_large_conv(block.large), block.large_bn), small


def _resolve_swlk_target(layer: SWLKConv3d, target: str) -> str:
    if target != "auto":
        why = _OBSTACLES[target](layer)
        if why is not None:
            exact = swlk_targets(layer)
            alternative = (
                f"use target={exact[0]!r} (exact here; 'auto' picks it)"
                if exact
                else "no SW-LK or plain SubMConv3d target is exact here: use merge_small_kernel_export(block) "
                "(a PlainExport with the encoding as a conv of an all-ones channel)"
            )
            raise ValueError(f"cannot merge the 3^3 branch into target={target!r} exactly: {why}; {alternative}")
        return target
    exact = swlk_targets(layer)
    if not exact:
        raise ValueError(
            "no SWLKConv3d or SubMConv3d represents this block exactly ("
            + "; ".join(f"{t}: {_OBSTACLES[t](layer)}" for t in SWLK_TARGETS)
            + "): use merge_small_kernel_export(block), a PlainExport with the encoding as a conv of "
            "an all-ones channel"
        )
    return exact[0]


def _merge_swlk(large: SWLKConv3d, small: SubMConv3d, target: str) -> Union[SWLKConv3d, SubMConv3d]:
    target = _resolve_swlk_target(large, target)
    merged: Union[SWLKConv3d, SubMConv3d]
    with torch.no_grad():
        if target == "grouped":
            per_offset = small.weight.reshape(small.out_channels, -1, small.in_channels).permute(1, 2, 0)
            groups = large.group_index.index_select(0, inner_offsets(large.kernel_size).to(large.group_index.device))
            large.weight.index_add_(0, groups, per_offset)  # singleton groups: each gets its own offset
            merged = large
        elif target == "branch":
            if large.dilated is None:
                large.dilated = copy.deepcopy(small)
                large.dilated.bias = None
            else:
                large.dilated.weight.add_(small.weight)
            merged = large
        else:
            merged = to_submconv(large, large.indice_key)
            merged.weight.add_(place_kernel(small.weight, merged.kernel_size))
        _add_bias(merged, small)
    return merged


def _add_bias(merged: Union[SWLKConv3d, SubMConv3d], small: SubMConv3d) -> None:
    """``merged.bias += small.bias`` (both exist after BN folding)."""
    if merged.bias is None or small.bias is None:
        raise ValueError("BN folding gives both layers a bias; got a layer without one")
    merged.bias.add_(small.bias)


def merge_small_kernel(block: RepLargeKernelConv3d, target: str = "auto") -> MergedLayer:
    """The one layer equivalent to an eval-mode :class:`RepLargeKernelConv3d` (a new module; ``block`` is
    unchanged): BNs folded (``W' = s W``, ``b' = s (b - mu) + beta``, ``s = gamma / sqrt(var + eps)``), the
    ``3^3`` kernel zero-padded into the centre of the large window and added.

    Targets (module docstring): plain ``k^3`` -> the same class; depth-wise -> depth-wise; dilated -> the
    plain dilation-1 ``SubMConv3d`` over the spanned window; SW-LK -> ``target`` in ``"grouped"`` (same layer),
    ``"branch"`` (same layer + its ``3^3`` branch), ``"plain"`` (``SubMConv3d`` ``k^3``), ``"auto"`` the first
    exact one.

    Raises ``RuntimeError`` in training mode, ``ValueError`` when ``target`` cannot represent the sum
    exactly (naming the targets that can) or the branches no longer fit each other.
    """
    large, small = _folded(block, target)
    if isinstance(large, SWLKConv3d):
        return _merge_swlk(large, small, target)
    merged: SubMConv3d
    with torch.no_grad():
        if block.kind == "dilated":
            window = spanned_window(large.kernel_size, large.dilation)
            key = None if large.indice_key is None else f"{large.indice_key}_merged"
            merged = SubMConv3d(
                large.in_channels, large.out_channels, window, groups=large.groups, bias=True, indice_key=key
            ).to(device=large.weight.device, dtype=large.weight.dtype)
            merged.weight.copy_(place_kernel(large.weight, window, large.dilation))
            if merged.bias is not None and large.bias is not None:
                merged.bias.copy_(large.bias)
        else:
            merged = large
        merged.weight.add_(place_kernel(small.weight, merged.kernel_size))
        _add_bias(merged, small)
    if block.kind == "depthwise":
        layer = copy.deepcopy(block.large)
        layer.depthwise = merged
        return layer
    return merged


def merge_small_kernel_export(block: RepLargeKernelConv3d) -> PlainExport:
    """An eval-mode SW-LK block as a :class:`~largekernel3d.nn.PlainExport` (exact for every configuration,
    position encoding included): :func:`~largekernel3d.nn.export_plain` of the BN-folded large layer with the
    BN-folded ``3^3`` kernel padded into the centre of its weight and its bias added."""
    if not isinstance(block, RepLargeKernelConv3d) or block.kind != "swlk":
        raise TypeError(
            f"merge_small_kernel_export needs a RepLargeKernelConv3d of a SWLKConv3d; other layers "
            f"merge into one layer with merge_small_kernel, got "
            f"{getattr(block, 'kind', type(block).__name__)}"
        )
    large, small = _folded(block, "auto")
    assert isinstance(large, SWLKConv3d)
    exp = export_plain(large)
    with torch.no_grad():
        weight = exp.weight + place_kernel(small.weight, tuple(exp.weight.shape[1:-1]))
        assert small.bias is not None  # BN folding gives the small conv a bias
        bias = small.bias if exp.bias is None else exp.bias + small.bias
    return PlainExport(weight, exp.encoding_weight, bias)


# ---------------------------------------------------------------------------------------------------------
# networks
def merge_small_kernels(network: nn.Module, target: str = "auto", inplace: bool = False) -> nn.Module:
    """``network`` (a copy unless ``inplace``) with every :class:`RepLargeKernelConv3d` replaced by
    :func:`merge_small_kernel` ``(block, target)`` (the network must be in eval mode). A SW-LK ``target``
    applies to the SW-LK blocks; the others merge into their one fixed target."""
    net = network if inplace else copy.deepcopy(network)
    if isinstance(net, RepLargeKernelConv3d):
        return merge_small_kernel(net, target)
    for name, child in list(net.named_children()):
        if isinstance(child, RepLargeKernelConv3d):
            t = target if child.kind == "swlk" else "auto"
            setattr(net, name, merge_small_kernel(child, t))
        else:
            merge_small_kernels(child, target, inplace=True)
    return net


def is_large_kernel(module: nn.Module, min_window: int = 5) -> bool:
    """True for the layers :class:`RepLargeKernelConv3d` wraps whose window (dilation included) is at least
    ``min_window`` wide on some axis."""
    try:
        kind = _kind(module)
    except TypeError:
        return False
    conv = _large_conv(module)
    if any(k < SMALL_KERNEL or k % 2 == 0 for k in conv.kernel_size):
        return False
    dilation = getattr(conv, "dilation", (1,) * 3) if kind != "swlk" else (1,) * 3
    return max(d * (k - 1) + 1 for k, d in zip(conv.kernel_size, dilation)) >= min_window


def add_small_kernels(
    network: nn.Module, min_window: int = 5, bn_eps: float = 1e-5, bn_momentum: float = 0.1
) -> nn.Module:
    """Wrap, in place, every large-kernel layer of ``network`` (see :func:`is_large_kernel`) in a
    :class:`RepLargeKernelConv3d` for training; returns ``network`` (or the block when ``network`` is itself
    such a layer). The layers inside a SW-LK / depth-wise layer or an existing block are left alone."""
    if is_large_kernel(network, min_window):
        assert isinstance(network, (SubMConv3d, DepthwiseLargeKernelConv3d, SWLKConv3d))
        return RepLargeKernelConv3d(network, bn_eps=bn_eps, bn_momentum=bn_momentum)
    if isinstance(network, (RepLargeKernelConv3d, SWLKConv3d, DepthwiseLargeKernelConv3d)):
        return network
    for name, child in list(network.named_children()):
        setattr(network, name, add_small_kernels(child, min_window, bn_eps, bn_momentum))
    return network


__all__ = [
    "RepLargeKernelConv3d",
    "merge_small_kernel",
    "merge_small_kernel_export",
    "merge_small_kernels",
    "add_small_kernels",
    "is_large_kernel",
    "swlk_targets",
    "place_kernel",
    "spanned_window",
    "inner_offsets",
    "TARGETS",
]
