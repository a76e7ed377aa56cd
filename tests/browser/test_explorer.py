"""AttentionExplorer in a real browser: in the built chapters (over http and file://) and in a
harness page that feeds explorer.js a fake model (its arithmetic, its syncing, its handling of
hostile token text), and as a reader meets it: the dark theme, a phone, the keyboard, print."""

from __future__ import annotations

import json
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

PAGES = widget_pages()

READ_JS = """(root) => {
  const rows = Array.from(root.querySelectorAll('.ae-grid .ae-row[data-i]'));
  const cells = (r) => Array.from(r.querySelectorAll('.ae-cell'));
  return {
    matrix: rows.map((r) => cells(r).map((c) => Number(c.dataset.w))),
    shown: rows.map((r) => cells(r).map((c) => c.textContent)),
    bars: Array.from(root.querySelectorAll('.ae-bar-row')).map((b) => Number(b.dataset.w)),
    barText: Array.from(root.querySelectorAll('.ae-bar-value')).map((b) => b.textContent),
    selected: rows.findIndex((r) => r.classList.contains('ae-selected')),
    temperature: root.querySelector('.ae-value').textContent,
    slider: Number(root.querySelector('input[type=range]').value),
    causal: root.querySelector('input[type=checkbox]').checked,
    height: root.getBoundingClientRect().height,
  };
}"""


def read(root) -> dict:
    return root.evaluate(READ_JS)


def sensitive_to_temperature(matrix) -> bool:
    """Some row has two different positive weights (one-hot and uniform rows never change)."""
    return any(len({round(w, 4) for w in row if w > 0}) > 1 for row in matrix)


def assert_causal(state, where: str) -> None:
    m = np.array(state["matrix"])
    L, S = m.shape
    upper = np.triu(np.ones((L, S), dtype=bool), k=1)
    assert np.all(m[upper] == 0), f"{where}: causal mask on, but weights above the diagonal remain"
    assert np.allclose(m.sum(axis=1), 1, atol=2e-3), f"{where}: causal rows do not sum to 1"


def exercise_explorer(root, where: str) -> None:
    """Drive one rendered explorer: temperature, a row click, the causal toggle, the selector."""
    s0 = read(root)
    L, S = len(s0["matrix"]), len(s0["matrix"][0]) if s0["matrix"] else 0
    assert L > 0 and S > 0, f"{where}: the heatmap is empty"
    assert all(len(row) == S for row in s0["matrix"]), f"{where}: ragged heatmap"
    assert len(s0["bars"]) == S, f"{where}: {len(s0['bars'])} bars for {S} keys"
    assert s0["height"] > 80, f"{where}: the widget looks blank ({s0['height']} px high)"

    # Temperature: the slider moves, the numbers follow.
    target = 25 if s0["slider"] > 100 else 175
    root.locator("input[type=range]").fill(str(target))
    s1 = read(root)
    assert s1["temperature"] != s0["temperature"], f"{where}: the temperature label did not move"
    if sensitive_to_temperature(s0["matrix"]):
        assert s1["matrix"] != s0["matrix"], f"{where}: moving the temperature changed no weight"
        if any(t for row in s0["shown"] for t in row):
            assert s1["shown"] != s0["shown"], f"{where}: the numbers shown did not change"

    # Click another query row: the bars show that row.
    rows = s1["matrix"]
    others = [i for i in range(L) if i != s1["selected"]]
    if others:
        differing = [i for i in others if rows[i] != rows[s1["selected"]]]
        row = (differing or others)[0]
        root.locator(f'.ae-row[data-i="{row}"] .ae-query-button').click()
        s2 = read(root)
        assert s2["selected"] == row, f"{where}: clicking row {row} selected {s2['selected']}"
        assert s2["bars"] == s2["matrix"][row], f"{where}: the bars do not show row {row}"
        # data-w holds 4 decimals and the label 3, both rounded from the full weight: compare
        # the label with the weight to within the two roundings.
        assert all(
            abs(float(t) - w) <= 0.00051
            for t, w in zip(s2["barText"], s2["matrix"][row], strict=True)
        ), f"{where}: bar labels {s2['barText']} do not match row {row}"
        if differing:
            assert s2["bars"] != s1["bars"], f"{where}: the bars did not change"

    # The causal toggle zeroes the upper triangle (and unticking restores the weights).
    checkbox = root.locator("input[type=checkbox]")
    if s0["causal"]:
        assert_causal(read(root), where)
        checkbox.click()
        assert not read(root)["causal"], f"{where}: the causal checkbox did not untick"
    before = read(root)["matrix"]
    checkbox.click()
    s3 = read(root)
    assert s3["causal"], f"{where}: the causal checkbox did not tick"
    assert_causal(s3, where)
    checkbox.click()
    assert read(root)["matrix"] == before, f"{where}: unticking causal did not restore weights"

    # A stack: every matrix of the selector renders a full heatmap of distributions.
    select = root.locator("select")
    for option in range(select.locator("option").count()):
        select.select_option(str(option))
        m = np.array(read(root)["matrix"])
        assert m.shape == (L, S), f"{where}: matrix {option} has shape {m.shape}"
        sums = m.sum(axis=1)
        assert np.all(np.isclose(sums, 1, atol=2e-3) | (sums == 0)), f"{where}: matrix {option}"


