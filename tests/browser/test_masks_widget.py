"""MaskExplorer in a real browser: in the built masking chapter (over http and file://) and in a
harness page that feeds masks.js a fake model (its arithmetic, its syncing, its handling of
hostile token text).

The chapter tests read the built book (see ROUND2.md: a private build can be pointed at with
ATTNLIB_BOOK_HTML) and skip when chapter 6 is not in it; the harness tests need no build.
"""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest

from .harness import (
    HOSTILE,
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
    focus_by_tab,
    focused,
    live_text,
    set_theme,
    wait_announced,
)

WIDGET_ID = "attnlib.widgets.masks.MaskExplorer"  # the _anywidget_id in stored state
CHAPTER = BUILD / "notebooks" / "06_masking.html"
PAGES = widget_pages(WIDGET_ID)
needs_chapter = pytest.mark.skipif(
    not CHAPTER.exists(), reason=f"{CHAPTER} is not built (build the book with chapter 6 in it)"
)

READ_JS = """(root) => {
  const grids = root.querySelectorAll('.me-grid');
  const rows = (g) => Array.from(g.querySelectorAll('.me-row[data-i]'));
  const checked = root.querySelector('.me-kinds input:checked');
  return {
    allowed: rows(grids[0]).map((r) =>
      Array.from(r.querySelectorAll('.me-mask')).map((c) => c.dataset.allowed === '1')),
    marks: rows(grids[0]).map((r) =>
      Array.from(r.querySelectorAll('.me-mask')).map((c) => c.textContent)),
    weights: rows(grids[1]).map((r) =>
      Array.from(r.querySelectorAll('.me-cell')).map((c) => Number(c.dataset.w))),
    sums: rows(grids[1]).map((r) => Number(r.querySelector('.me-sum').dataset.sum)),
    dead: rows(grids[1]).map((r) => r.querySelector('.me-sum').classList.contains('me-dead')),
    kind: checked ? checked.value : null,
    length: Number(root.querySelector('.me-length input').value),
    lengthDisabled: root.querySelector('.me-length input').disabled,
    window: Number(root.querySelector('.me-window input').value),
    windowDisabled: root.querySelector('.me-window input').disabled,
    causal: root.querySelector('.me-causal input').checked,
    summary: root.querySelector('.me-summary').textContent,
    padKeys: Array.from(grids[0].querySelectorAll('.me-key')).map((k) =>
      k.classList.contains('me-pad')),
    height: root.getBoundingClientRect().height,
  };
}"""


def read(root) -> dict:
    return root.evaluate(READ_JS)


def assert_consistent(state, where: str) -> None:
    """Weights are 0 where masked, rows sum to 1 (or 0 when nothing is allowed), no NaN."""
    allowed = np.array(state["allowed"], dtype=bool)
    weights = np.array(state["weights"], dtype=float)
    assert allowed.shape == weights.shape, f"{where}: grids of different shapes"
    assert not np.isnan(weights).any(), f"{where}: NaN weights"
    assert np.all(weights[~allowed] == 0), f"{where}: a masked pair has a weight"
    live = allowed.any(axis=1)
    assert np.allclose(weights[live].sum(axis=1), 1, atol=2e-3), f"{where}: rows do not sum to 1"
    assert np.all(weights[~live] == 0), f"{where}: a row with no key is not all zeros"
    assert state["dead"] == (~live).tolist(), f"{where}: dead rows not flagged"
    assert np.allclose(state["sums"], live.astype(float), atol=2e-3), f"{where}: row sums shown"
    marks = ["\u2713" if a else "" for row in state["allowed"] for a in row]
    assert [m for row in state["marks"] for m in row] == marks, f"{where}: tick marks"


def choose(root, kind: str) -> dict:
    root.locator(f'.me-kinds input[value="{kind}"]').check()
    return read(root)


