"""A BERT encoder in the course's own code, the architecture all-MiniLM-L6-v2 runs in (the BERT
chapter).

BERT is an embedding layer followed by a stack of *post-norm* Transformer encoder layers, exactly
:class:`attnlib.TransformerEncoderLayer` with GELU and LayerNorm epsilon ``1e-12``. Here that stack
is built from attnlib's classes (:class:`BertEncoder`, sized by a :class:`BertConfig`);
:func:`encode`, :func:`mean_pool` and :func:`sentence_embeddings` turn text into its input and its
output into sentence vectors.

Reading all-MiniLM-L6-v2's checkpoint into it is :mod:`attnlib.weights.minilm`'s job
(:func:`attnlib.weights.load_minilm`).

Shape legend (see book/notation.md): N batch, L length, H heads, D model size.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from ..layers import TransformerEncoderLayer

__all__ = [
    "BertConfig",
    "BertEmbeddings",
    "BertEncoder",
    "BertOutput",
    "encode",
    "mean_pool",
    "sentence_embeddings",
]


@dataclass(frozen=True)
class BertConfig:
    """The sizes of a BERT encoder (defaults: all-MiniLM-L6-v2's).

    :func:`attnlib.weights.minilm.config_from_checkpoint` fills it from a checkpoint's
    ``config.json``, whose names (``hidden_size``, ``num_attention_heads`` ...) differ.
    """

    vocab_size: int = 30522  # WordPiece tokens
    d_model: int = 384  # D
    num_layers: int = 6
    num_heads: int = 12  # H; E = D / H = 32
    dim_feedforward: int = 1536  # F
    context_length: int = 512  # the learned position table's length
    type_vocab_size: int = 2  # segment types: sentence A and sentence B
    layer_norm_eps: float = 1e-12

@dataclass
class BertOutput:
    """What :class:`BertEncoder` returns.

    Attributes:
        last_hidden_state: ``(N, L, D)``, the last layer's output.
        hidden_states: ``1 + num_layers`` tensors ``(N, L, D)``: the embeddings, then each layer's
            output.
        attentions: ``num_layers`` tensors ``(N, H, L, L)``, each layer's attention weights per
            head (empty when the forward pass was called with ``need_weights=False``).
        pooler_output: ``(N, D)``, ``tanh(W h_[CLS] + b)``: BERT's pooled sentence vector
            (sentence-transformers does not use it; it mean-pools instead).
    """

    last_hidden_state: torch.Tensor
    hidden_states: tuple[torch.Tensor, ...]
    attentions: tuple[torch.Tensor, ...]
    pooler_output: torch.Tensor


class BertEmbeddings(nn.Module):
    """Token ids -> vectors: word + learned position + token type (segment), then LayerNorm.

    Args:
        config: the sizes (``vocab_size``, ``d_model``, ``context_length``, ``type_vocab_size``,
            ``layer_norm_eps``).
    """

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        c = config
        self.word = nn.Embedding(c.vocab_size, c.d_model)
        self.position = nn.Embedding(c.context_length, c.d_model)
        self.token_type = nn.Embedding(c.type_vocab_size, c.d_model)
        self.norm = nn.LayerNorm(c.d_model, eps=c.layer_norm_eps)
        # The checkpoint stores the position ids 0..511; they are loaded and used like BERT does.
        self.register_buffer("position_ids", torch.arange(c.context_length)[None], persistent=True)

    def forward(
        self, input_ids: torch.Tensor, token_type_ids: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Args: ``input_ids`` ``(N, L)`` long; ``token_type_ids`` ``(N, L)`` (default all 0).

        Returns: ``(N, L, D)``.
        """
        L = input_ids.size(1)
        if L > self.position_ids.size(1):
            raise ValueError(
                f"the input has {L} tokens but the model knows only {self.position_ids.size(1)} "
                "positions; shorten the text"
            )
        positions = self.position_ids[:, :L]  # (1, L)
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)  # (N, L): every token in sentence A
        x = self.word(input_ids) + self.position(positions) + self.token_type(token_type_ids)
        return self.norm(x)  # (N, L, D)


class BertPooler(nn.Module):
    """``tanh(W h_[CLS] + b)``: the pooled vector BERT's next-sentence task was trained on."""

    def __init__(self, d_model: int) -> None:
        super().__init__()
        self.dense = nn.Linear(d_model, d_model)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.dense(hidden[:, 0]))  # (N, D)


