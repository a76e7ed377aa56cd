"""A tiny T5-style encoder–decoder, small enough to read and to train in seconds (the T5 chapter).

T5 (Raffel et al., 2020) casts every task as *text to text*: a string goes into an encoder, a
string comes out of a decoder. Its architecture is the original encoder–decoder Transformer with a
few changes, all of them here:

* **no absolute positions**: instead, every attention layer adds a learned **relative position
  bias** to its scores, one scalar per head for each *bucket* of distances ``j - i`` between key
  ``j`` and query ``i`` (:func:`attnlib.positional.relative_position_bucket`,
  :class:`attnlib.positional.RelativePositionBias`). The
  encoder's buckets are bidirectional (left and right differ), the decoder's unidirectional (it
  only ever looks left). Each stack computes its bias once and every layer of the stack reuses it;
  cross-attention gets none;
* **no** :math:`1/\\sqrt{E}` **in the scores**: T5 folds that factor into the initialisation of
  the query projection (:meth:`T5Model.reset_parameters`), so attention runs with ``scale=1.0``;
* **RMSNorm before each sublayer** (pre-norm): rescale by the root mean square, no centring, no
  bias (:class:`attnlib.layers.RMSNorm`); no biases in any linear layer.

Attention itself is :class:`attnlib.MultiHeadAttention`, so masks follow attnlib's polarity
(boolean True = may attend) and the bias travels as a floating ``attn_mask``: attnlib turns the
boolean masks into ``0`` / ``-inf`` and adds everything up, and a query with no allowed key gets
zero weights.

Shape legend: N batch, H heads, L target (decoder) length, S source (encoder) length, E size per
head, D model size, F feed-forward width.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from .._checks import positive_int, probability
from ..layers import RMSNorm
from ..multihead import MultiHeadAttention
from ..positional import RelativePositionBias, _check_buckets

__all__ = [
    "T5Config",
    "T5EncoderLayer",
    "T5DecoderLayer",
    "T5Model",
    "T5Attentions",
    "Generation",
    "shift_right",
    "train_t5",
]


# ------------------------------------------------------------------------------------------------
# Layers
# ------------------------------------------------------------------------------------------------


class FeedForward(nn.Module):
    """T5's MLP: ``relu(x W_i) W_o``, no biases.

    Args:
        d_model: D.
        dim_feedforward: F, the hidden width.
        dropout: on the hidden layer (training only).
    """

    def __init__(self, d_model: int, dim_feedforward: int, dropout: float) -> None:
        super().__init__()
        self.wi = nn.Linear(d_model, dim_feedforward, bias=False)  # D -> F
        self.wo = nn.Linear(dim_feedforward, d_model, bias=False)  # F -> D
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.wo(self.dropout(F.relu(self.wi(x))))  # (N, L, D)


class _T5Layer(nn.Module):
    """What every T5 layer holds: an RMSNorm and self-attention, an RMSNorm and the MLP; a decoder
    layer (``cross_attention = True``) also an RMSNorm and cross-attention to the encoder.

    Attention has no biases and runs with ``scale=1.0`` (see :meth:`T5Model.reset_parameters`).

    Args:
        d_model: D.
        num_heads: H.
        dim_feedforward: F, the hidden width of the MLP.
        dropout: dropout on residual branches and attention weights (training only).
        layer_norm_eps: RMSNorm's epsilon.
    """

    cross_attention = False

    def __init__(
        self,
        d_model: int,
        num_heads: int,
        dim_feedforward: int,
        dropout: float = 0.0,
        layer_norm_eps: float = 1e-6,
    ) -> None:
        super().__init__()
        self.norm1 = RMSNorm(d_model, layer_norm_eps)
        self.self_attn = MultiHeadAttention(d_model, num_heads, dropout=dropout, bias=False)
        self.norm2 = RMSNorm(d_model, layer_norm_eps)
        self.ff = FeedForward(d_model, dim_feedforward, dropout)
        self.dropout = nn.Dropout(dropout)
        if self.cross_attention:
            self.cross_attn = MultiHeadAttention(d_model, num_heads, dropout=dropout, bias=False)
            self.norm3 = RMSNorm(d_model, layer_norm_eps)


class T5EncoderLayer(_T5Layer):
    """Pre-norm encoder layer: bidirectional self-attention with the position bias, then the MLP.

    Arguments as :class:`_T5Layer`: ``(d_model, num_heads, dim_feedforward, dropout,
    layer_norm_eps)``.
    """

    def forward(
        self, x: torch.Tensor, *, position_bias: torch.Tensor, token_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Args: x ``(N, S, D)``; position_bias ``(1, H, S, S)``; token_mask ``(N, S)``
        (True = real token). Returns ``(x (N, S, D), weights (N, H, S, S))``."""
        h = self.norm1(x)  # (N, S, D)
        h, weights = self.self_attn(
            h, h, h, attend_mask=position_bias, token_mask=token_mask, scale=1.0
        )  # (N, S, D), (N, H, S, S)
        x = x + self.dropout(h)
        x = x + self.dropout(self.ff(self.norm2(x)))  # (N, S, D)
        return x, weights