def exercise_mask_explorer(root, where: str) -> None:
    """Drive one rendered explorer through every kind of mask, the sliders and a click."""
    s0 = read(root)
    L, S = len(s0["allowed"]), len(s0["allowed"][0]) if s0["allowed"] else 0
    assert L > 0 and S > 0, f"{where}: the grids are empty"
    assert s0["height"] > 120, f"{where}: the widget looks blank ({s0['height']} px high)"
    assert s0["kind"] is not None, f"{where}: no mask chosen"
    assert_consistent(s0, where)

    i, j = np.indices((L, S))
    s = choose(root, "bidirectional")
    assert np.all(s["allowed"]), f"{where}: bidirectional hides a pair"
    assert_consistent(s, f"{where} bidirectional")

    s = choose(root, "causal")
    assert np.array_equal(np.array(s["allowed"]), j <= i), f"{where}: causal pattern"
    assert_consistent(s, f"{where} causal")
    assert s["lengthDisabled"] and s["windowDisabled"], f"{where}: sliders active for causal"

    s = choose(root, "padding")
    assert not s["lengthDisabled"], f"{where}: the length slider is disabled for padding"
    for n in (S, 1, 0):
        root.locator(".me-length input").fill(str(n))
        s = read(root)
        assert s["length"] == n
        assert np.array_equal(np.array(s["allowed"]), np.broadcast_to(j < n, (L, S))), (
            f"{where}: padding with {n} real tokens"
        )
        assert s["padKeys"] == [k >= n for k in range(S)], f"{where}: pad keys not marked"
        assert_consistent(s, f"{where} padding {n}")
    assert all(s["dead"]) and "no allowed key" in s["summary"], f"{where}: length 0"
    assert np.all(np.array(s["weights"]) == 0), f"{where}: length 0 must give zeros"

    root.locator(".me-length input").fill(str(max(S - 1, 1)))
    root.locator(".me-causal input").check()
    s = read(root)
    expected = (j <= i) & (j < max(S - 1, 1))
    assert s["causal"] and np.array_equal(np.array(s["allowed"]), expected), (
        f"{where}: padding AND causal"
    )
    assert_consistent(s, f"{where} padding + causal")
    root.locator(".me-causal input").uncheck()

    s = choose(root, "window")
    assert not s["windowDisabled"], f"{where}: the window slider is disabled for window"
    root.locator(".me-window input").fill("1")
    s = read(root)
    assert np.array_equal(np.array(s["allowed"]), np.abs(i - j) <= 1), f"{where}: window 1"
    assert_consistent(s, f"{where} window")

    # A click toggles one cell and turns the pattern into a custom one.
    before = np.array(s["allowed"])
    root.locator('.me-mask[data-i="0"][data-j="0"]').click()
    s = read(root)
    after = before.copy()
    after[0, 0] = not after[0, 0]
    assert s["kind"] == "custom", f"{where}: a click did not switch to custom"
    assert np.array_equal(np.array(s["allowed"]), after), f"{where}: the wrong cell toggled"
    assert_consistent(s, f"{where} custom")


# --- the built chapter --------------------------------------------------------------------------


@needs_chapter
@parametrize_pages(PAGES, "no-mask-explorer-pages")
def test_chapter_mask_explorers_respond(page_path, book_server, open_page):
    require_build()
    assert page_path is not None, "no built chapter contains a MaskExplorer"
    check_widget_page(
        open_page, book_server, page_path, ".me-root", exercise_mask_explorer, "MaskExplorer"
    )


@needs_chapter
def test_mask_explorer_works_over_file_urls(open_page):
    require_build()
    page_path = CHAPTER if CHAPTER in PAGES else (PAGES[0] if PAGES else None)
    assert page_path is not None, "no built chapter contains a MaskExplorer"
    check_file_url(open_page, page_path, ".me-root", exercise_mask_explorer, "MaskExplorer")


# --- a harness page: masks.js with a fake anywidget model ---------------------------------------


def base_state(L, S, **overrides) -> dict:
    rng = np.random.default_rng(0)
    state = {
        "title": "",
        "tokens": [f"q{i}" for i in range(L)],
        "key_tokens": [f"k{j}" for j in range(S)],
        "scores": rng.normal(size=(L, S)).round(4).tolist(),
        "kind": "causal",
        "length": S,
        "window": 1,
        "causal": False,
        "custom": np.tril(np.ones((L, S), dtype=bool)).tolist(),
    }
    state.update(overrides)
    return state


@pytest.fixture
def harness(harness_dir, harness_server, open_page):
    return open_harness(open_page, harness_dir, harness_server, "masks", "MaskExplorer")


render = partial(render_into, root_selector=".me-root")  # render(page, element_id, state) -> root