# --- the built chapters -------------------------------------------------------------------------


@parametrize_pages(PAGES, "no-widget-pages")
def test_chapter_explorers_respond(page_path, book_server, open_page):
    require_build()
    assert page_path is not None, "no built chapter contains an AttentionExplorer"
    check_widget_page(
        open_page, book_server, page_path, ".ae-root", exercise_explorer, "AttentionExplorer"
    )


def test_explorer_works_over_file_urls(open_page):
    require_build()
    preferred = BUILD / "notebooks" / "02_soft_lookup.html"
    page_path = preferred if preferred in PAGES else (PAGES[0] if PAGES else None)
    assert page_path is not None, "no built chapter contains an AttentionExplorer"
    check_file_url(open_page, page_path, ".ae-root", exercise_explorer, "AttentionExplorer")


# --- a harness page: explorer.js with a fake anywidget model ------------------------------------


def base_state(**overrides) -> dict:
    state = {
        "title": "",
        "tokens": [],
        "key_tokens": [],
        "mode": "qk",
        "query": [],
        "key": [],
        "weights": [],
        "scale": 1.0,
        "layer_labels": ["matrix 0"],
        "temperature": 1.0,
        "causal": False,
        "selected": 0,
        "layer": 0,
    }
    state.update(overrides)
    return state


@pytest.fixture
def harness(harness_dir, harness_server, open_page):
    return open_harness(open_page, harness_dir, harness_server, "explorer", "AttentionExplorer")


render = partial(render_into, root_selector=".ae-root")  # render(page, element_id, state) -> root


def softmax(scores: np.ndarray) -> np.ndarray:
    scores = scores - scores.max(axis=-1, keepdims=True)
    e = np.exp(scores)
    return e / e.sum(axis=-1, keepdims=True)


