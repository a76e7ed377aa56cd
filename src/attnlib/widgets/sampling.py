"""A sampling explorer that keeps working in the static book (the GPT chapter).

A language model's last layer gives one score (logit) per vocabulary token; generation turns them
into a distribution with ``softmax(top_p(top_k(logits / temperature)))`` and draws from it. This
widget sends the next-token logits of a few prompts to the browser, once, and sampling.js
recomputes the distribution whenever the reader moves the temperature, top-k or top-p slider, and
draws tokens from it. No kernel is needed, so the published page stays interactive.

Only the ``top`` most likely tokens of each prompt are sent by name. The remaining tokens (49 000
and more for SmolLM2) still carry probability, which grows with the temperature, so they are sent
as a histogram of their logits (bins 0.05 wide): the browser adds
``count * exp(bin / temperature)`` to the normaliser, so "all other tokens" gets its due share.

**Live mode** (:meth:`SamplingExplorer.live`): the widget carries a small character GPT
(:class:`attnlib.models.gpt.CharGPT`: its float32 weights, packed by
:func:`attnlib.widgets._pack.pack_tensors`, and its sizes) and the browser runs it. The reader
types a prompt; sampling.js runs it through the model with a KV cache, then writes after it one
character at a time with the same temperature, top-k and top-p sliders, and shows every head's
attention for the newest character. The arithmetic is ``_nn.js``'s, the same as attnlib's.

Shape legend: P prompts, ``vocab_size`` the vocabulary, M the tokens sent by name.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
import traitlets

from . import _base
from ._pack import pack_tensors

__all__ = ["SamplingExplorer", "TAIL_BIN"]

_WHERE = "SamplingExplorer"
TAIL_BIN = 0.05
"""Width of the histogram bins that summarise the logits of the tokens not sent by name."""

# The temperature slider's range (as in AttentionExplorer).
TEMPERATURE_MIN, TEMPERATURE_MAX = 0.05, 5.0


def _temperature(value) -> float:
    return _base.positive_number(value, "temperature", _WHERE)


def _top_p(value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
        raise ValueError(
            f"SamplingExplorer: top_p must be in (0, 1] (1 = off; 0 would keep no token), got "
            f"{value!r}"
        )
    return float(value)


def _as_logits(logits) -> np.ndarray:
    arr = _base.numeric(logits, "logits", _WHERE)
    arr = arr[None] if arr.ndim == 1 else arr
    if arr.ndim != 2 or arr.shape[1] < 2:
        raise ValueError(
            f"SamplingExplorer: logits must be (P, vocab_size) (one row of at least 2 scores per "
            f"prompt), got shape {arr.shape}"
        )
    return _base.finite(arr, "logits", _WHERE)


def summarise(
    logits: np.ndarray, top: int
) -> tuple[list[int], list[float], list[list[float]]]:
    """One prompt's logits as the browser receives them.

    Args:
        logits: ``(vocab_size,)``.
        top: M, how many tokens to send by name.

    Returns:
        ``(ids, top_logits, tail)``: the ``M`` most likely token ids (most likely first), their
        logits, and ``[[bin_value, count], ...]``: the histogram of the other
        ``vocab_size - M`` logits, each rounded to the nearest multiple of :data:`TAIL_BIN`.
    """
    order = np.argsort(-logits, kind="stable")  # (vocab_size,), most likely first
    ids = order[:top]
    rest = logits[order[top:]]
    bins = np.round(rest / TAIL_BIN).astype(np.int64)
    values, counts = np.unique(bins, return_counts=True)
    tail = [[round(float(v) * TAIL_BIN, 4), int(c)] for v, c in zip(values, counts, strict=True)]
    return ids.tolist(), _base.rounded(logits[ids]), tail


def _summaries(logits: np.ndarray, top: int, text_of: Callable[[int], str]) -> dict:
    """The traits that carry the ``(P, vocab_size)`` logits: each prompt's :func:`summarise`,
    with the named tokens' texts."""
    rows = [summarise(row, top) for row in logits]
    return {
        "candidates": [[str(text_of(i)) for i in ids] for ids, _, _ in rows],  # (P, M)
        "logits": [values for _, values, _ in rows],  # (P, M)
        "tail": [tail for _, _, tail in rows],  # (P, bins, 2)
    }


