"""Step through an encoder-decoder's output one character at a time, and see where it looks.

:class:`DecodingStepper` receives, once, a few finished translations: the source characters, the
characters the decoder produced, and the attention weights of every decoding step. The browser
(decoding.js) shows the source as a strip of characters shaded by the current step's weights, the
output written so far, and the whole alignment as a small heatmap with the current step outlined.
Buttons, a slider and the arrow keys move through the steps; a selector picks the example. That
needs no kernel, so the published chapter stays interactive. With a kernel, :meth:`add` runs the
model on any new text and sends the result.

:meth:`DecodingStepper.live` sends the model itself instead: the weights of a trained Bahdanau
encoder-decoder, packed as float32 (:func:`attnlib.widgets._pack.pack_tensors`), and both
vocabularies. The page then runs the encoder and the greedy decoder on whatever the reader types
(decoding.js, over the arithmetic of ``_nn.js``), with no kernel; setting :attr:`text` from Python
goes through the same JavaScript.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import traitlets

from . import _base

__all__ = ["DecodingStepper", "EOS"]

_WHERE = "DecodingStepper"
SCALE = _base.SCALE  # weights travel as integers in thousandths, one string per example
#: How the end-of-sequence token is shown in the output.
EOS = "</s>"


def _weights_array(weights, where: str) -> np.ndarray:
    """One example's ``(L, S)`` weights, checked."""
    name = f"{where} weights"
    arr = _base.numeric(weights, name, _WHERE)
    _base.ndim(arr, 2, name, _WHERE, "2-D (output steps L, source length S)")
    if not np.isfinite(arr).all() or (arr < 0).any():
        raise ValueError(f"{_WHERE}: {name} must be finite and non-negative attention weights")
    return arr


def _example(source, output, weights, label, where: str) -> dict:
    if isinstance(source, str):
        source = list(source)
    if isinstance(output, str):
        output = list(output)
    source = [str(c) for c in source]
    output = [str(c) for c in output]
    arr = _weights_array(weights, where)
    L, S = arr.shape
    if len(output) != L:
        raise ValueError(
            f"DecodingStepper: {where} has {len(output)} output tokens but weights for {L} steps "
            f"(weights are (L, S): one row per output token)"
        )
    if len(source) != S:
        raise ValueError(
            f"DecodingStepper: {where} has {len(source)} source tokens but weights over {S} "
            f"positions (weights are (L, S): one column per source token)"
        )
    if L == 0 or S == 0:
        raise ValueError(f"DecodingStepper: {where} is empty (weights of shape {arr.shape})")
    return {
        "label": str(label) if label is not None else "".join(source),
        "source": source,
        "output": output,
        "weights": _base.pack_thousandths(arr),
    }


