"""The widgets' front ends: how they are built, and the copies the notebooks store.

Each widget's ES module and stylesheet are built from the shared base (``_base.js``,
``_base.css``) and the widget's own view (``<view>.js``, ``<view>.css``) by
:mod:`attnlib.widgets._frontend`. A notebook stores the built strings in its widget state; the
published book renders from those copies, so a copy older than the package shows the reader an
older widget. These tests read the JavaScript as text (the browser tests in tests/browser/ run it).
"""

from __future__ import annotations

import importlib
import json
import re
from pathlib import Path

import pytest

import attnlib.widgets as widgets
from attnlib.widgets import _base
from attnlib.widgets._frontend import LIBRARIES, VIEWS, build_css, build_esm

ROOT = Path(__file__).resolve().parents[1]
WIDGET_DIR = ROOT / "src" / "attnlib" / "widgets"
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
STATE_KEY = "application/vnd.jupyter.widget-state+json"

# Names a view may call without defining them: the language's own functions and keywords.
JS_BUILTINS = {
    "Array", "Boolean", "Error", "Float32Array", "Float64Array", "Int32Array", "JSON", "Map",
    "Math", "Number", "Object", "Promise", "Set", "String", "Symbol", "WeakMap", "isFinite",
    "isNaN", "parseFloat", "parseInt", "setTimeout", "clearTimeout", "requestAnimationFrame",
    "super",
}
JS_KEYWORDS = {
    "if", "for", "while", "switch", "catch", "function", "return", "typeof", "new", "await",
    "yield", "case", "do", "else", "in", "of", "void", "delete", "throw",
}
HTML_SINKS = ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(",
              "new Function", "createContextualFragment", "DOMParser", "srcdoc")


# --- reading JavaScript as text -------------------------------------------------------------------


def code_only(js: str) -> str:
    """``js`` without its comments, with the text of every string and template literal removed
    (the quotes stay), so that what remains is code. The widgets' regular expressions hold no
    quote and no ``//``, so they pass through as code."""
    out, i, n = [], 0, len(js)
    while i < n:
        if js.startswith("//", i):
            i = n if (end := js.find("\n", i)) < 0 else end
        elif js.startswith("/*", i):
            i = n if (end := js.find("*/", i + 2)) < 0 else end + 2
        elif js[i] in "'\"`":
            quote, j = js[i], i + 1
            while j < n and js[j] != quote:
                j += 2 if js[j] == "\\" else 1
            out.append(quote * 2)
            i = j + 1
        else:
            out.append(js[i])
            i += 1
    return "".join(out)


def top_level_names(code: str) -> set[str]:
    """The names a module declares at its top level (function, const, let, class)."""
    pattern = r"^(?:export\s+)?(?:function|const|let|var|class)\s+([A-Za-z_$][\w$]*)"
    return set(re.findall(pattern, code, flags=re.M))


def exported_names(code: str) -> set[str]:
    return set(re.findall(r"^export\s+(?:function|const|let|class)\s+([A-Za-z_$][\w$]*)", code,
                          flags=re.M))


def defined_names(code: str) -> set[str]:
    """Every name the code declares anywhere: declarations and the parameters of functions."""
    names = set(re.findall(r"\b(?:function|const|let|var|class)\s+([A-Za-z_$][\w$]*)", code))
    destructured = re.findall(r"\b(?:const|let|var)\s*[{\[]([^=]*?)[}\]]\s*=", code)
    params = re.findall(r"\bfunction\s*[\w$]*\s*\(([^)]*)\)", code)
    params += re.findall(r"\(([^()]*)\)\s*=>", code)
    params += re.findall(r"([A-Za-z_$][\w$]*)\s*=>", code)
    for text in destructured + params:
        names |= set(re.findall(r"[A-Za-z_$][\w$]*", text))
    return names


def bare_calls(code: str) -> set[str]:
    """The names called as ``name(...)``, not as a method ``x.name(...)``."""
    return set(re.findall(r"(?<![\w$.])([A-Za-z_$][\w$]*)\s*\(", code)) - JS_KEYWORDS


BASE_JS = code_only((WIDGET_DIR / "_base.js").read_text(encoding="utf-8"))
VIEW_JS = {view: code_only((WIDGET_DIR / f"{view}.js").read_text(encoding="utf-8"))
           for view in VIEWS}
LIBRARY_JS = {lib: code_only((WIDGET_DIR / lib).read_text(encoding="utf-8"))
              for lib in sorted({lib for libs in LIBRARIES.values() for lib in libs})
              if (WIDGET_DIR / lib).exists()}


