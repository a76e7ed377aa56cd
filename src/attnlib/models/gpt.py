"""A tiny character-level GPT: causal self-attention in pre-norm blocks (the GPT chapter).

A GPT reads a sequence left to right and predicts each next token from the ones before it:

- :class:`CausalSelfAttention`: multi-head self-attention where position ``i`` sees positions
  ``<= i`` only, through :func:`attnlib.scaled_dot_product_attention`, with a KV cache and either
  ALiBi's distance penalties or learned positions (or, for the chapter on positions and the
  Transformer block, RoPE, T5's relative bias or no positions at all: ``GPTConfig.positions``);
- :class:`GPTBlock`, :class:`CharGPT`: pre-norm blocks, the model;
- :func:`get_batch`, :func:`evaluate_loss`, :func:`train_char_gpt`: fitting it to a text.

The KV cache and the generation loop live in :mod:`attnlib.generation` (shared with
:class:`attnlib.models.llama.LlamaDecoder`), the positions in :mod:`attnlib.positional`.

Shape legend: N batch, H heads, L query (new) length, S key length (past + new), E head size,
D model size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from .._checks import positive_int
from ..attention import scaled_dot_product_attention
from ..generation import (
    CausalDecoder,
    DecoderOutput,
    KVCache,
    causal_mask_with_past,
    extend_cache,
    past_length,
)
from ..positional import (
    RelativePositionBias,
    alibi_causal_bias,
    alibi_slopes,
    apply_rope,
)

__all__ = [
    "GPTConfig",
    "CausalSelfAttention",
    "GPTBlock",
    "CharGPT",
    "get_batch",
    "evaluate_loss",
    "train_char_gpt",
]


@dataclass
class GPTConfig:
    """Sizes of :class:`CharGPT`."""

    vocab_size: int
    context_length: int = 256  # the longest sequence, prompt and generated text together
    d_model: int = 96  # D
    num_heads: int = 4  # H; each head has E = D / H
    num_layers: int = 3
    positions: str = "alibi"  # "alibi" (distance penalties) or "learned" (one vector per position)
    # ... or "rope" (rotated queries and keys), "t5" (a learned bias per bucket of distances,
    # shared by the layers) or "none" (the causal mask alone); see "Positions in causal models"
    rope_base: float = 10000.0  # "rope" only: the base of the rotation frequencies
    rope_scale: float = 1.0  # "rope" only: position interpolation, positions divided by this
    dropout: float = 0.0  # 0.0 keeps notebook outputs deterministic
    sink: str = "none"  # "none", "off_by_one" (a logit 0 for "nothing") or "learned" (one per head)
    gated: bool = False  # a sigmoid gate on each head's output, computed from its input


class CausalSelfAttention(nn.Module):
    """Multi-head self-attention where position ``i`` sees positions ``<= i`` only.

    Args:
        d_model: D.
        num_heads: H (must divide D).
        dropout: on the attention weights (training only).
        alibi: add ALiBi's distance penalties to the scores
            (:func:`attnlib.positional.alibi_causal_bias`) instead of relying on position
            embeddings.
        rope: rotate the queries and keys by their positions
            (:func:`attnlib.positional.apply_rope`) before the scores.
        rope_base: with ``rope``, the ``base`` of the frequencies (10000 in the RoPE paper).
        rope_scale: with ``rope``, the position interpolation factor (``scale`` of
            :func:`~attnlib.positional.apply_rope`); 1 is plain RoPE.
        sink: a way to attend to nothing (the chapter on masking, "Attending to nothing"):
            ``"none"`` (the plain softmax), ``"off_by_one"`` (an extra logit 0 in every row's
            denominator) or ``"learned"`` (one learned extra logit per head, as in gpt-oss); see
            the ``sink`` argument of :func:`attnlib.scaled_dot_product_attention`.
        gated: multiply each head's output by ``sigmoid(x W_g + b_g)``, a gate computed from
            the block's input at the same position, before the output projection.
    """

    def __init__(
        self,
        d_model: int,
        num_heads: int,
        dropout: float = 0.0,
        *,
        alibi: bool = False,
        rope: bool = False,
        rope_base: float = 10000.0,
        rope_scale: float = 1.0,
        sink: str = "none",
        gated: bool = False,
    ) -> None:
        super().__init__()
        positive_int(num_heads, "num_heads", "CausalSelfAttention")
        if sink not in ("none", "off_by_one", "learned"):
            raise ValueError(
                f"CausalSelfAttention: sink must be 'none', 'off_by_one' or 'learned', got {sink!r}"
            )
        if not isinstance(gated, bool):
            raise TypeError(f"CausalSelfAttention: gated must be True or False, got {gated!r}")
        if d_model % num_heads:
            raise ValueError(
                f"CausalSelfAttention: d_model ({d_model}) must be divisible by num_heads "
                f"({num_heads})"
            )
        self.num_heads, self.head_dim = num_heads, d_model // num_heads
        if rope and (alibi or self.head_dim % 2):
            raise ValueError(
                "CausalSelfAttention: rope needs alibi=False and an even head size (dimensions "
                f"turn in pairs), got alibi={alibi}, head size {self.head_dim} = d_model "
                f"({d_model}) / num_heads ({num_heads})"
            )
        for name, value, low in (("rope_base", rope_base, 1.0), ("rope_scale", rope_scale, 0.0)):
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not (low < value < math.inf)
            ):
                raise ValueError(
                    f"CausalSelfAttention: {name} must be a finite number > {low:g}, got {value!r}"
                )
        self.rope, self.rope_base, self.rope_scale = rope, rope_base, float(rope_scale)
        slopes = alibi_slopes(num_heads) if alibi else None
        self.register_buffer("slopes", slopes, persistent=False)
        self.q_proj = nn.Linear(d_model, d_model)
        self.k_proj = nn.Linear(d_model, d_model)
        self.v_proj = nn.Linear(d_model, d_model)
        self.out_proj = nn.Linear(d_model, d_model)
        self.dropout = dropout
        self.sink = sink
        self.sink_logits = nn.Parameter(torch.zeros(num_heads)) if sink == "learned" else None
        self.gate_proj = nn.Linear(d_model, d_model) if gated else None

    def forward(
        self,
        x: torch.Tensor,
        *,
        cache: KVCache | None = None,
        layer: int = 0,
        need_weights: bool = False,
        position_bias: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``x`` ``(N, L, D)`` (new positions) -> ``(output (N, L, D), weights (N, H, L, S))``.

        With a ``cache``, the new keys and values are appended to ``layer``'s and the queries
        attend to all of them. A ``position_bias`` ``(H, L, S)`` (float, ``-inf`` on the future
        keys) replaces the causal mask: :class:`CharGPT` passes T5's relative bias this way.
        """
        N, L, D = x.shape
        H, E = self.num_heads, self.head_dim
        q = self.q_proj(x).view(N, L, H, E).transpose(1, 2)  # (N, H, L, E)
        k = self.k_proj(x).view(N, L, H, E).transpose(1, 2)  # (N, H, L, E)
        v = self.v_proj(x).view(N, L, H, E).transpose(1, 2)  # (N, H, L, E)
        if self.rope:  # keys are cached rotated: rotate the new ones at their true positions
            start = 0 if cache is None else cache.length(layer)
            positions = torch.arange(start, start + L, device=x.device)  # (L,)
            q = apply_rope(q, positions, base=self.rope_base, scale=self.rope_scale)  # (N, H, L, E)
            k = apply_rope(k, positions, base=self.rope_base, scale=self.rope_scale)  # (N, H, L, E)
        k, v, past = extend_cache(cache, layer, k, v)  # (N, H, S, E), S = past + L
        if self.slopes is not None:
            mask = alibi_causal_bias(self.slopes, L, past, device=x.device)  # (H, L, S) float
        elif position_bias is not None:
            mask = position_bias  # (H, L, S) float
        else:
            mask = causal_mask_with_past(L, past, device=x.device) if L > 1 else None  # (L, S)
        p = self.dropout if self.training else 0.0
        sink = {"none": None, "off_by_one": 0.0}.get(self.sink, self.sink_logits)
        if isinstance(sink, torch.Tensor):
            sink = sink[:, None]  # (H, 1): one logit per head, for every query
        out, weights = scaled_dot_product_attention(
            q, k, v, attn_mask=mask, dropout_p=p, sink=sink
        )  # (N, H, L, E), (N, H, L, S)
        out = out.transpose(1, 2).reshape(N, L, D)  # (N, L, D): heads side by side again
        if self.gate_proj is not None:  # each head's output scaled by a gate in (0, 1)
            out = out * torch.sigmoid(self.gate_proj(x))  # (N, L, D)
        return self.out_proj(out), (weights if need_weights else None)


