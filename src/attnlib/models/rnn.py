r"""Recurrent encoder-decoders, with and without attention (the chapter on attention in RNN
encoder–decoders).

One encoder and three decoders, small enough to train in seconds on a CPU:

* :class:`Encoder`: characters -> embeddings -> a bidirectional GRU (one GRU per direction). It
  returns one vector per source position (the *memory*, ``(N, S, D)``) and one summary of the
  whole source (``(N, D)``).
* :class:`BottleneckDecoder`: no attention. Every step sees the same summary: the whole source
  squeezed into ``D`` numbers (Cho et al., 2014; Sutskever et al., 2014).
* :class:`BahdanauDecoder`: before each step, the previous decoder state scores every memory
  vector with the additive score and the step reads their weighted average, the *context*
  (Bahdanau et al., 2015). The only change from the bottleneck: the context changes with the step.
* :class:`LuongDecoder`: the GRU steps first, then its new state scores the memory with a
  ``"dot"``, ``"general"`` or ``"concat"`` score; the context and the state make an *attentional
  state* that predicts the character and is fed to the next step (Luong et al., 2015).

:class:`EncoderDecoder` joins an encoder and a decoder; :func:`build` makes one by name;
:func:`train` trains with teacher forcing; :func:`greedy_decode` generates one character at a
time and returns the attention weights of every step; :func:`exact_match` scores whole outputs.
Source padding is masked with :func:`attnlib.masks.padding_mask` (True = a real character), so
padding gets exactly zero weight.

This attention is *cross-attention*: the queries come from the decoder, the keys and values from
the encoder. The self-attention chapter lets a sequence
attend to itself.

Shapes (see book/notation.md): N batch, S source length, L target (decoder) length, D model size
(encoder memory and decoder state); a vocabulary's size is written ``vocab_size``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from .._checks import positive_int
from ..masks import padding_mask
from ..scoring import SCORES, attend, make_score

__all__ = [
    "KINDS",
    "Encoder",
    "Decoder",
    "BottleneckDecoder",
    "BahdanauDecoder",
    "LuongDecoder",
    "EncoderDecoder",
    "build",
    "count_parameters",
    "Batch",
    "encode_pairs",
    "TrainResult",
    "train",
    "greedy_decode",
    "translate",
    "exact_match",
]

#: Model names :func:`build` knows: no attention, Bahdanau's, and Luong's three scores.
KINDS: tuple[str, ...] = ("none", "bahdanau", "luong-dot", "luong-general", "luong-concat")


class Encoder(nn.Module):
    """Embed the source characters and read them with a bidirectional GRU.

    Args:
        vocab_size: the number of source ids (id 0 is padding).
        embed_size: size of a character embedding.
        hidden_size: D, the size of each memory vector; each direction has ``D // 2`` units.

    Shapes:
        ``forward(src (N, S) long, lengths (N,) long) -> (memory (N, S, D), summary (N, D))``.
        ``memory[n, j]`` describes source position ``j`` in the context of the whole text (both
        directions); positions ``j >= lengths[n]`` are padding and hold zeros. ``summary`` joins
        the last state of the left-to-right GRU with the last state of the right-to-left one.

    Padding sits at the end of each row, and a GRU reading left to right never sees what comes
    later, so padding cannot change its states on the real characters. To read right to left, each
    text is reversed *within its own length* ("abc" + padding becomes "cba" + padding), read left
    to right by a second GRU, and its states are put back in order. (PyTorch's packed sequences do
    the same job; on small CPU models this is faster.)
    """

    def __init__(self, vocab_size: int, embed_size: int, hidden_size: int) -> None:
        super().__init__()
        if hidden_size % 2:
            raise ValueError(
                f"Encoder: hidden_size must be even (two directions), got {hidden_size}"
            )
        self.embed = nn.Embedding(vocab_size, embed_size, padding_idx=0)
        self.left_to_right = nn.GRU(embed_size, hidden_size // 2, batch_first=True)
        self.right_to_left = nn.GRU(embed_size, hidden_size // 2, batch_first=True)

    def forward(
        self, src: torch.Tensor, lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.embed(src)  # (N, S, embed)
        positions = torch.arange(src.size(1), device=src.device)[None, :]  # (1, S)
        real = positions < lengths[:, None]  # (N, S)
        flip = torch.where(real, lengths[:, None] - 1 - positions, positions)  # (N, S)
        forward, _ = self.left_to_right(x)  # (N, S, D/2)
        flipped = x.gather(1, flip[:, :, None].expand_as(x))  # (N, S, embed): each text reversed
        backward = self.right_to_left(flipped)[0]  # (N, S, D/2), in reversed order
        backward = backward.gather(1, flip[:, :, None].expand_as(backward))  # back in order
        memory = torch.cat([forward, backward], dim=-1) * real[:, :, None]  # (N, S, D)
        last = (lengths - 1)[:, None, None].expand(-1, 1, forward.size(-1))  # (N, 1, D/2)
        summary = torch.cat([forward.gather(1, last)[:, 0], backward[:, 0]], dim=-1)  # (N, D)
        return memory, summary


class Decoder(nn.Module):
    """Base class of the decoders: embeddings, an initial state made from the summary, an output
    layer.

    ``step(e_prev (N, embed), state, memory (N, S, D), prepared, mask (N, 1, S))`` advances one
    character: ``e_prev`` is the embedding of the previous character, and it returns
    ``(logits (N, vocab_size), new state, weights (N, S) or None)``. ``prepared`` is
    ``prepare(memory)``, the key-side work of the score, done once per sentence.
    """

    attends = True

    def __init__(self, vocab_size: int, embed_size: int, hidden_size: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, embed_size, padding_idx=0)
        self.init = nn.Linear(hidden_size, hidden_size)

    def start(self, memory: torch.Tensor, summary: torch.Tensor) -> dict:
        """The decoder's state before the first character."""
        return {"s": torch.tanh(self.init(summary))}  # s: (N, D)

    def step(self, e_prev, state, memory, prepared, mask):  # pragma: no cover - abstract
        raise NotImplementedError

    def prepare(self, memory: torch.Tensor) -> torch.Tensor | None:
        return None


