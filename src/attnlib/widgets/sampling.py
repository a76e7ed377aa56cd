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

Shape legend: P prompts, ``vocab_size`` the vocabulary, M the tokens sent by name.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import traitlets

from . import _base

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
