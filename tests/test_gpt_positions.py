"""CharGPT's position options beyond ALiBi and learned vectors ("rope", "t5", "none"), and RoPE
scaling in attnlib.positional (position interpolation): the material of the section "Positions in
causal models" in the chapter on positions and the Transformer block."""

from __future__ import annotations

import math

import pytest
import torch

from attnlib.models import gpt
from attnlib.positional import apply_rope, relative_position_bucket, rope_cos_sin, rope_frequencies

NEW = ["rope", "t5", "none"]


def tiny(positions: str, context_length: int = 64, seed: int = 0, **options) -> gpt.CharGPT:
    torch.manual_seed(seed)
    options = {"num_layers": 2, **options}
    config = gpt.GPTConfig(
        vocab_size=11, context_length=context_length, d_model=16, num_heads=4,
        positions=positions, **options,
    )
    return gpt.CharGPT(config).eval()


def loud(model: gpt.CharGPT, seed: int = 3) -> gpt.CharGPT:
    """Larger random weights than GPT-2's init (std 0.02), so that scores, and positions, count."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.5)
    return model


def ids(n: int = 2, length: int = 9, seed: int = 2) -> torch.Tensor:
    return torch.randint(0, 11, (n, length), generator=torch.Generator().manual_seed(seed))


# --- defaults and parameters ----------------------------------------------------------------------


def test_defaults_are_unchanged():
    config = gpt.GPTConfig(vocab_size=11)
    assert (config.positions, config.rope_base, config.rope_scale) == ("alibi", 10000.0, 1.0)
    for positions in ("alibi", "learned"):
        model = tiny(positions)
        assert model.relative_bias is None
        assert not any(block.attn.rope for block in model.blocks)
        assert not any("relative_bias" in name for name in model.state_dict())


def test_parameters_of_each_option():
    base = tiny("none").num_parameters()
    assert tiny("rope").num_parameters() == base  # rotations have no parameters
    assert tiny("alibi").num_parameters() == base  # nor do ALiBi's slopes
    assert tiny("learned").num_parameters() == base + 64 * 16  # one vector per position
    t5 = tiny("t5")
    assert t5.num_parameters() == base + 32 * 4  # one table (32 buckets x H), shared by the layers
    assert t5.relative_bias.embedding.weight.shape == (32, 4)
    assert not t5.relative_bias.bidirectional


# --- causal, cached, consistent -------------------------------------------------------------------


@pytest.mark.parametrize("positions", NEW)
def test_output_does_not_depend_on_later_tokens(positions):
    model = tiny(positions)
    a = ids()
    b = a.clone()
    b[:, 6:] = (b[:, 6:] + 1) % 11
    with torch.no_grad():
        la, lb = model(a).logits, model(b).logits
    torch.testing.assert_close(la[:, :6], lb[:, :6])
    assert not torch.allclose(la[:, 6:], lb[:, 6:])


@pytest.mark.parametrize("positions", NEW)
def test_cache_gives_the_same_logits(positions):
    model = tiny(positions, rope_scale=2.5) if positions == "rope" else tiny(positions)
    x = ids()
    with torch.no_grad():
        full = model(x, need_weights=True)
        cache = model.new_cache()
        parts = [model(x[:, :4], cache=cache).logits]
        parts += [model(x[:, t : t + 1], cache=cache).logits for t in range(4, 9)]
    torch.testing.assert_close(torch.cat(parts, dim=1), full.logits, atol=1e-5, rtol=1e-5)
    w = full.attentions[0]  # (N, H, L, S)
    assert w.shape == (2, 4, 9, 9) and torch.all(w.triu(1) == 0)
    torch.testing.assert_close(w.sum(-1), torch.ones(2, 4, 9))


@pytest.mark.parametrize("positions", NEW)
def test_generation_with_and_without_cache_is_identical(positions):
    model = tiny(positions)
    prompt = torch.tensor([[1, 2, 3], [4, 5, 6]])
    outs = [
        model.generate(prompt, 20, generator=torch.Generator().manual_seed(7), use_cache=c,
                       temperature=1.3, top_k=5)
        for c in (True, False)
    ]
    assert torch.equal(outs[0], outs[1])


def test_without_positions_one_layer_sees_a_set_two_layers_see_order():
    """Swap tokens 2 and 3. A query after both sees the same set of tokens, so one causal layer
    without positions gives it the same output; a second layer reads the first layer's outputs at
    2 and 3, which the mask made different, and tells the orders apart (as RoPE and T5 do)."""
    x = ids(1, 8)
    x[0, 2], x[0, 3] = 4, 7
    swapped = x.clone()
    swapped[0, 2], swapped[0, 3] = 7, 4
    for positions, layers in (("none", 1), ("none", 2), ("rope", 1), ("t5", 1)):
        model = loud(tiny(positions, num_layers=layers))
        with torch.no_grad():
            a, b = model(x).logits[0, 4:], model(swapped).logits[0, 4:]  # after both swaps
        if (positions, layers) == ("none", 1):
            torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
        else:
            assert not torch.allclose(a, b, atol=1e-4), (positions, layers)


def test_t5_bias_follows_the_decoder_buckets():
    model = tiny("t5")
    with torch.no_grad():
        model.relative_bias.embedding.weight.copy_(torch.arange(32 * 4.0).view(32, 4))
        out = model(ids(1, 6), need_weights=True)
    # the same bias reaches every layer: recompute layer 0's weights by hand
    block = model.blocks[0]
    h = block.norm1(model.tok_embed(ids(1, 6)))
    q = block.attn.q_proj(h).view(1, 6, 4, 4).transpose(1, 2)
    k = block.attn.k_proj(h).view(1, 6, 4, 4).transpose(1, 2)
    i, j = torch.arange(6)[:, None], torch.arange(6)[None, :]
    buckets = relative_position_bucket(j - i, bidirectional=False)  # (L, S)
    bias = model.relative_bias.embedding(buckets).permute(2, 0, 1)  # (H, L, S)
    scores = (q @ k.transpose(-2, -1) / 2.0 + bias).masked_fill(j > i, float("-inf"))
    torch.testing.assert_close(out.attentions[0], scores.softmax(-1), atol=1e-5, rtol=1e-5)


def test_rope_uses_the_base_and_the_scale():
    a, b = loud(tiny("rope")), tiny("rope", rope_base=100.0)
    b.load_state_dict(a.state_dict())
    x = ids()
    with torch.no_grad():
        assert not torch.allclose(a(x).logits, b(x).logits, atol=1e-3)
    c = tiny("rope", rope_scale=4.0)
    c.load_state_dict(a.state_dict())
    assert c.blocks[0].attn.rope_scale == 4.0 and c.blocks[0].attn.rope_base == 10000.0
    with torch.no_grad():
        assert not torch.allclose(a(x).logits, c(x).logits, atol=1e-3)


def test_learned_positions_cannot_run_past_their_table():
    model = tiny("learned", context_length=8)
    with pytest.raises(ValueError, match="exceed the context length 8"):
        model(ids(1, 9))
    for positions in NEW:
        tiny(positions, context_length=32)(ids(1, 32))  # no table: any length up to the context


# --- bad values -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"positions": "sinusoidal"}, "'alibi', 'learned', 'rope', 't5' or 'none'"),
        ({"positions": "alibi", "rope_scale": 2.0}, "rope_scale applies to positions='rope' only"),
        ({"positions": "t5", "rope_base": 500.0}, "rope_base applies to positions='rope' only"),
        ({"positions": "rope", "rope_scale": 0.0}, "rope_scale must be a finite number > 0"),
        ({"positions": "rope", "rope_scale": float("inf")}, "rope_scale must be a finite"),
        ({"positions": "rope", "rope_scale": True}, "rope_scale must be"),
        ({"positions": "rope", "rope_base": 1.0}, "rope_base must be a finite number > 1"),
        ({"positions": "rope", "num_heads": 8}, "even head size"),  # E = 16 / 8 = 2 is fine ...
    ],
)
def test_bad_values_are_named(options, match):
    if options.get("num_heads") == 8:
        options = {**options, "d_model": 24}  # ... E = 24 / 8 = 3 is odd
    config = {"vocab_size": 11, "d_model": 16, "num_heads": 4, "num_layers": 1, **options}
    with pytest.raises(ValueError, match=match):
        gpt.CharGPT(gpt.GPTConfig(**config))


def test_attention_refuses_rope_with_alibi():
    with pytest.raises(ValueError, match="rope needs alibi=False"):
        gpt.CausalSelfAttention(16, 4, alibi=True, rope=True)


# --- RoPE scaling in attnlib.positional ----------------------------------------------------------


def test_scale_one_is_plain_rope_bit_for_bit():
    assert torch.equal(rope_frequencies(16, scale=1.0), rope_frequencies(16))
    x = torch.randn(2, 3, 10, 8, generator=torch.Generator().manual_seed(0))
    assert torch.equal(apply_rope(x, scale=1.0), apply_rope(x))


@pytest.mark.parametrize("scale", [2.0, 4, 0.5])
def test_interpolation_divides_the_positions(scale):
    positions = torch.arange(12)
    torch.testing.assert_close(rope_frequencies(16, scale=scale), rope_frequencies(16) / scale)
    cos_s, sin_s = rope_cos_sin(positions * scale, 16, scale=scale)
    cos, sin = rope_cos_sin(positions, 16)
    torch.testing.assert_close(cos_s, cos, atol=1e-5, rtol=0)
    torch.testing.assert_close(sin_s, sin, atol=1e-5, rtol=0)
    x = torch.randn(1, 2, 12, 16, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(
        apply_rope(x, positions * scale, scale=scale), apply_rope(x, positions), atol=1e-5, rtol=0
    )


@pytest.mark.parametrize("scale", [0, -1.0, float("nan"), float("inf"), True, "2"])
def test_bad_scale_is_named(scale):
    with pytest.raises(ValueError, match="scale must be a positive number"):
        rope_frequencies(8, scale=scale)
    with pytest.raises(ValueError, match="scale must be a positive number"):
        apply_rope(torch.zeros(1, 1, 3, 8), scale=scale)


def test_ntk_aware_base_keeps_the_fastest_pair_and_interpolates_the_slowest():
    E, s = 16, 4.0
    plain = rope_frequencies(E)
    ntk = rope_frequencies(E, base=10000.0 * s ** (E / (E - 2)))
    assert ntk[0] == plain[0] == 1.0
    assert math.isclose(ntk[-1].item(), plain[-1].item() / s, rel_tol=1e-5)
    assert torch.all(ntk[1:] < plain[1:]) and torch.all(ntk > plain / s - 1e-9)
