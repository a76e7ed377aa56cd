"""OnlineSoftmaxTiles in a real browser: in the built chapter 12 (over http and file://) and in a
harness page that feeds tiles.js the state the Python widget really sends (its stepping, its
syncing, its handling of hostile token text).

The chapter tests read the built book (a private build can be pointed at with ATTNLIB_BOOK_HTML)
and skip when chapter 12 is not in it; the harness tests need no build.
"""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest
import torch

from attnlib.widgets.tiles import OnlineSoftmaxTiles

from .harness import (
    HOSTILE,
    assert_clean,
    check_file_url,
    check_widget_page,
    open_harness,
    render_into,
)
from .helpers import BUILD
from .widget_checks import (
    check_chapter_reader,
    check_dark,
    check_light,
    check_one_live_region,
    check_phone_fit,
    check_print,
    focus_by_tab,
    live_text,
    set_theme,
    wait_announced,
)

WIDGET_ID = "attnlib.widgets.tiles.OnlineSoftmaxTiles"  # the _anywidget_id in stored state
CHAPTER = BUILD / "notebooks" / "12_efficiency.html"
needs_chapter = pytest.mark.skipif(
    not (CHAPTER.exists() and WIDGET_ID in CHAPTER.read_text(encoding="utf-8")),
    reason=f"{CHAPTER} is not built with a tile widget (build the book with chapter 12 in it)",
)

READ_JS = """(root) => {
  const cells = Array.from(root.querySelectorAll('.tl-cell'));
  const state = (c) => ['current', 'done', 'todo', 'skipped'].find((s) =>
    c.classList.contains('tl-' + s));
  const rows = Array.from(root.querySelectorAll('.tl-state tbody tr'));
  return {
    step: Number(root.dataset.step),
    counter: root.querySelector('.tl-counter').textContent,
    caption: root.querySelector('.tl-caption').textContent,
    footer: root.querySelector('.tl-footer').textContent,
    cells: cells.map((c) => ({i: Number(c.dataset.i), j: Number(c.dataset.j), state: state(c),
                              text: c.textContent, score: c.dataset.score ?? null})),
    m: rows.map((r) => r.querySelector('.tl-m').textContent),
    l: rows.map((r) => r.querySelector('.tl-l').textContent),
    out: rows.map((r) => r.querySelector('.tl-out').textContent),
    exact: rows.map((r) => r.querySelector('.tl-exact').textContent),
    updated: rows.map((r) => r.classList.contains('tl-updated')),
    finished: rows.map((r) => r.classList.contains('tl-finished')),
    prevDisabled: root.querySelector('.tl-prev').disabled,
    nextDisabled: root.querySelector('.tl-next').disabled,
    height: root.getBoundingClientRect().height,
  };
}"""


def read(root) -> dict:
    return root.evaluate(READ_JS)


def vector(values) -> str:
    return "[" + ", ".join(f"{v:.2f}".replace("-", "\u2212") for v in values) + "]"


def check_step(s: dict, step: dict, where: str) -> None:
    """The view at one step shows that step's tile, and its m, l and outputs."""
    (i0, i1), (j0, j1) = step["rows"], step["cols"]
    current = [(c["i"], c["j"]) for c in s["cells"] if c["state"] == "current"]
    expected = [(i, j) for i in range(i0, i1) for j in range(j0, j1)]
    assert current == expected, f"{where}: outlined cells {current}, expected the tile {expected}"
    for c in s["cells"]:
        if c["state"] == "current":
            score = step["scores"][c["i"] - i0][c["j"] - j0]
            shown = "-inf" if score is None else float(c["score"])
            assert shown == ("-inf" if score is None else pytest.approx(score)), where
        else:
            assert c["score"] is None, f"{where}: a score outside the tile is still shown"
    assert s["updated"] == [i0 <= i < i1 for i in range(len(s["m"]))], where
    for i, (m, ell) in enumerate(zip(step["m"], step["l"], strict=True)):
        want_m = "\u2212\u221e" if m is None else f"{m:.3f}".replace("-", "\u2212")
        assert s["m"][i] == want_m and s["l"][i] == f"{ell:.3f}", f"{where}: row {i}"
        assert s["out"][i] == (vector(step["out"][i]) if ell > 0 else "\u2014"), f"{where}: {i}"


