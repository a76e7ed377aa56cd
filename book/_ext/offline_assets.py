"""Make the book work offline: no script, style or font is fetched from another host.

A default Jupyter Book 1 page loads MathJax, require.js and the Jupyter widget renderer from CDNs,
so offline its math shows raw TeX and its widgets stay blank. This extension copies local copies
into the build, at ``_build/html/_static/offline/``:

- MathJax 3 (``tex-chtml.js`` with its fonts and lazily loaded parts), from npm ``mathjax``;
- ``require.js``, from npm ``requirejs``;
- the widget renderer (``embed-amd.js`` and its fonts), from npm ``@jupyter-widgets/html-manager``;
- anywidget's front end (``index.js``), from the ``anywidget`` pip package.

The npm packages come from ``book/_assets/node_modules`` (``npm ci`` there: ``make setup``). None of
these bundles is committed; they are copied at every build.

It also keeps readers' browser consoles clean:

- sphinx-thebe 0.3.1 adds its inline configuration script twice (``Identifier 'THEBE_JS_URL' has
  already been declared``) and points it at a CDN. This book does not offer Thebe (launch buttons
  open Binder or Colab instead), so its scripts are dropped from every page.
- The widget renderer calls the MathJax 2 API (``MathJax.Hub.Queue``); pages that load MathJax 3
  get a small shim that forwards the call to ``MathJax.typesetPromise``.
- Widget state is embedded in a ``<script>`` tag; MyST-NB escapes only the exact text
  ``</script>``. Every ``<`` in that JSON is written as ``\\u003c`` so no token text, in any letter
  case, can close the tag.

Configuration lives in _config.yml (``mathjax_path``, ``nb_ipywidgets_js``); this module checks it
points at the copied files.
"""

from __future__ import annotations

import filecmp
import shutil
from pathlib import Path

from sphinx.application import Sphinx
from sphinx.errors import ExtensionError
from sphinx.util import logging

logger = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
NODE_MODULES = HERE.parent / "_assets" / "node_modules"
STATIC_SNIPPETS = HERE / "offline_static"
FOLDER = "offline"  # _static/offline/ (not "vendor": the theme writes there)

MATHJAX_SKIP = (  # combined builds this book does not load, and the SVG output
    "tex-chtml-full.js",
    "tex-chtml-full-speech.js",
    "tex-mml-chtml.js",
    "tex-mml-svg.js",
    "tex-svg.js",
    "tex-svg-full.js",
    "mml-chtml.js",
    "mml-svg.js",
    "node-main.js",
    "svg",
)
MANAGER_SKIP = ("embed.js", "embed.js.LICENSE.txt", "libembed-amd.js", "*.map")


def _sources() -> list[tuple[Path, str, tuple[str, ...]]]:
    """(source, destination relative to _static/offline, ignore patterns) for every asset."""
    try:
        import anywidget
    except ImportError as err:  # pragma: no cover - attnlib depends on anywidget
        raise ExtensionError("offline_assets: the anywidget package is not installed") from err
    anywidget_js = Path(anywidget.__file__).parent / "nbextension" / "index.js"
    return [
        (NODE_MODULES / "mathjax" / "es5", "mathjax", MATHJAX_SKIP),
        (NODE_MODULES / "requirejs" / "require.js", "require.js", ()),
        (NODE_MODULES / "@jupyter-widgets" / "html-manager" / "dist", "html-manager", MANAGER_SKIP),
        (anywidget_js, "anywidget/index.js", ()),
        (STATIC_SNIPPETS / "widgets-config.js", "widgets-config.js", ()),
        (STATIC_SNIPPETS / "mathjax2-shim.js", "mathjax2-shim.js", ()),
    ]


def _copy_if_changed(src: str, dst: str) -> str:
    if not (Path(dst).exists() and filecmp.cmp(src, dst, shallow=True)):
        shutil.copy2(src, dst)
    return dst


