"""Whole-model loading of official LargeKernel3D checkpoints: the segmentation network (V1 and V2) into
:class:`~largekernel3d.models.minkunet.LargeKernel3DSeg`, and (dispatching to
:func:`~largekernel3d.models.detection.official_det.load_official_backbone`) the det3d / OpenPCDet
large-kernel detection backbones into :class:`~largekernel3d.models.detection.LargeKernel3DBackbone`.

The official segmentation network (dvlab-research/LargeKernel3D ``semantic-segmentation/model.py``, a
MinkUNet34C on spconv) and ours have the same computation with these differences of configuration, all of
which become options of ``largekernel3d_seg``:

* its ``2³``/s2 down convs have ``padding=1`` (parent of site ``p`` is ``(p + 1) // 2``; ours default to 0):
  ``down_padding=1``;
* its V1 ``SpatialGroupConv`` has the parallel ``3³`` branch with dilation ``3`` (the detection code uses
  ``k // 2 - 1``): ``dilated_branch=True, dilated_dilation=3, position_encoding=False``;
* its V2 ``SpatialGroupConvV2`` (spconv-plus) has 27 group weights and a position embedding, no branch:
  ``position_encoding=True`` (our default SW-LK layer).

Key names (official -> ours)::

    conv0p1s1, bn0                            stem.conv, stem.bn
    conv{1..4}p{1,2,4,8}s2, bn{1..4}          down.{0..3}.conv, down.{0..3}.bn
    block{1..4}.{b}                           encoder.{0..3}.{b}
    convtr{4..7}p{16,8,4,2}s2, bntr{4..7}     up.{0..3}.conv, up.{0..3}.bn
    block{5..8}.{b}                           decoder.{0..3}.{b}
    final                                     final.linear (a 1³ conv: the linear map m.reshape(C_in, C_out)^T)
    inside a block: conv1, norm1, conv2, norm2, downsample.0 (1³ conv), downsample.1 (BN)
                    -> conv1, bn1, conv2, bn2, downsample.linear, downsample_bn
    inside a SW-LK conv: V1 block.weight (full k³, group means taken) + conv3x3_1.weight -> weight,
                    dilated.weight; V2 block.weight [3, 3, 3, C_out, C_in] + block.position_embedding
                    -> weight, position_encoding

Every checkpoint key must be read and every model key written (else ``ValueError``, or with
``strict=False`` a ``UserWarning`` and the lists in the report); V1 weights that are not constant over
their groups are averaged with a ``UserWarning`` above ``deviation_tolerance`` (relative), and their
deviation is reported per layer. Nothing is written into the model before every tensor was converted and
checked.
"""

from __future__ import annotations

import copy
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Dict, Mapping, Optional, Sequence, Set, Tuple, Union

import torch
from torch import Tensor, nn

from largekernel3d.nn import SWLKConv3d, load_official_v1, load_official_v2
from largekernel3d.nn.convert import (
    DEVIATION_TOLERANCE,
    conv_weight_to_krsc,
    linear_from_pointwise,
    relative_grouping_deviation,
    to_krsc,
)

from .blocks import SiteLinear
from .detection.official_det import (
    DEFAULT_PREFIX,
    ConversionPlan,
    OfficialLoadReport,
    detect_source,
    load_official_backbone,
)
from .detection.official_det import unwrap_checkpoint as _unwrap
from .minkunet import NUM_LEVELS, LargeKernel3DSeg

TASKS = ("seg", "det")
SEG_SOURCE = "official_seg"
OFFICIAL_DOWN_PADDING = 1  # the official segmentation network's SparseConv3d(2, stride=2, padding=1)
OFFICIAL_SEG_DILATION = 3  # the official segmentation SpatialGroupConv's conv3x3_1 dilation
DOWN_NAMES = ("conv1p1s2", "conv2p2s2", "conv3p4s2", "conv4p8s2")
UP_NAMES = ("convtr4p16s2", "convtr5p8s2", "convtr6p4s2", "convtr7p2s2")
KINDS = ("common", "spatialgroupconv", "spatialgroupconvv2")  # the official conv_type names
_BLOCK_PARTS = {
    "bn1": "norm1",
    "bn2": "norm2",
    "downsample_bn": "downsample.1",
    "downsample.linear": "downsample.0",
    "downsample": "downsample.0",
}
_LAYOUTS = ("auto", "KRSC", "RSKC", "RSCK")


