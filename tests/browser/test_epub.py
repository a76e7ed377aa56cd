"""The whole-book EPUB (make epub): it opens as an EPUB, every page is well-formed XHTML with no
script, what it references is inside it, widgets are their stored static picture (with alt text)
and a note, math is MathML, and every HTML page's download menu points at a copy that exists.

Static checks (no browser). epubcheck runs too where Debian's `epubcheck` package is installed.
"""

from __future__ import annotations

import json
import posixpath
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from .helpers import BUILD, built_pages, require_build

EPUB = BUILD.parent / "epub" / "attention-executed.epub"
XHTML = "{http://www.w3.org/1999/xhtml}"
ROOT = Path(__file__).resolve().parents[2]
# The chapters the table of contents lists, counted from the notebooks it points to.
TOC = (ROOT / "book" / "_toc.yml").read_text(encoding="utf-8")
CHAPTERS = len(re.findall(r"^\s*- file: notebooks/", TOC, flags=re.MULTILINE))
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def _epub() -> zipfile.ZipFile:
    require_build()
    if not EPUB.exists():
        pytest.fail(f"{EPUB} is missing: build it with `make epub`", pytrace=False)
    return zipfile.ZipFile(EPUB)


def _pages(book: zipfile.ZipFile) -> dict[str, ET.Element]:
    pages = {}
    for name in book.namelist():
        if name.endswith(".xhtml"):
            try:
                pages[name] = ET.fromstring(book.read(name))
            except ET.ParseError as err:
                pytest.fail(f"{name} is not well-formed XML: {err}", pytrace=False)
    return pages


def test_epub_is_an_epub_with_every_chapter():
    book = _epub()
    first = book.infolist()[0]
    assert first.filename == "mimetype" and book.read("mimetype") == b"application/epub+zip"
    assert first.compress_type == zipfile.ZIP_STORED, "the mimetype entry must be stored"
    opf = book.read("content.opf").decode("utf-8")
    manifest = dict(re.findall(r'<item id="([^"]+)" href="([^"]+)"', opf))
    spine = re.findall(r'<itemref idref="([^"]+)"', opf)
    missing = [i for i in spine if i not in manifest]
    assert not missing, f"the reading order names items not in the manifest: {missing}"
    chapters = [manifest[i] for i in spine if manifest[i].startswith("notebooks/")]
    assert len(chapters) == CHAPTERS, chapters
    assert manifest[spine[0]] == "book/intro.xhtml", "the EPUB should open on the introduction"
    for name in manifest.values():
        assert name in book.namelist(), f"the manifest lists {name}, not in the EPUB"


def test_every_page_is_xhtml_without_script_and_its_references_exist():
    book = _epub()
    names = set(book.namelist())
    pages = _pages(book)
    assert len(pages) >= CHAPTERS + 4, sorted(pages)
    for name, root in pages.items():
        assert not list(root.iter(f"{XHTML}script")), f"{name} carries a script"
        for tag, attr in (("img", "src"), ("link", "href"), ("a", "href")):
            for el in root.iter(f"{XHTML}{tag}"):
                url = el.get(attr)
                if not url or urlsplit(url).scheme or url.startswith("#"):
                    continue
                target = posixpath.normpath(
                    posixpath.join(posixpath.dirname(name), unquote(urlsplit(url).path))
                )
                assert target in names, f"{name}: <{tag} {attr}={url!r}> is not in the EPUB"


def test_figures_math_and_widget_notes():
    book = _epub()
    pages = _pages(book)
    images = [el for root in pages.values() for el in root.iter(f"{XHTML}img")]
    assert len(images) >= 10, f"only {len(images)} figures in the EPUB"
    mathml = "{http://www.w3.org/1998/Math/MathML}math"
    for name in ("book/notation.xhtml", "notebooks/02_soft_lookup.xhtml"):
        root = pages[name]
        assert list(root.iter(mathml)), f"{name} has no MathML"
        raw = book.read(name).decode("utf-8")
        assert "\\(" not in raw and "\\[" not in raw, f"{name} shows raw TeX"
    opf = book.read("content.opf").decode("utf-8")
    declared = 'href="book/notation.xhtml" media-type="application/xhtml+xml" properties="mathml"'
    assert declared in opf, "pages with MathML must declare it in content.opf"
    # every built chapter with a widget has a note in the EPUB instead, and the stored static
    # picture of each widget whose stored output carries one, with its alt text
    for html in built_pages():
        if WIDGET_VIEW not in html.read_text(encoding="utf-8"):
            continue
        name = html.relative_to(BUILD).with_suffix(".xhtml").as_posix()
        notes = book.read(name).decode("utf-8").count('class="widget-note"')
        assert notes >= 1, f"{name}: the widget left no note"
        pictures = [
            img for img in pages[name].iter(f"{XHTML}img")
            if "widget-picture" in img.get("class", "").split()
        ]
        stored = _stored_widget_pictures(ROOT / html.relative_to(BUILD).with_suffix(".ipynb"))
        assert len(pictures) == stored, (
            f"{name}: {len(pictures)} widget pictures, but the notebook stores {stored}"
        )
        for img in pictures:
            assert len(img.get("alt", "").strip()) > 20, f"{name}: a widget picture without alt"


def _stored_widget_pictures(notebook: Path) -> int:
    """How many widget outputs of ``notebook`` store a static picture (``image/png``)."""
    if not notebook.exists():
        return 0
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    return sum(
        WIDGET_VIEW in out.get("data", {}) and "image/png" in out.get("data", {})
        for cell in cells
        for out in cell.get("outputs", [])
    )


def test_download_menu_points_at_the_epub():
    require_build()
    pages = [p for p in built_pages() if "download-source-button" in p.read_text(encoding="utf-8")]
    assert len(pages) >= CHAPTERS, "pages with a download menu"
    link = re.compile(r'<a href="([^"]+\.epub)"[^>]*\n?\s*class="[^"]*download-epub-button')
    for page in pages:
        found = link.findall(page.read_text(encoding="utf-8"))
        assert found, f"{page.relative_to(BUILD)}: no EPUB in the download menu"
        target = (page.parent / found[0]).resolve()
        assert target.is_file(), f"{page.relative_to(BUILD)}: {found[0]} does not exist"
        assert target.read_bytes() == EPUB.read_bytes(), f"{target} is not the built EPUB"


EPUBCHECK = Path("/usr/share/java/epubcheck.jar")


@pytest.mark.skipif(
    not (EPUBCHECK.exists() and shutil.which("java")),
    reason="Debian's epubcheck is not installed (apt-get install epubcheck)",
)
def test_epubcheck_finds_nothing():
    _epub()
    result = subprocess.run(
        ["java", "-jar", str(EPUBCHECK), str(EPUB)], capture_output=True, text=True, timeout=600
    )
    report = result.stdout + result.stderr
    assert result.returncode == 0 and "0 errors / 0 warnings" in report, report[-3000:]
