"""PositionExplorer in a real browser: in the built chapter on positions (over http and file://)
and in a harness page that feeds positions.js a fake model. Its numbers are checked against
attnlib.positional (through PositionExplorer's Python mirror) to 1e-5 after every control change;
the keyboard, the 390-px reflow, both themes and hostile text are checked too, and the time one
update takes is measured and printed (never asserted).

The chapter tests read the built book (ATTNLIB_BOOK_HTML may point at a private build) and skip
when the chapter is not in it; the harness tests need no build.
"""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest
import torch

from attnlib.widgets.positions import OFFSETS, PositionExplorer

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

WIDGET_ID = "attnlib.widgets.positions.PositionExplorer"  # the _anywidget_id in stored state
CHAPTER = BUILD / "notebooks" / "07_transformer_block.html"
PAGES = widget_pages(WIDGET_ID)
needs_chapter = pytest.mark.skipif(
    not CHAPTER.exists(), reason=f"{CHAPTER} is not built (build the book with chapter 7 in it)"
)

READ_JS = """(root) => {
  const row = (name) => Array.from(root.querySelectorAll(`.po-row-${name} td`)).map((c) =>
    c.dataset.v === '' ? null : Number(c.dataset.v));
  const slider = (name) => root.querySelector(`.po-${name} input`);
  return {
    sinusoidal: row('sinusoidal'),
    rope: row('rope'),
    dim: Number(slider('dim').value),
    base: Number(slider('base').value),
    position: Number(slider('position').value),
    pair: Number(slider('pair').value),
    pairMax: Number(slider('pair').max),
    values: Array.from(root.querySelectorAll('.po-value')).map((v) => v.textContent),
    paths: Array.from(root.querySelectorAll('.po-line')).map((p) => p.getAttribute('d')),
    pairPaths: Array.from(root.querySelectorAll('.po-pair-line')).map((p) => p.getAttribute('d')),
    summary: root.querySelector('.po-summary').textContent,
    height: root.getBoundingClientRect().height,
  };
}"""


def read(root) -> dict:
    return root.evaluate(READ_JS)


def slide(root, name: str, value) -> dict:
    root.locator(f".po-{name} input").fill(str(value))
    return read(root)


def assert_offset_properties(s, where: str) -> None:
    """PE_i . PE_i = dim / 2, and the sinusoidal dot product is symmetric in the offset."""
    by_offset = dict(zip(OFFSETS, s["sinusoidal"], strict=True))
    assert by_offset[0] == pytest.approx(s["dim"] / 2, abs=1e-9), f"{where}: PE_i . PE_i"
    for k in (1, 4):
        if by_offset[k] is not None and by_offset[-k] is not None:
            assert by_offset[k] == pytest.approx(by_offset[-k], abs=1e-9), f"{where}: +-{k}"


def exercise_positions(root, where: str) -> None:
    """Drive one rendered explorer: moving i leaves every value at a fixed offset unchanged
    (both encodings depend on the offset only); the size, the base and the pair change them."""
    s0 = read(root)
    assert s0["height"] > 150, f"{where}: the widget looks blank ({s0['height']} px high)"
    assert all(p and p.startswith("M") for p in s0["paths"]), f"{where}: no curve drawn"
    assert_offset_properties(s0, where)
    s1 = slide(root, "position", 10)
    s2 = slide(root, "position", 30)
    assert s1["position"] == 10 and s2["position"] == 30
    assert s1["paths"] != s2["paths"], f"{where}: the curves did not move with i"
    np.testing.assert_allclose(s1["sinusoidal"], s2["sinusoidal"], atol=1e-9)
    np.testing.assert_allclose(s1["rope"], s2["rope"], atol=1e-4)  # float32 angles
    s3 = slide(root, "dim", s2["dim"] + 16 if s2["dim"] + 16 <= 64 else 8)
    assert s3["sinusoidal"] != s2["sinusoidal"], f"{where}: the size changed nothing"
    assert_offset_properties(s3, where)
    s4 = slide(root, "base", 8)
    assert s4["sinusoidal"] != s3["sinusoidal"], f"{where}: the base changed nothing"
    s5 = slide(root, "pair", 1)
    assert s5["pairPaths"] != s4["pairPaths"], f"{where}: the pair's curve did not change"
    root.locator(".po-reset").click()
    assert read(root)["values"][1] == "10000", f"{where}: the reset did not restore base 10000"


# --- the built chapter --------------------------------------------------------------------------


@needs_chapter
@parametrize_pages(PAGES, "no-position-explorer-pages")
def test_chapter_position_explorers_respond(page_path, book_server, open_page):
    require_build()
    assert page_path is not None, "no built chapter contains a PositionExplorer"
    check_widget_page(
        open_page, book_server, page_path, ".po-root", exercise_positions, "PositionExplorer"
    )