class SamplingExplorer(_base.Widget, view="sampling"):
    """Next-token distributions under temperature, top-k and top-p, recomputed in the browser.

    Give it a few prompts, the model's next-token logits after each, and a way to turn token ids
    into text. The reader picks a prompt, moves a temperature slider (0.05 to 5, log scale), a
    top-k slider (1 to ``top``, or all tokens) and a top-p slider (0.01 to 1, 1 = off), and sees
    the distribution as labelled bars, its entropy, and how many tokens can still be drawn; a
    button draws tokens from it. Make it the last expression of a cell. Each change (and each
    draw) is announced to a screen reader.

    Args:
        prompts: the P prompt texts (shown as they are).
        logits: ``(P, vocab_size)`` next-token logits (tensor on any device, array or nested
            lists).
        token_text: the text of a token id: a sequence of ``vocab_size`` strings or a function
            ``id -> str``.
        top: M, the number of most likely tokens sent by name (the top-k slider's range).
        shown: how many of them get a bar (at most ``top``; the others join "all other
            tokens").
        temperature: the starting temperature.
        top_k: the starting top-k; 0 = no limit.
        top_p: the starting top-p, in (0, 1]; 1 = no limit. The nucleus is computed after the
            temperature and top-k, as :func:`attnlib.generation.next_token_probs` does.
        title: a heading shown above the widget.

    Synced traits: ``prompt`` (index), ``temperature``, ``top_k``, ``top_p``.

    See the GPT chapter, "Temperature and top-k".
    """

    prompts = traitlets.List(traitlets.Unicode()).tag(sync=True)
    candidates = traitlets.List().tag(sync=True)  # (P, M) token texts, most likely first
    logits = traitlets.List().tag(sync=True)  # (P, M) their logits
    tail = traitlets.List().tag(sync=True)  # (P, bins, 2) [logit, count] of the other tokens
    vocab_size = traitlets.Int(0).tag(sync=True)
    shown = traitlets.Int(12).tag(sync=True)

    prompt = traitlets.Int(0).tag(sync=True)
    temperature = traitlets.Float(1.0).tag(sync=True)
    top_k = traitlets.Int(0).tag(sync=True)
    top_p = traitlets.Float(1.0).tag(sync=True)

    # Live mode only (see :meth:`live`); empty otherwise.
    text = traitlets.Unicode("").tag(sync=True)  # the reader's prompt
    seed = traitlets.Int(0).tag(sync=True)  # seeds the page's random draws
    length = traitlets.Int(200).tag(sync=True)  # characters a "Generate" writes
    vocabulary = traitlets.List(traitlets.Unicode()).tag(sync=True)  # (vocab_size,) characters
    net = traitlets.Dict().tag(sync=True)  # the model's sizes: see _live_config
    manifest = traitlets.List().tag(sync=True)  # the packed weights' names, shapes, offsets
    weights = traitlets.Unicode("").tag(sync=True)  # the packed float32 weights, base64

    def __init__(
        self,
        prompts: Sequence[str],
        logits,
        token_text: Sequence[str] | Callable[[int], str],
        *,
        top: int = 40,
        shown: int = 12,
        temperature: float = 1.0,
        top_k: int = 0,
        top_p: float = 1.0,
        title: str = "",
    ) -> None:
        prompts = _base.labels(prompts, "prompts", _WHERE)
        arr = _as_logits(logits)
        P, vocab_size = arr.shape
        if len(prompts) != P:
            raise ValueError(
                f"SamplingExplorer: {len(prompts)} prompts but logits has {P} rows (shape "
                f"{arr.shape})"
            )
        for name, value, high in (("top", top, vocab_size), ("shown", shown, vocab_size)):
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= high:
                raise ValueError(
                    f"SamplingExplorer: {name} must be an int in [1, {high}], got {value!r}"
                )
        shown = min(shown, top)
        if isinstance(top_k, bool) or not isinstance(top_k, int) or not 0 <= top_k <= top:
            raise ValueError(
                f"SamplingExplorer: top_k must be 0 (no limit) or an int in [1, top={top}], got "
                f"{top_k!r}"
            )
        if callable(token_text):
            text_of = token_text
        else:
            if isinstance(token_text, str) or len(token_text) != vocab_size:
                size = "a string" if isinstance(token_text, str) else len(token_text)
                raise ValueError(
                    f"SamplingExplorer: token_text must give the text of each of the "
                    f"vocab_size = {vocab_size} tokens (a sequence or a function), got {size}"
                )
            text_of = token_text.__getitem__

        super().__init__(title=title, prompts=prompts, vocab_size=vocab_size, shown=shown,
                         temperature=_temperature(temperature), top_k=top_k,
                         top_p=_top_p(top_p),
                         **_summaries(arr, top, text_of))

    @traitlets.validate("temperature")
    def _valid_temperature(self, proposal):
        return _temperature(proposal["value"])

    @traitlets.validate("top_p")
    def _valid_top_p(self, proposal):
        return _top_p(proposal["value"])

    @classmethod
    def live(
        cls,
        model,
        vocabulary,
        prompt: str = "ROMEO:\n",
        *,
        length: int | None = None,
        seed: int = 0,
        temperature: float = 1.0,
        top_k: int = 0,
        top_p: float = 1.0,
        shown: int = 10,
        title: str = "",
    ) -> SamplingExplorer:
        """A sampling explorer that runs a character GPT in the page, on the reader's own prompt.

        The model's weights travel in the widget's state (float32, about 4 bytes per parameter,
        a third more as base64); the page runs the model with a KV cache, so each new character
        costs one position. The reader types a prompt (setting :attr:`text` from Python does the
        same) and presses "Generate": ``length`` characters are drawn after it with the
        temperature, top-k and top-p of the sliders (:func:`attnlib.generation.next_token_probs`'
        definitions; top-k = 1 is greedy) from a seeded generator (the ``seed`` field), so a run
        repeats. Each head's attention for the newest character is shown as it goes. A prompt
        with characters outside the vocabulary, or an empty one, gets a message instead;
        generation stops at the model's context length, where
        :func:`attnlib.generation.generate` would refuse to go on.

        Args:
            model: a :class:`attnlib.models.gpt.CharGPT` with ALiBi, learned positions or none
                (no attention sink, no gate: the page has no code for them).
            vocabulary: its characters, ``vocabulary[i]`` has id ``i``: a sequence of
                ``vocab_size`` one-character strings or an object with ``.chars``
                (:class:`attnlib.data.shakespeare.CharVocab`).
            prompt: the starting prompt.
            length: how many characters one "Generate" writes (1 to the context length;
                default 200, or the context length if shorter).
            seed: the starting seed of the page's generator (mulberry32).
            temperature, top_k, top_p: the starting sliders, as in the constructor.
            shown: how many of the most likely next characters get a bar.
            title: a heading shown above the widget.

        See the GPT chapter, "Your own prompt, in this page".
        """
        tensors = _live_tensors(model)  # checks that it is a CharGPT first
        chars = _live_vocabulary(vocabulary, model)
        config = model.config
        length = min(200, config.context_length) if length is None else length
        for name, value, high in (("length", length, config.context_length),
                                  ("shown", shown, len(chars))):
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= high:
                raise ValueError(
                    f"SamplingExplorer.live: {name} must be an int in [1, {high}], got {value!r}"
                )
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
            raise ValueError(
                f"SamplingExplorer.live: seed must be an int in [0, 2**32), got {seed!r}"
            )
        prompt = str(prompt)
        manifest, blob = pack_tensors(tensors)
        widget = cls(
            [prompt], _live_logits(model, chars, prompt), chars, top=len(chars), shown=shown,
            temperature=temperature, top_k=top_k, top_p=top_p, title=title,
        )
        widget._live_model = model
        widget.set_trait("vocabulary", chars)
        widget.set_trait("net", _live_config(model))
        widget.set_trait("manifest", manifest)
        widget.set_trait("weights", blob)
        widget.set_trait("seed", seed)
        widget.set_trait("length", length)
        widget.set_trait("text", prompt)
        widget.observe(widget._live_text, names="text")
        return widget

    def _live_text(self, change) -> None:
        """Python set a new prompt: the page reruns it (it listens to ``text``); here the named
        tokens and logits follow, for :meth:`probabilities` and the stored picture."""
        text = change["new"]
        summary = _summaries(_live_logits(self._live_model, self.vocabulary, text), len(
            self.vocabulary), self.vocabulary.__getitem__)
        self.set_trait("prompts", [text])
        for name, value in summary.items():
            self.set_trait(name, value)
        self.set_trait("prompt", 0)

    def live_problem(self) -> str:
        """What the page says instead of generating after :attr:`text` ("" when it can run):
        an empty prompt, characters outside the vocabulary, a prompt longer than the context."""
        return _live_problem(self.text, self.vocabulary, self.net.get("context_length", 0))

    @traitlets.validate("seed")
    def _valid_seed(self, proposal):
        value = proposal["value"]
        if not 0 <= value < 2**32:
            raise ValueError(f"SamplingExplorer: seed must be in [0, 2**32), got {value}")
        return value

    @traitlets.validate("prompt")
    def _valid_prompt(self, proposal):
        return _base.index(proposal["value"], len(self.prompts), "prompt", _WHERE)

    @traitlets.validate("top_k")
    def _valid_top_k(self, proposal):
        k, M = proposal["value"], len(self.logits[0]) if self.logits else 0
        if not 0 <= k <= M:
            raise ValueError(
                f"SamplingExplorer: top_k must be 0 (no limit) or in [1, {M}], got {k}"
            )
        return k

    def probabilities(self, prompt: int | None = None) -> tuple[np.ndarray, float]:
        """What the browser shows: the named tokens' probabilities and the rest's total.

        Computed here the same way sampling.js does, with the current ``temperature``,
        ``top_k`` and ``top_p`` (the tail's tokens join the nucleus bin by bin, largest first).

        Returns:
            ``(probs (M,), other)``: ``other`` is the probability of all tokens not sent by name.
        """
        i = self.prompt if prompt is None else prompt
        logits = np.asarray(self.logits[i])
        M = len(logits)
        k = self.top_k or M
        tau = self.temperature
        w = np.exp((logits - logits[0]) / tau)
        w[k:] = 0.0
        bins = []  # [weight of one token, count], largest first
        if self.top_k == 0:
            bins = sorted(([math.exp((v - logits[0]) / tau), c] for v, c in self.tail[i]),
                          reverse=True)
        if self.top_p < 1:
            Z0 = w.sum() + sum(wt * c for wt, c in bins)
            before = 0.0
            for j in range(M):
                if w[j] > 0 and before < self.top_p:
                    before += w[j] / Z0
                else:
                    w[j] = 0.0
            for b in bins:
                q = b[0] / Z0
                n = 0
                if before < self.top_p and q > 0:
                    n = min(b[1], math.ceil((self.top_p - before) / q))
                before += n * q
                b[1] = n
        tail = sum(wt * c for wt, c in bins)
        Z = w.sum() + tail
        return w / Z, tail / Z

    def __repr__(self) -> str:
        M = len(self.logits[0]) if self.logits else 0
        return (
            f"SamplingExplorer(prompts={len(self.prompts)}, vocab_size={self.vocab_size}, top={M})"
        )

    def _static_figure(self, fig) -> str:
        """The stored picture: the bars the browser shows now (prompt, temperature, limits)."""
        problem = self.live_problem() if self.weights else ""
        if problem:
            fig.text(0.5, 0.5, problem, ha="center", va="center", wrap=True)
            return f"The live GPT's message: {problem}"
        probs, other = self.probabilities()
        n = self.shown
        names = [repr(t) for t in self.candidates[self.prompt][:n]] + ["all other tokens"]
        values = [*probs[:n].tolist(), float(other) + float(probs[n:].sum())]
        ax = fig.add_subplot()
        ax.barh(range(len(values)), values, color="#1f5fa8")
        ax.set_yticks(range(len(values)), names)
        ax.invert_yaxis()
        ax.set_xlim(0, 1)
        ax.set_xlabel("probability of the next token")
        limits = f", top-k {self.top_k}" if self.top_k else ""
        top_p = getattr(self, "top_p", 1.0)
        limits += f", top-p {top_p:g}" if top_p < 1 else ""
        ax.set_title(f"temperature {self.temperature:g}{limits}")
        return (f"Bar chart of the next-token probabilities after {self.prompts[self.prompt]!r} "
                f"at temperature {self.temperature:g}{limits}: the {n} most likely tokens, then "
                f"all others together; the first, {names[0]}, has {values[0]:.2f}.")