class BottleneckDecoder(Decoder):
    """A GRU decoder without attention: every step reads the same summary vector ``c``.

    ``s_t = GRU([embed(y_{t-1}); c], s_{t-1})``, then ``logits_t = out([s_t; c])``. Everything
    the decoder knows about the source has passed through the ``D`` numbers of ``c``.
    """

    attends = False

    def __init__(self, vocab_size: int, embed_size: int, hidden_size: int) -> None:
        super().__init__(vocab_size, embed_size, hidden_size)
        self.cell = nn.GRUCell(embed_size + hidden_size, hidden_size)
        self.out = nn.Linear(2 * hidden_size, vocab_size)

    def start(self, memory: torch.Tensor, summary: torch.Tensor) -> dict:
        return {"s": torch.tanh(self.init(summary)), "c": summary}

    def step(self, e_prev, state, memory, prepared, mask):
        c = state["c"]  # (N, D): the same at every step
        s = self.cell(torch.cat([e_prev, c], dim=-1), state["s"])  # (N, D)
        logits = self.out(torch.cat([s, c], dim=-1))  # (N, vocab_size)
        return logits, {"s": s, "c": c}, None


class BahdanauDecoder(Decoder):
    r"""A GRU decoder with Bahdanau's additive attention: look, then step.

    At step t the previous state :math:`s_{t-1}` is the query; the memory vectors are keys and
    values; :math:`e_{tj} = v^\top \tanh(W_q s_{t-1} + W_k h_j)`, :math:`\alpha_t =
    \mathrm{softmax}(e_t)` over the real source positions, :math:`c_t = \sum_j \alpha_{tj} h_j`.
    Then ``s_t = GRU([embed(y_{t-1}); c_t], s_{t-1})`` and ``logits_t = out([s_t; c_t])``.
    """

    def __init__(
        self, vocab_size: int, embed_size: int, hidden_size: int, score_size: int | None = None
    ) -> None:
        super().__init__(vocab_size, embed_size, hidden_size)
        self.score = make_score("additive", hidden_size, hidden_size, score_size)
        self.cell = nn.GRUCell(embed_size + hidden_size, hidden_size)
        self.out = nn.Linear(2 * hidden_size, vocab_size)

    def prepare(self, memory: torch.Tensor) -> torch.Tensor:
        return self.score.prepare(memory)  # (N, S, h): W_k h_j, once per sentence

    def step(self, e_prev, state, memory, prepared, mask):
        query = state["s"][:, None, :]  # (N, 1, D): s_{t-1}
        scores = self.score.score(query, prepared)  # (N, 1, S)
        context, weights = attend(scores, memory, mask)  # (N, 1, D), (N, 1, S)
        c = context[:, 0]  # (N, D)
        s = self.cell(torch.cat([e_prev, c], dim=-1), state["s"])  # (N, D)
        logits = self.out(torch.cat([s, c], dim=-1))  # (N, vocab_size)
        return logits, {"s": s}, weights[:, 0]  # weights: (N, S)