class GPTBlock(nn.Module):
    """A pre-norm Transformer decoder block without cross-attention.

    ``x + attention(norm(x))``, then ``x + mlp(norm(x))`` with a 4x-wide GELU MLP.
    """

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        D = config.d_model
        self.norm1 = nn.LayerNorm(D)
        self.attn = CausalSelfAttention(
            D, config.num_heads, config.dropout, alibi=config.positions == "alibi",
            rope=config.positions == "rope", rope_base=config.rope_base,
            rope_scale=config.rope_scale,
            sink=config.sink, gated=config.gated,
        )
        self.norm2 = nn.LayerNorm(D)
        self.mlp = nn.Sequential(nn.Linear(D, 4 * D), nn.GELU(), nn.Linear(4 * D, D))
        self.drop = nn.Dropout(config.dropout)

    def forward(
        self, x: torch.Tensor, **attention_options
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``x`` ``(N, L, D)`` -> ``(x (N, L, D), weights (N, H, L, S) or None)``.

        ``attention_options`` (``cache``, ``layer``, ``need_weights``, ``position_bias``) go to
        :meth:`CausalSelfAttention.forward`.
        """
        h, weights = self.attn(self.norm1(x), **attention_options)
        x = x + self.drop(h)  # (N, L, D)
        x = x + self.drop(self.mlp(self.norm2(x)))  # (N, L, D)
        return x, weights


class CharGPT(CausalDecoder):
    """A small GPT over characters: embeddings + learned positions, causal blocks, a linear head.

    The output layer shares its weight matrix with the token embedding (as GPT-2 does).

    Args:
        config: the sizes (see :class:`GPTConfig`).

    See the GPT chapter, "A tiny GPT of our own".
    """

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.config = config
        if config.positions not in ("alibi", "learned", "rope", "t5", "none"):
            raise ValueError(
                "positions must be 'alibi', 'learned', 'rope', 't5' or 'none', got "
                f"{config.positions!r}"
            )
        rope_options = {"rope_base": 10000.0, "rope_scale": 1.0}  # their defaults
        for name, default in rope_options.items():
            if getattr(config, name) != default and config.positions != "rope":
                raise ValueError(
                    f"{name} applies to positions='rope' only, got {name}="
                    f"{getattr(config, name)!r} with positions={config.positions!r}"
                )
        self.tok_embed = nn.Embedding(config.vocab_size, config.d_model)
        self.pos_embed = (
            nn.Embedding(config.context_length, config.d_model)
            if config.positions == "learned"
            else None
        )
        self.blocks = nn.ModuleList(GPTBlock(config) for _ in range(config.num_layers))
        self.norm = nn.LayerNorm(config.d_model)
        self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        self.lm_head.weight = self.tok_embed.weight  # tied
        self.relative_bias = (  # T5's decoder buckets: keys to the right share bucket 0
            RelativePositionBias(config.num_heads, bidirectional=False)
            if config.positions == "t5"
            else None
        )
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        # GPT-2's initialisation: small normal weights, zero biases.
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def num_parameters(self) -> int:
        """Parameters, counting the shared embedding/output matrix once."""
        return sum(p.numel() for p in self.parameters())

    def forward(
        self,
        input_ids: torch.Tensor,
        *,
        cache: KVCache | None = None,
        need_weights: bool = False,
    ) -> DecoderOutput:
        """Next-character logits for every position of ``input_ids``.

        Args:
            input_ids: ``(N, L)`` character ids; with a ``cache`` they continue its positions.
            cache: a :class:`KVCache`, extended in place.
            need_weights: also return each block's attention weights ``(N, H, L, S)``.

        Returns:
            A :class:`attnlib.generation.DecoderOutput` with ``logits`` ``(N, L, vocab_size)``.
        """
        N, L = input_ids.shape
        past = past_length(cache, L, self.context_length, "CharGPT")
        x = self.tok_embed(input_ids)  # (N, L, D)
        if self.pos_embed is not None:
            positions = torch.arange(past, past + L, device=input_ids.device)  # (L,)
            x = x + self.pos_embed(positions)  # (N, L, D)
        options = {}
        if self.relative_bias is not None:  # one bias for every layer, as in T5
            bias = self.relative_bias(past + L)[0, :, past:]  # (H, L, S): rows of the new queries
            allowed = causal_mask_with_past(L, past, device=input_ids.device)  # (L, S)
            options["position_bias"] = bias.masked_fill(~allowed, float("-inf"))  # (H, L, S)
        attentions = []
        for i, block in enumerate(self.blocks):
            x, weights = block(x, cache=cache, layer=i, need_weights=need_weights, **options)
            attentions.append(weights)
        logits = self.lm_head(self.norm(x))  # (N, L, vocab_size)
        return DecoderOutput(logits, tuple(attentions) if need_weights else None, cache)


def get_batch(
    data: torch.Tensor, batch_size: int, length: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random windows of a 1-D id sequence and the same windows shifted by one.

    Args:
        data: ``(S,)`` ids, the whole text.
        batch_size: N.
        length: L, the window length.
        generator: a CPU generator, for repeatable batches.

    Returns:
        ``(inputs, targets)``, both ``(N, L)`` on the CPU; ``targets[:, t]`` is the character
        that follows ``inputs[:, t]``.
    """
    if len(data) <= length:
        raise ValueError(f"get_batch: {len(data)} ids are too few for windows of {length + 1}")
    starts = torch.randint(0, len(data) - length, (batch_size,), generator=generator)  # (N,)
    offsets = torch.arange(length + 1)  # (L + 1,)
    windows = data[starts[:, None] + offsets[None, :]]  # (N, L + 1)
    return windows[:, :-1], windows[:, 1:]


@torch.no_grad()
def evaluate_loss(
    model: CharGPT,
    data: torch.Tensor,
    *,
    batch_size: int = 32,
    length: int | None = None,
    n_batches: int = 10,
    seed: int = 1234,
) -> float:
    """The mean next-character cross-entropy (nats) of ``model`` on random windows of ``data``.

    The windows come from a generator seeded with ``seed``, so two calls see the same text.
    """
    device = next(model.parameters()).device
    length = model.context_length if length is None else length
    g = torch.Generator().manual_seed(seed)
    was_training = model.training
    model.eval()
    total = 0.0
    for _ in range(n_batches):
        x, y = get_batch(data, batch_size, length, g)
        logits = model(x.to(device)).logits  # (N, L, vocab_size)
        total += F.cross_entropy(logits.flatten(0, 1), y.to(device).flatten()).item()
    model.train(was_training)
    return total / n_batches


def train_char_gpt(
    model: CharGPT,
    data: torch.Tensor,
    *,
    steps: int,
    batch_size: int = 32,
    length: int | None = None,
    lr: float = 3e-3,
    seed: int = 0,
    warmup: int = 20,
) -> list[float]:
    """Fit ``model`` to predict each next character of ``data``, for a fixed number of steps.

    AdamW with a short linear warm-up and a cosine decay to 10 % of ``lr``; batches of random
    windows drawn on the CPU from a generator seeded with ``seed`` (so a run is repeatable).

    Args:
        model: the model (trained in place, on whatever device it is on).
        data: ``(S,)`` training ids, the whole text.
        steps: how many optimiser steps.
        batch_size: N windows per step.
        length: L, the window length (default: the model's context length).
        lr: the peak learning rate.
        seed: seeds the batch order.
        warmup: steps of linear warm-up.

    Returns:
        The training loss of every step.
    """
    device = next(model.parameters()).device
    length = model.context_length if length is None else length
    g = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.99), weight_decay=0.01)

    def schedule(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, steps - warmup)
        return 0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * progress))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    model.train()
    losses = []
    for _ in range(steps):
        x, y = get_batch(data, batch_size, length, g)
        logits = model(x.to(device)).logits  # (N, L, vocab_size)
        loss = F.cross_entropy(logits.flatten(0, 1), y.to(device).flatten())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        losses.append(loss.item())
    model.eval()
    return losses
