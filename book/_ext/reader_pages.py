"""The book as readers meet it: screen readers, phones, print, and a whole-book EPUB.

HTML pages (the ``html`` builder):

- ``reader_static/reader.css`` (registered here): inline code and long identifiers wrap on a
  phone, display math and tables scroll inside their own box, and a print stylesheet that leaves
  only the article, full width; ``reader.js`` prints a page read in the dark theme in the light
  one (white paper), widgets included.
- Our copies of two pydata-sphinx-theme 0.17.1 components in ``templates/`` (search button,
  colour-mode button) and two fixes to the page body (:func:`fix_body`) remove the serious
  axe-core findings in markup the theme and its extensions write (each says why where it is).
- The download menu of every page gets the whole book as EPUB (``_downloads/<epub_basename>.epub``).

The EPUB (the ``epub`` builder: ``make epub``):

- ``reader_static/reader-epub.css``: code blocks wrap (an e-reader cannot scroll them).
- No script is shipped: a widget's output becomes its stored static picture (the ``image/png``
  of its display bundle, drawn by ``attnlib.widgets._base.Widget.static_picture``; the HTML
  book keeps the live view, which MyST-NB ranks first) and a short note saying it runs in the
  HTML book (:class:`WidgetNote`), and math is converted to MathML at build time by MathJax
  under node, from the same npm package the HTML book uses (:class:`MathToMathML`).
- sphinx-book-theme's header-button handlers are dropped (the EPUB theme has no header, and its
  launch-button handler fails without the HTML theme's repository context).
- Once written, the EPUB is copied into the sibling HTML build's ``_downloads/``, where the
  download menu points.
"""

from __future__ import annotations

import json
import posixpath
import re
import shutil
import subprocess
from pathlib import Path

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.builders.epub3 import Epub3Builder
from sphinx.errors import ExtensionError
from sphinx.transforms.post_transforms import SphinxPostTransform
from sphinx.util import logging

logger = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
NODE_MODULES = HERE.parent / "_assets" / "node_modules"
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
EPUB_FOLDER = "_downloads"  # inside the HTML build, beside Sphinx's own downloads


def epub_name(config) -> str:
    return f"{config.epub_basename}.epub"


# --- configuration ------------------------------------------------------------------------------


def add_paths(app: Sphinx, config) -> None:
    """Our templates come before the themes' components (config-inited)."""
    config.templates_path.insert(0, str(HERE / "templates"))
    if not config.version:  # the EPUB3 builder warns (fails -W) on an empty version
        from attnlib import __version__

        config.version = config.release = __version__


def on_builder_inited(app: Sphinx) -> None:
    if app.builder.name == "html":
        app.config.html_static_path.append(str(HERE / "reader_static"))
        app.add_css_file("reader.css", priority=900)
        app.add_js_file("reader.js", priority=900)
    elif app.builder.name == "epub":
        app.config.html_static_path.append(str(HERE / "reader_static"))
        app.add_css_file("reader-epub.css", priority=900)
        # sphinx-book-theme fills the HTML theme's header buttons; the EPUB theme has none, and
        # add_launch_buttons raises without the repository context only the HTML theme sets.
        for listener in list(app.events.listeners.get("html-page-context", [])):
            module = getattr(listener.handler, "__module__", "")
            if module.startswith("sphinx_book_theme.header_buttons"):
                app.disconnect(listener.id)


# --- HTML pages ---------------------------------------------------------------------------------

# MyST-NB labels the "Show code cell source" toggle "Toggle hidden content", so the name a
# screen reader speaks differs from the words on screen (axe: label-content-name-mismatch).
_SUMMARY = '<summary aria-label="Toggle hidden content">'
# docutils writes the bibliography as role="list" around role="doc-biblioentry" items; ARIA 1.2
# deprecates doc-biblioentry, and axe no longer counts it as a list item (aria-required-children).
_BIBLIOENTRY_RE = re.compile(r'(<div class="citation" id="[^"]*") role="doc-biblioentry"')


def fix_body(body: str) -> str:
    """The two page-body fixes (the markup of MyST-NB and docutils, see above)."""
    body = body.replace(_SUMMARY, "<summary>")
    return _BIBLIOENTRY_RE.sub(r'\1 role="listitem"', body)


