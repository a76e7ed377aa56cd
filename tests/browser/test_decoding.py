"""DecodingStepper in a real browser: in the built RNN chapter (over http and file://) and in a
harness page that feeds decoding.js a fake model (its parsing of the weights, its syncing, hostile
text)."""

from __future__ import annotations

import re
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

CHAPTER = BUILD / "notebooks" / "03_rnn_attention.html"

# The stepper of stored examples (the live one is tested in test_decoding_live.py).
STORED = ".ds-root:not(.ds-live)"

needs_chapter = pytest.mark.skipif(
    not CHAPTER.exists(), reason=f"{CHAPTER} is not built (build the book with chapter 3 in it)"
)

READ_JS = """(root) => {
  const num = (nodes) => Array.from(nodes).map((n) => Number(n.dataset.w));
  const rows = {};
  for (const c of root.querySelectorAll('.ds-cell')) {
    (rows[c.dataset.t] ||= []).push(Number(c.dataset.w));
  }
  const out = Array.from(root.querySelectorAll('.ds-out'));
  return {
    options: Array.from(root.querySelectorAll('select option')).map((o) => o.textContent),
    example: root.querySelector('select').value,
    step: root.querySelector('.ds-step').textContent,
    slider: Number(root.querySelector('.ds-slider').value),
    output: out.map((o) => o.textContent),
    current: out.findIndex((o) => o.classList.contains('ds-current')),
    future: out.filter((o) => o.classList.contains('ds-future')).length,
    source: Array.from(root.querySelectorAll('.ds-src .ds-char')).map((c) => c.textContent),
    strip: num(root.querySelectorAll('.ds-src')),
    best: Array.from(root.querySelectorAll('.ds-src')).findIndex((c) =>
      c.classList.contains('ds-best')),
    map: Object.keys(rows).sort((a, b) => a - b).map((t) => rows[t]),
    currentRow: Number((root.querySelector('.ds-row-head.ds-current') || {dataset: {t: -1}})
      .dataset.t),
    looks: root.querySelector('.ds-looks').textContent,
    prevDisabled: root.querySelector('.ds-prev').disabled,
    nextDisabled: root.querySelector('.ds-next').disabled,
    title: root.querySelector('.ds-title').textContent,
    height: root.getBoundingClientRect().height,
  };
}"""


def read(root) -> dict:
    return root.evaluate(READ_JS)


def step_of(state) -> int:
    return int(re.match(r"step (\d+) of \d+", state["step"]).group(1)) - 1


def check_consistent(s, where: str) -> None:
    """The strip shows the current row of the map; the current output cell is the step."""
    t = step_of(s)
    assert s["current"] == t and s["currentRow"] == t and s["slider"] == t, f"{where}: {s}"
    assert s["future"] == len(s["output"]) - t - 1, f"{where}: future cells"
    assert s["strip"] == s["map"][t], f"{where}: the strip is not row {t} of the map"
    assert abs(sum(s["strip"]) - 1) < 0.01, f"{where}: weights of step {t} sum to {sum(s['strip'])}"
    assert s["best"] == int(np.argmax(s["strip"])), (
        f"{where}: the outlined character is not the top"
    )
    assert len(s["map"]) == len(s["output"]) and all(len(r) == len(s["source"]) for r in s["map"])


def exercise_chapter_stepper(root, where: str) -> None:
    page = root.page
    s0 = read(root)
    assert s0["height"] > 150, f"{where}: the widget looks blank ({s0['height']} px high)"
    assert len(s0["options"]) == 7, f"{where}: {s0['options']}"  # six examples + one added
    assert s0["options"][0] == "fr: 22 novembre 2026", s0["options"]
    assert s0["title"] == "Decoding a date, one character at a time"
    check_consistent(s0, where)

    # Back to the first example, at its first step.
    root.locator("select").select_option("0")
    root.locator(".ds-row-head").first.click()
    s1 = read(root)
    assert s1["example"] == "0" and step_of(s1) == 0 and s1["prevDisabled"], where
    assert "".join(s1["source"]) == "22\u2423novembre\u24232026", s1["source"]
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", "".join(s1["output"][:10])), s1["output"]
    assert s1["output"][-1] == "</s>", s1["output"]
    check_consistent(s1, where)
    assert s1["looks"].startswith(f"Writing {s1['output'][0]}, it looks at: "), s1["looks"]

    # Next, next, next: three steps on, the view follows.
    for _ in range(3):
        root.locator(".ds-next").click()
    s2 = read(root)
    assert step_of(s2) == 3, where
    check_consistent(s2, where)
    # The arrow keys move too.
    root.focus()
    page.keyboard.press("ArrowLeft")
    assert step_of(read(root)) == 2, f"{where}: ArrowLeft did not go back"
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")
    assert step_of(read(root)) == 4, f"{where}: ArrowRight did not go on"

    # A click on a map row jumps there; at the last step "next" is disabled.
    last = len(s1["output"]) - 1
    root.locator(f'.ds-row-head[data-t="{last}"]').click()
    s3 = read(root)
    assert step_of(s3) == last and s3["nextDisabled"] and s3["future"] == 0, where
    check_consistent(s3, where)

    # The slider, and another example.
    root.locator(".ds-slider").fill("1")
    assert step_of(read(root)) == 1, f"{where}: the slider did not move the step"
    root.locator("select").select_option("2")
    s4 = read(root)
    assert s4["example"] == "2" and s4["source"] != s1["source"], where
    check_consistent(s4, where)