def drive(root, state: dict, where: str) -> None:
    """Step forward to the end with the button, then back with the keys, checking each view."""
    steps, K = state["steps"], len(state["steps"])
    s = read(root)
    assert s["height"] > 80, f"{where}: the widget looks blank"
    assert s["step"] == 0 and s["prevDisabled"] and not s["nextDisabled"], where
    check_step(s, steps[0], f"{where} step 0")
    for k in range(1, K):
        root.locator(".tl-next").click()
        s = read(root)
        assert s["step"] == k and s["counter"] == f"step {k + 1} of {K}", where
        check_step(s, steps[k], f"{where} step {k}")
    assert s["nextDisabled"] and all(s["finished"]), f"{where}: not finished at the last step"
    assert s["out"] == s["exact"], f"{where}: the last running outputs differ from the exact ones"
    assert f"{len(s['m'])} of {len(s['m'])} queries" in s["footer"], where
    root.focus()
    root.press("ArrowLeft")
    assert read(root)["step"] == K - 2, f"{where}: ArrowLeft did not step back"
    root.locator("input[type=range]").fill("0")
    assert read(root)["step"] == 0, f"{where}: the slider did not move to step 0"


# --- the built chapter --------------------------------------------------------------------------


def step_to_the_end(root, where: str) -> None:
    """Drive a widget of the built chapter: step forward to the last tile, check the outputs."""
    s = read(root)
    assert s["height"] > 80, f"{where}: the widget looks blank"
    K = int(s["counter"].split(" of ")[1])
    assert K > 1 and s["step"] == 0, f"{where}: {s['counter']}"
    for k in range(1, K):
        root.locator(".tl-next").click()
        assert read(root)["step"] == k, f"{where}: next did not reach step {k}"
    s = read(root)
    assert all(s["finished"]) and s["out"] == s["exact"], f"{where}: outputs not exact at the end"


@needs_chapter
def test_chapter_tiles_step_over_http(book_server, open_page):
    check_widget_page(open_page, book_server, CHAPTER, ".tl-root", step_to_the_end,
                      "OnlineSoftmaxTiles", count=1)


@needs_chapter
def test_chapter_tiles_over_file_urls(open_page):
    check_file_url(open_page, CHAPTER, ".tl-root", step_to_the_end, "OnlineSoftmaxTiles")


# --- a harness page: tiles.js with a fake anywidget model ---------------------------------------

def widget_state(L=5, S=7, block=(2, 3), causal=False, tokens=None, seed=0) -> dict:
    g = torch.Generator().manual_seed(seed)
    q, k = torch.randn(L, 4, generator=g), torch.randn(S, 4, generator=g)  # (L, E), (S, E)
    v = torch.randn(S, 2, generator=g)  # (S, Ev)
    w = OnlineSoftmaxTiles(q, k, v, block_size=block, is_causal=causal, tokens=tokens,
                           key_tokens=tokens, title="<b>tiles</b>")
    state = w.get_state()
    return {name: state[name] for name in
            ("title", "tokens", "key_tokens", "block", "causal", "steps", "exact", "step")}


@pytest.fixture
def harness(harness_dir, harness_server, open_page):
    return open_harness(open_page, harness_dir, harness_server, "tiles", "OnlineSoftmaxTiles")


render = partial(render_into, root_selector=".tl-root")  # render(page, "a", state) -> root


def test_steps_through_every_tile_to_the_exact_output(harness):
    page, watch = harness
    state = widget_state()
    assert len(state["steps"]) == 3 * 3  # ceil(5 / 2) query blocks x ceil(7 / 3) key blocks
    root = render(page, "a", state)
    drive(root, state, "harness")
    assert page.evaluate("() => window.models.a.saved") >= len(state["steps"]) + 1
    assert_clean(watch)