def shared_js(view: str) -> str:
    """What a view is joined after: the base and its libraries (``_nn.js``, ...)."""
    return "\n".join([BASE_JS, *(LIBRARY_JS[lib] for lib in LIBRARIES.get(view, ()))])


# --- the built front ends -----------------------------------------------------------------------


def test_every_widget_builds_its_front_end_from_the_base_and_its_view():
    classes = [getattr(widgets, name) for name in widgets.__all__]
    views = sorted(p.stem for p in WIDGET_DIR.glob("*.js") if not p.stem.startswith("_"))
    assert views == sorted(VIEWS), "every <view>.js is a view, and every view has its file"
    built = {(cls._esm, cls._css) for cls in classes}
    assert built == {(build_esm(v), build_css(v)) for v in VIEWS}, "one view per widget"
    for cls in classes:
        assert issubclass(cls, _base.Widget), cls
        assert cls._esm.startswith((WIDGET_DIR / "_base.js").read_text(encoding="utf-8"))
        assert cls._css.startswith((WIDGET_DIR / "_base.css").read_text(encoding="utf-8"))


@pytest.mark.parametrize("view", VIEWS)
def test_built_module_has_one_default_export_and_no_imports(view):
    code = code_only(build_esm(view))
    assert len(re.findall(r"^export default\b", code, flags=re.M)) == 1, view
    assert "export default" not in BASE_JS, "the base is no module of its own"
    assert not re.search(r"^\s*import\b", code, flags=re.M), f"{view}.js imports: it is joined"


@pytest.mark.parametrize("view", VIEWS)
def test_view_does_not_redeclare_what_the_base_declares(view):
    clash = top_level_names(VIEW_JS[view]) & top_level_names(shared_js(view))
    assert not clash, f"{view}.js declares {sorted(clash)} again (a SyntaxError once joined)"


@pytest.mark.parametrize("view", VIEWS)
def test_view_calls_only_its_own_functions_and_the_bases_helpers(view):
    code = VIEW_JS[view]
    shared = shared_js(view)
    unknown = bare_calls(code) - defined_names(code) - exported_names(shared) - JS_BUILTINS
    assert not unknown, f"{view}.js calls {sorted(unknown)}, which neither it nor _base.js define"


def test_base_helpers_are_used():
    """No dead helper in the base: each exported name is used by a view or by the base."""
    used = set().union(*(set(re.findall(r"[A-Za-z_$][\w$]*", c)) for c in VIEW_JS.values()))
    base_uses = re.findall(r"[A-Za-z_$][\w$]*", re.sub(r"^export .*$", "", BASE_JS, flags=re.M))
    exported_for_tests = {"maskedSoftmax"}  # shared arithmetic the browser tests call
    used_by_libraries = set().union(set(), *(set(re.findall(r"[A-Za-z_$][\w$]*", c))
                                              for c in LIBRARY_JS.values()))
    unused = (exported_names(BASE_JS) - used - set(base_uses) - used_by_libraries
              - exported_for_tests)
    assert not unused, f"_base.js exports {sorted(unused)}, which nothing uses"


def test_libraries_are_shared_files_used_by_their_views():
    """A library (``_nn.js``, ``_wordpiece.js``) declares no clash with the base or another
    library, imports and exports nothing by default, and each name it exports is used by a view
    it is joined to, by another library, or by itself."""
    for lib, code in LIBRARY_JS.items():
        assert "export default" not in code and not re.search(r"^\s*import\b", code, flags=re.M)
        assert not top_level_names(code) & top_level_names(BASE_JS), lib
        for other, other_code in LIBRARY_JS.items():
            if other != lib:
                assert not top_level_names(code) & top_level_names(other_code), (lib, other)
    for lib, code in LIBRARY_JS.items():
        views = [v for v in VIEWS if lib in LIBRARIES.get(v, ())]
        if not views:
            continue  # its view is still being written
        used = set().union(*(set(re.findall(r"[A-Za-z_$][\w$]*", VIEW_JS[v])) for v in views))
        used |= set().union(set(), *(set(re.findall(r"[A-Za-z_$][\w$]*",
                                                    re.sub(r"^export .*$", "", c, flags=re.M)))
                                     for c in LIBRARY_JS.values()))
        unused = exported_names(code) - used
        assert not unused, f"{lib} exports {sorted(unused)}, which nothing uses"


@pytest.mark.parametrize("view", VIEWS)
def test_built_module_never_parses_text_as_html(view):
    code = code_only(build_esm(view))
    for sink in HTML_SINKS:
        assert sink not in code, f"the {view} front end uses {sink}"
    assert "textContent" in code


