"""Every page of the built book loads offline, cleanly, with its math typeset."""

from __future__ import annotations

import json
import re

import pytest

from .helpers import BUILD, built_pages, require_build

PAGES = built_pages()


@pytest.mark.parametrize(
    "page_path",
    PAGES or [None],
    ids=[p.relative_to(BUILD).as_posix() for p in PAGES] or ["no-build"],
)
def test_page_loads_offline_without_errors(page_path, book_server, open_page):
    require_build()
    page, watch = open_page(book_server.url(page_path), (book_server.base,))
    assert page.title(), f"{page_path.name} has no title"
    problems = watch.problems()
    assert not problems, f"{page_path.relative_to(BUILD)}:\n  " + "\n  ".join(problems)


def test_math_is_typeset(book_server, open_page):
    require_build()
    with_math = [p for p in PAGES if 'class="math' in p.read_text(encoding="utf-8")]
    assert with_math, "no built page contains math; expected at least book/notation"
    page_path = with_math[0]
    page, watch = open_page(book_server.url(page_path), (book_server.base,))
    counts = page.evaluate(
        """() => ({
            math: document.querySelectorAll('.math').length,
            typeset: document.querySelectorAll('.math mjx-container').length,
            raw: Array.from(document.querySelectorAll('.math'))
                   .filter((m) => !m.querySelector('mjx-container')).length,
        })"""
    )
    assert counts["typeset"] > 0, f"{page_path.name}: MathJax typeset nothing: {counts}"
    assert counts["raw"] == 0, f"{page_path.name}: {counts['raw']} math elements left as raw TeX"
    assert not watch.problems(), watch.problems()


# --- static checks of the HTML (no browser needed) ----------------------------------------------

REMOTE_ASSET = re.compile(r'<(?:script|link)\b[^>]*\b(?:src|href)="((?:https?:)?//[^"]*)"', re.I)
WIDGET_STATE = re.compile(
    r'<script type="application/vnd\.jupyter\.widget-state\+json">(.*?)</script>', re.S
)


def test_no_page_loads_scripts_or_styles_from_another_host():
    require_build()
    remote = {
        f"{p.relative_to(BUILD)}: {url}"
        for p in PAGES
        for url in REMOTE_ASSET.findall(p.read_text(encoding="utf-8"))
    }
    assert not remote, "pages load assets from the network:\n" + "\n".join(sorted(remote))
    for css in (BUILD / "_static").rglob("*.css"):
        assert not re.search(r"url\(\s*['\"]?(https?:)?//", css.read_text(encoding="utf-8")), css


def test_embedded_widget_state_cannot_close_its_script_tag():
    require_build()
    for p in PAGES:
        for body in WIDGET_STATE.findall(p.read_text(encoding="utf-8")):
            assert "<" not in body, f"{p.relative_to(BUILD)}: raw '<' inside the widget state"
            json.loads(body)  # still valid JSON
