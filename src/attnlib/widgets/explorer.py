"""An attention explorer that keeps working in the static book.

The widget sends its data to the browser once (tokens, and either the query and key vectors or
finished weight matrices) and the browser recomputes the weights itself, in explorer.js, each time
the reader moves the temperature slider, toggles the causal mask or picks another matrix. No
kernel is needed for that, so the published pages stay interactive.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import anywidget
import numpy as np
import traitlets

__all__ = ["AttentionExplorer"]

_HERE = Path(__file__).parent
_DECIMALS = 4  # data is sent rounded: small, stable notebook metadata


def _as_array(x, name: str) -> np.ndarray:
    """A float64 NumPy copy of a tensor (any device), an array or nested lists."""
    if hasattr(x, "detach"):  # a torch.Tensor, wherever it lives
        x = x.detach().to("cpu").double().numpy()
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(
            f"AttentionExplorer: {name} must be numeric, got {type(x).__name__}"
        ) from err
    if not np.isfinite(arr).all():
        raise ValueError(f"AttentionExplorer: {name} contains NaN or infinite values")
    return arr


def _to_lists(arr: np.ndarray) -> list:
    """Nested lists of floats rounded to 4 decimals, with -0.0 turned into 0.0."""
    return (np.round(arr, _DECIMALS) + 0.0).tolist()


def _check_temperature(value: float, name: str = "temperature") -> float:
    t = float(value)
    if not math.isfinite(t) or t <= 0:
        raise ValueError(f"AttentionExplorer: {name} must be a positive number, got {value!r}")
    return t


class AttentionExplorer(anywidget.AnyWidget):
    """An interactive attention heatmap whose arithmetic runs in the browser.

    Give it tokens and either a query and a key matrix (the browser computes
    ``softmax(query @ key.T * scale / T)``) or finished weights (the browser uses ``log(weights)``
    as the scores, so ``T = 1`` shows them unchanged). The reader gets a temperature slider, a
    causal-mask toggle, a selector when there are several matrices, and a click on a query row
    shows that row's distribution as labelled bars. Make it the last expression of a cell.

    Args:
        tokens: the ``L`` query tokens (row labels).
        query: ``(L, E)`` query vectors (tensor on any device, array or nested lists).
        key: ``(S, E)`` key vectors.
        weights: instead of ``query``/``key``: an ``(L, S)`` matrix or an ``(H, L, S)`` stack of
            non-negative weights (rows of attention weights, e.g. one per head or layer).
        key_tokens: the ``S`` key tokens (column labels); defaults to ``tokens``.
        temperature: the starting temperature ``T > 0`` (the slider spans 0.05 to 5).
        causal: start with the causal mask on (query ``i`` sees keys ``j <= i``).
        scale: the score scale for ``query``/``key``; defaults to ``1 / sqrt(E)``.
        layer_labels: ``H`` names for the matrices of a stack (default "matrix 0", ...).
        title: a heading shown above the widget.

    Synced traits (Python and the browser see each other's changes): ``temperature``,
    ``causal``, ``selected`` (the query row whose bars are shown) and ``layer``.

    See chapters 2 (temperature) and 3 (the causal mask).
    """

    _esm = _HERE / "explorer.js"
    _css = _HERE / "explorer.css"

    title = traitlets.Unicode("").tag(sync=True)
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
        if isinstance(tokens, str):
            raise ValueError("AttentionExplorer: tokens must be a list of strings, not one string")
        tokens = [str(t) for t in tokens]
        key_tokens = tokens if key_tokens is None else [str(t) for t in key_tokens]
        temperature = _check_temperature(temperature)
        have_qk = query is not None or key is not None
        if have_qk and weights is not None:
            raise ValueError("AttentionExplorer: give either query and key, or weights, not both")
        if not have_qk and weights is None:
            raise ValueError(
                "AttentionExplorer: give either query (L, E) and key (S, E), or weights (L, S) "
                "or (H, L, S)"
            )

        if have_qk:
            if query is None or key is None:
                missing = "key" if key is None else "query"
                raise ValueError(
                    f"AttentionExplorer: query and key go together; {missing} is missing"
                )
            q, k = _as_array(query, "query"), _as_array(key, "key")
            for name, arr, shape in (("query", q, "(L, E)"), ("key", k, "(S, E)")):
                if arr.ndim != 2:
                    raise ValueError(
                        f"AttentionExplorer: {name} must be 2-D {shape}, got shape {arr.shape}"
                    )
            if q.shape[1] != k.shape[1]:
                raise ValueError(
                    f"AttentionExplorer: query {q.shape} and key {k.shape} must share their last "
                    f"size E (dot-product scores need q and k of the same length)"
                )
            L, S = q.shape[0], k.shape[0]
            if scale is None:
                scale = 1.0 / math.sqrt(q.shape[1]) if q.shape[1] else 1.0
            elif not math.isfinite(float(scale)):
                raise ValueError(f"AttentionExplorer: scale must be a finite number, got {scale!r}")
            stack = None
            n_matrices = 1
            shapes = f"query {q.shape}"
        else:
            if scale is not None:
                raise ValueError(
                    "AttentionExplorer: scale applies to query and key; weights are used as given"
                )
            w = _as_array(weights, "weights")
            if w.ndim == 2:
                w = w[None]
            elif w.ndim != 3:
                raise ValueError(
                    f"AttentionExplorer: weights must be 2-D (L, S) or 3-D (H, L, S), got shape "
                    f"{w.shape}"
                )
            if (w < 0).any():
                raise ValueError(
                    f"AttentionExplorer: weights must be non-negative (they are used as "
                    f"probabilities); the smallest is {w.min():.4g}"
                )
            n_matrices, L, S = w.shape
            stack = w
            scale = 1.0
            shapes = f"weights {tuple(weights.shape) if hasattr(weights, 'shape') else w.shape}"

        if len(tokens) != L:
            raise ValueError(
                f"AttentionExplorer: tokens has {len(tokens)} entries but {shapes} has L = {L} "
                f"queries"
            )
        if len(key_tokens) != S:
            raise ValueError(
                f"AttentionExplorer: key_tokens has {len(key_tokens)} entries but there are "
                f"S = {S} keys ({'key ' + str(k.shape) if stack is None else shapes})"
            )
        if layer_labels is None:
            labels = [f"matrix {h}" for h in range(n_matrices)]
        else:
            if isinstance(layer_labels, str):
                raise ValueError("AttentionExplorer: layer_labels must be a list of strings")
            labels = [str(name) for name in layer_labels]
            if len(labels) != n_matrices:
                raise ValueError(
                    f"AttentionExplorer: layer_labels has {len(labels)} names but there are "
                    f"{n_matrices} matrices ({shapes})"
                )

        super().__init__(
            title=str(title),
            tokens=tokens,
            key_tokens=key_tokens,
            mode="qk" if stack is None else "weights",
            query=_to_lists(q) if stack is None else [],
            key=_to_lists(k) if stack is None else [],
            weights=[] if stack is None else _to_lists(stack),
            scale=float(scale),
            layer_labels=labels,
            temperature=temperature,
            causal=bool(causal),
        )

    # -- validation of the synced traits (the browser may set them too) --------------------------
    @traitlets.validate("temperature")
    def _valid_temperature(self, proposal):
        return _check_temperature(proposal["value"])

    @traitlets.validate("selected")
    def _valid_selected(self, proposal):
        i, L = proposal["value"], len(self.tokens)
        if not 0 <= i < max(L, 1):
            raise ValueError(
                f"AttentionExplorer: selected must be a query row in [0, {L}), got {i}"
            )
        return i

    @traitlets.validate("layer")
    def _valid_layer(self, proposal):
        h, n = proposal["value"], max(len(self.layer_labels), 1)
        if not 0 <= h < n:
            raise ValueError(f"AttentionExplorer: layer must be in [0, {n}), got {h}")
        return h

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(H, L, S)``: the number of matrices, queries and keys."""
        return len(self.layer_labels), len(self.tokens), len(self.key_tokens)

    def __repr__(self) -> str:
        H, L, S = self.shape
        return f"AttentionExplorer(L={L}, S={S}, matrices={H})"