class LuongDecoder(Decoder):
    r"""A GRU decoder with Luong's attention: step, then look.

    ``s_t = GRU([embed(y_{t-1}); \tilde h_{t-1}], s_{t-1})`` (feeding the previous attentional
    state back in); the new state :math:`s_t` scores the memory with ``score`` (``"dot"``,
    ``"general"`` or ``"concat"``); :math:`c_t` is the weighted average;
    :math:`\tilde h_t = \tanh(W_c [c_t; s_t])` and ``logits_t = out(\tilde h_t)``.
    """

    def __init__(
        self,
        vocab_size: int,
        embed_size: int,
        hidden_size: int,
        score: str = "general",
        score_size: int | None = None,
    ) -> None:
        super().__init__(vocab_size, embed_size, hidden_size)
        if score not in ("dot", "general", "concat"):
            raise ValueError(
                f"LuongDecoder: score must be 'dot', 'general' or 'concat', got {score!r}"
            )
        self.score = make_score(score, hidden_size, hidden_size, score_size)
        self.cell = nn.GRUCell(embed_size + hidden_size, hidden_size)
        self.combine = nn.Linear(2 * hidden_size, hidden_size)  # W_c
        self.out = nn.Linear(hidden_size, vocab_size)

    def start(self, memory: torch.Tensor, summary: torch.Tensor) -> dict:
        s = torch.tanh(self.init(summary))  # (N, D)
        return {"s": s, "h_tilde": torch.zeros_like(s)}

    def prepare(self, memory: torch.Tensor) -> torch.Tensor:
        return self.score.prepare(memory)  # (N, S, D or h)

    def step(self, e_prev, state, memory, prepared, mask):
        x = torch.cat([e_prev, state["h_tilde"]], dim=-1)  # (N, embed + D)
        s = self.cell(x, state["s"])  # (N, D): s_t
        scores = self.score.score(s[:, None, :], prepared)  # (N, 1, S)
        context, weights = attend(scores, memory, mask)  # (N, 1, D), (N, 1, S)
        h_tilde = torch.tanh(self.combine(torch.cat([context[:, 0], s], dim=-1)))  # (N, D)
        return self.out(h_tilde), {"s": s, "h_tilde": h_tilde}, weights[:, 0]


