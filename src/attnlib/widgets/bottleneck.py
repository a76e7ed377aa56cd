"""The bottleneck, stepped through: one fixed vector overwritten, or every encoder state kept.

:class:`BottleneckStepper` sends an encoder-decoder's states to the browser once: the encoder's
state after each source token and the decoder's state at each output step. The browser
(bottleneck.js) shows two things, each with its own stepper:

* **without attention**, the encoder's one state vector as it reads the source: after each token
  it is overwritten, and the bars show how much it still resembles (cosine similarity) the vector
  it was after each earlier token. The last one is all a plain decoder receives;
* **with attention**, at each output step, the weights over *every* encoder state,
  ``softmax(s_t . h_j * scale)``, and the context vector ``c_t = sum_j alpha_tj h_j`` they read,

recomputing both from the states with the arithmetic of
:func:`attnlib.scaled_dot_product_attention`. No kernel is needed, so the published chapter stays
interactive.

Shape legend (book/notation.md): S source length, L output length, D state size.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import traitlets

from .._checks import prefix, resolve_scale
from ..attention import scaled_dot_product_attention
from . import _base

__all__ = ["BottleneckStepper"]

_WHERE = "BottleneckStepper"
MAX_SIZE = 4096  # S * D and L * D at most: the stored state stays a few kB


def _states(x, name: str, rows: str) -> np.ndarray:
    arr = _base.finite(_base.numeric(x, name, _WHERE, f"({rows}, D)"), name, _WHERE)
    _base.ndim(arr, 2, name, _WHERE, f"2-D ({rows}, D)")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"{prefix(_WHERE)}{name} is empty (shape {arr.shape})")
    if arr.size > MAX_SIZE:
        raise ValueError(
            f"{prefix(_WHERE)}{name} has {arr.size} numbers ({rows} * D for shape {arr.shape}); "
            f"at most {MAX_SIZE} keep the stored notebook small"
        )
    return arr


class BottleneckStepper(_base.Widget, view="bottleneck"):
    """An encoder's one fixed vector overwritten step by step, beside attention over every state.

    Make it the last expression of a cell.

    Args:
        source: the ``S`` source tokens (shown as text).
        output: the ``L`` tokens the decoder wrote.
        encoder_states: ``(S, D)``, row ``j`` the encoder's state after reading ``source[j]``
            (a tensor on any device, an array or nested lists); the last row is the fixed vector
            a decoder without attention receives. Sent with 3 decimals.
        decoder_states: ``(L, D)``, row ``t`` the decoder's state at output step ``t``: the
            query that scores every encoder state.
        scale: the score scale; defaults to ``1 / sqrt(D)``, as in
            :func:`attnlib.scaled_dot_product_attention`.
        encoder_step: the starting encoder step ``j`` in ``[0, S)`` (default: the last).
        decoder_step: the starting output step ``t`` in ``[0, L)``.
        title: a heading shown above the widget.

    Synced traits: ``encoder_step``, ``decoder_step``.

    See the chapter "The big picture: encoders, decoders, and why attention".
    """

    source = traitlets.List(traitlets.Unicode()).tag(sync=True)
    output = traitlets.List(traitlets.Unicode()).tag(sync=True)
    dim = traitlets.Int(1).tag(sync=True)  # D
    encoder = traitlets.Unicode("").tag(sync=True)  # (S, D) in thousandths, row-major
    decoder = traitlets.Unicode("").tag(sync=True)  # (L, D) in thousandths, row-major
    scale = traitlets.Float(1.0).tag(sync=True)

    encoder_step = traitlets.Int(0).tag(sync=True)
    decoder_step = traitlets.Int(0).tag(sync=True)

    def __init__(
        self,
        source: Sequence[str],
        output: Sequence[str],
        encoder_states,
        decoder_states,
        *,
        scale: float | None = None,
        encoder_step: int | None = None,
        decoder_step: int = 0,
        title: str = "",
    ) -> None:
        source = _base.labels(source, "source", _WHERE)
        output = _base.labels(output, "output", _WHERE)
        enc = _states(encoder_states, "encoder_states", "S")
        dec = _states(decoder_states, "decoder_states", "L")
        (S, D), L = enc.shape, dec.shape[0]
        if dec.shape[1] != D:
            raise ValueError(
                f"{prefix(_WHERE)}encoder_states {enc.shape} and decoder_states {dec.shape} must "
                f"share their last size D (the scores are dot products)"
            )
        _base.count(source, S, "source", _WHERE, f"encoder_states {enc.shape} has S = {S} rows")
        _base.count(output, L, "output", _WHERE, f"decoder_states {dec.shape} has L = {L} rows")
        encoder_step = S - 1 if encoder_step is None else encoder_step
        super().__init__(
            title=title, source=source, output=output, dim=D,
            encoder=_base.pack_thousandths(enc), decoder=_base.pack_thousandths(dec),
            scale=resolve_scale(scale, D, _WHERE),
            encoder_step=self._step(encoder_step, "encoder_step", S),
            decoder_step=self._step(decoder_step, "decoder_step", L),
        )

    @staticmethod
    def _step(value, name: str, n: int) -> int:
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise ValueError(f"{prefix(_WHERE)}{name} must be an int, got {value!r}")
        return _base.index(int(value), n, name, _WHERE, "a step ")

    # -- validation of the synced traits (the browser may set them too) --------------------------
    @traitlets.validate("encoder_step")
    def _valid_encoder_step(self, proposal):
        return self._step(proposal["value"], "encoder_step", len(self.source))

    @traitlets.validate("decoder_step")
    def _valid_decoder_step(self, proposal):
        return self._step(proposal["value"], "decoder_step", len(self.output))

    # -- what the browser shows, computed here -------------------------------------------------
    @property
    def shape(self) -> tuple[int, int, int]:
        """``(S, L, D)``: source length, output length, state size."""
        return len(self.source), len(self.output), self.dim

    def encoder_states(self) -> torch.Tensor:
        """``(S, D)`` float64: the encoder states as the browser has them (3 decimals)."""
        S, _, D = self.shape
        return torch.from_numpy(_base.unpack_thousandths(self.encoder, (S, D)))

    def decoder_states(self) -> torch.Tensor:
        """``(L, D)`` float64: the decoder states as the browser has them (3 decimals)."""
        _, L, D = self.shape
        return torch.from_numpy(_base.unpack_thousandths(self.decoder, (L, D)))

    def similarities(self) -> torch.Tensor:
        """``(S, S)``: entry ``[j, i]`` is the cosine similarity of the fixed vector after
        ``source[j]`` with the vector after ``source[i]`` (the bars at encoder step ``j``)."""
        h = torch.nn.functional.normalize(self.encoder_states(), dim=-1)  # (S, D)
        return h @ h.T  # (S, S)

    def attention(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(contexts (L, D), weights (L, S))``: attention of every decoder state over every
        encoder state, by :func:`attnlib.scaled_dot_product_attention` with the widget's scale."""
        h = self.encoder_states()[None]  # (1, S, D): keys and values
        s = self.decoder_states()[None]  # (1, L, D): queries
        context, weights = scaled_dot_product_attention(s, h, h, scale=self.scale)
        return context[0], weights[0]

    def __repr__(self) -> str:
        S, L, D = self.shape
        return f"BottleneckStepper(S={S}, L={L}, D={D})"

    def _static_figure(self, fig) -> str:
        """The stored picture: attention of every output step over every source state."""
        S, L, _ = self.shape
        title = "attention of each output step over the encoder states"
        _base.picture_heatmap(fig, self.attention()[1].numpy(), self.output, self.source, title)
        return (f"Heatmap of the attention weights of the {L} output steps (rows) over the {S} "
                f"encoder states (columns), the alternative to one fixed vector.")