def test_hostile_tokens_are_shown_as_text(harness):
    page, watch = harness
    n = len(HOSTILE)
    weights = np.full((2, n, n), 1 / n).tolist()
    root = render(
        page,
        "a",
        base_state(
            title="<b>bold?</b>",
            tokens=HOSTILE,
            key_tokens=HOSTILE,
            mode="weights",
            weights=weights,
            layer_labels=["<i>head 0</i>", "head 1"],
        ),
    )
    root.locator('.ae-row[data-i="2"] .ae-query-button').click()
    root.locator("input[type=checkbox]").click()
    root.locator("input[type=range]").fill("30")
    root.locator("select").select_option("1")
    page.wait_for_timeout(300)  # give any injected element time to fire
    found = page.evaluate(
        """() => {
          const el = document.getElementById('a');
          return {
            injected: el.querySelectorAll('img, script, svg, b, i').length,
            queries: Array.from(el.querySelectorAll('.ae-query-button')).map((b) => b.textContent),
            keys: Array.from(el.querySelectorAll('.ae-key')).map((k) => k.textContent),
            bars: Array.from(el.querySelectorAll('.ae-bar-label')).map((k) => k.textContent),
            title: el.querySelector('.ae-title').textContent,
            options: Array.from(el.querySelectorAll('option')).map((o) => o.textContent),
            selectedToken: el.querySelector('.ae-bars-title .ae-token').textContent,
          };
        }"""
    )
    assert found["injected"] == 0, "token text was parsed as HTML"
    assert found["queries"] == HOSTILE and found["keys"] == HOSTILE and found["bars"] == HOSTILE
    assert found["title"] == "<b>bold?</b>"
    assert found["options"] == ["<i>head 0</i>", "head 1"]
    assert found["selectedToken"] == HOSTILE[2]
    assert page.get_by_text("<img src=x onerror=alert(1)>", exact=True).first.is_visible()
    assert not watch.dialogs, f"a dialog fired: {watch.dialogs}"
    assert not watch.problems(), "\n".join(watch.problems())


def test_browser_arithmetic_matches_numpy(harness):
    page, watch = harness
    rng = np.random.default_rng(0)
    L, S, E = 4, 5, 3
    q, k = rng.normal(size=(L, E)).round(4), rng.normal(size=(S, E)).round(4)
    w = softmax(rng.normal(size=(2, L, S))).round(4)
    w[1, 2] = 0.0  # a row with no weight at all

    def js(**kw):
        args = {
            "mode": "qk",
            "query": q.tolist(),
            "key": k.tolist(),
            "weights": w.tolist(),
            "layer": 0,
            "scale": 1 / np.sqrt(E),
            "temperature": 1.0,
            "causal": False,
        }
        args.update(kw)
        return np.array(page.evaluate("(a) => window.explorer.attentionMatrix(a)", args))

    scores = q @ k.T / np.sqrt(E)  # (L, S)
    np.testing.assert_allclose(js(), softmax(scores), atol=1e-9)
    np.testing.assert_allclose(js(temperature=0.3), softmax(scores / 0.3), atol=1e-9)
    causal = np.where(np.tril(np.ones((L, S), dtype=bool)), scores / 2.0, -np.inf)
    np.testing.assert_allclose(js(temperature=2.0, causal=True), softmax(causal), atol=1e-9)
    # Weights: temperature 1 gives them back (renormalised); 2 takes square roots.
    np.testing.assert_allclose(js(mode="weights"), w[0] / w[0].sum(-1, keepdims=True), atol=1e-9)
    root2 = np.sqrt(w[0]) / np.sqrt(w[0]).sum(-1, keepdims=True)
    np.testing.assert_allclose(js(mode="weights", temperature=2.0), root2, atol=1e-9)
    # A row with nothing to attend to gives zeros, not NaN.
    stack = js(mode="weights", layer=1)
    assert np.all(stack[2] == 0) and not np.isnan(stack).any()
    # Huge scores stay finite (the row maximum is subtracted first).
    big = js(query=(q * 1e4).tolist(), temperature=0.05)
    assert np.isfinite(big).all() and np.allclose(big.sum(-1), 1)
    # Causal with L < S is aligned top-left, like PyTorch's is_causal.
    top_left = js(query=q[:2].tolist(), causal=True)
    assert np.all(top_left[0, 1:] == 0) and np.all(top_left[1, 2:] == 0)
    # The slider's log scale spans 0.05 to 5 and lands back near where it started.
    ends = page.evaluate(
        "() => [0, 200].map((v) => window.explorer.sliderToTemperature(v))"
        ".concat([1, 0.01, 99].map((t) => window.explorer.temperatureToSlider(t)))"
    )
    assert ends[:2] == [0.05, 5.0] and ends[3:] == [0, 200]
    back = page.evaluate(
        "() => window.explorer.sliderToTemperature(window.explorer.temperatureToSlider(1))"
    )
    assert abs(back - 1) < 0.03
    assert not watch.problems(), "\n".join(watch.problems())


