"""A Llama-style decoder, the architecture SmolLM2's weights are loaded into (the GPT chapter).

The model is written out here in plain PyTorch, one small module per idea:

- :class:`GroupedQueryAttention`: 9 query heads that share 3 key/value heads, calling
  :func:`attnlib.scaled_dot_product_attention` with ``enable_gqa=True`` and a boolean causal mask
  (True = may attend); positions enter as rotations of the queries and keys
  (:func:`attnlib.positional.apply_rope`, Hugging Face's rotate-half layout);
- :class:`SwiGLU`: the gated feed-forward block;
- :class:`LlamaBlock` (pre-norm residual block, :class:`attnlib.layers.RMSNorm`) and
  :class:`LlamaDecoder` (embeddings, the blocks, a final norm and an output layer that reuses the
  embedding matrix), which writes text with :mod:`attnlib.generation`.

Reading SmolLM2's GGUF file into it is :mod:`attnlib.weights.gguf`'s job
(:func:`attnlib.weights.load_smollm2`).

Shape legend: N batch, H query heads, H_kv key/value heads, L query length, S key length,
E head size, D model size, F feed-forward width.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from .._checks import shape
from ..attention import scaled_dot_product_attention
from ..generation import (
    CausalDecoder,
    DecoderOutput,
    KVCache,
    causal_mask_with_past,
    extend_cache,
    past_length,
)
from ..layers import RMSNorm
from ..positional import apply_rope

__all__ = [
    "LlamaConfig",
    "GroupedQueryAttention",
    "SwiGLU",
    "LlamaBlock",
    "LlamaDecoder",
]


@dataclass
class LlamaConfig:
    """The sizes of a Llama-style decoder (defaults: SmolLM2-135M's, as its GGUF file gives them).

    :func:`attnlib.weights.gguf.read_gguf` fills it from the file's metadata.
    """

    vocab_size: int = 49152
    d_model: int = 576  # D, the width of the residual stream
    num_layers: int = 30
    num_heads: int = 9  # H, query heads
    num_kv_heads: int = 3  # H_kv, key/value heads, each shared by H // H_kv query heads
    dim_feedforward: int = 1536  # F, the width of the SwiGLU hidden layer
    rope_theta: float = 100000.0  # base of RoPE's rotation frequencies
    layer_norm_eps: float = 1e-5  # RMSNorm's epsilon
    context_length: int = 8192  # the longest sequence the model was trained on
    tie_embeddings: bool = True  # the output layer reuses the token embedding matrix
    bos_id: int = 1
    eos_id: int = 2

    @property
    def head_dim(self) -> int:
        """E, the size of one head's query, key and value vectors."""
        return self.d_model // self.num_heads


class GroupedQueryAttention(nn.Module):
    """Causal self-attention with grouped-query attention (Ainslie et al., 2023).

    ``H`` query heads but only ``H_kv`` key/value heads: query heads come in groups of
    ``H // H_kv`` that read the same keys and values (query head ``h`` reads key/value head
    ``h // (H // H_kv)``, :func:`attnlib.attention.repeat_kv_heads`). The KV cache, which stores
    keys and values for every past token, shrinks by that factor (3 for SmolLM2).

    Args:
        config: the model's sizes.
    """

    def __init__(self, config: LlamaConfig) -> None:
        super().__init__()
        if config.num_heads % config.num_kv_heads:
            raise ValueError(
                f"GroupedQueryAttention: num_heads ({config.num_heads}) must be a multiple of "
                f"num_kv_heads ({config.num_kv_heads})"
            )
        self.num_heads, self.num_kv_heads = config.num_heads, config.num_kv_heads
        self.head_dim = config.head_dim
        self.rope_theta = config.rope_theta
        D, E = config.d_model, config.head_dim
        self.q_proj = nn.Linear(D, self.num_heads * E, bias=False)
        self.k_proj = nn.Linear(D, self.num_kv_heads * E, bias=False)
        self.v_proj = nn.Linear(D, self.num_kv_heads * E, bias=False)
        self.o_proj = nn.Linear(self.num_heads * E, D, bias=False)

    def forward(
        self,
        x: torch.Tensor,
        positions: torch.Tensor,
        *,
        cache: KVCache | None = None,
        layer: int = 0,
        need_weights: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Attend from each position of ``x`` to itself and every earlier position.

        Args:
            x: ``(N, L, D)``, the new positions.
            positions: ``(L,)``, where they sit in the sequence (after the cached ones).
            cache: keys and values of earlier positions; this layer's new ones are appended.
            layer: this layer's index in the cache.
            need_weights: also return the attention weights.

        Returns:
            ``(output (N, L, D), weights (N, H, L, S) or None)``, ``S`` = past + ``L``.
        """
        N, L, _ = x.shape
        H, H_kv, E = self.num_heads, self.num_kv_heads, self.head_dim
        q = self.q_proj(x).view(N, L, H, E).transpose(1, 2)  # (N, H, L, E)
        k = self.k_proj(x).view(N, L, H_kv, E).transpose(1, 2)  # (N, H_kv, L, E)
        v = self.v_proj(x).view(N, L, H_kv, E).transpose(1, 2)  # (N, H_kv, L, E)
        q = apply_rope(q, positions, base=self.rope_theta)  # positions enter here ...
        k = apply_rope(k, positions, base=self.rope_theta)  # ... and here, never in v
        k, v, past = extend_cache(cache, layer, k, v)  # (N, H_kv, S, E): H_kv heads cached
        mask = causal_mask_with_past(L, past, device=x.device) if L > 1 else None  # (L, S)
        out, weights = scaled_dot_product_attention(
            q, k, v, attn_mask=mask, enable_gqa=True
        )  # (N, H, L, E), (N, H, L, S)
        out = out.transpose(1, 2).reshape(N, L, H * E)  # (N, L, D)
        return self.o_proj(out), (weights if need_weights else None)


class SwiGLU(nn.Module):
    r"""The gated feed-forward block: :math:`W_\text{down}(\mathrm{SiLU}(W_\text{gate}x) \odot
    W_\text{up}x)` (Shazeer, 2020).

    Args:
        d_model: D.
        dim_feedforward: F, the hidden width.
    """

    def __init__(self, d_model: int, dim_feedforward: int) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(d_model, dim_feedforward, bias=False)  # D -> F
        self.up_proj = nn.Linear(d_model, dim_feedforward, bias=False)  # D -> F
        self.down_proj = nn.Linear(dim_feedforward, d_model, bias=False)  # F -> D

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, L, D)`` -> ``(N, L, D)``."""
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))  # (N, L, D)


