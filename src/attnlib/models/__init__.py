"""Whole models, each built from attnlib's building blocks (attention, masks, positions, layers).

- ``rnn``: GRU translators without attention, with Bahdanau and with Luong attention.
- ``albert``: a small BERT-style encoder, with ALBERT's factorised embedding and layer sharing.
- ``bert``: the BERT encoder that all-MiniLM-L6-v2's weights are loaded into.
- ``gpt``: the character GPT trained in the GPT chapter.
- ``llama``: the Llama-style decoder that SmolLM2's weights are loaded into.
- ``t5``: a small T5 encoder-decoder with relative position biases.

Models are plain ``nn.Module`` code; reading a checkpoint is :mod:`attnlib.weights`' job.
Submodules load on first use (``attnlib.models.gpt``), as at the package's top level.
"""

from __future__ import annotations

import importlib

__all__ = ["rnn", "albert", "bert", "gpt", "llama", "t5"]


def __getattr__(name: str):
    if name in __all__:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'attnlib.models' has no attribute {name!r}")
