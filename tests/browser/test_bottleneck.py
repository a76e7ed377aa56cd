"""BottleneckStepper in a real browser: in the built big-picture chapter (over http and file://)
and in a harness page that feeds bottleneck.js a fake model. The similarities and attention
weights it recomputes are checked against the widget's Python mirror (attnlib's
scaled_dot_product_attention) to 1e-5 after every step; the keyboard, the 390-px reflow, both
themes and hostile token text are checked too, and the time one update takes is measured and
printed (never asserted).

The chapter tests read the built book (ATTNLIB_BOOK_HTML may point at a private build) and skip
when the chapter is not in it; the harness tests need no build.
"""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest
import torch

from attnlib.widgets import BottleneckStepper

from .harness import (
    HOSTILE,
    assert_clean,
    check_file_url,
    check_widget_page,
    open_harness,
    parametrize_pages,
    render_into,
)
from .helpers import BUILD, require_build, widget_pages
from .widget_checks import (
    check_chapter_reader,
    check_dark,
    check_light,
    check_one_live_region,
    check_phone_fit,
    check_print,
    live_text,
    set_theme,
    wait_announced,
)

WIDGET_ID = "attnlib.widgets.bottleneck.BottleneckStepper"  # the _anywidget_id in stored state
CHAPTER = BUILD / "notebooks" / "01_big_picture.html"
PAGES = widget_pages(WIDGET_ID)
needs_chapter = pytest.mark.skipif(
    not CHAPTER.exists(), reason=f"{CHAPTER} is not built (build the book with chapter 1 in it)"
)

READ_JS = """(root) => {
  const bars = (name) => Array.from(root.querySelectorAll(`.${name} .bn-bar-row`)).map((b) =>
    b.dataset.v === '' ? null : Number(b.dataset.v));
  const strip = (name) => Array.from(root.querySelectorAll(`.${name} .bn-cell`)).map((c) =>
    Number(c.dataset.v));
  const current = (name) => Array.from(root.querySelectorAll(`.${name} .bn-token`)).findIndex(
    (t) => t.classList.contains('bn-current'));
  return {
    similar: bars('bn-similar'),
    weights: bars('bn-weights'),
    fixed: strip('bn-fixed-vector'),
    query: strip('bn-query-vector'),
    context: strip('bn-context-vector'),
    source: current('bn-source'),
    output: current('bn-output'),
    counters: Array.from(root.querySelectorAll('.bn-counter')).map((c) => c.textContent),
    summaries: Array.from(root.querySelectorAll('.bn-summary')).map((c) => c.textContent),
    height: root.getBoundingClientRect().height,
  };
}"""


def read(root) -> dict:
    return root.evaluate(READ_JS)


def exercise_bottleneck(root, where: str) -> None:
    """Step both halves: the fixed vector changes and its similarities follow; the weights over
    every source state change with the output step, sum to 1, and the context follows."""
    s0 = read(root)
    S, L = len(s0["similar"]), len(s0["weights"])
    assert S > 1 and L > 1, f"{where}: nothing to step through"
    assert s0["height"] > 200, f"{where}: the widget looks blank ({s0['height']} px high)"
    root.locator(".bn-fixed .bn-slider").fill("0")
    s1 = read(root)
    assert s1["source"] == 0 and s1["similar"][0] == pytest.approx(1.0, abs=1e-9), where
    assert all(v is None for v in s1["similar"][1:]), f"{where}: unread tokens have a value"
    root.locator(".bn-fixed .bn-next").click()
    s2 = read(root)
    assert s2["source"] == 1 and s2["fixed"] != s1["fixed"], f"{where}: the vector stayed"
    for t in range(min(L, 3)):
        root.locator(".bn-attn .bn-slider").fill(str(t))
        s = read(root)
        assert s["output"] == t, where
        assert sum(s["weights"]) == pytest.approx(1.0, abs=1e-9), f"{where}: weights at {t}"
        ctx = np.array(s["weights"]) @ np.array(read_states(root, "encoder", S))
        np.testing.assert_allclose(s["context"], ctx, atol=1e-9, err_msg=where)
    first, last = read(root)["weights"], None
    root.locator(".bn-attn .bn-prev").click()
    last = read(root)["weights"]
    assert first != last, f"{where}: the weights did not change with the output step"


def read_states(root, which: str, n: int) -> list:
    """The encoder states as the page has them, by showing each in the fixed-vector strip."""
    slider = root.locator(".bn-fixed .bn-slider")
    keep = slider.input_value()
    states = []
    for j in range(n):
        slider.fill(str(j))
        states.append(read(root)["fixed"])
    slider.fill(keep)
    return states


# --- the built chapter --------------------------------------------------------------------------


