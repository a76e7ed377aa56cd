"""Decoder-only Transformers: causal self-attention, a KV cache, sampling, a tiny GPT (chapter 9).

A GPT reads a sequence left to right and predicts each next token from the ones before it. This
module holds what every such model needs, small enough to read in one sitting:

- :func:`causal_mask_with_past`: who may attend to whom when some positions are already cached;
- :class:`KVCache`: the keys and values of past positions, kept so that each new token costs one
  position of work instead of the whole sequence;
- :func:`top_k_filter`, :func:`next_token_probs`, :func:`sample_next`, :func:`generate`: greedy
  and sampled generation (temperature, top-k), with or without the cache;
- :class:`CharGPT`: a character-level GPT (learned positions, pre-norm blocks, attention through
  :func:`attnlib.scaled_dot_product_attention`) and :func:`train_char_gpt` to fit it.

:class:`attnlib.models.llama.LlamaDecoder` (SmolLM2) uses the same cache and ``generate``.

Shape legend: N batch, H heads, L query (new) length, S key length (past + new), E head size,
D model size, V vocabulary size, T number of generated tokens.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..attention import scaled_dot_product_attention
from ..masks import causal_mask

__all__ = [
    "DecoderOutput",
    "KVCache",
    "causal_mask_with_past",
    "alibi_slopes",
    "alibi_causal_bias",
    "top_k_filter",
    "next_token_probs",
    "sample_next",
    "generate",
    "GPTConfig",
    "CausalSelfAttention",
    "GPTBlock",
    "CharGPT",
    "get_batch",
    "evaluate_loss",
    "train_char_gpt",
]


@dataclass
class DecoderOutput:
    """What a decoder's forward pass returns.

    Attributes:
        logits: ``(N, L, V)``, next-token scores at every new position.
        attentions: one ``(N, H, L, S)`` tensor per layer, or None if not asked for.
        cache: the :class:`KVCache` (extended by this call), or None.
    """

    logits: torch.Tensor
    attentions: tuple[torch.Tensor, ...] | None = None
    cache: KVCache | None = None


class KVCache:
    """Keys and values of the positions a decoder has already processed, one pair per layer.

    During generation the keys and values of old positions never change (a causal model's
    position ``i`` depends on positions ``<= i`` only), so they can be computed once and reused:
    each new token then runs one position through the model instead of the whole sequence.

    Args:
        n_layers: how many attention layers store into the cache.
    """

    def __init__(self, n_layers: int) -> None:
        self.keys: list[torch.Tensor | None] = [None] * n_layers
        self.values: list[torch.Tensor | None] = [None] * n_layers

    def length(self, layer: int = 0) -> int:
        """How many positions ``layer`` holds (0 when empty)."""
        k = self.keys[layer]
        return 0 if k is None else k.size(-2)

    def append(
        self, layer: int, key: torch.Tensor, value: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Add new positions to ``layer`` and return all of them.

        Args:
            layer: the layer's index.
            key: ``(N, Hkv, L, E)``, the new positions' keys.
            value: ``(N, Hkv, L, Ev)``.

        Returns:
            ``(keys, values)``: ``(N, Hkv, S, E)`` and ``(N, Hkv, S, Ev)``, S = past + L.
        """
        if self.keys[layer] is not None:
            key = torch.cat([self.keys[layer], key], dim=-2)  # (N, Hkv, S, E)
            value = torch.cat([self.values[layer], value], dim=-2)  # (N, Hkv, S, Ev)
        self.keys[layer], self.values[layer] = key, value
        return key, value

    def nbytes(self) -> int:
        """The memory the cached tensors occupy, in bytes."""
        return sum(
            t.numel() * t.element_size() for t in (*self.keys, *self.values) if t is not None
        )

    def __repr__(self) -> str:
        return f"KVCache(layers={len(self.keys)}, positions={self.length(0)})"


def causal_mask_with_past(
    L: int, past: int = 0, *, device: torch.device | str | None = None
) -> torch.Tensor:
    """The causal allowed-mask for ``L`` new queries after ``past`` cached positions.

    New query ``i`` sits at position ``past + i`` and may attend to keys ``0 .. past + i``: the
    mask is aligned bottom-right. With ``past = 0`` it is :func:`attnlib.masks.causal_mask`.

    Returns:
        A boolean ``(L, past + L)`` tensor, True = may attend.
    """
    return causal_mask(L, past_length=past, device=device)  # (L, past + L)


