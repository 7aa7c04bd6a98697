"""Sparse convolution layers with the spconv 2.x names, arguments and weight layout.

Weight: ``[C_out, *kernel_size, C_in // groups]``; bias ``[C_out]``. For output site ``p``::

    out[p] = bias + sum_k W[k] in[q(p, k)]                 (sum over active q only)

with ``q = p + dilation (k - kernel_size // 2)`` for submanifold convs, ``q = stride p - padding +
dilation k`` for regular convs, and the adjoint relation for transposed / inverse convs.
"""

from __future__ import annotations

import enum
import math
from typing import Optional, Tuple

import torch
from torch import nn

from .compile_support import eager_under_compile
from .cpu.tuning import DEFAULT_TUNING, CpuTuning
from .dispatch import CONV_DATAFLOWS, Dataflow, DataflowLike, as_dataflow, check_tuning
from .functional import sparse_conv
from .geometry import ConvGeometry, IntOrSeq
from .kernel_map import (
    REGULAR,
    SUBMANIFOLD,
    TRANSPOSED,
    KernelMap,
    build_regular_map,
    build_submanifold_map,
    build_transposed_map,
    same_sites,
)
from .modules import SparseModule, check_parameter_match, check_sparse_input
from .tensor import SparseConvTensor


class ConvAlgo(enum.Enum):
    """spconv's algorithm choice (``algo=`` of every conv and pool), accepted and ignored: this engine picks its
    dataflow by its own rule (:func:`.dispatch.plan_conv`; ``dataflow=`` asks for one). Same member names and values
    as spconv 2.3."""

    Native = 0
    MaskImplicitGemm = 1
    MaskSplitImplicitGemm = 2


def get_or_build_map(
    x: SparseConvTensor,
    kind: str,
    geometry: ConvGeometry,
    indice_key: Optional[str],
    tuning: CpuTuning = DEFAULT_TUNING,
) -> KernelMap:
    """The kernel map of ``kind``/``geometry`` on ``x``'s sites: taken from ``x.indice_dict`` when
    ``indice_key`` names a compatible one (an incompatible one raises), otherwise built (by the map rule,
    :func:`.dispatch.plan_kernel_map`, with ``tuning``) and cached. Maps are shared through ``indice_key`` by
    layers of any dataflow, so a layer's ``dataflow`` does not choose its map's."""
    cached = x.find_indice_pair(indice_key)
    if cached is not None:
        cached.check_reusable(kind, geometry, x.indices, indice_key)
        if tuple(x.spatial_shape) != tuple(cached.in_spatial_shape) or x.batch_size != cached.batch_size:
            raise ValueError(
                f"indice_key={indice_key!r} was built for spatial_shape={list(cached.in_spatial_shape)}, "
                f"batch_size={cached.batch_size} but the input has spatial_shape={x.spatial_shape}, "
                f"batch_size={x.batch_size}; give this layer its own indice_key"
            )
        return cached
    builders = {SUBMANIFOLD: build_submanifold_map, REGULAR: build_regular_map, TRANSPOSED: build_transposed_map}
    kmap = builders[kind](x.indices, x.spatial_shape, x.batch_size, geometry, tuning=tuning)
    if indice_key is not None:
        x.indice_dict[indice_key] = kmap
    return kmap


def inverse_map(x: SparseConvTensor, geometry: ConvGeometry, indice_key: Optional[str]) -> KernelMap:
    """The adjoint of the regular conv cached under ``indice_key`` (for ``SparseInverseConv``)."""
    if indice_key is None:
        raise ValueError("SparseInverseConv needs the indice_key of the SparseConv it inverts")
    cached = x.find_indice_pair(indice_key)
    if cached is None:
        raise ValueError(
            f"indice_key={indice_key!r} is not in the input's indice_dict "
            f"(known keys: {sorted(x.indice_dict)}); the paired SparseConv must run first on "
            f"the same tensor chain"
        )
    if cached.kind != REGULAR:
        raise ValueError(
            f"indice_key={indice_key!r} holds a {cached.kind} map; SparseInverseConv needs the "
            f"key of a strided SparseConv"
        )
    if cached.geometry.kernel_size != geometry.kernel_size:
        raise ValueError(
            f"SparseInverseConv kernel_size={geometry.kernel_size} differs from the paired "
            f"conv's {cached.geometry.kernel_size} (indice_key={indice_key!r})"
        )
    if not same_sites(cached.out_indices, x.indices) or tuple(x.spatial_shape) != tuple(cached.out_spatial_shape):
        raise ValueError(
            f"SparseInverseConv input sites (or spatial_shape) differ from the output of the conv "
            f"under indice_key={indice_key!r}"
        )
    return cached.derived("transposed", cached.transposed)


