"""What every widget's browser tests check about the reader, beyond the widget's own behaviour:
the dark theme (the widget's ground is dark, its heatmap text meets WCAG AA), a phone-wide
viewport (the widget fits; wide grids scroll inside their own box), and the keyboard (Tab reaches
a control; the widget's one live region announces a change).

A test file calls these with its rendered widget's root locator (or page):

    check_dark(root, "#a", heat_selector=".ae-cell")
    check_phone_fit(page, root, "#a")
    focus_by_tab(page, ".ae-cell")
    wait_announced(root, before)
"""

from __future__ import annotations

from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

PHONE = {"width": 390, "height": 844}
AA = 4.5  # WCAG AA for normal text

# Relative luminance and contrast (WCAG 2), and the colour an element's text and ground really
# have: its background composited over every ancestor's until an opaque one (the page: white).
COLOURS_JS = """
(() => {
  // rgb()/rgba(), and color(srgb r g b / a), what color-mix() computes to (channels 0..1).
  const parse = (s) => {
    const srgb = s.match(/color\\(srgb ([^)]+)\\)/);
    const m = srgb || s.match(/rgba?\\(([^)]+)\\)/);
    if (!m) {
      if (s === "transparent") return null;
      throw new Error(`a colour the test cannot read: ${s}`);
    }
    const p = m[1].split(/[ ,/]+/).filter(Boolean).map(Number);
    const k = srgb ? 255 : 1;
    return [p[0] * k, p[1] * k, p[2] * k, p.length > 3 ? p[3] : 1];
  };
  const over = (top, under) => {
    const a = top[3];
    return [0, 1, 2].map((k) => top[k] * a + under[k] * (1 - a)).concat([1]);
  };
  const ground = (node) => {
    const layers = [];
    for (let n = node; n && n.nodeType === 1; n = n.parentElement) {
      const c = parse(getComputedStyle(n).backgroundColor);
      if (c && c[3] > 0) layers.push(c);
      if (c && c[3] >= 1) break;
    }
    let colour = [255, 255, 255, 1];
    for (const layer of layers.reverse()) colour = over(layer, colour);
    return colour;
  };
  const lum = (c) => {
    const [r, g, b] = c.slice(0, 3).map((v) => {
      v /= 255;
      return v <= 0.04045 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4);
    });
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  };
  const contrast = (a, b) => {
    const [x, y] = [lum(a), lum(b)].sort((p, q) => q - p);
    return (x + 0.05) / (y + 0.05);
  };
  const textOn = (node) => {
    const bg = ground(node);
    const fg = over(parse(getComputedStyle(node).color), bg);
    return { fg, bg, ratio: contrast(fg, bg) };
  };
  window.attnColours = { ground, lum, contrast, textOn };
})()
"""

READ_DARK_JS = """(root, heat) => {
  const C = window.attnColours;
  const bg = C.ground(root);
  const cells = Array.from(root.querySelectorAll(heat)).filter(
    (c) => c.textContent.trim() !== "" && c.getClientRects().length > 0);
  // A spread of cells: the lightest, the darkest and those in between.
  const shades = cells.map((c) => ({ c, l: C.lum(C.ground(c)) })).sort((a, b) => a.l - b.l);
  const step = Math.max(1, Math.floor(shades.length / 12));
  const picked = shades.filter((_, k) => k % step === 0 || k === shades.length - 1);
  return {
    ground: C.lum(bg),
    text: C.textOn(root).ratio,
    cells: picked.map(({ c }) => ({ text: c.textContent, ...C.textOn(c) })),
    theme: document.documentElement.dataset.theme || null,
  };
}"""


ANIMATIONS_FINISH_JS = """() => {
  const endless = [];
  for (const a of document.getAnimations()) {
    if (a.effect && a.effect.getTiming().iterations === Infinity) {
      const t = a.effect.target;
      const where = t ? `${t.tagName}.${t.className}` : "?";
      endless.push(`${a.animationName || a.transitionProperty} on ${where}`);
    } else {
      a.finish();
    }
  }
  return endless;
}"""


def install_colours(page) -> None:
    page.evaluate(COLOURS_JS)


def set_theme(page, theme: str) -> None:
    """What pydata-sphinx-theme's toggle does: html[data-theme] (and data-mode)."""
    page.evaluate(
        "(t) => { document.documentElement.dataset.theme = t;"
        " document.documentElement.dataset.mode = t; }",
        theme,
    )


