"""What every widget's browser tests share: a harness page that feeds the widget's ES module a
fake anywidget model, hostile token text, and the two checks of a built chapter's widgets (over
http from the book server, and over file://).

A test file keeps what is its widget's own (what it reads from the DOM, how it drives a view,
the states it renders) and passes it in:

    @pytest.fixture
    def harness(harness_dir, harness_server, open_page):
        return open_harness(open_page, harness_dir, harness_server, "masks", "MaskExplorer")

    render = partial(render_into, root_selector=".me-root")  # render(page, "a", state) -> root

    def test_chapter_widgets_respond(page_path, book_server, open_page):
        check_widget_page(open_page, book_server, page_path, ".me-root", exercise, "MaskExplorer")
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from string import Template

import pytest

from attnlib.widgets._frontend import build_css, build_esm

from .helpers import BUILD

# Token text that must reach the page as text, never as markup: tags that run code when parsed,
# a closing </script>, entities that must not be decoded, and a leading space that must survive.
HOSTILE = [
    "<img src=x onerror=alert(1)>",
    "<script>alert(2)</script>",
    "</SCRIPT><svg onload=alert(3)>",
    "&lt;b&gt; &amp;",
    " the",
]

# The anywidget contract (get/set/on/off/save_changes) in a few lines: set() fires the
# change:<name> handlers as a Python-side change would, save_changes() only counts.
_HARNESS = Template("""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>$title</title>
<link rel="icon" href="data:,"><link rel="stylesheet" href="$css"></head>
<body><div id="a"></div><div id="b"></div>
<script type="module">
import widget, * as $export_as from "./$module";
class FakeModel {
  constructor(state) { this.state = { ...state }; this.handlers = {}; this.saved = 0; }
  get(name) { return this.state[name]; }
  set(name, value) {
    this.state[name] = value;
    for (const f of this.handlers["change:" + name] || []) f();
  }
  on(event, f) { (this.handlers[event] ||= []).push(f); }
  off(event, f) { this.handlers[event] = (this.handlers[event] || []).filter((g) => g !== f); }
  save_changes() { this.saved += 1; }
}
window.$export_as = $export_as;
window.models = {};
window.renderInto = (id, state) => {
  const model = new FakeModel(state);
  window.models[id] = model;
  widget.render({ model, el: document.getElementById(id) });
};
window.harnessReady = true;
</script></body></html>
""")


def harness_page(module: str, css: str, title: str, export_as: str) -> str:
    """A page with two empty divs, #a and #b, that imports ./<module> (its default export is the
    anywidget, its named exports land on window.<export_as>) and links ./<css>.

    window.renderInto(id, state) renders the widget into #id over a FakeModel holding state;
    the model is then window.models[id]. window.harnessReady turns true once the module loaded.
    """
    return _HARNESS.substitute(module=module, css=css, title=title, export_as=export_as)


def open_harness(
    open_page, harness_dir: Path, harness_server, name: str, label: str, *, export_as: str = ""
):
    """Write the widget's built front end (build_esm(name) and build_css(name): the shared base
    and the widget's own view, exactly what the widget sends) into harness_dir as <name>.js and
    <name>.css beside a harness page <name>.html, open it from harness_server and wait for the
    module: returns (page, watch).

    Takes the conftest fixtures open_page, harness_dir and harness_server; label names the widget
    (the page's title); the module's exports become window.<export_as> (default: name).
    """
    module, css = f"{name}.js", f"{name}.css"
    (harness_dir / module).write_text(build_esm(name), encoding="utf-8")
    (harness_dir / css).write_text(build_css(name), encoding="utf-8")
    html = harness_page(module, css, f"{label} harness", export_as or name)
    (harness_dir / f"{name}.html").write_text(html, encoding="utf-8")
    page, watch = open_page(harness_server.url(f"{name}.html"), (harness_server.base,))
    page.wait_for_function("window.harnessReady === true")
    return page, watch


def render_into(page, element_id: str, state: dict, root_selector: str):
    """Render the harness's widget into #element_id over a fake model holding state; returns the
    locator of its root (root_selector inside #element_id)."""
    page.evaluate("([id, state]) => window.renderInto(id, state)", [element_id, state])
    return page.locator(f"#{element_id} {root_selector}")


def assert_clean(watch) -> None:
    """Nothing went wrong on the page: no console error, exception, failed request, dialog."""
    assert not watch.problems(), "\n".join(watch.problems())


# --- the built chapters -------------------------------------------------------------------------


def parametrize_pages(pages: list[Path], none_id: str):
    """@parametrize("page_path") over built pages, one test id per page; with no page, one
    test with page_path None (which the test should fail on: the widget is missing)."""
    return pytest.mark.parametrize(
        "page_path",
        pages or [None],
        ids=[p.relative_to(BUILD).as_posix() for p in pages] or [none_id],
    )


Exercise = Callable[..., None]  # exercise(root_locator, where: str) drives one rendered widget


def _roots(page, root_selector: str, where: str, label: str, count: int | None):
    roots = page.locator(root_selector)
    n = roots.count()
    if count is not None:
        assert n == count, f"{where}: expected {count} {label}, found {n}"
    assert n > 0, f"{where}: no {label} rendered"
    return roots


def check_widget_page(
    open_page,
    server,
    page_path: Path,
    root_selector: str,
    exercise: Exercise,
    label: str,
    *,
    count: int | None = None,
) -> None:
    """Open page_path over http from server (the book_server fixture), reaching nothing else;
    at least one root_selector (exactly count, if given) must have rendered; exercise(root, where)
    drives each one; the page must end clean (no console error, failed request, dialog...)."""
    page, watch = open_page(server.url(page_path), (server.base,))
    roots = _roots(page, root_selector, page_path.name, label, count)
    for k in range(roots.count()):
        root = roots.nth(k)
        root.scroll_into_view_if_needed()
        exercise(root, f"{page_path.name} {label} {k}")
    assert_clean(watch)


def check_file_url(
    open_page,
    page_path: Path,
    root_selector: str,
    exercise: Exercise,
    label: str,
    *,
    count: int | None = None,
) -> None:
    """The same over a file:// URL, where only file:// requests may go: the first widget of the
    page is exercised (what a reader gets who opens the HTML straight from disk)."""
    where = f"{page_path.name} (file://)"
    page, watch = open_page(page_path.as_uri(), ("file://",))
    root = _roots(page, root_selector, where, label, count).first
    root.scroll_into_view_if_needed()
    exercise(root, where)
    assert_clean(watch)
