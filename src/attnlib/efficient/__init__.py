"""Faster attention, exact and approximate.

See the chapter "The cost of attention and how to cut it".

Exact:

* :func:`flash_attention`: tiles and an online softmax in plain PyTorch (FlashAttention's
  algorithm); the same numbers as SDPA with memory linear in the length.
* :func:`triton_flash_attention`: the same algorithm as a Triton kernel, compiled on a CUDA GPU
  and run by Triton's interpreter on a CPU. It lives in :mod:`attnlib.efficient.triton_flash` and
  is imported on first use, because importing it decides how Triton runs (see that module).
* :func:`online_softmax_trace`: the loop of :func:`flash_attention` on one small head, recorded
  step by step for printing and for the tile widget.

:func:`largest_tensor` counts the largest tensor a function creates (device-independent).

Linear attention (:mod:`attnlib.efficient.linear`): :func:`linear_attention` in parallel and
:func:`linear_attention_recurrent` as an RNN with a constant-size state (the same numbers).

Approximate (each with a knob that leads back to exact attention): :func:`linformer_attention`,
:func:`longformer_attention` (+ :func:`longformer_pattern`), :func:`bigbird_attention`
(+ :func:`bigbird_pattern`), :func:`performer_attention`.
"""

from __future__ import annotations

import os

import torch

if not torch.cuda.is_available():
    # Triton decides when *it* is imported whether its own library functions (tl.max, tl.zeros...)
    # are compiled or interpreted, and PyTorch may import it behind the scenes (running a dispatch
    # mode does). Without a GPU only the interpreter can run a kernel, so say so before anyone
    # imports Triton; see triton_flash.py.
    os.environ.setdefault("TRITON_INTERPRET", "1")

from .approximate import (  # noqa: E402
    bigbird_attention,
    bigbird_blocks,
    bigbird_pattern,
    linformer_attention,
    linformer_projection,
    longformer_attention,
    longformer_pattern,
    performer_attention,
    performer_features,
    performer_random_features,
)
from .flash import TileStep, flash_attention, online_softmax_trace  # noqa: E402
from .linear import linear_attention, linear_attention_recurrent  # noqa: E402
from .measure import largest_tensor  # noqa: E402

__all__ = [
    "flash_attention",
    "online_softmax_trace",
    "TileStep",
    "largest_tensor",
    "linear_attention",
    "linear_attention_recurrent",
    "triton_flash_attention",
    "linformer_projection",
    "linformer_attention",
    "longformer_pattern",
    "longformer_attention",
    "bigbird_blocks",
    "bigbird_pattern",
    "bigbird_attention",
    "performer_random_features",
    "performer_features",
    "performer_attention",
]


def __getattr__(name: str):
    if name == "triton_flash_attention":
        from .triton_flash import triton_flash_attention

        return triton_flash_attention
    raise AttributeError(f"module 'attnlib.efficient' has no attribute {name!r}")
