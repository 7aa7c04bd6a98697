"""Weight layouts derived once per parameter version instead of on every call.

The fused CPU kernels read a weight as a C-contiguous ``[K, C_in, C_out]`` array with its last axis padded to whole
SIMD vectors (:func:`.cpu.simd.padded_weight`), while the parameter is stored as spconv's ``[C_out, *kernel,
C_in]`` (or, in the backward pass, read transposed). Building that array is a strided copy of the whole weight.
:func:`derived_layout` memoises it on the parameter (``nn.Parameter``) itself, keyed by the view's geometry and
stamped with autograd's version counter (``weight._version``, shared by every view of it) and the storage address.
Any in-place update through autograd's view of the tensor (optimizer steps, ``load_state_dict``, ``torch.no_grad()``
edits, ``nn.init``) bumps the version, and assigning ``weight.data = ...`` changes the storage, so the layout is
rebuilt once after each: inference pays for it once, training once per step (forward and backward each keep their
own layout).

In-place edits through ``weight.data`` (``weight.data.copy_(...)``) are not seen by the version counter (that is
what ``.data`` is for); edit a parameter under ``torch.no_grad()`` instead, or call :func:`clear`.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Hashable, Optional, Tuple

from torch import Tensor, nn

_ATTR = "_largekernel3d_weight_layouts"


class _Layouts:
    """The memo attached to a parameter: ``key -> (stamp, source, value)``. ``source`` (a detached alias of the
    weight) keeps the storage alive so that its address cannot be reused by another tensor while the entry exists.
    Copies (``copy.deepcopy``, pickling a whole module) start empty: a layout belongs to one storage."""

    def __init__(self) -> None:
        self.entries: Dict[Hashable, Tuple[Tuple[int, int], Tensor, Any]] = {}

    def __deepcopy__(self, memo) -> "_Layouts":
        return _Layouts()

    def __reduce__(self):
        return (_Layouts, ())


def _root(weight: Tensor) -> Tensor:
    base = weight._base
    return weight if base is None else base


def derived_layout(weight: Tensor, kind: Hashable, build: Callable[[Tensor], Any]) -> Any:
    """``build(weight)``, computed once per ``(kind, weight's view geometry)`` while ``weight``'s version counter and
    storage stay the same, and memoised on the tensor ``weight`` views (the parameter).

    ``build`` must depend only on ``weight``'s values (and ``kind``). Only parameters (``nn.Parameter``, or views of
    one) are memoised: other tensors are often edited in place through ``.data`` (``torch.autograd.gradcheck``
    perturbs its inputs that way) or computed anew on every call, so they get ``build(weight)`` every time.
    """
    root = _root(weight)
    if not isinstance(root, nn.Parameter) or _is_fake(weight):
        return build(weight)
    layouts: Optional[_Layouts] = root.__dict__.get(_ATTR)
    if layouts is None:
        layouts = _Layouts()
        try:
            setattr(root, _ATTR, layouts)
        except (AttributeError, RuntimeError):  # a tensor type that takes no attributes: no memo
            return build(weight)
    key = (kind, tuple(weight.shape), tuple(weight.stride()), weight.storage_offset(), weight.dtype, weight.device)
    stamp = (weight._version, weight.untyped_storage().data_ptr())
    entry = layouts.entries.get(key)
    if entry is not None and entry[0] == stamp:
        return entry[2]
    value = build(weight)
    layouts.entries[key] = (stamp, weight.detach(), value)
    return value


def _is_fake(weight: Tensor) -> bool:
    return type(weight).__name__ == "FakeTensor" or weight.device.type == "meta"


def clear(module_or_tensor) -> None:
    """Drop the memoised layouts of a tensor, or of every parameter of a module (after editing weights in place
    through ``.data``)."""
    tensors = module_or_tensor.parameters() if isinstance(module_or_tensor, nn.Module) else [module_or_tensor]
    for t in tensors:
        t.__dict__.pop(_ATTR, None)


__all__ = ["derived_layout", "clear"]