@needs_chapter
@parametrize_pages(PAGES, "no-bottleneck-pages")
def test_chapter_bottleneck_steppers_respond(page_path, book_server, open_page):
    require_build()
    assert page_path is not None, "no built chapter contains a BottleneckStepper"
    check_widget_page(
        open_page, book_server, page_path, ".bn-root", exercise_bottleneck, "BottleneckStepper"
    )


@needs_chapter
def test_chapter_bottleneck_follows_theme_phone_and_print(book_server, open_page):
    require_build()
    check_chapter_reader(open_page, book_server, CHAPTER, ".bn-root", "01_big_picture",
                         heat_selector=".bn-token", min_cells=8)


@needs_chapter
def test_bottleneck_works_over_file_urls(open_page):
    require_build()
    page_path = CHAPTER if CHAPTER in PAGES else (PAGES[0] if PAGES else None)
    assert page_path is not None, "no built chapter contains a BottleneckStepper"
    check_file_url(open_page, page_path, ".bn-root", exercise_bottleneck, "BottleneckStepper")


# --- a harness page: bottleneck.js with a fake anywidget model ----------------------------------


def make(S: int = 6, L: int = 5, D: int = 16, **kwargs) -> BottleneckStepper:
    g = torch.Generator().manual_seed(0)
    args = {
        "source": [str(d) for d in torch.randint(0, 10, (S,), generator=g).tolist()],
        "output": [str(d) for d in torch.randint(0, 10, (L,), generator=g).tolist()],
        "encoder_states": torch.randn(S, D, generator=g).tanh(),
        "decoder_states": (2 * torch.randn(L, D, generator=g)).tanh(),
    }
    args.update(kwargs)
    return BottleneckStepper(**args)


def state_of(widget: BottleneckStepper, **overrides) -> dict:
    names = ("title", "source", "output", "dim", "encoder", "decoder", "scale", "encoder_step",
             "decoder_step")
    state = {name: getattr(widget, name) for name in names}
    state.update(overrides)
    return state


@pytest.fixture
def harness(harness_dir, harness_server, open_page):
    return open_harness(open_page, harness_dir, harness_server, "bottleneck", "BottleneckStepper")


render = partial(render_into, root_selector=".bn-root")  # render(page, element_id, state) -> root


def test_every_step_equals_python(harness):
    """Each step the reader takes shows what attnlib computes for it, to 1e-5."""
    page, watch = harness
    widget = make()
    S, L, D = widget.shape
    root = render(page, "a", state_of(widget, encoder_step=0))
    sims = widget.similarities().numpy()
    contexts, weights = (x.numpy() for x in widget.attention())
    enc, dec = widget.encoder_states().numpy(), widget.decoder_states().numpy()
    for j in range(S):
        s = read(root)
        assert s["source"] == j and s["counters"][0] == f"step {j + 1} of {S}"
        np.testing.assert_allclose(s["similar"][: j + 1], sims[j, : j + 1], atol=1e-5)
        np.testing.assert_allclose(s["fixed"], enc[j], atol=1e-12)
        if j < S - 1:
            root.locator(".bn-fixed .bn-next").click()
    assert root.locator(".bn-fixed .bn-next").is_disabled(), "next is live at the last token"
    assert "all that reaches a decoder without attention" in read(root)["summaries"][0]
    for t in range(L):
        root.locator(".bn-attn .bn-slider").fill(str(t))
        s = read(root)
        np.testing.assert_allclose(s["weights"], weights[t], atol=1e-5, err_msg=f"step {t}")
        np.testing.assert_allclose(s["context"], contexts[t], atol=1e-5)
        np.testing.assert_allclose(s["query"], dec[t], atol=1e-12)
        top = int(np.argmax(weights[t]))
        assert f"the largest, {weights[t, top]:.3f}, is on source token {top}" in s["summaries"][1]
    synced = page.evaluate("() => window.models.a.state")
    assert synced["encoder_step"] == S - 1 and synced["decoder_step"] == L - 1
    assert_clean(watch)


def test_exported_arithmetic(harness):
    page, watch = harness
    widget = make(S=4, L=3, D=8, scale=0.7)
    got = page.evaluate(
        """(s) => { const p = window.bottleneck;
            const enc = p.unpackStates(s.encoder, 4, 8), dec = p.unpackStates(s.decoder, 3, 8);
            const w = [0, 1, 2].map((t) => p.attentionRow(dec, enc, t, s.scale));
            return {w, c: w.map((row) => p.contextVector(row, enc)),
                    sim: [0, 1, 2, 3].map((j) => p.similarityRow(enc, j)),
                    zero: p.cosine([0, 0], [1, 2])}; }""",
        state_of(widget),
    )
    contexts, weights = widget.attention()
    np.testing.assert_allclose(got["w"], weights.numpy(), atol=1e-12)
    np.testing.assert_allclose(got["c"], contexts.numpy(), atol=1e-12)
    np.testing.assert_allclose(got["sim"], widget.similarities().numpy(), atol=1e-12)
    assert got["zero"] == 0
    assert_clean(watch)