def copy_assets(app: Sphinx) -> None:
    """Copy the offline bundles into the build's _static/offline/ (builder-inited).

    Not into the EPUB: it ships no script (reader_pages.py turns its math into MathML)."""
    if app.builder.format != "html" or app.builder.name == "epub":
        return
    missing = [str(src) for src, _, _ in _sources() if not src.exists()]
    if missing:
        raise ExtensionError(
            "offline_assets: missing " + ", ".join(missing) + ". Install the book's assets with "
            "`make setup` (it runs `npm ci` in book/_assets)."
        )
    out = Path(app.builder.outdir) / "_static" / FOLDER
    for src, rel, ignore in _sources():
        dst = out / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(
                src,
                dst,
                ignore=shutil.ignore_patterns(*ignore),
                copy_function=_copy_if_changed,
                dirs_exist_ok=True,
            )
        else:
            _copy_if_changed(str(src), str(dst))


def check_config(app: Sphinx, config) -> None:
    """Fail early if the configuration would send readers to a CDN (config-inited)."""
    if "://" in (config.mathjax_path or ""):
        raise ExtensionError(
            f"offline_assets: mathjax_path is {config.mathjax_path!r}; set it to "
            f"'{FOLDER}/mathjax/tex-chtml.js' in _config.yml"
        )
    remote = [p for p in getattr(config, "nb_ipywidgets_js", {}) if "://" in p]
    if remote:
        raise ExtensionError(
            f"offline_assets: nb_ipywidgets_js loads {remote} from the network; point it at "
            f"the copies in _static/{FOLDER}/ in _config.yml"
        )


def _is_thebe(script) -> bool:
    filename = str(script.filename or "")
    body = str(script.attributes.get("body", ""))
    return filename.endswith("sphinx-thebe.js") or "THEBE_JS_URL" in body or "thebe@" in filename


def drop_thebe_css(app: Sphinx, env, docnames) -> None:
    """Remove sphinx-thebe's stylesheet (env-before-read-docs, after sphinx-thebe added it).

    It styles nothing once :func:`page_scripts` has dropped the Thebe scripts from every page.
    """
    builder = app.builder
    if hasattr(builder, "_css_files"):
        builder._css_files[:] = [
            css for css in builder._css_files if not str(css.filename).endswith("sphinx-thebe.css")
        ]
    app.registry.css_files[:] = [
        (name, attrs)
        for name, attrs in app.registry.css_files
        if not str(name).endswith("sphinx-thebe.css")
    ]


def drop_thebe_config_nodes(app: Sphinx, doctree, docname) -> None:
    """Remove the <script> nodes sphinx-thebe appends to each page (doctree-resolved)."""
    from docutils import nodes

    for node in list(doctree.findall(nodes.raw)):
        text = node.astext()
        if "text/x-thebe-config" in text or text.strip().startswith("<script>kernelName ="):
            node.parent.remove(node)


def page_scripts(app: Sphinx, pagename, templatename, context, doctree) -> None:
    """Per-page fixes to the script list (html-page-context, after MyST-NB and MathJax)."""
    scripts = context.get("script_files", [])
    scripts[:] = [js for js in scripts if not _is_thebe(js)]
    for js in scripts:
        if js.attributes.get("type") == "application/vnd.jupyter.widget-state+json":
            js.attributes["body"] = js.attributes["body"].replace("<", "\\u003c")
    mathjax = app.config.mathjax_path
    if any(str(js.filename or "").endswith(mathjax) for js in scripts):
        app.builder.add_js_file(f"{FOLDER}/mathjax2-shim.js", priority=600, defer="defer")


def setup(app: Sphinx) -> dict:
    app.connect("config-inited", check_config)
    app.connect("builder-inited", copy_assets)
    app.connect("env-before-read-docs", drop_thebe_css, priority=900)
    app.connect("doctree-resolved", drop_thebe_config_nodes, priority=900)
    app.connect("html-page-context", page_scripts, priority=900)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