# ---------------------------------------------------------------------------------------------------------
# reading a checkpoint
def read_checkpoint(path_or_state_dict: Union[str, Path, Mapping], weights_only: bool = True) -> Dict[str, Tensor]:
    """The flat ``{key: tensor}`` state dict of a checkpoint file or of ``torch.load``'s result
    (``["state_dict"]`` / ``["model_state"]`` / ``["model"]`` unwrapped, a leading ``module.`` removed).

    ``weights_only`` goes to ``torch.load``: a file that pickles other objects (e.g. an argparse
    namespace) needs ``weights_only=False``, which runs its pickle code -- only for files you trust.
    """
    if isinstance(path_or_state_dict, (str, Path)):
        path = Path(path_or_state_dict).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"checkpoint {path} does not exist")
        try:
            loaded = torch.load(path, map_location="cpu", weights_only=weights_only)
        except Exception as err:  # torch raises UnpicklingError / RuntimeError for non-tensor pickles
            if not weights_only:
                raise
            first_line = re.sub(r"\x1b\[[0-9;]*m", "", str(err).splitlines()[0] if str(err) else "")[:200]
            raise ValueError(
                f"checkpoint {path} holds objects other than tensors ({type(err).__name__}: {first_line}); if you "
                f"trust the file, load it with weights_only=False (lk3d convert official: --trust-pickle)"
            ) from None
        return _unwrap(loaded)
    return _unwrap(path_or_state_dict)


def _cube_root(n: int) -> Optional[int]:
    k = round(n ** (1 / 3))
    return k if k**3 == n else None


def conv_shape(weight: Tensor, name: str) -> Tuple[int, int, int]:
    """``(k, C_out, C_in)`` of a stored cubic conv weight, KRSC ``[C_out, k, k, k, C_in]`` or RSKC
    ``[k, k, k, C_out, C_in]`` (told apart by which three consecutive dims are equal)."""
    s = tuple(weight.shape)
    if len(s) == 5 and s[1] == s[2] == s[3]:
        return s[1], s[0], s[4]
    if len(s) == 5 and s[0] == s[1] == s[2]:
        return s[0], s[3], s[4]
    raise ValueError(
        f"{name} has shape {s}; expected a cubic conv weight [C_out, k, k, k, C_in] (spconv >= 2.2) or "
        f"[k, k, k, C_out, C_in] (spconv 2.1)"
    )


def conv_kind(state: Mapping[str, Tensor], path: str) -> Tuple[str, int, int, int]:
    """``(kind, k, C_out, C_in)`` of the official conv at ``path``: ``"common"`` (``path.weight``),
    ``"spatialgroupconv"`` (V1: ``path.block.weight`` full ``k³`` + ``path.conv3x3_1.weight``) or
    ``"spatialgroupconvv2"`` (V2: ``path.block.weight`` ``[3, 3, 3, ...]`` + ``path.block.position_embedding``)."""
    if f"{path}.weight" in state:
        return ("common", *conv_shape(state[f"{path}.weight"], f"{path}.weight"))
    if f"{path}.conv3x3_1.weight" in state:
        return ("spatialgroupconv", *conv_shape(state[f"{path}.block.weight"], f"{path}.block.weight"))
    if f"{path}.block.weight" in state:
        _, c_out, c_in = conv_shape(state[f"{path}.block.weight"], f"{path}.block.weight")
        enc = state.get(f"{path}.block.position_embedding")
        k = None if enc is None else _cube_root(enc.shape[0])
        if k is None:
            raise ValueError(
                f"V2 layer {path!r} has no position embedding of k^3 rows, so its kernel size is not in the checkpoint"
            )
        return "spatialgroupconvv2", k, c_out, c_in
    raise ValueError(f"the checkpoint has no conv at {path!r} (no {path}.weight or {path}.block.weight)")


