"""A tiny T5-style encoder–decoder, small enough to read and to train in seconds (chapter 10).

T5 (Raffel et al., 2020) casts every task as *text to text*: a string goes into an encoder, a
string comes out of a decoder. Its architecture is the original encoder–decoder Transformer with a
few changes, all of them here:

* **no absolute positions**: instead, every attention layer adds a learned **relative position
  bias** to its scores, one scalar per head for each *bucket* of distances ``j - i`` between key
  ``j`` and query ``i`` (:func:`relative_position_bucket`, :class:`RelativePositionBias`). The
  encoder's buckets are bidirectional (left and right differ), the decoder's unidirectional (it
  only ever looks left). Each stack computes its bias once and every layer of the stack reuses it;
  cross-attention gets none;
* **no** :math:`1/\\sqrt{E}` **in the scores**: T5 folds that factor into the initialisation of
  the query projection (:meth:`T5Model.reset_parameters`), so attention runs with ``scale=1.0``;
* **RMSNorm before each sublayer** (pre-norm): rescale by the root mean square, no centring, no
  bias (:class:`RMSNorm`); no biases in any linear layer.

Attention itself is :class:`attnlib.MultiHeadAttention`, so masks follow attnlib's polarity
(boolean True = may attend) and the bias travels as a floating ``attn_mask``: attnlib turns the
boolean masks into ``0`` / ``-inf`` and adds everything up, and a query with no allowed key gets
zero weights.

Shape legend: N batch, H heads, L target (decoder) length, S source (encoder) length, E size per
head, D model size, V vocabulary size, T generated steps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from ..multihead import MultiHeadAttention

__all__ = [
    "T5Config",
    "relative_position_bucket",
    "RelativePositionBias",
    "RMSNorm",
    "T5EncoderLayer",
    "T5DecoderLayer",
    "T5Model",
    "T5Attentions",
    "Generation",
    "shift_right",
    "train_t5",
]


def _check_int(name: str, n, minimum: int = 1) -> int:
    if not isinstance(n, int) or isinstance(n, bool) or n < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {n!r}")
    return n


def _check_buckets(num_buckets, max_distance, bidirectional: bool) -> None:
    _check_int("num_buckets", num_buckets, 2)
    _check_int("max_distance", max_distance, 1)
    if bidirectional and num_buckets % 2:
        raise ValueError(
            f"num_buckets must be even when bidirectional (half for keys on the left, half for "
            f"keys on the right), got {num_buckets}"
        )
    per_side = num_buckets // 2 if bidirectional else num_buckets
    if per_side < 2:
        raise ValueError(
            f"num_buckets={num_buckets} leaves {per_side} bucket per direction; need at least 2 "
            f"(one exact, one logarithmic)"
        )
    max_exact = per_side // 2
    if max_distance <= max_exact:
        raise ValueError(
            f"max_distance must exceed the {max_exact} distances that get a bucket each "
            f"(num_buckets={num_buckets}, bidirectional={bidirectional}), got {max_distance}"
        )


# ------------------------------------------------------------------------------------------------
# Relative positions
# ------------------------------------------------------------------------------------------------


def relative_position_bucket(
    relative_position: torch.Tensor,
    *,
    bidirectional: bool = True,
    num_buckets: int = 32,
    max_distance: int = 128,
) -> torch.Tensor:
    """T5's bucket of each relative position ``j - i`` (key position minus query position).

    Small distances get a bucket each; larger ones share buckets whose width grows
    logarithmically up to ``max_distance``; everything farther falls into the last bucket. With
    ``bidirectional=True`` (the encoder) the first half of the buckets is for keys at or to the
    left of the query (``j - i <= 0``) and the second half for keys to its right; with
    ``bidirectional=False`` (the decoder, which never sees the right) every key to the right
    shares bucket 0 with the query itself. The arithmetic, float32 logarithms included, is the
    reference implementation's (Mesh TensorFlow, reproduced in Hugging Face ``transformers``), so
    the same positions land in the same buckets.

    Args:
        relative_position: integer tensor of any shape, ``j - i``.
        bidirectional: whether keys to the right get their own buckets.
        num_buckets: number of buckets (T5: 32).
        max_distance: distances from this one on share the last bucket of their side (T5: 128).

    Returns:
        A long tensor of bucket ids in ``[0, num_buckets)``, the shape of ``relative_position``.

    See chapter 10, "Relative position bias".
    """
    if not isinstance(relative_position, torch.Tensor) or relative_position.is_floating_point() \
            or relative_position.dtype == torch.bool:
        raise TypeError(
            "relative_position must be an integer tensor of distances j - i, got "
            f"{getattr(relative_position, 'dtype', type(relative_position).__name__)}"
        )
    _check_buckets(num_buckets, max_distance, bidirectional)
    relative_position = relative_position.long()
    buckets = torch.zeros_like(relative_position)
    if bidirectional:
        num_buckets //= 2
        buckets = buckets + (relative_position > 0).long() * num_buckets  # right half
        distance = relative_position.abs()
    else:
        distance = (-relative_position).clamp(min=0)  # keys to the right count as distance 0
    max_exact = num_buckets // 2
    is_small = distance < max_exact
    # Distances max_exact .. max_distance share num_buckets - max_exact logarithmic buckets.
    log_ratio = torch.log(distance.float() / max_exact) / math.log(max_distance / max_exact)
    if_large = max_exact + (log_ratio * (num_buckets - max_exact)).long()
    if_large = if_large.clamp(max=num_buckets - 1)
    return buckets + torch.where(is_small, distance, if_large)


class RelativePositionBias(nn.Module):
    """A learned scalar per head for each bucket of relative positions, added to the scores.

    Args:
        num_heads: H.
        bidirectional: True for the encoder's self-attention, False for the decoder's.
        num_buckets: number of buckets (T5: 32).
        max_distance: where the buckets stop growing (T5: 128).

    See chapter 10, "Relative position bias".
    """

    def __init__(
        self,
        num_heads: int,
        *,
        bidirectional: bool,
        num_buckets: int = 32,
        max_distance: int = 128,
    ) -> None:
        super().__init__()
        _check_int("num_heads", num_heads)
        _check_buckets(num_buckets, max_distance, bidirectional)
        self.num_heads = num_heads
        self.bidirectional = bidirectional
        self.num_buckets = num_buckets
        self.max_distance = max_distance
        self.embedding = nn.Embedding(num_buckets, num_heads)  # (buckets, H)

    def buckets(self, relative_position: torch.Tensor) -> torch.Tensor:
        """:func:`relative_position_bucket` with this module's settings."""
        return relative_position_bucket(
            relative_position, bidirectional=self.bidirectional, num_buckets=self.num_buckets,
            max_distance=self.max_distance,
        )

    def by_distance(self, relative_position: torch.Tensor) -> torch.Tensor:
        """The bias of each head at the given distances ``j - i``: ``(K,) -> (H, K)``."""
        return self.embedding(self.buckets(relative_position)).T  # (H, K)

    def forward(self, L: int, S: int | None = None) -> torch.Tensor:
        """The bias for ``L`` queries and ``S`` keys (default ``S = L``).

        Returns:
            A float tensor ``(1, H, L, S)``: entry ``[0, h, i, j]`` is head ``h``'s learned value
            for the bucket of ``j - i``; it broadcasts over the batch.
        """
        S = L if S is None else S
        _check_int("L", L, 0)
        _check_int("S", S, 0)
        device = self.embedding.weight.device
        i = torch.arange(L, device=device)[:, None]  # (L, 1) query positions
        j = torch.arange(S, device=device)[None, :]  # (1, S) key positions
        bias = self.embedding(self.buckets(j - i))  # (L, S, H)
        return bias.permute(2, 0, 1)[None]  # (1, H, L, S)

    def extra_repr(self) -> str:
        return (
            f"num_heads={self.num_heads}, bidirectional={self.bidirectional}, "
            f"num_buckets={self.num_buckets}, max_distance={self.max_distance}"
        )