@pytest.mark.parametrize("view", VIEWS)
def test_views_style_from_the_base_palette(view):
    """The palette lives in _base.css only: a view declares no custom property of its own and
    uses only the base's --attn-* variables."""
    base = (WIDGET_DIR / "_base.css").read_text(encoding="utf-8")
    css = (WIDGET_DIR / f"{view}.css").read_text(encoding="utf-8")
    declared = set(re.findall(r"(--attn-[\w-]+)\s*:", base))
    assert not re.findall(r"(?<![\w(-])(--[\w-]+)\s*:", css), f"{view}.css declares variables"
    used = set(re.findall(r"var\((--[\w-]+)", css))
    assert used <= declared | {"--attn-w"}, f"{view}.css uses {sorted(used - declared)}"


# --- the copies the notebooks store -------------------------------------------------------------


def stored_front_ends() -> list[tuple[str, str, dict]]:
    """(notebook, model id, state) for every anywidget state stored in a notebook."""
    found = []
    for path in NOTEBOOKS:
        metadata = json.loads(path.read_text(encoding="utf-8")).get("metadata", {})
        models = metadata.get("widgets", {}).get(STATE_KEY, {}).get("state", {})
        for model_id, model in models.items():
            state = model.get("state", {})
            if "_esm" in state or "_css" in state:
                found.append((path.name, model_id, state))
    return found


STORED = stored_front_ends()


def test_the_notebooks_store_widgets():
    assert STORED, "no notebook stores a widget's state: were they executed with widgets?"


@pytest.mark.parametrize(
    ("notebook", "model_id", "state"), STORED, ids=[f"{nb}:{mid[:8]}" for nb, mid, _ in STORED]
)
def test_stored_front_end_is_what_the_package_builds(notebook, model_id, state):
    module, _, name = state.get("_anywidget_id", "").rpartition(".")
    assert module.startswith("attnlib.widgets."), f"{notebook}: unknown widget {module}.{name}"
    cls = getattr(importlib.import_module(module), name)
    for key in ("_esm", "_css"):
        stored, built = state.get(key, ""), getattr(cls, key)
        stored_lines, built_lines = stored.splitlines(), built.splitlines()
        first = next(
            (k for k, (a, b) in enumerate(zip(stored_lines, built_lines, strict=False)) if a != b),
            min(len(stored_lines), len(built_lines)),
        )
        if stored != built:
            pytest.fail(
                f"{notebook} stores an older {key} for {name} (model {model_id}): it differs "
                f"from what attnlib builds today from line {first + 1} on; re-execute the notebook",
                pytrace=False,
            )


def palette_blocks(css: str) -> list[tuple[str, set[str]]]:
    """(selector, the --attn-* colours it sets) for every rule of _base.css that sets
    --attn-bg: the light palette, the dark one (system preference, explicit theme) and print."""
    blocks = []
    for match in re.finditer(r"([^{}]+)\{([^{}]*--attn-bg\s*:[^{}]*)\}", css):
        names = set(re.findall(r"(--attn-[\w-]+)\s*:", match.group(2))) - {"--attn-mono"}
        blocks.append((" ".join(match.group(1).split()), names))
    return blocks


def test_every_palette_sets_every_colour():
    """Light, dark (twice: the system preference and an explicit choice) and print: each sets the
    same colours, so no colour of one theme leaks into another."""
    blocks = palette_blocks((WIDGET_DIR / "_base.css").read_text(encoding="utf-8"))
    assert len(blocks) == 4, [selector for selector, _ in blocks]
    first = blocks[0][1]
    assert {"--attn-bg", "--attn-fg", "--attn-accent", "--attn-heat-split"} <= first
    for selector, names in blocks[1:]:
        assert names == first, f"{selector}: differs by {sorted(names ^ first)}"


@pytest.mark.parametrize("view", VIEWS)
def test_view_announces_through_the_one_live_region(view):
    """A widget has one live region (widgetRoot's; announce() fills it): no view adds its own."""
    code = (WIDGET_DIR / f"{view}.js").read_text(encoding="utf-8")
    assert "aria-live" not in code, f"{view}.js adds a live region of its own"


def test_js_source_prints_one_function_with_its_doc_comment():
    from attnlib.widgets._frontend import js_source

    text = js_source("gelu")
    assert text.startswith("/** nn.GELU()") and text.rstrip().endswith("}")
    assert text.count("export function") == 1
    assert "function softmaxRow(" in js_source("softmaxRow", "_base.js")
    with pytest.raises(ValueError, match="no top-level function 'nope'"):
        js_source("nope")
    with pytest.raises(ValueError, match="no widget file 'x.js'"):
        js_source("gelu", "x.js")
