"""attnlib: the small library behind the attention course.

Every chapter of the course imports this package. It speaks PyTorch's language: the same argument
names as :func:`torch.nn.functional.scaled_dot_product_attention`, batch-first tensors, and boolean
masks where **True means "may attend"**.

Shape legend, used in every docstring and every shape comment (book/notation.md explains it):

    N   batch size
    H   number of heads
    L   query (target) length
    S   key/value (source) length
    E   query/key size (per head)
    Ev  value size (per head)
    D   model size (embedding width; D = H * E in multi-head attention)

Modules: ``attention`` (the kernel), ``masks``, ``multihead`` (:class:`MultiHeadAttention`),
``transformer`` (the encoder and decoder layers), ``positional`` (sinusoidal, learned, rotary),
``runtime`` (device, seeds), ``plotting``, ``widgets`` (interactive explorers that work in the
static book), ``exercises`` (self-checks), ``data`` (the chapters' datasets), ``pretrained``
(MiniLM and SmolLM2 in attnlib's own code), ``explain`` (rollout, saliency, head ablation). The
last six load on first use, so ``import attnlib`` stays fast.
"""

from __future__ import annotations

import importlib

from . import masks, positional
from .attention import scaled_dot_product_attention
from .multihead import MultiHeadAttention
from .runtime import device, fmt, randn, rounded, seed
from .transformer import TransformerDecoderLayer, TransformerEncoderLayer

__version__ = "0.1.0"

__all__ = [
    "scaled_dot_product_attention",
    "MultiHeadAttention",
    "TransformerEncoderLayer",
    "TransformerDecoderLayer",
    "masks",
    "positional",
    "device",
    "seed",
    "randn",
    "rounded",
    "fmt",
    "plotting",
    "widgets",
    "exercises",
    "explain",
    "pretrained",
    "data",
]

_LAZY = {"plotting", "widgets", "exercises", "explain", "pretrained", "data"}


def __getattr__(name: str):
    if name in _LAZY:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'attnlib' has no attribute {name!r}")
