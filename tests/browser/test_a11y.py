"""axe-core on every page of the built book, in the light and the dark theme: no serious or
critical finding (the theme's own markup included; book/_ext/reader_pages.py fixes those).

axe-core comes from npm (book/_assets) and is injected by the test; the book never ships it.
"""

from __future__ import annotations

import pytest

from .helpers import (
    BUILD,
    built_pages,
    describe_axe,
    require_build,
    serious_axe_findings,
    theme_script,
)

# index.html is Jupyter Book's one-line redirect to book/intro.html, which is checked itself (axe
# would run on whichever of the two documents is there when it starts).
PAGES = [p for p in built_pages() if 'http-equiv="Refresh"' not in p.read_text(encoding="utf-8")]
THEMES = ["light", "dark"]


def _ids(pages):
    return [p.relative_to(BUILD).as_posix() for p in pages] or ["no-build"]


def _check(open_page, url, allowed, theme, where):
    page, watch = open_page(url, allowed, theme=theme, color_scheme=theme)
    shown = page.evaluate("document.documentElement.dataset.theme")
    assert shown == theme, f"{where}: asked for the {theme} theme, the page shows {shown!r}"
    findings = serious_axe_findings(page)
    assert not findings, f"{where} ({theme}): axe-core's serious/critical findings:\n" + (
        describe_axe(findings)
    )
    assert not watch.problems(), watch.problems()


@pytest.mark.parametrize("theme", THEMES)
@pytest.mark.parametrize("page_path", PAGES or [None], ids=_ids(PAGES))
def test_no_serious_accessibility_findings(page_path, theme, book_server, open_page):
    require_build()
    where = page_path.relative_to(BUILD).as_posix()
    _check(open_page, book_server.url(page_path), (book_server.base,), theme, where)


FILE_PAGES = [p for p in PAGES if p.name in ("intro.html", "06_masking.html")]


@pytest.mark.parametrize("theme", THEMES)
@pytest.mark.parametrize("page_path", FILE_PAGES or [None], ids=_ids(FILE_PAGES))
def test_no_serious_accessibility_findings_over_file_urls(page_path, theme, open_page):
    require_build()
    _check(open_page, page_path.as_uri(), ("file://",), theme, f"{page_path.name} (file://)")


def test_axe_finds_what_it_should(harness_dir, harness_server, open_page):
    """The check can fail: a button without a name and grey-on-grey text are reported."""
    (harness_dir / "axe-bad.html").write_text(
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>bad</title>'
        '<link rel="icon" href="data:,"></head><body><main><button></button>'
        '<p style="color:#777;background:#888">faint</p></main></body></html>',
        encoding="utf-8",
    )
    page, _ = open_page(harness_server.url("axe-bad.html"), (harness_server.base,))
    assert {f["id"] for f in serious_axe_findings(page)} >= {"button-name", "color-contrast"}


def test_theme_script_sets_the_dark_theme(book_server, open_page):
    """The dark theme the tests ask for is the theme's own (its colour-mode button agrees)."""
    require_build()
    page, _ = open_page(book_server.url("book/intro.html"), (book_server.base,), theme="dark")
    state = page.evaluate(
        "({theme: document.documentElement.dataset.theme, mode: document.documentElement"
        ".dataset.mode, stored: localStorage.getItem('mode')})"
    )
    assert state == {"theme": "dark", "mode": "dark", "stored": "dark"}, state
    assert "mode" in theme_script("dark")