# ---------------------------------------------------------------------------------------------------------
# the segmentation network
@dataclass(frozen=True)
class OfficialSegArchitecture:
    """What an official segmentation checkpoint says about its network.

    Attributes:
        in_channels, num_classes, init_dim: input channels, classes, stem width.
        stem_kernel_size: the ``conv0p1s1`` window (5).
        layers, planes: 8 block counts and stage widths.
        stage_kernel_sizes: 4 encoder kernel widths.
        stage_kinds: 4 official conv types of the encoder stages (:data:`KINDS`).
    """

    in_channels: int
    num_classes: int
    init_dim: int
    stem_kernel_size: int
    layers: Tuple[int, ...]
    planes: Tuple[int, ...]
    stage_kernel_sizes: Tuple[int, ...]
    stage_kinds: Tuple[str, ...]

    @property
    def version(self) -> str:
        """``"v1"``, ``"v2"`` or ``"plain"`` (no spatial-group stage)."""
        kinds = set(self.stage_kinds) - {"common"}
        return "plain" if not kinds else "v2" if kinds == {"spatialgroupconvv2"} else "v1"

    def model_config(
        self, down_padding: int = OFFICIAL_DOWN_PADDING, dilated_dilation: int = OFFICIAL_SEG_DILATION
    ) -> Dict[str, Any]:
        """The ``build_model`` config of the ``largekernel3d_seg`` that computes the official network."""
        cfg: Dict[str, Any] = {
            "name": "largekernel3d_seg",
            "in_channels": self.in_channels,
            "num_classes": self.num_classes,
            "stage_kernel_sizes": list(self.stage_kernel_sizes),
            "stage_conv_types": ["plain" if k == "common" else "swlk" for k in self.stage_kinds],
            "position_encoding": self.version == "v2",
            "partition": "center1",
            "dilated_branch": self.version == "v1",
            "layers": list(self.layers),
            "planes": list(self.planes),
            "init_dim": self.init_dim,
            "down_padding": down_padding,
        }
        if self.version == "v1":
            cfg["dilated_dilation"] = dilated_dilation
        return cfg


def _stage_blocks(state: Mapping[str, Tensor], stage: int) -> int:
    found = {int(m.group(1)) for k in state for m in [re.match(rf"block{stage}\.(\d+)\.", k)] if m}
    if not found or found != set(range(len(found))):
        raise ValueError(
            f"the checkpoint's block{stage} has blocks {sorted(found)}; expected 0, 1, ... (is this an "
            f"official LargeKernel3D segmentation checkpoint? its keys start with conv0p1s1, block1, ...)"
        )
    return len(found)


def detect_official_seg(state: Mapping[str, Tensor]) -> OfficialSegArchitecture:
    """The architecture of an official segmentation state dict (key names and shapes); ``ValueError`` when
    it is not one, or when it has something our ``largekernel3d_seg`` cannot express (mixed V1 / V2
    stages, non-plain or non-3³ decoder stages, a stem other than 5³)."""
    for key in ("conv0p1s1.weight", "final.weight", "final.bias"):
        if key not in state:
            raise ValueError(
                f"not an official LargeKernel3D segmentation checkpoint: no key {key!r} (first keys: "
                f"{sorted(state)[:5]}); a detection backbone's checkpoint converts with --task det (Python: "
                f"load_official_backbone)"
            )
    stem_k, init_dim, in_channels = conv_shape(state["conv0p1s1.weight"], "conv0p1s1.weight")
    layers = tuple(_stage_blocks(state, s) for s in range(1, 2 * NUM_LEVELS + 1))
    planes, kernels, kinds = [], [], []
    for s in range(1, 2 * NUM_LEVELS + 1):
        found = {conv_kind(state, f"block{s}.{b}.conv{n}")[:2] for b in range(layers[s - 1]) for n in (1, 2)}
        if len(found) != 1:
            raise ValueError(f"block{s} mixes conv types / kernel sizes {sorted(found)}; our stages have one each")
        kind, k = found.pop()
        planes.append(int(state[f"block{s}.0.norm1.weight"].shape[0]))
        kernels.append(k)
        kinds.append(kind)
    if set(kinds[:NUM_LEVELS]) >= {"spatialgroupconv", "spatialgroupconvv2"}:
        raise ValueError(
            f"the encoder mixes V1 and V2 spatial-group stages {kinds[:NUM_LEVELS]}, which "
            f"largekernel3d_seg cannot express (one position_encoding / dilated_branch for all stages)"
        )
    if any(k != "common" or n != 3 for k, n in zip(kinds[NUM_LEVELS:], kernels[NUM_LEVELS:])):
        raise ValueError(
            f"decoder stages block5-8 are {list(zip(kinds[NUM_LEVELS:], kernels[NUM_LEVELS:]))}; "
            f"largekernel3d_seg has plain 3^3 decoder stages"
        )
    if stem_k != 5:
        raise ValueError(f"conv0p1s1 is a {stem_k}^3 conv; largekernel3d_seg's stem is 5^3")
    return OfficialSegArchitecture(
        in_channels=in_channels,
        num_classes=int(state["final.bias"].shape[0]),
        init_dim=init_dim,
        stem_kernel_size=stem_k,
        layers=layers,
        planes=tuple(planes),
        stage_kernel_sizes=tuple(kernels[:NUM_LEVELS]),
        stage_kinds=tuple(kinds[:NUM_LEVELS]),
    )