def alibi_slopes(n_heads: int) -> torch.Tensor:
    """ALiBi's per-head slopes: a geometric sequence ``2^(-8/H), 2^(-16/H), ..., 2^(-8)``.

    Head ``h`` subtracts ``slope[h] * distance`` from each score, so some heads look far back
    (small slope) and others mostly at the last few positions (large slope).

    Returns:
        ``(H,)`` float32.
    """
    return 2.0 ** (-8.0 * torch.arange(1, n_heads + 1, dtype=torch.float32) / n_heads)  # (H,)


def alibi_causal_bias(
    slopes: torch.Tensor, L: int, past: int = 0, *, device: torch.device | str | None = None
) -> torch.Tensor:
    """A float attention mask: ``-slope * distance`` to earlier keys, ``-inf`` to later ones.

    Attention with Linear Biases (ALiBi, Press et al., 2022) replaces position embeddings by this
    penalty on the scores. It depends on the distance ``i - j`` only, so a model trained on short
    windows can read longer ones.

    Args:
        slopes: ``(H,)`` from :func:`alibi_slopes`.
        L: the number of new queries (at positions ``past .. past + L - 1``).
        past: how many positions are already cached.

    Returns:
        ``(H, L, S)`` float32, S = past + L; added to the scores ``(N, H, L, S)``.
    """
    queries = torch.arange(past, past + L, device=device)  # (L,)
    keys = torch.arange(past + L, device=device)  # (S,)
    distance = (queries[:, None] - keys[None, :]).float()  # (L, S), >= 0 where allowed
    bias = -slopes.to(device)[:, None, None] * distance  # (H, L, S)
    return bias.masked_fill(distance < 0, float("-inf"))  # (H, L, S): the future is forbidden


# ------------------------------------------------------------------------------------------------
# Choosing the next token
# ------------------------------------------------------------------------------------------------