# MyST-NB's toggle puts two <p> (the "show" and "hide" wording) inside <summary>, which allows no
# <p>; the EPUB keeps the first, as text (a reader without CSS would show both).
_SUMMARY_PARAGRAPHS = re.compile(
    r'<summary>\s*<p class="collapsed admonition-title">(.*?)</p>.*?</summary>', re.S
)


def page_context(app: Sphinx, pagename, templatename, context, doctree) -> None:
    """html-page-context, after the themes and MyST-NB."""
    if "body" in context:
        context["body"] = fix_body(context["body"])
    if app.builder.name == "epub":
        # No script in the EPUB: math is MathML already, widgets are notes.
        context["script_files"] = []
        # MyST-NB's stylesheet is modern CSS (empty custom properties, :is()) that EPUB readers'
        # CSS profile rejects (epubcheck CSS-008), and it is copied only after the EPUB is zipped.
        context["css_files"] = [
            css for css in context.get("css_files", []) if "mystnb." not in str(css.filename)
        ]
        if "body" in context:
            context["body"] = _SUMMARY_PARAGRAPHS.sub(r"<summary>\1</summary>", context["body"])
        return
    if app.builder.name != "html":
        return
    for group in context.get("header_buttons", []):
        if group.get("label") == "download-buttons":
            group["buttons"].append(
                {
                    "type": "link",
                    "url": context["pathto"](f"{EPUB_FOLDER}/{epub_name(app.config)}", 1),
                    "text": ".epub (whole book)",
                    "tooltip": "Download the whole book as an EPUB e-book",
                    "icon": "fas fa-book",
                    "label": "download-epub-button",
                }
            )


# --- the EPUB -----------------------------------------------------------------------------------


def picture_alt(srcdir: str, uri: str) -> str | None:
    """The alt text a widget stored in its picture (the PNG's ``Description``), if any."""
    from PIL import Image  # matplotlib's own dependency

    path = Path(srcdir, uri.lstrip("/"))
    try:
        with Image.open(path) as image:
            return image.text.get("Description")
    except OSError:
        return None


class WidgetNote(SphinxPostTransform):
    """In the EPUB, a widget's output (a script-driven view) becomes its stored static picture
    (the ``image/png`` its display bundle carries, see ``attnlib.widgets._base``) followed by a
    one-line note; an output without a picture becomes the note alone."""

    builders = ("epub",)
    default_priority = 3  # before MyST-NB's SelectMimeType (4) picks an output per builder

    def run(self, **kwargs) -> None:
        for bundle in list(self.document.findall(nodes.container)):
            if bundle.get("nb_element") != "mime_bundle":
                continue
            mimes = {child.get("mime_type"): child for child in bundle.children}
            if WIDGET_MIME not in mimes:
                continue
            plain = mimes.get("text/plain")
            what = plain.astext().strip() if plain is not None else "an interactive widget"
            picture = mimes.get("image/png")
            images = list(picture.findall(nodes.image)) if picture is not None else []
            note = nodes.paragraph(classes=["widget-note"])
            note += nodes.emphasis(text="Interactive widget: ")
            note += nodes.literal(text=what)
            if images:
                note += nodes.Text(
                    ", above as a picture of its stored state. It runs in the HTML version of "
                    "this chapter (an EPUB has no scripts)."
                )
            else:
                note += nodes.Text(
                    ". It runs in the HTML version of this chapter (an EPUB has no scripts)."
                )
            if not images:
                bundle.replace_self(note)
                continue
            # Keep only the picture in the bundle, so SelectMimeType renders it.
            for child in list(bundle.children):
                if child is not picture:
                    bundle.remove(child)
            image = images[0]
            image["alt"] = picture_alt(self.env.srcdir, image["uri"]) or f"A picture of {what}"
            image["classes"] = [*image.get("classes", []), "widget-picture"]
            bundle.parent.insert(bundle.parent.index(bundle) + 1, note)


_NODE_SCRIPT = r"""
const items = JSON.parse(require('fs').readFileSync(0, 'utf8'));
require(process.argv[1]).init({loader: {load: ['input/tex']}, tex: {packages: {'[+]': ['ams']}}})
  .then((MathJax) => {
    const out = items.map(([tex, display]) => {
      try { return MathJax.tex2mml(tex, {display}); }
      catch (err) { return 'ERROR: ' + err.message; }
    });
    process.stdout.write(JSON.stringify(out));
  })
  .catch((err) => { console.error(err); process.exit(1); });
"""
_MJX_ATTR = re.compile(r'\s(?:data-mjx-[\w-]+|data-semantic-[\w-]+)="[^"]*"')


