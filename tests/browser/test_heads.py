"""HeadView in a real browser: in the built BERT chapter (over http and file://) and in a harness
page that feeds heads.js a fake model (its parsing of the weights, its syncing, hostile tokens)."""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest

from .harness import HOSTILE, check_file_url, check_widget_page, open_harness, render_into
from .helpers import BUILD
from .widget_checks import (
    check_chapter_reader,
    check_dark,
    check_light,
    check_one_live_region,
    check_phone_fit,
    check_print,
    focus_by_tab,
    focused,
    live_text,
    set_theme,
    wait_announced,
)

CHAPTER = BUILD / "notebooks" / "08_bert.html"
STORED = ".hv-root:not(:has(.hv-yours))"  # not the live view (test_live_bert_book.py)


needs_chapter = pytest.mark.skipif(
    not CHAPTER.exists(), reason=f"{CHAPTER} is not built (build the book with chapter 8 in it)"
)


READ_JS = """(root) => {
  const q = Array.from(root.querySelectorAll('.hv-headview .hv-q'));
  const lines = Array.from(root.querySelectorAll('.hv-line'));
  return {
    thumbs: root.querySelectorAll('.hv-thumb').length,
    on: Array.from(root.querySelectorAll('.hv-thumb.hv-on')).map(
      (b) => [Number(b.dataset.layer), Number(b.dataset.head)]),
    which: root.querySelector('.hv-which').textContent,
    tokens: q.map((t) => t.textContent),
    lines: lines.length,
    dim: lines.filter((l) => l.classList.contains('hv-dim')).length,
    activeRows: Array.from(new Set(lines.filter((l) => l.classList.contains('hv-active'))
      .map((l) => Number(l.dataset.i)))),
    cells: root.querySelectorAll('.hv-cell').length,
    readout: root.querySelector('.hv-readout').textContent,
    weights: Array.from(root.querySelectorAll('.hv-weight')).map((w) => w.textContent),
    sentence: root.querySelector('.hv-sentence select').value,
    options: Array.from(root.querySelectorAll('.hv-sentence option')).map((o) => o.textContent),
    height: root.getBoundingClientRect().height,
  };
}"""


def read(root) -> dict:
    return root.evaluate(READ_JS)


def exercise_chapter_view(root, where: str) -> None:
    page = root.page
    s0 = read(root)
    assert s0["height"] > 200, f"{where}: the widget looks blank ({s0['height']} px high)"
    assert s0["thumbs"] == 72, f"{where}: {s0['thumbs']} thumbnails, expected 6 x 12"
    assert s0["on"] == [[3, 1]] and s0["which"] == "Layer 3, head 1", where
    assert s0["tokens"][:3] == ["[CLS]", "the", "animal"] and len(s0["tokens"]) == 16, where
    assert len(s0["options"]) == 4, f"{where}: {s0['options']}"  # three sentences + one added
    assert s0["lines"] > 16 and s0["dim"] == 0, where

    # Hover "it": only its lines stay bright, and the readout names its strongest key.
    it = s0["tokens"].index("it")
    root.locator(f'.hv-q[data-i="{it}"]').hover()
    s1 = read(root)
    assert s1["activeRows"] == [it], f"{where}: hovering 'it' highlighted rows {s1['activeRows']}"
    assert 0 < s1["dim"] < s1["lines"], where
    assert s1["readout"].startswith("it attends most to: animal 0.68"), s1["readout"]
    assert s1["weights"][s0["tokens"].index("animal")] == "0.68", s1["weights"]
    page.mouse.move(5, 5)
    assert read(root)["dim"] == 0, f"{where}: leaving the token did not clear the highlight"

    # Click a thumbnail of the model view: the head view follows.
    root.locator('.hv-thumb[data-layer="0"][data-head="2"]').click()
    s2 = read(root)
    assert s2["on"] == [[0, 2]] and s2["which"] == "Layer 0, head 2", where
    # The previous-token head: hovering "animal" lights the single line to "the" before it.
    animal = s0["tokens"].index("animal")
    root.locator(f'.hv-q[data-i="{animal}"]').hover()
    assert read(root)["readout"].startswith("animal attends most to: the 1.00"), where

    # Click a token to pin it; it stays highlighted after the pointer leaves.
    root.locator(f'.hv-q[data-i="{animal}"]').click()
    page.mouse.move(5, 5)
    assert read(root)["activeRows"] == [animal], f"{where}: the clicked token was not pinned"

    # Another sentence: new tokens, fresh thumbnails, nothing pinned.
    root.locator(".hv-sentence select").select_option("2")
    s3 = read(root)
    assert s3["tokens"] == ["[CLS]", "the", "cat", "sat", "on", "the", "mat", ".", "[SEP]"], where
    assert s3["activeRows"] == [] and s3["thumbs"] == 72, where

    # The heatmap: L x L cells.
    root.locator(".hv-mode select").select_option("1")
    assert read(root)["cells"] == 81, where