class EncoderDecoder(nn.Module):
    """An :class:`Encoder` and a decoder, trained with teacher forcing.

    Args:
        encoder: an :class:`Encoder`.
        decoder: a :class:`BottleneckDecoder`, :class:`BahdanauDecoder` or :class:`LuongDecoder`.
        bos_id: the id that starts every target (the first decoder input).
        eos_id: the id that ends every target.
    """

    def __init__(self, encoder: Encoder, decoder: Decoder, *, bos_id: int = 1, eos_id: int = 2):
        super().__init__()
        self.encoder, self.decoder = encoder, decoder
        self.bos_id, self.eos_id = bos_id, eos_id

    @property
    def attends(self) -> bool:
        """Whether the decoder attends to the memory (False for the bottleneck)."""
        return self.decoder.attends

    def encode(self, src: torch.Tensor, lengths: torch.Tensor):
        """Run the encoder; return ``(memory (N, S, D), summary (N, D), mask (N, 1, S))``."""
        _check_src(src, lengths)
        memory, summary = self.encoder(src, lengths)
        mask = padding_mask(lengths, src.size(1), device=src.device)[:, 0]  # (N, 1, S)
        return memory, summary, mask

    def forward(
        self, src: torch.Tensor, lengths: torch.Tensor, tgt_in: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Teacher forcing: step t reads the true previous character ``tgt_in[:, t]``.

        Args:
            src: ``(N, S)`` source ids, padded with 0.
            lengths: ``(N,)`` true source lengths.
            tgt_in: ``(N, L)`` decoder inputs: ``bos`` then the target without its last id.

        Returns:
            ``(logits (N, L, vocab_size), weights (N, L, S) or None)``: the weights of every step
            (None without attention).
        """
        memory, summary, mask = self.encode(src, lengths)
        state = self.decoder.start(memory, summary)
        prepared = self.decoder.prepare(memory)
        embedded = self.decoder.embed(tgt_in)  # (N, L, embed): every input at once
        logits, weights = [], []
        for t in range(tgt_in.size(1)):
            out, state, w = self.decoder.step(embedded[:, t], state, memory, prepared, mask)
            logits.append(out)
            weights.append(w)
        stacked = torch.stack(weights, dim=1) if self.attends else None  # (N, L, S)
        return torch.stack(logits, dim=1), stacked  # (N, L, vocab_size)


def _check_src(src, lengths) -> None:
    if not isinstance(src, torch.Tensor) or src.dim() != 2 or src.dtype != torch.long:
        what = getattr(src, "dtype", type(src).__name__)
        shape = tuple(getattr(src, "shape", ()))
        raise ValueError(f"src must be a long tensor (N, S) of ids, got {what} of shape {shape}")
    if not isinstance(lengths, torch.Tensor) or lengths.shape != (src.size(0),):
        raise ValueError(
            f"lengths must be a tensor (N,) = ({src.size(0)},) of source lengths, got shape "
            f"{tuple(getattr(lengths, 'shape', ()))}"
        )
    if lengths.numel() and (int(lengths.min()) < 1 or int(lengths.max()) > src.size(1)):
        raise ValueError(f"every length must be in [1, S={src.size(1)}], got {lengths.tolist()}")


def build(
    kind: str,
    src_vocab: int,
    tgt_vocab: int,
    *,
    embed_size: int = 32,
    hidden_size: int = 64,
    score_size: int | None = None,
    bos_id: int = 1,
    eos_id: int = 2,
) -> EncoderDecoder:
    """A fresh encoder-decoder called ``kind``, one of :data:`KINDS`.

    Args:
        kind: ``"none"`` (the bottleneck), ``"bahdanau"``, or ``"luong-dot"``,
            ``"luong-general"``, ``"luong-concat"``.
        src_vocab: number of source ids.
        tgt_vocab: number of target ids.
        embed_size: size of the character embeddings.
        hidden_size: D, the size of the memory vectors and of the decoder state.
        score_size: h, the hidden size of additive and concat scores (defaults to D).
        bos_id, eos_id: the target vocabulary's start and end ids.

    Seed with :func:`attnlib.seed` first: the initial weights come from PyTorch's generator.
    """
    src_vocab = positive_int(src_vocab, "src_vocab", "build")
    tgt_vocab = positive_int(tgt_vocab, "tgt_vocab", "build")
    positive_int(embed_size, "embed_size", "build")
    positive_int(hidden_size, "hidden_size", "build")
    if kind not in KINDS:
        raise ValueError(f"build: kind must be one of {KINDS}, got {kind!r}")
    encoder = Encoder(src_vocab, embed_size, hidden_size)
    if kind == "none":
        decoder: Decoder = BottleneckDecoder(tgt_vocab, embed_size, hidden_size)
    elif kind == "bahdanau":
        decoder = BahdanauDecoder(tgt_vocab, embed_size, hidden_size, score_size)
    else:
        score = kind.removeprefix("luong-")
        assert score in SCORES
        decoder = LuongDecoder(tgt_vocab, embed_size, hidden_size, score, score_size)
    return EncoderDecoder(encoder, decoder, bos_id=bos_id, eos_id=eos_id)


def count_parameters(model: nn.Module) -> int:
    """The number of trainable parameters of ``model``."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


@dataclass
class Batch:
    """Pairs as padded tensors: ``src (N, S)``, ``lengths (N,)``, ``tgt (N, L)`` (bos ... eos)."""

    src: torch.Tensor
    lengths: torch.Tensor
    tgt: torch.Tensor

    def __len__(self) -> int:
        return self.src.size(0)

    def to(self, device) -> Batch:
        return Batch(self.src.to(device), self.lengths.to(device), self.tgt.to(device))

    def select(self, idx: torch.Tensor) -> Batch:
        """The rows ``idx``, trimmed to their longest source and target."""
        lengths = self.lengths[idx]
        S = int(lengths.max())
        tgt = self.tgt[idx]
        L = int((tgt != 0).sum(dim=1).max())
        return Batch(self.src[idx, :S], lengths, tgt[:, :L])


def encode_pairs(pairs: Sequence[tuple[str, str]], src_vocab, tgt_vocab) -> Batch:
    """Encode ``(source, target)`` texts with two :class:`attnlib.data.dates.CharVocab`.

    The target gets ``bos`` and ``eos``; the source neither.
    """
    if not pairs:
        raise ValueError("encode_pairs: pairs is empty")
    src, lengths = src_vocab.encode([s for s, _ in pairs])
    tgt, _ = tgt_vocab.encode([t for _, t in pairs], bos=True, eos=True)
    return Batch(src, lengths, tgt)


@dataclass
class TrainResult:
    """What :func:`train` did: the loss of every step and the wall time it took."""

    losses: list[float] = field(default_factory=list)
    seconds: float = 0.0
    steps: int = 0


def train(
    model: EncoderDecoder,
    data: Batch,
    *,
    steps: int,
    batch_size: int = 128,
    lr: float = 5e-3,
    seed: int = 0,
    clip: float = 1.0,
    callback: Callable[[int, float], None] | None = None,
) -> TrainResult:
    """Train with teacher forcing and Adam for a fixed number of steps.

    Each step draws ``batch_size`` random pairs (a private generator seeded with ``seed``, on the
    CPU, so the batches are the same on every device), runs :meth:`EncoderDecoder.forward` and
    minimises the cross-entropy of the next character, padding excluded.

    Args:
        model: the model; trained in place on its own device.
        data: all training pairs (:func:`encode_pairs`), on any device.
        steps: number of optimisation steps.
        batch_size: pairs per step.
        lr: Adam's learning rate (decayed linearly to a tenth over the steps).
        seed: the seed of the batch order.
        clip: maximum gradient norm.
        callback: called as ``callback(step, loss)`` after every step.

    Returns:
        A :class:`TrainResult`.
    """
    positive_int(steps, "steps", "train")
    positive_int(batch_size, "batch_size", "train")
    if not isinstance(data, Batch):
        raise TypeError(
            f"train: data must be a Batch (see encode_pairs), got {type(data).__name__}"
        )
    dev = next(model.parameters()).device
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: 1.0 - 0.9 * i / steps)
    result = TrainResult()
    model.train()
    start = time.perf_counter()
    for i in range(steps):
        idx = torch.randint(len(data), (batch_size,), generator=g)  # (N,) on the CPU
        b = data.select(idx).to(dev)
        logits, _ = model(b.src, b.lengths, b.tgt[:, :-1])  # (N, L - 1, vocab_size)
        loss = F.cross_entropy(logits.flatten(0, 1), b.tgt[:, 1:].flatten(), ignore_index=0)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), clip)
        opt.step()
        sched.step()
        result.losses.append(loss.item())
        if callback is not None:
            callback(i, result.losses[-1])
    result.seconds = time.perf_counter() - start
    result.steps = steps
    model.eval()
    return result


