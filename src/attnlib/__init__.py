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

The package is arranged in layers; each layer uses only the ones above it:

- building blocks, at the top level: ``attention`` (the kernel), ``masks``, ``positional``
  (sinusoidal, learned, rotary, ALiBi, T5's buckets), ``scoring`` (additive, dot, general and
  concat scores), ``multihead`` (:class:`MultiHeadAttention`), ``layers`` (the encoder and decoder
  layers, RMSNorm), ``generation`` (the KV cache and the decoding loop every decoder shares);
- ``models``: whole models built from them (``rnn``, ``albert``, ``bert``, ``gpt``, ``llama``,
  ``t5``);
- ``weights``: real checkpoints (MiniLM, SmolLM2) read from their registry packages into those
  models;
- ``explain`` (rollout, saliency, head ablation) and ``efficient`` (tiled attention, a Triton
  kernel, four approximations), which study models;
- around them ``runtime`` (device, seeds), ``data``, ``plotting``, and the book's machinery,
  ``widgets`` and ``exercises``.

Only ``attention``, ``masks``, ``multihead``, ``positional``, ``layers`` and ``runtime`` load with
``import attnlib``; the rest load on first use, so the import stays fast. The models keep their
short names at the top level: ``attnlib.gpt`` is ``attnlib.models.gpt``, ``attnlib.weights`` is
``attnlib.weights``.
"""

from __future__ import annotations

import importlib

from . import masks, positional
from .attention import scaled_dot_product_attention
from .layers import TransformerDecoderLayer, TransformerEncoderLayer
from .multihead import MultiHeadAttention
from .runtime import device, fmt, randn, rounded, seed, setup_chapter

__version__ = "0.1.0"

__all__ = [
    "scaled_dot_product_attention",
    "MultiHeadAttention",
    "TransformerEncoderLayer",
    "TransformerDecoderLayer",
    "masks",
    "positional",
    "setup_chapter",
    "device",
    "seed",
    "randn",
    "rounded",
    "fmt",
    "plotting",
    "widgets",
    "exercises",
    "data",
    "generation",
    "scoring",
    "rnn",
    "t5",
    "gpt",
    "albert",
    "pretrained",
    "models",
    "weights",
    "layers",
    "explain",
    "efficient",
]

# name -> module, relative to this package, loaded on first use
_LAZY = {
    "plotting": "plotting",
    "widgets": "widgets",
    "exercises": "exercises",
    "data": "data",
    "generation": "generation",
    "scoring": "scoring",
    "explain": "explain",
    "efficient": "efficient",
    "models": "models",
    "weights": "weights",
    # the models' short names, as before the models/ and weights/ folders
    "rnn": "models.rnn",
    "t5": "models.t5",
    "gpt": "models.gpt",
    "albert": "models.albert",
    "pretrained": "weights",
    "transformer": "layers",
}


def __getattr__(name: str):
    if name in _LAZY:
        return importlib.import_module(f".{_LAZY[name]}", __name__)
    raise AttributeError(f"module 'attnlib' has no attribute {name!r}")