# ------------------------------------------------------------------------------------------------
# Layers
# ------------------------------------------------------------------------------------------------


class RMSNorm(nn.Module):
    r"""Root-mean-square normalisation: :math:`x / \sqrt{\mathrm{mean}(x^2) + \epsilon} \cdot g`.

    LayerNorm without the centring and without the bias, as in T5 (and Llama).

    Args:
        d_model: D, the size of the last dimension.
        eps: added under the square root (T5: 1e-6).
    """

    def __init__(self, d_model: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d_model))  # (D,)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rms = x.pow(2).mean(dim=-1, keepdim=True).add(self.eps).sqrt()  # (..., 1)
        return x / rms * self.weight  # (..., D)


class FeedForward(nn.Module):
    """T5's MLP: ``relu(x W_i) W_o``, no biases."""

    def __init__(self, d_model: int, d_ff: int, dropout: float) -> None:
        super().__init__()
        self.wi = nn.Linear(d_model, d_ff, bias=False)
        self.wo = nn.Linear(d_ff, d_model, bias=False)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.wo(self.dropout(F.relu(self.wi(x))))  # (N, L, D)


class T5EncoderLayer(nn.Module):
    """Pre-norm encoder layer: bidirectional self-attention with the position bias, then the MLP.

    Args:
        d_model: D.
        num_heads: H.
        d_ff: hidden size of the MLP.
        dropout: dropout on residual branches and attention weights (training only).
        eps: RMSNorm's epsilon.
    """

    def __init__(
        self, d_model: int, num_heads: int, d_ff: int, dropout: float = 0.0, eps: float = 1e-6
    ) -> None:
        super().__init__()
        self.norm1 = RMSNorm(d_model, eps)
        self.self_attn = MultiHeadAttention(d_model, num_heads, dropout=dropout, bias=False)
        self.norm2 = RMSNorm(d_model, eps)
        self.ff = FeedForward(d_model, d_ff, dropout)
        self.dropout = nn.Dropout(dropout)

    def forward(
        self, x: torch.Tensor, *, position_bias: torch.Tensor, key_padding_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Args: x ``(N, S, D)``; position_bias ``(1, H, S, S)``; key_padding_mask ``(N, S)``
        (True = real token). Returns ``(x (N, S, D), weights (N, H, S, S))``."""
        h = self.norm1(x)  # (N, S, D)
        h, weights = self.self_attn(
            h, h, h, attn_mask=position_bias, key_padding_mask=key_padding_mask, scale=1.0
        )  # (N, S, D), (N, H, S, S)
        x = x + self.dropout(h)
        x = x + self.dropout(self.ff(self.norm2(x)))  # (N, S, D)
        return x, weights


class T5DecoderLayer(nn.Module):
    """Pre-norm decoder layer: causal self-attention with the position bias, cross-attention to
    the encoder's output (no position bias), then the MLP. Arguments as :class:`T5EncoderLayer`.
    """

    def __init__(
        self, d_model: int, num_heads: int, d_ff: int, dropout: float = 0.0, eps: float = 1e-6
    ) -> None:
        super().__init__()
        self.norm1 = RMSNorm(d_model, eps)
        self.self_attn = MultiHeadAttention(d_model, num_heads, dropout=dropout, bias=False)
        self.norm2 = RMSNorm(d_model, eps)
        self.cross_attn = MultiHeadAttention(d_model, num_heads, dropout=dropout, bias=False)
        self.norm3 = RMSNorm(d_model, eps)
        self.ff = FeedForward(d_model, d_ff, dropout)
        self.dropout = nn.Dropout(dropout)

    def forward(
        self,
        y: torch.Tensor,
        memory: torch.Tensor,
        *,
        position_bias: torch.Tensor,
        memory_key_padding_mask: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Args: y ``(N, L, D)``; memory ``(N, S, D)``; position_bias ``(1, H, L, L)``;
        memory_key_padding_mask ``(N, S)`` (True = real source token).
        Returns ``(y (N, L, D), self_weights (N, H, L, L), cross_weights (N, H, L, S))``."""
        h = self.norm1(y)  # (N, L, D)
        h, self_w = self.self_attn(
            h, h, h, attn_mask=position_bias, is_causal=True, scale=1.0
        )  # (N, L, D), (N, H, L, L)
        y = y + self.dropout(h)
        h = self.norm2(y)  # (N, L, D)
        h, cross_w = self.cross_attn(
            h, memory, memory, key_padding_mask=memory_key_padding_mask, scale=1.0
        )  # (N, L, D), (N, H, L, S)
        y = y + self.dropout(h)
        y = y + self.dropout(self.ff(self.norm3(y)))  # (N, L, D)
        return y, self_w, cross_w


# ------------------------------------------------------------------------------------------------
# The model
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class T5Config:
    """Sizes of a :class:`T5Model`. The defaults make a tiny model for a character-level task."""

    vocab_size: int
    d_model: int = 64
    num_heads: int = 4  # E = d_model / num_heads = 16 per head
    d_ff: int = 256
    num_encoder_layers: int = 2
    num_decoder_layers: int = 2
    num_buckets: int = 32  # T5's value
    max_distance: int = 128  # T5's value; our sequences are far shorter
    dropout: float = 0.0  # 0.0 keeps notebook outputs deterministic
    eps: float = 1e-6  # RMSNorm's epsilon, T5's value
    pad_id: int = 0
    start_id: int = 1  # first decoder input; T5 itself reuses its pad id for this
    eos_id: int = 2

    def __post_init__(self) -> None:
        for name in ("vocab_size", "d_model", "num_heads", "d_ff", "num_encoder_layers",
                     "num_decoder_layers"):
            _check_int(name, getattr(self, name))
        if self.d_model % self.num_heads:
            raise ValueError(
                f"d_model ({self.d_model}) must be divisible by num_heads ({self.num_heads})"
            )
        _check_buckets(self.num_buckets, self.max_distance, bidirectional=True)
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        for name in ("pad_id", "start_id", "eos_id"):
            value = getattr(self, name)
            if not isinstance(value, int) or not 0 <= value < self.vocab_size:
                raise ValueError(f"{name} must be an id in [0, vocab_size={self.vocab_size}), "
                                 f"got {value!r}")


class T5Attentions(NamedTuple):
    """Every attention map of one forward pass, one tensor per layer."""

    encoder: tuple[torch.Tensor, ...]  # each (N, H, S, S), bidirectional
    decoder_self: tuple[torch.Tensor, ...]  # each (N, H, L, L), causal
    cross: tuple[torch.Tensor, ...]  # each (N, H, L, S), decoder queries on encoder keys


class Generation(NamedTuple):
    """What :meth:`T5Model.generate` returns."""

    ids: torch.Tensor  # (N, T): generated ids, eos included, pad after it
    cross_attention: torch.Tensor  # (layers, N, H, T, S): row t = the weights of step t


class T5Model(nn.Module):
    """A T5-style encoder–decoder with one shared vocabulary (text in, text out).

    Args:
        config: the sizes; see :class:`T5Config`.

    Attributes:
        embed: the token embedding, shared by the encoder and the decoder.
        encoder_bias / decoder_bias: the relative position biases (bidirectional / causal), each
            shared by every layer of its stack.
        encoder_layers / decoder_layers: :class:`T5EncoderLayer` / :class:`T5DecoderLayer`.
        lm_head: the decoder's output projection onto the vocabulary.

    See chapter 10, "T5: an encoder–decoder with relative positions".
    """

    def __init__(self, config: T5Config) -> None:
        super().__init__()
        if not isinstance(config, T5Config):
            raise TypeError(f"config must be a T5Config, got {type(config).__name__}")
        c = self.config = config
        self.embed = nn.Embedding(c.vocab_size, c.d_model)
        self.encoder_bias = RelativePositionBias(
            c.num_heads, bidirectional=True, num_buckets=c.num_buckets,
            max_distance=c.max_distance,
        )
        self.decoder_bias = RelativePositionBias(
            c.num_heads, bidirectional=False, num_buckets=c.num_buckets,
            max_distance=c.max_distance,
        )
        self.encoder_layers = nn.ModuleList(
            T5EncoderLayer(c.d_model, c.num_heads, c.d_ff, c.dropout, c.eps)
            for _ in range(c.num_encoder_layers)
        )
        self.encoder_norm = RMSNorm(c.d_model, c.eps)
        self.decoder_layers = nn.ModuleList(
            T5DecoderLayer(c.d_model, c.num_heads, c.d_ff, c.dropout, c.eps)
            for _ in range(c.num_decoder_layers)
        )
        self.decoder_norm = RMSNorm(c.d_model, c.eps)
        self.dropout = nn.Dropout(c.dropout)
        self.lm_head = nn.Linear(c.d_model, c.vocab_size, bias=False)
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """T5's initialisation, with the attention scale folded into the query projection.

        Each projection is drawn with standard deviation ``1 / sqrt(fan_in)``, except the query
        projection, drawn ``sqrt(E)`` times smaller: ``1 / sqrt(D * E)``. For RMS-normalised
        inputs the queries then have variance ``1 / E`` and the keys variance 1, so a score
        ``q . k`` (a sum of E products) starts with variance 1: what ``1 / sqrt(E)`` in the
        scores would otherwise do. Embeddings start with standard deviation 1 and are **not**
        multiplied by ``sqrt(D)``.
        """
        c = self.config
        E = c.d_model // c.num_heads
        nn.init.normal_(self.embed.weight, std=1.0)
        for bias in (self.encoder_bias, self.decoder_bias):
            nn.init.normal_(bias.embedding.weight, std=c.d_model**-0.5)
        attentions = [layer.self_attn for layer in self.encoder_layers]
        for layer in self.decoder_layers:
            attentions += [layer.self_attn, layer.cross_attn]
        for attn in attentions:
            nn.init.normal_(attn.q_proj.weight, std=(c.d_model * E) ** -0.5)  # folds 1/sqrt(E)
            nn.init.normal_(attn.k_proj.weight, std=c.d_model**-0.5)
            nn.init.normal_(attn.v_proj.weight, std=c.d_model**-0.5)
            nn.init.normal_(attn.out_proj.weight, std=c.d_model**-0.5)
        for layer in [*self.encoder_layers, *self.decoder_layers]:
            nn.init.normal_(layer.ff.wi.weight, std=c.d_model**-0.5)
            nn.init.normal_(layer.ff.wo.weight, std=c.d_ff**-0.5)
        nn.init.normal_(self.lm_head.weight, std=c.d_model**-0.5)

    def _check_ids(self, name: str, ids) -> None:
        if not isinstance(ids, torch.Tensor) or ids.dtype != torch.long or ids.dim() != 2:
            raise ValueError(
                f"{name} must be a long tensor of token ids (N, length), got "
                f"{getattr(ids, 'dtype', type(ids).__name__)} of shape "
                f"{tuple(getattr(ids, 'shape', ()))}"
            )
        if ids.numel() and (ids.min() < 0 or ids.max() >= self.config.vocab_size):
            raise ValueError(
                f"{name} holds ids outside [0, vocab_size={self.config.vocab_size}): "
                f"min {int(ids.min())}, max {int(ids.max())}"
            )

    def encode(self, src_ids: torch.Tensor) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        """Run the encoder.

        Args:
            src_ids: ``(N, S)`` source ids, padded with ``config.pad_id``.

        Returns:
            ``(memory, weights)``: memory ``(N, S, D)`` and one ``(N, H, S, S)`` self-attention
            map per encoder layer.
        """
        self._check_ids("src_ids", src_ids)
        real = src_ids != self.config.pad_id  # (N, S), True = a real token
        bias = self.encoder_bias(src_ids.size(1))  # (1, H, S, S), one for every layer
        x = self.dropout(self.embed(src_ids))  # (N, S, D)
        weights = []
        for layer in self.encoder_layers:
            x, w = layer(x, position_bias=bias, key_padding_mask=real)  # (N, S, D)
            weights.append(w)
        return self.dropout(self.encoder_norm(x)), tuple(weights)

    def decode(
        self, tgt_in: torch.Tensor, memory: torch.Tensor, src_ids: torch.Tensor
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...], tuple[torch.Tensor, ...]]:
        """Run the decoder on its inputs (the targets shifted right, see :func:`shift_right`).

        Args:
            tgt_in: ``(N, L)`` decoder input ids, starting with ``config.start_id``.
            memory: ``(N, S, D)``, the encoder's output.
            src_ids: ``(N, S)``, the source ids (for the padding mask of cross-attention).

        Returns:
            ``(logits, self_weights, cross_weights)``: logits ``(N, L, V)`` for the next token at
            each position; one ``(N, H, L, L)`` and one ``(N, H, L, S)`` map per decoder layer.
        """
        self._check_ids("tgt_in", tgt_in)
        self._check_ids("src_ids", src_ids)
        if memory.dim() != 3 or memory.shape[:2] != src_ids.shape:
            raise ValueError(
                f"memory must be (N, S, D) with (N, S) = src_ids' shape {tuple(src_ids.shape)}, "
                f"got {tuple(memory.shape)}"
            )
        if tgt_in.size(0) != src_ids.size(0):
            raise ValueError(
                f"tgt_in and src_ids must have the same batch size N, got {tgt_in.size(0)} and "
                f"{src_ids.size(0)}"
            )
        real = src_ids != self.config.pad_id  # (N, S)
        bias = self.decoder_bias(tgt_in.size(1))  # (1, H, L, L)
        y = self.dropout(self.embed(tgt_in))  # (N, L, D)
        self_weights, cross_weights = [], []
        for layer in self.decoder_layers:
            y, sw, cw = layer(y, memory, position_bias=bias, memory_key_padding_mask=real)
            self_weights.append(sw)
            cross_weights.append(cw)
        y = self.dropout(self.decoder_norm(y))  # (N, L, D)
        return self.lm_head(y), tuple(self_weights), tuple(cross_weights)  # (N, L, V)

    def forward(
        self, src_ids: torch.Tensor, tgt_in: torch.Tensor, *, need_weights: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, T5Attentions]:
        """Teacher-forced pass: encode ``src_ids``, decode ``tgt_in``.

        Args:
            src_ids: ``(N, S)`` source ids, padded with ``config.pad_id``.
            tgt_in: ``(N, L)`` decoder inputs: the targets shifted right (:func:`shift_right`).
            need_weights: also return every attention map.

        Returns:
            logits ``(N, L, V)``; with ``need_weights``, ``(logits, T5Attentions)``.
        """
        memory, enc_w = self.encode(src_ids)
        logits, self_w, cross_w = self.decode(tgt_in, memory, src_ids)
        if need_weights:
            return logits, T5Attentions(enc_w, self_w, cross_w)
        return logits

    @torch.no_grad()
    def generate(self, src_ids: torch.Tensor, max_len: int = 16) -> Generation:
        """Greedy decoding: at each step feed back the most likely token, until every sequence has
        produced ``eos`` or ``max_len`` tokens.

        Each step reruns the decoder on everything generated so far (no cache: slower, simpler)
        and keeps the cross-attention row of the newest position.

        Args:
            src_ids: ``(N, S)`` source ids.
            max_len: the most tokens to generate per sequence.

        Returns:
            A :class:`Generation`: ``ids`` ``(N, T)`` (eos included, then pad) and
            ``cross_attention`` ``(layers, N, H, T, S)``, where ``[l, n, h, t]`` is head ``h`` of
            layer ``l`` deciding token ``t`` of sequence ``n`` (zeros after that sequence's eos).
        """
        _check_int("max_len", max_len)
        was_training = self.training
        self.eval()
        c = self.config
        memory, _ = self.encode(src_ids)  # (N, S, D)
        N = src_ids.size(0)
        tgt_in = torch.full((N, 1), c.start_id, dtype=torch.long, device=src_ids.device)
        done = torch.zeros(N, dtype=torch.bool, device=src_ids.device)
        steps, rows = [], []
        for _ in range(max_len):
            logits, _, cross = self.decode(tgt_in, memory, src_ids)  # (N, t, V)
            token = logits[:, -1].argmax(dim=-1)  # (N,)
            token = token.masked_fill(done, c.pad_id)  # finished sequences only pad
            steps.append(token)
            row = torch.stack([w[:, :, -1] for w in cross])  # (layers, N, H, S)
            rows.append(row.masked_fill(done[None, :, None, None], 0.0))  # zeros after eos
            done = done | (token == c.eos_id)
            if bool(done.all()):
                break
            tgt_in = torch.cat([tgt_in, token[:, None]], dim=1)  # (N, t + 1)
        self.train(was_training)
        ids = torch.stack(steps, dim=1)  # (N, T)
        return Generation(ids, torch.stack(rows, dim=3))  # cross: (layers, N, H, T, S)


