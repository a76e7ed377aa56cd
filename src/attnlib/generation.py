"""Writing text with a decoder: the KV cache, choosing the next token, the generation loop.

Every decoder-only model in attnlib (:class:`attnlib.models.gpt.CharGPT` and
:class:`attnlib.models.llama.LlamaDecoder`) writes text the same way, with what this module holds:

- :class:`KVCache`: the keys and values of past positions, kept so that each new token costs one
  position of work instead of the whole sequence;
- :func:`causal_mask_with_past`: who may attend to whom when some positions are already cached;
- :func:`past_length`: how many positions a cache holds, checked against a model's context length,
  and :func:`extend_cache`, one attention layer's read and write;
- :func:`top_k_filter`, :func:`top_p_filter`, :func:`next_token_probs`, :func:`sample_next`:
  greedy and sampled choice of the next token (temperature, top-k, top-p);
- :func:`generate`: the loop, with or without the cache (both give the same tokens);
- :class:`DecoderOutput`: what a decoder's forward pass returns, and :class:`CausalDecoder`, the
  base class that gives a decoder its cache and its ``generate`` method.

See the GPT chapter, "The KV cache" and "Choosing the next token".

Shape legend: N batch, H heads, H_kv key/value heads, L query (new) length, S key length
(past + new), E head size, Ev value size.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from ._checks import positive_int, shape
from .masks import causal_mask

__all__ = [
    "DecoderOutput",
    "KVCache",
    "CausalDecoder",
    "causal_mask_with_past",
    "past_length",
    "extend_cache",
    "top_k_filter",
    "top_p_filter",
    "next_token_probs",
    "sample_next",
    "generate",
]


@dataclass
class DecoderOutput:
    """What a decoder's forward pass returns.

    Attributes:
        logits: ``(N, L, vocab_size)``, next-token scores at every new position.
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
        num_layers: how many attention layers store into the cache.
    """

    def __init__(self, num_layers: int) -> None:
        positive_int(num_layers, "num_layers", "KVCache")
        self.keys: list[torch.Tensor | None] = [None] * num_layers
        self.values: list[torch.Tensor | None] = [None] * num_layers

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
            key: ``(N, H_kv, L, E)``, the new positions' keys.
            value: ``(N, H_kv, L, Ev)``.

        Returns:
            ``(keys, values)``: ``(N, H_kv, S, E)`` and ``(N, H_kv, S, Ev)``, S = past + L.
        """
        if self.keys[layer] is not None:
            key = torch.cat([self.keys[layer], key], dim=-2)  # (N, H_kv, S, E)
            value = torch.cat([self.values[layer], value], dim=-2)  # (N, H_kv, S, Ev)
        self.keys[layer], self.values[layer] = key, value
        return key, value

    def nbytes(self) -> int:
        """The memory the cached tensors occupy, in bytes."""
        return sum(
            t.numel() * t.element_size() for t in (*self.keys, *self.values) if t is not None
        )

    def __repr__(self) -> str:
        return f"KVCache(layers={len(self.keys)}, positions={self.length(0)})"


class CausalDecoder(nn.Module):
    """What every decoder-only model shares: its context length, a fresh cache, ``generate``.

    A subclass sets ``self.config`` (with ``num_layers`` and ``context_length``) and defines
    ``forward(input_ids, *, cache=None, need_weights=False) -> DecoderOutput``.

    Attributes:
        stop_token: the token that ends generation by default (None: generate the full length).
    """

    stop_token: int | None = None

    @property
    def context_length(self) -> int:
        """The longest sequence (prompt and generated tokens together) the model accepts."""
        return self.config.context_length

    def new_cache(self) -> KVCache:
        """An empty KV cache with one slot per layer."""
        return KVCache(self.config.num_layers)

    @torch.no_grad()
    def generate(self, input_ids: torch.Tensor, max_new_tokens: int, **kwargs) -> torch.Tensor:
        """Continue ``input_ids`` ``(N, L)`` by ``max_new_tokens``; see :func:`generate`."""
        kwargs.setdefault("stop_token", self.stop_token)
        return generate(self, input_ids, max_new_tokens, **kwargs)


