"""Count what an attention function allocates, exactly and the same on every device.

Timings and resident memory depend on the machine; the shapes of the tensors a function creates do
not. :func:`largest_tensor` runs a function under a PyTorch dispatch mode that sees every
operation's outputs and reports the largest one, in elements. For naive attention that is the
``(N, H, L, S)`` score matrix; for tiled attention, a tile or the output. A fused kernel (such as
PyTorch's SDPA) allocates its scratch space inside C++, out of the dispatcher's sight: only its
outputs are counted, so measure its memory for real (benchmarks/attention_cost.py does).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.utils._python_dispatch import TorchDispatchMode

__all__ = ["largest_tensor"]


class _LargestOutput(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.largest = 0
        self.shape: tuple[int, ...] = ()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor) and t.numel() > self.largest:
                self.largest, self.shape = t.numel(), tuple(t.shape)
        return out


def largest_tensor(fn: Callable, *args, **kwargs) -> tuple[object, int, tuple[int, ...]]:
    """Run ``fn(*args, **kwargs)`` and report the largest tensor any operation inside produced.

    Returns:
        ``(result, elements, shape)``: what ``fn`` returned, the number of elements of the
        largest tensor an operation created (inputs excluded), and that tensor's shape.
    """
    with _LargestOutput() as mode:
        result = fn(*args, **kwargs)
    return result, mode.largest, mode.shape
