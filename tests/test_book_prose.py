"""Checks on the book's prose that the build itself cannot make.

* No typed chapter or section numbers: chapters refer to each other by label ({numref}, {ref},
  {doc}), so moving a chapter renumbers every reference or fails the build instead of leaving a
  stale "chapter 4". The library's docstrings and comments name chapters by title.
* Every figure has alt text that says what it shows.
* One citation label, one paper: no two bibliography entries render as the same author–year label.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from pybtex.database import parse_file

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
PAGES = sorted((ROOT / "book").glob("*.md"))
LIBRARY = sorted((ROOT / "src" / "attnlib").rglob("*.py"))
BIB = ROOT / "book" / "references.bib"
IMAGE_TYPES = ("image/png", "image/svg+xml", "image/jpeg")

# "chapter 4", "Chapters 4 and 5", "Chapter four", "ch. 4", "ch4", "§2.5", "section 3.2",
# "Sections 2 and 3". {numref}`Chapter %s <label>` has no digit after "Chapter" and passes.
_NUMBER_WORDS = "one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve"
LITERAL_NUMBER = re.compile(
    rf"\b(?:chapters?|sections?)\s+(?:\d|(?:{_NUMBER_WORDS})\b)"
    r"|\bch\.?\s?\d"
    r"|§\s*\d",
    re.IGNORECASE,
)


def _markdown_cells(nb: Path) -> list[tuple[int, str]]:
    cells = json.loads(nb.read_text(encoding="utf-8"))["cells"]
    return [(i, "".join(c["source"])) for i, c in enumerate(cells) if c["cell_type"] == "markdown"]


def _without_code(text: str) -> str:
    """Prose only: fenced code blocks and inline code removed (code may print "chapter 3").
    A role's text ({ref}`Chapter 8 <label>`) is prose and stays."""
    text = re.sub(r"^(```|~~~)(?!\{).*?^\1", "", text, flags=re.MULTILINE | re.DOTALL)
    text = re.sub(r"\{[\w:-]+\}`([^`]*)`", r"\1", text)  # a role's text is prose
    return re.sub(r"`[^`\n]*`", "", text)


def _literal_numbers(text: str) -> list[str]:
    return [m.group(0) for m in LITERAL_NUMBER.finditer(_without_code(text))]


def test_the_pattern_finds_typed_numbers_and_spares_references():
    typed = "See chapter 4, Chapters 4 and 5, §2.5, section 3.2, ch. 9, ch4 and Chapter four."
    assert len(_literal_numbers(typed)) == 7
    spared = (
        "See {numref}`Chapter %s <ch-bert>`, {ref}`ch-gpt`, {doc}`09_gpt`, Exercise 2, "
        "a 4-chapter course, `print('chapter 3')`, the first section of this chapter."
    )
    assert _literal_numbers(spared) == []
    assert _literal_numbers("{ref}`Chapter 8, ALBERT <errata-albert-compute>`") == ["Chapter 8"]


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_chapters_refer_to_chapters_by_label(nb):
    found = [f"cell {i}: {hit!r}" for i, src in _markdown_cells(nb) for hit in _literal_numbers(src)]
    assert not found, (
        f"{nb.name} types chapter or section numbers; use {{numref}}`Chapter %s <ch-...>`, "
        f"{{ref}} or {{doc}} instead: " + "; ".join(found)
    )


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.stem)
def test_pages_refer_to_chapters_by_label(page):
    found = _literal_numbers(page.read_text(encoding="utf-8"))
    assert not found, f"{page.name} types chapter or section numbers: {found}"


def test_library_names_chapters_by_title():
    found = [
        f"{path.relative_to(ROOT)}: {hit!r}"
        for path in LIBRARY
        for hit in LITERAL_NUMBER.findall(path.read_text(encoding="utf-8"))
    ]
    assert not found, "name chapters by title in the library: " + "; ".join(found)


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_figure_has_alt_text(nb):
    missing = []
    for i, cell in enumerate(json.loads(nb.read_text(encoding="utf-8"))["cells"]):
        if cell["cell_type"] == "markdown":
            src = "".join(cell["source"])
            missing += [f"cell {i}: ![]({m})" for m in re.findall(r"!\[\s*\]\(([^)]*)\)", src)]
            for block in re.findall(r"```\{(?:figure|image)\}.*?```", src, flags=re.DOTALL):
                if ":alt:" not in block:
                    missing.append(f"cell {i}: figure without :alt:")
            continue
        if cell["cell_type"] != "code":
            continue
        has_image = any(
            kind in out.get("data", {}) for out in cell.get("outputs", []) for kind in IMAGE_TYPES
        )
        alt = cell.get("metadata", {}).get("mystnb", {}).get("image", {}).get("alt", "")
        if has_image and len(alt.split()) < 4:
            missing.append(f"cell {i} ({cell.get('id')})")
    assert not missing, (
        f"{nb.name}: figures without alt text (cell metadata mystnb.image.alt, a sentence saying "
        "what the figure shows): " + ", ".join(missing)
    )


def _label(entry) -> str:
    people = entry.persons.get("author") or entry.persons.get("editor") or []
    surnames = [" ".join(p.last_names) for p in people]
    if len(surnames) > 2:
        who = f"{surnames[0]} et al."
    else:
        who = " and ".join(surnames)
    return f"{who}, {entry.fields.get('year', '')}"


def test_each_citation_label_names_one_paper():
    entries = parse_file(str(BIB)).entries
    seen: dict[str, str] = {}
    clashes = []
    for key, entry in entries.items():
        label = _label(entry)
        if label in seen:
            clashes.append(f"{seen[label]} and {key} both read '{label}'")
        seen[label] = key
    assert not clashes, "give the later one a year suffix (2020a, 2020b): " + "; ".join(clashes)