def masked_softmax(scores: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    s = np.where(allowed, scores, -np.inf)
    live = allowed.any(axis=-1, keepdims=True)
    s = np.where(live, s, 0.0)
    e = np.exp(s - s.max(axis=-1, keepdims=True))
    return np.where(live, e / e.sum(axis=-1, keepdims=True), 0.0)


def test_browser_arithmetic_matches_numpy_and_python(harness):
    import torch

    from attnlib.widgets.masks import allowed_pattern
    from attnlib.widgets.masks import masked_softmax as torch_masked_softmax

    page, watch = harness
    rng = np.random.default_rng(3)
    for L, S in ((4, 4), (3, 6), (6, 3)):
        scores = rng.normal(size=(L, S)) * 3
        custom = rng.random((L, S)) < 0.5
        custom[0] = False  # one row with nothing allowed
        for kind in ("bidirectional", "causal", "padding", "window", "custom"):
            for causal in (False, True):
                args = {"kind": kind, "L": L, "S": S, "length": S // 2, "window": 1,
                        "causal": causal, "custom": custom.tolist()}
                js_allowed = np.array(page.evaluate("(a) => window.masks.allowedMatrix(a)", args))
                py_allowed = allowed_pattern(kind, L, S, length=S // 2, window=1, causal=causal,
                                             custom=custom).numpy()
                assert np.array_equal(js_allowed, py_allowed), (kind, causal, L, S)
                js_w = np.array(page.evaluate(
                    "([s, a]) => window.masks.maskedSoftmax(s, a)",
                    [scores.tolist(), js_allowed.tolist()],
                ))
                np.testing.assert_allclose(js_w, masked_softmax(scores, py_allowed), atol=1e-12)
                py_w = torch_masked_softmax(torch.tensor(scores), torch.tensor(py_allowed))
                np.testing.assert_allclose(js_w, py_w.numpy(), atol=1e-12)
    # Huge scores do not overflow: the row maximum (over the allowed keys) is subtracted first.
    big = np.array([[1000.0, 1001.0, 5000.0]])
    w = np.array(page.evaluate("([s, a]) => window.masks.maskedSoftmax(s, a)",
                               [big.tolist(), [[True, True, False]]]))
    assert np.isfinite(w).all() and np.allclose(w.sum(), 1) and w[0, 2] == 0
    assert not watch.problems(), "\n".join(watch.problems())


def test_hostile_tokens_are_shown_as_text(harness):
    page, watch = harness
    n = len(HOSTILE)
    root = render(page, "a", base_state(n, n, title="<b>bold?</b>", tokens=HOSTILE,
                                        key_tokens=HOSTILE))
    root.locator('.me-kinds input[value="padding"]').check()
    root.locator(".me-length input").fill("2")
    root.locator('.me-mask[data-i="1"][data-j="3"]').click()
    page.wait_for_timeout(300)  # give any injected element time to fire
    found = page.evaluate(
        """() => {
          const el = document.getElementById('a');
          return {
            injected: el.querySelectorAll('img, script, svg, b').length,
            queries: Array.from(el.querySelectorAll('.me-query')).map((q) => q.textContent),
            keys: Array.from(el.querySelectorAll('.me-key:not(.me-sum-head)'))
              .map((k) => k.textContent),
            title: el.querySelector('.me-title').textContent,
          };
        }"""
    )
    assert found["injected"] == 0, "token text was parsed as HTML"
    assert found["queries"] == HOSTILE * 2  # once per grid
    assert found["keys"] == HOSTILE * 2
    assert found["title"] == "<b>bold?</b>"
    assert page.get_by_text("<img src=x onerror=alert(1)>", exact=True).first.is_visible()
    assert not watch.dialogs, f"a dialog fired: {watch.dialogs}"
    assert not watch.problems(), "\n".join(watch.problems())


def test_view_and_model_stay_in_sync(harness):
    page, watch = harness
    L = S = 4
    root = render(page, "b", base_state(L, S))
    model = "window.models.b"
    # View -> model: radio, sliders, checkbox and a cell click reach the model and are saved.
    root.locator('.me-kinds input[value="padding"]').check()
    root.locator(".me-length input").fill("2")
    root.locator(".me-causal input").check()
    state = page.evaluate(f"() => ({{...{model}.state, saved: {model}.saved}})")
    assert state["kind"] == "padding" and state["length"] == 2 and state["causal"] is True
    assert state["saved"] == 3
    root.locator('.me-mask[data-i="3"][data-j="0"]').click()  # allowed -> masked
    state = page.evaluate(f"() => {model}.state")
    expected = np.tril(np.ones((L, S), dtype=bool)) & (np.arange(S) < 2)
    expected[3, 0] = False
    assert state["kind"] == "custom" and state["causal"] is False
    assert np.array_equal(np.array(state["custom"]), expected)
    # Model -> view: what Python sets, the view shows.
    page.evaluate(f"() => {{ {model}.set('kind', 'window'); {model}.set('window', 0); }}")
    s = read(root)
    assert s["kind"] == "window" and s["window"] == 0
    assert np.array_equal(np.array(s["allowed"]), np.eye(L, dtype=bool))
    assert np.allclose(np.array(s["weights"]), np.eye(L))
    page.evaluate(f"() => {{ {model}.set('kind', 'padding'); {model}.set('length', 0); }}")
    s = read(root)
    assert all(s["dead"]) and "4 queries have no allowed key" in s["summary"]
    assert not watch.problems(), "\n".join(watch.problems())


# --- the reader: dark theme, a phone, the keyboard, print ---------------------------------------


@needs_chapter
def test_chapter_mask_explorer_follows_theme_phone_and_print(book_server, open_page):
    require_build()
    found = check_chapter_reader(
        open_page, book_server, CHAPTER, ".me-root", "06_masking", heat_selector=".me-cell",
        min_cells=5,
    )
    for theme, colours in found.items():  # shown with -s: the measured contrast figures
        ratios = [c["ratio"] for c in colours["cells"]]
        print(f"masks {theme}: text {colours['text']:.2f}, heat cells {min(ratios):.2f}"
              f"..{max(ratios):.2f} over {len(ratios)} cells")


def test_keyboard_drives_the_mask_explorer_and_it_announces(harness):
    page, watch = harness
    root = render(page, "a", base_state(4, 4))
    model = "window.models.a"
    check_one_live_region(root, "masks")
    live = live_text(root)
    # The mask's radio buttons: Tab reaches the checked one, an arrow key picks the next kind.
    focus_by_tab(page, "#a .me-kinds input:checked")
    page.keyboard.press("ArrowDown")
    assert page.evaluate(f"() => {model}.state.kind") == "padding"
    assert read(root)["kind"] == "padding"
    live = wait_announced(root, live, contains="Mask: padding")
    # The slider that padding turns on: an arrow key takes a real token away.
    focus_by_tab(page, "#a .me-length input")
    page.keyboard.press("ArrowLeft")
    assert read(root)["length"] == 3 and page.evaluate(f"() => {model}.state.length") == 3
    live = wait_announced(root, live, contains="12 of 16")
    # The allowed-matrix is one Tab stop; arrows move, Space toggles the focused cell.
    focus_by_tab(page, "#a .me-mask")
    stops = root.evaluate("(r) => r.querySelectorAll('.me-grid [tabindex=\"0\"]').length")
    assert stops == 1, f"the allowed-matrix has {stops} Tab stops"
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowDown")
    assert focused(page, "el => [el.dataset.i, el.dataset.j].join()") == "1,1"
    page.keyboard.press("Space")
    s = read(root)
    assert s["kind"] == "custom" and s["allowed"][1][1] is False
    wait_announced(root, live, contains="Mask: custom")
    page.keyboard.press("Enter")
    assert read(root)["allowed"][1][1] is True
    assert not watch.problems(), "\n".join(watch.problems())


def test_mask_explorer_in_the_dark_theme_and_on_a_phone(harness):
    page, watch = harness
    root = render(page, "a", base_state(5, 5, kind="bidirectional"))
    wide = render(page, "b", base_state(8, 16, kind="window", window=2))
    check_light(root, "masks light", ".me-cell", min_cells=3)
    set_theme(page, "dark")
    check_dark(root, "masks dark", ".me-cell", min_cells=3)
    check_dark(root, "masks dark, allowed cells", ".me-mask.me-allowed", min_cells=3)
    check_print(page, root, "masks print", ".me-cell")
    check_phone_fit(page, root, "masks 390 px")
    check_phone_fit(page, wide, "wide masks 390 px", expect_scroll=True)
    assert not watch.problems(), "\n".join(watch.problems())
