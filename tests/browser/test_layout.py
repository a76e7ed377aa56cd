"""The built book on a phone and on paper.

- Phone: at a 390-px viewport no page scrolls sideways (tables, display math and code scroll in
  their own box; long inline code breaks; the header fits; widgets reflow).
- Print: the header and sidebars are gone, the article fills the page, and every widget prints
  as its current state (a rendered box with visible content, not a blank one).
"""

from __future__ import annotations

import pytest

from .helpers import BUILD, OVERFLOW_JS, PHONE, built_pages, require_build

PAGES = built_pages()
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_PAGES = [p for p in PAGES if WIDGET_VIEW in p.read_text(encoding="utf-8")]


def _ids(pages):
    return [p.relative_to(BUILD).as_posix() for p in pages] or ["no-build"]


def _check_width(page, where):
    width = page.evaluate(OVERFLOW_JS)
    assert width["scrollWidth"] <= PHONE["width"], (
        f"{where}: {width['scrollWidth']} px wide at a {PHONE['width']}-px viewport; "
        "what sticks out:\n  " + "\n  ".join(width["culprits"][:12])
    )


@pytest.mark.parametrize("page_path", PAGES or [None], ids=_ids(PAGES))
def test_no_page_scrolls_sideways_on_a_phone(page_path, book_server, open_page):
    require_build()
    page, watch = open_page(book_server.url(page_path), (book_server.base,), phone=True)
    _check_width(page, page_path.relative_to(BUILD).as_posix())
    assert not watch.problems(), watch.problems()


FILE_PAGES = [p for p in PAGES if p.name in ("intro.html", "08_bert.html")]


@pytest.mark.parametrize("page_path", FILE_PAGES or [None], ids=_ids(FILE_PAGES))
def test_phone_width_over_file_urls(page_path, open_page):
    require_build()
    page, watch = open_page(page_path.as_uri(), ("file://",), phone=True, theme="dark")
    _check_width(page, f"{page_path.name} (file://, dark)")
    assert not watch.problems(), watch.problems()


PRINT_STATE_JS = """
() => {
  const box = (el) => { const r = el.getBoundingClientRect(); return [r.width, r.height]; };
  const shown = (sel) => Array.from(document.querySelectorAll(sel)).filter((el) => {
    const [w, h] = box(el);
    return w > 0 && h > 0 && getComputedStyle(el).visibility !== 'hidden';
  }).map((el) => sel);
  const article = document.querySelector('.bd-article');
  const widgets = Array.from(document.querySelectorAll('.widget-subarea > *')).map((el) => {
    const [w, h] = box(el);
    const text = (el.innerText || '').trim();
    const drawn = el.querySelectorAll('svg, canvas, img, [style*="background"]').length;
    return { w, h, text: text.length, drawn, visible: getComputedStyle(el).visibility };
  });
  return {
    chrome: [].concat(...['.bd-header', '.bd-header-article', '.bd-sidebar-primary',
      '.bd-sidebar-secondary', '.prev-next-area', '.bd-footer'].map(shown)),
    articleWidth: box(article)[0],
    pageWidth: document.documentElement.clientWidth,
    widgets,
  };
}
"""


@pytest.mark.parametrize("page_path", WIDGET_PAGES or [None], ids=_ids(WIDGET_PAGES))
def test_printed_chapter_shows_article_and_widgets(page_path, book_server, open_page):
    require_build()
    page, watch = open_page(book_server.url(page_path), (book_server.base,))
    page.emulate_media(media="print")
    page.wait_for_timeout(100)
    state = page.evaluate(PRINT_STATE_JS)
    where = page_path.name
    assert not state["chrome"], f"{where}: printed with {state['chrome']}"
    assert state["articleWidth"] >= 0.9 * state["pageWidth"], f"{where}: {state}"
    assert state["widgets"], f"{where}: no widget rendered"
    for k, w in enumerate(state["widgets"]):
        assert w["w"] > 0 and w["h"] > 0 and w["visible"] != "hidden", f"{where} widget {k}: {w}"
        assert w["text"] > 0 or w["drawn"] > 0, f"{where} widget {k} prints empty: {w}"
    assert not watch.problems(), watch.problems()


def test_a_chapter_prints_to_pdf(book_server, open_page, tmp_path):
    """Chromium's own print path (page.pdf) produces a multi-page document for a widget chapter."""
    require_build()
    chapter = next((p for p in WIDGET_PAGES if p.name.startswith("02_")), None)
    assert chapter is not None, "the soft-lookup chapter (with its widget) is not built"
    page, watch = open_page(book_server.url(chapter), (book_server.base,))
    pdf = page.pdf(format="A4", print_background=True)
    assert pdf.startswith(b"%PDF") and pdf.count(b"/Type /Page") > 2, len(pdf)


def test_dark_theme_prints_in_the_light_theme(book_server, open_page):
    """A reader in the dark theme prints on white paper: while Chromium prints (page.pdf fires
    beforeprint and afterprint) the page is in the light theme, and the dark theme is back after."""
    require_build()
    chapter = next((p for p in WIDGET_PAGES if p.name.startswith("02_")), None)
    assert chapter is not None, "the soft-lookup chapter (with its widget) is not built"
    page, watch = open_page(book_server.url(chapter), (book_server.base,), theme="dark")
    page.evaluate(
        """() => {
          window.seenWhilePrinting = null;
          addEventListener('beforeprint', () => {
            window.seenWhilePrinting = document.documentElement.dataset.theme; });
        }"""
    )
    page.pdf(format="A4")
    seen = page.evaluate("[window.seenWhilePrinting, document.documentElement.dataset.theme]")
    assert seen == ["light", "dark"], f"theme while printing, after: {seen}"
    assert page.evaluate("localStorage.getItem('mode')") == "dark", "the reader's choice changed"
    assert not watch.problems(), watch.problems()
