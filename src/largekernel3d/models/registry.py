"""Model names → networks: ``build_model({"name": ..., "in_channels": ..., "num_classes": ...})`` for the
segmentation networks, ``build_model({"name": "centerpoint_largekernel3d", "class_names": [...],
"point_cloud_range": [...], "voxel_size": [...], ...})`` for the detectors
(:func:`largekernel3d.models.detection.build_detector` checks their keys).

MinkUNet widths are MinkowskiEngine's (``examples/minkunet.py``): depth 14/18/34 sets the blocks per stage
``(1,)*8`` / ``(2,)*8`` / ``(2, 3, 4, 6, 2, 2, 2, 2)``, the letter sets the 8 stage widths (it has no 18C).
"""

from __future__ import annotations

from types import MappingProxyType, ModuleType
from typing import Dict, Mapping, Optional, Tuple

from torch import nn

from ._config_checks import check_config_keys
from .detection import DETECTOR_NAMES, allowed_detector_keys, build_detector
from .minkunet import MINKUNET34C_LAYERS, LargeKernel3DSeg, MinkUNet

_LAYERS = {"14": (1,) * 8, "18": (2,) * 8, "34": MINKUNET34C_LAYERS}
_PLANES = {
    "14a": (32, 64, 128, 256, 128, 128, 96, 96),
    "14b": (32, 64, 128, 256, 128, 128, 128, 128),
    "14c": (32, 64, 128, 256, 192, 192, 128, 128),
    "18a": (32, 64, 128, 256, 128, 128, 96, 96),
    "18b": (32, 64, 128, 256, 128, 128, 128, 128),
    "34a": (32, 64, 128, 256, 256, 128, 64, 64),
    "34b": (32, 64, 128, 256, 256, 128, 64, 32),
    "34c": (32, 64, 128, 256, 256, 128, 96, 96),
}
# name -> (layers, planes) of the MinkUNet family
MINKUNET_VARIANTS: Mapping[str, Tuple[Tuple[int, ...], Tuple[int, ...]]] = MappingProxyType(
    {f"minkunet{v}": (_LAYERS[v[:2]], planes) for v, planes in _PLANES.items()}
)
LARGEKERNEL3D_SEG = "largekernel3d_seg"
SEGMENTATION_NAMES: Tuple[str, ...] = tuple(MINKUNET_VARIANTS) + (LARGEKERNEL3D_SEG,)
MODEL_NAMES: Tuple[str, ...] = SEGMENTATION_NAMES + DETECTOR_NAMES

_REQUIRED_KEYS = ("name", "in_channels", "num_classes")
_LK_OPTIONAL_KEYS = (
    "stage_kernel_sizes",
    "stage_conv_types",
    "position_encoding",
    "partition",
    "dilated_branch",
    "layers",
    "planes",
    "init_dim",
    "down_padding",
    "dilated_dilation",
    "small_kernel_branch",
)


def allowed_keys(name: str) -> Tuple[str, ...]:
    """The config keys ``build_model`` accepts for model ``name``."""
    if name in DETECTOR_NAMES:
        return allowed_detector_keys(name)
    return _REQUIRED_KEYS + (_LK_OPTIONAL_KEYS if name == LARGEKERNEL3D_SEG else ())


def build_model(config: Mapping, backend: Optional[ModuleType] = None) -> nn.Module:
    """The network described by ``config``.

    Keys: ``name`` (one of :data:`MODEL_NAMES`), ``in_channels``, ``num_classes``; for
    ``"largekernel3d_seg"`` optionally ``stage_kernel_sizes`` (4 odd ints, default ``[7, 7, 7, 7]``),
    ``stage_conv_types`` (``"plain" | "swlk" | "depthwise" | "dilated"`` or 4 of them, default ``"swlk"``),
    ``position_encoding`` (default ``True``), ``partition`` (default ``"center1"``) and ``dilated_branch``
    (default ``False``), ``dilated_dilation`` (default ``k // 2 - 1``), ``down_padding`` (default 0; the official
    network's 1), ``layers``/``planes``/``init_dim`` (default MinkUNet34C's), ``small_kernel_branch`` (default
    ``False``; ``True`` trains each encoder large kernel with a parallel 3³ conv + BN as in RepLKNet: merge for
    inference with :func:`largekernel3d.nn.merge_small_kernels`). ``backend``: the sparse-conv
    module (default ours; ``spconv.pytorch`` works for plain convs). Unknown or missing keys raise ``ValueError``.
    """
    if not isinstance(config, Mapping):
        raise TypeError(f"build_model expects a mapping (dict) config, got {type(config).__name__}")
    name = config.get("name")
    if name not in MODEL_NAMES:
        raise ValueError(f"model config key 'name' must be one of {list(MODEL_NAMES)}, got {name!r}")
    if name in DETECTOR_NAMES:
        return build_detector(config, backend)
    check_config_keys(config, name, allowed_keys(name), _REQUIRED_KEYS, "model")
    options: Dict = {key: value for key, value in config.items() if key != "name"}
    if name == LARGEKERNEL3D_SEG:
        return LargeKernel3DSeg(backend=backend, **options)
    layers, planes = MINKUNET_VARIANTS[name]
    return MinkUNet(options["in_channels"], options["num_classes"], layers, planes, backend=backend)


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of scalar parameters of ``model`` (shared parameters counted once)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


__all__ = [
    "MINKUNET_VARIANTS",
    "LARGEKERNEL3D_SEG",
    "MODEL_NAMES",
    "SEGMENTATION_NAMES",
    "allowed_keys",
    "build_model",
    "count_parameters",
]
