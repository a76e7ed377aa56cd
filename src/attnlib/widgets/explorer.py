"""An attention explorer that keeps working in the static book.

The widget sends its data to the browser once (tokens, and either the query and key vectors or
finished weight matrices) and the browser recomputes the weights itself, in explorer.js, each time
the reader moves the temperature slider, toggles the causal mask or picks another matrix. No
kernel is needed for that, so the published pages stay interactive.
"""

from __future__ import annotations

from collections.abc import Sequence

import traitlets

from .._checks import resolve_scale
from . import _base

__all__ = ["AttentionExplorer"]

_WHERE = "AttentionExplorer"


def _temperature(value) -> float:
    return _base.positive_number(value, "temperature", _WHERE)


def _query_key(query, key, scale) -> dict:
    """The traits of the ``"qk"`` mode, checked; with the shapes for the messages."""
    if query is None or key is None:
        missing = "key" if key is None else "query"
        raise ValueError(f"AttentionExplorer: query and key go together; {missing} is missing")
    q = _base.finite(_base.numeric(query, "query", _WHERE), "query", _WHERE)  # (L, E)
    k = _base.finite(_base.numeric(key, "key", _WHERE), "key", _WHERE)  # (S, E)
    _base.ndim(q, 2, "query", _WHERE, "2-D (L, E)")
    _base.ndim(k, 2, "key", _WHERE, "2-D (S, E)")
    if q.shape[1] != k.shape[1]:
        raise ValueError(
            f"AttentionExplorer: query {q.shape} and key {k.shape} must share their last "
            f"size E (dot-product scores need q and k of the same length)"
        )
    return {
        "mode": "qk",
        "query": _base.rounded(q),
        "key": _base.rounded(k),
        "weights": [],
        "scale": resolve_scale(scale, q.shape[1], _WHERE),
        "shape": (1, q.shape[0], k.shape[0]),
        "shapes": f"query {q.shape}",
        "key_shapes": f"key {k.shape}",
    }


def _weight_stack(weights, scale) -> dict:
    """The traits of the ``"weights"`` mode, checked: an ``(H, L, S)`` stack of weights."""
    if scale is not None:
        raise ValueError(
            "AttentionExplorer: scale applies to query and key; weights are used as given"
        )
    w = _base.finite(_base.numeric(weights, "weights", _WHERE), "weights", _WHERE)
    _base.ndim(w, (2, 3), "weights", _WHERE, "2-D (L, S) or 3-D (H, L, S)")
    _base.non_negative(w, "weights", _WHERE, "(they are used as probabilities)")
    shapes = f"weights {tuple(weights.shape) if hasattr(weights, 'shape') else w.shape}"
    stack = w[None] if w.ndim == 2 else w  # (H, L, S)
    return {
        "mode": "weights",
        "query": [],
        "key": [],
        "weights": _base.rounded(stack),
        "scale": 1.0,
        "shape": stack.shape,
        "shapes": shapes,
        "key_shapes": shapes,
    }


