"""Attending to nothing: the ``sink`` logit of ``attnlib.attention.masked_softmax`` and
``attnlib.scaled_dot_product_attention`` (softmax-off-by-one, learned per-head sinks), and the
``sink`` / ``gated`` options of the character GPT (the masking chapter, "Attending to nothing")."""

from __future__ import annotations

import pytest
import torch

import attnlib
from attnlib.attention import masked_softmax
from attnlib.models import gpt


def scores(*size, seed=0):
    return torch.randn(*size, generator=torch.Generator().manual_seed(seed))


def test_no_sink_and_a_sink_of_minus_infinity_are_the_plain_softmax():
    s = scores(2, 3, 4, 5)
    torch.testing.assert_close(masked_softmax(s), torch.softmax(s, dim=-1))
    torch.testing.assert_close(masked_softmax(s, sink=float("-inf")), torch.softmax(s, dim=-1))


def test_off_by_one_is_exp_over_one_plus_sum_exp():
    s = scores(3, 4, 6)
    w = masked_softmax(s, sink=0.0)
    torch.testing.assert_close(w, s.exp() / (1.0 + s.exp().sum(-1, keepdim=True)))
    assert (w.sum(-1) < 1).all()


def test_a_sink_is_a_key_with_a_zero_value():
    # softmax over [scores, z] with the value vector 0 for the extra key gives the same output.
    g = torch.Generator().manual_seed(1)
    q, k, v = (torch.randn(2, 3, 4, 8, generator=g) for _ in range(3))  # (N, H, L, E)
    z = torch.tensor([-1.0, 0.5, 2.0])[:, None]  # (H, 1): one logit per head
    out, w = attnlib.scaled_dot_product_attention(q, k, v, sink=z)
    s = q @ k.transpose(-2, -1) / 8**0.5  # (N, H, L, S)
    full = torch.softmax(torch.cat([s, z.expand(2, 3, 4)[..., None]], dim=-1), dim=-1)
    torch.testing.assert_close(w, full[..., :-1])
    v0 = torch.cat([v, torch.zeros(2, 3, 1, 8)], dim=-2)  # (N, H, S + 1, E): the sink's value 0
    torch.testing.assert_close(out, full @ v0)
    torch.testing.assert_close(1 - w.sum(-1), full[..., -1])  # the share of "nothing"


def test_a_row_with_no_allowed_key_is_still_zeros():
    s = scores(2, 4, 4)
    mask = torch.ones(4, 4, dtype=torch.bool)
    mask[1] = False
    for sink in (0.0, float("-inf"), torch.tensor([[0.3], [-2.0]])):  # (2, 1): one per batch row
        w = masked_softmax(s, mask, sink=sink)
        assert not w.isnan().any() and bool((w[:, 1] == 0).all())
    q = scores(1, 2, 4, 8)
    out, w = attnlib.scaled_dot_product_attention(q, q, q, attn_mask=mask, sink=0.0)
    assert bool((w[..., 1, :] == 0).all()) and bool((out[..., 1, :] == 0).all())


def test_the_sink_learns_and_keeps_the_dtype():
    z = torch.zeros(3, 1, requires_grad=True)
    w = masked_softmax(scores(2, 3, 4, 5), sink=z)
    w[..., 0].sum().backward()
    assert z.grad is not None and (z.grad != 0).all()
    half = masked_softmax(scores(2, 4, 5).half(), sink=0.0)
    assert half.dtype == torch.float16 and (half.float().sum(-1) < 1).all()


def test_bad_sinks_are_refused_with_the_shapes():
    s = scores(2, 3, 4, 5)
    with pytest.raises(ValueError, match=r"sink of shape \(3,\) does not broadcast .* \(2, 3, 4\)"):
        masked_softmax(s, sink=torch.zeros(3))  # per head needs (H, 1)
    where = r"scaled_dot_product_attention: sink of shape \(2, 3, 4, 5\)"
    with pytest.raises(ValueError, match=where):
        attnlib.scaled_dot_product_attention(s, s, s, sink=torch.zeros(2, 3, 4, 5))
    with pytest.raises(TypeError, match="sink must be a floating-point tensor"):
        masked_softmax(s, sink=torch.zeros(3, 1, dtype=torch.long))
    with pytest.raises(TypeError, match="sink must be a number or a floating-point tensor"):
        masked_softmax(s, sink="0")
    with pytest.raises(TypeError, match="sink must be a number"):
        masked_softmax(s, sink=True)
    with pytest.raises(ValueError, match="sink must not be NaN"):
        masked_softmax(s, sink=float("nan"))


# --- the character GPT's options ------------------------------------------------------------------


def tiny(sink="none", gated=False, positions="alibi"):
    torch.manual_seed(0)
    config = gpt.GPTConfig(vocab_size=11, context_length=32, d_model=16, num_heads=4, num_layers=2,
                           positions=positions, sink=sink, gated=gated)
    return gpt.CharGPT(config).eval()


def test_the_defaults_add_nothing():
    plain = tiny()
    names = set(plain.state_dict())
    assert not any("sink" in n or "gate" in n for n in names)
    assert plain.blocks[0].attn.sink_logits is None and plain.blocks[0].attn.gate_proj is None
    assert names | {f"blocks.{i}.attn.sink_logits" for i in range(2)} == set(
        tiny("learned").state_dict())


@pytest.mark.parametrize("positions", ["alibi", "learned"])
@pytest.mark.parametrize(("sink", "gated"), [("off_by_one", False), ("learned", False),
                                              ("none", True), ("learned", True)])
def test_variants_stay_causal_cache_and_let_rows_sum_below_one(sink, gated, positions):
    model = tiny(sink, gated, positions)
    if sink == "learned":
        with torch.no_grad():
            for block in model.blocks:
                block.attn.sink_logits.copy_(torch.tensor([-1.0, 0.0, 1.0, 2.0]))
    ids = torch.randint(0, 11, (2, 9), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        full = model(ids, need_weights=True)
        cache = model.new_cache()
        parts = [model(ids[:, :4], cache=cache).logits]
        parts += [model(ids[:, t:t + 1], cache=cache).logits for t in range(4, 9)]
        changed = ids.clone()
        changed[:, 6:] = (changed[:, 6:] + 1) % 11
        later = model(changed).logits
    torch.testing.assert_close(torch.cat(parts, dim=1), full.logits, atol=1e-5, rtol=1e-4)
    assert torch.equal(later[:, :6], full.logits[:, :6])
    row_sums = torch.stack(full.attentions).sum(-1)  # (layers, N, H, L)
    if sink == "none":
        torch.testing.assert_close(row_sums, torch.ones_like(row_sums))
    else:
        assert (row_sums < 1).all()
    if gated:
        gate = model.blocks[0].attn.gate_proj
        assert gate.weight.shape == (16, 16)


def test_gated_output_is_the_gate_times_the_heads():
    model = tiny(gated=True)
    attn = model.blocks[0].attn
    x = scores(2, 5, 16)
    with torch.no_grad():
        attn.gate_proj.bias.fill_(-1e4)  # every gate shut: sigmoid(-1e4) = 0
        out, _ = attn(x)
    torch.testing.assert_close(out, attn.out_proj.bias.expand(2, 5, 16))


def test_bad_options_are_refused():
    with pytest.raises(ValueError, match="sink must be 'none', 'off_by_one' or 'learned', got 'o"):
        tiny("one")
    with pytest.raises(TypeError, match="gated must be True or False, got 'yes'"):
        tiny(gated="yes")
