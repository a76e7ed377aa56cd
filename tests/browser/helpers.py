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
# axe-core from npm (book/_assets, `make setup`), injected by the tests; never part of the book.
AXE = ROOT / "book" / "_assets" / "node_modules" / "axe-core" / "axe.min.js"
PHONE = {"width": 390, "height": 844}  # a phone's CSS pixels (iPhone 12 to 15)


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


def theme_script(theme: str) -> str:
    """An init script that stores the reader's colour mode the way pydata-sphinx-theme 0.17's
    colour-mode button does (localStorage "mode" and "theme"; its inline script in <head> reads
    them into <html data-mode data-theme> before the page paints)."""
    assert theme in ("light", "dark", "auto"), theme
    return f"localStorage.setItem('mode', '{theme}'); localStorage.setItem('theme', '{theme}');"


AXE_RUN_JS = """
async (preload) => {
  const result = await axe.run(document, { resultTypes: ['violations'], preload });
  return result.violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => ({ id: v.id, impact: v.impact, help: v.help,
                   nodes: v.nodes.map((n) => n.target.join(' ')) }));
}
"""


def serious_axe_findings(page) -> list[dict]:
    """Run axe-core on the page: its serious and critical violations ({id, impact, help, nodes})."""
    if not AXE.exists():
        pytest.fail(f"{AXE} is missing: install the book's assets with `make setup`", pytrace=False)
    page.add_script_tag(path=str(AXE))
    # axe reads stylesheets again with XMLHttpRequest (for css-orientation-lock), which file://
    # pages may not do: there it checks the rendered page only.
    return page.evaluate(AXE_RUN_JS, not page.url.startswith("file:"))


def describe_axe(findings: list[dict]) -> str:
    return "\n".join(
        f"  {f['impact']} {f['id']} ({f['help']}): {len(f['nodes'])} node(s), e.g. "
        + "; ".join(f["nodes"][:3])
        for f in findings
    )


# What sticks out of the viewport on the right without a scrolling box around it: the outermost
# such elements, with their path, so a failing width check names its cause.
OVERFLOW_JS = """
() => {
  const W = document.documentElement.clientWidth;
  const clipped = (el) => {
    for (let a = el.parentElement; a && a !== document.body; a = a.parentElement) {
      if (getComputedStyle(a).overflowX !== 'visible') return true;
    }
    return false;
  };
  const sticksOut = (el) => {
    const r = el.getBoundingClientRect();
    return r.width > 0 && r.right > W + 0.5 && !clipped(el);
  };
  const name = (el) => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') +
    (typeof el.className === 'string' && el.className.trim()
      ? '.' + el.className.trim().split(/\\s+/).slice(0, 3).join('.') : '');
  const culprits = [];
  for (const el of document.querySelectorAll('body *')) {
    if (!sticksOut(el)) continue;
    const p = el.parentElement;
    if (p && p !== document.body && sticksOut(p)) continue;
    const path = [];
    for (let a = el; a && a !== document.body && path.length < 4; a = a.parentElement) {
      path.unshift(name(a));
    }
    culprits.push(`${Math.round(el.getBoundingClientRect().right)} px: ${path.join(' > ')}`);
  }
  return { scrollWidth: document.documentElement.scrollWidth, width: W, culprits };
}
"""
