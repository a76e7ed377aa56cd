"""HeadView's live mode, the Python half: the state it sends, the kernel's answer with the
weights, the weights file the book build writes, and what int8 changes in the numbers.

The page's half (the tokeniser, the forward pass against PyTorch) is tested in a browser:
tests/browser/test_live_bert.py and test_live_bert_book.py.
"""

from __future__ import annotations

import base64
import json
from types import SimpleNamespace

import pytest
import torch

from attnlib.weights import load_minilm
from attnlib.widgets._frontend import LIBRARIES, build_esm
from attnlib.widgets.heads import (
    INT8_BLOCK,
    MAX_LENGTH,
    WEIGHTS_FILE,
    HeadView,
    minilm_pack,
    minilm_script,
    minilm_tensors,
)


@pytest.fixture(scope="module")
def minilm():
    return load_minilm()


@pytest.fixture(scope="module")
def live(minilm):
    model, tokenizer = minilm
    return HeadView.live(model, tokenizer, "Attention is all you need.", layer=3, head=1)


def test_live_state_carries_vocab_text_and_size(live, minilm):
    _, tokenizer = minilm
    state = live.get_state()
    lines = state["vocab"].split("\n")
    assert lines[tokenizer.token_to_id("[CLS]")] == "[CLS]"
    assert lines[tokenizer.token_to_id("attention")] == "attention"
    assert state["text"] == "Attention is all you need."
    assert state["max_length"] == MAX_LENGTH == 128
    assert state["weights_file"] == WEIGHTS_FILE
    assert state["weights_size"] == len(minilm_script())
    # The stored picture is the same sentence, run by PyTorch.
    assert state["sentences"][0]["tokens"] == tokenizer.encode(state["text"]).tokens
    assert (state["layer"], state["head"]) == (3, 1)


def test_the_heads_view_joins_the_tokeniser_and_the_forward_pass():
    assert LIBRARIES["heads"] == ("_nn.js", "_wordpiece.js", "_bert.js")
    esm = build_esm("heads")
    for name in ("function bertTokenize(", "function bertForward(", "function linear("):
        assert name in esm, name
    assert "live_bert" not in LIBRARIES


def test_max_length_is_the_packaged_tokenizers_truncation():
    from attnlib.weights._package import package_file
    from attnlib.weights.minilm import MODULE, PIP_NAME

    path = package_file(MODULE, "model/tokenizer.json", pip_name=PIP_NAME)
    assert json.loads(path.read_text(encoding="utf-8"))["truncation"]["max_length"] == MAX_LENGTH


def test_the_kernel_answers_with_the_manifest_and_the_bytes(live):
    sent = []
    live.send = lambda content, buffers=None: sent.append((content, buffers))
    live._on_custom(live, {"kind": "something else"}, [])
    assert sent == []
    live._on_custom(live, {"kind": "load-minilm"}, [])
    ((content, buffers),) = sent
    manifest, blob = minilm_pack()
    assert content == {"kind": "minilm", "manifest": manifest}
    assert len(buffers) == 1 and buffers[0] == base64.b64decode(blob)


def test_pack_is_int8_in_blocks_for_the_big_matrices(minilm):
    model, _ = minilm
    manifest, blob = minilm_pack()
    dtypes = {e["name"]: e["dtype"] for e in manifest}
    assert dtypes["embeddings.word.weight"] == "int8"
    assert dtypes["layers.0.self_attn.q_proj.weight"] == "int8"
    assert dtypes["layers.5.linear2.weight"] == "int8"
    assert dtypes["embeddings.norm.weight"] == dtypes["layers.0.linear1.bias"] == "float32"
    assert dtypes["embeddings.position.weight"] == "float32"
    assert "pooler.dense.weight" not in dtypes and "embeddings.position_ids" not in dtypes
    word = next(e for e in manifest if e["name"] == "embeddings.word.weight")
    assert word["shape"] == [30522 * 384 // INT8_BLOCK, INT8_BLOCK]
    tensors = minilm_tensors(manifest, blob, model)
    own = model.state_dict()
    for name, t in tensors.items():
        assert t.shape == own[name].shape, name
    assert torch.equal(tensors["embeddings.norm.weight"], own["embeddings.norm.weight"])
    err = (tensors["layers.0.linear1.weight"] - own["layers.0.linear1.weight"]).abs()
    step = own["layers.0.linear1.weight"].abs().max() / 127
    assert 0 < err.max() <= step / 2 + 1e-7  # rounding to the nearest level of its block


def test_the_weights_script_sets_one_global():
    text = minilm_script()
    assert text.startswith('window.attnlibMiniLM = {"manifest":[')
    assert text.endswith('"};\n')
    head, _, rest = text.partition(',"data":"')
    manifest = json.loads(head.removeprefix("window.attnlibMiniLM = ") + "}")["manifest"]
    assert manifest == minilm_pack()[0]
    assert rest[:-4] == minilm_pack()[1]


def test_book_extension_writes_the_file_for_html_only(tmp_path, monkeypatch):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "book" / "_ext" / "minilm_static.py"
    spec = importlib.util.spec_from_file_location("minilm_static", path)
    ext = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ext)

    def build(name):
        out = str(tmp_path / name)
        ext.write_weights(SimpleNamespace(builder=SimpleNamespace(name=name, outdir=out)))

    build("epub")
    build("html")
    assert not (tmp_path / "epub" / "_static").exists()
    target = tmp_path / "html" / "_static" / WEIGHTS_FILE
    text = target.read_text(encoding="utf-8")
    first, _, rest = text.partition("\n")
    assert first.startswith("// all-MiniLM-L6-v2, int8, from ") and rest == minilm_script()
    # A second build with nothing changed keeps the file.
    before = target.stat().st_mtime_ns
    build("html")
    assert target.stat().st_mtime_ns == before
