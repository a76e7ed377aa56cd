"""Where code runs, and how to make it repeatable on any machine.

Notebooks in this course print the same thing on a laptop CPU and on a GPU. Three habits make that
possible, and this module holds them: pick the device in one place (:func:`device`), seed every
generator (:func:`seed`), and draw random numbers on the CPU before moving them (:func:`randn`),
because CUDA's generator gives different numbers for the same seed. Print values through
:func:`rounded` (a tensor) or :func:`fmt` (text) so tiny floating-point differences between kernels
do not show. Every chapter starts with :func:`setup_chapter`, which applies the first two.
"""

from __future__ import annotations

import random
import sys

import numpy as np
import torch

from . import _checks

__all__ = ["setup_chapter", "device", "seed", "randn", "rounded", "fmt"]


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


_seed_all = seed  # for setup_chapter, whose argument is called seed too


def setup_chapter(seed: int = 0, *, threads: int | None = None) -> torch.device:
    """Prepare a chapter's notebook: threads, seeds and figures; return the device to run on.

    The first code cell of every chapter calls ``dev = attnlib.setup_chapter(seed=0)``. It

    * sets how many CPU threads PyTorch uses when ``threads`` is given (``None`` keeps PyTorch's
      default, one per core). Chapters that train or run tiny models pass ``threads=1``: their
      many small operations run fastest, and most steadily, on one thread of a machine with few
      cores, where two threads wait on each other;
    * seeds Python's, NumPy's and PyTorch's generators (see :func:`seed`), so that every run of the
      notebook prints the same numbers;
    * draws matplotlib figures inline when it runs in a Jupyter kernel (what ``%matplotlib inline``
      does);
    * returns :func:`device`, the first GPU when there is one, else the CPU. Code that moves its
      tensors to this device runs unchanged on both, and prints the same results.

    Args:
        seed: the seed for every random generator, a non-negative int.
        threads: the number of CPU threads for PyTorch, a positive int, or None to leave it.

    Returns:
        The ``torch.device`` to run the chapter on.
    """
    if threads is not None:
        torch.set_num_threads(_checks.positive_int(threads, "threads", "setup_chapter"))
    _seed_all(seed)
    _inline_figures()
    return device()


def _inline_figures() -> None:
    """Select matplotlib's inline backend when running in a Jupyter kernel; elsewhere do nothing."""
    ipython = sys.modules.get("IPython")  # loaded already in a kernel; never imported here
    shell = ipython.get_ipython() if ipython is not None else None
    if shell is not None and getattr(shell, "kernel", None) is not None:
        shell.run_line_magic("matplotlib", "inline")


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
