"""Each widget's front end: the shared base followed by the widget's own view.

``_base.js`` holds what every widget's JavaScript shares (the DOM helper, the token display, the
softmax, the colour scale, the controls); ``<name>.js`` holds one widget's view and its
``export default { render }``. :func:`build_esm` joins the two into the one ES module anywidget
loads, :func:`build_css` does the same for the stylesheets. A widget sets
``_esm = build_esm("tiles")`` and ``_css = build_css("tiles")``; the notebooks store these
strings, and tests/test_widget_frontends.py checks that what they store is what is built today.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

__all__ = ["VIEWS", "LIBRARIES", "build_css", "build_esm"]

_HERE = Path(__file__).parent
VIEWS = (
    "bottleneck", "decoding", "explorer", "heads", "masks", "positions", "sampling", "tiles"
)
"""The widgets' views: one ``<name>.js`` and one ``<name>.css`` each."""

LIBRARIES = {
    "live_bert": ("_nn.js", "_wordpiece.js"),
    "live_dates": ("_nn.js",),
    "live_gpt": ("_nn.js",),
}
"""Shared files joined between ``_base.js`` and a view that needs them: ``_nn.js`` (the in-page
models' arithmetic), ``_wordpiece.js`` (BERT's tokeniser). A view not named here gets none."""


def _read(name: str) -> str:
    return (_HERE / name).read_text(encoding="utf-8").rstrip("\n") + "\n"


def _view(name: str) -> str:
    if name not in VIEWS:
        raise ValueError(f"attnlib.widgets: no widget view {name!r}; the views are {VIEWS}")
    return name


@cache
def build_esm(name: str) -> str:
    """The ES module of the widget view ``name``: ``_base.js``, the view's :data:`LIBRARIES`,
    then ``<name>.js``.

    Returns:
        One module's source text, with the view's single ``export default``.
    """
    parts = [_read("_base.js")]
    for lib in LIBRARIES.get(_view(name), ()):
        parts.append(f"// --- {lib} ---\n\n{_read(lib)}")
    parts.append(f"// --- the {name} view ---\n\n{_read(f'{name}.js')}")
    return "\n".join(parts)


@cache
def build_css(name: str) -> str:
    """The stylesheet of the widget view ``name``: ``_base.css`` then ``<name>.css``."""
    return f"{_read('_base.css')}\n/* --- the {_view(name)} view --- */\n\n{_read(f'{name}.css')}"
