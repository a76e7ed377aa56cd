"""Positions and offsets, live: sinusoidal dot products and rotary scores against the distance.

:class:`PositionExplorer` sends one query and one key vector to the browser, once. The browser
(positions.js) recomputes, with the arithmetic of :mod:`attnlib.positional`, two curves over the
key positions ``j = 0 .. length - 1`` for the query position ``i`` the reader picks:

* the sinusoidal encodings' dot product ``PE_i . PE_j``
  (:func:`~attnlib.positional.sinusoidal_encoding`);
* the rotary score ``RoPE(q, i) . RoPE(k, j)`` (:func:`~attnlib.positional.apply_rope`),

and redraws them when the reader changes the size ``dim``, the ``base``, the position ``i`` or the
frequency pair whose own term is drawn beside the sum. Both curves slide with ``i`` without
changing shape: they depend on the offset ``j - i`` only. No kernel is needed, so the published
chapter stays interactive.

Shape legend (book/notation.md): D model size (the sinusoids), E head size (RoPE); the widget's
one ``dim`` is both.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import traitlets

from .._checks import prefix
from ..positional import apply_rope, sinusoidal_encoding
from . import _base

__all__ = ["PositionExplorer", "BASE_MIN", "BASE_MAX", "OFFSETS"]

_WHERE = "PositionExplorer"
BASE_MIN, BASE_MAX = 10.0, 1e6
"""The range of ``base`` the browser's slider covers (quarter steps of a power of ten)."""
OFFSETS = (-4, -1, 0, 1, 4)
"""The offsets ``j - i`` whose values the widget prints under its charts."""
_DECIMALS = 3  # the query and key travel with 3 decimals


def _check_int(value, name: str, low: int, high: int, what: str = "") -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{prefix(_WHERE)}{name} must be an int, got {value!r}")
    if not low <= int(value) <= high:
        raise ValueError(f"{prefix(_WHERE)}{name} must be {what}in [{low}, {high}], got {value}")
    return int(value)


def _check_dim(value, max_dim: int) -> int:
    dim = _check_int(value, "dim", 2, max_dim, "an even size ")
    if dim % 2:
        raise ValueError(
            f"{prefix(_WHERE)}dim must be even: the dimensions come in pairs, got dim = {dim}"
        )
    return dim


def _check_base(value) -> float:
    base = _base.positive_number(value, "base", _WHERE)
    if not BASE_MIN <= base <= BASE_MAX:
        raise ValueError(
            f"{prefix(_WHERE)}base must be in [{BASE_MIN:g}, {BASE_MAX:g}] (the slider's range), "
            f"got {value!r}"
        )
    return base


def _vector(x, name: str) -> list[float]:
    arr = _base.finite(_base.numeric(x, name, _WHERE, "(E,)"), name, _WHERE)
    _base.ndim(arr, 1, name, _WHERE, "1-D (E,)")
    if arr.size < 2 or arr.size % 2:
        raise ValueError(
            f"{prefix(_WHERE)}{name} must have an even size >= 2 (RoPE turns pairs of "
            f"dimensions), got shape {arr.shape}"
        )
    return _base.rounded(arr, _DECIMALS)