@needs_chapter
def test_chapter_stepper_responds(book_server, open_page):
    check_widget_page(
        open_page,
        book_server,
        CHAPTER,
        STORED,
        exercise_chapter_stepper,
        "DecodingStepper",
        count=1,
    )


@needs_chapter
def test_chapter_stepper_over_file_urls(open_page):
    check_file_url(
        open_page, CHAPTER, STORED, exercise_chapter_stepper, "DecodingStepper", count=1
    )


# --- a harness page: decoding.js with a fake anywidget model ------------------------------------

# A lone space too: the widget shows it as a visible mark.
TOKENS = HOSTILE + [" "]


def example(source, output, weights, label=None) -> dict:
    """What DecodingStepper sends for one example: weights (L, S) in thousandths."""
    milli = np.rint(np.asarray(weights) * 1000).astype(int)
    return {
        "label": label if label is not None else "".join(source),
        "source": list(source),
        "output": list(output),
        "weights": ",".join(map(str, milli.ravel().tolist())),
    }


def random_weights(rng, L, S):
    scores = rng.normal(size=(L, S)) * 2
    w = np.exp(scores - scores.max(-1, keepdims=True))
    return w / w.sum(-1, keepdims=True)


@pytest.fixture
def harness(harness_dir, harness_server, open_page):
    return open_harness(open_page, harness_dir, harness_server, "decoding", "DecodingStepper")


render = partial(render_into, root_selector=".ds-root")  # render(page, element_id, state) -> root


def test_weights_are_parsed_back_exactly(harness):
    page, watch = harness
    rng = np.random.default_rng(0)
    w = random_weights(rng, 4, 6)
    data = example("abcdef", "wxyz", w)
    got = np.array(page.evaluate("([e]) => window.decoding.unpack(e)", [data]))
    np.testing.assert_allclose(got, np.rint(w * 1000) / 1000, atol=1e-12)
    assert page.evaluate("() => window.decoding.topK([0.1, 0.6, 0.3, 0.0], 3)") == [1, 2, 0]
    assert page.evaluate("() => window.decoding.topK([0.5, 0.5], 1)") == [0]  # ties: leftmost
    clamp = page.evaluate("() => [-3, 0, 2, 9, 'x'].map((s) => window.decoding.clampIndex(s, 4))")
    assert clamp == [0, 0, 2, 3, 0]
    assert not watch.problems(), "\n".join(watch.problems())


def test_view_and_model_stay_in_sync(harness):
    page, watch = harness
    rng = np.random.default_rng(1)
    first = example("abc", "xy", random_weights(rng, 2, 3))
    root = render(page, "a", {"title": "t", "examples": [first], "example": 0, "step": 0})
    model = "window.models.a"
    s = read(root)
    assert s["step"] == "step 1 of 2" and s["prevDisabled"] and not s["nextDisabled"]
    check_consistent(s, "harness")

    # View -> model: the next button and a map row click reach the model and are saved.
    root.locator(".ds-next").click()
    state = page.evaluate(f"() => ({{...{model}.state, saved: {model}.saved}})")
    assert state["step"] == 1 and state["saved"] == 1
    root.locator('.ds-row-head[data-t="0"]').click()
    assert page.evaluate(f"() => {model}.state.step") == 0

    # Model -> view: Python's add() replaces the list, resets the step and picks the new example.
    second = example("hello", "abcd", random_weights(rng, 4, 5), label="second one")
    page.evaluate(
        "([e]) => { const m = window.models.a; m.set('examples', [m.get('examples')[0], e]);"
        " m.set('step', 0); m.set('example', 1); }",
        [second],
    )
    s = read(root)
    assert s["options"] == ["abc", "second one"] and s["example"] == "1"
    assert s["source"] == list("hello") and s["output"] == list("abcd")
    page.evaluate(f"() => {model}.set('step', 3)")
    s = read(root)
    assert step_of(s) == 3 and s["nextDisabled"]
    check_consistent(s, "harness after add")
    # Choosing a shorter example in the view clamps the step into range.
    root.locator("select").select_option("0")
    state = page.evaluate(f"() => {model}.state")
    assert state["example"] == 0 and state["step"] == 1
    check_consistent(read(root), "harness after select")
    assert not watch.problems(), "\n".join(watch.problems())