# ------------------------------------------------------------------------------------------------
# Training
# ------------------------------------------------------------------------------------------------


def shift_right(tgt_ids: torch.Tensor, start_id: int) -> torch.Tensor:
    """Teacher forcing's decoder input: ``start_id`` followed by the targets minus the last one.

    At position ``t`` the decoder sees target tokens ``0 .. t - 1`` and must predict token ``t``.

    Args:
        tgt_ids: ``(N, L)`` target ids (ending with eos, padded after it).
        start_id: the id every decoder input starts with.

    Returns:
        ``(N, L)``: ``[start_id, tgt_ids[:, 0], ..., tgt_ids[:, L - 2]]``.
    """
    if not isinstance(tgt_ids, torch.Tensor) or tgt_ids.dim() != 2 or tgt_ids.is_floating_point():
        raise ValueError(
            f"tgt_ids must be an integer tensor (N, L), got "
            f"{getattr(tgt_ids, 'dtype', type(tgt_ids).__name__)} of shape "
            f"{tuple(getattr(tgt_ids, 'shape', ()))}"
        )
    start = torch.full_like(tgt_ids[:, :1], start_id)  # (N, 1)
    return torch.cat([start, tgt_ids[:, :-1]], dim=1)  # (N, L)


def train_t5(
    model: T5Model,
    src_ids: torch.Tensor,
    tgt_ids: torch.Tensor,
    *,
    steps: int,
    batch_size: int = 64,
    lr: float = 3e-3,
    warmup: int = 50,
    seed: int = 0,
) -> list[float]:
    """Train with teacher forcing and Adam: a bounded number of steps, the learning rate warmed
    up linearly for ``warmup`` steps, then decayed linearly to 0.

    Batches are drawn with a private CPU generator seeded with ``seed``, so the same call draws
    the same batches on every machine.

    Args:
        model: the model, on the device where it should train (the data is moved there).
        src_ids: ``(M, S)`` all training sources, padded with the model's pad id.
        tgt_ids: ``(M, L)`` all training targets, each ending with eos, padded after it.
        steps: number of optimiser steps.
        batch_size: pairs per step.
        lr: peak learning rate.
        warmup: steps of linear warm-up.
        seed: seeds the batch order.

    Returns:
        The training loss (cross-entropy per target token, padding ignored) of every step.
    """
    _check_int("steps", steps)
    _check_int("batch_size", batch_size)
    _check_int("warmup", warmup, 0)
    if src_ids.dim() != 2 or tgt_ids.dim() != 2 or src_ids.size(0) != tgt_ids.size(0):
        raise ValueError(
            f"src_ids (M, S) and tgt_ids (M, L) must be 2-D with the same M, got "
            f"{tuple(src_ids.shape)} and {tuple(tgt_ids.shape)}"
        )
    c = model.config
    dev = next(model.parameters()).device
    src_ids, tgt_ids = src_ids.to(dev), tgt_ids.to(dev)
    tgt_in = shift_right(tgt_ids, c.start_id)  # (M, L)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, fused=True)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda s: min((s + 1) / max(warmup, 1), max(0.0, (steps - s) / max(steps - warmup, 1))),
    )
    g = torch.Generator().manual_seed(seed)
    model.train()
    losses = []
    for _ in range(steps):
        idx = torch.randint(src_ids.size(0), (batch_size,), generator=g).to(dev)  # (N,)
        logits = model(src_ids[idx], tgt_in[idx])  # (N, L, V)
        loss = F.cross_entropy(logits.transpose(1, 2), tgt_ids[idx], ignore_index=c.pad_id)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        losses.append(loss.item())
    model.eval()
    return losses