def test_keyboard_steps_both_halves(harness):
    page, watch = harness
    root = render(page, "a", state_of(make(), encoder_step=2))
    check_one_live_region(root, "bottleneck")
    live = live_text(root)
    root.locator(".bn-fixed .bn-next").focus()
    page.keyboard.press("Enter")
    page.keyboard.press(" ")
    assert page.evaluate("() => window.models.a.state.encoder_step") == 4
    live = wait_announced(root, live, contains="Source token 5 of 6 read")
    page.keyboard.press("ArrowLeft")  # arrow keys on a focused button step too
    assert page.evaluate("() => window.models.a.state.encoder_step") == 3
    root.locator(".bn-attn .bn-slider").focus()
    page.keyboard.press("ArrowRight")
    page.keyboard.press("End")
    assert page.evaluate("() => window.models.a.state.decoder_step") == 4
    assert read(root)["output"] == 4
    wait_announced(root, live, contains="Output step 5 of 5")
    outline = page.evaluate("() => getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none", "the focused slider shows no focus ring"
    # Tab reaches every control of both halves in reading order.
    root.locator(".bn-fixed .bn-prev").focus()
    seen = []
    for _ in range(4):
        page.keyboard.press("Tab")
        seen.append(page.evaluate("() => document.activeElement.className").split()[-1])
    assert seen == ["bn-slider", "bn-next", "bn-prev", "bn-slider"], seen
    names = page.evaluate("""() => Array.from(document.querySelectorAll('#a button, #a input'))
        .map((n) => n.getAttribute('aria-label'))""")
    assert all(names), names
    assert_clean(watch)


def test_hostile_tokens_are_text(harness):
    page, watch = harness
    n = len(HOSTILE)
    widget = make(S=n, L=n, source=HOSTILE, output=HOSTILE[::-1])
    root = render(page, "a", state_of(widget, title=HOSTILE[1]))
    root.locator(".bn-attn .bn-next").click()
    page.wait_for_timeout(200)
    found = page.evaluate("""() => ({
        injected: document.querySelectorAll('#a img, #a script, #a svg').length,
        source: Array.from(document.querySelectorAll('#a .bn-source .bn-token'))
          .map((t) => t.title),
        title: document.querySelector('#a .bn-title').textContent})""")
    assert found["injected"] == 0 and found["source"] == HOSTILE and found["title"] == HOSTILE[1]
    assert not watch.dialogs
    assert_clean(watch)


def test_themes_print_and_phone(harness):
    """Light and dark palettes (text AA, on the shaded tokens too), print, and 390 px: the
    strips shrink with the widget, so nothing scrolls."""
    page, watch = harness
    root = render(page, "a", state_of(make(S=12, L=12, D=64, source=list("0123456789ab"),
                                               output=list("ba9876543210")), encoder_step=5))
    check_light(root, "bottleneck light", ".bn-token", min_cells=12)
    light = root.evaluate("(r) => getComputedStyle(r.querySelector('.bn-bar-fill')).background")
    set_theme(page, "dark")
    check_dark(root, "bottleneck dark", ".bn-token", min_cells=12)
    dark = root.evaluate("(r) => getComputedStyle(r.querySelector('.bn-bar-fill')).background")
    assert dark != light, "the bars keep their light-theme colour in the dark theme"
    check_print(page, root, "bottleneck print", ".bn-token")
    check_phone_fit(page, root, "bottleneck 390 px")
    assert_clean(watch)


def test_update_time_is_measured(harness, capsys):
    """How long one update takes (an output step: S = 12 weights over D = 64, the context and
    two strips): printed for the record, never asserted."""
    page, watch = harness
    render(page, "a", state_of(make(S=12, L=12, D=64)))
    ms = page.evaluate("""() => {
        const m = window.models.a; const times = [];
        for (let k = 0; k < 45; k++) {
          const t0 = performance.now();
          m.set('decoder_step', k % 12); m.set('encoder_step', (k + 5) % 12);
          if (k >= 5) times.push(performance.now() - t0);
        }
        times.sort((a, b) => a - b);
        return {median: times[20], max: times[39]};
    }""")
    with capsys.disabled():
        print(f"\nBottleneckStepper update (S = L = 12, D = 64, both halves): median "
              f"{ms['median']:.2f} ms, max {ms['max']:.2f} ms")
    assert_clean(watch)