def official_seg_path(path: str) -> str:
    """Our module path / key of a ``LargeKernel3DSeg`` -> the official one (see the module docstring)."""
    parts = path.split(".")
    head = parts[0]
    if head == "stem":
        return ".".join([{"conv": "conv0p1s1", "bn": "bn0"}[parts[1]], *parts[2:]])
    if head in ("down", "up"):
        i = int(parts[1])
        names = DOWN_NAMES if head == "down" else UP_NAMES
        bn = f"bn{i + 1}" if head == "down" else f"bntr{i + NUM_LEVELS}"
        return ".".join([names[i] if parts[2] == "conv" else bn, *parts[3:]])
    if head in ("encoder", "decoder"):
        stage = int(parts[1]) + 1 + (NUM_LEVELS if head == "decoder" else 0)
        rest = ".".join(parts[3:])
        for ours, theirs in _BLOCK_PARTS.items():
            if rest == ours or rest.startswith(ours + "."):
                rest = theirs + rest[len(ours) :]
                break
        return ".".join(p for p in (f"block{stage}", parts[2], rest) if p)
    if head == "final":
        return ".".join(["final", *parts[2:]])
    raise ValueError(f"{path!r} is not a module of LargeKernel3DSeg")


def _plan_module(plan: ConversionPlan, path: str, module: nn.Module, layout: str, dilation: int) -> None:
    src = official_seg_path(path)
    if isinstance(module, SWLKConv3d):
        scratch = copy.deepcopy(module)
        block = plan.state.get(f"{src}.block.weight")
        if block is None:
            plan.missing.extend(f"{path}.{n}" for n, _ in scratch.state_dict().items())
            return
        if module.dilated is not None:
            load_official_v1(
                scratch,
                plan.state,
                prefix=f"{src}.",
                block_layout=layout,
                branch_layout=layout,
                branch_dilation=dilation,
                deviation_tolerance=None,
            )
            plain = to_krsc(
                block, layout, module.kernel_size, module.in_channels, module.out_channels, f"{src}.block.weight"
            )
            plan.deviation[path] = relative_grouping_deviation(plain.double(), module.partition)
            used = ("block.weight", "conv3x3_1.weight")
        else:
            load_official_v2(scratch, plan.state, prefix=f"{src}.", layout=layout)
            used = ("block.weight", "block.position_embedding")
        for n in used:
            plan.take(f"{src}.{n}")
        sources = {
            "weight": "block.weight",
            "position_encoding": "block.position_embedding",
            "dilated.weight": "conv3x3_1.weight",
        }
        for name, value in scratch.state_dict().items():
            plan.put(f"{path}.{name}", value, f"{src}.{sources.get(name, name)}")
    elif isinstance(module, SiteLinear):
        lin = module.linear
        weight = plan.take(f"{src}.weight")
        if weight is None:
            plan.missing.append(f"{path}.linear.weight")
        else:
            plan.put(
                f"{path}.linear.weight",
                linear_from_pointwise(weight, lin.in_features, lin.out_features, f"{src}.weight"),
                f"{src}.weight",
            )
        if lin.bias is not None:
            bias = plan.take(f"{src}.bias")
            if bias is None:
                plan.missing.append(f"{path}.linear.bias")
            else:
                plan.put(f"{path}.linear.bias", bias, f"{src}.bias")
    else:  # a plain sparse conv (stem, down, up, plain stages): spconv weight [C_out, *k, C_in]
        key = f"{src}.weight"
        weight = plan.take(key)
        if weight is None:
            if f"{src}.block.weight" in plan.state:
                raise ValueError(f"checkpoint has a spatial-group conv at {src!r} but our {path!r} is a plain conv")
            plan.missing.append(f"{path}.weight")
            return
        plan.put(f"{path}.weight", conv_weight_to_krsc(weight, layout, module, key), key)