def test_hostile_text_is_shown_as_text(harness):
    page, watch = harness
    n = len(TOKENS)
    data = example(TOKENS, TOKENS[::-1], np.full((n, n), 1 / n), label="<b>bold?</b>")
    root = render(page, "b", {"title": "<i>title</i>", "examples": [data], "example": 0,
                              "step": 0})  # fmt: skip
    root.locator(".ds-next").click()
    root.locator('.ds-row-head[data-t="3"]').click()
    page.wait_for_timeout(300)  # give any injected element time to fire
    found = page.evaluate(
        """() => {
          const el = document.getElementById('b');
          return {
            injected: el.querySelectorAll('img, script, svg, b, i').length,
            source: Array.from(el.querySelectorAll('.ds-char')).map((t) => t.textContent),
            output: Array.from(el.querySelectorAll('.ds-out')).map((t) => t.textContent),
            title: el.querySelector('.ds-title').textContent,
            option: el.querySelector('option').textContent,
          };
        }"""
    )
    shown = [t if t != " " else "\u2423" for t in TOKENS]
    assert found["injected"] == 0, "text was parsed as HTML"
    assert found["source"] == shown and found["output"] == shown[::-1]
    assert found["title"] == "<i>title</i>" and found["option"] == "<b>bold?</b>"
    assert not watch.dialogs, f"a dialog fired: {watch.dialogs}"
    assert not watch.problems(), "\n".join(watch.problems())


# --- the reader: dark theme, a phone, the keyboard, print ---------------------------------------


@needs_chapter
def test_chapter_stepper_follows_theme_phone_and_print(book_server, open_page):
    found = check_chapter_reader(
        open_page, book_server, CHAPTER, STORED, "03_rnn_attention", heat_selector=".ds-src",
        min_cells=3,
    )
    for theme, colours in found.items():  # shown with -s: the measured contrast figures
        ratios = [c["ratio"] for c in colours["cells"]]
        print(f"decoding {theme}: text {colours['text']:.2f}, source strip {min(ratios):.2f}"
              f"..{max(ratios):.2f} over {len(ratios)} cells")


def test_keyboard_steps_the_decoder_and_it_announces(harness):
    page, watch = harness
    rng = np.random.default_rng(4)
    data = example("abcdef", "wxyz", random_weights(rng, 4, 6))
    root = render(page, "a", {"title": "", "examples": [data], "example": 0, "step": 0})
    model = "window.models.a"
    check_one_live_region(root, "decoding")
    live = live_text(root)
    # The widget itself is the first Tab stop: the arrow keys step it.
    focus_by_tab(page, "#a .ds-root")
    page.keyboard.press("ArrowRight")
    assert step_of(read(root)) == 1 and page.evaluate(f"() => {model}.state.step") == 1
    live = wait_announced(root, live, contains="Step 2 of 4")
    # The output so far is one Tab stop (the current character); arrows step and focus follows.
    focus_by_tab(page, "#a .ds-out")
    assert focused(page, "el => el.dataset.t") == "1"
    page.keyboard.press("ArrowRight")
    assert focused(page, "el => el.dataset.t") == "2" and step_of(read(root)) == 2
    wait_announced(root, live, contains="Step 3 of 4")
    stops = root.evaluate("(r) => r.querySelectorAll('.ds-out[tabindex=\"0\"]').length")
    assert stops == 1
    # The buttons: Enter on "previous" steps back.
    focus_by_tab(page, "#a .ds-prev")
    page.keyboard.press("Enter")
    assert step_of(read(root)) == 1
    assert not watch.problems(), "\n".join(watch.problems())


def test_stepper_in_the_dark_theme_and_on_a_phone(harness):
    page, watch = harness
    rng = np.random.default_rng(5)
    source = "the twenty-ninth of february 2024"
    data = example(source, "2024-02-29", random_weights(rng, 10, len(source)))
    root = render(page, "a", {"title": "", "examples": [data], "example": 0, "step": 3})
    check_light(root, "decoding light", ".ds-src", min_cells=3)
    set_theme(page, "dark")
    check_dark(root, "decoding dark", ".ds-src", min_cells=3)
    check_print(page, root, "decoding print", ".ds-src")
    check_phone_fit(page, root, "decoding 390 px", expect_scroll=True)
    # The alignment map's box is in the Tab order: there the arrow keys scroll, not step.
    focus_by_tab(page, "#a .ds-scroll")
    page.keyboard.press("ArrowRight")
    page.wait_for_function("() => document.querySelector('#a .ds-scroll').scrollLeft > 0")
    assert step_of(read(root)) == 3
    assert not watch.problems(), "\n".join(watch.problems())
