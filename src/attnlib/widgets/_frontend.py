"""Each widget's front end: the shared base followed by the widget's own view.

``_base.js`` holds what every widget's JavaScript shares (the DOM helper, the token display, the
softmax, the colour scale, the controls); ``<name>.js`` holds one widget's view and its
``export default { render }``. :func:`build_esm` joins the two into the one ES module anywidget
loads, :func:`build_css` does the same for the stylesheets. A widget sets
``_esm = build_esm("tiles")`` and ``_css = build_css("tiles")``; the notebooks store these
strings, and tests/test_widget_frontends.py checks that what they store is what is built today.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

__all__ = ["VIEWS", "LIBRARIES", "build_css", "build_esm", "js_source"]

_HERE = Path(__file__).parent
VIEWS = (
    "bottleneck", "decoding", "explorer", "heads", "masks", "positions", "sampling", "tiles"
)
"""The widgets' views: one ``<name>.js`` and one ``<name>.css`` each."""

LIBRARIES = {
    "decoding": ("_nn.js",),
    "heads": ("_nn.js", "_wordpiece.js", "_bert.js"),
    "sampling": ("_nn.js",),  # its live mode runs a character GPT
}
"""Shared files joined between ``_base.js`` and a view that needs them: ``_nn.js`` (the in-page
models' arithmetic), ``_wordpiece.js`` (BERT's tokeniser), ``_bert.js`` (BERT's forward pass,
for the heads view's live mode). A view not named here gets none."""


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


def js_source(function: str, file: str = "_nn.js") -> str:
    """The source of one top-level JavaScript function of a widget file, with the comment above
    it: what a chapter prints beside the PyTorch it mirrors, so the page shows today's code.

    Args:
        function: the function's name, e.g. ``"multiHeadAttention"``.
        file: the file in ``attnlib/widgets/`` (``"_nn.js"``, ``"_wordpiece.js"``, a view).
    """
    path = _HERE / file
    if not path.is_file() or path.suffix != ".js":
        files = sorted(p.name for p in _HERE.glob("*.js"))
        raise ValueError(f"js_source: no widget file {file!r}; the files are {files}")
    lines = _read(file).splitlines()
    head = re.compile(rf"^(?:export )?function {re.escape(function)}\(")
    starts = [i for i, line in enumerate(lines) if head.match(line)]
    if not starts:
        raise ValueError(f"js_source: {file} has no top-level function {function!r}")
    first = last = starts[0]
    while first > 0 and lines[first - 1].lstrip().startswith(("//", "/*", "*")):
        first -= 1  # the doc comment above it
    while lines[last] != "}":
        last += 1
    return "\n".join(lines[first : last + 1]) + "\n"