class LlamaBlock(nn.Module):
    """One pre-norm decoder block: ``x + attn(norm(x))``, then ``x + mlp(norm(x))``."""

    def __init__(self, config: LlamaConfig) -> None:
        super().__init__()
        self.input_layernorm = RMSNorm(config.d_model, config.layer_norm_eps)
        self.self_attn = GroupedQueryAttention(config)
        self.post_attention_layernorm = RMSNorm(config.d_model, config.layer_norm_eps)
        self.mlp = SwiGLU(config.d_model, config.dim_feedforward)

    def forward(
        self, x: torch.Tensor, positions: torch.Tensor, **attention_options
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``x`` ``(N, L, D)`` -> ``(x (N, L, D), weights (N, H, L, S) or None)``.

        ``positions`` and ``attention_options`` (``cache``, ``layer``, ``need_weights``) go to
        :meth:`GroupedQueryAttention.forward`.
        """
        h, weights = self.self_attn(self.input_layernorm(x), positions, **attention_options)
        x = x + h  # (N, L, D)
        x = x + self.mlp(self.post_attention_layernorm(x))  # (N, L, D)
        return x, weights


class LlamaDecoder(CausalDecoder):
    """A Llama-style decoder-only Transformer: token ids in, next-token logits out.

    Parameter names follow Hugging Face's ``LlamaForCausalLM`` without its ``model.`` prefix
    (``embed_tokens``, ``layers.0.self_attn.q_proj``, ``norm``, ``lm_head``), so a learner can
    move between the two.

    Generation (:meth:`generate`, from :class:`attnlib.generation.CausalDecoder`) stops once every
    row has written the end-of-sequence token ``config.eos_id``.

    Args:
        config: the sizes (see :class:`LlamaConfig`).
    """

    def __init__(self, config: LlamaConfig) -> None:
        super().__init__()
        self.config = config
        self.stop_token = config.eos_id
        self.embed_tokens = nn.Embedding(config.vocab_size, config.d_model)
        self.layers = nn.ModuleList(LlamaBlock(config) for _ in range(config.num_layers))
        self.norm = RMSNorm(config.d_model, config.layer_norm_eps)
        self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        if config.tie_embeddings:
            self.lm_head.weight = self.embed_tokens.weight

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
            cache: a :class:`attnlib.generation.KVCache` (from :meth:`new_cache`); it is
                extended in place.
            need_weights: also return every layer's attention weights.

        Returns:
            A :class:`attnlib.generation.DecoderOutput`: ``logits`` ``(N, L, vocab_size)``,
            ``attentions`` (a tuple of ``num_layers`` tensors ``(N, H, L, S)``, or None) and
            ``cache``.

        See the GPT chapter, "GPT: decoder-only Transformers".
        """
        if input_ids.dim() != 2 or input_ids.dtype != torch.long:
            raise ValueError(
                f"LlamaDecoder: input_ids must be a (N, L) tensor of token ids (torch.long), got "
                f"shape {shape(input_ids)} and dtype {input_ids.dtype}"
            )
        L = input_ids.size(1)
        past = past_length(cache, L, self.context_length, "LlamaDecoder")
        positions = torch.arange(past, past + L, device=input_ids.device)  # (L,)
        x = self.embed_tokens(input_ids)  # (N, L, D)
        attentions = []
        for i, block in enumerate(self.layers):
            x, weights = block(x, positions, cache=cache, layer=i, need_weights=need_weights)
            attentions.append(weights)
        logits = self.lm_head(self.norm(x))  # (N, L, vocab_size)
        return DecoderOutput(logits, tuple(attentions) if need_weights else None, cache)