def read_colours(root, heat_selector: str = ".attn-heat") -> dict:
    install_colours(root.page)
    # Colour transitions (a theme just flipped) must end first: mid-way colours are in oklab.
    # Let them run briefly, then jump every finite one to its end state (a busy machine can keep
    # a transition running for seconds); an endless animation would be a finding, so name it.
    try:
        root.page.wait_for_function("() => document.getAnimations().length === 0", timeout=3000)
    except PlaywrightTimeoutError:
        endless = root.page.evaluate(ANIMATIONS_FINISH_JS)
        assert not endless, f"endless animations on the page: {endless}"
    return root.evaluate(READ_DARK_JS, heat_selector)


def check_dark(root, where: str, heat_selector: str = ".attn-heat", min_cells: int = 1) -> dict:
    """The widget (in a dark theme already) paints a dark ground with light text, and the text
    of its heatmap cells meets AA over each cell's own shade. Returns what was measured."""
    found = read_colours(root, heat_selector)
    assert found["ground"] < 0.05, f"{where}: the widget's ground is not dark ({found})"
    assert found["text"] >= AA, f"{where}: its text contrast is {found['text']:.2f}"
    assert len(found["cells"]) >= min_cells, f"{where}: no heatmap cell with text to measure"
    low = [c for c in found["cells"] if c["ratio"] < AA]
    assert not low, f"{where}: heatmap text below AA: {low}"
    return found


def check_light(root, where: str, heat_selector: str = ".attn-heat", min_cells: int = 1) -> dict:
    """The same in the light theme: a light ground, AA text and heatmap text."""
    found = read_colours(root, heat_selector)
    assert found["ground"] > 0.8, f"{where}: the widget's ground is not light ({found})"
    assert found["text"] >= AA, f"{where}: its text contrast is {found['text']:.2f}"
    assert len(found["cells"]) >= min_cells, f"{where}: no heatmap cell with text to measure"
    low = [c for c in found["cells"] if c["ratio"] < AA]
    assert not low, f"{where}: heatmap text below AA: {low}"
    return found


FIT_JS = """(root) => {
  const box = root.getBoundingClientRect();
  const scrolls = Array.from(root.querySelectorAll('.attn-scroll')).map((s) => ({
    wide: s.scrollWidth > s.clientWidth + 1,
    overflowX: getComputedStyle(s).overflowX,
    hint: (() => {
      const h = s.parentElement.querySelector('.attn-scroll-hint');
      return !!h && h.getClientRects().length > 0;
    })(),
    focusable: s.tabIndex === 0 && s.getAttribute('role') === 'region',
  }));
  return {
    viewport: document.documentElement.clientWidth,
    left: box.left,
    right: box.right,
    scrollWidth: root.scrollWidth,
    clientWidth: root.clientWidth,
    scrolls,
  };
}"""


def check_phone_fit(page, root, where: str, *, expect_scroll: bool = False) -> dict:
    """At 390 px wide the widget fits in the viewport and does not overflow itself; any of its
    boxes that is wider than the widget scrolls inside itself, with the "scroll" hint showing and
    the box in the Tab order. expect_scroll: the widget is known to hold a grid wider than a
    phone (so at least one box must scroll)."""
    page.set_viewport_size(PHONE)
    page.wait_for_timeout(200)  # ResizeObserver callbacks
    root.scroll_into_view_if_needed()
    fit = root.evaluate(FIT_JS)
    assert fit["right"] <= fit["viewport"] + 1 and fit["left"] >= -1, f"{where}: {fit}"
    assert fit["scrollWidth"] <= fit["clientWidth"] + 1, f"{where}: the widget overflows: {fit}"
    for box in fit["scrolls"]:
        if box["wide"]:
            assert box["overflowX"] in ("auto", "scroll"), f"{where}: {box}"
            assert box["hint"], f"{where}: a box scrolls sideways without its hint"
            assert box["focusable"], f"{where}: a scrolling box is not in the Tab order"
    if expect_scroll:
        assert any(b["wide"] for b in fit["scrolls"]), f"{where}: nothing scrolls at 390 px"
    return fit


def focus_by_tab(page, selector: str, *, limit: int = 60) -> int:
    """Press Tab from the top of the page until the focused element matches selector; returns
    how many presses it took (fails if it is never reached)."""
    page.evaluate("() => { document.activeElement && document.activeElement.blur(); }")
    page.evaluate("() => window.scrollTo(0, 0)")
    for n in range(1, limit + 1):
        page.keyboard.press("Tab")
        if page.evaluate("(s) => !!document.activeElement && document.activeElement.matches(s)",
                         selector):
            return n
    raise AssertionError(f"Tab never reached {selector} in {limit} presses")