@needs_chapter
def test_chapter_position_explorer_follows_theme_phone_and_print(book_server, open_page):
    require_build()
    check_chapter_reader(open_page, book_server, CHAPTER, ".po-root", "07_transformer_block",
                         heat_selector=".po-table td", min_cells=3)


@needs_chapter
def test_position_explorer_works_over_file_urls(open_page):
    require_build()
    page_path = CHAPTER if CHAPTER in PAGES else (PAGES[0] if PAGES else None)
    assert page_path is not None, "no built chapter contains a PositionExplorer"
    check_file_url(open_page, page_path, ".po-root", exercise_positions, "PositionExplorer")


# --- a harness page: positions.js with a fake anywidget model -----------------------------------


def make(**kwargs) -> PositionExplorer:
    g = torch.Generator().manual_seed(0)
    args = {"query": torch.randn(64, generator=g), "key": torch.randn(64, generator=g)}
    args.update(kwargs)
    return PositionExplorer(**args)


def state_of(widget: PositionExplorer, **overrides) -> dict:
    names = ("title", "query", "key", "length", "offsets", "dim", "base", "position", "pair")
    state = {name: getattr(widget, name) for name in names}
    state.update(overrides)
    return state


@pytest.fixture
def harness(harness_dir, harness_server, open_page):
    return open_harness(open_page, harness_dir, harness_server, "positions", "PositionExplorer")


render = partial(render_into, root_selector=".po-root")  # render(page, element_id, state) -> root


def python_curves(widget: PositionExplorer) -> dict:
    sin_pair, rope_pair = widget.pair_terms()
    return {
        "sinusoidal": widget.sinusoidal_dots().numpy(),
        "rope": widget.rope_scores().numpy(),
        "sinPair": sin_pair.numpy(),
        "ropePair": rope_pair.numpy(),
    }


def js_curves(page, state: dict) -> dict:
    got = page.evaluate(
        """(s) => { const c = window.positions.positionCurves(s);
                    return {sinusoidal: c.sinusoidal, rope: c.rope,
                            sinPair: c.pair.sinusoidal, ropePair: c.pair.rope}; }""",
        state,
    )
    return {name: np.array(values) for name, values in got.items()}


@pytest.mark.parametrize(
    ("dim", "base", "position", "pair"),
    [(16, 10000.0, 20, 0), (64, 10000.0, 63, 31), (2, 10.0, 0, 0), (32, 1e6, 7, 5),
     (8, 1778.0, 41, 2), (48, 100000.0, 33, 23)],
)
def test_browser_arithmetic_equals_attnlib_positional(harness, dim, base, position, pair):
    page, watch = harness
    widget = make(dim=dim, base=base, position=position, pair=pair)
    expected, got = python_curves(widget), js_curves(page, state_of(widget))
    for name in expected:
        np.testing.assert_allclose(got[name], expected[name], atol=1e-5, err_msg=name)
    wl = page.evaluate("(a) => window.positions.wavelength(...a)", [dim, base, pair])
    assert wl == pytest.approx(widget.wavelength(), rel=1e-12)
    assert_clean(watch)


def test_rope_frequencies_are_attnlibs_float32_ones(harness):
    from attnlib.positional import rope_frequencies

    page, watch = harness
    for dim, base in ((16, 10000.0), (64, 500000.0), (6, 17.78)):
        js = page.evaluate("(a) => window.positions.ropeFrequencies(...a)", [dim, base])
        np.testing.assert_allclose(js, rope_frequencies(dim, base=base).double().numpy(),
                                   rtol=2e-7, err_msg=f"dim {dim}, base {base}")
    assert_clean(watch)


def test_controls_recompute_what_python_computes(harness):
    """After each control change the table shows attnlib's values for the model's new state."""
    page, watch = harness
    widget = make()
    root = render(page, "a", state_of(widget))
    model = "window.models.a"
    for name, value in (("dim", 40), ("base", 18), ("position", 3), ("pair", 7), ("dim", 12)):
        s = slide(root, name, value)
        synced = page.evaluate(f"() => ({{...{model}.state}})")
        mirror = make(dim=synced["dim"], base=synced["base"], position=synced["position"],
                      pair=synced["pair"])
        sin, rope = mirror.sinusoidal_dots().numpy(), mirror.rope_scores().numpy()
        for n, k in enumerate(OFFSETS):
            j = synced["position"] + k
            want = (None, None) if not 0 <= j < mirror.length else (sin[j], rope[j])
            got = (s["sinusoidal"][n], s["rope"][n])
            if want[0] is None:
                assert got == (None, None), (name, value, k)
            else:
                np.testing.assert_allclose(got, want, atol=1e-5, err_msg=f"{name}={value} k={k}")
        assert s["pairMax"] == synced["dim"] // 2 - 1
    # Shrinking the size below the chosen pair keeps the highest pair there is, in both halves.
    assert synced["dim"] == 12 and synced["pair"] == 5
    widget.pair = 7
    widget.dim = 12
    assert widget.pair == 5
    assert synced["base"] == page.evaluate("() => window.positions.sliderToBase(18)") == 31620.0
    assert_clean(watch)


