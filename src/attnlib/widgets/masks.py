"""A mask explorer that keeps working in the static book (the masking chapter).

The widget sends one matrix of attention scores to the browser, once. The browser builds the
allowed-matrix of the mask the reader picks (padding, causal, bidirectional, a sliding window, or a
pattern of their own made by clicking cells), masks the scores with ``-inf`` and recomputes the
softmax itself, in masks.js. No kernel is needed, so the published page stays interactive.

Polarity, as everywhere in attnlib: **True = this query may attend to this key**. A query row with
no allowed key gets all-zero weights, never NaN, exactly as in
:func:`attnlib.scaled_dot_product_attention`.

Shape legend (book/notation.md): L query length, S key length.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import traitlets

from ..attention import masked_softmax as _masked_softmax
from . import _base

__all__ = ["MaskExplorer", "KINDS", "allowed_pattern", "masked_softmax"]

_WHERE = "MaskExplorer"

KINDS = ("bidirectional", "causal", "padding", "window", "custom")
"""The masks the explorer offers, in the order of its buttons."""


def _check_int(value, name: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"MaskExplorer: {name} must be an int, got {value!r}")
    if not low <= int(value) <= high:
        raise ValueError(f"MaskExplorer: {name} must be in [{low}, {high}], got {value}")
    return int(value)


def _check_custom(custom, L: int, S: int) -> list[list[bool]]:
    arr = custom.detach().to("cpu").numpy() if isinstance(custom, torch.Tensor) else custom
    arr = np.asarray(arr)
    if arr.shape != (L, S):
        raise ValueError(
            f"MaskExplorer: custom must be an (L, S) = ({L}, {S}) pattern, got shape {arr.shape}"
        )
    if arr.dtype != np.bool_:
        raise ValueError(
            f"MaskExplorer: custom must be boolean (True = may attend), got dtype {arr.dtype}"
        )
    return arr.tolist()


def allowed_pattern(
    kind: str,
    L: int,
    S: int,
    *,
    length: int | None = None,
    window: int = 1,
    causal: bool = False,
    custom: Sequence[Sequence[bool]] | torch.Tensor | None = None,
) -> torch.Tensor:
    """The allowed-matrix of one of the explorer's masks (the same rule masks.js uses).

    Args:
        kind: ``"bidirectional"`` (every key), ``"causal"`` (key ``j <= i``, aligned top-left as
            in PyTorch), ``"padding"`` (key ``j < length``: the rest are padding), ``"window"``
            (``|i - j| <= window``) or ``"custom"`` (the ``custom`` pattern).
        L: number of queries.
        S: number of keys.
        length: the number of real (non-padding) keys for ``"padding"``; defaults to ``S``.
        window: how far a query may look on each side for ``"window"``.
        causal: also apply the causal mask (AND), e.g. a decoder over a padded batch.
        custom: an ``(L, S)`` boolean pattern for ``"custom"``.

    Returns:
        A boolean tensor ``(L, S)``, True where the query may attend to the key.
    """
    if kind not in KINDS:
        raise ValueError(f"MaskExplorer: kind must be one of {', '.join(KINDS)}; got {kind!r}")
    i = torch.arange(L)[:, None]  # (L, 1)
    j = torch.arange(S)[None, :]  # (1, S)
    if kind == "bidirectional":
        allowed = torch.ones(L, S, dtype=torch.bool)  # (L, S)
    elif kind == "causal":
        allowed = j <= i  # (L, S)
    elif kind == "padding":
        n_real = S if length is None else length
        allowed = (j < n_real).expand(L, S)  # (L, S)
    elif kind == "window":
        allowed = (i - j).abs() <= window  # (L, S)
    else:
        if custom is None:
            raise ValueError("MaskExplorer: kind 'custom' needs a custom (L, S) pattern")
        allowed = torch.tensor(_check_custom(custom, L, S), dtype=torch.bool).reshape(L, S)
    if causal:
        allowed = allowed & (j <= i)  # (L, S)
    return allowed


def masked_softmax(scores: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
    """Softmax over the keys of ``scores`` with the disallowed keys set to ``-inf``.

    The arithmetic the widget's JavaScript repeats in the browser; it is
    :func:`attnlib.attention.masked_softmax`.

    Args:
        scores: ``(..., L, S)`` floating scores.
        allowed: boolean, broadcastable to ``scores``; True = may attend.

    Returns:
        ``(..., L, S)`` weights; each row sums to 1, or is all zeros when it allows no key.
    """
    return _masked_softmax(scores, allowed)


class MaskExplorer(_base.Widget, view="masks"):
    """Pick a mask, see which pairs it allows and what the softmax makes of them.

    Give it tokens and one ``(L, S)`` matrix of attention scores. The reader chooses a mask
    (bidirectional, causal, padding with a slider for the number of real tokens, a sliding
    window with a slider for its width, or a custom pattern), may AND it with the causal mask,
    and clicks cells to toggle them (which turns the pattern into a custom one). Two grids show
    the allowed-matrix and the weights ``softmax(scores masked with -inf)``, recomputed by the
    browser; a row with no allowed key shows zeros. Make it the last expression of a cell. From
    the keyboard, the allowed-matrix is one Tab stop: the arrow keys move, Enter or Space toggles.

    Args:
        tokens: the ``L`` query tokens (row labels).
        scores: ``(L, S)`` attention scores (tensor on any device, array or nested lists).
        key_tokens: the ``S`` key tokens (column labels); defaults to ``tokens``.
        kind: the starting mask, one of :data:`KINDS`.
        length: the starting number of real keys for ``"padding"`` (default ``S``).
        window: the starting half-width of ``"window"`` (default 1).
        causal: start with "also causal" ticked.
        custom: the starting ``(L, S)`` boolean pattern of ``"custom"`` (default: the pattern of
            ``kind``, so that clicking edits what is shown).
        title: a heading shown above the widget.

    Synced traits: ``kind``, ``length``, ``window``, ``causal``, ``custom``.

    See the chapter "Masking".
    """

    tokens = traitlets.List(traitlets.Unicode()).tag(sync=True)
    key_tokens = traitlets.List(traitlets.Unicode()).tag(sync=True)
    scores = traitlets.List().tag(sync=True)  # (L, S)

    kind = traitlets.Unicode("causal").tag(sync=True)
    length = traitlets.Int(0).tag(sync=True)
    window = traitlets.Int(1).tag(sync=True)
    causal = traitlets.Bool(False).tag(sync=True)
    custom = traitlets.List().tag(sync=True)  # (L, S) of bool

    def __init__(
        self,
        tokens: Sequence[str],
        scores,
        *,
        key_tokens: Sequence[str] | None = None,
        kind: str = "causal",
        length: int | None = None,
        window: int = 1,
        causal: bool = False,
        custom=None,
        title: str = "",
    ) -> None:
        tokens = _base.labels(tokens, "tokens", _WHERE)
        key_tokens = _base.labels(key_tokens, "key_tokens", _WHERE, default=tokens)
        s = _base.ndim(_base.numeric(scores, "scores", _WHERE), 2, "scores", _WHERE, "2-D (L, S)")
        note = "the explorer applies the mask itself (pass the scores before masking)"
        _base.finite(s, "scores", _WHERE, note)
        L, S = s.shape
        _base.count(tokens, L, "tokens", _WHERE, f"scores {s.shape} has L = {L} queries")
        _base.count(key_tokens, S, "key_tokens", _WHERE, f"scores {s.shape} has S = {S} keys")
        if kind not in KINDS:
            raise ValueError(f"MaskExplorer: kind must be one of {', '.join(KINDS)}; got {kind!r}")
        length = S if length is None else _check_int(length, "length", 0, S)
        window = _check_int(window, "window", 0, max(L, S, 1) - 1 if max(L, S) else 0)
        if custom is None:
            if kind == "custom":
                raise ValueError("MaskExplorer: kind 'custom' needs a custom (L, S) pattern")
            custom = allowed_pattern(kind, L, S, length=length, window=window).tolist()
        else:
            custom = _check_custom(custom, L, S)
        super().__init__(title=title, tokens=tokens, key_tokens=key_tokens,
                         scores=_base.rounded(s), kind=kind, length=length, window=window,
                         causal=bool(causal), custom=custom)

    # -- validation of the synced traits (the browser may set them too) --------------------------
    @traitlets.validate("kind")
    def _valid_kind(self, proposal):
        if proposal["value"] not in KINDS:
            raise ValueError(
                f"MaskExplorer: kind must be one of {', '.join(KINDS)}; got {proposal['value']!r}"
            )
        return proposal["value"]

    @traitlets.validate("length")
    def _valid_length(self, proposal):
        return _check_int(proposal["value"], "length", 0, len(self.key_tokens))

    @traitlets.validate("window")
    def _valid_window(self, proposal):
        return _check_int(proposal["value"], "window", 0, max(self.shape + (1,)) - 1)

    @traitlets.validate("custom")
    def _valid_custom(self, proposal):
        return _check_custom(proposal["value"], *self.shape)

    # -- what the browser shows, computed in Python (for tests and for the chapter) ---------------
    @property
    def shape(self) -> tuple[int, int]:
        """``(L, S)``: the number of queries and keys."""
        return len(self.tokens), len(self.key_tokens)

    def allowed(self) -> torch.Tensor:
        """The allowed-matrix ``(L, S)`` of the current choice (True = may attend)."""
        L, S = self.shape
        return allowed_pattern(
            self.kind, L, S, length=self.length, window=self.window, causal=self.causal,
            custom=self.custom,
        )

    def weights(self) -> torch.Tensor:
        """The weights ``(L, S)`` the browser shows: masked softmax of the (rounded) scores."""
        scores = torch.tensor(self.scores, dtype=torch.float64).reshape(self.shape)  # (L, S)
        return masked_softmax(scores, self.allowed())

    def __repr__(self) -> str:
        L, S = self.shape
        return f"MaskExplorer(L={L}, S={S}, kind={self.kind!r})"

    def _static_figure(self, fig) -> str:
        """The stored picture: the weights under the mask chosen now (masked cells are 0)."""
        L, S = self.shape
        allowed = int(self.allowed().sum())
        title = f"{self.kind} mask: {allowed} of {L * S} pairs may attend"
        _base.picture_heatmap(fig, self.weights().numpy(), self.tokens, self.key_tokens, title)
        return (f"Heatmap of the attention weights under the {self.kind} mask: {L} queries "
                f"(rows) over {S} keys (columns); {allowed} of {L * S} pairs may attend, the "
                f"masked ones have weight 0.")
