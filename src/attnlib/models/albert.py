"""ALBERT's two ideas on a small encoder, measured against a BERT of the same shape (BERT chapter).

ALBERT (Lan et al., 2020) keeps BERT's architecture and changes where the parameters live:

* **factorised embeddings**: the ``vocab_size x D`` embedding table becomes a
  ``vocab_size x embed_size`` table followed by an ``embed_size x D`` projection, with
  ``embed_size`` much smaller than ``D``;
* **cross-layer sharing**: all ``num_layers`` layers use one layer's weights.

Both cut the number of *parameters*. Neither removes any arithmetic: every token still passes
through ``num_layers`` layers of width ``D`` (sharing reuses the weights, it does not skip the
work), and the projection even adds a little. :func:`flops_per_token` counts it analytically and
:func:`measured_flops` counts what PyTorch actually multiplies.

Shape legend (see book/notation.md): N batch, L length, D model size, F feed-forward size; the
embedding width is written ``embed_size`` and the vocabulary ``vocab_size``.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, replace

import torch
from torch import nn

from ..layers import TransformerEncoderLayer

__all__ = [
    "EncoderConfig",
    "SmallEncoder",
    "bert_config",
    "albert_config",
    "count_parameters",
    "parameters_analytic",
    "flops_per_token",
    "measured_flops",
    "time_forward",
]


@dataclass(frozen=True)
class EncoderConfig:
    """The shape of a BERT- or ALBERT-style encoder."""

    vocab_size: int = 30_000  # BERT's WordPiece vocabulary is about this size
    d_model: int = 256  # D
    num_layers: int = 6
    num_heads: int = 4
    dim_feedforward: int = 1024  # F = 4 D, as in BERT
    context_length: int = 128  # the learned position table's length
    embed_size: int | None = None  # None means embed_size = D and no projection (BERT)
    share_layers: bool = False  # True: one layer's weights used num_layers times (ALBERT)

    @property
    def embedding_dim(self) -> int:
        """The width of the embedding tables: ``embed_size``, or D when it is None."""
        return self.d_model if self.embed_size is None else self.embed_size

    @property
    def factorised(self) -> bool:
        """Whether a projection maps the embeddings up to D (ALBERT)."""
        return self.embedding_dim != self.d_model


def bert_config(**overrides) -> EncoderConfig:
    """A small BERT: embed_size = D, every layer its own weights."""
    return EncoderConfig(**overrides)


def albert_config(embed_size: int = 64, **overrides) -> EncoderConfig:
    """The same shape as :func:`bert_config`, with factorised embeddings and shared layers."""
    return replace(EncoderConfig(**overrides), embed_size=embed_size, share_layers=True)


class SmallEncoder(nn.Module):
    """Embeddings (optionally factorised) and a stack of post-norm encoder layers (optionally
    shared). Dropout is 0, so outputs are deterministic.

    Args:
        config: an :class:`EncoderConfig`.

    See the BERT chapter, "ALBERT: fewer parameters, the same work".
    """

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        self.config = config
        D, width = config.d_model, config.embedding_dim
        self.token = nn.Embedding(config.vocab_size, width)  # vocab_size x embed_size numbers
        self.position = nn.Embedding(config.context_length, width)
        self.norm = nn.LayerNorm(width)
        self.project = nn.Linear(width, D) if config.factorised else nn.Identity()  # up to D

        def layer() -> TransformerEncoderLayer:
            return TransformerEncoderLayer(
                D, config.num_heads, config.dim_feedforward, dropout=0.0, activation="gelu"
            )

        if config.share_layers:
            shared = layer()
            # The same module num_layers times: parameters() counts its weights once.
            self.layers = nn.ModuleList([shared] * config.num_layers)
        else:
            self.layers = nn.ModuleList(layer() for _ in range(config.num_layers))

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        """``input_ids`` ``(N, L)`` long -> hidden states ``(N, L, D)``."""
        L = input_ids.size(1)
        positions = torch.arange(L, device=input_ids.device)  # (L,)
        x = self.norm(self.token(input_ids) + self.position(positions))  # (N, L, embed_size)
        x = self.project(x)  # (N, L, D)
        for layer in self.layers:  # with sharing, the same weights every time: the work repeats
            x = layer(x)  # (N, L, D)
        return x


def count_parameters(model: SmallEncoder) -> dict[str, int]:
    """Parameters actually held, by part: ``embeddings``, ``layers`` and ``total``.

    Shared weights are counted once, as :meth:`torch.nn.Module.parameters` yields them once.
    """
    layers = sum(p.numel() for p in model.layers.parameters())
    total = sum(p.numel() for p in model.parameters())
    return {"embeddings": total - layers, "layers": layers, "total": total}


def _layer_parameters(D: int, F: int) -> int:
    attention = 4 * (D * D + D)  # q, k, v and output projections with biases
    mlp = D * F + F + F * D + D
    norms = 2 * 2 * D  # two LayerNorms, each a gain and a bias
    return attention + mlp + norms


def parameters_analytic(config: EncoderConfig) -> dict[str, int]:
    """The parameter count from the shape alone (must equal :func:`count_parameters`).

    With ``e = embed_size``: embeddings ``vocab_size e + context_length e + 2 e`` (+ ``e D + D``
    for the projection when factorised); layers ``4 (D^2 + D) + 2 D F + F + D + 4 D`` each,
    times 1 when shared.
    """
    D, e, F = config.d_model, config.embedding_dim, config.dim_feedforward
    embeddings = config.vocab_size * e + config.context_length * e + 2 * e
    if config.factorised:
        embeddings += e * D + D
    distinct = 1 if config.share_layers else config.num_layers
    layers = distinct * _layer_parameters(D, F)
    return {"embeddings": embeddings, "layers": layers, "total": embeddings + layers}


def flops_per_token(config: EncoderConfig, seq_len: int) -> dict[str, int]:
    """Floating-point operations per token of one forward pass (a multiply-add counts 2).

    Counts the matrix products, which dominate: the embedding projection ``2 embed_size D`` (ALBERT
    only; a table lookup costs no arithmetic), and in each of the ``num_layers`` layers the four
    projections ``8 D^2``, the scores and the weighted sum ``4 L D``, and the MLP ``4 D F``.
    Softmax, LayerNorm, GELU and the residual additions are a few operations per number and are left
    out. Sharing weights changes nothing here: the shared layer still runs ``num_layers`` times.
    """
    D, F, L = config.d_model, config.dim_feedforward, seq_len
    embed = 2 * config.embedding_dim * D if config.factorised else 0
    per_layer = 8 * D * D + 4 * L * D + 4 * D * F
    layers = config.num_layers * per_layer
    return {"embeddings": embed, "layers": layers, "total": embed + layers}


def measured_flops(model: nn.Module, input_ids: torch.Tensor) -> int:
    """The matrix-product FLOPs PyTorch performs in ``model(input_ids)``, per token.

    Counted by :class:`torch.utils.flop_counter.FlopCounterMode`, which records every matmul,
    linear layer and batched product as it runs.
    """
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(input_ids)
    return counter.get_total_flops() // input_ids.numel()


def time_forward(model: nn.Module, input_ids: torch.Tensor, *, repeats: int = 5) -> float:
    """Median wall-clock seconds of ``model(input_ids)`` over ``repeats`` runs (after a warm-up).

    Timings depend on the machine and on whatever else runs on it: print them, never compare
    them across machines.
    """
    times = []
    with torch.no_grad():
        model(input_ids)  # warm-up
        for _ in range(repeats):
            if input_ids.is_cuda:
                torch.cuda.synchronize()
            start = time.perf_counter()
            model(input_ids)
            if input_ids.is_cuda:
                torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
    return statistics.median(times)
