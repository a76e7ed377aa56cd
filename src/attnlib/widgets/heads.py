"""A head view and a model view of a Transformer's attention that keep working in the static book.

:class:`HeadView` receives, once, the attention weights of every layer and head for a few
sentences. The browser (heads.js) draws a *model view*, one thumbnail per layer and head, and a
*head view* of the chosen one: lines from each token to the tokens it attends to, or a heatmap;
hovering a token highlights its lines. Choosing a sentence, a layer, a head or a token needs no
kernel, so the published chapter stays interactive. With a kernel, :meth:`HeadView.add_sentence`
runs the model on any new sentence and sends its weights.

:meth:`HeadView.live` adds a *live mode*: the view carries BERT's vocabulary, the page tokenises
whatever the reader types (``_wordpiece.js``) and, once the reader presses "Load MiniLM", runs
all-MiniLM-L6-v2's six layers in the page (``_bert.js``, built on ``_nn.js``) and shows the
attention of that forward pass. The weights are int8 (:func:`minilm_pack`): in the published book
they come from a file the book build writes (``book/_ext/minilm_static.py``), loaded by a script
tag when the reader asks; in a running notebook the page asks the kernel, which answers with the
same bytes.

The design follows bertviz's head and model views (Vig, 2019), rebuilt as an anywidget.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache

import numpy as np
import torch
import traitlets

from . import _base

__all__ = ["HeadView", "minilm_pack", "MAX_LENGTH", "WEIGHTS_FILE"]

_WHERE = "HeadView"
SCALE = _base.SCALE  # weights travel as integers in thousandths, one string per sentence

#: The live mode's longest input in WordPiece tokens ([CLS] and [SEP] included): the truncation
#: length of the package's tokenizer.json, what sentence-transformers feeds this model.
MAX_LENGTH = 128
#: Where the book build writes the int8 weights, relative to the build's _static/ folder.
WEIGHTS_FILE = "attnlib/minilm-int8.js"
#: The global the weights file sets when a page loads it with <script src>.
WEIGHTS_GLOBAL = "attnlibMiniLM"


def _minilm_tensors(model) -> dict[str, torch.Tensor]:
    """The tensors the page's forward pass reads: the state dict without the pooler and the
    position ids (the page counts positions itself)."""
    return {
        name: t
        for name, t in model.state_dict().items()
        if not name.startswith("pooler.") and name != "embeddings.position_ids"
    }


def _int8_names(tensors: dict[str, torch.Tensor]) -> list[str]:
    """The big matrices, stored as int8: the word embeddings and every Linear weight."""
    return [n for n, t in tensors.items()
            if t.dim() == 2 and (n == "embeddings.word.weight" or n.startswith("layers."))]


#: int8 weights share one float32 scale per block of this many consecutive numbers of a row
#: (llama.cpp's Q8_0 uses the same block): a scale per whole row lets one large weight make
#: every other weight of its row coarse.
INT8_BLOCK = 32


@cache
def minilm_pack(int8: bool = True) -> tuple[list[dict], str]:
    """all-MiniLM-L6-v2's weights packed for the page (:func:`attnlib.widgets._pack.pack_tensors`).

    With ``int8`` (the default) the word embeddings and every Linear weight are int8 with a
    float32 scale per block of :data:`INT8_BLOCK` numbers along a row (each such tensor is packed
    with shape ``(numel / 32, 32)``: the same numbers in the same order, so the page reads it as
    it reads the float32 tensor); LayerNorms, biases, the position and token-type tables stay
    float32. Computed once per process. Returns ``(manifest, base64 blob)``.
    """
    from ..weights import load_minilm
    from ._pack import pack_tensors

    model, _ = load_minilm()
    tensors = _minilm_tensors(model)
    names = _int8_names(tensors) if int8 else []
    blocks = {n: (t.reshape(-1, INT8_BLOCK) if n in names else t) for n, t in tensors.items()}
    return pack_tensors(blocks, int8=names)


def minilm_tensors(manifest: list[dict], blob: str, model) -> dict[str, torch.Tensor]:
    """The tensors of a pack, in the shapes of ``model``'s state dict (int8 ones dequantised):
    what the page computes with, for loading into attnlib's model."""
    from ._pack import unpack_tensors

    own = model.state_dict()
    return {n: torch.from_numpy(a).reshape(own[n].shape)
            for n, a in unpack_tensors(manifest, blob).items()}


