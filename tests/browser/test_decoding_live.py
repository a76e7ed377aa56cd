"""DecodingStepper.live in a real browser: the page's GRU encoder and Bahdanau decoder
(decoding.js over _nn.js) against attnlib's PyTorch model, the reader's input (unknown characters,
an empty or over-long text, hostile text), the ``text`` trait set from Python, and the speed of
one translation (printed, never asserted; run with -s to see it, or benchmarks/inpage_dates.py).
"""

from __future__ import annotations

import datetime
import statistics
from functools import partial

import numpy as np
import pytest
import torch

import attnlib
from attnlib import rnn
from attnlib.data import dates
from attnlib.widgets.decoding import EOS, DecodingStepper

from .harness import HOSTILE, assert_clean, open_harness, render_into
from .helpers import BUILD
from .widget_checks import check_chapter_reader

CHAPTER = BUILD / "notebooks" / "03_rnn_attention.html"

# The page's own exports, for one text: ids, the memory, and each step's weights and logits.
FORWARD_JS = """([live, texts]) => {
  const d = window.decoding;
  const net = d.loadTranslator(live);
  return texts.map((text) => {
    const { ids, unknown } = d.encodeSource(net, Array.from(text));
    const r = d.greedyTranslate(net, ids);
    return { src: ids, unknown, ids: r.ids, memory: Array.from(r.memory),
             weights: r.weights.map((w) => Array.from(w)),
             logits: r.logits.map((l) => Array.from(l)) };
  });
}"""

# Translate every text in the page: the output ids of each (eos included).
TRANSLATE_ALL_JS = """([live, texts]) => {
  const d = window.decoding;
  const net = d.loadTranslator(live);
  return texts.map((text) => d.greedyTranslate(net, d.encodeSource(net, Array.from(text)).ids).ids);
}"""

# One date translated n times after a warm-up: the milliseconds of each.
TIMING_JS = """([live, text, n]) => {
  const d = window.decoding;
  const net = d.loadTranslator(live);
  for (let i = 0; i < 5; i++) d.translateText(net, text);
  const times = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    d.translateText(net, text);
    times.push(performance.now() - t0);
  }
  return times;
}"""

READ_LIVE_JS = """(root) => ({
  input: root.querySelector('.ds-input').value,
  result: root.querySelector('.ds-result').hidden ? null
    : root.querySelector('.ds-result').textContent,
  note: root.querySelector('.ds-note').hidden ? null : root.querySelector('.ds-note').textContent,
  output: Array.from(root.querySelectorAll('.ds-out')).map((o) => o.textContent),
  source: Array.from(root.querySelectorAll('.ds-src .ds-char')).map((c) => c.textContent),
  cells: root.querySelectorAll('.ds-cell').length,
  mapHidden: root.querySelector('.ds-scroll-wrap').hidden,
  step: root.querySelector('.ds-step').textContent,
})"""


def _pytorch(model, vocab, text: str, max_len: int):
    """attnlib's greedy decode of one text: ids (eos included), memory, weights, logits."""
    src, lengths = vocab.encode([text])
    with torch.no_grad():
        memory, summary, mask = model.encode(src, lengths)
        dec = model.decoder
        state, prepared = dec.start(memory, summary), dec.prepare(memory)
        y = torch.tensor([model.bos_id])
        ids, weights, logits = [], [], []
        for _ in range(max_len):
            out, state, w = dec.step(dec.embed(y), state, memory, prepared, mask)
            y = out.argmax(-1)
            ids.append(int(y))
            weights.append(w[0])
            logits.append(out[0])
            if int(y) == model.eos_id:
                break
    greedy, _ = rnn.greedy_decode(model, src, lengths, max_len)
    assert greedy[0, : len(ids)].tolist() == ids, "the step loop is greedy_decode's"
    return src[0].tolist(), ids, memory[0], torch.stack(weights), torch.stack(logits)


@pytest.fixture
def harness(harness_dir, harness_server, open_page):
    return open_harness(open_page, harness_dir, harness_server, "decoding", "DecodingStepper")


render = partial(render_into, root_selector=".ds-root")


@pytest.fixture(scope="module")
def small():
    """A small Bahdanau model, random-initialised (deterministic), with date vocabularies."""
    pairs = dates.generate(300, seed=0)
    src_vocab = dates.CharVocab.build(s for s, _ in pairs)
    tgt_vocab = dates.CharVocab.build(t for _, t in pairs)
    attnlib.seed(0)
    model = rnn.build("bahdanau", len(src_vocab), len(tgt_vocab), embed_size=8, hidden_size=12,
                      score_size=10).eval()  # fmt: skip
    widget = DecodingStepper.live(model, src_vocab, tgt_vocab, text=pairs[0][0], max_len=12)
    return model, src_vocab, tgt_vocab, widget, [s for s, _ in pairs[:8]]


