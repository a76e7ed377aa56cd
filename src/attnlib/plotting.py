"""Attention heatmaps: queries down the side, keys along the top, one colour per weight."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.rcParams.setdefault("svg.hashsalt", "attnlib")  # stable ids in saved SVGs
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

__all__ = ["heatmap", "save"]


def _as_matrix(weights) -> np.ndarray:
    w = weights.detach().float().cpu().numpy() if isinstance(weights, torch.Tensor) else weights
    w = np.asarray(w, dtype=float)
    if w.ndim != 2:
        raise ValueError(
            f"heatmap: weights must be a 2-D matrix (L, S); got shape {w.shape}. "
            "Select one example and one head first, e.g. weights[0, h]."
        )
    return w


def heatmap(
    weights,
    query_tokens: Sequence[str] | None = None,
    key_tokens: Sequence[str] | None = None,
    *,
    ax: plt.Axes | None = None,
    title: str | None = None,
    annotate: bool | None = None,
    cmap: str = "Blues",
    vmax: float | None = None,
    colorbar: bool = True,
) -> plt.Figure:
    """Draw an attention matrix with token labels on both axes.

    Args:
        weights: ``(L, S)`` tensor or array; row ``i`` is query ``i``'s distribution over keys.
        query_tokens: ``L`` labels for the rows (defaults to positions).
        key_tokens: ``S`` labels for the columns (defaults to ``query_tokens`` when ``L == S``).
        ax: draw into this axes instead of a new figure.
        title: a title for the axes.
        annotate: write each weight in its cell (default: when the matrix is at most 12 x 12).
        cmap: a matplotlib colour map.
        vmax: top of the colour scale (default: 1.0 for weights in [0, 1], else the maximum).
        colorbar: add a colour bar.

    Returns:
        The matplotlib figure; save it as SVG and PNG with :func:`save`.
    """
    w = _as_matrix(weights)
    L, S = w.shape
    if key_tokens is None and query_tokens is not None and L == S:
        key_tokens = query_tokens
    for name, labels, n in (("query_tokens", query_tokens, L), ("key_tokens", key_tokens, S)):
        if labels is not None and len(labels) != n:
            raise ValueError(
                f"heatmap: {name} has {len(labels)} labels but weights of shape {w.shape} "
                f"need {n}"
            )
    if vmax is None:
        vmax = 1.0 if (w.min() >= 0 and w.max() <= 1) else float(w.max())
    if ax is None:
        fig, ax = plt.subplots(figsize=(0.45 * S + 2.2, 0.45 * L + 1.4), layout="constrained")
    else:
        fig = ax.figure
    image = ax.imshow(w, cmap=cmap, vmin=min(0.0, float(w.min())), vmax=vmax, aspect="auto")
    ax.set_xticks(range(S), key_tokens if key_tokens is not None else range(S), rotation=60,
                  ha="right", rotation_mode="anchor")
    ax.set_yticks(range(L), query_tokens if query_tokens is not None else range(L))
    ax.set_xlabel("key")
    ax.set_ylabel("query")
    if title:
        ax.set_title(title)
    if annotate is None:
        annotate = L <= 12 and S <= 12
    if annotate:
        for i in range(L):
            for j in range(S):
                dark = w[i, j] > 0.6 * vmax
                ax.text(j, i, f"{w[i, j]:.2f}", ha="center", va="center", fontsize=8,
                        color="white" if dark else "black")
    if colorbar:
        fig.colorbar(image, ax=ax, shrink=0.8)
    return fig


def save(fig: plt.Figure, path: str | Path, formats: Sequence[str] = ("svg", "png")) -> list[Path]:
    """Save ``fig`` once per format: ``save(fig, "figs/heads")`` writes heads.svg and heads.png.

    Returns:
        The paths written.
    """
    stem = Path(path)
    stem.parent.mkdir(parents=True, exist_ok=True)
    written = []
    for fmt in formats:
        out = stem.with_suffix(f".{fmt}")
        fig.savefig(out, format=fmt, dpi=150, bbox_inches="tight")
        written.append(out)
    return written
