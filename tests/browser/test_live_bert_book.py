"""The BERT chapter's live view in the built book: over http and over file:// (opened from disk),
the button loads MiniLM's int8 weights from _static/ with a <script src>, the page runs it on the
reader's sentence and shows MiniLM's own tokens, with 0 failed requests and 0 console errors.

Prints (never asserts) the times: load-to-ready and a 16-token forward pass (median of 10).
"""

from __future__ import annotations

import pytest

from attnlib.weights import load_minilm
from attnlib.widgets.heads import WEIGHTS_FILE

from .harness import assert_clean
from .helpers import BUILD

CHAPTER = BUILD / "notebooks" / "08_bert.html"
LIVE = ".hv-root:has(.hv-yours)"
WEIGHTS = BUILD / "_static" / WEIGHTS_FILE
SIXTEEN = "The quick brown fox jumps over the lazy dog near the river bank."  # 16 tokens

needs_chapter = pytest.mark.skipif(not CHAPTER.exists(), reason=f"{CHAPTER} is not built")

# Types `text` n times (alternating with a variant so every input is new), waiting for each
# pass; returns the passes' times in ms, as the view records them.
TIMES_JS = """async ([root, text, n]) => {
  const box = root.querySelector('.hv-input');
  const times = [];
  for (let k = 0; k < n; k++) {
    const before = root.dataset.forwardMs;
    box.value = box.value === text ? text.replace('river', 'lake') : text; // a new input
    box.dispatchEvent(new Event('input'));
    while (root.dataset.forwardMs === before) await new Promise((r) => setTimeout(r, 2));
    times.push(Number(root.dataset.forwardMs));
  }
  return times;
}"""


def exercise_live(root, where: str) -> dict:
    """Press the button, wait for the first pass, type a sentence; returns the figures."""
    _, tokenizer = load_minilm()
    page = root.page
    assert root.locator(".hv-thumb").count() == 72, where
    load = root.locator(".hv-load")
    assert load.text_content().startswith("Load MiniLM ("), where
    assert not page.evaluate("() => !!window.attnlibMiniLM"), f"{where}: loaded before the press"
    load.click()
    page.wait_for_function(
        "(r) => r.dataset.live === 'ready' || r.dataset.live === 'failed'",
        arg=root.element_handle(),
        timeout=120000,
    )
    state = root.evaluate("(r) => r.dataset.live")
    assert state == "ready", f"{where}: {root.locator('.hv-status').text_content()}"
    load_ms = float(root.evaluate("(r) => r.dataset.loadMs"))
    assert len(tokenizer.encode(SIXTEEN).tokens) == 16
    times = sorted(page.evaluate(TIMES_JS, [root.element_handle(), SIXTEEN, 10]))
    pieces = root.evaluate(
        "(r) => Array.from(r.querySelectorAll('.hv-headview .hv-q')).map((t) => t.textContent)"
    )
    final = root.locator(".hv-input").input_value()  # the last of the alternating inputs
    assert len(tokenizer.encode(final).tokens) == 16
    assert pieces == tokenizer.encode(final).tokens, (where, pieces)
    return {"load_ms": load_ms, "median_ms": times[len(times) // 2]}


def report(where: str, figures: dict) -> None:
    print(
        f"\n{where}: weights file {WEIGHTS.stat().st_size / 1e6:.1f} MB; load-to-ready "
        f"{figures['load_ms']:.0f} ms (includes the first pass); 16-token forward, median of "
        f"10: {figures['median_ms']:.0f} ms"
    )


@needs_chapter
def test_the_weights_file_is_in_the_html_build_only():
    assert WEIGHTS.is_file() and WEIGHTS.stat().st_size > 10_000_000
    with WEIGHTS.open(encoding="utf-8") as f:
        assert f.readline().startswith("// all-MiniLM-L6-v2, int8")
        assert f.read(30).startswith("window.attnlibMiniLM = {")
    epub_static = BUILD.parent / "epub" / "_static" / WEIGHTS_FILE
    assert not epub_static.exists(), "the EPUB ships no script"


@needs_chapter
def test_live_view_over_http(book_server, open_page):
    page, watch = open_page(book_server.url(CHAPTER), (book_server.base,))
    root = page.locator(LIVE)
    assert root.count() == 1
    root.scroll_into_view_if_needed()
    report("http", exercise_live(root, "08_bert.html (http)"))
    assert_clean(watch)


@needs_chapter
def test_live_view_over_file_urls(open_page):
    page, watch = open_page(CHAPTER.as_uri(), ("file://",))
    root = page.locator(LIVE)
    assert root.count() == 1
    root.scroll_into_view_if_needed()
    report("file://", exercise_live(root, "08_bert.html (file://)"))
    assert_clean(watch)  # 0 failed requests, 0 console errors