def focused(page, expression: str = "el => el.className"):
    return page.evaluate(f"() => ({expression})(document.activeElement)")


def live_text(root) -> str:
    return root.locator(".attn-live").text_content() or ""


def wait_announced(root, before: str, *, contains: str = "") -> str:
    """Wait for the widget's live region to say something new (and containing `contains`)."""
    root.page.wait_for_function(
        "([el, before, part]) => { const t = el.textContent; "
        "return t !== before && t.includes(part); }",
        arg=[root.locator(".attn-live").element_handle(), before, contains],
    )
    return live_text(root)


def check_one_live_region(root, where: str) -> None:
    """Exactly one live region in the widget (no per-value live outputs flooding a reader)."""
    n = root.evaluate(
        "(r) => r.querySelectorAll('[aria-live], [role=status], output, [role=log]').length"
    )
    assert n == 1, f"{where}: {n} live regions"


PRINT_JS = """(root) => ({
  scrolls: Array.from(root.querySelectorAll('.attn-scroll')).map(
    (s) => getComputedStyle(s).overflowX),
  hints: Array.from(root.querySelectorAll('.attn-scroll-hint')).filter(
    (h) => h.getClientRects().length > 0).length,
  adjust: getComputedStyle(root).printColorAdjust || getComputedStyle(root).webkitPrintColorAdjust,
  height: root.getBoundingClientRect().height,
})"""


def check_print(page, root, where: str, heat_selector: str = ".attn-heat") -> None:
    """Printed (print media, even from the dark theme), the widget keeps its current state in the
    light palette: its shading prints (print-color-adjust: exact), no box clips its overflow, no
    scroll hint shows, and it is not a blank box."""
    page.emulate_media(media="print")
    try:
        found = root.evaluate(PRINT_JS)
        assert found["adjust"] == "exact", f"{where}: shading would not print ({found})"
        assert all(o == "visible" for o in found["scrolls"]), f"{where}: clipped in print {found}"
        assert found["hints"] == 0 and found["height"] > 80, f"{where}: {found}"
        colours = read_colours(root, heat_selector)
        assert colours["ground"] > 0.8, f"{where}: prints on a dark ground"
        low = [c for c in colours["cells"] if c["ratio"] < AA]
        assert not low, f"{where}: printed heatmap text below AA: {low}"
    finally:
        page.emulate_media(media="screen")


def check_chapter_reader(
    open_page, server, page_path, root_selector: str, where: str, *,
    heat_selector: str = ".attn-heat", min_cells: int = 1, expect_scroll: bool = False,
) -> dict:
    """A built chapter as a reader opens it: with a dark system preference pydata-sphinx-theme
    picks its dark theme and the widget follows (and the theme's light card behind widget output
    is gone); toggled to light it follows back; printed it shows its state; at 390 px it fits.
    Returns the colours measured (dark and light)."""
    page, watch = open_page(server.url(page_path), (server.base,), color_scheme="dark")
    root = page.locator(root_selector).first
    root.scroll_into_view_if_needed()
    # anywidget adds the widget's stylesheet once the view is drawn: wait for the ground it paints.
    page.wait_for_function(
        "(s) => { const r = document.querySelector(s); return !!r && "
        "getComputedStyle(r).backgroundColor !== 'rgba(0, 0, 0, 0)'; }",
        arg=root_selector,
    )
    assert page.evaluate("() => document.documentElement.dataset.theme") == "dark", where
    dark = check_dark(root, f"{where} (dark)", heat_selector, min_cells)
    card = root.evaluate(
        "(r) => { const s = r.closest('.widget-subarea'); return s ? "
        "getComputedStyle(s).backgroundColor : null; }"
    )
    assert card in (None, "rgba(0, 0, 0, 0)", "transparent"), f"{where}: light card {card}"
    set_theme(page, "light")
    light = check_light(root, f"{where} (light)", heat_selector, min_cells)
    set_theme(page, "dark")
    check_print(page, root, where, heat_selector)
    check_phone_fit(page, root, f"{where} (390 px)", expect_scroll=expect_scroll)
    assert not watch.problems(), "\n".join(watch.problems())
    return {"dark": dark, "light": light}
