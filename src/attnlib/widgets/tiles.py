"""Step through FlashAttention's tiles and watch the online softmax at work (the chapter on the
cost of attention).

:class:`OnlineSoftmaxTiles` runs :func:`attnlib.efficient.online_softmax_trace` once, in Python,
and sends every recorded step to the browser: which tile of the score matrix is being processed,
its scores, and after it, for every query, the running maximum ``m``, the running sum ``l`` and
the running output. The browser (tiles.js) only displays the steps, so the widget works in the
static book without a kernel. Buttons, a slider and the arrow keys move through the steps.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import traitlets

from . import _base

__all__ = ["OnlineSoftmaxTiles"]

_WHERE = "OnlineSoftmaxTiles"
_MAX_SIZE = 24  # queries or keys: beyond this the grid stops being readable


def _matrix(x, name: str, shape: str) -> torch.Tensor:
    """One head's ``(rows, columns)`` matrix as a float64 tensor, checked."""
    arr = _base.numeric(x, name, _WHERE, shape)
    _base.ndim(arr, 2, name, _WHERE, f"2-D {shape} (one head)")
    return torch.from_numpy(_base.finite(arr, name, _WHERE))


def _tokens(tokens, n: int, name: str, what: str) -> list[str]:
    if tokens is None:
        return [str(i) for i in range(n)]
    out = _base.labels(tokens, name, _WHERE)
    return _base.count(out, n, name, _WHERE, f"there are {n} {what}")


class OnlineSoftmaxTiles(_base.Widget, view="tiles"):
    """Step through the tiles of a tiled attention with an online softmax.

    The score matrix is drawn as a grid cut into tiles of ``query_block x key_block``. At each
    step one tile is computed (its scores appear), the tiles already processed fade (their scores
    are no longer stored: only ``m``, ``l`` and the output survive), and a table shows, for
    every query, the running maximum ``m``, the running sum ``l``, the factor ``exp(m_old -
    m_new)`` that rescaled the old sums, and the running output, next to the exact output it
    converges to. Make it the last expression of a cell. The buttons, the slider or the arrow keys
    (on the focused widget) step it, and each step is announced to a screen reader.

    Args:
        query: ``(L, E)`` one head's queries (tensor on any device, array or nested lists).
        key: ``(S, E)``.
        value: ``(S, Ev)``; keep ``Ev`` small (2 to 4) so the outputs fit in the table.
        block_size: keys per tile, or ``(query_block, key_block)``.
        tokens: ``L`` query labels (default ``"0"``, ``"1"``, ...).
        key_tokens: ``S`` key labels (default ``"0"``, ``"1"``, ...).
        is_causal: skip the tiles above the diagonal and mask the keys after each query.
        scale: the score scale, default ``1 / sqrt(E)``.
        title: a heading shown above the widget.

    Synced trait: ``step``, the index of the step shown (0 = after the first tile).

    See the chapter "The cost of attention and how to cut it", "Exact and fast: tiles and an
    online softmax".
    """

    tokens = traitlets.List(traitlets.Unicode()).tag(sync=True)
    key_tokens = traitlets.List(traitlets.Unicode()).tag(sync=True)
    block = traitlets.List(traitlets.Int()).tag(sync=True)  # [query_block, key_block]
    causal = traitlets.Bool(False).tag(sync=True)
    steps = traitlets.List().tag(sync=True)  # one dict per tile, see _step_state
    exact = traitlets.List().tag(sync=True)  # (L, Ev) the exact attention output
    step = traitlets.Int(0).tag(sync=True)

    def __init__(
        self,
        query,
        key,
        value,
        *,
        block_size: int | tuple[int, int] = 2,
        tokens: Sequence[str] | None = None,
        key_tokens: Sequence[str] | None = None,
        is_causal: bool = False,
        scale: float | None = None,
        title: str = "",
    ) -> None:
        from ..attention import scaled_dot_product_attention
        from ..efficient.flash import check_block_size, online_softmax_trace

        q = _matrix(query, "query", "(L, E)")
        k = _matrix(key, "key", "(S, E)")
        v = _matrix(value, "value", "(S, Ev)")
        L, S = q.size(0), k.size(0)
        if L == 0 or S == 0:
            raise ValueError(
                f"OnlineSoftmaxTiles: needs at least one query and one key, got query "
                f"{tuple(q.shape)} and key {tuple(k.shape)}"
            )
        if max(L, S) > _MAX_SIZE:
            raise ValueError(
                f"OnlineSoftmaxTiles: at most {_MAX_SIZE} queries and keys fit on screen, got "
                f"L = {L} and S = {S}"
            )
        block_q, block_k = check_block_size(block_size, "OnlineSoftmaxTiles: block_size")
        trace = online_softmax_trace(
            q, k, v, is_causal, scale=scale, block_size=(block_q, block_k)
        )
        exact, _ = scaled_dot_product_attention(q, k, v, is_causal=is_causal, scale=scale)
        super().__init__(
            title=title,
            tokens=_tokens(tokens, L, "tokens", "queries"),
            key_tokens=_tokens(key_tokens, S, "key_tokens", "keys"),
            block=[block_q, block_k],
            causal=bool(is_causal),
            steps=[self._step_state(s) for s in trace],
            exact=_base.rounded(exact),
        )

    @staticmethod
    def _step_state(s) -> dict:
        return {
            "rows": list(s.query_block),
            "cols": list(s.key_block),
            "scores": _base.rounded(s.scores),  # -inf (masked) travels as null
            "m": _base.rounded(s.m),
            "l": _base.rounded(s.l),
            "out": _base.rounded(s.output),
            "rescale": _base.rounded(s.rescale),
        }

    @traitlets.validate("step")
    def _valid_step(self, proposal):
        return _base.index(proposal["value"], len(self.steps), "step", _WHERE)

    @property
    def num_steps(self) -> int:
        """How many tiles the loop visits."""
        return len(self.steps)

    def __repr__(self) -> str:
        bq, bk = self.block
        return (
            f"OnlineSoftmaxTiles(L={len(self.tokens)}, S={len(self.key_tokens)}, "
            f"block=({bq}, {bk}), steps={self.num_steps})"
        )

    def _static_figure(self, fig) -> str:
        """The stored picture: which tiles the loop has visited by the current step."""
        import numpy as np

        L, S = len(self.tokens), len(self.key_tokens)
        grid = np.zeros((L, S))
        for n, s in enumerate(self.steps[: self.step + 1]):
            (r0, r1), (c0, c1) = s["rows"], s["cols"]  # [start, end) of the query and key block
            grid[r0:r1, c0:c1] = 1.0 if n == self.step else 0.4
        now = self.steps[self.step]
        title = f"tile {self.step + 1} of {self.num_steps} (dark), earlier tiles light"
        _base.picture_heatmap(fig, grid, self.tokens, self.key_tokens, title, colorbar=False)
        return (f"Grid of {L} queries by {S} keys in tiles of {self.block[0]} by "
                f"{self.block[1]}: tile {self.step + 1} of {self.num_steps} (queries "
                f"{now['rows'][0]} to {now['rows'][1] - 1}, keys {now['cols'][0]} to "
                f"{now['cols'][1] - 1}) is dark, the tiles visited before it are light.")