@torch.no_grad()
def greedy_decode(
    model: EncoderDecoder, src: torch.Tensor, lengths: torch.Tensor, max_len: int
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Generate up to ``max_len`` ids per source, each step taking the most likely character.

    Args:
        model: a trained :class:`EncoderDecoder`.
        src: ``(N, S)`` source ids; lengths ``(N,)``.
        max_len: number of steps (the output stops early once every row has produced ``eos``).

    Returns:
        ``(ids (N, L), weights (N, L, S) or None)``: the generated ids (``eos`` included, then
        padding) and, with attention, the weights each step put on each source position. Rows of
        steps after a row's ``eos`` are zeros.
    """
    positive_int(max_len, "max_len", "greedy_decode")
    was_training = model.training
    model.eval()
    memory, summary, mask = model.encode(src, lengths)
    dec = model.decoder
    state = dec.start(memory, summary)
    prepared = dec.prepare(memory)
    N = src.size(0)
    y = torch.full((N,), model.bos_id, dtype=torch.long, device=src.device)  # (N,)
    done = torch.zeros(N, dtype=torch.bool, device=src.device)  # (N,)
    ids, weights = [], []
    for _ in range(max_len):
        logits, state, w = dec.step(dec.embed(y), state, memory, prepared, mask)
        y = logits.argmax(dim=-1).masked_fill(done, 0)  # (N,): padding after eos
        ids.append(y)
        if w is not None:
            weights.append(w.masked_fill(done[:, None], 0.0))  # (N, S)
        done = done | (y == model.eos_id)
        if bool(done.all()):
            break
    model.train(was_training)
    stacked = torch.stack(weights, dim=1) if weights else None  # (N, L, S)
    return torch.stack(ids, dim=1), stacked  # (N, L)


def translate(
    model: EncoderDecoder, texts: Sequence[str], src_vocab, tgt_vocab, *, max_len: int = 12
) -> tuple[list[str], list[torch.Tensor | None]]:
    """Greedy outputs for ``texts``, with each one's attention weights.

    Returns:
        ``(outputs, weights)``: N strings, and for each a CPU tensor ``(L_n, S_n)`` (its output
        characters plus ``eos`` by its source characters), or None without attention.
    """
    dev = next(model.parameters()).device
    src, lengths = src_vocab.encode(list(texts))
    ids, w = greedy_decode(model, src.to(dev), lengths.to(dev), max_len)
    ids = ids.cpu()
    outputs = tgt_vocab.decode(ids)
    per_text: list[torch.Tensor | None] = []
    for n, text in enumerate(texts):
        if w is None:
            per_text.append(None)
            continue
        ends = (ids[n] == model.eos_id).nonzero()
        L = int(ends[0]) + 1 if len(ends) else ids.size(1)
        per_text.append(w[n, :L, : len(text)].cpu())  # (L_n, S_n)
    return outputs, per_text


@torch.no_grad()
def exact_match(model: EncoderDecoder, data: Batch, *, batch_size: int = 500) -> float:
    """The fraction of sources whose greedy output equals the target exactly (eos included).

    Args:
        model: the model (on any device).
        data: pairs from :func:`encode_pairs`.

    Returns:
        A float in [0, 1].
    """
    dev = next(model.parameters()).device
    correct = 0
    for i in range(0, len(data), batch_size):
        b = data.select(torch.arange(i, min(i + batch_size, len(data)))).to(dev)
        target = b.tgt[:, 1:]  # (N, L): without bos
        ids, _ = greedy_decode(model, b.src, b.lengths, target.size(1))
        got = torch.zeros_like(target)
        got[:, : ids.size(1)] = ids
        correct += int((got == target).all(dim=1).sum())
    return correct / len(data)