def test_view_and_model_stay_in_sync(harness):
    page, watch = harness
    rng = np.random.default_rng(1)
    q, k = rng.normal(size=(3, 2)).round(4), rng.normal(size=(3, 2)).round(4)
    root = render(
        page,
        "b",
        base_state(
            tokens=["a", "b", "c"],
            key_tokens=["a", "b", "c"],
            query=q.tolist(),
            key=k.tolist(),
            scale=1 / np.sqrt(2),
        ),
    )
    model = "window.models.b"
    # View -> model: slider, checkbox and a row click reach the model and are saved.
    root.locator("input[type=range]").fill("40")
    root.locator("input[type=checkbox]").click()
    root.locator('.ae-row[data-i="2"] .ae-cell').first.click()
    state = page.evaluate(f"() => ({{...{model}.state, saved: {model}.saved}})")
    assert state["temperature"] == page.evaluate("() => window.explorer.sliderToTemperature(40)")
    assert state["causal"] is True and state["selected"] == 2 and state["saved"] == 3
    # Model -> view: what Python sets, the view shows.
    page.evaluate(
        f"() => {{ {model}.set('temperature', 0.5); {model}.set('causal', false);"
        f" {model}.set('selected', 1); }}"
    )
    s = read(root)
    assert s["temperature"] == "\u03c4 = 0.50" and s["causal"] is False and s["selected"] == 1
    expected = softmax(q @ k.T / np.sqrt(2) / 0.5)
    np.testing.assert_allclose(np.array(s["matrix"]), expected, atol=1e-4)
    assert json.dumps(s["bars"]) == json.dumps(s["matrix"][1])
    assert not watch.problems(), "\n".join(watch.problems())


# --- the reader: dark theme, a phone, the keyboard, print ---------------------------------------


def test_chapter_explorer_follows_theme_phone_and_print(book_server, open_page):
    require_build()
    page_path = BUILD / "notebooks" / "02_soft_lookup.html"
    assert page_path in PAGES, "chapter 2 holds no AttentionExplorer"
    found = check_chapter_reader(
        open_page, book_server, page_path, ".ae-root", "02_soft_lookup", heat_selector=".ae-cell",
        min_cells=5, expect_scroll=True,
    )
    for theme, colours in found.items():  # shown with -s: the measured contrast figures
        ratios = [c["ratio"] for c in colours["cells"]]
        print(f"explorer {theme}: text {colours['text']:.2f}, heat cells {min(ratios):.2f}"
              f"..{max(ratios):.2f} over {len(ratios)} cells")