def _is_conv(module: nn.Module) -> bool:
    weight = getattr(module, "weight", None)
    return isinstance(weight, Tensor) and weight.dim() == 5 and hasattr(module, "kernel_size")


def _report_problems(what: str, unused: Sequence[str], missing: Sequence[str], strict: bool) -> None:
    if not (unused or missing):
        return
    text = (
        f"{what}: {len(unused)} checkpoint keys unused {list(unused[:6])}, {len(missing)} model keys missing "
        f"{list(missing[:6])}"
    )
    if strict:
        raise ValueError(
            f"{text}; the checkpoint does not match the network (pass strict=False to load the rest and get a report)"
        )
    warnings.warn(f"{text}; the missing ones keep their initial values", UserWarning, stacklevel=3)


def _warn_deviation(deviation: Mapping[str, float], tolerance: Optional[float]) -> None:
    if tolerance is None:
        return
    over = {p: d for p, d in deviation.items() if d > tolerance}
    if over:
        worst = max(over, key=lambda p: over[p])
        warnings.warn(
            f"{len(over)} V1 spatial-group layers were saved with ungrouped k^3 weights (relative deviation "
            f"from their group means up to {over[worst]:.3g} at {worst}, tolerance {tolerance:g}); they "
            f"were averaged over the groups. The official evaluation used the ungrouped weights, so "
            f"outputs differ from the official ones (report.grouping_deviation lists every layer)",
            UserWarning,
            stacklevel=3,
        )


def load_official_seg(
    model: LargeKernel3DSeg,
    checkpoint: Union[Mapping, str, Path],
    strict: bool = True,
    layout: str = "auto",
    dilation: int = OFFICIAL_SEG_DILATION,
    deviation_tolerance: Optional[float] = DEVIATION_TOLERANCE,
) -> OfficialLoadReport:
    """Load an official segmentation checkpoint into ``model`` (built with the matching configuration, e.g.
    ``build_model(detect_official_seg(state).model_config())``).

    Args:
        model: the ``LargeKernel3DSeg``.
        checkpoint: a state dict, ``torch.load``'s result, or a file path.
        strict: raise ``ValueError`` on unused checkpoint keys or unwritten model keys (else warn and report).
        layout: conv weight layout (``"auto"`` by shape; ``"KRSC"`` spconv >= 2.2, ``"RSKC"`` spconv 2.1).
        dilation: the checkpoint's V1 dilated-branch dilation (3 in the official code), checked against the
            model's layers.
        deviation_tolerance: warn when a V1 layer's relative grouping deviation exceeds it (``None``: never).

    Returns:
        :class:`OfficialLoadReport` (``source="official_seg"``). Raises before writing anything on a mismatch.
    """
    if not isinstance(model, LargeKernel3DSeg):
        raise TypeError(
            f"model must be a LargeKernel3DSeg (build_model({{'name': 'largekernel3d_seg', ...}})), got "
            f"{type(model).__name__}"
        )
    if layout not in _LAYOUTS:
        raise ValueError(f"layout must be one of {list(_LAYOUTS)}, got {layout!r}")
    state = read_checkpoint(checkpoint) if isinstance(checkpoint, (str, Path)) else _unwrap(checkpoint)
    plan = ConversionPlan(state, model.state_dict(), "the checkpoint has another architecture")
    done: Set[str] = set()
    swlk = [p for p, m in model.named_modules() if isinstance(m, SWLKConv3d)]
    for path, module in model.named_modules():
        if not path or any(path.startswith(f"{s}.") for s in swlk):
            continue
        if isinstance(module, (SWLKConv3d, SiteLinear)) or _is_conv(module):
            _plan_module(plan, path, module, layout, dilation)
            done.update(k for k in plan.target if k.startswith(f"{path}."))
    for key in plan.target:  # BatchNorm: the same tensor under the official name
        if key not in done:
            theirs = official_seg_path(key)
            value = plan.take(theirs)
            if value is None:
                plan.missing.append(key)
            else:
                plan.put(key, value, theirs)
    unused = tuple(sorted(set(state) - plan.read))
    missing = tuple(sorted(plan.missing))
    _report_problems("official segmentation checkpoint", unused, missing, strict)
    result = model.load_state_dict(plan.out, strict=False)
    if result.unexpected_keys:  # cannot happen: every written key comes from model.state_dict()
        raise RuntimeError(f"internal error: wrote unknown keys {result.unexpected_keys}")
    _warn_deviation(plan.deviation, deviation_tolerance)
    return OfficialLoadReport(
        source=SEG_SOURCE,
        prefix="",
        converted=tuple(sorted(plan.out)),
        grouping_deviation=dict(plan.deviation),
        unused=unused,
        missing=missing,
        other_parts=0,
    )