@pytest.fixture(scope="module")
def chapter():
    """The chapter's Bahdanau model, trained the chapter's way (its data, seeds, sizes, steps)."""
    torch.set_num_threads(1)
    data = dates.splits(n_train=20_000, n_test=1_000, seed=0)
    src_vocab = dates.CharVocab.build(s for s, _ in data["train"])
    tgt_vocab = dates.CharVocab.build(t for _, t in data["train"])
    train_set = rnn.encode_pairs(data["train"], src_vocab, tgt_vocab)
    attnlib.seed(0)
    model = rnn.build("bahdanau", len(src_vocab), len(tgt_vocab))
    rnn.train(model, train_set, steps=200, batch_size=128, lr=1e-2, seed=0)
    widget = DecodingStepper.live(model, src_vocab, tgt_vocab, text="22 novembre 2026")
    return model, src_vocab, tgt_vocab, widget, data


def test_page_forward_equals_pytorch(harness, small):
    """Encoder states, attention weights and logits of every step to 1e-4, the same ids."""
    page, watch = harness
    model, src_vocab, _, widget, texts = small
    texts = [*texts, "22 novembre 2026 \u20ac", "x"]  # an unknown character; one character
    found = page.evaluate(FORWARD_JS, [widget.live_model, texts])
    worst = {"memory": 0.0, "weights": 0.0, "logits": 0.0}
    for text, got in zip(texts, found, strict=True):
        src, ids, memory, weights, logits = _pytorch(model, src_vocab, text, 12)
        assert got["src"] == src, text
        assert got["ids"] == ids, f"{text!r}: page {got['ids']} vs PyTorch {ids}"
        for name, want in (("memory", memory.flatten()), ("weights", weights),
                           ("logits", logits)):  # fmt: skip
            diff = float((torch.tensor(got[name]) - want).abs().max())
            assert diff < 1e-4, f"{text!r}: {name} differs by {diff}"
            worst[name] = max(worst[name], diff)
    assert found[-2]["unknown"] == ["\u20ac"] and src_vocab.unk_id in found[-2]["src"]
    print("page vs PyTorch, largest differences:", {k: f"{v:.1e}" for k, v in worst.items()})
    assert_clean(watch)


def test_chapter_model_translates_like_pytorch(harness, chapter):
    """The chapter's model, in the page, on both test sets: the same outputs as PyTorch."""
    page, watch = harness
    model, src_vocab, tgt_vocab, widget, data = chapter
    print(f"\nweights in the widget state: {widget.weight_bytes():,} bytes "
          f"({len(widget.live_model['blob']):,} as base64)")  # fmt: skip
    for split in ("unseen_dates", "unseen_locales"):
        texts = [s for s, _ in data[split]]
        targets = [t for _, t in data[split]]
        got = page.evaluate(TRANSLATE_ALL_JS, [widget.live_model, texts])
        src, lengths = src_vocab.encode(texts)
        ids, _ = rnn.greedy_decode(model, src, lengths, 12)
        same = right_page = right_torch = 0
        for n, row in enumerate(ids.tolist()):
            want = row[: row.index(model.eos_id) + 1] if model.eos_id in row else row
            same += got[n] == want
            right_page += tgt_vocab.decode([got[n]])[0] == targets[n] and got[n][-1] == model.eos_id
            right_torch += tgt_vocab.decode([want])[0] == targets[n] and want[-1] == model.eos_id
        print(f"{split}: page = PyTorch on {same}/{len(texts)}; right: page {right_page}, "
              f"PyTorch {right_torch} of {len(texts)}")
        assert same == len(texts), f"{split}: the page differs from PyTorch on some texts"
    assert_clean(watch)


def test_translation_speed_is_printed(harness, chapter):
    page, watch = harness
    widget = chapter[3]
    times = page.evaluate(TIMING_JS, [widget.live_model, "22 novembre 2026", 20])
    print(f"\none date translated in the page: median {statistics.median(times):.2f} ms of 20")
    assert len(times) == 20 and all(t >= 0 for t in times)
    assert_clean(watch)


def _live_state(widget) -> dict:
    return {"title": widget.title, "examples": widget.examples, "example": 0, "step": 0,
            "text": widget.text, "live_model": widget.live_model}  # fmt: skip