class BertEncoder(nn.Module):
    """A BERT encoder: embeddings, then ``num_layers`` post-norm encoder layers.

    Every layer is an :class:`attnlib.TransformerEncoderLayer` with GELU and the config's
    LayerNorm epsilon: BERT's layer *is* the original Transformer's encoder layer.

    Args:
        config: the sizes (see :class:`BertConfig`).

    See the BERT chapter, "BERT: attention in both directions".
    """

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        if not isinstance(config, BertConfig):
            raise TypeError(
                f"BertEncoder: config must be a BertConfig, got {type(config).__name__}"
            )
        self.config = c = config
        self.embeddings = BertEmbeddings(c)
        self.layers = nn.ModuleList(
            TransformerEncoderLayer(
                c.d_model, c.num_heads, c.dim_feedforward, dropout=0.0, activation="gelu",
                layer_norm_eps=c.layer_norm_eps,
            )
            for _ in range(c.num_layers)
        )
        self.pooler = BertPooler(c.d_model)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        *,
        is_causal: bool = False,
        need_weights: bool = True,
    ) -> BertOutput:
        """Encode a batch of token ids.

        Args:
            input_ids: ``(N, L)`` long, WordPiece ids (from :func:`encode`).
            attention_mask: ``(N, L)``, True (or 1) for a real token, False (0) for padding.
                Padding is hidden as a *key*; padded positions still get (meaningless) outputs.
            token_type_ids: ``(N, L)`` segment ids (default all 0).
            is_causal: forbid every token to look at later ones, as a GPT would (BERT never
                does; the BERT chapter uses it for contrast).
            need_weights: return every layer's attention weights in ``.attentions``.

        Returns:
            A :class:`BertOutput` with ``last_hidden_state`` ``(N, L, D)``, ``hidden_states``
            (embeddings and each layer), ``attentions`` (each ``(N, H, L, L)``) and
            ``pooler_output`` ``(N, D)``.
        """
        if input_ids.dim() != 2 or input_ids.dtype != torch.long:
            raise ValueError(
                f"input_ids must be a (N, L) tensor of token ids (torch.long), got shape "
                f"{tuple(input_ids.shape)} and dtype {input_ids.dtype}"
            )
        if attention_mask is not None:
            if attention_mask.shape != input_ids.shape:
                raise ValueError(
                    f"attention_mask must have the shape of input_ids {tuple(input_ids.shape)}, "
                    f"got {tuple(attention_mask.shape)}"
                )
            attention_mask = attention_mask.bool()  # (N, L), True = a real token
        x = self.embeddings(input_ids, token_type_ids)  # (N, L, D)
        hidden, attentions = [x], []
        for layer in self.layers:
            x, weights = layer(
                x, src_token_mask=attention_mask, is_causal=is_causal, need_weights=True
            )  # (N, L, D), (N, H, L, L)
            hidden.append(x)
            if need_weights:
                attentions.append(weights)
        return BertOutput(x, tuple(hidden), tuple(attentions), self.pooler(x))

    @property
    def num_parameters(self) -> int:
        """How many numbers the model holds in its parameters (buffers not counted)."""
        return sum(p.numel() for p in self.parameters())


def encode(
    tokenizer, texts: str | Sequence[str], *, device: torch.device | str | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Tokenise texts into one padded batch.

    Each text becomes ``[CLS] word pieces [SEP]``; shorter texts are padded on the right with
    ``[PAD]`` (id 0) to the longest.

    Args:
        tokenizer: the tokenizer from :func:`attnlib.weights.load_minilm`.
        texts: one text or a list of N texts.
        device: where to put the tensors (default: the CPU).

    Returns:
        ``(input_ids, attention_mask)``: ``(N, L)`` long and ``(N, L)`` bool, True = a real token.
    """
    if isinstance(texts, str):
        texts = [texts]
    texts = list(texts)
    if not texts or not all(isinstance(t, str) for t in texts):
        raise ValueError("encode: texts must be a string or a non-empty list of strings")
    encodings = tokenizer.encode_batch(texts)
    L = max(len(e.ids) for e in encodings)
    pad_id = tokenizer.token_to_id("[PAD]") or 0
    input_ids = torch.full((len(texts), L), pad_id, dtype=torch.long)  # (N, L)
    attention_mask = torch.zeros(len(texts), L, dtype=torch.bool)  # (N, L)
    for n, e in enumerate(encodings):
        input_ids[n, : len(e.ids)] = torch.tensor(e.ids)
        attention_mask[n, : len(e.ids)] = True
    if device is not None:
        input_ids, attention_mask = input_ids.to(device), attention_mask.to(device)
    return input_ids, attention_mask


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Average the vectors of the real tokens, ignoring padding (sentence-transformers' pooling).

    Args:
        hidden: ``(N, L, D)``.
        attention_mask: ``(N, L)``, True = a real token.

    Returns:
        ``(N, D)``.
    """
    m = attention_mask.to(hidden.dtype)[..., None]  # (N, L, 1)
    return (hidden * m).sum(1) / m.sum(1).clamp(min=1.0)  # (N, D)


@torch.no_grad()
def sentence_embeddings(model: BertEncoder, tokenizer, texts: str | Sequence[str]) -> torch.Tensor:
    """all-MiniLM-L6-v2's sentence vectors: mean-pooled last hidden states, scaled to length 1.

    Returns:
        ``(N, D)`` unit vectors, on the model's device; their dot products are cosine similarities.
    """
    dev = next(model.parameters()).device
    ids, mask = encode(tokenizer, texts, device=dev)
    out = model(ids, mask, need_weights=False)
    return torch.nn.functional.normalize(mean_pool(out.last_hidden_state, mask), dim=-1)  # (N, D)