class SparseConvolution(SparseModule):
    """A sparse convolution of any kind; use the named subclasses (``SubMConv3d`` etc.).

    Args:
        ndim: number of spatial axes ``D``.
        in_channels, out_channels: ``C_in``, ``C_out`` (both divisible by ``groups``).
        kernel_size, stride, padding, dilation: int or per-axis tuple.
        groups: block-diagonal channel groups; ``groups == in_channels`` is depth-wise.
        bias: add a learnable ``[C_out]`` bias.
        subm: submanifold (output sites = input sites; stride must be 1, padding is ignored).
        transposed: transposed conv (generates the sites of the adjoint regular conv).
        inverse: inverse conv (restores the input sites of the regular conv under ``indice_key``).
        indice_key: name under which the kernel map is cached / looked up in ``indice_dict``.
        device, dtype: where / how the parameters are created (as ``nn.Conv3d``).
        dataflow: the convolution's :class:`.dispatch.Dataflow` (``AUTO``: :func:`.dispatch.plan_conv`'s rule;
            ``CPU_FUSED``, ``CPU_TILED`` or ``TORCH_REF`` by name). Not saved in the state dict.
        tuning: the :class:`.cpu.tuning.CpuTuning` the map builder and the kernels read. Not saved either.

    spconv's ``algo``, ``fp32_accum``, ``record_voxel_count``, ``large_kernel_fast_algo`` and ``name`` are
    accepted and have no effect; ``act_type`` (fused activation) must be left unset.
    """

    def __init__(
        self,
        ndim: int,
        in_channels: int,
        out_channels: int,
        kernel_size: IntOrSeq = 3,
        stride: IntOrSeq = 1,
        padding: IntOrSeq = 0,
        dilation: IntOrSeq = 1,
        groups: int = 1,
        bias: bool = True,
        subm: bool = False,
        output_padding: IntOrSeq = 0,
        transposed: bool = False,
        inverse: bool = False,
        indice_key: Optional[str] = None,
        algo=None,
        fp32_accum=None,
        record_voxel_count: bool = False,
        act_type=None,
        act_alpha: float = 0,
        act_beta: float = 0,
        large_kernel_fast_algo: bool = False,
        name=None,
        device=None,
        dtype=None,
        dataflow: DataflowLike = Dataflow.AUTO,
        tuning: CpuTuning = DEFAULT_TUNING,
    ) -> None:
        super().__init__(name)
        self.dataflow = as_dataflow(dataflow, "convolution", CONV_DATAFLOWS)
        self.tuning = check_tuning(tuning)
        if act_type is not None and not str(act_type).endswith("None_"):
            raise ValueError(
                f"act_type={act_type!r}: fused activations are not supported; put an nn.ReLU (or "
                f"another activation) after the conv in a SparseSequential"
            )
        for arg, value in (("in_channels", in_channels), ("out_channels", out_channels), ("groups", groups)):
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{arg} must be a positive int, got {value!r}")
        if in_channels % groups or out_channels % groups:
            raise ValueError(
                f"in_channels={in_channels} and out_channels={out_channels} must both be divisible by groups={groups}"
            )
        self.geometry = ConvGeometry.create(ndim, kernel_size, stride, padding, dilation)
        if any(o != 0 for o in ConvGeometry.create(ndim, 1, 1, output_padding, 1).padding):
            raise ValueError("output_padding is not supported; pad the spatial_shape instead")
        if subm and any(s != 1 for s in self.geometry.stride):
            raise ValueError(f"a submanifold conv keeps its sites, so stride must be 1, got {stride!r}")
        if inverse and indice_key is None:
            raise ValueError("SparseInverseConv needs indice_key (the key of the conv it inverts)")
        self.ndim = ndim
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.groups = groups
        self.subm = subm
        self.transposed = transposed
        self.inverse = inverse
        self.indice_key = indice_key
        factory = {"device": device, "dtype": dtype}
        self.weight = nn.Parameter(
            torch.empty(out_channels, *self.geometry.kernel_size, in_channels // groups, **factory)
        )
        self.bias = nn.Parameter(torch.empty(out_channels, **factory)) if bias else None
        self.reset_parameters()

    # spconv-style read-only attributes
    @property
    def kernel_size(self):
        return self.geometry.kernel_size

    @property
    def stride(self):
        return self.geometry.stride

    @property
    def padding(self):
        return self.geometry.padding

    @property
    def dilation(self):
        return self.geometry.dilation

    def reset_parameters(self) -> None:
        """Uniform in ``±1/sqrt(fan_in)`` with ``fan_in = C_in / groups * prod(kernel_size)``
        (what ``kaiming_uniform_(a=sqrt(5))`` gives, as in spconv and ``nn.Conv3d``)."""
        fan_in = self.weight.shape[-1] * self.geometry.kernel_volume
        bound = 1.0 / math.sqrt(fan_in)
        nn.init.uniform_(self.weight, -bound, bound)
        if self.bias is not None:
            nn.init.uniform_(self.bias, -bound, bound)

    def extra_repr(self) -> str:
        s = (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
            f"padding={self.padding}, dilation={self.dilation}"
        )
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        if self.indice_key is not None:
            s += f", indice_key={self.indice_key!r}"
        if self.dataflow is not Dataflow.AUTO:
            s += f", dataflow={self.dataflow.name}"
        return s

    @property
    def weight_read_as_matrix(self) -> bool:
        """True when spconv 2.x computes this layer as one matrix product on the raw weight memory: kernel
        volume 1, and a submanifold conv or all strides 1 (see :meth:`_save_to_state_dict`)."""
        return self.geometry.kernel_volume == 1 and (self.subm or all(s == 1 for s in self.geometry.stride))

    # State dicts in spconv's format. spconv multiplies a kernel-volume-1 layer's input by its weight memory
    # ``m`` read as the ``[C_in, C_out]`` matrix, not by ``W[o, 0.., i]``. Our parameter keeps the meaning
    # ``W[o, 0.., i]`` of every other layer; its state-dict entry holds the memory spconv would read, so that
    # ``load_state_dict`` / ``state_dict`` move checkpoints between the two libraries unchanged, both ways:
    #     state m  = W.reshape(C_out, C_in)^T  (contiguous, shape of W)        W = m.reshape(C_in, C_out)^T
    def _matrix_layout(self) -> bool:
        return self.weight_read_as_matrix and self.groups == 1

    def _save_to_state_dict(self, destination, prefix, keep_vars):
        super()._save_to_state_dict(destination, prefix, keep_vars)
        key = prefix + "weight"
        if self._matrix_layout() and key in destination:
            w = destination[key]
            m = w.detach().reshape(self.out_channels, self.in_channels).t().contiguous().reshape(w.shape)
            destination[key] = m if keep_vars is False else nn.Parameter(m, requires_grad=w.requires_grad)

    def _load_from_state_dict(
        self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
    ):
        key = prefix + "weight"
        if self._matrix_layout() and key in state_dict and state_dict[key].numel() == self.weight.numel():
            m = state_dict[key]
            state_dict[key] = m.reshape(self.in_channels, self.out_channels).t().contiguous().reshape(self.weight.shape)
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )

    def kernel_map(self, x: SparseConvTensor) -> KernelMap:
        """The (cached or new) kernel map this layer uses on ``x``."""
        if self.inverse:
            return inverse_map(x, self.geometry, self.indice_key)
        kind = SUBMANIFOLD if self.subm else TRANSPOSED if self.transposed else REGULAR
        return get_or_build_map(x, kind, self.geometry, self.indice_key, self.tuning)

    def check_parameters(self) -> None:
        """Raise ``ValueError``/``TypeError`` when ``weight`` / ``bias`` no longer have the shapes this layer was
        built with (e.g. after ``conv.weight.data = ...``), naming spconv 2.1's ``[*kernel, C_out, C_in]`` layout
        and its converter when the weight is in it."""
        name = type(self).__name__
        expected = (self.out_channels, *self.geometry.kernel_size, self.in_channels // self.groups)
        w = self.weight
        if not isinstance(w, torch.Tensor) or not w.is_floating_point():
            raise TypeError(
                f"{name}.weight must be a floating-point tensor, got "
                f"{w.dtype if isinstance(w, torch.Tensor) else type(w).__name__}"
            )
        if tuple(w.shape) != expected:
            k = tuple(self.geometry.kernel_size)
            hint = ""
            if tuple(w.shape) in ((*k, self.out_channels, self.in_channels), (*k, self.in_channels, self.out_channels)):
                hint = (
                    " — this is spconv 2.1's [*kernel, C_out, C_in] (RSKC) or spconv 1.x's [*kernel, C_in, C_out] "
                    "(RSCK) layout; convert it with largekernel3d.sparse.convert_spconv21_weight(w, 'RSKC' or "
                    "'RSCK') or load the checkpoint with load_spconv_state_dict(..., spconv_version='2.1')"
                )
            raise ValueError(
                f"{name}.weight has shape {tuple(w.shape)} but this layer needs {expected} "
                f"([C_out, *kernel_size, C_in / groups]){hint}"
            )
        b = self.bias
        if b is not None and (not isinstance(b, torch.Tensor) or tuple(b.shape) != (self.out_channels,)):
            raise ValueError(
                f"{name}.bias must have shape ({self.out_channels},), got "
                f"{tuple(b.shape) if isinstance(b, torch.Tensor) else type(b).__name__}"
            )

    @eager_under_compile
    def forward(self, x: SparseConvTensor) -> SparseConvTensor:
        name = type(self).__name__
        check_sparse_input(x, name, self.in_channels, self.ndim)
        self.check_parameters()
        check_parameter_match(x, self.weight, name)
        kmap = self.kernel_map(x)
        out = sparse_conv(x.features, self.weight, kmap, self.groups, self.bias, self.dataflow, self.tuning)
        return SparseConvTensor(
            out, kmap.out_indices, list(kmap.out_spatial_shape), x.batch_size, indice_dict=x.indice_dict, validate=False
        )


# spconv 2.3.8's positional arguments after ``indice_key`` (submanifold / regular and transposed / inverse after
# ``bias``), so that a call written for spconv's signature binds the same way here
_SUBM_TAIL = ("algo", "fp32_accum", "large_kernel_fast_algo", "name")
_STRIDED_TAIL = ("algo", "fp32_accum", "record_voxel_count", "large_kernel_fast_algo", "name")
_INVERSE_TAIL = _SUBM_TAIL


def _positional_tail(cls_name: str, tail: Tuple[str, ...], values: tuple, kwargs: dict) -> dict:
    """``kwargs`` plus spconv's positional arguments ``values`` bound to the names ``tail`` (``TypeError`` for too
    many, or for one also given by keyword)."""
    if len(values) > len(tail):
        raise TypeError(
            f"{cls_name} takes at most {len(tail)} positional arguments after indice_key ({', '.join(tail)})"
        )
    for name, value in zip(tail, values):
        if name in kwargs:
            raise TypeError(f"{cls_name} got multiple values for argument {name!r}")
        kwargs[name] = value
    return kwargs


def _named(ndim: int, subm: bool = False, transposed: bool = False, inverse: bool = False):
    tail = _SUBM_TAIL if subm else _STRIDED_TAIL

    def init(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: IntOrSeq = 3,
        stride: IntOrSeq = 1,
        padding: IntOrSeq = 0,
        dilation: IntOrSeq = 1,
        groups: int = 1,
        bias: bool = True,
        indice_key: Optional[str] = None,
        *spconv_tail,
        **kwargs,
    ) -> None:
        SparseConvolution.__init__(
            self,
            ndim,
            in_channels,
            out_channels,
            kernel_size,
            stride,
            padding,
            dilation,
            groups,
            bias,
            subm=subm,
            transposed=transposed,
            inverse=inverse,
            indice_key=indice_key,
            **_positional_tail(type(self).__name__, tail, spconv_tail, kwargs),
        )

    return init


class SubMConv1d(SparseConvolution):
    """1-D submanifold conv."""

    __init__ = _named(1, subm=True)


class SubMConv2d(SparseConvolution):
    """2-D submanifold conv."""

    __init__ = _named(2, subm=True)


class SubMConv3d(SparseConvolution):
    """3-D submanifold conv: ``out[p] = sum_k W[k] in[p + dilation (k - kernel_size // 2)]`` on the input sites."""

    __init__ = _named(3, subm=True)


class SubMConv4d(SparseConvolution):
    """4-D submanifold conv (runs on the torch dataflow: the numba kernels cover 1 to 3 axes)."""

    __init__ = _named(4, subm=True)


class SparseConv1d(SparseConvolution):
    """1-D regular sparse conv."""

    __init__ = _named(1)


class SparseConv2d(SparseConvolution):
    """2-D regular sparse conv."""

    __init__ = _named(2)


class SparseConv3d(SparseConvolution):
    """3-D regular sparse conv: ``out[q] = sum_k W[k] in[stride q - padding + dilation k]``; output sites are
    every ``q`` reached by an active input."""

    __init__ = _named(3)


class SparseConv4d(SparseConvolution):
    """4-D regular sparse conv (torch dataflow)."""

    __init__ = _named(4)


class SparseConvTranspose1d(SparseConvolution):
    """1-D transposed sparse conv."""

    __init__ = _named(1, transposed=True)


class SparseConvTranspose2d(SparseConvolution):
    """2-D transposed sparse conv."""

    __init__ = _named(2, transposed=True)


class SparseConvTranspose3d(SparseConvolution):
    """3-D transposed sparse conv: ``out[stride q - padding + dilation k] += W[k] in[q]`` on every reached site."""

    __init__ = _named(3, transposed=True)


class SparseConvTranspose4d(SparseConvolution):
    """4-D transposed sparse conv (torch dataflow)."""

    __init__ = _named(4, transposed=True)


def _inverse_named(ndim: int):
    def init(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: IntOrSeq,
        indice_key: str,
        bias: bool = True,
        *spconv_tail,
        **kwargs,
    ) -> None:
        kwargs = _positional_tail(type(self).__name__, _INVERSE_TAIL, spconv_tail, kwargs)
        SparseConvolution.__init__(
            self, ndim, in_channels, out_channels, kernel_size, bias=bias, inverse=True, indice_key=indice_key, **kwargs
        )

    return init


class SparseInverseConv1d(SparseConvolution):
    """1-D inverse conv of the ``SparseConv1d`` sharing ``indice_key``."""

    __init__ = _inverse_named(1)


class SparseInverseConv2d(SparseConvolution):
    """2-D inverse conv of the ``SparseConv2d`` sharing ``indice_key``."""

    __init__ = _inverse_named(2)


class SparseInverseConv3d(SparseConvolution):
    """3-D inverse conv: the adjoint of the ``SparseConv3d`` under ``indice_key``, restoring its input sites."""

    __init__ = _inverse_named(3)


class SparseInverseConv4d(SparseConvolution):
    """4-D inverse conv of the ``SparseConv4d`` sharing ``indice_key``."""

    __init__ = _inverse_named(4)


__all__ = [
    "SparseConvolution",
    "SubMConv1d",
    "SubMConv2d",
    "SubMConv3d",
    "SubMConv4d",
    "SparseConv1d",
    "SparseConv2d",
    "SparseConv3d",
    "SparseConv4d",
    "SparseConvTranspose1d",
    "SparseConvTranspose2d",
    "SparseConvTranspose3d",
    "SparseConvTranspose4d",
    "SparseInverseConv1d",
    "SparseInverseConv2d",
    "SparseInverseConv3d",
    "SparseInverseConv4d",
    "ConvAlgo",
    "get_or_build_map",
    "inverse_map",
]