# ---------------------------------------------------------------------------------------------------------
# the detection backbones
def _det_stage_path(source: str, stage: int) -> str:
    if stage == 1:
        return "conv1.0.conv1"
    return f"conv{stage}.{1 if source == 'openpcdet' else 3}.conv1"


def detect_official_det(
    state: Mapping[str, Tensor], source: str = "auto", prefix: Optional[str] = None
) -> Dict[str, Any]:
    """The :class:`~largekernel3d.models.detection.LargeKernel3DBackbone` options (besides ``sparse_shape``)
    of an OpenPCDet-port / det3d large-kernel backbone state dict, with its ``source`` and ``prefix``."""
    if source == "auto":
        source = detect_source(state)
    if source not in DEFAULT_PREFIX:
        raise ValueError(f"source must be 'auto' or one of {sorted(DEFAULT_PREFIX)}, got {source!r}")
    if prefix is None:
        prefix = DEFAULT_PREFIX[source] if any(k.startswith(DEFAULT_PREFIX[source]) for k in state) else ""
    sub = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    if "conv_input.0.weight" not in sub:
        raise ValueError(f"no {prefix}conv_input.0.weight in the checkpoint: not a {source} sparse backbone")
    in_channels = conv_shape(sub["conv_input.0.weight"], "conv_input.0.weight")[2]
    kinds, kernels = [], []
    for s in range(1, 5):
        kind, k, _, _ = conv_kind(sub, _det_stage_path(source, s))
        kinds.append({"common": "plain", "spatialgroupconv": "swlk_dilated", "spatialgroupconvv2": "swlk"}[kind])
        kernels.append(k)
    down_key = "conv2.0.0.weight" if source == "openpcdet" else "conv2.0.weight"
    if down_key not in sub:
        raise ValueError(f"no {prefix}{down_key} (the stage-2 down conv) in the {source} checkpoint")
    down = conv_shape(sub[down_key], down_key)[0]
    encodings = any(k.endswith("block.position_embedding") for k in sub)
    return {
        "source": source,
        "prefix": prefix,
        "in_channels": in_channels,
        "kernel_sizes": tuple(kernels),
        "conv_types": tuple(kinds),
        "down_kernel_size": down,
        "position_encoding": encodings,
    }


# ---------------------------------------------------------------------------------------------------------
# the entry point
@dataclass(frozen=True)
class OfficialConversion:
    """The result of :func:`convert_official_checkpoint`.

    Attributes:
        task: ``"seg"`` or ``"det"``.
        model: our network with the checkpoint's weights (eval mode).
        config: what rebuilds it: the ``build_model`` config (seg) or the ``LargeKernel3DBackbone`` arguments (det).
        report: keys converted, per-layer grouping deviation, unused / missing keys.
    """

    task: str
    model: nn.Module
    config: Dict[str, Any] = field(default_factory=dict)
    report: Optional[OfficialLoadReport] = None