def test_causal_tiles_skip_the_upper_triangle(harness):
    page, watch = harness
    state = widget_state(L=6, S=6, block=2, causal=True)
    assert len(state["steps"]) == 1 + 2 + 3  # query block b visits key blocks 0..b
    root = render(page, "b", state)
    s = read(root)
    skipped = {(c["i"], c["j"]) for c in s["cells"] if c["state"] == "skipped"}
    assert skipped == {(i, j) for i in range(6) for j in range(6) if j // 2 > i // 2}
    drive(root, state, "causal harness")
    # In a diagonal tile, the keys after the query are masked: shown as -inf, never computed.
    page.evaluate("() => window.models.b.set('step', 0)")
    first = read(root)["cells"]
    assert [c["text"] for c in first if (c["i"], c["j"]) == (0, 1)] == ["\u2212\u221e"]
    assert_clean(watch)


def test_model_drives_the_view_and_helpers_agree(harness):
    page, watch = harness
    state = widget_state(L=4, S=4, block=(4, 1))
    root = render(page, "a", state)
    page.evaluate("() => window.models.a.set('step', 2)")
    s = read(root)
    assert s["step"] == 2
    check_step(s, state["steps"][2], "model -> view")
    # The running maximum can only grow, step after step; the helpers see the same owners.
    ms = np.array([[np.nan if m is None else m for m in st["m"]] for st in state["steps"]])
    assert np.all(np.diff(ms, axis=0) >= 0)
    owners = page.evaluate("(s) => window.tiles.tileOwners(s.steps, 4, 4)", state)
    assert owners == [[0, 1, 2, 3]] * 4
    assert page.evaluate("() => [window.tiles.fmt(null), window.tiles.fmt(-0.0001)]") == [
        "\u2212\u221e", "0.000"]
    assert_clean(watch)


def test_hostile_tokens_are_shown_as_text(harness):
    page, watch = harness
    state = widget_state(L=len(HOSTILE), S=len(HOSTILE), block=2, tokens=HOSTILE)
    root = render(page, "a", state)
    root.locator(".tl-next").click()
    page.wait_for_timeout(200)  # give any injected element time to fire
    found = page.evaluate(
        """() => {
          const el = document.getElementById('a');
          return {
            injected: el.querySelectorAll('img, script, svg, b').length,
            queries: Array.from(el.querySelectorAll('.tl-query')).map((q) => q.textContent),
            keys: Array.from(el.querySelectorAll('.tl-key')).map((k) => k.textContent),
            rows: Array.from(el.querySelectorAll('.tl-state-token')).map((t) => t.textContent),
            title: el.querySelector('.tl-title').textContent,
          };
        }"""
    )
    assert found["injected"] == 0, "token text was parsed as HTML"
    assert found["queries"] == HOSTILE and found["keys"] == HOSTILE and found["rows"] == HOSTILE
    assert found["title"] == "<b>tiles</b>"
    assert not watch.dialogs, f"a dialog fired: {watch.dialogs}"
    assert_clean(watch)


# --- the reader: dark theme, a phone, the keyboard, print ---------------------------------------


@needs_chapter
def test_chapter_tiles_follow_theme_phone_and_print(book_server, open_page):
    # The grid's shading is no heatmap: the text measured is the current tile's scores, on its
    # tint.
    found = check_chapter_reader(
        open_page, book_server, CHAPTER, ".tl-root", "12_efficiency",
        heat_selector=".tl-cell.tl-current, .tl-state td", min_cells=3,
    )
    for theme, colours in found.items():  # shown with -s: the measured contrast figures
        ratios = [c["ratio"] for c in colours["cells"]]
        print(f"tiles {theme}: text {colours['text']:.2f}, tile and state text {min(ratios):.2f}"
              f"..{max(ratios):.2f} over {len(ratios)} cells")


def test_keyboard_steps_the_tiles_and_they_announce(harness):
    page, watch = harness
    state = widget_state()
    K = len(state["steps"])
    root = render(page, "a", state)
    check_one_live_region(root, "tiles")
    live = live_text(root)
    focus_by_tab(page, "#a .tl-root")
    page.keyboard.press("ArrowDown")
    assert read(root)["step"] == 1 and page.evaluate("() => window.models.a.state.step") == 1
    live = wait_announced(root, live, contains=f"Step 2 of {K}")
    page.keyboard.press("ArrowUp")
    assert read(root)["step"] == 0
    live = wait_announced(root, live, contains=f"Step 1 of {K}")
    # Tab: previous (disabled at step 0, so skipped), the slider, next.
    focus_by_tab(page, "#a .tl-slider")
    page.keyboard.press("End")
    assert read(root)["step"] == K - 1
    wait_announced(root, live, contains=f"Step {K} of {K}")
    focus_by_tab(page, "#a .tl-prev")
    page.keyboard.press("Space")
    assert read(root)["step"] == K - 2
    assert_clean(watch)


def test_tiles_in_the_dark_theme_and_on_a_phone(harness):
    page, watch = harness
    root = render(page, "a", widget_state(L=6, S=16, block=(2, 4)))
    root.locator(".tl-next").click()
    cells = ".tl-cell.tl-current, .tl-state td"
    check_light(root, "tiles light", cells, min_cells=3)
    set_theme(page, "dark")
    check_dark(root, "tiles dark", cells, min_cells=3)
    check_print(page, root, "tiles print", cells)
    check_phone_fit(page, root, "tiles 390 px", expect_scroll=True)
    assert_clean(watch)
