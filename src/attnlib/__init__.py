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

Modules, in the order the chapters meet them: ``attention`` (the kernel), ``masks``, ``scoring``
(additive, dot, general, concat scores), ``rnn`` (GRU translators), ``multihead``
(:class:`MultiHeadAttention`), ``positional`` (sinusoidal, learned, rotary), ``transformer`` (the
encoder and decoder layers), ``albert``, ``gpt`` (a KV cache, sampling, a character GPT), ``t5``,
``pretrained`` (MiniLM and SmolLM2 in attnlib's own code), ``explain`` (rollout, saliency, head
ablation), ``efficient`` (tiled attention, a Triton kernel, four approximations); and around them
``runtime`` (device, seeds), ``data``, ``plotting``, ``widgets`` and ``exercises``. Only
``attention``, ``masks``, ``multihead``, ``positional``, ``transformer`` and ``runtime`` load with
``import attnlib``; the rest load on first use, so the import stays fast.
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
    "data",
    "scoring",
    "rnn",
    "t5",
    "gpt",
    "albert",
    "pretrained",
    "explain",
    "efficient",
]

_LAZY = {
    "plotting",
    "widgets",
    "exercises",
    "data",
    "scoring",
    "rnn",
    "t5",
    "gpt",
    "albert",
    "pretrained",
    "explain",
    "efficient",
}


def __getattr__(name: str):
    if name in _LAZY:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'attnlib' has no attribute {name!r}")
