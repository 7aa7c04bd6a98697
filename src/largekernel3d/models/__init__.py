"""Networks built by name with :func:`build_model`: the MinkUNet family and LargeKernel3DSeg (segmentation),
and the CenterPoint detectors on VoxelBackBone8x / VoxelResBackBone8x / LargeKernel3D backbones
(:mod:`largekernel3d.models.detection`)::

    from largekernel3d.models import build_model
    net = build_model({"name": "largekernel3d_seg", "in_channels": 3, "num_classes": 20})
    logits = net(x).features            # [N, 20] on x's sites
"""

from .backend import resolve_backend
from .blocks import CONV_TYPES, BasicBlock, ConvBNReLU, ConvSpec, SiteLinear
from .minkunet import LargeKernel3DSeg, MinkUNet
from .registry import (
    LARGEKERNEL3D_SEG,
    MINKUNET_VARIANTS,
    MODEL_NAMES,
    SEGMENTATION_NAMES,
    allowed_keys,
    build_model,
    count_parameters,
)

__all__ = [
    "build_model",
    "count_parameters",
    "allowed_keys",
    "MODEL_NAMES",
    "SEGMENTATION_NAMES",
    "MINKUNET_VARIANTS",
    "LARGEKERNEL3D_SEG",
    "MinkUNet",
    "LargeKernel3DSeg",
    "ConvSpec",
    "CONV_TYPES",
    "BasicBlock",
    "ConvBNReLU",
    "SiteLinear",
    "resolve_backend",
]