class AttentionExplorer(_base.Widget, view="explorer"):
    """An interactive attention heatmap whose arithmetic runs in the browser.

    Give it tokens and either a query and a key matrix (the browser computes
    ``softmax(query @ key.T * scale / temperature)``) or finished weights (the browser uses
    ``log(weights)`` as the scores, so ``temperature = 1`` shows them unchanged). The reader gets a
    temperature slider, a causal-mask toggle, a selector when there are several matrices, and a
    click on a query row shows that row's distribution as labelled bars. Make it the last
    expression of a cell.

    Every control works from the keyboard (the heatmap is one Tab stop: the arrow keys move
    through it and select the focused cell's row), a screen reader hears each change through the
    widget's one live region, and the colours follow the light or dark theme of the page.

    Args:
        tokens: the ``L`` query tokens (row labels).
        query: ``(L, E)`` query vectors (tensor on any device, array or nested lists).
        key: ``(S, E)`` key vectors.
        weights: instead of ``query``/``key``: an ``(L, S)`` matrix or an ``(H, L, S)`` stack of
            non-negative weights (rows of attention weights, e.g. one per head or layer).
        key_tokens: the ``S`` key tokens (column labels); defaults to ``tokens``.
        temperature: the starting temperature, ``> 0`` (the slider spans 0.05 to 5).
        causal: start with the causal mask on (query ``i`` sees keys ``j <= i``).
        scale: the score scale for ``query``/``key``; defaults to ``1 / sqrt(E)``.
        layer_labels: ``H`` names for the matrices of a stack (default "matrix 0", ...).
        title: a heading shown above the widget.

    Synced traits (Python and the browser see each other's changes): ``temperature``,
    ``causal``, ``selected`` (the query row whose bars are shown) and ``layer``.

    See the chapters "Attention as a soft lookup" (temperature) and "Attention in RNN
    encoder-decoders" (the causal mask).
    """

    tokens = traitlets.List(traitlets.Unicode()).tag(sync=True)
    key_tokens = traitlets.List(traitlets.Unicode()).tag(sync=True)
    mode = traitlets.Enum(["qk", "weights"], default_value="qk").tag(sync=True)
    query = traitlets.List().tag(sync=True)  # (L, E) when mode == "qk"
    key = traitlets.List().tag(sync=True)  # (S, E) when mode == "qk"
    weights = traitlets.List().tag(sync=True)  # (H, L, S) when mode == "weights"
    scale = traitlets.Float(1.0).tag(sync=True)
    layer_labels = traitlets.List(traitlets.Unicode()).tag(sync=True)

    temperature = traitlets.Float(1.0).tag(sync=True)
    causal = traitlets.Bool(False).tag(sync=True)
    selected = traitlets.Int(0).tag(sync=True)
    layer = traitlets.Int(0).tag(sync=True)

    def __init__(
        self,
        tokens: Sequence[str],
        query=None,
        key=None,
        *,
        weights=None,
        key_tokens: Sequence[str] | None = None,
        temperature: float = 1.0,
        causal: bool = False,
        scale: float | None = None,
        layer_labels: Sequence[str] | None = None,
        title: str = "",
    ) -> None:
        tokens = _base.labels(tokens, "tokens", _WHERE)
        key_tokens = _base.labels(key_tokens, "key_tokens", _WHERE, default=tokens)
        temperature = _temperature(temperature)
        have_qk = query is not None or key is not None
        if have_qk and weights is not None:
            raise ValueError("AttentionExplorer: give either query and key, or weights, not both")
        if not have_qk and weights is None:
            raise ValueError(
                "AttentionExplorer: give either query (L, E) and key (S, E), or weights (L, S) "
                "or (H, L, S)"
            )
        data = _query_key(query, key, scale) if have_qk else _weight_stack(weights, scale)
        (n_matrices, L, S), shapes = data.pop("shape"), data.pop("shapes")
        _base.count(tokens, L, "tokens", _WHERE, f"{shapes} has L = {L} queries")
        _base.count(key_tokens, S, "key_tokens", _WHERE,
                    f"there are S = {S} keys ({data.pop('key_shapes')})")
        if layer_labels is None:
            labels = [f"matrix {h}" for h in range(n_matrices)]
        else:
            labels = _base.labels(layer_labels, "layer_labels", _WHERE)
            _base.count(labels, n_matrices, "layer_labels", _WHERE,
                        f"there are {n_matrices} matrices ({shapes})", unit="names")
        super().__init__(title=title, tokens=tokens, key_tokens=key_tokens, layer_labels=labels,
                         temperature=temperature, causal=bool(causal), **data)

    # -- validation of the synced traits (the browser may set them too) --------------------------
    @traitlets.validate("temperature")
    def _valid_temperature(self, proposal):
        return _temperature(proposal["value"])

    @traitlets.validate("selected")
    def _valid_selected(self, proposal):
        return _base.index(proposal["value"], len(self.tokens), "selected", _WHERE, "a query row ")

    @traitlets.validate("layer")
    def _valid_layer(self, proposal):
        return _base.index(proposal["value"], len(self.layer_labels), "layer", _WHERE)

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(H, L, S)``: the number of matrices, queries and keys."""
        return len(self.layer_labels), len(self.tokens), len(self.key_tokens)

    def __repr__(self) -> str:
        H, L, S = self.shape
        return f"AttentionExplorer(L={L}, S={S}, matrices={H})"

    def _static_figure(self, fig) -> str:
        """The stored picture: the heatmap the browser shows now (temperature, mask, matrix)."""
        import numpy as np

        H, L, S = self.shape
        if self.mode == "qk":
            scores = np.asarray(self.query) @ np.asarray(self.key).T * self.scale  # (L, S)
        else:  # the browser uses log(weights) as the scores
            with np.errstate(divide="ignore"):
                scores = np.log(np.asarray(self.weights[self.layer], dtype=np.float64))
        scores = scores / self.temperature
        if self.causal:
            scores = np.where(np.tri(L, S, dtype=bool), scores, -np.inf)
        label = self.layer_labels[self.layer] if H > 1 else "attention weights"
        mask = ", causal mask" if self.causal else ""
        title = f"{label}, temperature {self.temperature:g}{mask}"
        _base.picture_heatmap(fig, _base.softmax_rows(scores), self.tokens, self.key_tokens, title)
        which = f" ({label})" if H > 1 else ""
        return (f"Heatmap of the attention weights{which} at temperature "
                f"{self.temperature:g}{mask}: {L} queries "
                f"(rows, {' '.join(self.tokens)}) over {S} keys (columns).")
