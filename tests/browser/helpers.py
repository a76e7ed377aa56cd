"""Shared helpers for the browser tests: where the built book is, which pages it has."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# ATTNLIB_BOOK_HTML points the tests at a book built elsewhere (e.g. --path-output /tmp/x).
BUILD = Path(os.environ.get("ATTNLIB_BOOK_HTML", ROOT / "_build" / "html"))
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WIDGET_ID = "attnlib.widgets.explorer.AttentionExplorer"  # the _anywidget_id in stored state


def built_pages() -> list[Path]:
    """Every HTML page of the built book (not the bundles under _static/ or _sources/)."""
    if not (BUILD / "index.html").exists():
        return []
    return sorted(
        p for p in BUILD.rglob("*.html") if not p.relative_to(BUILD).parts[0].startswith("_")
    )


def widget_pages(widget_id: str = WIDGET_ID) -> list[Path]:
    """Built pages that store at least one view of the widget whose _anywidget_id is widget_id
    (by default an AttentionExplorer)."""
    return [p for p in built_pages() if widget_id in p.read_text(encoding="utf-8")]


def require_build() -> None:
    if not (BUILD / "index.html").exists():
        pytest.fail(
            f"{BUILD} holds no built book: build it first with `make book` "
            "(.venv/bin/jupyter-book build . --toc book/_toc.yml)",
            pytrace=False,
        )


SETTLE_JS = """
async () => {
  const deadline = Date.now() + 15000;
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  if (window.MathJax && window.MathJax.startup && window.MathJax.startup.promise) {
    await window.MathJax.startup.promise;
  }
  // The widget renderer replaces each widget-view script with a rendered view.
  const views = () => document.querySelectorAll(
    'script[type="application/vnd.jupyter.widget-view+json"]').length;
  const rendered = () => document.querySelectorAll('.widget-subarea > *').length;
  while (rendered() < views() && Date.now() < deadline) await sleep(50);
  return { views: views(), rendered: rendered() };
}
"""


def settle(page) -> dict:
    """Wait until MathJax has typeset and every widget view is rendered (or 15 s passed).

    A page that redirects (index.html does, with a meta refresh) is followed to its target.
    """
    for _ in range(3):
        page.wait_for_load_state("load")
        try:
            state = page.evaluate(SETTLE_JS)
            break
        except Exception as err:  # the page navigated away while we waited
            if "context was destroyed" not in str(err):
                raise
    else:
        raise AssertionError(f"{page.url} kept navigating")
    page.wait_for_timeout(100)  # late console messages
    return state