def test_the_reader_types_and_the_view_translates(harness, small):
    page, watch = harness
    model, src_vocab, tgt_vocab, widget, texts = small
    root = render(page, "a", _live_state(widget))
    model_js = "window.models.a"
    s = root.evaluate(READ_LIVE_JS)
    assert s["input"] == widget.text and s["source"] == list(widget.text.replace(" ", "\u2423"))
    assert s["note"] is None and s["result"].startswith("Translation: ")

    # Typing a new text: the page translates it, as PyTorch does, and syncs the example back.
    box = root.locator(".ds-input")
    box.fill(texts[3])
    s = root.evaluate(READ_LIVE_JS)
    _, ids, _, weights, _ = _pytorch(model, src_vocab, texts[3], 12)
    tokens = [EOS if i == model.eos_id else tgt_vocab.itos[i] for i in ids]
    assert s["output"] == tokens and s["step"] == f"step 1 of {len(tokens)}"
    state = page.evaluate(f"() => {model_js}.state")
    assert state["text"] == texts[3] and state["step"] == 0
    (example,) = state["examples"]
    assert example["output"] == tokens and example["source"] == list(texts[3])
    milli = np.array([int(v) for v in example["weights"].split(",")]).reshape(weights.shape)
    assert np.abs(milli / 1000 - weights.numpy()).max() <= 0.0005 + 1e-6
    assert s["cells"] == len(tokens) * len(texts[3])

    # Python sets the text (the trait): the same code translates it.
    page.evaluate(f"([t]) => {model_js}.set('text', t)", [texts[4]])
    s = root.evaluate(READ_LIVE_JS)
    assert s["input"] == texts[4] and s["source"] == list(texts[4].replace(" ", "\u2423"))
    assert page.evaluate(f"() => {model_js}.state.examples[0].label") == texts[4]

    # The steps still move.
    root.locator(".ds-next").click()
    assert root.evaluate(READ_LIVE_JS)["step"].startswith("step 2 of ")
    assert_clean(watch)


def test_unknown_empty_long_and_hostile_input_get_messages(harness, small):
    page, watch = harness
    _, src_vocab, _, widget, _ = small
    root = render(page, "b", _live_state(widget))
    box = root.locator(".ds-input")

    box.fill("")
    s = root.evaluate(READ_LIVE_JS)
    assert s["note"].startswith("Type a date") and s["result"] is None and s["mapHidden"]
    box.fill("   ")
    assert root.evaluate(READ_LIVE_JS)["note"].startswith("Type a date")

    typed = "3 März 2024 ß€😀"
    unknown = [c for c in "ß€😀" if c not in src_vocab.stoi]
    assert "€" in unknown and "😀" in unknown
    box.fill(typed)
    s = root.evaluate(READ_LIVE_JS)
    assert s["result"].startswith("Translation: ") and not s["mapHidden"]
    assert s["note"].startswith("Not among the characters the model was trained on")
    for c in unknown:
        assert f"\u201c{c}\u201d" in s["note"], (c, s["note"])
    assert len(s["source"]) == len(typed)  # code points, as Python counts: the emoji is one

    box.fill("1" * 500)
    s = root.evaluate(READ_LIVE_JS)
    assert "Only the first 64 characters are read (the text has 500)" in s["note"], s["note"]
    assert len(s["source"]) == 64

    for text in HOSTILE:
        box.fill(text)
    box.fill(" ".join(HOSTILE))
    page.wait_for_timeout(300)  # give any injected element time to fire
    found = page.evaluate(
        """() => { const el = document.getElementById('b');
                   return { injected: el.querySelectorAll('img, script, svg, b').length,
                            note: el.querySelector('.ds-note').textContent,
                            label: el.querySelector('option') ?
                              el.querySelector('option').textContent : null }; }"""
    )
    assert found["injected"] == 0, "text was parsed as HTML"
    assert "\u201c<\u201d" in found["note"] or "<" in src_vocab.stoi, found["note"]
    assert not watch.dialogs, f"a dialog fired: {watch.dialogs}"
    assert_clean(watch)


def test_a_stored_widget_without_a_model_is_unchanged(harness):
    """No live_model: the stepper shows Python's examples and has no text box."""
    page, watch = harness
    ex = {"label": "abc", "source": list("abc"), "output": ["x", EOS],
          "weights": "500,500,0,0,0,1000"}
    root = render(page, "a", {"title": "", "examples": [ex], "example": 0, "step": 0})
    assert root.locator(".ds-input").count() == 0 and root.locator("select").count() == 1
    assert "ds-live" not in (root.get_attribute("class") or "")
    assert_clean(watch)


@pytest.mark.skipif(not CHAPTER.exists(), reason=f"{CHAPTER} is not built")
def test_chapter_live_widget_translates_a_typed_date(book_server, open_page):
    for url, allowed in ((book_server.url(CHAPTER), (book_server.base,)),
                         (CHAPTER.as_uri(), ("file://",))):  # fmt: skip
        page, watch = open_page(url, allowed)
        roots = page.locator(".ds-root.ds-live")
        assert roots.count() == 1, f"{url}: expected one live DecodingStepper"
        root = roots.first
        root.scroll_into_view_if_needed()
        for loc, day in (("fr", datetime.date(2026, 11, 22)), ("hu", datetime.date(2042, 8, 9)),
                         ("en_US", datetime.date(1987, 3, 14))):  # fmt: skip
            text, iso = dates.render(day, loc), day.isoformat()
            root.locator(".ds-input").fill(text)
            s = root.evaluate(READ_LIVE_JS)
            assert s["result"] == f"Translation: {iso}", (url, text, s)
        assert_clean(watch)
    check_chapter_reader(open_page, book_server, CHAPTER, ".ds-root.ds-live", "03 live",
                         heat_selector=".ds-src", min_cells=3)  # fmt: skip