def test_base_slider_round_trips(harness):
    page, watch = harness
    got = page.evaluate(
        "() => [4, 16, 20, 24].map((v) => window.positions.sliderToBase(v))"
        ".concat([10000, 2, 5e7, 31620].map((b) => window.positions.baseToSlider(b)))"
    )
    assert got == [10, 10000, 100000, 1000000, 16, 4, 24, 18]
    assert_clean(watch)


def test_model_changes_reach_the_view(harness):
    page, watch = harness
    widget = make()
    root = render(page, "a", state_of(widget))
    page.evaluate("() => { const m = window.models.a; m.set('dim', 24); m.set('position', 50);"
                  " m.set('base', 500000); }")
    s = read(root)
    assert (s["dim"], s["position"]) == (24, 50) and s["values"][1] == "500000"
    mirror = make(dim=24, position=50, base=500000.0)
    np.testing.assert_allclose(s["sinusoidal"][2], mirror.sinusoidal_dots()[50].item(), atol=1e-9)
    assert "i = 50, dim = 24, base 500000" in s["summary"]
    assert_clean(watch)


def test_keyboard_moves_the_sliders_and_presses_the_button(harness):
    page, watch = harness
    root = render(page, "a", state_of(make(base=100000.0)))
    check_one_live_region(root, "positions")
    live = live_text(root)
    slider = root.locator(".po-position input")
    slider.focus()
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")
    assert page.evaluate("() => window.models.a.state.position") == 22
    assert "i = 22" in read(root)["summary"]
    wait_announced(root, live, contains="i = 22, dim = 16")
    root.locator(".po-dim input").focus()
    page.keyboard.press("ArrowLeft")
    assert page.evaluate("() => window.models.a.state.dim") == 14
    root.locator(".po-reset").focus()
    page.keyboard.press("Enter")
    assert page.evaluate("() => window.models.a.state.base") == 10000
    # Tab walks the controls in order: size, base, reset (disabled now, so skipped), i, pair.
    root.locator(".po-dim input").focus()
    order = []
    for _ in range(3):
        page.keyboard.press("Tab")
        order.append(page.evaluate("() => document.activeElement.closest('label').className"))
    assert [o.split()[-1] for o in order] == ["po-base", "po-position", "po-pair"]
    outline = page.evaluate("() => getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none", "the focused element shows no focus ring"
    labels = page.evaluate("""() => Array.from(document.querySelectorAll('#a input')).map(
        (i) => i.getAttribute('aria-label') || (i.labels[0] && i.labels[0].textContent))""")
    assert all(labels), labels
    assert_clean(watch)


def test_hostile_title_is_text(harness):
    page, watch = harness
    root = render(page, "a", state_of(make(), title=HOSTILE[0]))
    page.wait_for_timeout(200)
    assert root.locator(".po-title").text_content() == HOSTILE[0]
    assert page.evaluate("() => document.querySelectorAll('#a img, #a script').length") == 0
    assert not watch.dialogs
    assert_clean(watch)


def test_themes_print_and_phone(harness):
    """Light and dark palettes (text AA, the table's numbers included), print, and 390 px: the
    charts shrink with the widget and the table scrolls in its own box if it must."""
    page, watch = harness
    root = render(page, "a", state_of(make()))
    check_light(root, "positions light", ".po-table td", min_cells=3)
    light = root.evaluate("(r) => getComputedStyle(r.querySelector('.po-line')).stroke")
    set_theme(page, "dark")
    check_dark(root, "positions dark", ".po-table td", min_cells=3)
    dark = root.evaluate("(r) => getComputedStyle(r.querySelector('.po-line')).stroke")
    assert dark != light, "the curve keeps its light-theme colour in the dark theme"
    check_print(page, root, "positions print", ".po-table td")
    check_phone_fit(page, root, "positions 390 px")
    width = root.evaluate("(r) => r.querySelector('.po-chart').getBoundingClientRect().width")
    assert width < 390, f"a chart is {width} px wide at 390 px"
    assert_clean(watch)


def test_update_time_is_measured(harness, capsys):
    """How long one update takes (a position change: both curves, 64 positions, dim 64):
    printed for the record, never asserted."""
    page, watch = harness
    render(page, "a", state_of(make(dim=64)))
    ms = page.evaluate("""() => {
        const m = window.models.a; const times = [];
        for (let k = 0; k < 45; k++) {
          const t0 = performance.now();
          m.set('position', k % 64);
          if (k >= 5) times.push(performance.now() - t0);
        }
        times.sort((a, b) => a - b);
        return {median: times[20], max: times[39]};
    }""")
    with capsys.disabled():
        print(f"\nPositionExplorer update (dim 64): median {ms['median']:.2f} ms, "
              f"max {ms['max']:.2f} ms")
    assert_clean(watch)