# ------------------------------------------------------------------------------------------------
# Live mode: a character GPT whose weights travel in the widget's state


def _live_vocabulary(vocabulary, model) -> list[str]:
    chars = list(getattr(vocabulary, "chars", vocabulary))
    vocab_size = model.config.vocab_size
    if len(chars) != vocab_size or not all(isinstance(c, str) and len(c) == 1 for c in chars):
        raise ValueError(
            f"SamplingExplorer.live: vocabulary must give the model's {vocab_size} characters "
            f"(one-character strings, index = id), got {len(chars)} entries"
        )
    if len(set(chars)) != len(chars):
        raise ValueError("SamplingExplorer.live: vocabulary has a character twice")
    return chars


def _live_tensors(model) -> dict[str, torch.Tensor]:
    """The weights the page needs, by their PyTorch names; the output layer is tied to
    ``tok_embed.weight``, so it is sent once."""
    from ..models.gpt import CharGPT

    if not isinstance(model, CharGPT):
        raise ValueError(
            f"SamplingExplorer.live: model must be an attnlib.models.gpt.CharGPT, got "
            f"{type(model).__name__}"
        )
    config = model.config
    extras = {
        "positions": (config.positions, ("alibi", "learned", "none")),
        "sink": (getattr(config, "sink", "none"), ("none",)),
        "gated": (getattr(config, "gated", False), (False,)),
    }
    for name, (value, supported) in extras.items():
        if value not in supported:
            raise ValueError(
                f"SamplingExplorer.live: the page runs CharGPTs with {name} in {supported}; "
                f"this model has {name}={value!r}"
            )
    if model.lm_head.weight is not model.tok_embed.weight:
        raise ValueError("SamplingExplorer.live: the model's output layer must stay tied to its "
                         "token embedding (CharGPT ties them)")
    return {name: t for name, t in model.state_dict().items() if name != "lm_head.weight"}