@needs_chapter
def test_chapter_head_view_responds(book_server, open_page):
    check_widget_page(
        open_page, book_server, CHAPTER, STORED, exercise_chapter_view, "HeadView", count=1
    )


@needs_chapter
def test_chapter_head_view_over_file_urls(open_page):
    check_file_url(open_page, CHAPTER, STORED, exercise_chapter_view, "HeadView", count=1)


# --- a harness page: heads.js with a fake anywidget model ---------------------------------------


def sentence(tokens, weights, text=None) -> dict:
    """What HeadView sends for one sentence: weights (layers, heads, L, L) in thousandths."""
    milli = np.rint(np.asarray(weights) * 1000).astype(int)
    return {
        "text": text if text is not None else " ".join(tokens),
        "tokens": list(tokens),
        "shape": list(milli.shape),
        "weights": ",".join(map(str, milli.ravel().tolist())),
    }


def random_weights(rng, layers, heads, L):
    scores = rng.normal(size=(layers, heads, L, L)) * 2
    w = np.exp(scores - scores.max(-1, keepdims=True))
    return w / w.sum(-1, keepdims=True)


def base_state(sentences, **overrides) -> dict:
    shape = sentences[0]["shape"]
    state = {
        "title": "",
        "sentences": sentences,
        "num_layers": shape[0],
        "num_heads": shape[1],
        "sentence": 0,
        "layer": 0,
        "head": 0,
        "mode": "lines",
        "token": -1,
    }
    state.update(overrides)
    return state


@pytest.fixture
def harness(harness_dir, harness_server, open_page):
    return open_harness(open_page, harness_dir, harness_server, "heads", "HeadView")


render = partial(render_into, root_selector=".hv-root")  # render(page, element_id, state) -> root


def test_weights_are_parsed_back_exactly(harness):
    page, watch = harness
    rng = np.random.default_rng(0)
    w = random_weights(rng, 2, 3, 5)
    data = sentence(list("abcde"), w)
    for layer, head in [(0, 0), (1, 2), (0, 1)]:
        got = np.array(page.evaluate(
            "([s, l, h]) => window.heads.headMatrix(s, l, h)", [data, layer, head]
        ))
        np.testing.assert_allclose(got, np.rint(w[layer, head] * 1000) / 1000, atol=1e-12)
    top = page.evaluate("([m]) => window.heads.topKeys(m, 0, 2)", [[[0.1, 0.6, 0.3]]])
    assert top == [{"j": 1, "w": 0.6}, {"j": 2, "w": 0.3}]
    broken = dict(data, weights="1,2,3")
    message = page.evaluate(
        "([s]) => { try { window.heads.headMatrix(s, 0, 0); return ''; }"
        " catch (e) { return e.message; } }", [broken]
    )
    assert "3 weights for shape 2x3x5x5" in message
    assert not watch.problems(), "\n".join(watch.problems())


