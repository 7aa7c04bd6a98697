"""``torch.compile`` and ``torch.jit.script`` with the engine's layers.

The convolution and pooling kernels run through numba on raw buffers, which TorchDynamo cannot trace. Their
``forward`` methods are therefore marked :func:`eager_under_compile`: under ``torch.compile(model)`` each sparse layer
is a graph break and runs eagerly (autograd included), while everything between them (BatchNorm, activations,
dense heads) is compiled. The marker costs nothing until ``torch._dynamo`` is imported (it is imported by
``torch.compile``): importing the engine does not import TorchDynamo.

TorchScript cannot express the layers at all; :meth:`SparseModule.__prepare_scriptable__` raises a clear error.
"""

from __future__ import annotations

import functools
import sys
from typing import Any, Callable, Optional


class eager_under_compile:  # noqa: N801  (used as a decorator, like ``functools.cached_property``)
    """Method decorator: the method runs as written, and under ``torch.compile`` as a graph break
    (``torch.compiler.disable``), which is applied lazily once TorchDynamo is loaded in the process."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn = fn
        self._disabled: Optional[Callable[..., Any]] = None
        functools.update_wrapper(self, fn)  # type: ignore[arg-type]  # copies __doc__/__name__ onto the descriptor

    def __get__(self, obj: Any, owner: Optional[type] = None) -> Any:
        fn = self.fn
        if "torch._dynamo" in sys.modules:  # torch.compile has been used (or can be) in this process
            if self._disabled is None:
                import torch

                self._disabled = torch.compiler.disable(self.fn)
            fn = self._disabled
        return fn if obj is None else fn.__get__(obj, owner)


def refuse_script(module_name: str) -> None:
    """The error ``torch.jit.script`` gets for a module built from the engine's layers."""
    raise RuntimeError(
        f"torch.jit.script cannot compile {module_name}: the sparse layers run numba kernels on raw "
        f"buffers, which TorchScript cannot express; run the model eagerly or with torch.compile "
        f"(each sparse layer is a graph break there)"
    )


__all__ = ["eager_under_compile", "refuse_script"]