def tex_to_mathml(items: list[tuple[str, bool]]) -> list[str]:
    """MathML for each (TeX, display) with MathJax 3 under node (one process for all)."""
    node = shutil.which("node")
    mathjax = NODE_MODULES / "mathjax"
    if node is None or not mathjax.exists():
        raise ExtensionError(
            "reader_pages: the EPUB's math needs node and book/_assets/node_modules/mathjax "
            "(`make setup`)"
        )
    result = subprocess.run(
        [node, "-e", _NODE_SCRIPT, str(mathjax)],
        input=json.dumps(items),
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    if result.returncode != 0:
        raise ExtensionError(f"reader_pages: MathJax under node failed:\n{result.stderr}")
    return [_MJX_ATTR.sub("", m) for m in json.loads(result.stdout)]


class MathToMathML(SphinxPostTransform):
    """In the EPUB, every math node becomes MathML (no MathJax script runs in a reader)."""

    builders = ("epub",)
    default_priority = 5

    def run(self, **kwargs) -> None:
        found = [
            n for n in self.document.findall() if isinstance(n, (nodes.math, nodes.math_block))
        ]
        if not found:
            return
        items = [(n.astext(), isinstance(n, nodes.math_block)) for n in found]
        for n, mathml in zip(found, tex_to_mathml(items), strict=True):
            if mathml.startswith("ERROR"):
                logger.warning(f"reader_pages: {mathml} in {n.astext()!r}", location=n)
                continue
            if isinstance(n, nodes.math_block):
                number = n.get("number")
                html = '<div class="math-display">'
                if number:
                    html += f'<span class="eqno">({number})</span>'
                html += mathml + "</div>"
                ids = n.get("ids", [])
                if ids:
                    html = f'<div id="{ids[0]}">{html}</div>'
            else:
                html = mathml
            n.replace_self(nodes.raw("", html, format="html"))


class BookEpubBuilder(Epub3Builder):
    """Sphinx's EPUB3 builder with two fixes for this book (each makes epubcheck pass):

    - the root document is not at the top (book/intro), and Sphinx prefixes its folder to the
      table of contents' relative links without normalising them ("book/../notebooks/x.xhtml"),
      so the reading order named files missing from the manifest;
    - pages with MathML must say so in the package file (``properties="mathml"``).
    """

    name = "epub"

    def get_toc(self) -> None:
        super().get_toc()
        for item in self.refnodes:
            uri, hash_, fragment = item["refuri"].partition("#")
            item["refuri"] = posixpath.normpath(uri) + hash_ + fragment

    def handle_finish(self) -> None:
        # MyST-NB copies its stylesheet in at build-finished, so a rebuild would zip it, unused.
        for css in Path(self.outdir, "_static").glob("mystnb.*.css"):
            css.unlink()
        super().handle_finish()

    def build_content(self) -> None:
        super().build_content()
        out = Path(self.outdir)
        opf = out / "content.opf"

        def declare(match: re.Match) -> str:
            item = match.group(0)
            href = re.search(r'href="([^"]+)"', item).group(1)
            if "<math" in (out / href).read_text(encoding="utf-8"):
                return re.sub(r"\s*/>$", ' properties="mathml"/>', item)
            return item

        item = r'<item id="[^"]+" href="[^"]+\.xhtml" media-type="application/xhtml\+xml"\s*/>'
        opf.write_text(re.sub(item, declare, opf.read_text(encoding="utf-8")), encoding="utf-8")


def copy_epub_to_html(app: Sphinx, exception) -> None:
    """build-finished (epub): copy the EPUB into the sibling HTML build's _downloads/."""
    if exception is not None or app.builder.name != "epub":
        return
    source = Path(app.outdir) / epub_name(app.config)
    target = Path(app.outdir).parent / "html" / EPUB_FOLDER / epub_name(app.config)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(source, target)
    logger.info(f"reader_pages: copied the EPUB to {target}")


def setup(app: Sphinx) -> dict:
    app.connect("config-inited", add_paths)
    app.connect("builder-inited", on_builder_inited)
    app.connect("html-page-context", page_context, priority=950)
    app.add_builder(BookEpubBuilder, override=True)
    app.connect("build-finished", copy_epub_to_html)
    app.add_post_transform(WidgetNote)
    app.add_post_transform(MathToMathML)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