@cache
def minilm_script(int8: bool = True) -> str:
    """The weights file for the book: JavaScript that sets ``window.attnlibMiniLM`` to
    ``{manifest, data}`` (data: the base64 blob) when a page loads it with ``<script src>``,
    which works over file:// where fetch() does not."""
    import json

    manifest, blob = minilm_pack(int8)
    head = json.dumps({"manifest": manifest}, separators=(",", ":"))[:-1]
    return f'window.{WEIGHTS_GLOBAL} = {head},"data":"{blob}"}};\n'


def _as_stack(weights, where: str) -> np.ndarray:
    """A float64 array ``(layers, heads, L, L)`` from a tensor (any device) or an array."""
    if isinstance(weights, (list, tuple)) and weights and isinstance(weights[0], torch.Tensor):
        weights = torch.stack([w.detach().to("cpu") for w in weights])  # layers of (H, L, L)
    arr = _base.numeric(weights, where, _WHERE)
    if arr.ndim != 4 or arr.shape[2] != arr.shape[3]:
        raise ValueError(
            f"HeadView: {where} must have shape (layers, heads, L, L), got {arr.shape}"
        )
    _base.finite(arr, where, _WHERE)
    return _base.non_negative(arr, where, _WHERE, "attention weights")


class HeadView(_base.Widget, view="heads"):
    """Every layer's and every head's attention for a few sentences, explorable in the browser.

    The *model view* is a grid of thumbnails, one per layer (rows) and head (columns); click one
    to open it. The *head view* shows the chosen head as lines from each query token (left) to the
    key tokens (right), the darker the heavier, or as a heatmap; hover a token to see only its
    lines, click it to keep them. A selector switches between the sentences. Make the widget the
    last expression of a cell. From the keyboard, the thumbnails and the tokens are one Tab stop
    each: the arrow keys move, Enter opens a head or keeps a token's lines.

    Args:
        tokens: one list of ``L`` tokens per sentence (or a single list for one sentence).
        weights: one ``(layers, heads, L, L)`` stack per sentence (tensor on any device, array, or
            a tuple of per-layer ``(heads, L, L)`` tensors); or a single stack for one sentence.
            Rows are queries, columns keys. Sent rounded to 3 decimals, as one string of
            thousandths per sentence.
        texts: a label for each sentence in the selector (default: the tokens joined).
        title: a heading above the widget.
        layer, head, sentence: what to show first.
        mode: ``"lines"`` or ``"matrix"``.

    Synced traits: ``sentence``, ``layer``, ``head``, ``mode`` and ``token`` (the query token
    whose lines are kept highlighted, ``-1`` for none).

    See the chapter "BERT: attention in both directions".
    """

    sentences = traitlets.List(traitlets.Dict()).tag(sync=True)
    num_layers = traitlets.Int(0).tag(sync=True)
    num_heads = traitlets.Int(0).tag(sync=True)

    sentence = traitlets.Int(0).tag(sync=True)
    layer = traitlets.Int(0).tag(sync=True)
    head = traitlets.Int(0).tag(sync=True)
    mode = traitlets.Enum(["lines", "matrix"], default_value="lines").tag(sync=True)
    token = traitlets.Int(-1).tag(sync=True)

    # The live mode (HeadView.live): empty vocab = off.
    vocab = traitlets.Unicode("").tag(sync=True)  # vocab.txt's text: one token per line
    text = traitlets.Unicode("").tag(sync=True)  # the reader's sentence
    max_length = traitlets.Int(MAX_LENGTH).tag(sync=True)
    weights_file = traitlets.Unicode(WEIGHTS_FILE).tag(sync=True)
    weights_size = traitlets.Int(0).tag(sync=True)  # bytes the page downloads for the weights

    def __init__(
        self,
        tokens: Sequence[Sequence[str]] | Sequence[str],
        weights,
        *,
        texts: Sequence[str] | None = None,
        title: str = "",
        layer: int = 0,
        head: int = 0,
        sentence: int = 0,
        mode: str = "lines",
    ) -> None:
        if isinstance(tokens, str):
            raise ValueError("HeadView: tokens must be lists of strings, not one string")
        tokens = list(tokens)
        if tokens and all(isinstance(t, str) for t in tokens):  # one sentence
            tokens, weights = [tokens], [weights]
            texts = None if texts is None else [texts] if isinstance(texts, str) else texts
        weights = list(weights) if not isinstance(weights, torch.Tensor) else [weights]
        if not tokens:
            raise ValueError("HeadView: give at least one sentence")
        if len(weights) != len(tokens):
            raise ValueError(
                f"HeadView: {len(tokens)} token lists but {len(weights)} weight stacks"
            )
        if texts is not None and len(texts) != len(tokens):
            raise ValueError(f"HeadView: {len(tokens)} sentences but {len(texts)} texts")
        self._model = None
        self._tokenizer = None
        entries = []
        shape = None
        for n, (toks, w) in enumerate(zip(tokens, weights, strict=True)):
            text = None if texts is None else texts[n]
            entry = self._entry(toks, w, text, f"sentence {n}")
            if shape is None:
                shape = entry["shape"]
            elif entry["shape"] != shape:
                raise ValueError(
                    f"HeadView: every sentence needs the same (layers, heads); sentence 0 has "
                    f"{shape}, sentence {n} has {entry['shape']}"
                )
            entries.append(entry["data"])
        super().__init__(
            title=title,
            sentences=entries,
            num_layers=shape[0],
            num_heads=shape[1],
            mode=mode,
        )
        self.sentence, self.layer, self.head = sentence, layer, head

    @staticmethod
    def _entry(tokens: Sequence[str], weights, text: str | None, where: str) -> dict:
        if isinstance(tokens, str):
            raise ValueError(f"HeadView: the tokens of {where} must be a list of strings")
        toks = [str(t) for t in tokens]
        arr = _as_stack(weights, f"the weights of {where}")
        if arr.shape[2] != len(toks):
            raise ValueError(
                f"HeadView: {where} has {len(toks)} tokens but weights of shape {arr.shape} "
                f"(L = {arr.shape[2]})"
            )
        label = " ".join(toks) if text is None else str(text)
        flat = _base.pack_thousandths(arr)  # row-major (layers, heads, L, L)
        return {
            "shape": arr.shape[:2],
            "data": {"text": label, "tokens": toks, "shape": list(arr.shape), "weights": flat},
        }

    # -- building from a model -----------------------------------------------------------------
    @staticmethod
    @torch.no_grad()
    def _run(model, tokenizer, text: str) -> tuple[list[str], torch.Tensor]:
        from ..models.bert import encode

        dev = next(model.parameters()).device
        ids, mask = encode(tokenizer, text, device=dev)
        out = model(ids, mask)
        stack = torch.stack([a[0] for a in out.attentions]).to("cpu")  # (layers, H, L, L)
        return tokenizer.encode(text).tokens, stack

    @classmethod
    def from_model(cls, model, tokenizer, texts: Sequence[str], **kwargs) -> HeadView:
        """Run a BERT encoder (e.g. from :func:`attnlib.weights.load_minilm`) on each text and
        show its attention. The view keeps the model, so :meth:`add_sentence` works later."""
        if isinstance(texts, str):
            texts = [texts]
        runs = [cls._run(model, tokenizer, t) for t in texts]
        view = cls([r[0] for r in runs], [r[1] for r in runs], texts=list(texts), **kwargs)
        view._model, view._tokenizer = model, tokenizer
        return view

    def add_sentence(self, text: str, tokens=None, weights=None, *, select: bool = True) -> int:
        """Add a sentence to the selector; returns its index.

        Give ``text`` alone when the view was made with :meth:`from_model` (the model runs on
        it: this needs a kernel), or ``text`` with its ``tokens`` and ``weights``. With
        ``select`` (the default) the view switches to the new sentence.
        """
        if weights is None:
            if self._model is None:
                raise ValueError(
                    "HeadView.add_sentence: this view has no model; build it with "
                    "HeadView.from_model(model, tokenizer, texts), or pass tokens and weights"
                )
            tokens, weights = self._run(self._model, self._tokenizer, text)
        where = f"sentence {len(self.sentences)}"
        entry = self._entry(tokens, weights, text, where)
        if entry["shape"] != (self.num_layers, self.num_heads):
            raise ValueError(
                f"HeadView: {where} has (layers, heads) = {entry['shape']}, the view has "
                f"{(self.num_layers, self.num_heads)}"
            )
        self.sentences = [*self.sentences, entry["data"]]
        index = len(self.sentences) - 1
        if select:
            self.token = -1
            self.sentence = index
        return index

    @classmethod
    def live(cls, model, tokenizer, text: str, **kwargs) -> HeadView:
        """A view in live mode: the page tokenises what the reader types and, after "Load
        MiniLM", runs all-MiniLM-L6-v2 on it in the page. ``model`` and ``tokenizer`` (from
        :func:`attnlib.weights.load_minilm`) draw the first picture, for ``text``, before the
        weights are loaded (and the EPUB's static picture). Setting ``view.text`` from Python
        updates the page."""
        from ._vocab import minilm_vocab_text

        view = cls.from_model(model, tokenizer, [text], **kwargs)
        view.vocab = minilm_vocab_text()
        view.text = text
        view.weights_size = len(minilm_script())
        view.on_msg(view._on_custom)
        return view

    def _on_custom(self, _widget, content, _buffers) -> None:
        """The page asks for the weights (a running notebook has no _static folder): answer with
        the same manifest and bytes the book's weights file holds."""
        if isinstance(content, dict) and content.get("kind") == "load-minilm":
            import base64

            manifest, blob = minilm_pack()
            self.send({"kind": "minilm", "manifest": manifest}, buffers=[base64.b64decode(blob)])

    # -- reading back ----------------------------------------------------------------------------
    def weights_of(self, sentence: int | None = None) -> torch.Tensor:
        """The weights sent for a sentence, ``(layers, heads, L, L)``, as the browser sees them."""
        s = self.sentence if sentence is None else sentence
        entry = self.sentences[s]
        return torch.from_numpy(_base.unpack_thousandths(entry["weights"], entry["shape"])).float()

    def figure(self, layer: int | None = None, head: int | None = None,
               sentence: int | None = None, **kwargs):
        """One head as a matplotlib heatmap (:func:`attnlib.plotting.heatmap`), ready for
        :func:`attnlib.plotting.save` to write SVG and PNG. Defaults to what the view shows."""
        from ..plotting import heatmap

        s = self.sentence if sentence is None else sentence
        lay = self.layer if layer is None else layer
        h = self.head if head is None else head
        toks = self.sentences[s]["tokens"]
        kwargs.setdefault("title", f"layer {lay}, head {h}")
        return heatmap(self.weights_of(s)[lay, h], toks, **kwargs)

    # -- validation of the synced traits (the browser may set them too) --------------------------
    @traitlets.validate("sentence")
    def _valid_sentence(self, proposal):
        return _base.index(proposal["value"], len(self.sentences), "sentence", _WHERE)

    @traitlets.validate("layer")
    def _valid_layer(self, proposal):
        return _base.index(proposal["value"], self.num_layers, "layer", _WHERE)

    @traitlets.validate("head")
    def _valid_head(self, proposal):
        return _base.index(proposal["value"], self.num_heads, "head", _WHERE)

    @traitlets.validate("token")
    def _valid_token(self, proposal):
        i = proposal["value"]
        L = len(self.sentences[self.sentence]["tokens"]) if self.sentences else 0
        if not -1 <= i < L:
            raise ValueError(f"HeadView: token must be -1 (none) or in [0, {L}), got {i}")
        return i

    def __repr__(self) -> str:
        return (
            f"HeadView(sentences={len(self.sentences)}, layers={self.num_layers}, "
            f"heads={self.num_heads})"
        )

    def _static_figure(self, fig) -> str:
        """The stored picture: the chosen sentence, layer and head as a heatmap."""
        entry = self.sentences[self.sentence]
        title = f"layer {self.layer}, head {self.head}"
        weights = self.weights_of()[self.layer, self.head].numpy()
        _base.picture_heatmap(fig, weights, entry["tokens"], entry["tokens"], title)
        return (f"Heatmap of the attention weights of layer {self.layer}, head {self.head} for "
                f"{entry['text']!r}: each row is a token's distribution over the sentence.")