class DecodingStepper(_base.Widget, view="decoding"):
    """Decoding, one output character at a time, with the attention weights of each step.

    Make it the last expression of a cell. Build it from finished examples, from a model with
    :meth:`from_model`, or with :meth:`live` to send the model itself, which the page then runs
    on whatever the reader types. The buttons, the slider or the arrow keys (on the focused
    widget or the output so far) step it, and each step is announced to a screen reader.

    Args:
        examples: a list of ``(source, output, weights)`` or ``(source, output, weights, label)``:
            ``source`` the ``S`` source tokens (a string is split into characters), ``output``
            the ``L`` tokens the decoder produced (include :data:`EOS` if the model stopped), and
            ``weights`` ``(L, S)``: row ``t`` is where step ``t`` attended (a tensor on any
            device, an array or nested lists). Sent rounded to 3 decimals.
        title: a heading above the widget.
        example: which example to show first.
        step: which step to show first.

    Synced traits: ``example`` (the example shown) and ``step`` (the current output position,
    0-based); for a widget made by :meth:`live`, also ``text`` (the source the page translates)
    and ``live_model`` (the model's weights, vocabularies and sizes).

    See the chapter "Attention in RNN encoder-decoders".
    """

    examples = traitlets.List(traitlets.Dict()).tag(sync=True)
    example = traitlets.Int(0).tag(sync=True)
    step = traitlets.Int(0).tag(sync=True)
    text = traitlets.Unicode("").tag(sync=True)
    live_model = traitlets.Dict({}).tag(sync=True)

    def __init__(
        self,
        examples: Sequence[tuple],
        *,
        title: str = "",
        example: int = 0,
        step: int = 0,
    ) -> None:
        if not isinstance(examples, (list, tuple)) or not examples:
            raise ValueError("DecodingStepper: examples must be a non-empty list of tuples")
        packed = []
        for i, ex in enumerate(examples):
            if not isinstance(ex, (list, tuple)) or len(ex) not in (3, 4):
                raise ValueError(
                    f"DecodingStepper: example {i} must be (source, output, weights) or "
                    f"(source, output, weights, label)"
                )
            source, output, weights, *label = ex
            packed.append(
                _example(source, output, weights, label[0] if label else None, f"example {i}")
            )
        self._model = None
        self._vocabs = None
        super().__init__(title=title, examples=packed)
        self.example = example
        self.step = step

    @classmethod
    def from_model(
        cls,
        model,
        texts: Sequence[str],
        src_vocab,
        tgt_vocab,
        *,
        labels: Sequence[str] | None = None,
        title: str = "",
        max_len: int = 12,
    ) -> DecodingStepper:
        """Translate ``texts`` greedily with an attentive :class:`attnlib.rnn.EncoderDecoder` and
        show the results; the model is kept (on the Python side only) for :meth:`add`.

        Args:
            model: a trained encoder-decoder with attention.
            texts: the source texts.
            src_vocab, tgt_vocab: the :class:`attnlib.data.dates.CharVocab` of each side.
            labels: a name for each text in the selector (e.g. its locale).
            title: a heading above the widget.
            max_len: the most output characters to generate.
        """
        if labels is not None and len(labels) != len(texts):
            raise ValueError(
                f"DecodingStepper.from_model: {len(labels)} labels for {len(texts)} texts"
            )
        examples = [
            cls._translate(
                model, text, src_vocab, tgt_vocab, max_len, None if labels is None else labels[i]
            )
            for i, text in enumerate(texts)
        ]
        widget = cls(examples, title=title)
        widget._model = model
        widget._vocabs = (src_vocab, tgt_vocab, max_len)
        return widget

    @staticmethod
    def _translate(model, text: str, src_vocab, tgt_vocab, max_len: int, label) -> tuple:
        from attnlib.models.rnn import greedy_decode

        if not getattr(model, "attends", False):
            raise ValueError("DecodingStepper: the model has no attention weights to show")
        if not isinstance(text, str) or not text:
            raise ValueError(
                f"DecodingStepper: a source text must be a non-empty str, got {text!r}"
            )
        dev = next(model.parameters()).device
        src, lengths = src_vocab.encode([text])
        ids, weights = greedy_decode(model, src.to(dev), lengths.to(dev), max_len)
        tokens = []
        for i in ids[0].tolist():  # one token per step, up to and including eos
            tokens.append(EOS if i == model.eos_id else tgt_vocab.itos[i])
            if i == model.eos_id:
                break
        return (text, tokens, weights[0, : len(tokens)].cpu(), text if label is None else label)

    @classmethod
    def live(
        cls,
        model,
        src_vocab,
        tgt_vocab,
        *,
        text: str,
        title: str = "",
        max_len: int = 12,
        max_source: int = 64,
    ) -> DecodingStepper:
        """A stepper that translates in the page: the reader types a source text and the
        browser runs ``model`` on it (the bidirectional GRU encoder, then the Bahdanau decoder
        greedily, exactly :func:`attnlib.models.rnn.greedy_decode`'s arithmetic), then steps
        through the output with its attention.

        The widget's state carries the model's weights as float32 (:meth:`weight_bytes` says
        how many bytes) and both vocabularies. Setting :attr:`text` from Python sends the text
        to the page, which translates it with the same JavaScript; :attr:`examples` then holds
        what the page computed. A character outside ``src_vocab`` is read as ``<unk>`` (as
        :meth:`attnlib.data.dates.CharVocab.encode` does) and the page names it; an empty text
        gets a message; a text longer than ``max_source`` characters is cut, with a note.

        Args:
            model: a trained :class:`attnlib.models.rnn.EncoderDecoder` with a
                :class:`attnlib.models.rnn.BahdanauDecoder`.
            src_vocab, tgt_vocab: the :class:`attnlib.data.dates.CharVocab` of each side.
            text: the source shown first (translated in Python too, for the stored picture).
            title: a heading above the widget.
            max_len: the most output characters to generate (as ``greedy_decode``'s
                ``max_len``).
            max_source: the most source characters the page reads (the GRUs have no limit of
                their own; this one keeps every translation quick).
        """
        from attnlib.models.rnn import BahdanauDecoder, EncoderDecoder

        from ._pack import pack_tensors

        where = "DecodingStepper.live"
        if not isinstance(model, EncoderDecoder) or not isinstance(
            model.decoder, BahdanauDecoder
        ):
            raise ValueError(
                f"{where}: model must be an attnlib.rnn.EncoderDecoder with a BahdanauDecoder "
                f"(rnn.build('bahdanau', ...)), got {type(model).__name__} with "
                f"{type(getattr(model, 'decoder', None)).__name__}"
            )
        for name, value in (("max_len", max_len), ("max_source", max_source)):
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{where}: {name} must be a positive int, got {value!r}")
        enc, dec = model.encoder, model.decoder
        sizes = {
            "src_vocab": enc.embed.num_embeddings,
            "tgt_vocab": dec.embed.num_embeddings,
            "embed": enc.embed.embedding_dim,
            "dec_embed": dec.embed.embedding_dim,
            "hidden": dec.init.out_features,
            "score": dec.score.W_q.shape[0],
        }
        if not isinstance(text, str) or not text:
            raise ValueError(f"{where}: text must be a non-empty str, got {text!r}")
        if len(src_vocab) != sizes["src_vocab"] or len(tgt_vocab) != sizes["tgt_vocab"]:
            raise ValueError(
                f"{where}: the vocabularies have {len(src_vocab)} and {len(tgt_vocab)} entries "
                f"but the model's embeddings {sizes['src_vocab']} and {sizes['tgt_vocab']}"
            )
        manifest, blob = pack_tensors(
            {name: p for name, p in model.state_dict().items()}
        )  # float32, under PyTorch's own parameter names
        widget = cls(
            [cls._translate(model, text[:max_source], src_vocab, tgt_vocab, max_len, text)],
            title=title,
        )
        widget.live_model = {
            "manifest": manifest,
            "blob": blob,
            "src_itos": list(src_vocab.itos),
            "tgt_itos": list(tgt_vocab.itos),
            "sizes": sizes,
            "bos": model.bos_id,
            "eos": model.eos_id,
            "unk": src_vocab.unk_id,
            "max_len": max_len,
            "max_source": max_source,
        }
        widget.text = text
        return widget

    def weight_bytes(self) -> int:
        """The size of the weights this widget sends, in bytes (decoded; base64 adds a third)."""
        blob = self.live_model.get("blob", "")
        return len(blob) * 3 // 4 - blob[-2:].count("=")

    def add(self, text: str, label: str | None = None) -> int:
        """Translate ``text`` with the model given to :meth:`from_model`, add it, and show it.

        Needs a running kernel (the model runs in Python). Returns the new example's index.
        """
        if self.live_model:
            raise RuntimeError(
                "DecodingStepper.add: this widget translates in the page; set its text instead "
                "(widget.text = ...)"
            )
        if self._model is None:
            raise RuntimeError(
                "DecodingStepper.add needs a model: build the widget with "
                "DecodingStepper.from_model"
            )
        src_vocab, tgt_vocab, max_len = self._vocabs
        source, output, weights, label = self._translate(
            self._model, text, src_vocab, tgt_vocab, max_len, label
        )
        new = _example(source, output, weights, label, f"text {text!r}")
        self.examples = [*self.examples, new]
        self.step = 0
        self.example = len(self.examples) - 1
        return self.example

    @traitlets.validate("example")
    def _valid_example(self, proposal):
        return _base.index(proposal["value"], len(self.examples), "example", _WHERE)

    @traitlets.validate("step")
    def _valid_step(self, proposal):
        L = len(self.examples[self.example]["output"])
        return _base.index(proposal["value"], L, "step", _WHERE)

    @traitlets.observe("example")
    def _reset_step(self, change) -> None:
        L = len(self.examples[change["new"]]["output"])
        if self.step >= L:
            self.step = L - 1

    def weights_of(self, example: int | None = None) -> np.ndarray:
        """The ``(L, S)`` weights the browser shows for ``example`` (default: the current one)."""
        ex = self.examples[self.example if example is None else example]
        return _base.unpack_thousandths(ex["weights"], (len(ex["output"]), len(ex["source"])))

    def __repr__(self) -> str:
        if self.live_model:
            return f"DecodingStepper(live, text={self.text!r})"
        return f"DecodingStepper(examples={len(self.examples)})"

    def _static_figure(self, fig) -> str:
        """The stored picture: the current example's weights, output steps down the side."""
        ex = self.examples[self.example]
        out = ex["output"][self.step]
        title = f"{ex['label']}: step {self.step + 1} of {len(ex['output'])} writes {out!r}"
        _base.picture_heatmap(fig, self.weights_of(), ex["output"], ex["source"], title)
        return (f"Heatmap of the attention weights for {ex['label']!r}: one row per output "
                f"character ({''.join(ex['output'])!r}), one column per source character; step "
                f"{self.step + 1} writes {out!r}.")