def _live_config(model) -> dict:
    """The sizes the page reads: those of :class:`attnlib.models.gpt.GPTConfig`, each block's
    ALiBi slopes (H,) and its norms' eps."""
    config = model.config
    block = model.blocks[0]
    slopes = block.attn.slopes
    return {
        "vocab_size": config.vocab_size,
        "context_length": config.context_length,
        "d_model": config.d_model,
        "num_heads": config.num_heads,
        "num_layers": config.num_layers,
        "positions": config.positions,
        "slopes": [] if slopes is None else [float(m) for m in slopes],
        "eps": float(block.norm1.eps),
    }


def _live_problem(text: str, vocabulary: Sequence[str], context_length: int) -> str:
    """The page's message for a prompt it cannot run, or ""; sampling.js says the same."""
    if not text:
        return "Type a prompt: the model needs at least one character to continue."
    known = set(vocabulary)
    unknown = sorted({c for c in text if c not in known}, key=text.index)
    if unknown:
        visible = {"\n": "\u21b5", "\t": "\u21e5", " ": "\u2423"}  # as _base.js's shown()
        listed = ", ".join(f"\u201c{visible.get(c, c)}\u201d" for c in unknown)
        return (f"Not in the model's vocabulary of {len(vocabulary)} characters: {listed}. "
                f"Remove or replace them to generate.")
    if len(text) >= context_length:
        return (f"The prompt has {len(text)} characters; the model reads at most "
                f"{context_length}, prompt and new characters together. Shorten it.")
    return ""


@torch.no_grad()
def _live_logits(model, vocabulary: Sequence[str], text: str) -> np.ndarray:
    """The next-character logits after ``text`` (1, vocab_size); zeros for a prompt the page
    refuses (:func:`_live_problem`), so the traits stay well-formed."""
    if _live_problem(text, vocabulary, model.config.context_length):
        return np.zeros((1, len(vocabulary)), dtype=np.float32)
    index = {c: i for i, c in enumerate(vocabulary)}
    device = next(model.parameters()).device
    ids = torch.tensor([[index[c] for c in text]], device=device)  # (1, L)
    return model(ids).logits[:, -1].float().cpu().numpy()  # (1, vocab_size)