def causal_mask_with_past(
    L: int, past: int = 0, *, device: torch.device | str | None = None
) -> torch.Tensor:
    """The causal allowed-mask for ``L`` new queries after ``past`` cached positions.

    New query ``i`` sits at position ``past + i`` and may attend to keys ``0 .. past + i``: the
    mask is aligned bottom-right. It is :func:`attnlib.masks.causal_mask` with
    ``past_length=past``.

    Returns:
        A boolean ``(L, past + L)`` tensor, True = may attend.
    """
    return causal_mask(L, past_length=past, device=device)  # (L, past + L)


def past_length(cache: KVCache | None, L: int, context_length: int, where: str) -> int:
    """How many positions ``cache`` already holds, after checking that ``L`` more still fit.

    Args:
        cache: the cache a forward pass extends, or None (then nothing is cached).
        L: how many new positions the pass adds.
        context_length: the longest sequence the model accepts.
        where: the model's name, for the error message.

    Returns:
        The number of cached positions, 0 without a cache; the new positions start there.
    """
    past = 0 if cache is None else cache.length(0)
    if past + L > context_length:
        raise ValueError(
            f"{where}: {past} cached + {L} new positions exceed the context length "
            f"{context_length}"
        )
    return past


def extend_cache(
    cache: KVCache | None, layer: int, key: torch.Tensor, value: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """One attention layer's use of the cache: add its new keys and values, read back all of them.

    Args:
        cache: the cache, or None (then ``key`` and ``value`` are returned unchanged).
        layer: the layer's index in the cache.
        key: ``(N, H_kv, L, E)``, the new positions' keys.
        value: ``(N, H_kv, L, Ev)``.

    Returns:
        ``(keys, values, past)``: ``(N, H_kv, S, E)``, ``(N, H_kv, S, Ev)`` with S = past + L,
        and ``past``, how many positions were cached before this call (where the new queries
        sit: pass it to :func:`causal_mask_with_past`).
    """
    if cache is None:
        return key, value, 0
    past = cache.length(layer)
    key, value = cache.append(layer, key, value)  # (N, H_kv, S, E), (N, H_kv, S, Ev)
    return key, value, past


# ------------------------------------------------------------------------------------------------
# Choosing the next token
# ------------------------------------------------------------------------------------------------


def top_k_filter(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the ``k`` largest logits of each row and set the others to ``-inf``.

    Ties with the ``k``-th largest value are kept, so a row may keep more than ``k`` entries.

    Args:
        logits: ``(..., vocab_size)``.
        k: how many candidates survive (``1 <= k``; ``k >= vocab_size`` keeps everything).

    Returns:
        ``(..., vocab_size)``, a new tensor.
    """
    positive_int(k, "k", "top_k_filter")
    if k >= logits.size(-1):
        return logits.clone()
    kth = torch.topk(logits, k, dim=-1).values[..., -1:]  # (..., 1), the k-th largest
    return logits.masked_fill(logits < kth, float("-inf"))  # (..., vocab_size)


def top_p_filter(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Nucleus filtering (Holtzman et al. 2020): keep the most likely tokens of each row until
    their probabilities add up to at least ``p``, and set the other logits to ``-inf``.

    The token that carries the total past ``p`` is kept, so the most likely token always
    survives and ``p = 1`` keeps everything. Unlike top-k, the number of survivors follows the
    distribution: a confident row keeps a few tokens, a flat one many.

    Args:
        logits: ``(..., vocab_size)``; the probabilities are ``softmax(logits)``, so apply a
            temperature first (as :func:`next_token_probs` does).
        p: the probability mass to keep, ``0 < p <= 1``.

    Returns:
        ``(..., vocab_size)``, a new tensor.
    """
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 < p <= 1:
        raise ValueError(f"top_p_filter: p must be in (0, 1] (0 would keep no token), got {p!r}")
    probs = torch.softmax(logits.float(), dim=-1)  # (..., vocab_size)
    sorted_probs, order = probs.sort(dim=-1, descending=True)  # (..., vocab_size)
    mass_before = sorted_probs.cumsum(dim=-1) - sorted_probs  # (...,) mass of the likelier ones
    drop_sorted = mass_before >= p  # (..., vocab_size): the nucleus already holds p
    drop = drop_sorted.scatter(-1, order, drop_sorted)  # back to vocabulary order
    return logits.masked_fill(drop, float("-inf"))  # (..., vocab_size)


def next_token_probs(
    logits: torch.Tensor,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
) -> torch.Tensor:
    """The distribution a sampler draws from: the logits divided by the temperature, filtered by
    top-k and then top-p, and softmaxed.

    Args:
        logits: ``(..., vocab_size)`` next-token scores.
        temperature: tau > 0; below 1 sharpens the distribution, above 1 flattens it.
        top_k: if given, only the ``top_k`` most likely tokens keep a non-zero probability.
        top_p: if given, only the nucleus of :func:`top_p_filter` does, computed after the
            temperature (as Hugging Face's samplers do).

    Returns:
        ``(..., vocab_size)`` probabilities (float32 at least), each row summing to 1.
    """
    if not (isinstance(temperature, (int, float)) and math.isfinite(temperature)) or (
        temperature <= 0
    ):
        raise ValueError(
            f"next_token_probs: temperature must be a positive number, got {temperature!r} "
            "(use temperature=0 in generate() for greedy decoding)"
        )
    logits = logits.float() / temperature
    if top_k is not None:
        logits = top_k_filter(logits, top_k)
    if top_p is not None:
        logits = top_p_filter(logits, top_p)
    return torch.softmax(logits, dim=-1)  # (..., vocab_size)


def sample_next(
    logits: torch.Tensor,
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Pick one next token per row: the argmax if ``temperature == 0``, else a random draw.

    The draw happens on the CPU (with ``generator``, a CPU generator), so a seed gives the same
    tokens whatever device the model runs on.

    Args:
        logits: ``(N, vocab_size)``.
        temperature: 0 for greedy decoding; otherwise as in :func:`next_token_probs`.
        top_k: keep only the ``top_k`` most likely tokens before drawing.
        top_p: keep only the nucleus of probability ``top_p`` (:func:`top_p_filter`).
        generator: a CPU ``torch.Generator`` (default: PyTorch's global one).

    Returns:
        ``(N,)`` token ids (long), on ``logits``' device.
    """
    if temperature == 0:
        return logits.argmax(dim=-1)  # (N,)
    probs = next_token_probs(logits, temperature, top_k, top_p).to("cpu")  # (N, vocab_size)
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
    top_p: float | None = None,
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
            and ``model.context_length`` (``CharGPT``, ``LlamaDecoder``).
        input_ids: ``(N, L)`` prompt token ids.
        max_new_tokens: how many tokens to add.
        temperature: 0 = greedy (always the most likely token); otherwise sampling at this
            temperature.
        top_k: sample among the ``top_k`` most likely tokens only.
        top_p: sample among the nucleus of probability ``top_p`` only (after ``top_k``).
        generator: a CPU generator for the draws (ignored when greedy).
        use_cache: use a :class:`KVCache`.
        stop_token: stop once every row has produced this token (later positions of finished
            rows repeat it).

    Returns:
        ``(N, L + n)`` ids, prompt included, ``n <= max_new_tokens``.

    See the GPT chapter, "The KV cache".
    """
    if input_ids.dim() != 2 or input_ids.size(1) == 0:
        raise ValueError(
            f"generate: input_ids must be (N, L) with L >= 1, got shape {shape(input_ids)}"
        )
    if input_ids.size(1) + max_new_tokens > model.context_length:
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
        logits = out.logits[:, -1, :]  # (N, vocab_size): the prediction after the last position
        token = sample_next(
            logits, temperature=temperature, top_k=top_k, top_p=top_p, generator=generator
        )
        if stop_token is not None:
            token = token.masked_fill(done, stop_token)  # (N,)
            done = done | (token == stop_token)
        ids = torch.cat([ids, token[:, None]], dim=1)  # (N, L + t)
        step_input = token[:, None]  # (N, 1)
        if stop_token is not None and bool(done.all()):
            break
    return ids