def test_keyboard_drives_the_explorer_and_it_announces(harness):
    page, watch = harness
    rng = np.random.default_rng(2)
    tokens = ["a", "b", "c", "d"]
    q, k = rng.normal(size=(4, 2)).round(4).tolist(), rng.normal(size=(4, 2)).round(4).tolist()
    root = render(page, "a", base_state(tokens=tokens, key_tokens=tokens, query=q, key=k))
    check_one_live_region(root, "explorer")
    model = "window.models.a"
    # Tab reaches the temperature slider first; an arrow key moves it and the view follows.
    focus_by_tab(page, "#a input[type=range]")
    before, live = read(root), live_text(root)
    page.keyboard.press("ArrowRight")
    after = read(root)
    assert after["temperature"] != before["temperature"] and after["matrix"] != before["matrix"]
    assert page.evaluate(f"() => {model}.state.temperature") > 1
    live = wait_announced(root, live, contains="\u03c4 = ")
    # Space on the causal checkbox.
    page.keyboard.press("Tab")
    assert focused(page, "el => el.type") == "checkbox"
    page.keyboard.press("Space")
    assert read(root)["causal"] is True
    live = wait_announced(root, live, contains="causal mask on")
    # The heatmap is one Tab stop; the arrow keys move through it and select the focused row.
    focus_by_tab(page, "#a .ae-cell")
    stops = root.evaluate("(r) => r.querySelectorAll('.ae-grid [tabindex=\"0\"]').length")
    assert stops == 1, f"the heatmap has {stops} Tab stops"
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowRight")
    assert focused(page, "el => [el.dataset.i, el.dataset.j].join()") == "1,1"
    assert read(root)["selected"] == 1 and page.evaluate(f"() => {model}.state.selected") == 1
    wait_announced(root, live, contains="Query 1")
    page.keyboard.press("End")
    assert focused(page, "el => el.dataset.j") == "3"
    page.keyboard.press("Tab")  # out of the grid in one press
    assert not focused(page, "el => el.classList.contains('ae-cell')")
    assert not watch.problems(), "\n".join(watch.problems())


def test_explorer_in_the_dark_theme_and_on_a_phone(harness):
    page, watch = harness
    n = 30  # more keys than a phone is wide
    tokens = [f"tok{j}" for j in range(n)]
    w = softmax(np.random.default_rng(3).normal(size=(n, n)) * 3).round(4)
    # Weights either side of where the ink flips (0.776 in the light palette, 0.642 in the dark
    # one: see _base.css), where a cell's text has the least contrast it can have.
    sharp = np.array([[0.77, 0.229, 0.001], [0.78, 0.219, 0.001], [0.64, 0.359, 0.001],
                      [0.65, 0.349, 0.001], [0.999, 0.0005, 0.0005]])
    render(page, "a", base_state(tokens=tokens, key_tokens=tokens, mode="weights",
                                 weights=[w.tolist()]))
    root = render(page, "b", base_state(tokens=list("abcde"), key_tokens=list("xyz"),
                                        mode="weights", weights=[sharp.tolist()]))
    for theme in ("light", "dark"):  # shown with -s: the least contrast a cell's text has
        set_theme(page, theme)
        check = check_light if theme == "light" else check_dark
        ratios = [c["ratio"] for c in check(root, f"explorer {theme}", ".ae-cell", 3)["cells"]]
        print(f"explorer harness {theme}: heat cells near the ink's flip {min(ratios):.2f}")
    set_theme(page, "")  # no choice on the page: the system preference decides
    page.emulate_media(color_scheme="dark")
    check_dark(root, "explorer, system dark", ".ae-cell", min_cells=3)
    page.emulate_media(color_scheme="light")
    check_light(root, "explorer, system light", ".ae-cell", min_cells=3)
    # JupyterLab marks its theme on <body>: a dark lab theme wins over a light system.
    page.evaluate("() => document.body.setAttribute('data-jp-theme-light', 'false')")
    check_dark(root, "explorer, dark JupyterLab", ".ae-cell", min_cells=3)
    page.evaluate("() => document.body.setAttribute('data-jp-theme-light', 'true')")
    page.emulate_media(color_scheme="dark")
    check_light(root, "explorer, light JupyterLab on a dark system", ".ae-cell", min_cells=3)
    page.evaluate("() => document.body.removeAttribute('data-jp-theme-light')")
    page.emulate_media(color_scheme="light")
    check_print(page, root, "explorer print", ".ae-cell")
    check_phone_fit(page, page.locator("#a .ae-root"), "explorer 390 px", expect_scroll=True)
    check_phone_fit(page, root, "small explorer 390 px")
    assert not watch.problems(), "\n".join(watch.problems())
