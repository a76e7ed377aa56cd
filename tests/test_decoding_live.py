"""DecodingStepper.live, its Python side: the state it sends (the model's weights under PyTorch's
names, float32; the vocabularies; the sizes) and its checks. The page's arithmetic is tested
against PyTorch in tests/browser/test_decoding_live.py."""

from __future__ import annotations

import pytest
import torch

import attnlib
from attnlib import rnn
from attnlib.data import dates
from attnlib.widgets._pack import unpack_tensors
from attnlib.widgets.decoding import DecodingStepper


@pytest.fixture(scope="module")
def task():
    pairs = dates.generate(200, seed=0)
    src_vocab = dates.CharVocab.build(s for s, _ in pairs)
    tgt_vocab = dates.CharVocab.build(t for _, t in pairs)
    attnlib.seed(0)
    model = rnn.build("bahdanau", len(src_vocab), len(tgt_vocab), embed_size=8, hidden_size=12)
    return model, src_vocab, tgt_vocab, pairs


def test_live_state_carries_the_weights_vocabularies_and_sizes(task):
    model, src_vocab, tgt_vocab, pairs = task
    text = pairs[0][0]
    widget = DecodingStepper.live(model, src_vocab, tgt_vocab, text=text, title="t", max_len=12)
    live = widget.live_model
    assert widget.text == text and widget.title == "t"
    assert live["src_itos"] == list(src_vocab.itos) and live["tgt_itos"] == list(tgt_vocab.itos)
    assert live["sizes"] == {"src_vocab": len(src_vocab), "tgt_vocab": len(tgt_vocab),
                             "embed": 8, "dec_embed": 8, "hidden": 12, "score": 12}  # fmt: skip
    assert (live["bos"], live["eos"], live["unk"]) == (1, 2, 3)
    assert (live["max_len"], live["max_source"]) == (12, 64)
    tensors = unpack_tensors(live["manifest"], live["blob"])
    state = model.state_dict()
    assert list(tensors) == list(state), "PyTorch's own names, in its order"
    for name, value in state.items():
        assert all(e["dtype"] == "float32" for e in live["manifest"])
        torch.testing.assert_close(torch.from_numpy(tensors[name]), value, rtol=0, atol=0)
    assert widget.weight_bytes() == sum(4 * p.numel() for p in state.values())
    # The first example is Python's translation (for the stored picture), as from_model's.
    plain = DecodingStepper.from_model(model, [text], src_vocab, tgt_vocab)
    assert widget.examples == plain.examples
    assert widget.static_picture() is not None
    assert repr(widget) == f"DecodingStepper(live, text={text!r})"
    widget.text = "anything at all"  # the page translates it; Python only sends it
    assert widget.text == "anything at all"


def test_the_chapters_model_size_fits_in_the_state():
    """The chapter's sizes (117 source and 15 target characters, the default D = 64): well
    under the 2 MB a widget's weights may take."""
    attnlib.seed(0)
    model = rnn.build("bahdanau", 117, 15)
    src = dates.CharVocab(dates.CharVocab.SPECIALS + tuple(chr(0x100 + i) for i in range(113)))
    tgt = dates.CharVocab(dates.CharVocab.SPECIALS + tuple("-0123456789"))
    widget = DecodingStepper.live(model, src, tgt, text="\u0100\u0101")
    assert widget.weight_bytes() == 4 * rnn.count_parameters(model) < 2_000_000


def test_live_checks_its_arguments(task):
    model, src_vocab, tgt_vocab, _ = task
    attnlib.seed(0)
    for kind in ("none", "luong-general"):
        other = rnn.build(kind, len(src_vocab), len(tgt_vocab), embed_size=8, hidden_size=12)
        with pytest.raises(ValueError, match="with a BahdanauDecoder"):
            DecodingStepper.live(other, src_vocab, tgt_vocab, text="1 mai 2000")
    with pytest.raises(ValueError, match="text must be a non-empty str"):
        DecodingStepper.live(model, src_vocab, tgt_vocab, text="")
    with pytest.raises(ValueError, match="max_len must be a positive int, got 0"):
        DecodingStepper.live(model, src_vocab, tgt_vocab, text="1", max_len=0)
    with pytest.raises(ValueError, match="max_source must be a positive int"):
        DecodingStepper.live(model, src_vocab, tgt_vocab, text="1", max_source=True)
    with pytest.raises(ValueError, match="the vocabularies have"):
        DecodingStepper.live(model, tgt_vocab, tgt_vocab, text="1")
    widget = DecodingStepper.live(model, src_vocab, tgt_vocab, text="x" * 100, max_source=5)
    assert widget.examples[0]["source"] == list("xxxxx"), "cut as the page cuts"
    with pytest.raises(RuntimeError, match="set its text instead"):
        widget.add("1 mai 2000")