class PositionExplorer(_base.Widget, view="positions"):
    """Sinusoidal dot products and rotary scores against the offset, recomputed in the browser.

    Two charts over the key positions ``j = 0 .. length - 1``: the sinusoidal encodings' dot
    product ``PE_i . PE_j`` and the rotary score ``RoPE(q, i) . RoPE(k, j)`` of one query and
    one key vector (the first ``dim`` entries of ``query`` and ``key``), each with the term of
    one frequency pair drawn beside it. The reader changes the size ``dim``, the ``base``, the
    query position ``i`` and the pair. Make it the last expression of a cell.

    Args:
        query: ``(E,)`` the query vector before rotation (tensor on any device, array or list);
            ``E`` even, the largest ``dim`` the slider offers. Sent with 3 decimals.
        key: ``(E,)`` the key vector before rotation, the same size.
        dim: the starting size (even, ``2 .. E``).
        base: the starting base, in ``[10, 1e6]`` (10000 in the papers).
        position: the starting query position ``i``, in ``[0, length)``.
        pair: the starting frequency pair, in ``[0, dim / 2)``.
        length: the number of key positions drawn, 8 to 256.
        title: a heading shown above the widget.

    Synced traits: ``dim``, ``base``, ``position``, ``pair``.

    See the chapter "Positions and the Transformer block".
    """

    query = traitlets.List(traitlets.Float()).tag(sync=True)  # (E,)
    key = traitlets.List(traitlets.Float()).tag(sync=True)  # (E,)
    length = traitlets.Int(64).tag(sync=True)
    offsets = traitlets.List(traitlets.Int(), default_value=list(OFFSETS)).tag(sync=True)

    dim = traitlets.Int(16).tag(sync=True)
    base = traitlets.Float(10000.0).tag(sync=True)
    position = traitlets.Int(0).tag(sync=True)
    pair = traitlets.Int(0).tag(sync=True)

    def __init__(
        self,
        query,
        key,
        *,
        dim: int = 16,
        base: float = 10000.0,
        position: int = 20,
        pair: int = 0,
        length: int = 64,
        title: str = "",
    ) -> None:
        q, k = _vector(query, "query"), _vector(key, "key")
        if len(q) != len(k):
            raise ValueError(
                f"{prefix(_WHERE)}query ({len(q)},) and key ({len(k)},) must have the same size E"
            )
        length = _check_int(length, "length", 8, 256)
        dim = _check_dim(dim, len(q))
        super().__init__(
            title=title, query=q, key=k, length=length, dim=dim, base=_check_base(base),
            position=_check_int(position, "position", 0, length - 1),
            pair=_check_int(pair, "pair", 0, dim // 2 - 1),
        )

    # -- validation of the synced traits (the browser may set them too) --------------------------
    @traitlets.validate("dim")
    def _valid_dim(self, proposal):
        return _check_dim(proposal["value"], len(self.query))

    @traitlets.observe("dim")
    def _pair_within_dim(self, change):
        if self.pair >= change["new"] // 2:  # fewer pairs now: the highest one remains
            self.pair = change["new"] // 2 - 1

    @traitlets.validate("base")
    def _valid_base(self, proposal):
        return _check_base(proposal["value"])

    @traitlets.validate("position")
    def _valid_position(self, proposal):
        return _check_int(proposal["value"], "position", 0, self.length - 1)

    @traitlets.validate("pair")
    def _valid_pair(self, proposal):
        return _check_int(proposal["value"], "pair", 0, self.dim // 2 - 1)

    # -- what the browser shows, computed here with attnlib.positional ---------------------------
    def sinusoidal_dots(self) -> torch.Tensor:
        """``(length,)`` float64: ``PE_i . PE_j`` for every key position ``j``, ``i = position``."""
        pe = sinusoidal_encoding(self.length, self.dim, base=self.base, dtype=torch.float64)
        return pe @ pe[self.position]  # (length,)

    def _rotated(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The query rotated to ``position``, ``(1, E)``, and the key at every position,
        ``(length, E)``."""
        E = self.dim
        q = torch.tensor(self.query[:E], dtype=torch.float64)[None]  # (1, E)
        k = torch.tensor(self.key[:E], dtype=torch.float64).expand(self.length, E)  # (length, E)
        q_rot = apply_rope(q, torch.tensor([self.position]), base=self.base)  # (1, E)
        k_rot = apply_rope(k, torch.arange(self.length), base=self.base)  # (length, E)
        return q_rot, k_rot

    def rope_scores(self) -> torch.Tensor:
        """``(length,)`` float64: ``RoPE(q, i) . RoPE(k, j)`` for every key position ``j``."""
        q_rot, k_rot = self._rotated()
        return k_rot @ q_rot[0]  # (length,)

    def pair_terms(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The chosen pair's own term in each sum, ``(length,)`` each: the sinusoidal term
        ``cos((j - i) omega_pair)`` (columns ``2 pair, 2 pair + 1``) and the rotary term
        (dimensions ``pair`` and ``pair + dim / 2``, the rotate-half layout)."""
        pe = sinusoidal_encoding(self.length, self.dim, base=self.base, dtype=torch.float64)
        cols = pe[:, 2 * self.pair : 2 * self.pair + 2]  # (length, 2)
        q_rot, k_rot = self._rotated()
        dims = [self.pair, self.pair + self.dim // 2]
        return cols @ cols[self.position], k_rot[:, dims] @ q_rot[0, dims]

    def wavelength(self) -> float:
        """How many positions the chosen pair needs for one full turn: ``2 pi / omega_pair``."""
        return 2 * math.pi * self.base ** (2 * self.pair / self.dim)

    def __repr__(self) -> str:
        return (
            f"PositionExplorer(dim={self.dim}, base={self.base:g}, position={self.position}, "
            f"pair={self.pair}, length={self.length})"
        )

    def _static_figure(self, fig) -> str:
        """The stored picture: both dot products against the key position, as the charts."""
        j = np.arange(self.length)
        curves = (("sinusoidal: PE_i . PE_j", self.sinusoidal_dots()),
                  ("rotary: RoPE(q, i) . RoPE(k, j)", self.rope_scores()))
        for n, (name, values) in enumerate(curves):
            ax = fig.add_subplot(2, 1, n + 1)
            ax.plot(j, values.numpy(), color="#1f5fa8", linewidth=1.2)
            ax.axvline(self.position, color="#b03a2e", linewidth=0.8, linestyle="--")
            ax.set_title(name)
            ax.set_ylabel("dot product")
        ax.set_xlabel(f"key position j (query at i = {self.position})")
        return (f"Two line charts against the key position j from 0 to {self.length - 1}, the "
                f"query at position {self.position} (dashed line): the sinusoidal dot product "
                f"PE_i . PE_j and the rotary score RoPE(q, i) . RoPE(k, j), dim {self.dim}, base "
                f"{self.base:g}.")