def test_view_and_model_stay_in_sync(harness):
    page, watch = harness
    rng = np.random.default_rng(1)
    first = sentence(["a", "b", "c"], random_weights(rng, 2, 2, 3))
    root = render(page, "a", base_state([first]))
    model = "window.models.a"
    assert read(root)["thumbs"] == 4

    # View -> model: a thumbnail click, a pinned token, the selectors; each is saved.
    root.locator('.hv-thumb[data-layer="1"][data-head="0"]').click()
    root.locator('.hv-q[data-i="2"]').click()
    root.locator(".hv-mode select").select_option("1")
    state = page.evaluate(f"() => ({{...{model}.state, saved: {model}.saved}})")
    assert (state["layer"], state["head"], state["token"], state["mode"]) == (1, 0, 2, "matrix")
    assert state["saved"] == 3
    s = read(root)
    assert s["cells"] == 9 and s["which"] == "Layer 1, head 0"

    # Model -> view: Python's add_sentence replaces the list and picks the new sentence.
    page.mouse.move(0, 0)  # the pointer off every token, so nothing is hovered
    second = sentence(["x", "y", "z", "w"], random_weights(rng, 2, 2, 4), text="second one")
    page.evaluate(
        "([s]) => { const m = window.models.a; m.set('sentences', [m.get('sentences')[0], s]);"
        " m.set('token', -1); m.set('sentence', 1); m.set('mode', 'lines'); }",
        [second],
    )
    s = read(root)
    assert s["options"] == ["a b c", "second one"] and s["sentence"] == "1"
    assert s["tokens"] == ["x", "y", "z", "w"] and s["activeRows"] == []
    page.evaluate(f"() => {{ {model}.set('layer', 0); {model}.set('head', 1); }}")
    s = read(root)
    assert s["on"] == [[0, 1]] and s["which"] == "Layer 0, head 1"
    # Lines are drawn for weights of at least 0.005, with the weight as their opacity.
    milli = np.array([int(v) for v in second["weights"].split(",")]).reshape(2, 2, 4, 4)
    expected = milli[0, 1] / 1000  # layer 0, head 1
    drawn = root.evaluate(
        "(r) => Array.from(r.querySelectorAll('.hv-line')).map((l) => "
        "[Number(l.dataset.i), Number(l.dataset.j), Number(l.getAttribute('stroke-opacity'))])"
    )
    assert sorted((i, j) for i, j, _ in drawn) == sorted(
        (i, j) for i in range(4) for j in range(4) if expected[i, j] >= 0.005
    )
    assert all(abs(o - expected[i, j]) < 1e-9 for i, j, o in drawn)
    assert not watch.problems(), "\n".join(watch.problems())


def test_hostile_tokens_are_shown_as_text(harness):
    page, watch = harness
    n = len(HOSTILE)
    data = sentence(HOSTILE, np.full((1, 2, n, n), 1 / n), text="<b>bold?</b>")
    root = render(page, "b", base_state([data], title="<i>title</i>"))
    root.locator('.hv-q[data-i="0"]').hover()
    root.locator('.hv-q[data-i="1"]').click()
    root.locator(".hv-mode select").select_option("1")
    page.wait_for_timeout(300)  # give any injected element time to fire
    found = page.evaluate(
        """() => {
          const el = document.getElementById('b');
          return {
            injected: el.querySelectorAll('img, script, b, i, foreignObject').length,
            queries: Array.from(el.querySelectorAll('.hv-q')).map((t) => t.textContent),
            keys: Array.from(el.querySelectorAll('.hv-k')).map((t) => t.textContent),
            title: el.querySelector('.hv-title').textContent,
            option: el.querySelector('.hv-sentence option').textContent,
          };
        }"""
    )
    assert found["injected"] == 0, "token text was parsed as HTML"
    assert found["queries"] == HOSTILE and found["keys"] == HOSTILE
    assert found["title"] == "<i>title</i>" and found["option"] == "<b>bold?</b>"
    assert not watch.dialogs, f"a dialog fired: {watch.dialogs}"
    assert not watch.problems(), "\n".join(watch.problems())


# --- the reader: dark theme, a phone, the keyboard, print ---------------------------------------

TEXT = ".hv-readout, .hv-caption, .hv-rowname, .hv-col, .hv-q"  # no heatmap text here: its text

