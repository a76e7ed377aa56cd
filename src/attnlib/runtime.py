"""Where code runs, and how to make it repeatable on any machine.

Notebooks in this course print the same thing on a laptop CPU and on a GPU. Three habits make that
possible, and this module holds them: pick the device in one place (:func:`device`), seed every
generator (:func:`seed`), and draw random numbers on the CPU before moving them (:func:`randn`),
because CUDA's generator gives different numbers for the same seed. Print values through
:func:`rounded` (a tensor) or :func:`fmt` (text) so tiny floating-point differences between kernels
do not show.
"""

from __future__ import annotations

import random

import numpy as np
import torch

__all__ = ["device", "seed", "randn", "rounded", "fmt"]


def device() -> torch.device:
    """The device the course runs on: the first CUDA GPU when there is one, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def seed(n: int = 0) -> None:
    """Seed Python's, NumPy's and PyTorch's (CPU and CUDA) random generators with ``n``."""
    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
        raise ValueError(f"seed: n must be a non-negative int, got {n!r}")
    random.seed(n)
    np.random.seed(n)
    torch.manual_seed(n)  # also seeds every CUDA device


def randn(
    *shape: int,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Standard-normal numbers drawn on the CPU, then moved to ``device``.

    The same seed gives the same numbers on every device, which is what lets a notebook's stored
    outputs be compared on a CPU and on a GPU.
    """
    x = torch.randn(*shape, generator=generator, dtype=dtype)
    return x if device is None else x.to(device)


def rounded(x, decimals: int = 3) -> torch.Tensor:
    """A CPU copy of ``x`` rounded to ``decimals`` places, for printing.

    Negative zeros become zeros, so ``-0.0`` printed on one machine and ``0.0`` on another do not
    differ.
    """
    t = torch.as_tensor(x).detach().to("cpu")
    if t.is_floating_point():
        t = t.float().round(decimals=decimals) + 0.0  # + 0.0 turns -0.0 into 0.0
    return t


def fmt(x, decimals: int = 3) -> str:
    """``x`` as text with every value rounded to ``decimals`` places, the same on every device.

    A scalar prints as ``0.125``, a vector as ``[0.125, 0.875]``, and a matrix one row per line.
    Integer and boolean tensors print their values as they are.
    """
    t = rounded(x, decimals)

    def text(u: torch.Tensor, depth: int) -> str:
        if u.dim() == 0:
            v = u.item()
            return f"{v:.{decimals}f}" if isinstance(v, float) else str(v)
        sep = ",\n" + " " * (depth + 1) if u.dim() > 1 else ", "
        return "[" + sep.join(text(row, depth + 1) for row in u) + "]"

    return text(t, 0)