class T5DecoderLayer(_T5Layer):
    """Pre-norm decoder layer: causal self-attention with the position bias, cross-attention to
    the encoder's output (no position bias), then the MLP.

    Arguments as :class:`T5EncoderLayer`; the decoder adds ``cross_attn`` (read after ``norm2``)
    and ``norm3`` (before the MLP).
    """

    cross_attention = True

    def forward(
        self,
        y: torch.Tensor,
        memory: torch.Tensor,
        *,
        position_bias: torch.Tensor,
        memory_token_mask: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Args: y ``(N, L, D)``; memory ``(N, S, D)``; position_bias ``(1, H, L, L)``;
        memory_token_mask ``(N, S)`` (True = a real source token).
        Returns ``(y (N, L, D), self_weights (N, H, L, L), cross_weights (N, H, L, S))``."""
        h = self.norm1(y)  # (N, L, D)
        h, self_w = self.self_attn(
            h, h, h, attend_mask=position_bias, is_causal=True, scale=1.0
        )  # (N, L, D), (N, H, L, L)
        y = y + self.dropout(h)
        h = self.norm2(y)  # (N, L, D)
        h, cross_w = self.cross_attn(
            h, memory, memory, token_mask=memory_token_mask, scale=1.0
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
    dim_feedforward: int = 256  # F
    num_encoder_layers: int = 2
    num_decoder_layers: int = 2
    num_buckets: int = 32  # T5's value
    max_distance: int = 128  # T5's value; our sequences are far shorter
    dropout: float = 0.0  # 0.0 keeps notebook outputs deterministic
    layer_norm_eps: float = 1e-6  # RMSNorm's epsilon, T5's value
    pad_id: int = 0
    start_id: int = 1  # first decoder input; T5 itself reuses its pad id for this
    eos_id: int = 2

    def __post_init__(self) -> None:
        for name in ("vocab_size", "d_model", "num_heads", "dim_feedforward",
                     "num_encoder_layers", "num_decoder_layers"):
            positive_int(getattr(self, name), name, "T5Config")
        if self.d_model % self.num_heads:
            raise ValueError(
                f"d_model ({self.d_model}) must be divisible by num_heads ({self.num_heads})"
            )
        _check_buckets(self.num_buckets, self.max_distance, bidirectional=True)
        probability(self.dropout, "dropout", "T5Config")
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

    ids: torch.Tensor  # (N, L): the L generated ids, eos included, pad after it
    cross_attention: torch.Tensor  # (layers, N, H, L, S): row t = the weights of step t


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

    See the T5 chapter, "T5: an encoder–decoder with relative positions".
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
            T5EncoderLayer(c.d_model, c.num_heads, c.dim_feedforward, c.dropout, c.layer_norm_eps)
            for _ in range(c.num_encoder_layers)
        )
        self.encoder_norm = RMSNorm(c.d_model, c.layer_norm_eps)
        self.decoder_layers = nn.ModuleList(
            T5DecoderLayer(c.d_model, c.num_heads, c.dim_feedforward, c.dropout, c.layer_norm_eps)
            for _ in range(c.num_decoder_layers)
        )
        self.decoder_norm = RMSNorm(c.d_model, c.layer_norm_eps)
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
            nn.init.normal_(layer.ff.wo.weight, std=c.dim_feedforward**-0.5)
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
            x, w = layer(x, position_bias=bias, token_mask=real)  # (N, S, D)
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
            ``(logits, self_weights, cross_weights)``: logits ``(N, L, vocab_size)`` for the next
            token at each position; one ``(N, H, L, L)`` and one ``(N, H, L, S)`` map per decoder
            layer.
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
            y, sw, cw = layer(y, memory, position_bias=bias, memory_token_mask=real)
            self_weights.append(sw)
            cross_weights.append(cw)
        y = self.dropout(self.decoder_norm(y))  # (N, L, D)
        return self.lm_head(y), tuple(self_weights), tuple(cross_weights)  # (N, L, vocab_size)

    def forward(
        self, src_ids: torch.Tensor, tgt_in: torch.Tensor, *, need_weights: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, T5Attentions]:
        """Teacher-forced pass: encode ``src_ids``, decode ``tgt_in``.

        Args:
            src_ids: ``(N, S)`` source ids, padded with ``config.pad_id``.
            tgt_in: ``(N, L)`` decoder inputs: the targets shifted right (:func:`shift_right`).
            need_weights: also return every attention map.

        Returns:
            logits ``(N, L, vocab_size)``; with ``need_weights``, ``(logits, T5Attentions)``.
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
            A :class:`Generation`: ``ids`` ``(N, L)`` (eos included, then pad) and
            ``cross_attention`` ``(layers, N, H, L, S)``, where ``[l, n, h, t]`` is head ``h`` of
            layer ``l`` deciding token ``t`` of sequence ``n`` (zeros after that sequence's eos).
        """
        positive_int(max_len, "max_len", "T5Model.generate")
        was_training = self.training
        self.eval()
        c = self.config
        memory, _ = self.encode(src_ids)  # (N, S, D)
        N = src_ids.size(0)
        tgt_in = torch.full((N, 1), c.start_id, dtype=torch.long, device=src_ids.device)
        done = torch.zeros(N, dtype=torch.bool, device=src_ids.device)
        steps, rows = [], []
        for _ in range(max_len):
            logits, _, cross = self.decode(tgt_in, memory, src_ids)  # (N, t, vocab_size)
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
        ids = torch.stack(steps, dim=1)  # (N, L)
        return Generation(ids, torch.stack(rows, dim=3))  # cross: (layers, N, H, L, S)


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
    positive_int(steps, "steps", "train_t5")
    positive_int(batch_size, "batch_size", "train_t5")
    positive_int(warmup, "warmup", "train_t5", minimum=0)
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
        logits = model(src_ids[idx], tgt_in[idx])  # (N, L, vocab_size)
        loss = F.cross_entropy(logits.transpose(1, 2), tgt_ids[idx], ignore_index=c.pad_id)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        losses.append(loss.item())
    model.eval()
    return losses