def convert_official_checkpoint(
    path_or_state_dict: Union[str, Path, Mapping],
    task: str = "seg",
    *,
    strict: bool = True,
    layout: str = "auto",
    deviation_tolerance: Optional[float] = DEVIATION_TOLERANCE,
    down_padding: int = OFFICIAL_DOWN_PADDING,
    dilated_dilation: int = OFFICIAL_SEG_DILATION,
    sparse_shape: Optional[Sequence[int]] = None,
    source: str = "auto",
    prefix: Optional[str] = None,
    weights_only: bool = True,
    backend: Optional[ModuleType] = None,
) -> OfficialConversion:
    """Recognise an official LargeKernel3D checkpoint, build the matching network of ours and load it.

    ``task="seg"``: the official V1 / V2 segmentation network -> ``largekernel3d_seg`` with
    ``down_padding`` (official: 1), ``dilated_dilation`` (official V1: 3) and the position encoding /
    dilated branch of the checkpoint's version (:func:`detect_official_seg`, :func:`load_official_seg`).

    ``task="det"``: an OpenPCDet-port / det3d large-kernel backbone -> ``LargeKernel3DBackbone`` on
    ``sparse_shape`` (required; the grid is not in the checkpoint), via
    :func:`~largekernel3d.models.detection.official_det.load_official_backbone` (``source`` / ``prefix``
    as there; other detector parts in the file are counted in ``report.other_parts``).

    ``strict``, ``layout``, ``deviation_tolerance``: as :func:`load_official_seg`; ``weights_only``: as
    :func:`read_checkpoint`; ``backend``: the sparse-conv module (default ours).
    """
    if task not in TASKS:
        raise ValueError(f"task must be one of {list(TASKS)}, got {task!r}")
    state = read_checkpoint(path_or_state_dict, weights_only=weights_only)
    if task == "seg":
        from .registry import build_model  # registry imports this package's modules

        arch = detect_official_seg(state)
        config = arch.model_config(down_padding=down_padding, dilated_dilation=dilated_dilation)
        model = build_model(config, backend=backend)
        assert isinstance(model, LargeKernel3DSeg), type(model)
        report = load_official_seg(
            model,
            state,
            strict=strict,
            layout=layout,
            dilation=dilated_dilation,
            deviation_tolerance=deviation_tolerance,
        )
        return OfficialConversion("seg", model.eval(), config, report)
    from .detection import LargeKernel3DBackbone

    if sparse_shape is None:
        raise ValueError(
            "task='det' needs sparse_shape (the voxel grid [D, H, W] the backbone was trained on, e.g. "
            "[41, 1600, 1408] for OpenPCDet's KITTI grid); it is not stored in the checkpoint"
        )
    options = detect_official_det(state, source, prefix)
    src, pre = options.pop("source"), options.pop("prefix")
    backbone = LargeKernel3DBackbone(sparse_shape=sparse_shape, backend=backend, **options)
    report = load_official_backbone(
        backbone,
        state,
        source=src,
        prefix=pre,
        strict=strict,
        layout=layout,
        deviation_tolerance=(float("inf") if deviation_tolerance is None else deviation_tolerance),
    )
    return OfficialConversion("det", backbone.eval(), backbone.config(), report)


def load_official_checkpoint(path_or_state_dict: Union[str, Path, Mapping], task: str = "seg", **options) -> nn.Module:
    """Our network with an official LargeKernel3D checkpoint loaded (eval mode): the ``model`` of
    :func:`convert_official_checkpoint` (same arguments; use that function for the report)."""
    return convert_official_checkpoint(path_or_state_dict, task, **options).model


__all__ = [
    "TASKS",
    "OFFICIAL_DOWN_PADDING",
    "OFFICIAL_SEG_DILATION",
    "KINDS",
    "OfficialSegArchitecture",
    "OfficialConversion",
    "read_checkpoint",
    "conv_shape",
    "conv_kind",
    "detect_official_seg",
    "official_seg_path",
    "load_official_seg",
    "detect_official_det",
    "convert_official_checkpoint",
    "load_official_checkpoint",
]