def top_k_filter(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the ``k`` largest logits of each row and set the others to ``-inf``.

    Ties with the ``k``-th largest value are kept, so a row may keep more than ``k`` entries.

    Args:
        logits: ``(..., V)``.
        k: how many candidates survive (``1 <= k``; ``k >= V`` keeps everything).

    Returns:
        ``(..., V)``, a new tensor.
    """
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise ValueError(f"top_k_filter: k must be a positive int, got {k!r}")
    if k >= logits.size(-1):
        return logits.clone()
    kth = torch.topk(logits, k, dim=-1).values[..., -1:]  # (..., 1), the k-th largest
    return logits.masked_fill(logits < kth, float("-inf"))  # (..., V)


def next_token_probs(
    logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None
) -> torch.Tensor:
    """The distribution a sampler draws from: ``softmax(top_k(logits) / temperature)``.

    Args:
        logits: ``(..., V)`` next-token scores.
        temperature: ``T > 0``; below 1 sharpens the distribution, above 1 flattens it.
        top_k: if given, only the ``top_k`` most likely tokens keep a non-zero probability.

    Returns:
        ``(..., V)`` probabilities (float32 at least), each row summing to 1.
    """
    if not (isinstance(temperature, (int, float)) and math.isfinite(temperature)) or (
        temperature <= 0
    ):
        raise ValueError(
            f"next_token_probs: temperature must be a positive number, got {temperature!r} "
            "(use temperature=0 in generate() for greedy decoding)"
        )
    logits = logits.float()
    if top_k is not None:
        logits = top_k_filter(logits, top_k)
    return torch.softmax(logits / temperature, dim=-1)  # (..., V)


def sample_next(
    logits: torch.Tensor,
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Pick one next token per row: the argmax if ``temperature == 0``, else a random draw.

    The draw happens on the CPU (with ``generator``, a CPU generator), so a seed gives the same
    tokens whatever device the model runs on.

    Args:
        logits: ``(N, V)``.
        temperature: 0 for greedy decoding; otherwise as in :func:`next_token_probs`.
        top_k: keep only the ``top_k`` most likely tokens before drawing.
        generator: a CPU ``torch.Generator`` (default: PyTorch's global one).

    Returns:
        ``(N,)`` token ids (long), on ``logits``' device.
    """
    if temperature == 0:
        return logits.argmax(dim=-1)  # (N,)
    probs = next_token_probs(logits, temperature, top_k).to("cpu")  # (N, V)
    ids = torch.multinomial(probs, 1, generator=generator)  # (N, 1)
    return ids[:, 0].to(logits.device)  # (N,)


@torch.no_grad()
def generate(
    model: Callable[..., DecoderOutput],
    input_ids: torch.Tensor,
    max_new_tokens: int,
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    generator: torch.Generator | None = None,
    use_cache: bool = True,
    stop_token: int | None = None,
) -> torch.Tensor:
    """Continue ``input_ids`` one token at a time.

    Without the cache every step runs the whole sequence so far through the model and keeps only
    the last position's logits. With it, the prompt runs once, then each step runs only the
    newest token, attending to the cached keys and values. Both give the same tokens.

    Args:
        model: a decoder with ``model(ids, cache=...) -> DecoderOutput``, ``model.new_cache()``
            and ``model.context_length`` (:class:`CharGPT`, ``LlamaDecoder``).
        input_ids: ``(N, L)`` prompt token ids.
        max_new_tokens: T, how many tokens to add.
        temperature: 0 = greedy (always the most likely token); otherwise sampling at this
            temperature.
        top_k: sample among the ``top_k`` most likely tokens only.
        generator: a CPU generator for the draws (ignored when greedy).
        use_cache: use a :class:`KVCache`.
        stop_token: stop once every row has produced this token (later positions of finished
            rows repeat it).

    Returns:
        ``(N, L + T')`` ids, prompt included, ``T' <= T``.

    See chapter 9, "The KV cache".
    """
    if input_ids.dim() != 2 or input_ids.size(1) == 0:
        raise ValueError(
            f"generate: input_ids must be (N, L) with L >= 1, got shape {tuple(input_ids.shape)}"
        )
    total = input_ids.size(1) + max_new_tokens
    if total > model.context_length:
        raise ValueError(
            f"generate: {input_ids.size(1)} prompt + {max_new_tokens} new tokens exceed the "
            f"model's context length {model.context_length}"
        )
    ids = input_ids
    cache = model.new_cache() if use_cache else None
    step_input = ids  # with the cache: the prompt first, then one token per step
    done = torch.zeros(ids.size(0), dtype=torch.bool, device=ids.device)  # (N,)
    for _ in range(max_new_tokens):
        out = model(step_input if use_cache else ids, cache=cache)
        logits = out.logits[:, -1, :]  # (N, V): the prediction after the last position
        token = sample_next(logits, temperature=temperature, top_k=top_k, generator=generator)
        if stop_token is not None:
            token = token.masked_fill(done, stop_token)  # (N,)
            done = done | (token == stop_token)
        ids = torch.cat([ids, token[:, None]], dim=1)  # (N, L + t)
        step_input = token[:, None]  # (N, 1)
        if stop_token is not None and bool(done.all()):
            break
    return ids


# ------------------------------------------------------------------------------------------------
# A tiny character-level GPT
# ------------------------------------------------------------------------------------------------


@dataclass
class GPTConfig:
    """Sizes of :class:`CharGPT`."""

    vocab_size: int
    context_length: int = 256  # the longest sequence, prompt and generated text together
    d_model: int = 96  # D
    n_heads: int = 4  # H; each head has E = D / H
    n_layers: int = 3
    positions: str = "alibi"  # "alibi" (distance penalties) or "learned" (one vector per position)
    dropout: float = 0.0  # 0.0 keeps notebook outputs deterministic


class CausalSelfAttention(nn.Module):
    """Multi-head self-attention where position ``i`` sees positions ``<= i`` only.

    Args:
        d_model: D.
        n_heads: H (must divide D).
    """

    def __init__(
        self, d_model: int, n_heads: int, dropout: float = 0.0, *, alibi: bool = False
    ) -> None:
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model ({d_model}) must be divisible by n_heads ({n_heads})")
        self.n_heads, self.head_dim = n_heads, d_model // n_heads
        self.register_buffer("slopes", alibi_slopes(n_heads) if alibi else None, persistent=False)
        self.q_proj = nn.Linear(d_model, d_model)
        self.k_proj = nn.Linear(d_model, d_model)
        self.v_proj = nn.Linear(d_model, d_model)
        self.out_proj = nn.Linear(d_model, d_model)
        self.dropout = dropout

    def forward(
        self,
        x: torch.Tensor,
        *,
        cache: KVCache | None = None,
        layer: int = 0,
        need_weights: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``x`` ``(N, L, D)`` (new positions) -> ``(output (N, L, D), weights (N, H, L, S))``.

        With a ``cache``, the new keys and values are appended to ``layer``'s and the queries
        attend to all of them.
        """
        N, L, D = x.shape
        H, E = self.n_heads, self.head_dim
        q = self.q_proj(x).view(N, L, H, E).transpose(1, 2)  # (N, H, L, E)
        k = self.k_proj(x).view(N, L, H, E).transpose(1, 2)  # (N, H, L, E)
        v = self.v_proj(x).view(N, L, H, E).transpose(1, 2)  # (N, H, L, E)
        past = 0
        if cache is not None:
            past = cache.length(layer)
            k, v = cache.append(layer, k, v)  # (N, H, S, E), S = past + L
        if self.slopes is not None:
            mask = alibi_causal_bias(self.slopes, L, past, device=x.device)  # (H, L, S) float
        else:
            mask = causal_mask_with_past(L, past, device=x.device) if L > 1 else None  # (L, S)
        p = self.dropout if self.training else 0.0
        out, weights = scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)
        out = out.transpose(1, 2).reshape(N, L, D)  # (N, L, D): heads side by side again
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
            D, config.n_heads, config.dropout, alibi=config.positions == "alibi"
        )
        self.norm2 = nn.LayerNorm(D)
        self.mlp = nn.Sequential(nn.Linear(D, 4 * D), nn.GELU(), nn.Linear(4 * D, D))
        self.drop = nn.Dropout(config.dropout)

    def forward(
        self,
        x: torch.Tensor,
        *,
        cache: KVCache | None = None,
        layer: int = 0,
        need_weights: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``x`` ``(N, L, D)`` -> ``(x (N, L, D), weights (N, H, L, S) or None)``."""
        h, weights = self.attn(self.norm1(x), cache=cache, layer=layer, need_weights=need_weights)
        x = x + self.drop(h)  # (N, L, D)
        x = x + self.drop(self.mlp(self.norm2(x)))  # (N, L, D)
        return x, weights


class CharGPT(nn.Module):
    """A small GPT over characters: embeddings + learned positions, causal blocks, a linear head.

    The output layer shares its weight matrix with the token embedding (as GPT-2 does).

    Args:
        config: the sizes (see :class:`GPTConfig`).

    See chapter 9, "A tiny GPT of our own".
    """

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.config = config
        if config.positions not in ("alibi", "learned"):
            raise ValueError(f"positions must be 'alibi' or 'learned', got {config.positions!r}")
        self.tok_embed = nn.Embedding(config.vocab_size, config.d_model)
        self.pos_embed = (
            nn.Embedding(config.context_length, config.d_model)
            if config.positions == "learned"
            else None
        )
        self.blocks = nn.ModuleList(GPTBlock(config) for _ in range(config.n_layers))
        self.norm = nn.LayerNorm(config.d_model)
        self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        self.lm_head.weight = self.tok_embed.weight  # tied
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        # GPT-2's initialisation: small normal weights, zero biases.
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    @property
    def context_length(self) -> int:
        """The longest sequence the position table covers."""
        return self.config.context_length

    def num_parameters(self) -> int:
        """Parameters, counting the shared embedding/output matrix once."""
        return sum(p.numel() for p in self.parameters())

    def new_cache(self) -> KVCache:
        """An empty KV cache with one slot per block."""
        return KVCache(self.config.n_layers)

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
            A :class:`DecoderOutput` with ``logits`` ``(N, L, V)``.
        """
        N, L = input_ids.shape
        past = 0 if cache is None else cache.length(0)
        if past + L > self.context_length:
            raise ValueError(
                f"CharGPT: {past} cached + {L} new positions exceed the context length "
                f"{self.context_length}"
            )
        x = self.tok_embed(input_ids)  # (N, L, D)
        if self.pos_embed is not None:
            positions = torch.arange(past, past + L, device=input_ids.device)  # (L,)
            x = x + self.pos_embed(positions)  # (N, L, D)
        attentions = []
        for i, block in enumerate(self.blocks):
            x, weights = block(x, cache=cache, layer=i, need_weights=need_weights)
            attentions.append(weights)
        logits = self.lm_head(self.norm(x))  # (N, L, V)
        return DecoderOutput(logits, tuple(attentions) if need_weights else None, cache)

    @torch.no_grad()
    def generate(self, input_ids: torch.Tensor, max_new_tokens: int, **kwargs) -> torch.Tensor:
        """Continue ``input_ids`` ``(N, L)``; see :func:`generate` for the options."""
        return generate(self, input_ids, max_new_tokens, **kwargs)


def get_batch(
    data: torch.Tensor, batch_size: int, length: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random windows of a 1-D id sequence and the same windows shifted by one.

    Args:
        data: ``(T,)`` ids.
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
        logits = model(x.to(device)).logits  # (N, L, V)
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
        data: ``(T,)`` training ids.
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
        logits = model(x.to(device)).logits  # (N, L, V)
        loss = F.cross_entropy(logits.flatten(0, 1), y.to(device).flatten())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        losses.append(loss.item())
    model.eval()
    return losses