ACCENT_PIXEL_JS = """(root) => {
  const canvas = root.querySelector('.hv-thumb canvas');
  const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  for (let p = 0; p < data.length; p += 4) {
    if (data[p + 3] > 0) return Array.from(data.slice(p, p + 3));
  }
  return null;
}"""


@needs_chapter
def test_chapter_head_view_follows_theme_phone_and_print(book_server, open_page):
    found = check_chapter_reader(
        open_page, book_server, CHAPTER, ".hv-root", "08_bert", heat_selector=TEXT, min_cells=3,
        expect_scroll=True,
    )
    for theme, colours in found.items():  # shown with -s: the measured contrast figures
        ratios = [c["ratio"] for c in colours["cells"]]
        print(f"heads {theme}: text {min(ratios):.2f}..{max(ratios):.2f} over {len(ratios)}")


def test_keyboard_drives_the_head_view_and_it_announces(harness):
    page, watch = harness
    rng = np.random.default_rng(6)
    data = sentence(["the", "cat", "sat"], random_weights(rng, 2, 3, 3))
    root = render(page, "a", base_state([data]))
    model = "window.models.a"
    check_one_live_region(root, "heads")
    live = live_text(root)
    # The thumbnails are one Tab stop; an arrow key moves along a layer, Enter opens the head.
    focus_by_tab(page, "#a .hv-thumb")
    stops = root.evaluate("(r) => r.querySelectorAll('.hv-grid [tabindex=\"0\"]').length")
    assert stops == 1, f"the model view has {stops} Tab stops"
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowDown")
    assert focused(page, "el => [el.dataset.layer, el.dataset.head].join()") == "1,1"
    page.keyboard.press("Enter")
    state = page.evaluate(f"() => {model}.state")
    assert (state["layer"], state["head"]) == (1, 1) and read(root)["which"] == "Layer 1, head 1"
    live = wait_announced(root, live, contains="Layer 1, head 1")
    # The tokens are one Tab stop: up and down along a side, left and right across.
    focus_by_tab(page, "#a .hv-q, #a .hv-k")
    assert focused(page, "el => el.classList.contains('hv-q') && el.dataset.i") == "0"
    page.keyboard.press("ArrowDown")
    assert read(root)["readout"].startswith("cat attends most to")
    live = wait_announced(root, live, contains="cat attends most to")
    page.keyboard.press("ArrowRight")
    assert focused(page, "el => el.classList.contains('hv-k') && el.dataset.i") == "1"
    assert read(root)["readout"].startswith("cat receives")
    page.keyboard.press("ArrowLeft")
    page.keyboard.press("Enter")  # keep the query's lines
    assert page.evaluate(f"() => {model}.state.token") == 1
    page.keyboard.press("Tab")  # out of the tokens in one press
    assert not focused(page, "el => el.classList.contains('hv-q') || el.classList.contains('hv-k')")
    assert read(root)["readout"].startswith("cat attends most to"), "the pinned token's lines"
    assert not watch.problems(), "\n".join(watch.problems())


def test_head_view_in_the_dark_theme_and_on_a_phone(harness):
    page, watch = harness
    rng = np.random.default_rng(7)
    tokens = ["[CLS]", "the", "animal", "didn't", "cross", "the", "street", "because", "it",
              "was", "too", "tired", "[SEP]"]
    root = render(page, "a", base_state([sentence(tokens, random_weights(rng, 3, 12, 13))]))
    light_pixel = root.evaluate(ACCENT_PIXEL_JS)
    check_light(root, "heads light", TEXT, min_cells=3)
    set_theme(page, "dark")
    check_dark(root, "heads dark", TEXT, min_cells=3)
    # The thumbnails are drawn again in the dark palette's accent.
    page.wait_for_function(
        "([r, c]) => { const p = (" + ACCENT_PIXEL_JS + ")(r); return p && p.join() !== c; }",
        arg=[root.element_handle(), ",".join(map(str, light_pixel))],
    )
    check_print(page, root, "heads print", TEXT)
    check_phone_fit(page, root, "heads 390 px", expect_scroll=True)
    assert not watch.problems(), "\n".join(watch.problems())
